"""The Deployment controller's rollout arithmetic (kubernetes/pkg/controller/deployment/util).

Pure functions over Deployment and ReplicaSet messages, no I/O, the clock
passed in (`now`, unix seconds):

- fenceposts: `resolve_fenceposts(max_surge, max_unavailable, desired)` turns
  the IntOrString limits into counts (surge rounds up, unavailable rounds
  down, both 0 -> unavailable 1); `max_surge(d)`, `max_unavailable(d)`.
- which ReplicaSet is new: `compute_hash` (ComputeHash: FNV-1a of the pod
  template and the collision count, rendered with SafeEncodeString, over
  kubemu's canonical JSON of the template instead of Go's spew dump, so names
  look like Kubernetes' without being byte-equal to them), `equal_ignore_hash`,
  `find_new_replica_set`, `find_old_replica_sets`, revisions and the
  annotations copied to the new ReplicaSet.
- how many replicas each ReplicaSet gets: `new_rs_new_replicas` (the rolling
  scale-up), `old_rs_scale_downs` (the rolling scale-down: unhealthy replicas
  first, then oldest ReplicaSets first while availability allows),
  `proportional_sizes` (a scaling event in the middle of a rollout).
- status: `calculate_status` (counts and the Available condition),
  `rollout_conditions` (Progressing: complete, progressing, timed out),
  `progress_check_after_s` (when to look again for a timeout).

One departure, on purpose: the rolling scale-up counts each ReplicaSet as
max(spec.replicas, status.replicas), not spec.replicas alone. An old
ReplicaSet just scaled down still has its pods until the ReplicaSet
controller marks them terminating (and then lowers status.replicas); counting
them keeps the non-terminating pods within replicas + maxSurge at every
moment, the way Kubernetes' podReplacementPolicy TerminationStarted counts.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Iterable, Sequence

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import codec
from kubemu.api.v1 import apps_pb2

from controller_manager.controllerutil import created_s, get_condition, remove_condition, time_s
from controller_manager.history import fnv1a_32, safe_encode

# ---------------------------------------------------------------- names

UNIQUE_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
# Annotations of the Deployment never copied to its ReplicaSets.
ANNOTATIONS_TO_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                 MAX_REPLICAS, DEPRECATED_ROLLBACK_TO})
# The revision-history annotation's bound (--deployment-controller max length).
REVISION_HISTORY_MAX_CHARS = 2000

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
# Condition reasons.
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_REPLICA_SET = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"

INT32_MAX = 2**31 - 1


# ---------------------------------------------------------------- fenceposts

def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: an IntOrString (message, int or str) as a
    count of `total`; a percentage rounds up or down. Unset is 0."""
    if isinstance(value, Message):
        value = codec.int_or_string(value)
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                         f"percentage: {text!r}")
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: {text!r}") from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """(surge, unavailable) for `desired` replicas; both resolving to 0 gives
    unavailable 1 (surge might be refused by a quota)."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def replicas(obj: Message) -> int:
    return obj.spec.replicas


def is_rolling_update(d: Message) -> bool:
    return d.spec.strategy.type == ROLLING_UPDATE


def _rolling(d: Message) -> tuple[Any, Any]:
    ru = d.spec.strategy.rolling_update
    surge = ru.max_surge if ru.HasField("max_surge") else None
    unavailable = ru.max_unavailable if ru.HasField("max_unavailable") else None
    return surge, unavailable


def max_surge(d: Message) -> int:
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(*_rolling(d), replicas(d))[0]


def max_unavailable(d: Message) -> int:
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    unavailable = resolve_fenceposts(*_rolling(d), replicas(d))[1]
    return min(unavailable, replicas(d))


def min_available(d: Message) -> int:
    if not is_rolling_update(d):
        return 0
    return replicas(d) - max_unavailable(d)


# ---------------------------------------------------------------- the hash

def canonical_template(template: Message) -> bytes:
    return json.dumps(codec.to_dict(template), sort_keys=True,
                      separators=(",", ":")).encode()


def compute_hash(template: Message, collision_count: int | None) -> str:
    """ComputeHash: fnv32a over the template (and the collision count as 8
    little-endian bytes when there is one), its decimal text safe-encoded."""
    h = fnv1a_32(canonical_template(template))
    if collision_count is not None:
        h = fnv1a_32((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4), h)
    return safe_encode(str(h))


def _without_hash(template: Message) -> Message:
    out = type(template)()
    out.CopyFrom(template)
    if UNIQUE_LABEL in out.metadata.labels:
        del out.metadata.labels[UNIQUE_LABEL]
    return out


def equal_ignore_hash(a: Message, b: Message) -> bool:
    """EqualIgnoreHash: the templates are equal once the pod-template-hash label is dropped."""
    return canonical_template(_without_hash(a)) == canonical_template(_without_hash(b))


# ---------------------------------------------------------------- ordering

def by_creation(rss: Iterable[Message]) -> list[Message]:
    """ReplicaSetsByCreationTimestamp: oldest first, then by name."""
    return sorted(rss, key=lambda rs: (created_s(rs), rs.metadata.name))


def by_size_newer(rss: Iterable[Message]) -> list[Message]:
    """ReplicaSetsBySizeNewer: largest first; of equal size, newer first, and
    of equal creation time the later name first (ByCreationTimestamp reversed)."""
    return sorted(rss, key=lambda rs: (replicas(rs), created_s(rs), rs.metadata.name),
                  reverse=True)


def by_size_older(rss: Iterable[Message]) -> list[Message]:
    """ReplicaSetsBySizeOlder: largest first; of equal size, older first."""
    return sorted(rss, key=lambda rs: (-replicas(rs), created_s(rs), rs.metadata.name))


def by_revision(rss: Iterable[Message]) -> list[Message]:
    """ReplicaSetsByRevision: lowest revision first, then oldest."""
    return sorted(rss, key=lambda rs: (revision(rs), created_s(rs), rs.metadata.name))


def filter_active(rss: Iterable[Message | None]) -> list[Message]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


# ---------------------------------------------------------------- new and old

def find_new_replica_set(d: Message, rss: Sequence[Message]) -> Message | None:
    """The oldest ReplicaSet whose template is the Deployment's."""
    for rs in by_creation(rss):
        if equal_ignore_hash(rs.spec.template, d.spec.template):
            return rs
    return None


def find_old_replica_sets(d: Message, rss: Sequence[Message]) -> tuple[list[Message], list[Message]]:
    """(old ReplicaSets with replicas, all old ReplicaSets)."""
    new = find_new_replica_set(d, rss)
    all_old = [rs for rs in rss if new is None or rs.metadata.uid != new.metadata.uid]
    return [rs for rs in all_old if replicas(rs) != 0], all_old


def revision(obj: Message) -> int:
    """The revision annotation (0 when absent or not a number)."""
    try:
        return int(obj.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: Iterable[Message]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def _int_annotation(rs: Message, key: str) -> int | None:
    try:
        return int(rs.metadata.annotations[key])
    except (KeyError, ValueError):
        return None


def desired_replicas_annotation(rs: Message) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS)


def set_replicas_annotations(rs: Message, desired: int, max_replicas: int) -> bool:
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if rs.metadata.annotations.get(key) != value:
            rs.metadata.annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Message, desired: int, max_replicas: int) -> bool:
    annotations = rs.metadata.annotations
    return (annotations.get(DESIRED_REPLICAS) != str(desired)
            or annotations.get(MAX_REPLICAS) != str(max_replicas))


def copy_deployment_annotations(d: Message, rs: Message) -> bool:
    changed = False
    for key, value in d.metadata.annotations.items():
        if key in ANNOTATIONS_TO_SKIP or rs.metadata.annotations.get(key) == value:
            continue
        rs.metadata.annotations[key] = value
        changed = True
    return changed


def set_new_rs_annotations(d: Message, rs: Message, new_revision: int, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations (in place): the Deployment's annotations,
    the revision (raised to `new_revision`, the old one kept in
    revision-history: a rollback), and for a ReplicaSet about to be created
    the desired and max replicas. Returns whether anything changed."""
    changed = copy_deployment_annotations(d, rs)
    annotations = rs.metadata.annotations
    had = REVISION in annotations
    old_text = annotations.get(REVISION, "")
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return False
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if had:
            history = annotations.get(REVISION_HISTORY, "")
            revisions = history.split(",") if history else []
            revisions.append(old_text)
            while len(",".join(revisions)) > REVISION_HISTORY_MAX_CHARS and len(revisions) > 1:
                revisions.pop(0)
            annotations[REVISION_HISTORY] = ",".join(revisions)
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


# ---------------------------------------------------------------- sizes

def _pods_counted(rs: Message) -> int:
    # See the module docstring: pods not yet terminating still count.
    return max(replicas(rs), rs.status.replicas)


def new_rs_new_replicas(d: Message, all_rss: Sequence[Message | None], new_rs: Message) -> int:
    """NewRSNewReplicas: the new ReplicaSet's next size."""
    strategy = d.spec.strategy.type
    if strategy == ROLLING_UPDATE:
        surge = scaled_value(_rolling(d)[0], replicas(d), True)
        current = sum(_pods_counted(rs) for rs in all_rss if rs is not None)
        max_total = replicas(d) + surge
        if current >= max_total:
            return replicas(new_rs)
        scale_up = min(max_total - current, replicas(d) - replicas(new_rs))
        return replicas(new_rs) + max(0, scale_up)
    if strategy == RECREATE:
        return replicas(d)
    raise ValueError(f"deployment type {strategy} isn't supported")


def is_saturated(d: Message, rs: Message | None) -> bool:
    if rs is None:
        return False
    desired = desired_replicas_annotation(rs)
    return (desired is not None and replicas(rs) == replicas(d) and desired == replicas(d)
            and rs.status.available_replicas == replicas(d))


def find_active_or_latest(new_rs: Message | None, old_rss: Sequence[Message]) -> Message | None:
    """The one active ReplicaSet, or the newest when none is active; None when
    several are active (they scale proportionally)."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=lambda rs: (created_s(rs), rs.metadata.name), reverse=True)
    active = filter_active([*newest_first, new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def _fraction(rs: Message, d: Message) -> int:
    """getReplicaSetFraction: how many replicas `rs` gains (or loses) in a scaling event."""
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_replicas = replicas(d) + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None or annotated == 0:
        annotated = d.status.replicas
    if annotated == 0:
        return 0
    size = replicas(rs) * deployment_replicas / annotated
    # integer.RoundToInt32: half away from zero.
    rounded = int(math.floor(size + 0.5)) if size >= 0 else -int(math.floor(-size + 0.5))
    return rounded - replicas(rs)


def proportion(rs: Message, d: Message, to_add: int, added: int) -> int:
    """GetReplicaSetProportion."""
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


@dataclasses.dataclass
class Scaling:
    """The sizes of a proportional scale: name -> new size, in update order."""
    sizes: list[tuple[Message, int]]
    operation: str


def proportional_sizes(d: Message, active: Sequence[Message]) -> Scaling:
    """The scale step of `sync` when several ReplicaSets are active: spread
    the difference between replicas + maxSurge and the current total over
    them by their share of max-replicas; leftovers go to the largest."""
    total = sum(replicas(rs) for rs in active)
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - total
    if to_add > 0:
        ordered, operation = by_size_newer(active), "up"
    elif to_add < 0:
        ordered, operation = by_size_older(active), "down"
    else:
        ordered, operation = list(active), ""
    sizes: list[list[Any]] = []
    added = 0
    for rs in ordered:
        if to_add != 0:
            share = proportion(rs, d, to_add, added)
            sizes.append([rs, replicas(rs) + share])
            added += share
        else:
            sizes.append([rs, replicas(rs)])
    if sizes and to_add != 0:
        sizes[0][1] = max(0, sizes[0][1] + to_add - added)
    return Scaling([(rs, size) for rs, size in sizes], operation)


def cleanup_unhealthy(old_rss: Sequence[Message],
                      max_cleanup: int) -> list[tuple[Message, int]] | None:
    """cleanupUnhealthyReplicas: old ReplicaSets (oldest first) lose their
    unavailable replicas, at most `max_cleanup` in all. (rs, new size) pairs,
    or None when a ReplicaSet reports more available replicas than it wants
    (it was just scaled down and its status lags): Kubernetes refuses that
    step as an invalid scale-down and scales nothing down in that sync."""
    out = []
    total = 0
    for rs in by_creation(old_rss):
        if total >= max_cleanup:
            break
        if replicas(rs) == 0 or replicas(rs) == rs.status.available_replicas:
            continue
        count = min(max_cleanup - total, replicas(rs) - rs.status.available_replicas)
        if count < 0:
            return None
        out.append((rs, replicas(rs) - count))
        total += count
    return out


def scale_down_old_for_rolling(d: Message, all_rss: Sequence[Message],
                               old_rss: Sequence[Message]) -> list[tuple[Message, int]]:
    """scaleDownOldReplicaSetsForRollingUpdate: while more than minAvailable
    pods are available, old ReplicaSets (oldest first) shrink. (rs, new size) pairs."""
    minimum = replicas(d) - max_unavailable(d)
    available = sum(rs.status.available_replicas for rs in all_rss if rs is not None)
    if available <= minimum:
        return []
    out = []
    total, budget = 0, available - minimum
    for rs in by_creation(old_rss):
        if total >= budget:
            break
        if replicas(rs) == 0:
            continue
        count = min(replicas(rs), budget - total)
        out.append((rs, replicas(rs) - count))
        total += count
    return out


def old_rs_scale_downs(d: Message, old_rss: Sequence[Message],
                       new_rs: Message) -> list[tuple[Message, int]]:
    """reconcileOldReplicaSets' arithmetic: the (rs, new size) steps of one
    rolling scale-down, unhealthy replicas first. `old_rss` are the active
    old ReplicaSets."""
    if sum(replicas(rs) for rs in old_rss) == 0:
        return []
    all_pods = sum(replicas(rs) for rs in old_rss) + replicas(new_rs)
    minimum = replicas(d) - max_unavailable(d)
    new_unavailable = replicas(new_rs) - new_rs.status.available_replicas
    max_scaled_down = all_pods - minimum - new_unavailable
    if max_scaled_down <= 0:
        return []
    steps = cleanup_unhealthy(old_rss, max_scaled_down)
    if steps is None:
        return []  # reconcileOldReplicaSets: the clean-up failed, nothing scaled down
    sized = {rs.metadata.uid: size for rs, size in steps}
    after_cleanup = []
    for rs in old_rss:
        if rs.metadata.uid in sized:
            shrunk = type(rs)()
            shrunk.CopyFrom(rs)
            shrunk.spec.replicas = sized[rs.metadata.uid]
            after_cleanup.append(shrunk)
        else:
            after_cleanup.append(rs)
    more = scale_down_old_for_rolling(d, [*after_cleanup, new_rs], after_cleanup)
    for rs, size in more:
        sized[rs.metadata.uid] = size
    by_uid = {rs.metadata.uid: rs for rs in old_rss}
    return [(by_uid[uid], size) for uid, size in sized.items()]


# ---------------------------------------------------------------- status

def new_condition(type_: str, status: str, reason: str, message: str,
                  now: float) -> apps_pb2.DeploymentCondition:
    stamp = timefmt.rfc3339(now)
    return apps_pb2.DeploymentCondition(type=type_, status=status, reason=reason,
                                        message=message, last_update_time=stamp,
                                        last_transition_time=stamp)


def set_condition(status: Message, cond: Message) -> None:
    """SetDeploymentCondition: nothing when status and reason are unchanged;
    lastTransitionTime kept when only the reason changes; the condition
    goes to the end of the list."""
    current = get_condition(status, cond.type)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    new = type(cond)()
    new.CopyFrom(cond)
    if current is not None and current.status == cond.status:
        new.last_transition_time = current.last_transition_time
    remove_condition(status, cond.type)
    status.conditions.append(new)


def has_progress_deadline(d: Message) -> bool:
    return (d.spec.HasField("progress_deadline_seconds")
            and d.spec.progress_deadline_seconds != INT32_MAX)


def has_revision_history_limit(d: Message) -> bool:
    return (d.spec.HasField("revision_history_limit")
            and d.spec.revision_history_limit != INT32_MAX)


def calculate_status(all_rss: Sequence[Message | None], new_rs: Message | None, d: Message,
                     now: float) -> apps_pb2.DeploymentStatus:
    """calculateStatus: the counts from the ReplicaSets, the conditions kept,
    Available set from availability."""
    rss = [rs for rs in all_rss if rs is not None]
    available = sum(rs.status.available_replicas for rs in rss)
    total = sum(replicas(rs) for rs in rss)
    status = apps_pb2.DeploymentStatus(
        observed_generation=d.metadata.generation,
        replicas=sum(rs.status.replicas for rs in rss),
        updated_replicas=new_rs.status.replicas if new_rs is not None else 0,
        ready_replicas=sum(rs.status.ready_replicas for rs in rss),
        available_replicas=available,
        unavailable_replicas=max(0, total - available))
    if d.status.HasField("collision_count"):
        status.collision_count = d.status.collision_count
    status.conditions.extend(d.status.conditions)
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    return status


def deployment_complete(d: Message, status: Message) -> bool:
    want = replicas(d)
    return (status.updated_replicas == want and status.replicas == want
            and status.available_replicas == want
            and status.observed_generation >= d.metadata.generation)


def deployment_progressing(d: Message, new: Message) -> bool:
    old = d.status
    return (new.updated_replicas > old.updated_replicas
            or new.replicas - new.updated_replicas < old.replicas - old.updated_replicas
            or new.ready_replicas > old.ready_replicas
            or new.available_replicas > old.available_replicas)


def deployment_timed_out(d: Message, status: Message, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    return (time_s(cond.last_update_time) or 0.0) + d.spec.progress_deadline_seconds < now


def rollout_status(all_rss: Sequence[Message | None], new_rs: Message | None, d: Message,
                   now: float) -> apps_pb2.DeploymentStatus:
    """syncRolloutStatus's new status: calculate_status plus the Progressing
    condition (complete, progressing or timed out) and ReplicaFailure."""
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.status, PROGRESSING)
    complete_before = (status.replicas == status.updated_replicas and current is not None
                       and current.reason == NEW_RS_AVAILABLE)
    if has_progress_deadline(d) and not complete_before:
        if deployment_complete(d, status):
            msg = (f'ReplicaSet "{new_rs.metadata.name}" has successfully progressed.'
                   if new_rs is not None
                   else f'Deployment "{d.metadata.name}" has successfully progressed.')
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
        elif deployment_progressing(d, status):
            msg = (f'ReplicaSet "{new_rs.metadata.name}" is progressing.' if new_rs is not None
                   else f'Deployment "{d.metadata.name}" is progressing.')
            cond = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, msg, now)
            if current is not None:
                if current.status == "True":
                    cond.last_transition_time = current.last_transition_time
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            msg = (f'ReplicaSet "{new_rs.metadata.name}" has timed out progressing.'
                   if new_rs is not None
                   else f'Deployment "{d.metadata.name}" has timed out progressing.')
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))
    failure = replica_failure(all_rss, new_rs)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def replica_failure(all_rss: Sequence[Message | None],
                    new_rs: Message | None) -> apps_pb2.DeploymentCondition | None:
    """getReplicaFailures: the new ReplicaSet's ReplicaFailure first, else an old one's."""
    ordered = ([new_rs] if new_rs is not None else []) + [
        rs for rs in all_rss if rs is not None and rs is not new_rs]
    for rs in ordered:
        for cond in rs.status.conditions:
            if cond.type == REPLICA_FAILURE:
                return apps_pb2.DeploymentCondition(
                    type=cond.type, status=cond.status, reason=cond.reason,
                    message=cond.message, last_update_time=cond.last_transition_time,
                    last_transition_time=cond.last_transition_time)
    return None


def progress_check_after_s(d: Message, new_status: Message, now: float) -> float | None:
    """requeueStuckDeployment: seconds until a stuck rollout should be looked
    at again for its deadline (0: now, rate-limited), or None."""
    current = get_condition(d.status, PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, new_status) or current.reason == TIMED_OUT:
        return None
    after = (time_s(current.last_update_time) or 0.0) + d.spec.progress_deadline_seconds - now
    if after < 1.0:
        return 0.0
    # A second more: the deadline is compared in whole seconds.
    return after + 1.0


def old_pods_running(new_rs: Message | None, old_rss: Sequence[Message],
                     pods_by_rs: dict[str, list[Message]]) -> bool:
    """oldPodsRunning: whether any pod of an old ReplicaSet may still run
    (terminating ones included; Succeeded and Failed ones not)."""
    if sum(rs.status.replicas for rs in old_rss) > 0:
        return True
    for uid, pods in pods_by_rs.items():
        if new_rs is not None and uid == new_rs.metadata.uid:
            continue
        for pod in pods:
            if pod.status.phase not in ("Failed", "Succeeded"):
                return True
    return False


def cleanup_candidates(d: Message, old_rss: Sequence[Message]) -> list[Message]:
    """cleanupDeployment: the old ReplicaSets beyond revisionHistoryLimit to
    delete, lowest revision first; only fully scaled-down ones go."""
    if not has_revision_history_limit(d):
        return []
    alive = [rs for rs in old_rss if not rs.metadata.deletion_timestamp]
    diff = len(alive) - d.spec.revision_history_limit
    if diff <= 0:
        return []
    out = []
    for rs in by_revision(alive)[:diff]:
        if (rs.status.replicas != 0 or replicas(rs) != 0
                or rs.metadata.generation > rs.status.observed_generation):
            continue
        out.append(rs)
    return out
