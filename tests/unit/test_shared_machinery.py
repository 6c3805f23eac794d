"""The shared machinery in kubemu/: back-off, time formats, private files,
fault points and supervised background loops."""
from __future__ import annotations

import asyncio
import os
import random
import stat

import pytest

from kubemu import fileutil, timefmt
from kubemu.backoff import Exponential, exponential_s
from kubemu.client.wait import wait_for
from kubemu.faults import Faults, InjectedFault
from kubemu.loops import Loops


# ------------------------------------------------------------------ back-off

@pytest.mark.parametrize("attempt,expected", [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.4),
                                              (6, 2.0), (1000, 2.0)],
                         ids=["none", "first", "second", "third", "capped", "huge"])
def test_exponential_s(attempt, expected):
    assert exponential_s(attempt, 0.1, 2.0) == pytest.approx(expected)


def test_exponential_jitter_stays_within_half_and_whole_delay():
    backoff = Exponential(1.0, 8.0, rng=random.Random(7))
    for delay_s in (1.0, 2.0, 4.0, 8.0, 8.0):
        got = backoff.next_s()
        assert delay_s / 2 <= got <= delay_s
    backoff.reset()
    assert 0.5 <= backoff.next_s() <= 1.0


def test_exponential_without_jitter_is_exact():
    backoff = Exponential(0.5, 30.0, jitter=0)
    assert [backoff.next_s() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize("args", [(0, 1), (2, 1), (1, 2, 1.5)], ids=["zero", "max<base", "jitter>1"])
def test_exponential_rejects_bad_bounds(args):
    with pytest.raises(ValueError):
        Exponential(*args[:2], jitter=args[2] if len(args) > 2 else 0.5)


# ------------------------------------------------------------------ time formats

def test_rfc3339_forms():
    t = 1_764_474_594.123456
    assert timefmt.rfc3339(t) == "2025-11-30T03:49:54Z"
    assert timefmt.rfc3339_micro(t) == "2025-11-30T03:49:54.123456Z"
    assert timefmt.rfc3339_nano(1_764_474_594_000_000_042) == "2025-11-30T03:49:54.000000042Z"


@pytest.mark.parametrize("text,expected", [
    ("2025-11-30T03:49:54Z", 1_764_474_594.0),
    ("2025-11-30T03:49:54.5Z", 1_764_474_594.5),
    ("2025-11-30T03:49:54.000000042Z", 1_764_474_594.000000042),
    ("2025-11-30T04:49:54+01:00", 1_764_474_594.0),
], ids=["seconds", "fraction", "nanos", "offset"])
def test_parse_rfc3339(text, expected):
    assert timefmt.parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["yesterday", "2025-11-30T03:49:54", "2025-11-30T03:49:54.Z"])
def test_parse_rfc3339_refuses(text):
    with pytest.raises(ValueError):
        timefmt.parse_rfc3339(text)


@pytest.mark.parametrize("seconds,expected", [
    (0, "0s"), (0.25, "250ms"), (0.0015, "1.5ms"), (0.000002, "2µs"), (1e-7, "100ns"),
    (10, "10s"), (1.532, "1.532s"), (80, "1m20s"), (80.5, "1m20.5s"), (300, "5m0s"),
    (3600, "1h0m0s"), (3725.25, "1h2m5.25s"), (-1.5, "-1.5s")])
def test_go_duration(seconds, expected):
    assert timefmt.go_duration(seconds) == expected


# ------------------------------------------------------------------ private files

def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_dir_and_files_ignore_a_permissive_umask(tmp_path):
    old = os.umask(0o022)
    try:
        made = fileutil.private_dir(tmp_path / "a" / "b")
        fileutil.atomic_write(made / "state.json", '{"x": 1}')
        log = fileutil.private_file(made / "out.log")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a") == 0o700 and _mode(made) == 0o700
    assert _mode(made / "state.json") == 0o600 and _mode(log) == 0o600
    assert (made / "state.json").read_text() == '{"x": 1}'
    assert sorted(p.name for p in made.iterdir()) == ["out.log", "state.json"]


def test_private_dir_tightens_an_existing_directory(tmp_path):
    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    fileutil.private_dir(tmp_path / "open")
    assert _mode(tmp_path / "open") == 0o700


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "f"
    fileutil.atomic_write(target, b"one")
    fileutil.atomic_write(target, b"two", mode=0o640, fsync=False)
    assert target.read_bytes() == b"two" and _mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


# ------------------------------------------------------------------ fault points

def test_fault_point_raises_while_its_file_exists(tmp_path):
    faults = Faults(tmp_path)
    faults.check("etcd-watch-pods")
    (tmp_path / "etcd-watch-pods").touch()
    with pytest.raises(InjectedFault, match="etcd-watch-pods"):
        faults.check("etcd-watch-pods")
    faults.check("etcd-watch-nodes")
    (tmp_path / "etcd-watch-pods").unlink()
    faults.check("etcd-watch-pods")


def test_no_fault_directory_means_no_faults():
    assert not Faults(None).active("anything")


# ------------------------------------------------------------------ loops

class _Flaky:
    """A loop body that fails `failures` times, then runs until cancelled."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0
        self.running = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise KeyError(f"boom {self.calls}")
        self.running.set()
        await asyncio.Event().wait()


async def test_a_failing_loop_is_restarted_and_reported_down_meanwhile():
    reports: list[tuple[str, bool]] = []
    loops = Loops(on_health=lambda name, ok: reports.append((name, ok)),
                  backoff_s_base=0.01, backoff_s_max=0.02)
    body = _Flaky(failures=3)
    loops.spawn("cache-pods", body)
    try:
        await wait_for(body.running.is_set, 5)
        assert body.calls == 4
        assert loops.healthy
        # Down after each failure, up again when restarted; a change is reported once.
        assert reports == [("cache-pods", False), ("cache-pods", True)] * 3
        status = loops.status()["cache-pods"]
        assert (status.failures, status.restarts, status.running) == (3, 3, True)
        assert status.last_error == "KeyError: 'boom 3'"
    finally:
        await loops.stop()


async def test_health_stays_down_while_a_loop_keeps_failing():
    loops = Loops(backoff_s_base=0.01, backoff_s_max=0.01)
    stop = asyncio.Event()

    async def broken() -> None:
        if not stop.is_set():
            raise RuntimeError("store unreachable")
        await asyncio.Event().wait()

    loops.spawn("watch", broken)
    try:
        await wait_for(lambda: loops.status()["watch"].failures >= 3, 5)
        assert not loops.healthy and loops.down == {"watch"}
        stop.set()
        await wait_for(lambda: loops.healthy, 5)
    finally:
        await loops.stop()


async def test_a_forever_loop_that_returns_is_restarted_a_job_is_not():
    loops = Loops(backoff_s_base=0.01, backoff_s_max=0.01)
    runs = {"forever": 0, "job": 0}

    async def forever() -> None:
        runs["forever"] += 1

    async def job() -> None:
        runs["job"] += 1

    loops.spawn("forever", forever)
    loops.spawn("job", job, forever=False)
    try:
        await wait_for(lambda: runs["forever"] >= 3, 5)
        await wait_for(lambda: loops.status()["job"].done, 5)
        assert runs["job"] == 1
        assert loops.status()["forever"].last_error == "the loop returned"
    finally:
        await loops.stop()


async def test_stop_cancels_every_loop():
    loops = Loops()
    body = _Flaky(failures=0)
    task = loops.spawn("x", body)
    await wait_for(body.running.is_set, 5)
    await loops.stop()
    assert task.cancelled()


async def test_spawning_a_running_name_twice_is_refused():
    loops = Loops()
    loops.spawn("x", _Flaky(0))
    try:
        with pytest.raises(ValueError, match="already running"):
            loops.spawn("x", _Flaky(0))
    finally:
        await loops.stop()
