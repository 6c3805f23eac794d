"""The DaemonSet controller (kubernetes/pkg/controller/daemon): one pod per eligible node.

Eligibility (`node_should_run`, NodeShouldRunDaemonPod): the DaemonSet's pod,
as it would be created for the node (with the daemon tolerations below), must
fit the node's name (template nodeName), its nodeSelector and required node
affinity, and tolerate the node's NoSchedule and NoExecute taints. A node it
does not fit any more only by an untolerated NoSchedule taint keeps the pod
it has ("should continue running"); an untolerated NoExecute taint evicts.

Daemon pods are not bound here: each gets a required node affinity
`matchFields metadata.name In [node]` (replacing the template's required
terms, as Kubernetes does) and the scheduler places it. The controller adds
Kubernetes' daemon tolerations: not-ready and unreachable (NoExecute, no
tolerationSeconds), disk-pressure, memory-pressure, pid-pressure and
unschedulable (NoSchedule), and network-unavailable for hostNetwork pods.

sync(key), as syncDaemonSet: claim the namespace's pods (adopt/release);
find the current revision (its `controller-revision-hash`, see
`DaemonSetHistory`); when the expectations are satisfied, `manage`: per node,
create the missing pod, delete pods on nodes that should not run one, delete
failed pods (with a per-node exponential backoff, so a kubelet that keeps
rejecting a pod is not hot-looped), and delete the excess when a node has
more than one; pods waiting for a node that no longer exists are deleted
(kubemu has no pod GC: a pod bound to a removed node is deleted too, with no
grace, as the pod GC's orphan sweep would). Then the update strategy:
RollingUpdate replaces old pods within maxUnavailable, or with maxSurge
(start the new pod first, delete the old one when the new one is available);
OnDelete does nothing (the user deletes, manage recreates at the new
revision). At most `BURST_REPLICAS` creates and deletes per sync, creates in
slow-start batches. Last, the status numbers and observedGeneration, written
only when they change.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from google.protobuf.message import Message

from kubemu.api import errors, labels, scheduling
from kubemu.api.v1 import core_pb2
from kubemu.client.events import NORMAL, WARNING
from kubemu.client.informer import meta_namespace_key, object_of

from controller_manager import controllerutil as cu
from controller_manager import history
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy, split_key
from controller_manager.deployment_util import compute_hash, scaled_value
from controller_manager.expectations import Expectations

# kube-controller-manager's BurstReplicas for DaemonSets: creates or deletes per sync.
BURST_REPLICAS = 250
SLOW_START_INITIAL_BATCH = 1

CONTROLLER_REVISION_HASH = "controller-revision-hash"
NODE_NAME_FIELD = "metadata.name"
ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

# Event reasons (daemon_controller.go).
SELECTING_ALL = "SelectingAll"
FAILED_DAEMON_POD = "FailedDaemonPod"
SUCCEEDED_DAEMON_POD = "SucceededDaemonPod"

# AddOrUpdateDaemonPodTolerations: (key, effect); operator Exists, no tolerationSeconds.
DAEMON_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
)
HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", NO_SCHEDULE)


# ---------------------------------------------------------------- tolerations and affinity
# (the matching itself is kubemu.api.scheduling, Kubernetes' component-helpers)

def add_daemon_tolerations(spec: Any) -> None:
    """AddOrUpdateDaemonPodTolerations on a PodSpec: each daemon toleration
    replaces one with the same key, operator, value and effect (so a user's
    tolerationSeconds on it goes), else is appended."""
    wanted = list(DAEMON_TOLERATIONS)
    if spec.host_network:
        wanted.append(HOST_NETWORK_TOLERATION)
    for key, effect in wanted:
        new = core_pb2.Toleration(key=key, operator="Exists", effect=effect)
        for existing in spec.tolerations:
            if (existing.key, existing.operator, existing.value, existing.effect) == (
                    key, "Exists", "", effect):
                existing.CopyFrom(new)
                break
        else:
            spec.tolerations.append(new)


def replace_node_name_affinity(spec: Any, node_name: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required terms become one
    term `matchFields metadata.name In [node_name]` (preferred terms stay)."""
    required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    term = required.node_selector_terms.add()
    term.match_fields.add(key=NODE_NAME_FIELD, operator="In", values=[node_name])


def target_node_name(pod: Any) -> str:
    """GetTargetNodeName: spec.nodeName, else the node of the metadata.name
    matchFields term ("" when the pod names none, or more than one)."""
    if pod.spec.node_name:
        return pod.spec.node_name
    spec = pod.spec
    if not spec.HasField("affinity") or not spec.affinity.HasField("node_affinity"):
        return ""
    affinity = spec.affinity.node_affinity
    if not affinity.HasField("required_during_scheduling_ignored_during_execution"):
        return ""
    for term in affinity.required_during_scheduling_ignored_during_execution.node_selector_terms:
        for expr in term.match_fields:
            if expr.key == NODE_NAME_FIELD and expr.operator == "In":
                return expr.values[0] if len(expr.values) == 1 else ""
    return ""


def node_should_run(node: Any, ds: Any) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod: (should run, should continue running)."""
    spec = copy(ds.spec.template.spec)
    if spec.node_name and spec.node_name != node.metadata.name:
        return False, False
    add_daemon_tolerations(spec)
    if not scheduling.required_affinity_matches(spec, node):
        return False, False
    taints = node.spec.taints
    if scheduling.untolerated_taint(taints, spec.tolerations, (NO_SCHEDULE, NO_EXECUTE)) \
            is not None:
        # A pod already there stays unless a NoExecute taint evicts it.
        return False, scheduling.untolerated_taint(taints, spec.tolerations,
                                                   (NO_EXECUTE,)) is None
    return True, True


# ---------------------------------------------------------------- revisions, counts, ordering

def surge_and_unavailable(ds: Any, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) out of `desired` nodes for a RollingUpdate;
    both 0 would never progress, so maxUnavailable is then 1 (as Kubernetes)."""
    strategy = ds.spec.update_strategy
    if strategy.type != ROLLING_UPDATE or not strategy.HasField("rolling_update"):
        return 0, 0
    rolling = strategy.rolling_update
    # Both round up for a DaemonSet (a Deployment rounds maxUnavailable down).
    surge = scaled_value(rolling.max_surge, desired, True) if rolling.HasField(
        "max_surge") else 0
    unavailable = scaled_value(rolling.max_unavailable, desired, True) if rolling.HasField(
        "max_unavailable") else 0
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def allows_surge(ds: Any) -> bool:
    try:
        return surge_and_unavailable(ds, 1)[0] > 0
    except ValueError:
        return False


def by_creation(pods: Iterable[Any]) -> list[Any]:
    """podByCreationTimestampAndPhase: scheduled first, then oldest, then by name."""
    return sorted(pods, key=lambda p: (not p.spec.node_name, cu.created_s(p), p.metadata.name))


def is_updated(pod: Any, hash_: str) -> bool:
    return bool(hash_) and pod.metadata.labels.get(CONTROLLER_REVISION_HASH) == hash_


def updated_pods_on_node(pods: Iterable[Any], hash_: str) -> tuple[Any, Any, bool]:
    """findUpdatedPodsOnNode: (new pod, old pod, ok) among the non-terminating
    pods of a node; ok is False when there are two new or two old ones."""
    new = old = None
    for pod in pods:
        if pod.metadata.deletion_timestamp:
            continue
        if is_updated(pod, hash_):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


# ---------------------------------------------------------------- failed-pod backoff

class Backoff:
    """client-go's flowcontrol.Backoff: per key, a delay that starts at `base_s`
    and doubles at each `next` up to `max_s`; an entry unused for 2*max_s starts
    over. Kubernetes' daemon controller: 1 s and 15 min."""

    def __init__(self, base_s: float, max_s: float, clock: Callable[[], float]):
        if not 0 < base_s <= max_s:
            raise ValueError(f"Backoff: need 0 < base_s <= max_s, got {base_s}, {max_s}")
        self.base_s, self.max_s, self._clock = base_s, max_s, clock
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (delay_s, last_update)

    def get(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry[0] if entry else 0.0

    def next(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * self.max_s:
            self._entries[key] = (self.base_s, now)
        else:
            self._entries[key] = (min(2 * entry[0], self.max_s), now)

    def in_backoff_since_update(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and now - entry[1] < entry[0]

    def gc(self, now: float) -> None:
        for key, (_delay, last) in list(self._entries.items()):
            if now - last > 2 * self.max_s:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


# ---------------------------------------------------------------- the per-node plan

@dataclasses.dataclass
class NodePlan:
    create: bool = False
    delete: list[Any] = dataclasses.field(default_factory=list)
    # (event type, reason, message) to record on the DaemonSet.
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    # Look again after this many seconds (a failed pod in backoff); 0: no.
    requeue_after_s: float = 0.0


def pods_should_be_on_node(node: Any, ds: Any, pods: Sequence[Any], hash_: str,
                           backoff: Backoff, now: float, wall_now: float) -> NodePlan:
    """podsShouldBeOnNode: what to create and delete on one node."""
    plan = NodePlan()
    should_run, should_continue = node_should_run(node, ds)
    node_name = node.metadata.name
    if should_run and not pods:
        plan.create = True
        return plan
    if not should_continue:
        plan.delete = [p for p in pods if not p.metadata.deletion_timestamp]
        return plan
    running = []
    for pod in pods:
        if pod.metadata.deletion_timestamp:
            continue
        phase = pod.status.phase
        if phase == "Failed":
            key = f"{ds.metadata.uid}/{ds.status.observed_generation}/{node_name}"
            if backoff.in_backoff_since_update(key, now):
                plan.requeue_after_s = max(plan.requeue_after_s, backoff.get(key))
                continue
            backoff.next(key, now)
            plan.events.append((WARNING, FAILED_DAEMON_POD,
                                f"Found failed daemon pod {pod.metadata.namespace}/"
                                f"{pod.metadata.name} on node {node_name}, will try to kill it"))
            plan.delete.append(pod)
        elif phase == "Succeeded":
            plan.events.append((NORMAL, SUCCEEDED_DAEMON_POD,
                                f"Found succeeded daemon pod {pod.metadata.namespace}/"
                                f"{pod.metadata.name} on node {node_name}, will try to delete it"))
            plan.delete.append(pod)
        else:
            running.append(pod)
    if not allows_surge(ds):
        # One pod per node: keep the oldest; failed ones come back next sync.
        plan.delete.extend(by_creation(running)[1:])
        return plan
    if len(running) <= 1:
        if not running and should_run:
            plan.create = True
        return plan
    # Surging: keep the oldest new and the oldest old pod while the new one is
    # not yet available and the old one still ready; delete the rest.
    oldest_new = oldest_old = None
    for pod in by_creation(running):
        if is_updated(pod, hash_):
            if oldest_new is None:
                oldest_new = pod
                continue
        elif oldest_old is None:
            oldest_old = pod
            continue
        plan.delete.append(pod)
    if oldest_new is not None and oldest_old is not None:
        if (not cu.is_pod_ready(oldest_old)
                or cu.is_pod_available(oldest_new, ds.spec.min_ready_seconds, wall_now)):
            plan.delete.append(oldest_old)
    return plan


# ---------------------------------------------------------------- rolling update

def rolling_update_plan(ds: Any, nodes_to_pods: Mapping[str, Sequence[Any]], hash_: str,
                        max_surge: int, max_unavailable: int,
                        now: float) -> tuple[list[Any], list[str]]:
    """rollingUpdate: (old pods to delete, nodes to create a new pod on).
    `nodes_to_pods` has an entry (maybe empty) for every node that should run
    a pod. Without surge: delete old pods, unavailable ones first, while fewer
    than maxUnavailable nodes are unavailable (the manage loop recreates them).
    With surge: create the new pod beside an old one, on at most maxSurge
    nodes at once, and delete the old pod once the new one is available."""
    min_ready_s = ds.spec.min_ready_seconds

    def available(pod: Any) -> bool:
        return cu.is_pod_available(pod, min_ready_s, now)

    if max_surge == 0:
        unavailable = 0
        replacements: list[Any] = []
        candidates: list[Any] = []
        for node_name in sorted(nodes_to_pods):
            new, old, ok = updated_pods_on_node(nodes_to_pods[node_name], hash_)
            if not ok:
                unavailable += 1  # the manage loop prunes the excess first
                continue
            if (old is None) == (new is None):
                unavailable += 1  # nothing there yet, or both: manage handles it
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif not available(old):
                replacements.append(old)
            elif unavailable < max_unavailable:
                candidates.append(old)
        remaining = max(0, min(max_unavailable - unavailable, len(candidates)))
        return replacements + candidates[:remaining], []
    to_delete: list[Any] = []
    allowed: list[str] = []
    candidate_nodes: list[str] = []
    surging = 0
    for node_name in sorted(nodes_to_pods):
        new, old, ok = updated_pods_on_node(nodes_to_pods[node_name], hash_)
        if not ok:
            surging += 1
            continue
        if old is None:
            continue  # the manage loop creates the pod
        if new is None:
            if not available(old):
                allowed.append(node_name)
            elif surging < max_surge:
                candidate_nodes.append(node_name)
            continue
        if not available(new):
            surging += 1
            continue
        to_delete.append(old)
    remaining = max(0, min(max_surge - surging, len(candidate_nodes)))
    return to_delete, allowed + candidate_nodes[:remaining]


# ---------------------------------------------------------------- status

@dataclasses.dataclass(frozen=True)
class Numbers:
    desired: int = 0
    current: int = 0
    misscheduled: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0

    @property
    def unavailable(self) -> int:
        return self.desired - self.available


def status_numbers(ds: Any, nodes: Iterable[Any], nodes_to_pods: Mapping[str, Sequence[Any]],
                   hash_: str, now: float) -> Numbers:
    """updateDaemonSetStatus's counts: per node that should run a pod, its
    oldest pod decides ready / available / updated; a pod on a node that
    should not run one is misscheduled."""
    desired = current = misscheduled = ready = updated = available = 0
    for node in nodes:
        should_run, _ = node_should_run(node, ds)
        pods = nodes_to_pods.get(node.metadata.name, ())
        if not should_run:
            if pods:
                misscheduled += 1
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = by_creation(pods)[0]
        if cu.is_pod_ready(pod):
            ready += 1
            if cu.is_pod_available(pod, ds.spec.min_ready_seconds, now):
                available += 1
        if is_updated(pod, hash_):
            updated += 1
    return Numbers(desired, current, misscheduled, ready, updated, available)


def status_with(ds: Any, numbers: Numbers, *, observed: bool) -> Any:
    status = copy(ds.status)
    status.desired_number_scheduled = numbers.desired
    status.current_number_scheduled = numbers.current
    status.number_misscheduled = numbers.misscheduled
    status.number_ready = numbers.ready
    status.updated_number_scheduled = numbers.updated
    status.number_available = numbers.available
    status.number_unavailable = numbers.unavailable
    if observed:
        status.observed_generation = ds.metadata.generation
    return status


# ---------------------------------------------------------------- history

class DaemonSetHistory(Protocol):
    """Where a DaemonSet's revisions live; gives the current revision's hash."""

    async def construct(self, ds: Any, pods: Sequence[Any]) -> tuple[str, list[Any]]:
        """(the current revision's hash, the old revisions), creating the current one."""
        ...

    async def cleanup(self, ds: Any, old: Sequence[Any], pods: Sequence[Any]) -> None:
        """Delete old revisions beyond revisionHistoryLimit that no pod runs."""
        ...


class ControllerRevisionHistory:
    """The daemon controller's constructHistory / cleanupHistory over
    ControllerRevisions: the current one (its data equal to the template's
    patch, history.template_patch) is found or made as "<ds>-<hash>" with the
    next revision number (an old template coming back is renumbered, not
    copied); duplicates are folded into the newest; old ones beyond
    revisionHistoryLimit that no pod runs are deleted.

    What it shares with a StatefulSet's history is controller_manager.history's
    (the patch, the revision object, renumber, delete, the ordering). What is
    the DaemonSet's own, as in Kubernetes (pkg/controller/daemon/update.go):
    the hash is the template's ComputeHash (the pod-template-hash, FNV-1a)
    under the label `controller-revision-hash` and the name is not shortened,
    not HashControllerRevision of the data under controller.kubernetes.io/hash;
    a collision bumps the DaemonSet's status.collisionCount and retries the
    sync instead of trying the next count in place; a revision without the
    label gets its name as the hash; several current revisions are folded
    into one (their pods relabelled); and the clean-up counts every old
    revision against the limit, skipping (not sparing from the count) those
    a pod still runs, where truncateHistory counts only the unused ones."""

    def __init__(self, controller: "DaemonSetController"):
        self.controller = controller
        self.client = controller.client
        self.calls = history.History(controller.client)
        self.revisions = controller.informer("controllerrevisions")

    async def _controlled(self, ds: Any) -> list[Any]:
        selector = labels.from_label_selector(ds.spec.selector)
        candidates = self.revisions.by_index(BY_NAMESPACE, ds.metadata.namespace)
        claimed = await cu.claim(self.client, ds, selector, candidates,
                                 resource="controllerrevisions")
        return claimed.objects

    async def construct(self, ds: Any, pods: Sequence[Any]) -> tuple[str, list[Any]]:
        data = history.template_patch(ds)
        current: list[Any] = []
        old: list[Any] = []
        for revision in await self._controlled(ds):
            if CONTROLLER_REVISION_HASH not in revision.metadata.labels:
                # The revision's name stands in for the hash (no collision to fear).
                fixed = copy(revision)
                fixed.metadata.labels[CONTROLLER_REVISION_HASH] = revision.metadata.name
                revision = await self.client.update(fixed)
            (current if history.revision_data(revision) == data else old).append(revision)
        next_revision = max((r.revision for r in old), default=0) + 1
        if not current:
            cur = await self._snapshot(ds, data, next_revision)
        else:
            cur = await self._dedup(ds, current, pods)
            if cur.revision < next_revision:
                cur = await self.calls.renumber(cur, next_revision)
        return cur.metadata.labels[CONTROLLER_REVISION_HASH], old

    async def _snapshot(self, ds: Any, data: dict[str, Any], revision: int) -> Any:
        collision = ds.status.collision_count if ds.status.HasField("collision_count") else None
        hash_ = compute_hash(ds.spec.template, collision)
        rev = history.revision_of(
            ds, f"{ds.metadata.name}-{hash_}",
            {**ds.spec.template.metadata.labels, CONTROLLER_REVISION_HASH: hash_}, data, revision)
        try:
            return await self.client.create(rev)
        except errors.AlreadyExists:
            existing = await self.client.get("controllerrevisions", rev.metadata.name,
                                             ds.metadata.namespace)
            if history.revision_data(existing) == data:
                return existing
            # A hash collision with another template: bump collisionCount and retry.
            fresh = await self.client.get("daemonsets", ds.metadata.name, ds.metadata.namespace)
            fresh.status.collision_count = (fresh.status.collision_count
                                            if fresh.status.HasField("collision_count") else 0) + 1
            await self.client.update_status(fresh)
            raise

    async def _dedup(self, ds: Any, current: list[Any], pods: Sequence[Any]) -> Any:
        if len(current) == 1:
            return current[0]
        keep = max(current, key=lambda r: r.revision)
        keep_hash = keep.metadata.labels[CONTROLLER_REVISION_HASH]
        for pod in pods:
            if pod.metadata.labels.get(CONTROLLER_REVISION_HASH) != keep_hash:
                relabelled = copy(pod)
                relabelled.metadata.labels[CONTROLLER_REVISION_HASH] = keep_hash
                await self.client.update(relabelled)
        for revision in current:
            if revision.metadata.name != keep.metadata.name:
                await self.calls.delete(revision)
        return keep

    async def cleanup(self, ds: Any, old: Sequence[Any], pods: Sequence[Any]) -> None:
        limit = ds.spec.revision_history_limit if ds.spec.HasField(
            "revision_history_limit") else 10
        to_kill = len(old) - limit
        if to_kill <= 0:
            return
        live = {p.metadata.labels.get(CONTROLLER_REVISION_HASH) for p in pods}
        for revision in history.sort_revisions(old):
            if to_kill <= 0:
                break
            if revision.metadata.labels.get(CONTROLLER_REVISION_HASH) in live:
                continue
            await self.calls.delete(revision)
            to_kill -= 1


# ---------------------------------------------------------------- the controller

class DaemonSetController(Controller):
    name = "daemonset-controller"
    aliases = ("daemonset",)
    default_workers = 2
    resources = ("daemonsets", "pods", "nodes", "controllerrevisions")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        opts = ctx.options
        self.expectations = Expectations(ttl_s=opts.expectations_ttl_s, clock=ctx.monotonic)
        self.backoff = Backoff(opts.daemonset_failed_pod_backoff_base_s,
                               opts.daemonset_failed_pod_backoff_max_s, ctx.monotonic)
        self.history: DaemonSetHistory = ControllerRevisionHistory(self)
        self.daemonsets = self.informer("daemonsets")
        self.pods = self.informer("pods")
        self.nodes = self.informer("nodes")
        self.events = cu.DependentEvents(self.daemonsets, "DaemonSet", self.expectations,
                                         self.enqueue, self.enqueue_after)
        self.pod_control = cu.PodControl(self.client, self.recorder, self.expectations)
        self.daemonsets.add_handler(self.enqueue, self._on_ds_update, self.events.on_owner_delete)
        self.pods.add_handler(self.events.on_add, self.events.on_update, self.events.on_delete)
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        revisions = self.informer("controllerrevisions")
        revisions.add_handler(self._on_revision, lambda _old, new: self._on_revision(new),
                              self._on_revision)

    # ------------------------------------------------------------ handlers

    def _on_ds_update(self, old: Message, new: Message) -> None:
        if old.metadata.uid != new.metadata.uid:
            self.events.on_owner_delete(old)  # recreated under the same name
        self.enqueue(new)

    def _on_revision(self, obj: Any) -> None:
        revision = object_of(obj)
        owner = self.events.owner_of(revision)
        if owner is not None:
            self.enqueue(owner)
        elif cu.controller_of(revision) is None:
            for ds in self.events.owners_matching(revision):
                self.enqueue(ds)

    def _on_node_add(self, node: Message) -> None:
        for ds in self.daemonsets.list():
            if node_should_run(node, ds)[0]:
                self.enqueue(ds)

    def _on_node_update(self, old: Message, new: Message) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        if (old.metadata.labels == new.metadata.labels and old.spec == new.spec
                and old.metadata.name == new.metadata.name):
            return  # status only (heartbeats): eligibility depends on none of it
        for ds in self.daemonsets.list():
            if node_should_run(old, ds) != node_should_run(new, ds):
                self.enqueue(ds)

    def _on_node_delete(self, obj: Any) -> None:
        # Its daemon pods go (there is no pod GC to do it): every DaemonSet looks.
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        selector = labels.from_label_selector(ds.spec.selector)
        if selector.empty():
            self.recorder.record(ds, WARNING, SELECTING_ALL,
                                 "This daemon set is selecting all pods. A non-empty selector "
                                 "is required.")
            return
        if ds.metadata.deletion_timestamp:
            return
        nodes = sorted(self.nodes.list(), key=lambda n: n.metadata.name)
        namespace, _ = split_key(key)
        candidates = self.pods.by_index(BY_NAMESPACE, namespace)
        pods = (await cu.claim(self.client, ds, selector, candidates)).objects
        hash_, old_revisions = await self.history.construct(ds, pods)
        nodes_to_pods = self._nodes_to_pods(pods)
        if not self.expectations.satisfied(key):
            await self._update_status(ds, nodes, nodes_to_pods, hash_, observed=False)
            return
        error: BaseException | None = None
        try:
            await self._manage(ds, key, nodes, nodes_to_pods, hash_)
            if self.expectations.satisfied(key) and \
                    ds.spec.update_strategy.type == ROLLING_UPDATE:
                await self._rolling_update(ds, key, nodes, nodes_to_pods, hash_)
            await self.history.cleanup(ds, old_revisions, pods)
        except (errors.ApiError, ValueError) as exc:
            error = exc
        await self._update_status(ds, nodes, nodes_to_pods, hash_, observed=True)
        self.backoff.gc(self.ctx.monotonic())
        if error is not None:
            raise error

    @staticmethod
    def _nodes_to_pods(pods: Iterable[Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for pod in pods:
            node_name = target_node_name(pod)
            if node_name:
                out.setdefault(node_name, []).append(pod)
        return out

    async def _manage(self, ds: Any, key: str, nodes: Sequence[Any],
                      nodes_to_pods: Mapping[str, Sequence[Any]], hash_: str) -> None:
        to_create: list[str] = []
        to_delete: list[tuple[Any, int | None]] = []
        now, wall_now = self.ctx.monotonic(), self.ctx.clock()
        for node in nodes:
            plan = pods_should_be_on_node(node, ds, nodes_to_pods.get(node.metadata.name, ()),
                                          hash_, self.backoff, now, wall_now)
            for type_, reason, message in plan.events:
                self.recorder.record(ds, type_, reason, message)
            if plan.requeue_after_s > 0:
                self.enqueue_after(ds, plan.requeue_after_s)
            if plan.create:
                to_create.append(node.metadata.name)
            to_delete.extend((pod, None) for pod in plan.delete)
        # Pods for nodes that are gone: nothing else deletes them, and no
        # kubelet will confirm a graceful deletion.
        existing = {node.metadata.name for node in nodes}
        for node_name, pods in nodes_to_pods.items():
            if node_name not in existing:
                to_delete.extend((pod, 0) for pod in pods if not pod.metadata.deletion_timestamp)
        await self._sync_nodes(ds, key, to_delete, to_create, hash_)

    async def _rolling_update(self, ds: Any, key: str, nodes: Sequence[Any],
                              nodes_to_pods: Mapping[str, Sequence[Any]], hash_: str) -> None:
        wanted: dict[str, Sequence[Any]] = {}
        for node in nodes:
            if node_should_run(node, ds)[0]:
                wanted[node.metadata.name] = nodes_to_pods.get(node.metadata.name, ())
        max_surge, max_unavailable = surge_and_unavailable(ds, len(wanted))
        old_to_delete, new_nodes = rolling_update_plan(ds, wanted, hash_, max_surge,
                                                       max_unavailable, self.ctx.clock())
        await self._sync_nodes(ds, key, [(p, None) for p in old_to_delete], new_nodes, hash_)

    async def _sync_nodes(self, ds: Any, key: str, to_delete: Sequence[tuple[Any, int | None]],
                          to_create: Sequence[str], hash_: str) -> None:
        """syncNodes: expectations first, then the creates (slow start) and deletes."""
        creates = list(to_create[:BURST_REPLICAS])
        deletes = list(to_delete[:BURST_REPLICAS])
        if not creates and not deletes:
            return
        self.expectations.expect(key, creations=len(creates),
                                 deletions=[meta_namespace_key(p) for p, _ in deletes])
        template = copy(ds.spec.template)
        add_daemon_tolerations(template.spec)
        template.metadata.labels[CONTROLLER_REVISION_HASH] = hash_
        pending = iter(creates)
        first_error: BaseException | None = None
        if creates:
            successes, first_error = await cu.slow_start_batch(
                len(creates), SLOW_START_INITIAL_BATCH,
                lambda: self._create_pod(ds, template, next(pending)))
            if first_error is not None:
                self.expectations.lower_creations(key, len(creates) - successes)
        results = await asyncio.gather(*(self.pod_control.delete(ds, pod, grace_period_s=grace)
                                         for pod, grace in deletes), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and first_error is None:
                first_error = result
        if first_error is not None:
            raise first_error

    async def _create_pod(self, ds: Any, template: Any, node_name: str) -> None:
        pod = cu.pod_from_template(template, ds)
        replace_node_name_affinity(pod.spec, node_name)
        await self.pod_control.create(ds, pod)

    async def _update_status(self, ds: Any, nodes: Sequence[Any],
                             nodes_to_pods: Mapping[str, Sequence[Any]], hash_: str, *,
                             observed: bool) -> None:
        numbers = status_numbers(ds, nodes, nodes_to_pods, hash_, self.ctx.clock())
        if ds.spec.min_ready_seconds > 0 and numbers.ready != numbers.available:
            # Available only after minReadySeconds: look again then.
            self.enqueue_after(ds, ds.spec.min_ready_seconds)
        await cu.write_status(self.client, ds, status_with(ds, numbers, observed=observed))
