"""Back-off, written once for every component.

- `exponential_s(attempt, base_s, max_s)`: the capped doubling every retry
  loop uses (attempt 1 waits base_s).
- `Exponential`: that sequence with its failure count and equal jitter (half
  the delay fixed, half random), for a loop that retries one thing: reconnects,
  re-watches, restarts of a process or a background loop. `reset()` after a
  success.
- `Backoff`: per-key back-off as the kubelet's (client-go flowcontrol.Backoff),
  described below.

`Backoff` is used for CrashLoopBackOff (key: pod uid + container name) and image pulls
(key: pod uid + image). The first restart is immediate; `next(key)` then
arms `initial_s`, doubling on every further call up to `max_s`. A key is in
back-off while less than its current delay has passed since the given
moment (the container's finish time). A key left alone for `reset_s` (10
minutes of clean running by default) starts over. Time comes from `clock`,
so tests drive it by hand; the table is bounded (oldest keys dropped).
"""
from __future__ import annotations

import collections
import dataclasses
import random
import time
from typing import Callable

_DOUBLINGS_MAX = 62  # 2**62 overflows no float; any cap is reached long before


def exponential_s(attempt: int, base_s: float, max_s: float) -> float:
    """The delay before retry number `attempt` (1-based): base_s doubled per
    attempt, at most max_s. Attempt 0 (no failure yet) waits nothing."""
    if attempt <= 0:
        return 0.0
    return min(max_s, base_s * 2 ** min(attempt - 1, _DOUBLINGS_MAX))


class Exponential:
    """Capped exponential back-off with equal jitter for one retry loop."""

    def __init__(self, base_s: float, max_s: float, *, jitter: float = 0.5,
                 rng: random.Random | None = None):
        if base_s <= 0 or max_s < base_s or not 0 <= jitter <= 1:
            raise ValueError(f"Exponential: need 0 < base_s <= max_s and 0 <= jitter <= 1, "
                             f"got {base_s}, {max_s}, {jitter}")
        self.base_s = base_s
        self.max_s = max_s
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def next_s(self) -> float:
        """Count a failure; the delay to wait before the next try."""
        self.failures += 1
        delay_s = exponential_s(self.failures, self.base_s, self.max_s)
        fixed_s = delay_s * (1 - self.jitter)
        return fixed_s + self._rng.uniform(0, delay_s - fixed_s)

    def reset(self) -> None:
        self.failures = 0


@dataclasses.dataclass
class _Entry:
    delay_s: float
    updated_s: float


class Backoff:
    def __init__(self, initial_s: float, max_s: float, reset_s: float, *,
                 clock: Callable[[], float] = time.time, keys_max: int = 10_000):
        if initial_s <= 0 or max_s < initial_s or reset_s <= 0:
            raise ValueError(f"Backoff: need 0 < initial_s <= max_s and reset_s > 0, got "
                             f"{initial_s}, {max_s}, {reset_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.reset_s = reset_s
        self.clock = clock
        self.keys_max = keys_max
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry.updated_s > self.reset_s:
            del self._entries[key]
            return None
        return entry

    def delay_s(self, key: str) -> float:
        """The current delay (0 when the key has none)."""
        entry = self._live(key)
        return entry.delay_s if entry else 0.0

    def next(self, key: str) -> float:
        """Record a restart now: arm or double the delay; returns the new delay."""
        now = self.clock()
        entry = self._live(key)
        if entry is None:
            entry = _Entry(self.initial_s, now)
        else:
            entry.delay_s = min(entry.delay_s * 2, self.max_s)
            entry.updated_s = now
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.keys_max:
            self._entries.popitem(last=False)
        return entry.delay_s

    def remaining_s(self, key: str, since_s: float) -> float:
        """Seconds still to wait, counted from `since_s` (0: not in back-off)."""
        entry = self._live(key)
        if entry is None:
            return 0.0
        return max(0.0, since_s + entry.delay_s - self.clock())

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
