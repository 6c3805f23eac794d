"""The pod garbage collector (kubernetes/pkg/controller/podgc), as
kube-controller-manager's `pod-garbage-collector-controller` (alias `podgc`).

Nothing else deletes a pod whose node is gone: with no kubelet left to
confirm a graceful deletion, it would stay (Running, counted by its
ReplicaSet) for ever. Every `Options.pod_gc_period_s` (Kubernetes'
gcCheckPeriod, 20 s) one pass over the informers' pods and nodes does, in
Kubernetes' order:

- terminated (Succeeded or Failed) pods beyond
  `--terminated-pod-gc-threshold` (12500; 0: never): the excess goes,
  evicted pods first, then the oldest by creationTimestamp (name breaks a
  tie);
- terminating pods on a node that is not Ready and has the
  `node.kubernetes.io/out-of-service` taint (an operator's word that the
  node is down for good: its kubelet will not confirm the deletions);
- orphaned pods: bound (spec.nodeName) to a node that is not in the cache,
  once that node has been missing for `Options.pod_gc_quarantine_s`
  (Kubernetes' quarantineTime, 40 s: an informer may lag behind a node just
  registered) and a GET of the Node answers NotFound;
- unscheduled terminating pods: a deletionTimestamp and no nodeName (no
  kubelet will ever confirm their deletion).

Each is deleted as markFailedAndDeletePod does: a pod not yet terminal is
first written Failed through the status subresource (an orphan also gets the
DisruptionTarget condition, reason DeletionByPodGC, "PodGC: node no longer
exists"), then deleted with gracePeriodSeconds 0 and its uid as a
precondition, so a pod recreated under the same name is never the one
deleted. Like Kubernetes it records no events, only logs.

Bounds: at most `Options.pod_gc_deletes_per_pass_max` pods are deleted per
pass, `DELETES_IN_FLIGHT_MAX` at a time; the quarantine holds only names of
nodes some pod is bound to. Every RPC has the client's deadline; a failure
is logged and the pod is looked at again next pass. The pass is one key
("pods") of the workqueue, enqueued at start and every period, so it never
runs twice at once. The decisions (`terminated_to_delete`,
`terminating_out_of_service`, `Quarantine`, `unscheduled_terminating`) are
pure functions of the lists and a clock.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Awaitable, Iterable, Mapping, Sequence

from google.protobuf.message import Message

from kubemu.api import errors

from controller_manager import controllerutil as cu
from controller_manager.base import Context, Controller, copy

PASS_KEY = "pods"
DELETES_IN_FLIGHT_MAX = 8

DISRUPTION_TARGET = "DisruptionTarget"
ORPHAN_REASON = "DeletionByPodGC"
ORPHAN_MESSAGE = "PodGC: node no longer exists"
TERMINAL_PHASES = ("Succeeded", "Failed")
EVICTED_REASON = "Evicted"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


def is_terminated(pod: Message) -> bool:
    return pod.status.phase in TERMINAL_PHASES


def is_evicted(pod: Message) -> bool:
    """The kubelet's eviction.PodIsEvicted: Failed with reason Evicted."""
    return pod.status.phase == "Failed" and pod.status.reason == EVICTED_REASON


def pod_key(pod: Message) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def is_node_ready(node: Message) -> bool:
    cond = cu.get_condition(node.status, "Ready")
    return cond is not None and cond.status == "True"


def eviction_order(pod: Message) -> tuple[bool, float, str]:
    """byEvictionAndCreationTimestamp: evicted first, then the oldest, then by name."""
    return (not is_evicted(pod), cu.created_s(pod), pod.metadata.name)


def terminated_to_delete(pods: Iterable[Message], threshold: int) -> list[Message]:
    """The terminated pods beyond `threshold` (<= 0: none), in the order they
    go (byEvictionAndCreationTimestamp: evicted first, then the oldest, then
    by name)."""
    if threshold <= 0:
        return []
    terminated = [p for p in pods if is_terminated(p)]
    excess = len(terminated) - threshold
    if excess <= 0:
        return []
    terminated.sort(key=eviction_order)
    return terminated[:excess]


def terminating_out_of_service(pods: Iterable[Message],
                               nodes: Mapping[str, Message]) -> list[Message]:
    """Pods being deleted on a known node that is not Ready and is tainted
    out-of-service, in eviction order."""
    def out_of_service(node: Message | None) -> bool:
        return (node is not None and not is_node_ready(node)
                and any(t.key == OUT_OF_SERVICE for t in node.spec.taints))
    return sorted((p for p in pods if p.metadata.deletion_timestamp
                   and out_of_service(nodes.get(p.spec.node_name))), key=eviction_order)


def unscheduled_terminating(pods: Iterable[Message]) -> list[Message]:
    """Pods being deleted that no node will ever confirm (no nodeName)."""
    return sorted((p for p in pods if p.metadata.deletion_timestamp and not p.spec.node_name),
                  key=pod_key)


def missing_nodes(pods: Iterable[Message], node_names: set[str]) -> set[str]:
    """The nodes pods are bound to that are not among `node_names`."""
    return {p.spec.node_name for p in pods
            if p.spec.node_name and p.spec.node_name not in node_names}


class Quarantine:
    """Since when each node pods are bound to has been missing from the cache.

    A node is due once it has been missing for `quarantine_s` without a
    break: one seen again (or no longer named by any pod) leaves, and starts
    again from zero if it goes missing later. Holds only the names `observe`
    was last given, so it is bounded by the pods' nodes.
    """

    def __init__(self, quarantine_s: float):
        self.quarantine_s = quarantine_s
        self.since_s: dict[str, float] = {}

    def observe(self, missing: set[str], now_s: float) -> list[str]:
        """Record the nodes missing now; the ones past their quarantine, sorted."""
        for name in [n for n in self.since_s if n not in missing]:
            del self.since_s[name]
        for name in missing:
            self.since_s.setdefault(name, now_s)
        return sorted(n for n, since_s in self.since_s.items()
                      if now_s - since_s >= self.quarantine_s)


@dataclasses.dataclass
class PassResult:
    """What one pass did (tests and logs)."""

    # Deletes this pass may still make (Options.pod_gc_deletes_per_pass_max).
    budget: int
    deleted: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    # Pods left for the next pass by the bound.
    deferred: int = 0


class PodGCController(Controller):
    name = "pod-garbage-collector-controller"
    aliases = ("podgc",)
    resources = ("pods", "nodes")
    default_workers = 1  # one pass at a time (Kubernetes: one gc goroutine)

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.pods = self.informer("pods")
        self.nodes = self.informer("nodes")
        self.quarantine = Quarantine(self.options.pod_gc_quarantine_s)
        self.last_pass: PassResult | None = None
        # The first pass runs as soon as the informers have synced (wait.Until).
        self.enqueue(PASS_KEY)

    def resync_period_s(self) -> float:
        return self.options.pod_gc_period_s

    def resync(self) -> None:
        self.enqueue(PASS_KEY)

    async def sync(self, key: str) -> None:
        self.last_pass = await self.gc(self.pods.list(), self.nodes.list())

    async def gc(self, pods: Sequence[Message], nodes: Sequence[Message]) -> PassResult:
        """One pass over these pods and nodes (the cache's, as the lister's)."""
        result = PassResult(budget=max(0, self.options.pod_gc_deletes_per_pass_max))
        threshold = self.options.terminated_pod_gc_threshold
        if threshold > 0:
            doomed = terminated_to_delete(pods, threshold)
            if doomed:
                self.log.info("Garbage collecting pods", numPods=len(doomed))
            await self._delete_all(doomed, result, condition=False)
        by_name = {n.metadata.name: n for n in nodes}
        await self._delete_all(terminating_out_of_service(pods, by_name), result,
                               condition=False,
                               found="Garbage collecting pod that is terminating")
        await self._gc_orphaned(pods, set(by_name), result)
        await self._delete_all(
            unscheduled_terminating(pods), result, condition=False,
            found="Found unscheduled terminating Pod not assigned to any Node, deleting",
            done="Forced deletion of unscheduled terminating Pod succeeded")
        if result.deferred:
            self.log.info("pods left for the next pass", pods=result.deferred,
                          deletes_per_pass_max=self.options.pod_gc_deletes_per_pass_max)
        return result

    async def _gc_orphaned(self, pods: Sequence[Message], node_names: set[str],
                           result: PassResult) -> None:
        due = self.quarantine.observe(missing_nodes(pods, node_names), self.ctx.monotonic())
        deleted_nodes = set()
        # Each node confirmed gone has a pod to delete: no more GETs than deletes left.
        for name in due[:result.budget]:
            try:
                await self.client.get("nodes", name)
            except errors.NotFound:
                deleted_nodes.add(name)
            except (errors.ApiError, TimeoutError, OSError) as exc:
                # Looked at again next pass.
                self.log.error("Error while getting node", node=name, error=str(exc))
        doomed = sorted((p for p in pods if p.spec.node_name in deleted_nodes), key=pod_key)
        await self._delete_all(doomed, result, condition=True,
                               found="Found orphaned Pod assigned to the Node, deleting",
                               done="Forced deletion of orphaned Pod succeeded")

    async def _delete_all(self, pods: Sequence[Message], result: PassResult, *,
                          condition: bool, found: str = "", done: str = "") -> None:
        """Delete `pods` (as many as the pass's budget allows), logging `found`
        before and `done` after each, as Kubernetes does."""
        take = pods[:result.budget]
        result.deferred += len(pods) - len(take)
        result.budget -= len(take)
        if found:
            for pod in take:
                self.log.info(found, pod=pod_key(pod), node=pod.spec.node_name)
        limit = asyncio.Semaphore(DELETES_IN_FLIGHT_MAX)

        async def one(pod: Message) -> None:
            async with limit:
                ok = await self._guarded(pod, self.mark_failed_and_delete(pod, condition))
            (result.deleted if ok else result.failed).append(pod_key(pod))
            if ok and done:
                self.log.info(done, pod=pod_key(pod))

        await asyncio.gather(*(one(p) for p in take))

    async def _guarded(self, pod: Message, call: Awaitable[None]) -> bool:
        try:
            await call
        except errors.NotFound:
            return True  # gone already (or recreated under a new uid): nothing to do
        except (errors.ApiError, TimeoutError, OSError) as exc:
            self.log.warning("failed to delete pod; trying again next pass", pod=pod_key(pod),
                             error=str(exc))
            return False
        return True

    async def mark_failed_and_delete(self, pod: Message, condition: bool) -> None:
        """markFailedAndDeletePod(WithCondition): Failed first (with the
        DisruptionTarget condition for an orphan), then a delete with grace 0."""
        namespace, name, uid = pod.metadata.namespace, pod.metadata.name, pod.metadata.uid
        self.log.info("PodGC is force deleting Pod", pod=pod_key(pod))
        if not is_terminated(pod):
            try:
                await self.client.update_status(self._failed(copy(pod), condition))
            except errors.Conflict:
                # The cache was behind: write on the pod as it is now, if it is
                # still the same pod and not terminal yet.
                fresh = await self.client.get("pods", name, namespace)
                if fresh.metadata.uid != uid:
                    return
                if not is_terminated(fresh):
                    await self.client.update_status(self._failed(fresh, condition))
        await self.client.delete("pods", name, namespace, grace_period_s=0, uid=uid)

    def _failed(self, pod: Message, condition: bool) -> Message:
        """`pod` (changed in place) with phase Failed, and the orphan's
        DisruptionTarget condition when `condition`."""
        pod.status.phase = "Failed"
        if condition:
            cu.set_condition(pod.status, DISRUPTION_TARGET, "True", ORPHAN_REASON,
                             ORPHAN_MESSAGE, self.ctx.clock())
        return pod
