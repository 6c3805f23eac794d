"""Container log files: where they are, how they rotate, how they are read.

Layout (as the kubelet's /var/log/pods): a pod's logs are in
<root>/logs/<namespace>_<name>_<uid>/ (0700), one directory per container,
one file per instance named after its attempt, `<container>/<attempt>.log`
(0600). The runtime's container process appends its raw stdout and stderr
to that file itself (O_APPEND), so output keeps flowing while the runtime
restarts.

Rotation (the kubelet's container log manager, --container-log-max-size and
--container-log-max-files): `rotate(path, max_bytes, max_files)` is run for
the running containers every --container-log-monitor-interval-s. The writer
keeps its O_APPEND descriptor and is not told, so the file is never renamed:
- where the filesystem can collapse a range (ext4, XFS: fallocate
  FALLOC_FL_COLLAPSE_RANGE), the file's first whole blocks are copied to
  rotated files and then removed from it in one call; what the container
  writes meanwhile stays in the file, so nothing is lost;
- elsewhere (tmpfs, ...) by copy-and-truncate: the file is read to its end
  and truncated at once, and the lines after the last full piece are written
  back; what the container writes between the read and the truncate (a
  window of microseconds, more on a loaded machine) is lost.
What is copied is cut at line ends into pieces of at most max_bytes (at a
block boundary the last piece may end inside a line, which the live file
goes on with), kept in rotated files `<path>.<YYYYMMDD-hhmmss>` (the
kubelet's suffix, in UTC; a counter is added when two fall in one second),
at most max_files - 1 of them: the oldest go. The live file can grow past
max_bytes by what the container writes in one check interval. Rotated files
are not compressed (the kubelet gzips all but the newest).

Offsets: a log is one stream of bytes; the live file holds its end. A note
beside it, `.<name>.rotation` (hidden: the directory lists only logs), says
where in the stream the live file starts (`base`), under a sequence number
that a rotation bumps before it changes the file (marking it busy) and again
after (ready). A reader asks for stream offsets and reads the live file at
offset - base between two reads of the note (a seqlock): if the note changed
meanwhile it reads again, so a follower goes on through any number of
rotations without repeating or skipping a byte. A follower that fell behind
the live file's start skips to it (what it missed is in the rotated files).

Reading (`read_log`) goes across the rotated files and the live one, oldest
first: all of it, its last `tail_lines` lines, or from a stream `offset`
(`end_offset` taken earlier), at most `limit_bytes`; with
`follow`, new bytes of the live file as they are written, until `running()`
says the instance has ended (then whatever is left). Reads are blocking file
I/O and run in a thread; nothing is held open between polls but the live file.
"""
from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import datetime
import errno
import functools
import os
import pathlib
import re
import time
from typing import AsyncIterator, Awaitable, Callable, Iterator

from kubemu.fileutil import atomic_write

CHUNK_BYTES = 64 * 1024
ROTATION_NOTE_SUFFIX = ".rotation"
FALLOC_FL_COLLAPSE_RANGE = 0x08
NOTE_READ_TRIES = 200  # seqlock retries of one read (a rotation takes milliseconds)
NOTE_RETRY_S = 0.002   # between them (in a reader's thread, not on an event loop)


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


@dataclasses.dataclass(frozen=True)
class RotationNote:
    seq: int = 0         # bumped before and after every rotation
    base: int = 0        # the stream offset of the live file's first byte
    busy: bool = False   # a rotation is changing the file now
    # The rotated files kept, oldest first: (file name, stream offset of its first byte).
    history: tuple[tuple[str, int], ...] = ()

    def next(self, base: int | None = None, busy: bool = False,
             history: tuple[tuple[str, int], ...] | None = None) -> "RotationNote":
        return RotationNote(self.seq + 1, self.base if base is None else base, busy,
                            self.history if history is None else history)


def read_rotation_note(path: str | os.PathLike[str]) -> RotationNote:
    """The note of the live log `path` (a log never rotated has base 0). Blocking."""
    try:
        head, *rest = rotation_note(path).read_text().splitlines()
        seq, base, state = head.split()
        history = tuple((name, int(start)) for name, start in (line.split() for line in rest))
        return RotationNote(int(seq), int(base), state == "busy", history)
    except FileNotFoundError:
        return RotationNote()
    except ValueError:
        return RotationNote(busy=True)  # never half-written (atomic), but never trusted


def _write_note(path: pathlib.Path, note: RotationNote) -> None:
    lines = [f"{note.seq} {note.base} {'busy' if note.busy else 'ready'}"]
    lines += [f"{name} {start}" for name, start in note.history]
    atomic_write(rotation_note(path), "\n".join(lines) + "\n", fsync=False)


def _collapse(fd: int, length: int) -> bool:
    """Remove the first `length` bytes of the file (whole blocks); False where the
    filesystem cannot (then nothing changed)."""
    try:
        rc = _libc().fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, ctypes.c_long(0),
                               ctypes.c_long(length))
    except (AttributeError, OSError):
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
        return False
    raise OSError(err, os.strerror(err))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _read_range(fd: int, start: int, end: int) -> bytes:
    parts = []
    while start < end and (chunk := os.pread(fd, min(CHUNK_BYTES, end - start), start)):
        parts.append(chunk)
        start += len(chunk)
    return b"".join(parts)


def rotate(path: str | os.PathLike[str], max_bytes: int, max_files: int,
           now_s: float, *, collapse: bool = True) -> bool:
    """Rotate `path` if it has reached max_bytes; True when it did (blocking).
    `collapse=False` forces copy-and-truncate (for tests of that path)."""
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
        block = os.fstat(fd).st_blksize or 4096
    except OSError:
        os.close(fd)
        raise
    if size < max_bytes:
        os.close(fd)
        return False
    note = read_rotation_note(path).next(busy=True)
    _write_note(path, note)
    added: list[tuple[str, int]] = []
    try:
        removed = None
        # Whole blocks, short of the end (a collapse may not reach it).
        cut = (size - 1) // block * block
        if collapse and cut > 0:
            first = max(0, cut - keep_bytes - 1)
            data = _read_range(fd, first, cut)
            if first > 0:
                data = _line_start(data)  # from the first whole line kept
            added = _write_pieces(path, _pieces(data, max_bytes), now_s,
                                  note.base + cut - len(data))
            if _collapse(fd, cut):
                removed = cut
            else:
                for name, _ in added:  # cannot collapse here: copy-and-truncate instead
                    (path.parent / name).unlink(missing_ok=True)
                added = []
        if removed is None:
            removed, added = _copy_and_truncate(fd, path, max_bytes, keep_bytes, now_s,
                                                note.base)
        note = note.next(base=note.base + removed, history=note.history + tuple(added))
    finally:
        os.close(fd)
        if note.busy:  # failed half-way: the base is still the one it was
            note = note.next(history=note.history + tuple(added))
        _write_note(path, note)
    old = rotated_files(path)
    stale = old[:max(0, len(old) - (max_files - 1))]
    for name in stale:
        name.unlink(missing_ok=True)
    if stale:
        gone = {name.name for name in stale}
        # Only the kept files in the index (a reader that took the older index
        # finds a file gone and skips it).
        _write_note(path, note.next(history=tuple(h for h in note.history if h[0] not in gone)))
    return True


def _copy_and_truncate(fd: int, path: pathlib.Path, max_bytes: int, keep_bytes: int,
                       now_s: float, base: int) -> tuple[int, list[tuple[str, int]]]:
    """Rotate by copy-and-truncate: (bytes of the stream that left the file, the
    rotated files written with their stream offsets)."""
    size = os.fstat(fd).st_size
    # From the byte before the first one kept: it says whether that one starts a line.
    start = max(0, size - keep_bytes - 1)
    os.lseek(fd, start, os.SEEK_SET)
    parts = []
    while chunk := os.read(fd, CHUNK_BYTES):  # to the end, whatever came meanwhile
        parts.append(chunk)
    os.ftruncate(fd, 0)  # at once: what is written in between is lost (the window)
    data = b"".join(parts)
    old_size = start + len(data)
    if start > 0 or len(data) > keep_bytes:
        data = _line_start(data[-keep_bytes - 1:])  # from the first whole line
    pieces = _pieces(data, max_bytes)
    # A last piece that is not full stays live: no rotated file is wasted on it.
    rest = pieces.pop() if len(pieces) > 1 and len(pieces[-1]) < max_bytes else b""
    if rest:
        os.write(fd, rest)  # O_APPEND: after anything written since the truncate
    added = _write_pieces(path, pieces, now_s, base + old_size - len(data))
    return old_size - len(rest), added


def _write_pieces(path: pathlib.Path, pieces: list[bytes], now_s: float,
                  stream_start: int) -> list[tuple[str, int]]:
    """Write the pieces to rotated files; (name, stream offset) of each."""
    written = []
    for piece in pieces:
        name = _rotated_name(path, now_s)
        atomic_write(name, piece, fsync=False)
        written.append((name.name, stream_start))
        stream_start += len(piece)
    return written


def rotate_all(paths: list[str], max_bytes: int, max_files: int, now_s: float) -> int:
    """Rotate every log that needs it; how many did (blocking)."""
    return sum(rotate(p, max_bytes, max_files, now_s) for p in paths)


# ---------------------------------------------------------------- reading

class LiveLog:
    """A log read at stream offsets: the live file, and the rotated files the
    note indexes for a reader that fell behind it (see the module docstring).

    Blocking: call from a thread.
    """

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.file = open(path, "rb")

    def close(self) -> None:
        self.file.close()

    def start_offset(self, tail_lines: int | None) -> int:
        """The stream offset to read from: the oldest byte kept, or where the
        last `tail_lines` lines start, in one view of the files (a rotation
        meanwhile: planned again)."""
        for _ in range(NOTE_READ_TRIES):
            note = read_rotation_note(self.path)
            if not note.busy:
                plan = _plan(str(self.path), tail_lines)
                starts = dict(note.history)
                offset = None
                if plan:
                    first, file_offset = plan[0]
                    if first == self.path:
                        offset = note.base + file_offset
                    elif first.name in starts:
                        offset = starts[first.name] + file_offset
                    else:  # rotated before files were indexed: from the first indexed one
                        offset = note.history[0][1] if note.history else note.base
                if read_rotation_note(self.path) == note:
                    return note.base if offset is None else offset
            time.sleep(NOTE_RETRY_S)  # a rotation is under way (a reader's thread)
        return read_rotation_note(self.path).base

    def read(self, offset: int, size: int) -> tuple[bytes, int]:
        """(bytes of the stream from `offset`, the offset they start at: later
        than `offset` only when that part is in no file kept any more)."""
        for _ in range(NOTE_READ_TRIES):
            before = read_rotation_note(self.path)
            if not before.busy:
                try:
                    data, start = self._read_at(before, offset, size)
                except FileNotFoundError:  # a rotated file pruned meanwhile
                    data, start = None, offset
                if read_rotation_note(self.path) == before and data is not None:
                    return data, start
            time.sleep(NOTE_RETRY_S)  # a rotation is under way (a reader's thread)
        return b"", offset  # still rotating: nothing this time, the caller polls again

    def _read_at(self, note: RotationNote, offset: int, size: int) -> tuple[bytes, int]:
        if offset >= note.base:
            return os.pread(self.file.fileno(), size, offset - note.base), offset
        # Behind the live file: in the rotated file that holds the offset.
        for name, start in reversed(note.history):
            if start <= offset:
                with open(self.path.parent / name, "rb") as f:
                    f.seek(offset - start)
                    data = f.read(size)
                if data:
                    return data, offset
                break  # past its end: a gap (a piece too old to keep)
        later = [start for _, start in note.history if start > offset] + [note.base]
        return b"", min(later)  # older than anything kept: go on from what is


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
    for newer, f in enumerate(reversed(files)):
        try:
            with open(f, "rb") as handle:
                if wanted is None:
                    plan.append((f, 0))
                    continue
                # A file that ends inside a line (a rotation cut at a block
                # boundary) shares that line with the next one, where it was
                # counted already: one more segment here.
                split = newer > 0 and _ends_inside_a_line(handle)
                offset, found = _tail(handle, wanted + split)
                found -= split
        except FileNotFoundError:
            continue
        plan.append((f, offset))
        wanted -= found
        if wanted <= 0:
            break
    return list(reversed(plan))


def _ends_inside_a_line(f) -> bool:
    end = f.seek(0, os.SEEK_END)
    if not end:
        return False
    f.seek(end - 1)
    return f.read(1) != b"\n"


def _read_chunks(plan: list[tuple[pathlib.Path, int]]) -> Iterator[bytes]:
    for path, offset in plan:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk
        except FileNotFoundError:
            continue


def end_offset(path: str) -> int:
    """The stream offset of the log's end now (blocking): what `read_log(offset=...)`
    starts from to give only what is written after this call (attach)."""
    log = LiveLog(pathlib.Path(path))
    try:
        return log.start_offset(0)
    finally:
        log.close()


async def read_log(path: str, *, tail_lines: int | None = None, limit_bytes: int | None = None,
                   follow: bool = False, running: Callable[[], Awaitable[bool]] | None = None,
                   poll_s: float = 0.2, offset: int | None = None) -> AsyncIterator[bytes]:
    budget = limit_bytes if limit_bytes is not None and limit_bytes > 0 else None
    live = pathlib.Path(path)
    try:
        log = await asyncio.to_thread(LiveLog, live)
    except FileNotFoundError:
        # No live file (removed meanwhile): what was rotated, and nothing to follow.
        plan = await asyncio.to_thread(_plan, path, tail_lines)
        async for chunk in _budgeted(plan, budget):
            yield chunk
        return
    try:
        position = offset if offset is not None else \
            await asyncio.to_thread(log.start_offset, tail_lines)
        ended = False
        while True:
            chunk, start = await asyncio.to_thread(
                log.read, position, CHUNK_BYTES if budget is None else min(CHUNK_BYTES, budget))
            position = max(position, start)  # past what no kept file holds any more
            if chunk:
                position = start + len(chunk)
                if budget is not None:
                    budget -= len(chunk)
                yield chunk
                if budget is not None and budget <= 0:
                    return
                continue
            if ended or not follow or running is None:
                return
            if not await running():
                ended = True  # what it wrote last is in the file now: read to the end
                continue
            await asyncio.sleep(poll_s)  # follow latency
    finally:
        await asyncio.to_thread(log.close)


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
