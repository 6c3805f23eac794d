"""The namespace controller (kubernetes/pkg/controller/namespace and its
deletion/namespaced_resources_deleter.go).

A namespace with a deletionTimestamp is emptied, then finalized:
- its status is made phase Terminating (the apiserver sets it on delete; this
  keeps it so after any writer);
- every object of every namespaced kind the apiserver serves (the kinds
  registry; a kind the server answers NotFound for is skipped, as discovery
  would not list it) is deleted through the API with propagationPolicy
  Background, as Kubernetes' deleter asks (a Job's own default would orphan
  its pods); pods keep their grace period, so their kubelets stop them;
- what remains is counted per resource and per finalizer, and the five
  conditions Kubernetes keeps (NamespaceDeletionDiscoveryFailure,
  NamespaceDeletionGroupVersionParsingFailure, NamespaceDeletionContentFailure,
  NamespaceContentRemaining, NamespaceFinalizersRemaining) are written with
  its reasons and messages when they change;
- while content remains the key comes back after estimate/2 + 1 s (the
  estimate: the longest terminationGracePeriodSeconds of the pods not yet
  past it since the deletion, else 15 s when finalizers hold objects), as
  Kubernetes requeues; an object left without grace or finalizer (a pod its
  kubelet has not removed by the end of its grace, too) is a content failure
  ("unexpected items still remain"), retried with the workqueue's backoff;
- once nothing is left, the `kubernetes` finalizer is removed through
  namespaces/finalize, and the apiserver deletes the namespace.

One addition to Kubernetes' controller: a pod deleted from a terminating
namespace brings the namespace back after `POD_GONE_DELAY_S` (coalesced by
the workqueue), so a namespace goes soon after its last pod rather than up to
half a grace period later. Syncs are idempotent; each reads the namespace
from the apiserver first (several writers edit a terminating namespace).
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Iterable

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import errors
from kubemu.api.kinds import REGISTRY, Kind
from kubemu.api.v1 import core_pb2
from kubemu.client.informer import DeletedFinalStateUnknown, object_of

from controller_manager import controllerutil as cu
from controller_manager.base import Context, Controller, split_key

NAMESPACE_FINALIZER = "kubernetes"
PROPAGATION = "Background"
# Kubernetes' finalizerEstimateSeconds: the wait when finalizers hold content.
FINALIZER_ESTIMATE_S = 15
# Deletes in flight per namespace sync (bounded, so one big namespace does
# not monopolise the apiserver).
DELETES_IN_FLIGHT_MAX = 16
# kubemu's addition: a pod gone from a terminating namespace brings the
# namespace back after this (one sync for a burst of pod deletions).
POD_GONE_DELAY_S = 0.5

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GV_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
CONDITION_TYPES = (DISCOVERY_FAILURE, GV_PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING,
                   FINALIZERS_REMAINING)
# status_condition_utils.go: what each condition says when all is well.
OK_MESSAGES = {
    DISCOVERY_FAILURE: "All resources successfully discovered",
    GV_PARSING_FAILURE: "All legacy kube types successfully parsed",
    CONTENT_FAILURE: "All content successfully deleted, may be waiting on finalization",
    CONTENT_REMAINING: "All content successfully removed",
    FINALIZERS_REMAINING: "All content-preserving finalizers finished",
}
OK_REASONS = {
    DISCOVERY_FAILURE: "ResourcesDiscovered",
    GV_PARSING_FAILURE: "ParsedGroupVersions",
    CONTENT_FAILURE: "ContentDeleted",
    CONTENT_REMAINING: "ContentRemoved",
    FINALIZERS_REMAINING: "ContentHasNoFinalizers",
}


@dataclasses.dataclass
class Totals:
    """What one pass over the namespace's content found (allGVRDeletionMetadata)."""

    # "<resource>.<group>" -> objects still there.
    remaining: dict[str, int] = dataclasses.field(default_factory=dict)
    # finalizer -> objects it still holds.
    finalizers: dict[str, int] = dataclasses.field(default_factory=dict)
    # Seconds until content is expected gone (0: nothing to wait for).
    estimate_s: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


def content_conditions(totals: Totals) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the True conditions `totals` calls for
    (ProcessContentTotals and the content errors of Update)."""
    out = []
    remaining = sorted(f"{gr} has {n} resource instances"
                       for gr, n in totals.remaining.items() if n)
    if remaining:
        out.append((CONTENT_REMAINING, "SomeResourcesRemain",
                    f"Some resources are remaining: {', '.join(remaining)}"))
    held = sorted(f"{f} in {n} resource instances" for f, n in totals.finalizers.items() if n)
    if held:
        out.append((FINALIZERS_REMAINING, "SomeFinalizersRemain",
                    f"Some content in the namespace has finalizers remaining: {', '.join(held)}"))
    if totals.errors:
        joined = totals.errors[0] if len(totals.errors) == 1 else f"[{', '.join(totals.errors)}]"
        out.append((CONTENT_FAILURE, "ContentDeletionFailed",
                    f"Failed to delete all resource types, {len(totals.errors)} remaining: "
                    f"{joined}"))
    return out


def update_conditions(status: Message, failing: Iterable[tuple[str, str, str]],
                      now: str) -> bool:
    """Make status.conditions hold every condition type: True with the
    reason/message of `failing`, else False with Kubernetes' ok ones. The
    transition time moves only when the status does. Whether anything changed."""
    wanted = {kind: ("True", reason, message) for kind, reason, message in failing}
    changed = False
    for kind in CONDITION_TYPES:
        state, reason, message = wanted.get(kind, ("False", OK_REASONS[kind], OK_MESSAGES[kind]))
        old = next((c for c in status.conditions if c.type == kind), None)
        if old is None:
            status.conditions.add(type=kind, status=state, last_transition_time=now,
                                  reason=reason, message=message)
            changed = True
        elif (old.status, old.reason, old.message) != (state, reason, message):
            if old.status != state:
                old.last_transition_time = now
            old.status, old.reason, old.message = state, reason, message
            changed = True
    return changed


def pods_grace_estimate_s(pods: Iterable[Message], deleted_at_s: float, now_s: float) -> int:
    """estimateGracefulTerminationForPods: the longest grace of the pods not
    yet finished, or 0 when the deletion is older than that."""
    estimate = 0
    for pod in pods:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        if pod.spec.HasField("termination_grace_period_seconds"):
            estimate = max(estimate, pod.spec.termination_grace_period_seconds)
    return 0 if now_s - deleted_at_s >= estimate else estimate


def group_resource(kind: Kind) -> str:
    """Kubernetes' "<resource>.<group>" ("pods." for the core group)."""
    return f"{kind.resource}.{kind.group}"


class NamespaceController(Controller):
    name = "namespace-controller"
    aliases = ("namespace",)
    default_workers = 10  # --concurrent-namespace-syncs
    resources = ("namespaces", "pods")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.namespaces = self.informer("namespaces")
        self.namespaces.add_handler(self._maybe_enqueue,
                                    lambda _old, new: self._maybe_enqueue(new))
        self.informer("pods").add_handler(on_delete=self._pod_gone)

    def _maybe_enqueue(self, ns: Message) -> None:
        if ns.metadata.deletion_timestamp:
            self.enqueue(ns)

    def _pod_gone(self, pod: Message | DeletedFinalStateUnknown) -> None:
        namespace = object_of(pod).metadata.namespace
        ns = self.namespaces.get(namespace) if namespace else None
        if ns is not None and ns.metadata.deletion_timestamp:
            self.enqueue_after(namespace, POD_GONE_DELAY_S)

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        try:
            ns = await self.client.get("namespaces", name)
        except errors.NotFound:
            return
        if not ns.metadata.deletion_timestamp:
            return
        if ns.status.phase != "Terminating":
            ns.status.phase = "Terminating"
            try:
                ns = await self.client.update_status(ns)
            except errors.NotFound:
                return
        if NAMESPACE_FINALIZER not in ns.spec.finalizers:
            return  # finalized by us already; other finalizers are not ours
        totals = await self.delete_all_content(ns)
        status = core_pb2.NamespaceStatus()
        status.CopyFrom(ns.status)
        if update_conditions(status, content_conditions(totals), timefmt.rfc3339(self.ctx.clock())):
            fresh = core_pb2.Namespace()
            fresh.CopyFrom(ns)
            fresh.status.CopyFrom(status)
            try:
                await self.client.update_status(fresh)
            except errors.NotFound:
                return
            except errors.ApiError as exc:  # as Kubernetes: the conditions are best effort
                self.log.info("cannot write namespace conditions", namespace=name, error=str(exc))
        if totals.errors:
            raise errors.Internal("; ".join(totals.errors))
        if totals.estimate_s > 0:
            self.log.debug("content remaining in namespace", namespace=name,
                           wait_s=totals.estimate_s // 2 + 1)
            self.enqueue_after(key, totals.estimate_s // 2 + 1)
            return
        await self._finalize(name)

    async def _finalize(self, name: str) -> None:
        """Remove our finalizer through namespaces/finalize, on a fresh read."""
        for _ in range(3):
            try:
                ns = await self.client.get("namespaces", name)
            except errors.NotFound:
                return
            if NAMESPACE_FINALIZER not in ns.spec.finalizers:
                return
            ns.spec.finalizers.remove(NAMESPACE_FINALIZER)
            try:
                await self.client.finalize(ns)
                self.log.info("namespace emptied and finalized", namespace=name)
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                continue
        raise errors.conflict("namespaces", name, "the namespace kept changing")

    async def delete_all_content(self, ns: Message) -> Totals:
        """Delete every namespaced object in `ns`; what remains, and why."""
        totals = Totals()
        namespace = ns.metadata.name
        deleted_at_s = cu.time_s(ns.metadata.deletion_timestamp) or self.ctx.clock()
        limit = asyncio.Semaphore(DELETES_IN_FLIGHT_MAX)
        for kind in (k for k in REGISTRY.kinds if k.namespaced and k.stored):
            try:
                estimate = await self._delete_kind(kind, namespace, deleted_at_s, limit, totals)
            except errors.NotFound:
                continue  # the server does not serve this kind
            except (errors.ApiError, TimeoutError, OSError) as exc:
                totals.errors.append(str(exc))
                continue
            totals.estimate_s = max(totals.estimate_s, estimate)
        return totals

    async def _delete_kind(self, kind: Kind, namespace: str, deleted_at_s: float,
                           limit: asyncio.Semaphore, totals: Totals) -> int:
        """deleteAllContentForGroupVersionResource: the seconds to wait for it."""
        items = (await self.client.list_all(kind.resource, namespace)).items
        if not items:
            return 0
        estimate = 0
        if kind.resource == "pods":
            estimate = pods_grace_estimate_s(items, deleted_at_s, self.ctx.clock())

        async def delete(obj: Message) -> None:
            async with limit:
                try:
                    await self.client.delete(kind.resource, obj.metadata.name, namespace,
                                             propagation_policy=PROPAGATION)
                except errors.NotFound:
                    pass

        failures = [r for r in await asyncio.gather(
            *(delete(o) for o in items if not o.metadata.deletion_timestamp),
            return_exceptions=True) if isinstance(r, BaseException)]
        if failures:
            raise failures[0] if isinstance(failures[0], Exception) else errors.Internal(
                str(failures[0]))
        # What is left after the deletes (an object created meanwhile is seen too).
        left = (await self.client.list_all(kind.resource, namespace)).items
        if not left:
            return 0
        totals.remaining[group_resource(kind)] = len(left)
        held = False
        for obj in left:
            for finalizer in obj.metadata.finalizers:
                totals.finalizers[finalizer] = totals.finalizers.get(finalizer, 0) + 1
                held = True
        if estimate:
            return estimate
        if held:
            return FINALIZER_ESTIMATE_S
        totals.errors.append(f"unexpected items still remain in namespace: {namespace} "
                             f"for gvr: {kind.group}/{kind.version}, "
                             f"Resource={kind.resource}")
        return 0
