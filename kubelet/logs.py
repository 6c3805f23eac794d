"""Reading a container's log file: the last N lines, then (follow) what comes.

The runtime's container process appends its raw stdout and stderr to one file
per instance. `read_log` yields chunks of at most CHUNK_BYTES: the whole file
or its last `tail_lines` lines; with `follow`, new bytes as they are written,
until `running()` says the instance has ended (then whatever is left). At
most `limit_bytes` in all when given. The poll interval is the follow
latency; nothing is held open between polls but the file itself.
"""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator, Awaitable, Callable

CHUNK_BYTES = 64 * 1024
TAIL_BLOCK_BYTES = 8192


def tail_offset(f, lines: int) -> int:
    """The offset where the last `lines` lines of the open binary file start."""
    if lines <= 0:
        return f.seek(0, os.SEEK_END)
    end = f.seek(0, os.SEEK_END)
    pos = end
    newlines = 0
    # A final newline ends the last line; it does not start another.
    f.seek(max(0, end - 1))
    if end and f.read(1) == b"\n":
        pos = end - 1
    while pos > 0:
        step = min(TAIL_BLOCK_BYTES, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        for i in range(len(block) - 1, -1, -1):
            if block[i:i + 1] == b"\n":
                newlines += 1
                if newlines == lines:
                    return pos + i + 1
    return 0


async def read_log(path: str, *, tail_lines: int | None = None, limit_bytes: int | None = None,
                   follow: bool = False, running: Callable[[], Awaitable[bool]] | None = None,
                   poll_s: float = 0.2) -> AsyncIterator[bytes]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        if tail_lines is not None:
            f.seek(tail_offset(f, tail_lines))
        budget = limit_bytes if limit_bytes is not None and limit_bytes > 0 else None
        while True:
            chunk = f.read(CHUNK_BYTES if budget is None else min(CHUNK_BYTES, budget))
            if chunk:
                if budget is not None:
                    budget -= len(chunk)
                yield chunk
                if budget is not None and budget <= 0:
                    return
                continue
            if not follow or running is None:
                return
            if not await running():
                # The instance ended: what it wrote last is in the file now.
                rest = f.read() if budget is None else f.read(budget)
                if rest:
                    yield rest
                return
            await asyncio.sleep(poll_s)  # follow latency
