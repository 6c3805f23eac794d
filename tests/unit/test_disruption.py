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
            p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=owner,
                                             uid=owner,
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


def test_pods_not_deleted_in_time_are_named_for_an_event():
    got = disruption.compute_status(pdb(min_available=1, disrupted={"web-0": NOW_S - 121}),
                                    pods(3), scale(3), NOW_S)
    assert got.not_deleted == ("web-0",)


def target_pod(*, status: str = "True", reason: str = "EvictionByEvictionAPI",
               since_s: float = NOW_S - 30, phase: str = "Running", deleting: bool = False):
    p = pods(1)[0]
    p.status.phase = phase
    p.status.conditions.add(type="DisruptionTarget", status=status, reason=reason,
                            last_transition_time=timefmt.rfc3339(since_s))
    if deleting:
        p.metadata.deletion_timestamp = timefmt.rfc3339(NOW_S)
    return p


@pytest.mark.parametrize("p, wait_s", [
    (target_pod(), 90.0),
    (target_pod(since_s=NOW_S - 500), 0.0),
    (target_pod(status="False"), None),
    (target_pod(reason="TerminationByKubelet"), None),
    (target_pod(phase="Failed"), None),
    (target_pod(deleting=True), None),
    (pods(1)[0], None),
], ids=["fresh", "stale", "already-false", "set-by-kubelet", "terminal", "terminating",
        "no-condition"])
def test_stale_disruption_target(p, wait_s):
    assert disruption.stale_disruption_wait_s(p, NOW_S) == wait_s


# ---------------------------------------------------------------- the controller's sync

@pytest.fixture
async def h():
    from tests.unit.cli_memclient import MemClient
    from tests.unit.controller_harness import ControllerHarness

    harness = ControllerHarness(disruption.DisruptionController, await MemClient.new())
    for resource in ("replicasets", "deployments", "statefulsets"):
        harness.cache(resource, [])
    try:
        yield harness
    finally:
        await harness.stop()


async def stored_pods(h, the_pods) -> list:
    out = []
    for p in the_pods:
        status = type(p.status)()
        status.CopyFrom(p.status)
        created = await h.client.create(p)
        created.status.CopyFrom(status)
        out.append(await h.client.update_status(created))
    return out


async def test_sync_writes_status_once(h):
    from tests.builders import obj as message

    created = await h.client.create(message({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}))
    h.cache("poddisruptionbudgets", [created])
    h.cache("pods", await stored_pods(h, pods(3, owner="")))
    await h.controller.sync("default/web")
    got = await h.client.get("poddisruptionbudgets", "web", "default")
    st = got.status
    assert (st.observed_generation, st.expected_pods, st.current_healthy, st.desired_healthy,
            st.disruptions_allowed) == (1, 3, 3, 2, 1)
    assert [(c.type, c.status, c.reason) for c in st.conditions] == \
        [("DisruptionAllowed", "True", "SufficientPods")]
    h.cache("poddisruptionbudgets", [got])
    await h.controller.sync("default/web")
    again = await h.client.get("poddisruptionbudgets", "web", "default")
    assert again.metadata.resource_version == got.metadata.resource_version


async def test_sync_fails_safe_on_a_pod_of_an_unknown_controller(h):
    from tests.builders import obj as message

    created = await h.client.create(message({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}))
    h.cache("poddisruptionbudgets", [created])
    h.cache("pods", await stored_pods(h, pods(2, owner="rs-gone")))
    await h.controller.sync("default/web")
    st = (await h.client.get("poddisruptionbudgets", "web", "default")).status
    assert st.disruptions_allowed == 0
    assert [(c.status, c.reason, c.message) for c in st.conditions] == \
        [("False", "SyncFailed", 'found no controllers for pod "web-0"')]


async def test_stale_disruption_target_is_reset(h):
    stale = await stored_pods(h, [target_pod(since_s=NOW_S - 500)])
    h.cache("poddisruptionbudgets", [])
    h.cache("pods", stale)
    await h.controller.sync(disruption.STALE_PREFIX + "default/web-0")
    pod = await h.client.get("pods", "web-0", "default")
    cond = next(c for c in pod.status.conditions if c.type == "DisruptionTarget")
    assert (cond.status, cond.reason) == ("False", "")


@pytest.mark.parametrize("selector, matches", [
    ({"matchLabels": {"app": "web"}}, True),
    ({"matchLabels": {"app": "db"}}, False),
    ({}, True),  # policy/v1: empty selects every pod of the namespace
    (None, False),
], ids=["matching", "other", "empty", "none"])
def test_pod_events_reach_the_budgets_selecting_the_pod(h, selector, matches):
    from tests.builders import obj as message

    spec: dict[str, Any] = {"minAvailable": 1}
    if selector is not None:
        spec["selector"] = selector
    budget = message({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                      "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    h.cache("poddisruptionbudgets", [budget])
    assert [p.metadata.name for p in h.controller._pdbs_of(pods(1)[0])] == \
        (["web"] if matches else [])


def test_unmanaged_pods_event_shows_the_selector_as_go_prints_it():
    from tests.builders import obj as message

    budget = message({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                      "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"maxUnavailable": 1, "selector": {
                          "matchLabels": {"app": "web"},
                          "matchExpressions": [{"key": "tier", "operator": "In",
                                                "values": ["a", "b"]}]}}})
    assert disruption._selector_text(budget) == (
        "&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:"
        "[]LabelSelectorRequirement{&LabelSelectorRequirement{Key:tier,Operator:In,"
        "Values:[a b],},},}")
