"""The disruption controller (kubernetes/pkg/controller/disruption): PodDisruptionBudget status.

For each PDB, from the pods its selector picks in its namespace:
- expectedPods and desiredHealthy (`expected_and_desired`): an integer
  minAvailable counts the pods themselves; a percent minAvailable or any
  maxUnavailable needs the scale of the pods' controllers (getExpectedScale:
  the owning Deployment through its ReplicaSet, a bare ReplicaSet, a
  StatefulSet; percents round up). A pod without a controller is reported
  (UnmanagedPods event) and left out; a controller of another kind is an error.
- currentHealthy: Ready pods that are neither terminating nor listed in
  status.disruptedPods (pods the eviction subresource let go less than
  DELETION_TIMEOUT_S ago; older or already-deleted entries are dropped, and
  the PDB is looked at again when the next entry would expire);
- disruptionsAllowed = currentHealthy - desiredHealthy, never below 0, and 0
  while no pod is expected; the DisruptionAllowed condition says
  SufficientPods or InsufficientPods. A sync that fails (no controller for a
  pod, a bad percent) writes disruptionsAllowed 0 with reason SyncFailed
  (failSafe), so evictions stop rather than run on a wrong budget.

A pod left with the DisruptionTarget condition the eviction subresource set
but not deleted (the delete failed) gets it set back to False after
STALE_POD_DISRUPTION_TIMEOUT_S, as Kubernetes' syncStalePodDisruption does.

`compute_status` is pure; `sync` reads the informers and writes status only
when it changed (with the cached resourceVersion: a conflict requeues).
"""
from __future__ import annotations

import dataclasses
import math

from google.protobuf.message import Message

from controller_manager import controllerutil as cu
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy
from kubemu import timefmt
from kubemu.api import codec, errors, labels
from kubemu.client.informer import object_of

DELETION_TIMEOUT_S = 120.0  # Kubernetes' DeletionTimeout for status.disruptedPods
# A pod the eviction subresource marked DisruptionTarget but did not delete:
# the condition is set back to False after this long (stalePodDisruptionTimeout).
STALE_POD_DISRUPTION_TIMEOUT_S = 120.0
DISRUPTION_TARGET = "DisruptionTarget"
TERMINATION_BY_KUBELET = "TerminationByKubelet"
# Keys of pods whose DisruptionTarget condition may go stale share the
# workqueue with the PDB keys (Kubernetes has a second queue).
STALE_PREFIX = "stale-pod-disruption:"
CONDITION = "DisruptionAllowed"
SUFFICIENT, INSUFFICIENT, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"


class SyncError(Exception):
    """The budget cannot be computed (Kubernetes' trySync error)."""


@dataclasses.dataclass(frozen=True)
class Computed:
    expected_pods: int
    desired_healthy: int
    current_healthy: int
    disruptions_allowed: int
    disrupted_pods: dict[str, str]
    unmanaged_pods: tuple[str, ...]
    # Pods listed in disruptedPods longer than DELETION_TIMEOUT_S and not deleted.
    not_deleted: tuple[str, ...]
    # When an entry of disruptedPods expires (unix s), so the PDB is synced then.
    recheck_s: float | None


def scaled_value(value: int | str, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=true)."""
    if isinstance(value, int):
        return value
    text = value[:-1] if value.endswith("%") else ""
    if not text.isdigit():
        raise SyncError(f'invalid value for IntOrString: invalid value "{value}"')
    return math.ceil(int(text) * total / 100)


def expected_and_desired(pdb: Message, pods: list[Message], scale_of) -> tuple[int, int, list[str]]:
    """(expectedPods, desiredHealthy, unmanaged pod names): getExpectedPodCount.
    `scale_of(pod)` is the scale of the pod's controller as (uid, replicas), or
    None for a pod without a controller; it raises SyncError for one it cannot size."""
    spec = pdb.spec
    unmanaged: list[str] = []

    def expected_scale() -> int:
        scales: dict[str, int] = {}
        for pod in pods:
            found = scale_of(pod)
            if found is None:
                unmanaged.append(pod.metadata.name)
                continue
            uid, replicas = found
            scales[uid] = replicas
        return sum(scales.values())

    if spec.HasField("max_unavailable"):
        expected = expected_scale()
        max_unavailable = scaled_value(codec.int_or_string(spec.max_unavailable), expected)
        return expected, max(0, expected - max_unavailable), unmanaged
    if spec.HasField("min_available"):
        min_available = codec.int_or_string(spec.min_available)
        if isinstance(min_available, int):
            return len(pods), min_available, unmanaged
        expected = expected_scale()
        return expected, scaled_value(min_available, expected), unmanaged
    return 0, 0, unmanaged


def compute_status(pdb: Message, pods: list[Message], scale_of, now_s: float) -> Computed:
    expected, desired, unmanaged = expected_and_desired(pdb, pods, scale_of)
    disrupted: dict[str, str] = {}
    not_deleted: list[str] = []
    recheck_s: float | None = None
    listed = pdb.status.disrupted_pods
    for pod in pods:
        if pod.metadata.deletion_timestamp or pod.metadata.name not in listed:
            continue
        since_s = cu.time_s(listed[pod.metadata.name])
        if since_s is None or since_s + DELETION_TIMEOUT_S < now_s:
            not_deleted.append(pod.metadata.name)  # expected gone by now: counts again
            continue
        disrupted[pod.metadata.name] = listed[pod.metadata.name]
        expires_s = since_s + DELETION_TIMEOUT_S
        recheck_s = expires_s if recheck_s is None else min(recheck_s, expires_s)
    healthy = sum(1 for pod in pods
                  if not pod.metadata.deletion_timestamp
                  and pod.metadata.name not in disrupted
                  and cu.is_pod_ready(pod))
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    return Computed(expected, desired, healthy, allowed, disrupted, tuple(unmanaged),
                    tuple(not_deleted), recheck_s)


def stale_disruption_wait_s(pod: Message, now_s: float,
                            timeout_s: float = STALE_POD_DISRUPTION_TIMEOUT_S) -> float | None:
    """nonTerminatingPodHasStaleDisruptionCondition: None when the pod has no
    DisruptionTarget condition to clear (terminating, terminal, or set by the
    kubelet); else the seconds left before it is stale (0: clear it now)."""
    if pod.metadata.deletion_timestamp or pod.status.phase in ("Succeeded", "Failed"):
        return None
    cond = cu.get_condition(pod.status, DISRUPTION_TARGET)
    if cond is None or cond.status != "True" or cond.reason == TERMINATION_BY_KUBELET:
        return None
    since_s = cu.time_s(cond.last_transition_time) or 0.0
    return max(0.0, timeout_s - (now_s - since_s))


def set_condition(status: Message, value: str, reason: str, message: str, now_s: float) -> None:
    """meta.SetStatusCondition for DisruptionAllowed."""
    cond = next((c for c in status.conditions if c.type == CONDITION), None)
    if cond is None:
        cond = status.conditions.add(type=CONDITION)
    if cond.status != value or not cond.last_transition_time:
        cond.last_transition_time = timefmt.rfc3339(now_s)
    cond.status, cond.reason, cond.message = value, reason, message
    cond.observed_generation = status.observed_generation


def conditions_up_to_date(pdb: Message) -> bool:
    cond = next((c for c in pdb.status.conditions if c.type == CONDITION), None)
    if cond is None or pdb.status.observed_generation != pdb.metadata.generation:
        return False
    if pdb.status.disruptions_allowed > 0:
        return cond.status == "True" and cond.reason == SUFFICIENT
    return cond.status == "False" and cond.reason == INSUFFICIENT


def new_status(pdb: Message, computed: Computed, now_s: float) -> Message | None:
    """The PDB with its new status, or None when nothing changes (updatePdbStatus)."""
    status = pdb.status
    if (status.HasField("current_healthy") and status.current_healthy == computed.current_healthy
            and status.desired_healthy == computed.desired_healthy
            and status.expected_pods == computed.expected_pods
            and status.disruptions_allowed == computed.disruptions_allowed
            and dict(status.disrupted_pods) == computed.disrupted_pods
            and status.observed_generation == pdb.metadata.generation
            and conditions_up_to_date(pdb)):
        return None
    out = copy(pdb)
    st = out.status
    st.current_healthy = computed.current_healthy
    st.desired_healthy = computed.desired_healthy
    st.expected_pods = computed.expected_pods
    st.disruptions_allowed = computed.disruptions_allowed
    st.disrupted_pods.clear()
    st.disrupted_pods.update(computed.disrupted_pods)
    st.observed_generation = pdb.metadata.generation
    if computed.disruptions_allowed > 0:
        set_condition(st, "True", SUFFICIENT, "", now_s)
    else:
        set_condition(st, "False", INSUFFICIENT, "", now_s)
    return out


def fail_safe(pdb: Message, message: str, now_s: float) -> Message:
    """failSafe: no disruption allowed while the budget cannot be computed."""
    out = copy(pdb)
    out.status.disruptions_allowed = 0
    set_condition(out.status, "False", SYNC_FAILED, message, now_s)
    return out


class DisruptionController(Controller):
    name = "disruption-controller"
    event_source = "controllermanager"  # its events' source in Kubernetes
    aliases = ("disruption",)
    resources = ("poddisruptionbudgets", "pods", "replicasets", "deployments", "statefulsets")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.pdbs = self.informer("poddisruptionbudgets")
        self.pods = self.informer("pods")
        self.replicasets = self.informer("replicasets")
        self.deployments = self.informer("deployments")
        self.statefulsets = self.informer("statefulsets")
        self.pdbs.add_handler(self.enqueue, lambda _old, new: self.enqueue(new), self.enqueue)
        self.pods.add_handler(self._pod_changed, lambda _old, new: self._pod_changed(new),
                              self._pod_changed)

    def _pod_changed(self, obj) -> None:
        pod = object_of(obj)
        for pdb in self._pdbs_of(pod):
            self.enqueue(pdb)
        if isinstance(obj, Message):
            wait_s = stale_disruption_wait_s(pod, self.ctx.clock())
            if wait_s is not None:
                self.enqueue_after(f"{STALE_PREFIX}{pod.metadata.namespace}/{pod.metadata.name}",
                                   wait_s)

    def _pdbs_of(self, pod: Message) -> list[Message]:
        out = []
        for pdb in self.pdbs.by_index(BY_NAMESPACE, pod.metadata.namespace):
            try:
                selector = labels.from_label_selector(
                    pdb.spec.selector if pdb.spec.HasField("selector") else None)
            except errors.BadRequest:
                continue
            # policy/v1's lister: an empty selector matches every pod here (the
            # eviction subresource, unlike this, lets it match none).
            if selector.matches(pod.metadata.labels):
                out.append(pdb)
        return out

    def _pods_of(self, pdb: Message) -> list[Message]:
        selector = labels.from_label_selector(
            pdb.spec.selector if pdb.spec.HasField("selector") else None)
        return [p for p in self.pods.by_index(BY_NAMESPACE, pdb.metadata.namespace)
                if selector.matches(p.metadata.labels)]

    def _scale_of(self, pod: Message) -> tuple[str, int] | None:
        """The finders: (controller uid, replicas) for the pod's controller."""
        ref = cu.controller_of(pod)
        if ref is None:
            return None
        ns = pod.metadata.namespace
        if ref.kind == "ReplicaSet":
            rs = self.replicasets.get(f"{ns}/{ref.name}")
            if rs is not None and rs.metadata.uid == ref.uid:
                owner = cu.controller_of(rs)
                if owner is None or owner.kind != "Deployment":
                    return rs.metadata.uid, rs.spec.replicas
                deploy = self.deployments.get(f"{ns}/{owner.name}")
                if deploy is not None and deploy.metadata.uid == owner.uid:
                    return deploy.metadata.uid, deploy.spec.replicas
        elif ref.kind == "StatefulSet":
            sts = self.statefulsets.get(f"{ns}/{ref.name}")
            if sts is not None and sts.metadata.uid == ref.uid:
                return sts.metadata.uid, sts.spec.replicas
        raise SyncError(f'found no controllers for pod "{pod.metadata.name}"')

    async def sync(self, key: str) -> None:
        if key.startswith(STALE_PREFIX):
            await self._sync_stale_pod_disruption(key[len(STALE_PREFIX):])
            return
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        now_s = self.ctx.clock()
        try:
            pods = self._pods_of(pdb)
            if not pods:
                self.recorder.record(pdb, "Normal", "NoPods", "No matching pods found")
            computed = compute_status(pdb, pods, self._scale_of, now_s)
        except (SyncError, errors.BadRequest) as exc:
            self.recorder.record(pdb, "Warning", "CalculateExpectedPodCountFailed",
                                 f"Failed to calculate the number of expected pods: {exc}")
            self.log.warning("pdb sync failed", key=key, error=str(exc))
            failed = fail_safe(pdb, str(exc), now_s)
            if failed.status != pdb.status:
                await self.client.update_status(failed)
            return
        if computed.unmanaged_pods:
            self.recorder.record(
                pdb, "Warning", "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: "
                f"{_selector_text(pdb)}) were found to be unmanaged. As a result, the status "
                "of the PDB cannot be calculated correctly, which may result in undefined "
                "behavior. To account for these pods please set \".spec.minAvailable\" field "
                "of the PDB to an integer value.")
        for name in computed.not_deleted:
            pod = self.pods.get(f"{pdb.metadata.namespace}/{name}")
            if pod is not None:
                # Kubernetes names the namespace twice here; so do we.
                self.recorder.record(pod, "Warning", "NotDeleted",
                                     f"Pod was expected by PDB {pdb.metadata.namespace}/"
                                     f"{pdb.metadata.namespace} to be deleted but it wasn't")
        updated = new_status(pdb, computed, now_s)
        if updated is not None:
            await self.client.update_status(updated)
        if computed.recheck_s is not None:
            self.enqueue_after(key, computed.recheck_s - now_s)


    async def _sync_stale_pod_disruption(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None:
            return
        now_s = self.ctx.clock()
        wait_s = stale_disruption_wait_s(pod, now_s)
        if wait_s is None:
            return
        if wait_s > 0:
            self.enqueue_after(STALE_PREFIX + key, wait_s)
            return
        fresh = copy(pod)
        cond = cu.get_condition(fresh.status, DISRUPTION_TARGET)
        cond.status, cond.reason, cond.message = "False", "", ""
        cond.last_transition_time = timefmt.rfc3339(now_s)
        await self.client.update_status(fresh)
        self.log.info("reset stale DisruptionTarget condition to False", pod=key)


def _selector_text(pdb: Message) -> str:
    """The selector as Go's %v prints a *metav1.LabelSelector (its generated String())."""
    if not pdb.spec.HasField("selector"):
        return "nil"
    sel = pdb.spec.selector
    match = "".join(f"{k}: {v}," for k, v in sorted(sel.match_labels.items()))
    exprs = "".join(f"&LabelSelectorRequirement{{Key:{e.key},Operator:{e.operator},"
                    f"Values:[{' '.join(e.values)}],}},"
                    for e in sel.match_expressions)
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{match}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}")
