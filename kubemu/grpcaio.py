"""Keep gRPC's asyncio runtime initialized for the life of the process.

grpc.aio counts its live channels and servers. When the count falls to zero
(the last channel is garbage-collected) it shuts gRPC core down, joining
core's threads with the GIL held, and the next channel starts it all again.
Both run on the event loop: 5 ms on an idle machine, 50 ms and more with
other processes on the cores, 160 ms once in a test run (a callback that
blocked the loop, with no Python stack to show for it, as the loop thread held
the GIL the whole time). A process that makes and drops short-lived channels
(a test, a kubelet probing, the CLI) pays it each time. One reference held
for the life of the process keeps the runtime up; its threads sit idle.
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
_pinned = False


def keep_initialized() -> bool:
    """Take one lasting reference on grpc.aio's runtime; True once it is held.

    Idempotent and cheap after the first call. Uses grpc's own initializer
    (the one every AioChannel and AioServer constructor calls); if a future
    grpc moves it, channels still work, they only pay the start-up again.
    """
    global _pinned
    with _lock:
        if not _pinned:
            try:
                from grpc._cython import cygrpc
                init = cygrpc.init_grpc_aio
            except (ImportError, AttributeError):
                return False
            init()
            _pinned = True
    return True
