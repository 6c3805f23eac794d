"""The PersistentVolume binder's pure choices: which volume a claim binds
(class, access modes, capacity, volumeMode, selector, pre-binding, node
affinity under WaitForFirstConsumer) and what the local-path provisioner
makes."""
from __future__ import annotations

import pytest

from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2

from controller_manager import pv_binder as pvb
from tests.unit.scheduler_builders import make_node


def pv(name: str, size: str = "1Gi", *, modes=("ReadWriteOnce",), klass: str = "",
       claim: tuple[str, str] | None = None, labels: dict | None = None, phase: str = "Available",
       mode: str = "", node: str = "") -> core_pb2.PersistentVolume:
    spec: dict = {"capacity": {"storage": size}, "accessModes": list(modes),
                  "hostPath": {"path": f"/tmp/{name}"}}
    if klass:
        spec["storageClassName"] = klass
    if claim:
        spec["claimRef"] = {"namespace": "default", "name": claim[0], "uid": claim[1]}
    if mode:
        spec["volumeMode"] = mode
    if node:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    return codec.from_dict(core_pb2.PersistentVolume, {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels or {}}, "spec": spec,
        "status": {"phase": phase}})


def pvc(size: str = "1Gi", *, modes=("ReadWriteOnce",), klass: str | None = "",
        selector: dict | None = None, mode: str = "") -> core_pb2.PersistentVolumeClaim:
    spec: dict = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if klass is not None:
        spec["storageClassName"] = klass
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if mode:
        spec["volumeMode"] = mode
    return codec.from_dict(core_pb2.PersistentVolumeClaim, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default", "uid": "claim-uid"}, "spec": spec})


MATCHES = [
    # id, volumes, claim, expected volume name (None: no match)
    ("smallest that fits", [pv("a", "10Gi"), pv("b", "2Gi"), pv("c", "1Gi")], pvc("2Gi"), "b"),
    ("quantities compare by value", [pv("a", "2048Mi")], pvc("2Gi"), "a"),
    ("too small", [pv("a", "1Gi")], pvc("2Gi"), None),
    ("class must match", [pv("a", klass="fast"), pv("b")], pvc(klass="fast"), "a"),
    ("no class matches only no class", [pv("a", klass="fast")], pvc(), None),
    ("access modes superset", [pv("a", modes=("ReadWriteOnce", "ReadOnlyMany"))],
     pvc(modes=("ReadOnlyMany",)), "a"),
    ("access mode missing", [pv("a", modes=("ReadWriteOnce",))],
     pvc(modes=("ReadWriteMany",)), None),
    ("volumeMode must match", [pv("a", mode="Block"), pv("b", "5Gi")], pvc(), "b"),
    ("selector", [pv("a", labels={"tier": "gold"}), pv("b")], pvc(selector={"tier": "gold"}),
     "a"),
    ("bound elsewhere skipped", [pv("a", claim=("other", "u2"), phase="Bound"), pv("b", "3Gi")],
     pvc(), "b"),
    ("pre-bound to this claim wins", [pv("small"), pv("mine", "5Gi", claim=("data", ""))],
     pvc(), "mine"),
    ("released skipped", [pv("a", phase="Released")], pvc(), None),
    ("being failed skipped", [pv("a", phase="Failed")], pvc(), None),
]


@pytest.mark.parametrize("volumes, claim, expected", [c[1:] for c in MATCHES],
                         ids=[c[0] for c in MATCHES])
def test_find_best_match(volumes, claim, expected):
    found = pvb.find_best_match(claim, volumes, pvb.claim_class(claim, ""))
    assert (found.metadata.name if found is not None else None) == expected


def test_selected_node_filters_by_volume_node_affinity():
    volumes = [pv("there", node="node-b"), pv("here", "5Gi", node="node-a")]
    node_a = make_node("node-a").build()
    assert pvb.find_best_match(pvc(), volumes, "", node_a).metadata.name == "here"
    assert pvb.node_affinity_allows(pv("anywhere"), node_a)


def test_claim_class_unset_means_the_default():
    assert pvb.claim_class(pvc(klass=None), "standard") == "standard"
    assert pvb.claim_class(pvc(klass=""), "standard") == ""
    assert pvb.claim_class(pvc(klass="fast"), "standard") == "fast"


def test_mismatch_says_why():
    assert pvb.mismatch(pv("a", "1Gi"), pvc("2Gi"), "") == "requested PV is too small"
    assert pvb.mismatch(pv("a", klass="x"), pvc(), "") == "storageClassName does not match"
    assert pvb.mismatch(pv("a"), pvc(modes=("ReadWriteMany",)), "") == "incompatible accessMode"
    assert pvb.mismatch(pv("a"), pvc(), "") == ""


def test_provisioned_volume():
    sc = pvb.default_storage_class()
    assert REGISTRY.by_message(sc).resource == "storageclasses"
    claim = pvc("3Gi", klass=None)
    volume = pvb.provisioned_volume(claim, sc, "/v/pvc-claim-uid_default_data", "node-a")
    doc = codec.to_dict(volume)
    assert doc["metadata"] == {"name": "pvc-claim-uid", "annotations": {
        "pv.kubernetes.io/bound-by-controller": "yes",
        "pv.kubernetes.io/provisioned-by": "kubemu.io/local-path"}}
    assert doc["spec"]["capacity"] == {"storage": "3Gi"}
    assert doc["spec"]["hostPath"] == {"path": "/v/pvc-claim-uid_default_data",
                                       "type": "DirectoryOrCreate"}
    assert (doc["spec"]["persistentVolumeReclaimPolicy"], doc["spec"]["storageClassName"],
            doc["spec"]["volumeMode"]) == ("Delete", "standard", "Filesystem")
    assert doc["spec"]["claimRef"]["uid"] == "claim-uid"
    assert doc["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0][
        "matchExpressions"] == [{"key": "kubernetes.io/hostname", "operator": "In",
                                 "values": ["node-a"]}]
    assert pvb.volume_dir_name(claim) == "pvc-claim-uid_default_data"


@pytest.mark.parametrize("path, root, inside", [
    ("/v/pvc-1_default_data", "/v", True),
    ("/v", "/v", False),
    ("/v/pvc-2_default_other", "/v", False),      # another volume's directory
    ("/v/pvc-1_default_data/..", "/v", False),
    ("/v/sub/pvc-1_default_data", "/v", False),   # not right under the volumes dir
    ("/elsewhere/pvc-1_x_y", "/v", False)])
def test_only_the_volumes_own_directory_is_removed(path, root, inside):
    assert pvb.is_provisioned_path(path, root, "pvc-1") == inside
