"""Container logs: rotation by copy-and-truncate (at most max-files files, every
rotated one under max-size, no hole in the history, the writer's O_APPEND
descriptor kept), reading across the rotated files (all, --tail, --limit-bytes)
and following through a rotation without repeating what was sent."""
from __future__ import annotations

import asyncio
import os
import stat

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
    path, fd = writer
    os.write(fd, lines(0, written))
    assert logs.rotate(path, 100, max_files, NOW_S)
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
    for first in (0, 10, 20):
        os.write(fd, lines(first, 10))
        logs.rotate(path, 100, 5, NOW_S + first)
    os.write(fd, lines(30, 5))
    data = await read_all(path, **kw)
    if expected is None:
        assert data == lines(0, 3)[:25]
    else:
        assert numbers(data) == expected


@pytest.mark.parametrize("max_bytes,written,put_back_bytes", [
    (100, 12, 20),                # lines 10-11 are put back
    (100_000, 26_000, 76_010),    # 76 KB put back: more than any "remember what was sent"
], ids=["small", "put-back-larger-than-64k"])
async def test_following_goes_on_through_a_rotation_without_repeating_lines(
        writer, max_bytes, written, put_back_bytes):
    path, fd = writer
    os.write(fd, lines(0, written))
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
    assert logs.rotate(path, max_bytes, 3, NOW_S)
    assert path.stat().st_size == put_back_bytes
    os.write(fd, lines(written, 3))
    await wait_for(lambda: numbers(bytes(got))[-1:] == [written + 2], 10,
                   message="the lines after the rotation followed")
    ended.set()
    await asyncio.wait_for(task, 5)
    assert numbers(bytes(got)) == list(range(written + 3))


@pytest.mark.parametrize("read_to,expected", [
    (1000, 100),   # had read all of the old file: skip the whole put-back piece
    (950, 50),     # had read half of the put-back piece
    (800, 0),      # had not reached it
], ids=["all", "half", "behind"])
def test_resume_offset_after_a_rotation(tmp_path, read_to, expected):
    path = tmp_path / "0.log"
    logs.rotation_note(path).write_text("1000 100\n")
    assert logs.rotation_note(path).name == ".0.log.rotation"
    assert logs.resume_offset(path, read_to) == expected
    assert logs.resume_offset(tmp_path / "other.log", read_to) == 0  # no note: from the start


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
