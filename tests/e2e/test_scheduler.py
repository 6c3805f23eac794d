"""The scheduler as a process, on a real etcd + apiserver.

Each test starts etcd and the apiserver (tests/conftest.py fixtures, free ports,
tmp dirs) and one `python -m scheduler` (the takeover tests: two, with short
lease timings). Nodes are Node objects created through the API with
status.allocatable and a Ready condition: no kubelet exists yet, so pods get
bound (spec.nodeName) but never run, and the test plays the kubelet where one
is needed (confirming a graceful deletion). CLI commands run in-process
(kubemu.cli.main.main in a thread: it has its own asyncio.run).
The last test starts the same through the supervisor (Cluster, two schedulers).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import pathlib
import re
import signal
import sys

import pytest

from deploy import components as comp
from kubemu.api import codec, quantity
from kubemu.api.kinds import REGISTRY
from kubemu.cli import main as cli
from kubemu.client.clientset import Client
from kubemu.client.config import ClusterConfig, write_cluster_config
from kubemu.client.wait import wait_for
from tests.support import Proc, free_port
from tests.unit.scheduler_builders import HOSTNAME, make_node, make_pod, selector, affinity_term

pytestmark = pytest.mark.e2e

BIND_TIMEOUT_S = 20.0
START_TIMEOUT_S = 30.0
# For the takeover tests: short enough that a takeover is quick, long enough for a
# loaded 2-core box. The other tests keep the defaults (15 s / 10 s / 2 s).
FAST_LEASE = ("--lease-duration-s", "3", "--renew-deadline-s", "2", "--retry-period-s", "0.25")
LEASE = ("kube-system", "kube-scheduler")
SMALL, MEDIUM, LARGE = "small", "medium", "large"
BARRIER = "test.kubemu.io/barrier"


# --- helpers ------------------------------------------------------------

def node(name: str, cpu: str, memory: str, pods: str = "110"):
    b = make_node(name).allocatable(cpu=cpu, memory=memory, pods=pods)
    b.doc["status"]["capacity"] = dict(b.doc["status"]["allocatable"])
    b.doc["status"]["conditions"] = [{"type": "Ready", "status": "True", "reason":
                                      "KubeletReady", "message": "kubelet is posting ready status"}]
    return b


@dataclasses.dataclass
class NotYet:
    """A falsy answer for wait_for that still says what was seen."""

    seen: str

    def __bool__(self) -> bool:
        return False


def api_object(builder):
    """A builder's object ready for create: the server assigns the uid."""
    obj = builder.build()
    obj.metadata.uid = ""
    return obj


class SchedulerProc:
    """`python -m scheduler` with its health port and log in the test's directory."""

    def __init__(self, workdir: pathlib.Path, apiserver: str, identity: str, *flags: str):
        self.identity = identity
        self.health = f"127.0.0.1:{free_port()}"
        self.log_path = workdir / f"scheduler-{identity}.log"
        argv = [sys.executable, "-m", "scheduler", "--apiserver", apiserver,
                "--health-listen", self.health, "--identity", identity, "--seed", "7",
                "--pod-initial-backoff-s", "0.2", "--pod-max-backoff-s", "2",
                "--log-file", str(self.log_path), "--log-level", "debug", *flags]
        self.proc = Proc(argv, workdir / f"scheduler-{identity}.out")

    async def start(self) -> "SchedulerProc":
        self.proc.start()

        async def serving():
            assert self.proc.alive(), f"scheduler exited: {self.proc.log_tail()}"
            return await comp.grpc_health(self.health, 1.0) is None
        await wait_for(serving, START_TIMEOUT_S, message=f"scheduler {self.identity} serving")
        return self

    def log_tail(self, lines: int = 40) -> str:
        return Proc([], self.log_path).log_tail(lines)  # the scheduler's own log file


@dataclasses.dataclass
class Env:
    client: Client
    home: pathlib.Path
    scheduler: SchedulerProc
    barriers: int = 0

    async def seen_by_scheduler(self) -> None:
        """Return once the scheduler has seen every Node change made so far.

        Its pod and node informers are separate watch streams: a pod created
        after a node change may reach it first (as in Kubernetes). A barrier:
        label a node, then bind a pod that only that labelled node version
        accepts; once bound, every earlier event of the node stream has been
        seen. The pod is deleted again (the pod stream keeps that in order)."""
        self.barriers += 1
        token = str(self.barriers)
        first = (await self.client.list("nodes", limit=1)).items[0].metadata.name
        await self.client.patch("nodes", first, patch={"metadata": {"labels": {BARRIER: token}}})
        name = f"barrier-{token}"
        await self.create_pod(make_pod(name).node_selector(**{BARRIER: token})
                              .toleration(operator="Exists"))
        await self.wait_bound(name)
        await self.client.delete("pods", name, "default", grace_period_s=0)

    async def create_nodes(self, *builders) -> None:
        for b in builders:
            await self.client.create(api_object(b))

    async def create_pod(self, builder):
        return await self.client.create(api_object(builder))

    async def wait_bound(self, name: str, namespace: str = "default",
                         timeout_s: float = BIND_TIMEOUT_S) -> str:
        async def bound():
            return (await self.client.get("pods", name, namespace)).spec.node_name
        return await wait_for(bound, timeout_s, message=f"pod {name} bound; scheduler log:\n"
                              f"{self.scheduler.log_tail()}")

    async def events(self, name: str, reason: str, namespace: str = "default") -> list:
        result = await self.client.list(
            "events", namespace, field_selector=f"involvedObject.name={name}")
        return [e for e in result.items if e.reason == reason]

    async def wait_event(self, name: str, reason: str, message: str | None = None):
        async def seen():
            found = await self.events(name, reason)
            if message is None:
                return found[-1] if found else None
            return next((e for e in found if e.message == message),
                        NotYet(repr([e.message for e in found])))
        return await wait_for(seen, BIND_TIMEOUT_S, message=f"{reason} event for {name}")

    async def wait_failed_scheduling(self, name: str, message: str):
        """The FailedScheduling event with exactly `message`, and PodScheduled=False
        with the same message; returns the event."""
        event = await self.wait_event(name, "FailedScheduling", message)
        assert event.type == "Warning"

        async def condition():
            pod = await self.client.get("pods", name, "default")
            for c in pod.status.conditions:
                if c.type == "PodScheduled":
                    got = (c.status, c.reason, c.message)
                    return got if got == ("False", "Unschedulable", message) else NotYet(str(got))
            return None
        await wait_for(condition, BIND_TIMEOUT_S, message=f"PodScheduled condition of {name}")
        return event

    async def kubemu(self, *argv: str, capsys) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli.main, ["--home", str(self.home), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
async def env(tmp_path, apiserver, client):
    home = tmp_path / "home"
    await asyncio.to_thread(write_cluster_config, home,  # an fsync: off the loop
                            ClusterConfig(apiserver=apiserver.address))
    scheduler = await SchedulerProc(tmp_path, apiserver.address, "sched-a").start()
    try:
        yield Env(client, home, scheduler)
    finally:
        await scheduler.proc.astop()


@pytest.fixture
async def three_nodes(env):
    """small (1 cpu, 2Gi), medium (2 cpu, 4Gi), large (4 cpu, 8Gi)."""
    await env.create_nodes(node(SMALL, "1", "2Gi"), node(MEDIUM, "2", "4Gi"),
                           node(LARGE, "4", "8Gi"))
    await env.seen_by_scheduler()
    return env


# --- placement ----------------------------------------------------------

async def test_pods_land_where_they_fit(three_nodes):
    env = three_nodes
    # Created together; at its turn each pod fits exactly one node, counting
    # the pods placed (assumed) before it.
    table = [
        ("big", dict(cpu="3500m"), LARGE),
        ("mid", dict(cpu="1500m"), MEDIUM),
        ("little", dict(cpu="800m"), SMALL),
        ("memory-hog", dict(memory="7Gi"), LARGE),
    ]
    for name, requests, _ in table:
        await env.create_pod(make_pod(name).requests(**requests))
    placed = {name: await env.wait_bound(name) for name, _, _ in table}
    assert placed == {name: where for name, _, where in table}
    event = await env.wait_event("big", "Scheduled")
    assert (event.type, event.message) == ("Normal", f"Successfully assigned default/big to {LARGE}")
    # kube-scheduler records through events.k8s.io: no source, the reporting fields.
    assert (event.source.component, event.reporting_component, event.action) == (
        "", "default-scheduler", "Binding")
    assert event.reporting_instance == env.scheduler.identity
    assert event.involved_object.kind == "Pod"
    pod = await env.client.get("pods", "big", "default")
    assert [(c.type, c.status) for c in pod.status.conditions] == [("PodScheduled", "True")]


async def test_too_big_pod_pends_with_the_reason_until_a_big_node_joins(three_nodes):
    env = three_nodes
    await env.create_pod(make_pod("huge").requests(cpu="8"))
    await env.wait_failed_scheduling(
        "huge", "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                "available: 3 No preemption victims found for incoming pod.")
    pod = await env.client.get("pods", "huge", "default")
    assert (pod.spec.node_name, pod.status.phase) == ("", "Pending")

    await env.create_nodes(node("xl", "16", "32Gi"))
    assert await env.wait_bound("huge") == "xl"


async def test_repeated_failures_are_one_event_series(three_nodes, capsys):
    """As kube-scheduler's events.k8s.io recorder: a repeat about the same pod
    (its reference includes the resourceVersion, which the first failure's
    PodScheduled=False write moves on, so the second failure starts its own
    Event) sets series {count: 2} on that Event at once, and describe prints
    it as "(x2 over ...)"."""
    env = three_nodes
    message = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
               "available: 3 No preemption victims found for incoming pod.")
    await env.create_pod(make_pod("stuck").requests(cpu="8"))
    first = await env.wait_failed_scheduling("stuck", message)
    assert not first.HasField("series") and first.count == 0 and first.event_time

    async def retry(cpu: str) -> None:
        # An allocatable change is an event NodeResourcesFit waits for: a
        # retry, with the same verdict.
        grown = await env.client.get("nodes", SMALL)
        grown.status.allocatable["cpu"] = cpu
        await env.client.update_status(grown)

    async def failures(least: int):
        found = await env.events("stuck", "FailedScheduling")
        return found if len(found) >= least else NotYet(repr(found))

    await retry("1500m")
    await wait_for(lambda: failures(2), BIND_TIMEOUT_S, message="second FailedScheduling")
    await retry("1600m")

    async def series():
        found = await env.events("stuck", "FailedScheduling")
        return (next((e for e in found if e.series.count >= 2), None)
                or NotYet(repr([(e.metadata.name, e.series.count) for e in found])))
    event = await wait_for(series, BIND_TIMEOUT_S, message="FailedScheduling series")
    assert event.message == message and event.count == 0
    assert event.series.last_observed_time > event.event_time

    code, out, err = await env.kubemu("describe", "pod", "stuck", capsys=capsys)
    assert code == 0, err
    assert re.search(r"Warning\s+FailedScheduling\s+\S+ \(x\d+ over \S+\)\s+"
                     r"default-scheduler\s+0/3 nodes are available", out), out


# --- constraints --------------------------------------------------------

async def test_node_selector_and_label_nodes(three_nodes, capsys):
    env = three_nodes
    assert await env.kubemu("label", "nodes", MEDIUM, "disktype=ssd", capsys=capsys) == (
        0, f"node/{MEDIUM} labeled\n", "")
    await env.seen_by_scheduler()
    await env.create_pod(make_pod("wants-ssd").node_selector(disktype="ssd"))
    assert await env.wait_bound("wants-ssd") == MEDIUM

    await env.create_pod(make_pod("wants-hdd").node_selector(disktype="hdd"))
    await env.wait_failed_scheduling(
        "wants-hdd", "0/3 nodes are available: 3 node(s) didn't match Pod's node "
                     "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is "
                     "not helpful for scheduling.")
    assert await env.kubemu("label", "nodes", SMALL, "disktype=hdd", capsys=capsys) == (
        0, f"node/{SMALL} labeled\n", "")
    assert await env.wait_bound("wants-hdd") == SMALL


async def test_taints_and_tolerations(three_nodes, capsys):
    env = three_nodes
    for name in (MEDIUM, LARGE):
        assert await env.kubemu("taint", "nodes", name, "dedicated=gpu:NoSchedule",
                                capsys=capsys) == (0, f"node/{name} tainted\n", "")
    await env.seen_by_scheduler()
    code, out, err = await env.kubemu("taint", "nodes", LARGE, "dedicated=gpu:NoSchedule",
                                      capsys=capsys)
    assert (code, out, err) == (1, "", f"error: node {LARGE} already has dedicated taint(s) "
                                       "with same effect(s) and --overwrite is false\n")
    got = await env.client.get("nodes", LARGE)
    assert [(t.key, t.value, t.effect) for t in got.spec.taints] == [
        ("dedicated", "gpu", "NoSchedule")]

    await env.create_pod(make_pod("tolerant").requests(cpu="1500m").toleration(
        "dedicated", "Equal", "gpu", "NoSchedule"))
    assert await env.wait_bound("tolerant") in (MEDIUM, LARGE)
    await env.create_pod(make_pod("intolerant").requests(cpu="1500m"))
    await env.wait_failed_scheduling(
        "intolerant", "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated "
                      "taint {dedicated: gpu}. preemption: 0/3 nodes are available: 1 No "
                      "preemption victims found for incoming pod, 2 Preemption is not helpful "
                      "for scheduling.")

    for argv, expected in [
        (("taint", "nodes", LARGE, "missing:NoSchedule-"),
         (1, "", 'error: taint "missing:NoSchedule" not found\n')),
        (("taint", "nodes", LARGE, "dedicated=gpu:Sometimes"),
         (1, "", "error: invalid taint effect: Sometimes, unsupported taint effect\n")),
        (("taint", "nodes", "nope", "a=b:NoSchedule"),
         (1, "", 'Error from server (NotFound): nodes "nope" not found\n')),
        (("taint", "nodes", LARGE, "dedicated:NoSchedule-"), (0, f"node/{LARGE} untainted\n", "")),
    ]:
        assert await env.kubemu(*argv, capsys=capsys) == expected, argv
    assert await env.wait_bound("intolerant") == LARGE


async def test_cordon_and_uncordon(three_nodes, capsys):
    env = three_nodes
    assert await env.kubemu("cordon", LARGE, capsys=capsys) == (0, f"node/{LARGE} cordoned\n", "")
    assert await env.kubemu("cordon", LARGE, capsys=capsys) == (
        0, f"node/{LARGE} already cordoned\n", "")
    assert (await env.client.get("nodes", LARGE)).spec.unschedulable
    await env.seen_by_scheduler()
    await env.create_pod(make_pod("needs-large").requests(cpu="3"))
    await env.wait_failed_scheduling(
        "needs-large", "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient "
                       "cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful "
                       "for scheduling, 2 No preemption victims found for incoming pod.")
    assert await env.kubemu("uncordon", LARGE, capsys=capsys) == (
        0, f"node/{LARGE} uncordoned\n", "")
    assert await env.kubemu("uncordon", LARGE, capsys=capsys) == (
        0, f"node/{LARGE} already uncordoned\n", "")
    assert await env.wait_bound("needs-large") == LARGE
    assert await env.kubemu("cordon", "nope", capsys=capsys) == (
        1, "", 'Error from server (NotFound): nodes "nope" not found\n')


async def test_required_anti_affinity_spreads_replicas(three_nodes):
    env = three_nodes
    term = affinity_term(HOSTNAME, selector({"app": "web"}))
    for i in range(4):
        await env.create_pod(make_pod(f"web-{i}").labels(app="web").pod_anti_affinity(term))
    placed = [await env.wait_bound(f"web-{i}") for i in range(3)]
    assert sorted(placed) == [LARGE, MEDIUM, SMALL]
    await env.wait_failed_scheduling(
        "web-3", "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. "
                 "preemption: 0/3 nodes are available: 3 No preemption victims found for "
                 "incoming pod.")
    # One replica goes: the fourth takes its node (AssignedPod/Delete wakes it up).
    freed = placed[1]
    await env.client.delete("pods", "web-1", "default", grace_period_s=0)
    assert await env.wait_bound("web-3") == freed


async def test_preemption_evicts_the_lower_priority_pod(three_nodes):
    env = three_nodes
    # Priority admission sets spec.priority from the class (a pod may not choose it).
    for name, value in (("low", 10), ("high", 1000)):
        await env.client.create(api_object_doc({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value}))
    for name, cpu, where in [("low-big", "3500m", LARGE), ("low-mid", "1500m", MEDIUM),
                             ("low-small", "800m", SMALL)]:
        await env.create_pod(_with_grace(_with_class(make_pod(name).requests(cpu=cpu), "low"),
                                         45))
        assert await env.wait_bound(name) == where
    preemptor = await env.create_pod(_with_class(make_pod("important").requests(cpu="3"),
                                                 "high"))
    assert preemptor.spec.priority == 1000

    # The victim, bound, is deleted gracefully: deletionTimestamp set, its grace kept.
    async def victim_terminating():
        pod = await env.client.get("pods", "low-big", "default")
        return pod if pod.metadata.deletion_timestamp else None
    victim = await wait_for(victim_terminating, BIND_TIMEOUT_S, message="victim deleted")
    assert victim.metadata.deletion_grace_period_seconds == 45
    assert [(c.type, c.status, c.reason) for c in victim.status.conditions
            if c.type == "DisruptionTarget"] == [("DisruptionTarget", "True",
                                                  "PreemptionByScheduler")]
    event = await env.wait_event("low-big", "Preempted")
    assert event.message == f"Preempted by pod {preemptor.metadata.uid} on node {LARGE}"

    async def nominated():
        return (await env.client.get("pods", "important", "default")).status.nominated_node_name
    assert await wait_for(nominated, BIND_TIMEOUT_S) == LARGE
    await env.wait_event("important", "FailedScheduling",
                         "0/3 nodes are available: 3 Insufficient cpu.")
    for other in ("low-mid", "low-small"):
        assert not (await env.client.get("pods", other, "default")).metadata.deletion_timestamp

    # No kubelet: confirm the deletion as the kubelet would once the pod stopped.
    await env.client.delete("pods", "low-big", "default", grace_period_s=0)
    assert await env.wait_bound("important") == LARGE


def _with_class(builder, class_name: str):
    builder.doc["spec"]["priorityClassName"] = class_name
    return builder


def api_object_doc(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def _with_grace(builder, seconds: int):
    builder.doc["spec"]["terminationGracePeriodSeconds"] = seconds
    return builder


# --- leader election ------------------------------------------------------

async def lease_holder(client: Client) -> str:
    lease = await client.get("leases", LEASE[1], LEASE[0])
    return lease.spec.holder_identity


async def test_standby_takes_over_when_the_leader_is_killed(tmp_path, apiserver, client):
    """Whoever holds the lease when it is killed, the other takes it over and
    schedules: asserted on the lease as it stood at the kill, so a hand-over
    that a loaded machine causes earlier does not matter."""
    a = await SchedulerProc(tmp_path, apiserver.address, "sched-a", *FAST_LEASE).start()
    b = await SchedulerProc(tmp_path, apiserver.address, "sched-b", *FAST_LEASE).start()
    env = Env(client, tmp_path, a)
    try:
        await env.create_nodes(node("n1", "4", "8Gi"), node("n2", "4", "8Gi"))
        await wait_for(lambda: lease_holder(client), START_TIMEOUT_S, message="a leader")
        await env.create_pod(make_pod("before").requests(cpu="100m"))
        await env.wait_bound("before")
        event = await env.wait_event("before", "Scheduled")
        assert event.reporting_instance in (a.identity, b.identity)

        lease = await client.get("leases", LEASE[1], LEASE[0])
        leader, standby = ((a, b) if lease.spec.holder_identity == a.identity else (b, a))
        transitions_before = lease.spec.lease_transitions
        leader.proc.kill()  # SIGKILL: no chance to release the lease
        for i in range(5):
            await env.create_pod(make_pod(f"after-{i}").requests(cpu="100m"))
        env.scheduler = standby
        for i in range(5):
            await env.wait_bound(f"after-{i}")
        lease = await client.get("leases", LEASE[1], LEASE[0])
        assert lease.spec.holder_identity == standby.identity
        assert lease.spec.lease_transitions >= transitions_before + 1
        event = await env.wait_event("after-0", "Scheduled")
        assert event.reporting_instance == standby.identity
    finally:
        for s in (a, b):
            await s.proc.astop()


async def test_paused_leader_does_not_bind_after_losing_the_lease(tmp_path, apiserver, client):
    """SIGSTOP the leader, let the standby take over, SIGCONT: the old leader must not bind."""
    a = await SchedulerProc(tmp_path, apiserver.address, "sched-a", *FAST_LEASE).start()
    env = Env(client, tmp_path, a)
    b = None
    try:
        await env.create_nodes(node("n1", "4", "8Gi"))
        await wait_for(lambda: lease_holder(client), START_TIMEOUT_S, message="a leads")
        assert await lease_holder(client) == "sched-a"
        b = await SchedulerProc(tmp_path, apiserver.address, "sched-b", *FAST_LEASE).start()
        a.proc.signal(signal.SIGSTOP)
        await wait_for(lambda: _holder_is(client, "sched-b"), START_TIMEOUT_S,
                       message="b takes over")
        await env.create_pod(make_pod("while-paused").requests(cpu="100m"))
        env.scheduler = b
        await env.wait_bound("while-paused")
        a.proc.signal(signal.SIGCONT)
        await env.create_pod(make_pod("after-resume").requests(cpu="100m"))
        await env.wait_bound("after-resume")
        for name in ("while-paused", "after-resume"):
            event = await env.wait_event(name, "Scheduled")
            assert event.reporting_instance == "sched-b", name
        # a noticed and went back to standby (its log says so).
        await wait_for(lambda: "starting over as a standby" in a.log_tail(200), START_TIMEOUT_S,
                       message="a stepped down")
    finally:
        with contextlib.suppress(Exception):
            a.proc.signal(signal.SIGCONT)
        for s in (a, b):
            if s is not None:
                await s.proc.astop()


async def _holder_is(client: Client, identity: str) -> bool:
    return await lease_holder(client) == identity


# --- many pods ----------------------------------------------------------

def requests_by_node(pods) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"cpu": 0, "memory": 0,
                                                                         "pods": 0})
    for pod in pods:
        if not pod.spec.node_name:
            continue
        total = totals[pod.spec.node_name]
        total["pods"] += 1
        for ctr in pod.spec.containers:
            reqs = ctr.resources.requests
            total["cpu"] += quantity.to_milli(reqs.get("cpu", "0"))
            total["memory"] += quantity.to_int(reqs.get("memory", "0"))
    return totals


async def test_a_burst_of_1000_pods_never_overcommits_a_node(env):
    """50 nodes of different sizes with exactly 1,000 pod-sized slots in all: every
    pod must be placed, and no node may hold more than its allocatable."""
    slot_cpu_m, slot_memory = 100, 64 * 1024 * 1024
    sizes = [10 + 10 * (i % 3) for i in range(50)]  # 10, 20 or 30 slots of cpu
    sizes[-1] += 1000 - sum(sizes)
    nodes = {}
    for i, slots in enumerate(sizes):
        name = f"n{i:02d}"
        # memory allows a few more pods than cpu, pods count a few more still:
        # cpu is the binding limit, the others are checked too.
        nodes[name] = node(name, f"{slots * slot_cpu_m}m", str(slots * slot_memory + slot_memory),
                           pods=str(slots + 2))
    await env.create_nodes(*nodes.values())
    await env.seen_by_scheduler()
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            await env.create_pod(make_pod(f"burst-{i:04d}").requests(
                cpu=f"{slot_cpu_m}m", memory=str(slot_memory)))
    await asyncio.gather(*(create(i) for i in range(1000)))

    async def all_bound():
        pods = (await env.client.list_all("pods", "default")).items
        pending = sum(1 for p in pods if not p.spec.node_name)
        return (pods if len(pods) == 1000 and pending == 0
                else NotYet(f"{len(pods)} pods, {pending} pending"))
    pods = await wait_for(all_bound, 120.0, interval_s=0.5,
                          message=f"all bound; scheduler log:\n{env.scheduler.log_tail()}")
    totals = await asyncio.to_thread(requests_by_node, pods)  # 1,000 pods: off the loop
    over = {}
    for name, b in nodes.items():
        allocatable = b.doc["status"]["allocatable"]
        limit = {"cpu": quantity.to_milli(allocatable["cpu"]),
                 "memory": quantity.to_int(allocatable["memory"]),
                 "pods": int(allocatable["pods"])}
        used = totals.get(name, {"cpu": 0, "memory": 0, "pods": 0})
        if any(used[r] > limit[r] for r in limit):
            over[name] = (used, limit)
    assert over == {}
    # Exactly full: 1,000 slots for 1,000 pods.
    assert sum(t["pods"] for t in totals.values()) == 1000


# --- through the supervisor ---------------------------------------------

async def test_supervisor_runs_a_scheduler_and_a_standby(tmp_path):
    from deploy.supervisor import Cluster, find_home_processes, kill_processes

    cluster = Cluster(tmp_path / "home", schedulers=2, controller_managers=0,
                      progress=lambda line: None)
    try:
        await cluster.start(60.0)
        components = [(s.name, s.state) for s in cluster.status()]
        assert components == [("etcd-0", "running"), ("apiserver-0", "running"),
                              ("scheduler-0", "running"), ("scheduler-1", "running")]
        async with Client(cluster.address("apiserver")) as client:
            holder = await wait_for(lambda: lease_holder(client), START_TIMEOUT_S,
                                    message="a leader")
            assert holder.split("_")[0] in ("scheduler-0", "scheduler-1"), holder
            await client.create(api_object(node("n1", "2", "4Gi")))
            await client.create(api_object(make_pod("p").requests(cpu="1")))

            async def bound():
                return (await client.get("pods", "p", "default")).spec.node_name
            assert await wait_for(bound, BIND_TIMEOUT_S) == "n1"
        config = json.loads((cluster.home / "kubeconfig.json").read_text())
        assert {"scheduler-0", "scheduler-1"} <= set(config["components"])
        assert await cluster.shutdown(30.0) == []
        cluster.assert_no_processes()
    finally:
        await cluster.shutdown(30.0)
        left = find_home_processes(cluster.home, by_cmdline=False)
        if left:
            kill_processes(left)


async def test_pods_for_another_scheduler_are_left_alone(three_nodes):
    env = three_nodes
    await env.create_pod(make_pod("not-ours").requests(cpu="100m").scheduler_name("other"))
    await env.create_pod(make_pod("ours").requests(cpu="100m"))
    # Informer events come in order: once the later pod is bound, the earlier
    # one has been seen, and left alone.
    await env.wait_bound("ours")
    got = await env.client.get("pods", "not-ours", "default")
    assert (got.spec.node_name, list(got.status.conditions)) == ("", [])
    assert await env.events("not-ours", "FailedScheduling") == []
    assert await env.events("not-ours", "Scheduled") == []
