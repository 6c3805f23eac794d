"""kubemu.relay with real sockets: a relay whose upstream is attached only when the
test says so, so what the client sends before it is there can be checked."""
from __future__ import annotations

import asyncio
import contextlib

from kubemu.client.wait import wait_for
from kubemu.relay import Relay, RelayUpstream


class GatedRelay(Relay):
    """Connects to `target` once `gate` is set."""

    pending_bytes_max = 64 * 1024

    def __init__(self, target: tuple[str, int], gate: asyncio.Event, made: list[GatedRelay]):
        super().__init__()
        self.target = target
        self.gate = gate
        made.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client = transport  # type: ignore[assignment]
        self.hold()
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        await self.gate.wait()
        upstream, _ = await asyncio.get_running_loop().create_connection(
            lambda: RelayUpstream(self), *self.target)
        self.attach(upstream)  # type: ignore[arg-type]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write(b"<eof>")
    writer.write_eof()
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def relay_to_echo():
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    gate = asyncio.Event()
    made: list[GatedRelay] = []
    target = echo.sockets[0].getsockname()[:2]
    front = await asyncio.get_running_loop().create_server(
        lambda: GatedRelay(target, gate, made), "127.0.0.1", 0)
    try:
        yield front.sockets[0].getsockname()[:2], gate, made
    finally:
        for relay in made:
            relay.abort()
        front.close()
        echo.close()
        await front.wait_closed()
        await echo.wait_closed()


async def test_bytes_and_eof_sent_before_the_upstream_is_attached_arrive_in_order():
    async with relay_to_echo() as (address, gate, made):
        reader, writer = await asyncio.open_connection(*address)
        for part in (b"one ", b"two ", b"three"):
            writer.write(part)
            await writer.drain()
        writer.write_eof()
        # Held: either reading is paused, or (asyncio before 3.12, which undoes a pause
        # made in connection_made) the bytes wait in the relay.
        await wait_for(lambda: made and (made[0]._pending_bytes == len(b"one two three")
                                         or not made[0].client.is_reading()),
                       timeout_s=5, message="the relay holds the client until attached")
        gate.set()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer == b"one two three<eof>"


async def test_more_than_the_pending_bound_pauses_the_client_until_attached():
    async with relay_to_echo() as (address, gate, made):
        reader, writer = await asyncio.open_connection(*address)
        size = 8 * GatedRelay.pending_bytes_max
        writer.transport.set_write_buffer_limits(high=size)
        writer.write(b"x" * size)
        await wait_for(lambda: made and not made[0].client.is_reading(), timeout_s=5,
                       message="the relay stops reading past its pending bound")
        kept = made[0]._pending_bytes
        assert kept <= GatedRelay.pending_bytes_max + 256 * 1024, kept  # at most one read more
        gate.set()
        received = b""
        while len(received) < size:
            more = await asyncio.wait_for(reader.read(1 << 20), 5)
            assert more, f"EOF after {len(received)} bytes"
            received += more
        writer.close()
        assert received == b"x" * size
