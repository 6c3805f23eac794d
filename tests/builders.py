"""Small object builders for tests: make_pod("a").on_node("n1").requests(cpu="500m")."""
from __future__ import annotations

from typing import Any

from kubemu.api import codec
from kubemu.api.kinds import REGISTRY


def obj(doc: dict[str, Any]):
    """A message from a Kubernetes-JSON dict (apiVersion and kind pick the type)."""
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    return codec.from_dict(kind.message, doc)


class PodBuilder:
    def __init__(self, name: str, namespace: str = "default"):
        self.doc: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", "3600"]}]},
        }

    def labels(self, **labels: str) -> "PodBuilder":
        self.doc["metadata"].setdefault("labels", {}).update(labels)
        return self

    def on_node(self, node: str) -> "PodBuilder":
        self.doc["spec"]["nodeName"] = node
        return self

    def requests(self, **resources: str) -> "PodBuilder":
        self.doc["spec"]["containers"][0].setdefault("resources", {})["requests"] = resources
        return self

    def limits(self, **resources: str) -> "PodBuilder":
        self.doc["spec"]["containers"][0].setdefault("resources", {})["limits"] = resources
        return self

    def grace(self, seconds: int) -> "PodBuilder":
        self.doc["spec"]["terminationGracePeriodSeconds"] = seconds
        return self

    def build(self):
        return obj(self.doc)


def make_pod(name: str, namespace: str = "default") -> PodBuilder:
    return PodBuilder(name, namespace)


def configmap(name: str, namespace: str = "default", **data: str):
    return obj({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace}, "data": data})
