"""ControllerRevision (apps/v1) and StorageClass (storage.k8s.io/v1): codec,
defaults and validation, with Kubernetes' paths and words."""
from __future__ import annotations

import json

import pytest

from kubemu.api import codec
from tests.unit.test_validation import build, drop, pairs, problems, put


def controller_revision() -> dict:
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "web-6d4b6b7f8c", "namespace": "default"},
            "data": {"spec": {"template": {"$patch": "replace", "spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.25",
                 "ports": [{"containerPort": 80}]}]}}}},
            "revision": 1}


def storage_class() -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard"}, "provisioner": "rancher.io/local-path"}


@pytest.mark.parametrize("manifest", [controller_revision, storage_class],
                         ids=lambda f: f.__name__)
def test_valid_and_unchanged_update(manifest):
    assert [str(p) for p in problems(manifest())] == []
    assert [str(p) for p in problems(manifest(), manifest())] == []


def test_controller_revision_data_prints_as_the_json_object():
    _, obj = build(controller_revision())
    text = json.dumps(codec.to_dict(obj))
    # An object, not a Struct's {"fields": ...}; whole numbers stay integers.
    assert '"data": {"spec": {"template": {"$patch": "replace"' in text
    assert '"containerPort": 80}' in text
    assert '"revision": 1' in text


def test_controller_revision_revision_defaults_to_printed_zero():
    doc = drop(controller_revision(), "revision")
    _, obj = build(doc)
    assert codec.to_dict(obj)["revision"] == 0
    _, raw = build(doc, apply_defaults=False)
    assert "revision" not in codec.to_dict(raw)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: drop(d, "data"), [("data", "Required value")]),
    (lambda d: put(d, "data", {}), []),
    (lambda d: put(d, "revision", -1), [("revision", "Invalid value")]),
    (lambda d: put(d, "metadata.name", "Web_1"), [("metadata.name", "Invalid value")]),
], ids=["no-data", "empty-data", "negative-revision", "bad-name"])
def test_controller_revision(mutate, expected):
    doc = controller_revision()
    mutate(doc)
    found = problems(doc)
    assert pairs(found) == expected
    if expected == [("data", "Required value")]:
        assert str(found[0]) == "data: Required value: data is mandatory"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "revision", 7), []),
    (lambda d: put(d, "metadata.labels", {"controller.kubernetes.io/hash": "6d4b"}), []),
    (lambda d: put(d, "data.spec.template.spec.containers[0].image", "nginx:2"),
     [("data", "Invalid value")]),
], ids=["renumbered", "labels", "data-changed"])
def test_controller_revision_update(mutate, expected):
    new = controller_revision()
    mutate(new)
    found = problems(new, controller_revision())
    assert pairs(found) == expected
    assert all(p.detail == "field is immutable" for p in found)


def test_storage_class_defaults():
    _, obj = build(storage_class())
    printed = codec.to_dict(obj)
    assert (printed["reclaimPolicy"], printed["volumeBindingMode"]) == ("Delete", "Immediate")
    assert "allowVolumeExpansion" not in printed


TOPOLOGY = [{"matchLabelExpressions": [{"key": "topology.kubernetes.io/zone",
                                        "values": ["a", "b"]}]}]


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: drop(d, "provisioner"), [("provisioner", "Required value")]),
    (lambda d: put(d, "provisioner", "bad provisioner!"), [("provisioner", "Invalid value")]),
    (lambda d: put(d, "provisioner", "Example.COM/NFS"), []),
    (lambda d: put(d, "reclaimPolicy", "Recycle"), [("reclaimPolicy", "Unsupported value")]),
    (lambda d: put(d, "reclaimPolicy", "Retain"), []),
    (lambda d: put(d, "volumeBindingMode", "Later"),
     [("volumeBindingMode", "Unsupported value")]),
    (lambda d: put(d, "volumeBindingMode", "WaitForFirstConsumer"), []),
    (lambda d: put(d, "parameters", {"type": "pd-ssd", "": "x"}),
     [("parameters", "Invalid value")]),
    (lambda d: put(d, "parameters", {f"k{i}": "v" for i in range(513)}),
     [("parameters", "Too long")]),
    (lambda d: put(d, "allowedTopologies", TOPOLOGY), []),
    (lambda d: put(d, "allowedTopologies", TOPOLOGY + TOPOLOGY),
     [("allowedTopologies[1].matchLabelExpressions", "Duplicate value")]),
    (lambda d: put(d, "allowedTopologies", [{"matchLabelExpressions": [
        {"key": "zone", "values": []}, {"key": "zone", "values": ["a", "a"]}]}]),
     [("allowedTopologies[0].matchLabelExpressions[0].values", "Required value"),
      ("allowedTopologies[0].matchLabelExpressions[1].values[1]", "Duplicate value"),
      ("allowedTopologies[0].matchLabelExpressions[1].key", "Duplicate value")]),
    (lambda d: put(d, "metadata.namespace", "default"),
     [("metadata.namespace", "Forbidden")]),
], ids=["no-provisioner", "bad-provisioner", "provisioner-case", "recycle", "retain",
        "bad-binding-mode", "wait-for-first-consumer", "empty-parameter-key",
        "too-many-parameters", "topologies", "duplicate-topology", "bad-expressions",
        "namespaced"])
def test_storage_class(mutate, expected):
    doc = storage_class()
    mutate(doc)
    assert pairs(problems(doc)) == expected


def test_storage_class_unsupported_reclaim_policy_message():
    found = problems(put(storage_class(), "reclaimPolicy", "Recycle"))
    assert str(found[0]) == ('reclaimPolicy: Unsupported value: "Recycle": supported values: '
                             '"Delete", "Retain"')


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "allowVolumeExpansion", True), []),
    (lambda d: put(d, "mountOptions", ["debug"]), []),
    (lambda d: put(d, "metadata.annotations",
                   {"storageclass.kubernetes.io/is-default-class": "true"}), []),
    (lambda d: put(d, "parameters", {"type": "ssd"}), [("parameters", "Forbidden")]),
    (lambda d: put(d, "provisioner", "example.com/nfs"), [("provisioner", "Forbidden")]),
    (lambda d: put(d, "reclaimPolicy", "Retain"), [("reclaimPolicy", "Forbidden")]),
    (lambda d: put(d, "volumeBindingMode", "WaitForFirstConsumer"),
     [("volumeBindingMode", "Invalid value")]),
], ids=["expansion", "mount-options", "default-annotation", "parameters", "provisioner",
        "reclaim-policy", "binding-mode"])
def test_storage_class_update(mutate, expected):
    new = storage_class()
    mutate(new)
    found = problems(new, storage_class())
    assert pairs(found) == expected
    words = {"parameters": "updates to parameters are forbidden.",
             "provisioner": "updates to provisioner are forbidden.",
             "reclaimPolicy": "updates to reclaimPolicy are forbidden.",
             "volumeBindingMode": "field is immutable"}
    assert [p.detail for p in found] == [words[p.path] for p in found]


# The StatefulSet of Kubernetes' "StatefulSet Basics" tutorial, which the seed
# notes quote (shared/seeds/000: `name: web`, `serviceName: "nginx"`): its
# mount names the volumeClaimTemplate `www`, not a volume of the pod spec.
WEB_STATEFULSET = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "nginx"}},
        "serviceName": "nginx", "replicas": 2,
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"terminationGracePeriodSeconds": 10, "containers": [{
                "name": "nginx", "image": "registry.k8s.io/nginx-slim:0.8",
                "ports": [{"containerPort": 80, "name": "web"}],
                "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
        "volumeClaimTemplates": [{
            "metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}]}}


def test_stateful_set_mounts_may_name_a_volume_claim_template():
    assert [str(p) for p in problems(WEB_STATEFULSET)] == []


def test_stateful_set_mount_of_neither_volume_nor_claim_is_not_found():
    doc = json.loads(json.dumps(WEB_STATEFULSET))
    put(doc, "spec.volumeClaimTemplates[0].metadata.name", "data")
    assert [str(p) for p in problems(doc)] == [
        'spec.template.spec.containers[0].volumeMounts[0].name: Not found: "www"']


def test_claim_templates_do_not_count_for_other_workloads():
    doc = json.loads(json.dumps(WEB_STATEFULSET))
    doc["kind"] = "Deployment"
    for field in ("serviceName", "volumeClaimTemplates"):
        del doc["spec"][field]
    assert pairs(problems(doc)) == [
        ("spec.template.spec.containers[0].volumeMounts[0].name", "Not found")]


def test_stateful_set_forbidden_update_is_kubernetes_message():
    new = json.loads(json.dumps(WEB_STATEFULSET))
    put(new, "spec.serviceName", "other")
    assert [str(p) for p in problems(new, WEB_STATEFULSET)] == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
        "and 'minReadySeconds' are forbidden"]


async def test_api_resources_lists_the_new_kinds():
    from apiserver.service import ResourcesService
    from kubemu.api.kinds import REGISTRY
    from kubemu.api.v1 import resources_pb2
    from kubemu.cli.discovery import resource_rows

    service = ResourcesService(None, {}, REGISTRY)
    response = await service.Discovery(resources_pb2.DiscoveryRequest(), None)
    rows = {row[0]: row for row in resource_rows(list(response.resources))}
    assert rows["controllerrevisions"] == ["controllerrevisions", "", "apps/v1", "true",
                                           "ControllerRevision"]
    assert rows["storageclasses"] == ["storageclasses", "sc", "storage.k8s.io/v1", "false",
                                      "StorageClass"]
