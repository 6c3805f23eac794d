"""Cluster add-ons: programs that run as pods (cluster DNS, the ingress controller).

Each sub-package is one add-on, run as `python -m addons.<name>` by the image
catalog; add-ons import only the shared library `kubemu`.
"""
