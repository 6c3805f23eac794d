"""Update rules of the workload kinds, as Kubernetes' apps and batch
validation words them: immutable selectors, the StatefulSet's forbidden
fields, and what may change in a Job."""
from __future__ import annotations

import copy

import pytest

from tests.unit.test_validation import (
    daemon_set,
    deployment,
    job,
    pairs,
    problems,
    put,
    replica_set,
    stateful_set,
)

T = "spec.template"
OTHER_SELECTOR = {"matchLabels": {"app": "web", "tier": "x"}}


def _with_tier(doc: dict) -> dict:
    return put(doc, f"{T}.metadata.labels", {"app": "web", "tier": "x"})


@pytest.mark.parametrize("manifest", [deployment, replica_set, daemon_set],
                         ids=lambda f: f.__name__)
def test_apps_selector_is_immutable(manifest):
    old, new = _with_tier(manifest()), _with_tier(manifest())
    put(new, "spec.selector", OTHER_SELECTOR)
    found = problems(new, old)
    assert [str(p) for p in found] == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string'
        '{"app":"web", "tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        'field is immutable']


def test_stateful_set_selector_change_is_a_forbidden_update():
    old, new = _with_tier(stateful_set()), _with_tier(stateful_set())
    put(new, "spec.selector", OTHER_SELECTOR)
    assert pairs(problems(new, old)) == [("spec", "Forbidden")]


@pytest.mark.parametrize("mutate", [
    lambda d: put(d, "spec.minReadySeconds", 10),
    lambda d: put(d, "spec.persistentVolumeClaimRetentionPolicy",
                  {"whenDeleted": "Delete", "whenScaled": "Retain"}),
    lambda d: put(d, "spec.ordinals", {"start": 2}),
    lambda d: put(d, "spec.updateStrategy",
                  {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
], ids=["min-ready", "pvc-retention", "ordinals", "partition"])
def test_stateful_set_fields_kubernetes_lets_change(mutate):
    new = stateful_set()
    mutate(new)
    assert pairs(problems(new, stateful_set())) == []


def counted(**spec) -> dict:
    doc = put(put(job(), "spec.completions", 4), "spec.parallelism", 4)
    for name, value in spec.items():
        put(doc, f"spec.{name}", value)
    return doc


@pytest.mark.parametrize("old, mutate, expected", [
    (counted(), lambda d: put(d, "spec.completions", 6), [("spec.completions", "Invalid value")]),
    (counted(completionMode="Indexed"),
     lambda d: (put(d, "spec.completions", 6), put(d, "spec.parallelism", 6)), []),
    (counted(completionMode="Indexed"), lambda d: put(d, "spec.completions", 6),
     [("spec.completions", "Invalid value")]),
    (counted(), lambda d: put(d, "spec.suspend", True), []),
    (counted(suspend=True), lambda d: put(d, "spec.suspend", False), []),
    (counted(), lambda d: put(d, "spec.backoffLimit", 9), []),
    (counted(), lambda d: put(d, "spec.activeDeadlineSeconds", 60), []),
    (counted(), lambda d: put(d, "spec.completionMode", "Indexed"),
     [("spec.completionMode", "Invalid value")]),
    (counted(), lambda d: put(d, "spec.podFailurePolicy",
                              {"rules": [{"action": "Ignore", "onPodConditions": [
                                  {"type": "DisruptionTarget", "status": "True"}]}]}),
     [("spec.podFailurePolicy", "Invalid value")]),
], ids=["completions", "indexed-in-tandem", "indexed-alone", "suspend", "resume",
        "backoff-limit", "deadline", "completion-mode", "pod-failure-policy"])
def test_job_update(old, mutate, expected):
    new = copy.deepcopy(old)
    mutate(new)
    assert pairs(problems(new, old)) == expected


def test_indexed_completions_message():
    old = counted(completionMode="Indexed")
    new = put(counted(completionMode="Indexed"), "spec.completions", 6)
    assert [str(p) for p in problems(new, old)] == [
        "spec.completions: Invalid value: 6: can only be modified in tandem with "
        "spec.parallelism"]


SCHEDULING = [
    lambda d: put(d, f"{T}.spec.nodeSelector", {"disk": "ssd"}),
    lambda d: put(d, f"{T}.spec.tolerations", [{"key": "gpu", "operator": "Exists"}]),
    lambda d: put(d, f"{T}.spec.affinity", {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}),
    lambda d: put(d, f"{T}.metadata.annotations", {"team": "a"}),
]
SCHEDULING_IDS = ["node-selector", "tolerations", "node-affinity", "annotations"]


@pytest.mark.parametrize("mutate", SCHEDULING, ids=SCHEDULING_IDS)
def test_suspended_job_that_never_started_may_move_its_pods(mutate):
    old = counted(suspend=True)
    new = counted(suspend=True)
    mutate(new)
    assert pairs(problems(new, old)) == []


@pytest.mark.parametrize("mutate", SCHEDULING, ids=SCHEDULING_IDS)
def test_running_job_template_is_immutable(mutate):
    new = counted()
    mutate(new)
    found = problems(new, counted())
    assert pairs(found) == [(T, "Invalid value")]
    assert found[0].detail == "field is immutable"


def test_suspended_job_that_started_keeps_its_template():
    old = put(counted(suspend=True), "status.startTime", "2026-01-01T00:00:00Z")
    new = put(counted(suspend=True), f"{T}.spec.nodeSelector", {"disk": "ssd"})
    assert pairs(problems(new, old)) == [(T, "Invalid value")]


def test_suspended_job_may_not_change_its_containers():
    new = put(counted(suspend=True), f"{T}.spec.containers[0].image", "perl:5.36")
    assert pairs(problems(new, counted(suspend=True))) == [(T, "Invalid value")]


def test_suspended_job_may_drop_a_node_affinity_only_affinity():
    old = SCHEDULING[2](counted(suspend=True))
    assert pairs(problems(counted(suspend=True), old)) == []


def test_selector_with_expressions_prints_as_go_prints_it():
    from kubemu.api.validation.meta import label_selector_text
    from tests.unit.test_validation import build

    _, obj = build(put(deployment(), "spec.selector", {
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                             {"key": "x", "operator": "Exists"}]}))
    assert str(label_selector_text(obj.spec.selector)) == (
        'v1.LabelSelector{MatchLabels:map[string]string(nil), '
        'MatchExpressions:[]v1.LabelSelectorRequirement{'
        'v1.LabelSelectorRequirement{Key:"tier", Operator:"In", Values:[]string{"a", "b"}}, '
        'v1.LabelSelectorRequirement{Key:"x", Operator:"Exists", Values:[]string(nil)}}}')


# ---------------------------------------------------------------- status updates

def status_problems(doc: dict, status: dict, old_status: dict | None = None) -> list[str]:
    from kubemu.api import validation
    from tests.unit.test_validation import build

    old = copy.deepcopy(doc)
    if old_status is not None:
        old["status"] = old_status
    new = copy.deepcopy(doc)
    new["status"] = status
    kind, new_obj = build(new)
    _, old_obj = build(old)
    new_obj.metadata.uid = old_obj.metadata.uid
    return [str(p) for p in validation.validate_status(kind, new_obj, old_obj)]


@pytest.mark.parametrize("manifest, status, old_status, expected", [
    (deployment, {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                  "availableReplicas": 3}, None, []),
    (deployment, {"replicas": 2, "updatedReplicas": 3}, None,
     ["status.updatedReplicas: Invalid value: 3: cannot be greater than status.replicas"]),
    (deployment, {"replicas": 3, "readyReplicas": 1, "availableReplicas": 2}, None,
     ["status.availableReplicas: Invalid value: 2: cannot be greater than readyReplicas"]),
    (deployment, {"observedGeneration": -1}, None,
     ["status.observedGeneration: Invalid value: -1: must be greater than or equal to 0"]),
    (deployment, {"collisionCount": 1}, {"collisionCount": 2},
     ["status.collisionCount: Invalid value: 1: cannot be decremented"]),
    (replica_set, {"replicas": 2, "fullyLabeledReplicas": 3}, None,
     ["status.fullyLabeledReplicas: Invalid value: 3: cannot be greater than status.replicas"]),
    (stateful_set, {"replicas": 3, "readyReplicas": 2, "availableReplicas": 3}, None,
     ["status.availableReplicas: Invalid value: 3: cannot be greater than "
      "status.readyReplicas"]),
    (stateful_set, {"replicas": 1, "currentReplicas": 2}, None,
     ["status.currentReplicas: Invalid value: 2: cannot be greater than status.replicas"]),
    (daemon_set, {"numberReady": -1}, None,
     ["status.numberReady: Invalid value: -1: must be greater than or equal to 0"]),
    (job, {"active": -1}, None,
     ["status.active: Invalid value: -1: must be greater than or equal to 0"]),
    (job, {"active": 2, "succeeded": 1}, None, []),
], ids=["deployment-ok", "deployment-updated", "deployment-available", "deployment-negative",
        "collision-decremented", "rs-fully-labeled", "sts-available", "sts-current",
        "ds-negative", "job-negative", "job-ok"])
def test_status_update(manifest, status, old_status, expected):
    assert status_problems(manifest(), status, old_status) == expected


def test_stateful_set_max_unavailable_zero_message():
    doc = put(stateful_set(), "spec.updateStrategy",
              {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}})
    assert [str(p) for p in problems(doc)] == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0"]


@pytest.mark.parametrize("time_zone, expected", [
    ("Europe/Berlin", []),
    ("Etc/GMT+5", []),
    ("UTC", []),
    ("", ['spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string']),
    ("Local", ['spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone '
               'as defined in https://www.iana.org/time-zones']),
    ("Mars/Olympus", ['spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone '
                      'Mars/Olympus']),
    ("../etc/passwd", ['spec.timeZone: Invalid value: "../etc/passwd": unknown time zone '
                       '../etc/passwd']),
], ids=["berlin", "etc-gmt", "utc", "empty", "local", "unknown", "path-escape"])
def test_cron_job_time_zone(time_zone, expected):
    from tests.unit.test_validation import cron_job

    assert [str(p) for p in problems(put(cron_job(), "spec.timeZone", time_zone))] == expected


def test_cron_job_time_zone_is_checked_only_when_it_changes():
    from tests.unit.test_validation import cron_job

    # A zone the tz database dropped must not block other updates of old CronJobs.
    old = put(cron_job(), "spec.timeZone", "Mars/Olympus")
    new = put(put(cron_job(), "spec.timeZone", "Mars/Olympus"), "spec.suspend", True)
    assert problems(new, old) == []
