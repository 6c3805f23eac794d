"""The deprecated --record: the command line as kubectl's change-cause annotation."""
from __future__ import annotations

import json

import pytest
import yaml

from kubemu.cli import common, main
from tests.unit.cli_memclient import MemClient, install, run_cli


@pytest.mark.parametrize("argv,cause", [
    (["set", "image", "deployment/web", "web=nginx:1.9.1", "--record"],
     "kubemu set image deployment/web web=nginx:1.9.1 --record=true"),
    (["scale", "deploy", "web", "--replicas", "3", "-n", "dev", "--record"],
     "kubemu scale deploy web --replicas=3 --namespace=dev --record=true"),
    (["--home", "/h", "scale", "deploy/web", "--replicas=3", "--record=true", "--home=/x"],
     "kubemu scale deploy/web --replicas=3 --record=true"),
    (["patch", "deploy/web", "-p{\"a\":1}", "--record"],
     'kubemu patch deploy/web --patch={"a":1} --record=true'),
], ids=["set-image", "short-flag-and-value", "home-left-out", "attached-short-value"])
def test_change_cause_is_kubectls_command_line(argv, cause, capsys):
    args = main.build_parser().parse_args(argv)
    assert common.change_cause(args, argv) == cause
    assert capsys.readouterr().err == ("Flag --record has been deprecated, --record will be "
                                       "removed in the future\n")


def test_without_record_nothing_is_recorded():
    args = main.build_parser().parse_args(["scale", "deploy/web", "--replicas=1"])
    assert common.change_cause(args, []) is None


@pytest.fixture
async def mem(monkeypatch):
    client = install(monkeypatch, await MemClient.new())
    await client.put({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    return client


@pytest.mark.parametrize("argv,cause", [
    (["set", "image", "deployment/web", "web=nginx:2", "--record"],
     "kubemu set image deployment/web web=nginx:2 --record=true"),
    (["scale", "deployment/web", "--replicas=2", "--record"],
     "kubemu scale deployment/web --replicas=2 --record=true"),
    (["patch", "deployment/web", "-p", '{"spec":{"replicas":4}}', "--record"],
     'kubemu patch deployment/web --patch={"spec":{"replicas":4}} --record=true'),
], ids=["set-image", "scale", "patch"])
async def test_record_writes_the_annotation(mem, monkeypatch, argv, cause):
    monkeypatch.setattr("sys.argv", ["kubemu", *argv])
    assert await run_cli(*argv) == 0
    annotations = (await mem.doc("deployments", "web"))["metadata"]["annotations"]
    assert annotations[common.CHANGE_CAUSE] == cause


DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: kuard}
spec:
  selector: {matchLabels: {run: kuard}}
  template:
    metadata: {labels: {run: kuard}}
    spec: {containers: [{name: kuard, image: "gcr.io/kuar-demo/kuard-amd64:blue"}]}
"""


@pytest.mark.parametrize("verb,printed", [
    ("create", "deployment.apps/kuard created\n"),
    ("replace", "deployment.apps/kuard replaced\n"),
], ids=["create", "replace"])
async def test_create_and_replace_record_after_the_saved_config(
        monkeypatch, tmp_path, capsys, verb, printed):
    """`kubectl create -f kuard-deployment.yaml --save-config --record` (the tutorials'
    idiom, next to seed 004 line 2182's replace --save-config): the change-cause is on
    the object, not in its last-applied-configuration."""
    client = install(monkeypatch, await MemClient.new())
    if verb == "replace":
        await client.put(yaml.safe_load(DEPLOYMENT_YAML))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kuard-deployment.yaml").write_text(DEPLOYMENT_YAML)
    argv = [verb, "-f", "kuard-deployment.yaml", "--save-config", "--record"]
    monkeypatch.setattr("sys.argv", ["kubemu", *argv])
    assert await run_cli(*argv) == 0
    assert capsys.readouterr().out == printed
    annotations = (await client.doc("deployments", "kuard"))["metadata"]["annotations"]
    assert annotations[common.CHANGE_CAUSE] == \
        f"kubemu {verb} --filename=kuard-deployment.yaml --save-config=true --record=true"
    assert common.CHANGE_CAUSE not in json.loads(annotations[common.LAST_APPLIED]).get(
        "metadata", {}).get("annotations", {})
