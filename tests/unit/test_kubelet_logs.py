"""Container logs: rotation by copy-and-truncate (at most max-files files, every
rotated one under max-size, no hole in the history, the writer's O_APPEND
descriptor kept), reading across the rotated files (all, --tail, --limit-bytes)
and following through a rotation without repeating what was sent."""
from __future__ import annotations

import asyncio
import os
import stat
import threading

import pytest

from kubelet import logs
from kubemu.client.wait import wait_for

NOW_S = 1_700_000_000.0


def lines(first: int, count: int) -> bytes:
    return b"".join(b"line %04d\n" % i for i in range(first, first + count))  # 10 bytes each


def numbers(data: bytes) -> list[int]:
    return [int(line.split()[1]) for line in data.decode().splitlines()]


@pytest.fixture
def writer(tmp_path):
    """A container's stdout: an O_APPEND descriptor on 0.log, as the runtime opens it."""
    path = tmp_path / "main" / "0.log"
    path.parent.mkdir()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    yield path, fd
    os.close(fd)


async def read_all(path, **kw) -> bytes:
    return b"".join([chunk async for chunk in logs.read_log(str(path), **kw)])


def test_nothing_happens_below_max_size(writer):
    path, fd = writer
    os.write(fd, lines(0, 9))
    assert not logs.rotate(path, 100, 3, NOW_S)
    assert path.read_bytes() == lines(0, 9) and logs.rotated_files(path) == []


@pytest.mark.parametrize("written,max_files,expected_rotated,live", [
    (10, 3, [[0, 9]], []),                          # exactly full: all of it goes
    (12, 3, [[0, 9]], [10, 11]),                    # the lines after the last full piece stay
    (37, 3, [[17, 26], [27, 36]], []),              # several pieces: the newest max_files-1
    (1000, 2, [[990, 999]], []),                    # a burst: only what can be kept is read
], ids=["full", "with-rest", "pieces", "burst"])
def test_rotation_keeps_max_files_under_max_size_without_holes(writer, written, max_files,
                                                               expected_rotated, live):
    """Copy-and-truncate (filesystems that cannot collapse a range)."""
    path, fd = writer
    os.write(fd, lines(0, written))
    assert logs.rotate(path, 100, max_files, NOW_S, collapse=False)
    rotated = logs.rotated_files(path)
    assert [[numbers(f.read_bytes())[0], numbers(f.read_bytes())[-1]] for f in rotated] == \
        expected_rotated
    assert all(f.stat().st_size <= 100 for f in rotated)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in rotated)
    kept = numbers(path.read_bytes())
    assert (kept[:1] + kept[-1:] if kept else []) == live
    # The container's descriptor writes on at the new end of the same file.
    os.write(fd, lines(written, 1))
    assert numbers(path.read_bytes())[-1] == written


def test_older_rotations_are_dropped_beyond_max_files(writer):
    path, fd = writer
    for round_ in range(5):
        os.write(fd, lines(round_ * 10, 10))
        assert logs.rotate(path, 100, 3, NOW_S + round_)
        assert len(logs.rotated_files(path)) <= 2
    names = [f.name for f in logs.rotated_files(path)]
    assert names == ["0.log.20231114-221323", "0.log.20231114-221324"]
    assert numbers(b"".join(f.read_bytes() for f in logs.rotated_files(path))) == \
        list(range(30, 50))


def test_rotations_in_one_second_get_a_counter_and_keep_their_order(writer):
    path, fd = writer
    for round_ in range(3):
        os.write(fd, lines(round_ * 10, 10))
        logs.rotate(path, 100, 5, NOW_S)
    assert [f.name for f in logs.rotated_files(path)] == [
        "0.log.20231114-221320", "0.log.20231114-221320.1", "0.log.20231114-221320.2"]
    assert numbers(b"".join(f.read_bytes() for f in logs.rotated_files(path))) == \
        list(range(30))


@pytest.mark.parametrize("kw,expected", [
    ({}, list(range(0, 35))),
    ({"tail_lines": 3}, [32, 33, 34]),
    ({"tail_lines": 12}, list(range(23, 35))),     # across the live file and a rotated one
    ({"tail_lines": 500}, list(range(0, 35))),
    ({"limit_bytes": 25}, None),
], ids=["all", "tail-live", "tail-across", "tail-more-than-all", "limit"])
async def test_reading_goes_across_rotated_files(writer, kw, expected):
    path, fd = writer

    def write_and_rotate() -> None:  # file work, off the test's event loop
        for first in (0, 10, 20):
            os.write(fd, lines(first, 10))
            logs.rotate(path, 100, 5, NOW_S + first)
        os.write(fd, lines(30, 5))
    await asyncio.to_thread(write_and_rotate)
    data = await read_all(path, **kw)
    if expected is None:
        assert data == lines(0, 3)[:25]
    else:
        assert numbers(data) == expected


@pytest.mark.parametrize("max_bytes,written,collapse", [
    (100, 12, False),             # copy-and-truncate: lines 10-11 are put back
    (100_000, 26_000, False),     # 76 KB put back
    (100_000, 26_000, True),      # the first whole blocks collapsed out of the file
], ids=["copy-truncate-small", "copy-truncate-large", "collapse"])
async def test_following_goes_on_through_a_rotation_without_repeating_lines(
        writer, max_bytes, written, collapse):
    path, fd = writer
    await asyncio.to_thread(os.write, fd, lines(0, written))
    got = bytearray()
    ended = asyncio.Event()

    async def running() -> bool:
        return not ended.is_set()

    async def follow():
        async for chunk in logs.read_log(str(path), follow=True, running=running, poll_s=0.01):
            got.extend(chunk)

    task = asyncio.create_task(follow())
    await wait_for(lambda: len(got) == len(lines(0, written)), 10,
                   message="the first lines followed")
    assert await asyncio.to_thread(logs.rotate, path, max_bytes, 3, NOW_S, collapse=collapse)
    assert path.stat().st_size < len(lines(0, written))
    await asyncio.to_thread(os.write, fd, lines(written, 3))
    await wait_for(lambda: numbers(bytes(got))[-1:] == [written + 2], 10,
                   message="the lines after the rotation followed")
    ended.set()
    await asyncio.wait_for(task, 5)
    assert numbers(bytes(got)) == list(range(written + 3))


def test_the_note_says_where_the_live_file_starts_in_the_stream(writer):
    path, fd = writer
    assert logs.read_rotation_note(path) == logs.RotationNote(0, 0, False)  # never rotated
    os.write(fd, lines(0, 2000))  # 20 KB
    assert logs.rotate(path, 4096, 10, NOW_S)
    note = logs.read_rotation_note(path)
    assert logs.rotation_note(path).name == ".0.log.rotation" and not note.busy
    whole = b"".join(f.read_bytes() for f in logs.rotated_files(path))
    assert note.base == len(whole) and whole + path.read_bytes() == lines(0, 2000)
    assert all(f.stat().st_size <= 4096 for f in logs.rotated_files(path))


async def test_a_follower_loses_and_repeats_nothing_while_a_busy_writer_is_rotated(writer):
    """The writer never stops while the log is rotated many times (by collapsing
    its first blocks, as on ext4 and XFS); the follower must get every line
    exactly once, in order. (Copy-and-truncate, where the filesystem cannot
    collapse, has the documented window in which lines are lost or reordered.)"""
    collapse = True
    path, fd = writer
    total = 40_000
    stop = threading.Event()
    rotated = threading.Condition()
    rotations = [0]

    def write() -> None:
        # Writes race the rotations; every 20 writes it lets one rotation finish
        # first, so that there are many of them (a handshake, not a sleep).
        for batch, first in enumerate(range(0, total, 100)):
            os.write(fd, lines(first, 100))
            if batch % 20 == 19:
                with rotated:
                    seen = rotations[0]
                    rotated.wait_for(lambda: rotations[0] > seen, timeout=10)
        stop.set()

    def rotate_while_writing() -> int:
        while not stop.is_set():
            if logs.rotate(path, 8_000, 500, NOW_S, collapse=collapse):
                with rotated:
                    rotations[0] += 1
                    rotated.notify_all()
        return rotations[0]

    got = bytearray()
    finished = asyncio.Event()

    async def running() -> bool:
        return not finished.is_set()

    async def follow():
        async for chunk in logs.read_log(str(path), follow=True, running=running, poll_s=0.001):
            got.extend(chunk)

    task = asyncio.create_task(follow())
    writer_thread = threading.Thread(target=write)
    writer_thread.start()
    rotations = await asyncio.to_thread(rotate_while_writing)
    await asyncio.to_thread(writer_thread.join, 30)
    await wait_for(lambda: numbers(bytes(got))[-1:] == [total - 1] if got else False, 30,
                   message="the follower reached the last line")
    finished.set()
    await asyncio.wait_for(task, 10)
    seen = numbers(bytes(got))
    assert rotations > 3
    assert seen == list(range(total))


def test_remove_log_takes_the_rotated_files_too(writer):
    path, fd = writer
    os.write(fd, lines(0, 25))
    logs.rotate(path, 100, 5, NOW_S)
    logs.remove_log(path)
    assert list(path.parent.iterdir()) == []


def test_logged_attempts(tmp_path):
    for name in ("0.log", "3.log", "3.log.20231114-221320", "x.log", "2.txt"):
        (tmp_path / name).touch()
    assert sorted(logs.logged_attempts(tmp_path)) == [0, 3]
    assert logs.logged_attempts(tmp_path / "missing") == []


def test_bad_limits_are_refused(writer):
    path, _ = writer
    with pytest.raises(ValueError):
        logs.rotate(path, 100, 1, NOW_S)
    with pytest.raises(ValueError):
        logs.rotate(path, 0, 3, NOW_S)


@pytest.mark.parametrize("tail", [1, 3, 7, 12, 40])
async def test_tail_counts_a_line_split_between_two_files_once(writer, tail):
    """A collapse rotation cuts at a block boundary, inside a line: --tail
    must count that line once."""
    path, fd = writer
    await asyncio.to_thread(os.write, fd, lines(0, 500))  # 5,000 bytes: the first 4,096 go
    assert await asyncio.to_thread(logs.rotate, path, 4096, 5, NOW_S)
    [rotated] = logs.rotated_files(path)
    assert not rotated.read_bytes().endswith(b"\n")  # the cut is inside a line
    os.write(fd, lines(500, 5))
    assert numbers(await read_all(path, tail_lines=tail)) == list(range(505 - tail, 505))
