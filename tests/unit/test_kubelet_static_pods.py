"""Static pods (kubelet/static_pods.py): a manifest file becomes the pod the
kubelet runs, as Kubernetes makes it, and its mirror pod; the mirror plan."""
from __future__ import annotations

import pathlib
import random

import pytest

from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from kubelet import static_pods as sp
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from tests.builders import obj

NODE = "node-1"
SEEN_S = 1_800_000_000.5
PATH = "/home/k/nodes/node-1/manifests/web.yaml"


def manifest(**meta) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "static-web", "labels": {"role": "myrole"}, **meta},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                                     "ports": [{"name": "web", "containerPort": 80}]}]}}


def node():
    return obj({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE, "uid": "node-uid"}})


def test_a_manifest_becomes_the_static_pod_kubernetes_makes():
    pod = sp.static_pod(manifest(), NODE, PATH, SEEN_S)
    meta = pod.metadata
    assert (meta.name, meta.namespace) == ("static-web-node-1", "default")
    assert len(meta.uid) == 32 and meta.uid == sp.manifest_hash(manifest(), NODE, PATH)
    assert dict(meta.annotations) == {
        "kubernetes.io/config.hash": meta.uid, "kubernetes.io/config.source": "file",
        "kubernetes.io/config.seen": "2027-01-15T08:00:00.500000000Z"}
    assert pod.spec.node_name == NODE
    assert [(t.operator, t.effect) for t in pod.spec.tolerations][0] == ("Exists", "NoExecute")
    assert pod.spec.restart_policy == "Always"  # the API's defaults
    assert pod.status.phase == "Pending"


def test_a_uid_in_the_manifest_is_not_kept():
    """The directory scan finds a pod by the manifest's hash: a uid of the
    manifest's own would make every later scan miss it and never see an edit."""
    pod = sp.static_pod(manifest(uid="chosen"), NODE, PATH, SEEN_S)
    assert pod.metadata.uid == sp.manifest_hash(manifest(uid="chosen"), NODE, PATH)


@pytest.mark.parametrize("change", [
    lambda d: d["spec"]["containers"][0].update(image="nginx:1.27"),
    lambda d: d["metadata"]["labels"].update(tier="b"),
], ids=["spec", "labels"])
def test_an_edit_is_a_new_uid(change):
    edited = manifest()
    change(edited)
    assert sp.manifest_hash(edited, NODE, PATH) != sp.manifest_hash(manifest(), NODE, PATH)
    # The same file on another node, or another file, is another pod too.
    assert sp.manifest_hash(manifest(), "node-2", PATH) != sp.manifest_hash(manifest(), NODE, PATH)
    assert sp.manifest_hash(manifest(), NODE, PATH + "x") != sp.manifest_hash(manifest(), NODE,
                                                                              PATH)


@pytest.mark.parametrize("doc, wanted", [
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}},
     "not a v1 Pod"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}},
     'Pod "x-node-1" is invalid: spec.containers: Required value'),
], ids=["not-a-pod", "invalid"])
def test_bad_manifests_are_refused(doc, wanted):
    with pytest.raises(errors.ApiError) as err:
        sp.static_pod(doc, NODE, PATH, SEEN_S)
    assert wanted in err.value.message


def test_read_manifests_skips_hidden_files_and_reports_bad_ones(tmp_path: pathlib.Path):
    (tmp_path / "web.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n")
    (tmp_path / ".swp").write_text("junk")
    (tmp_path / "broken.yaml").write_text("a: [")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "sub").mkdir()
    found = {pathlib.Path(m.path).name: m for m in sp.read_manifests(tmp_path)}
    assert sorted(found) == ["broken.yaml", "list.yaml", "web.yaml"]
    assert found["web.yaml"].doc["metadata"] == {"name": "a"} and not found["web.yaml"].error
    assert found["broken.yaml"].error.startswith("not YAML or JSON")
    assert found["list.yaml"].error == "not a single object"
    assert sp.read_manifests(tmp_path / "missing") == []


def test_the_mirror_pod_is_owned_by_the_node():
    pod = sp.static_pod(manifest(), NODE, PATH, SEEN_S)
    mirror = codec.to_dict(sp.mirror_pod(pod, node()))
    meta = mirror["metadata"]
    assert meta["annotations"]["kubernetes.io/config.mirror"] == pod.metadata.uid
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": NODE,
                                        "uid": "node-uid", "controller": True}]
    assert "uid" not in meta and meta["labels"] == {"role": "myrole"}
    assert mirror["spec"]["nodeName"] == NODE


def api_mirror(static, *, hash_: str | None = None, deleting: bool = False):
    mirror = sp.mirror_pod(static, node())
    mirror.metadata.uid = "api-" + static.metadata.uid[:6]
    if hash_ is not None:
        mirror.metadata.annotations[sp.MIRROR_ANNOTATION] = hash_
    if deleting:
        mirror.metadata.deletion_timestamp = "2027-01-15T08:00:00Z"
    return mirror


def regular(name: str):
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "uid": "r"},
                "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "x"}]}})


WEB = sp.static_pod(manifest(), NODE, PATH, SEEN_S)
OTHER = sp.static_pod(manifest(name="other"), NODE, PATH + "2", SEEN_S)


@pytest.mark.parametrize("static, api, create, delete", [
    ([WEB], [], ["static-web-node-1"], []),
    ([WEB], [api_mirror(WEB)], [], []),
    ([WEB], [api_mirror(WEB, hash_="old")], [], ["static-web-node-1"]),
    ([WEB], [api_mirror(WEB, deleting=True)], [], ["static-web-node-1"]),
    ([], [api_mirror(WEB)], [], ["static-web-node-1"]),
    ([WEB], [regular("static-web-node-1")], [], []),
    ([OTHER], [regular("web"), api_mirror(WEB)], ["other-node-1"], ["static-web-node-1"]),
], ids=["missing", "in-sync", "stale-hash", "being-deleted", "file-removed",
        "name-held-by-a-regular-pod", "mixed"])
def test_mirror_plan(static, api, create, delete):
    plan = sp.mirror_plan(static, api)
    assert [p.metadata.name for p in plan.create] == create
    assert [p.metadata.name for p in plan.delete] == delete
    assert all(isinstance(p, core_pb2.Pod) for p in plan.create + plan.delete)


@pytest.mark.parametrize("text, seconds", [
    ("20s", 20.0), ("500ms", 0.5), ("1m30s", 90.0), ("2", 2.0), ("0.25", 0.25), ("1h", 3600.0),
])
def test_file_check_frequency_is_a_duration(text, seconds):
    assert sp.parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "0s", "-1", "5s junk"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        sp.parse_duration_s(text)


# ---------------------------------------------------------------- the apiserver's side

@pytest.mark.parametrize("change, message", [
    (lambda p: p.metadata.annotations.pop(sp.MIRROR_ANNOTATION),
     'Pod "static-web-node-1" is invalid: metadata.annotations[kubernetes.io/config.mirror]: '
     'Forbidden: may not remove or update mirror pod annotation'),
    (lambda p: p.metadata.annotations.update({sp.MIRROR_ANNOTATION: "other"}),
     'Pod "static-web-node-1" is invalid: metadata.annotations[kubernetes.io/config.mirror]: '
     'Forbidden: may not remove or update mirror pod annotation'),
], ids=["removed", "changed"])
async def test_a_mirror_pod_stays_a_mirror(change, message):
    reg = ObjectRegistry(MemoryStore(), {}, rng=random.Random(7), clock=lambda: SEEN_S)
    await reg.create(REGISTRY.by_resource("namespaces"), "",
                     obj({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": "default"}}))
    pods = REGISTRY.by_resource("pods")
    made = await reg.create(pods, "default", sp.mirror_pod(WEB, node()))
    changed = core_pb2.Pod()
    changed.CopyFrom(made)
    change(changed)
    with pytest.raises(errors.Invalid) as err:
        await reg.update(pods, changed)
    assert err.value.message == message
    # Adding the annotation to a pod is refused too; a mirror must be bound.
    plain = await reg.create(pods, "default", regular("plain"))
    plain.metadata.annotations[sp.MIRROR_ANNOTATION] = "x"
    with pytest.raises(errors.Invalid) as err:
        await reg.update(pods, plain)
    assert "may not add mirror pod annotation" in err.value.message
    unbound = sp.mirror_pod(OTHER, node())
    unbound.spec.node_name = ""
    with pytest.raises(errors.Invalid) as err:
        await reg.create(pods, "default", unbound)
    assert "must set spec.nodeName if mirror pod annotation is set" in err.value.message
