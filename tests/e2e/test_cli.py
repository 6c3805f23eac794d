"""The kubectl-like commands against a real apiserver over a real etcd.

etcd and the apiserver are started directly (tests/conftest.py fixtures, free
ports, tmp dirs); the home holds only kubeconfig.json. Commands run in-process
through kubemu.cli.main.main (each is one asyncio.run, like the console
script), except `get -w`, which runs as its own process so the test can make
changes while it watches.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
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


# ---------------------------------------------------------------- kubectl's everyday verbs

PODS_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  {extra}
spec:
  {node}
  containers:
  - name: kuard
    image: gcr.io/kuar-demo/kuard-amd64:blue
    resources:
      requests: {{cpu: 250m, memory: 64Mi}}
"""


def make_pod(kubemu, name: str, namespace: str = "default", *, extra: str = "",
             node: str = "") -> None:
    text = PODS_YAML.format(name=name, namespace=namespace, extra=extra or "labels: {}",
                            node=f"nodeName: {node}" if node else "restartPolicy: Always")
    result = kubemu("apply", "-f", "-", stdin=text)
    assert result.code == 0, result.err


def test_options_may_follow_positionals(kubemu):
    kubemu("create", "namespace", "demo")
    make_pod(kubemu, "kuard", "demo")
    make_pod(kubemu, "other", "demo")
    result = kubemu("get", "pods", "-n", "demo", "kuard")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    # kubectl get pods -n demo kuard, for a pod no node has taken yet
    assert lines[0] == "NAME    READY   STATUS    RESTARTS   AGE"
    assert re.fullmatch(r"kuard   0/1     Pending   0          \d+s", lines[1]), lines
    assert len(lines) == 2

    make_pod(kubemu, "a")
    make_pod(kubemu, "b")
    assert kubemu("label", "pods", "--all", "env=dev") == Result(
        0, "pod/a labeled\npod/b labeled\n", "")
    assert kubemu("get", "pods", "-l", "env=dev", "-o", "name") == Result(
        0, "pod/a\npod/b\n", "")
    assert kubemu("logs", "-n", "demo", "kuard", "-c", "nope").err == (
        "error: container nope is not valid for pod kuard\n")


def test_get_jsonpath_custom_columns_and_sort(kubemu):
    make_pod(kubemu, "web-2")
    make_pod(kubemu, "web-1")
    # kubectl get pods -o jsonpath='{.items[*].metadata.name}'
    assert kubemu("get", "pods", "-o", "jsonpath={.items[*].metadata.name}") == Result(
        0, "web-1 web-2", "")
    assert kubemu("get", "pods", "--sort-by=.metadata.name", "-o",
                  "custom-columns=NAME:.metadata.name,CPU:.spec.containers[0].resources."
                  "requests.cpu,NODE:.spec.nodeName") == Result(
        0, "NAME    CPU    NODE\nweb-1   250m   <none>\nweb-2   250m   <none>\n", "")
    assert kubemu("get", "pod", "web-1", "-o", 'go-template={{.metadata.name}} {{len .spec.'
                                               'containers}}') == Result(0, "web-1 1", "")
    assert kubemu("get", "pods", "-o", "jsonpath={.items[").err == (
        "error: error parsing jsonpath {.items[, unterminated array\n")


def test_a_pod_being_deleted_shows_terminating(kubemu, home):
    kubemu("create", "namespace", "demo")
    # A finalizer keeps a deleted pod; a pod on a node stays until its node confirms.
    make_pod(kubemu, "held", "demo", extra="finalizers: [example.com/hold]")
    make_pod(kubemu, "bound", "demo", node="node-x")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "kubemu.cli.main", "--home", str(home), "get", "pods", "-w",
         "-n", "demo", "--watch-timeout", "20"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        listing = [watcher.stdout.readline() for _ in range(3)]
        assert [line.split()[0] for line in listing] == ["NAME", "bound", "held"], listing
        assert kubemu("delete", "pod", "held", "bound", "-n", "demo", "--wait=false") == Result(
            0, 'pod "held" deleted\npod "bound" deleted\n', "")
        seen = [watcher.stdout.readline().split()[:3] for _ in range(2)]
        assert sorted(seen) == [["bound", "0/1", "Terminating"],
                                ["held", "0/1", "Terminating"]], seen
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    listing = kubemu("get", "pods", "-n", "demo", "--no-headers").out.splitlines()
    assert [line.split()[:3] for line in listing] == [["bound", "0/1", "Terminating"],
                                                      ["held", "0/1", "Terminating"]]


def test_delete_force_warns_and_deletes_at_once(kubemu):
    make_pod(kubemu, "stuck", node="node-x")
    # kubectl delete pod stuck --force
    assert kubemu("delete", "pod", "stuck", "--force") == Result(
        0, 'pod "stuck" force deleted\n',
        "Warning: Immediate deletion does not wait for confirmation that the running resource "
        "has been terminated. The resource may continue to run on the cluster indefinitely.\n")
    assert kubemu("get", "pod", "stuck").err == (
        'Error from server (NotFound): pods "stuck" not found\n')


RUN_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    run: web
  name: web
spec:
  containers:
  - image: nginx
    name: web
    resources: {}
  dnsPolicy: ClusterFirst
  restartPolicy: Always
status: {}
"""


def test_run(kubemu):
    # kubectl run web --image=nginx --dry-run=client -o yaml
    assert kubemu("run", "web", "--image=nginx", "--dry-run=client", "-o", "yaml") == Result(
        0, RUN_YAML, "")
    assert kubemu("get", "pods").err == "No resources found in default namespace.\n"
    assert kubemu("run", "box", "--image=busybox", "--restart=Never", "--env=A=1",
                  "--", "sleep", "10") == Result(0, "pod/box created\n", "")
    got = json.loads(kubemu("get", "pod", "box", "-o", "json").out)
    assert got["metadata"]["labels"] == {"run": "box"}
    assert got["spec"]["restartPolicy"] == "Never"
    assert got["spec"]["containers"][0]["args"] == ["sleep", "10"]
    assert got["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_create_secret_tls_and_service(kubemu, tmp_path):
    from tests.unit.test_cli_generate import TLS_CRT, TLS_KEY

    (tmp_path / "tls.crt").write_text(TLS_CRT)
    (tmp_path / "tls.key").write_text(TLS_KEY)
    assert kubemu("create", "secret", "tls", "web-tls", f"--cert={tmp_path}/tls.crt",
                  f"--key={tmp_path}/tls.key") == Result(0, "secret/web-tls created\n", "")
    assert kubemu("get", "secret", "web-tls", "-o",
                  "jsonpath={.type} {.data.tls\\.crt}").out == (
        f"kubernetes.io/tls {base64.b64encode(TLS_CRT.encode()).decode()}")
    assert kubemu("create", "service", "nodeport", "web", "--tcp=8080:80") == Result(
        0, "service/web created\n", "")
    got = json.loads(kubemu("get", "svc", "web", "-o", "json").out)
    assert (got["spec"]["selector"], got["spec"]["ports"][0]["name"],
            got["spec"]["ports"][0]["targetPort"], got["spec"]["type"]) == (
        {"app": "web"}, "8080-80", 80, "NodePort")


def test_apply_dry_runs_store_nothing(kubemu):
    assert kubemu("apply", "-f", "-", "--dry-run=server", stdin=CONFIG) == Result(
        0, "configmap/web-config created (server dry run)\n", "")
    printed = yaml.safe_load(kubemu("apply", "-f", "-", "--dry-run=client", "-o", "yaml",
                                    stdin=CONFIG).out)
    assert (printed["kind"], printed["data"]) == ("ConfigMap", {"color": "blue",
                                                                "size": "large"})
    assert kubemu("get", "cm", "web-config").code == 1


NODE_YAML = """\
apiVersion: v1
kind: Node
metadata:
  name: node-x
spec: {}
status:
  allocatable: {cpu: "2", memory: 1Gi, pods: "110"}
  capacity: {cpu: "2", memory: 1Gi, pods: "110"}
"""


def test_describe_node_lists_its_pods(kubemu):
    assert kubemu("apply", "-f", "-", stdin=NODE_YAML).code == 0
    kubemu("create", "namespace", "demo")
    make_pod(kubemu, "a", "demo", node="node-x")
    make_pod(kubemu, "b", node="node-x")
    make_pod(kubemu, "elsewhere")
    result = kubemu("describe", "node", "node-x")
    assert result.code == 0, result.err
    text = result.out
    assert "Non-terminated Pods:          (2 in total)" in text, text
    rows = [line.split() for line in text.splitlines() if line.startswith("  default ")
            or line.startswith("  demo ")]
    assert [row[:10] for row in rows] == [
        ["default", "b", "250m", "(12%)", "0", "(0%)", "64Mi", "(6%)", "0", "(0%)"],
        ["demo", "a", "250m", "(12%)", "0", "(0%)", "64Mi", "(6%)", "0", "(0%)"]]
    assert "  cpu                500m (25%)   0 (0%)\n" in text
    assert "  memory             128Mi (12%)  0 (0%)\n" in text
