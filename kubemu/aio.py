"""Running a component's event loop: `kubemu.aio.run(main())`.

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
import os
import sys
import warnings
from typing import Any, Coroutine, TypeVar

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
