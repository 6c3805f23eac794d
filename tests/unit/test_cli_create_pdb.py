"""`kubemu create poddisruptionbudget|pdb`: kubectl 1.32's create_pdb.go (its checks
in its order, ParseToLabelSelector, intstr.Parse), written from its source."""
from __future__ import annotations

import json

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli

ZERO_STATUS = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
               "expectedPods": 0}


@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


@pytest.mark.parametrize("argv, spec", [
    (["--selector=app=web", "--min-available=2"],
     {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    (["--selector=tier in (a,b),app==web", "--max-unavailable=25%"],
     {"selector": {"matchLabels": {"app": "web"},
                   "matchExpressions": [{"key": "tier", "operator": "In",
                                         "values": ["a", "b"]}]},
      "maxUnavailable": "25%"}),
    (["--selector=!canary", "--min-available=50%"],
     {"minAvailable": "50%",
      "selector": {"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}}),
], ids=["min-int", "max-percent-set-based", "min-percent-does-not-exist"])
async def test_generated_budget(mem, capsys, argv, spec):
    assert await run_cli("create", "pdb", "web", *argv, "--dry-run=client", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
        "metadata": {"name": "web", "creationTimestamp": None}, "spec": spec,
        "status": ZERO_STATUS}


@pytest.mark.parametrize("argv, message", [
    (["--min-available=1"], "a selector must be specified"),
    (["--selector=app=web"], "one of min-available or max-unavailable must be specified"),
    (["--selector=app=web", "--min-available=1", "--max-unavailable=1"],
     "min-available and max-unavailable cannot be both specified"),
    (["--selector=app=web", "--min-available=1Gb"], "invalid format specified for min-available"),
    (["--selector=app=web", "--max-unavailable=-1"],
     "invalid format specified for max-unavailable"),
    (["--selector=a!=b", "--min-available=1"], '"!=" is not a valid label selector operator'),
    (["--selector=a>1", "--min-available=1"], '"gt" isn\'t supported in label selectors'),
], ids=["no-selector", "no-bound", "both-bounds", "bad-min", "bad-max", "not-equals",
        "greater-than"])
async def test_refused_with_kubectls_message(mem, capsys, argv, message):
    assert await run_cli("create", "poddisruptionbudget", "web", *argv) == 1
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (await mem.list("poddisruptionbudgets", "default")).items


async def test_create_for_real_and_again(mem, capsys):
    assert await run_cli("create", "pdb", "web", "--selector=app=web", "--min-available=1") == 0
    assert capsys.readouterr().out == "poddisruptionbudget.policy/web created\n"
    doc = await mem.doc("poddisruptionbudgets", "web")
    assert doc["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    assert await run_cli("create", "pdb", "web", "--selector=app=web", "--min-available=1") == 1
    assert capsys.readouterr().err == ("error: failed to create poddisruptionbudgets: "
                                       'poddisruptionbudgets.policy "web" already exists\n')
