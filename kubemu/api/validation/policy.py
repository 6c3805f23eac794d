"""policy/v1 validation: PodDisruptionBudgets (Kubernetes' pkg/apis/policy/validation).

As there, the integer-or-percent rules are apps' (ValidatePositiveIntOrPercent,
IsNotMoreThan100Percent), so this module takes them from `apps`.
"""
from __future__ import annotations

from google.protobuf.message import Message

from kubemu.api import errors, labels
from kubemu.api.validation.apps import _int_or_percent, _not_more_than_100_percent
from kubemu.api.validation.meta import (
    Problems,
    _int_or_string,
    _opt,
    _Shown,
    _sub,
    nonnegative,
)

UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
STATUS_COUNTERS = (("disruptions_allowed", "disruptionsAllowed"),
                   ("current_healthy", "currentHealthy"),
                   ("desired_healthy", "desiredHealthy"),
                   ("expected_pods", "expectedPods"))


def _spec_text(min_available: int | str | None, max_unavailable: int | str | None) -> _Shown:
    """The spec as Go's %#v shows it, reduced to the two fields in question."""
    def show(value: int | str | None) -> str:
        if value is None:
            return "(*intstr.IntOrString)(nil)"
        if isinstance(value, str):
            return f'&intstr.IntOrString{{Type:1, IntVal:0, StrVal:"{value}"}}'
        return f'&intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'
    return _Shown(f"policy.PodDisruptionBudgetSpec{{MinAvailable:{show(min_available)}, "
                  f"MaxUnavailable:{show(max_unavailable)}}}")


def validate_pod_disruption_budget(obj: Message, old: Message | None) -> Problems:
    spec = _sub(obj, "spec")
    min_available = _int_or_string(spec, "min_available")
    max_unavailable = _int_or_string(spec, "max_unavailable")
    problems: Problems = []
    if min_available is not None and max_unavailable is not None:
        problems.append(errors.invalid("spec", _spec_text(min_available, max_unavailable),
                                       "minAvailable and maxUnavailable cannot be both set"))
    for value, path in ((min_available, "spec.minAvailable"),
                        (max_unavailable, "spec.maxUnavailable")):
        if value is not None:
            problems.extend(_int_or_percent(value, path))
            problems.extend(_not_more_than_100_percent(value, path))
    problems.extend(labels.validate_label_selector(_sub(spec, "selector"), "spec.selector"))
    policy = _opt(spec, "unhealthy_pod_eviction_policy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        problems.append(errors.unsupported("spec.unhealthyPodEvictionPolicy", policy,
                                           UNHEALTHY_POD_EVICTION_POLICIES))
    return problems


def validate_pod_disruption_budget_status(obj: Message, old: Message | None) -> Problems:
    """ValidatePodDisruptionBudgetStatusUpdate: the counters are never negative."""
    status = _sub(obj, "status")
    problems: Problems = []
    for field, json_name in STATUS_COUNTERS:
        problems.extend(nonnegative(getattr(status, field) if status is not None else 0,
                                    f"status.{json_name}"))
    return problems
