"""deploy.links with real sockets: tiny asyncio servers as backends, real clients,
and for the peer front two child processes whose sockets are told apart by owner."""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from deploy.links import Limits, Links, socket_owners
from kubemu.client.wait import wait_for

# A dialer process: on "connect ADDR" it opens a connection (answers "connected <name
# line>"), on "ping" it sends a line and answers "ok <echo>"; else "error <exception>".
_DIALER = r"""
import socket, sys

def readline(sock):
    data = b""
    while not data.endswith(b"\n"):
        more = sock.recv(1)
        if not more:
            raise EOFError("eof")
        data += more
    return data.decode().strip()

sock = None
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    try:
        if cmd == "connect":  # answers with the backend's name line
            host, _, port = arg.rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=5)
            print("connected " + readline(sock), flush=True)
        elif cmd == "ping":  # a line out, a line back
            sock.sendall(b"ping\n")
            print("ok " + readline(sock), flush=True)
    except (OSError, EOFError) as exc:
        print("error " + type(exc).__name__, flush=True)
"""


class Backend:
    """An echo server that first says its name (a line), so a client knows where it landed."""

    def __init__(self, name: str):
        self.name = name
        self.server: asyncio.base_events.Server | None = None
        self.address = ""
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            writer.write(f"{self.name}\n".encode())
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()  # half-close: answer everything, then say so
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def backends(*names: str):
    started = [await Backend(name).start() for name in names]
    try:
        yield started
    finally:
        for backend in started:
            await backend.stop()


@contextlib.asynccontextmanager
async def links(limits: Limits = Limits()):
    manager = Links(limits)
    try:
        yield manager
    finally:
        await manager.close()


async def dial(address: str) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and read the backend's name line."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    name = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    return name, reader, writer


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def is_dropped(address: str) -> bool:
    """A new connection through the front is closed before any byte."""
    host, _, port = address.rpartition(":")
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return True
    try:
        return await asyncio.wait_for(reader.read(100), 5) == b""
    except (ConnectionError, OSError):
        return True
    finally:
        writer.close()


async def is_reset(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(100), 5) == b""
    except (ConnectionError, OSError):
        return True


def fixed(*backends_: Backend):
    return lambda: [(b.name, b.address) for b in backends_]


async def test_forwards_both_ways_and_passes_half_close():
    async with backends("apiserver-0") as (api,), links() as manager:
        front = await manager.frontend("scheduler-0", fixed(api))
        name, reader, writer = await dial(front)
        assert name == "apiserver-0"
        assert await round_trip(reader, writer, b"hello") == b"hello"
        writer.write(b"last words")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"last words"  # then EOF
        writer.close()
        assert manager.connections() in ([("scheduler-0", "apiserver-0")], [])


async def test_a_large_transfer_is_relayed_whole_with_bounded_buffers():
    size = 32 * 1024 * 1024
    limits = Limits(buffer_high_bytes=64 * 1024)
    async with backends("apiserver-0") as (api,), links(limits) as manager:
        front = await manager.frontend("scheduler-0", fixed(api))
        _, reader, writer = await dial(front)
        chunk = bytes(range(256)) * 256
        received = 0

        async def read_all() -> int:
            total = 0
            while total < size:
                data = await reader.read(1 << 20)
                assert data, f"EOF after {total} bytes"
                total += len(data)
            return total

        reading = asyncio.create_task(read_all())
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        received = await asyncio.wait_for(reading, 60)
        writer.close()
        assert received == size


async def test_a_slow_reader_pauses_the_writer_instead_of_growing_buffers():
    limits = Limits(buffer_high_bytes=64 * 1024)
    async with backends("apiserver-0") as (api,), links(limits) as manager:
        front = await manager.frontend("scheduler-0", fixed(api))
        _, reader, writer = await dial(front)
        writer.transport.set_write_buffer_limits(high=1 << 30)  # only the proxy may push back
        size = 64 * 1024 * 1024  # more than the kernel's socket buffers on the way hold
        writer.write(b"x" * size)  # nobody reads the echo
        conn = next(iter(manager._fronts[0].connections))
        await wait_for(lambda: not conn.client.is_reading(), timeout_s=10,
                       message="the proxy stops reading the client")
        upstream_buffered = writer.transport.get_write_buffer_size()
        assert conn.client.get_write_buffer_size() <= limits.buffer_high_bytes + (1 << 18)
        assert conn.upstream.get_write_buffer_size() <= limits.buffer_high_bytes + (1 << 18)
        assert upstream_buffered > 0, "the rest waits in the client, not in the proxy"
        writer.close()


async def test_a_backend_that_refuses_is_skipped_for_the_next():
    async with backends("apiserver-0", "apiserver-1") as (dead, live), links() as manager:
        await dead.stop()
        front = await manager.frontend("", fixed(dead, live))
        name, _, writer = await dial(front)
        writer.close()
        assert name == "apiserver-1"


async def test_no_backend_resets_the_client():
    async with links() as manager:
        front = await manager.frontend("", lambda: [])
        assert await is_dropped(front)


async def test_backend_down_resets_its_connections_and_clients_land_on_the_next():
    async with backends("apiserver-0", "apiserver-1") as (a0, a1), links() as manager:
        healthy = {"apiserver-0", "apiserver-1"}
        front = await manager.frontend(
            "scheduler-0", lambda: [(b.name, b.address) for b in (a0, a1) if b.name in healthy])
        name, reader, writer = await dial(front)
        assert name == "apiserver-0"
        healthy.discard("apiserver-0")
        assert manager.backend_down("apiserver-0") == 1
        assert await is_reset(reader)
        writer.close()
        name, _, writer = await dial(front)
        writer.close()
        assert name == "apiserver-1"


async def test_a_grpc_client_follows_backend_down_to_the_next_backend():
    """What the HA front is for: a gRPC channel on one address moves to a live server."""
    servers, addresses = [], []
    for name in ("apiserver-0", "apiserver-1"):
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = await asyncio.to_thread(server.add_insecure_port, "127.0.0.1:0")
        await server.start()
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)  # says who answers
        servers.append(server)
        addresses.append((name, f"127.0.0.1:{port}"))
    healthy = {"apiserver-0", "apiserver-1"}
    try:
        async with links() as manager, grpc.aio.insecure_channel(
                await manager.frontend("scheduler-0",
                                       lambda: [(n, a) for n, a in addresses if n in healthy])) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def answering() -> str:
                try:
                    await stub.Check(health_pb2.HealthCheckRequest(service="apiserver-0"), timeout=2)
                    return "apiserver-0"
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    return "apiserver-1"

            assert await answering() == "apiserver-0"
            healthy.discard("apiserver-0")
            assert manager.backend_down("apiserver-0") == 1
            assert await wait_for(lambda: _is(answering(), "apiserver-1"), timeout_s=10,
                                  message="the channel reconnects through the front to apiserver-1")
            assert manager.connections() == [("scheduler-0", "apiserver-1")]
    finally:
        for server in servers:
            await server.stop(None)


async def _is(value, expected):
    return (await value) == expected


@pytest.mark.parametrize("cut", ["scheduler-0", "apiserver-0"], ids=["the-client", "the-backend"])
async def test_a_cut_resets_open_connections_and_drops_new_ones(cut):
    async with backends("apiserver-0") as (api,), links() as manager:
        front = await manager.frontend("scheduler-0", fixed(api))
        other = await manager.frontend("controller-manager-0", fixed(api))
        _, reader, writer = await dial(front)
        _, other_reader, other_writer = await dial(other)
        await manager.cut([cut])
        assert manager.partitioned() == {cut}
        assert await is_reset(reader)
        assert await is_dropped(front)
        if cut == "scheduler-0":  # the others' links stay
            assert await round_trip(other_reader, other_writer, b"still") == b"still"
        else:
            assert await is_reset(other_reader)
        writer.close()
        other_writer.close()
        manager.heal()
        assert manager.partitioned() == set()
        name, reader, writer = await dial(front)
        assert name == "apiserver-0"
        assert await round_trip(reader, writer, b"back") == b"back"
        writer.close()


async def test_a_cut_backend_is_skipped_for_a_live_one():
    async with backends("apiserver-0", "apiserver-1") as (a0, a1), links() as manager:
        front = await manager.frontend("scheduler-0", fixed(a0, a1))
        await manager.cut(["apiserver-0"])
        name, _, writer = await dial(front)
        writer.close()
        assert name == "apiserver-1"


async def test_a_timed_cut_heals_by_itself_and_a_heal_is_per_name():
    async with backends("apiserver-0") as (api,), links() as manager:
        front = await manager.frontend("scheduler-0", fixed(api))
        await manager.cut(["scheduler-0"], for_s=0.3)
        await manager.cut(["kubelet"])
        assert await is_dropped(front)
        await wait_for(lambda: manager.partitioned() == {"kubelet"}, timeout_s=5,
                       message="scheduler-0 healed by its timer, kubelet still cut")
        name, _, writer = await dial(front)
        writer.close()
        assert name == "apiserver-0"
        manager.heal(["kubelet"])
        assert manager.partitioned() == set()


async def test_a_front_can_take_back_its_address_after_a_restart():
    async with backends("apiserver-0") as (api,):
        async with links() as manager:
            front = await manager.frontend("", fixed(api))
            _, _, writer = await dial(front)  # leaves a TIME_WAIT behind
            writer.close()
        async with links() as manager:
            assert await manager.frontend("", fixed(api), address=front) == front
            name, _, writer = await dial(front)
            writer.close()
            assert name == "apiserver-0"


async def test_close_leaves_no_listener_connection_or_task():
    async with backends("apiserver-0") as (api,):
        manager = Links()
        front = await manager.frontend("scheduler-0", fixed(api))
        await manager.peer_front("etcd-0", api.address)
        _, reader, _writer = await dial(front)
        await manager.cut(["x"], for_s=60)
        tasks_before = len(asyncio.all_tasks())
        await manager.close()
        assert await is_reset(reader)
        assert manager.connections() == []
        assert manager._tasks == set() and manager._heal_timers == {}
        assert len(asyncio.all_tasks()) <= tasks_before
        with pytest.raises(OSError):
            host, _, port = front.rpartition(":")
            await asyncio.open_connection(host, int(port))
        _writer.close()


RESET = ("error ConnectionResetError", "error EOFError")


class Dialer:
    """A child process that dials when told, so its sockets belong to another pid."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    @classmethod
    async def start(cls) -> Dialer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _DIALER, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return (await asyncio.wait_for(self.proc.stdout.readline(), 10)).decode().strip()

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 10)


async def test_the_peer_front_tells_dialers_apart_by_socket_owner():
    async with backends("etcd-0") as (member,), links() as manager:
        front = await manager.peer_front("etcd-0", member.address)
        for name in ("etcd-1", "etcd-2"):  # as the supervisor does: a front for every member
            await manager.peer_front(name, "127.0.0.1:1")
        one, two = await Dialer.start(), await Dialer.start()
        try:
            manager.register("etcd-1", one.proc.pid)
            manager.register("etcd-2", two.proc.pid)
            for dialer in (one, two):
                assert await dialer.ask(f"connect {front}") == "connected etcd-0"
                assert await dialer.ask("ping") == "ok ping"
            # No partition of a member yet: the dialers were never looked up.
            assert sorted(manager.connections()) == [("", "etcd-0"), ("", "etcd-0")]

            await manager.cut(["etcd-1"])
            assert await one.ask("ping") in RESET
            assert await two.ask("ping") == "ok ping"
            assert sorted(manager.connections()) == [("etcd-2", "etcd-0")]
            # A new connection from the cut member is dropped; from the other it passes.
            assert await one.ask(f"connect {front}") in RESET
            assert await two.ask(f"connect {front}") == "connected etcd-0"
            assert await two.ask("ping") == "ok ping"

            manager.heal()
            assert await one.ask(f"connect {front}") == "connected etcd-0"
            assert await one.ask("ping") == "ok ping"
        finally:
            await one.stop()
            await two.stop()


async def test_socket_owners_reads_proc_for_registered_pids_only():
    async with backends("x") as (server,):
        host, _, port = server.address.rpartition(":")
        _, writer = await asyncio.open_connection(host, int(port))
        local = writer.get_extra_info("sockname")[:2]
        try:
            found = await asyncio.to_thread(socket_owners, [local], {"me": os.getpid()})
            missing = await asyncio.to_thread(socket_owners, [local], {"init": 1})
            gone = await asyncio.to_thread(socket_owners, [("127.0.0.1", 1)], {"me": os.getpid()})
        finally:
            writer.close()
        assert found == {local: "me"}
        assert missing == {} and gone == {}


def test_limits_reject_nonsense():
    with pytest.raises(ValueError):
        Limits(connect_tries_max=0)
    with pytest.raises(ValueError):
        Limits(connect_timeout_s=0)
