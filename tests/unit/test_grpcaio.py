"""gRPC's asyncio runtime stays up once pinned (kubemu.grpcaio).

Without the pin, dropping the last channel shuts gRPC core down on the event
loop (joining its threads with the GIL held); the sign of that, seen from
outside, is that the process is back to one thread. Each case runs in its own
interpreter, as the pin lasts for the life of a process.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent("""
    import asyncio, gc, os, sys, time
    import grpc
    from kubemu import grpcaio
    if sys.argv[1] == "pin":
        assert grpcaio.keep_initialized()
        assert grpcaio.keep_initialized()  # idempotent
    async def main():
        channel = grpc.aio.insecure_channel("127.0.0.1:1")
        await channel.close()
    asyncio.run(main())
    asyncio.run(main())  # a second loop, as pytest runs one per test
    gc.collect()
    # gRPC's threads end on their own time (a loaded machine: later): look
    # until the process is down to one thread or the window is over.
    deadline = time.monotonic() + float(sys.argv[2])
    while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    print(len(os.listdir("/proc/self/task")))
""")


def _threads_after_last_channel(mode: str, window_s: float) -> int:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, mode, str(window_s)], capture_output=True,
                          text=True, timeout=60, check=True)
    return int(done.stdout.strip())


def test_dropping_the_last_channel_shuts_grpc_down_without_the_pin():
    assert _threads_after_last_channel("none", window_s=20.0) == 1


def test_the_pin_keeps_grpc_running_after_the_last_channel_is_gone():
    # Without the pin the threads are gone within milliseconds on a quiet machine.
    assert _threads_after_last_channel("pin", window_s=1.0) > 1
