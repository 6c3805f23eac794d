"""PodDisruptionBudget status arithmetic (controller_manager.disruption), table-driven."""
from __future__ import annotations

from typing import Any

import pytest

from controller_manager import disruption
from kubemu import timefmt
from tests.builders import make_pod, obj

NOW_S = 1_800_000_000.0


def pdb(*, min_available: Any = None, max_unavailable: Any = None,
        disrupted: dict[str, float] | None = None, generation: int = 1):
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    doc = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "web", "namespace": "default", "generation": generation},
           "spec": spec}
    if disrupted:
        doc["status"] = {"disruptedPods": {name: timefmt.rfc3339(t)
                                           for name, t in disrupted.items()}}
    return obj(doc)


def pods(ready: int, not_ready: int = 0, *, terminating: int = 0, owner: str = "rs"):
    out = []
    for i in range(ready + not_ready + terminating):
        p = make_pod(f"web-{i}").labels(app="web").build()
        p.status.phase = "Running"
        p.status.conditions.add(type="Ready", status="True" if i < ready else "False")
        if i >= ready + not_ready:
            p.status.conditions[0].status = "True"
            p.metadata.deletion_timestamp = timefmt.rfc3339(NOW_S)
        if owner:
            p.metadata.owner_references.add(kind="ReplicaSet", name=owner, uid=owner,
                                             controller=True)
        out.append(p)
    return out


def scale(replicas: int):
    return lambda pod: (pod.metadata.owner_references[0].uid, replicas) \
        if pod.metadata.owner_references else None


@pytest.mark.parametrize("budget, the_pods, replicas, expected", [
    # (expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed)
    (pdb(min_available=2), pods(3), 3, (3, 2, 3, 1)),
    (pdb(min_available=2), pods(2), 3, (2, 2, 2, 0)),
    (pdb(min_available=2), pods(2, 1), 3, (3, 2, 2, 0)),
    (pdb(min_available=2), pods(3, terminating=1), 3, (4, 2, 3, 1)),
    (pdb(min_available="50%"), pods(3), 3, (3, 2, 3, 1)),  # ceil(1.5) = 2
    (pdb(min_available="100%"), pods(3), 3, (3, 3, 3, 0)),
    (pdb(max_unavailable=1), pods(3), 3, (3, 2, 3, 1)),
    (pdb(max_unavailable=1), pods(2), 3, (3, 2, 2, 0)),
    (pdb(max_unavailable="34%"), pods(3), 3, (3, 1, 3, 2)),  # ceil(1.02) = 2 unavailable
    (pdb(max_unavailable=5), pods(3), 3, (3, 0, 3, 3)),
    (pdb(min_available=0), [], 0, (0, 0, 0, 0)),  # nothing expected: nothing allowed
    (pdb(max_unavailable=1), pods(4), 5, (5, 4, 4, 0)),  # scale from the controller
], ids=["min-int-spare", "min-int-exact", "min-int-one-unready", "terminating-not-healthy",
        "min-percent-rounds-up", "min-100-percent", "max-int", "max-int-short",
        "max-percent-rounds-up", "max-above-scale", "no-pods", "max-uses-controller-scale"])
def test_status_arithmetic(budget, the_pods, replicas, expected):
    got = disruption.compute_status(budget, the_pods, scale(replicas), NOW_S)
    assert (got.expected_pods, got.desired_healthy, got.current_healthy,
            got.disruptions_allowed) == expected


def test_controller_scale_counts_each_controller_once():
    the_pods = pods(2, owner="a") + [p for p in pods(3, owner="b")][2:]
    got = disruption.compute_status(pdb(max_unavailable=0), the_pods,
                                    lambda p: (p.metadata.owner_references[0].uid,
                                               {"a": 2, "b": 3}[p.metadata.owner_references[0].uid]),
                                    NOW_S)
    assert got.expected_pods == 5


def test_unmanaged_pods_are_reported_and_left_out_of_the_scale():
    the_pods = pods(2) + pods(1, owner="")
    the_pods[2].metadata.name = "bare"
    got = disruption.compute_status(pdb(max_unavailable=1), the_pods, scale(2), NOW_S)
    assert got.unmanaged_pods == ("bare",)
    assert (got.expected_pods, got.current_healthy, got.disruptions_allowed) == (2, 3, 2)


def test_a_pod_of_an_unknown_controller_fails_the_sync():
    def unknown(_pod):
        raise disruption.SyncError('found no controllers for pod "web-0"')
    with pytest.raises(disruption.SyncError):
        disruption.compute_status(pdb(max_unavailable=1), pods(1), unknown, NOW_S)
    # An integer minAvailable needs no controller at all.
    got = disruption.compute_status(pdb(min_available=1), pods(1), unknown, NOW_S)
    assert got.disruptions_allowed == 0


@pytest.mark.parametrize("disrupted, kept, healthy, recheck_s", [
    ({"web-0": NOW_S - 10}, {"web-0"}, 2, NOW_S - 10 + 120),
    ({"web-0": NOW_S - 121}, set(), 3, None),
    ({"gone": NOW_S - 10}, set(), 3, None),
    ({"web-0": NOW_S - 100, "web-1": NOW_S - 50}, {"web-0", "web-1"}, 1, NOW_S + 20),
], ids=["recent-eviction-not-healthy", "older-than-2min-pruned", "deleted-pod-pruned",
        "recheck-at-first-expiry"])
def test_disrupted_pods(disrupted, kept, healthy, recheck_s):
    got = disruption.compute_status(pdb(min_available=1, disrupted=disrupted), pods(3),
                                    scale(3), NOW_S)
    assert set(got.disrupted_pods) == kept
    assert got.current_healthy == healthy
    assert got.recheck_s == recheck_s


def test_terminating_pod_leaves_disrupted_pods():
    the_pods = pods(2, terminating=1)
    got = disruption.compute_status(pdb(min_available=1, disrupted={"web-2": NOW_S - 1}),
                                    the_pods, scale(3), NOW_S)
    assert got.disrupted_pods == {}


@pytest.mark.parametrize("allowed, condition", [
    (1, ("True", "SufficientPods")),
    (0, ("False", "InsufficientPods")),
], ids=["sufficient", "insufficient"])
def test_new_status_and_condition(allowed, condition):
    budget = pdb(min_available=2)
    got = disruption.compute_status(budget, pods(2 + allowed), scale(3), NOW_S)
    updated = disruption.new_status(budget, got, NOW_S)
    assert updated is not None
    st = updated.status
    assert st.observed_generation == 1 and st.disruptions_allowed == allowed
    cond = st.conditions[0]
    assert (cond.type, cond.status, cond.reason) == ("DisruptionAllowed", *condition)
    assert cond.last_transition_time == timefmt.rfc3339(NOW_S)
    # Written once: the same inputs change nothing the second time.
    assert disruption.new_status(updated, got, NOW_S + 5) is None


def test_generation_change_is_written_even_with_the_same_counts():
    budget = pdb(min_available=2)
    got = disruption.compute_status(budget, pods(3), scale(3), NOW_S)
    updated = disruption.new_status(budget, got, NOW_S)
    updated.metadata.generation = 2
    again = disruption.new_status(updated, got, NOW_S)
    assert again is not None and again.status.observed_generation == 2


def test_fail_safe_allows_nothing():
    budget = pdb(min_available=2)
    got = disruption.compute_status(budget, pods(3), scale(3), NOW_S)
    ok = disruption.new_status(budget, got, NOW_S)
    failed = disruption.fail_safe(ok, 'found no controllers for pod "web-0"', NOW_S + 1)
    cond = failed.status.conditions[0]
    assert failed.status.disruptions_allowed == 0
    assert (cond.status, cond.reason, cond.message) == \
        ("False", "SyncFailed", 'found no controllers for pod "web-0"')


@pytest.mark.parametrize("value, total, expected", [
    (3, 10, 3), ("50%", 3, 2), ("0%", 3, 0), ("10%", 1, 1),
], ids=["int", "half-of-3", "zero", "tenth-of-1"])
def test_scaled_value_rounds_up(value, total, expected):
    assert disruption.scaled_value(value, total) == expected


def test_scaled_value_refuses_a_bad_percent():
    with pytest.raises(disruption.SyncError, match='invalid value "x%"'):
        disruption.scaled_value("x%", 3)
