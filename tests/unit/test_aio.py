"""kubemu.aio.run: children are watched without a thread per child (pidfds)
(run in a fresh interpreter: the child watcher is process-wide state); and
kubemu.aio.run_until.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from kubemu import aio as kubemu_aio

SCRIPT = """
import asyncio, threading, warnings
from kubemu import aio

async def main():
    before = threading.active_count()
    proc = await asyncio.create_subprocess_exec("true")
    during = threading.active_count()
    await proc.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = type(asyncio.get_child_watcher()).__name__
    print(watcher, during - before, proc.returncode)

aio.run(main())
"""


@pytest.mark.skipif(sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"),
                    reason="Python 3.12 watches children with pidfds by itself")
def test_children_are_watched_with_pidfds_and_no_thread():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["PidfdChildWatcher", "0", "0"]


async def test_run_until_stops_the_work_when_asked_and_says_so_first():
    stop = asyncio.Event()
    seen: list[str] = []

    async def work():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
    runner = asyncio.create_task(kubemu_aio.run_until(
        stop, work(), before_cancel=lambda: seen.append("before_cancel")))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(runner, 5)
    assert seen == ["before_cancel", "cancelled"]


async def test_run_until_returns_when_the_work_ends_and_raises_its_bug():
    await asyncio.wait_for(kubemu_aio.run_until(asyncio.Event(), asyncio.sleep(0)), 5)

    async def bug():
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(kubemu_aio.run_until(asyncio.Event(), bug()), 5)
