"""Per-key exponential back-off, as the kubelet's (client-go flowcontrol.Backoff).

Used for CrashLoopBackOff (key: pod uid + container name) and image pulls
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
import time
from typing import Callable


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
