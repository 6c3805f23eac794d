"""The apiserver's store: keys and values, nothing else.

`Store` is the interface the registry and the watch caches stand on; two
implementations share its semantics: `EtcdStore` (here, the real one) and
`apiserver.memstore.MemoryStore` (for unit tests).

Contract: keys are `/registry/<resource>/<namespace>/<name>` (cluster-scoped:
`/registry/<resource>/<name>`), values are serialized protobuf messages
without resourceVersion, and an object's resourceVersion is its etcd
mod_revision. Two prefixes hold no objects (no resource has their name):
`/registry/ranges/` (allocated ClusterIPs and NodePorts, each holding its
Service's key; apiserver.servicealloc) and `/registry/masterleases/` (the
apiservers behind the `kubernetes` Service; apiserver.kubernetes_service). Every write is one etcd transaction conditioned on the key's
mod_revision (0 = must not exist), so concurrent writers never lose updates.
Every call has a deadline; etcd being unreachable is errors.Unavailable, a
compacted revision is errors.Expired.

aetcd provides the connection (and the generated etcd stubs); calls are made
on the stubs directly because aetcd's convenience API lacks per-call
deadlines, range limits/revisions and watch progress requests.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import AsyncIterator, Callable, Protocol, Sequence

import aetcd
import grpc
from aetcd import rpc

from kubemu.api import errors, limits

REGISTRY_PREFIX = "/registry/"


def object_key(resource: str, namespace: str, name: str) -> bytes:
    if namespace:
        return f"{REGISTRY_PREFIX}{resource}/{namespace}/{name}".encode()
    return f"{REGISTRY_PREFIX}{resource}/{name}".encode()


def prefix_key(resource: str, namespace: str = "") -> bytes:
    if namespace:
        return f"{REGISTRY_PREFIX}{resource}/{namespace}/".encode()
    return f"{REGISTRY_PREFIX}{resource}/".encode()


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix`."""
    as_list = bytearray(prefix)
    for i in range(len(as_list) - 1, -1, -1):
        if as_list[i] < 0xFF:
            as_list[i] += 1
            return bytes(as_list[: i + 1])
    return b"\0"


@dataclasses.dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int


@dataclasses.dataclass(frozen=True)
class Page:
    kvs: list[KeyValue]
    more: bool
    count: int  # keys in the whole range at `revision`
    revision: int


@dataclasses.dataclass
class Reservation:
    """Keys a write must create (each absent before, holding the object's key)
    and keys it releases, written in the object's own transaction."""

    create: list[bytes] = dataclasses.field(default_factory=list)
    release: list[bytes] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.release)


@dataclasses.dataclass(frozen=True)
class Change:
    """One etcd event: value is b"" for a delete (prev_value holds the old one)."""

    key: bytes
    value: bytes
    prev_value: bytes
    mod_revision: int
    deleted: bool


@dataclasses.dataclass(frozen=True)
class WatchBatch:
    """A watch response: changes (possibly none, for a progress notice) up to `revision`."""

    changes: list[Change]
    revision: int


class Store(Protocol):
    """What the registry and the watch caches need from a store.

    One global revision counter; every key has a mod_revision and a
    create_revision; writes are conditioned on a key's mod_revision (0: the
    key must be absent); reads may ask for an old revision within the
    retained history (an older, compacted one raises errors.Expired); a watch
    delivers every change from a revision on, with the previous value, in
    order, and progress notices on request.
    """

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def current_revision(self) -> int: ...

    async def get(self, key: bytes) -> KeyValue | None: ...

    async def range(self, start: bytes, end: bytes, *, limit: int,
                    revision: int = 0) -> Page:
        """Keys in [start, end) at `revision` (0: now), at most `limit` (0: all).

        `Page.revision` is the store's current revision (as etcd's response
        header), not the one read at.
        """
        ...

    async def put_if(self, key: bytes, value: bytes, mod_revision: int, *,
                     lease: int = 0) -> int | None:
        """Write if the key's mod_revision is `mod_revision` (0: absent); the
        new revision, or None when the condition failed. With `lease`, the key
        goes when the lease expires; without, it is detached from any lease."""
        ...

    async def delete_if(self, key: bytes, mod_revision: int) -> int | None: ...

    async def txn(self, compares: Sequence[tuple[bytes, int]],
                  puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes], *,
                  lease: int = 0) -> int | None:
        """One transaction: if every key in `compares` has the given
        mod_revision (0: absent), write `puts` (under `lease`, if given) and
        delete `deletes`, all at one new revision (returned); None when a
        condition failed. A key is in `puts` or `deletes`, not both."""
        ...

    async def grant_lease(self, ttl_s: int) -> int:
        """A new lease of `ttl_s` seconds (etcd's LeaseGrant): its id. The keys
        written under it are deleted when it expires, as one change."""
        ...

    async def compact(self, revision: int) -> None: ...

    def watch(self, prefix: bytes, start_revision: int,
              progress: asyncio.Queue | None = None) -> AsyncIterator[WatchBatch]:
        """Changes under `prefix` from `start_revision` on (see EtcdStore.watch)."""
        ...


def _kv(kv) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.mod_revision, kv.create_revision)


def _translate(err: grpc.RpcError, what: str) -> errors.ApiError:
    code = err.code()
    details = err.details() or ""
    if "request is too large" in details:
        # etcd's --max-request-bytes; the registry refuses such objects before
        # they get here, so this is a store configured below the default.
        return errors.request_entity_too_large(what, limits.STORE_REQUEST_BYTES_MAX)
    if "future revision" in details:
        return errors.internal(f"the requested revision is ahead of the store: {what}")
    if code == grpc.StatusCode.OUT_OF_RANGE or "compacted" in details:
        return errors.Expired(f"the requested revision has been compacted: {what}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.Timeout(f"etcd did not answer in time: {what}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return errors.Unavailable(f"etcd is unavailable: {details or code.name}")
    return errors.Internal(f"etcd error on {what}: {code.name}: {details}")


def _pump_failed(pump: asyncio.Task | None) -> bool:
    return pump is not None and pump.done() and not pump.cancelled() \
        and pump.exception() is not None


def _channel_target(endpoint: str) -> tuple[str, int]:
    """aetcd's (host, port) for one endpoint or several: it dials f"{host}:{port}",
    so several IPv4 members become gRPC's "ipv4:a:p1,b:p2" split at its last
    colon. The channel's pick_first policy then uses one member and, when that
    connection fails (a killed member resets it), the next that answers; a
    request in flight on the lost connection fails UNAVAILABLE (retried by
    the callers that retry), the next ones go to a live member."""
    endpoints = [e.strip().removeprefix("http://") for e in endpoint.split(",") if e.strip()]
    if not endpoints:
        raise ValueError(f"etcd endpoints: Required value: got {endpoint!r}")
    for e in endpoints:
        host, _, port = e.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"etcd endpoint {e!r}: Invalid value: expected host:port")
    if len(endpoints) == 1:
        host, _, port = endpoints[0].rpartition(":")
        return host or "127.0.0.1", int(port)
    hosts = [e.rpartition(":")[0] for e in endpoints]
    if not all(_is_ipv4(h) for h in hosts):
        raise ValueError(f"etcd endpoints {endpoint!r}: Invalid value: several endpoints "
                         f"must be IPv4 addresses")
    target = "ipv4:" + ",".join(endpoints)
    host, _, port = target.rpartition(":")
    return host, int(port)


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)


class EtcdStore:
    """A connection to etcd with the few operations the apiserver needs."""

    def __init__(self, endpoint: str, *, timeout_s: float = 5.0):
        """endpoint: "host:port", or every member's, comma-separated."""
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        host, port = _channel_target(endpoint)
        self._client = aetcd.Client(host=host, port=port,
                                    timeout=timeout_s, options={
                                        "grpc.max_receive_message_length":
                                            limits.MESSAGE_BYTES_MAX,
                                        "grpc.max_send_message_length":
                                            limits.MESSAGE_BYTES_MAX,
                                    })
        self._kv = None
        self._watch = None
        self._maintenance = None
        self._lease = None

    async def connect(self) -> None:
        await self._client.connect()
        self._kv = self._client.kvstub
        self._watch = rpc.WatchStub(self._client.channel)
        self._maintenance = self._client.maintenancestub
        self._lease = self._client.leasestub

    async def close(self) -> None:
        await self._client.close()

    async def current_revision(self) -> int:
        try:
            resp = await self._kv.Range(rpc.RangeRequest(key=b"\0", count_only=True),
                                        timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, "revision") from None
        return resp.header.revision

    async def get(self, key: bytes) -> KeyValue | None:
        try:
            resp = await self._kv.Range(rpc.RangeRequest(key=key), timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, key.decode()) from None
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def range(self, start: bytes, end: bytes, *, limit: int, revision: int = 0) -> Page:
        request = rpc.RangeRequest(key=start, range_end=end, limit=limit, revision=revision)
        try:
            resp = await self._kv.Range(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, start.decode()) from None
        return Page([_kv(kv) for kv in resp.kvs], resp.more, resp.count, resp.header.revision)

    async def put_if(self, key: bytes, value: bytes, mod_revision: int, *,
                     lease: int = 0) -> int | None:
        """Write `value` if the key's mod_revision is `mod_revision` (0: absent).

        Returns the new revision, or None when the condition failed.
        """
        compare = rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                              mod_revision=mod_revision)
        request = rpc.TxnRequest(
            compare=[compare],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value,
                                                              lease=lease))])
        return await self._txn(request, key)

    async def delete_if(self, key: bytes, mod_revision: int) -> int | None:
        compare = rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                              mod_revision=mod_revision)
        request = rpc.TxnRequest(
            compare=[compare],
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))])
        return await self._txn(request, key)

    async def txn(self, compares: Sequence[tuple[bytes, int]],
                  puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes], *,
                  lease: int = 0) -> int | None:
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                                 mod_revision=mod_revision) for key, mod_revision in compares],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))
                     for key, value in puts]
            + [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))
               for key in deletes])
        first = compares[0][0] if compares else (puts[0][0] if puts else b"txn")
        return await self._txn(request, first)

    async def _txn(self, request, key: bytes) -> int | None:
        try:
            resp = await self._kv.Txn(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, key.decode()) from None
        return resp.header.revision if resp.succeeded else None

    async def grant_lease(self, ttl_s: int) -> int:
        try:
            resp = await self._lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl_s),
                                                timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, f"lease grant {ttl_s}s") from None
        if resp.error:
            raise errors.Internal(f"etcd refused a lease of {ttl_s}s: {resp.error}")
        return resp.ID

    async def compact(self, revision: int) -> None:
        try:
            await self._kv.Compact(rpc.CompactionRequest(revision=revision),
                                   timeout=self.timeout_s)
        except grpc.RpcError as err:
            error = _translate(err, f"compact {revision}")
            if not isinstance(error, errors.Expired):  # already compacted further
                raise error from None

    async def watch(self, prefix: bytes, start_revision: int,
                    progress: asyncio.Queue | None = None) -> AsyncIterator[WatchBatch]:
        """Changes under `prefix` from `start_revision` on, in order.

        Put anything into `progress` to ask etcd for a progress notice (a batch
        with no changes whose revision says every change up to it was sent).
        Raises errors.Expired when `start_revision` is compacted and
        errors.Unavailable when the stream breaks.
        """
        create = rpc.WatchCreateRequest(key=prefix, range_end=prefix_end(prefix),
                                        start_revision=start_revision, prev_kv=True)
        call = self._watch.Watch()
        pump: asyncio.Task | None = None
        try:
            await call.write(rpc.WatchRequest(create_request=create))
            if progress is not None:
                async def ask_progress() -> None:
                    while True:
                        await progress.get()
                        await call.write(rpc.WatchRequest(
                            progress_request=rpc.WatchProgressRequest()))
                pump = asyncio.create_task(ask_progress(), name=f"progress {prefix.decode()}")
                # The pump cannot die silently: a stream that can no longer ask
                # for progress is cancelled at once, and replaced like a broken one.
                pump.add_done_callback(lambda task: task.cancelled() or call.cancel())
            while True:
                try:
                    resp = await call.read()
                except asyncio.CancelledError:
                    if _pump_failed(pump) and not asyncio.current_task().cancelling():
                        raise errors.Unavailable("progress requests on the etcd watch "
                                                 f"stopped: {pump.exception()!r}") from None
                    raise
                if _pump_failed(pump):  # failed while a response was on its way
                    raise errors.Unavailable("progress requests on the etcd watch "
                                             f"stopped: {pump.exception()!r}")
                if resp is grpc.aio.EOF:
                    raise errors.Unavailable("etcd closed the watch stream")
                if resp.compact_revision:
                    raise errors.Expired(
                        f"revision {start_revision} has been compacted "
                        f"(compacted up to {resp.compact_revision})")
                if resp.canceled:
                    raise errors.Unavailable(f"etcd cancelled the watch: {resp.cancel_reason}")
                if resp.created and not resp.events:
                    continue
                changes = [
                    Change(e.kv.key, e.kv.value if e.type == 0 else b"",
                           e.prev_kv.value, e.kv.mod_revision, e.type == 1)
                    for e in resp.events]
                yield WatchBatch(changes, resp.header.revision)
        except grpc.RpcError as err:
            raise _translate(err, f"watch {prefix.decode()}") from None
        finally:
            if pump is not None:
                pump.cancel()
            call.cancel()


class LeaseManager:
    """Leases for keys that expire (Events under --event-ttl), reused as
    kube-apiserver's etcd3 leaseManager reuses them: a lease granted with
    `ttl_s + reuse_s` (reuse_s: 5% of the TTL, at most 60 s) serves every
    write asking for `ttl_s` while it still outlives `ttl_s` from now, up to
    `objects_max` keys; so each key lives between ttl_s and ttl_s + reuse_s
    and etcd holds few leases. `clock` is monotonic seconds (injectable)."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic,
                 reuse_s_max: int = 60, reuse_fraction: float = 0.05,
                 objects_max: int = 1000):
        self.store = store
        self.clock = clock
        self.reuse_s_max = reuse_s_max
        self.reuse_fraction = reuse_fraction
        self.objects_max = objects_max
        self._id = 0
        self._expires_at = 0.0
        self._attached = 0
        self._lock = asyncio.Lock()

    def reuse_s(self, ttl_s: int) -> int:
        return min(int(self.reuse_fraction * ttl_s), self.reuse_s_max)

    async def get(self, ttl_s: int) -> int:
        """A lease id for a key that must live `ttl_s` seconds."""
        async with self._lock:
            now = self.clock()
            reuse_s = self.reuse_s(ttl_s)
            valid = now + ttl_s < self._expires_at
            sufficient = now + ttl_s + reuse_s > self._expires_at
            self._attached += 1
            if self._id and valid and sufficient and self._attached <= self.objects_max:
                return self._id
            granted_s = ttl_s + reuse_s
            self._id = await self.store.grant_lease(granted_s)
            self._expires_at = now + granted_s
            self._attached = 1
            return self._id
