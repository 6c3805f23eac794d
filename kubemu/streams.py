"""Interactive sessions (exec, attach) on their way through the hops:
CLI -> apiserver -> kubelet -> runtime, one bidirectional gRPC stream per hop.

The protocol (kubemu.api.v1.PodStreamInput/Output; the runtime's
StreamInput/Output have the same shape): the client's first message names
the target (`target`, the runtime's `start`), then come stdin chunks,
terminal resizes and at most one `close_stdin`; the server answers `started`
once the session is set up, then stdout/stderr chunks and `exit` last.
`InputOrder` checks a client's messages against that.

A hop (`relay`) forwards messages as they come, holding at most one message
per direction: it reads the next one only when the previous one was handed
on, and gRPC's flow control stops a sender whose reader does not read. So a
slow reader at one end slows the writer at the other; no hop buffers more
than one chunk plus the transport's windows. When the inner call ends the
relay ends; when the outer call ends (the client went away: gRPC cancels the
handler) the inner call is cancelled on the way out, and so on down to the
runtime, which kills the command.

How a session ends: the server sends `exit` last and keeps reading (and
dropping) the client's input until the client half-closes, for at most
LINGER_S; a client half-closes as soon as it has the `exit`. So no client
writes into a call its server has already ended: grpc-aio reports such a
write as INTERNAL "Internal error from Core" in place of the call's real
status (grpc/grpc#36066), which lost the exit of commands that end before
reading all their input (`tar x` of `kubemu cp`). A hop's writes to the next
hop go through a `Sender`, so the half-close waits for a write in flight
and nothing is written after it.

Deadlines: a session has none once it runs (a shell may stay open for
hours); setting one up has: each hop waits at most SETUP_TIMEOUT_S for the
client's target and for the next hop's `started`, and each hop further out
waits HOP_MARGIN_S longer, so the innermost failure is the one reported.
"""
from __future__ import annotations

import asyncio
import errno
import os
from typing import Any, Awaitable, Callable

import grpc

# The size of a stdin or output chunk a hop reads at once.
CHUNK_BYTES = 32 * 1024
SETUP_TIMEOUT_S = 20.0
HOP_MARGIN_S = 5.0
# How long a server waits, after its `exit`, for the client to half-close.
LINGER_S = 5.0

FIRST_KINDS = ("target", "start")


class ProtocolError(Exception):
    """A client broke the session protocol (e.g. a second target)."""


class SetupTimeout(Exception):
    """The peer did not send its first message in time."""


def setup_timeout_s(hops_inside: int) -> float:
    """How long a hop waits for the session to be set up when `hops_inside` hops
    lie between it and the runtime (0: the kubelet, 1: the apiserver, 2: the CLI)."""
    return SETUP_TIMEOUT_S + HOP_MARGIN_S * hops_inside


def exit_message(code: int) -> str:
    """Kubernetes' status message for an exec's exit code (empty on success)."""
    return f"command terminated with exit code {code}" if code else ""


class InputOrder:
    """Checks the order of a client's messages (by their `input` oneof name):
    the target first and only first; no stdin after close_stdin; close_stdin once."""

    def __init__(self) -> None:
        self.started = False
        self.stdin_closed = False

    def check(self, kind: str | None) -> None:
        if not self.started:
            if kind not in FIRST_KINDS:
                raise ProtocolError(f"the first message of a session must name its target, "
                                    f"not {kind or 'nothing'}")
            self.started = True
            return
        if kind in FIRST_KINDS:
            raise ProtocolError("a session names its target once, in its first message")
        if kind == "stdin":
            if self.stdin_closed:
                raise ProtocolError("stdin after close_stdin")
        elif kind == "close_stdin":
            if self.stdin_closed:
                raise ProtocolError("close_stdin sent twice")
            self.stdin_closed = True
        elif kind != "resize":
            raise ProtocolError(f"unexpected message in a session: {kind or 'nothing'}")


def input_kind(message: Any) -> str | None:
    return message.WhichOneof("input")


async def read_first(source: Any, timeout_s: float) -> Any:
    """The first message of a call (`source.read()`: a servicer context or a client
    call), within the set-up deadline. Raises SetupTimeout, or ProtocolError at EOF."""
    try:
        message = await asyncio.wait_for(source.read(), timeout_s)
    except TimeoutError:
        raise SetupTimeout(f"no answer within {timeout_s:g}s") from None
    if message is grpc.aio.EOF:
        raise ProtocolError("the session ended before it started")
    return message


class Sender:
    """The writes of a session to the next hop's call, one at a time; `close`
    half-closes the call after the write in flight, and later writes are
    dropped (they return False), as are writes to a call that has ended."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.lock = asyncio.Lock()
        self.closed = False

    async def write(self, message: Any) -> bool:
        async with self.lock:
            if self.closed:
                return False
            try:
                await self.call.write(message)
                return True
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                self.closed = True
                return False

    async def close(self) -> None:
        async with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                await self.call.done_writing()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass


def is_exit(message: Any) -> bool:
    """Whether a server's message is its last one (`exit`, the runtime's `exit_code`)."""
    kind = message.WhichOneof("output")
    return kind in ("exit", "exit_code")


async def pump_in(outer: Any, inner: Sender | Any | None,
                  map_in: Callable[[Any], Any | None] | None = None) -> None:
    """Forward the outer call's messages to the inner call, one at a time, until
    the outer client is done (then the inner call is told so). `map_in` may
    translate a message, drop it (None) or raise ProtocolError. With no inner
    call, or once it is closed or ended, messages are read and dropped (the
    client must not block, and a server reads until its client half-closes)."""
    sender = inner if isinstance(inner, Sender) or inner is None else Sender(inner)
    order = InputOrder()
    order.check("target")  # the first message was read by the set-up
    while True:
        message = await outer.read()
        if message is grpc.aio.EOF:
            if sender is not None:
                await sender.close()
            return
        order.check(input_kind(message))
        mapped = map_in(message) if map_in is not None else message
        if mapped is None or sender is None:
            continue
        await sender.write(mapped)


async def pump_out(inner: Any, outer: Any,
                   map_out: Callable[[Any], Any | None] | None = None,
                   sender: Sender | None = None) -> None:
    """Forward the inner call's messages to the outer call until the inner call
    ends; an inner failure raises its AioRpcError. Once the inner server's
    `exit` is forwarded, `sender` half-closes the inner call, which lets that
    server end."""
    while True:
        message = await inner.read()
        if message is grpc.aio.EOF:
            return
        mapped = map_out(message) if map_out is not None else message
        if mapped is not None:
            await outer.write(mapped)
        if sender is not None and is_exit(message):
            await sender.close()


class Inputs:
    """A server's reads of its client's messages, by one task that holds at most
    one unread message (flow control stays with gRPC) and is not cancelled in
    the middle of a read while the session lasts (a cancelled server read can
    leave the call unable to read again). `async for` gives the messages to the
    session; `linger()`, once the server has sent its last message, drops the
    rest until the client half-closes, for at most LINGER_S; `close()` ends
    the reading."""

    def __init__(self, source: Any) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.ended = False  # the EOF was handed out
        self.task = asyncio.ensure_future(self._read(source))

    async def _read(self, source: Any) -> None:
        try:
            while True:
                message = await source.read()
                await self.queue.put(message)
                if message is grpc.aio.EOF:
                    return
                await self.queue.join()  # taken: only now read the next one
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            while not self.queue.empty():
                self.queue.get_nowait()
                self.queue.task_done()
            self.queue.put_nowait(grpc.aio.EOF)

    async def __aiter__(self):
        while not self.ended:
            message = await self.queue.get()
            self.queue.task_done()
            if message is grpc.aio.EOF:
                self.ended = True
                return
            yield message

    async def linger(self, timeout_s: float = LINGER_S) -> None:
        async def drain() -> None:
            while not self.ended:
                message = await self.queue.get()
                self.queue.task_done()
                if message is grpc.aio.EOF:
                    self.ended = True
        try:
            await asyncio.wait_for(drain(), timeout_s)
        except TimeoutError:
            pass

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def join(inbound: Awaitable[None], outbound: Awaitable[None], *,
               linger_s: float = LINGER_S) -> None:
    """Run both directions of a session until `outbound` ends; `inbound` may end
    first (the client sent all it will), but a failure of either ends both.
    Once `outbound` has ended well, `inbound` is given linger_s to see the
    client half-close (module doc: how a session ends)."""
    tasks = [asyncio.ensure_future(inbound), asyncio.ensure_future(outbound)]
    inbound_task, outbound_task = tasks
    try:
        while not outbound_task.done():
            await asyncio.wait([t for t in tasks if not t.done()],
                               return_when=asyncio.FIRST_COMPLETED)
            if inbound_task.done() and inbound_task.exception() is not None:
                raise inbound_task.exception()
        outbound_task.result()
        if not inbound_task.done():
            await asyncio.wait([inbound_task], timeout=linger_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def relay(outer: Any, inner: Any, *, map_in: Callable[[Any], Any | None] | None = None,
                map_out: Callable[[Any], Any | None] | None = None) -> None:
    """Both directions at once, after the set-up, until the inner call ends.
    A ProtocolError from the client ends the relay with that error. The inner
    call is cancelled on the way out, however the relay ends."""
    sender = Sender(inner)
    try:
        await join(pump_in(outer, sender, map_in), pump_out(inner, outer, map_out, sender))
    finally:
        inner.cancel()


# ---------------------------------------------------------------- port forwarding

class SocketSink:
    """A TCP connection (an asyncio StreamWriter) as the inner end of `pump_in`,
    for pods/portforward: `stdin` chunks are written to it (waiting while the
    peer does not read: flow control), `close_stdin` or the client's end
    half-close it. Once the connection has failed, chunks are dropped (the
    reading side sees the failure and ends the session)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.failed = False
        self.eof_sent = False

    async def write(self, message: Any) -> None:
        kind = input_kind(message)
        if kind == "close_stdin":
            self._half_close()
            return
        if kind != "stdin" or self.failed or self.eof_sent:
            return
        try:
            self.writer.write(message.stdin)
            await self.writer.drain()
        except OSError:
            self.failed = True

    async def done_writing(self) -> None:
        self._half_close()

    def _half_close(self) -> None:
        if self.eof_sent or self.failed or self.writer.is_closing():
            return
        self.eof_sent = True
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
        except OSError:
            self.failed = True


async def socket_chunks(reader: asyncio.StreamReader) -> Any:
    """A TCP connection's bytes as they come, CHUNK_BYTES at most at once, until
    its end (a reset connection ends too)."""
    while True:
        try:
            chunk = await reader.read(CHUNK_BYTES)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


# ---------------------------------------------------------------- file descriptors

async def _wait_fd(fd: int, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)
    (loop.add_writer if writable else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writable else loop.remove_reader)(fd)


async def read_fd(fd: int, size_max: int = CHUNK_BYTES) -> bytes:
    """Up to `size_max` bytes from `fd` once it has some; b"" at end of input.
    For pipes, terminals and sockets (non-blocking or not: it waits for
    readiness first); a pseudo-terminal master whose other side is closed
    (EIO) is at its end. A regular file, which cannot be polled, is read at once."""
    while True:
        try:
            await _wait_fd(fd, writable=False)
        except PermissionError:  # epoll refuses regular files: they never block for long
            return await asyncio.to_thread(os.read, fd, size_max)
        try:
            return os.read(fd, size_max)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as err:
            if err.errno == errno.EIO:
                return b""
            raise


async def write_fd(fd: int, data: bytes) -> None:
    """All of `data` to a non-blocking fd, waiting while it is full (flow control:
    a reader that does not read holds the writer here). BrokenPipeError when
    the reader is gone."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except (BlockingIOError, InterruptedError):
            await _wait_fd(fd, writable=True)
            continue
        view = view[written:]

