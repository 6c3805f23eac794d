"""get and describe of PodDisruptionBudgets. The expected text follows kubectl
1.32's source (describePodDisruptionBudgetV1 in pkg/describe/describe.go and
printPodDisruptionBudget in pkg/printers/internalversion/printers.go): there is
no kubectl here to capture it from, so these are written from the source and
its tabwriter layout (a line without a tab ends a column block)."""
from __future__ import annotations

import datetime

import pytest

from kubemu.api.kinds import REGISTRY
from kubemu.cli import common, describe, printers
from tests.builders import obj

PDBS = REGISTRY.by_resource("poddisruptionbudgets")
NOW = datetime.datetime(2026, 11, 30, 16, 5, tzinfo=datetime.timezone.utc)


def pdb(spec: dict, status: dict | None = None) -> dict:
    return common.to_json(obj({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "zk-pdb", "namespace": "default",
                     "creationTimestamp": "2026-11-30T16:00:00Z"},
        "spec": spec, "status": status or {}}))


ZK = {"minAvailable": 2, "selector": {"matchLabels": {"app": "zookeeper"}}}
ZK_STATUS = {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2,
             "expectedPods": 3}


def test_describe_min_available():
    assert describe.describe(PDBS, pdb(ZK, ZK_STATUS), [], NOW) == (
        "Name:           zk-pdb\n"
        "Namespace:      default\n"
        "Min available:  2\n"
        "Selector:       app=zookeeper\n"
        "Status:\n"
        "    Allowed disruptions:  1\n"
        "    Current:              3\n"
        "    Desired:              2\n"
        "    Total:                3\n"
        "Events:                   <none>\n")


def test_describe_max_unavailable_and_no_selector():
    text = describe.describe(PDBS, pdb({"maxUnavailable": "25%"}), None, NOW)
    assert text.splitlines()[2:4] == ["Max unavailable:  25%", "Selector:         <unset>"]
    assert "    Allowed disruptions:  0" in text.splitlines()


@pytest.mark.parametrize("spec, status, row", [
    (ZK, ZK_STATUS, ["zk-pdb", "2", "N/A", "1", "5m"]),
    ({"maxUnavailable": "25%", "selector": {}}, {}, ["zk-pdb", "N/A", "25%", "0", "5m"]),
], ids=["min-available", "max-unavailable-percent"])
def test_get_columns(spec, status, row):
    table = printers.table_for("poddisruptionbudgets")
    assert table.columns == ("NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS",
                             "AGE")
    assert table.row(pdb(spec, status), NOW) == row
