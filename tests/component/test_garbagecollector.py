"""The garbage collector in the real controller-manager process, alone
(`--controllers garbagecollector`: no ReplicaSet controller makes or takes
pods), on a real apiserver with no nodes. Owners are ReplicaSets and their
pods are made by hand with ownerReferences; unbound pods are deleted at once,
and a pod held by a finalizer of the test's own stands for a dependent that
takes its time to go."""
from __future__ import annotations

import secrets

import pytest

from kubemu.api import errors
from kubemu.client.wait import wait_for
from tests.component.test_controller_manager import obj, rs_doc
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0
HOLD = "example.com/hold"


@pytest.fixture
async def gc(tmp_path, apiserver):
    proc = await ControllerManagerProc(tmp_path, apiserver.address,
                                       "--controllers", "garbagecollector").astart()
    try:
        yield proc
    finally:
        await proc.astop()


def pod_doc(name: str, *owners, finalizers: tuple[str, ...] = (),
            namespace: str = "default", owner_kind: str = "ReplicaSet",
            owner_api_version: str = "apps/v1") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "finalizers": list(finalizers),
                         "ownerReferences": [
                             {"apiVersion": owner_api_version, "kind": owner_kind,
                              "name": o.metadata.name, "uid": o.metadata.uid,
                              "controller": i == 0, "blockOwnerDeletion": True}
                             for i, o in enumerate(owners)]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def make_owner(client, name: str, namespace: str = "default"):
    doc = rs_doc(name, 0, app=name)
    doc["metadata"]["namespace"] = namespace
    return await client.create(obj(doc))


async def get_or_none(client, resource: str, name: str, namespace: str = "default"):
    try:
        return await client.get(resource, name, namespace)
    except errors.NotFound:
        return None


async def wait_gone(client, resource: str, name: str, namespace: str = "default") -> None:
    async def gone():
        got = await get_or_none(client, resource, name, namespace)
        return True if got is None else Seen(
            {"deletionTimestamp": got.metadata.deletion_timestamp,
             "finalizers": list(got.metadata.finalizers),
             "ownerReferences": [r.name for r in got.metadata.owner_references]})
    await wait_for(gone, WAIT_S, interval_s=0.1, message=f"{resource}/{name} gone")


async def release(client, name: str) -> None:
    """Drop the test's finalizer from a pod (conditioned on what was read)."""
    pod = await client.get("pods", name, "default")
    kept = [f for f in pod.metadata.finalizers if f != HOLD]
    del pod.metadata.finalizers[:]
    pod.metadata.finalizers.extend(kept)
    await client.update(pod)


async def test_background_deletion_deletes_the_dependents(gc, client):
    owner = await make_owner(client, "web")
    for name in ("web-a", "web-b"):
        await client.create(obj(pod_doc(name, owner)))
    await client.delete("replicasets", "web", "default", propagation_policy="Background")
    for name in ("web-a", "web-b"):
        await wait_gone(client, "pods", name)


async def test_default_propagation_is_background(gc, client):
    owner = await make_owner(client, "web")
    await client.create(obj(pod_doc("web-a", owner)))
    result = await client.delete("replicasets", "web", "default")
    assert result.deleted, "no finalizer: the owner goes at once"
    await wait_gone(client, "pods", "web-a")


async def test_foreground_keeps_the_owner_until_blocking_dependents_are_gone(gc, client):
    owner = await make_owner(client, "web")
    await client.create(obj(pod_doc("web-held", owner, finalizers=(HOLD,))))
    await client.create(obj(pod_doc("web-free", owner)))
    result = await client.delete("replicasets", "web", "default",
                                 propagation_policy="Foreground")
    assert not result.deleted and list(result.object.metadata.finalizers) == \
        ["foregroundDeletion"]
    await wait_gone(client, "pods", "web-free")

    async def held_is_being_deleted():
        pod = await client.get("pods", "web-held", "default")
        return pod if pod.metadata.deletion_timestamp else Seen("not being deleted yet")
    await wait_for(held_is_being_deleted, WAIT_S, interval_s=0.1)
    # A blocking dependent remains: the owner stays, being deleted.
    kept = await client.get("replicasets", "web", "default")
    assert kept.metadata.deletion_timestamp
    assert list(kept.metadata.finalizers) == ["foregroundDeletion"]

    await release(client, "web-held")
    await wait_gone(client, "pods", "web-held")
    await wait_gone(client, "replicasets", "web")


async def test_orphan_leaves_the_dependents_without_the_reference(gc, client):
    owner = await make_owner(client, "web")
    other = await make_owner(client, "other")
    await client.create(obj(pod_doc("web-a", owner)))
    await client.create(obj(pod_doc("web-b", owner, other)))
    await client.delete("replicasets", "web", "default", propagation_policy="Orphan")
    await wait_gone(client, "replicasets", "web")
    a = await client.get("pods", "web-a", "default")
    b = await client.get("pods", "web-b", "default")
    assert not a.metadata.deletion_timestamp and list(a.metadata.owner_references) == []
    assert [r.uid for r in b.metadata.owner_references] == [other.metadata.uid]


async def test_dangling_reference_from_the_start_is_cleaned_up(gc, client):
    ghost = obj(rs_doc("ghost", 0))
    ghost.metadata.uid = "0b8e5f4c-0000-4000-8000-000000000000"
    await client.create(obj(pod_doc("lonely", ghost)))
    await wait_gone(client, "pods", "lonely")


async def test_dependent_with_two_owners_survives_one_of_them(gc, client):
    a = await make_owner(client, "a")
    b = await make_owner(client, "b")
    await client.create(obj(pod_doc("shared", a, b)))
    await client.delete("replicasets", "a", "default")

    async def lost_a():
        pod = await client.get("pods", "shared", "default")
        names = [r.name for r in pod.metadata.owner_references]
        return pod if names == ["b"] else Seen(names)
    pod = await wait_for(lost_a, WAIT_S, interval_s=0.1)
    assert not pod.metadata.deletion_timestamp

    await client.delete("replicasets", "b", "default")
    await wait_gone(client, "pods", "shared")


async def test_owner_in_another_namespace_is_reported_and_treated_as_absent(gc, client):
    other_ns = f"gc-{secrets.token_hex(3)}"
    await client.create(obj({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": other_ns}}))
    elsewhere = await make_owner(client, "elsewhere", other_ns)
    pod = await client.create(obj(pod_doc("crossed", elsewhere)))
    await wait_gone(client, "pods", "crossed")

    async def event():
        events = (await client.list("events", "default")).items
        found = [e for e in events if e.reason == "OwnerRefInvalidNamespace"
                 and e.involved_object.uid == pod.metadata.uid]
        return found[0] if found else Seen([e.reason for e in events])
    got = await wait_for(event, WAIT_S, interval_s=0.1)
    assert got.type == "Warning" and got.source.component == "garbage-collector-controller"
    assert got.message == (
        f"ownerRef [apps/v1/ReplicaSet, namespace: default, name: elsewhere, uid: "
        f'{elsewhere.metadata.uid}] does not exist in namespace "default"')
    assert await get_or_none(client, "replicasets", "elsewhere", other_ns) is not None


@pytest.mark.parametrize("policy", ["Background", "Foreground", "Orphan"])
async def test_deletions_asked_for_while_it_was_down_are_finished_when_it_starts(
        tmp_path, apiserver, client, policy):
    owner = await make_owner(client, "web")
    await client.create(obj(pod_doc("web-a", owner)))
    await client.delete("replicasets", "web", "default", propagation_policy=policy)
    proc = await ControllerManagerProc(tmp_path, apiserver.address,
                                       "--controllers", "garbagecollector").astart()
    try:
        await wait_gone(client, "replicasets", "web")
        if policy == "Orphan":
            pod = await client.get("pods", "web-a", "default")
            assert list(pod.metadata.owner_references) == []
        else:
            await wait_gone(client, "pods", "web-a")
    finally:
        await proc.astop()


def owned_doc(api_version: str, kind: str, name: str, owner, **rest) -> dict:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": owner.metadata.name,
                 "uid": owner.metadata.uid, "controller": True, "blockOwnerDeletion": True}]},
            **rest}


async def test_dependents_of_every_kind_go_with_their_owner(gc, client):
    sts = await client.create(obj({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"replicas": 0, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    dependents = [
        ("controllerrevisions", owned_doc("apps/v1", "ControllerRevision", "db-1", sts,
                                          revision=1, data={"spec": {}})),
        ("persistentvolumeclaims", owned_doc(
            "v1", "PersistentVolumeClaim", "data-db-0", sts,
            spec={"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                  "resources": {"requests": {"storage": "1Gi"}}})),
        ("configmaps", owned_doc("v1", "ConfigMap", "db-config", sts, data={"a": "1"})),
        ("secrets", owned_doc("v1", "Secret", "db-secret", sts)),
        ("services", owned_doc("v1", "Service", "db", sts,
                               spec={"clusterIP": "None", "selector": {"app": "db"},
                                     "ports": [{"port": 5432}]})),
        ("pods", pod_doc("db-0", sts, owner_kind="StatefulSet")),
    ]
    for _, doc in dependents:
        await client.create(obj(doc))
    await client.delete("statefulsets", "db", "default")
    for resource, doc in dependents:
        await wait_gone(client, resource, doc["metadata"]["name"])


async def test_a_job_deleted_without_a_policy_orphans_its_pods(gc, client):
    # batch/v1's default (Kubernetes' jobStrategy, "for backwards compatibility").
    job = await client.create(obj({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once", "namespace": "default"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "busybox"}]}}}}))
    await client.create(obj(pod_doc("once-x", job, owner_kind="Job",
                                    owner_api_version="batch/v1")))
    await client.delete("jobs", "once", "default")
    await wait_gone(client, "jobs", "once")
    pod = await client.get("pods", "once-x", "default")
    assert not pod.metadata.deletion_timestamp and list(pod.metadata.owner_references) == []
