"""scheduling.k8s.io/v1 validation: PriorityClasses (Kubernetes'
pkg/apis/scheduling/validation). That only one class may be the global
default is the Priority admission plug-in's rule, checked by the apiserver
against the other classes, not here."""
from __future__ import annotations

from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.validation.meta import IMMUTABLE, Problems, _opt

# scheduling.HighestUserDefinablePriority and the built-in classes
# (SystemPriorityClasses): name -> value; neither is the global default.
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CLUSTER_CRITICAL = "system-cluster-critical"
SYSTEM_NODE_CRITICAL = "system-node-critical"
SYSTEM_PRIORITY_CLASSES: dict[str, int] = {
    SYSTEM_CLUSTER_CRITICAL: 2 * HIGHEST_USER_DEFINABLE_PRIORITY,
    SYSTEM_NODE_CRITICAL: 2 * HIGHEST_USER_DEFINABLE_PRIORITY + 1000,
}
SYSTEM_PREFIX = "system-"
PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")


def _known_system_class_error(name: str, value: int, global_default: bool) -> str:
    """IsKnownSystemPriorityClass's error, "" for a built-in class as it is defined."""
    wanted = SYSTEM_PRIORITY_CLASSES.get(name)
    if wanted is None:
        return f"{name} is not a known system priority class"
    if value != wanted:
        return f"value of {name} PriorityClass must be {wanted}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return ""


def validate_preemption_policy(policy: str, path: str) -> Problems:
    """ValidatePreemptionPolicy, shared with pods."""
    if policy in PREEMPTION_POLICIES:
        return []
    if not policy:
        return [errors.required(path)]
    return [errors.unsupported(path, policy, PREEMPTION_POLICIES)]


def validate_priority_class(obj: Message, old: Message | None) -> Problems:
    problems: Problems = []
    name = obj.metadata.name
    if name.startswith(SYSTEM_PREFIX):
        why = _known_system_class_error(name, obj.value, obj.global_default)
        if why:
            problems.append(errors.forbidden(
                "metadata.name", f"priority class names with '{SYSTEM_PREFIX}' prefix are "
                f"reserved for system use only. error: {why}"))
    elif obj.value > HIGHEST_USER_DEFINABLE_PRIORITY:
        problems.append(errors.forbidden(
            "value", "maximum allowed value of a user defined priority is "
            f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
    policy = _opt(obj, "preemption_policy")
    if policy is not None:
        problems.extend(validate_preemption_policy(policy, "preemptionPolicy"))
    if old is not None:
        if obj.value != old.value:
            problems.append(errors.forbidden("value", "may not be changed in an update."))
        old_policy = _opt(old, "preemption_policy")
        if policy != old_policy:
            problems.append(errors.invalid("preemptionPolicy", policy, IMMUTABLE))
    return problems
