"""Validation of PodDisruptionBudgets (Kubernetes' pkg/apis/policy/validation):
each case a change to a small valid manifest and the exact messages, with paths."""
from __future__ import annotations

import pytest

from kubemu.api import validation
from tests.unit.test_validation import build, drop, problems, put


def messages(doc: dict) -> list[str]:
    return [str(p) for p in problems(doc)]


def pdb() -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}


PERCENT = ("a valid percent string must be a numeric string followed by an ending '%' "
           "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d, []),
    (lambda d: put(d, "spec.minAvailable", "100%"), []),
    (lambda d: (drop(d, "spec.minAvailable"), put(d, "spec.maxUnavailable", 0)), []),
    (lambda d: drop(d, "spec.minAvailable"), []),  # neither: allowed (nothing is guarded)
    (lambda d: drop(d, "spec.selector"), []),
    (lambda d: put(d, "spec.selector", {}), []),
    (lambda d: put(d, "spec.unhealthyPodEvictionPolicy", "AlwaysAllow"), []),
    (lambda d: put(d, "spec.maxUnavailable", 1),
     ["spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:&intstr.IntOrString"
      "{Type:0, IntVal:2, StrVal:\"\"}, MaxUnavailable:&intstr.IntOrString{Type:0, IntVal:1, "
      "StrVal:\"\"}}: minAvailable and maxUnavailable cannot be both set"]),
    (lambda d: put(d, "spec.minAvailable", -1),
     ["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]),
    (lambda d: put(d, "spec.minAvailable", "101%"),
     ['spec.minAvailable: Invalid value: "101%": must not be greater than 100%']),
    (lambda d: put(d, "spec.minAvailable", "half"),
     [f'spec.minAvailable: Invalid value: "half": {PERCENT}']),
    (lambda d: (drop(d, "spec.minAvailable"), put(d, "spec.maxUnavailable", "x")),
     [f'spec.maxUnavailable: Invalid value: "x": {PERCENT}']),
    (lambda d: put(d, "spec.unhealthyPodEvictionPolicy", "Never"),
     ['spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: '
      '"AlwaysAllow", "IfHealthyBudget"']),
    (lambda d: put(d, "spec.selector", {"matchExpressions": [{"key": "app", "operator": "In"}]}),
     ["spec.selector.matchExpressions[0].values: Required value: must be specified when "
      "`operator` is 'In' or 'NotIn'"]),
], ids=["valid", "min-100-percent", "max-zero", "neither", "no-selector", "empty-selector",
        "always-allow", "both", "negative", "over-100-percent", "bad-percent",
        "bad-max-percent", "bad-policy", "bad-selector"])
def test_pod_disruption_budget(mutate, expected):
    doc = pdb()
    mutate(doc)
    assert messages(doc) == expected


def test_status_counters_are_never_negative():
    doc = pdb()
    doc["status"] = {"disruptionsAllowed": -1, "currentHealthy": 1, "desiredHealthy": 1,
                     "expectedPods": -2}
    kind, obj = build(doc)
    assert [str(p) for p in validation.validate_status(kind, obj, None)] == [
        "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0",
        "status.expectedPods: Invalid value: -2: must be greater than or equal to 0"]
