"""Probe workers: one asyncio task per (container instance, probe kind).

Kubernetes semantics: nothing is probed before initialDelaySeconds (counted
from the container's start); then a probe runs every periodSeconds with
timeoutSeconds. The result flips to success after successThreshold successes
in a row and to failure after failureThreshold failures in a row. Initial
results: readiness failure (not ready), liveness success, startup failure
(not started). Liveness and readiness wait until the startup probe has
succeeded. Each failed probe is reported (an Unhealthy event); a flip is
reported to `on_result`, which makes the pod worker act: a failed liveness or
startup probe kills the container (the worker stops then: the next instance
gets new workers), readiness sets the container's ready flag. A startup
probe that succeeded is done.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import structlog
from google.protobuf.message import Message

from kubelet import actions, cri

log = structlog.get_logger()

STARTUP = "Startup"
LIVENESS = "Liveness"
READINESS = "Readiness"

# (kind, container id, ok, message)
ResultFn = Callable[[str, str, bool, str], None]
# (kind, container id, message): one failed probe
FailureFn = Callable[[str, str, str], None]


class ProbeWorker:
    def __init__(self, kind: str, probe: Message, runtime: cri.RuntimeClient,
                 target: actions.Target, started_at_s: float, *, on_result: ResultFn,
                 on_failure: FailureFn, startup_done: Callable[[], bool],
                 initial: bool | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time):
        self.kind = kind
        self.probe = probe
        self.runtime = runtime
        self.target = target
        self.started_at_s = started_at_s
        self.on_result = on_result
        self.on_failure = on_failure
        self.startup_done = startup_done
        self.result = initial if initial is not None else (kind == LIVENESS)
        self.task: asyncio.Task | None = None
        self.sleep = sleep
        self.clock = clock

    def start(self) -> None:
        self.task = asyncio.create_task(
            self.run(), name=f"probe-{self.kind}-{self.target.container_id[:12]}")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        p = self.probe
        period_s = float(p.period_seconds or 10)
        success_threshold = p.success_threshold or 1
        failure_threshold = p.failure_threshold or 3
        delay_s = float(p.initial_delay_seconds) - (self.clock() - self.started_at_s)
        if delay_s > 0:
            await self.sleep(delay_s)  # initialDelaySeconds
        successes = failures = 0
        while True:
            if self.kind != STARTUP and not self.startup_done():
                await self.sleep(period_s)  # not probed until the startup probe succeeds
                continue
            try:
                outcome = await actions.run_probe(p, self.runtime, self.target)
            except cri.RuntimeUnavailable:
                outcome = None  # no answer is no result: try again next period
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a bug in one probe must not stop the others
                log.exception("probe failed to run", kind=self.kind,
                              container=self.target.container_id[:12])
                outcome = actions.Outcome(False, f"probe error: {err}")
            if outcome is not None:
                if outcome.ok:
                    successes, failures = successes + 1, 0
                else:
                    successes, failures = 0, failures + 1
                    self.on_failure(self.kind, self.target.container_id,
                                    outcome.message.strip())
                if outcome.ok and successes >= success_threshold and not self.result:
                    self.result = True
                    self.on_result(self.kind, self.target.container_id, True, "")
                elif not outcome.ok and failures >= failure_threshold and self.result \
                        is not False:
                    self.result = False
                    self.on_result(self.kind, self.target.container_id, False,
                                   outcome.message.strip())
                    if self.kind in (LIVENESS, STARTUP):
                        return  # the container is killed; its successor gets a new worker
                elif not outcome.ok and failures >= failure_threshold and \
                        self.kind in (LIVENESS, STARTUP):
                    self.on_result(self.kind, self.target.container_id, False,
                                   outcome.message.strip())
                    return
                if self.kind == STARTUP and self.result:
                    return  # started: the startup probe is done
            await self.sleep(period_s)  # periodSeconds
