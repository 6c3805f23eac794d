"""Builders for Services and EndpointSlices (kube-proxy's tests and bench)."""
from __future__ import annotations

from typing import Any, Iterable

from tests.builders import obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def service(name: str, cluster_ip: str, ports: Iterable[dict[str, Any]] | None = None, *,
            namespace: str = "default", type_: str = "ClusterIP", **spec: Any):
    """A Service; ports default to one TCP port 80 named "http"; spec: extra
    spec fields in Kubernetes JSON (sessionAffinity=..., externalTrafficPolicy=...),
    status_lb=[ips] for status.loadBalancer.ingress."""
    lb_ips = spec.pop("status_lb", [])
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": type_, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "ports": list(ports if ports is not None else
                               [{"name": "http", "port": 80, "protocol": "TCP"}]),
                 **spec}}
    if lb_ips:
        doc["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}
                                                      for ip in lb_ips]}}
    return obj(doc)


def endpoint(ip: str, *, ready: bool | None = True, serving: bool | None = None,
             terminating: bool | None = None, node: str = "") -> dict[str, Any]:
    conditions = {k: v for k, v in (("ready", ready), ("serving", serving),
                                    ("terminating", terminating)) if v is not None}
    ep: dict[str, Any] = {"addresses": [ip], "conditions": conditions}
    if node:
        ep["nodeName"] = node
    return ep


def endpoint_slice(name: str, service_name: str, endpoints: Iterable[dict[str, Any]],
                   ports: Iterable[dict[str, Any]] | None = None, *,
                   namespace: str = "default"):
    """An EndpointSlice of `service_name`; ports default to one TCP "http" port 80."""
    return obj({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {SERVICE_NAME_LABEL: service_name}},
        "addressType": "IPv4",
        "endpoints": list(endpoints),
        "ports": list(ports if ports is not None else
                      [{"name": "http", "port": 80, "protocol": "TCP"}])})
