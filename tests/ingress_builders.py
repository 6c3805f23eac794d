"""Builders for networking objects in tests:
make_ingress("web").host("foo.com", prefix("/", "foo-svc", 80)).build()."""
from __future__ import annotations

from typing import Any

from tests.builders import obj


def backend(service: str, port: int | str) -> dict[str, Any]:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"service": {"name": service, "port": ref}}


def path(path: str, path_type: str | None, service: str, port: int | str) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": path, "backend": backend(service, port)}
    if path_type is not None:
        doc["pathType"] = path_type
    return doc


def prefix(p: str, service: str, port: int | str) -> dict[str, Any]:
    return path(p, "Prefix", service, port)


def exact(p: str, service: str, port: int | str) -> dict[str, Any]:
    return path(p, "Exact", service, port)


class IngressBuilder:
    def __init__(self, name: str, namespace: str = "default"):
        self.doc: dict[str, Any] = {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace}, "spec": {}}

    def class_name(self, name: str) -> "IngressBuilder":
        self.doc["spec"]["ingressClassName"] = name
        return self

    def annotate(self, **annotations: str) -> "IngressBuilder":
        self.doc["metadata"].setdefault("annotations", {}).update(annotations)
        return self

    def class_annotation(self, name: str) -> "IngressBuilder":
        return self.annotate(**{"kubernetes.io/ingress.class": name})

    def created(self, timestamp: str) -> "IngressBuilder":
        self.doc["metadata"]["creationTimestamp"] = timestamp
        return self

    def host(self, host: str, *paths: dict[str, Any]) -> "IngressBuilder":
        rule: dict[str, Any] = {"http": {"paths": list(paths)}}
        if host:
            rule["host"] = host
        self.doc["spec"].setdefault("rules", []).append(rule)
        return self

    def default_backend(self, service: str, port: int | str) -> "IngressBuilder":
        self.doc["spec"]["defaultBackend"] = backend(service, port)
        return self

    def build(self):
        return obj(self.doc)


def make_ingress(name: str, namespace: str = "default") -> IngressBuilder:
    return IngressBuilder(name, namespace)


def ingress_class(name: str, controller: str = "k8s.io/ingress-nginx", *,
                  default: bool = False):
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    return obj({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": meta, "spec": {"controller": controller}})


def service(name: str, namespace: str = "default", *ports: tuple[str, int, int | str],
            cluster_ip: str = "", type: str = "ClusterIP", external_name: str = ""):
    """ports: (name, port, targetPort)."""
    spec: dict[str, Any] = {"type": type, "ports": [
        {"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if external_name:
        spec["externalName"] = external_name
    return obj({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def endpoint_slice(name: str, namespace: str, service_name: str,
                   ports: list[tuple[str, int]], endpoints: list[tuple[str, bool | None]]):
    """ports: (name, port); endpoints: (address, ready) with ready None = unset."""
    eps = []
    for address, ready in endpoints:
        doc: dict[str, Any] = {"addresses": [address]}
        if ready is not None:
            doc["conditions"] = {"ready": ready}
        eps.append(doc)
    return obj({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"kubernetes.io/service-name": service_name}},
                "addressType": "IPv4",
                "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
                "endpoints": eps})
