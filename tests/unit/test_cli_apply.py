"""`kubemu apply`: merge patches, multi-document YAML, strict decoding, nothing half-written.

The apply command runs through kubemu.cli.main against a small in-memory fake
client (get/create/patch with the apiserver's merge-patch and no-op rules).
"""
from __future__ import annotations

import copy
import json
import textwrap

import pytest

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.cli import apply, common, main, manifests
from kubemu.cli.common import LAST_APPLIED, CliError

HAS_PODS = "pods" in {k.resource for k in REGISTRY.kinds}


# ---------------------------------------------------------------- merge patches

@pytest.mark.parametrize("original, modified, patch", [
    ({"a": 1}, {"a": 1}, {}),
    ({}, {"a": 1}, {"a": 1}),
    ({"a": 1}, {"a": 2}, {"a": 2}),
    ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
    ({"m": {"x": 1, "y": 2}}, {"m": {"x": 1, "z": 3}}, {"m": {"y": None, "z": 3}}),
    ({"m": {"n": {"x": 1}}}, {"m": {"n": {"x": 2}}}, {"m": {"n": {"x": 2}}}),
    ({"m": {"x": 1}}, {}, {"m": None}),
    ({"l": [1, 2, 3]}, {"l": [1, 3]}, {"l": [1, 3]}),
    ({"l": [{"name": "a", "image": "x"}]}, {"l": [{"name": "a", "image": "y"}]},
     {"l": [{"name": "a", "image": "y"}]}),
    ({"l": [1]}, {"l": [1]}, {}),
    ({"a": 1}, {"a": True}, {"a": True}),
    ({"a": "x"}, {"a": {"b": 1}}, {"a": {"b": 1}}),
], ids=["same", "added", "changed", "removed-null", "nested-map", "deep-nested",
        "map-removed", "list-replaced", "list-of-maps-replaced", "list-same", "1-is-not-true",
        "scalar-to-map"])
def test_merge_patch(original, modified, patch):
    assert apply.merge_patch(original, modified) == patch


LIVE_DEPLOY = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                 "labels": {"app": "web"}},
    "spec": {"replicas": 5, "progressDeadlineSeconds": 600,
             "template": {"spec": {"containers": [
                 {"name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                  "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
    "status": {"replicas": 5},
}
APPLIED = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
           "spec": {"replicas": 3, "template": {"spec": {"containers": [
               {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}}


def edited(doc: dict, path: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = doc
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize("original, modified, current, patch", [
    # The live replicas (5, scaled by hand) differ from the manifest's: apply resets them.
    (APPLIED, APPLIED, LIVE_DEPLOY, {"spec": {"replicas": 3}}),
    # Defaults the server added inside list items are no reason to send the list.
    (APPLIED, APPLIED, edited(LIVE_DEPLOY, "spec.replicas", 3), {}),
    # A label dropped from the manifest is removed; one added by someone else stays.
    (APPLIED, edited(APPLIED, "metadata.labels", {}),
     edited(edited(LIVE_DEPLOY, "spec.replicas", 3), "metadata.labels",
            {"app": "web", "other": "x"}),
     {"metadata": {"labels": {"app": None}}}),
    # A changed image replaces the containers list.
    (APPLIED, edited(APPLIED, "spec.template.spec.containers", [
        {"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}]),
     edited(LIVE_DEPLOY, "spec.replicas", 3),
     {"spec": {"template": {"spec": {"containers": [
         {"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}]}}}}),
    # A zero value in the manifest agrees with the server leaving the field out.
    ({}, edited(APPLIED, "spec.paused", False), edited(LIVE_DEPLOY, "spec.replicas", 3), {}),
    # Nothing applied before (created with `create`): only additions and changes.
    ({}, APPLIED, edited(LIVE_DEPLOY, "spec.replicas", 3), {}),
], ids=["live-drift-reset", "server-defaults-ignored", "removed-label-null",
        "list-changed", "zero-equals-absent", "no-last-applied"])
def test_three_way_merge_patch(original, modified, current, patch):
    assert apply.three_way_merge_patch(original, modified, current) == patch


# ---------------------------------------------------------------- documents

def test_multi_document_yaml_is_split_and_lists_expanded():
    text = textwrap.dedent("""\
        # leading comment
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: a}
        ---
        ---
        apiVersion: v1
        kind: List
        items:
        - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
        - {apiVersion: v1, kind: Namespace, metadata: {name: c}}
        ---
        # only a comment
        """)
    docs = manifests.split_documents(text, "f.yaml")
    assert [d.data["metadata"]["name"] for d in docs] == ["a", "b", "c"]
    assert {d.source for d in docs} == {"f.yaml"}


def test_json_document_and_dates_stay_strings():
    docs = manifests.split_documents(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}', "f.json")
    assert docs[0].data["metadata"]["name"] == "j"
    docs = manifests.split_documents("data:\n  day: 2024-01-02\n  on: yes\n", "f.yaml")
    assert docs[0].data["data"]["day"] == "2024-01-02"


def test_yaml_error_names_the_source():
    with pytest.raises(CliError, match=r"error parsing f\.yaml: .*line 2"):
        manifests.split_documents("a: b\n  c: [\n", "f.yaml")


def doc(data: dict, source: str = "f.yaml") -> manifests.Document:
    return manifests.Document(source, data)


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}}


@pytest.mark.parametrize("data, namespace, problem", [
    (edited(CM, "datas", {"k": "v"}), None,
     'error validating "f.yaml": ConfigMap "cfg" is invalid: datas: unknown field'),
    (edited(CM, "metadata.labelz", {}), None,
     'error validating "f.yaml": ConfigMap "cfg" is invalid: metadata.labelz: unknown field'),
    (edited(CM, "data", {"k": 1}), None,
     'error validating "f.yaml": ConfigMap "cfg" is invalid: data[k]: Invalid value: '
     'expected string, got number'),
    (edited(CM, "kind", "Widget"), None,
     'resource mapping not found for name: "cfg" namespace: "" from "f.yaml": no matches '
     'for kind "Widget" in version "v1"'),
    (edited(CM, "apiVersion", _DELETE), None,
     'error validating "f.yaml": error validating data: [apiVersion not set]'),
    (edited(CM, "metadata.name", _DELETE), None,
     'error validating "f.yaml": ConfigMap: resource name may not be empty'),
    (edited(CM, "metadata.namespace", "a"), "b",
     'the namespace from the provided object "a" does not match the namespace "b". '
     "You must pass '--namespace=a' to perform this operation."),
    ([1, 2], None, 'error validating "f.yaml": expected an object, got list'),
], ids=["unknown-top-field", "unknown-meta-field", "wrong-type", "unknown-kind",
        "no-apiversion", "no-name", "namespace-mismatch", "not-an-object"])
def test_decode_problems(data, namespace, problem):
    decoded, problems = manifests.decode([doc(data)], namespace=namespace)
    assert (decoded, problems) == ([], [problem])


@pytest.mark.skipif(not HAS_PODS, reason="the Pod kind is not registered in this build yet")
def test_decode_problem_names_a_nested_path():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
           "spec": {"containers": [{"name": "nginx", "imagee": "nginx"}]}}
    _, problems = manifests.decode([doc(pod)], namespace=None)
    assert problems == ['error validating "f.yaml": Pod "nginx" is invalid: '
                        "spec.containers[0].imagee: unknown field"]


@pytest.mark.parametrize("data, flag, namespace", [
    (CM, None, "default"), (CM, "dev", "dev"),
    (edited(CM, "metadata.namespace", "own"), None, "own"),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "x"}},
     "dev", ""),
], ids=["default", "flag", "own", "cluster-scoped"])
def test_decode_namespace(data, flag, namespace):
    (m,), problems = manifests.decode([doc(data)], namespace=flag)
    assert problems == []
    assert (m.namespace, m.obj.metadata.namespace) == (namespace, namespace)
    assert m.data["metadata"].get("namespace", "") == namespace


# ---------------------------------------------------------------- the command, on a fake client

def apply_merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


class FakeClient:
    """get/create/patch over a dict; a write that changes nothing keeps the resourceVersion."""

    def __init__(self):
        self.objects: dict[tuple[str, str, str], object] = {}
        self.writes: list[tuple[str, str]] = []
        self.patches: list[dict] = []
        self.dry_runs: list[tuple[str, str]] = []
        self.revision = 100

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        return None

    async def get(self, resource, name, namespace=""):
        key = (REGISTRY.resolve(resource).resource, namespace, name)
        if key not in self.objects:
            raise errors.not_found(key[0], name)
        return copy.deepcopy(self.objects[key])

    async def create(self, obj, *, dry_run=False):
        kind = REGISTRY.by_message(obj)
        key = (kind.resource, obj.metadata.namespace, obj.metadata.name)
        if key in self.objects:
            raise errors.already_exists(kind.resource, obj.metadata.name)
        if dry_run:
            self.dry_runs.append(("create", obj.metadata.name))
            return copy.deepcopy(obj)
        self.writes.append(("create", obj.metadata.name))
        stored = copy.deepcopy(obj)
        self.revision += 1
        stored.api_version, stored.kind = kind.api_version, kind.kind
        stored.metadata.resource_version = str(self.revision)
        self.objects[key] = stored
        return copy.deepcopy(stored)

    async def patch(self, resource, name, namespace="", *, patch, status=False, dry_run=False):
        kind = REGISTRY.resolve(resource)
        old = await self.get(resource, name, namespace)
        if dry_run:
            self.dry_runs.append(("patch", name))
            return codec.from_dict(kind.message, apply_merge_patch(
                codec.to_dict(old), json.loads(json.dumps(patch))))
        self.writes.append(("patch", name))
        self.patches.append(patch)
        merged = apply_merge_patch(codec.to_dict(old), json.loads(json.dumps(patch)))
        new = codec.from_dict(kind.message, merged)
        if codec.to_dict(new) != codec.to_dict(old):
            self.revision += 1
            new.metadata.resource_version = str(self.revision)
            self.objects[(kind.resource, namespace, name)] = new
        return copy.deepcopy(self.objects[(kind.resource, namespace, name)])


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(common, "client_for", lambda args: client)
    return client


def run(tmp_path, capsys, text: str, *extra: str) -> tuple[int, str, str]:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text))
    code = main.main(["--home", str(tmp_path), "apply", "-f", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


CMS = """\
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: one, labels: {app: web}}
    data: {k: v}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: two}
    data: {k: v}
    """


def test_apply_creates_then_is_unchanged_then_configures(tmp_path, capsys, fake):
    assert run(tmp_path, capsys, CMS) == (
        0, "configmap/one created\nconfigmap/two created\n", "")
    stored = fake.objects[("configmaps", "default", "one")]
    assert json.loads(stored.metadata.annotations[LAST_APPLIED]) == {
        "apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
        "metadata": {"annotations": {}, "name": "one", "namespace": "default",
                     "labels": {"app": "web"}}}
    assert stored.metadata.annotations[LAST_APPLIED].startswith('{"apiVersion":"v1","data"')

    writes = len(fake.writes)
    assert run(tmp_path, capsys, CMS) == (
        0, "configmap/one unchanged\nconfigmap/two unchanged\n", "")
    assert len(fake.writes) == writes, "an unchanged apply sends nothing"

    changed = CMS.replace("metadata: {name: one, labels: {app: web}}", "metadata: {name: one}")
    changed = changed.replace("data: {k: v}\n    ---", "data: {k: v2}\n    ---")
    assert run(tmp_path, capsys, changed) == (
        0, "configmap/one configured\nconfigmap/two unchanged\n", "")
    one = fake.objects[("configmaps", "default", "one")]
    assert dict(one.data) == {"k": "v2"} and dict(one.metadata.labels) == {}
    patch = fake.patches[-1]
    assert patch["metadata"]["labels"] is None  # the manifest has no labels any more
    assert patch["data"] == {"k": "v2"}


def test_apply_sends_nothing_when_any_document_is_invalid(tmp_path, capsys, fake):
    bad = textwrap.dedent(CMS) + textwrap.dedent("""\
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: three}
        datta: {k: v}
        """)
    code, out, err = run(tmp_path, capsys, bad)
    assert (code, out) == (1, "")
    assert err == (f'error: error validating "{tmp_path / "m.yaml"}": ConfigMap "three" is '
                   "invalid: datta: unknown field\n")
    assert fake.writes == [] and fake.objects == {}


def test_apply_reports_every_bad_document_one_line_each(tmp_path, capsys, fake):
    code, _, err = run(tmp_path, capsys, """\
        {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, x: 1}
        ---
        {apiVersion: v1, kind: Gadget, metadata: {name: b}}
        """)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 2
    assert lines[0].endswith('ConfigMap "a" is invalid: x: unknown field')
    assert lines[1].startswith("error: resource mapping not found for name: \"b\"")


def test_apply_missing_file(tmp_path, capsys, fake):
    code = main.main(["--home", str(tmp_path), "apply", "-f", str(tmp_path / "nope.yaml")])
    assert code == 1
    assert capsys.readouterr().err == f'error: the path "{tmp_path / "nope.yaml"}" does not exist\n'


def test_apply_to_an_object_made_without_apply_warns_and_patches(tmp_path, capsys, fake):
    assert main.main(["--home", str(tmp_path), "create", "configmap", "one",
                      "--from-literal=k=old"]) == 0
    capsys.readouterr()
    code, out, err = run(tmp_path, capsys, CMS)
    assert code == 0
    assert out == "configmap/one configured\nconfigmap/two created\n"
    assert "missing the kubectl.kubernetes.io/last-applied-configuration annotation" in err
    assert dict(fake.objects[("configmaps", "default", "one")].data) == {"k": "v"}


def test_create_already_exists_is_kubectls_error(tmp_path, capsys, fake):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(CMS))
    assert main.main(["--home", str(tmp_path), "create", "-f", str(path)]) == 0
    assert capsys.readouterr().out == "configmap/one created\nconfigmap/two created\n"
    assert main.main(["--home", str(tmp_path), "create", "-f", str(path)]) == 1
    assert capsys.readouterr().err == (
        'Error from server (AlreadyExists): configmaps "one" already exists\n'
        'Error from server (AlreadyExists): configmaps "two" already exists\n')


# ---------------------------------------------------------------- apply --dry-run, -o

APPLY_TWO = """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: newpod
      labels: {app: x}
    spec:
      containers:
      - name: c
        image: busybox
        env: null
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: cm1
    data: {a: "1"}
    """

# kubectl apply -f apply.yaml --dry-run=client -o yaml   (kubectl 1.32.5, neither object
# on the server)
APPLY_TWO_YAML = """\
apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"labels":{"app":"x"},"name":"newpod","namespace":"default"},"spec":{"containers":[{"env":null,"image":"busybox","name":"c"}]}}
    labels:
      app: x
    name: newpod
    namespace: default
  spec:
    containers:
    - image: busybox
      name: c
- apiVersion: v1
  data:
    a: "1"
  kind: ConfigMap
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {"apiVersion":"v1","data":{"a":"1"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"cm1","namespace":"default"}}
    name: cm1
    namespace: default
kind: List
metadata: {}
"""


def test_apply_client_dry_run_sends_nothing_and_prints_kubectls_objects(tmp_path, capsys, fake):
    # kubectl apply -f apply.yaml --dry-run=client
    assert run(tmp_path, capsys, APPLY_TWO, "--dry-run=client") == (
        0, "pod/newpod created (dry run)\nconfigmap/cm1 created (dry run)\n", "")
    assert run(tmp_path, capsys, APPLY_TWO, "--dry-run=client", "-o", "yaml") == (
        0, APPLY_TWO_YAML, "")
    # kubectl apply -f apply.yaml --dry-run=client -o name
    assert run(tmp_path, capsys, APPLY_TWO, "--dry-run", "-o", "name") == (
        0, "pod/newpod\nconfigmap/cm1\n", "")
    assert fake.writes == [] and fake.dry_runs == [] and fake.objects == {}


def test_apply_server_dry_run_asks_the_server_and_stores_nothing(tmp_path, capsys, fake):
    assert run(tmp_path, capsys, CMS, "--dry-run=server") == (
        0, "configmap/one created (server dry run)\nconfigmap/two created (server dry run)\n",
        "")
    assert fake.dry_runs == [("create", "one"), ("create", "two")] and fake.objects == {}
    run(tmp_path, capsys, CMS)
    changed = CMS.replace("data: {k: v}\n    ---", "data: {k: v2}\n    ---")
    code, out, _ = run(tmp_path, capsys, changed, "--dry-run=server", "-o", "json")
    assert code == 0
    printed = json.loads(out)
    assert (printed["kind"], [i["data"] for i in printed["items"]]) == (
        "List", [{"k": "v2"}, {"k": "v"}])
    assert dict(fake.objects[("configmaps", "default", "one")].data) == {"k": "v"}
    assert fake.dry_runs[-1] == ("patch", "one")


def test_apply_client_dry_run_of_an_existing_object_shows_it_configured(tmp_path, capsys, fake):
    run(tmp_path, capsys, CMS)
    changed = CMS.replace("data: {k: v}\n    ---", "data: {k: v2}\n    ---")
    writes = list(fake.writes)
    assert run(tmp_path, capsys, changed, "--dry-run=client") == (
        0, "configmap/one configured (dry run)\nconfigmap/two configured (dry run)\n", "")
    assert fake.writes == writes


# ---------------------------------------------------------------- delete

class DeletingClient(FakeClient):
    def __init__(self):
        super().__init__()
        self.deletes: list[tuple[str, object]] = []

    async def delete(self, resource, name, namespace="", *, grace_period_s=None,
                     propagation_policy="", dry_run=False):
        import types

        await self.get(resource, name, namespace)
        self.deletes.append((name, grace_period_s))
        return types.SimpleNamespace(deleted=True, object=None)


@pytest.fixture
def deleting(monkeypatch):
    client = DeletingClient()
    for name in ("a", "b"):
        client.objects[("configmaps", "default", name)] = codec.from_dict(
            REGISTRY.by_resource("configmaps").message, {"metadata": {"name": name}})
    monkeypatch.setattr(common, "client_for", lambda args: client)
    return client


FORCE_WARNING = ("Warning: Immediate deletion does not wait for confirmation that the running "
                 "resource has been terminated. The resource may continue to run on the cluster "
                 "indefinitely.\n")


@pytest.mark.parametrize("flags, grace, out, err", [
    # kubectl delete cm a b --force
    (["--force"], 0, 'configmap "a" force deleted\nconfigmap "b" force deleted\n', FORCE_WARNING),
    (["--force", "--grace-period=0"], 0,
     'configmap "a" force deleted\nconfigmap "b" force deleted\n', FORCE_WARNING),
    # kubectl turns --grace-period=0 without --force into 1
    (["--grace-period=0"], 1, 'configmap "a" deleted\nconfigmap "b" deleted\n', ""),
    (["--now"], 1, 'configmap "a" deleted\nconfigmap "b" deleted\n', ""),
    ([], None, 'configmap "a" deleted\nconfigmap "b" deleted\n', ""),
    (["-o", "name", "--grace-period", "5"], 5, "configmap/a\nconfigmap/b\n", ""),
], ids=["force", "force-zero", "zero-needs-force", "now", "default", "name"])
def test_delete_grace_periods_as_kubectl(tmp_path, capsys, deleting, flags, grace, out, err):
    code = main.main(["--home", str(tmp_path), "delete", "cm", "a", "b", *flags])
    assert (code, *capsys.readouterr()) == (0, out, err)
    assert deleting.deletes == [("a", grace), ("b", grace)]


@pytest.mark.parametrize("flags, err", [
    (["--force", "--grace-period=5"],
     "error: --force and --grace-period greater than 0 cannot be specified together\n"),
    (["--now", "--grace-period=5"],
     "error: --now and --grace-period cannot be specified together\n"),
    (["-o", "yaml"], "error: unexpected -o output mode: yaml. We only support '-o name'\n"),
], ids=["force-with-grace", "now-with-grace", "output"])
def test_delete_refuses_what_kubectl_refuses(tmp_path, capsys, deleting, flags, err):
    assert main.main(["--home", str(tmp_path), "delete", "cm", "a", *flags]) == 1
    assert capsys.readouterr() == ("", err)
    assert deleting.deletes == []


def test_delete_client_dry_run_deletes_nothing(tmp_path, capsys, deleting):
    # kubectl delete pod kuard nginx --force --dry-run=client
    assert main.main(["--home", str(tmp_path), "delete", "cm", "a", "b", "--force",
                      "--dry-run=client"]) == 0
    assert capsys.readouterr() == (
        'configmap "a" force deleted (dry run)\nconfigmap "b" force deleted (dry run)\n',
        FORCE_WARNING)
    assert deleting.deletes == []
