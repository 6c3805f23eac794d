"""The runtime's side of interactive I/O: the pipes and pseudo-terminals of
exec sessions (ExecStream) and of containers created with `stdin` or `tty`
(Attach).

- An exec session without a tty has a pipe per stream (stdin only when asked
  for; otherwise /dev/null); with a tty, one pseudo-terminal carries all three
  (a tty merges stdout and stderr) and becomes the controlling terminal of the
  command's session, so ^C and window-size changes reach its foreground
  process group. Output is read one chunk at a time, when the previous one has
  been sent on (kubemu.streams): a client that does not read leaves the pipe
  full and the command waits, nothing piles up here.
- A container with `stdin` reads a pipe whose writing end the runtime keeps
  (`Console`); Attach writes to it. With `stdin_once` (and no tty) the end of
  the first attached client's stdin closes it: the container reads end of
  input, as with containerd. A container with `tty` runs on a pseudo-terminal
  whose master the runtime keeps; a copier appends everything the container
  writes to its log file, which is what `logs` and attach read.
- What a runtime restart does to them: the pipe's writing end and the
  terminal's master live in the runtime process, so they close with it. A
  `stdin` container then reads end of input; a `tty` container's terminal
  hangs up (its session gets SIGHUP, as when an ssh connection drops, and
  most shells end). A restarted runtime re-adopts such a container but cannot
  attach stdin to it again (Attach answers FAILED_PRECONDITION); its output
  keeps going to the log only while it writes the log itself (no tty).
  containerd keeps these in a per-container shim process for that reason.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import struct
import subprocess
import sys
import termios
from typing import Sequence

from kubemu import streams
from kubemu.aio import Child

# The controlling terminal must be set by the process itself, after setsid
# and before exec; subprocess cannot do that without a preexec_fn (unsafe in
# a process with threads), so a minimal interpreter does it and execs the
# command (resolved beforehand, so that a missing program fails in the
# runtime with the usual message).
CTTY_STUB = ("import fcntl, os, sys, termios\n"
             "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
             "os.execv(sys.argv[1], sys.argv[2:])\n")


def resolve_executable(argv0: str, env: dict[str, str], cwd: str) -> str:
    """argv0 as execvp would find it on the child's PATH (relative to its cwd);
    FileNotFoundError / PermissionError as exec would raise them."""
    if "/" in argv0:
        path = argv0 if argv0.startswith("/") else os.path.join(cwd, argv0)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", argv0)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(13, "Permission denied", argv0)
        return path
    found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(2, "No such file or directory", argv0)
    return found if found.startswith("/") else os.path.join(cwd, found)


def ctty_argv(argv: Sequence[str], env: dict[str, str], cwd: str) -> list[str]:
    """`argv` started so that its stdin (a terminal) is its controlling terminal;
    the process must be a session leader (start_new_session)."""
    program = resolve_executable(argv[0], env, cwd)
    return [sys.executable, "-I", "-S", "-c", CTTY_STUB, program, *argv]


def set_size(fd: int, width: int, height: int) -> None:
    """The terminal's window size (the kernel signals SIGWINCH to its foreground group)."""
    if width and height:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def open_pty(width: int = 0, height: int = 0) -> tuple[int, int]:
    """(master, slave), both close-on-exec; the master non-blocking."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    os.set_inheritable(slave, False)
    os.set_blocking(master, False)
    set_size(master, width, height)
    return master, slave


def _pipe() -> tuple[int, int]:
    return os.pipe2(os.O_CLOEXEC)


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


class ExecIO:
    """The fds of one exec session: the child's ends (passed to the process,
    then closed here) and ours (non-blocking)."""

    def __init__(self, *, stdin: bool, tty: bool, width: int = 0, height: int = 0):
        self.tty = tty
        self.child: list[int] = []
        self.stdin_fd: int | None = None
        self.stdout_fd: int | None = None
        self.stderr_fd: int | None = None
        self.child_stdin: int = subprocess.DEVNULL
        try:
            if tty:
                master, slave = open_pty(width, height)
                self.child = [slave]
                self.child_stdin = self.child_stdout = self.child_stderr = slave
                self.stdout_fd = master
                self.stdin_fd = master if stdin else None
                return
            out_r, out_w = _pipe()
            self.stdout_fd, self.child_stdout = out_r, out_w
            self.child.append(out_w)
            err_r, err_w = _pipe()
            self.stderr_fd, self.child_stderr = err_r, err_w
            self.child.append(err_w)
            if stdin:
                in_r, in_w = _pipe()
                self.stdin_fd, self.child_stdin = in_w, in_r
                self.child.append(in_r)
            for fd in (self.stdout_fd, self.stderr_fd, self.stdin_fd):
                if fd is not None:
                    os.set_blocking(fd, False)
        except BaseException:
            self.close()
            raise

    def close_child(self) -> None:
        """Our copies of the child's ends: closed once it has them, so that its
        output reaches end of file when it (and its children) are done."""
        for fd in self.child:
            _close(fd)
        self.child = []

    def close_stdin(self) -> None:
        """End of input for the command. A terminal has no end of input of its
        own (its master is also the output): there, nothing happens."""
        if self.stdin_fd is not None and not self.tty:
            _close(self.stdin_fd)
        self.stdin_fd = None

    def resize(self, width: int, height: int) -> None:
        if self.tty and self.stdout_fd is not None:
            set_size(self.stdout_fd, width, height)

    def close(self) -> None:
        self.close_child()
        if not self.tty:
            _close(self.stdin_fd)
        for fd in {self.stdout_fd, self.stderr_fd}:
            _close(fd)
        self.stdin_fd = self.stdout_fd = self.stderr_fd = None


async def pump_session(proc: Child, io: ExecIO, inputs, send, *,
                       timeout_s: float, drain_s: float) -> int:
    """Run an exec session to the command's end: `inputs` (an async iterator of
    StreamInput after the start) feeds stdin and resizes, the command's output
    goes out through `send` (one message at a time). Returns the exit code.
    Raises TimeoutError past `timeout_s` (> 0), ProtocolError on a bad input.
    The caller kills the command if it still runs."""
    from kubemu.runtime.v1 import runtime_pb2 as pb

    send_lock = asyncio.Lock()

    async def copy_out(fd: int, field: str) -> None:
        while chunk := await streams.read_fd(fd):
            async with send_lock:
                await send(pb.StreamOutput(**{field: chunk}))

    async def feed() -> None:
        order = streams.InputOrder()
        order.check("start")
        async for message in inputs:
            kind = streams.input_kind(message)
            order.check(kind)
            if kind == "stdin":
                if io.stdin_fd is not None:
                    try:
                        await streams.write_fd(io.stdin_fd, message.stdin)
                    except BrokenPipeError:
                        io.close_stdin()  # the command stopped reading: drop the rest
            elif kind == "resize":
                io.resize(message.resize.width, message.resize.height)
            else:
                io.close_stdin()
        io.close_stdin()  # the client will send nothing more

    readers = [asyncio.ensure_future(copy_out(io.stdout_fd, "stdout"))]
    if io.stderr_fd is not None:
        readers.append(asyncio.ensure_future(copy_out(io.stderr_fd, "stderr")))
    feeder = asyncio.ensure_future(feed())
    waiter = asyncio.ensure_future(proc.wait())
    try:
        pending = {waiter, feeder}
        deadline = asyncio.get_running_loop().time() + timeout_s if timeout_s > 0 else None
        while not waiter.done():
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                raise TimeoutError
            done, pending = await asyncio.wait(pending, timeout=left,
                                               return_when=asyncio.FIRST_COMPLETED)
            if feeder in done:
                feeder.result()  # a protocol error ends the session
        # Output pipes can outlive the command (a background child holds them).
        await asyncio.wait(readers, timeout=drain_s)
        for task in readers:
            if task.done():
                task.result()  # a failure to send: the client is gone
        return proc.returncode
    finally:
        for task in (*readers, feeder, waiter):
            task.cancel()
        await asyncio.gather(*readers, feeder, waiter, return_exceptions=True)


class Console:
    """The stdin pipe or terminal of a container created with `stdin`/`tty`,
    kept by the runtime (see the module doc)."""

    def __init__(self, *, stdin: bool, stdin_once: bool, tty: bool):
        self.tty = tty
        self.stdin_once = stdin_once and not tty  # containerd: a tty is never closed
        self.child: list[int] = []
        self.input_fd: int | None = None   # pipe's writing end, or the terminal's master
        self.master: int | None = None
        self.child_stdin: int = subprocess.DEVNULL
        self.child_output: int | None = None  # None: the log file
        self.stdin_closed = not stdin and not tty
        self.copier: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()
        if tty:
            self.master, slave = open_pty()
            self.child = [slave]
            self.child_stdin = self.child_output = slave
            self.input_fd = self.master if stdin else None
            self.stdin_closed = not stdin
        elif stdin:
            read_end, write_end = _pipe()
            os.set_blocking(write_end, False)
            self.child = [read_end]
            self.child_stdin, self.input_fd = read_end, write_end

    def started(self, log_fd: int, exited: asyncio.Event, drain_s: float) -> None:
        """The container runs: drop our copies of its ends; a tty's output is copied to
        the log (a dup of `log_fd`, which the caller closes) until it hangs up."""
        for fd in self.child:
            _close(fd)
        self.child = []
        if self.master is not None:
            self.copier = asyncio.ensure_future(self._copy(os.dup(log_fd), exited, drain_s))
        else:
            self.copier = asyncio.ensure_future(self._close_when(exited))

    async def _close_when(self, exited: asyncio.Event) -> None:
        await exited.wait()
        self.close()

    async def _copy(self, log_fd: int, exited: asyncio.Event, drain_s: float) -> None:
        async def copy() -> None:
            while chunk := await streams.read_fd(self.master):
                os.write(log_fd, chunk)  # an O_APPEND file in the page cache: microseconds

        copying = asyncio.ensure_future(copy())
        try:
            await asyncio.wait({copying, asyncio.ensure_future(exited.wait())},
                               return_when=asyncio.FIRST_COMPLETED)
            if not copying.done():  # exited: what it wrote last is still in the terminal
                await asyncio.wait({copying}, timeout=drain_s)
        finally:
            copying.cancel()
            await asyncio.gather(copying, return_exceptions=True)
            _close(log_fd)
            self.close()

    async def write(self, data: bytes) -> None:
        if self.input_fd is None:
            return
        async with self._write_lock:
            if self.input_fd is None:
                return
            try:
                await streams.write_fd(self.input_fd, data)
            except BrokenPipeError:
                self.close_stdin()

    def close_stdin(self) -> None:
        if self.input_fd is not None and not self.tty:
            _close(self.input_fd)
        self.input_fd = None
        self.stdin_closed = True

    def resize(self, width: int, height: int) -> None:
        if self.master is not None:
            set_size(self.master, width, height)

    def close(self) -> None:
        for fd in self.child:
            _close(fd)
        self.child = []
        self.close_stdin()
        _close(self.master)
        self.master = None

    async def aclose(self) -> None:
        if self.copier is not None:
            self.copier.cancel()
            await asyncio.gather(self.copier, return_exceptions=True)
        self.close()
