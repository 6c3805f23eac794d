"""The kubectl-like commands against a real apiserver over a real etcd.

etcd and the apiserver are started directly (tests/conftest.py fixtures, free
ports, tmp dirs); the home holds only kubeconfig.json. Commands run in-process
through kubemu.cli.main.main (each is one asyncio.run, like the console
script), except `get -w`, which runs as its own process so the test can make
changes while it watches.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from kubemu.cli import main as cli
from tests.support import REPO

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data:
  color: blue
  size: large
"""


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def home(tmp_path, apiserver, etcd):
    path = tmp_path / "home"
    path.mkdir()
    (path / "kubeconfig.json").write_text(json.dumps(
        {"apiserver": apiserver.address, "etcd": [etcd.endpoint]}))
    return path


@pytest.fixture
def kubemu(home, capsys, monkeypatch):
    def run(*argv: str, stdin: str | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = cli.main(["--home", str(home), *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    return run


def test_apply_created_unchanged_configured(kubemu):
    assert kubemu("apply", "-f", "-", stdin=CONFIG) == Result(
        0, "configmap/web-config created\n", "")
    assert kubemu("apply", "-f", "-", stdin=CONFIG) == Result(
        0, "configmap/web-config unchanged\n", "")
    changed = CONFIG.replace("color: blue", "color: green").replace("  size: large\n", "")
    assert kubemu("apply", "-f", "-", stdin=changed) == Result(
        0, "configmap/web-config configured\n", "")

    got = json.loads(kubemu("get", "configmap", "web-config", "-o", "json").out)
    assert got["data"] == {"color": "green"}
    applied = json.loads(got["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["data"] == {"color": "green"}
    assert applied["metadata"]["namespace"] == "default"


def test_apply_invalid_manifest_writes_nothing(kubemu, tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(CONFIG + "---\n" + CONFIG.replace("web-config", "other").replace(
        "\ndata:", "\ndataa:"))
    result = kubemu("apply", "-f", str(path))
    assert (result.code, result.out) == (1, "")
    assert result.err == (f'error: error validating "{path}": ConfigMap "other" is invalid: '
                          "dataa: unknown field\n")
    assert kubemu("get", "cm", "web-config").err == (
        'Error from server (NotFound): configmaps "web-config" not found\n')


def test_create_and_already_exists(kubemu):
    assert kubemu("create", "-f", "-", stdin=CONFIG) == Result(
        0, "configmap/web-config created\n", "")
    assert kubemu("create", "-f", "-", stdin=CONFIG) == Result(
        1, "", 'Error from server (AlreadyExists): configmaps "web-config" already exists\n')
    assert kubemu("create", "namespace", "dev") == Result(0, "namespace/dev created\n", "")
    assert kubemu("create", "configmap", "lit", "-n", "dev", "--from-literal=a=1",
                  "--from-literal=b=2") == Result(0, "configmap/lit created\n", "")
    got = json.loads(kubemu("get", "cm", "lit", "-n", "dev", "-o", "json").out)
    assert got["data"] == {"a": "1", "b": "2"}


def test_get_formats(kubemu):
    assert kubemu("get", "configmaps") == Result(
        0, "", "No resources found in default namespace.\n")
    kubemu("apply", "-f", "-", stdin=CONFIG)
    kubemu("create", "configmap", "second")

    table = kubemu("get", "cm")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert [line.split()[:2] for line in lines[1:]] == [["second", "0"], ["web-config", "2"]]

    one = json.loads(kubemu("get", "cm", "web-config", "-o", "json").out)
    assert (one["apiVersion"], one["kind"], one["metadata"]["name"]) == (
        "v1", "ConfigMap", "web-config")
    assert one["metadata"]["resourceVersion"] and one["metadata"]["uid"]

    many = json.loads(kubemu("get", "cm", "-o", "json").out)
    assert (many["apiVersion"], many["kind"], many["metadata"]) == (
        "v1", "List", {"resourceVersion": ""})
    assert [i["metadata"]["name"] for i in many["items"]] == ["second", "web-config"]
    assert {i["kind"] for i in many["items"]} == {"ConfigMap"}

    as_yaml = yaml.safe_load(kubemu("get", "cm", "web-config", "-o", "yaml").out)
    assert as_yaml["data"] == {"color": "blue", "size": "large"}

    assert kubemu("get", "cm", "-o", "name").out == "configmap/second\nconfigmap/web-config\n"
    assert kubemu("get", "cm", "-l", "app=web", "-o", "name").out == "configmap/web-config\n"
    assert kubemu("get", "cm/web-config", "ns/default", "-o", "name").out == (
        "configmap/web-config\nnamespace/default\n")

    wide = kubemu("get", "cm", "--show-labels", "-A")
    assert wide.out.splitlines()[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE", "LABELS"]
    assert "app=web" in wide.out

    missing = kubemu("get", "cm", "web-config", "nope")
    assert missing.code == 1
    assert missing.out.splitlines()[1].startswith("web-config")
    assert missing.err == 'Error from server (NotFound): configmaps "nope" not found\n'
    assert kubemu("get", "gizmos").err == (
        'error: the server doesn\'t have a resource type "gizmos"\n')


def test_describe(kubemu):
    kubemu("apply", "-f", "-", stdin=CONFIG)
    result = kubemu("describe", "configmap", "web-config")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[:4] == ["Name:         web-config", "Namespace:    default",
                         "Labels:       app=web", "Annotations:  <none>"]
    assert "color:" in lines and "blue" in lines
    assert lines[-1].startswith("Events:")
    assert kubemu("describe", "cm", "nope").err == (
        'Error from server (NotFound): configmaps "nope" not found\n')


def test_label_and_annotate(kubemu):
    kubemu("apply", "-f", "-", stdin=CONFIG)
    assert kubemu("label", "cm", "web-config", "tier=front") == Result(
        0, "configmap/web-config labeled\n", "")
    assert kubemu("label", "cm", "web-config", "tier=back") == Result(
        1, "", "error: 'tier' already has a value (front), and --overwrite is false\n")
    assert kubemu("label", "cm/web-config", "tier=back", "--overwrite").code == 0
    assert kubemu("label", "cm", "web-config", "app-") == Result(
        0, "configmap/web-config unlabeled\n", "")
    assert kubemu("annotate", "cm", "web-config", "note=hi") == Result(
        0, "configmap/web-config annotated\n", "")
    meta = json.loads(kubemu("get", "cm", "web-config", "-o", "json").out)["metadata"]
    assert meta["labels"] == {"tier": "back"}
    assert meta["annotations"]["note"] == "hi"


def test_delete(kubemu):
    kubemu("apply", "-f", "-", stdin=CONFIG)
    kubemu("create", "configmap", "b")
    assert kubemu("delete", "cm", "web-config") == Result(
        0, 'configmap "web-config" deleted\n', "")
    assert kubemu("get", "cm", "web-config").code == 1
    assert kubemu("delete", "cm", "web-config") == Result(
        1, "", 'Error from server (NotFound): configmaps "web-config" not found\n')
    assert kubemu("delete", "cm", "web-config", "--ignore-not-found") == Result(0, "", "")
    assert kubemu("delete", "cm", "--all") == Result(0, 'configmap "b" deleted\n', "")
    kubemu("apply", "-f", "-", stdin=CONFIG)
    assert kubemu("delete", "-f", "-", stdin=CONFIG).out == 'configmap "web-config" deleted\n'


def test_api_resources_and_version(kubemu):
    result = kubemu("api-resources")
    assert result.code == 0
    rows = {line.split()[0]: line.split() for line in result.out.splitlines()}
    assert rows["NAME"] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert rows["configmaps"] == ["configmaps", "cm", "v1", "true", "ConfigMap"]
    version = kubemu("version").out.splitlines()
    assert version[0].startswith("Client Version: ")
    assert version[1].startswith("Server Version: ")


def test_get_watch_prints_changes(kubemu, home):
    kubemu("apply", "-f", "-", stdin=CONFIG)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "kubemu.cli.main", "--home", str(home), "get", "cm", "-w",
         "--watch-timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO, env=env)
    try:
        # The listing comes first: once its row is out, the watch is being opened
        # from the list's resourceVersion, so the change below cannot be missed.
        seen = [watcher.stdout.readline(), watcher.stdout.readline()]
        assert seen[0].split() == ["NAME", "DATA", "AGE"], seen
        assert seen[1].split()[:2] == ["web-config", "2"], seen
        assert kubemu("create", "configmap", "later").code == 0
        line = watcher.stdout.readline()
        assert line.split()[:2] == ["later", "0"], line
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)


def test_namespaces_and_all_namespaces(kubemu):
    kubemu("create", "namespace", "dev")
    assert kubemu("apply", "-n", "dev", "-f", "-", stdin=CONFIG).code == 0
    assert kubemu("get", "cm", "-n", "dev", "-o", "name").out == "configmap/web-config\n"
    assert kubemu("get", "cm").err == "No resources found in default namespace.\n"
    listing = kubemu("get", "cm", "-A").out.splitlines()
    assert listing[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert listing[1].split()[:2] == ["dev", "web-config"]
    mismatch = textwrap.dedent(CONFIG).replace("name: web-config",
                                               "name: web-config\n  namespace: dev")
    assert kubemu("apply", "-n", "prod", "-f", "-", stdin=mismatch).err.startswith(
        'error: the namespace from the provided object "dev" does not match the namespace '
        '"prod"')
