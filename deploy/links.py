"""Links: the supervisor's TCP proxies between its processes, for load balancing and partitions.

Every connection a supervised process makes to an apiserver or to an etcd
member goes through a front the supervisor owns (`Links`, one per cluster), so
the supervisor can both pick a live backend and cut a process off without root.

- `frontend(client, backends)`: a listener on 127.0.0.1 for one client process
  (its name, or "" for the shared front of the CLI and kubeconfig). Each new
  connection goes to the first backend of `backends()` (name, "ip:port") — the
  caller's preference order, read at every connection — that is not cut and
  accepts within connect_timeout_s; a failed connect tries the next one, at
  most connect_tries_max tries, then the client is reset. `backend_down(name)`
  resets every connection to that backend, so clients reconnect and land on
  another (this is what makes a paused apiserver, whose kernel still accepts,
  stop holding its clients).
- `peer_front(member, target)`: a listener in front of an etcd member's peer
  port, which every other member dials. The dialer is not known from the front
  it used, so it is told apart by which registered process (`register(name,
  pid)`) owns the connecting socket: the dialer's (ip, port) -> socket inode
  in /proc/net/tcp -> the pid whose /proc/<pid>/fd holds it. The lookup runs
  in a thread, and only while a partition names a member that has a peer front
  (otherwise the dialer does not matter and connections go straight through):
  so give every member a peer front, and register every member's pid.
- `cut(names, for_s)`: a cut process loses every link with it at either end, in
  both directions: its open connections are reset (RST), new ones are reset on
  accept (a cut backend is skipped, so a client with another backend lands
  there). `heal(names)` lets new connections through again; `for_s` heals by
  itself. Cuts are idempotent; cutting a name again replaces its heal timer.
- Bytes are relayed both ways with flow control: a transport whose write buffer
  passes buffer_high_bytes pauses reading on the other side (so a connection
  holds at most about buffer_high_bytes + one read per direction); EOF is passed
  on (half-close) and the second EOF closes both sides.
- `close()`: every listener and connection closed, every task and timer ended.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
from typing import Callable, Iterable

import structlog

from kubemu.relay import Relay, RelayUpstream, reset

log = structlog.get_logger("links")

HOST = "127.0.0.1"
LISTEN_BACKLOG = 511
_PROC_NET_TCP = "/proc/net/tcp"

Backends = Callable[[], "list[tuple[str, str]]"]


@dataclasses.dataclass(frozen=True)
class Limits:
    connections_max: int = 1024             # per front
    connect_timeout_s: float = 1.0
    connect_tries_max: int = 3
    buffer_high_bytes: int = 256 * 1024     # per transport; the other side pauses above it
    owner_lookup_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if min(self.connections_max, self.connect_tries_max, self.buffer_high_bytes) <= 0:
            raise ValueError("connection, try and buffer bounds must be > 0")
        if self.connect_timeout_s <= 0 or self.owner_lookup_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# ------------------------------------------------------------------ owners via /proc

def _proc_key(ip: str, port: int) -> str:
    """The local_address column of /proc/net/tcp: host-order hex of the IPv4 address."""
    return "%08X:%04X" % (int.from_bytes(socket.inet_aton(ip), sys.byteorder), port)


def socket_owners(addresses: Iterable[tuple[str, int]], pids: dict[str, int],
                  proc: str = "/proc") -> dict[tuple[str, int], str]:
    """Which of `pids` (name -> pid) holds the TCP socket bound at each local address.

    Blocking (reads /proc): call it in a thread. Addresses whose socket is gone
    or owned by no registered process are left out.
    """
    wanted = {_proc_key(ip, port): (ip, port) for ip, port in addresses}
    inodes: dict[str, tuple[str, int]] = {}
    with open(proc + _PROC_NET_TCP[5:], encoding="ascii") as f:
        next(f, None)  # the header
        for line in f:
            fields = line.split()
            if len(fields) > 9 and fields[1] in wanted and fields[9] != "0":
                inodes[f"socket:[{fields[9]}]"] = wanted[fields[1]]
    owners: dict[tuple[str, int], str] = {}
    for name, pid in pids.items():
        if len(owners) == len(inodes):
            break
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # exited, or not ours to read
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            address = inodes.get(target)
            if address is not None:
                owners[address] = name
    return owners


# ------------------------------------------------------------------ one connection

class _Connection(Relay):
    """One proxied connection: the accepted client side, and the upstream it opens.

    `client_name` is who dialed ("" until known for a peer front), `backend`
    who was dialed ("" until picked).
    """

    def __init__(self, front: _Front):
        super().__init__()
        self.front = front
        self.upstream_buffer_high_bytes = front.links.limits.buffer_high_bytes
        self.client_name: str | None = front.client
        self.backend = front.target_name
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client = transport  # type: ignore[assignment]
        front = self.front
        links = front.links
        if len(front.connections) >= links.limits.connections_max or front.closed:
            reset(transport)
            return
        front.connections.add(self)
        transport.set_write_buffer_limits(high=links.limits.buffer_high_bytes)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        self.peer = tuple(peer[:2]) if peer else ("", 0)  # type: ignore[assignment]
        if (self.client_name is not None and self.client_name in links._cut) or (
                self.backend and self.backend in links._cut):
            self.abort()
            return
        self.hold()
        links._spawn(self._connect())

    async def _connect(self) -> None:
        links = self.front.links
        if self.client_name is None and links._lookup_needed():
            owners = await links._owners([self.peer])
            self.client_name = owners.get(self.peer, "")
            if self.closed:
                return
            if not self.client_name or self.client_name in links._cut:
                self.abort()  # unknown dialers are dropped too while a member is cut
                return
        loop = asyncio.get_running_loop()
        tries = 0
        for name, address in self.front.candidates():
            if tries >= links.limits.connect_tries_max or self.closed:
                break
            if name in links._cut:
                continue
            tries += 1
            host, port = _split(address)
            try:
                async with asyncio.timeout(links.limits.connect_timeout_s):
                    upstream, _ = await loop.create_connection(lambda: RelayUpstream(self), host, port)
            except (OSError, TimeoutError) as exc:
                log.debug("connect failed", front=self.front.name, backend=name,
                          error=f"{type(exc).__name__}: {exc}")
                continue
            if self.closed or name in links._cut or (self.client_name or "") in links._cut:
                reset(upstream)
                self.abort()
                return
            self.backend = name
            self.attach(upstream)  # type: ignore[arg-type]
            return
        self.abort()

    def ends(self) -> tuple[str, str]:
        return self.client_name or "", self.backend

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.front.connections.discard(self)

    def abort(self) -> None:
        """Reset both sides (a cut, a backend down, close)."""
        super().abort()
        self.front.connections.discard(self)


class _Front:
    """One listener: a client's front (backends from a callable) or a member's peer front."""

    def __init__(self, links: Links, name: str, *, client: str | None, target_name: str,
                 backends: Backends):
        self.links = links
        self.name = name
        self.client = client          # None: the dialer is found from the socket's owner
        self.target_name = target_name
        self.backends = backends
        self.connections: set[_Connection] = set()
        self.server: asyncio.base_events.Server | None = None
        self.address = ""
        self.closed = False

    def candidates(self) -> list[tuple[str, str]]:
        try:
            return list(self.backends())
        except Exception:
            log.exception("backends callback failed", front=self.name)
            return []

    async def start(self, address: str) -> str:
        host, port = _split(address) if address else (HOST, 0)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port,
                                               backlog=LISTEN_BACKLOG, family=socket.AF_INET)
        host, port = self.server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        return self.address

    def close(self) -> None:
        self.closed = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.abort()


# ------------------------------------------------------------------ the manager

class Links:
    """Every front of one cluster, the registered pids, and the current cut."""

    def __init__(self, limits: Limits = Limits(), *, proc: str = "/proc"):
        self.limits = limits
        self._proc = proc
        self._fronts: list[_Front] = []
        self._members: set[str] = set()           # names with a peer front
        self._pids: dict[str, int] = {}
        self._cut: set[str] = set()
        self._heal_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    # -- fronts
    async def frontend(self, client: str, backends: Backends, *, address: str = "") -> str:
        """A listener for `client`; returns its "ip:port".

        `address` binds a given "ip:port" (an address that must outlive the
        supervisor, as the kubeconfig's); by default a free port on 127.0.0.1.
        """
        return await self._add(_Front(self, f"{client or '*'}->backends", client=client,
                                      target_name="", backends=backends), address)

    async def peer_front(self, member: str, target: str, *, address: str = "") -> str:
        """A listener in front of `member`'s peer port at `target`; returns its "ip:port".

        etcd keeps the advertised peer URL in its data directory: a member that
        is restarted, or a cluster whose supervisor is, needs the same `address`.
        """
        self._members.add(member)
        return await self._add(_Front(self, f"peers->{member}", client=None, target_name=member,
                                      backends=lambda: [(member, target)]), address)

    async def _add(self, front: _Front, address: str) -> str:
        if self._closed:
            raise RuntimeError("links: closed")
        address = await front.start(address)
        self._fronts.append(front)
        return address

    def connections(self) -> list[tuple[str, str]]:
        """(client, backend) of every open connection; for status and tests."""
        return [conn.ends() for front in self._fronts for conn in front.connections]

    # -- processes
    def register(self, name: str, pid: int) -> None:
        self._pids[name] = pid

    def unregister(self, name: str) -> None:
        self._pids.pop(name, None)

    def backend_down(self, name: str) -> int:
        """Reset every connection to `name`; returns how many."""
        doomed = [conn for front in self._fronts for conn in front.connections
                  if conn.backend == name]
        for conn in doomed:
            conn.abort()
        return len(doomed)

    # -- partitions
    def partitioned(self) -> set[str]:
        return set(self._cut)

    async def cut(self, names: Iterable[str], for_s: float | None = None) -> None:
        """Cut `names` off; returns once every existing link of theirs is reset."""
        names = set(names)
        if for_s is not None and for_s <= 0:
            raise ValueError(f"cut: for_s must be > 0, got {for_s}")
        loop = asyncio.get_running_loop()
        for name in names:
            timer = self._heal_timers.pop(name, None)
            if timer is not None:
                timer.cancel()
            if for_s is not None:
                self._heal_timers[name] = loop.call_later(for_s, self.heal, [name])
        self._cut |= names
        log.info("cut", names=sorted(names), for_s=for_s)
        unknown: list[_Connection] = []
        for front in self._fronts:
            for conn in list(front.connections):
                client, backend = conn.ends()
                if client in names or backend in names:
                    conn.abort()
                elif conn.client_name is None:  # connected, or connecting: both may be theirs
                    unknown.append(conn)
        if unknown and names & self._members:
            owners = await self._owners([conn.peer for conn in unknown])
            for conn in unknown:
                conn.client_name = owners.get(conn.peer, "")
                if conn.client_name in self._cut:
                    conn.abort()

    def heal(self, names: Iterable[str] | None = None) -> None:
        """Let new connections of `names` (None: everyone) through again."""
        healed = set(self._cut) if names is None else set(names) & self._cut
        for name in healed:
            timer = self._heal_timers.pop(name, None)
            if timer is not None:
                timer.cancel()
        self._cut -= healed
        if healed:
            log.info("healed", names=sorted(healed))

    def _lookup_needed(self) -> bool:
        return bool(self._cut & self._members)

    async def _owners(self, peers: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        try:
            async with asyncio.timeout(self.limits.owner_lookup_timeout_s):
                return await asyncio.to_thread(socket_owners, peers, dict(self._pids), self._proc)
        except (OSError, TimeoutError) as exc:
            log.warning("socket owner lookup failed", error=f"{type(exc).__name__}: {exc}")
            return {}

    # -- lifetime
    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close every listener and connection; cancel timers and pending connects."""
        self._closed = True
        for timer in self._heal_timers.values():
            timer.cancel()
        self._heal_timers.clear()
        for front in self._fronts:
            front.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for front in self._fronts:
            if front.server is not None:
                await front.server.wait_closed()
            for conn in list(front.connections):  # accepted while closing
                conn.abort()
        self._fronts.clear()
        await asyncio.sleep(0)  # let the aborted transports' connection_lost run
