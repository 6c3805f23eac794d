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
"""
from __future__ import annotations

import asyncio
import contextlib
import os
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
