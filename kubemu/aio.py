"""Running a component's event loop: `kubemu.aio.run(main())`, and
`run_until(stop, work)`: a component's work until it ends or is asked to stop.

The same as asyncio.run, except for how child processes are watched. On
Python 3.11 asyncio's default child watcher starts a thread for every child
process and blocks the event loop until that thread runs, which on a loaded
machine takes longer than a blocking call is allowed to (see
kubemu.aiodebug). Where Linux has pidfds, a PidfdChildWatcher waits for
children on the loop itself, with no thread; Python 3.12 does that on its
own. For processes whose loop runs in the main thread (components' entry
points), not for loops in other threads.

`spawn(argv, ...)` starts a child off the loop: fork and exec of a large
parent process take a hundred milliseconds in the kernel on a loaded machine,
which asyncio.create_subprocess_exec spends on the loop. The child is then
waited for through a pidfd on the loop (a thread where there are none).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import warnings
from typing import Any, Callable, Coroutine, TypeVar

T = TypeVar("T")


def _watch_children_with_pidfds() -> None:
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return  # the kernel has no pidfds (Linux < 5.3): keep the default watcher
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


async def readable(fd: int) -> None:
    """Return when `fd` is readable (a pidfd: when its process has exited)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


class Child:
    """A started process: `pid`, `returncode` (None while it runs; -N after
    signal N), `await wait()` and, for pipes asked for, `stdout` / `stderr`
    as StreamReaders, as asyncio.subprocess.Process has them. close() closes
    the pipes (a background child of the process may hold them open)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._exited: asyncio.Future[int] | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._transports: list[asyncio.BaseTransport] = []

    async def _connect_pipes(self) -> None:
        loop = asyncio.get_running_loop()
        for name in ("stdout", "stderr"):
            pipe = getattr(self._popen, name)
            if pipe is None:
                continue
            reader = asyncio.StreamReader()
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r), pipe)
            self._transports.append(transport)
            setattr(self, name, reader)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
        self._transports.clear()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        if self._popen.returncode is not None:
            return self._popen.returncode
        if self._exited is None:
            self._exited = asyncio.get_running_loop().create_task(self._reap())
        return await asyncio.shield(self._exited)

    async def _reap(self) -> int:
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            # No pidfds (or the pid is already reaped): wait in a thread.
            return await asyncio.to_thread(self._popen.wait)
        try:
            await readable(fd)
        finally:
            os.close(fd)
        # Readable pidfd: the child has exited, so reaping it does not block.
        code = self._popen.poll()
        return code if code is not None else await asyncio.to_thread(self._popen.wait)


async def spawn(argv: list[str], **popen: Any) -> Child:
    """subprocess.Popen(argv, **popen) in a thread; see the module's note.
    stdout/stderr=subprocess.PIPE give StreamReaders (Child.stdout/stderr)."""
    child = Child(await asyncio.to_thread(subprocess.Popen, argv, **popen))
    try:
        await child._connect_pipes()
    except BaseException:
        child.close()
        raise
    return child


def run(main: Coroutine[Any, Any, T]) -> T:
    _watch_children_with_pidfds()
    return asyncio.run(main)


async def run_until(stop: asyncio.Event, work: Coroutine[Any, Any, Any], *,
                    before_cancel: Callable[[], None] = lambda: None) -> None:
    """Run `work` until it returns or `stop` is set; then call before_cancel()
    (say, to note that the stop is graceful), cancel `work` and wait for it.
    An exception from `work` (a bug) propagates."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(work, name="work")
    stopping = loop.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    finally:
        before_cancel()
        stopping.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
