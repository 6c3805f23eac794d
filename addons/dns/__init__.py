"""Cluster DNS: our stand-in for CoreDNS with its `kubernetes` plugin.

`python -m addons.dns` watches Services and EndpointSlices and answers the
cluster zone (`cluster.local`) over UDP and TCP; other names go to the host's
resolvers. `records` answers one question (pure), `corefile` reads the
Corefile that kubeadm's ConfigMap carries, `server` does the I/O.
"""
