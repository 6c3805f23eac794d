"""What the workload controllers share (kubernetes/pkg/controller/controller_utils.go).

- Owner references: `controller_ref(owner)` (controller and blockOwnerDeletion
  true), `controller_of(obj)`.
- `claim(...)`: ClaimObjects of the ControllerRefManager. Of the objects in the
  owner's namespace: those it controls and that match its selector are kept;
  those it controls that no longer match are released (its reference
  removed) unless the owner is being deleted; orphans that match are adopted
  (a controller reference added), but only while the owner is not being
  deleted and, re-read from the API, still has the uid we know and no
  deletionTimestamp (a recreated owner never adopts its predecessor's pods);
  when that re-read fails the whole claim fails (a Conflict: retry), never a
  part of it. Adoption and release are updates conditioned on the
  cached object's resourceVersion: a stale cache is a Conflict and a retry.
- Pods: `pod_from_template(template, owner)` (GetPodFromTemplate: labels,
  annotations, finalizers and spec of the template, generateName
  "<owner>-", the controller reference), readiness and availability
  (`is_pod_ready`, `is_pod_available(pod, min_ready_s, now)`), `is_pod_active`,
  and `rank_for_deletion` (ActivePodsWithRanks: which pods go first).
- `slow_start_batch(count, initial, fn)`: calls in batches of 1, 2, 4, ...
  that stop at the first batch with a failure, so a quota or an invalid
  template costs one call, not hundreds.
- `set_condition` / `get_condition` on any status.conditions list.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Awaitable, Callable, Sequence

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import errors, labels
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2, meta_pb2
from kubemu.client.clientset import Client

from controller_manager.base import copy

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# ---------------------------------------------------------------- owner references

def controller_ref(owner: Message) -> meta_pb2.OwnerReference:
    kind = REGISTRY.by_message(owner)
    return meta_pb2.OwnerReference(api_version=kind.api_version, kind=kind.kind,
                                   name=owner.metadata.name, uid=owner.metadata.uid,
                                   controller=True, block_owner_deletion=True)


def controller_of(obj: Message) -> meta_pb2.OwnerReference | None:
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref
    return None


def is_controlled_by(obj: Message, owner: Message) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.uid == owner.metadata.uid


def _is_terminating(obj: Message) -> bool:
    return bool(obj.metadata.deletion_timestamp)


@dataclasses.dataclass
class Claimed:
    objects: list[Message]
    adopted: int = 0
    released: int = 0


async def claim(client: Client, owner: Message, selector: labels.Selector,
                candidates: Sequence[Message], *, resource: str = "pods",
                get_owner: Callable[[], Awaitable[Message]] | None = None) -> Claimed:
    """Adopt and release as ClaimObjects does; returns the objects owner now controls."""
    out = Claimed([])
    owner_uid = owner.metadata.uid
    fresh_checked = False
    for obj in candidates:
        ref = controller_of(obj)
        if ref is not None:
            if ref.uid != owner_uid:
                continue  # someone else's
            if selector.matches(obj.metadata.labels):
                out.objects.append(obj)
                continue
            if _is_terminating(owner) or _is_terminating(obj):
                # An owner being deleted leaves its dependents to the garbage
                # collector; a dependent going anyway is not worth racing.
                continue
            if await _release(client, obj, owner_uid, resource):
                out.released += 1
            continue
        # An orphan.
        if _is_terminating(owner) or _is_terminating(obj) or not selector.matches(
                obj.metadata.labels):
            continue
        if not fresh_checked:
            # RecheckDeletionTimestamp: adopt only for the owner that really exists now.
            fresh = await get_owner() if get_owner is not None else await client.get(
                REGISTRY.by_message(owner).resource, owner.metadata.name,
                owner.metadata.namespace)
            if fresh.metadata.uid != owner_uid:
                raise errors.Conflict(
                    f"original {owner.metadata.name} is gone: got uid {fresh.metadata.uid}, "
                    f"wanted {owner_uid}")
            if _is_terminating(fresh):
                # An error of the whole claim, as Kubernetes' CanAdopt: the
                # objects claimed so far are not all the owner has, and a sync
                # that counted them would create the rest again.
                raise errors.Conflict(
                    f"{owner.metadata.namespace}/{owner.metadata.name} has just been deleted "
                    f"at {fresh.metadata.deletion_timestamp}")
            fresh_checked = True
        adopted = await _adopt(client, obj, owner, resource)
        if adopted is not None:
            out.objects.append(adopted)
            out.adopted += 1
    return out


async def _adopt(client: Client, obj: Message, owner: Message, resource: str) -> Message | None:
    new = copy(obj)
    new.metadata.owner_references.append(controller_ref(owner))
    try:
        return await client.update(new)
    except errors.NotFound:
        return None


async def _release(client: Client, obj: Message, owner_uid: str, resource: str) -> bool:
    new = copy(obj)
    keep = [ref for ref in new.metadata.owner_references if ref.uid != owner_uid]
    del new.metadata.owner_references[:]
    new.metadata.owner_references.extend(keep)
    try:
        await client.update(new)
    except (errors.NotFound, errors.Invalid):
        return False  # gone, or no longer ours to change
    return True


# ---------------------------------------------------------------- pods

def pod_from_template(template: Message, owner: Message, *, generate_name: str = "",
                      name: str = "") -> core_pb2.Pod:
    """A Pod for `template` (a PodTemplateSpec) controlled by `owner`."""
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    meta = pod.metadata
    meta.namespace = owner.metadata.namespace
    if name:
        meta.name = name
    else:
        meta.generate_name = generate_name or f"{owner.metadata.name}-"
    meta.labels.update(template.metadata.labels)
    meta.annotations.update(template.metadata.annotations)
    meta.finalizers.extend(template.metadata.finalizers)
    meta.owner_references.append(controller_ref(owner))
    pod.spec.CopyFrom(template.spec)
    return pod


def get_condition(status: Any, type_: str) -> Any | None:
    for cond in status.conditions:
        if cond.type == type_:
            return cond
    return None


def is_pod_ready(pod: Message) -> bool:
    cond = get_condition(pod.status, "Ready")
    return cond is not None and cond.status == "True"


def ready_since(pod: Message) -> float | None:
    """When the pod last became Ready (unix seconds), or None when not Ready."""
    cond = get_condition(pod.status, "Ready")
    if cond is None or cond.status != "True":
        return None
    if not cond.last_transition_time:
        return 0.0
    try:
        return timefmt.parse_rfc3339(cond.last_transition_time)
    except ValueError:
        return 0.0


def is_pod_available(pod: Message, min_ready_s: int, now: float) -> bool:
    """Ready for at least min_ready_s (podutil.IsPodAvailable)."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_s <= 0 or since + min_ready_s <= now


def is_pod_active(pod: Message) -> bool:
    """Not terminal and not being deleted (controller.IsPodActive)."""
    return (pod.status.phase not in ("Succeeded", "Failed")
            and not pod.metadata.deletion_timestamp)


def _created(pod: Message) -> float:
    try:
        return timefmt.parse_rfc3339(pod.metadata.creation_timestamp)
    except ValueError:
        return 0.0


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_cost(pod: Message) -> int:
    try:
        return int(pod.metadata.annotations.get(POD_DELETION_COST, "0"))
    except ValueError:
        return 0


def _restarts(pod: Message) -> int:
    return max((cs.restart_count for cs in pod.status.container_statuses), default=0)


def rank_for_deletion(pods: Sequence[Message], related: Sequence[Message] = ()) -> list[Message]:
    """`pods` in the order a scale-down deletes them (ActivePodsWithRanks, Less):
    unassigned before assigned; Pending before Unknown before Running; not
    Ready before Ready; lower pod-deletion-cost first; more pods of the same
    owner on the node first (doubled-up); Ready for less time first; more
    restarts first; newer first."""
    per_node: dict[str, int] = {}
    for pod in related or pods:
        if pod.spec.node_name and is_pod_active(pod):
            per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1

    def key(pod: Message) -> tuple:
        ready = is_pod_ready(pod)
        since = ready_since(pod) or 0.0
        return (bool(pod.spec.node_name),
                _PHASE_RANK.get(pod.status.phase, 3),
                ready,
                _deletion_cost(pod),
                -per_node.get(pod.spec.node_name, 0) if pod.spec.node_name else 0,
                -since if ready else 0.0,
                -_restarts(pod),
                -_created(pod))
    return sorted(pods, key=key)


async def slow_start_batch(count: int, initial_batch_size: int,
                           fn: Callable[[], Awaitable[Any]]) -> tuple[int, BaseException | None]:
    """Call `fn` `count` times in batches 1, 2, 4, ... (from initial_batch_size),
    each batch concurrently; stop after the first batch with a failure.
    Returns (successes, the first error or None)."""
    remaining = count
    successes = 0
    batch = min(remaining, initial_batch_size)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(failures)
        for err in failures:
            if isinstance(err, asyncio.CancelledError):
                raise err
        if failures:
            return successes, failures[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


# ---------------------------------------------------------------- conditions

def set_condition(status: Any, type_: str, cond_status: str, reason: str, message: str,
                  now: float, *, probe_time: bool = False) -> bool:
    """Set a condition; lastTransitionTime moves only when the status changes.
    Returns whether anything changed."""
    stamp = timefmt.rfc3339(now)
    cond = get_condition(status, type_)
    if cond is None:
        cond = status.conditions.add()
        cond.type = type_
        cond.status = cond_status
        cond.reason = reason
        cond.message = message
        cond.last_transition_time = stamp
        if hasattr(cond, "last_update_time"):
            cond.last_update_time = stamp
        if probe_time and hasattr(cond, "last_probe_time"):
            cond.last_probe_time = stamp
        return True
    changed = (cond.status, cond.reason, cond.message) != (cond_status, reason, message)
    if cond.status != cond_status:
        cond.last_transition_time = stamp
    cond.status, cond.reason, cond.message = cond_status, reason, message
    if changed and hasattr(cond, "last_update_time"):
        cond.last_update_time = stamp
    return changed


def remove_condition(status: Any, type_: str) -> bool:
    keep = [c for c in status.conditions if c.type != type_]
    if len(keep) == len(status.conditions):
        return False
    kept = [copy(c) for c in keep]
    del status.conditions[:]
    status.conditions.extend(kept)
    return True
