"""The command line's end of an interactive session (`exec`, `attach`, `cp`):
the protocol is kubemu.streams'; here are the local terminal and streams.

- `run_session(method, target, ...)` sends the target, waits (a bounded time)
  for `started`, then sends local stdin chunks, `close_stdin` at its end and
  terminal resizes, and writes stdout/stderr chunks as they come, until the
  server sends the exit status (returned). One chunk at a time each way: a
  local reader that does not read holds the remote command back. A failed
  call raises its ApiError; leaving early (Ctrl-C, an error, SIGTERM)
  cancels the call, which ends the remote command.
- `RawTerminal`: the local terminal in raw mode for a session with a tty
  (every key goes to the remote terminal, ^C included), restored however the
  session ends; SIGTERM and SIGHUP end the session (so the terminal is
  restored) and SIGWINCH sends the new size.
- `plan_tty` / `plan_attach_tty`: kubectl's decisions (and warnings) about
  whether a session gets a terminal.
"""
from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import sys
from typing import Any, AsyncIterator, Awaitable, Callable

from kubemu.cli.common import CliError

NOT_A_TERMINAL = "Unable to use a TTY - input is not a terminal or the right kind of file"

Writer = Callable[[bytes], Awaitable[None]]


# ---------------------------------------------------------------- decisions (pure)

def plan_tty(*, stdin: bool, tty: bool, stdin_is_terminal: bool, quiet: bool
             ) -> tuple[bool, str]:
    """kubectl's SetupTTY: (raw terminal?, warning to print). A terminal needs
    stdin (-t without -i has none, silently) and a local terminal on stdin."""
    if not stdin or not tty:
        return False, ""
    if not stdin_is_terminal:
        return False, "" if quiet else NOT_A_TERMINAL
    return True, ""


def plan_attach_tty(*, tty: bool, container_tty: bool, container: str, quiet: bool
                    ) -> tuple[bool, str]:
    """kubectl attach: the container's `tty` decides (a terminal cannot be added to
    a running process, and one it has must be used)."""
    if tty and not container_tty:
        return False, "" if quiet else (f"error: Unable to use a TTY - container {container} "
                                        f"did not allocate one")
    return tty or container_tty, ""


# ---------------------------------------------------------------- local streams

def stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return None  # replaced by an object without a descriptor (tests)


def is_terminal(fd: int | None) -> bool:
    return fd is not None and os.isatty(fd)


async def local_stdin() -> AsyncIterator[bytes]:
    """This process's stdin in chunks as they come (kubemu.streams.read_fd),
    or, when sys.stdin is an in-memory stream, its content."""
    from kubemu import streams

    fd = stdin_fd()
    if fd is None:
        data = sys.stdin.read()
        if data:
            yield data.encode() if isinstance(data, str) else data
        return
    while True:
        try:
            chunk = await streams.read_fd(fd)
        except OSError:  # stdin closed or unreadable: nothing more to send
            return
        if not chunk:
            return
        yield chunk


def output_writer(stream: Any) -> Writer:
    """Write chunks to a text stream's buffer (sys.stdout / sys.stderr) and flush,
    off the event loop (a pipe whose reader is slow blocks)."""
    target = getattr(stream, "buffer", stream)

    def write(data: bytes) -> None:
        target.write(data)
        target.flush()

    async def send(data: bytes) -> None:
        await asyncio.to_thread(write, data)
    return send


# ---------------------------------------------------------------- the terminal

@dataclasses.dataclass
class RawTerminal:
    """The local terminal in raw mode while a session runs (a context manager)."""
    fd: int
    size_fd: int
    saved: Any = None

    def __enter__(self) -> "RawTerminal":
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSADRAIN)
        return self

    def __exit__(self, *exc: Any) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def size(self) -> tuple[int, int]:
        """(columns, rows) of the terminal, (0, 0) when unknown."""
        for fd in (self.size_fd, self.fd):
            try:
                size = os.get_terminal_size(fd)
                return size.columns, size.lines
            except OSError:
                continue
        return 0, 0


class Resizes:
    """The terminal's size each time SIGWINCH says it changed (the latest only:
    sizes not sent yet are replaced, not queued)."""

    def __init__(self, terminal: RawTerminal):
        self.terminal = terminal
        self.changed = asyncio.Event()

    def install(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGWINCH, self.changed.set)

    def remove(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGWINCH)

    async def __aiter__(self) -> AsyncIterator[tuple[int, int]]:
        while True:
            await self.changed.wait()
            self.changed.clear()
            yield self.terminal.size()


class EndedBySignal(Exception):
    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


# ---------------------------------------------------------------- the session

async def run_session(method: Callable[[], Any], target: Any, *,
                      stdin: AsyncIterator[bytes] | None, stdout: Writer, stderr: Writer,
                      resizes: AsyncIterator[tuple[int, int]] | None = None,
                      setup_timeout_s: float | None = None) -> Any:
    """One session on a Resources method (PodExecStream, PodAttach); returns its
    PodStreamExit. See the module doc."""
    import grpc.aio

    from kubemu import streams
    from kubemu.api import errors
    from kubemu.api.v1 import resources_pb2 as apb

    call = method()
    sender = streams.Sender(call)

    async def feed_stdin() -> None:
        async for chunk in stdin:
            if not await sender.write(apb.PodStreamInput(stdin=chunk)):
                return
        await sender.write(apb.PodStreamInput(close_stdin=True))

    async def feed_resizes() -> None:
        async for width, height in resizes:
            if not await sender.write(apb.PodStreamInput(
                    resize=apb.TerminalSize(width=width, height=height))):
                return

    feeders: list[asyncio.Future] = []
    try:
        await call.write(apb.PodStreamInput(target=target))
        try:
            first = await streams.read_first(
                call, setup_timeout_s if setup_timeout_s is not None
                else streams.setup_timeout_s(2))
        except streams.SetupTimeout as err:
            raise CliError(f"the session did not start: {err}") from None
        if first.WhichOneof("output") != "started":
            raise CliError("the session did not start: unexpected answer from the server")
        if stdin is not None:
            feeders.append(asyncio.ensure_future(feed_stdin()))
        if resizes is not None:
            feeders.append(asyncio.ensure_future(feed_resizes()))
        ended = None
        while (message := await call.read()) is not grpc.aio.EOF:
            kind = message.WhichOneof("output")
            if kind == "stdout":
                await stdout(message.stdout)
            elif kind == "stderr":
                await stderr(message.stderr)
            elif kind == "exit":
                ended = message.exit
                await sender.close()  # lets the server end (kubemu.streams: how a session ends)
        if ended is None:
            raise CliError("the session ended without an exit status")
        return ended
    except grpc.aio.AioRpcError as err:
        raise errors.from_rpc_error(err) from None
    finally:
        for task in feeders:
            task.cancel()
        call.cancel()
        # A feeder's failure to write to an ended call is no news.
        await asyncio.gather(*feeders, return_exceptions=True)


async def run_interactive(method: Callable[[], Any], target: Any, *, stdin: bool, raw: bool,
                          ) -> Any:
    """A session wired to this process's stdin/stdout/stderr; with `raw`, the local
    terminal in raw mode (stdin must be a terminal) sending its size and resizes.
    SIGTERM/SIGHUP end it (EndedBySignal) after the terminal is restored."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    hit: list[int] = []

    def on_signal(signum: int) -> None:
        hit.append(signum)
        me.cancel()

    source = local_stdin() if stdin else None
    out, err = output_writer(sys.stdout), output_writer(sys.stderr)
    if not raw:
        return await run_session(method, target, stdin=source, stdout=out, stderr=err)
    fd_out = sys.stdout.fileno() if is_terminal(_fileno(sys.stdout)) else stdin_fd()
    terminal = RawTerminal(stdin_fd(), fd_out)
    width, height = terminal.size()
    target.size.width, target.size.height = width, height
    resizes = Resizes(terminal)
    installed = []
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        resizes.install()
        with terminal:
            return await run_session(method, target, stdin=source, stdout=out, stderr=out,
                                     resizes=resizes)
    except asyncio.CancelledError:
        if hit:
            raise EndedBySignal(hit[0]) from None
        raise
    finally:
        resizes.remove()
        for signum in installed:
            loop.remove_signal_handler(signum)


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return None
