"""schedule_one and the Framework: node choice, FailedScheduling messages, seeded ties, config."""
from __future__ import annotations

import random

import pytest

from scheduler.default_config import default_config, default_framework
from scheduler.framework import (ASSIGNED_POD_DELETE, NODE_LABEL_CHANGE, Code, ConfigError,
                                 Framework, NodeInfo, Snapshot, Status,
                                 schedule_one, snapshot_of)
from scheduler.plugins import default_registry
from tests.unit.scheduler_builders import (HOSTNAME, ZONE, affinity_term, make_node, make_pod,
                                           selector)


def schedule(pod, nodes, pods=(), seed=0, framework=None, **kwargs):
    snap = snapshot_of([n.build() for n in nodes], [p.build() for p in pods])
    return schedule_one(framework or default_framework(), pod.build(), snap,
                        random.Random(seed), **kwargs)


# ---------------------------------------------------------------- choosing a node

@pytest.mark.parametrize("nodes, pods, pod, expected", [
    ([make_node("n1").allocatable(cpu="1"), make_node("n2").allocatable(cpu="4")], [],
     make_pod("p").requests(cpu="2"), "n2"),
    ([make_node("n1"), make_node("n2")], [make_pod("x").requests(cpu="3").on_node("n1")],
     make_pod("p").requests(cpu="500m"), "n2"),
    ([make_node("n1").taint("a", "b", "PreferNoSchedule"), make_node("n2")], [],
     make_pod("p"), "n2"),
    ([make_node("n1"), make_node("n2").labels(disk="ssd")], [],
     make_pod("p").preferred_node_term(10, ("disk", "In", ["ssd"])), "n2"),
    ([make_node("n1"), make_node("n2").labels(disk="ssd")], [],
     make_pod("p").node_selector(disk="ssd"), "n2"),
    ([make_node("n1"), make_node("n2"), make_node("n3")], [], make_pod("p").on_node("n3"),
     "n3"),
    ([make_node("n1").zone("a"), make_node("n2").zone("b")],
     [make_pod("w1").labels(app="web").on_node("n1")],
     make_pod("p").labels(app="web").pod_anti_affinity(
         affinity_term(ZONE, selector({"app": "web"}))), "n2"),
    ([make_node("n1").zone("a"), make_node("n2").zone("b")],
     [make_pod("db").labels(app="db").on_node("n2")],
     make_pod("p").preferred_pod_affinity(100, affinity_term(ZONE, selector({"app": "db"}))),
     "n2"),
    ([make_node("n1").zone("a"), make_node("n2").zone("b")],
     [make_pod("w1").labels(app="web").on_node("n1")],
     make_pod("p").labels(app="web").spread(1, ZONE, "ScheduleAnyway", selector({"app": "web"})),
     "n2"),
], ids=["only-one-fits", "least-allocated", "fewer-prefer-no-schedule-taints",
        "preferred-node-affinity", "node-selector", "node-name", "pod-anti-affinity",
        "preferred-pod-affinity", "soft-spread"])
def test_schedule_one_picks_the_right_node(nodes, pods, pod, expected):
    result = schedule(pod, nodes, pods)
    assert result.node_name == expected, result


def test_taint_weight_dominates_resource_scores():
    # n1 is emptier (better for the resource scores) but has a PreferNoSchedule taint.
    nodes = [make_node("n1").allocatable(cpu="64", memory="256Gi")
             .taint("x", "", "PreferNoSchedule"), make_node("n2")]
    result = schedule(make_pod("p").requests(cpu="1", memory="1Gi"), nodes)
    assert result.node_name == "n2"
    assert result.scores["n2"] > result.scores["n1"]


# ---------------------------------------------------------------- FailedScheduling

@pytest.mark.parametrize("nodes, pods, pod, message", [
    ([make_node("n1").unschedulable(), make_node("n2").allocatable(cpu="1"),
      make_node("n3").allocatable(cpu="1")], [], make_pod("p").requests(cpu="2"),
     "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."),
    ([make_node("n1").allocatable(cpu="1", memory="1Gi")], [],
     make_pod("p").requests(cpu="2", memory="2Gi"),
     "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
    ([make_node("n1").taint("dedicated", "gpu"), make_node("n2").taint("dedicated", "gpu"),
      make_node("n3").allocatable(memory="1Gi"), make_node("n4").labels(disk="hdd")], [],
     make_pod("p").requests(memory="2Gi").required_node_terms([("disk", "NotIn", ["hdd"])]),
     "0/4 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's node "
     "affinity/selector, 2 node(s) had untolerated taint {dedicated: gpu}."),
    ([make_node(f"n{i:02}").unschedulable() for i in range(10)]
     + [make_node("x1").allocatable(cpu="1"), make_node("x2").allocatable(cpu="1")], [],
     make_pod("p").requests(cpu="2"),
     "0/12 nodes are available: 10 node(s) were unschedulable, 2 Insufficient cpu."),
    ([make_node("n1").unschedulable().allocatable(cpu="1")], [], make_pod("p").requests(cpu="2"),
     "0/1 nodes are available: 1 node(s) were unschedulable."),
    ([make_node("n1").allocatable(pods="1"), make_node("n2")],
     [make_pod("x").on_node("n1"), make_pod("y").on_node("n2").host_port(80)],
     make_pod("p").host_port(80),
     "0/2 nodes are available: 1 Too many pods, 1 node(s) didn't have free ports for the "
     "requested pod ports."),
    ([make_node("n1").zone("a"), make_node("n2").zone("a")],
     [make_pod("w").labels(app="web").on_node("n1")],
     make_pod("p").labels(app="web").pod_anti_affinity(
         affinity_term(ZONE, selector({"app": "web"}))),
     "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."),
    ([make_node("n1").zone("a"), make_node("n2")], [],
     make_pod("p").labels(app="web").spread(1, ZONE, sel=selector({"app": "web"}))
     .node_selector(missing="x"),
     "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."),
    ([make_node("n1"), make_node("n2")], [make_pod("db").labels(app="db").on_node("n1")],
     make_pod("p").pod_affinity(affinity_term(ZONE, selector({"app": "db"}))),
     "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."),
    ([make_node("n1").zone("a"), make_node("n2").zone("b"), make_node("n3")],
     [make_pod("w").labels(app="web").on_node("n1")],
     # Ignore: zone b counts as a domain (0 pods) although the pod cannot go there.
     make_pod("p").labels(app="web").spread(1, ZONE, sel=selector({"app": "web"}),
                                            node_affinity_policy="Ignore")
     .node_selector(**{HOSTNAME: "n1"}),
     "0/3 nodes are available: 1 node(s) didn't match pod topology spread constraints, "
     "2 node(s) didn't match Pod's node affinity/selector."),
], ids=["brief-example", "two-reasons-one-node", "mixed", "kubernetes-string-sort",
        "first-failing-filter-wins", "pods-and-ports", "anti-affinity", "node-affinity",
        "pod-affinity", "topology-spread"])
def test_failed_scheduling_message(nodes, pods, pod, message):
    result = schedule(pod, nodes, pods)
    assert result.node_name is None
    assert result.diagnosis.message() == message
    assert result.message == message


def test_diagnosis_records_statuses_and_rejecting_plugins():
    result = schedule(make_pod("p").requests(cpu="2"),
                      [make_node("n1").unschedulable(), make_node("n2").allocatable(cpu="1")])
    d = result.diagnosis
    assert d.unschedulable_plugins == {"NodeUnschedulable", "NodeResourcesFit"}
    assert d.node_to_status["n1"] == Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                                            ("node(s) were unschedulable",), "NodeUnschedulable")
    assert d.node_to_status["n2"].code == Code.UNSCHEDULABLE


def test_preemption_suffix_hook():
    result = schedule(make_pod("p").requests(cpu="8"),
                      [make_node("n1"), make_node("n2"), make_node("n3")])
    post = "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    assert result.diagnosis.message(post) == (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod.")


def test_no_nodes():
    result = schedule_one(default_framework(), make_pod("p").build(), Snapshot(),
                          random.Random(0))
    assert result.node_name is None
    assert result.message == "no nodes available to schedule pods"


def test_pre_filter_message_is_reported_once():
    class Gate:
        NAME = "Gate"
        EVENTS = frozenset()

        def pre_filter(self, pod, snapshot, state):
            return Status.unresolvable("waiting for the gate")

        def filter(self, pod, node_info, snapshot, state=None):
            raise AssertionError("filter must not run after a failed pre-filter")

    fw = Framework([Gate()], [])
    snap = snapshot_of([make_node("n1").build(), make_node("n2").build()])
    result = schedule_one(fw, make_pod("p").build(), snap, random.Random(0))
    assert result.message == "0/2 nodes are available: waiting for the gate."
    assert result.diagnosis.unschedulable_plugins == {"Gate"}


# ---------------------------------------------------------------- ties

def identical_nodes(n):
    return [make_node(f"n{i}") for i in range(n)]


def test_seeded_ties_are_reproducible():
    pod = make_pod("p").requests(cpu="100m")
    first = [schedule(pod, identical_nodes(5), seed=seed).node_name for seed in range(20)]
    again = [schedule(pod, identical_nodes(5), seed=seed).node_name for seed in range(20)]
    assert first == again
    assert len(set(first)) > 1  # the seed really picks among the tied nodes
    result = schedule(pod, identical_nodes(5), seed=3)
    assert set(result.scores.values()) == {result.scores[result.node_name]}


def test_single_feasible_node_skips_scoring():
    result = schedule(make_pod("p").on_node("n2"), identical_nodes(3))
    assert result.node_name == "n2"
    assert result.scores == {}
    assert result.feasible_nodes == 1


# ---------------------------------------------------------------- percentageOfNodesToScore

@pytest.mark.parametrize("percentage, num_nodes, expected", [
    (100, 5000, 5000),
    (50, 50, 50),
    (50, 99, 99),
    (50, 1000, 500),
    (10, 500, 100),
    (0, 1000, 420),
    (0, 6000, 300),
    (0, 100, 100),
], ids=["all", "small-cluster", "below-minimum", "half", "floor-100", "adaptive",
        "adaptive-min-5pct", "adaptive-small"])
def test_num_feasible_nodes_to_find(percentage, num_nodes, expected):
    fw = default_framework(percentageOfNodesToScore=percentage)
    assert fw.num_feasible_nodes_to_find(num_nodes) == expected


def test_percentage_stops_filtering_and_rotates_start():
    fw = default_framework(percentageOfNodesToScore=50)
    nodes = [make_node(f"n{i:03}") for i in range(200)]
    snap = snapshot_of([n.build() for n in nodes])
    pod = make_pod("p").build()
    first = schedule_one(fw, pod, snap, random.Random(0))
    assert (first.evaluated_nodes, first.feasible_nodes, first.next_start_index) == (100, 100, 100)
    second = schedule_one(fw, pod, snap, random.Random(0), start_index=first.next_start_index)
    assert second.next_start_index == 0
    assert second.node_name >= "n100"  # it looked at the second half


def test_infeasible_cluster_is_fully_evaluated_even_with_percentage():
    fw = default_framework(percentageOfNodesToScore=50)
    snap = snapshot_of([make_node(f"n{i:03}").allocatable(cpu="1").build() for i in range(200)])
    result = schedule_one(fw, make_pod("p").requests(cpu="2").build(), snap, random.Random(0))
    assert result.node_name is None
    assert result.message == "0/200 nodes are available: 200 Insufficient cpu."


# ---------------------------------------------------------------- config

def test_default_profile_matches_kube_scheduler():
    fw = default_framework()
    assert [p.NAME for p in fw.filter_plugins] == [
        "NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts",
        "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity"]
    assert {p.NAME: w for p, w in fw.score_plugins} == {
        "TaintToleration": 3, "NodeAffinity": 2, "PodTopologySpread": 2, "InterPodAffinity": 2,
        "NodeResourcesFit": 1, "NodeResourcesBalancedAllocation": 1}
    # One instance per plugin, even when enabled at both extension points.
    filters = {p.NAME: p for p in fw.filter_plugins}
    assert all(filters[p.NAME] is p for p, _ in fw.score_plugins if p.NAME in filters)


def test_events_map_to_interested_plugins():
    fw = default_framework()
    assert fw.events_to_plugins[NODE_LABEL_CHANGE] == {
        "NodeAffinity", "PodTopologySpread", "InterPodAffinity"}
    assert "NodeResourcesFit" in fw.events_to_plugins[ASSIGNED_POD_DELETE]
    assert "TaintToleration" not in fw.events_to_plugins[ASSIGNED_POD_DELETE]


@pytest.mark.parametrize("change, error", [
    ({"plugins": {"filter": {"enabled": [{"name": "Bogus"}]}}}, 'plugin "Bogus" does not exist'),
    ({"plugins": {"filter": {"enabled": [{"name": "NodeResourcesBalancedAllocation"}]}}},
     'plugin "NodeResourcesBalancedAllocation" does not extend filter plugin'),
    ({"plugins": {"score": {"enabled": [{"name": "NodeName", "weight": 1}]}}},
     'plugin "NodeName" does not extend score plugin'),
    ({"plugins": {"score": {"enabled": [{"name": "NodeAffinity", "weight": -1}]}}},
     "weight must be positive"),
    ({"percentageOfNodesToScore": 101}, "not in valid range"),
    ({"plugins": {"bind": {}}}, "unsupported extension point 'bind'"),
    ({"schedulerNme": "x"}, "unknown field 'schedulerNme'"),
    ({"plugins": {"filter": {"enabled": [{"nmae": "NodeName"}]}}}, "every entry needs a name"),
    ({"pluginConfig": [{"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 101}}]},
     'plugin "InterPodAffinity": invalid args: hardPodAffinityWeight'),
], ids=["unknown-plugin", "not-a-filter", "not-a-scorer", "negative-weight", "percentage",
        "extension-point", "typo", "nameless-entry", "bad-args"])
def test_bad_config(change, error):
    config = default_config()
    config.update(change)
    with pytest.raises(ConfigError, match=error):
        Framework.from_config(config, default_registry())


def test_custom_config_and_zero_weight_means_one():
    config = {"schedulerName": "my-scheduler",
              "plugins": {"filter": {"enabled": [{"name": "NodeName"}]},
                          "score": {"enabled": [{"name": "NodeAffinity", "weight": 0}]}}}
    fw = Framework.from_config(config, default_registry())
    assert fw.scheduler_name == "my-scheduler"
    assert [(p.NAME, w) for p, w in fw.score_plugins] == [("NodeAffinity", 1)]


def test_out_of_range_score_is_an_error():
    class Wild:
        NAME = "Wild"
        EVENTS = frozenset()

        def score(self, pod, node_info, snapshot, state=None):
            return 101

    from scheduler.framework import SchedulingError
    fw = Framework([], [(Wild(), 1)])
    snap = snapshot_of([make_node("n1").build(), make_node("n2").build()])
    with pytest.raises(SchedulingError, match="invalid score 101"):
        schedule_one(fw, make_pod("p").build(), snap, random.Random(0))


# ---------------------------------------------------------------- NodeInfo / Snapshot

def test_node_info_totals_follow_pods():
    ni = NodeInfo(make_node("n1").build())
    a = ni.add_pod(make_pod("a").requests(cpu="500m", memory="1Gi").host_port(80).build())
    ni.add_pod(make_pod("b").build())
    assert ni.requested == {"cpu": 500, "memory": 2**30}
    assert ni.non_zero_requested == {"cpu": 600, "memory": 2**30 + 200 * 2**20}
    assert set(ni.used_ports) == {("0.0.0.0", "TCP", 80)}
    clone = ni.clone()
    assert ni.remove_pod(a.key) is a
    assert ni.requested == {} and not ni.used_ports
    assert clone.requested == {"cpu": 500, "memory": 2**30}  # the clone is independent
    assert ni.remove_pod(a.key) is None


def test_snapshot_topology_helpers():
    nodes = [make_node("n1").zone("a"), make_node("n2").zone("a"), make_node("n3").zone("b"),
             make_node("n4")]
    pods = [make_pod("x").on_node("n1"), make_pod("y").on_node("n3"),
            make_pod("z").on_node("nowhere")]
    snap = snapshot_of([n.build() for n in nodes], [p.build() for p in pods])
    assert [ni.name for ni in snap] == ["n1", "n2", "n3", "n4"]
    assert {k: [ni.name for ni in v] for k, v in snap.domains(ZONE).items()} == {
        "a": ["n1", "n2"], "b": ["n3"]}
    assert [p.pod.metadata.name for p in snap.pods_in_domain(ZONE, "a")] == ["x"]
    assert snap.nodes_in_domain(ZONE, "c") == ()
    assert sum(1 for _ in snap.pods()) == 2
