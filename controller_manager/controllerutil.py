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
  part of it. `also` adds ClaimPods' filters (a StatefulSet's members).
  Adoption and release are updates conditioned on the cached object's
  resourceVersion: a stale cache is a Conflict and a retry.
- Pods: `pod_from_template(template, owner)` (GetPodFromTemplate: labels,
  annotations, finalizers and spec of the template, generateName
  "<owner>-", the controller reference), readiness and availability
  (`is_pod_ready`, `is_pod_available(pod, min_ready_s, now)`), `is_pod_active`,
  `time_s` (an RFC 3339 time; None when unset or unreadable), `created_s`,
  and `rank_for_deletion(pods, related, now_s)`
  (ActivePodsWithRanks with LogarithmicScaleDown: which pods go first).
- `slow_start_batch(count, initial, fn)`: calls in batches of 1, 2, 4, ...
  that stop at the first batch with a failure, so a quota or an invalid
  template costs one call, not hundreds.
- `PodControl`: pod creates and deletes with Kubernetes' events on the
  owner, a failed deletion observed in its expectations; `write_status`:
  the status subresource written only when it changed.
- `set_condition` / `get_condition` / `remove_condition` on any
  status.conditions list.
- `DependentEvents`: the informer handlers of a controller for the objects
  it controls (addPod / updatePod / deletePod of the ReplicaSet,
  StatefulSet, DaemonSet and Job controllers, the ReplicaSet handlers of the
  Deployment one): they only enqueue owners and keep the owner's
  expectations, with hooks for the Job's tracking finalizer.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import re
from typing import Any, Awaitable, Callable, Sequence

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import errors, labels
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2, meta_pb2
from kubemu.client.clientset import Client
from kubemu.client.events import NORMAL, WARNING, EventRecorder
from kubemu.client.informer import DeletedFinalStateUnknown, Informer, meta_namespace_key, object_of

from controller_manager.base import BY_NAMESPACE, BY_SELECTOR, copy
from controller_manager.expectations import Expectations

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
                get_owner: Callable[[], Awaitable[Message]] | None = None,
                also: Callable[[Message], bool] | None = None) -> Claimed:
    """Adopt and release as ClaimObjects does; returns the objects owner now
    controls. An object matches when the selector does and, given, `also`
    (ClaimPods' filters: a StatefulSet's pods must be named as its members)."""
    out = Claimed([])
    owner_uid = owner.metadata.uid
    fresh_checked = False

    def matches(obj: Message) -> bool:
        return selector.matches(obj.metadata.labels) and (also is None or also(obj))

    for obj in candidates:
        ref = controller_of(obj)
        if ref is not None:
            if ref.uid != owner_uid:
                continue  # someone else's
            if matches(obj):
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
        if _is_terminating(owner) or _is_terminating(obj) or not matches(obj):
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


def is_pod_available(pod: Message, min_ready_s: int, now: float) -> bool:
    """Ready for more than min_ready_s (podutil.IsPodAvailable: the deadline
    strictly before now; a Ready condition without a transition time is
    never available once minReadySeconds is set)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_s <= 0:
        return True
    since = _ready_time_s(pod)
    return since is not None and since + min_ready_s < now


def is_pod_active(pod: Message) -> bool:
    """Not terminal and not being deleted (controller.IsPodActive)."""
    return (pod.status.phase not in ("Succeeded", "Failed")
            and not pod.metadata.deletion_timestamp)


def time_s(text: str) -> float | None:
    """An RFC 3339 time in unix seconds; None when unset or unreadable."""
    try:
        return timefmt.parse_rfc3339(text)
    except ValueError:
        return None


def created_s(obj: Message) -> float:
    """metadata.creationTimestamp in unix seconds (0 when unset or unreadable)."""
    return time_s(obj.metadata.creation_timestamp) or 0.0


# podPhaseToOrdinal; any other phase (none yet: just created) counts as Pending.
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_cost(pod: Message) -> int:
    """getDeletionCostFromPodAnnotations: an int32 without a plus sign or
    leading zeros, else 0."""
    text = pod.metadata.annotations.get(POD_DELETION_COST, "0")
    if not re.fullmatch(r"-?[1-9][0-9]*|0", text):
        return 0
    value = int(text)
    return value if -2**31 <= value < 2**31 else 0


def _restarts(pod: Message) -> int:
    return max((cs.restart_count for cs in pod.status.container_statuses), default=0)


def _log2_age(t_s: float, now_s: float) -> int:
    """logarithmicRankDiff's rank: log2 of the age in nanoseconds, truncated."""
    age_ns = (now_s - t_s) * 1e9
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _time_s(text: str) -> float | None:
    """An RFC 3339 time in unix seconds; None when unset (Go's zero time)."""
    return (time_s(text) or 0.0) if text else None


def _ready_time_s(pod: Message) -> float | None:
    cond = get_condition(pod.status, "Ready")
    return _time_s(cond.last_transition_time) if cond is not None else None


def _newer_first(t1_s: float | None, t2_s: float | None, uid1: str, uid2: str,
                 now_s: float | None) -> bool:
    """Less for two different times (None: unset) under LogarithmicScaleDown
    (GA): unset first; ages in different powers of two, the younger first; in
    the same one, by uid (so a scale-down does not always take the very
    newest). Without `now_s`, plainly the later first (afterOrZero)."""
    if t1_s is None or t2_s is None:
        return t1_s is None
    if now_s is None:
        return t1_s > t2_s
    diff = _log2_age(t1_s, now_s) - _log2_age(t2_s, now_s)
    return uid1 < uid2 if diff == 0 else diff < 0


def rank_for_deletion(pods: Sequence[Message], related: Sequence[Message] | None = None,
                      now_s: float | None = None) -> list[Message]:
    """`pods` in the order a scale-down deletes them (ActivePodsWithRanks.Less):
    unassigned before assigned; Pending before Unknown before Running; not
    Ready before Ready; lower pod-deletion-cost first; more active `related`
    pods on the same node first (doubled-up; Kubernetes' related pods are
    those of every ReplicaSet with the same controller, none for a
    ReplicaSet without one); Ready for less time first; more restarts first;
    newer first -- times compared by their power-of-two age at `now_s`, as
    LogarithmicScaleDown does. `related` None counts `pods` themselves; no
    `now_s` compares the times themselves (Kubernetes with a zero Now)."""
    per_node: dict[str, int] = {}
    for pod in pods if related is None else related:
        if is_pod_active(pod):
            per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1

    def less(a: Message, b: Message) -> bool:
        node_a, node_b = a.spec.node_name, b.spec.node_name
        if node_a != node_b and (not node_a or not node_b):
            return not node_a
        phase_a, phase_b = (_PHASE_RANK.get(p.status.phase, 0) for p in (a, b))
        if phase_a != phase_b:
            return phase_a < phase_b
        ready_a, ready_b = is_pod_ready(a), is_pod_ready(b)
        if ready_a != ready_b:
            return not ready_a
        cost_a, cost_b = _deletion_cost(a), _deletion_cost(b)
        if cost_a != cost_b:
            return cost_a < cost_b
        rank_a, rank_b = per_node.get(node_a, 0), per_node.get(node_b, 0)
        if rank_a != rank_b:
            return rank_a > rank_b
        if ready_a and ready_b:
            since_a, since_b = _ready_time_s(a), _ready_time_s(b)
            if since_a != since_b:
                return _newer_first(since_a, since_b, a.metadata.uid, b.metadata.uid, now_s)
        restarts_a, restarts_b = _restarts(a), _restarts(b)
        if restarts_a != restarts_b:
            return restarts_a > restarts_b
        created_a, created_b = (_time_s(a.metadata.creation_timestamp),
                                _time_s(b.metadata.creation_timestamp))
        if created_a != created_b:
            return _newer_first(created_a, created_b, a.metadata.uid, b.metadata.uid, now_s)
        return False

    def compare(a: Message, b: Message) -> int:
        return -1 if less(a, b) else 1 if less(b, a) else 0
    return sorted(pods, key=functools.cmp_to_key(compare))


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


class PodControl:
    """RealPodControl as the workload controllers use it: creates and deletes
    with Kubernetes' events on the owner (SuccessfulCreate "Created pod: x",
    FailedCreate "Error creating: ...", SuccessfulDelete "Deleted pod: x",
    FailedDelete "Error deleting: ..."). A deletion that does not happen (the
    pod already gone, or refused) is observed at once in the owner's
    expectations: no informer event will come for it."""

    def __init__(self, client: Client, recorder: EventRecorder, expectations: Expectations):
        self.client = client
        self.recorder = recorder
        self.expectations = expectations

    async def create(self, owner: Message, pod: Message) -> Message:
        try:
            created = await self.client.create(pod)
        except errors.ApiError as exc:
            if not errors.is_namespace_terminating(exc):  # RealPodControl records no event then
                self.recorder.record(owner, WARNING, "FailedCreate", f"Error creating: {exc}")
            raise
        self.recorder.record(owner, NORMAL, "SuccessfulCreate",
                             f"Created pod: {created.metadata.name}")
        return created

    async def delete(self, owner: Message, pod: Message, *,
                     grace_period_s: int | None = None) -> None:
        owner_key = meta_namespace_key(owner)
        try:
            await self.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                     uid=pod.metadata.uid, grace_period_s=grace_period_s)
        except errors.NotFound:
            self.expectations.deletion_observed(owner_key, meta_namespace_key(pod))
            return
        except errors.ApiError as exc:
            self.expectations.deletion_observed(owner_key, meta_namespace_key(pod))
            self.recorder.record(owner, WARNING, "FailedDelete", f"Error deleting: {exc}")
            raise
        self.recorder.record(owner, NORMAL, "SuccessfulDelete",
                             f"Deleted pod: {pod.metadata.name}")


async def write_status(client: Client, obj: Message, status: Any) -> Message | None:
    """`obj` with `status` written through the status subresource: `obj`
    itself when nothing changed (no write), None when it is gone."""
    if status == obj.status:
        return obj
    new = copy(obj)
    new.status.CopyFrom(status)
    try:
        return await client.update_status(new)
    except errors.NotFound:
        return None


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


# ---------------------------------------------------------------- event handlers

class DependentEvents:
    """Handlers for the dependents (pods, ReplicaSets) of one owner kind.

    A dependent with a controller reference resolving to an owner in the
    cache (same name and uid, kind `owner_kind`) enqueues that owner; one
    that appears counts as an observed creation, one that goes or starts
    terminating as an observed deletion (it is as good as gone for the count:
    its replacement may start now). A changed controller reference also
    enqueues the previous owner. An orphan, on appearing or on a change of
    labels or reference, enqueues every owner of its namespace whose
    selector matches (one of them adopts it). With `requeue_when_ready`, a
    dependent becoming Ready requeues its owner once minReadySeconds (and a
    second for clock skew) have passed, when it counts as available (an
    owner kind without spec.minReadySeconds, a Job, turns it off).

    Two hooks for what one controller keeps besides (the Job's tracking
    finalizer): `observed(owner_key, dependent, gone)` for every update or
    deletion that reaches an owner (`gone`: deleted, not just terminating),
    and `unowned(dependent)` for every event of a dependent whose controller
    is not in the cache (an orphan, or one whose owner is gone).
    """

    def __init__(self, owners: Informer, owner_kind: str, expectations: Expectations,
                 enqueue: Callable[[Message], None],
                 enqueue_after: Callable[[Message, float], None], *,
                 requeue_when_ready: bool = True,
                 observed: Callable[[str, Message, bool], None] | None = None,
                 unowned: Callable[[Message], None] | None = None):
        self.owners = owners
        self.owner_kind = owner_kind
        self.expectations = expectations
        self.enqueue = enqueue
        self.enqueue_after = enqueue_after
        self.requeue_when_ready = requeue_when_ready
        self.observed = observed or (lambda _key, _dependent, _gone: None)
        self.unowned = unowned or (lambda _dependent: None)

    def owner_of(self, obj: Message) -> Message | None:
        """resolveControllerRef: the cached owner `obj`'s controller reference names."""
        ref = controller_of(obj)
        if ref is None or ref.kind != self.owner_kind:
            return None
        owner = self.owners.get(f"{obj.metadata.namespace}/{ref.name}")
        if owner is None or owner.metadata.uid != ref.uid:
            return None
        return owner

    def owners_matching(self, obj: Message) -> list[Message]:
        out = []
        for owner in self.owners.by_index(BY_NAMESPACE, obj.metadata.namespace):
            try:
                selector = labels.from_label_selector(owner.spec.selector)
            except errors.ApiError:
                continue  # an invalid selector selects nothing (and a handler never raises)
            if not selector.empty() and selector.matches(obj.metadata.labels):
                out.append(owner)
        return out

    def on_owner_delete(self, obj: Message | DeletedFinalStateUnknown) -> None:
        """A recreated owner of the same name starts with no expectations."""
        owner = object_of(obj)
        self.expectations.delete(meta_namespace_key(owner))
        self.enqueue(owner)

    def on_add(self, obj: Message) -> None:
        if obj.metadata.deletion_timestamp:
            # Seen for the first time already terminating (e.g. after a restart):
            # never a creation we wait for.
            self._deleted(obj, gone=False)
            return
        owner = self.owner_of(obj)
        if owner is not None:
            self.expectations.creation_observed(meta_namespace_key(owner))
            self.enqueue(owner)
            return
        self.unowned(obj)
        if controller_of(obj) is None:
            for owner in self.owners_matching(obj):
                self.enqueue(owner)

    def on_update(self, old: Message, new: Message) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return  # a resync: nothing changed
        if new.metadata.deletion_timestamp and not old.metadata.deletion_timestamp:
            self._deleted(new, gone=False)
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref is not None and (new_ref is None or old_ref.uid != new_ref.uid):
            previous = self.owner_of(old)
            if previous is not None:
                self.observed(meta_namespace_key(previous), new, False)
                self.enqueue(previous)
        owner = self.owner_of(new)
        if owner is not None:
            self.observed(meta_namespace_key(owner), new, False)
            self.enqueue(owner)
            if self.requeue_when_ready and not is_pod_ready(old) and is_pod_ready(new):
                min_ready_s = owner.spec.min_ready_seconds
                if min_ready_s > 0:
                    self.enqueue_after(owner, min_ready_s + 1)
            return
        self.unowned(new)
        if new_ref is None and (old.metadata.labels != new.metadata.labels or old_ref is not None):
            for owner in self.owners_matching(new):
                self.enqueue(owner)

    def on_delete(self, obj: Message | DeletedFinalStateUnknown) -> None:
        self._deleted(object_of(obj), gone=True)

    def _deleted(self, dependent: Message, *, gone: bool) -> None:
        owner = self.owner_of(dependent)
        if owner is None:
            self.unowned(dependent)
            return
        key = meta_namespace_key(owner)
        self.expectations.deletion_observed(key, meta_namespace_key(dependent))
        self.observed(key, dependent, gone)
        self.enqueue(owner)


# ---------------------------------------------------------------- services and their pods
# (k8s.io/endpointslice/util: what the Endpoints and EndpointSlice controllers share)

LABEL_HEADLESS = "service.kubernetes.io/headless"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def services_selecting(services: Informer, namespace: str,
                       pod_labels: Any) -> set[str]:
    """getServicesForPod: the keys of the cached Services of `namespace` whose
    selector matches `pod_labels`. Costs one index look-up per pod label plus
    one selector check per candidate, never a scan of the namespace."""
    out: set[str] = set()
    seen: set[str] = set()
    for k, v in pod_labels.items():
        for key in services.store.index_keys(BY_SELECTOR, f"{namespace}/{k}={v}"):
            if key in seen:
                continue
            seen.add(key)
            svc = services.get(key)
            if svc is not None and all(pod_labels.get(sk) == sv
                                       for sk, sv in svc.spec.selector.items()):
                out.add(key)
    return out


def pod_ips(pod: Message) -> list[str]:
    ips = [p.ip for p in pod.status.pod_ips if p.ip]
    if not ips and pod.status.pod_ip:
        ips = [pod.status.pod_ip]
    return ips


def _pod_endpoints_changed(old: Message, new: Message) -> tuple[bool, bool]:
    """podEndpointsChanged: (whether its endpoint may change, whether the
    Services that select it may)."""
    labels_changed = (old.metadata.labels != new.metadata.labels
                      or old.spec.hostname != new.spec.hostname
                      or old.spec.subdomain != new.spec.subdomain)
    pod_changed = (old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
                   or is_pod_ready(old) != is_pod_ready(new)
                   or pod_ips(old) != pod_ips(new)
                   # A terminal phase takes a pod out of the endpoints.
                   or old.status.phase != new.status.phase)
    return pod_changed, labels_changed


def services_to_update(services: Informer, old: Message, new: Message) -> set[str]:
    """GetServicesToUpdateOnPodChange: the Services a pod update concerns."""
    if old.metadata.resource_version == new.metadata.resource_version:
        return set()  # a resync: the services informer resyncs the Services itself
    pod_changed, labels_changed = _pod_endpoints_changed(old, new)
    if not pod_changed and not labels_changed:
        return set()
    ns = new.metadata.namespace
    now = services_selecting(services, ns, new.metadata.labels)
    if not labels_changed:
        return now
    before = services_selecting(services, ns, old.metadata.labels)
    if pod_changed:
        return now | before
    return now ^ before  # only the membership changed: the Services it joined or left


class ServicePodEvents:
    """The pod handlers of the Endpoints and EndpointSlice controllers: a pod
    that appears or goes enqueues the Services selecting it, an update the
    Services it concerns (services_to_update); after `batch_s` when > 0
    (Kubernetes' --endpoint-updates-batch-period)."""

    def __init__(self, services: Informer, enqueue_batched: Callable[[set[str], float], None],
                 batch_s: float):
        self.services = services
        self.enqueue_batched = enqueue_batched
        self.batch_s = batch_s

    def on_add(self, pod: Message) -> None:
        self.enqueue_batched(services_selecting(self.services, pod.metadata.namespace,
                                                pod.metadata.labels), self.batch_s)

    def on_update(self, old: Message, new: Message) -> None:
        self.enqueue_batched(services_to_update(self.services, old, new), self.batch_s)

    def on_delete(self, obj: Message | DeletedFinalStateUnknown) -> None:
        self.on_add(object_of(obj))


def should_pod_be_in_endpoints(pod: Message, include_terminating: bool) -> bool:
    """ShouldPodBeInEndpoints: not terminal, has an IP, and terminating only
    when `include_terminating`."""
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not pod.metadata.deletion_timestamp


def should_set_hostname(pod: Message, svc: Message) -> bool:
    """A StatefulSet pod behind its governing (headless) Service."""
    return (bool(pod.spec.hostname) and pod.spec.subdomain == svc.metadata.name
            and svc.metadata.namespace == pod.metadata.namespace)


def is_service_ip_set(svc: Message) -> bool:
    return svc.spec.cluster_ip not in ("", "None")


def find_port(pod: Message, svc_port: Message) -> int | None:
    """FindPort: the number a Service port's targetPort means on `pod` (a
    name is looked up in the pod's containers and sidecars, same protocol);
    None when a name matches no container port."""
    target = svc_port.target_port
    which = target.WhichOneof("value")
    if which == "int_val":
        return target.int_val
    if which is None:
        return svc_port.port  # defaulting makes targetPort the port itself
    name = target.str_val
    protocol = svc_port.protocol or "TCP"
    sidecars = [c for c in pod.spec.init_containers if c.restart_policy == "Always"]
    for container in [*pod.spec.containers, *sidecars]:
        for port in container.ports:
            if port.name == name and (port.protocol or "TCP") == protocol:
                return port.container_port
    return None


def _ready_transition(pod: Message) -> tuple[float, str] | None:
    cond = get_condition(pod.status, "Ready")
    if cond is None or not cond.last_transition_time:
        return None
    t = time_s(cond.last_transition_time)
    return None if t is None else (t, cond.last_transition_time)


class TriggerTimeTracker:
    """The `endpoints.kubernetes.io/last-change-trigger-time` of a Service's
    endpoints (k8s.io/endpointslice/util TriggerTimeTracker): the earliest of
    the changes seen since the previous sync -- a pod's Ready transition
    time, the Service's creation -- and, the first time a Service is seen,
    its creationTimestamp. None: no annotation. Called by one worker per key
    at a time (the workqueue's contract); no lock needed."""

    def __init__(self) -> None:
        # service key -> (service trigger time, {pod name: pod trigger time})
        self._states: dict[str, tuple[float, dict[str, float]]] = {}

    def compute(self, key: str, svc: Message, pods: Sequence[Message]) -> str | None:
        state = self._states.get(key)
        last_svc_s, last_pods = state if state is not None else (0.0, {})
        earliest: tuple[float, str] | None = None
        pod_times: dict[str, float] = {}
        for pod in pods:
            trigger = _ready_transition(pod)
            if trigger is None:
                continue
            pod_times[pod.metadata.name] = trigger[0]
            if trigger[0] > last_pods.get(pod.metadata.name, 0.0):
                earliest = trigger if earliest is None or trigger[0] < earliest[0] else earliest
        created = svc.metadata.creation_timestamp
        created_at = time_s(created) or 0.0
        if created_at > last_svc_s:
            candidate = (created_at, created)
            earliest = candidate if earliest is None or created_at < earliest[0] else earliest
        self._states[key] = (created_at, pod_times)
        if state is None:
            return created or None
        return earliest[1] if earliest is not None else None

    def delete(self, key: str) -> None:
        self._states.pop(key, None)
