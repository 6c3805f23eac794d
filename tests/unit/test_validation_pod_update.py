"""A pod update may change only what Kubernetes lets it change (ValidatePodUpdate):
container and init container images, activeDeadlineSeconds (set, or lowered),
tolerations (added to; an existing one's tolerationSeconds), and
terminationGracePeriodSeconds from negative to 1. Anything else is refused
with one Forbidden error at `spec` followed by go-cmp's diff of the specs."""
from __future__ import annotations

import pytest

from tests.unit.test_validation import pairs, pod, problems, put

FORBIDDEN_PREFIX = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)")


def with_init(doc: dict) -> dict:
    return put(doc, "spec.initContainers", [{"name": "setup", "image": "busybox:1.35"}])


TOLERATION = {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}

ALLOWED = [
    ("same-spec", pod, lambda d: d),
    ("container-image", pod, lambda d: put(d, "spec.containers[0].image", "nginx:1.27")),
    ("init-container-image", lambda: with_init(pod()),
     lambda d: put(d, "spec.initContainers[0].image", "busybox:1.36")),
    ("deadline-set", pod, lambda d: put(d, "spec.activeDeadlineSeconds", 30)),
    ("toleration-added", pod, lambda d: put(d, "spec.tolerations", [TOLERATION])),
    ("toleration-seconds-changed", lambda: put(pod(), "spec.tolerations", [TOLERATION]),
     lambda d: put(d, "spec.tolerations[0].tolerationSeconds", 10)),
    ("grace-negative-to-1", lambda: put(pod(), "spec.terminationGracePeriodSeconds", -1),
     lambda d: put(d, "spec.terminationGracePeriodSeconds", 1)),
]


@pytest.mark.parametrize("base,mutate", [(b, m) for _, b, m in ALLOWED],
                         ids=[i for i, _, _ in ALLOWED])
def test_allowed_updates(base, mutate):
    old = base()
    assert problems(mutate(base()), old) == []


REFUSED = [
    ("env", "spec.containers[0].env", [{"name": "A", "value": "1"}],
     '+ \t\t\tEnv:          []core.EnvVar{{Name: "A", Value: "1"}},\n'),
    ("resources", "spec.containers[0].resources", {"requests": {"cpu": "100m"}},
     '+ \t\t\t\tRequests: map[string]string{"cpu": "100m"},\n'),
    ("command", "spec.containers[0].command", ["sleep", "1"],
     '+ \t\t\tCommand:    []string{"sleep", "1"},\n'),
    ("restart-policy", "spec.restartPolicy", "Never",
     '+ \tRestartPolicy:                 "Never",\n'),
    ("grace-period", "spec.terminationGracePeriodSeconds", 5,
     "+ \tTerminationGracePeriodSeconds: &5,\n"),
]


@pytest.mark.parametrize("path,value,changed", [(p, v, c) for _, p, v, c in REFUSED],
                         ids=[i for i, *_ in REFUSED])
def test_other_changes_are_forbidden_naming_what_changed(path, value, changed):
    found = problems(put(pod(), path, value), pod())
    assert pairs(found) == [("spec", "Forbidden")]
    assert found[0].detail.startswith(FORBIDDEN_PREFIX + "\n  core.PodSpec{\n")
    assert changed in found[0].detail
    # Only what changed is marked: one line out, one in.
    diff_lines = found[0].detail.splitlines()[1:]
    assert [line[:2] for line in diff_lines if line[:2] != "  "] == ["- ", "+ "]


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.containers", [*d["spec"]["containers"],
                                          {"name": "side", "image": "busybox"}]),
     [("spec.containers", "Forbidden")]),
    (lambda d: put(d, "spec.activeDeadlineSeconds", 60), [("spec.activeDeadlineSeconds",
                                                           "Invalid value")]),
], ids=["container-added", "deadline-raised"])
def test_containers_added_and_deadline_raised(mutate, expected):
    old = put(pod(), "spec.activeDeadlineSeconds", 30)
    assert pairs(problems(mutate(put(pod(), "spec.activeDeadlineSeconds", 30)), old)) == expected


def test_removing_a_toleration_is_forbidden():
    old = put(pod(), "spec.tolerations", [TOLERATION])
    assert pairs(problems(pod(), old)) == [("spec.tolerations[0]", "Forbidden")]
