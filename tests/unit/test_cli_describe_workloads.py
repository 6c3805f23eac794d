"""describe of the workload and storage kinds (issue 9), compared with kubectl 1.32.5.

Each file in kubectl_describe/ is what real kubectl (v1.32.5) printed for
`kubectl describe KIND NAME` against a fake API server that served exactly the
objects of cli_kubectl_objects.py (WORKLOADS, WORKLOAD_PODS, WORKLOAD_EVENTS) on
2026-11-30: the file is named `<Kind>-<name>.txt`. Here each object goes through
kubemu's codec first when its kind is registered (the JSON a kubemu server would
send); kinds this branch does not register yet (StorageClass, ControllerRevision)
are described from the plain dicts, which is all the describers read.
"""
from __future__ import annotations

import asyncio
import datetime
import pathlib
import types

import pytest

from kubemu.api import errors, labels
from kubemu.api.kinds import REGISTRY
from kubemu.cli import common, describe
from tests.builders import obj as message
from tests.unit import cli_kubectl_objects as objects

CAPTURED = datetime.datetime(2026, 11, 30, 10, 0, 0, tzinfo=datetime.timezone.utc)
GOLDEN = pathlib.Path(__file__).parent / "kubectl_describe"

RESOURCES = {"Deployment": "deployments", "ReplicaSet": "replicasets",
             "StatefulSet": "statefulsets", "DaemonSet": "daemonsets", "Job": "jobs",
             "CronJob": "cronjobs", "PersistentVolume": "persistentvolumes",
             "PersistentVolumeClaim": "persistentvolumeclaims", "StorageClass": "storageclasses",
             "ControllerRevision": "controllerrevisions"}
CLUSTER_SCOPED = {"PersistentVolume", "StorageClass"}


def kind_of(doc: dict):
    """The registry's Kind, or a stand-in with the three fields describe reads."""
    try:
        return REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    except errors.ApiError:
        return types.SimpleNamespace(resource=RESOURCES[doc["kind"]], kind=doc["kind"],
                                     namespaced=doc["kind"] not in CLUSTER_SCOPED)


def served(doc: dict) -> dict:
    """The object as a kubemu server sends it: through the message and back."""
    try:
        return common.to_json(message(doc))
    except errors.ApiError:
        return doc


def listed(items: list[dict], namespace: str, selector: dict | None = None) -> list[dict]:
    """What a list with the object's label selector returns, as the server filters."""
    match = labels.selector_from_dict(selector) if selector else labels.EVERYTHING
    return [served(i) for i in items if i["metadata"].get("namespace") == namespace
            and match.matches(i["metadata"].get("labels") or {})]


def extra_for(doc: dict) -> dict:
    """What run_describe fetches besides the object (see describe._extra_for)."""
    namespace = doc["metadata"].get("namespace", "")
    selector = (doc.get("spec") or {}).get("selector")
    if doc["kind"] == "Deployment":
        return {"replicasets": listed(objects.REPLICASETS, namespace, selector)}
    if doc["kind"] in ("ReplicaSet", "StatefulSet", "DaemonSet"):
        return {"pods": listed(objects.WORKLOAD_PODS, namespace, selector)}
    if doc["kind"] == "PersistentVolumeClaim":
        return {"pods": listed(objects.WORKLOAD_PODS, namespace)}
    return {}


def events_for(doc: dict) -> list[dict]:
    return [e for e in objects.WORKLOAD_EVENTS
            if e["involvedObject"]["name"] == doc["metadata"]["name"]
            and e["involvedObject"]["kind"] == doc["kind"]]


@pytest.mark.parametrize("doc", objects.WORKLOADS,
                         ids=[f"{o['kind']}-{o['metadata']['name']}" for o in objects.WORKLOADS])
def test_describe_matches_kubectl(doc):
    expected = (GOLDEN / f"{doc['kind']}-{doc['metadata']['name']}.txt").read_text()
    text = describe.describe(kind_of(doc), served(doc), events_for(doc), CAPTURED,
                             extra=extra_for(doc))
    assert text == expected


# ---------------------------------------------------------------- the parts, one by one

def test_deployment_finds_its_replicasets_by_owner_and_template():
    d = objects.workload("Deployment", "web")
    old, new = describe.deployment_replicasets(d, objects.REPLICASETS)
    # oldest first; a ReplicaSet of another owner is not the Deployment's, even with its
    # labels and template; scaled-to-zero old ones stay in the list
    assert [rs["metadata"]["name"] for rs in old] == ["web-7c9f6d4b8", "web-6b7c8d9f0"]
    assert new is not None and new["metadata"]["name"] == "web-5d4f8b8c9"


def test_deployment_without_a_matching_template_has_no_new_replicaset():
    d = objects.workload("Deployment", "web")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    text = describe.describe(kind_of(d), d, None, CAPTURED,
                             extra={"replicasets": objects.REPLICASETS})
    # all three are old now, oldest first
    assert ("OldReplicaSets:  web-7c9f6d4b8 (0/0 replicas created), web-6b7c8d9f0 (1/1 replicas "
            "created), web-5d4f8b8c9 (3/3 replicas created)\nNewReplicaSet:   <none>\n") in text


def test_deployment_replicaset_lines_need_replicasets():
    d = objects.workload("Deployment", "web")
    # none owned, or the list failed: kubectl prints neither line
    for extra in ({"replicasets": []}, {}):
        text = describe.describe(kind_of(d), d, None, CAPTURED, extra=extra)
        assert "OldReplicaSets:" not in text and "NewReplicaSet:" not in text


@pytest.mark.parametrize("pods, counts", [
    ([], (0, 0, 0, 0)),
    (objects.WORKLOAD_PODS, (2, 1, 0, 0)),
    ([dict(objects.WORKLOAD_PODS[0], metadata={"name": "orphan", "ownerReferences": [
        {"uid": "uid-web-5d4f8b8c9", "controller": False}]})], (0, 0, 0, 0)),
    ([{"metadata": {"ownerReferences": [{"uid": "uid-web-5d4f8b8c9", "controller": True}]},
       "status": {"phase": "Unknown"}}], (0, 0, 0, 0)),
], ids=["none", "owned-only", "not-controller", "unknown-phase"])
def test_pod_phase_counts_count_only_the_controllers_pods(pods, counts):
    assert describe.pod_phase_counts(pods, "uid-web-5d4f8b8c9") == counts


def test_pvc_used_by_lists_pods_by_volume_and_by_owner_sorted():
    pvc = objects.workload("PersistentVolumeClaim", "data-db-0")
    pvc["metadata"]["ownerReferences"] = [{"kind": "Pod", "name": "db-1", "uid": "uid-db-1"}]
    text = describe.describe(kind_of(pvc), pvc, None, CAPTURED,
                             extra={"pods": objects.WORKLOAD_PODS})
    assert "Used By:       db-0\n               db-1\n" in text


@pytest.mark.parametrize("indexes, text", [
    ("", "<none>"), ("0-2", "0-2"),
    # cut at the first comma at or after the 50th character (index 51 here)
    (",".join(str(i) for i in range(0, 60, 2)),
     "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,..."),
], ids=["none", "short", "capped-after-a-comma"])
def test_completed_indexes_are_capped_like_kubectl(indexes, text):
    assert describe.completed_indexes(indexes) == text


def test_long_and_multiline_annotations_are_folded():
    out = describe.Lines()
    describe._annotation_lines(out, 0, "Annotations", {
        "a": "x" * 150, "b": "one\ntwo\n", "c": "short",
        common.LAST_APPLIED: "{}"})
    assert out.render() == ("Annotations:  a:\n"
                            f"                {'x' * 138}...\n"
                            "              b:\n"
                            "                one\n"
                            "                two\n"
                            "              c: short\n")


@pytest.mark.parametrize("field, label", [
    ("apiVersion", "API Version"), ("uid", "UID"), ("podIP", "Pod IP"),
    ("holderIdentity", "Holder Identity"), ("$patch", "$patch"), ("ipv4", "ipv4"),
    ("HTTPServer", "HTTP Server"), ("blockOwnerDeletion", "Block Owner Deletion"),
], ids=lambda v: v)
def test_smart_label_is_kubectls(field, label):
    assert describe.smart_label(field) == label


def test_terminating_volume_says_how_long():
    pv = objects.workload("PersistentVolume", "pv-1")
    pv["metadata"]["deletionTimestamp"] = "2026-11-30T09:58:00Z"
    text = describe.describe(kind_of(pv), pv, None, CAPTURED)
    assert "Status:            Terminating (lasts 2m)\n" in text


# ---------------------------------------------------------------- what run_describe fetches

class FakeClient:
    """Records list_all calls; serves the fixture objects as messages."""

    def __init__(self, items: list[dict]):
        self.items = items
        self.calls: list[tuple[str, str, str]] = []

    async def list_all(self, resource: str, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = ""):
        self.calls.append((resource, namespace, label_selector))
        kind = REGISTRY.by_resource(resource).kind
        return types.SimpleNamespace(items=[message(i) for i in self.items if i["kind"] == kind])


@pytest.mark.parametrize("doc, call", [
    (objects.workload("Deployment", "web"), ("replicasets", "default", "app=web")),
    (objects.workload("Deployment", "once"),
     ("replicasets", "default", "app=once,env,tier in (a,b)")),
    (objects.workload("ReplicaSet", "web-5d4f8b8c9"),
     ("pods", "default", "app=web,pod-template-hash=5d4f8b8c9")),
    (objects.workload("StatefulSet", "db"), ("pods", "default", "app=db")),
    (objects.workload("DaemonSet", "proxy"), ("pods", "default", "app=proxy")),
    (objects.workload("PersistentVolumeClaim", "data-db-0"), ("pods", "default", "")),
], ids=lambda v: v["kind"] + "-" + v["metadata"]["name"] if isinstance(v, dict) else None)
def test_extra_lists_what_kubectl_lists(doc, call):
    client = FakeClient(objects.REPLICASETS + objects.WORKLOAD_PODS)
    extra = asyncio.run(describe._extra_for(client, kind_of(doc), doc))
    assert client.calls == [call]
    (got,) = extra.values()
    assert got and all(isinstance(item, dict) and item["metadata"]["name"] for item in got)


@pytest.mark.parametrize("kind", ["Job", "CronJob"])
def test_jobs_list_nothing_more(kind):
    client = FakeClient([])
    doc = objects.workload(kind, "pi" if kind == "Job" else "tick")
    assert asyncio.run(describe._extra_for(client, kind_of(doc), doc)) == {}
    assert client.calls == []


def test_job_without_ready_count_or_completions():
    job = objects.workload("Job", "pi")
    del job["spec"]["completions"], job["status"]["ready"]
    text = describe.describe(kind_of(job), job, None, CAPTURED)
    assert "Completions:      <unset>\n" in text
    assert "Pods Statuses:    2 Active / 2 Succeeded / 1 Failed\n" in text
    assert "Completed Indexes" not in text and "Duration" not in text


def test_statefulset_partition_and_claims_without_storage():
    sts = objects.workload("StatefulSet", "db")
    sts["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "50%"
    del sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]
    text = describe.describe(kind_of(sts), sts, None, CAPTURED, extra={"pods": []})
    assert "  Partition:        1\n  MaxUnavailable:   50%\n" in text
    assert "  Capacity:      <default>\n" in text
    assert "Pods Status:        0 Running / 0 Waiting / 0 Succeeded / 0 Failed\n" in text
