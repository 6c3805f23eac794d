"""describe and get of ResourceQuotas, LimitRanges and the Namespace view of
them (issue 11), compared with kubectl 1.32.

Each kubectl_describe/<Kind>-<name>.txt here is what real kubectl printed for
`kubectl describe KIND NAME` against a fake API server serving exactly the
objects of cli_quota_objects.py, through kubemu's codec first. The `get`
columns follow kubernetes/kubernetes pkg/printers/internalversion/printers.go
(printResourceQuota, printLimitRange).
"""
from __future__ import annotations

import asyncio
import datetime
import pathlib

import pytest

from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from kubemu.cli import common, describe, printers
from tests.builders import obj as message
from tests.unit import cli_quota_objects as objects

CAPTURED = datetime.datetime(2026, 11, 30, 16, 30, 0, tzinfo=datetime.timezone.utc)
GOLDEN = pathlib.Path(__file__).parent / "kubectl_describe"


def served(doc: dict) -> dict:
    return common.to_json(message(doc))


class ObjectsClient:
    """The list/get calls describe makes, answered from cli_quota_objects."""

    async def list_all(self, resource: str, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = ""):
        kind = REGISTRY.by_resource(resource).kind

        class Result:
            items = [message(d) for d in objects.ALL if d["kind"] == kind
                     and d["metadata"].get("namespace", "") == namespace]
        return Result()

    async def get(self, resource: str, name: str, namespace: str = ""):
        raise errors.NotFound(f'{resource} "{name}" not found')


@pytest.mark.parametrize("doc", objects.ALL,
                         ids=[f"{o['kind']}-{o['metadata']['name']}" for o in objects.ALL])
def test_describe_matches_kubectl(doc):
    expected = (GOLDEN / f"{doc['kind']}-{doc['metadata']['name']}.txt").read_text()
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    obj = served(doc)
    extra = asyncio.run(describe._extra_for(ObjectsClient(), kind, obj))
    # kubectl's describers of these kinds print no Events section, even with events.
    assert describe.describe(kind, obj, [], CAPTURED, extra=extra) == expected


def row(resource: str, doc: dict) -> list[str]:
    return printers.row(resource, served(doc), printers.TableOptions(), CAPTURED)


def test_get_quota_columns():
    assert printers.headers("resourcequotas", printers.TableOptions()) == [
        "NAME", "AGE", "REQUEST", "LIMIT"]
    compute, best_effort, objs = objects.QUOTAS
    assert row("resourcequotas", compute) == [
        "compute", "7h30m", "pods: 2/3, requests.cpu: 500m/1, requests.memory: 256Mi/1Gi",
        "limits.cpu: 1/2, limits.memory: 512Mi/2Gi"]
    assert row("resourcequotas", best_effort) == ["best-effort", "7h30m", "pods: 0/10", ""]
    assert row("resourcequotas", objs) == [
        "objects", "7h30m", "configmaps: 1/10, count/deployments.apps: 0/2, "
        "requests.storage: 0/10Gi, services: 0/5", ""]


def test_get_quota_before_the_controller_fills_its_status():
    fresh = dict(objects.QUOTAS[0], status={})
    assert row("resourcequotas", fresh) == ["compute", "7h30m", "", ""]


def test_get_limits_columns():
    assert printers.headers("limitranges", printers.TableOptions()) == ["NAME", "CREATED AT"]
    assert row("limitranges", objects.LIMIT_RANGES[0]) == ["limits", "2026-11-30T09:00:00Z"]
