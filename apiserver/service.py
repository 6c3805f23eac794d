"""The gRPC face of the registry: kubemu.api.v1.Resources.

Requests are decoded here, handed to the ObjectRegistry or a WatchCache,
and every ApiError becomes a gRPC status in exactly one place (`_abort`):
code per kubemu.api.errors, the Kubernetes message as details, and the
reason in the `kubemu-reason` trailer so clients rebuild the same error.
"""
from __future__ import annotations

import functools
from importlib import metadata as importlib_metadata

import grpc
import structlog
from google.protobuf import any_pb2

from apiserver import filters
from apiserver.registry import ObjectRegistry
from apiserver.watchcache import BOOKMARK, WatchCache
from kubemu.api import errors
from kubemu.api.kinds import Registry
from kubemu.api.v1 import resources_pb2 as pb
from kubemu.api.v1 import resources_pb2_grpc as pb_grpc

log = structlog.get_logger()


def _version() -> str:
    try:
        return importlib_metadata.version("kubemu")
    except importlib_metadata.PackageNotFoundError:
        return "0.0.0+unknown"


async def _abort(context: grpc.aio.ServicerContext, err: errors.ApiError):
    await context.abort(err.code, err.message, trailing_metadata=((errors.REASON_KEY, err.reason),))


def _unary(method):
    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except errors.ApiError as err:
            await _abort(context, err)
    return wrapper


def _parse_rv(text: str) -> int:
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise errors.BadRequest(f'invalid resource version "{text}"') from None
    if value < 0:
        raise errors.BadRequest(f'invalid resource version "{text}"')
    return value


class ResourcesService(pb_grpc.ResourcesServicer):
    def __init__(self, objects: ObjectRegistry, caches: dict[str, WatchCache],
                 registry: Registry):
        self.objects = objects
        self.caches = caches
        self.registry = registry

    def _unpack(self, packed: any_pb2.Any):
        if not packed.type_url:
            raise errors.BadRequest("the request carries no object")
        return self.registry.unpack(packed)

    @_unary
    async def Create(self, request, context):
        kind = self.registry.by_resource(request.resource)
        obj = await self.objects.create(kind, request.namespace, self._unpack(request.object),
                                        dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(obj))

    @_unary
    async def Get(self, request, context):
        kind = self.registry.by_resource(request.resource)
        obj = await self.objects.get(kind, request.namespace, request.name)
        return pb.ObjectResponse(object=self.registry.pack(obj))

    @_unary
    async def List(self, request, context):
        kind = self.registry.by_resource(request.resource)
        predicate = filters.predicate(kind, request.label_selector, request.field_selector)
        items, revision, token, remaining = await self.objects.list(
            kind, request.namespace, predicate, request.limit, request.continue_token)
        response = pb.ListResponse(resource_version=str(revision), continue_token=token,
                                   remaining_item_count=max(remaining, 0))
        response.items.extend(self.registry.pack(item) for item in items)
        return response

    async def Watch(self, request, context):
        try:
            kind = self.registry.by_resource(request.resource)
            cache = self.caches[kind.resource]
            predicate = filters.predicate(kind, request.label_selector, request.field_selector)
            rv = _parse_rv(request.resource_version)
            watcher = await cache.watch(rv, request.namespace if kind.namespaced else "",
                                        predicate or (lambda obj: True),
                                        request.allow_watch_bookmarks)
        except errors.ApiError as err:
            await _abort(context, err)
            return
        try:
            while True:
                item = await watcher.next()
                if item is None:
                    if isinstance(watcher.closed, errors.Expired):
                        await _abort(context, watcher.closed)
                    return
                event_type, event = item
                if event_type == BOOKMARK:
                    marker = kind.message()
                    marker.metadata.resource_version = str(event.rv)
                    yield pb.WatchEvent(type=BOOKMARK, object=self.registry.pack(marker))
                else:
                    yield pb.WatchEvent(type=event_type, object=event.packed())
        finally:
            cache.remove(watcher)

    @_unary
    async def Update(self, request, context):
        obj = self._unpack(request.object)
        kind = self.registry.by_resource(request.resource)
        result = await self.objects.update(kind, obj, dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(result))

    @_unary
    async def UpdateStatus(self, request, context):
        obj = self._unpack(request.object)
        kind = self.registry.by_resource(request.resource)
        result = await self.objects.update(kind, obj, status=True, dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(result))

    @_unary
    async def Patch(self, request, context):
        kind = self.registry.by_resource(request.resource)
        if request.patch_type not in ("", "merge"):
            raise errors.BadRequest(
                f'patch type "{request.patch_type}" is not supported; use "merge"')
        result = await self.objects.patch(kind, request.namespace, request.name, request.patch,
                                          status=request.status, dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(result))

    @_unary
    async def Delete(self, request, context):
        kind = self.registry.by_resource(request.resource)
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        obj, deleted = await self.objects.delete(
            kind, request.namespace, request.name, grace_period_s=grace,
            propagation_policy=request.propagation_policy,
            uid=request.preconditions.uid,
            resource_version=request.preconditions.resource_version,
            dry_run=request.dry_run)
        return pb.DeleteResponse(object=self.registry.pack(obj), deleted=deleted)

    @_unary
    async def Bind(self, request, context):
        pod = await self.objects.bind(request.namespace, request.name, request.node_name,
                                      request.uid)
        return pb.ObjectResponse(object=self.registry.pack(pod))

    @_unary
    async def Discovery(self, request, context):
        response = pb.DiscoveryResponse(server_version=_version())
        for kind in self.registry.kinds:
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            response.resources.add(name=kind.resource, singular_name=kind.singular,
                                   short_names=list(kind.short_names),
                                   api_version=kind.api_version, kind=kind.kind,
                                   namespaced=kind.namespaced, verbs=verbs)
        return response
