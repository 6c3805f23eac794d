"""The scheduling queue: kube-scheduler's PriorityQueue, with an injectable clock.

Three places a pending pod can wait:
- activeQ: ready to schedule; a heap ordered by priority (desc), then by the
  time it entered the queue (asc).
- backoffQ: failed recently; ready again at timestamp + backoff, where backoff
  is initial_backoff_s doubled per attempt, capped at max_backoff_s (kube's
  podInitialBackoffSeconds=1 / podMaxBackoffSeconds=10).
- unschedulable: failed and waiting for a cluster event that may help. A
  cluster event moves a pod back (to backoffQ if still backing off, else
  activeQ) only if one of the plugins that rejected it registered for that
  event (`events_to_plugins`, from Framework.events_to_plugins); a pod that
  failed without a rejecting plugin (an error) moves on any event. A pod waits
  there at most max_unschedulable_s (5 min), then moves anyway.

`pop()` hands out the next pod and marks it in flight, `done(key)` ends that.
A move request that arrives while a pod is in flight (its cycle started before
the event) sends the failed pod to backoffQ instead of unschedulable, so no
event is lost. Updates and deletes of in-flight pods are remembered.

Keys are PodKey (namespace, name, uid). Bounded: at most max_len pods tracked
(queued or in flight); adding more raises QueueFull. One event loop, no
threads; `clock` (seconds, monotonic) decides every time-based move, so tests
advance time by hand and call pop_nowait().
"""
from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import time
from typing import Any, Callable, Iterable, Mapping

from scheduler import podutil
from scheduler.framework import (NODE_ALLOCATABLE_CHANGE, NODE_LABEL_CHANGE,
                                 NODE_SPEC_UNSCHEDULABLE_CHANGE, NODE_TAINT_CHANGE,
                                 UNSCHEDULABLE_TIMEOUT, WILDCARD_EVENT)
from scheduler.podutil import PodKey

DEFAULT_INITIAL_BACKOFF_S = 1.0
DEFAULT_MAX_BACKOFF_S = 10.0
DEFAULT_MAX_UNSCHEDULABLE_S = 300.0
DEFAULT_MAX_LEN = 100_000
ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"
IN_FLIGHT = "in-flight"
DROPPED = "dropped"


class QueueFull(Exception):
    """Adding a new pod would exceed the queue's bound."""


class QueueClosed(Exception):
    """The queue was closed; pop() has nothing more to hand out."""


class QueueEmpty(Exception):
    """pop_nowait(): no pod is ready."""


@dataclasses.dataclass(eq=False)
class QueuedPodInfo:
    pod: Any
    key: PodKey
    timestamp: float  # last time it entered the queue (or failed): orders ties, starts backoff
    initial_attempt_timestamp: float | None = None
    attempts: int = 0
    unschedulable_plugins: frozenset[str] = frozenset()
    scheduling_cycle: int = 0  # the queue's cycle when it was last popped
    _seq: int = 0  # identifies the live heap entry (stale entries are skipped)

    @property
    def priority(self) -> int:
        return podutil.priority(self.pod)


@dataclasses.dataclass
class _InFlight:
    info: QueuedPodInfo
    updated: bool = False
    deleted: bool = False


class SchedulingQueue:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 initial_backoff_s: float = DEFAULT_INITIAL_BACKOFF_S,
                 max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
                 max_unschedulable_s: float = DEFAULT_MAX_UNSCHEDULABLE_S,
                 max_len: int = DEFAULT_MAX_LEN,
                 events_to_plugins: Mapping[str, Iterable[str]] | None = None):
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError(f"SchedulingQueue: need 0 < initial_backoff_s <= max_backoff_s, "
                             f"got {initial_backoff_s}, {max_backoff_s}")
        if max_unschedulable_s <= 0 or max_len <= 0:
            raise ValueError(f"SchedulingQueue: max_unschedulable_s and max_len must be > 0, "
                             f"got {max_unschedulable_s}, {max_len}")
        self._clock = clock
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_unschedulable_s = max_unschedulable_s
        self.max_len = max_len
        self._events_to_plugins = {event: frozenset(plugins)
                                   for event, plugins in (events_to_plugins or {}).items()}
        self._active: dict[PodKey, QueuedPodInfo] = {}
        self._active_heap: list[tuple[int, float, int, PodKey]] = []
        self._backoff: dict[PodKey, QueuedPodInfo] = {}
        self._backoff_heap: list[tuple[float, int, PodKey]] = []
        # Insertion order = entry time order (the clock is monotonic), so the
        # first entries are the ones that have waited longest.
        self._unschedulable: dict[PodKey, QueuedPodInfo] = {}
        self._in_flight: dict[PodKey, _InFlight] = {}
        self._seq = itertools.count(1)
        self._scheduling_cycle = 0
        self._move_request_cycle = -1
        self._closed = False
        self._wakeup = asyncio.Event()

    # ------------------------------------------------------------ informer side

    def add(self, pod: Any) -> None:
        """A pending pod was created (or seen for the first time): it goes to activeQ."""
        key = podutil.pod_key(pod)
        if key in self._in_flight:
            self._note_in_flight_update(key, pod)
            return
        was = self._where(key)
        info = self._take(key)
        if info is None:
            self._check_room(key)
            info = QueuedPodInfo(pod, key, self._clock())
        else:
            info.pod = pod
            if was != ACTIVE:  # an active pod keeps its place in line
                info.timestamp = self._clock()
        self._push_active(info)

    def update(self, old_pod: Any | None, new_pod: Any) -> None:
        """A pending pod changed; an unschedulable pod whose spec changed is retried."""
        key = podutil.pod_key(new_pod)
        if key in self._in_flight:
            self._note_in_flight_update(key, new_pod)
            return
        if key in self._active:
            info = self._active[key]
            info.pod = new_pod
            self._push_active(info)  # priority may have changed: re-heap
            return
        if key in self._backoff:
            self._backoff[key].pod = new_pod
            return
        if key in self._unschedulable:
            info = self._unschedulable[key]
            info.pod = new_pod
            if old_pod is None or _pod_changed(old_pod, new_pod):
                del self._unschedulable[key]
                self._requeue(info)
            return
        self.add(new_pod)

    def delete(self, pod: Any) -> None:
        key = podutil.pod_key(pod)
        flight = self._in_flight.get(key)
        if flight is not None:
            flight.deleted = True
        self._take(key)

    # ------------------------------------------------------------ scheduler side

    def pop_nowait(self) -> QueuedPodInfo:
        """The next pod to schedule, marked in flight; QueueEmpty when none is ready."""
        if self._closed:
            raise QueueClosed("scheduling queue is closed")
        self._flush()
        while self._active_heap:
            _, _, seq, key = heapq.heappop(self._active_heap)
            info = self._active.get(key)
            if info is None or info._seq != seq:
                continue  # stale entry
            del self._active[key]
            now = self._clock()
            info.attempts += 1
            if info.initial_attempt_timestamp is None:
                info.initial_attempt_timestamp = now
            self._scheduling_cycle += 1
            info.scheduling_cycle = self._scheduling_cycle
            self._in_flight[key] = _InFlight(info)
            return info
        raise QueueEmpty()

    async def pop(self) -> QueuedPodInfo:
        """Wait for the next pod; raises QueueClosed after close()."""
        while True:
            try:
                return self.pop_nowait()
            except QueueEmpty:
                pass
            # No await between the check above and clear(): nothing slips in.
            self._wakeup.clear()
            try:
                async with asyncio.timeout(self._next_timed_move_s()):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def done(self, key: PodKey) -> None:
        """The scheduling attempt for `key` is over (bound, requeued or dropped)."""
        self._in_flight.pop(key, None)

    def add_unschedulable(self, info: QueuedPodInfo,
                          unschedulable_plugins: Iterable[str] = ()) -> str:
        """Requeue a pod whose attempt failed; returns where it went.

        Rejected by plugins -> unschedulable, unless a move request (cluster
        event) came in since the attempt started or the pod itself changed
        meanwhile -> backoffQ. No rejecting plugin (an error) -> backoffQ.
        A pod deleted meanwhile is dropped. Call it before done(info.key): the
        in-flight record holds the updates and deletes seen during the attempt.
        """
        flight = self._in_flight.get(info.key)
        if flight is not None:
            if flight.deleted:
                return DROPPED
            info.pod = flight.info.pod
        if self._where(info.key) is not None:
            return DROPPED  # re-added by an informer event meanwhile: that copy wins
        info.timestamp = self._clock()
        info.unschedulable_plugins = frozenset(unschedulable_plugins)
        updated = flight is not None and flight.updated
        if (updated or not info.unschedulable_plugins
                or self._move_request_cycle >= info.scheduling_cycle):
            self._push_backoff(info)
            return BACKOFF
        self._unschedulable[info.key] = info
        return UNSCHEDULABLE

    # ------------------------------------------------------------ cluster events

    def move_all_to_active_or_backoff(self, event: str,
                                      pre_check: Callable[[Any], bool] | None = None) -> int:
        """A cluster event happened: requeue the unschedulable pods it may help.

        Returns how many pods moved. `pre_check(pod)` can narrow further.
        """
        self._move_request_cycle = self._scheduling_cycle
        interested = self._events_to_plugins.get(event, frozenset())
        everything = event in (WILDCARD_EVENT, UNSCHEDULABLE_TIMEOUT)
        moving = [info for info in self._unschedulable.values()
                  if (everything or not info.unschedulable_plugins
                      or info.unschedulable_plugins & interested)
                  and (pre_check is None or pre_check(info.pod))]
        for info in moving:
            del self._unschedulable[info.key]
            self._requeue(info)
        return len(moving)

    def flush_backoff_completed(self) -> int:
        """Move pods whose backoff is over to activeQ; returns how many."""
        now = self._clock()
        moved = 0
        while self._backoff_heap and self._backoff_heap[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff_heap)
            info = self._backoff.get(key)
            if info is None or info._seq != seq:
                continue
            del self._backoff[key]
            self._push_active(info)
            moved += 1
        return moved

    def flush_unschedulable_left_over(self) -> int:
        """Requeue pods that waited longer than max_unschedulable_s; returns how many."""
        now = self._clock()
        expired = []
        for info in self._unschedulable.values():
            if now - info.timestamp <= self.max_unschedulable_s:
                break  # the rest entered later
            expired.append(info)
        for info in expired:
            del self._unschedulable[info.key]
            self._requeue(info)
        return len(expired)

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # ------------------------------------------------------------ introspection

    def backoff_duration_s(self, info: QueuedPodInfo) -> float:
        """initial * 2**(attempts-1), capped (calculateBackoffDuration)."""
        duration = self.initial_backoff_s
        for _ in range(1, info.attempts):
            duration *= 2
            if duration >= self.max_backoff_s:
                return self.max_backoff_s
        return duration

    def backoff_expiry(self, info: QueuedPodInfo) -> float:
        return info.timestamp + self.backoff_duration_s(info)

    def is_backing_off(self, info: QueuedPodInfo) -> bool:
        return self.backoff_expiry(info) > self._clock()

    def where(self, pod_or_key: Any) -> str | None:
        """ACTIVE / BACKOFF / UNSCHEDULABLE / IN_FLIGHT, or None when not tracked."""
        key = pod_or_key if isinstance(pod_or_key, PodKey) else podutil.pod_key(pod_or_key)
        found = self._where(key)
        if found is None and key in self._in_flight:
            return IN_FLIGHT
        return found

    def pending(self) -> dict[str, list[PodKey]]:
        return {ACTIVE: list(self._active), BACKOFF: list(self._backoff),
                UNSCHEDULABLE: list(self._unschedulable)}

    def __len__(self) -> int:
        """Pods waiting in any of the three queues (not those in flight)."""
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    @property
    def scheduling_cycle(self) -> int:
        return self._scheduling_cycle

    # ------------------------------------------------------------ internals

    def _where(self, key: PodKey) -> str | None:
        if key in self._active:
            return ACTIVE
        if key in self._backoff:
            return BACKOFF
        if key in self._unschedulable:
            return UNSCHEDULABLE
        return None

    def _take(self, key: PodKey) -> QueuedPodInfo | None:
        """Remove `key` from whichever queue holds it (heap entries go stale)."""
        for queue in (self._active, self._backoff, self._unschedulable):
            info = queue.pop(key, None)
            if info is not None:
                return info
        return None

    def _check_room(self, key: PodKey) -> None:
        if len(self) + len(self._in_flight) >= self.max_len:
            raise QueueFull(f"scheduling queue is full: {self.max_len} pods pending; "
                            f"cannot add {key}")

    def _note_in_flight_update(self, key: PodKey, pod: Any) -> None:
        flight = self._in_flight[key]
        flight.info.pod = pod
        flight.updated = True

    def _push_active(self, info: QueuedPodInfo) -> None:
        info._seq = next(self._seq)
        self._active[info.key] = info
        heapq.heappush(self._active_heap, (-info.priority, info.timestamp, info._seq, info.key))
        self._compact()
        self._wakeup.set()

    def _push_backoff(self, info: QueuedPodInfo) -> None:
        info._seq = next(self._seq)
        self._backoff[info.key] = info
        heapq.heappush(self._backoff_heap, (self.backoff_expiry(info), info._seq, info.key))
        self._compact()
        self._wakeup.set()  # a waiting pop() may need a shorter timeout

    def _requeue(self, info: QueuedPodInfo) -> None:
        if self.is_backing_off(info):
            self._push_backoff(info)
        else:
            self._push_active(info)

    def _flush(self) -> None:
        self.flush_backoff_completed()
        self.flush_unschedulable_left_over()

    def _next_timed_move_s(self) -> float | None:
        """Seconds until a backoff ends or an unschedulable pod times out (None: never)."""
        deadlines = []
        if self._backoff_heap:
            deadlines.append(self._backoff_heap[0][0])
        first = next(iter(self._unschedulable.values()), None)
        if first is not None:
            deadlines.append(first.timestamp + self.max_unschedulable_s)
        if not deadlines:
            return None
        # A hair past the deadline so the flush sees it as passed.
        return max(0.0, min(deadlines) - self._clock()) + 0.001

    def _compact(self) -> None:
        # Stale heap entries pile up only under many updates; rebuild then.
        if len(self._active_heap) > 2 * len(self._active) + 64:
            self._active_heap = [e for e in self._active_heap
                                 if (i := self._active.get(e[3])) is not None and i._seq == e[2]]
            heapq.heapify(self._active_heap)
        if len(self._backoff_heap) > 2 * len(self._backoff) + 64:
            self._backoff_heap = [e for e in self._backoff_heap
                                  if (i := self._backoff.get(e[2])) is not None and i._seq == e[1]]
            heapq.heapify(self._backoff_heap)


def _pod_changed(old: Any, new: Any) -> bool:
    """Whether a pending pod changed beyond bookkeeping (isPodUpdated): metadata
    resourceVersion/generation/managedFields and status do not count."""
    def strip(pod: Any) -> Any:
        copy = type(pod)()
        copy.CopyFrom(pod)
        copy.metadata.resource_version = ""
        copy.metadata.generation = 0
        del copy.metadata.managed_fields[:]
        copy.ClearField("status")
        return copy
    return strip(old) != strip(new)


def node_update_events(old: Any, new: Any) -> list[str]:
    """The cluster events a Node update amounts to (none: nothing a plugin reads)."""
    events = []
    if dict(old.metadata.labels) != dict(new.metadata.labels):
        events.append(NODE_LABEL_CHANGE)
    if _taints(old) != _taints(new):
        events.append(NODE_TAINT_CHANGE)
    if dict(old.status.allocatable) != dict(new.status.allocatable):
        events.append(NODE_ALLOCATABLE_CHANGE)
    if bool(old.spec.unschedulable) != bool(new.spec.unschedulable):
        events.append(NODE_SPEC_UNSCHEDULABLE_CHANGE)
    return events


def _taints(node: Any) -> list[tuple[str, str, str]]:
    return [(t.key, t.value, t.effect) for t in node.spec.taints]
