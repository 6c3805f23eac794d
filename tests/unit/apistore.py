"""A fake Client for controller tests: the calls controllers make, served by
the apiserver's own ObjectRegistry over the in-memory store, so finalizers,
preconditions, status subresources and conflicts behave as the apiserver's.
Every write is logged in `writes`."""
from __future__ import annotations

import json
import random

from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import DeleteResult

NOW_S = 1_800_000_000.0


def memory_registry(now_s: float = NOW_S) -> ObjectRegistry:
    return ObjectRegistry(MemoryStore(), {}, rng=random.Random(7), clock=lambda: now_s)


class StoreClient:
    def __init__(self, registry: ObjectRegistry):
        self.registry = registry
        self.writes: list[tuple] = []

    async def get(self, resource, name, namespace=""):
        return await self.registry.get(REGISTRY.resolve(resource), namespace, name)

    async def create(self, obj):
        kind = REGISTRY.by_message(obj)
        return await self.registry.create(kind, obj.metadata.namespace, obj)

    async def update(self, obj):
        self.writes.append(("update", obj.metadata.name, obj.metadata.resource_version))
        return await self.registry.update(REGISTRY.by_message(obj), obj)

    async def update_status(self, obj):
        self.writes.append(("update_status", obj.metadata.name, obj.metadata.resource_version))
        return await self.registry.update(REGISTRY.by_message(obj), obj, status=True)

    async def patch(self, resource, name, namespace="", *, patch, status=False, dry_run=False):
        return await self.registry.patch(REGISTRY.resolve(resource), namespace, name,
                                         json.dumps(patch))

    async def delete(self, resource, name, namespace="", *, grace_period_s=None,
                     propagation_policy="", uid="", resource_version="", **_):
        self.writes.append(("delete", name, propagation_policy, bool(uid),
                            bool(resource_version)))
        out, deleted = await self.registry.delete(
            REGISTRY.resolve(resource), namespace, name, grace_period_s=grace_period_s,
            propagation_policy=propagation_policy, uid=uid, resource_version=resource_version)
        return DeleteResult(object=out, deleted=deleted)

    async def list_all(self, resource, namespace="", **_):
        kind = REGISTRY.resolve(resource)
        items, _, _, _ = await self.registry.list(kind, namespace, None, 0, "")
        return items
