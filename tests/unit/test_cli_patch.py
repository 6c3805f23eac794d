"""`kubemu patch` against the apiserver's registry: the three patch types, as kubectl."""
from __future__ import annotations

import json

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli


@pytest.fixture
async def mem(monkeypatch):
    client = install(monkeypatch, await MemClient.new())
    await client.put({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "web", "image": "nginx:1",
                                   "ports": [{"containerPort": 80}]},
                                  {"name": "side", "image": "busybox"}]}}}})
    return client


async def containers(mem) -> list[dict]:
    return (await mem.doc("deployments", "web"))["spec"]["template"]["spec"]["containers"]


async def test_strategic_is_the_default_and_merges_by_name(mem, capsys):
    patch = '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}}'
    assert await run_cli("patch", "deployment", "web", "-p", patch) == 0
    assert capsys.readouterr().out == "deployment.apps/web patched\n"
    web, side = await containers(mem)
    assert (web["image"], web["ports"][0]["containerPort"], side["name"]) == \
        ("nginx:2", 80, "side")
    assert await run_cli("patch", "deployment", "web", "-p", patch) == 0
    assert capsys.readouterr().out == "deployment.apps/web patched (no change)\n"


async def test_merge_replaces_lists(mem, capsys):
    patch = '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}}'
    assert await run_cli("patch", "deploy/web", "--type", "merge", "-p", patch) == 0
    assert [c["name"] for c in await containers(mem)] == ["web"]


async def test_json_patch_and_its_errors(mem, capsys):
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4},
           {"op": "add", "path": "/metadata/labels/tier", "value": "front"}]
    assert await run_cli("patch", "deploy/web", "--type=json", "-p", json.dumps(ops)) == 0
    doc = await mem.doc("deployments", "web")
    assert (doc["spec"]["replicas"], doc["metadata"]["labels"]["tier"]) == (4, "front")
    bad = '[{"op":"remove","path":"/spec/nope"}]'
    assert await run_cli("patch", "deploy/web", "--type=json", "-p", bad) == 1
    assert capsys.readouterr().err.endswith(
        "remove operation does not apply: doc is missing key: /spec/nope\n")


async def test_yaml_patch_status_subresource_and_output(mem, capsys):
    assert await run_cli("patch", "deploy/web", "--subresource=status", "--type=merge",
                         "-p", "status: {replicas: 3}") == 0
    assert (await mem.doc("deployments", "web"))["status"]["replicas"] == 3
    capsys.readouterr()
    assert await run_cli("patch", "deploy/web", "-p", '{"spec":{"replicas":2}}', "-o",
                         "jsonpath={.spec.replicas}") == 0
    assert capsys.readouterr().out == "2"


async def test_dry_runs_change_nothing(mem, capsys):
    patch = '{"spec":{"replicas":9}}'
    assert await run_cli("patch", "deploy/web", "-p", patch, "--dry-run=client") == 0
    assert await run_cli("patch", "deploy/web", "-p", patch, "--dry-run=server") == 0
    assert capsys.readouterr().out == ("deployment.apps/web patched (dry run)\n"
                                       "deployment.apps/web patched (server dry run)\n")
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 1


@pytest.mark.parametrize("argv,err", [
    (["patch", "deploy/web"], "error: must specify --patch or --patch-file containing the "
                              "contents of the patch\n"),
    (["patch", "deploy/web", "-p", "{}", "--type=apply"],
     'error: --type must be one of [json merge strategic], not "apply"\n'),
    (["patch", "deploy/nope", "-p", "{}"],
     'Error from server (NotFound): deployments.apps "nope" not found\n'),
    (["patch", "deploy/web", "-p", '{"spec":{"replicas":-1}}'],
     'The Deployment "web" is invalid: spec.replicas: Invalid value: -1: must be greater than '
     "or equal to 0\n"),
], ids=["no-patch", "bad-type", "missing", "invalid"])
async def test_errors_as_kubectl(mem, capsys, argv, err):
    assert await run_cli(*argv) == 1
    assert capsys.readouterr().err == err
