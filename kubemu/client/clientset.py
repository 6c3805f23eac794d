"""The asyncio client for the apiserver's generic `kubemu.api.v1.Resources` service.

Contract:
- `resource` is anything kubectl accepts (plural, singular, short name, Kind,
  `deployments.apps`), resolved with kinds.REGISTRY; objects travel packed in
  google.protobuf.Any and come back unpacked into their kind's message.
- Every unary call carries `timeout=timeout_s`; a watch stream has no deadline
  unless the caller gives one (then reaching it ends the stream normally, like
  a Kubernetes watch with timeoutSeconds).
- A failed call raises the kubemu.api.errors class for its status. A request
  over the apiserver's size limit, refused by gRPC itself, raises
  RequestEntityTooLarge naming the object and the limit.
- Only idempotent calls (get, list, discovery, and opening a watch before its
  first event) are retried, only on UNAVAILABLE, at most `retry_attempts` extra
  times, with capped exponential backoff and jitter. Writes are never retried:
  the first attempt may have been applied.
- The gRPC channel is made on first use, so a Client can be built outside the
  event loop it is used on; one Client belongs to one event loop.
"""
from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import random
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.protobuf.message import Message

from kubemu import grpcaio
from kubemu.api import errors, limits
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import policy_pb2, resources_pb2, resources_pb2_grpc
from kubemu.backoff import exponential_s
from kubemu.client import config as _config

# First retry delay; doubles per attempt up to backoff_s_max.
BACKOFF_S_BASE = 0.05
# Pings keep a watch honest when the apiserver is paused (SIGSTOP) rather than
# killed: without them a silent peer leaves the stream hanging forever. gRPC
# servers reject pings closer than 5 min by default; a client told "too many
# pings" doubles its interval by itself, and the stream it loses is re-opened.
_KEEPALIVE_TIME_MS = 30_000
_KEEPALIVE_TIMEOUT_MS = 10_000
# gRPC reconnects with back-off: 1 s growing by 1.6 up to 120 s by default, so a
# component whose apiserver was down a minute could wait two more before it
# tried again. Chaos runs kill and pause apiservers often: retry within 2 s.
_RECONNECT_BACKOFF_MS_INITIAL = 100
_RECONNECT_BACKOFF_MS_MAX = 2_000
# list_all stops following continue tokens after this many pages (a server bug
# handing out tokens forever must not loop forever).
_LIST_PAGES_MAX = 100_000
# The apiserver's words (a 504 Timeout) when a watch asks for a version its
# store has not reached: the server's answer, not the stream's own deadline.
TOO_LARGE_RV = "Too large resource version"

T = TypeVar("T")


@dataclasses.dataclass
class ListResult:
    items: list[Message]
    resource_version: str
    continue_token: str = ""
    remaining_item_count: int = 0


@dataclasses.dataclass
class WatchEvent:
    # ADDED, MODIFIED, DELETED or BOOKMARK.
    type: str
    # The object (for BOOKMARK: only metadata.resourceVersion is meaningful).
    # None only when the server sent an event without an object.
    object: Message | None


@dataclasses.dataclass
class DeleteResult:
    # The object after the call: with deletionTimestamp set when deletion is
    # pending (finalizers, graceful pod deletion), or as it was when removed.
    object: Message | None
    # True when the object is gone from the store.
    deleted: bool


def _unpack(packed: any_pb2.Any) -> Message | None:
    if not packed.type_url:
        return None
    return REGISTRY.unpack(packed)


class Client:
    def __init__(self, address: str, *, timeout_s: float = 10.0, retry_attempts: int = 5,
                 backoff_s_max: float = 2.0, user_agent: str = "kubemu"):
        if not address:
            raise ValueError("Client: address must be host:port, got an empty string")
        if timeout_s <= 0:
            raise ValueError(f"Client: timeout_s must be > 0, got {timeout_s}")
        if retry_attempts < 0:
            raise ValueError(f"Client: retry_attempts must be >= 0, got {retry_attempts}")
        if backoff_s_max < 0:
            raise ValueError(f"Client: backoff_s_max must be >= 0, got {backoff_s_max}")
        self.address = address
        self.timeout_s = timeout_s
        self.retry_attempts = retry_attempts
        self.backoff_s_max = backoff_s_max
        self.user_agent = user_agent
        self._rng = random.Random()
        self._id_prefix = f"{self._rng.getrandbits(32):08x}-"
        self._ids = itertools.count(1)
        self._channel: grpc.aio.Channel | None = None
        self._stub_: resources_pb2_grpc.ResourcesStub | None = None

    @classmethod
    def from_home(cls, home: str | os.PathLike[str] | None = None, **kwargs: Any) -> Client:
        """A client for the cluster whose kubeconfig.json is in `home` (see config.home_dir)."""
        cfg = _config.load_cluster_config(home)
        return cls(cfg.apiserver, **kwargs)

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    # ------------------------------------------------------------ lifecycle

    @property
    def _stub(self) -> resources_pb2_grpc.ResourcesStub:
        if self._stub_ is None:
            options = [
                ("grpc.max_send_message_length", limits.MESSAGE_BYTES_MAX),
                ("grpc.max_receive_message_length", limits.MESSAGE_BYTES_MAX),
                ("grpc.keepalive_time_ms", _KEEPALIVE_TIME_MS),
                ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.initial_reconnect_backoff_ms", _RECONNECT_BACKOFF_MS_INITIAL),
                ("grpc.min_reconnect_backoff_ms", _RECONNECT_BACKOFF_MS_INITIAL),
                ("grpc.max_reconnect_backoff_ms", _RECONNECT_BACKOFF_MS_MAX),
                ("grpc.primary_user_agent", self.user_agent),
            ]
            grpcaio.keep_initialized()
            self._channel = grpc.aio.insecure_channel(self.address, options=options)
            self._stub_ = resources_pb2_grpc.ResourcesStub(self._channel)
        return self._stub_

    async def close(self) -> None:
        channel, self._channel, self._stub_ = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------ plumbing

    def _backoff_s(self, attempt: int) -> float:
        """Delay before retry number `attempt` (0-based): capped doubling, equal jitter."""
        cap = exponential_s(attempt + 1, BACKOFF_S_BASE, self.backoff_s_max)
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """A request id for the call (the server logs it with everything it does)."""
        return ((errors.REQUEST_ID_KEY, f"{self._id_prefix}{next(self._ids):x}"),)

    async def _call(self, method: Callable[..., Awaitable[T]], request: Message, *,
                    idempotent: bool, what: str = "") -> T:
        """`what` names the object a write carries (`pods "web"`), for errors."""
        attempt = 0
        while True:
            try:
                return await method(request, timeout=self.timeout_s, metadata=self._metadata())
            except grpc.aio.AioRpcError as err:
                if (idempotent and err.code() == grpc.StatusCode.UNAVAILABLE
                        and attempt < self.retry_attempts):
                    await asyncio.sleep(self._backoff_s(attempt))
                    attempt += 1
                    continue
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and not _has_reason(err):
                    # gRPC itself refused the message (no apiserver reason):
                    # say what was too large, not gRPC's own words.
                    size = f"is {request.ByteSize()} bytes"
                    raise errors.request_entity_too_large(
                        f"{what} {size}" if what else f"the request {size}",
                        limits.REQUEST_BYTES_MAX) from None
                raise errors.from_rpc_error(err) from err

    @staticmethod
    def _resource(resource: str) -> str:
        return REGISTRY.resolve(resource).resource

    @staticmethod
    def _resource_of(obj: Message) -> str:
        return REGISTRY.by_message(obj).resource

    @staticmethod
    def _what(obj: Message) -> str:
        return f'{REGISTRY.by_message(obj).qualified_resource} "{obj.metadata.name}"'

    # ------------------------------------------------------------ verbs

    async def create(self, obj: Message, *, dry_run: bool = False) -> Message:
        request = resources_pb2.CreateRequest(
            resource=self._resource_of(obj), namespace=obj.metadata.namespace,
            object=REGISTRY.pack(obj), dry_run=dry_run)
        response = await self._call(self._stub.Create, request, idempotent=False,
                                    what=self._what(obj))
        return _unpack(response.object)

    async def get(self, resource: str, name: str, namespace: str = "") -> Message:
        request = resources_pb2.GetRequest(
            resource=self._resource(resource), namespace=namespace, name=name)
        response = await self._call(self._stub.Get, request, idempotent=True)
        return _unpack(response.object)

    async def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0,
                   continue_token: str = "") -> ListResult:
        request = resources_pb2.ListRequest(
            resource=self._resource(resource), namespace=namespace,
            label_selector=label_selector, field_selector=field_selector,
            limit=limit, continue_token=continue_token)
        response = await self._call(self._stub.List, request, idempotent=True)
        return ListResult(
            items=[_unpack(item) for item in response.items],
            resource_version=response.resource_version,
            continue_token=response.continue_token,
            remaining_item_count=response.remaining_item_count)

    async def list_all(self, resource: str, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> ListResult:
        """Every matching object, following continue tokens page by page.

        The result's resource_version is the first page's: every page is served
        from that snapshot, and a watch started from it misses nothing.
        If a continue token expires mid-way, the listing starts over once.
        """
        if page_size <= 0:
            raise ValueError(f"list_all: page_size must be > 0, got {page_size}")
        restarted = False
        while True:
            try:
                return await self._list_pages(resource, namespace, label_selector,
                                              field_selector, page_size)
            except _ContinueExpired as exc:
                if restarted:
                    raise exc.error from None
                restarted = True

    async def _list_pages(self, resource: str, namespace: str, label_selector: str,
                          field_selector: str, page_size: int) -> ListResult:
        items: list[Message] = []
        first: ListResult | None = None
        token = ""
        for _ in range(_LIST_PAGES_MAX):
            try:
                page = await self.list(resource, namespace, label_selector=label_selector,
                                       field_selector=field_selector, limit=page_size,
                                       continue_token=token)
            except errors.Expired as exc:
                if not token:
                    raise
                raise _ContinueExpired(exc) from exc
            if first is None:
                first = page
            items.extend(page.items)
            if not page.continue_token:
                return ListResult(items=items, resource_version=first.resource_version)
            if page.continue_token == token:
                raise errors.Internal(
                    f"list {resource}: the server returned the same continue token twice")
            token = page.continue_token
        raise errors.Internal(f"list {resource}: more than {_LIST_PAGES_MAX} pages")

    async def watch(self, resource: str, namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    allow_bookmarks: bool = False,
                    timeout_s: float | None = None) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version` (an async generator).

        "" or "0" first delivers ADDED for every current object. Raises
        errors.Expired when the version is older than the server keeps. With
        `timeout_s`, the stream ends normally when that time is up. Close the
        generator when done (`contextlib.aclosing`) so the stream is cancelled
        at once rather than when it is garbage-collected.
        """
        request = resources_pb2.WatchRequest(
            resource=self._resource(resource), namespace=namespace,
            label_selector=label_selector, field_selector=field_selector,
            resource_version=resource_version, allow_watch_bookmarks=allow_bookmarks)
        attempt = 0
        while True:
            call = self._stub.Watch(request, timeout=timeout_s, metadata=self._metadata())
            started = False
            try:
                async for event in call:
                    started = True
                    yield WatchEvent(type=event.type, object=_unpack(event.object))
                return
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and timeout_s is not None \
                        and TOO_LARGE_RV not in (err.details() or ""):
                    return  # the stream's own timeout, not the server's answer
                # Only before the first event: after it the caller has seen part
                # of the stream and must decide where to resume from.
                if (code == grpc.StatusCode.UNAVAILABLE and not started
                        and attempt < self.retry_attempts):
                    await asyncio.sleep(self._backoff_s(attempt))
                    attempt += 1
                    continue
                raise errors.from_rpc_error(err) from err
            finally:
                call.cancel()

    async def update(self, obj: Message, *, dry_run: bool = False) -> Message:
        request = resources_pb2.UpdateRequest(
            resource=self._resource_of(obj), object=REGISTRY.pack(obj), dry_run=dry_run)
        response = await self._call(self._stub.Update, request, idempotent=False,
                                    what=self._what(obj))
        return _unpack(response.object)

    async def update_status(self, obj: Message) -> Message:
        request = resources_pb2.UpdateRequest(
            resource=self._resource_of(obj), object=REGISTRY.pack(obj))
        response = await self._call(self._stub.UpdateStatus, request, idempotent=False,
                                    what=self._what(obj))
        return _unpack(response.object)

    async def finalize(self, obj: Message) -> Message:
        """namespaces/finalize: write `obj`'s spec.finalizers (and nothing else)."""
        request = resources_pb2.UpdateRequest(
            resource=self._resource_of(obj), object=REGISTRY.pack(obj))
        response = await self._call(self._stub.Finalize, request, idempotent=False,
                                    what=self._what(obj))
        return _unpack(response.object)

    async def patch(self, resource: str, name: str, namespace: str = "", *,
                    patch: dict | list, status: bool = False, dry_run: bool = False,
                    patch_type: str = "merge") -> Message:
        """Apply a patch written in the Kubernetes JSON form: `merge` (RFC 7386,
        the default), `json` (RFC 6902, a list of operations) or `strategic`."""
        if patch_type == "json":
            if not isinstance(patch, list):
                raise TypeError(f"patch: a JSON patch is a list, got {type(patch).__name__}")
        elif not isinstance(patch, dict):
            raise TypeError(f"patch: a {patch_type} patch is a JSON object, "
                            f"got {type(patch).__name__}")
        request = resources_pb2.PatchRequest(
            resource=self._resource(resource), namespace=namespace, name=name,
            patch_type=patch_type, patch=json.dumps(patch, separators=(",", ":")),
            status=status, dry_run=dry_run)
        kind = REGISTRY.resolve(resource)
        response = await self._call(self._stub.Patch, request, idempotent=False,
                                    what=f'{kind.qualified_resource} "{name}"')
        return _unpack(response.object)

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_s: int | None = None, propagation_policy: str = "",
                     uid: str = "", resource_version: str = "",
                     dry_run: bool = False,
                     ignore_store_read_error_with_cluster_breaking_potential: bool = False,
                     ) -> DeleteResult:
        """Delete (or mark for deletion) one object.

        `ignore_store_read_error_with_cluster_breaking_potential` removes an
        object whose stored data cannot be decoded, skipping finalizers and
        graceful deletion (DeleteResult.object is then None); the server
        refuses it for an object that reads fine, or with any other option.
        """
        request = resources_pb2.DeleteRequest(
            resource=self._resource(resource), namespace=namespace, name=name,
            propagation_policy=propagation_policy, dry_run=dry_run)
        if ignore_store_read_error_with_cluster_breaking_potential:
            request.ignore_store_read_error_with_cluster_breaking_potential = True
        if grace_period_s is not None:
            request.grace_period_seconds = grace_period_s
        if uid or resource_version:
            request.preconditions.uid = uid
            request.preconditions.resource_version = resource_version
        response = await self._call(self._stub.Delete, request, idempotent=False)
        return DeleteResult(object=_unpack(response.object), deleted=response.deleted)

    async def bind(self, namespace: str, name: str, node_name: str, uid: str = "") -> Message:
        request = resources_pb2.BindRequest(
            namespace=namespace, name=name, node_name=node_name, uid=uid)
        response = await self._call(self._stub.Bind, request, idempotent=False)
        return _unpack(response.object)

    async def evict(self, namespace: str, name: str, *, grace_period_s: int | None = None,
                    uid: str = "", resource_version: str = "",
                    dry_run: bool = False) -> Message:
        """pods/eviction (policy/v1 Eviction): delete the pod if its
        PodDisruptionBudget allows; errors.TooManyRequests when it does not now."""
        eviction = policy_pb2.Eviction(api_version="policy/v1", kind="Eviction")
        eviction.metadata.name, eviction.metadata.namespace = name, namespace
        opts = eviction.delete_options
        if grace_period_s is not None:
            opts.grace_period_seconds = grace_period_s
        if uid:
            opts.preconditions.uid = uid
        if resource_version:
            opts.preconditions.resource_version = resource_version
        if dry_run:
            opts.dry_run.append("All")
        request = resources_pb2.EvictRequest(namespace=namespace, eviction=eviction)
        response = await self._call(self._stub.Evict, request, idempotent=False,
                                    what=f'pods "{name}"')
        return _unpack(response.object)

    async def discovery(self) -> resources_pb2.DiscoveryResponse:
        return await self._call(self._stub.Discovery, resources_pb2.DiscoveryRequest(),
                                idempotent=True)


def _has_reason(err: grpc.aio.AioRpcError) -> bool:
    """Whether the apiserver (not gRPC itself) produced this error."""
    return any(key == errors.REASON_KEY for key, _ in (err.trailing_metadata() or ()))


class _ContinueExpired(Exception):
    """A continue token expired mid-listing (list_all starts over)."""

    def __init__(self, error: errors.Expired):
        super().__init__(str(error))
        self.error = error
