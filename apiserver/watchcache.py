"""The watch cache: one etcd watch per resource feeding every client watch.

Model: the cache lists the resource's prefix at revision R, then watches etcd
from R+1. It keeps the current objects and the last `capacity` events. A
client watch from version V is served from memory: every buffered event after
V, then live events. If V is older than the buffer's window (or than the
last compaction) the client gets errors.Expired and must relist; V == 0 means
"the current state as ADDED events, then changes". Each client watch has a
bounded backlog; a watcher that falls too far behind is closed (it re-watches
from its last version, as client-go does). When etcd is unreachable the cache
keeps serving what it has and resumes its etcd watch from its last revision,
so no event is lost; when that revision was compacted meanwhile, every client
watch is closed with Expired and the cache relists. When `run` is started
again after it failed unexpectedly, the cache relists and hands open watches
the difference between what they saw and the new listing (ADDED, MODIFIED,
DELETED), so they stay open and lose nothing. A stored value that does not
decode is skipped (logged once per key); if it replaced an object the cache
held, watchers see that object DELETED.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from typing import Callable

import structlog
from google.protobuf import any_pb2
from google.protobuf.message import Message

from apiserver import storage, stored
from kubemu.api import errors
from kubemu.backoff import Exponential
from kubemu.api.kinds import Kind
from kubemu.faults import NO_FAULTS, Faults

log = structlog.get_logger()

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"
LIST_PAGE = 1000
FRESHNESS_WAIT_S = 3.0
EVENT_WAIT_S = 0.25
RECONNECT_BACKOFF_S_BASE = 0.05
RECONNECT_BACKOFF_S_MAX = 2.0

Predicate = Callable[[Message], bool]


@dataclasses.dataclass
class Event:
    type: str
    key: str
    obj: Message
    prev: Message | None
    rv: int
    _packed: any_pb2.Any | None = None

    def packed(self) -> any_pb2.Any:
        if self._packed is None:
            self._packed = any_pb2.Any()
            self._packed.Pack(self.obj)
        return self._packed


class Watcher:
    """One client watch: a bounded backlog of (type, Event) pairs."""

    def __init__(self, namespace: str, predicate: Predicate, bookmarks: bool, backlog_max: int):
        self.namespace = namespace
        self.predicate = predicate
        self.bookmarks = bookmarks
        self.backlog_max = backlog_max
        self.backlog: collections.deque[tuple[str, Event]] = collections.deque()
        self.wakeup = asyncio.Event()
        self.closed: errors.ApiError | None = None  # why the watch ended, if it did
        self.last_rv = 0
        self.start_rv = 0  # events at or below this version are not this watch's

    def wants(self, obj: Message | None) -> bool:
        if obj is None:
            return False
        if self.namespace and obj.metadata.namespace != self.namespace:
            return False
        return self.predicate(obj)

    def offer(self, event: Event) -> bool:
        """Queue what this watcher should see of `event`; False if it overflowed."""
        new_in = event.type != DELETED and self.wants(event.obj)
        old_in = self.wants(event.prev)
        if event.type == DELETED:
            kind = DELETED if old_in else None
        elif new_in:
            kind = MODIFIED if old_in else ADDED
        else:
            kind = DELETED if old_in else None
        if kind is None:
            return True
        return self._push(kind, event)

    def _push(self, kind: str, event: Event) -> bool:
        if len(self.backlog) >= self.backlog_max:
            return False
        self.backlog.append((kind, event))
        self.wakeup.set()
        return True

    def bookmark(self, rv: int) -> None:
        """Tell a watcher that asked how far it is in sync (sent on a timer, as
        kube-apiserver does, even when nothing changed)."""
        if self.bookmarks and rv >= self.last_rv and not self.backlog:
            self._push(BOOKMARK, Event(BOOKMARK, "", None, None, rv))  # type: ignore[arg-type]

    def close(self, reason: errors.ApiError | None) -> None:
        self.closed = reason or errors.Unavailable("watch closed")
        self.wakeup.set()

    async def next(self) -> tuple[str, Event] | None:
        """The next event, or None once the watch has ended (see `closed`)."""
        while not self.backlog:
            if self.closed is not None:
                return None
            self.wakeup.clear()
            await self.wakeup.wait()
        item = self.backlog.popleft()
        self.last_rv = item[1].rv
        return item


def object_key(obj: Message) -> str:
    ns = obj.metadata.namespace
    return f"{ns}/{obj.metadata.name}" if ns else obj.metadata.name


class WatchCache:
    def __init__(self, store: storage.Store, kind: Kind, *, capacity: int = 10_000,
                 backlog_max: int = 10_000, corrupt_log: stored.CorruptLog | None = None,
                 faults: Faults = NO_FAULTS):
        self.store = store
        self.kind = kind
        self.capacity = capacity
        self.backlog_max = backlog_max
        self.objects: dict[str, Message] = {}
        self.events: collections.deque[Event] = collections.deque()
        self.rv = 0
        self.window_start = 0  # every event with rv > window_start is buffered
        self.ready = asyncio.Event()
        self.watchers: set[Watcher] = set()
        self._progress: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._advanced = asyncio.Condition()
        self._fresh_waiters = 0  # wait_fresh calls in progress
        self._log = log.bind(resource=kind.resource)
        self.corrupt_log = corrupt_log or stored.CorruptLog()
        self.faults = faults
        # Fails the store watch while the fault file exists (checked before
        # listing and on every watch response, events or progress notices).
        self.fault_point = f"etcd-watch-{kind.resource}"

    # ------------------------------------------------------------ feeding

    def _decode(self, key: bytes, value: bytes, rv: int, during: str) -> Message | None:
        """The object, or None (logged) when the stored value does not decode."""
        try:
            return stored.decode(self.kind, storage.KeyValue(key, value, rv, 0))
        except stored.CorruptObject as err:
            self.corrupt_log.report(err, during)
            return None

    async def _list(self) -> tuple[dict[str, Message], int]:
        """Every object of the resource, read at one revision, and that revision."""
        prefix = storage.prefix_key(self.kind.resource)
        end = storage.prefix_end(prefix)
        start, revision = prefix, 0
        objects: dict[str, Message] = {}
        while True:
            page = await self.store.range(start, end, limit=LIST_PAGE, revision=revision)
            revision = revision or page.revision  # every page at the first one's revision
            for kv in page.kvs:
                obj = self._decode(kv.key, kv.value, kv.mod_revision, "watch cache list")
                if obj is not None:
                    objects[object_key(obj)] = obj
            if not page.more:
                break
            start = page.kvs[-1].key + b"\0"
        return objects, revision

    def _replace(self, objects: dict[str, Message], revision: int) -> None:
        """Take a fresh listing. Open watches get the difference as events, in
        version order: what changed since the cache's state has a newer
        mod_revision than the cache has seen; what is gone, the list's revision."""
        if not self.ready.is_set():  # the first listing
            self.objects = objects
            self.events.clear()
            self.rv = self.window_start = revision
            return
        diff: list[Event] = []
        for key, obj in objects.items():
            prev = self.objects.get(key)
            if prev is None:
                diff.append(Event(ADDED, key, obj, None, int(obj.metadata.resource_version)))
            elif prev.metadata.resource_version != obj.metadata.resource_version:
                diff.append(Event(MODIFIED, key, obj, prev, int(obj.metadata.resource_version)))
        for key, prev in self.objects.items():
            if key not in objects:
                gone = type(prev)()
                gone.CopyFrom(prev)
                gone.metadata.resource_version = str(revision)
                diff.append(Event(DELETED, key, gone, prev, revision))
        diff.sort(key=lambda e: e.rv)
        self.objects = objects
        for event in diff:
            self._record(event, late=False)
        self.rv = max(self.rv, revision)

    async def run(self) -> None:
        """List, then follow the store forever; reconnect and relist as needed.

        Any other failure ends the call; a supervisor calls it again, and the
        new call starts with a relist (see `_replace`).
        """
        reconnect = Exponential(RECONNECT_BACKOFF_S_BASE, RECONNECT_BACKOFF_S_MAX)
        need_list = True
        while True:
            try:
                self.faults.check(self.fault_point)
                if need_list:
                    objects, revision = await self._list()
                    self._replace(objects, revision)
                    need_list = False
                    self.ready.set()
                    self._log.debug("cache listed", objects=len(self.objects), rv=self.rv)
                prefix = storage.prefix_key(self.kind.resource)
                async with contextlib.aclosing(
                        self.store.watch(prefix, self.rv + 1, self._progress)) as batches:
                    async for batch in batches:
                        self.faults.check(self.fault_point)
                        reconnect.reset()
                        for change in batch.changes:
                            self._apply(change)
                        await self._advance(batch.revision)
            except errors.Expired as err:
                self._log.warning("cache watch expired; relisting", error=str(err))
                for watcher in list(self.watchers):
                    watcher.close(errors.Expired(f"watch cache for {self.kind.resource} was reset: {err}"))
                self.watchers.clear()
                need_list = True
            except (errors.Unavailable, errors.Timeout, errors.Internal) as err:
                self._log.info("store watch interrupted; resuming", error=str(err), rv=self.rv)
                await asyncio.sleep(reconnect.next_s())  # bounded reconnect back-off

    def _apply(self, change: storage.Change) -> None:
        key_parts = change.key.decode(errors="replace").split("/")
        key = "/".join(key_parts[3:])  # /registry/<resource>/<ns>/<name>
        prev = self.objects.get(key)
        obj = None if change.deleted else self._decode(change.key, change.value,
                                                         change.mod_revision, "watch")
        # etcd before 3.5.8 may answer a progress request with a revision ahead
        # of events it has yet to send; such a late event must not be lost by a
        # watch served from that revision: that watch ends with Expired and its
        # client relists.
        late = change.mod_revision <= self.rv
        if obj is None:  # deleted, or no longer decodable: gone from the cache
            if prev is None:
                self.rv = max(self.rv, change.mod_revision)
                return
            gone = type(prev)()
            gone.CopyFrom(prev)
            gone.metadata.resource_version = str(change.mod_revision)
            del self.objects[key]
            event = Event(DELETED, key, gone, prev, change.mod_revision)
        else:
            self.objects[key] = obj
            event = Event(MODIFIED if prev is not None else ADDED, key, obj, prev,
                          change.mod_revision)
        self._record(event, late)

    def _record(self, event: Event, late: bool) -> None:
        """Buffer `event` and hand it to the watchers it concerns."""
        self.events.append(event)
        while len(self.events) > self.capacity:
            self.window_start = self.events.popleft().rv
        self.rv = max(self.rv, event.rv)
        for watcher in list(self.watchers):
            if watcher.start_rv >= event.rv:
                if late:
                    self.watchers.discard(watcher)
                    watcher.close(errors.Expired(
                        f"too old resource version: {watcher.start_rv} (an event at "
                        f"{event.rv} arrived late from etcd; relist)"))
                continue
            if not watcher.offer(event):
                self._log.info("closing a watcher that fell behind", backlog=len(watcher.backlog))
                self.watchers.discard(watcher)
                watcher.close(errors.Unavailable("watcher fell too far behind; re-watch"))

    async def _advance(self, revision: int) -> None:
        if revision > self.rv:
            self.rv = revision
        if self._fresh_waiters:  # most batches have nobody waiting: skip the lock
            async with self._advanced:
                self._advanced.notify_all()

    # ------------------------------------------------------------ serving

    def request_progress(self) -> None:
        try:
            self._progress.put_nowait(True)
        except asyncio.QueueFull:
            pass  # a request is already pending

    async def wait_fresh(self, rv: int, timeout_s: float = FRESHNESS_WAIT_S) -> None:
        """Wait until the cache has seen revision `rv` (asking etcd for progress)."""
        if rv <= self.rv:
            return
        deadline = time.monotonic() + timeout_s
        events_only_until = time.monotonic() + EVENT_WAIT_S
        self._fresh_waiters += 1
        try:
            await self._wait_fresh(rv, deadline, events_only_until)
        finally:
            self._fresh_waiters -= 1

    async def _wait_fresh(self, rv: int, deadline: float, events_only_until: float) -> None:
        async with self._advanced:
            while self.rv < rv:
                # Give the etcd watch a moment to deliver the events themselves
                # (usually milliseconds) before asking for a progress notice.
                if time.monotonic() >= events_only_until:
                    self.request_progress()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.Timeout(
                        f"Too large resource version: {rv}, current: {self.rv}")
                try:
                    await asyncio.wait_for(self._advanced.wait(), min(left, 0.05))
                except asyncio.TimeoutError:
                    pass

    async def watch(self, rv: int, namespace: str, predicate: Predicate,
                    bookmarks: bool) -> Watcher:
        await asyncio.wait_for(self.ready.wait(), FRESHNESS_WAIT_S * 3)
        if rv:
            await self.wait_fresh(rv)
        watcher = Watcher(namespace, predicate, bookmarks, self.backlog_max)
        if rv == 0:
            for obj in self.objects.values():
                if watcher.wants(obj):
                    watcher.backlog.append(
                        (ADDED, Event(ADDED, object_key(obj), obj, None,
                                      int(obj.metadata.resource_version))))
            watcher.last_rv = watcher.start_rv = self.rv
        else:
            if rv < self.window_start:
                raise errors.Expired(
                    f"too old resource version: {rv} ({self.window_start})")
            for event in self.events:
                if event.rv > rv and not watcher.offer(event):
                    raise errors.Expired(
                        f"too old resource version: {rv} (backlog over {self.backlog_max})")
            watcher.last_rv = watcher.start_rv = rv
        if watcher.backlog:
            watcher.wakeup.set()
        self.watchers.add(watcher)
        return watcher

    def remove(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def send_bookmarks(self) -> None:
        for watcher in self.watchers:
            watcher.bookmark(self.rv)

    def forget_before(self, compacted_rv: int) -> None:
        """etcd compacted up to `compacted_rv`: versions before it are expired."""
        while self.events and self.events[0].rv <= compacted_rv:
            self.window_start = self.events.popleft().rv
        self.window_start = max(self.window_start, min(compacted_rv, self.rv))
