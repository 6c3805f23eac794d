"""An in-memory Store with etcd's revision, conditional-write and watch semantics.

For unit tests of the registry and the watch cache without processes. The
model, as etcd's MVCC store:
- one global revision, starting at 1; every successful put or delete makes
  the next revision; each key keeps its versions (mod_revision,
  create_revision, value, or a tombstone);
- reads at an old revision see the state as it was then, while that revision
  is retained; below the compacted revision they raise errors.Expired, above
  the current one errors.Internal;
- writes are conditioned on the key's mod_revision (0 = absent);
- a watch replays every change under its prefix from its start revision,
  with the previous value, then follows new ones; on request (a put into its
  progress queue) it sends a progress notice once everything up to the
  current revision was delivered; a watch whose undelivered changes are
  compacted away raises errors.Expired, as etcd cancels it;
- history is bounded: past `history_max` changes the oldest are compacted,
  as etcd's auto-compaction would;
- values are bounded: a request over `request_bytes_max` raises
  errors.RequestEntityTooLarge, as etcd refuses it;
- leases: a key put under a lease (`grant_lease(ttl_s)`) is deleted, with
  the lease's other keys at one revision, once `clock` (monotonic seconds,
  injectable) passes the lease's expiry; a put without a lease detaches the
  key. Expiry is checked at every call (no timer: tests move the clock).
`fail_with` makes every call raise the given error (an unreachable store).
"""
from __future__ import annotations

import asyncio
import bisect
import dataclasses
import time
from typing import AsyncIterator, Callable, Sequence

from apiserver.storage import Change, KeyValue, Page, WatchBatch, prefix_end
from kubemu.api import errors, limits

WATCH_BATCH_MAX = 1000  # changes in one watch response


@dataclasses.dataclass(frozen=True)
class _Version:
    mod_revision: int
    create_revision: int
    value: bytes | None  # None: deleted at mod_revision


@dataclasses.dataclass(frozen=True)
class _Event:
    revision: int
    key: bytes
    value: bytes  # b"" for a delete
    prev_value: bytes
    deleted: bool


class _Watch:
    def __init__(self, start: bytes, end: bytes, cursor: int):
        self.start, self.end = start, end
        self.cursor = cursor  # every change at or below it was delivered (or skipped)
        self.wake = asyncio.Event()
        self.ended: errors.ApiError | None = None  # why the watch must end

    def covers(self, key: bytes) -> bool:
        return self.start <= key < self.end


class MemoryStore:
    def __init__(self, *, history_max: int = 100_000,
                 request_bytes_max: int = limits.STORE_REQUEST_BYTES_MAX,
                 clock: Callable[[], float] = time.monotonic):
        if history_max <= 0:
            raise ValueError(f"MemoryStore: history_max must be > 0, got {history_max}")
        self.history_max = history_max
        self.request_bytes_max = request_bytes_max
        self.revision = 1
        self.compacted = 0
        self.fail_with: errors.ApiError | None = None
        self._versions: dict[bytes, list[_Version]] = {}
        self._keys: list[bytes] = []  # sorted keys that have versions
        self._log: list[_Event] = []  # changes after `compacted`, in revision order
        self._watches: set[_Watch] = set()
        self.clock = clock
        self._leases: dict[int, float] = {}  # id -> expiry (clock seconds)
        self._lease_of: dict[bytes, int] = {}  # key -> its lease
        self._next_lease = 1

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        for w in self._watches:
            w.ended = errors.Unavailable("the store was closed")
            w.wake.set()

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self._expire()

    # ------------------------------------------------------------ leases

    async def grant_lease(self, ttl_s: int) -> int:
        self._check()
        lease = self._next_lease
        self._next_lease += 1
        self._leases[lease] = self.clock() + ttl_s
        return lease

    def _attach(self, key: bytes, lease: int) -> None:
        if lease and lease not in self._leases:
            raise errors.NotFound(f"etcdserver: requested lease not found: {lease}")
        if lease:
            self._lease_of[key] = lease
        else:
            self._lease_of.pop(key, None)

    def _expire(self) -> None:
        now = self.clock()
        for lease in [lid for lid, at in self._leases.items() if at <= now]:
            del self._leases[lease]
            keys = [k for k, lid in self._lease_of.items() if lid == lease]
            first = True
            for key in keys:
                del self._lease_of[key]
                if self._at(key, self.revision) is not None:
                    self._record(key, None, same_revision=not first)
                    first = False

    # ------------------------------------------------------------ reads

    def _at(self, key: bytes, revision: int) -> _Version | None:
        versions = self._versions.get(key)
        if not versions:
            return None
        i = bisect.bisect_right(versions, revision, key=lambda v: v.mod_revision)
        if i == 0:
            return None
        version = versions[i - 1]
        return version if version.value is not None else None

    def _read_revision(self, revision: int) -> int:
        if revision == 0:
            return self.revision
        if revision < self.compacted:
            raise errors.Expired(f"the requested revision has been compacted: {revision} "
                                 f"(compacted up to {self.compacted})")
        if revision > self.revision:
            raise errors.internal(f"the requested revision is ahead of the store: {revision}")
        return revision

    async def current_revision(self) -> int:
        self._check()
        return self.revision

    async def get(self, key: bytes) -> KeyValue | None:
        self._check()
        version = self._at(key, self.revision)
        if version is None:
            return None
        return KeyValue(key, version.value, version.mod_revision, version.create_revision)

    async def range(self, start: bytes, end: bytes, *, limit: int, revision: int = 0) -> Page:
        self._check()
        at = self._read_revision(revision)
        lo = bisect.bisect_left(self._keys, start)
        hi = bisect.bisect_left(self._keys, end)
        kvs: list[KeyValue] = []
        count = 0
        for key in self._keys[lo:hi]:
            version = self._at(key, at)
            if version is None:
                continue
            count += 1
            if limit <= 0 or len(kvs) < limit:
                kvs.append(KeyValue(key, version.value, version.mod_revision,
                                    version.create_revision))
        return Page(kvs, count > len(kvs), count, self.revision)

    # ------------------------------------------------------------ writes

    def _record(self, key: bytes, value: bytes | None, *, same_revision: bool = False) -> int:
        """Write one key at the next revision (`same_revision`: at the current
        one, for the second and later writes of a transaction)."""
        if not same_revision:
            self.revision += 1
        versions = self._versions.get(key)
        if versions is None:
            versions = self._versions[key] = []
            bisect.insort(self._keys, key)
        current = versions[-1] if versions and versions[-1].value is not None else None
        if current is not None and current.mod_revision == self.revision:
            raise ValueError(f"MemoryStore: {key!r} written twice in one transaction")
        create = current.create_revision if current is not None else self.revision
        versions.append(_Version(self.revision, create, value))
        prev = current.value if current is not None else b""
        self._log.append(_Event(self.revision, key, value or b"", prev, value is None))
        for w in self._watches:
            w.wake.set()
        if len(self._log) > self.history_max:
            self._compact_to(self._log[len(self._log) - self.history_max - 1].revision)
        return self.revision

    async def put_if(self, key: bytes, value: bytes, mod_revision: int, *,
                     lease: int = 0) -> int | None:
        self._check()
        if len(key) * 2 + len(value) + limits.STORE_TXN_OVERHEAD_BYTES > self.request_bytes_max:
            raise errors.request_entity_too_large(key.decode(), self.request_bytes_max)
        current = self._at(key, self.revision)
        if (current.mod_revision if current is not None else 0) != mod_revision:
            return None
        self._attach(key, lease)
        return self._record(key, value)

    async def delete_if(self, key: bytes, mod_revision: int) -> int | None:
        self._check()
        current = self._at(key, self.revision)
        if (current.mod_revision if current is not None else 0) != mod_revision:
            return None
        if current is None:
            return self.revision  # etcd: deleting nothing changes nothing
        self._lease_of.pop(key, None)
        return self._record(key, None)

    async def txn(self, compares: Sequence[tuple[bytes, int]],
                  puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes], *,
                  lease: int = 0) -> int | None:
        self._check()
        size_b = sum(2 * len(k) + len(v) for k, v in puts) + limits.STORE_TXN_OVERHEAD_BYTES
        if size_b > self.request_bytes_max:
            raise errors.request_entity_too_large("txn", self.request_bytes_max)
        for key, mod_revision in compares:
            current = self._at(key, self.revision)
            if (current.mod_revision if current is not None else 0) != mod_revision:
                return None
        live_deletes = [key for key in deletes if self._at(key, self.revision) is not None]
        if not puts and not live_deletes:
            return self.revision
        first = True
        for key, value in puts:
            self._attach(key, lease)
            self._record(key, value, same_revision=not first)
            first = False
        for key in live_deletes:
            self._lease_of.pop(key, None)
            self._record(key, None, same_revision=not first)
            first = False
        return self.revision

    async def compact(self, revision: int) -> None:
        self._check()
        if revision > self.revision:
            raise errors.internal(f"cannot compact to a future revision: {revision}")
        if revision <= self.compacted:
            return  # already compacted further (EtcdStore swallows etcd's error too)
        self._compact_to(revision)

    def _compact_to(self, revision: int) -> None:
        """Forget every version superseded at or before `revision`."""
        for w in self._watches:
            if w.cursor < revision and any(
                    e.revision > w.cursor and w.covers(e.key) for e in self._log
                    if e.revision <= revision):
                w.ended = errors.Expired(
                    f"revision {w.cursor + 1} has been compacted (compacted up to {revision})")
                w.wake.set()
        self.compacted = revision
        cut = bisect.bisect_right(self._log, revision, key=lambda e: e.revision)
        del self._log[:cut]
        for key in list(self._versions):
            versions = self._versions[key]
            i = bisect.bisect_right(versions, revision, key=lambda v: v.mod_revision)
            keep_from = i - 1 if i > 0 and versions[i - 1].value is not None else i
            del versions[:keep_from]
            if not versions:
                del self._versions[key]
                self._keys.pop(bisect.bisect_left(self._keys, key))

    # ------------------------------------------------------------ watch

    async def watch(self, prefix: bytes, start_revision: int,
                    progress: asyncio.Queue | None = None) -> AsyncIterator[WatchBatch]:
        self._check()
        if start_revision and start_revision < self.compacted:
            raise errors.Expired(f"revision {start_revision} has been compacted "
                                 f"(compacted up to {self.compacted})")
        w = _Watch(prefix, prefix_end(prefix),
                   start_revision - 1 if start_revision else self.revision)
        self._watches.add(w)
        asked = False
        pump: asyncio.Task | None = None
        if progress is not None:
            async def ask_progress() -> None:
                nonlocal asked
                while True:
                    await progress.get()
                    asked = True
                    w.wake.set()
            pump = asyncio.create_task(ask_progress())
        try:
            while True:
                self._check()
                if w.ended is not None:
                    raise w.ended
                i = bisect.bisect_right(self._log, w.cursor, key=lambda e: e.revision)
                window = self._log[i:i + WATCH_BATCH_MAX]
                changes = [Change(e.key, e.value, e.prev_value, e.revision, e.deleted)
                           for e in window if w.covers(e.key)]
                caught_up = i + len(window) >= len(self._log)
                w.cursor = self.revision if caught_up else window[-1].revision
                if changes:
                    yield WatchBatch(changes, w.cursor)
                elif caught_up and asked:
                    asked = False
                    yield WatchBatch([], w.cursor)
                elif caught_up:
                    w.wake.clear()
                    await w.wake.wait()
        finally:
            self._watches.discard(w)
            if pump is not None:
                pump.cancel()
