"""wait_for / wait_for_sync: return the first truthy value, or fail saying what was seen."""
from __future__ import annotations

import asyncio
import itertools

import pytest

from kubemu.client.wait import WaitTimeout, wait_for, wait_for_sync


class FakeClock:
    """Time that moves only when a check happens: a timeout is a number of checks."""

    def __init__(self, step_s: float = 0.01):
        self.now_s = 0.0
        self.step_s = step_s

    def __call__(self) -> float:
        return self.now_s

    def tick(self) -> None:
        self.now_s += self.step_s


def counter_until(n: int, value="done"):
    """A sync predicate that returns None for its first `n` calls, then `value`."""
    calls = itertools.count()

    def predicate():
        return value if next(calls) >= n else None
    return predicate


async def test_returns_first_truthy_value_of_sync_predicate():
    assert await wait_for(counter_until(3, value={"ready": True}), 5, interval_s=0.001) == {
        "ready": True}


async def test_awaits_async_predicate():
    seen = []

    async def predicate():
        seen.append(1)
        return len(seen) >= 2 and "ok"

    assert await wait_for(predicate, 5, interval_s=0.001) == "ok"
    assert len(seen) == 2


async def test_checks_at_least_once_with_zero_timeout():
    assert await wait_for(lambda: 42, 0) == 42


async def test_timeout_reports_last_falsy_object_and_message():
    state = {"phase": "Pending", "count": 0}
    clock = FakeClock()

    def ready():
        state["count"] += 1
        clock.tick()
        return state["phase"] == "Running"

    with pytest.raises(WaitTimeout) as info:
        await wait_for(lambda: ready() or "", 0.05, interval_s=0.001, message="pod web-0 Running",
                       clock=clock)
    text = str(info.value)
    assert text.startswith("pod web-0 Running: condition")
    assert "not met within 0.05s" in text
    assert "last value: ''" in text
    assert state["count"] == 5  # one check per 0.01 s of the fake clock
    assert isinstance(info.value, AssertionError)


async def test_timeout_reports_last_exception():
    def predicate():
        raise KeyError("web-0")

    with pytest.raises(WaitTimeout) as info:
        await wait_for(predicate, 0.03, interval_s=0.01)  # any number of checks will do
    assert "last exception: KeyError: 'web-0'" in str(info.value)
    assert isinstance(info.value.last_exception, KeyError)


async def test_exception_then_value_reports_the_value():
    outcomes = itertools.chain([ValueError("boom")], itertools.repeat(0))
    clock = FakeClock()

    def predicate():
        clock.tick()
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(WaitTimeout) as info:
        await wait_for(predicate, 0.05, interval_s=0.001, clock=clock)
    assert "last value: 0" in str(info.value)
    assert info.value.last_exception is None


async def test_exceptions_are_retried_until_success():
    attempts = iter([RuntimeError("not yet"), RuntimeError("not yet"), "up"])

    def predicate():
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await wait_for(predicate, 5, interval_s=0.001) == "up"


async def test_hanging_async_predicate_is_bounded_by_timeout():
    started = asyncio.Event()

    async def predicate():
        started.set()
        await asyncio.Event().wait()  # never returns

    with pytest.raises(WaitTimeout, match="still running"):
        await asyncio.wait_for(wait_for(predicate, 0.05), 5)
    assert started.is_set()


async def test_predicate_timeout_error_is_just_a_failed_check():
    calls = []

    async def predicate():
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("rpc deadline")
        return True

    assert await wait_for(predicate, 5, interval_s=0.001) is True


@pytest.mark.parametrize("kwargs", [
    {"timeout_s": -1}, {"timeout_s": 1, "interval_s": 0},
], ids=["negative-timeout", "zero-interval"])
async def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        await wait_for(lambda: True, **kwargs)


def test_sync_variant_returns_value():
    assert wait_for_sync(counter_until(2, value="yes"), 5, interval_s=0.001) == "yes"


def test_sync_variant_times_out_with_last_value():
    with pytest.raises(WaitTimeout, match=r"last value: \[\]"):
        wait_for_sync(lambda: [], 0.03, interval_s=0.01)


def test_sync_variant_reports_last_exception():
    def predicate():
        raise ConnectionRefusedError("127.0.0.1:1")

    with pytest.raises(WaitTimeout, match="last exception: ConnectionRefusedError"):
        wait_for_sync(predicate, 0.03, interval_s=0.01)


def test_sync_variant_rejects_async_predicate():
    async def predicate():
        return True

    with pytest.raises(TypeError, match="use `await wait_for"):
        wait_for_sync(predicate, 1)
