"""Events about pods, written through the API the way kube-scheduler's recorder does.

- `record(pod, type, reason, message, action)` never blocks and never fails:
  the event joins a bounded queue and is written by a few sender tasks; when
  the queue is full it is dropped and counted (client-go's broadcaster drops
  too: events are best effort and must never slow scheduling down).
- Events are core/v1 Events in the pod's namespace, named `<pod>.<hex ns>`,
  with source.component and reportingComponent = the scheduler's name,
  reportingInstance = its identity, first/lastTimestamp, count and eventTime.
- Repeats (same pod uid, type, reason and message) are de-duplicated like
  client-go's EventCorrelator: the existing Event gets count + 1 and a new
  lastTimestamp instead of a new object. The memory of recent events is a
  bounded LRU. One key always goes to the same sender, so its repeats are
  written in order and never race to create two Events.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import time
import zlib
from typing import Any, Callable

import structlog

from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.client.clientset import Client

log = structlog.get_logger("scheduler.events")

NORMAL = "Normal"
WARNING = "Warning"
DEFAULT_QUEUE_MAX = 1000  # client-go's maxQueuedEvents (the scheduler asks for more)
# Few writers: in a burst Events then take little of the apiserver's write
# capacity (binds come first) and trail by a few seconds; a full queue drops.
DEFAULT_SENDERS = 2
DEFAULT_REMEMBERED_MAX = 4096  # client-go's maxLruCacheEntries


def rfc3339(t: float) -> str:
    """metav1.Time: whole seconds."""
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float) -> str:
    """metav1.MicroTime."""
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class _Item:
    namespace: str
    pod_name: str
    pod_uid: str
    pod_resource_version: str
    type: str
    reason: str
    message: str
    action: str
    at: float

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        return (self.namespace, self.pod_name, self.pod_uid, self.type, self.reason,
                self.message)


@dataclasses.dataclass
class _Seen:
    name: str
    count: int
    first_timestamp: str


class EventRecorder:
    def __init__(self, client: Client, component: str, instance: str, *,
                 queue_max: int = DEFAULT_QUEUE_MAX, senders: int = DEFAULT_SENDERS,
                 remembered_max: int = DEFAULT_REMEMBERED_MAX,
                 clock: Callable[[], float] = time.time):
        if queue_max <= 0 or senders <= 0 or remembered_max <= 0:
            raise ValueError(f"EventRecorder: queue_max, senders and remembered_max must be "
                             f"> 0, got {queue_max}, {senders}, {remembered_max}")
        self.client = client
        self.component = component
        self.instance = instance
        self._clock = clock
        per_sender = max(1, queue_max // senders)
        self._queues: list[asyncio.Queue[_Item]] = [asyncio.Queue(per_sender)
                                                    for _ in range(senders)]
        self._seen: collections.OrderedDict[tuple, _Seen] = collections.OrderedDict()
        self._remembered_max = remembered_max
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.written = 0

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

    def record(self, pod: Any, type_: str, reason: str, message: str, action: str) -> None:
        meta = pod.metadata
        item = _Item(meta.namespace, meta.name, meta.uid, meta.resource_version, type_, reason,
                     message, action, self._clock())
        queue = self._queues[zlib.crc32(repr(item.key).encode()) % len(self._queues)]
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("event queue full; dropping events", dropped=self.dropped,
                            reason=reason, pod=f"{meta.namespace}/{meta.name}")

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
                            pod=f"{item.namespace}/{item.pod_name}",
                            error=f"{type(exc).__name__}: {exc}")
            finally:
                queue.task_done()

    async def _write(self, item: _Item) -> None:
        seen = self._seen.get(item.key)
        stamp = rfc3339(item.at)
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
        event.metadata.name = f"{item.pod_name}.{int(item.at * 1e9):x}"
        event.metadata.namespace = item.namespace
        ref = event.involved_object
        ref.api_version, ref.kind = "v1", "Pod"
        ref.namespace, ref.name, ref.uid = item.namespace, item.pod_name, item.pod_uid
        ref.resource_version = item.pod_resource_version
        event.reason, event.message, event.type = item.reason, item.message, item.type
        event.source.component = self.component
        event.first_timestamp = event.last_timestamp = stamp
        event.event_time = rfc3339_micro(item.at)
        event.count = 1
        event.action = item.action
        event.reporting_component = self.component
        event.reporting_instance = self.instance
        await self.client.create(event)
        self._seen[item.key] = _Seen(event.metadata.name, 1, stamp)
        while len(self._seen) > self._remembered_max:
            self._seen.popitem(last=False)
