"""The workloads a chaos run drives, each on its own client, and the watcher.

Contract:
- Every workload has its own kubemu.client.Client and its own Availability:
  one (ok, error) count per second of the run, from every API call it makes.
- ConfigMapWriter writes ConfigMaps `<name>-<k>` round-robin at `rate` per
  second; write number n of a ConfigMap sets data.seq = str(n). It logs every
  acknowledged write (seq, resourceVersion) and every failed one
  (invariants.WriteLog). Creates fall back to patches (and back) when the
  object turns out to exist (or not): a failed write may have been applied.
- DeploymentChurner scales its Deployment within [min, max] and rolls its
  template out `rollouts` times over the fault window (seeded choices).
- JobChurner creates a small Job every `every` seconds.
- Watcher watches the writer's ConfigMaps (label chaos.kubemu/writer), records
  (seq, resourceVersion) per object, re-watches from the last resourceVersion
  after a disconnect, and on 410 Expired relists (counted: it is a failure
  only if a revision then turns out missing, see invariants.check_watch).
  Its Availability counts a list and every event delivered as ok, a broken
  stream as an error.
Every call has the client's deadline; every loop ends at `stop` (an Event).
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any, Callable

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client import Client
from deploy.chaos.invariants import WatchRecord, WriteLog
from deploy.chaos.scenario import Workload

WRITER_LABEL = "chaos.kubemu/writer"
CHURNER_LABEL = "chaos.kubemu/churner"
CALL_TIMEOUT_S = 5.0
# Pods of the churners' workloads: small, so a node is not overcommitted by them.
POD_CPU = "10m"
POD_MEMORY = "16Mi"
WATCH_RESTARTS_MAX = 10_000
JOBS_MAX = 200
# Errors kept per client for the report (the per-second counts keep counting).
ERRORS_MAX = 200


def obj(doc: dict[str, Any]):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    return codec.from_dict(kind.message, doc)


class Availability:
    """Per-second counts of a client's calls: second -> [ok, errors] (seconds from t0)."""

    def __init__(self, name: str, t0: float,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.t0 = t0
        self.clock = clock
        self.seconds: dict[int, list[int]] = {}
        self.errors: list[tuple[float, str]] = []   # (t, error), the first ERRORS_MAX
        self._last_ok_t = 0.0           # the start counts as the last success
        self._last_failure_t = 0.0
        self._failed_since_ok = False
        self._outage_s = 0.0
        self._gap_s = 0.0               # the longest time between two successes

    def record(self, ok: bool, error: str = "") -> None:
        t = self.clock() - self.t0
        bucket = self.seconds.setdefault(int(t), [0, 0])
        bucket[0 if ok else 1] += 1
        if ok:
            if self._failed_since_ok:
                self._outage_s = max(self._outage_s, t - self._last_ok_t)
            self._gap_s = max(self._gap_s, t - self._last_ok_t)
            self._last_ok_t = t
            self._failed_since_ok = False
        else:
            self._failed_since_ok = True
            self._last_failure_t = t
            if len(self.errors) < ERRORS_MAX:
                self.errors.append((round(t, 3), error))

    def longest_outage_s(self) -> float:
        """The longest time between two successful calls with failures between
        them (from the start, or up to the last failure when none followed)."""
        longest = self._outage_s
        if self._failed_since_ok:
            longest = max(longest, self._last_failure_t - self._last_ok_t)
        return round(longest, 1)

    def longest_gap_s(self) -> float:
        """The longest time between two successful calls, failures or not: for
        a client calling continuously (the writer, the watcher), how long it
        waited for the API when calls hung rather than failed (an etcd
        election holds a write for a second or two without an error)."""
        return round(self._gap_s, 1)

    def to_dict(self) -> dict:
        return {"client": self.name,
                "seconds": {str(s): {"ok": v[0], "errors": v[1]}
                            for s, v in sorted(self.seconds.items())},
                "longest_outage_s": self.longest_outage_s(),
                "longest_gap_s": self.longest_gap_s(),
                "errors": [{"t_s": t, "error": e} for t, e in self.errors]}


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:200]


class _Workload:
    def __init__(self, spec: Workload, client: Client, namespace: str, t0: float,
                 rng: random.Random):
        self.spec = spec
        self.client = client
        self.namespace = namespace
        self.availability = Availability(spec.name, t0)
        self.rng = rng

    async def call(self, coro_fn, *args, **kwargs):
        """One API call, counted; re-raises after counting."""
        try:
            result = await coro_fn(*args, **kwargs)
        except (errors.ApiError, OSError, asyncio.TimeoutError) as err:
            self.availability.record(False, _describe(err))
            raise
        self.availability.record(True)
        return result


class ConfigMapWriter(_Workload):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.logs: dict[str, WriteLog] = {self.key(k): WriteLog() for k in range(self.spec.keys)}
        self._seq = {name: 0 for name in self.logs}
        self._exists: dict[str, bool] = {name: False for name in self.logs}

    def key(self, k: int) -> str:
        return f"{self.spec.name}-{k}"

    async def run(self, stop: asyncio.Event) -> None:
        period_s = 1.0 / self.spec.rate_per_s
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            name = self.key(i % self.spec.keys)
            i += 1
            await self.write(name)
            next_at += period_s
            delay_s = next_at - time.monotonic()
            if delay_s < 0:
                next_at = time.monotonic()   # behind (a slow call): do not burst
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)

    async def write(self, name: str) -> None:
        self._seq[name] += 1
        seq = self._seq[name]
        log = self.logs[name]
        try:
            if self._exists[name]:
                try:
                    out = await self.call(self.client.patch, "configmaps", name, self.namespace,
                                          patch={"data": {"seq": str(seq)}})
                except errors.NotFound:
                    self._exists[name] = False
                    raise
            else:
                try:
                    out = await self.call(self.client.create, obj({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": self.namespace,
                                     "labels": {WRITER_LABEL: self.spec.name}},
                        "data": {"seq": str(seq)}}))
                except errors.AlreadyExists:
                    self._exists[name] = True   # an earlier create that failed was applied
                    raise
                self._exists[name] = True
        except (errors.ApiError, OSError, asyncio.TimeoutError):
            log.failed.append(seq)
            return
        log.acked.append(seq)
        log.acked_rv[seq] = out.metadata.resource_version


class DeploymentChurner(_Workload):
    def __init__(self, *args: Any, duration_s: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.duration_s = duration_s
        self.replicas = self.spec.replicas_max
        self.generation = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def manifest(self, replicas: int, generation: int) -> Any:
        labels = {"app": self.name}
        return obj({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {CHURNER_LABEL: self.name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": labels,
                                               "annotations": {"chaos.kubemu/generation":
                                                               str(generation)}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                                      "name": "main", "image": "busybox",
                                      "command": ["sleep", "3600"],
                                      "resources": {"requests": {"cpu": POD_CPU,
                                                                 "memory": POD_MEMORY}}}]}}}})

    async def setup(self) -> None:
        await self.call(self.client.create, self.manifest(self.replicas, 0))

    async def run(self, stop: asyncio.Event) -> None:
        rollouts_left = self.spec.rollouts
        steps = max(1, int(self.duration_s / self.spec.every_s))
        roll_at = set(self.rng.sample(range(steps), min(rollouts_left, steps)))
        step = 0
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.spec.every_s)
            if stop.is_set():
                break
            patch: dict[str, Any] = {"spec": {}}
            replicas = self.rng.randint(self.spec.replicas_min, self.spec.replicas_max)
            patch["spec"]["replicas"] = replicas
            generation = self.generation
            if step in roll_at:
                generation += 1
                patch["spec"]["template"] = {"metadata": {"annotations": {
                    "chaos.kubemu/generation": str(generation)}}}
            step += 1
            try:
                await self.call(self.client.patch, "deployments", self.name, self.namespace,
                                patch=patch)
            except (errors.ApiError, OSError, asyncio.TimeoutError):
                continue   # the spec the invariants check is read back from the server
            self.replicas, self.generation = replicas, generation


class JobChurner(_Workload):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.created: list[str] = []

    def manifest(self, name: str) -> Any:
        return obj({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": self.namespace,
                         "labels": {CHURNER_LABEL: self.spec.name}},
            "spec": {"parallelism": self.spec.parallelism, "completions": self.spec.completions,
                     "backoffLimit": 6,
                     "template": {"spec": {"restartPolicy": "OnFailure",
                                           "terminationGracePeriodSeconds": 1, "containers": [{
                                               "name": "main", "image": "busybox",
                                               "command": ["sh", "-c", "sleep 1"],
                                               "resources": {"requests": {
                                                   "cpu": POD_CPU, "memory": POD_MEMORY}}}]}}}})

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set() and n < JOBS_MAX:
            name = f"{self.spec.name}-{n}"
            n += 1
            try:
                await self.call(self.client.create, self.manifest(name))
                self.created.append(name)
            except errors.AlreadyExists:
                self.created.append(name)
            except (errors.ApiError, OSError, asyncio.TimeoutError):
                pass
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.spec.every_s)


class Watcher:
    """Watches the writer's ConfigMaps; see the module docstring."""

    def __init__(self, client: Client, namespace: str, writer: str, t0: float):
        self.client = client
        self.namespace = namespace
        self.selector = f"{WRITER_LABEL}={writer}"
        self.records: dict[str, WatchRecord] = {}
        self.availability = Availability(f"watch:{writer}", t0)
        self.expired = 0
        self.reconnects = 0
        self.last_rv = ""

    def _see(self, item: Any) -> None:
        name = item.metadata.name
        try:
            seq = int(item.data.get("seq", "0"))
        except ValueError:
            seq = -1
        rv = int(item.metadata.resource_version)
        record = self.records.setdefault(name, WatchRecord())
        if record.seen and record.seen[-1][1] == rv:
            return    # the same revision again (a relist): not a new one
        record.seen.append((seq, rv))

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`, then once more to the end of what is there (the caller
        sets `stop` after the settle, so the final revisions are in)."""
        for _ in range(WATCH_RESTARTS_MAX):
            if stop.is_set():
                return
            try:
                if not self.last_rv:
                    listed = await self.client.list("configmaps", self.namespace,
                                                    label_selector=self.selector)
                    self.availability.record(True)
                    for item in listed.items:
                        self._see(item)
                    self.last_rv = listed.resource_version
                stream = self.client.watch("configmaps", self.namespace,
                                           resource_version=self.last_rv,
                                           label_selector=self.selector, timeout_s=30.0)
                async with contextlib.aclosing(stream):
                    stopper = asyncio.ensure_future(stop.wait())
                    try:
                        while True:
                            nxt = asyncio.ensure_future(anext(stream))
                            done, _ = await asyncio.wait({nxt, stopper},
                                                         return_when=asyncio.FIRST_COMPLETED)
                            if nxt not in done:
                                nxt.cancel()
                                with contextlib.suppress(BaseException):
                                    await nxt
                                return
                            try:
                                event = nxt.result()
                            except StopAsyncIteration:
                                break
                            # Every event delivered is the watch answering, so an
                            # outage runs from the last event before a break to
                            # the first after it, not from the stream's start.
                            self.availability.record(True)
                            if event.type in ("ADDED", "MODIFIED"):
                                self._see(event.object)
                            if event.object is not None and event.object.metadata.resource_version:
                                self.last_rv = event.object.metadata.resource_version
                    finally:
                        stopper.cancel()
            except errors.Expired as err:
                self.expired += 1
                self.availability.record(False, _describe(err))
                self.last_rv = ""       # relist: a revision lost here shows as a gap
            except (errors.ApiError, OSError, asyncio.TimeoutError) as err:
                self.availability.record(False, _describe(err))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
            self.reconnects += 1


def make(spec: Workload, client: Client, namespace: str, t0: float, seed: int,
         duration_s: float) -> _Workload:
    rng = random.Random(f"{seed}/workload/{spec.name}")
    if spec.kind == "configmap-writer":
        return ConfigMapWriter(spec, client, namespace, t0, rng)
    if spec.kind == "deployment-churner":
        return DeploymentChurner(spec, client, namespace, t0, rng, duration_s=duration_s)
    if spec.kind == "job-churner":
        return JobChurner(spec, client, namespace, t0, rng)
    raise AssertionError(f"unknown workload kind {spec.kind!r}")

