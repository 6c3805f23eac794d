"""Applying a servicemap.Desired to live listeners and choice tables.

`apply(desired)` is idempotent and touches only the difference:
- routes: a Balancer per route, kept across updates (its round-robin place
  and affinity entries survive), endpoints replaced; routes gone are dropped.
- listeners: new keys are bound, keys gone are closed (their connections run
  on), kept keys get their (possibly new) route. A bind that fails (a
  privileged port without the capability, an address in use) is returned as
  a `ListenFailure` and tried again at the next apply; the others are served.
- metrics: Services no longer served lose their counters.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import random
from typing import Callable

import structlog

from kube_proxy.balancer import ROUND_ROBIN, Balancer
from kube_proxy.metrics import Metrics
from kube_proxy.proxy import Limits, Listener, Routes, make_listener
from kube_proxy.servicemap import Desired, ListenerKey, RouteKey

log = structlog.get_logger("kube_proxy")

UNPRIVILEGED_PORT_START_PATH = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


@dataclasses.dataclass(frozen=True)
class ListenFailure:
    key: ListenerKey
    service: str
    error: str
    permission: bool   # EACCES/EPERM: a privileged port without the capability


def failure_message(failure: ListenFailure, node: str, unprivileged_port_start: int) -> str:
    """The Warning Event's message for a listener that could not be bound."""
    message = f"cannot serve {failure.key}: {failure.error}"
    if failure.permission:
        message += (f" (ports below net.ipv4.ip_unprivileged_port_start="
                    f"{unprivileged_port_start} need root or CAP_NET_BIND_SERVICE)")
    return message + f"; kube-proxy on {node} serves the Service's other ports"


class Proxier:
    def __init__(self, limits: Limits, *, balance: str = ROUND_ROBIN,
                 rng: random.Random | None = None, metrics: Metrics | None = None,
                 listener_factory: Callable[[ListenerKey, RouteKey, Routes, Limits], Listener]
                 = make_listener):
        self.limits = limits
        self.balance = balance
        self.rng = rng or random.Random()
        self.metrics = metrics or Metrics()
        self.routes = Routes(self.metrics)
        self.listeners: dict[ListenerKey, Listener] = {}
        self.failed: dict[ListenerKey, str] = {}
        self.syncs = 0
        self._make_listener = listener_factory

    async def apply(self, desired: Desired) -> list[ListenFailure]:
        self.syncs += 1
        routes = self.routes
        for key in list(routes.balancers):
            if key not in desired.routes:
                del routes.balancers[key]
                del routes.services[key]
        for key, route in desired.routes.items():
            balancer = routes.balancers.get(key)
            if balancer is None:
                routes.balancers[key] = Balancer(route.endpoints, mode=self.balance,
                                                 affinity_timeout_s=route.affinity_timeout_s,
                                                 rng=self.rng)
            else:
                balancer.set_endpoints(route.endpoints, route.affinity_timeout_s)
            routes.services[key] = route.service
            self.metrics.of(route.service)  # served Services show, with zeros at first
        for key in list(self.listeners):
            if key not in desired.listeners:
                self.listeners.pop(key).close()
                log.info("stopped listening", listener=str(key))
        self.failed = {k: v for k, v in self.failed.items() if k in desired.listeners}
        failures = []
        for key, route_key in desired.listeners.items():
            listener = self.listeners.get(key)
            if listener is not None:
                listener.route = route_key
                continue
            listener = self._make_listener(key, route_key, routes, self.limits)
            try:
                await listener.start()
            except OSError as exc:
                listener.close()
                # asyncio wraps the bind error in a long sentence: say the errno's text.
                text = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                failure = ListenFailure(key, desired.service_of(key), text,
                                        exc.errno in (errno.EACCES, errno.EPERM))
                if self.failed.get(key) != text:
                    failures.append(failure)
                self.failed[key] = text
                continue
            self.failed.pop(key, None)
            self.listeners[key] = listener
            log.info("listening", listener=str(key), service=route_key.service_port)
        self.metrics.retain({r.service for r in desired.routes.values()})
        return failures

    def snapshot(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for key, listener in sorted(self.listeners.items(), key=lambda kv: str(kv[0])):
            balancer = self.routes.balancers.get(listener.route)
            out.append({"listener": str(key), "route": listener.route.service_port,
                        "scope": listener.route.scope,
                        "endpoints": [e.address for e in balancer.endpoints] if balancer else [],
                        "active": listener.active})
        for key, error in sorted(self.failed.items(), key=lambda kv: str(kv[0])):
            out.append({"listener": str(key), "error": error})
        return out

    async def stop(self, drain_s: float) -> None:
        """Close every listener, let TCP connections drain up to drain_s, abort the rest."""
        listeners = list(self.listeners.values())
        self.listeners.clear()
        for listener in listeners:
            listener.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while any(lst.active for lst in listeners) and loop.time() < deadline:
            await asyncio.sleep(0.05)  # drain poll, bounded by drain_s
        for listener in listeners:
            listener.abort_all()


def unprivileged_port_start() -> int:
    """net.ipv4.ip_unprivileged_port_start (1024 when unreadable)."""
    try:
        with open(UNPRIVILEGED_PORT_START_PATH) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024
