"""The LimitRanger admission plug-in (Kubernetes'
plugin/pkg/admission/limitranger), on create of pods and claims.

For each LimitRange of the object's namespace, in name order: a pod's
containers get the range's Container defaults for the limits and requests
they do not state (noted in the `kubernetes.io/limit-ranger` annotation),
then the pod is checked against the Container and Pod items' min, max and
maxLimitRequestRatio; a claim's storage request against the
PersistentVolumeClaim item's min and max. A violation is errors.Forbidden
with Kubernetes' message. Runs before quota admission, so quota counts the
defaulted requests. Pure functions over messages.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Mapping, Sequence

from google.protobuf.message import Message

from kubemu.api import errors, quantity

LIMIT_RANGES = "limitranges"
ANNOTATION = "kubernetes.io/limit-ranger"


def ranges_of(namespace: str, ranges: Sequence[Message]) -> list[Message]:
    found = [r for r in ranges if r.metadata.namespace == namespace]
    return sorted(found, key=lambda r: r.metadata.name)


def _q(text: str) -> quantity.Quantity | None:
    try:
        return quantity.parse(text)
    except ValueError:
        return None


# ---------------------------------------------------------------- defaults

def _container_defaults(limit_range: Message) -> tuple[dict[str, str], dict[str, str]]:
    """defaultContainerResourceRequirements: (requests, limits)."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for item in limit_range.spec.limits:
        if item.type == "Container":
            requests.update(item.default_request)
            limits.update(item.default)
    return requests, limits


def _merge_container(ctr: Message, requests: Mapping[str, str], limits: Mapping[str, str],
                     prefix: str, notes: list[str]) -> None:
    """mergeContainerResources: fill what the container does not state."""
    set_limits = sorted(n for n in limits if n not in ctr.resources.limits)
    set_requests = sorted(n for n in requests if n not in ctr.resources.requests)
    for name in set_limits:
        ctr.resources.limits[name] = limits[name]
    for name in set_requests:
        ctr.resources.requests[name] = requests[name]
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {prefix} {ctr.name}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {prefix} {ctr.name}")


def default_pod(pod: Message, limit_range: Message) -> None:
    """mergePodResourceRequirements (in place)."""
    requests, limits = _container_defaults(limit_range)
    notes: list[str] = []
    for ctr in pod.spec.containers:
        _merge_container(ctr, requests, limits, "container", notes)
    for ctr in pod.spec.init_containers:
        _merge_container(ctr, requests, limits, "init container", notes)
    if notes:
        pod.metadata.annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


# ---------------------------------------------------------------- checks

def _min(kind: str, name: str, enforced: quantity.Quantity,
         requests: Mapping[str, str], limits: Mapping[str, str]) -> str:
    req, lim = _q(requests[name]) if name in requests else None, \
        _q(limits[name]) if name in limits else None
    if req is None:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if req < enforced:
        return f"minimum {name} usage per {kind} is {enforced}, but request is {req}"
    if lim is not None and lim < enforced:
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {lim}"
    return ""


def _max(kind: str, name: str, enforced: quantity.Quantity,
         requests: Mapping[str, str], limits: Mapping[str, str]) -> str:
    req, lim = _q(requests[name]) if name in requests else None, \
        _q(limits[name]) if name in limits else None
    if lim is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if lim > enforced:
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {lim}"
    if req is not None and req > enforced:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return ""


def _max_request(kind: str, name: str, enforced: quantity.Quantity,
                 requests: Mapping[str, str]) -> str:
    """maxRequestConstraint: for claims, whose limits are not user input."""
    req = _q(requests[name]) if name in requests else None
    if req is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if req > enforced:
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return ""


def _ratio(kind: str, name: str, enforced: quantity.Quantity,
           requests: Mapping[str, str], limits: Mapping[str, str]) -> str:
    req, lim = _q(requests[name]) if name in requests else None, \
        _q(limits[name]) if name in limits else None
    if req is None or req.value == 0:
        return (f"{name} max limit to request ratio per {kind} is {enforced}, but no request "
                "is specified or request is 0")
    if lim is None or lim.value == 0:
        return (f"{name} max limit to request ratio per {kind} is {enforced}, but no limit "
                "is specified or limit is 0")
    observed = lim.value / req.value
    if observed > enforced.value:
        return (f"{name} max limit to request ratio per {kind} is {enforced}, but provided "
                f"ratio is {float(observed):f}")
    return ""


def _check(kind: str, item: Message, requests: Mapping[str, str],
           limits: Mapping[str, str], out: list[str]) -> None:
    for field, check in (("min", _min), ("max", _max), ("max_limit_request_ratio", _ratio)):
        entries = getattr(item, field)
        for name in sorted(entries):
            enforced = _q(entries[name])
            if enforced is not None:
                out.append(check(kind, name, enforced, requests, limits))


def _pod_totals(pod: Message, field: str) -> dict[str, str]:
    """A pod's requests or limits: containers summed, at least any init container's."""
    total: dict[str, Fraction] = {}
    formats: dict[str, str] = {}
    for ctr in pod.spec.containers:
        for name, text in getattr(ctr.resources, field).items():
            value = _q(text)
            if value is not None:
                total[name] = total.get(name, Fraction(0)) + value.value
                formats.setdefault(name, value.format)
    for ctr in pod.spec.init_containers:
        for name, text in getattr(ctr.resources, field).items():
            value = _q(text)
            if value is not None and value.value > total.get(name, Fraction(0)):
                total[name] = value.value
                formats.setdefault(name, value.format)
    return {name: quantity.canonical(v, formats[name]) for name, v in total.items()}


def pod_violations(pod: Message, limit_range: Message) -> list[str]:
    """PodValidateLimitFunc: every violation, in the range's item order."""
    out: list[str] = []
    for item in limit_range.spec.limits:
        if item.type == "Container":
            for ctr in list(pod.spec.containers) + list(pod.spec.init_containers):
                _check("Container", item, ctr.resources.requests, ctr.resources.limits, out)
        elif item.type == "Pod":
            _check("Pod", item, _pod_totals(pod, "requests"), _pod_totals(pod, "limits"), out)
    return [v for v in out if v]


def claim_violations(claim: Message, limit_range: Message) -> list[str]:
    """PersistentVolumeClaimValidateLimitFunc."""
    out: list[str] = []
    requests = claim.spec.resources.requests
    for item in limit_range.spec.limits:
        if item.type != "PersistentVolumeClaim":
            continue
        for name in sorted(item.min):
            enforced = _q(item.min[name])
            if enforced is not None:
                out.append(_min("PersistentVolumeClaim", name, enforced, requests, {}))
        for name in sorted(item.max):
            enforced = _q(item.max[name])
            if enforced is not None:
                out.append(_max_request("PersistentVolumeClaim", name, enforced, requests))
    return [v for v in out if v]


def _forbidden(resource: str, name: str, violations: list[str]) -> errors.Forbidden:
    """admission.NewForbidden over an aggregate: one message, or "[a, b]"."""
    unique = list(dict.fromkeys(violations))
    detail = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
    return errors.Forbidden(f'{resource} "{name}" is forbidden: {detail}')


def admit_pod(pod: Message, ranges: Sequence[Message]) -> None:
    """Default, then check, `pod` (in place) against its namespace's ranges."""
    for limit_range in ranges_of(pod.metadata.namespace, ranges):
        default_pod(pod, limit_range)
        violations = pod_violations(pod, limit_range)
        if violations:
            raise _forbidden("pods", pod.metadata.name, violations)


def admit_claim(claim: Message, ranges: Sequence[Message]) -> None:
    for limit_range in ranges_of(claim.metadata.namespace, ranges):
        violations = claim_violations(claim, limit_range)
        if violations:
            raise _forbidden("persistentvolumeclaims", claim.metadata.name, violations)
