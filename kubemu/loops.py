"""Background loops that cannot die silently.

A component's long-running tasks (a watch cache's etcd watch, a kubelet's
PLEG, informers, controller workers) run under one `Loops` object:

- `spawn(name, fn)` runs `await fn()` in a task named `name`.
- Any exception from it (but cancellation) is logged with the loop's name and
  traceback, the loop counts as *down*, and `fn` is called again after a
  capped exponential back-off with jitter (`kubemu.backoff.Exponential`). The
  back-off starts over once a run has lasted `stable_s`.
- A loop that is meant to run until stopped (`forever=True`, the default) and
  returns is treated as failed, too: returning is a bug of its own kind.
  `forever=False` is for a job that ends (a bootstrap step): it is restarted
  only after an exception.
- While any loop is down, `healthy` is False and `on_health(name, ok)` has
  been called with ok=False for it (and ok=True once it is running again):
  components wire it to their health endpoint (`kubemu.server.Server.set_check`)
  so that the process reports NOT_SERVING while a loop it owns is down.
- `cancel(name)` stops one loop, `stop()` every loop, each waiting for them
  (bounded by `stop_timeout_s`); a stopped loop no longer counts as down.

Failures, restarts and the last error per loop are counted (`status()`), for
logs, metrics and tests. Everything runs on the owning event loop.
"""
from __future__ import annotations

import asyncio
import dataclasses
import inspect
import random
import time
from typing import Any, Awaitable, Callable

import structlog

from kubemu.backoff import Exponential

log = structlog.get_logger("kubemu.loops")

LoopFn = Callable[[], Awaitable[Any]]
HealthFn = Callable[[str, bool], Any]

BACKOFF_S_BASE = 0.1
BACKOFF_S_MAX = 10.0
STABLE_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclasses.dataclass
class LoopStatus:
    name: str
    running: bool = False
    done: bool = False
    failures: int = 0
    restarts: int = 0
    last_error: str = ""


class Loops:
    def __init__(self, *, on_health: HealthFn | None = None,
                 backoff_s_base: float = BACKOFF_S_BASE, backoff_s_max: float = BACKOFF_S_MAX,
                 stable_s: float = STABLE_S, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.on_health = on_health
        self.backoff_s_base = backoff_s_base
        self.backoff_s_max = backoff_s_max
        self.stable_s = stable_s
        self._rng = rng or random.Random()
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._status: dict[str, LoopStatus] = {}
        self._down: set[str] = set()

    @property
    def healthy(self) -> bool:
        return not self._down

    @property
    def down(self) -> frozenset[str]:
        return frozenset(self._down)

    def status(self) -> dict[str, LoopStatus]:
        return {name: dataclasses.replace(s) for name, s in self._status.items()}

    def spawn(self, name: str, fn: LoopFn, *, forever: bool = True) -> asyncio.Task[None]:
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"Loops: a loop named {name!r} is already running")
        self._status[name] = LoopStatus(name)
        task = asyncio.get_running_loop().create_task(self._supervise(name, fn, forever),
                                                      name=name)
        self._tasks[name] = task
        return task

    async def cancel(self, name: str, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop one loop (no longer counted as down)."""
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=stop_timeout_s)
        await self._report(name, True)

    async def stop(self, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=stop_timeout_s)
        self._tasks.clear()
        for name in list(self._down):
            await self._report(name, True)

    async def _report(self, name: str, ok: bool) -> None:
        if ok:
            if name not in self._down:
                return
            self._down.discard(name)
        else:
            if name in self._down:
                return
            self._down.add(name)
        if self.on_health is None:
            return
        try:
            result = self.on_health(name, ok)
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: BLE001 - health reporting must not kill the supervisor
            log.exception("loop health report failed", loop=name)

    async def _supervise(self, name: str, fn: LoopFn, forever: bool) -> None:
        status = self._status[name]
        backoff = Exponential(self.backoff_s_base, self.backoff_s_max, rng=self._rng)
        while True:
            started = self._clock()
            status.running = True
            await self._report(name, True)
            try:
                await fn()
            except asyncio.CancelledError:
                status.running = False
                raise
            except Exception as exc:  # noqa: BLE001 - the point: log, report, restart
                error = f"{type(exc).__name__}: {exc}"
                log.error("loop failed; restarting", loop=name, error=error, exc_info=True)
            else:
                if not forever:
                    status.running, status.done = False, True
                    return
                error = "the loop returned"
                log.error("loop ended on its own; restarting", loop=name)
            status.running = False
            status.failures += 1
            status.last_error = error
            if self._clock() - started >= self.stable_s:
                backoff.reset()
            await self._report(name, False)
            await asyncio.sleep(backoff.next_s())  # the restart back-off itself
            status.restarts += 1
