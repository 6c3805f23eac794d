"""The userspace proxies: one listener per (protocol, ip, port), asyncio end to end.

- Listeners bind with SO_REUSEPORT, so every node's kube-proxy of one cluster
  holds the same ClusterIP:port at once and the kernel spreads connections
  (and UDP flows) over the live ones: a proxy that dies takes only its own
  accepted connections with it.
- A listener serves one route (`RouteKey`), looked up at every new
  connection: an endpoint update swaps the route's choice table
  (`Balancer.set_endpoints`) and never touches connections in flight.
  Removing a listener closes its socket only; its connections run on.
- TCP: a new connection with no usable endpoint, or over the listener's
  connection bound, is reset at once (SO_LINGER 0, RST). Otherwise the
  client is paused, an endpoint picked and connected (connect_timeout_s per
  try); a failed try excludes that endpoint and picks another, at most
  connect_tries_max tries, then the client is reset. Bytes are relayed both
  ways with flow control (a full write buffer pauses the other side) and
  half-close (EOF is passed on; both EOFs close).
- UDP: a session per client address, with its own connected socket to the
  chosen endpoint; replies go back through the listener's socket, so they
  come from the Service address. Sessions idle for udp_idle_timeout_s are
  closed by a sweeper; at udp_sessions_max the least recently used one is
  dropped; an ICMP error from the endpoint ends the session so the next
  datagram picks again. Datagrams waiting for a session's socket are bounded.
- `stop(drain_s)`: every listener closes first, then TCP connections get up
  to drain_s to end by themselves, then the rest are aborted.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import socket
import time
from typing import Callable

import structlog

from kubemu.relay import Relay, RelayUpstream, reset

from kube_proxy.balancer import Balancer
from kube_proxy.metrics import Metrics, ServiceMetrics
from kube_proxy.servicemap import TCP, ListenerKey, RouteKey

log = structlog.get_logger("kube_proxy")

UDP_PENDING_DATAGRAMS_MAX = 64
LISTEN_BACKLOG = 511


@dataclasses.dataclass(frozen=True)
class Limits:
    connections_max: int = 1024        # per listener
    connect_timeout_s: float = 1.0
    connect_tries_max: int = 3
    udp_sessions_max: int = 1024       # per listener
    udp_idle_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if min(self.connections_max, self.connect_tries_max, self.udp_sessions_max) <= 0:
            raise ValueError("connection, try and session bounds must be > 0")
        if self.connect_timeout_s <= 0 or self.udp_idle_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")


class Routes:
    """What listeners read at each new connection: route -> (Service, Balancer)."""

    def __init__(self, metrics: Metrics):
        self.balancers: dict[RouteKey, Balancer] = {}
        self.services: dict[RouteKey, str] = {}
        self.metrics = metrics

    def lookup(self, route: RouteKey) -> tuple[Balancer | None, ServiceMetrics]:
        service = self.services.get(route, route.service_port.rpartition(":")[0])
        return self.balancers.get(route), self.metrics.of(service)


# ------------------------------------------------------------------ TCP

class _Upstream(RelayUpstream):
    relay: _Connection

    def data_received(self, data: bytes) -> None:
        self.relay.metrics.bytes_out += len(data)
        super().data_received(data)


class _Connection(Relay):
    """The client side of one proxied TCP connection."""

    def __init__(self, listener: TcpListener):
        super().__init__()
        self.listener = listener
        self.metrics: ServiceMetrics = None  # type: ignore[assignment]
        self._connecting: asyncio.Task[None] | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client = transport  # type: ignore[assignment]
        lst = self.listener
        balancer, self.metrics = lst.routes.lookup(lst.route)
        if len(lst.connections) >= lst.limits.connections_max:
            self.metrics.dropped += 1
            reset(transport)
            return
        if balancer is None or not balancer.endpoints:
            self.metrics.refused += 1
            reset(transport)
            return
        lst.connections.add(self)
        self._counted = True
        self.metrics.connections_total += 1
        self.metrics.connections_active += 1
        self.hold()
        peer = transport.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        self._connecting = asyncio.get_running_loop().create_task(self._connect(client_ip))

    async def _connect(self, client_ip: str) -> None:
        lst = self.listener
        loop = asyncio.get_running_loop()
        tried: set[str] = set()
        for _ in range(lst.limits.connect_tries_max):
            balancer, _m = lst.routes.lookup(lst.route)
            ep = balancer.pick(client_ip, tried) if balancer is not None else None
            if ep is None:
                break
            try:
                async with asyncio.timeout(lst.limits.connect_timeout_s):
                    upstream, _ = await loop.create_connection(
                        lambda: _Upstream(self), ep.ip, ep.port)
            except (OSError, TimeoutError) as exc:
                self.metrics.connect_errors += 1
                tried.add(ep.address)
                log.debug("connect failed", listener=str(lst.key), endpoint=ep.address,
                          error=f"{type(exc).__name__}: {exc}")
                continue
            if self.closed:
                upstream.close()
                return
            self.attach(upstream)  # type: ignore[arg-type]
            return
        if not tried:
            self.metrics.refused += 1
        reset(self.client)

    def data_received(self, data: bytes) -> None:
        self.metrics.bytes_in += len(data)
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._counted:
            self._counted = False
            self.metrics.connections_active -= 1
            self.listener.connections.discard(self)

    def abort(self) -> None:
        """Close both sides at once (kube-proxy stopping), without forcing an RST."""
        self.closed = True
        self.client.abort()
        if self.upstream is not None:
            self.upstream.abort()


class TcpListener:
    def __init__(self, key: ListenerKey, route: RouteKey, routes: Routes, limits: Limits):
        assert key.protocol == TCP
        self.key = key
        self.route = route
        self.routes = routes
        self.limits = limits
        self.connections: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.key.ip, self.key.port, reuse_port=True,
            backlog=LISTEN_BACKLOG, family=socket.AF_INET)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    @property
    def active(self) -> int:
        return len(self.connections)

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()


# ------------------------------------------------------------------ UDP

class _UdpSession(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener, client: tuple[str, int], metrics: ServiceMetrics):
        self.listener = listener
        self.client = client
        self.metrics = metrics
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: collections.deque[bytes] = collections.deque()
        self.last_active = time.monotonic()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        while self.pending:
            transport.sendto(self.pending.popleft())  # type: ignore[attr-defined]

    def send(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        self.metrics.bytes_in += len(data)
        if self.transport is not None:
            self.transport.sendto(data)
        elif len(self.pending) < UDP_PENDING_DATAGRAMS_MAX:
            self.pending.append(data)
        else:
            self.metrics.dropped += 1

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last_active = time.monotonic()
        self.metrics.bytes_out += len(data)
        self.listener.reply(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from the endpoint: the next datagram picks again.
        self.metrics.connect_errors += 1
        self.listener.end_session(self.client)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.end_session(self.client, self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.metrics.udp_sessions_active -= 1
            if self.transport is not None:
                self.transport.close()


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, key: ListenerKey, route: RouteKey, routes: Routes, limits: Limits,
                 clock: Callable[[], float] = time.monotonic):
        self.key = key
        self.route = route
        self.routes = routes
        self.limits = limits
        self._clock = clock
        self.sessions: collections.OrderedDict[tuple[str, int], _UdpSession] = \
            collections.OrderedDict()
        self.transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._opening: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.key.ip, self.key.port), reuse_port=True,
            family=socket.AF_INET)
        self._sweeper = loop.create_task(self._sweep())

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.sessions.get(addr)
        if session is not None:
            self.sessions.move_to_end(addr)
            session.send(data)
            return
        balancer, metrics = self.routes.lookup(self.route)
        ep = balancer.pick(addr[0]) if balancer is not None else None
        if ep is None:
            metrics.refused += 1
            return
        while len(self.sessions) >= self.limits.udp_sessions_max:
            _, oldest = self.sessions.popitem(last=False)
            oldest.metrics.dropped += 1
            oldest.close()
        session = self.sessions[addr] = _UdpSession(self, addr, metrics)
        metrics.udp_sessions_total += 1
        metrics.udp_sessions_active += 1
        session.send(data)
        task = asyncio.get_running_loop().create_task(self._open(session, ep.ip, ep.port))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, session: _UdpSession, ip: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: session, remote_addr=(ip, port), family=socket.AF_INET)
        except OSError:
            session.metrics.connect_errors += 1
            self.end_session(session.client, session)
            return
        if session.closed:
            transport.close()

    def reply(self, data: bytes, client: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, client)

    def end_session(self, client: tuple[str, int], which: _UdpSession | None = None) -> None:
        session = self.sessions.get(client)
        if session is None or (which is not None and session is not which):
            if which is not None:
                which.close()
            return
        del self.sessions[client]
        session.close()

    async def _sweep(self) -> None:
        period_s = max(0.05, self.limits.udp_idle_timeout_s / 2)
        while True:
            await asyncio.sleep(period_s)
            cutoff = time.monotonic() - self.limits.udp_idle_timeout_s
            for client, session in list(self.sessions.items()):
                if session.last_active < cutoff:
                    self.end_session(client, session)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for client in list(self.sessions):
            self.end_session(client)
        for task in list(self._opening):
            task.cancel()

    @property
    def active(self) -> int:
        return 0  # UDP sessions end with the listener

    def abort_all(self) -> None:
        pass


Listener = TcpListener | UdpListener


def make_listener(key: ListenerKey, route: RouteKey, routes: Routes, limits: Limits) -> Listener:
    cls = TcpListener if key.protocol == TCP else UdpListener
    return cls(key, route, routes, limits)
