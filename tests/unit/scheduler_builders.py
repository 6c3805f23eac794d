"""Builders for scheduler tests: make_pod("a").requests(cpu="500m").priority(10),
make_node("n1").allocatable(cpu="2", memory="4Gi").taint("k", "v", "NoSchedule").

Each builder edits a Kubernetes-JSON dict; build() decodes it strictly with
kubemu.api.codec, so a misspelled field fails the test that uses it.
"""
from __future__ import annotations

import copy
from typing import Any

from kubemu.api import codec
from kubemu.api.v1 import core_pb2

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def _expressions(exprs: dict[str, tuple[str, list[str]]] | list[tuple]) -> list[dict]:
    """[(key, operator, values)] -> matchExpressions."""
    out = []
    for key, operator, *values in exprs:
        entry: dict[str, Any] = {"key": key, "operator": operator}
        if values and values[0]:
            entry["values"] = list(values[0])
        out.append(entry)
    return out


def selector(match_labels: dict[str, str] | None = None, *exprs: tuple) -> dict:
    """A LabelSelector dict: selector({"app": "web"}, ("tier", "In", ["a"]))."""
    out: dict[str, Any] = {}
    if match_labels:
        out["matchLabels"] = dict(match_labels)
    if exprs:
        out["matchExpressions"] = _expressions(exprs)
    return out


def affinity_term(topology_key: str, sel: dict | None, namespaces: list[str] | None = None,
                  namespace_selector: dict | None = None) -> dict:
    term: dict[str, Any] = {"topologyKey": topology_key}
    if sel is not None:
        term["labelSelector"] = sel
    if namespaces:
        term["namespaces"] = namespaces
    if namespace_selector is not None:
        term["namespaceSelector"] = namespace_selector
    return term


class PodBuilder:
    def __init__(self, name: str, namespace: str = "default"):
        self.doc: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        }

    @property
    def _spec(self) -> dict[str, Any]:
        return self.doc["spec"]

    def uid(self, uid: str) -> PodBuilder:
        self.doc["metadata"]["uid"] = uid
        return self

    def labels(self, **labels: str) -> PodBuilder:
        self.doc["metadata"].setdefault("labels", {}).update(labels)
        return self

    def label(self, key: str, value: str) -> PodBuilder:
        self.doc["metadata"].setdefault("labels", {})[key] = value
        return self

    def on_node(self, node: str) -> PodBuilder:
        self._spec["nodeName"] = node
        return self

    def requests(self, **resources: str) -> PodBuilder:
        """Requests of the first container (cpu, memory, ephemeral_storage -> "-")."""
        self._spec["containers"][0].setdefault("resources", {})["requests"] = {
            k.replace("_", "-"): v for k, v in resources.items()}
        return self

    def container(self, name: str, **requests: str) -> PodBuilder:
        ctr: dict[str, Any] = {"name": name, "image": "busybox"}
        if requests:
            ctr["resources"] = {"requests": {k.replace("_", "-"): v for k, v in requests.items()}}
        self._spec["containers"].append(ctr)
        return self

    def init_container(self, name: str, restart_policy: str | None = None,
                       **requests: str) -> PodBuilder:
        ctr: dict[str, Any] = {"name": name, "image": "busybox"}
        if requests:
            ctr["resources"] = {"requests": {k.replace("_", "-"): v for k, v in requests.items()}}
        if restart_policy:
            ctr["restartPolicy"] = restart_policy
        self._spec.setdefault("initContainers", []).append(ctr)
        return self

    def extended(self, name: str, amount: str) -> PodBuilder:
        self._spec["containers"][0].setdefault("resources", {}).setdefault(
            "requests", {})[name] = amount
        return self

    def priority(self, value: int) -> PodBuilder:
        self._spec["priority"] = value
        return self

    def preemption_policy(self, policy: str) -> PodBuilder:
        self._spec["preemptionPolicy"] = policy
        return self

    def scheduler_name(self, name: str) -> PodBuilder:
        self._spec["schedulerName"] = name
        return self

    def node_selector(self, **labels: str) -> PodBuilder:
        self._spec.setdefault("nodeSelector", {}).update(labels)
        return self

    def _node_affinity(self) -> dict[str, Any]:
        return self._spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})

    def required_node_terms(self, *terms: list[tuple], fields: list[tuple] | None = None
                            ) -> PodBuilder:
        """Each term is a list of (key, operator, values) expressions (OR between terms)."""
        node_terms = []
        for exprs in terms:
            term: dict[str, Any] = {}
            if exprs:
                term["matchExpressions"] = _expressions(exprs)
            node_terms.append(term)
        if fields:
            node_terms.append({"matchFields": _expressions(fields)})
        self._node_affinity()["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": node_terms}
        return self

    def preferred_node_term(self, weight: int, *exprs: tuple) -> PodBuilder:
        self._node_affinity().setdefault(
            "preferredDuringSchedulingIgnoredDuringExecution", []).append(
            {"weight": weight, "preference": {"matchExpressions": _expressions(exprs)}})
        return self

    def toleration(self, key: str = "", operator: str = "", value: str = "",
                   effect: str = "", seconds: int | None = None) -> PodBuilder:
        tol: dict[str, Any] = {}
        for field, v in (("key", key), ("operator", operator), ("value", value),
                         ("effect", effect)):
            if v:
                tol[field] = v
        if seconds is not None:
            tol["tolerationSeconds"] = seconds
        self._spec.setdefault("tolerations", []).append(tol)
        return self

    def host_port(self, port: int, protocol: str = "", host_ip: str = "") -> PodBuilder:
        entry: dict[str, Any] = {"containerPort": port, "hostPort": port}
        if protocol:
            entry["protocol"] = protocol
        if host_ip:
            entry["hostIP"] = host_ip
        self._spec["containers"][0].setdefault("ports", []).append(entry)
        return self

    def _pod_affinity(self, kind: str) -> dict[str, Any]:
        return self._spec.setdefault("affinity", {}).setdefault(kind, {})

    def pod_affinity(self, *terms: dict) -> PodBuilder:
        self._pod_affinity("podAffinity").setdefault(
            "requiredDuringSchedulingIgnoredDuringExecution", []).extend(terms)
        return self

    def pod_anti_affinity(self, *terms: dict) -> PodBuilder:
        self._pod_affinity("podAntiAffinity").setdefault(
            "requiredDuringSchedulingIgnoredDuringExecution", []).extend(terms)
        return self

    def preferred_pod_affinity(self, weight: int, term: dict) -> PodBuilder:
        self._pod_affinity("podAffinity").setdefault(
            "preferredDuringSchedulingIgnoredDuringExecution", []).append(
            {"weight": weight, "podAffinityTerm": term})
        return self

    def preferred_pod_anti_affinity(self, weight: int, term: dict) -> PodBuilder:
        self._pod_affinity("podAntiAffinity").setdefault(
            "preferredDuringSchedulingIgnoredDuringExecution", []).append(
            {"weight": weight, "podAffinityTerm": term})
        return self

    def spread(self, max_skew: int, topology_key: str, when: str = "DoNotSchedule",
               sel: dict | None = None, min_domains: int | None = None,
               node_affinity_policy: str | None = None,
               node_taints_policy: str | None = None) -> PodBuilder:
        entry: dict[str, Any] = {"maxSkew": max_skew, "topologyKey": topology_key,
                                 "whenUnsatisfiable": when}
        if sel is not None:
            entry["labelSelector"] = sel
        if min_domains is not None:
            entry["minDomains"] = min_domains
        if node_affinity_policy:
            entry["nodeAffinityPolicy"] = node_affinity_policy
        if node_taints_policy:
            entry["nodeTaintsPolicy"] = node_taints_policy
        self._spec.setdefault("topologySpreadConstraints", []).append(entry)
        return self

    def started(self, timestamp: str) -> PodBuilder:
        self.doc.setdefault("status", {})["startTime"] = timestamp
        return self

    def terminating(self, timestamp: str = "2024-01-01T00:00:00Z",
                    by_preemption: bool = True) -> PodBuilder:
        self.doc["metadata"]["deletionTimestamp"] = timestamp
        if by_preemption:
            self.doc.setdefault("status", {})["conditions"] = [{
                "type": "DisruptionTarget", "status": "True",
                "reason": "PreemptionByScheduler"}]
        return self

    def nominated(self, node: str) -> PodBuilder:
        self.doc.setdefault("status", {})["nominatedNodeName"] = node
        return self

    def resource_version(self, rv: str) -> PodBuilder:
        self.doc["metadata"]["resourceVersion"] = rv
        return self

    def copy(self) -> PodBuilder:
        other = PodBuilder.__new__(PodBuilder)
        other.doc = copy.deepcopy(self.doc)
        return other

    def build(self) -> core_pb2.Pod:
        return codec.from_dict(core_pb2.Pod, self.doc)


class NodeBuilder:
    def __init__(self, name: str):
        self.doc: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-node-{name}",
                         "labels": {HOSTNAME: name}},
            "spec": {},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        }

    def allocatable(self, **resources: str) -> NodeBuilder:
        self.doc["status"]["allocatable"].update(
            {k.replace("_", "-"): v for k, v in resources.items()})
        return self

    def extended(self, name: str, amount: str) -> NodeBuilder:
        self.doc["status"]["allocatable"][name] = amount
        return self

    def labels(self, **labels: str) -> NodeBuilder:
        self.doc["metadata"]["labels"].update(labels)
        return self

    def label(self, key: str, value: str) -> NodeBuilder:
        self.doc["metadata"]["labels"][key] = value
        return self

    def zone(self, zone: str) -> NodeBuilder:
        return self.label(ZONE, zone)

    def without_label(self, key: str) -> NodeBuilder:
        self.doc["metadata"]["labels"].pop(key, None)
        return self

    def taint(self, key: str, value: str = "", effect: str = "NoSchedule") -> NodeBuilder:
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        self.doc["spec"].setdefault("taints", []).append(taint)
        return self

    def unschedulable(self, value: bool = True) -> NodeBuilder:
        self.doc["spec"]["unschedulable"] = value
        return self

    def copy(self) -> NodeBuilder:
        other = NodeBuilder.__new__(NodeBuilder)
        other.doc = copy.deepcopy(self.doc)
        return other

    def build(self) -> core_pb2.Node:
        return codec.from_dict(core_pb2.Node, self.doc)


def make_pod(name: str, namespace: str = "default") -> PodBuilder:
    return PodBuilder(name, namespace)


def make_node(name: str) -> NodeBuilder:
    return NodeBuilder(name)


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
