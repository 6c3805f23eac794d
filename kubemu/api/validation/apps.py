"""apps/v1 validation: deployments, replica sets, stateful sets, daemon sets,
controller revisions (Kubernetes' pkg/apis/apps/validation)."""
from __future__ import annotations

import re
from typing import Any

from google.protobuf.message import Message

from kubemu.api import codec, errors, labels
from kubemu.api.validation.meta import (
    IMMUTABLE,
    Problems,
    _copy,
    _dns_subdomain,
    _int,
    _int_or_string,
    _items,
    _json_text,
    _opt,
    _selector_immutable,
    _str,
    _sub,
    label_selector_text,
    nonnegative,
)
from kubemu.api.validation.core import _pvc_spec, _selector_matches_template, validate_pod_template


_PERCENT_FMT = "[0-9]+%"


_PERCENT_RE = re.compile(_PERCENT_FMT)


def _show_ios(value: int | str | None) -> Any:
    return 0 if value is None else value


def _workload_selector(spec: Message, what: str, path: str = "spec") -> Problems:
    selector = _sub(spec, "selector")
    if selector is None:
        return [errors.required(f"{path}.selector")]
    problems = labels.validate_label_selector(selector, f"{path}.selector")
    if not selector.match_labels and not selector.match_expressions:
        problems.append(errors.invalid(f"{path}.selector", label_selector_text(selector),
                                       f"empty selector is invalid for {what}"))
    try:
        labels.from_label_selector(selector)
    except errors.BadRequest:
        problems.append(errors.invalid(f"{path}.selector", label_selector_text(selector),
                                       "invalid label selector"))
    return problems


def _always_restart(template: Message | None, path: str, what: str) -> Problems:
    spec = _sub(template, "spec")
    problems: Problems = []
    policy = _str(spec, "restart_policy") or "Always"
    if policy != "Always":
        problems.append(errors.unsupported(f"{path}.spec.restartPolicy", policy, ("Always",)))
    deadline = _opt(spec, "active_deadline_seconds")
    if deadline is not None:
        if what == "DaemonSet":
            problems.append(errors.invalid(f"{path}.spec.activeDeadlineSeconds", deadline,
                                           "activeDeadlineSeconds must be nil for daemonsets"))
        else:
            problems.append(errors.forbidden(f"{path}.spec.activeDeadlineSeconds",
                                             f"activeDeadlineSeconds in {what} is not Supported"))
    return problems


def _replicas(spec: Message, path: str = "spec") -> Problems:
    problems = nonnegative(_opt(spec, "replicas"), f"{path}.replicas")
    problems.extend(nonnegative(_opt(spec, "min_ready_seconds"), f"{path}.minReadySeconds"))
    return problems


def _int_or_percent(value: int | str | None, path: str) -> Problems:
    if isinstance(value, str):
        if not _PERCENT_RE.fullmatch(value):
            return [errors.invalid(path, value, labels.regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'",
                _PERCENT_FMT, "1%", "93%"))]
        return []
    return nonnegative(value, path)


def _int_or_percent_value(value: int | str | None) -> int:
    if isinstance(value, str):
        return int(value[:-1]) if _PERCENT_RE.fullmatch(value) else 0
    return value or 0


def _not_more_than_100_percent(value: int | str | None, path: str) -> Problems:
    if isinstance(value, str) and _PERCENT_RE.fullmatch(value) and int(value[:-1]) > 100:
        return [errors.invalid(path, value, "must not be greater than 100%")]
    return []


def validate_deployment(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems = _replicas(spec)
    problems.extend(_workload_selector(spec, "deployment"))
    template = _sub(spec, "template")
    problems.extend(_selector_matches_template(_sub(spec, "selector"), template,
                                               "spec.template"))
    problems.extend(validate_pod_template(template, "spec.template"))
    problems.extend(_always_restart(template, "spec.template", "ReplicaSet"))
    strategy = _sub(spec, "strategy")
    strategy_type = _str(strategy, "type") or "RollingUpdate"
    rolling = _sub(strategy, "rolling_update")
    if strategy_type == "Recreate":
        if rolling is not None:
            problems.append(errors.forbidden("spec.strategy.rollingUpdate",
                                             "may not be specified when strategy `type` is "
                                             "'Recreate'"))
    elif strategy_type == "RollingUpdate":
        if rolling is not None:
            problems.extend(_rolling_update_deployment(rolling, "spec.strategy.rollingUpdate"))
    else:
        problems.append(errors.unsupported("spec.strategy.type", strategy_type,
                                           ("Recreate", "RollingUpdate")))
    problems.extend(nonnegative(_opt(spec, "revision_history_limit"),
                                "spec.revisionHistoryLimit"))
    deadline = _opt(spec, "progress_deadline_seconds")
    if deadline is not None:
        problems.extend(nonnegative(deadline, "spec.progressDeadlineSeconds"))
        if deadline <= _int(spec, "min_ready_seconds"):
            problems.append(errors.invalid("spec.progressDeadlineSeconds", deadline,
                                           "must be greater than minReadySeconds"))
    if old is not None:
        problems.extend(_selector_immutable(spec, old.spec))
    return problems


def _rolling_update_deployment(rolling: Message, path: str) -> Problems:
    max_unavailable = _int_or_string(rolling, "max_unavailable")
    max_surge = _int_or_string(rolling, "max_surge")
    problems = _int_or_percent(max_unavailable, f"{path}.maxUnavailable")
    problems.extend(_int_or_percent(max_surge, f"{path}.maxSurge"))
    if _int_or_percent_value(max_unavailable) == 0 and _int_or_percent_value(max_surge) == 0:
        problems.append(errors.invalid(f"{path}.maxUnavailable", _show_ios(max_unavailable),
                                       "may not be 0 when `maxSurge` is 0"))
    problems.extend(_not_more_than_100_percent(max_unavailable, f"{path}.maxUnavailable"))
    return problems


def validate_replica_set(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems = _replicas(spec)
    problems.extend(_workload_selector(spec, "deployment"))  # sic: Kubernetes' wording
    template = _sub(spec, "template")
    problems.extend(_selector_matches_template(_sub(spec, "selector"), template,
                                               "spec.template"))
    problems.extend(validate_pod_template(template, "spec.template"))
    problems.extend(_always_restart(template, "spec.template", "ReplicaSet"))
    if old is not None:
        problems.extend(_selector_immutable(spec, old.spec))
    return problems


def validate_stateful_set(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems: Problems = []
    policy = _str(spec, "pod_management_policy") or "OrderedReady"
    if policy not in ("OrderedReady", "Parallel"):
        problems.append(errors.invalid("spec.podManagementPolicy", policy,
                                       "must be 'OrderedReady' or 'Parallel'"))
    strategy = _sub(spec, "update_strategy")
    strategy_type = _str(strategy, "type") or "RollingUpdate"
    rolling = _sub(strategy, "rolling_update")
    if strategy_type == "OnDelete":
        if rolling is not None:
            problems.append(errors.invalid("spec.updateStrategy.rollingUpdate",
                                           _json_text(rolling),
                                           "only allowed for updateStrategy 'RollingUpdate'"))
    elif strategy_type == "RollingUpdate":
        if rolling is not None:
            path = "spec.updateStrategy.rollingUpdate"
            problems.extend(nonnegative(_opt(rolling, "partition"), f"{path}.partition"))
            max_unavailable = _int_or_string(rolling, "max_unavailable")
            if max_unavailable is not None:
                problems.extend(_int_or_percent(max_unavailable, f"{path}.maxUnavailable"))
                if _int_or_percent_value(max_unavailable) == 0:
                    problems.append(errors.invalid(f"{path}.maxUnavailable", max_unavailable,
                                                   "cannot be 0"))
                problems.extend(_not_more_than_100_percent(max_unavailable,
                                                           f"{path}.maxUnavailable"))
    else:
        problems.append(errors.unsupported("spec.updateStrategy.type", strategy_type,
                                           ("OnDelete", "RollingUpdate")))
    problems.extend(_replicas(spec))
    problems.extend(_workload_selector(spec, "statefulset"))
    template = _sub(spec, "template")
    problems.extend(_selector_matches_template(_sub(spec, "selector"), template,
                                               "spec.template"))
    # Each pod gets a volume per claim template, so mounts may name them.
    claims = [c.metadata.name for c in _items(spec, "volume_claim_templates")]
    problems.extend(validate_pod_template(template, "spec.template", claims))
    problems.extend(_always_restart(template, "spec.template", "StatefulSet"))
    problems.extend(nonnegative(_opt(spec, "revision_history_limit"),
                                "spec.revisionHistoryLimit"))
    service_name = _str(spec, "service_name")
    if service_name:
        problems.extend(errors.invalid("spec.serviceName", service_name, m)
                        for m in labels.is_dns1123_label(service_name))
    for i, claim in enumerate(_items(spec, "volume_claim_templates")):
        claim_path = f"spec.volumeClaimTemplates[{i}]"
        meta = _sub(claim, "metadata")
        if meta is None or not meta.name:
            problems.append(errors.required(f"{claim_path}.metadata.name"))
        else:
            problems.extend(_dns_subdomain(meta.name, f"{claim_path}.metadata.name"))
        problems.extend(_pvc_spec(_sub(claim, "spec"), f"{claim_path}.spec"))
    if old is not None:
        problems.extend(_stateful_set_update(spec, old.spec))
    return problems


_STS_MUTABLE = ("replicas", "ordinals", "template", "update_strategy",
                "persistent_volume_claim_retention_policy", "min_ready_seconds")


def _stateful_set_update(new: Message, old: Message) -> Problems:
    a, b = _copy(new), _copy(old)
    for msg in (a, b):
        for field in _STS_MUTABLE:
            if field in msg.DESCRIPTOR.fields_by_name:
                msg.ClearField(field)
    if a.SerializeToString(deterministic=True) != b.SerializeToString(deterministic=True):
        # Kubernetes' words exactly: unlike a PVC's, this message has no diff.
        return [errors.forbidden(
            "spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
            "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
            "'minReadySeconds' are forbidden")]
    return []


def validate_daemon_set(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    selector = _sub(spec, "selector")
    problems: Problems = []
    if selector is None:
        problems.append(errors.required("spec.selector"))
    else:
        problems.extend(labels.validate_label_selector(selector, "spec.selector"))
    template = _sub(spec, "template")
    problems.extend(_selector_matches_template(selector, template, "spec.template"))
    if selector is not None and not selector.match_labels and not selector.match_expressions:
        problems.append(errors.invalid("spec.selector", label_selector_text(selector),
                                       "empty selector is invalid for daemonset"))
    problems.extend(validate_pod_template(template, "spec.template"))
    problems.extend(_always_restart(template, "spec.template", "DaemonSet"))
    problems.extend(nonnegative(_opt(spec, "min_ready_seconds"), "spec.minReadySeconds"))
    strategy = _sub(spec, "update_strategy")
    strategy_type = _str(strategy, "type") or "RollingUpdate"
    rolling = _sub(strategy, "rolling_update")
    if strategy_type == "RollingUpdate":
        if rolling is not None:
            problems.extend(_rolling_update_daemon_set(rolling,
                                                       "spec.updateStrategy.rollingUpdate"))
    elif strategy_type != "OnDelete":
        problems.append(errors.unsupported("spec.updateStrategy.type", strategy_type,
                                           ("RollingUpdate", "OnDelete")))
    problems.extend(nonnegative(_opt(spec, "revision_history_limit"),
                                "spec.revisionHistoryLimit"))
    if old is not None:
        problems.extend(_selector_immutable(spec, old.spec))
    return problems


def _rolling_update_daemon_set(rolling: Message, path: str) -> Problems:
    max_unavailable = _int_or_string(rolling, "max_unavailable")
    max_surge = _int_or_string(rolling, "max_surge")
    problems = _int_or_percent(max_unavailable, f"{path}.maxUnavailable")
    problems.extend(_int_or_percent(max_surge, f"{path}.maxSurge"))
    problems.extend(_not_more_than_100_percent(max_unavailable, f"{path}.maxUnavailable"))
    problems.extend(_not_more_than_100_percent(max_surge, f"{path}.maxSurge"))
    has_unavailable = _int_or_percent_value(max_unavailable) != 0
    has_surge = _int_or_percent_value(max_surge) != 0
    if has_unavailable and has_surge:
        problems.append(errors.invalid(f"{path}.maxSurge", _show_ios(max_surge),
                                       "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        problems.append(errors.required(f"{path}.maxUnavailable",
                                        "cannot be 0 when maxSurge is 0"))
    return problems


def validate_controller_revision(obj: Message, old: Message | None) -> Problems:
    """ValidateControllerRevision(Update): data is required and, once written,
    immutable; the revision number may change (a rollback re-numbers it)."""
    problems: Problems = []
    if not obj.HasField("data"):
        problems.append(errors.required("data", "data is mandatory"))
    problems.extend(nonnegative(_opt(obj, "revision"), "revision"))
    if old is not None and obj.data != old.data:
        problems.append(errors.invalid("data", _json_text(obj.data), IMMUTABLE))
    return problems


# ------------------------------------------------------------------ status

GREATER_THAN_REPLICAS = "cannot be greater than status.replicas"


def _counters(status: Message, names: tuple[str, ...]) -> dict[str, int]:
    """The status counters by JSON name (unset = 0, as Go's ints)."""
    printed = codec.to_dict(status)
    return {name: int(printed.get(name, 0)) for name in names}


def _nonnegative_counters(counts: dict[str, int]) -> Problems:
    problems: Problems = []
    for name, value in counts.items():
        problems.extend(nonnegative(value, f"status.{name}"))
    return problems


def _not_above(counts: dict[str, int], names: tuple[str, ...], limit: str,
               detail: str) -> Problems:
    return [errors.invalid(f"status.{name}", counts[name], detail)
            for name in names if counts[name] > counts[limit]]


def _collision_count(status: Message, old_status: Message | None) -> Problems:
    """IsDecremented: a collision count may only grow."""
    new = _opt(status, "collision_count")
    old = _opt(old_status, "collision_count")
    if old is not None and (new is None or new < old):
        return [errors.invalid("status.collisionCount", new or 0, "cannot be decremented")]
    return []


def validate_replica_set_status(obj: Message, old: Message | None) -> Problems:
    counts = _counters(obj.status, ("replicas", "fullyLabeledReplicas", "readyReplicas",
                                    "availableReplicas", "observedGeneration"))
    problems = _nonnegative_counters(counts)
    problems.extend(_not_above(counts, ("fullyLabeledReplicas", "readyReplicas",
                                        "availableReplicas"), "replicas",
                               GREATER_THAN_REPLICAS))
    problems.extend(_not_above(counts, ("availableReplicas",), "readyReplicas",
                               "cannot be greater than readyReplicas"))
    return problems


def validate_deployment_status(obj: Message, old: Message | None) -> Problems:
    counts = _counters(obj.status, ("observedGeneration", "replicas", "updatedReplicas",
                                    "readyReplicas", "availableReplicas",
                                    "unavailableReplicas", "collisionCount"))
    problems = _nonnegative_counters(counts)
    problems.extend(_not_above(counts, ("updatedReplicas", "readyReplicas",
                                        "availableReplicas"), "replicas",
                               GREATER_THAN_REPLICAS))
    problems.extend(_not_above(counts, ("availableReplicas",), "readyReplicas",
                               "cannot be greater than readyReplicas"))
    problems.extend(_collision_count(obj.status, old.status if old is not None else None))
    return problems


def validate_stateful_set_status(obj: Message, old: Message | None) -> Problems:
    counts = _counters(obj.status, ("replicas", "readyReplicas", "currentReplicas",
                                    "updatedReplicas", "availableReplicas",
                                    "observedGeneration", "collisionCount"))
    problems = _nonnegative_counters(counts)
    problems.extend(_not_above(counts, ("readyReplicas", "currentReplicas", "updatedReplicas",
                                        "availableReplicas"), "replicas",
                               GREATER_THAN_REPLICAS))
    problems.extend(_not_above(counts, ("availableReplicas",), "readyReplicas",
                               "cannot be greater than status.readyReplicas"))
    problems.extend(_collision_count(obj.status, old.status if old is not None else None))
    return problems


def validate_daemon_set_status(obj: Message, old: Message | None) -> Problems:
    counts = _counters(obj.status, (
        "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
        "numberReady", "observedGeneration", "updatedNumberScheduled", "numberAvailable",
        "numberUnavailable", "collisionCount"))
    problems = _nonnegative_counters(counts)
    problems.extend(_collision_count(obj.status, old.status if old is not None else None))
    return problems
