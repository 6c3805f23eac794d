"""The DaemonSet controller's pure logic: which nodes run a daemon pod
(nodeSelector, required node affinity, taints against the daemon
tolerations), what each node needs (create, delete the excess or the failed,
with backoff), the rolling update's choices within maxUnavailable and
maxSurge, and the status numbers."""
from __future__ import annotations

from typing import Any

import pytest

from kubemu import timefmt
from kubemu.api import codec
from kubemu.api.v1 import apps_pb2, core_pb2

from controller_manager import daemonset as dsc
from controller_manager import history
from controller_manager.deployment_util import compute_hash
from tests.unit.cli_memclient import MemClient
from tests.unit.controller_harness import ControllerHarness
from tests.unit.scheduler_builders import FakeClock, make_node


def daemon_set(*, node_selector: dict | None = None, tolerations: list | None = None,
               affinity_terms: list | None = None, node_name: str = "",
               host_network: bool = False, max_unavailable: Any = 1, max_surge: Any = 0,
               strategy: str = "RollingUpdate", min_ready_s: int = 0) -> apps_pb2.DaemonSet:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if affinity_terms is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": affinity_terms}}}
    if node_name:
        spec["nodeName"] = node_name
    if host_network:
        spec["hostNetwork"] = True
    update: dict = {"type": strategy}
    if strategy == "RollingUpdate":
        update["rollingUpdate"] = {"maxUnavailable": max_unavailable, "maxSurge": max_surge}
    return codec.from_dict(apps_pb2.DaemonSet, {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "ds", "namespace": "default", "uid": "ds-uid", "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "minReadySeconds": min_ready_s,
                 "updateStrategy": update,
                 "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec}}})


def expr(key: str, op: str, *values: str) -> dict:
    return {"key": key, "operator": op, "values": list(values)}


# ---------------------------------------------------------------- eligibility

ELIGIBILITY = [
    # id, node, daemon set, (should run, should continue running)
    ("plain node", make_node("n1"), daemon_set(), (True, True)),
    ("nodeSelector matches", make_node("n1").labels(disk="ssd"),
     daemon_set(node_selector={"disk": "ssd"}), (True, True)),
    ("nodeSelector does not match", make_node("n1").labels(disk="hdd"),
     daemon_set(node_selector={"disk": "ssd"}), (False, False)),
    ("nodeSelector label missing", make_node("n1"),
     daemon_set(node_selector={"disk": "ssd"}), (False, False)),
    ("affinity In matches", make_node("n1").labels(zone="a"),
     daemon_set(affinity_terms=[{"matchExpressions": [expr("zone", "In", "a", "b")]}]),
     (True, True)),
    ("affinity NotIn excludes", make_node("n1").labels(zone="a"),
     daemon_set(affinity_terms=[{"matchExpressions": [expr("zone", "NotIn", "a")]}]),
     (False, False)),
    ("affinity terms are OR'ed", make_node("n1").labels(zone="b"),
     daemon_set(affinity_terms=[{"matchExpressions": [expr("zone", "In", "a")]},
                                {"matchExpressions": [expr("zone", "In", "b")]}]),
     (True, True)),
    ("affinity expressions are AND'ed", make_node("n1").labels(zone="a"),
     daemon_set(affinity_terms=[{"matchExpressions": [expr("zone", "In", "a"),
                                                      expr("gpu", "Exists")]}]),
     (False, False)),
    ("affinity DoesNotExist", make_node("n1"),
     daemon_set(affinity_terms=[{"matchExpressions": [expr("gpu", "DoesNotExist")]}]),
     (True, True)),
    ("affinity Gt", make_node("n1").labels(cores="8"),
     daemon_set(affinity_terms=[{"matchExpressions": [expr("cores", "Gt", "4")]}]),
     (True, True)),
    ("affinity matchFields metadata.name", make_node("n2"),
     daemon_set(affinity_terms=[{"matchFields": [expr("metadata.name", "In", "n1")]}]),
     (False, False)),
    ("empty term matches nothing", make_node("n1"),
     daemon_set(affinity_terms=[{}]), (False, False)),
    ("template nodeName elsewhere", make_node("n1"), daemon_set(node_name="n2"), (False, False)),
    ("template nodeName here", make_node("n1"), daemon_set(node_name="n1"), (True, True)),
    ("untolerated NoSchedule: keep a running pod", make_node("n1").taint("dedicated", "infra"),
     daemon_set(), (False, True)),
    ("untolerated NoExecute: evict", make_node("n1").taint("dedicated", "infra", "NoExecute"),
     daemon_set(), (False, False)),
    ("PreferNoSchedule is ignored", make_node("n1").taint("soft", "", "PreferNoSchedule"),
     daemon_set(), (True, True)),
    ("Equal toleration of the value", make_node("n1").taint("dedicated", "infra"),
     daemon_set(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "infra",
                              "effect": "NoSchedule"}]), (True, True)),
    ("Equal toleration of another value", make_node("n1").taint("dedicated", "infra"),
     daemon_set(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                              "effect": "NoSchedule"}]), (False, True)),
    ("Exists toleration, empty effect", make_node("n1").taint("dedicated", "x", "NoExecute"),
     daemon_set(tolerations=[{"key": "dedicated", "operator": "Exists"}]), (True, True)),
    ("toleration of another effect", make_node("n1").taint("dedicated", "x", "NoExecute"),
     daemon_set(tolerations=[{"key": "dedicated", "operator": "Exists",
                              "effect": "NoSchedule"}]), (False, False)),
    ("empty key Exists tolerates all", make_node("n1").taint("a", "1").taint("b", "", "NoExecute"),
     daemon_set(tolerations=[{"operator": "Exists"}]), (True, True)),
    ("daemon toleration: unschedulable", make_node("n1").taint("node.kubernetes.io/unschedulable"),
     daemon_set(), (True, True)),
    ("daemon toleration: not-ready NoExecute",
     make_node("n1").taint("node.kubernetes.io/not-ready", "", "NoExecute"), daemon_set(),
     (True, True)),
    ("daemon toleration: unreachable NoExecute",
     make_node("n1").taint("node.kubernetes.io/unreachable", "", "NoExecute"), daemon_set(),
     (True, True)),
    ("daemon toleration: pressure",
     make_node("n1").taint("node.kubernetes.io/disk-pressure")
     .taint("node.kubernetes.io/memory-pressure").taint("node.kubernetes.io/pid-pressure"),
     daemon_set(), (True, True)),
    ("network-unavailable: not tolerated without hostNetwork",
     make_node("n1").taint("node.kubernetes.io/network-unavailable"), daemon_set(),
     (False, True)),
    ("network-unavailable: tolerated with hostNetwork",
     make_node("n1").taint("node.kubernetes.io/network-unavailable"),
     daemon_set(host_network=True), (True, True)),
]


@pytest.mark.parametrize("node, ds, expected", [case[1:] for case in ELIGIBILITY],
                         ids=[case[0] for case in ELIGIBILITY])
def test_node_should_run(node, ds, expected):
    assert dsc.node_should_run(node.build(), ds) == expected


def test_daemon_tolerations_replace_a_matching_one_and_keep_the_others():
    spec = core_pb2.PodSpec(tolerations=[
        core_pb2.Toleration(key="node.kubernetes.io/not-ready", operator="Exists",
                            effect="NoExecute", toleration_seconds=300),
        core_pb2.Toleration(key="mine", operator="Exists")])
    dsc.add_daemon_tolerations(spec)
    got = [(t.key, t.effect, t.HasField("toleration_seconds")) for t in spec.tolerations]
    assert got == [("node.kubernetes.io/not-ready", "NoExecute", False),
                   ("mine", "", False),
                   ("node.kubernetes.io/unreachable", "NoExecute", False),
                   ("node.kubernetes.io/disk-pressure", "NoSchedule", False),
                   ("node.kubernetes.io/memory-pressure", "NoSchedule", False),
                   ("node.kubernetes.io/pid-pressure", "NoSchedule", False),
                   ("node.kubernetes.io/unschedulable", "NoSchedule", False)]
    dsc.add_daemon_tolerations(spec)
    assert len(spec.tolerations) == 7, "adding twice changes nothing"


def test_node_name_affinity_replaces_required_terms_and_keeps_preferred():
    spec = codec.from_dict(core_pb2.PodSpec, {
        "containers": [{"name": "c", "image": "x"}],
        "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [expr("zone", "In", "a")]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [expr("ssd", "Exists")]}}]}}})
    dsc.replace_node_name_affinity(spec, "n7")
    affinity = codec.to_dict(spec)["affinity"]["nodeAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}
    assert len(affinity["preferredDuringSchedulingIgnoredDuringExecution"]) == 1
    pod = core_pb2.Pod(spec=spec)
    assert dsc.target_node_name(pod) == "n7"
    pod.spec.node_name = "bound"
    assert dsc.target_node_name(pod) == "bound"
    assert dsc.target_node_name(core_pb2.Pod()) == ""


# ---------------------------------------------------------------- pods

def pod(name: str, node: str, *, hash_: str = "new", phase: str = "Running",
        ready_since: float | None = None, created: float = 0.0,
        terminating: bool = False, scheduled: bool = True) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    p.metadata.labels["controller-revision-hash"] = hash_
    p.metadata.creation_timestamp = timefmt.rfc3339(created)
    if terminating:
        p.metadata.deletion_timestamp = timefmt.rfc3339(created + 1)
    if scheduled:
        p.spec.node_name = node
    dsc.replace_node_name_affinity(p.spec, node)
    p.status.phase = phase
    if ready_since is not None:
        cond = p.status.conditions.add()
        cond.type, cond.status = "Ready", "True"
        cond.last_transition_time = timefmt.rfc3339(ready_since)
    return p


NOW = 10_000.0


def plan_for(node, ds, pods, backoff=None, now: float = 100.0):
    backoff = dsc.Backoff(1.0, 8.0, FakeClock()) if backoff is None else backoff
    return dsc.pods_should_be_on_node(node.build(), ds, pods, "new", backoff, now, NOW)


def names(pods) -> list[str]:
    return [p.metadata.name for p in pods]


def test_node_plan_creates_on_an_empty_eligible_node_and_not_on_a_tainted_one():
    assert plan_for(make_node("n1"), daemon_set(), []).create
    tainted = plan_for(make_node("n1").taint("x"), daemon_set(), [])
    assert (tainted.create, tainted.delete) == (False, [])


def test_node_plan_waits_for_a_terminating_pod_before_creating():
    plan = plan_for(make_node("n1"), daemon_set(), [pod("old", "n1", terminating=True)])
    assert (plan.create, plan.delete) == (False, [])


def test_node_plan_deletes_every_pod_of_a_node_that_should_not_run_one():
    plan = plan_for(make_node("n1").taint("x", "", "NoExecute"), daemon_set(),
                    [pod("a", "n1"), pod("b", "n1"), pod("gone", "n1", terminating=True)])
    assert names(plan.delete) == ["a", "b"]


def test_node_plan_keeps_the_oldest_scheduled_pod_and_deletes_the_excess():
    pods = [pod("young", "n1", created=30), pod("old", "n1", created=10),
            pod("pending", "n1", created=1, scheduled=False)]
    assert names(plan_for(make_node("n1"), daemon_set(), pods).delete) == ["young", "pending"]


def test_node_plan_deletes_a_failed_pod_with_backoff_and_says_so():
    clock = FakeClock(100.0)
    backoff = dsc.Backoff(1.0, 8.0, clock)
    failed = [pod("bad", "n1", phase="Failed")]
    first = plan_for(make_node("n1"), daemon_set(), failed, backoff, now=100.0)
    assert names(first.delete) == ["bad"]
    assert first.events == [("Warning", "FailedDaemonPod",
                             "Found failed daemon pod default/bad on node n1, will try to kill it")]
    # The replacement fails at once: within 1 s it is left alone and looked at again later.
    again = plan_for(make_node("n1"), daemon_set(), failed, backoff, now=100.5)
    assert (again.delete, again.requeue_after_s) == ([], 1.0)
    # After the delay it goes, and the next delay doubles.
    third = plan_for(make_node("n1"), daemon_set(), failed, backoff, now=101.5)
    assert names(third.delete) == ["bad"]
    assert plan_for(make_node("n1"), daemon_set(), failed, backoff,
                    now=102.0).requeue_after_s == 2.0


def test_node_plan_deletes_a_succeeded_pod():
    plan = plan_for(make_node("n1"), daemon_set(), [pod("done", "n1", phase="Succeeded")])
    assert names(plan.delete) == ["done"]
    assert plan.events[0][:2] == ("Normal", "SucceededDaemonPod")


@pytest.mark.parametrize("old_ready, new_available, deleted", [
    (True, False, []),          # both kept while the new one starts
    (True, True, ["old"]),      # new available: the old one goes
    (False, False, ["old"]),    # old not ready: no reason to keep it
], ids=["new-starting", "new-available", "old-not-ready"])
def test_node_plan_with_surge_keeps_old_until_new_is_available(old_ready, new_available, deleted):
    pods = [pod("old", "n1", hash_="old", created=1, ready_since=0 if old_ready else None),
            pod("new", "n1", created=2, ready_since=0 if new_available else None),
            pod("extra", "n1", created=3)]
    plan = plan_for(make_node("n1"), daemon_set(max_surge=1, max_unavailable=0), pods)
    assert names(plan.delete) == ["extra", *deleted]


# ---------------------------------------------------------------- rolling update

@pytest.mark.parametrize("value, total, expected", [
    (1, 10, 1), ("10%", 10, 1), ("25%", 10, 3), ("1%", 1, 1), ("0%", 5, 0), (None, 5, 0)])
def test_scaled_value_rounds_up(value, total, expected):
    assert dsc.scaled_value(value, total, True) == expected


def test_scaled_value_refuses_a_malformed_percent():
    with pytest.raises(ValueError):
        dsc.scaled_value("ten%", 10, True)


@pytest.mark.parametrize("surge, unavailable, desired, expected", [
    (0, 1, 4, (0, 1)), ("50%", 0, 4, (2, 0)), (0, "25%", 3, (0, 1)),
    (0, 0, 3, (0, 1)),   # neither would never progress: one unavailable allowed
])
def test_surge_and_unavailable(surge, unavailable, desired, expected):
    ds = daemon_set(max_surge=surge, max_unavailable=unavailable)
    assert dsc.surge_and_unavailable(ds, desired) == expected


def test_on_delete_has_no_rolling_numbers():
    assert dsc.surge_and_unavailable(daemon_set(strategy="OnDelete"), 5) == (0, 0)


def avail(name: str, node: str, hash_: str = "old") -> core_pb2.Pod:
    return pod(name, node, hash_=hash_, ready_since=0)


ROLLING = [
    # id, nodes -> pods, maxSurge, maxUnavailable, (deleted, created-on)
    ("deletes one available old pod",
     {"a": [avail("pa", "a")], "b": [avail("pb", "b")], "c": [avail("pc", "c")]}, 0, 1,
     (["pa"], [])),
    ("maxUnavailable 2",
     {"a": [avail("pa", "a")], "b": [avail("pb", "b")], "c": [avail("pc", "c")]}, 0, 2,
     (["pa", "pb"], [])),
    ("an unavailable new pod uses the budget",
     {"a": [pod("na", "a")], "b": [avail("pb", "b")]}, 0, 1, ([], [])),
    ("a node without a pod uses the budget",
     {"a": [], "b": [avail("pb", "b")]}, 0, 1, ([], [])),
    ("an unavailable old pod is always replaced",
     {"a": [pod("pa", "a", hash_="old")], "b": [pod("na", "b")], "c": [avail("pc", "c")]}, 0, 1,
     (["pa"], [])),
    ("done: nothing to do",
     {"a": [avail("na", "a", "new")], "b": [avail("nb", "b", "new")]}, 0, 1, ([], [])),
    ("surge: new pods beside old ones, up to maxSurge",
     {"a": [avail("pa", "a")], "b": [avail("pb", "b")], "c": [avail("pc", "c")]}, 2, 0,
     ([], ["a", "b"])),
    ("surge: a starting new pod counts against maxSurge",
     {"a": [avail("pa", "a"), pod("na", "a")], "b": [avail("pb", "b")]}, 1, 0, ([], [])),
    ("surge: old pod goes when the new one is available",
     {"a": [avail("pa", "a"), avail("na", "a", "new")], "b": [avail("pb", "b")]}, 1, 0,
     (["pa"], ["b"])),
    ("surge: an unavailable old pod gets its new pod at once",
     {"a": [pod("pa", "a", hash_="old")], "b": [avail("pb", "b")],
      "c": [avail("pc", "c"), pod("nc", "c")]}, 1, 0, ([], ["a"])),
    ("surge: a lone new pod is the manage loop's, not a surge",
     {"a": [pod("na", "a")], "b": [avail("pb", "b")]}, 1, 0, ([], ["b"])),
]


@pytest.mark.parametrize("nodes_to_pods, surge, unavailable, expected",
                         [case[1:] for case in ROLLING], ids=[case[0] for case in ROLLING])
def test_rolling_update_plan(nodes_to_pods, surge, unavailable, expected):
    deleted, created = dsc.rolling_update_plan(daemon_set(), nodes_to_pods, "new", surge,
                                               unavailable, NOW)
    assert (names(deleted), created) == expected


def test_rolling_update_respects_min_ready_seconds():
    ds = daemon_set(min_ready_s=30)
    nodes = {"a": [pod("na", "a", ready_since=NOW - 10)], "b": [avail("pb", "b")]}
    assert dsc.rolling_update_plan(ds, nodes, "new", 0, 1, NOW) == ([], [])
    nodes["a"] = [pod("na", "a", ready_since=NOW - 31)]
    assert names(dsc.rolling_update_plan(ds, nodes, "new", 0, 1, NOW)[0]) == ["pb"]


# ---------------------------------------------------------------- status

def test_status_numbers():
    ds = daemon_set()
    nodes = [make_node("a").build(), make_node("b").build(), make_node("c").build(),
             make_node("tainted").taint("x").build()]
    by_node = {"a": [avail("pa", "a", "new")], "b": [pod("pb", "b", hash_="old")],
               "tainted": [avail("pt", "tainted", "old")]}
    numbers = dsc.status_numbers(ds, nodes, by_node, "new", NOW)
    assert numbers == dsc.Numbers(desired=3, current=2, misscheduled=1, ready=1, updated=1,
                                  available=1)
    assert numbers.unavailable == 2
    status = dsc.status_with(ds, numbers, observed=True)
    assert codec.to_dict(status) == {
        "currentNumberScheduled": 2, "numberMisscheduled": 1, "desiredNumberScheduled": 3,
        "numberReady": 1, "observedGeneration": 1, "updatedNumberScheduled": 1,
        "numberAvailable": 1, "numberUnavailable": 2}


def test_status_zeroes_are_printed():
    status = dsc.status_with(daemon_set(), dsc.Numbers(), observed=False)
    assert codec.to_dict(status) == {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                     "desiredNumberScheduled": 0, "numberReady": 0}


# ---------------------------------------------------------------- hash and backoff

def test_template_hash_is_stable_and_changes_with_template_and_collisions():
    a, b = daemon_set(), daemon_set()
    assert dsc.compute_hash(a.spec.template, None) == dsc.compute_hash(b.spec.template, None)
    h = dsc.compute_hash(a.spec.template, None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    b.spec.template.spec.containers[0].image = "busybox:2"
    assert dsc.compute_hash(b.spec.template, None) != h
    assert dsc.compute_hash(a.spec.template, 1) != h


def test_backoff_doubles_caps_and_forgets():
    backoff = dsc.Backoff(1.0, 4.0, FakeClock())
    delays = []
    for step in range(5):
        backoff.next("k", float(step))
        delays.append(backoff.get("k"))
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.in_backoff_since_update("k", 5.0)
    assert not backoff.in_backoff_since_update("k", 8.0)
    backoff.next("k", 100.0)  # unused for more than 2 * max: starts over
    assert backoff.get("k") == 1.0
    backoff.gc(200.0)
    assert len(backoff) == 0
    with pytest.raises(ValueError):
        dsc.Backoff(0.0, 1.0, FakeClock())


# ---------------------------------------------------------------- revisions

async def test_revisions_are_named_by_the_template_hash_and_renumbered_on_rollback():
    """constructHistory: "<ds>-<ComputeHash>" labelled controller-revision-hash,
    holding getPatch; reused while the template stays; an older template
    coming back is renumbered, not copied."""
    h = ControllerHarness(dsc.DaemonSetController, await MemClient.new())
    try:
        ds = daemon_set()
        ds.metadata.ClearField("uid")
        ds.metadata.annotations["note"] = "kept"
        ds = await h.client.create(ds)

        async def construct(ds: Any) -> tuple[str, list[str]]:
            h.cache("controllerrevisions", (await h.client.list("controllerrevisions")).items)
            hash_, old = await h.controller.history.construct(ds, [])
            return hash_, sorted(r.metadata.name for r in old)

        blue_hash, old = await construct(ds)
        assert (blue_hash, old) == (compute_hash(ds.spec.template, None), [])
        blue = await h.client.get("controllerrevisions", f"ds-{blue_hash}", "default")
        assert dict(blue.metadata.labels) == {"app": "d", "controller-revision-hash": blue_hash}
        assert dict(blue.metadata.annotations) == {"note": "kept"}
        assert history.revision_data(blue) == history.template_patch(ds)
        assert blue.revision == 1 and blue.metadata.owner_references[0].uid == ds.metadata.uid
        assert await construct(ds) == (blue_hash, [])

        green = dsc.copy(ds)
        green.spec.template.spec.containers[0].image = "busybox:2"
        green_hash, old = await construct(green)
        assert green_hash != blue_hash and old == [f"ds-{blue_hash}"]
        assert await construct(ds) == (blue_hash, [f"ds-{green_hash}"])
        revisions = (await h.client.list("controllerrevisions")).items
        assert sorted((r.metadata.name, r.revision) for r in revisions) == sorted(
            [(f"ds-{blue_hash}", 3), (f"ds-{green_hash}", 2)])
    finally:
        await h.stop()
