"""kubemu autoscale, get hpa and describe hpa: kubectl 1.32's output, with the
apiserver's registry on the in-memory store (tests/unit/cli_memclient)."""
from __future__ import annotations

import datetime

import pytest

from kubemu.cli import describe, printers
from kubemu.cli.main import main
from tests.unit.cli_memclient import MemClient

NOW = datetime.datetime(2027, 1, 15, 8, 10, 0, tzinfo=datetime.timezone.utc)
CREATED = "2027-01-15T08:00:00Z"


def hpa_doc(metrics: list, current: list | None = None, **spec) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "php-apache", "namespace": "default",
                         "creationTimestamp": CREATED},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "php-apache"},
                     "minReplicas": 1, "maxReplicas": 10, "metrics": metrics, **spec},
            "status": {"currentReplicas": 1, "desiredReplicas": 1,
                       **({"currentMetrics": current} if current is not None else {})}}


CPU50 = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 50}}}
MEM = {"type": "Resource", "resource": {"name": "memory", "target": {
    "type": "AverageValue", "averageValue": "100Mi"}}}
CPU_NOW = {"type": "Resource", "resource": {"name": "cpu", "current": {
    "averageValue": "6m", "averageUtilization": 3}}}


@pytest.mark.parametrize("doc, targets", [
    (hpa_doc([CPU50]), "cpu: <unknown>/50%"),
    (hpa_doc([CPU50], [CPU_NOW]), "cpu: 3%/50%"),
    (hpa_doc([CPU50, MEM], [CPU_NOW, {"type": ""}]), "cpu: 3%/50%, memory: <unknown>/100Mi"),
    (hpa_doc([CPU50, MEM, CPU50]), "cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more..."),
], ids=["unknown", "current", "two-metrics", "more"])
def test_get_hpa_targets(doc, targets):
    table = printers.TABLES["horizontalpodautoscalers"]
    assert table.columns == ("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS",
                             "AGE")
    assert table.row(doc, NOW) == ["php-apache", "Deployment/php-apache", targets, "1", "10",
                                   "1", "10m"]


def test_describe_hpa_as_kubectl():
    doc = hpa_doc([CPU50, MEM], [CPU_NOW, {"type": ""}],
                  behavior={"scaleDown": {"stabilizationWindowSeconds": 30,
                                          "selectPolicy": "Max", "policies": [
                                              {"type": "Percent", "value": 100,
                                               "periodSeconds": 15}]}})
    doc["status"]["conditions"] = [
        {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
         "message": "recommended size matches current size"}]
    text = describe.describe_horizontalpodautoscaler(doc, NOW).render()
    assert text == (
        "Name:                                                  php-apache\n"
        "Namespace:                                             default\n"
        "Labels:                                                <none>\n"
        "Annotations:                                           <none>\n"
        "CreationTimestamp:                                     Fri, 15 Jan 2027 08:00:00 +0000\n"
        "Reference:                                             Deployment/php-apache\n"
        "Metrics:                                               ( current / target )\n"
        "  resource cpu on pods  (as a percentage of request):  3% (6m) / 50%\n"
        "  resource memory on pods:                             <unknown> / 100Mi\n"
        "Min replicas:                                          1\n"
        "Max replicas:                                          10\n"
        "Behavior:\n"
        "  Scale Down:\n"
        "    Stabilization Window: 30 seconds\n"
        "    Select Policy: Max\n"
        "    Policies:\n"
        "      - Type: Percent  Value: 100  Period: 15 seconds\n"
        # Go's tabwriter: the policy line and this one share a column block.
        "Deployment pods:       1 current / 1 desired\n"
        "Conditions:\n"
        "  Type         Status  Reason            Message\n"
        "  ----         ------  ------            -------\n"
        "  AbleToScale  True    ReadyForNewScale  recommended size matches current size\n")


@pytest.fixture
async def mem(monkeypatch):
    client = await MemClient.new()
    monkeypatch.setattr("kubemu.cli.common.client_for", lambda args: client)
    await client.create(printers_obj({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "php-apache", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"run": "php-apache"}},
                 "template": {"metadata": {"labels": {"run": "php-apache"}},
                              "spec": {"containers": [{"name": "php-apache",
                                                       "image": "kuard"}]}}}}))
    return client


def printers_obj(doc):
    from tests.builders import obj
    return obj(doc)


async def run(*argv):
    import asyncio
    return await asyncio.to_thread(main, list(argv))


def test_autoscale_flags_are_checked(capsys, tmp_path):
    assert main(["--home", str(tmp_path), "autoscale", "deployment", "x"]) == 1
    assert capsys.readouterr().err == (
        "error: --max=MAXPODS is required and must be at least 1, max: -1\n")
    assert main(["--home", str(tmp_path), "autoscale", "deployment", "x", "--min=5",
                 "--max=2"]) == 1
    assert capsys.readouterr().err == (
        "error: --max=MAXPODS must be larger or equal to --min=MINPODS, max: 2, min: 5\n")


async def test_autoscale_creates_a_v2_hpa(mem, capsys, tmp_path):
    code = await run("--home", str(tmp_path), "autoscale", "deployment", "php-apache",
                     "--cpu-percent=50", "--min=1", "--max=10")
    assert (code, capsys.readouterr().out) == (
        0, "horizontalpodautoscaler.autoscaling/php-apache autoscaled\n")
    hpa = await mem.get("horizontalpodautoscalers", "php-apache", "default")
    assert (hpa.spec.scale_target_ref.api_version, hpa.spec.scale_target_ref.kind,
            hpa.spec.min_replicas, hpa.spec.max_replicas,
            hpa.spec.metrics[0].resource.target.average_utilization) == (
        "apps/v1", "Deployment", 1, 10, 50)


async def test_the_seeds_v1_manifest_applies(mem, capsys, tmp_path):
    path = tmp_path / "hpa.yaml"
    path.write_text("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n"
                    "  name: frontend-scaler\nspec:\n  scaleTargetRef:\n    kind: ReplicaSet\n"
                    "    name: frontend\n  minReplicas: 3\n  maxReplicas: 10\n"
                    "  targetCPUUtilizationPercentage: 50\n")
    code = await run("--home", str(tmp_path), "apply", "-f", str(path))
    assert (code, capsys.readouterr().out) == (
        0, "horizontalpodautoscaler.autoscaling/frontend-scaler created\n")
    hpa = await mem.get("horizontalpodautoscalers", "frontend-scaler", "default")
    assert hpa.spec.metrics[0].resource.target.average_utilization == 50


def test_get_podmetrics_and_nodemetrics_as_metrics_server_tables():
    pod = {"metadata": {"name": "web"}, "window": "15s", "containers": [
        {"name": "a", "usage": {"cpu": "250m", "memory": "64Mi"}},
        {"name": "b", "usage": {"cpu": "1500000n", "memory": "9220Ki"}}]}
    assert printers.TABLES["podmetrics"].columns == ("NAME", "CPU", "MEMORY", "WINDOW")
    assert printers.TABLES["podmetrics"].row(pod, NOW) == ["web", "251500u", "74756Ki", "15s"]
    node = {"metadata": {"name": "node-1"}, "window": "15s",
            "usage": {"cpu": "563456789n", "memory": "1536Mi"}}
    assert printers.TABLES["nodemetrics"].row(node, NOW) == ["node-1", "563456789n", "1536Mi",
                                                             "15s"]
