"""PreFilter/PreScore Skip changes no decision: the same node (same seeded tie-break) and
the same FailedScheduling message as running every filter and score on every node."""
from __future__ import annotations

import random

import pytest

from scheduler.default_config import default_framework
from scheduler.framework import Code, Framework, schedule_one, snapshot_of
from tests.unit.scheduler_builders import (HOSTNAME, ZONE, affinity_term, make_node, make_pod,
                                           selector)


class NoSkip:
    """A plugin that never skips: its pre_filter/pre_score still run for their state."""

    def __init__(self, inner):
        self.inner = inner
        self.NAME = inner.NAME
        self.EVENTS = getattr(inner, "EVENTS", frozenset())
        for name in ("filter", "score", "normalize"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))
        if hasattr(inner, "pre_filter"):
            self.pre_filter = self._pre_filter
        if hasattr(inner, "pre_score"):
            self.pre_score = self._pre_score

    def _pre_filter(self, *args):
        status = self.inner.pre_filter(*args)
        return None if status is not None and status.code == Code.SKIP else status

    def _pre_score(self, *args):
        self.inner.pre_score(*args)
        return None


def without_skips(framework: Framework) -> Framework:
    wrapped = {}

    def wrap(p):
        return wrapped.setdefault(p.NAME, NoSkip(p))
    return Framework([wrap(p) for p in framework.filter_plugins],
                     [(wrap(p), w) for p, w in framework.score_plugins])


def cluster():
    nodes = [
        make_node("a").allocatable(cpu="2", memory="4Gi").zone("z1").label("disk", "ssd"),
        make_node("b").allocatable(cpu="16", memory="32Gi").zone("z1")
        .taint("soft", "", "PreferNoSchedule"),
        make_node("c").allocatable(cpu="4", memory="8Gi").zone("z2").taint("gpu", "yes"),
        make_node("d").allocatable(cpu="1", memory="2Gi").zone("z2").unschedulable(),
        make_node("e").allocatable(cpu="8", memory="16Gi").zone("z3"),
    ]
    pods = [
        make_pod("web-1").labels(app="web").on_node("a").requests(cpu="500m"),
        make_pod("web-2").labels(app="web").on_node("e").requests(cpu="1")
        .pod_anti_affinity(affinity_term(HOSTNAME, selector({"app": "web"}))),
        make_pod("db").labels(app="db").on_node("b").requests(memory="6Gi").host_port(5432),
    ]
    return [n.build() for n in nodes], [p.build() for p in pods]


POD_CASES = {
    "plain": make_pod("p").requests(cpu="100m"),
    "big": make_pod("p").requests(cpu="3"),
    "too-big": make_pod("p").requests(cpu="64"),
    "node-selector": make_pod("p").node_selector(disk="ssd"),
    "preferred-node-affinity": make_pod("p").preferred_node_term(10, (ZONE, "In", ["z2"])),
    "tolerates-gpu": make_pod("p").toleration("gpu", "Exists", effect="NoSchedule"),
    "host-port": make_pod("p").host_port(5432),
    "spread": make_pod("p").labels(app="web").spread(1, ZONE, sel=selector({"app": "web"})),
    "spread-anyway": make_pod("p").labels(app="web").spread(
        1, ZONE, when="ScheduleAnyway", sel=selector({"app": "web"})),
    "anti-affinity": make_pod("p").labels(app="web").pod_anti_affinity(
        affinity_term(HOSTNAME, selector({"app": "web"}))),
    "matched-by-existing-anti": make_pod("p").labels(app="web"),
    "preferred-pod-affinity": make_pod("p").preferred_pod_affinity(
        5, affinity_term(ZONE, selector({"app": "db"}))),
    "named-node": make_pod("p").on_node("c"),
}


@pytest.mark.parametrize("case", sorted(POD_CASES), ids=sorted(POD_CASES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_skip_changes_no_decision(case, seed):
    nodes, pods = cluster()
    snapshot = snapshot_of(nodes, pods)
    pod = POD_CASES[case].build()
    fast = default_framework()
    slow = without_skips(fast)
    got = schedule_one(fast, pod, snapshot, random.Random(seed))
    want = schedule_one(slow, pod, snapshot, random.Random(seed))
    assert got.node_name == want.node_name
    assert got.message == want.message
    assert got.feasible_nodes == want.feasible_nodes
    if got.scores:
        # Skipped score plugins add the same amount to every node: the order stays.
        best_got = {n for n, s in got.scores.items() if s == max(got.scores.values())}
        best_want = {n for n, s in want.scores.items() if s == max(want.scores.values())}
        assert best_got == best_want
