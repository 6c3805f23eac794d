"""The garbage collector in the real controller-manager process, alone
(`--controllers garbagecollector`: no ReplicaSet controller makes or takes
pods), on a real apiserver with no nodes. Owners are ReplicaSets and their
pods are made by hand with ownerReferences; unbound pods are deleted at once,
and a pod held by a finalizer of the test's own stands for a dependent that
takes its time to go. Each test starts its controller-manager against the
worker's shared etcd + apiserver (kubemu.testing) and works in a namespace of
its own."""
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
async def gc(tmp_path, kubemu_cluster):
    proc = await ControllerManagerProc(tmp_path, kubemu_cluster.address,
                                       "--controllers", "garbagecollector").astart()
    try:
        yield proc
    finally:
        await proc.astop()


def pod_doc(namespace: str, name: str, *owners, finalizers: tuple[str, ...] = (),
            owner_kind: str = "ReplicaSet",
            owner_api_version: str = "apps/v1") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "finalizers": list(finalizers),
                         "ownerReferences": [
                             {"apiVersion": owner_api_version, "kind": owner_kind,
                              "name": o.metadata.name, "uid": o.metadata.uid,
                              "controller": i == 0, "blockOwnerDeletion": True}
                             for i, o in enumerate(owners)]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def make_owner(client, namespace: str, name: str):
    doc = rs_doc(name, namespace, 0, app=name)
    return await client.create(obj(doc))


async def get_or_none(client, namespace: str, resource: str, name: str):
    try:
        return await client.get(resource, name, namespace)
    except errors.NotFound:
        return None


async def wait_gone(client, namespace: str, resource: str, name: str) -> None:
    async def gone():
        got = await get_or_none(client, namespace, resource, name)
        return True if got is None else Seen(
            {"deletionTimestamp": got.metadata.deletion_timestamp,
             "finalizers": list(got.metadata.finalizers),
             "ownerReferences": [r.name for r in got.metadata.owner_references]})
    await wait_for(gone, WAIT_S, interval_s=0.1, message=f"{resource}/{name} gone")


async def release(client, namespace: str, name: str) -> None:
    """Drop the test's finalizer from a pod (conditioned on what was read)."""
    pod = await client.get("pods", name, namespace)
    kept = [f for f in pod.metadata.finalizers if f != HOLD]
    del pod.metadata.finalizers[:]
    pod.metadata.finalizers.extend(kept)
    await client.update(pod)


async def test_background_deletion_deletes_the_dependents(gc, api, ns):
    owner = await make_owner(api, ns, "web")
    for name in ("web-a", "web-b"):
        await api.create(obj(pod_doc(ns, name, owner)))
    await api.delete("replicasets", "web", ns, propagation_policy="Background")
    for name in ("web-a", "web-b"):
        await wait_gone(api, ns, "pods", name)


async def test_default_propagation_is_background(gc, api, ns):
    owner = await make_owner(api, ns, "web")
    await api.create(obj(pod_doc(ns, "web-a", owner)))
    result = await api.delete("replicasets", "web", ns)
    assert result.deleted, "no finalizer: the owner goes at once"
    await wait_gone(api, ns, "pods", "web-a")


async def test_foreground_keeps_the_owner_until_blocking_dependents_are_gone(gc, api, ns):
    owner = await make_owner(api, ns, "web")
    await api.create(obj(pod_doc(ns, "web-held", owner, finalizers=(HOLD,))))
    await api.create(obj(pod_doc(ns, "web-free", owner)))
    result = await api.delete("replicasets", "web", ns,
                              propagation_policy="Foreground")
    assert not result.deleted and list(result.object.metadata.finalizers) == \
        ["foregroundDeletion"]
    await wait_gone(api, ns, "pods", "web-free")

    async def held_is_being_deleted():
        pod = await api.get("pods", "web-held", ns)
        return pod if pod.metadata.deletion_timestamp else Seen("not being deleted yet")
    await wait_for(held_is_being_deleted, WAIT_S, interval_s=0.1)
    # A blocking dependent remains: the owner stays, being deleted.
    kept = await api.get("replicasets", "web", ns)
    assert kept.metadata.deletion_timestamp
    assert list(kept.metadata.finalizers) == ["foregroundDeletion"]

    await release(api, ns, "web-held")
    await wait_gone(api, ns, "pods", "web-held")
    await wait_gone(api, ns, "replicasets", "web")


async def test_orphan_leaves_the_dependents_without_the_reference(gc, api, ns):
    owner = await make_owner(api, ns, "web")
    other = await make_owner(api, ns, "other")
    await api.create(obj(pod_doc(ns, "web-a", owner)))
    await api.create(obj(pod_doc(ns, "web-b", owner, other)))
    await api.delete("replicasets", "web", ns, propagation_policy="Orphan")
    await wait_gone(api, ns, "replicasets", "web")
    a = await api.get("pods", "web-a", ns)
    b = await api.get("pods", "web-b", ns)
    assert not a.metadata.deletion_timestamp and list(a.metadata.owner_references) == []
    assert [r.uid for r in b.metadata.owner_references] == [other.metadata.uid]


async def test_dangling_reference_from_the_start_is_cleaned_up(gc, api, ns):
    ghost = obj(rs_doc("ghost", ns, 0))
    ghost.metadata.uid = "0b8e5f4c-0000-4000-8000-000000000000"
    await api.create(obj(pod_doc(ns, "lonely", ghost)))
    await wait_gone(api, ns, "pods", "lonely")


async def test_dependent_with_two_owners_survives_one_of_them(gc, api, ns):
    a = await make_owner(api, ns, "a")
    b = await make_owner(api, ns, "b")
    await api.create(obj(pod_doc(ns, "shared", a, b)))
    await api.delete("replicasets", "a", ns)

    async def lost_a():
        pod = await api.get("pods", "shared", ns)
        names = [r.name for r in pod.metadata.owner_references]
        return pod if names == ["b"] else Seen(names)
    pod = await wait_for(lost_a, WAIT_S, interval_s=0.1)
    assert not pod.metadata.deletion_timestamp

    await api.delete("replicasets", "b", ns)
    await wait_gone(api, ns, "pods", "shared")


async def test_owner_in_another_namespace_is_reported_and_treated_as_absent(gc, api, ns):
    other_ns = f"gc-{secrets.token_hex(3)}"
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": other_ns}}))
    elsewhere = await make_owner(api, other_ns, "elsewhere")
    pod = await api.create(obj(pod_doc(ns, "crossed", elsewhere)))
    await wait_gone(api, ns, "pods", "crossed")

    async def event():
        events = (await api.list("events", ns)).items
        found = [e for e in events if e.reason == "OwnerRefInvalidNamespace"
                 and e.involved_object.uid == pod.metadata.uid]
        return found[0] if found else Seen([e.reason for e in events])
    got = await wait_for(event, WAIT_S, interval_s=0.1)
    assert got.type == "Warning" and got.source.component == "garbage-collector-controller"
    assert got.message == (
        f"ownerRef [apps/v1/ReplicaSet, namespace: {ns}, name: elsewhere, uid: "
        f'{elsewhere.metadata.uid}] does not exist in namespace "{ns}"')
    assert await get_or_none(api, other_ns, "replicasets", "elsewhere") is not None


@pytest.mark.parametrize("policy", ["Background", "Foreground", "Orphan"])
async def test_deletions_asked_for_while_it_was_down_are_finished_when_it_starts(
        tmp_path, kubemu_cluster, api, ns, policy):
    owner = await make_owner(api, ns, "web")
    await api.create(obj(pod_doc(ns, "web-a", owner)))
    await api.delete("replicasets", "web", ns, propagation_policy=policy)
    proc = await ControllerManagerProc(tmp_path, kubemu_cluster.address,
                                       "--controllers", "garbagecollector").astart()
    try:
        await wait_gone(api, ns, "replicasets", "web")
        if policy == "Orphan":
            pod = await api.get("pods", "web-a", ns)
            assert list(pod.metadata.owner_references) == []
        else:
            await wait_gone(api, ns, "pods", "web-a")
    finally:
        await proc.astop()


def owned_doc(namespace: str, api_version: str, kind: str, name: str, owner, **rest) -> dict:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": owner.metadata.name,
                 "uid": owner.metadata.uid, "controller": True, "blockOwnerDeletion": True}]},
            **rest}


async def test_dependents_of_every_kind_go_with_their_owner(gc, api, ns):
    sts = await api.create(obj({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": ns},
        "spec": {"replicas": 0, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    dependents = [
        ("controllerrevisions", owned_doc(ns, "apps/v1", "ControllerRevision", "db-1", sts,
                                          revision=1, data={"spec": {}})),
        ("persistentvolumeclaims", owned_doc(
            ns, "v1", "PersistentVolumeClaim", "data-db-0", sts,
            spec={"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                  "resources": {"requests": {"storage": "1Gi"}}})),
        ("configmaps", owned_doc(ns, "v1", "ConfigMap", "db-config", sts, data={"a": "1"})),
        ("secrets", owned_doc(ns, "v1", "Secret", "db-secret", sts)),
        ("services", owned_doc(ns, "v1", "Service", "db", sts,
                               spec={"clusterIP": "None", "selector": {"app": "db"},
                                     "ports": [{"port": 5432}]})),
        ("pods", pod_doc(ns, "db-0", sts, owner_kind="StatefulSet")),
    ]
    for _, doc in dependents:
        await api.create(obj(doc))
    await api.delete("statefulsets", "db", ns)
    for resource, doc in dependents:
        await wait_gone(api, ns, resource, doc["metadata"]["name"])


async def test_a_job_deleted_without_a_policy_orphans_its_pods(gc, api, ns):
    # batch/v1's default (Kubernetes' jobStrategy, "for backwards compatibility").
    job = await api.create(obj({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once", "namespace": ns},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "busybox"}]}}}}))
    await api.create(obj(pod_doc(ns, "once-x", job, owner_kind="Job",
                                 owner_api_version="batch/v1")))
    await api.delete("jobs", "once", ns)
    await wait_gone(api, ns, "jobs", "once")
    pod = await api.get("pods", "once-x", ns)
    assert not pod.metadata.deletion_timestamp and list(pod.metadata.owner_references) == []
