"""A rate-limited work queue with client-go's contract (util/workqueue).

- `add(key)`: a key waiting is held once however often it is added.
- `await get()` hands a key to one worker and marks it processing; a key being
  processed is never handed to a second worker. Added again meanwhile, it is
  marked dirty and queued again when the worker calls `done(key)`.
- `add_after(key, delay_s)`: queued once the delay has passed (the earliest
  pending time wins when a key is added after twice).
- `add_rate_limited(key)`: `add_after` with the larger of a per-key exponential
  backoff (base_delay_s * 2**failures, capped at max_delay_s) and a global
  token bucket (qps, burst). `forget(key)` clears the key's failures (call it
  when processing succeeded); `num_requeues(key)` counts them.
- `shutdown()`: adds are ignored from then on; `get()` drains the keys already
  queued, then raises ShutDown. Delayed keys are dropped.
- Bounded: at most `max_len` keys waiting (queued, dirty or delayed) and at
  most `max_len` keys with failures; beyond that adding raises QueueFull.

One event loop, no threads. `clock` (seconds, monotonic) is injectable: delays
are decided against it, so tests can move time by hand and call get_nowait()/len().
"""
from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import time
from typing import Callable, Hashable

Key = Hashable
DEFAULT_MAX_LEN = 100_000


class ShutDown(Exception):
    """The queue was shut down and has no keys left to hand out."""


class QueueEmpty(Exception):
    """get_nowait(): no key is ready."""


class QueueFull(Exception):
    """Adding a new key would exceed the queue's bound."""


class ItemExponentialFailureRateLimiter:
    """Per key: base_delay_s * 2**failures, capped at max_delay_s."""

    def __init__(self, base_delay_s: float, max_delay_s: float, max_keys: int):
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.max_keys = max_keys
        self._failures: dict[Key, int] = {}

    def when(self, key: Key) -> float:
        failures = self._failures.get(key, 0)
        if failures == 0 and len(self._failures) >= self.max_keys:
            raise QueueFull(
                f"workqueue: {self.max_keys} keys are already backing off after failures; "
                f"call forget(key) when a key succeeds or is dropped")
        self._failures[key] = failures + 1
        # 2**60 already dwarfs any sane cap; the bound keeps the float finite.
        delay = self.base_delay_s * (2.0 ** min(failures, 60))
        return min(delay, self.max_delay_s)

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Key) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter:
    """A token bucket shared by all keys: `burst` at once, then `qps` per second.

    Like golang.org/x/time/rate's Reserve: each call takes a token now or
    reserves the next free one, and returns how long to wait for it.
    """

    def __init__(self, qps: float, burst: int, clock: Callable[[], float]):
        if qps <= 0 or burst <= 0:
            raise ValueError(f"BucketRateLimiter: qps and burst must be > 0, got {qps}, {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, key: Key) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.qps


class RateLimitingQueue:
    def __init__(self, *, base_delay_s: float = 0.005, max_delay_s: float = 1000.0,
                 qps: float = 10.0, burst: int = 100, max_len: int = DEFAULT_MAX_LEN,
                 clock: Callable[[], float] = time.monotonic):
        if max_len <= 0:
            raise ValueError(f"RateLimitingQueue: max_len must be > 0, got {max_len}")
        if base_delay_s < 0 or max_delay_s < base_delay_s:
            raise ValueError(
                f"RateLimitingQueue: need 0 <= base_delay_s <= max_delay_s, "
                f"got {base_delay_s}, {max_delay_s}")
        self.max_len = max_len
        self._clock = clock
        self._per_key = ItemExponentialFailureRateLimiter(base_delay_s, max_delay_s, max_len)
        self._bucket = BucketRateLimiter(qps, burst, clock)
        # Keys ready to hand out, in order; every one of them is also in _dirty.
        self._queue: collections.deque[Key] = collections.deque()
        # Keys that need processing (queued, or to be queued when done()).
        self._dirty: set[Key] = set()
        self._processing: set[Key] = set()
        # Delayed keys: key -> ready time, plus a heap of (ready, seq, key) whose
        # entries are stale when they no longer match _waiting.
        self._waiting: dict[Key, float] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()
        self._shutting_down = False
        self._wakeup = asyncio.Event()

    # ------------------------------------------------------------ adding

    def add(self, key: Key) -> None:
        if self._shutting_down:
            return
        self._promote_ready()
        if key in self._dirty:
            return
        if key not in self._waiting:  # a delayed key queued now is no new key
            self._check_room(key)
        self._insert(key)

    def add_after(self, key: Key, delay_s: float) -> None:
        if self._shutting_down:
            return
        if delay_s <= 0:
            self.add(key)
            return
        ready_at = self._clock() + delay_s
        current = self._waiting.get(key)
        if current is not None:
            if ready_at < current:
                self._waiting[key] = ready_at
                self._push(ready_at, key)
            return
        self._check_room(key)
        self._waiting[key] = ready_at
        self._push(ready_at, key)

    def add_rate_limited(self, key: Key) -> float:
        """Queue `key` after its backoff; returns the delay chosen (seconds)."""
        if self._shutting_down:
            return 0.0
        delay_s = max(self._per_key.when(key), self._bucket.when(key))
        self.add_after(key, delay_s)
        return delay_s

    def forget(self, key: Key) -> None:
        self._per_key.forget(key)

    def num_requeues(self, key: Key) -> int:
        return self._per_key.num_requeues(key)

    # ------------------------------------------------------------ taking

    async def get(self) -> Key:
        """The next ready key, marked processing; raises ShutDown once drained."""
        while True:
            try:
                return self.get_nowait()
            except QueueEmpty:
                pass
            if self._shutting_down:
                raise ShutDown("workqueue is shut down")
            timeout_s = None
            if self._heap:
                timeout_s = max(0.0, self._heap[0][0] - self._clock())
            # No await between the check above and clear(): nothing can slip in.
            self._wakeup.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def get_nowait(self) -> Key:
        self._promote_ready()
        if not self._queue:
            if self._shutting_down:
                raise ShutDown("workqueue is shut down")
            raise QueueEmpty()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: Key) -> None:
        """The worker finished `key`; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    # ------------------------------------------------------------ state

    def shutdown(self) -> None:
        self._shutting_down = True
        self._waiting.clear()
        self._heap.clear()
        self._wakeup.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be handed out (not those processing or still delayed)."""
        self._promote_ready()
        return len(self._queue)

    def is_processing(self, key: Key) -> bool:
        return key in self._processing

    def num_delayed(self) -> int:
        return len(self._waiting)

    # ------------------------------------------------------------ internals

    def _check_room(self, key: Key) -> None:
        # Distinct keys stay <= max_len (a key both queued and delayed counts
        # twice here, which only makes the bound stricter).
        if len(self._dirty) + len(self._waiting) >= self.max_len:
            raise QueueFull(
                f"workqueue is full: {self.max_len} keys waiting; cannot add {key!r}")

    def _insert(self, key: Key) -> None:
        self._dirty.add(key)
        if key in self._processing:
            return  # done(key) queues it again
        self._queue.append(key)
        self._wakeup.set()

    def _push(self, ready_at: float, key: Key) -> None:
        heapq.heappush(self._heap, (ready_at, next(self._seq), key))
        # Stale entries pile up only when keys keep moving earlier; compact then.
        if len(self._heap) > 2 * len(self._waiting) + 64:
            self._heap = [(t, s, k) for (t, s, k) in self._heap if self._waiting.get(k) == t]
            heapq.heapify(self._heap)
        self._wakeup.set()  # a getter may need a shorter timeout

    def _promote_ready(self) -> None:
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) != ready_at:
                continue  # stale: the key moved earlier or was already promoted
            del self._waiting[key]
            # Moving from _waiting to _dirty never grows the total: no bound check.
            if key not in self._dirty:
                self._insert(key)
