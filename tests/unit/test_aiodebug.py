"""kubemu.aiodebug: blocking and busy callbacks are reported, quick ones are not."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from kubemu import aiodebug

pytestmark = pytest.mark.blocks_event_loop


# Each case runs in a fresh interpreter: the test process has other threads
# (gRPC's, pinned for its life by the suite) whose CPU is taken off a
# callback's blocked time, so the figures here would depend on them.
_CASE = """
import asyncio, dataclasses, json, sys, threading, time
from kubemu import aiodebug

def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass

def behind_another_threads_cpu():
    # sum() over a range is one C call that keeps the GIL (about 0.5 s here):
    # this callback waits that long for it after its short sleep.
    threading.Thread(target=lambda: sum(range(30_000_000))).start()
    time.sleep(0.01)

WORK = {"sleep": lambda: time.sleep(0.15), "hog": lambda: busy(0.35),
        "busy-but-below-the-cpu-margin": lambda: busy(0.15), "quick": lambda: time.sleep(0.01),
        "waiting-for-the-gil-another-thread-computes-with": behind_another_threads_cpu}

async def main():
    found = []
    uninstall = aiodebug.install(100, found.append, process="test")
    try:
        asyncio.get_running_loop().call_soon(WORK[sys.argv[1]])
        await asyncio.sleep(0.8)
    finally:
        uninstall()
    print(json.dumps([dataclasses.asdict(f) for f in found]))

asyncio.run(main())
"""


@pytest.mark.parametrize("case,reported,blocked", [
    ("sleep", True, True),
    ("hog", True, False),
    ("busy-but-below-the-cpu-margin", False, False),
    ("quick", False, False),
    ("waiting-for-the-gil-another-thread-computes-with", False, False),
])
def test_slow_callbacks_are_reported(case, reported, blocked):
    done = subprocess.run([sys.executable, "-c", _CASE, case], capture_output=True, text=True,
                          timeout=60, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert bool(found) == reported, found
    if reported:
        assert found[0]["blocked"] == blocked and found[0]["wall_ms"] >= 100, found
        assert found[0]["process"] == "test" and "lambda" in found[0]["callback"]


async def test_uninstall_restores_the_loop():
    found: list = []
    aiodebug.install(100, found.append)()
    asyncio.get_running_loop().call_soon(time.sleep, 0.15)
    await asyncio.sleep(0.2)
    assert found == []


FROM_ENVIRONMENT = """
import asyncio, json, time
from kubemu import aiodebug

async def main():
    logged = []
    assert aiodebug.from_environment("apiserver", log=lambda msg, **kw: logged.append(msg))
    asyncio.get_running_loop().call_soon(time.sleep, 0.1)
    await asyncio.sleep(0.3)
    print(json.dumps(logged))

asyncio.run(main())
"""


def test_from_environment_appends_json_lines(tmp_path):
    """In a fresh interpreter, as the cases above and for the same reason: a
    thread of this process preempted meanwhile (gRPC's, under a loaded CI
    machine) rightly keeps a blocked time from being judged, and this test
    is about the report, not the judgement."""
    report = tmp_path / "slow.jsonl"
    env = dict(os.environ, **{aiodebug.THRESHOLD_ENV: "50", aiodebug.REPORT_ENV: str(report)})
    done = subprocess.run([sys.executable, "-c", FROM_ENVIRONMENT], capture_output=True,
                          text=True, timeout=60, check=True, env=env)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["slow callback"], done.stdout
    [line] = report.read_text().splitlines()
    found = json.loads(line)
    assert found["process"] == "apiserver" and found["blocked"] and found["wall_ms"] >= 50, found


STOPPED_CHILD = r"""
import asyncio, json, time
from kubemu import aiodebug

def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass

async def main():
    found = []
    uninstall = aiodebug.install(100, found.append, process="child")
    def work():
        print("running", flush=True)
        spin(0.2)      # CPU below the hog margin; stopped meanwhile by the test
    asyncio.get_running_loop().call_soon(work)
    await asyncio.sleep(0.05)
    uninstall()
    print(json.dumps([s.blocked for s in found]), flush=True)

asyncio.run(main())
"""


def test_a_callback_during_which_the_process_was_stopped_is_not_judged():
    """A chaos test's SIGSTOP mid-callback is not the callback blocking the loop;
    SIGCONT marks it, and such a callback is not judged at all (its stopped
    time is not known). Without the mark, the 0.3 s stop counts as blocked."""
    import signal

    import psutil

    from kubemu.client.wait import wait_for_sync
    child = subprocess.Popen([sys.executable, "-c", STOPPED_CHILD],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "running\n"
        os.kill(child.pid, signal.SIGSTOP)
        wait_for_sync(lambda: psutil.Process(child.pid).status() == psutil.STATUS_STOPPED, 10,
                      message="the child is stopped")
        time.sleep(0.3)  # the length of the pause under test, not a wait for a condition
        os.kill(child.pid, signal.SIGCONT)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert json.loads(out) == []
