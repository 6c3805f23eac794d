"""Wait for a condition instead of sleeping.

`await wait_for(predicate, timeout_s)` calls `predicate` (sync, or async and
awaited) every `interval_s` until it returns something truthy, and returns
that value. When time runs out it raises WaitTimeout (an AssertionError, so a
test reads as a failed assertion) saying the last value the predicate
returned or the last exception it raised. An exception from the predicate is
not fatal: the condition may simply not hold yet (e.g. NotFound). An async
predicate still running when time is up is cancelled.

`wait_for_sync` is the same for code without an event loop (sync predicates).

Time comes from `clock` when given (seconds, monotonic): tests of this module
pass a fake one so that a timeout means a number of checks, not a stretch of
real time on a possibly loaded machine.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Callable

_NOTHING = object()


class WaitTimeout(AssertionError):
    def __init__(self, message: str, *, last_value: Any = None,
                 last_exception: BaseException | None = None):
        super().__init__(message)
        self.last_value = last_value
        self.last_exception = last_exception


def _describe(predicate: Callable[..., Any]) -> str:
    return getattr(predicate, "__qualname__", None) or repr(predicate)


def _timeout_error(predicate: Callable[..., Any], timeout_s: float, message: str,
                   last_value: Any, last_exception: BaseException | None,
                   still_running: bool) -> WaitTimeout:
    text = f"condition {_describe(predicate)} not met within {timeout_s:g}s"
    if message:
        text = f"{message}: {text}"
    if still_running:
        text += "; the predicate was still running when time ran out"
    if last_exception is not None:
        text += f"; last exception: {type(last_exception).__name__}: {last_exception}"
    elif last_value is not _NOTHING:
        text += f"; last value: {last_value!r}"
    return WaitTimeout(text, last_value=None if last_value is _NOTHING else last_value,
                       last_exception=last_exception)


def _check_args(timeout_s: float, interval_s: float) -> None:
    if timeout_s < 0:
        raise ValueError(f"wait_for: timeout_s must be >= 0, got {timeout_s}")
    if interval_s <= 0:
        raise ValueError(f"wait_for: interval_s must be > 0, got {interval_s}")


class _StillRunning(Exception):
    """An async predicate had not returned by the deadline."""


async def _await_within(awaitable: Any, remaining_s: float) -> Any:
    try:
        async with asyncio.timeout(max(0.0, remaining_s)) as scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise _StillRunning() from None
        raise  # the predicate's own TimeoutError: just a failed check


async def wait_for(predicate: Callable[[], Any], timeout_s: float, *, interval_s: float = 0.05,
                   message: str = "", clock: Callable[[], float] | None = None) -> Any:
    """The first truthy value `predicate()` returns; WaitTimeout after `timeout_s`."""
    _check_args(timeout_s, interval_s)
    now = clock or asyncio.get_running_loop().time
    deadline = now() + timeout_s
    last_value: Any = _NOTHING
    last_exception: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await _await_within(value, deadline - now())
            if value:
                return value
            last_value, last_exception = value, None
        except _StillRunning:
            raise _timeout_error(predicate, timeout_s, message, last_value, last_exception,
                                 still_running=True) from None
        except Exception as exc:  # the condition may just not hold yet (e.g. NotFound)
            last_exception = exc
        remaining_s = deadline - now()
        if remaining_s <= 0:
            raise _timeout_error(predicate, timeout_s, message, last_value, last_exception,
                                 still_running=False)
        await asyncio.sleep(min(interval_s, remaining_s))


def wait_for_sync(predicate: Callable[[], Any], timeout_s: float, *, interval_s: float = 0.05,
                  message: str = "", clock: Callable[[], float] = time.monotonic) -> Any:
    """wait_for for code without an event loop; `predicate` must be sync."""
    _check_args(timeout_s, interval_s)
    deadline = clock() + timeout_s
    last_value: Any = _NOTHING
    last_exception: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # the condition may just not hold yet
            last_exception = exc
        else:
            if inspect.isawaitable(value):
                if inspect.iscoroutine(value):
                    value.close()  # never awaited: close it to avoid a warning
                raise TypeError("wait_for_sync: the predicate returned an awaitable; "
                                "use `await wait_for(...)`")
            if value:
                return value
            last_value, last_exception = value, None
        remaining_s = deadline - clock()
        if remaining_s <= 0:
            raise _timeout_error(predicate, timeout_s, message, last_value, last_exception,
                                 still_running=False)
        time.sleep(min(interval_s, remaining_s))
