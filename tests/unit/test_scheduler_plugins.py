"""Scheduler plugins, one table per plugin: fits / does not fit with the exact reason, scores."""
from __future__ import annotations

import pytest

from scheduler import podutil
from scheduler.framework import Code, NodeInfo, PodInfo, snapshot_of
from scheduler.plugins import (default_registry, inter_pod_affinity, node_affinity, node_name,
                               node_ports, node_resources_balanced_allocation,
                               node_resources_fit, node_resources_least_allocated,
                               node_unschedulable, pod_topology_spread, taint_toleration)
from tests.unit.scheduler_builders import (HOSTNAME, ZONE, affinity_term, make_node, make_pod,
                                           selector)

OK = None  # expected reason when the pod fits
RESOLVABLE = Code.UNSCHEDULABLE
UNRESOLVABLE = Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def node_info(node, *pods) -> NodeInfo:
    ni = NodeInfo(node.build())
    for pod in pods:
        ni.add_pod(pod.build())
    return ni


def run_filter(plugin, pod, ni, snapshot=None):
    return plugin.filter(pod.build() if hasattr(pod, "build") else pod, ni,
                         snapshot if snapshot is not None else snapshot_of([ni.node]))


def assert_status(status, reason, code=None):
    if reason is OK:
        assert status.is_success(), status
        return
    assert status.reasons == ((reason,) if isinstance(reason, str) else tuple(reason))
    if code is not None:
        assert status.code == code


def test_registry_names_every_plugin_like_kube_scheduler():
    assert sorted(default_registry()) == [
        "InterPodAffinity", "NodeAffinity", "NodeName", "NodePorts",
        "NodeResourcesBalancedAllocation", "NodeResourcesFit", "NodeResourcesLeastAllocated",
        "NodeUnschedulable", "PodTopologySpread", "TaintToleration"]


# ---------------------------------------------------------------- NodeName

@pytest.mark.parametrize("pod, reason", [
    (make_pod("a"), OK),
    (make_pod("a").on_node("n1"), OK),
    (make_pod("a").on_node("n2"), "node(s) didn't match the requested node name"),
], ids=["no-node-name", "same-node", "other-node"])
def test_node_name(pod, reason):
    ni = node_info(make_node("n1"))
    assert node_name.fits(pod.build(), ni) is (reason is OK)
    assert_status(run_filter(node_name.NodeName(), pod, ni), reason, UNRESOLVABLE)


# ---------------------------------------------------------------- NodeUnschedulable

UNSCHEDULABLE_KEY = "node.kubernetes.io/unschedulable"


@pytest.mark.parametrize("node, pod, reason", [
    (make_node("n1"), make_pod("a"), OK),
    (make_node("n1").unschedulable(), make_pod("a"), "node(s) were unschedulable"),
    (make_node("n1").unschedulable(),
     make_pod("a").toleration(UNSCHEDULABLE_KEY, "Exists", effect="NoSchedule"), OK),
    (make_node("n1").unschedulable(), make_pod("a").toleration(operator="Exists"), OK),
    (make_node("n1").unschedulable(),
     make_pod("a").toleration(UNSCHEDULABLE_KEY, "Exists", effect="NoExecute"),
     "node(s) were unschedulable"),
    (make_node("n1").unschedulable(False), make_pod("a"), OK),
], ids=["schedulable", "cordoned", "tolerates-taint", "tolerates-everything",
        "wrong-effect", "explicit-false"])
def test_node_unschedulable(node, pod, reason):
    ni = node_info(node)
    assert node_unschedulable.fits(pod.build(), ni) is (reason is OK)
    assert_status(run_filter(node_unschedulable.NodeUnschedulable(), pod, ni), reason,
                  UNRESOLVABLE)


# ---------------------------------------------------------------- TaintToleration

GPU_TAINT = "node(s) had untolerated taint {dedicated: gpu}"


@pytest.mark.parametrize("node, pod, reason", [
    (make_node("n1"), make_pod("a"), OK),
    (make_node("n1").taint("dedicated", "gpu"), make_pod("a"), GPU_TAINT),
    (make_node("n1").taint("dedicated"), make_pod("a"),
     "node(s) had untolerated taint {dedicated: }"),
    (make_node("n1").taint("dedicated", "gpu", "NoExecute"), make_pod("a"), GPU_TAINT),
    (make_node("n1").taint("dedicated", "gpu", "PreferNoSchedule"), make_pod("a"), OK),
    (make_node("n1").taint("dedicated", "gpu"),
     make_pod("a").toleration("dedicated", "Equal", "gpu", "NoSchedule"), OK),
    (make_node("n1").taint("dedicated", "gpu"),
     make_pod("a").toleration("dedicated", "", "gpu", "NoSchedule"), OK),
    (make_node("n1").taint("dedicated", "gpu"),
     make_pod("a").toleration("dedicated", "Equal", "cpu", "NoSchedule"), GPU_TAINT),
    (make_node("n1").taint("dedicated", "gpu"),
     make_pod("a").toleration("dedicated", "Exists", effect="NoSchedule"), OK),
    (make_node("n1").taint("dedicated", "gpu"), make_pod("a").toleration(operator="Exists"),
     OK),
    (make_node("n1").taint("dedicated", "gpu"),
     make_pod("a").toleration("dedicated", "Exists"), OK),
    (make_node("n1").taint("dedicated", "gpu"),
     make_pod("a").toleration("dedicated", "Exists", effect="NoExecute"), GPU_TAINT),
    (make_node("n1").taint("dedicated", "gpu").taint("zone", "x", "NoExecute"),
     make_pod("a").toleration("dedicated", "Exists"),
     "node(s) had untolerated taint {zone: x}"),
    (make_node("n1").taint("dedicated", "gpu"),
     make_pod("a").toleration("other", "Exists"), GPU_TAINT),
], ids=["no-taints", "untolerated", "empty-value", "no-execute", "prefer-no-schedule-passes",
        "equal-same-value", "empty-operator-is-equal", "equal-other-value", "exists-key",
        "exists-empty-key-matches-all", "empty-effect-matches-all", "other-effect",
        "second-taint-untolerated", "other-key"])
def test_taint_toleration_filter(node, pod, reason):
    ni = node_info(node)
    assert taint_toleration.fits(pod.build(), ni) is (reason is OK)
    assert_status(run_filter(taint_toleration.TaintToleration(), pod, ni), reason, UNRESOLVABLE)


def test_taint_toleration_score_prefers_fewer_intolerable_prefer_no_schedule_taints():
    plugin = taint_toleration.TaintToleration()
    prefer = "PreferNoSchedule"
    nodes = [make_node("n0"),
             make_node("n1").taint("a", "1", prefer),
             make_node("n2").taint("a", "1", prefer).taint("b", "2", prefer),
             make_node("n3").taint("a", "1", prefer).taint("c", "3", prefer)]
    pod = make_pod("p").toleration("c", "Exists", effect="PreferNoSchedule").build()
    snap = snapshot_of([n.build() for n in nodes])
    raw = {ni.name: plugin.score(pod, ni, snap) for ni in snap}
    assert raw == {"n0": 0, "n1": 1, "n2": 2, "n3": 1}
    assert plugin.normalize(pod, raw, snap) == {"n0": 100, "n1": 50, "n2": 0, "n3": 50}


def test_taint_toleration_score_all_clean_is_max():
    assert taint_toleration.TaintToleration().normalize(None, {"a": 0, "b": 0}) == {
        "a": 100, "b": 100}


# ---------------------------------------------------------------- NodeAffinity

AFFINITY = "node(s) didn't match Pod's node affinity/selector"
LABELLED = make_node("n1").labels(disk="ssd", gen="5", zone="a")


@pytest.mark.parametrize("pod, reason", [
    (make_pod("a"), OK),
    (make_pod("a").node_selector(disk="ssd"), OK),
    (make_pod("a").node_selector(disk="hdd"), AFFINITY),
    (make_pod("a").node_selector(disk="ssd", missing="x"), AFFINITY),
    (make_pod("a").required_node_terms([("disk", "In", ["ssd", "nvme"])]), OK),
    (make_pod("a").required_node_terms([("disk", "In", ["hdd"])]), AFFINITY),
    (make_pod("a").required_node_terms([("disk", "NotIn", ["hdd"])]), OK),
    (make_pod("a").required_node_terms([("disk", "NotIn", ["ssd"])]), AFFINITY),
    (make_pod("a").required_node_terms([("absent", "NotIn", ["x"])]), OK),
    (make_pod("a").required_node_terms([("disk", "Exists")]), OK),
    (make_pod("a").required_node_terms([("absent", "Exists")]), AFFINITY),
    (make_pod("a").required_node_terms([("absent", "DoesNotExist")]), OK),
    (make_pod("a").required_node_terms([("disk", "DoesNotExist")]), AFFINITY),
    (make_pod("a").required_node_terms([("gen", "Gt", ["4"])]), OK),
    (make_pod("a").required_node_terms([("gen", "Gt", ["5"])]), AFFINITY),
    (make_pod("a").required_node_terms([("gen", "Lt", ["6"])]), OK),
    (make_pod("a").required_node_terms([("disk", "Lt", ["6"])]), AFFINITY),
    (make_pod("a").required_node_terms([("gen", "Gt", ["abc"])]), AFFINITY),
    (make_pod("a").required_node_terms([("disk", "In", ["ssd"]), ("zone", "In", ["a"])]), OK),
    (make_pod("a").required_node_terms([("disk", "In", ["ssd"]), ("zone", "In", ["b"])]),
     AFFINITY),
    (make_pod("a").required_node_terms([("disk", "In", ["hdd"])], [("zone", "In", ["a"])]),
     OK),
    (make_pod("a").required_node_terms([("disk", "In", ["hdd"])], [("zone", "In", ["b"])]),
     AFFINITY),
    (make_pod("a").required_node_terms(), AFFINITY),
    (make_pod("a").required_node_terms([]), AFFINITY),
    (make_pod("a").required_node_terms(fields=[("metadata.name", "In", ["n1"])]), OK),
    (make_pod("a").required_node_terms(fields=[("metadata.name", "In", ["n2"])]), AFFINITY),
    (make_pod("a").required_node_terms(fields=[("metadata.name", "NotIn", ["n2"])]), OK),
    (make_pod("a").node_selector(disk="hdd").required_node_terms([("disk", "Exists")]),
     AFFINITY),
    (make_pod("a").required_node_terms([("disk", "Bogus", ["ssd"])]), AFFINITY),
], ids=["nothing-required", "selector-match", "selector-other-value", "selector-missing-label",
        "in", "in-miss", "notin", "notin-miss", "notin-absent-label", "exists", "exists-miss",
        "does-not-exist", "does-not-exist-miss", "gt", "gt-equal", "lt", "lt-not-a-number",
        "gt-bad-value", "and-within-term", "and-within-term-miss", "or-between-terms",
        "or-between-terms-miss", "no-terms", "empty-term", "match-fields-name",
        "match-fields-other-name", "match-fields-notin", "selector-and-affinity-both-needed",
        "unknown-operator"])
def test_node_affinity_filter(pod, reason):
    ni = node_info(LABELLED)
    assert node_affinity.fits(pod.build(), ni) is (reason is OK)
    assert_status(run_filter(node_affinity.NodeAffinity(), pod, ni), reason, UNRESOLVABLE)


def test_node_affinity_score_sums_matching_preferred_weights_normalized():
    plugin = node_affinity.NodeAffinity()
    pod = (make_pod("p").preferred_node_term(20, ("disk", "In", ["ssd"]))
           .preferred_node_term(60, ("zone", "In", ["a"])).build())
    snap = snapshot_of([make_node("none").build(),
                        make_node("ssd").labels(disk="ssd").build(),
                        make_node("both").labels(disk="ssd", zone="a").build()])
    raw = {ni.name: plugin.score(pod, ni, snap) for ni in snap}
    assert raw == {"none": 0, "ssd": 20, "both": 80}
    assert plugin.normalize(pod, raw, snap) == {"none": 0, "ssd": 25, "both": 100}


# ---------------------------------------------------------------- NodeResourcesFit

@pytest.mark.parametrize("pod, expected", [
    (make_pod("a"), {}),
    (make_pod("a").requests(cpu="500m", memory="128Mi"), {"cpu": 500, "memory": 128 * 2**20}),
    (make_pod("a").requests(cpu="1").container("b", cpu="500m"), {"cpu": 1500}),
    (make_pod("a").requests(cpu="1").init_container("i", cpu="2"), {"cpu": 2000}),
    (make_pod("a").requests(cpu="1").container("b", cpu="1").init_container("i", cpu="1500m"),
     {"cpu": 2000}),
    (make_pod("a").requests(cpu="1", memory="1Gi").init_container("i", memory="2Gi"),
     {"cpu": 1000, "memory": 2 * 2**30}),
    (make_pod("a").requests(cpu="1").init_container("sidecar", "Always", cpu="500m")
     .init_container("i", cpu="1"), {"cpu": 1500}),
    (make_pod("a").requests(cpu="1").init_container("sidecar", "Always", cpu="500m")
     .init_container("i", cpu="2"), {"cpu": 2500}),
], ids=["none", "one-container", "containers-add-up", "init-larger-wins", "sum-larger-wins",
        "max-per-resource", "sidecar-adds", "init-runs-beside-sidecar"])
def test_pod_requests(pod, expected):
    assert podutil.pod_requests(pod.build()) == expected


def test_non_zero_requests_default_missing_requests_only():
    assert podutil.non_zero_requests(make_pod("a").build()) == (100, 200 * 2**20)
    assert podutil.non_zero_requests(make_pod("a").requests(cpu="0").build()) == (0, 200 * 2**20)
    assert podutil.non_zero_requests(
        make_pod("a").requests(cpu="1").container("b").build()) == (1100, 400 * 2**20)


SMALL = make_node("n1").allocatable(cpu="2", memory="4Gi", pods="3")


@pytest.mark.parametrize("pod, existing, reasons", [
    (make_pod("a").requests(cpu="1", memory="1Gi"), [], []),
    (make_pod("a").requests(cpu="2", memory="4Gi"), [], []),
    (make_pod("a").requests(cpu="2001m"), [], ["Insufficient cpu"]),
    (make_pod("a").requests(memory="5Gi"), [], ["Insufficient memory"]),
    (make_pod("a").requests(cpu="3", memory="5Gi"), [],
     ["Insufficient cpu", "Insufficient memory"]),
    (make_pod("a").requests(cpu="1"), [make_pod("x").requests(cpu="1500m")],
     ["Insufficient cpu"]),
    (make_pod("a").requests(cpu="500m"), [make_pod("x").requests(cpu="1500m")], []),
    (make_pod("a"), [make_pod("x"), make_pod("y"), make_pod("z")], ["Too many pods"]),
    (make_pod("a").requests(cpu="3"), [make_pod("x"), make_pod("y"), make_pod("z")],
     ["Too many pods", "Insufficient cpu"]),
    (make_pod("a").requests(cpu="1").init_container("i", cpu="3"), [], ["Insufficient cpu"]),
    (make_pod("a").extended("example.com/gpu", "1"), [], ["Insufficient example.com/gpu"]),
    (make_pod("a").requests(ephemeral_storage="1Gi"), [], ["Insufficient ephemeral-storage"]),
    (make_pod("a").requests(cpu="0"), [make_pod("x").requests(cpu="2")], []),
], ids=["fits", "exactly-full", "cpu", "memory", "cpu-and-memory", "existing-pods-count",
        "fits-beside-existing", "pod-count", "pod-count-and-cpu", "init-container",
        "extended-resource", "ephemeral-storage", "zero-request-on-full-node"])
def test_node_resources_fit(pod, existing, reasons):
    ni = node_info(SMALL, *existing)
    assert node_resources_fit.reasons(pod.build(), ni) == reasons
    assert node_resources_fit.fits(pod.build(), ni) is (not reasons)
    status = run_filter(node_resources_fit.NodeResourcesFit(), pod, ni)
    assert status.reasons == tuple(reasons)
    if reasons:
        assert status.code == RESOLVABLE


def test_node_resources_fit_extended_resource_on_node():
    ni = node_info(make_node("n1").extended("example.com/gpu", "2"),
                   make_pod("x").extended("example.com/gpu", "1"))
    assert node_resources_fit.fits(make_pod("a").extended("example.com/gpu", "1").build(), ni)
    assert node_resources_fit.reasons(
        make_pod("a").extended("example.com/gpu", "2").build(), ni) == [
        "Insufficient example.com/gpu"]


def test_node_without_pods_allocatable_fits_nothing():
    node = make_node("n1")
    del node.doc["status"]["allocatable"]["pods"]
    assert node_resources_fit.reasons(make_pod("a").build(), node_info(node)) == ["Too many pods"]


# ---------------------------------------------------------------- NodePorts

PORTS = "node(s) didn't have free ports for the requested pod ports"


@pytest.mark.parametrize("existing, pod, reason", [
    (make_pod("x").host_port(8080), make_pod("a"), OK),
    (make_pod("x").host_port(8080), make_pod("a").host_port(8081), OK),
    (make_pod("x").host_port(8080), make_pod("a").host_port(8080), PORTS),
    (make_pod("x").host_port(8080, "TCP"), make_pod("a").host_port(8080, "UDP"), OK),
    (make_pod("x").host_port(8080, "UDP"), make_pod("a").host_port(8080, "UDP"), PORTS),
    (make_pod("x").host_port(8080, host_ip="127.0.0.1"),
     make_pod("a").host_port(8080, host_ip="127.0.0.2"), OK),
    (make_pod("x").host_port(8080, host_ip="127.0.0.1"),
     make_pod("a").host_port(8080, host_ip="127.0.0.1"), PORTS),
    (make_pod("x").host_port(8080, host_ip="127.0.0.1"), make_pod("a").host_port(8080), PORTS),
    (make_pod("x").host_port(8080, host_ip="0.0.0.0"),
     make_pod("a").host_port(8080, host_ip="127.0.0.2"), PORTS),
    (make_pod("x").host_port(8080), make_pod("a").host_port(9090).host_port(8080), PORTS),
], ids=["no-host-ports", "other-port", "same-port", "other-protocol", "same-udp",
        "other-ips", "same-ip", "wildcard-wanted", "wildcard-used", "one-of-many"])
def test_node_ports(existing, pod, reason):
    ni = node_info(make_node("n1"), existing)
    assert node_ports.fits(pod.build(), ni) is (reason is OK)
    assert_status(run_filter(node_ports.NodePorts(), pod, ni), reason, RESOLVABLE)


def test_node_ports_freed_when_pod_removed():
    ni = node_info(make_node("n1"), make_pod("x").host_port(8080))
    ni.remove_pod(podutil.pod_key(make_pod("x").build()))
    assert node_ports.fits(make_pod("a").host_port(8080).build(), ni)


# ---------------------------------------------------------------- PodTopologySpread

SPREAD = "node(s) didn't match pod topology spread constraints"
WEB = selector({"app": "web"})


def zoned_cluster(counts: dict[str, int], extra_nodes=()):
    """One node per zone ("n-<zone>"), with `counts[zone]` app=web pods on it."""
    nodes = [make_node(f"n-{zone}").zone(zone) for zone in counts] + list(extra_nodes)
    pods = [make_pod(f"web-{zone}-{i}").labels(app="web").on_node(f"n-{zone}")
            for zone, n in counts.items() for i in range(n)]
    return snapshot_of([n.build() for n in nodes], [p.build() for p in pods])


@pytest.mark.parametrize("counts, pod, expected", [
    ({"a": 2, "b": 1, "c": 0}, make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB),
     {"n-a": SPREAD, "n-b": SPREAD, "n-c": OK}),
    ({"a": 1, "b": 1, "c": 0}, make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB),
     {"n-a": SPREAD, "n-b": SPREAD, "n-c": OK}),
    ({"a": 1, "b": 1, "c": 1}, make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB),
     {"n-a": OK, "n-b": OK, "n-c": OK}),
    ({"a": 2, "b": 1, "c": 0}, make_pod("p").labels(app="web").spread(2, ZONE, sel=WEB),
     {"n-a": SPREAD, "n-b": OK, "n-c": OK}),
    ({"a": 2, "b": 1, "c": 1}, make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB),
     {"n-a": SPREAD, "n-b": OK, "n-c": OK}),
    ({"a": 2, "b": 1, "c": 1}, make_pod("p").labels(app="other").spread(1, ZONE, sel=WEB),
     {"n-a": OK, "n-b": OK, "n-c": OK}),
    ({"a": 1, "b": 1}, make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB, min_domains=3),
     {"n-a": SPREAD, "n-b": SPREAD}),
    ({"a": 1, "b": 0}, make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB)
     .node_selector(**{ZONE: "a"}), {"n-a": OK}),
    ({"a": 3, "b": 0}, make_pod("p").labels(app="web").spread(1, ZONE, "ScheduleAnyway", WEB),
     {"n-a": OK, "n-b": OK}),
], ids=["uneven", "two-tied", "even", "max-skew-2", "self-matching",
        "not-self-matching", "min-domains",
        "node-affinity-honored", "schedule-anyway-is-no-filter"])
def test_pod_topology_spread_filter(counts, pod, expected):
    snap = zoned_cluster(counts)
    plugin = pod_topology_spread.PodTopologySpread()
    p = pod.build()
    got = {}
    for name in expected:
        status = plugin.filter(p, snap.get(name), snap)
        got[name] = OK if status.is_success() else status.reasons[0]
        if not status.is_success():
            assert status.code == RESOLVABLE
    assert got == expected
    assert {name: pod_topology_spread.fits(p, snap.get(name), snap) for name in expected} == {
        name: reason is OK for name, reason in expected.items()}


def test_pod_topology_spread_node_without_key_is_unresolvable():
    snap = zoned_cluster({"a": 0}, [make_node("bare")])
    status = pod_topology_spread.PodTopologySpread().filter(
        make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB).build(), snap.get("bare"), snap)
    assert status.reasons == (SPREAD + " (missing required label)",)
    assert status.code == UNRESOLVABLE


def test_pod_topology_spread_counts_only_same_namespace_and_live_pods():
    nodes = [make_node("n-a").zone("a").build(), make_node("n-b").zone("b").build()]
    pods = [make_pod("x", "other").labels(app="web").on_node("n-a").build(),
            make_pod("y").labels(app="web").on_node("n-a").terminating(by_preemption=False)
            .build()]
    snap = snapshot_of(nodes, pods)
    pod = make_pod("p").labels(app="web").spread(1, ZONE, sel=WEB).build()
    assert pod_topology_spread.fits(pod, snap.get("n-a"), snap)


def test_pod_topology_spread_score_prefers_emptier_domains():
    snap = zoned_cluster({"a": 3, "b": 1, "c": 0})
    plugin = pod_topology_spread.PodTopologySpread()
    pod = make_pod("p").labels(app="web").spread(1, ZONE, "ScheduleAnyway", WEB).build()
    state = None
    raw = {ni.name: plugin.score(pod, ni, snap, state) for ni in snap}
    # weight log(3 + 2) per matching pod; maxSkew - 1 = 0
    assert raw == {"n-a": 5, "n-b": 2, "n-c": 0}
    assert plugin.normalize(pod, raw, snap) == {"n-a": 0, "n-b": 60, "n-c": 100}


# ---------------------------------------------------------------- InterPodAffinity

POD_AFFINITY = "node(s) didn't match pod affinity rules"
POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"


def affinity_cluster(*pods):
    """Nodes n1, n2 in zone a and n3 in zone b, with the given pods."""
    nodes = [make_node("n1").zone("a"), make_node("n2").zone("a"), make_node("n3").zone("b")]
    return snapshot_of([n.build() for n in nodes], [p.build() for p in pods])


DB_ON_N1 = make_pod("db").labels(app="db").on_node("n1")
WEB_ON_N1 = make_pod("web").labels(app="web").on_node("n1")


@pytest.mark.parametrize("existing, pod, expected", [
    ([DB_ON_N1], make_pod("p").pod_affinity(affinity_term(ZONE, selector({"app": "db"}))),
     {"n1": OK, "n2": OK, "n3": POD_AFFINITY}),
    ([DB_ON_N1], make_pod("p").pod_affinity(affinity_term(HOSTNAME, selector({"app": "db"}))),
     {"n1": OK, "n2": POD_AFFINITY, "n3": POD_AFFINITY}),
    ([], make_pod("p").labels(app="db").pod_affinity(affinity_term(ZONE, selector({"app": "db"}))),
     {"n1": OK, "n2": OK, "n3": OK}),
    ([], make_pod("p").pod_affinity(affinity_term(ZONE, selector({"app": "db"}))),
     {"n1": POD_AFFINITY, "n2": POD_AFFINITY, "n3": POD_AFFINITY}),
    ([make_pod("db", "other").labels(app="db").on_node("n1")],
     make_pod("p").pod_affinity(affinity_term(ZONE, selector({"app": "db"}))),
     {"n1": POD_AFFINITY, "n2": POD_AFFINITY, "n3": POD_AFFINITY}),
    ([make_pod("db", "other").labels(app="db").on_node("n1")],
     make_pod("p").pod_affinity(affinity_term(ZONE, selector({"app": "db"}), ["other"])),
     {"n1": OK, "n2": OK, "n3": POD_AFFINITY}),
    ([make_pod("db", "other").labels(app="db").on_node("n1")],
     make_pod("p").pod_affinity(affinity_term(ZONE, selector({"app": "db"}),
                                              namespace_selector={})),
     {"n1": OK, "n2": OK, "n3": POD_AFFINITY}),
    ([WEB_ON_N1], make_pod("p").pod_anti_affinity(
        affinity_term(HOSTNAME, selector({"app": "web"}))),
     {"n1": POD_ANTI_AFFINITY, "n2": OK, "n3": OK}),
    ([WEB_ON_N1], make_pod("p").pod_anti_affinity(affinity_term(ZONE, selector({"app": "web"}))),
     {"n1": POD_ANTI_AFFINITY, "n2": POD_ANTI_AFFINITY, "n3": OK}),
    ([make_pod("guard").on_node("n2").pod_anti_affinity(
        affinity_term(ZONE, selector({"app": "web"})))],
     make_pod("p").labels(app="web"),
     {"n1": EXISTING_ANTI, "n2": EXISTING_ANTI, "n3": OK}),
    ([make_pod("guard").on_node("n2").pod_anti_affinity(
        affinity_term(ZONE, selector({"app": "web"})))],
     make_pod("p").labels(app="api"), {"n1": OK, "n2": OK, "n3": OK}),
    ([DB_ON_N1], make_pod("p").pod_affinity(affinity_term("rack", selector({"app": "db"}))),
     {"n1": POD_AFFINITY, "n2": POD_AFFINITY, "n3": POD_AFFINITY}),
], ids=["affinity-zone", "affinity-host", "first-of-group-self-match", "affinity-no-match",
        "affinity-other-namespace-not-counted", "affinity-listed-namespace",
        "affinity-empty-namespace-selector-is-all", "anti-affinity-host", "anti-affinity-zone",
        "existing-anti-affinity", "existing-anti-affinity-not-selecting",
        "affinity-missing-topology-key"])
def test_inter_pod_affinity_filter(existing, pod, expected):
    snap = affinity_cluster(*existing)
    plugin = inter_pod_affinity.InterPodAffinity()
    p = pod.build()
    got = {}
    for name in expected:
        status = plugin.filter(p, snap.get(name), snap)
        got[name] = OK if status.is_success() else status.reasons[0]
        if status.reasons == (POD_AFFINITY,):
            assert status.code == UNRESOLVABLE
        elif not status.is_success():
            assert status.code == RESOLVABLE
    assert got == expected
    assert {n: inter_pod_affinity.reasons(p, snap.get(n), snap) for n in expected} == {
        n: ([] if r is OK else [r]) for n, r in expected.items()}


def test_inter_pod_affinity_score_preferred_terms():
    snap = affinity_cluster(DB_ON_N1, make_pod("web").labels(app="web").on_node("n3"))
    plugin = inter_pod_affinity.InterPodAffinity()
    pod = (make_pod("p").preferred_pod_affinity(50, affinity_term(ZONE, selector({"app": "db"})))
           .preferred_pod_anti_affinity(10, affinity_term(HOSTNAME, selector({"app": "db"})))
           .build())
    raw = {ni.name: plugin.score(pod, ni, snap) for ni in snap}
    assert raw == {"n1": 40, "n2": 50, "n3": 0}
    assert plugin.normalize(pod, raw, snap) == {"n1": 80, "n2": 100, "n3": 0}


def test_inter_pod_affinity_score_counts_existing_pods_terms():
    guard = (make_pod("guard").on_node("n3")
             .preferred_pod_anti_affinity(30, affinity_term(ZONE, selector({"app": "web"}))))
    friend = make_pod("friend").on_node("n1").pod_affinity(
        affinity_term(HOSTNAME, selector({"app": "web"})))
    snap = affinity_cluster(guard, friend)
    plugin = inter_pod_affinity.InterPodAffinity()
    pod = make_pod("p").labels(app="web").build()
    raw = {ni.name: plugin.score(pod, ni, snap) for ni in snap}
    assert raw == {"n1": 1, "n2": 0, "n3": -30}
    assert plugin.normalize(pod, raw, snap) == {"n1": 100, "n2": 96, "n3": 0}


def test_inter_pod_affinity_score_flat_is_zero():
    assert inter_pod_affinity.normalize_scores({"a": 7, "b": 7}) == {"a": 0, "b": 0}


# ---------------------------------------------------------------- resource scores

BIG = make_node("n1").allocatable(cpu="4", memory="8Gi")


@pytest.mark.parametrize("pod, existing, expected", [
    (make_pod("a").requests(cpu="1", memory="2Gi"), [], 75),
    (make_pod("a").requests(cpu="2", memory="2Gi"), [], 62),
    (make_pod("a"), [], 97),
    # x requests no memory: it counts as 200Mi (non-zero default), so memory 72, cpu 25.
    (make_pod("a").requests(cpu="1", memory="2Gi"), [make_pod("x").requests(cpu="2")], 48),
    (make_pod("a").requests(cpu="8", memory="2Gi"), [], 37),
    (make_pod("a").requests(cpu="4", memory="8Gi"), [], 0),
], ids=["quarter", "half-cpu", "request-less-uses-defaults", "with-existing",
        "over-capacity-scores-zero", "full"])
def test_least_allocated_score(pod, existing, expected):
    ni = node_info(BIG, *existing)
    assert node_resources_least_allocated.score(PodInfo(pod.build()), ni) == expected
    assert node_resources_fit.NodeResourcesFit().score(pod.build(), ni) == expected


def test_most_allocated_strategy():
    plugin = node_resources_fit.new({"scoringStrategy": {"type": "MostAllocated"}})
    assert plugin.score(make_pod("a").requests(cpu="1", memory="2Gi").build(),
                        node_info(BIG)) == 25
    with pytest.raises(ValueError, match="Unsupported value"):
        node_resources_fit.new({"scoringStrategy": {"type": "Random"}})


@pytest.mark.parametrize("pod, existing, expected", [
    (make_pod("a").requests(cpu="1", memory="2Gi"), [], 100),
    (make_pod("a").requests(cpu="1", memory="4Gi"), [], 87),
    (make_pod("a").requests(cpu="4"), [], 50),
    (make_pod("a").requests(memory="2Gi"), [make_pod("x").requests(cpu="3")], 75),
    (make_pod("a"), [], 100),
], ids=["balanced", "memory-heavy", "cpu-only", "with-existing", "no-requests"])
def test_balanced_allocation_score(pod, existing, expected):
    ni = node_info(BIG, *existing)
    assert node_resources_balanced_allocation.score(PodInfo(pod.build()), ni) == expected
    assert node_resources_balanced_allocation.NodeResourcesBalancedAllocation().score(
        pod.build(), ni) == expected


def test_balanced_allocation_std_dev_form_for_three_resources():
    assert node_resources_balanced_allocation.balanced_score([0.0, 0.5, 1.0]) == 59
