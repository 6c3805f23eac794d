"""ResourceQuota evaluation, shared by the apiserver's admission and the
resource quota controller (Kubernetes' pkg/quota/v1 and its evaluators in
pkg/quota/v1/evaluator/core, and the checks of
plugin/pkg/admission/resourcequota).

Model: a usage is a ResourceList, here `dict[str, Fraction]` keyed by
resource name. An evaluator says which quota resources it knows
(`matching_resources`), what one object uses (`usage`), whether an object
is within a quota's scopes (`matches_scopes`), and which resources an object
must state (`constraints`, the pods' "must specify"). `check` is the
admission decision: given the quotas of a namespace and the object's usage
(minus the old object's on an update), either the quotas' new `used`, or
errors.Forbidden with Kubernetes' message. Pure functions over protobuf
messages; no I/O, no clock.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Callable, Iterable, Mapping, Sequence

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import defaults, quantity
from kubemu.api.kinds import Kind

Usage = dict[str, Fraction]

PODS = "pods"
CPU, MEMORY, EPHEMERAL = "cpu", "memory", "ephemeral-storage"
REQUESTS_CPU, REQUESTS_MEMORY = "requests.cpu", "requests.memory"
LIMITS_CPU, LIMITS_MEMORY = "limits.cpu", "limits.memory"
REQUESTS_STORAGE = "requests.storage"
PVCS = "persistentvolumeclaims"
SERVICES = "services"
SERVICES_NODEPORTS = "services.nodeports"
SERVICES_LOADBALANCERS = "services.loadbalancers"
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
COUNT_PREFIX = "count/"
_BYTES_RESOURCES = ("memory", "storage")
_KI = 1024

# Kubernetes' standardQuotaResources (IsStandardQuotaResourceName).
STANDARD_QUOTA_RESOURCES = (
    CPU, MEMORY, EPHEMERAL, REQUESTS_CPU, REQUESTS_MEMORY, REQUESTS_STORAGE,
    "requests.ephemeral-storage", LIMITS_CPU, LIMITS_MEMORY, "limits.ephemeral-storage",
    PODS, SERVICES, "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    PVCS, SERVICES_NODEPORTS, SERVICES_LOADBALANCERS)
# Resources counted in whole objects (IsIntegerResourceName).
INTEGER_RESOURCES = (PODS, SERVICES, "replicationcontrollers", "resourcequotas", "secrets",
                     "configmaps", PVCS, SERVICES_NODEPORTS, SERVICES_LOADBALANCERS)
# Core resources whose object count has a legacy name besides count/<resource>.
LEGACY_COUNT_NAMES = {"configmaps": "configmaps", "secrets": "secrets",
                      "replicationcontrollers": "replicationcontrollers",
                      "resourcequotas": "resourcequotas"}

SCOPE_TERMINATING = "Terminating"
SCOPE_NOT_TERMINATING = "NotTerminating"
SCOPE_BEST_EFFORT = "BestEffort"
SCOPE_NOT_BEST_EFFORT = "NotBestEffort"
SCOPE_PRIORITY_CLASS = "PriorityClass"
SCOPE_CROSS_NAMESPACE_AFFINITY = "CrossNamespacePodAffinity"
STANDARD_SCOPES = (SCOPE_TERMINATING, SCOPE_NOT_TERMINATING, SCOPE_BEST_EFFORT,
                   SCOPE_NOT_BEST_EFFORT, SCOPE_PRIORITY_CLASS,
                   SCOPE_CROSS_NAMESPACE_AFFINITY)

# The pod resources a quota may limit (podResources) and those each
# container must then state (validationSet, a backward-compatibility rule).
POD_COMPUTE = (CPU, MEMORY, EPHEMERAL, REQUESTS_CPU, REQUESTS_MEMORY,
               "requests.ephemeral-storage", LIMITS_CPU, LIMITS_MEMORY,
               "limits.ephemeral-storage")
POD_RESOURCES = (PODS, COUNT_PREFIX + PODS, *POD_COMPUTE)
MUST_SPECIFY = (CPU, MEMORY, REQUESTS_CPU, REQUESTS_MEMORY, LIMITS_CPU, LIMITS_MEMORY)
TERMINAL_PHASES = ("Succeeded", "Failed")


def count_name(kind: Kind) -> str:
    """`count/<resource>[.<group>]`, the object count of a kind."""
    return COUNT_PREFIX + kind.qualified_resource


def parse_list(values: Mapping[str, str]) -> Usage:
    """A ResourceList of quantity strings as values; unparseable ones are skipped
    (validation refuses them before they get here)."""
    out: Usage = {}
    for name, text in values.items():
        try:
            out[name] = quantity.parse(text).value
        except ValueError:
            continue
    return out


def format_list(usage: Mapping[str, Fraction]) -> dict[str, str]:
    """Quantity strings. A resource.Quantity keeps the format it was written
    in; sums lose it here, so bytes that are whole KiB read as binary
    ("128Mi"), as people write them, and everything else as decimal."""
    out = {}
    for name, value in usage.items():
        fmt = quantity.DECIMAL_SI
        if name.endswith(_BYTES_RESOURCES) and value.denominator == 1 and value % _KI == 0:
            fmt = quantity.BINARY_SI
        out[name] = quantity.canonical(value, fmt)
    return out


def show(name: str, value: Fraction) -> str:
    return format_list({name: value})[name]


# ---------------------------------------------------------------- evaluators

def is_pod_resource(name: str) -> bool:
    return (name in POD_RESOURCES or name.startswith("hugepages-")
            or name.startswith("requests.hugepages-"))


def _sum_max(containers: Iterable[Message], init_containers: Iterable[Message],
             field: str) -> Usage:
    """A pod's requests or limits: the sum over containers, at least the
    largest single init container's (PodRequestsAndLimits)."""
    total: Usage = {}
    for ctr in containers:
        for name, value in parse_list(getattr(ctr.resources, field)).items():
            total[name] = total.get(name, Fraction(0)) + value
    for ctr in init_containers:
        for name, value in parse_list(getattr(ctr.resources, field)).items():
            if value > total.get(name, Fraction(0)):
                total[name] = value
    return total


def _compute_usage(requests: Mapping[str, Fraction], limits: Mapping[str, Fraction]) -> Usage:
    """podComputeUsageHelper: a pod's (or container's) compute in quota names."""
    out: Usage = {PODS: Fraction(1)}
    for name in (CPU, MEMORY, EPHEMERAL):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-"):
            out[name] = value
            out[f"requests.{name}"] = value
    return out


def pod_counts(pod: Message, now_s: float | None = None) -> bool:
    """QuotaV1Pod: a pod in a terminal phase no longer uses compute, nor one
    still being deleted past its grace period (at `now_s`; a lost node's pods
    must not keep their owners from scaling up elsewhere)."""
    if pod.status.phase in TERMINAL_PHASES:
        return False
    meta = pod.metadata
    if now_s is not None and meta.deletion_timestamp \
            and meta.HasField("deletion_grace_period_seconds"):
        try:
            deleted_s = timefmt.parse_rfc3339(meta.deletion_timestamp)
        except ValueError:
            return True
        return now_s <= deleted_s + meta.deletion_grace_period_seconds
    return True


def pod_usage(pod: Message, now_s: float | None = None) -> Usage:
    usage: Usage = {COUNT_PREFIX + PODS: Fraction(1)}
    if not pod_counts(pod, now_s):
        return usage
    spec = pod.spec
    requests = _sum_max(spec.containers, spec.init_containers, "requests")
    limits = _sum_max(spec.containers, spec.init_containers, "limits")
    for name, value in parse_list(spec.overhead).items() if _has(spec, "overhead") else ():
        if name in requests:
            requests[name] += value
        if name in limits:
            limits[name] += value
    usage.update(_compute_usage(requests, limits))
    return usage


def _has(msg: Message, name: str) -> bool:
    return name in msg.DESCRIPTOR.fields_by_name


def pod_constraints(required: Iterable[str], pod: Message) -> str:
    """The pods evaluator's Constraints: "" or "must specify limits.cpu for:
    c; ..." naming, per quota resource, the containers that do not state it."""
    wanted = set(required) & set(MUST_SPECIFY)
    if not wanted:
        return ""
    missing: dict[str, set[str]] = {}
    for ctr in list(pod.spec.containers) + list(pod.spec.init_containers):
        stated = set(_compute_usage(parse_list(ctr.resources.requests),
                                    parse_list(ctr.resources.limits)))
        for name in wanted - stated:
            missing.setdefault(name, set()).add(ctr.name)
    if not missing:
        return ""
    return "must specify " + "; ".join(
        f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing))


def service_usage(svc: Message) -> Usage:
    usage: Usage = {COUNT_PREFIX + SERVICES: Fraction(1), SERVICES: Fraction(1)}
    ports = Fraction(len(svc.spec.ports))
    if svc.spec.type == "NodePort":
        usage[SERVICES_NODEPORTS] = ports
    elif svc.spec.type == "LoadBalancer":
        usage[SERVICES_LOADBALANCERS] = Fraction(1)
        allocate = svc.spec.allocate_load_balancer_node_ports \
            if svc.spec.HasField("allocate_load_balancer_node_ports") else True
        if allocate:
            usage[SERVICES_NODEPORTS] = ports
    return usage


def pvc_usage(pvc: Message) -> Usage:
    usage: Usage = {COUNT_PREFIX + PVCS: Fraction(1), PVCS: Fraction(1)}
    cls = pvc.spec.storage_class_name if pvc.spec.HasField("storage_class_name") else ""
    if cls:
        usage[f"{cls}{STORAGE_CLASS_SUFFIX}{PVCS}"] = Fraction(1)
    requested = parse_list(pvc.spec.resources.requests).get("storage")
    # A claim being resized counts its larger size (the request or the capacity).
    capacity = parse_list(pvc.status.capacity).get("storage")
    if capacity is not None and (requested is None or capacity > requested):
        requested = capacity
    if requested is not None:
        usage[REQUESTS_STORAGE] = requested
        if cls:
            usage[f"{cls}{STORAGE_CLASS_SUFFIX}{REQUESTS_STORAGE}"] = requested
    return usage


def object_usage(kind: Kind, obj: Message, now_s: float | None = None) -> Usage:
    """What one object uses, in every quota name that may count it (`now_s`:
    for pods being deleted)."""
    if kind.group == "" and kind.kind == "Pod":
        return pod_usage(obj, now_s)
    if kind.group == "" and kind.kind == "Service":
        return service_usage(obj)
    if kind.group == "" and kind.kind == "PersistentVolumeClaim":
        return pvc_usage(obj)
    usage: Usage = {count_name(kind): Fraction(1)}
    legacy = LEGACY_COUNT_NAMES.get(kind.resource) if kind.group == "" else None
    if legacy:
        usage[legacy] = Fraction(1)
    return usage


def matching_resources(kind: Kind, names: Iterable[str]) -> list[str]:
    """The quota resources among `names` that objects of `kind` count toward."""
    names = list(names)
    if kind.group == "" and kind.kind == "Pod":
        return sorted(n for n in names if is_pod_resource(n))
    if kind.group == "" and kind.kind == "Service":
        known = (SERVICES, SERVICES_NODEPORTS, SERVICES_LOADBALANCERS, COUNT_PREFIX + SERVICES)
        return sorted(n for n in names if n in known)
    if kind.group == "" and kind.kind == "PersistentVolumeClaim":
        return sorted(n for n in names if n in (PVCS, REQUESTS_STORAGE, COUNT_PREFIX + PVCS)
                      or STORAGE_CLASS_SUFFIX in n)
    known_names = {count_name(kind)}
    if kind.group == "" and kind.resource in LEGACY_COUNT_NAMES:
        known_names.add(LEGACY_COUNT_NAMES[kind.resource])
    return sorted(n for n in names if n in known_names)


# ---------------------------------------------------------------- scopes

@dataclasses.dataclass(frozen=True)
class ScopeRequirement:
    scope: str
    operator: str = "Exists"
    values: tuple[str, ...] = ()


def scope_requirements(quota: Message) -> list[ScopeRequirement]:
    """GetScopeSelectorsFromQuota: spec.scopes as Exists, then scopeSelector."""
    out = [ScopeRequirement(s) for s in quota.spec.scopes]
    for expr in quota.spec.scope_selector.match_expressions:
        out.append(ScopeRequirement(expr.scope_name, expr.operator, tuple(expr.values)))
    return out


def pod_matches_scope(req: ScopeRequirement, pod: Message) -> bool:
    """podMatchesScopeFunc."""
    if req.scope == SCOPE_TERMINATING:
        return _terminating(pod)
    if req.scope == SCOPE_NOT_TERMINATING:
        return not _terminating(pod)
    if req.scope == SCOPE_BEST_EFFORT:
        return defaults.qos_class(pod) == "BestEffort"
    if req.scope == SCOPE_NOT_BEST_EFFORT:
        return defaults.qos_class(pod) != "BestEffort"
    if req.scope == SCOPE_PRIORITY_CLASS:
        # podMatchesSelector over {"PriorityClass": name}, the key set only
        # when the pod names a class: DoesNotExist is "names none", and In
        # never matches a pod without one.
        name = pod.spec.priority_class_name
        if req.operator == "Exists":
            return bool(name)
        if req.operator == "DoesNotExist":
            return not name
        if req.operator == "In":
            return bool(name) and name in req.values
        if req.operator == "NotIn":
            return name not in req.values
        return False
    if req.scope == SCOPE_CROSS_NAMESPACE_AFFINITY:
        return False  # namespaceSelector/namespaces on affinity terms: not modelled
    return False


def _terminating(pod: Message) -> bool:
    spec = pod.spec
    return spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds >= 0


def matches(kind: Kind, quota: Message, obj: Message, hard: Iterable[str]) -> bool:
    """Whether `quota` (with these hard resources) governs `obj` (generic.Matches):
    it limits something `obj` counts toward, and `obj` is within every scope;
    only pods have scopes, so a scoped quota matches nothing else."""
    if not matching_resources(kind, hard):
        return False
    requirements = scope_requirements(quota)
    if not requirements:
        return True
    if not (kind.group == "" and kind.kind == "Pod"):
        return False
    return all(pod_matches_scope(r, obj) for r in requirements)


# ---------------------------------------------------------------- admission

class Refused(Exception):
    """A quota refuses the object; the message is Kubernetes' (the caller
    wraps it as `<resource> "<name>" is forbidden: <message>`)."""


def _pretty(usage: Mapping[str, Fraction | str]) -> str:
    """prettyPrint: name=value, sorted by name; strings are printed as parsed."""
    def text(name: str, value: Fraction | str) -> str:
        return str(quantity.parse(value)) if isinstance(value, str) else show(name, value)
    return ",".join(f"{name}={text(name, usage[name])}" for name in sorted(usage))


def delta_usage(kind: Kind, obj: Message, old: Message | None) -> Usage:
    """What writing `obj` (over `old`) adds: zeros dropped, never negative."""
    usage = object_usage(kind, obj)
    if old is not None and old.metadata.resource_version:
        before = object_usage(kind, old)
        usage = {n: max(v - before.get(n, Fraction(0)), Fraction(0)) for n, v in usage.items()}
    return {n: v for n, v in usage.items() if v != 0}


def check(kind: Kind, obj: Message, old: Message | None,
          quotas: Sequence[Message]) -> dict[str, Usage]:
    """ResourceQuota admission for `obj`: the new status.used of each quota
    it charges (by quota name), or Refused. Reads status.hard and status.used
    (a quota the controller has not yet filled in limits nothing)."""
    interesting: list[Message] = []
    pod = kind.group == "" and kind.kind == "Pod"
    for quota in quotas:
        hard = dict(quota.status.hard)
        if not matches(kind, quota, obj, hard):
            continue
        restricted = matching_resources(kind, hard)
        if pod:
            missing = pod_constraints(restricted, obj)
            if missing:
                raise Refused(f"failed quota: {quota.metadata.name}: {missing}")
        unknown = [name for name in restricted if name not in quota.status.used]
        if unknown:
            raise Refused(f"status unknown for quota: {quota.metadata.name}, resources: "
                          + ",".join(sorted(unknown)))
        interesting.append(quota)
    if not interesting:
        return {}
    delta = delta_usage(kind, obj, old)
    if not delta:
        return {}
    charged: dict[str, Usage] = {}
    for quota in interesting:
        hard_text = dict(quota.status.hard)
        hard = parse_list(hard_text)
        used_text = dict(quota.status.used)
        used = parse_list(used_text)
        requested = {n: v for n, v in delta.items() if n in hard}
        new_used = dict(used)
        for name, value in requested.items():
            new_used[name] = new_used.get(name, Fraction(0)) + value
        exceeded = sorted(n for n in requested if new_used[n] > hard[n])
        if exceeded:
            raise Refused(
                f"exceeded quota: {quota.metadata.name}, "
                f"requested: {_pretty({n: requested[n] for n in exceeded})}, "
                f"used: {_pretty({n: used_text.get(n, '0') for n in exceeded})}, "
                f"limited: {_pretty({n: hard_text[n] for n in exceeded})}")
        if requested:
            charged[quota.metadata.name] = new_used
    return charged


# ---------------------------------------------------------------- the controller

def compute_used(quota: Message, objects: Callable[[Kind], Sequence[Message]],
                 kinds: Iterable[Kind], now_s: float | None = None) -> Usage:
    """A quota's status.used from what exists (CalculateUsage): for each kind
    whose objects count toward a hard resource, the sum over its objects in
    the namespace that the quota's scopes select; every hard resource gets a
    value (0 when nothing counts)."""
    hard = list(quota.spec.hard)
    used: Usage = {name: Fraction(0) for name in hard}
    for kind in kinds:
        names = matching_resources(kind, hard)
        if not names:
            continue
        for obj in objects(kind):
            if not matches(kind, quota, obj, hard):
                continue
            usage = object_usage(kind, obj, now_s)
            for name in names:
                if name in usage:
                    used[name] += usage[name]
    return used


def kind_for_count(name: str, kinds: Iterable[Kind]) -> Kind | None:
    """The kind a `count/<resource>[.<group>]` name counts, if served."""
    for kind in kinds:
        if name == count_name(kind):
            return kind
    return None
