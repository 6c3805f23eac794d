"""The node lifecycle controller: its pure decisions table-driven, then its
syncs on the memory-backed registry with a fake clock
(tests/unit/controller_harness.py)."""
from __future__ import annotations

import pytest

from controller_manager import node_lifecycle as nl
from controller_manager.base import Options
from kubemu import timefmt
from kubemu.api.v1 import core_pb2
from tests.builders import obj
from tests.unit.cli_memclient import NOW_S, MemClient
from tests.unit.controller_harness import ControllerHarness

T0 = timefmt.rfc3339(NOW_S)
GRACE_S = 40.0
STARTUP_S = 60.0


def node(name: str = "n1", ready: str | None = "True", heartbeat: str = T0,
         taints: list[dict] | None = None, pressure: bool = True) -> dict:
    conditions = []
    if ready is not None:
        if pressure:
            conditions += [{"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}",
                            "message": "fine", "lastHeartbeatTime": heartbeat,
                            "lastTransitionTime": T0}
                           for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")]
        conditions.append({"type": "Ready", "status": ready, "reason": "KubeletReady",
                           "message": "kubelet is posting ready status",
                           "lastHeartbeatTime": heartbeat, "lastTransitionTime": T0})
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "creationTimestamp": T0},
            "spec": {"taints": taints or []}, "status": {"conditions": conditions}}


def lease(name: str = "n1", renew: str = T0 + "") -> core_pb2.Node:
    return obj({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": nl.NODE_LEASE_NAMESPACE},
                "spec": {"holderIdentity": name, "renewTime": renew}})


def at(offset_s: float) -> str:
    return timefmt.rfc3339_micro(NOW_S + offset_s)


# ---------------------------------------------------------------- observe

SEEN = nl.Health(probe_s=NOW_S, heartbeat=T0, lease_renew=at(0), ready="True")


@pytest.mark.parametrize("saved, doc, renew, now_off, awake_off, probe_off", [
    pytest.param(None, node(), None, 100, 0, 100, id="first-look-counts-as-alive-now"),
    pytest.param(None, node(ready=None), None, 100, 0, 0,
                 id="never-posted-ready-counts-from-creation"),
    pytest.param(None, node(ready=None), at(90), 100, 0, 100,
                 id="never-posted-but-lease-renewed-is-alive"),
    pytest.param(SEEN, node(), at(0), 30, 0, 0, id="nothing-new-keeps-the-probe"),
    pytest.param(SEEN, node(heartbeat=timefmt.rfc3339(NOW_S + 25)), at(0), 30, 0, 30,
                 id="new-heartbeat-moves-the-probe-to-now"),
    pytest.param(SEEN, node(), at(29), 30, 0, 30, id="lease-renewal-moves-the-probe-to-now"),
    pytest.param(SEEN, node(), at(0), 30, 20, 20, id="paused-controller-restarts-the-count"),
])
def test_observe(saved, doc, renew, now_off, awake_off, probe_off):
    health = nl.observe(saved, obj(doc), lease(renew=renew) if renew else None,
                        NOW_S + now_off, NOW_S + awake_off if awake_off else 0.0)
    assert health.probe_s == NOW_S + probe_off


@pytest.mark.parametrize("doc, now_off, silent", [
    pytest.param(node(), GRACE_S, False, id="at-the-grace-period-not-yet"),
    pytest.param(node(), GRACE_S + 0.1, True, id="past-the-grace-period"),
    pytest.param(node(ready=None), GRACE_S + 1, False, id="startup-grace-for-a-new-node"),
    pytest.param(node(ready=None), STARTUP_S + 1, True, id="past-the-startup-grace"),
])
def test_is_silent(doc, now_off, silent):
    health = nl.Health(probe_s=NOW_S, heartbeat="", lease_renew="", ready="")
    assert nl.is_silent(health, obj(doc), NOW_S + now_off, GRACE_S, STARTUP_S) is silent


# ---------------------------------------------------------------- conditions

def test_unknown_conditions_set_every_kubelet_condition_keeping_heartbeats():
    later = timefmt.rfc3339(NOW_S + 50)
    out = nl.unknown_conditions(obj(node()), later)
    assert [(c.type, c.status, c.reason, c.message, c.last_heartbeat_time,
             c.last_transition_time) for c in out] == [
        (kind, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", T0, later)
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")]
    unknown = obj(node())
    del unknown.status.conditions[:]
    unknown.status.conditions.extend(out)
    assert nl.unknown_conditions(unknown, timefmt.rfc3339(NOW_S + 60)) is None


def test_conditions_never_posted_are_added_as_never_updated():
    later = timefmt.rfc3339(NOW_S + 70)
    out = nl.unknown_conditions(obj(node(ready=None)), later)
    assert [(c.type, c.status, c.reason, c.message, c.last_heartbeat_time,
             c.last_transition_time) for c in out] == [
        (kind, "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.", T0,
         later) for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")]


# ---------------------------------------------------------------- taints

UNREACHABLE = [("node.kubernetes.io/unreachable", "NoSchedule"),
               ("node.kubernetes.io/unreachable", "NoExecute")]
NOT_READY = [("node.kubernetes.io/not-ready", "NoSchedule"),
             ("node.kubernetes.io/not-ready", "NoExecute")]


@pytest.mark.parametrize("ready, evictions, wanted", [
    pytest.param("True", True, [], id="ready"),
    pytest.param("", True, [], id="never-posted"),
    pytest.param("Unknown", True, UNREACHABLE, id="unknown-unreachable"),
    pytest.param("False", True, NOT_READY, id="false-not-ready"),
    pytest.param("Unknown", False, UNREACHABLE[:1], id="full-disruption-no-noexecute"),
])
def test_wanted_taints(ready, evictions, wanted):
    assert nl.wanted_taints(ready, evictions) == wanted


CORDONED = ("node.kubernetes.io/unschedulable", "NoSchedule")


@pytest.mark.parametrize("ready, wanted", [
    pytest.param("True", [CORDONED], id="cordoned"),
    pytest.param("", [CORDONED], id="cordoned-never-posted"),
    pytest.param("Unknown", [UNREACHABLE[0], CORDONED, UNREACHABLE[1]], id="cordoned-and-lost"),
])
def test_a_cordoned_node_gets_the_unschedulable_taint(ready, wanted):
    assert nl.wanted_taints(ready, True, unschedulable=True) == wanted


def taint(key: str, effect: str, added: str = "", value: str = "") -> dict:
    return {"key": key, "effect": effect, "value": value, **({"timeAdded": added} if added
                                                             else {})}


LATER = timefmt.rfc3339(NOW_S + 99)


@pytest.mark.parametrize("taints, wanted, expected", [
    pytest.param([], UNREACHABLE, [("node.kubernetes.io/unreachable", "NoSchedule", LATER),
                                   ("node.kubernetes.io/unreachable", "NoExecute", LATER)],
                 id="adds-with-time-added"),
    pytest.param([taint("dedicated", "NoSchedule", value="gpu")], NOT_READY,
                 [("dedicated", "NoSchedule", ""),
                  ("node.kubernetes.io/not-ready", "NoSchedule", LATER),
                  ("node.kubernetes.io/not-ready", "NoExecute", LATER)],
                 id="keeps-others"),
    pytest.param([taint("node.kubernetes.io/unreachable", "NoSchedule", T0),
                  taint("node.kubernetes.io/unreachable", "NoExecute", T0)], NOT_READY,
                 [("node.kubernetes.io/not-ready", "NoSchedule", LATER),
                  ("node.kubernetes.io/not-ready", "NoExecute", LATER)],
                 id="swaps-unreachable-for-not-ready"),
    pytest.param([taint("node.kubernetes.io/unreachable", "NoSchedule", T0),
                  taint("dedicated", "NoSchedule", value="gpu"),
                  taint("node.kubernetes.io/unreachable", "NoExecute", T0)], [],
                 [("dedicated", "NoSchedule", "")], id="ready-again-removes"),
    pytest.param([taint("node.kubernetes.io/unreachable", "NoSchedule", T0),
                  taint("node.kubernetes.io/unreachable", "NoExecute", T0)], UNREACHABLE,
                 None, id="already-there-keeps-time-added"),
])
def test_reconcile_taints(taints, wanted, expected):
    have = obj(node(taints=taints)).spec.taints
    out = nl.reconcile_taints(have, wanted, LATER)
    assert (None if out is None else [(t.key, t.effect, t.time_added) for t in out]) == expected


# ---------------------------------------------------------------- the controller

class Clock:
    def __init__(self) -> None:
        self.now_s = NOW_S

    def __call__(self) -> float:
        return self.now_s


def pod_doc(name: str, node_name: str, ready: str = "True") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node_name,
                     "containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": ready,
                                       "lastTransitionTime": T0}]}}


@pytest.fixture
async def h():
    client = await MemClient.new()
    options = Options(apiserver="-", node_monitor_grace_s=GRACE_S,
                      node_startup_grace_s=STARTUP_S)
    harness = ControllerHarness(nl.NodeLifecycleController, client, options)
    harness.clock = Clock()
    # Silence is measured on the monotonic clock, times written on the wall
    # clock: one fake clock for both here.
    harness.ctx.clock = harness.ctx.monotonic = harness.clock
    try:
        yield harness
    finally:
        await harness.stop()


async def stored(h, resource: str, name: str, namespace: str = ""):
    return await h.client.get(resource, name, namespace)


async def setup_cluster(h, nodes: list[dict], pods: list[dict] = ()) -> None:
    made = [await h.client.put(doc) for doc in nodes]
    made_pods = []
    for doc in pods:
        pod = await h.client.put({k: v for k, v in doc.items() if k != "status"})
        pod.status.ParseFromString(obj(doc).status.SerializeToString())
        made_pods.append(await h.client.update_status(pod))
    h.cache("nodes", made)
    h.cache("pods", made_pods)
    h.cache("leases", [lease(n["metadata"]["name"], at(0)) for n in nodes])


async def refresh(h) -> None:
    """The informers catch up with the store (as they do after a write)."""
    h.cache("nodes", (await h.client.list("nodes")).items)
    h.cache("pods", (await h.client.list("pods", "default")).items)


def summary(n) -> tuple:
    return (nl.ready_status(n), [(t.key, t.effect) for t in n.spec.taints])


async def test_silent_node_goes_unknown_tainted_and_its_pods_not_ready_then_recovers(h):
    await setup_cluster(h, [node("n1"), node("n2")], [pod_doc("a", "n1"), pod_doc("b", "n2")])
    c = h.controller
    for name in ("n1", "n2"):
        await c.sync(name)   # first look: alive now
    # n2's kubelet keeps renewing; n1's is silent.
    h.clock.now_s = NOW_S + GRACE_S
    h.cache("leases", [lease("n1", at(0)), lease("n2", at(GRACE_S))])
    await c.sync("n1")
    await c.sync("n2")
    assert summary(await stored(h, "nodes", "n1")) == ("True", [])

    h.clock.now_s = NOW_S + GRACE_S + 1
    await c.sync("n1")
    n1 = await stored(h, "nodes", "n1")
    assert summary(n1) == ("Unknown", UNREACHABLE)
    assert {t.time_added for t in n1.spec.taints} == {timefmt.rfc3339(NOW_S + GRACE_S + 1)}
    ready = nl.ready_condition(n1)
    assert (ready.reason, ready.message, ready.last_heartbeat_time) == (
        "NodeStatusUnknown", "Kubelet stopped posting node status.", T0)
    pods = {p.metadata.name: p for p in (await h.client.list("pods", "default")).items}
    assert [(c.type, c.status) for c in pods["a"].status.conditions] == [("Ready", "False")]
    assert [(c.type, c.status) for c in pods["b"].status.conditions] == [("Ready", "True")]

    # Idempotent: a second sync (the informer caught up) writes nothing.
    await refresh(h)
    version = n1.metadata.resource_version
    await c.sync("n1")
    assert (await stored(h, "nodes", "n1")).metadata.resource_version == version

    # The kubelet is back: a new heartbeat, Ready True; the taints go.
    back = obj(node("n1", heartbeat=timefmt.rfc3339(NOW_S + 60)))
    fresh = await stored(h, "nodes", "n1")
    del fresh.status.conditions[:]
    fresh.status.conditions.extend(back.status.conditions)
    await h.client.update_status(fresh)
    await refresh(h)
    h.clock.now_s = NOW_S + 61
    await c.sync("n1")
    assert summary(await stored(h, "nodes", "n1")) == ("True", [])


async def test_kubelet_reporting_not_ready_gets_the_not_ready_taints(h):
    await setup_cluster(h, [node("n1", ready="False"), node("n2")])
    await h.controller.sync("n1")
    assert summary(await stored(h, "nodes", "n1")) == ("False", NOT_READY)


async def test_when_no_node_is_ready_nothing_is_evicted(h):
    """Kubernetes' full disruption: the NoSchedule taint only."""
    await setup_cluster(h, [node("n1")])
    await h.controller.sync("n1")
    h.clock.now_s = NOW_S + GRACE_S + 1
    await h.controller.sync("n1")
    assert summary(await stored(h, "nodes", "n1")) == ("Unknown", UNREACHABLE[:1])


async def test_late_monitor_pass_restarts_the_grace_period(h):
    await setup_cluster(h, [node("n1"), node("n2")])
    await h.controller.sync("n1")
    h.controller.resync()
    h.clock.now_s = NOW_S + GRACE_S + 1   # the process was paused all along
    h.controller.resync()
    await h.controller.sync("n1")
    assert summary(await stored(h, "nodes", "n1")) == ("True", [])


# ---------------------------------------------------------------- flags and `get nodes`

@pytest.mark.parametrize("argv, expected", [
    pytest.param([], (5.0, 50.0, 60.0), id="kubernetes-defaults"),
    pytest.param(["--node-monitor-period", "500ms", "--node-monitor-grace-period", "1m30s",
                  "--node-startup-grace-period", "2"], (0.5, 90.0, 2.0),
                 id="go-durations-or-seconds"),
])
def test_node_lifecycle_flags(argv, expected):
    from controller_manager import __main__ as cm

    options = cm.options_from(cm.parse_args(["--apiserver", "x", *argv]), "x")
    assert (options.node_monitor_period_s, options.node_monitor_grace_s,
            options.node_startup_grace_s) == expected


@pytest.mark.parametrize("flag", ["--node-monitor-grace-period=40x",
                                  "--node-monitor-period=0s"])
def test_bad_node_lifecycle_flags_are_refused(flag, capsys):
    from controller_manager import __main__ as cm

    with pytest.raises(SystemExit) as exited:
        cm.parse_args(["--apiserver", "x", flag])
    assert exited.value.code == 2
    assert flag.split("=")[0] in capsys.readouterr().err


@pytest.mark.parametrize("ready, unschedulable, status", [
    pytest.param("True", False, "Ready", id="ready"),
    pytest.param("False", False, "NotReady", id="false"),
    pytest.param("Unknown", False, "NotReady", id="unknown"),
    pytest.param(None, False, "Unknown", id="never-posted"),
    pytest.param("Unknown", True, "NotReady,SchedulingDisabled", id="cordoned-and-lost"),
    pytest.param(None, True, "Unknown,SchedulingDisabled", id="cordoned-never-posted"),
])
def test_get_nodes_status_column_as_kubectl(ready, unschedulable, status):
    from kubemu.cli.printers import node_status

    doc = {"spec": {"unschedulable": unschedulable},
           "status": {"conditions": [{"type": "Ready", "status": ready}] if ready else []}}
    assert node_status(doc) == status


async def test_a_wall_clock_jump_does_not_make_a_node_silent(h):
    """Silence is counted on the monotonic clock (the tests' --clock-offset-file
    moves only the wall clock)."""
    wall = Clock()
    h.ctx.clock = wall
    await setup_cluster(h, [node("n1"), node("n2")])
    await h.controller.sync("n1")
    wall.now_s = NOW_S + 3600
    h.clock.now_s = NOW_S + 1
    await h.controller.sync("n1")
    assert summary(await stored(h, "nodes", "n1")) == ("True", [])
    h.clock.now_s = NOW_S + GRACE_S + 1
    await h.controller.sync("n1")
    n1 = await stored(h, "nodes", "n1")
    assert summary(n1) == ("Unknown", UNREACHABLE)
    assert {t.time_added for t in n1.spec.taints} == {timefmt.rfc3339(NOW_S + 3600)}


def test_a_node_never_posted_counts_from_its_creation_on_the_monotonic_clock():
    health = nl.observe(None, obj(node(ready=None)), None, now_s=500.0, wall_s=NOW_S + 20)
    assert health.probe_s == 480.0


# ---------------------------------------------------------------- zones and eviction rates

@pytest.mark.parametrize("statuses, state", [
    pytest.param(["True", "True", "True"], "Normal", id="healthy"),
    pytest.param(["Unknown", "True", "True"], "Normal", id="one-lost"),
    pytest.param(["Unknown", "False", "True", "True"], "Normal", id="two-lost-is-not-partial"),
    pytest.param(["Unknown", "Unknown", "Unknown", "True", "True"], "PartialDisruption",
                 id="three-of-five-lost"),
    pytest.param(["Unknown", "Unknown", "Unknown", "True", "True", "True"], "Normal",
                 id="three-of-six-below-threshold"),
    pytest.param(["Unknown", ""], "FullDisruption", id="none-ready"),
    pytest.param(["Unknown"], "FullDisruption", id="the-only-node-lost"),
])
def test_zone_state(statuses, state):
    assert nl.zone_state(statuses, 0.55) == state


@pytest.mark.parametrize("state, nodes, rate", [
    pytest.param("Normal", 3, 0.1, id="normal"),
    pytest.param("PartialDisruption", 50, 0.0, id="partial-small-cluster-stops"),
    pytest.param("PartialDisruption", 51, 0.01, id="partial-large-cluster-secondary"),
    pytest.param("FullDisruption", 100, 0.0, id="full"),
])
def test_eviction_rate(state, nodes, rate):
    assert nl.eviction_rate(state, nodes, 0.1, 0.01, 50) == rate


def test_eviction_limiter_holds_one_token_and_never_reserves():
    limiter = nl.EvictionLimiter(now_s=0.0)
    assert limiter.try_accept(0.0, 0.1) == 0.0
    assert limiter.try_accept(4.0, 0.1) == pytest.approx(6.0)
    assert limiter.try_accept(4.0, 0.1) == pytest.approx(6.0)   # asking again reserves nothing
    assert limiter.try_accept(10.0, 0.1) == 0.0
    assert limiter.try_accept(100.0, 0.0) == float("inf")
    assert limiter.try_accept(1000.0, 0.1) == 0.0               # one token at most
    assert limiter.try_accept(1000.0, 0.1) == pytest.approx(10.0)


async def lose(h, names: list[str]) -> None:
    """Every node synced once (alive), then all of `names` silent past the grace."""
    for name in sorted(n.metadata.name for n in h.ctx.informers.get("nodes").list()):
        await h.controller.sync(name)
    h.clock.now_s = NOW_S + GRACE_S + 1
    alive = [n.metadata.name for n in h.ctx.informers.get("nodes").list()
             if n.metadata.name not in names]
    h.cache("leases", [lease(n, at(GRACE_S)) for n in alive])
    for name in names:
        await h.controller.sync(name)
    await refresh(h)


async def test_new_no_execute_taints_come_at_the_eviction_rate(h):
    """Two of four nodes lost at once: the second waits for the next token (10 s at 0.1/s)."""
    await setup_cluster(h, [node(f"n{i}") for i in range(1, 5)])
    await lose(h, ["n1", "n2"])
    assert [summary(await stored(h, "nodes", n)) for n in ("n1", "n2")] == [
        ("Unknown", UNREACHABLE), ("Unknown", UNREACHABLE[:1])]
    h.clock.now_s += 10
    await h.controller.sync("n2")
    assert summary(await stored(h, "nodes", "n2")) == ("Unknown", UNREACHABLE)


async def test_a_partly_disrupted_small_cluster_gets_no_new_no_execute_taints(h):
    await setup_cluster(h, [node(f"n{i}") for i in range(1, 6)])
    await lose(h, ["n1", "n2", "n3"])
    # n1 was tainted before the zone looked partly disrupted; the others are not.
    assert [summary(await stored(h, "nodes", n)) for n in ("n1", "n2", "n3")] == [
        ("Unknown", UNREACHABLE), ("Unknown", UNREACHABLE[:1]), ("Unknown", UNREACHABLE[:1])]
    h.clock.now_s += 60
    for name in ("n1", "n2", "n3"):
        await h.controller.sync(name)
    assert [summary(await stored(h, "nodes", n)) for n in ("n1", "n2", "n3")] == [
        ("Unknown", UNREACHABLE), ("Unknown", UNREACHABLE[:1]), ("Unknown", UNREACHABLE[:1])]


def test_eviction_rate_flags():
    from controller_manager import __main__ as cm

    options = cm.options_from(cm.parse_args([
        "--apiserver", "x", "--node-eviction-rate", "2", "--secondary-node-eviction-rate", "0",
        "--unhealthy-zone-threshold", "0.7", "--large-cluster-size-threshold", "10"]), "x")
    assert (options.node_eviction_rate, options.secondary_node_eviction_rate,
            options.unhealthy_zone_threshold, options.large_cluster_size_threshold) == (
        2.0, 0.0, 0.7, 10)
    defaults = cm.options_from(cm.parse_args(["--apiserver", "x"]), "x")
    assert (defaults.node_eviction_rate, defaults.secondary_node_eviction_rate,
            defaults.unhealthy_zone_threshold, defaults.large_cluster_size_threshold) == (
        0.1, 0.01, 0.55, 50)


async def test_cordon_adds_the_unschedulable_taint_and_uncordon_removes_it(h):
    cordoned = node("n1")
    cordoned["spec"]["unschedulable"] = True
    await setup_cluster(h, [cordoned, node("n2")])
    await h.controller.sync("n1")
    n1 = await stored(h, "nodes", "n1")
    assert [(t.key, t.effect, t.time_added) for t in n1.spec.taints] == [
        ("node.kubernetes.io/unschedulable", "NoSchedule", T0)]
    n1.spec.unschedulable = False
    await h.client.update(n1)
    await refresh(h)
    await h.controller.sync("n1")
    assert summary(await stored(h, "nodes", "n1")) == ("True", [])
