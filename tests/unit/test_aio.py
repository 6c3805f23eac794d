"""kubemu.aio.run: children are watched without a thread per child (pidfds).

Run in a fresh interpreter: the child watcher is process-wide state.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
