"""kubemu.streams: the session protocol's order, the relay every hop runs
(both directions, one message in flight, the inner call cancelled however it
ends), and the pull-based fd reads and writes behind flow control."""
from __future__ import annotations

import asyncio
import os

import grpc
import pytest

from kubemu import streams
from kubemu.api.v1 import resources_pb2 as apb
from kubemu.client.wait import wait_for


def target() -> apb.PodStreamInput:
    return apb.PodStreamInput(target=apb.PodStreamTarget(name="p", command=["sh"]))


def stdin(data: bytes) -> apb.PodStreamInput:
    return apb.PodStreamInput(stdin=data)


CLOSE = apb.PodStreamInput(close_stdin=True)
RESIZE = apb.PodStreamInput(resize=apb.TerminalSize(width=80, height=24))


@pytest.mark.parametrize("kinds, error", [
    (["target", "stdin", "resize", "stdin", "close_stdin", "resize"], None),
    (["start", "close_stdin"], None),
    (["stdin"], "the first message of a session must name its target, not stdin"),
    ([None], "the first message of a session must name its target, not nothing"),
    (["target", "target"], "a session names its target once, in its first message"),
    (["target", "close_stdin", "stdin"], "stdin after close_stdin"),
    (["target", "close_stdin", "close_stdin"], "close_stdin sent twice"),
    (["target", None], "unexpected message in a session: nothing"),
], ids=["full-session", "runtime-start", "stdin-first", "empty-first", "second-target",
        "stdin-after-close", "close-twice", "empty-later"])
def test_input_order(kinds, error):
    order = streams.InputOrder()
    if error is None:
        for kind in kinds:
            order.check(kind)
        return
    with pytest.raises(streams.ProtocolError, match=error):
        for kind in kinds:
            order.check(kind)


@pytest.mark.parametrize("code, message", [
    (0, ""), (1, "command terminated with exit code 1"),
    (137, "command terminated with exit code 137")])
def test_exit_message(code, message):
    assert streams.exit_message(code) == message


def test_set_up_waits_more_on_each_hop_further_out():
    waits = [streams.setup_timeout_s(hops) for hops in range(3)]
    assert waits == sorted(waits) and len(set(waits)) == 3


class Outer:
    """A servicer context: what the client sends (then EOF), what the hop writes."""

    def __init__(self, messages: list, *, end: bool = True):
        self.incoming: asyncio.Queue = asyncio.Queue()
        for m in messages:
            self.incoming.put_nowait(m)
        if end:
            self.incoming.put_nowait(grpc.aio.EOF)
        self.reads = 0
        self.written: list = []

    async def read(self):
        self.reads += 1
        return await self.incoming.get()

    async def write(self, message) -> None:
        self.written.append(message)


class Inner:
    """A client call: replies come when the test says so; writes may be held."""

    def __init__(self):
        self.replies: asyncio.Queue = asyncio.Queue()
        self.written: list = []
        self.done = False
        self.cancelled = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, message) -> None:
        await self.gate.wait()
        self.written.append(message)

    async def done_writing(self) -> None:
        self.done = True

    async def read(self):
        return await self.replies.get()

    def cancel(self) -> bool:
        self.cancelled = True
        return True


async def test_relay_forwards_both_ways_until_the_inner_call_ends():
    outer = Outer([stdin(b"a"), RESIZE, CLOSE])
    inner = Inner()
    task = asyncio.ensure_future(streams.relay(outer, inner))
    await wait_for(lambda: inner.done, 5, interval_s=0.01, message="client's EOF passed on")
    assert inner.written == [stdin(b"a"), RESIZE, CLOSE]
    out = apb.PodStreamOutput(stdout=b"x")
    ended = apb.PodStreamOutput(exit=apb.PodStreamExit(exit_code=3))
    for message in (out, ended, grpc.aio.EOF):
        inner.replies.put_nowait(message)
    await asyncio.wait_for(task, 5)
    assert outer.written == [out, ended]
    assert inner.cancelled


async def test_exit_half_closes_the_inner_call_and_the_relay_drains_the_client():
    """After the inner server's exit nothing more is written to it (a write to an
    ended call turns its status into INTERNAL in grpc-aio), it is half-closed so
    that it can end, and the relay keeps reading its client until that one
    half-closes too."""
    outer = Outer([stdin(b"a")], end=False)
    inner = Inner()
    task = asyncio.ensure_future(streams.relay(outer, inner, map_out=lambda m: m))
    await wait_for(lambda: inner.written == [stdin(b"a")], 5, interval_s=0.01,
                   message="stdin passed on")
    ended = apb.PodStreamOutput(exit=apb.PodStreamExit(exit_code=0))
    inner.replies.put_nowait(ended)
    await wait_for(lambda: inner.done, 5, interval_s=0.01, message="inner call half-closed")
    inner.replies.put_nowait(grpc.aio.EOF)
    outer.incoming.put_nowait(stdin(b"late"))
    await wait_for(lambda: outer.reads == 3, 5, interval_s=0.01, message="late stdin read")
    assert not task.done()  # lingering for the client's half-close
    outer.incoming.put_nowait(grpc.aio.EOF)
    await asyncio.wait_for(task, 5)
    assert outer.written == [ended]
    assert inner.written == [stdin(b"a")]


async def test_server_inputs_read_one_ahead_and_linger_until_the_client_half_closes():
    outer = Outer([stdin(b"1"), stdin(b"2"), stdin(b"3")], end=False)
    inputs = streams.Inputs(outer)
    try:
        got = []
        async for message in inputs:
            got.append(message)
            if len(got) == 1:
                break  # the session is over after one message (the command ended)
        await wait_for(lambda: outer.reads == 2, 5, interval_s=0.01, message="one read ahead")
        for _ in range(20):
            await asyncio.sleep(0)
        assert outer.reads == 2  # no more than one message held
        lingering = asyncio.ensure_future(inputs.linger(5))
        await wait_for(lambda: outer.reads == 4, 5, interval_s=0.01, message="the rest dropped")
        assert not lingering.done()  # the client has not half-closed yet
        outer.incoming.put_nowait(grpc.aio.EOF)
        await asyncio.wait_for(lingering, 5)
        assert got == [stdin(b"1")]
        await asyncio.wait_for(inputs.linger(5), 1)  # after the EOF: at once
    finally:
        await inputs.close()


async def test_linger_is_bounded():
    inputs = streams.Inputs(Outer([stdin(b"x")], end=False))
    try:
        await asyncio.wait_for(inputs.linger(0.05), 5)
    finally:
        await inputs.close()


async def test_relay_holds_one_message_at_a_time():
    """A next hop that does not take a message stops the relay reading more."""
    outer = Outer([stdin(b"1"), stdin(b"2"), stdin(b"3")], end=False)
    inner = Inner()
    inner.gate.clear()  # the next hop is not reading
    task = asyncio.ensure_future(streams.relay(outer, inner))
    await wait_for(lambda: outer.reads == 1, 5, interval_s=0.01, message="first read")
    for _ in range(20):
        await asyncio.sleep(0)  # let the relay run as far as it would
    assert outer.reads == 1 and inner.written == []
    inner.gate.set()
    await wait_for(lambda: len(inner.written) == 3, 5, interval_s=0.01, message="all passed on")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert inner.cancelled  # the outer call ended (cancelled): so does the inner one


async def test_relay_ends_on_a_protocol_error_and_cancels_the_inner_call():
    outer = Outer([stdin(b"a"), target()], end=False)
    inner = Inner()
    with pytest.raises(streams.ProtocolError, match="names its target once"):
        await asyncio.wait_for(streams.relay(outer, inner), 5)
    assert inner.cancelled and inner.written == [stdin(b"a")]


async def test_relay_maps_and_drops_messages():
    outer = Outer([stdin(b"a"), RESIZE])
    inner = Inner()
    inner.replies.put_nowait(apb.PodStreamOutput(started=True))
    inner.replies.put_nowait(apb.PodStreamOutput(stdout=b"x"))
    inner.replies.put_nowait(grpc.aio.EOF)
    await asyncio.wait_for(streams.relay(
        outer, inner, map_in=lambda m: m if m.WhichOneof("input") == "stdin" else None,
        map_out=lambda m: None if m.WhichOneof("output") == "started" else m), 5)
    assert outer.written == [apb.PodStreamOutput(stdout=b"x")]


async def test_read_first_is_bounded():
    outer = Outer([], end=False)
    with pytest.raises(streams.SetupTimeout):
        await streams.read_first(outer, 0.05)
    with pytest.raises(streams.ProtocolError):
        await streams.read_first(Outer([]), 1)


async def test_fd_reads_wait_for_data_and_writes_wait_for_room():
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        reading = asyncio.ensure_future(streams.read_fd(read_end))
        await asyncio.sleep(0)
        assert not reading.done()
        os.write(write_end, b"hello")
        assert await asyncio.wait_for(reading, 5) == b"hello"
        # A full pipe holds the writer until the reader reads.
        big = b"x" * (4 << 20)
        writing = asyncio.ensure_future(streams.write_fd(write_end, big))
        for _ in range(20):
            await asyncio.sleep(0)  # let it write what fits
        assert not writing.done()
        got = bytearray()
        while len(got) < len(big):
            got += await asyncio.wait_for(streams.read_fd(read_end, 1 << 20), 5)
        await asyncio.wait_for(writing, 5)
        assert got == big
        os.close(write_end)
        write_end = -1
        assert await streams.read_fd(read_end) == b""
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


async def test_a_hung_up_terminal_reads_as_its_end():
    master, slave = os.openpty()
    os.set_blocking(master, False)
    try:
        os.write(slave, b"bye")
        assert await asyncio.wait_for(streams.read_fd(master), 5) == b"bye"
        os.close(slave)
        slave = -1
        assert await asyncio.wait_for(streams.read_fd(master), 5) == b""  # EIO
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
