"""A chaos run: cluster, plan, workloads and faults, settle, invariants, report.

Contract:
- Without a home, the runner brings up its own cluster (the scenario's
  shape) in a fresh home through `kubemu up -d` (so the cluster has a real
  supervisor serving the control API), and takes it down at the end, checking
  that no process of the home is left. With a home it uses the cluster there
  and leaves it running (the "no process left" invariant is then skipped).
- The fault timeline is computed before the first fault (schedule.timeline)
  from the scenario, the seed and the process names the supervisor reports,
  and printed. Faults go through kubemu.control.SupervisorClient; a timed
  fault (pause, stop, partition) is undone by the runner at `at + for`
  (resume, start, heal), and everything is undone before the settle.
- It refuses to kill, pause or stop an etcd member of an etcd with the
  3.5.0-3.5.2 data-inconsistency bug unless allow_affected_etcd.
- Every wait is bounded: the fault window by the scenario's duration, the
  settle by its `settle`, each API call by its client's deadline.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, TextIO

from kubemu import cluster_home
from kubemu.api import codec, errors
from kubemu.api import quantity
from kubemu.client import Client
from kubemu.client.config import load_cluster_config
from deploy.chaos import invariants as inv
from deploy.chaos import schedule, workloads
from deploy.chaos.etcdcheck import etcd_affected
from deploy.chaos.scenario import Scenario

UP_TIMEOUT_S = 180.0
DOWN_TIMEOUT_S = 120.0
CONTROL_TIMEOUT_S = 10.0
WATCH_CATCH_UP_S = 20.0
POLL_S = 1.0


class ChaosRefused(Exception):
    """The run would do something unsafe; the message says what and how to override."""


@dataclasses.dataclass
class Options:
    scenario: Scenario
    seed: int
    home: pathlib.Path | None = None
    allow_affected_etcd: bool = False
    out: TextIO = sys.stdout


# How the supervisor refuses a fault on a process that is down (restarting).
NOT_RUNNING = ", not running"


@dataclasses.dataclass
class FaultOutcome:
    event: schedule.FaultEvent
    fired_at_s: float | None = None
    target: str = ""              # resolved (etcd-leader -> its name)
    error: str = ""
    undone_at_s: float | None = None
    down: str = ""                # a random pick found already down (not struck)

    def to_dict(self) -> dict:
        return {**self.event.to_dict(), "fired_at_s": self.fired_at_s, "resolved": self.target,
                "error": self.error, "undone_at_s": self.undone_at_s, "down": self.down}


@dataclasses.dataclass
class Report:
    scenario: str
    seed: int
    home: str
    etcd_version: str = ""
    namespace: str = ""
    timeline: list[FaultOutcome] = dataclasses.field(default_factory=list)
    availability: list[workloads.Availability] = dataclasses.field(default_factory=list)
    last_fault_end_s: float | None = None
    converged_after_s: float | None = None   # from the end of the last fault
    invariants: list[inv.Invariant] = dataclasses.field(default_factory=list)
    processes: list[schedule.Process] = dataclasses.field(default_factory=list)
    # The supervisor's view once settled: name, state, restarts, last exit.
    processes_after: list[dict] = dataclasses.field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and all(i.passed for i in self.invariants)

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "seed": self.seed, "home": self.home,
                "etcd_version": self.etcd_version, "namespace": self.namespace, "passed": self.passed, "error": self.error,
                "processes": [dataclasses.asdict(p) for p in self.processes],
                "processes_after": self.processes_after,
                "timeline": [o.to_dict() for o in self.timeline],
                "availability": [a.to_dict() for a in self.availability],
                "last_fault_end_s": self.last_fault_end_s,
                "converged_after_last_fault_s": self.converged_after_s,
                "invariants": [i.to_dict() for i in self.invariants]}

    def text(self) -> str:
        lines = [f"scenario {self.scenario}, seed {self.seed}, home {self.home}"
                 + (f", etcd {self.etcd_version}" if self.etcd_version else "")
                 + (f", namespace {self.namespace}" if self.namespace else ""), "",
                 "FAULT TIMELINE"]
        rows = []
        for o in self.timeline:
            e = o.event
            target = o.target or e.target or f"({e.picked_from})"
            if e.picked_from and o.target:
                target = f"{o.target} ({e.picked_from})"
            result = e.skipped or o.error or (f"already down ({o.down})" if o.down else "") or (
                "ok" if o.fired_at_s is not None else "not fired")
            fired = f"{o.fired_at_s:.1f}s" if o.fired_at_s is not None else "-"
            rows.append((e, fired, target, result))
        width = max([len("TARGET")] + [len(r[2]) for r in rows]) + 2
        lines.append(f"{'AT':>8}  {'FIRED':>8}  {'ACTION':<10}{'TARGET':<{width}}"
                     f"{'FOR':>6}  {'SOURCE':<14}RESULT")
        for e, fired, target, result in rows:
            lines.append(f"{e.at_s:>7.1f}s  {fired:>8}  {e.action:<10}{target:<{width}}"
                         f"{(f'{e.for_s:g}s' if e.for_s else '-'):>6}  {e.source:<14}{result}")
        lines += ["", "API AVAILABILITY (calls per second: ok, or ok/errors; - none made)"]
        for a in self.availability:
            cells = []
            for second in range(max(a.seconds, default=-1) + 1):
                ok, bad = a.seconds.get(second, (0, 0))
                cells.append(f"{ok}/{bad}" if bad else f"{ok}" if ok else "-")
            total_ok = sum(v[0] for v in a.seconds.values())
            total_bad = sum(v[1] for v in a.seconds.values())
            rate = total_bad / max(1, total_ok + total_bad)
            lines.append(f"{a.name}: {total_ok} ok, {total_bad} errors ({rate:.1%}), longest "
                         f"outage {a.longest_outage_s():g}s, longest gap between successes "
                         f"{a.longest_gap_s():g}s")
            for start in range(0, len(cells), 15):
                lines.append(f"  {start:>4}s: " + " ".join(f"{c:>5}" for c in cells[start:start + 15]))
        lines.append("")
        if self.converged_after_s is not None:
            lines.append(f"converged {self.converged_after_s:.1f}s after the last fault ended")
        else:
            lines.append("did not converge within the settle bound")
        lines += ["", "INVARIANTS"]
        for i in self.invariants:
            lines.append(f"{'PASS' if i.passed else 'FAIL'}  {i.name}: {i.evidence}")
            lines += [f"        {d}" for d in i.details]
        if self.error:
            lines += ["", f"error: {self.error}"]
        lines += ["", "PASSED" if self.passed else "FAILED"]
        return "\n".join(lines)


# --- cluster lifecycle (subprocesses: the CLI is the supervisor's owner) -------

def _kubemu(home: pathlib.Path, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "kubemu.cli.main", "--home", str(home), *args]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def up_argv(scenario: Scenario) -> list[str]:
    c = scenario.cluster
    argv = ["up", "-d", "--nodes", str(c.nodes), "--schedulers", str(c.schedulers),
            "--controller-managers", str(c.controller_managers), "--profile", c.profile,
            "--timeout", str(UP_TIMEOUT_S)]
    # Only when asked for: `up` has these flags once the HA control plane is in.
    if c.etcd != 1:
        argv += ["--etcd", str(c.etcd)]
    if c.apiservers != 1:
        argv += ["--apiservers", str(c.apiservers)]
    return argv


def bring_up(home: pathlib.Path, scenario: Scenario) -> None:
    done = _kubemu(home, *up_argv(scenario), timeout_s=UP_TIMEOUT_S + 30)
    if done.returncode != 0:
        raise RuntimeError(f"kubemu up failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")


def take_down(home: pathlib.Path) -> list[str]:
    """`kubemu down`, then the processes of the home still alive (described)."""
    done = _kubemu(home, "down", timeout_s=DOWN_TIMEOUT_S + 30)
    left = cluster_home.find_home_processes(home)
    described = [cluster_home.describe([p]) for p in left]
    if done.returncode != 0 and not described:
        described.append(f"kubemu down exit {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()[-500:]}")
    return described


# --- observations for the invariants -------------------------------------------

def _get(d: dict, *path: str, default: Any = 0) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def workload_status(kind: str, doc: dict) -> inv.WorkloadStatus:
    """Whether a workload object's status shows its spec reached (pure)."""
    name = f"{_get(doc, 'metadata', 'namespace', default='')}/{_get(doc, 'metadata', 'name', default='')}"
    generation = _get(doc, "metadata", "generation")
    observed = _get(doc, "status", "observedGeneration")
    status = doc.get("status") or {}
    if kind == "Job":
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        done = conditions.get("Complete") == "True"
        detail = (f"{status.get('succeeded', 0)} succeeded, {status.get('active', 0)} active, "
                  f"{status.get('failed', 0)} failed"
                  + (", Failed" if conditions.get("Failed") == "True" else ""))
        return inv.WorkloadStatus(kind, name, done, detail)
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        ready = status.get("numberReady", 0)
        updated = status.get("updatedNumberScheduled", 0)
        ok = observed >= generation and desired == ready == updated
        return inv.WorkloadStatus(kind, name, ok, f"{ready}/{desired} ready, {updated} updated, "
                                  f"generation {observed}/{generation} observed")
    replicas = _get(doc, "spec", "replicas", default=1)
    ready = status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    current = status.get("replicas", 0)
    ok = observed >= generation and replicas == ready == updated == current
    if kind == "Deployment":
        ok = ok and status.get("availableReplicas", 0) == replicas
    return inv.WorkloadStatus(kind, name, ok, f"{ready}/{replicas} ready, {updated} updated, "
                              f"{current} total, generation {observed}/{generation} observed")


async def workload_statuses(client: Client) -> list[inv.WorkloadStatus]:
    out = []
    for resource, kind in (("deployments", "Deployment"), ("statefulsets", "StatefulSet"),
                           ("daemonsets", "DaemonSet"), ("jobs", "Job")):
        listed = await client.list_all(resource)
        out += [workload_status(kind, codec.to_dict(item)) for item in listed.items]
    return out


async def overcommit(client: Client) -> inv.Invariant:
    nodes = (await client.list_all("nodes")).items
    pods = (await client.list_all("pods")).items
    capacity = []
    for node in nodes:
        alloc = dict(node.status.allocatable)
        capacity.append(inv.NodeCapacity(node.metadata.name,
                                         quantity.to_milli(alloc.get("cpu", "0")),
                                         quantity.to_int(alloc.get("memory", "0"))))
    requests = []
    for pod in pods:
        if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
            continue
        cpu_m = memory_b = 0
        for ctr in pod.spec.containers:
            req = dict(ctr.resources.requests)
            cpu_m += quantity.to_milli(req.get("cpu", "0"))
            memory_b += quantity.to_int(req.get("memory", "0"))
        requests.append(inv.PodRequest(pod.metadata.namespace, pod.metadata.name,
                                       pod.spec.node_name, cpu_m, memory_b))
    return inv.check_overcommit(capacity, requests)


def live_containers(home: pathlib.Path) -> list[inv.LiveContainer]:
    """Running containers from every node runtime's records whose process is alive
    with its recorded start (blocking: file and /proc reads)."""
    out = []
    nodes_root = home / cluster_home.NODES_DIR
    try:
        node_dirs = sorted(p for p in nodes_root.iterdir() if p.is_dir())
    except OSError:
        return out
    for directory in node_dirs:
        records = directory.joinpath(cluster_home.NODE_RUNTIME_DIR,
                                     *cluster_home.RUNTIME_CONTAINER_RECORDS)
        for path in sorted(records.glob("*.json"))[:cluster_home.CONTAINER_RECORDS_MAX]:
            try:
                data = json.loads(path.read_bytes()[:cluster_home.RECORD_BYTES_MAX])
            except (OSError, ValueError):
                continue
            pid = data.get("pid") if isinstance(data, dict) else None
            if not isinstance(pid, int) or pid <= 0 or not _alive(pid, data.get("pid_start_ticks")):
                continue
            labels = data.get("labels") or {}
            out.append(inv.LiveContainer(
                node=directory.name, pod_uid=labels.get("io.kubernetes.pod.uid", ""),
                pod=f"{labels.get('io.kubernetes.pod.namespace', '?')}/"
                    f"{labels.get('io.kubernetes.pod.name', '?')}",
                container=labels.get("io.kubernetes.container.name", data.get("name", "?")),
                pid=pid))
    return out


def _alive(pid: int, start_ticks: Any) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] == "Z":
        return False
    if isinstance(start_ticks, int) and start_ticks >= 0 and len(fields) > 19:
        return fields[19] == str(start_ticks)
    return True


async def etcd_members(endpoints: dict[str, str]) -> list[inv.MemberStatus]:
    """Each member's revision and HashKV at the smallest revision they all have."""
    import aetcd
    from aetcd import rpc

    clients: dict[str, Any] = {}
    statuses: dict[str, inv.MemberStatus] = {}
    try:
        revisions: dict[str, int] = {}
        for name, address in sorted(endpoints.items()):
            host, _, port = address.rpartition(":")
            client = aetcd.Client(host=host, port=int(port), timeout=5)
            clients[name] = client
            try:
                await client.connect()
                stub = rpc.MaintenanceStub(client.channel)
                status = await stub.Status(rpc.StatusRequest(), timeout=5)
                revisions[name] = status.header.revision
            except Exception as err:  # noqa: BLE001 - any failure is the member's evidence
                statuses[name] = inv.MemberStatus(name, error=f"status: {err}"[:200])
        if revisions:
            common = min(revisions.values())
            for name in revisions:
                stub = rpc.MaintenanceStub(clients[name].channel)
                try:
                    hashed = await stub.HashKV(rpc.HashKVRequest(revision=common), timeout=5)
                    statuses[name] = inv.MemberStatus(name, revisions[name], hashed.hash)
                except Exception as err:  # noqa: BLE001
                    statuses[name] = inv.MemberStatus(name, revisions[name],
                                                      error=f"hashkv: {err}"[:200])
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
    return [statuses[n] for n in sorted(statuses)]


# --- the run -----------------------------------------------------------------

class Runner:
    def __init__(self, options: Options, supervisor_factory: Callable[[pathlib.Path], Any]):
        self.options = options
        self.scenario = options.scenario
        self.supervisor_factory = supervisor_factory
        self.out = options.out

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def run(self) -> Report:
        own = self.options.home is None
        home = (pathlib.Path(tempfile.mkdtemp(prefix="kubemu-chaos-")) if own
                else self.options.home.resolve())
        report = Report(self.scenario.name, self.options.seed, str(home))
        try:
            if own:
                self.say(f"starting a cluster in {home} ...")
                await asyncio.to_thread(bring_up, home, self.scenario)
            await self._run(home, report)
        except ChaosRefused:
            raise
        except Exception as err:  # noqa: BLE001 - the report says what went wrong
            report.error = f"{type(err).__name__}: {err}"
        finally:
            if own:
                self.say("kubemu down ...")
                left = await asyncio.to_thread(take_down, home)
                report.invariants.append(inv.check_no_process_left(left))
                if report.passed:   # a failed run keeps its home: the logs are the evidence
                    await asyncio.to_thread(shutil.rmtree, home, True)
                    report.home += " (removed: the run passed)"
            else:
                report.invariants.append(inv.Invariant(
                    "no process left after down", True,
                    "skipped: the cluster is the one in --home, left running"))
        return report

    async def _run(self, home: pathlib.Path, report: Report) -> None:
        scenario = self.scenario
        state = await asyncio.to_thread(cluster_home.read_state, home)
        report.etcd_version = state.etcd_version if state else ""
        supervisor = self.supervisor_factory(home)
        try:
            infos = await supervisor.status()
            processes = [schedule.Process(p.name, p.node, p.component) for p in infos]
            report.processes = processes
            events = schedule.timeline(scenario, self.options.seed, processes)
            report.timeline = [FaultOutcome(e) for e in events]
            risky = schedule.may_strike_etcd(events, processes)
            if risky and etcd_affected(report.etcd_version) and not self.options.allow_affected_etcd:
                raise ChaosRefused(
                    f"refusing to {risky[0].action} etcd ({risky[0].target} at "
                    f"{risky[0].at_s:g}s, {len(risky)} such faults): etcd "
                    f"{report.etcd_version} has the 3.5.0-3.5.2 data inconsistency bug "
                    f"when a member is killed under load; use etcd 3.4 or >= 3.5.3 "
                    f"($KUBEMU_ETCD), or pass --allow-affected-etcd")
            self.say(f"{len(events)} faults planned over {scenario.duration_s:g}s (seed "
                     f"{self.options.seed})")
            await self._experiment(home, supervisor, report)
        finally:
            with contextlib.suppress(Exception):
                await supervisor.close()

    async def _experiment(self, home: pathlib.Path, supervisor: Any, report: Report) -> None:
        scenario = self.scenario
        ns = scenario.namespace
        if self.options.home is not None:
            # A cluster that may hold an earlier run's objects: the writer's
            # numbering and the churners' names start afresh in a namespace of
            # this run's own.
            ns = f"{ns}-{secrets.token_hex(3)}"
        report.namespace = ns
        address = (await asyncio.to_thread(load_cluster_config, home)).apiserver
        admin = Client(address, timeout_s=workloads.CALL_TIMEOUT_S)
        clients = [admin]
        try:
            try:
                await admin.create(workloads.obj({"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": ns}}))
            except errors.AlreadyExists:
                pass
            t0 = time.monotonic()
            running = []
            for spec in scenario.workloads:
                client = Client(address, timeout_s=workloads.CALL_TIMEOUT_S, retry_attempts=1,
                                user_agent=f"kubemu-chaos/{spec.name}")
                clients.append(client)
                running.append(workloads.make(spec, client, ns, t0, self.options.seed,
                                              scenario.duration_s))
            for w in running:
                if isinstance(w, workloads.DeploymentChurner):
                    await w.setup()
            watchers = []
            for w in running:
                if isinstance(w, workloads.ConfigMapWriter):
                    client = Client(address, timeout_s=workloads.CALL_TIMEOUT_S)
                    clients.append(client)
                    watchers.append(workloads.Watcher(client, ns, w.spec.name, t0))
            stop_load = asyncio.Event()
            stop_watch = asyncio.Event()
            tasks = [asyncio.create_task(w.run(stop_load)) for w in running]
            watch_tasks = [asyncio.create_task(w.run(stop_watch)) for w in watchers]
            self.say("fault window ...")
            await self._faults(supervisor, report, t0)
            stop_load.set()
            crashed = [f"{w.spec.name}: {type(r).__name__}: {r}"
                       for w, r in zip(running, await asyncio.gather(*tasks, return_exceptions=True))
                       if isinstance(r, BaseException)]
            if crashed:
                # A workload that died stopped its load: the checks would pass on nothing.
                report.error = "workload crashed: " + "; ".join(crashed)
            report.availability = [w.availability for w in running] + \
                [w.availability for w in watchers]
            last_end = max((o.undone_at_s or o.fired_at_s or 0.0 for o in report.timeline
                            if o.fired_at_s is not None), default=0.0)
            report.last_fault_end_s = last_end
            self.say(f"settling (at most {scenario.settle_s:g}s) ...")
            statuses = await self._settle(admin, report, t0)
            report.invariants.append(inv.check_converged(statuses, scenario.settle_s,
                                                         report.converged_after_s))
            report.processes_after = [
                {"name": p.name, "state": p.state, "restarts": p.restarts,
                 "last_exit": p.last_exit} for p in await supervisor.status()]
            await self._check_data(admin, running, watchers, stop_watch, watch_tasks, report)
            report.invariants.append(await overcommit(admin))
            uids = [p.metadata.uid for p in (await admin.list_all("pods")).items]
            live = await asyncio.to_thread(live_containers, home)
            report.invariants.append(inv.check_pod_processes(live, uids))
            report.invariants.append(await self._etcd(home, supervisor))
            report.invariants.append(inv.check_faults(
                [(f"{o.event.action} {o.target or o.event.target or o.event.picked_from} at "
                  f"{o.event.at_s:g}s", o.event.skipped or o.down, o.fired_at_s is not None,
                  o.error)
                 for o in report.timeline],
                planned=sum(1 for o in report.timeline if not o.event.skipped)))
        finally:
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()

    async def _faults(self, supervisor: Any, report: Report, t0: float) -> None:
        undo: list[asyncio.Task] = []
        for outcome in report.timeline:
            e = outcome.event
            delay_s = t0 + e.at_s - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if e.skipped:
                continue
            outcome.fired_at_s = round(time.monotonic() - t0, 3)
            try:
                target = e.target
                if target == schedule.ETCD_LEADER:
                    target = await supervisor.etcd_leader()
                    if not target:
                        raise RuntimeError("no etcd leader")
                outcome.target = target
                await self._strike(supervisor, e.action, target)
                self.say(f"{outcome.fired_at_s:7.1f}s {e.action} {target}"
                         + (f" for {e.for_s:g}s" if e.for_s else ""))
            except Exception as err:  # noqa: BLE001 - a fault that fails is reported, not fatal
                if e.picked_from and NOT_RUNNING in str(err):
                    # A random pick that an earlier fault had already taken down
                    # (restarting after a kill): nothing to strike, not a failure.
                    outcome.down = str(err)[:300]
                    self.say(f"{outcome.fired_at_s:7.1f}s {e.action} {target}: already down")
                else:
                    outcome.error = f"{type(err).__name__}: {err}"[:300]
                continue
            if e.for_s:
                undo.append(asyncio.create_task(self._undo_later(supervisor, outcome, t0)))
        delay_s = t0 + self.scenario.duration_s - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await asyncio.gather(*undo, return_exceptions=True)

    @staticmethod
    async def _strike(supervisor: Any, action: str, target: str) -> None:
        if action == "kill":
            await supervisor.kill([target])
        elif action == "pause":
            await supervisor.pause([target])
        elif action == "stop":
            await supervisor.stop([target])
        elif action == "partition":
            await supervisor.partition([target])
        else:
            raise AssertionError(f"unknown action {action!r}")

    @staticmethod
    async def _undo(supervisor: Any, action: str, target: str) -> None:
        if action == "pause":
            await supervisor.resume([target])
        elif action == "stop":
            await supervisor.start([target])
        elif action == "partition":
            await supervisor.heal([target])

    async def _undo_later(self, supervisor: Any, outcome: FaultOutcome, t0: float) -> None:
        delay_s = t0 + outcome.fired_at_s + outcome.event.for_s - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        for attempt in range(5):
            try:
                await self._undo(supervisor, outcome.event.action, outcome.target)
                outcome.undone_at_s = round(time.monotonic() - t0, 3)
                return
            except Exception as err:  # noqa: BLE001
                outcome.error = f"undo: {type(err).__name__}: {err}"[:300]
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _settle(self, admin: Client, report: Report,
                      t0: float) -> list[inv.WorkloadStatus]:
        deadline = time.monotonic() + self.scenario.settle_s
        statuses: list[inv.WorkloadStatus] = []
        while True:
            try:
                statuses = await workload_statuses(admin)
                if all(s.converged for s in statuses):
                    report.converged_after_s = round(
                        time.monotonic() - t0 - (report.last_fault_end_s or 0.0), 3)
                    return statuses
            except (errors.ApiError, OSError, asyncio.TimeoutError):
                pass
            if time.monotonic() >= deadline:
                return statuses or [inv.WorkloadStatus("API", "-", False,
                                                       "no answer from the apiserver")]
            await asyncio.sleep(POLL_S)

    async def _check_data(self, admin: Client, running: list, watchers: list,
                          stop_watch: asyncio.Event, watch_tasks: list,
                          report: Report) -> None:
        writers = [w for w in running if isinstance(w, workloads.ConfigMapWriter)]
        if not writers:
            stop_watch.set()
            await asyncio.gather(*watch_tasks, return_exceptions=True)
            return
        finals: dict[str, dict[str, tuple[int | None, int]]] = {}
        for w in writers:
            listed = await admin.list_all("configmaps", report.namespace,
                                          label_selector=f"{workloads.WRITER_LABEL}={w.spec.name}")
            final: dict[str, tuple[int | None, int]] = {name: (None, 0) for name in w.logs}
            for item in listed.items:
                try:
                    seq = int(item.data.get("seq", "-1"))
                except ValueError:
                    seq = -1
                final[item.metadata.name] = (seq, int(item.metadata.resource_version))
            finals[w.spec.name] = final

        def caught_up() -> bool:
            for watcher, w in zip(watchers, writers):
                for name, (_seq, rv) in finals[w.spec.name].items():
                    record = watcher.records.get(name)
                    if rv and (record is None or not record.seen or record.seen[-1][1] < rv):
                        return False
            return True

        deadline = time.monotonic() + WATCH_CATCH_UP_S
        while not caught_up() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop_watch.set()
        await asyncio.gather(*watch_tasks, return_exceptions=True)
        logs: dict[str, inv.WriteLog] = {}
        final_seq: dict[str, int | None] = {}
        records: dict[str, inv.WatchRecord] = {}
        expired = reconnects = 0
        for watcher, w in zip(watchers, writers):
            logs.update(w.logs)
            final_seq.update({n: s for n, (s, _rv) in finals[w.spec.name].items()})
            records.update(watcher.records)
            expired += watcher.expired
            reconnects += watcher.reconnects
        report.invariants.append(inv.check_writes(logs, final_seq))
        report.invariants.append(inv.check_watch(records, logs, final_seq, expired=expired,
                                                 reconnects=reconnects))

    async def _etcd(self, home: pathlib.Path, supervisor: Any) -> inv.Invariant:
        infos = await supervisor.status()
        endpoints = {p.name: p.address.split("://")[-1] for p in infos
                     if p.component == "etcd" and p.address}
        if not endpoints:
            cfg = await asyncio.to_thread(load_cluster_config, home)
            endpoints = {f"etcd@{a}": a for a in cfg.etcd}
        return inv.check_etcd_agree(await etcd_members(endpoints))


def write_report(report: Report, path: pathlib.Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
