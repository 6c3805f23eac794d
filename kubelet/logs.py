"""Container log files: where they are, how they rotate, how they are read.

Layout (as the kubelet's /var/log/pods): a pod's logs are in
<root>/logs/<namespace>_<name>_<uid>/ (0700), one directory per container,
one file per instance named after its attempt, `<container>/<attempt>.log`
(0600). The runtime's container process appends its raw stdout and stderr
to that file itself (O_APPEND), so output keeps flowing while the runtime
restarts.

Rotation (the kubelet's container log manager, --container-log-max-size and
--container-log-max-files): `rotate(path, max_bytes, max_files)` is run for
the running containers every --container-log-monitor-interval-s, by
copy-and-truncate. A live file at or above max_bytes is read to its end
(at most its last max_files * max_bytes bytes: nothing older could be kept)
and truncated to zero at once. What was read is cut at line ends into
pieces of at most max_bytes; all but the last go to rotated files
`<path>.<YYYYMMDD-hhmmss>` (the kubelet's suffix, in UTC; a counter is
added when two fall in one second), and the last piece, the lines after the last full
piece, is appended to the live file again, so the history has no hole and
every rotated file is under max_bytes. The oldest rotated files beyond
max_files - 1 are removed: at most max_files files, the live one included.
The live one can grow past max_bytes by what the container writes in one
check interval. The writer is not told: its O_APPEND writes land at the
new end of the file. The window (microseconds): what the container writes
between the read and the truncate is lost, and what it writes between the
truncate and the append of the last piece comes before that piece. Rotated
files are not compressed (the kubelet gzips all but the newest).

Reading (`read_log`) goes across the rotated files and the live one, oldest
first: all of it, its last `tail_lines` lines, at most `limit_bytes`; with
`follow`, new bytes of the live file as they are written, until `running()`
says the instance has ended (then whatever is left). A live file found
shorter than what was read of it has been rotated: following goes on in the
new live file after what it had sent already. For that, a rotation first
writes a note, `.<name>.rotation` beside the log (hidden: the directory
lists only logs), saying how long the old file was and how
many of its last bytes it puts back; a follower that had read to offset P of
the old file skips the put-back bytes it has sent (P - (size - put_back)). A
follower more than one piece behind at the rotation loses the bytes between
its offset and the put-back piece (they are in the newest rotated file). Reads are blocking file I/O and run in a thread; nothing is held
open between polls but the live file.
"""
from __future__ import annotations

import asyncio
import datetime
import os
import pathlib
import re
from typing import AsyncIterator, Awaitable, Callable, Iterator

from kubemu.fileutil import atomic_write

CHUNK_BYTES = 64 * 1024
ROTATION_NOTE_SUFFIX = ".rotation"


def rotation_note(path: str | os.PathLike[str]) -> pathlib.Path:
    """The note a rotation leaves for followers of the live log `path`."""
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}{ROTATION_NOTE_SUFFIX}")
TAIL_BLOCK_BYTES = 8192
ROTATED_SUFFIX = re.compile(r"\.\d{8}-\d{6}(?:\.\d+)?$")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024   # --container-log-max-size 10Mi
DEFAULT_MAX_FILES = 5                  # --container-log-max-files


def container_log_path(pod_log_dir: pathlib.Path, container: str, attempt: int) -> pathlib.Path:
    return pod_log_dir / container / f"{attempt}.log"


def relative_log_path(container: str, attempt: int) -> str:
    """The path the kubelet gives the runtime, relative to the pod's log directory."""
    return f"{container}/{attempt}.log"


def pod_log_dirs(logs_root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Pod uid -> its log directory, for every pod with one (blocking)."""
    try:
        names = os.listdir(logs_root)
    except OSError:
        return {}
    return {name.rpartition("_")[2]: logs_root / name for name in names if name.count("_") >= 2}


def logged_attempts(container_dir: pathlib.Path) -> list[int]:
    """The attempts that have a log file in a container's log directory
    (blocking). After a runtime lost its records, they say how many instances
    ran, as the kubelet reads `<restartCount>.log` names."""
    try:
        names = os.listdir(container_dir)
    except OSError:
        return []
    return [int(n[:-4]) for n in names if n.endswith(".log") and n[:-4].isdigit()]


def rotated_files(path: str | os.PathLike[str]) -> list[pathlib.Path]:
    """The rotated files of a log, oldest first (blocking)."""
    path = pathlib.Path(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    prefix = path.name
    found = [n for n in names if n.startswith(prefix) and ROTATED_SUFFIX.fullmatch(
        n[len(prefix):])]

    def order(name: str) -> tuple[str, int]:
        stamp, _, count = name[len(prefix) + 1:].partition(".")
        return stamp, int(count or 0)
    return [path.parent / n for n in sorted(found, key=order)]


def remove_log(path: str | os.PathLike[str]) -> None:
    """A log and its rotated files (blocking)."""
    for old in rotated_files(path):
        old.unlink(missing_ok=True)
    rotation_note(path).unlink(missing_ok=True)
    pathlib.Path(path).unlink(missing_ok=True)


def _line_start(data: bytes) -> bytes:
    """`data` from its first whole line (it was cut somewhere in a line)."""
    cut = data.find(b"\n")
    return data[cut + 1:] if cut >= 0 else data


def _rotated_name(path: pathlib.Path, now_s: float) -> pathlib.Path:
    stamp = datetime.datetime.fromtimestamp(now_s, datetime.timezone.utc).strftime(
        "%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}")
    count = 0
    while target.exists():
        count += 1
        target = path.with_name(f"{path.name}.{stamp}.{count}")
    return target


def _pieces(data: bytes, max_bytes: int) -> list[bytes]:
    """`data` cut at line ends into pieces of at most max_bytes (a longer line is
    cut where it must)."""
    pieces = []
    while data:
        if len(data) <= max_bytes:
            cut = len(data)
        else:
            cut = data.rfind(b"\n", 0, max_bytes) + 1 or max_bytes
        pieces.append(data[:cut])
        data = data[cut:]
    return pieces


def rotate(path: str | os.PathLike[str], max_bytes: int, max_files: int,
           now_s: float) -> bool:
    """Rotate `path` if it has reached max_bytes; True when it did (blocking)."""
    if max_bytes <= 0 or max_files < 2:
        raise ValueError(f"rotate: need max_bytes > 0 and max_files >= 2, got {max_bytes}, "
                         f"{max_files}")
    path = pathlib.Path(path)
    keep_bytes = max_files * max_bytes
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        if size < max_bytes:
            return False
        # From the byte before the first one kept: it says whether that one starts a line.
        start = max(0, size - keep_bytes - 1)
        os.lseek(fd, start, os.SEEK_SET)
        parts = []
        while chunk := os.read(fd, CHUNK_BYTES):  # to the end, whatever came meanwhile
            parts.append(chunk)
        data = b"".join(parts)
        old_size = start + len(data)
        if start > 0 or len(data) > keep_bytes:
            data = _line_start(data[-keep_bytes - 1:])  # from the first whole line
        pieces = _pieces(data, max_bytes)
        # A last piece that is not full stays live: no rotated file is wasted on it.
        rest = pieces.pop() if len(pieces) > 1 and len(pieces[-1]) < max_bytes else b""
        # The note comes before the truncate, so a follower that sees the file
        # shrink finds this rotation's note.
        atomic_write(rotation_note(path), f"{old_size} {len(rest)}\n", fsync=False)
        os.ftruncate(fd, 0)
        if rest:
            os.write(fd, rest)  # O_APPEND: after anything written since the truncate
    finally:
        os.close(fd)
    for piece in pieces:
        atomic_write(_rotated_name(path, now_s), piece, fsync=False)
    old = rotated_files(path)
    for stale in old[:max(0, len(old) - (max_files - 1))]:
        stale.unlink(missing_ok=True)
    return True


def rotate_all(paths: list[str], max_bytes: int, max_files: int, now_s: float) -> int:
    """Rotate every log that needs it; how many did (blocking)."""
    return sum(rotate(p, max_bytes, max_files, now_s) for p in paths)


# ---------------------------------------------------------------- reading

def resume_offset(path: str | os.PathLike[str], read_to: int) -> int:
    """Where a follower that had read the old live file to `read_to` goes on in
    the new one, after a rotation: past the put-back bytes it has sent already
    (0 without a note). Blocking."""
    try:
        size_text, put_back_text = rotation_note(path).read_text().split()
        old_size, put_back = int(size_text), int(put_back_text)
    except (OSError, ValueError):
        return 0
    return min(put_back, max(0, read_to - (old_size - put_back)))


def tail_offset(f, lines: int) -> int:
    """The offset where the last `lines` lines of the open binary file start."""
    offset, _ = _tail(f, lines)
    return offset


def _tail(f, lines: int) -> tuple[int, int]:
    """(offset where the last `lines` lines start, how many lines were found)."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end, 0
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
                    return pos + i + 1, lines
    return 0, newlines + (1 if end else 0)


def _plan(path: str, tail_lines: int | None) -> list[tuple[pathlib.Path, int]]:
    """(file, offset) to read, oldest first, for the whole log or its tail."""
    files = [*rotated_files(path), pathlib.Path(path)]
    plan: list[tuple[pathlib.Path, int]] = []
    wanted = tail_lines
    for f in reversed(files):
        try:
            with open(f, "rb") as handle:
                if wanted is None:
                    plan.append((f, 0))
                    continue
                offset, found = _tail(handle, wanted)
        except FileNotFoundError:
            continue
        plan.append((f, offset))
        wanted -= found
        if wanted <= 0:
            break
    return list(reversed(plan))


def _read_chunks(plan: list[tuple[pathlib.Path, int]]) -> Iterator[bytes]:
    for path, offset in plan:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk
        except FileNotFoundError:
            continue


async def read_log(path: str, *, tail_lines: int | None = None, limit_bytes: int | None = None,
                   follow: bool = False, running: Callable[[], Awaitable[bool]] | None = None,
                   poll_s: float = 0.2) -> AsyncIterator[bytes]:
    budget = limit_bytes if limit_bytes is not None and limit_bytes > 0 else None
    plan = await asyncio.to_thread(_plan, path, tail_lines)
    if not plan or plan[-1][0] != pathlib.Path(path):
        # No live file (removed meanwhile): what was rotated, and nothing to follow.
        async for chunk in _budgeted(plan, budget):
            yield chunk
        return
    history, (live, offset) = plan[:-1], plan[-1]
    async for chunk in _budgeted(history, budget):
        if budget is not None:
            budget -= len(chunk)
        yield chunk
    if budget is not None and budget <= 0:
        return
    try:
        f = await asyncio.to_thread(open, live, "rb")
    except FileNotFoundError:
        return
    try:
        await asyncio.to_thread(f.seek, offset)
        while True:
            chunk = await asyncio.to_thread(
                f.read, CHUNK_BYTES if budget is None else min(CHUNK_BYTES, budget))
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
                rest = await asyncio.to_thread(f.read, -1 if budget is None else budget)
                if rest:
                    yield rest
                return
            size = (await asyncio.to_thread(os.fstat, f.fileno())).st_size
            if size < f.tell():  # rotated: go on after what it put back and we sent
                await asyncio.to_thread(f.seek, await asyncio.to_thread(
                    resume_offset, live, f.tell()))
                continue
            await asyncio.sleep(poll_s)  # follow latency
    finally:
        await asyncio.to_thread(f.close)


async def _budgeted(plan: list[tuple[pathlib.Path, int]], budget: int | None
                    ) -> AsyncIterator[bytes]:
    """The planned chunks, at most `budget` bytes in all (read in a thread)."""
    chunks = _read_chunks(plan)
    while True:
        chunk = await asyncio.to_thread(next, chunks, None)
        if chunk is None:
            return
        if budget is not None:
            chunk = chunk[:budget]
            budget -= len(chunk)
        if chunk:
            yield chunk
        if budget is not None and budget <= 0:
            return
