"""`kubemu scale` against the apiserver's registry on the in-memory store."""
from __future__ import annotations

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli


def deployment(name: str = "web", replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


async def test_scale_deployment_prints_kubectls_line(mem, capsys):
    await mem.put(deployment())
    assert await run_cli("scale", "deploy", "web", "--replicas=5") == 0
    assert capsys.readouterr().out == "deployment.apps/web scaled\n"
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 5


async def test_several_names_slash_form_and_selector(mem, capsys):
    for name in ("a", "b", "c"):
        await mem.put(deployment(name))
    assert await run_cli("scale", "deployment/a", "deployment/b", "--replicas=0") == 0
    assert capsys.readouterr().out == "deployment.apps/a scaled\ndeployment.apps/b scaled\n"
    assert await run_cli("scale", "deploy", "-l", "app=c", "--replicas=3") == 0
    assert capsys.readouterr().out == "deployment.apps/c scaled\n"
    assert await run_cli("scale", "deploy", "--all", "--replicas=1", "-o", "name") == 0
    assert capsys.readouterr().out == "deployment.apps/a\ndeployment.apps/b\ndeployment.apps/c\n"


@pytest.mark.parametrize("flags,err", [
    (["--current-replicas=3"], "error: Expected replicas to be 3, was 2\n"),
    (["--resource-version=1"], "error: Expected resource version to be 1, was "),
], ids=["current-replicas", "resource-version"])
async def test_preconditions_refuse_and_change_nothing(mem, capsys, flags, err):
    await mem.put(deployment())
    assert await run_cli("scale", "deploy/web", "--replicas=5", *flags) == 1
    assert capsys.readouterr().err.startswith(err)
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 2


async def test_matching_precondition_scales(mem, capsys):
    await mem.put(deployment())
    assert await run_cli("scale", "deploy/web", "--replicas=4", "--current-replicas=2") == 0
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 4


@pytest.mark.parametrize("argv,err", [
    (["scale", "deploy/web"], 'error: required flag(s) "replicas" not set\n'),
    (["scale", "deploy/web", "--replicas=-1"],
     "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal "
     "to 0\n"),
    (["scale", "--replicas=1"], "error: You must provide one or more resources by argument or "
                                "filename.\nExample resource specifications include:\n"),
    (["scale", "deploy/nope", "--replicas=1"],
     'Error from server (NotFound): deployments.apps "nope" not found\n'),
    (["scale", "configmap/web", "--replicas=1"],
     "Error from server (NotFound): the server could not find the requested resource\n"),
], ids=["no-replicas", "negative", "no-resource", "missing", "not-scalable"])
async def test_errors_as_kubectl(mem, capsys, argv, err):
    await mem.put(deployment())
    assert await run_cli(*argv) == 1
    assert capsys.readouterr().err.startswith(err)


async def test_dry_runs_change_nothing(mem, capsys):
    await mem.put(deployment())
    assert await run_cli("scale", "deploy/web", "--replicas=7", "--dry-run=client") == 0
    assert await run_cli("scale", "deploy/web", "--replicas=7", "--dry-run=server") == 0
    assert capsys.readouterr().out == ("deployment.apps/web scaled (dry run)\n"
                                       "deployment.apps/web scaled (server dry run)\n")
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 2


async def test_scale_from_a_file(mem, capsys, tmp_path):
    import json

    await mem.put(deployment())
    path = tmp_path / "d.json"
    path.write_text(json.dumps(deployment()))
    assert await run_cli("scale", "-f", str(path), "--replicas=3") == 0
    assert capsys.readouterr().out == "deployment.apps/web scaled\n"
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 3


async def test_scale_output_formats(mem, capsys):
    await mem.put(deployment())
    assert await run_cli("scale", "deploy/web", "--replicas=6", "-o",
                         "jsonpath={.spec.replicas}") == 0
    assert capsys.readouterr().out == "6"
    assert await run_cli("scale", "deploy/web", "--replicas=8", "--dry-run=client", "-o",
                         "jsonpath={.spec.replicas}") == 0
    assert capsys.readouterr().out == "8"
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 6


@pytest.mark.parametrize("text,seconds", [
    ("0", 0.0), ("30s", 30.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("250ms", 0.25),
    ("-1s", -1.0)], ids=["zero", "seconds", "compound", "fraction", "millis", "negative"])
def test_go_durations(text, seconds):
    from kubemu.cli.common import parse_duration_s

    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text,message", [
    ("30", 'time: missing unit in duration "30"'), ("", 'time: invalid duration ""'),
    ("5x", 'time: unknown unit "x" in duration "5x"'), ("s", 'time: invalid duration "s"')],
    ids=["no-unit", "empty", "bad-unit", "no-number"])
def test_bad_go_durations(text, message):
    import argparse

    from kubemu.cli.common import parse_duration_s

    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse_duration_s(text)
    assert str(err.value) == message


async def test_timeout_waits_for_the_status_to_catch_up(mem, capsys):
    await mem.put(deployment())
    await mem.set_status("deployments", "web", {"replicas": 4})
    assert await run_cli("scale", "deploy/web", "--replicas=4", "--timeout=5s") == 0
    assert await run_cli("scale", "deploy/web", "--replicas=5", "--timeout=10ms") == 1
    assert capsys.readouterr().err == 'error: timed out waiting for "web" to be synced\n'
