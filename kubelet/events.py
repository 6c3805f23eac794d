"""Events about pods and the node, as the kubelet records them (core/v1 Event).

`record` never blocks and never fails: it puts the event on a bounded queue
(dropping it, with a log line, when the queue is full) and one task writes
them. Repeats of the same (object, fieldPath, type, reason, message) are
aggregated like client-go's correlator: the existing Event's count and
lastTimestamp are updated instead of creating a new one. The table of recent
events is bounded (least recently used dropped).
"""
from __future__ import annotations

import asyncio
import collections
import datetime
import time

import structlog
from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.client.clientset import Client

log = structlog.get_logger()

NORMAL = "Normal"
WARNING = "Warning"
QUEUE_MAX = 1000
RECENT_MAX = 4096
MESSAGE_BYTES_MAX = 1024


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str):
        self.client = client
        self.component = component
        self.host = host
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_MAX)
        self.recent: collections.OrderedDict[tuple, tuple[str, str, int]] = \
            collections.OrderedDict()
        self.dropped = 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="events")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def record(self, obj: Message, event_type: str, reason: str, message: str,
               field_path: str = "") -> None:
        if len(message) > MESSAGE_BYTES_MAX:
            message = message[:MESSAGE_BYTES_MAX - 3] + "..."
        try:
            self.queue.put_nowait((obj, event_type, reason, message, field_path))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event dropped: queue full", reason=reason, dropped=self.dropped)

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self._write(*item)
            except errors.ApiError as err:
                log.info("event not written", reason=item[2], error=str(err))
            except Exception:  # best effort: an event must never stop the kubelet
                log.exception("event not written", reason=item[2])

    async def _write(self, obj: Message, event_type: str, reason: str, message: str,
                     field_path: str) -> None:
        meta = obj.metadata
        kind = obj.kind or type(obj).__name__
        namespace = meta.namespace or "default"
        key = (kind, namespace, meta.name, meta.uid, field_path, event_type, reason, message)
        stamp = _now()
        known = self.recent.get(key)
        if known is not None:
            name, first, count = known
            try:
                updated = await self.client.patch("events", name, namespace, patch={
                    "count": count + 1, "lastTimestamp": stamp})
                self.recent[key] = (name, first, updated.count)
                self.recent.move_to_end(key)
                return
            except errors.NotFound:
                pass  # expired or deleted: write a new one
        event = core_pb2.Event(
            reason=reason, message=message, type=event_type, count=1,
            first_timestamp=stamp, last_timestamp=stamp,
            reporting_component=self.component, reporting_instance=self.host)
        # As the kubelet names them: the time in hex, so names sort by creation.
        event.metadata.name = f"{meta.name}.{time.time_ns():x}"
        event.metadata.namespace = namespace
        ref = event.involved_object
        ref.kind, ref.namespace, ref.name, ref.uid = kind, meta.namespace, meta.name, meta.uid
        ref.api_version = obj.api_version or "v1"
        ref.resource_version = meta.resource_version
        ref.field_path = field_path
        event.source.component = self.component
        event.source.host = self.host
        created = await self.client.create(event)
        self.recent[key] = (created.metadata.name, stamp, 1)
        self.recent.move_to_end(key)
        while len(self.recent) > RECENT_MAX:
            self.recent.popitem(last=False)
