"""Services and EndpointSlices for the DNS tests, as the apiserver and the
EndpointSlice controller would store them."""
from __future__ import annotations

from typing import Any

from tests.builders import obj


def service(name: str, namespace: str = "default", *, cluster_ip: str = "",
            ports: list[tuple[str, int, str]] = (), type_: str = "ClusterIP",
            external_name: str = ""):
    spec: dict[str, Any] = {"type": type_,
                            "ports": [{"name": n, "port": p, "protocol": proto}
                                      for n, p, proto in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    if external_name:
        spec["externalName"] = external_name
    return obj({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def endpoint(ip: str, *, ready: bool | None = True, hostname: str = "") -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip]}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(service_name: str, namespace: str = "default", *,
                   endpoints: list[dict[str, Any]] = (),
                   ports: list[tuple[str, int, str]] = (), suffix: str = "abcde"):
    return obj({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{service_name}-{suffix}", "namespace": namespace,
                             "labels": {"kubernetes.io/service-name": service_name}},
                "addressType": "IPv4", "endpoints": list(endpoints),
                "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]})
