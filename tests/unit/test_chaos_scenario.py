"""deploy.chaos.scenario: the scenario YAML parses into its defaults, and bad
input is refused with the file, the field path and the reason."""
from __future__ import annotations

import pathlib

import pytest

from deploy.chaos.scenario import ScenarioError, parse

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "scenarios"

GOOD = """
duration: 20s
settle: 1m
cluster: {nodes: 2, etcd: 3, apiservers: 2, controllerManagers: 2}
workloads:
  - {kind: configmap-writer, name: w, rate: 4, keys: 3}
  - {kind: deployment-churner, name: web, replicas: [1, 3], rollouts: 2}
  - {kind: job-churner, name: batch, every: 5s}
faults:
  - {action: kill, target: any, every: 2s}
  - {action: pause, target: etcd-leader, every: 10s, for: 3s, start: 5s, stop: 15s}
timeline:
  - {at: 7s, action: partition, target: node-0/kubelet, for: 4s}
"""


def test_a_full_scenario_parses_with_its_values():
    s = parse(GOOD, "good.yaml")
    assert (s.duration_s, s.settle_s) == (20.0, 60.0)
    assert (s.cluster.nodes, s.cluster.etcd, s.cluster.apiservers,
            s.cluster.controller_managers, s.cluster.schedulers, s.cluster.profile) == \
        (2, 3, 2, 2, 1, "fast")
    assert [w.kind for w in s.workloads] == ["configmap-writer", "deployment-churner",
                                             "job-churner"]
    assert (s.workloads[0].rate_per_s, s.workloads[0].keys) == (4.0, 3)
    assert (s.workloads[1].replicas_min, s.workloads[1].replicas_max) == (1, 3)
    assert s.faults[1].for_s == 3.0 and s.faults[1].start_s == 5.0 and s.faults[1].stop_s == 15.0
    assert (s.timeline[0].at_s, s.timeline[0].target) == (7.0, "node-0/kubelet")


def test_the_issue_scenarios_ship():
    assert sorted(p.stem for p in SCENARIOS.glob("*.yaml")) == [
        "apiserver-flapping", "etcd-leader-loss", "kill-any-every-2s", "node-loss",
        "partitioned-node", "paused-leaders"]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_parses(path):
    assert parse(path.read_text(), str(path)).duration_s > 0


@pytest.mark.parametrize("text, message", [
    ("settle: 10s", "bad.yaml: duration: required"),
    ("duration: soon", 'bad.yaml: duration: time: invalid duration "soon"'),
    ("duration: 0s", "bad.yaml: duration: must be > 0"),
    ("duration: 10s\ndurationn: 5s", "bad.yaml: (top level): unknown field 'durationn'"),
    ("duration: 10s\ncluster: {nodes: -1}", "bad.yaml: cluster.nodes: must be in [0, 16], got -1"),
    ("duration: 10s\ncluster: {profile: slow}", "cluster.profile: must be one of default, fast"),
    ("duration: 10s\nworkloads: [{kind: writer}]", "workloads[0].kind: must be one of"),
    ("duration: 10s\nworkloads: [{kind: job-churner, rate: 3}]",
     "workloads[0].rate: not a field of a job-churner workload"),
    ("duration: 10s\nworkloads: [{kind: deployment-churner, replicas: [3, 1]}]",
     "workloads[0].replicas: min 3 is more than max 1"),
    ("duration: 10s\nworkloads: [{kind: job-churner, name: a}, {kind: job-churner, name: a}]",
     "workloads: two workloads are named 'a'"),
    ("duration: 10s\nfaults: [{action: explode, target: any, every: 1s}]",
     "faults[0].action: must be one of kill, pause, stop, partition, got 'explode'"),
    ("duration: 10s\nfaults: [{action: kill, target: any}]", "faults[0].every: required"),
    ("duration: 10s\nfaults: [{action: kill, target: any, every: 1s}, "
     "{action: pause, target: any, every: 2s}]", "faults[1].for: required for pause"),
    ("duration: 10s\nfaults: [{action: kill, target: any, every: 1s, for: 2s}]",
     "faults[0].for: a kill has no duration"),
    ("duration: 10s\nfaults: [{action: kill, target: '', every: 1s}]",
     "faults[0].target: must be a process name"),
    ("duration: 10s\nfaults: [{action: kill, target: any, every: 1s, start: 20s}]",
     "faults[0].start: 20s is after the end of the run"),
    ("duration: 10s\nfaults: [{action: kill, target: any, every: 1s, jitter: 1s}]",
     "faults[0].jitter: must be less than every"),
    ("duration: 10s\ntimeline: [{action: kill, target: any}]", "timeline[0].at: required"),
    ("duration: 10s\ntimeline: [{at: 11s, action: kill, target: any}]",
     "timeline[0].at: 11s is after the end of the run"),
    ("duration: 10s\ntimeline: [{at: 1s, action: stop, target: etcd-0}]",
     "timeline[0].for: required for stop"),
    ("- just a list", "bad.yaml: (top level): must be a mapping, got list"),
    ("duration: [1", "bad.yaml: not YAML"),
], ids=lambda v: v.split(":")[0][:40] if "\n" not in v else None)
def test_bad_input_names_the_field_and_the_reason(text, message):
    with pytest.raises(ScenarioError) as info:
        parse(text, "bad.yaml")
    assert message in str(info.value)
