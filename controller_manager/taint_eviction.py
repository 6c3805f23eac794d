"""Taint-based eviction (kubernetes/pkg/controller/tainteviction), as
kube-controller-manager's `taint-eviction-controller`.

A pod bound to a node with NoExecute taints:
- that it does not tolerate (every taint needs a matching toleration) is
  deleted at once;
- that it tolerates, some tolerations with tolerationSeconds, is deleted
  when the smallest of those (of the first toleration matching each taint,
  as GetMatchingTolerations picks them; <= 0 means at once) has run out;
- that it tolerates without tolerationSeconds stays.
The time runs from when this controller first saw the taints, as in
Kubernetes, when it saw them as they were added; else (a new leader) from
the taints' earliest timeAdded, so the count does not start again.
A scheduled deletion is cancelled (event "Cancelling deletion of Pod ns/name")
when the taints go or the pod comes to tolerate them; a pod deleted by
someone else before its time only drops out.

Deleting: the Normal event TaintManagerEviction "Marking for deletion Pod
ns/name", the pod's DisruptionTarget condition (DeletionByTaintManager,
"Taint manager: deleting due to NoExecute taint"), then an ordinary delete
(the pod's own grace period) with its uid as a precondition. Pods already
being deleted are left alone. `eviction_at_s` is the pure decision.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import errors
from kubemu.api.scheduling import tolerates
from kubemu.client.events import NORMAL

from controller_manager import controllerutil as cu
from controller_manager.base import BY_NODE, Context, Controller, split_key

NO_EXECUTE = "NoExecute"
EVICTION_REASON = "TaintManagerEviction"
DISRUPTION_TARGET = "DisruptionTarget"
DISRUPTION_REASON = "DeletionByTaintManager"
DISRUPTION_MESSAGE = "Taint manager: deleting due to NoExecute taint"
# Seen this soon after its (whole-second) timeAdded, a taint was seen being added.
SEEN_SLACK_S = 2.0


def no_execute_taints(node: Message | None) -> list[Message]:
    if node is None:
        return []
    return [t for t in node.spec.taints if t.effect == NO_EXECUTE]


def min_toleration_s(taints: Sequence[Message], tolerations: Sequence[Message]
                     ) -> float | None:
    """How long the pod may stay: None when a taint is not tolerated, inf when
    it tolerates them all forever, else the smallest tolerationSeconds (0 at
    least) of the tolerations used (getMinTolerationTime)."""
    smallest = math.inf
    for taint in taints:
        used = next((t for t in tolerations if tolerates(t, taint)), None)
        if used is None:
            return None
        if used.HasField("toleration_seconds"):
            smallest = min(smallest, max(0, used.toleration_seconds))
    return smallest


def taints_since_s(taints: Iterable[Message]) -> float | None:
    """The earliest timeAdded among the taints (None if none has one)."""
    times = [t for t in (cu.time_s(taint.time_added) for taint in taints) if t is not None]
    return min(times) if times else None


def eviction_at_s(taints: Sequence[Message], tolerations: Sequence[Message], now_s: float,
                  seen_s: float | None = None) -> float | None:
    """When the pod on a node with these NoExecute taints is to be deleted
    (now_s: at once; None: never). seen_s: when this controller first saw
    the taints; the count starts then (Kubernetes' way, to the millisecond)
    when that was as they were added (timeAdded has whole seconds), else at
    the earliest timeAdded (a new leader keeps the count), else at seen_s."""
    if not taints:
        return None
    allowed_s = min_toleration_s(taints, tolerations)
    if allowed_s is None:
        return now_s
    if allowed_s == math.inf:
        return None
    since_s = taints_since_s(taints)
    if since_s is None or (seen_s is not None and since_s <= seen_s < since_s + SEEN_SLACK_S):
        since_s = seen_s if seen_s is not None else now_s
    return since_s + allowed_s


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    resources = ("pods", "nodes")
    default_workers = 8  # Kubernetes' UpdateWorkerSize

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.pods = self.informer("pods")
        self.nodes = self.informer("nodes")
        # Pod key -> (uid, first seen s, deletion due s): only pods with a
        # deletion scheduled (bounded by the pods; an entry goes when it fires,
        # is cancelled, or its pod goes).
        self.scheduled: dict[str, tuple[str, float, float]] = {}
        self.pods.add_handler(self._pod_added, self._pod_updated, self.enqueue)
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_added)

    def _pod_added(self, pod: Message) -> None:
        if pod.spec.node_name:
            self.enqueue(pod)

    def _pod_updated(self, old: Message, new: Message) -> None:
        if (old.spec.node_name != new.spec.node_name
                or list(old.spec.tolerations) != list(new.spec.tolerations)
                or old.metadata.deletion_timestamp != new.metadata.deletion_timestamp):
            self.enqueue(new)

    def _node_added(self, node) -> None:
        node = getattr(node, "obj", node)  # DeletedFinalStateUnknown
        self._enqueue_pods_on(node.metadata.name)

    def _node_updated(self, old: Message, new: Message) -> None:
        if list(no_execute_taints(old)) != list(no_execute_taints(new)):
            self._enqueue_pods_on(new.metadata.name)

    def _enqueue_pods_on(self, node_name: str) -> None:
        for pod in self.pods.by_index(BY_NODE, node_name):
            self.enqueue(pod)

    def _cancel(self, key: str, pod: Message | None) -> None:
        if self.scheduled.pop(key, None) is not None and pod is not None:
            self.recorder.record(pod, NORMAL, EVICTION_REASON, f"Cancelling deletion of Pod {key}")

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not pod.spec.node_name or pod.metadata.deletion_timestamp:
            self.scheduled.pop(key, None)
            return
        taints = no_execute_taints(self.nodes.get(pod.spec.node_name))
        now_s = self.ctx.clock()
        uid, seen_s, _ = self.scheduled.get(key, (pod.metadata.uid, now_s, 0.0))
        if uid != pod.metadata.uid:   # a new pod under the name: its own count
            seen_s = now_s
        due_s = eviction_at_s(taints, pod.spec.tolerations, now_s, seen_s)
        if due_s is None:
            self._cancel(key, pod)
            return
        if now_s < due_s:
            self.scheduled[key] = (pod.metadata.uid, seen_s, due_s)
            self.enqueue_after(key, due_s - now_s)
            return
        self.scheduled.pop(key, None)
        await self._evict(key, pod)

    async def _evict(self, key: str, pod: Message) -> None:
        namespace, name = split_key(key)
        try:
            fresh = await self.client.get("pods", name, namespace)
            if fresh.metadata.uid != pod.metadata.uid or fresh.metadata.deletion_timestamp:
                return
            self.log.info("deleting a pod for a NoExecute taint", pod=key,
                          node=pod.spec.node_name)
            self.recorder.record(pod, NORMAL, EVICTION_REASON, f"Marking for deletion Pod {key}")
            if cu.get_condition(fresh.status, DISRUPTION_TARGET) is None:
                fresh.status.conditions.add(
                    type=DISRUPTION_TARGET, status="True", reason=DISRUPTION_REASON,
                    message=DISRUPTION_MESSAGE,
                    last_transition_time=timefmt.rfc3339(self.ctx.clock()))
                fresh = await self.client.update_status(fresh)
            await self.client.delete("pods", name, namespace, uid=fresh.metadata.uid)
        except errors.NotFound:
            return

