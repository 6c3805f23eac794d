"""Services and pods with what the endpoints controllers read, for unit tests."""
from __future__ import annotations

from typing import Any

from tests.builders import obj


def svc(name: str = "web", *, selector: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None, cluster_ip: str = "127.1.0.20",
        publish_not_ready: bool = False, labels: dict[str, str] | None = None,
        type_: str = "ClusterIP", uid: str = "", **spec: Any):
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
                     "creationTimestamp": "2027-01-15T08:00:00Z"},
        "spec": {"selector": {"app": name} if selector is None else selector,
                 "ports": ([{"name": "http", "port": 80, "targetPort": 8080,
                             "protocol": "TCP"}] if ports is None else ports),
                 "type": type_,
                 "publishNotReadyAddresses": publish_not_ready, **spec}}
    if cluster_ip:   # "": the apiserver (MemClient's registry) allocates one
        doc["spec"]["clusterIP"] = cluster_ip
    if labels:
        doc["metadata"]["labels"] = labels
    if uid:
        doc["metadata"]["uid"] = uid
    return obj(doc)


def pod(name: str, ip: str | None = "127.2.1.5", *, ready: bool = True,
        labels: dict[str, str] | None = None, terminating: bool = False,
        hostname: str = "", subdomain: str = "", node: str = "node-1",
        container_ports: list[dict[str, Any]] | None = None, phase: str = "Running",
        ready_since: str = "2027-01-15T08:01:00Z"):
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "labels": {"app": "web"} if labels is None else labels},
        "spec": {"nodeName": node,
                 "containers": [{"name": "main", "image": "busybox",
                                 "ports": container_ports or []}]},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False",
             "lastTransitionTime": ready_since}]},
    }
    if ip:
        doc["status"]["podIP"] = ip
        doc["status"]["podIPs"] = [{"ip": ip}]
    if terminating:
        doc["metadata"]["deletionTimestamp"] = "2027-01-15T08:02:00Z"
    if hostname:
        doc["spec"]["hostname"] = hostname
    if subdomain:
        doc["spec"]["subdomain"] = subdomain
    return obj(doc)
