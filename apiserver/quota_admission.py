"""The ResourceQuota admission plug-in (Kubernetes'
plugin/pkg/admission/resourcequota): the last step before an object is
stored, on create (every namespaced kind) and on update (Services and
PersistentVolumeClaims, whose usage an update can change).

Contract: the quotas of the object's namespace are read from the store (not
a cache) so their resourceVersion is current; kubemu.api.quota.check decides
(Forbidden with Kubernetes' message, or the new status.used of each quota
charged); each charged quota's status is then written conditioned on the
resourceVersion read. A write that loses to a concurrent one reads the
quotas again and decides again (bounded), so concurrent creates cannot
charge past a quota's hard limit. A charge made for an object whose own
write then fails stays until the resource quota controller recomputes
status.used from what exists, as in Kubernetes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api import quota as q
from kubemu.api.kinds import Kind

if TYPE_CHECKING:
    from apiserver.registry import ObjectRegistry

RESOURCE_QUOTAS = "resourcequotas"
CHARGE_RETRIES = 20
UPDATE_KINDS = ("Service", "PersistentVolumeClaim")


class QuotaAdmission:
    def __init__(self, objects: ObjectRegistry):
        self.objects = objects
        self.quota_kind = objects.registry.by_resource(RESOURCE_QUOTAS)

    def handles(self, kind: Kind, old: Message | None) -> bool:
        if not kind.namespaced:
            return False
        return old is None or (kind.group == "" and kind.kind in UPDATE_KINDS)

    def _may_apply(self, kind: Kind, namespace: str) -> bool:
        """A cheap look at the watch cache (as Kubernetes' quota admission
        reads an informer): no quota there limiting anything `kind` counts
        toward, no store read. Objects most kinds' creates never pay for."""
        cache = self.objects.caches.get(RESOURCE_QUOTAS)
        if cache is None or not cache.ready.is_set():
            return True
        prefix = namespace + "/"
        return any(key.startswith(prefix)
                   and q.matching_resources(kind, list(quota.spec.hard) + list(quota.status.hard))
                   for key, quota in cache.objects.items())

    async def _quotas(self, namespace: str) -> list[Message]:
        items, _, _, _ = await self.objects.list(self.quota_kind, namespace, None, 0, "")
        return sorted(items, key=lambda x: x.metadata.name)

    async def admit(self, kind: Kind, obj: Message, old: Message | None, *,
                    dry_run: bool) -> None:
        """Check `obj` (over `old`) against its namespace's quotas and charge them."""
        if not self.handles(kind, old):
            return
        namespace = obj.metadata.namespace
        if not self._may_apply(kind, namespace):
            return
        charged_already: set[str] = set()
        for _ in range(CHARGE_RETRIES):
            quotas = [x for x in await self._quotas(namespace)
                      if x.metadata.name not in charged_already]
            try:
                charges = q.check(kind, obj, old, quotas)
            except q.Refused as refused:
                raise errors.Forbidden(f'{kind.qualified_resource} "{obj.metadata.name}" '
                                       f"is forbidden: {refused}") from None
            if dry_run or not charges:
                return
            lost = False
            for quota in quotas:
                used = charges.get(quota.metadata.name)
                if used is None:
                    continue
                new = type(quota)()
                new.CopyFrom(quota)
                new.status.used.clear()
                new.status.used.update(q.format_list(used))
                try:
                    await self.objects.update(self.quota_kind, new, status=True)
                except (errors.Conflict, errors.NotFound):
                    lost = True
                    break
                charged_already.add(quota.metadata.name)
            if not lost:
                return
        raise errors.Conflict(
            f'Operation cannot be fulfilled on {RESOURCE_QUOTAS} "{namespace}": '
            "too many concurrent quota updates; please try again")
