"""ControllerExpectations: what a controller is still waiting to see (kube-controller-manager's).

A controller that creates N pods cannot trust its informer until it has seen
those N creations come back: until then a second sync would count too few pods
and create them again. So before acting it records what it expects
(`expect_creations(key, n)`, `expect_deletions(key, pod_keys)`), the informer
handlers lower the counts as the events arrive (`creation_observed`,
`deletion_observed`), and sync skips the create/delete step while
`satisfied(key)` is False. Expectations expire after `ttl_s` (Kubernetes' 5
minutes) so that a lost watch event cannot wedge a controller for ever.

Deletions are tracked by pod key (UIDTrackingControllerExpectations): a pod
deleted twice, or deleted by someone else, lowers the count once and only if
it was one we were waiting for. Pure logic with an injectable clock.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable

EXPECTATIONS_TTL_S = 5 * 60.0


@dataclasses.dataclass
class _Expected:
    adds: int
    deleting: set[str]
    since: float


class Expectations:
    def __init__(self, *, ttl_s: float = EXPECTATIONS_TTL_S,
                 clock: Callable[[], float] = time.monotonic):
        if ttl_s <= 0:
            raise ValueError(f"Expectations: ttl_s must be > 0, got {ttl_s}")
        self._ttl_s = ttl_s
        self._clock = clock
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        """True when the controller may act on its cache: nothing pending, or
        pending for longer than the TTL (then the stale record is dropped)."""
        exp = self._by_key.get(key)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deleting:
            return True
        if self._clock() - exp.since > self._ttl_s:
            del self._by_key[key]
            return True
        return False

    def expect_creations(self, key: str, count: int) -> None:
        self._set(key, adds=count, deleting=set())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._set(key, adds=0, deleting=set(pod_keys))

    def expect(self, key: str, *, creations: int = 0, deletions: Iterable[str] = ()) -> None:
        """Both at once (SetExpectations): a StatefulSet's Parallel sync, or a
        DaemonSet's, creates some pods and deletes others."""
        self._set(key, adds=creations, deleting=set(deletions))

    def _set(self, key: str, *, adds: int, deleting: set[str]) -> None:
        if adds < 0:
            raise ValueError(f"expectations: adds must be >= 0, got {adds}")
        self._by_key[key] = _Expected(adds, deleting, self._clock())

    def creation_observed(self, key: str) -> None:
        """One expected creation came back (or was refused and will not)."""
        exp = self._by_key.get(key)
        if exp is not None and exp.adds > 0:
            exp.adds -= 1

    def lower_creations(self, key: str, count: int) -> None:
        """`count` creations that will never be observed (their calls failed)."""
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds = max(0, exp.adds - count)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deleting.discard(pod_key)

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected; for logs and tests."""
        exp = self._by_key.get(key)
        return (exp.adds, len(exp.deleting)) if exp is not None else (0, 0)

    def delete(self, key: str) -> None:
        self._by_key.pop(key, None)

    def __len__(self) -> int:
        return len(self._by_key)
