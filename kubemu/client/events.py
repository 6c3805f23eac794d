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
- Correlation is client-go's EventCorrelator (`EventCorrelator`, run in
  `record`): a repeat (same source, object, fieldPath, type, reason and
  message) patches the existing Event (count + 1, lastTimestamp, message)
  instead of creating one; from the 10th different message of one reason
  about one object within 10 minutes, those are combined into one
  "(combined from similar events): ..." Event; a source may record 25 events
  about one object (per type), then one every 5 minutes. Its caches are
  bounded LRUs. One correlation key always goes to the same sender, so its
  writes happen in order and never race to create two Events; an Event gone
  meanwhile (deleted, or expired under the apiserver's --event-ttl) is
  created again with its name and count.
- `api="events.k8s.io"` records as client-go's newer tools/events recorder
  (kube-scheduler's since 1.19) instead, still as core/v1 Events, the way
  an events.k8s.io/v1 Event reads through core/v1: eventTime (MicroTime),
  action, reportingComponent / reportingInstance, no source, no
  first/lastTimestamp, no count. Its only correlation is `EventSeriesCache`:
  an isomorphic repeat (same object, related, type, reason, action and
  reporter; the note is not compared, as client-go's eventKey) within
  `isomorphic_window_s` (client-go's finishTime, 6 min) of the last
  occurrence sets series {count: 2, lastObservedTime} and is written at once;
  later repeats only bump the cached series, written at most once per
  `series_heartbeat_s` (client-go's refreshTime, 30 min) and once more when the
  series ends (no repeat for `isomorphic_window_s`). No spam filter and no
  similar-event aggregation, as client-go's tools/events.
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
# client-go's defaultAggregateMaxEvents / defaultAggregateIntervalInSeconds.
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL_S = 600.0
# client-go's defaultSpamBurst / defaultSpamQPS: 25 events per source, object
# and type, then one every 5 minutes.
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
COMBINED_PREFIX = "(combined from similar events): "
CORE_API = "v1"
EVENTS_API = "events.k8s.io"
# client-go tools/events: finishTime (a series without a repeat for this long
# is over) and refreshTime (every series is written again this often).
ISOMORPHIC_WINDOW_S = 360.0
SERIES_HEARTBEAT_S = 1800.0
SERIES_TICK_S = 30.0  # how often the recorder checks its series for due writes


def _truncate(message: str) -> str:
    if len(message.encode()) <= MESSAGE_BYTES_MAX:
        return message
    cut = message.encode()[:MESSAGE_BYTES_MAX - 3].decode(errors="ignore")
    return cut + "..."


class _LRU(collections.OrderedDict):
    """A bounded map that forgets its least recently used entries."""

    def __init__(self, max_len: int):
        super().__init__()
        self.max_len = max_len

    def get_recent(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.max_len:
            self.popitem(last=False)


@dataclasses.dataclass
class _Aggregate:
    local_keys: set[str]
    last_s: float


@dataclasses.dataclass
class _Observed:
    count: int
    first_timestamp: str
    name: str


@dataclasses.dataclass
class _Bucket:
    tokens: float
    at_s: float


@dataclasses.dataclass(frozen=True)
class Correlated:
    """What to write: `event` to create, or, with `patch`, the existing Event
    of that name to patch (created as `event` if it is gone). `key` is the
    correlation key: writes of one key must stay in order."""

    event: core_pb2.Event
    patch: dict[str, Any] | None
    key: tuple


def _involved(event: core_pb2.Event) -> tuple:
    ref = event.involved_object
    return (event.source.component, event.source.host, ref.kind, ref.namespace, ref.name,
            ref.uid, ref.api_version)


def event_key(event: core_pb2.Event) -> tuple:
    """getEventKey: the same source, object, type, reason and message."""
    return (*_involved(event), event.involved_object.field_path, event.type, event.reason,
            event.message)


def aggregate_key(event: core_pb2.Event) -> tuple:
    """EventAggregatorByReasonFunc's group: all but the message."""
    return (*_involved(event), event.type, event.reason, event.reporting_component,
            event.reporting_instance)


def spam_key(event: core_pb2.Event) -> tuple:
    """getSpamKey: the source, the object and (since Kubernetes 1.31,
    kubernetes#124747) the type, so Warnings are not starved by Normals."""
    return (*_involved(event), event.type)


class EventCorrelator:
    """client-go's tools/record EventCorrelator, on an injectable clock (unix s).

    `correlate(event)` runs its three steps on a new Event (count 1):
    - aggregation: once `aggregate_max_events` different messages with the
      same source, object, type and reason were seen within
      `aggregate_interval_s` of one another, the event becomes one
      "(combined from similar events): <message>" Event whose later
      occurrences update it;
    - the event log: an event (or aggregate) seen before updates the
      existing Event: same name and firstTimestamp, count + 1, the new
      lastTimestamp and message (the patch client-go sends);
    - the spam filter: per source, object and type a token bucket
      (`spam_burst`, refilled at `spam_qps`); an event without a token is
      dropped (None).
    Every cache is an LRU of at most `cache_max` entries (client-go's 4096).
    """

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 cache_max: int = DEFAULT_REMEMBERED_MAX,
                 aggregate_max_events: int = AGGREGATE_MAX_EVENTS,
                 aggregate_interval_s: float = AGGREGATE_INTERVAL_S,
                 spam_burst: int = SPAM_BURST, spam_qps: float = SPAM_QPS):
        if cache_max <= 0 or aggregate_max_events <= 0 or spam_burst <= 0 or spam_qps <= 0:
            raise ValueError("EventCorrelator: cache_max, aggregate_max_events, spam_burst "
                             "and spam_qps must be > 0")
        self.clock = clock
        self.aggregate_max_events = aggregate_max_events
        self.aggregate_interval_s = aggregate_interval_s
        self.spam_burst = spam_burst
        self.spam_qps = spam_qps
        self._aggregates = _LRU(cache_max)
        self._observed = _LRU(cache_max)
        self._buckets = _LRU(cache_max)

    def correlate(self, event: core_pb2.Event) -> Correlated | None:
        now = self.clock()
        event, key = self._aggregate(event, now)
        patch = self._observe(event, key)
        if not self._allow(event, now):
            return None
        return Correlated(event, patch, key)

    def _aggregate(self, event: core_pb2.Event, now: float) -> tuple[core_pb2.Event, tuple]:
        group = aggregate_key(event)
        record = self._aggregates.get_recent(group)
        if record is None or now - record.last_s > self.aggregate_interval_s:
            record = _Aggregate(set(), now)
        record.local_keys.add(event.message)
        record.last_s = now
        self._aggregates.put(group, record)
        if len(record.local_keys) < self.aggregate_max_events:
            return event, event_key(event)
        record.local_keys.pop()  # client-go's PopAny: the set stays below the limit
        stamp = timefmt.rfc3339(now)
        combined = core_pb2.Event(api_version="v1", kind="Event", count=1, type=event.type,
                                  reason=event.reason, first_timestamp=stamp,
                                  last_timestamp=stamp,
                                  message=_truncate(COMBINED_PREFIX + event.message))
        combined.metadata.name = f"{event.involved_object.name}.{int(now * 1e9):x}"
        combined.metadata.namespace = event.metadata.namespace
        combined.involved_object.CopyFrom(event.involved_object)
        combined.source.CopyFrom(event.source)
        return combined, group

    def _observe(self, event: core_pb2.Event, key: tuple) -> dict[str, Any] | None:
        last = self._observed.get_recent(key)
        patch = None
        if last is not None:
            event.metadata.name = last.name
            event.first_timestamp = last.first_timestamp
            event.count = last.count + 1
            patch = {"count": event.count, "lastTimestamp": event.last_timestamp,
                     "message": event.message}
        self._observed.put(key, _Observed(event.count, event.first_timestamp,
                                          event.metadata.name))
        return patch

    def _allow(self, event: core_pb2.Event, now: float) -> bool:
        key = spam_key(event)
        bucket = self._buckets.get_recent(key)
        if bucket is None:
            bucket = _Bucket(float(self.spam_burst), now)
        bucket.tokens = min(float(self.spam_burst),
                            bucket.tokens + max(0.0, now - bucket.at_s) * self.spam_qps)
        bucket.at_s = max(bucket.at_s, now)
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets.put(key, bucket)
        return allowed


def series_key(event: core_pb2.Event) -> tuple:
    """client-go tools/events getKey: type, action, reason, reporting
    controller and instance, the regarding and the related object — not the
    note, so a changed message joins the series of the first one."""
    def ref(r: core_pb2.ObjectReference) -> tuple:
        return (r.api_version, r.kind, r.namespace, r.name, r.uid, r.resource_version,
                r.field_path)
    return (event.type, event.action, event.reason, event.reporting_component,
            event.reporting_instance, ref(event.involved_object), ref(event.related))


@dataclasses.dataclass
class _Series:
    event: core_pb2.Event  # the first occurrence, with the series so far
    written_count: int  # series.count last written (0: the singleton only)
    written_s: float  # when it was last written


def _last_seen_s(event: core_pb2.Event) -> float:
    return timefmt.parse_rfc3339(event.series.last_observed_time if event.HasField("series")
                                 else event.event_time)


class EventSeriesCache:
    """client-go's tools/events eventBroadcaster cache, on an injectable clock.

    `observe(event)` returns the writes an occurrence causes: the first
    occurrence is created as it is; an isomorphic repeat within
    `isomorphic_window_s` of the key's last occurrence starts a series
    (count 2, lastObservedTime now) written at once as a patch of `series`;
    later repeats bump the cached series and are written only when
    `heartbeat_s` has passed since the last write. `tick()` returns the writes
    that are due by time: every series not written for `heartbeat_s`
    (client-go's refreshExistingEventSeries, which also keeps the Event alive
    under --event-ttl) and the last count of a series that ended (no repeat
    for `isomorphic_window_s`, client-go's finishSeries), which then leaves the
    cache. At most `cache_max` keys are kept; the least recently used one
    leaves first, its unwritten count written.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 cache_max: int = DEFAULT_REMEMBERED_MAX,
                 isomorphic_window_s: float = ISOMORPHIC_WINDOW_S,
                 heartbeat_s: float = SERIES_HEARTBEAT_S):
        if cache_max <= 0 or isomorphic_window_s <= 0 or heartbeat_s <= 0:
            raise ValueError("EventSeriesCache: cache_max, isomorphic_window_s and heartbeat_s "
                             "must be > 0")
        self.clock = clock
        self.isomorphic_window_s = isomorphic_window_s
        self.heartbeat_s = heartbeat_s
        self._series = _LRU(cache_max)

    def __len__(self) -> int:
        return len(self._series)

    def observe(self, event: core_pb2.Event) -> list[Correlated]:
        now = self.clock()
        key = series_key(event)
        writes: list[Correlated] = []
        entry = self._series.get_recent(key)
        if entry is not None and now - _last_seen_s(entry.event) > self.isomorphic_window_s:
            writes.extend(self._final(key, entry))  # ended: this occurrence starts anew
            entry = None
        if entry is None:
            cached = core_pb2.Event()
            cached.CopyFrom(event)
            self._series[key] = _Series(cached, 0, now)
            while len(self._series) > self._series.max_len:
                old_key, old = self._series.popitem(last=False)
                writes.extend(self._final(old_key, old))
            writes.append(Correlated(event, None, key))
            return writes
        series = entry.event.series
        series.count = series.count + 1 if entry.event.HasField("series") else 2
        series.last_observed_time = timefmt.rfc3339_micro(now)
        if entry.written_count == 0 or now - entry.written_s >= self.heartbeat_s:
            writes.append(self._write(key, entry, now))
        return writes

    def tick(self) -> list[Correlated]:
        now = self.clock()
        writes: list[Correlated] = []
        for key, entry in list(self._series.items()):
            if now - _last_seen_s(entry.event) > self.isomorphic_window_s:
                writes.extend(self._final(key, entry))
                del self._series[key]
            elif entry.event.HasField("series") and now - entry.written_s >= self.heartbeat_s:
                writes.append(self._write(key, entry, now))
        return writes

    def _final(self, key: tuple, entry: _Series) -> list[Correlated]:
        if entry.event.HasField("series") and entry.event.series.count != entry.written_count:
            return [self._write(key, entry, self.clock())]
        return []

    @staticmethod
    def _write(key: tuple, entry: _Series, now: float) -> Correlated:
        entry.written_count, entry.written_s = entry.event.series.count, now
        event = core_pb2.Event()
        event.CopyFrom(entry.event)  # the queued write must not change with the cache
        patch = {"series": {"count": event.series.count,
                            "lastObservedTime": event.series.last_observed_time}}
        return Correlated(event, patch, key)


class EventRecorder:
    def __init__(self, client: Client, component: str, *, host: str = "", instance: str = "",
                 queue_max: int = DEFAULT_QUEUE_MAX, senders: int = DEFAULT_SENDERS,
                 remembered_max: int = DEFAULT_REMEMBERED_MAX,
                 clock: Callable[[], float] = time.time,
                 correlator: EventCorrelator | None = None, api: str = CORE_API,
                 isomorphic_window_s: float = ISOMORPHIC_WINDOW_S,
                 series_heartbeat_s: float = SERIES_HEARTBEAT_S,
                 series_tick_s: float = SERIES_TICK_S):
        if queue_max <= 0 or senders <= 0 or remembered_max <= 0 or series_tick_s <= 0:
            raise ValueError(f"EventRecorder: queue_max, senders, remembered_max and "
                             f"series_tick_s must be > 0, got {queue_max}, {senders}, "
                             f"{remembered_max}, {series_tick_s}")
        if api not in (CORE_API, EVENTS_API):
            raise ValueError(f"EventRecorder: api must be {CORE_API!r} or {EVENTS_API!r}, "
                             f"got {api!r}")
        self.client = client
        self.component = component
        self.host = host
        self.instance = instance or host
        self.api = api
        self._clock = clock
        self.correlator = correlator or EventCorrelator(clock, cache_max=remembered_max)
        self.series = EventSeriesCache(clock, cache_max=remembered_max,
                                       isomorphic_window_s=isomorphic_window_s,
                                       heartbeat_s=series_heartbeat_s)
        self.series_tick_s = series_tick_s
        per_sender = max(1, queue_max // senders)
        self._queues: list[asyncio.Queue[Correlated]] = [asyncio.Queue(per_sender)
                                                         for _ in range(senders)]
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.filtered = 0  # refused by the spam filter
        self.written = 0
        self._last_name_ns = 0

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.get_running_loop().create_task(self._send_loop(q),
                                                                  name=f"events-{i}")
                           for i, q in enumerate(self._queues)]
            if self.api == EVENTS_API:
                self._tasks.append(asyncio.get_running_loop().create_task(
                    self._series_loop(), name="events-series"))

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
        at = self._clock()
        event = core_pb2.Event(api_version="v1", kind="Event")
        # Unique per recorder even when two events share a clock reading.
        name_ns = max(int(at * 1e9), self._last_name_ns + 1)
        self._last_name_ns = name_ns
        event.metadata.name = f"{meta.name}.{name_ns:x}"
        event.metadata.namespace = meta.namespace or "default"
        ref = event.involved_object
        ref.api_version, ref.kind = api_version, kind
        ref.namespace, ref.name, ref.uid = meta.namespace, meta.name, meta.uid
        ref.resource_version = meta.resource_version
        ref.field_path = field_path
        event.reason, event.message, event.type = reason, _truncate(message), type_
        event.event_time = timefmt.rfc3339_micro(at)
        event.action = action
        event.reporting_component = self.component
        event.reporting_instance = self.instance
        if self.api == EVENTS_API:
            # An events.k8s.io Event read as core/v1: no deprecatedSource,
            # deprecatedFirst/LastTimestamp or deprecatedCount.
            for write in self.series.observe(event):
                self._enqueue(write)
            return
        event.source.component = self.component
        event.source.host = self.host
        event.first_timestamp = event.last_timestamp = timefmt.rfc3339(at)
        event.count = 1
        correlated = self.correlator.correlate(event)
        if correlated is None:
            self.filtered += 1
            return
        self._enqueue(correlated)

    def _enqueue(self, item: Correlated) -> None:
        # One key, one sender: its writes stay in order.
        queue = self._queues[zlib.crc32(repr(item.key).encode()) % len(self._queues)]
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                ref = item.event.involved_object
                log.warning("event queue full; dropping events", dropped=self.dropped,
                            reason=item.event.reason,
                            object=f"{ref.kind} {ref.namespace}/{ref.name}")

    def tick_series(self) -> None:
        """Queue the series writes due by time (heartbeats, ended series)."""
        for write in self.series.tick():
            self._enqueue(write)

    async def _series_loop(self) -> None:
        while True:
            await asyncio.sleep(self.series_tick_s)
            self.tick_series()

    async def _send_loop(self, queue: asyncio.Queue[Correlated]) -> None:
        while True:
            item = await queue.get()
            try:
                await self._write(item)
                self.written += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - best effort: log and go on
                ref = item.event.involved_object
                log.warning("cannot write event", reason=item.event.reason,
                            object=f"{ref.kind} {ref.namespace}/{ref.name}",
                            error=f"{type(exc).__name__}: {exc}")
            finally:
                queue.task_done()

    async def _write(self, item: Correlated) -> None:
        """client-go's recordEvent: patch an existing Event, create it when it
        is new or gone (deleted, or expired under --event-ttl)."""
        event = item.event
        if item.patch is not None:
            try:
                await self.client.patch("events", event.metadata.name, event.metadata.namespace,
                                        patch=item.patch)
                return
            except errors.NotFound:
                pass
        await self.client.create(event)
