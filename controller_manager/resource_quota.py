"""The resource quota controller (kubernetes/pkg/controller/resourcequota).

Keeps each ResourceQuota's status: `hard` copied from spec.hard and `used`
recomputed from what exists in its namespace (kubemu.api.quota.compute_used),
so a charge the apiserver's quota admission made for an object whose own
write then failed is released, and a pod that finished (Succeeded/Failed) or
went away stops counting. Keys are quotas. A quota is synced when it is
created or its spec changes, when an object of a kind it may count is
added, deleted or changes its usage in its namespace (the replenishment
controller's job), and every `--resource-quota-sync-period-s` (Kubernetes'
5 minutes). Pods, Services, claims, ConfigMaps and Secrets are read from
shared informers; other kinds a `count/<resource>.<group>` names are listed
from the apiserver at sync time (their changes are seen at the next period).
The status is written conditioned on the quota's resourceVersion as the
cache saw it: a quota the apiserver charged meanwhile is a Conflict, and
the key is synced again.
"""
from __future__ import annotations

from typing import Sequence

from google.protobuf.message import Message

from controller_manager import controllerutil as cu
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy
from kubemu.api import quota as q
from kubemu.api.kinds import REGISTRY, Kind
from kubemu.client.informer import DeletedFinalStateUnknown, object_of

QUOTAS = "resourcequotas"
# Kinds whose changes replenish quotas at once (shared informers).
WATCHED = ("pods", "services", "persistentvolumeclaims", "configmaps", "secrets")


class ResourceQuotaController(Controller):
    name = "resourcequota-controller"
    aliases = ("resourcequota",)
    resources = (QUOTAS, *WATCHED)

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.quotas = self.informer(QUOTAS)
        self.quotas.add_handler(self.enqueue, self._quota_updated)
        self.watched = {resource: self.informer(resource) for resource in WATCHED}
        for resource, informer in self.watched.items():
            kind = REGISTRY.by_resource(resource)
            informer.add_handler(
                self._object_changed,
                lambda old, new, kind=kind: self._object_updated(kind, old, new),
                self._object_changed)

    # ------------------------------------------------------------ handlers

    def _quota_updated(self, old: Message, new: Message) -> None:
        # Our own status writes change nothing that needs another sync.
        if old.spec != new.spec or dict(new.status.hard) != dict(new.spec.hard):
            self.enqueue(new)

    def _object_changed(self, obj: Message | DeletedFinalStateUnknown) -> None:
        self._enqueue_namespace(object_of(obj).metadata.namespace)

    def _object_updated(self, kind: Kind, old: Message, new: Message) -> None:
        if q.object_usage(kind, old) != q.object_usage(kind, new):
            self._enqueue_namespace(new.metadata.namespace)

    def _enqueue_namespace(self, namespace: str) -> None:
        for quota in self.quotas.by_index(BY_NAMESPACE, namespace):
            self.enqueue(quota)

    def resync_period_s(self) -> float:
        return self.options.resource_quota_sync_period_s

    def resync(self) -> None:
        for quota in self.quotas.list():
            self.enqueue(quota)

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        quota = self.quotas.get(key)
        if quota is None or quota.metadata.deletion_timestamp:
            return
        namespace = quota.metadata.namespace
        listed: dict[Kind, list[Message]] = {}
        for name in quota.spec.hard:
            kind = q.kind_for_count(name, REGISTRY.kinds)
            if kind is not None and kind.resource not in self.watched and kind not in listed:
                listed[kind] = await self._list(kind, namespace)

        def objects(kind: Kind) -> Sequence[Message]:
            informer = self.watched.get(kind.resource)
            if informer is not None:
                return informer.by_index(BY_NAMESPACE, namespace)
            return listed.get(kind, [])

        used = q.compute_used(quota, objects, REGISTRY.kinds, self.ctx.clock())
        status = copy(quota.status)
        status.hard.clear()
        status.hard.update(quota.spec.hard)
        status.used.clear()
        status.used.update(q.format_list(used))
        await cu.write_status(self.client, quota, status)

    async def _list(self, kind: Kind, namespace: str) -> list[Message]:
        result = await self.client.list_all(kind.resource, namespace)
        return list(result.items)
