"""A fake Client for controller tests: the calls controllers make, served by
the apiserver's own ObjectRegistry over the in-memory store, so finalizers,
preconditions, status subresources and conflicts behave as the apiserver's.
Every write is logged in `writes`. `ControllerHarness` runs one controller
on it with informers fed by hand, so a test can make the cache stale on
purpose, as it is for a while after every write."""
from __future__ import annotations

import json
import random

from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from controller_manager.base import Context, Controller, Options
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from kubemu.client.clientset import DeleteResult
from kubemu.loops import Loops

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


class ControllerHarness:
    """One controller on a StoreClient, its informers filled by `cache`."""

    def __init__(self, controller: type[Controller]):
        self.registry = memory_registry()
        self.client = StoreClient(self.registry)
        self.ctx = Context(self.client, Options(apiserver="-"), Loops(), clock=lambda: NOW_S)
        self.controller = controller(self.ctx)

    async def start(self) -> None:
        await self.registry.create(REGISTRY.by_resource("namespaces"), "",
                                   core_pb2.Namespace(metadata={"name": "default"}))

    def cache(self, resource: str, items) -> None:
        """What the informer of `resource` holds (handlers run as for a relist)."""
        informer = self.ctx.informers.get(resource)
        informer._replace(list(items))
        informer.has_synced.set()

    async def stop(self) -> None:
        await self.ctx.stop()
