"""Facts the scheduler reads off Pods and Nodes, computed the way Kubernetes does.

- `PodKey`: (namespace, name, uid). The uid tells a recreated pod from its
  predecessor of the same name; str() is "namespace/name".
- `pod_requests`: the effective request of a pod per resource (kube's
  resourcehelper.PodRequests): the sum over containers, raised to the largest
  init container (restartable "sidecar" init containers add up instead), plus
  pod overhead. cpu is in millicores, everything else in whole units (bytes).
- `non_zero_requests`: the same with 100m cpu / 200Mi memory assumed for a
  container that requests none (used for spreading scores only, never for fit).
- `node_allocatable`: a node's status.allocatable in the same units.
- `host_ports`: the (hostIP, protocol, hostPort) triples a pod's containers claim.
- priority, start time and MoreImportantPod ordering for queue and preemption.

Pure functions over protobuf messages; quantities go through kubemu.api.quantity.
"""
from __future__ import annotations

import datetime
import math
from typing import Any, Iterable, Mapping, NamedTuple

from kubemu.api import quantity
from kubemu.api.fields import field_value

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"
DEFAULT_MILLI_CPU_REQUEST = 100  # schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # schedutil.DefaultMemoryRequest
BIND_ALL_HOST_IP = "0.0.0.0"
DEFAULT_PROTOCOL = "TCP"

Resources = dict[str, int]


class PodKey(NamedTuple):
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_key(pod: Any) -> PodKey:
    meta = pod.metadata
    return PodKey(meta.namespace, meta.name, meta.uid)


# ---------------------------------------------------------------- resources

# Parsed quantities by (is cpu, text): a cluster uses few distinct strings, and
# parsing one (exact fractions) costs far more than a dict lookup. Bounded.
_PARSED: dict[tuple[bool, str], int] = {}
_PARSED_MAX = 4096


def _parse_quantity(is_cpu: bool, text: str) -> int:
    key = (is_cpu, text)
    value = _PARSED.get(key)
    if value is None:
        value = quantity.to_milli(text) if is_cpu else quantity.to_int(text)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = value
    return value


def parse_resource_list(resources: Mapping[str, str]) -> Resources:
    """A ResourceList as integers: cpu in millis, the rest rounded up to units."""
    return {name: _parse_quantity(name == CPU, text) for name, text in resources.items()}


def _add(into: Resources, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        into[name] = into.get(name, 0) + value


def _max(into: Resources, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > into.get(name, 0):
            into[name] = value


def _container_requests(ctr: Any, defaults: Mapping[str, int] | None) -> Resources:
    resources = field_value(ctr, "resources")
    requests = parse_resource_list(resources.requests) if resources is not None else {}
    if defaults:
        for name, value in defaults.items():
            requests.setdefault(name, value)  # missing, not zero: "0" stays 0
    return requests


def pod_requests(pod: Any, defaults: Mapping[str, int] | None = None) -> Resources:
    """The pod's effective request per resource (PodRequests).

    `defaults` fills resources a container does not request at all
    (NonMissingContainerRequests), applied per container before aggregating.
    """
    spec = pod.spec
    reqs: Resources = {}
    for ctr in spec.containers:
        _add(reqs, _container_requests(ctr, defaults))
    restartable: Resources = {}
    init_max: Resources = {}
    for ctr in field_value(spec, "init_containers", ()) or ():
        ctr_reqs = _container_requests(ctr, defaults)
        if field_value(ctr, "restart_policy", "") == "Always":
            # A sidecar keeps running next to the app containers: it adds up,
            # and every later init container runs alongside the sidecars so far.
            _add(reqs, ctr_reqs)
            _add(restartable, ctr_reqs)
            step = dict(restartable)
        else:
            step = dict(ctr_reqs)
            _add(step, restartable)
        _max(init_max, step)
    _max(reqs, init_max)
    overhead = field_value(spec, "overhead", None)
    if overhead:
        _add(reqs, parse_resource_list(overhead))
    return reqs


def non_zero_requests(pod: Any) -> tuple[int, int]:
    """(cpu millis, memory bytes) with kube's defaults for containers requesting none."""
    reqs = pod_requests(pod, {CPU: DEFAULT_MILLI_CPU_REQUEST, MEMORY: DEFAULT_MEMORY_REQUEST})
    return reqs.get(CPU, 0), reqs.get(MEMORY, 0)


def node_allocatable(node: Any) -> Resources:
    status = field_value(node, "status")
    if status is None:
        return {}
    return parse_resource_list(field_value(status, "allocatable", {}) or {})


def is_scalar_resource_name(name: str) -> bool:
    """Extended resources, hugepages and attachable volumes (schedutil.IsScalarResourceName)."""
    if name.startswith(("hugepages-", "attachable-volumes-")):
        return True
    # Extended (IsExtendedResourceName): domain-qualified, not a native
    # *kubernetes.io/ name, not a quota "requests." name.
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


# ---------------------------------------------------------------- ports

HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort)


def host_ports(pod: Any) -> tuple[HostPort, ...]:
    """The host ports a pod's containers claim, hostIP and protocol defaulted."""
    out: list[HostPort] = []
    for ctr in pod.spec.containers:
        for port in field_value(ctr, "ports", ()) or ():
            host_port = field_value(port, "host_port", 0) or 0
            if host_port <= 0:
                continue
            out.append((field_value(port, "host_ip", "") or BIND_ALL_HOST_IP,
                        field_value(port, "protocol", "") or DEFAULT_PROTOCOL, host_port))
    return tuple(out)


# ---------------------------------------------------------------- priority and time

def priority(pod: Any) -> int:
    """spec.priority; unset reads as 0, as corev1helpers.PodPriority."""
    return int(field_value(pod.spec, "priority", 0) or 0)


def parse_time_s(text: str) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when empty or unreadable."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def start_time_s(pod: Any) -> float:
    """status.startTime in epoch seconds; a pod not started yet counts as newest (+inf).

    Kubernetes uses "now" for such pods; +inf gives the same order without a clock.
    """
    status = field_value(pod, "status")
    value = parse_time_s(field_value(status, "start_time", "") or "") if status else None
    return math.inf if value is None else value


def importance_key(pod: Any) -> tuple[int, float]:
    """Sort key: ascending = more important first (MoreImportantPod): priority desc,
    then earlier start time."""
    return (-priority(pod), start_time_s(pod))


def is_terminating(pod: Any) -> bool:
    return bool(pod.metadata.deletion_timestamp)


def labels_of(obj: Any) -> Mapping[str, str]:
    return obj.metadata.labels


def tolerations(pod: Any) -> Iterable[Any]:
    return field_value(pod.spec, "tolerations", ()) or ()
