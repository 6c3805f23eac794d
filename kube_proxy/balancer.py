"""The choice table of one route: which endpoint a new connection goes to (pure).

- `pick(client_ip, exclude)` returns an endpoint not in `exclude` (addresses
  already tried for this connection), or None when there is none.
- Round robin (default) cycles through the endpoints in order; `random`
  picks uniformly with the injected generator.
- Session affinity (`affinity_timeout_s` > 0, Service sessionAffinity
  ClientIP): a client goes back to the endpoint it last used as long as that
  endpoint is still in the table and it came back within the timeout since
  its last connection (kube-proxy's userspace rule). A failed endpoint is
  `exclude`d and the client is re-pinned to the next choice. The table of
  clients is bounded (least recently used dropped first).
- `set_endpoints` replaces the table; affinity entries to endpoints that
  left are dropped, the others kept. Connections in flight are not the
  balancer's business: they never come back here.

Time comes from `clock` (monotonic seconds), so tests drive it.
"""
from __future__ import annotations

import collections
import random
import time
from typing import Callable, Collection

from kube_proxy.servicemap import Endpoint

ROUND_ROBIN = "round-robin"
RANDOM = "random"
MODES = (ROUND_ROBIN, RANDOM)
AFFINITY_CLIENTS_MAX = 10_000


class Balancer:
    def __init__(self, endpoints: tuple[Endpoint, ...] = (), *, mode: str = ROUND_ROBIN,
                 affinity_timeout_s: float = 0.0, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 affinity_clients_max: int = AFFINITY_CLIENTS_MAX):
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
        if affinity_clients_max <= 0:
            raise ValueError("affinity_clients_max must be > 0")
        self.mode = mode
        self.affinity_timeout_s = affinity_timeout_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._clients_max = affinity_clients_max
        self._next = 0
        # client ip -> (endpoint, last used); insertion order = least recently used first.
        self._affinity: collections.OrderedDict[str, tuple[Endpoint, float]] = \
            collections.OrderedDict()
        self.endpoints: tuple[Endpoint, ...] = ()
        self.set_endpoints(endpoints)

    def __len__(self) -> int:
        return len(self.endpoints)

    def set_endpoints(self, endpoints: tuple[Endpoint, ...],
                      affinity_timeout_s: float | None = None) -> None:
        if affinity_timeout_s is not None and affinity_timeout_s != self.affinity_timeout_s:
            self.affinity_timeout_s = affinity_timeout_s
            self._affinity.clear()
        if endpoints == self.endpoints:
            return
        self.endpoints = tuple(endpoints)
        present = {e.address for e in self.endpoints}
        for client, (ep, _) in list(self._affinity.items()):
            if ep.address not in present:
                del self._affinity[client]
        if self.endpoints:
            self._next %= len(self.endpoints)
        else:
            self._next = 0

    def pick(self, client_ip: str, exclude: Collection[str] = ()) -> Endpoint | None:
        """An endpoint for a new connection from client_ip; `exclude`: addresses
        (ip:port) that failed for this connection."""
        now = self._clock()
        if self.affinity_timeout_s > 0:
            pinned = self._affinity.get(client_ip)
            if pinned is not None:
                ep, last_s = pinned
                if now - last_s <= self.affinity_timeout_s and ep.address not in exclude:
                    self._affinity[client_ip] = (ep, now)
                    self._affinity.move_to_end(client_ip)
                    return ep
                del self._affinity[client_ip]
        ep = self._choose(exclude)
        if ep is not None and self.affinity_timeout_s > 0:
            self._affinity[client_ip] = (ep, now)
            self._affinity.move_to_end(client_ip)
            while len(self._affinity) > self._clients_max:
                self._affinity.popitem(last=False)
        return ep

    def _choose(self, exclude: Collection[str]) -> Endpoint | None:
        candidates = self.endpoints
        if exclude:
            candidates = tuple(e for e in candidates if e.address not in exclude)
        if not candidates:
            return None
        if self.mode == RANDOM:
            return self._rng.choice(candidates)
        # Round robin over the whole table; skip excluded ones.
        n = len(self.endpoints)
        for i in range(n):
            ep = self.endpoints[(self._next + i) % n]
            if ep.address not in exclude:
                self._next = (self._next + i + 1) % n
                return ep
        raise AssertionError("unreachable: candidates is not empty")

    @property
    def affinity_clients(self) -> int:
        return len(self._affinity)
