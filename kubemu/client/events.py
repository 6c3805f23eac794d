"""Events about objects, recorded the way client-go's event recorder does.

- `record(obj, type, reason, message, field_path=..., action=...)` never blocks
  and never fails: the event joins a bounded queue and a few sender tasks write
  it; when the queue is full it is dropped and counted (client-go's
  broadcaster drops too: events are best effort and must never slow the
  component that records them).
- An Event is core/v1, in the object's namespace (`default` for cluster-scoped
  objects such as Nodes, as Kubernetes does), named `<object name>.<time in
  hex nanoseconds>` so names sort by creation, with involvedObject (apiVersion,
  kind, namespace, name, uid, resourceVersion, fieldPath), source.component
  and source.host, reportingComponent / reportingInstance, first/lastTimestamp,
  eventTime, count and action.
- Repeats (same object uid, fieldPath, type, reason and message) are
  aggregated as client-go's EventCorrelator does: the existing Event gets
  count + 1 and a new lastTimestamp instead of a new object. The memory of
  recent events is a bounded LRU. One key always goes to the same sender, so
  its repeats are written in order and never race to create two Events.
- Messages longer than 1 KiB are cut (Kubernetes validates `message` at 1 KiB
  for events.k8s.io Events and truncates client-side).

Time comes from `clock` (unix seconds), so tests drive it.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
import zlib
from typing import Any, Callable

import structlog

from kubemu import timefmt
from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from kubemu.client.clientset import Client

log = structlog.get_logger("kubemu.events")

NORMAL = "Normal"
WARNING = "Warning"
DEFAULT_QUEUE_MAX = 1000  # client-go's maxQueuedEvents
DEFAULT_SENDERS = 2
DEFAULT_REMEMBERED_MAX = 4096  # client-go's maxLruCacheEntries
MESSAGE_BYTES_MAX = 1024


def _truncate(message: str) -> str:
    if len(message.encode()) <= MESSAGE_BYTES_MAX:
        return message
    cut = message.encode()[:MESSAGE_BYTES_MAX - 3].decode(errors="ignore")
    return cut + "..."


@dataclasses.dataclass(frozen=True)
class _Item:
    api_version: str
    kind: str
    namespace: str  # the Event's namespace
    object_namespace: str
    name: str
    uid: str
    resource_version: str
    field_path: str
    type: str
    reason: str
    message: str
    action: str
    at: float

    @property
    def key(self) -> tuple[str, ...]:
        return (self.kind, self.namespace, self.name, self.uid, self.field_path, self.type,
                self.reason, self.message)


@dataclasses.dataclass
class _Seen:
    name: str
    count: int


class EventRecorder:
    def __init__(self, client: Client, component: str, *, host: str = "", instance: str = "",
                 queue_max: int = DEFAULT_QUEUE_MAX, senders: int = DEFAULT_SENDERS,
                 remembered_max: int = DEFAULT_REMEMBERED_MAX,
                 clock: Callable[[], float] = time.time):
        if queue_max <= 0 or senders <= 0 or remembered_max <= 0:
            raise ValueError(f"EventRecorder: queue_max, senders and remembered_max must be "
                             f"> 0, got {queue_max}, {senders}, {remembered_max}")
        self.client = client
        self.component = component
        self.host = host
        self.instance = instance or host
        self._clock = clock
        per_sender = max(1, queue_max // senders)
        self._queues: list[asyncio.Queue[_Item]] = [asyncio.Queue(per_sender)
                                                    for _ in range(senders)]
        self._seen: collections.OrderedDict[tuple, _Seen] = collections.OrderedDict()
        self._remembered_max = remembered_max
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.written = 0
        self._last_name_ns = 0

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.get_running_loop().create_task(self._send_loop(q),
                                                                  name=f"events-{i}")
                           for i, q in enumerate(self._queues)]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def flush(self, timeout_s: float) -> None:
        """Wait until every queued event has been written (tests, graceful stop)."""
        async with asyncio.timeout(timeout_s):
            for q in self._queues:
                await q.join()

    def record(self, obj: Any, type_: str, reason: str, message: str, *,
               field_path: str = "", action: str = "") -> None:
        meta = obj.metadata
        kind, api_version = obj.kind, obj.api_version
        if not kind or not api_version:
            registered = REGISTRY.by_message(obj)
            kind, api_version = registered.kind, registered.api_version
        item = _Item(api_version, kind, meta.namespace or "default", meta.namespace, meta.name,
                     meta.uid, meta.resource_version, field_path, type_, reason,
                     _truncate(message), action, self._clock())
        queue = self._queues[zlib.crc32(repr(item.key).encode()) % len(self._queues)]
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("event queue full; dropping events", dropped=self.dropped,
                            reason=reason, object=f"{kind} {meta.namespace}/{meta.name}")

    async def _send_loop(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            item = await queue.get()
            try:
                await self._write(item)
                self.written += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - best effort: log and go on
                log.warning("cannot write event", reason=item.reason,
                            object=f"{item.kind} {item.object_namespace}/{item.name}",
                            error=f"{type(exc).__name__}: {exc}")
            finally:
                queue.task_done()

    async def _write(self, item: _Item) -> None:
        seen = self._seen.get(item.key)
        stamp = timefmt.rfc3339(item.at)
        if seen is not None:
            self._seen.move_to_end(item.key)
            try:
                await self.client.patch("events", seen.name, item.namespace,
                                        patch={"count": seen.count + 1, "lastTimestamp": stamp})
                seen.count += 1
                return
            except errors.NotFound:
                del self._seen[item.key]  # deleted (or expired) meanwhile: start over
        event = core_pb2.Event(api_version="v1", kind="Event")
        # Unique per recorder even when two events share a clock reading.
        name_ns = max(int(item.at * 1e9), self._last_name_ns + 1)
        self._last_name_ns = name_ns
        event.metadata.name = f"{item.name}.{name_ns:x}"
        event.metadata.namespace = item.namespace
        ref = event.involved_object
        ref.api_version, ref.kind = item.api_version, item.kind
        ref.namespace, ref.name, ref.uid = item.object_namespace, item.name, item.uid
        ref.resource_version = item.resource_version
        ref.field_path = item.field_path
        event.reason, event.message, event.type = item.reason, item.message, item.type
        event.source.component = self.component
        event.source.host = self.host
        event.first_timestamp = event.last_timestamp = stamp
        event.event_time = timefmt.rfc3339_micro(item.at)
        event.count = 1
        event.action = item.action
        event.reporting_component = self.component
        event.reporting_instance = self.instance
        await self.client.create(event)
        self._seen[item.key] = _Seen(event.metadata.name, 1)
        while len(self._seen) > self._remembered_max:
            self._seen.popitem(last=False)
