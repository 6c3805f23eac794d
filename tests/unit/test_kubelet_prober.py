"""Probe workers: thresholds, initial results, initialDelaySeconds, startup gating.

The probe's outcomes are scripted (kubelet.actions.run_probe is replaced) and
time is the worker's injected sleep/clock, so nothing here waits for real.
"""
from __future__ import annotations

import asyncio

import pytest

from kubelet import actions, prober
from kubemu.api.v1 import core_pb2


class Script:
    """Scripted probe outcomes; the worker is stopped when they run out."""

    def __init__(self, outcomes: list[bool]):
        self.outcomes = list(outcomes)
        self.calls = 0
        self.slept: list[float] = []

    async def run_probe(self, probe, runtime, target):
        self.calls += 1
        if not self.outcomes:
            raise asyncio.CancelledError()
        ok = self.outcomes.pop(0)
        return actions.Outcome(ok, "" if ok else "HTTP probe failed with statuscode: 500")

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


def probe(**fields) -> core_pb2.Probe:
    p = core_pb2.Probe(period_seconds=1, timeout_seconds=1, success_threshold=1,
                       failure_threshold=3)
    for key, value in fields.items():
        setattr(p, key, value)
    p.http_get.path = "/"
    return p


async def run_worker(monkeypatch, kind: str, p: core_pb2.Probe, outcomes: list[bool], *,
                     started=lambda: True, started_at_s: float = 100.0, now_s: float = 100.0):
    script = Script(outcomes)
    monkeypatch.setattr(actions, "run_probe", script.run_probe)
    results: list[tuple[str, bool]] = []
    failures: list[str] = []
    worker = prober.ProbeWorker(
        kind, p, runtime=None, target=actions.Target("c1", "127.9.1.2", {}),
        started_at_s=started_at_s, on_result=lambda k, cid, ok, msg: results.append((k, ok)),
        on_failure=lambda k, cid, msg: failures.append(msg), startup_done=started,
        sleep=script.sleep, clock=lambda: now_s)
    try:
        await worker.run()
    except asyncio.CancelledError:
        pass
    return results, failures, script


@pytest.mark.parametrize("kind,thresholds,outcomes,expected", [
    (prober.READINESS, (1, 3), [True], [True]),
    (prober.READINESS, (2, 3), [True, False, True, True], [True]),
    (prober.READINESS, (1, 2), [True, False, True, False, False], [True, False]),
    (prober.LIVENESS, (1, 3), [False, False, True, False, False, False], [False]),
    (prober.LIVENESS, (1, 1), [True, True, False], [False]),
    (prober.STARTUP, (1, 2), [False, True], [True]),
    (prober.STARTUP, (1, 2), [False, False], [False]),
], ids=["ready-at-once", "ready-after-2-in-a-row", "ready-then-unready", "liveness-3-in-a-row",
        "liveness-1", "startup-succeeds", "startup-fails"])
async def test_thresholds(monkeypatch, kind, thresholds, outcomes, expected):
    success, failure = thresholds
    p = probe(success_threshold=success, failure_threshold=failure)
    results, failures, script = await run_worker(monkeypatch, kind, p, outcomes)
    assert [ok for _, ok in results] == expected
    assert len(failures) == outcomes[:script.calls].count(False)
    assert all(m == "HTTP probe failed with statuscode: 500" for m in failures)


async def test_liveness_and_startup_stop_after_failing(monkeypatch):
    results, _, script = await run_worker(monkeypatch, prober.LIVENESS,
                                          probe(failure_threshold=1), [False, True, True])
    assert results == [(prober.LIVENESS, False)] and script.calls == 1


async def test_initial_delay_counts_from_the_container_start(monkeypatch):
    _, _, script = await run_worker(monkeypatch, prober.READINESS,
                                    probe(initial_delay_seconds=5, period_seconds=2), [True],
                                    started_at_s=100.0, now_s=101.5)
    assert script.slept[0] == 3.5 and script.slept[1:] == [2.0]


async def test_liveness_waits_for_the_startup_probe(monkeypatch):
    started = iter([False, False, True, True])
    _, _, script = await run_worker(monkeypatch, prober.LIVENESS, probe(period_seconds=4),
                                    [True], started=lambda: next(started))
    assert script.slept[:2] == [4.0, 4.0]
    assert script.calls == 2  # one real probe, then the script ran out
