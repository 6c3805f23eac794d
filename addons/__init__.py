"""Cluster add-ons: programs that run as pods of the cluster, as in Kubernetes.

Each sub-package is one add-on (`python -m addons.dns`, ...) that an image of
the kubelet's catalog maps to, and reaches the apiserver as an in-cluster
client. Add-ons import only `kubemu` (an import-linter contract); components
never import them.
"""
