"""The gRPC face of the registry: kubemu.api.v1.Resources.

Requests are decoded here, handed to the ObjectRegistry or a WatchCache,
and every ApiError becomes a gRPC status in one place (kubemu.server.abort):
code per kubemu.api.errors, the Kubernetes message as details, and the
reason in the `kubemu-reason` trailer so clients rebuild the same error.
"""
from __future__ import annotations

import collections
from importlib import metadata as importlib_metadata

import grpc
import structlog
from google.protobuf import any_pb2

from apiserver import filters
from apiserver import metrics as metrics_api
from apiserver.eviction import Evictor
from apiserver.registry import ObjectRegistry
from apiserver.strategy import pod as pod_strategy
from apiserver.watchcache import BOOKMARK, WatchCache
from kubemu import server as grpc_server
from kubemu import streams
from kubemu.api import errors
from kubemu.api.kinds import Registry
from kubemu.api.v1 import resources_pb2 as pb
from kubemu.api.v1 import resources_pb2_grpc as pb_grpc
from kubemu.kubelet.v1 import kubelet_pb2_grpc

log = structlog.get_logger()


def _version() -> str:
    try:
        return importlib_metadata.version("kubemu")
    except importlib_metadata.PackageNotFoundError:
        return "0.0.0+unknown"


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


# pods/log, pods/exec, pods/attach, pods/portforward and node stats go to the node's kubelet (kubemu.kubelet.v1).
KUBELET_CHANNELS_MAX = 64
KUBELET_CALL_TIMEOUT_S = 30.0


def _kubelet_error(address: str, err: grpc.aio.AioRpcError) -> errors.ApiError:
    """The kubelet's own errors pass through; not reaching it is the apiserver's problem."""
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and \
            not any(key == errors.REASON_KEY for key, _ in (err.trailing_metadata() or ())):
        return errors.Internal(f"error talking to the kubelet at {address}: "
                               f"{err.code().name}: {err.details()}")
    return errors.from_rpc_error(err)


class ResourcesService(pb_grpc.ResourcesServicer):
    def __init__(self, objects: ObjectRegistry, caches: dict[str, WatchCache],
                 registry: Registry, *,
                 metric_resolution_s: float = metrics_api.DEFAULT_RESOLUTION_S):
        self.objects = objects
        self.caches = caches
        self.registry = registry
        self._kubelets: collections.OrderedDict[str, tuple[grpc.aio.Channel, object]] = \
            collections.OrderedDict()
        self._evictor: Evictor | None = None
        self.metrics = metrics_api.MetricsAPI(registry, self._cached_objects, self._node_stats,
                                              resolution_s=metric_resolution_s)

    async def _cached_objects(self, kind, namespace: str) -> list:
        objects = self.caches[kind.resource].objects.values()
        return [o for o in objects if not namespace or o.metadata.namespace == namespace]

    async def _node_stats(self, node: str, timeout_s: float) -> pb.NodeStatsResponse:
        address, stub = await self._kubelet(node)
        try:
            return await stub.Stats(pb.NodeStatsRequest(node=node), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            raise _kubelet_error(address, err) from None

    @staticmethod
    def _writable(kind, verb: str):
        """The kind, unless it is computed on read (the metrics API): get and list only."""
        if not kind.stored:
            raise errors.method_not_supported(kind.qualified_resource, verb)
        return kind

    async def _kubelet(self, node_name: str) -> tuple[str, kubelet_pb2_grpc.KubeletStub]:
        """The node's kubelet: its InternalIP and status.daemonEndpoints.kubeletEndpoint.Port."""
        node = await self.objects.get(self.registry.by_resource("nodes"), "", node_name)
        ip = next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")
        port = node.status.daemon_endpoints.kubelet_endpoint.port
        if not ip or not port:
            raise errors.BadRequest(f'node "{node_name}" does not report a kubelet endpoint')
        address = f"{ip}:{port}"
        if address in self._kubelets:
            self._kubelets.move_to_end(address)
        else:
            # A restarted kubelet is reached again within a second, not after
            # gRPC's default reconnect back-off (up to two minutes).
            channel = grpc.aio.insecure_channel(address, options=[
                ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000)])
            self._kubelets[address] = (channel, kubelet_pb2_grpc.KubeletStub(channel))
            while len(self._kubelets) > KUBELET_CHANNELS_MAX:
                _, (old, _stub) = self._kubelets.popitem(last=False)
                await old.close()
        return address, self._kubelets[address][1]

    async def _pod_kubelet(self, namespace: str, name: str
                           ) -> tuple[str, kubelet_pb2_grpc.KubeletStub]:
        pod = await self.objects.get(self.registry.by_resource("pods"), namespace, name)
        if not pod.spec.node_name:
            raise errors.BadRequest(f"pod {name} does not have a host assigned")
        return await self._kubelet(pod.spec.node_name)

    @staticmethod
    def _timeout_s(context: grpc.aio.ServicerContext, default_s: float | None) -> float | None:
        remaining = context.time_remaining()
        return remaining if remaining is not None else default_s

    async def PodLogs(self, request, context):
        try:
            address, stub = await self._pod_kubelet(request.namespace or "default", request.name)
        except errors.ApiError as err:
            await grpc_server.abort(context, err)
            return
        # A follow lasts as long as the caller's deadline allows (none: until the container ends).
        call = stub.ContainerLogs(request, timeout=self._timeout_s(
            context, None if request.follow else KUBELET_CALL_TIMEOUT_S))
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as err:
            await grpc_server.abort(context, _kubelet_error(address, err))
        finally:
            call.cancel()

    @grpc_server.unary_errors
    async def PodExec(self, request, context):
        address, stub = await self._pod_kubelet(request.namespace or "default", request.name)
        default_s = (request.timeout_s + 5.0) if request.timeout_s > 0 else 300.0
        try:
            return await stub.Exec(request, timeout=self._timeout_s(context, default_s))
        except grpc.aio.AioRpcError as err:
            raise _kubelet_error(address, err) from None

    async def PodExecStream(self, request_iterator, context):
        await self._proxy_session(context, "ExecStream")

    async def PodAttach(self, request_iterator, context):
        await self._proxy_session(context, "Attach")

    async def PodPortForward(self, request_iterator, context):
        # One forwarded TCP connection, relayed like a session: the kubelet
        # connects to the pod and carries its bytes.
        await self._proxy_session(context, "PortForward")

    async def _proxy_session(self, context: grpc.aio.ServicerContext, method: str) -> None:
        """An interactive session relayed, unchanged, to the pod's kubelet (kubemu.streams):
        the target within the set-up deadline, the kubelet's `started` within its
        own, then both directions until the kubelet ends the session. A client
        that goes away cancels the kubelet's call."""
        address, call = "", None
        try:
            first = await streams.read_first(context, streams.SETUP_TIMEOUT_S)
            if streams.input_kind(first) != "target":
                raise errors.BadRequest("the first message of a session must name its target")
            target = first.target
            address, stub = await self._pod_kubelet(target.namespace or "default", target.name)
            call = getattr(stub, method)()
            await call.write(first)
            await context.write(await streams.read_first(call, streams.setup_timeout_s(1)))
            await streams.relay(context, call)
        except errors.ApiError as err:
            await grpc_server.abort(context, err)
        except (streams.ProtocolError, streams.SetupTimeout) as err:
            await grpc_server.abort(context, errors.BadRequest(str(err)))
        except grpc.aio.AioRpcError as err:
            await grpc_server.abort(context, _kubelet_error(address, err))
        finally:
            if call is not None:
                call.cancel()

    @grpc_server.unary_errors
    async def NodeStats(self, request, context):
        address, stub = await self._kubelet(request.node)
        try:
            return await stub.Stats(request, timeout=self._timeout_s(
                context, KUBELET_CALL_TIMEOUT_S))
        except grpc.aio.AioRpcError as err:
            raise _kubelet_error(address, err) from None

    def _unpack(self, packed: any_pb2.Any):
        if not packed.type_url:
            raise errors.BadRequest("the request carries no object")
        return self.registry.unpack(packed)

    @grpc_server.unary_errors
    async def Create(self, request, context):
        kind = self._writable(self.registry.by_resource(request.resource), "create")
        obj = await self.objects.create(kind, request.namespace, self._unpack(request.object),
                                        dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(obj))

    @grpc_server.unary_errors
    async def Get(self, request, context):
        kind = self.registry.by_resource(request.resource)
        if not kind.stored:
            obj = await self.metrics.get(kind, request.namespace or "default", request.name)
            return pb.ObjectResponse(object=self.registry.pack(obj))
        obj = await self.objects.get(kind, request.namespace, request.name)
        return pb.ObjectResponse(object=self.registry.pack(obj))

    @grpc_server.unary_errors
    async def List(self, request, context):
        kind = self.registry.by_resource(request.resource)
        if not kind.stored:
            found = await self.metrics.list(kind, request.namespace, request.label_selector,
                                            request.field_selector)
            response = pb.ListResponse(resource_version="0")
            response.items.extend(self.registry.pack(item) for item in found)
            return response
        predicate = filters.predicate(kind, request.label_selector, request.field_selector)
        items, revision, token, remaining = await self.objects.list(
            kind, request.namespace, predicate, request.limit, request.continue_token)
        response = pb.ListResponse(resource_version=str(revision), continue_token=token,
                                   remaining_item_count=max(remaining, 0))
        response.items.extend(self.registry.pack(item) for item in items)
        return response

    async def Watch(self, request, context):
        try:
            kind = self._writable(self.registry.by_resource(request.resource), "watch")
            cache = self.caches[kind.resource]
            predicate = filters.predicate(kind, request.label_selector, request.field_selector)
            rv = _parse_rv(request.resource_version)
            watcher = await cache.watch(rv, request.namespace if kind.namespaced else "",
                                        predicate or (lambda obj: True),
                                        request.allow_watch_bookmarks)
        except errors.ApiError as err:
            await grpc_server.abort(context, err)
            return
        try:
            while True:
                item = await watcher.next()
                if item is None:
                    if isinstance(watcher.closed, errors.Expired):
                        await grpc_server.abort(context, watcher.closed)
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

    @grpc_server.unary_errors
    async def Update(self, request, context):
        obj = self._unpack(request.object)
        kind = self._writable(self.registry.by_resource(request.resource), "update")
        result = await self.objects.update(kind, obj, dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(result))

    @grpc_server.unary_errors
    async def UpdateStatus(self, request, context):
        obj = self._unpack(request.object)
        kind = self._writable(self.registry.by_resource(request.resource), "update")
        result = await self.objects.update(kind, obj, status=True, dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(result))

    @grpc_server.unary_errors
    async def Finalize(self, request, context):
        obj = self._unpack(request.object)
        kind = self.registry.by_resource(request.resource)
        result = await self.objects.update(kind, obj, finalize=True, dry_run=request.dry_run)
        return pb.ObjectResponse(object=self.registry.pack(result))

    @grpc_server.unary_errors
    async def Patch(self, request, context):
        kind = self._writable(self.registry.by_resource(request.resource), "patch")
        result = await self.objects.patch(kind, request.namespace, request.name, request.patch,
                                          status=request.status, dry_run=request.dry_run,
                                          patch_type=request.patch_type or "merge")
        return pb.ObjectResponse(object=self.registry.pack(result))

    @grpc_server.unary_errors
    async def Delete(self, request, context):
        kind = self._writable(self.registry.by_resource(request.resource), "delete")
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        obj, deleted = await self.objects.delete(
            kind, request.namespace, request.name, grace_period_s=grace,
            propagation_policy=request.propagation_policy,
            uid=request.preconditions.uid,
            resource_version=request.preconditions.resource_version,
            dry_run=request.dry_run,
            ignore_store_read_error=request.ignore_store_read_error_with_cluster_breaking_potential)
        response = pb.DeleteResponse(deleted=deleted)
        if obj is not None:  # None: an undecodable object was removed
            response.object.CopyFrom(self.registry.pack(obj))
        return response

    @grpc_server.unary_errors
    async def Bind(self, request, context):
        if not request.node_name:
            raise errors.Invalid("Binding", request.name, [errors.required("target.name")])
        node_name = request.node_name
        pod = await self.objects.apply(
            self.registry.by_resource("pods"), request.namespace, request.name,
            lambda obj, now_s: pod_strategy.bind(obj, node_name, now_s), uid=request.uid)
        return pb.ObjectResponse(object=self.registry.pack(pod))

    @grpc_server.unary_errors
    async def Evict(self, request, context):
        if self._evictor is None:
            self._evictor = Evictor(self.objects, self.registry, self.objects.clock)
        pod = await self._evictor.evict(request.namespace, request.eviction)
        return pb.ObjectResponse(object=self.registry.pack(pod))

    @grpc_server.unary_errors
    async def Discovery(self, request, context):
        response = pb.DiscoveryResponse(server_version=_version())
        for kind in self.registry.kinds:
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"] \
                if kind.stored else ["get", "list"]
            response.resources.add(name=kind.resource, singular_name=kind.singular,
                                   short_names=list(kind.short_names),
                                   api_version=kind.api_version, kind=kind.kind,
                                   namespaced=kind.namespaced, verbs=verbs)
        return response
