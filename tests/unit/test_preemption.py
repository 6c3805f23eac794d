"""Preemption: minimal victims per node, kube's node choice, eligibility and messages."""
from __future__ import annotations

import random

import pytest

from scheduler import preemption
from scheduler.default_config import default_framework
from scheduler.framework import Code, schedule_one, snapshot_of
from scheduler.preemption import Candidate
from tests.unit.scheduler_builders import ZONE, affinity_term, make_node, make_pod, selector

T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-01T00:01:00Z"
T2 = "2024-01-01T00:02:00Z"


def try_preempt(pod, nodes, pods):
    framework = default_framework()
    snap = snapshot_of([n.build() for n in nodes], [p.build() for p in pods])
    built = pod.build()
    result = schedule_one(framework, built, snap, random.Random(0))
    assert result.node_name is None, "the pod must not fit before preemption"
    return result, preemption.preempt(framework, built, snap, result.diagnosis)


def victim_names(outcome) -> list[str]:
    return [v.metadata.name for v in outcome.victims]


def node(name="n1", cpu="4"):
    return make_node(name).allocatable(cpu=cpu, memory="8Gi")


def running(name, cpu, prio, on="n1", started=T0):
    return make_pod(name).requests(cpu=cpu).priority(prio).on_node(on).started(started)


@pytest.mark.parametrize("pods, incoming_cpu, victims", [
    ([running("p1", "2", 1), running("p2", "2", 2)], "2", ["p1"]),
    ([running("p1", "1", 1), running("p2", "1", 2), running("p3", "2", 3)], "2", ["p2", "p1"]),
    ([running("old", "2", 1, started=T0), running("new", "2", 1, started=T1)], "2", ["new"]),
    ([running("p1", "2", 1), running("p2", "2", 1)], "4", ["p1", "p2"]),
    ([running("big", "3", 1), running("small", "1", 2)], "3", ["big"]),
    ([running("hi", "2", 100), running("lo", "2", 1)], "2", ["lo"]),
], ids=["lowest-priority", "minimal-set-most-important-reprieved-first", "newest-of-equals",
        "all", "priority-beats-size", "higher-priority-untouched"])
def test_victims_on_one_node(pods, incoming_cpu, victims):
    pod = make_pod("incoming").requests(cpu=incoming_cpu).priority(50)
    _, outcome = try_preempt(pod, [node()], pods)
    assert outcome.node_name == "n1"
    assert victim_names(outcome) == victims
    assert outcome.message == ""


def test_select_victims_on_node_directly():
    framework = default_framework()
    snap = snapshot_of([node().build()],
                       [running("a", "3", 1).build(), running("b", "1", 1).build()])
    victims, status = preemption.select_victims_on_node(
        framework, make_pod("p").requests(cpu="2").priority(5).build(), snap.get("n1"), snap)
    assert status.is_success()
    assert [v.metadata.name for v in victims] == ["a"]
    assert len(snap.get("n1").pods) == 2  # the snapshot was not touched


def test_equal_or_higher_priority_pods_are_never_victims():
    pod = make_pod("incoming").requests(cpu="2").priority(5)
    nodes = [node("n1"), node("n2"), node("n3")]
    pods = [running("a", "4", 5, "n1"), running("b", "4", 9, "n2"), running("c", "4", 5, "n3")]
    result, outcome = try_preempt(pod, nodes, pods)
    assert outcome.node_name is None and outcome.victims == ()
    assert outcome.message == (
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.")
    assert result.diagnosis.message(outcome.message) == (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod.")


def test_preemption_not_helpful_on_unresolvable_nodes():
    pod = make_pod("incoming").requests(cpu="2").priority(50)
    nodes = [node("n1").taint("dedicated", "gpu"), node("n2").unschedulable(), node("n3", "1")]
    pods = [running("a", "2", 1, "n1"), running("b", "2", 1, "n2")]
    result, outcome = try_preempt(pod, nodes, pods)
    assert result.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
        "{dedicated: gpu}, 1 node(s) were unschedulable.")
    assert outcome.node_name is None
    assert outcome.message == (
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.")


def test_still_does_not_fit_reports_the_filter_reason():
    pod = make_pod("incoming").requests(cpu="4").priority(50)
    _, outcome = try_preempt(pod, [node()], [running("lo", "1", 1), running("hi", "1", 100)])
    assert outcome.node_name is None
    assert outcome.message == "preemption: 0/1 nodes are available: 1 Insufficient cpu."


def test_preemption_policy_never():
    pod = make_pod("incoming").requests(cpu="2").priority(50).preemption_policy("Never")
    _, outcome = try_preempt(pod, [node()], [running("lo", "4", 1)])
    assert outcome.node_name is None
    assert outcome.message == "preemption: not eligible due to preemptionPolicy=Never."


def test_not_eligible_while_victims_terminate_on_nominated_node():
    pod = make_pod("incoming").requests(cpu="2").priority(50).nominated("n1")
    pods = [running("lo", "4", 1).terminating()]
    _, outcome = try_preempt(pod, [node()], pods)
    assert outcome.message == (
        "preemption: not eligible due to a terminating pod on the nominated node.")
    # Terminating for another reason (not preemption) does not block.
    pods = [running("lo", "4", 1).terminating(by_preemption=False)]
    _, outcome = try_preempt(pod, [node()], pods)
    assert outcome.node_name == "n1"


def test_anti_affinity_victims_are_found_by_rerunning_filters():
    # The incoming pod's anti-affinity against a low-priority pod is resolved by evicting it.
    nodes = [make_node("n1").zone("a"), make_node("n2").zone("a")]
    pods = [make_pod("web").labels(app="web").priority(1).on_node("n1").started(T0)]
    pod = (make_pod("incoming").priority(50)
           .pod_anti_affinity(affinity_term(ZONE, selector({"app": "web"}))))
    result, outcome = try_preempt(pod, nodes, pods)
    assert result.diagnosis.node_to_status["n2"].code == Code.UNSCHEDULABLE
    assert outcome.node_name == "n1"  # only n1 holds a victim; n2's blocker lives elsewhere
    assert victim_names(outcome) == ["web"]


def test_pick_node_prefers_fewer_and_lower_priority_victims():
    pod = make_pod("incoming").requests(cpu="2").priority(50)
    nodes = [node("n1"), node("n2"), node("n3")]
    pods = [running("a", "4", 10, "n1"),
            running("b", "2", 5, "n2"), running("c", "2", 5, "n2"),
            running("d", "4", 5, "n3")]
    _, outcome = try_preempt(pod, nodes, pods)
    assert outcome.node_name == "n2"
    # b and c tie (priority and start): the stable sort reprieves b, listed first.
    assert victim_names(outcome) == ["c"]
    assert {c.node_name for c in outcome.candidates} == {"n1", "n2", "n3"}


def vic(name, prio, started=T0):
    return make_pod(name).priority(prio).started(started).build()


@pytest.mark.parametrize("candidates, expected", [
    ([Candidate("a", (vic("x", 10),)), Candidate("b", (vic("y", 5),))], "b"),
    ([Candidate("a", (vic("x", 5), vic("y", 5))), Candidate("b", (vic("z", 5), vic("w", 1)))],
     "b"),
    ([Candidate("a", (vic("x", 5), vic("y", -5))), Candidate("b", (vic("z", 5),))], "b"),
    ([Candidate("a", (vic("x", 5, T0),)), Candidate("b", (vic("y", 5, T2),))], "b"),
    ([Candidate("a", (vic("x", 5),), 1), Candidate("b", (vic("y", 50),), 0)], "b"),
    ([Candidate("a", (vic("x", 5),)), Candidate("b", (vic("y", 5),))], "a"),
], ids=["lowest-highest-priority", "smallest-priority-sum", "fewer-victims-even-if-negative",
        "latest-start", "fewest-pdb-violations", "first-on-full-tie"])
def test_pick_one_node(candidates, expected):
    assert preemption.pick_one_node(candidates).node_name == expected


def test_pick_one_node_of_nothing():
    assert preemption.pick_one_node([]) is None
