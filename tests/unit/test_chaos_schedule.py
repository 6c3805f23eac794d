"""deploy.chaos.schedule: the fault timeline is a function of (scenario, seed,
process names): the same seed gives the same timeline, another seed another;
classes resolve to their members; held targets are not struck twice."""
from __future__ import annotations

import pytest

from deploy.chaos.scenario import parse
from deploy.chaos.schedule import ETCD_LEADER, Process, may_strike_etcd, members, timeline

PROCESSES = [Process("etcd-0", "", "etcd"), Process("apiserver-0", "", "apiserver"),
             Process("scheduler-0", "", "scheduler"),
             Process("controller-manager-0", "", "controller-manager"),
             *[Process(f"node-{n}/{c}", f"node-{n}", c) for n in range(2)
               for c in ("kubelet", "runtime", "kube-proxy")]]
CONTROL_PLANE = {"etcd-0", "apiserver-0", "scheduler-0", "controller-manager-0"}
NODE = {p.name for p in PROCESSES} - CONTROL_PLANE

KILL_ANY = parse("duration: 60s\nfaults: [{action: kill, target: any, every: 2s, jitter: 500ms}]")


def test_the_same_seed_gives_the_same_timeline():
    first = timeline(KILL_ANY, 42, PROCESSES)
    again = timeline(KILL_ANY, 42, list(reversed(PROCESSES)))   # order of the listing: irrelevant
    assert first == again
    assert len(first) == 29     # at 2s .. 58s (+ jitter < 0.5s), none at the end
    assert all(2.0 <= e.at_s < 60.0 for e in first)


def test_another_seed_gives_another_timeline():
    targets = {seed: [e.target for e in timeline(KILL_ANY, seed, PROCESSES)] for seed in (1, 2)}
    assert targets[1] != targets[2]


@pytest.mark.parametrize("target, expected", [
    ("any", CONTROL_PLANE | NODE),
    ("control-plane", CONTROL_PLANE),
    ("node", NODE),
    ("apiserver-0", {"apiserver-0"}),
], ids=["any", "control-plane", "node", "a-name"])
def test_a_class_resolves_to_its_members(target, expected):
    assert set(members(target, PROCESSES)) == expected
    scenario = parse(f"duration: 100s\nfaults: [{{action: kill, target: {target}, every: 1s}}]")
    picked = {e.target for e in timeline(scenario, 7, PROCESSES)}
    assert picked <= expected
    assert len(picked) == len(expected) or len(expected) > 4   # 99 picks cover a small class


def test_etcd_leader_stays_a_class_resolved_when_it_fires():
    scenario = parse("duration: 30s\ntimeline: [{at: 10s, action: kill, target: etcd-leader}]")
    [event] = timeline(scenario, 1, PROCESSES)
    assert (event.at_s, event.target, event.source) == (10.0, ETCD_LEADER, "timeline[0]")
    assert may_strike_etcd([event], PROCESSES) == [event]


def test_a_held_target_is_not_picked_and_a_class_with_none_free_is_skipped():
    scenario = parse("duration: 10s\nfaults: [{action: pause, target: control-plane, every: 1s, "
                     "for: 100s}]")
    events = timeline(scenario, 3, PROCESSES)
    struck = [e.target for e in events if not e.skipped]
    assert sorted(struck) == sorted(CONTROL_PLANE)       # each once, then all are held
    assert [e.skipped for e in events[4:]] == ["every process of 'control-plane' is held by a "
                                               "fault"] * (len(events) - 4)


def test_a_named_target_still_held_is_skipped():
    scenario = parse("duration: 30s\ntimeline: [{at: 1s, action: stop, target: etcd-0, for: 10s},"
                     " {at: 5s, action: kill, target: etcd-0}, {at: 12s, action: kill, "
                     "target: etcd-0}]")
    events = timeline(scenario, 1, PROCESSES)
    assert [bool(e.skipped) for e in events] == [False, True, False]


def test_faults_from_start_to_stop_and_timeline_merge_in_time_order():
    scenario = parse("duration: 20s\nfaults: [{action: kill, target: apiserver-0, every: 4s, "
                     "start: 2s, stop: 12s}]\ntimeline: [{at: 7s, action: kill, target: etcd-0}]")
    events = timeline(scenario, 1, PROCESSES)
    assert [(e.at_s, e.target) for e in events] == [
        (6.0, "apiserver-0"), (7.0, "etcd-0"), (10.0, "apiserver-0")]


def test_an_unknown_target_is_an_error_naming_the_processes():
    scenario = parse("duration: 5s\ntimeline: [{at: 1s, action: kill, target: etcd}]")
    with pytest.raises(ValueError, match=r"target 'etcd': no such process .*etcd-0"):
        timeline(scenario, 1, PROCESSES)


def test_only_kill_pause_stop_of_etcd_are_risky():
    scenario = parse("duration: 10s\ntimeline: [{at: 1s, action: partition, target: etcd-0, "
                     "for: 1s}, {at: 3s, action: kill, target: apiserver-0}, "
                     "{at: 5s, action: pause, target: etcd-0, for: 1s}]")
    risky = may_strike_etcd(timeline(scenario, 1, PROCESSES), PROCESSES)
    assert [(e.action, e.target) for e in risky] == [("pause", "etcd-0")]
