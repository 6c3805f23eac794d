"""The ReplicaSet controller (kubernetes/pkg/controller/replicaset).

Handlers only enqueue ReplicaSet keys, and keep the expectations: a pod that
appears with our controller reference is an observed creation, one that goes
(or starts terminating) an observed deletion. An orphan pod enqueues every
ReplicaSet of its namespace whose selector matches it (one of them adopts it).

sync(key): claim the active pods of the namespace (adopt matching orphans,
release ours that stopped matching); when the expectations are satisfied,
create or delete pods to match spec.replicas, at most `BURST_REPLICAS` per
sync: creates in slow-start batches 1, 2, 4, ..., deletes the pods
`rank_for_deletion` puts first; then write the status (replicas,
fullyLabeledReplicas, readyReplicas, availableReplicas with minReadySeconds,
observedGeneration, the ReplicaFailure condition -- FailedCreate or
FailedDelete -- while creates or deletes are refused).
"""
from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf.message import Message

from kubemu.api import errors, labels
from kubemu.client.informer import meta_namespace_key

from controller_manager import controllerutil as cu
from controller_manager.base import (BY_CONTROLLER_UID, BY_NAMESPACE, Context, Controller, copy,
                                     split_key)
from controller_manager.expectations import Expectations

# kube-controller-manager's BurstReplicas: creates or deletes per sync.
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    aliases = ("replicaset",)
    resources = ("replicasets", "pods")
    # What it controls (the ReplicationController variant would differ here).
    owner_resource = "replicasets"
    owner_kind = "ReplicaSet"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.expectations = Expectations(ttl_s=ctx.options.expectations_ttl_s,
                                         clock=ctx.monotonic)
        self.owners = self.informer(self.owner_resource)
        self.pods = self.informer("pods")
        self.events = cu.DependentEvents(self.owners, self.owner_kind, self.expectations,
                                         self.enqueue, self.enqueue_after)
        self.pod_control = cu.PodControl(self.client, self.recorder, self.expectations)
        self.owners.add_handler(self.enqueue, lambda _old, new: self.enqueue(new),
                                self.events.on_owner_delete)
        self.pods.add_handler(self.events.on_add, self.events.on_update, self.events.on_delete)

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        namespace, _ = split_key(key)
        selector = labels.from_label_selector(owner.spec.selector)
        active = [p for p in self.pods.by_index(BY_NAMESPACE, namespace) if cu.is_pod_active(p)]
        claimed = await cu.claim(self.client, owner, selector, active)
        pods = claimed.objects
        manage_error: BaseException | None = None
        if needs_sync and not owner.metadata.deletion_timestamp:
            manage_error = await self._manage(owner, key, pods)
        await self._update_status(owner, pods, manage_error)
        if manage_error is not None:
            raise manage_error

    async def _manage(self, owner: Message, key: str, pods: list[Message]) -> BaseException | None:
        diff = len(pods) - owner.spec.replicas
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            successes, error = await cu.slow_start_batch(
                count, SLOW_START_INITIAL_BATCH,
                lambda: self.pod_control.create(owner, cu.pod_from_template(
                    owner.spec.template, owner)))
            if error is not None:
                # The creates that failed or never ran will not be observed.
                self.expectations.lower_creations(key, count - successes)
                # A terminating namespace takes no pods: nothing to retry.
                return None if errors.is_namespace_terminating(error) else error
            return None
        if diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = cu.rank_for_deletion(pods, self._related_pods(owner),
                                           self.ctx.clock())[:count]
            self.expectations.expect_deletions(key, [meta_namespace_key(p) for p in victims])
            results = await asyncio.gather(*(self.pod_control.delete(owner, p) for p in victims),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    return result
        return None

    def _related_pods(self, owner: Message) -> list[Message]:
        """getIndirectlyRelatedPods: the pods of every ReplicaSet controlled by
        the same owner as `owner` (its Deployment), so that a scale-down of an
        old ReplicaSet prefers nodes crowded with the Deployment's pods; none
        when `owner` has no controller."""
        ref = cu.controller_of(owner)
        if ref is None:
            return []
        in_namespace = self.pods.by_index(BY_NAMESPACE, owner.metadata.namespace)
        related: dict[str, Message] = {}
        for sibling in self.owners.by_index(BY_CONTROLLER_UID, ref.uid):
            try:
                selector = labels.from_label_selector(sibling.spec.selector)
            except errors.ApiError:
                continue  # an invalid selector matches no pods
            for pod in in_namespace:
                if selector.matches(pod.metadata.labels):
                    related.setdefault(pod.metadata.uid, pod)
        return list(related.values())

    # ------------------------------------------------------------ status

    def _status(self, owner: Message, pods: list[Message],
                manage_error: BaseException | None) -> Any:
        now = self.ctx.clock()
        template_labels = owner.spec.template.metadata.labels
        status = copy(owner.status)
        status.replicas = len(pods)
        status.fully_labeled_replicas = sum(
            1 for p in pods if all(p.metadata.labels.get(k) == v
                                   for k, v in template_labels.items()))
        status.ready_replicas = sum(1 for p in pods if cu.is_pod_ready(p))
        status.available_replicas = sum(
            1 for p in pods if cu.is_pod_available(p, owner.spec.min_ready_seconds, now))
        status.observed_generation = owner.metadata.generation
        failure = cu.get_condition(status, "ReplicaFailure")
        if manage_error is not None and failure is None:
            # calculateStatus: the first failure is kept until a sync succeeds.
            diff = len(pods) - owner.spec.replicas
            reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
            cu.set_condition(status, "ReplicaFailure", "True", reason, str(manage_error), now)
        elif manage_error is None and failure is not None:
            cu.remove_condition(status, "ReplicaFailure")
        return status

    async def _update_status(self, owner: Message, pods: list[Message],
                             manage_error: BaseException | None) -> None:
        status = self._status(owner, pods, manage_error)
        spec = owner.spec
        if (spec.min_ready_seconds > 0 and status.ready_replicas == spec.replicas
                and status.available_replicas != spec.replicas):
            self.enqueue_after(owner, spec.min_ready_seconds)
        await cu.write_status(self.client, owner, status)
