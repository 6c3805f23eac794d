"""The controller-manager process on a real apiserver (no nodes: pods stay
unscheduled, which is all the ReplicaSet controller's counting needs): it
creates and deletes pods to match replicas, adopts and releases, writes
status, and a standby takes over when the leader dies."""
from __future__ import annotations

import pytest

from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def rs_doc(name: str, replicas: int, app: str = "web") -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


@pytest.fixture
async def cm(tmp_path, apiserver):
    proc = await ControllerManagerProc(tmp_path, apiserver.address,
                                       "--controllers", "replicaset").astart()
    try:
        yield proc
    finally:
        await proc.astop()


async def pods_of(client, app: str = "web") -> list:
    return [p for p in (await client.list("pods", "default", label_selector=f"app={app}")).items
            if not p.metadata.deletion_timestamp]


async def wait_count(client, n: int, app: str = "web") -> list:
    async def enough():
        pods = await pods_of(client, app)
        return pods if len(pods) == n else Seen(sorted(p.metadata.name for p in pods))
    return await wait_for(enough, WAIT_S, interval_s=0.1, message=f"{n} pods of {app}")


async def test_replicaset_creates_replaces_and_scales_down_its_pods(cm, client):
    rs = await client.create(obj(rs_doc("web", 3)))
    pods = await wait_count(client, 3)
    for pod in pods:
        ref = pod.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
            ("ReplicaSet", "web", rs.metadata.uid, True, True)
        assert pod.metadata.generate_name == "web-"

    await client.delete("pods", pods[0].metadata.name, "default", grace_period_s=0)
    replaced = await wait_count(client, 3)
    assert pods[0].metadata.name not in {p.metadata.name for p in replaced}

    async def status_says_three():
        got = await client.get("replicasets", "web", "default")
        return got if (got.status.replicas, got.status.fully_labeled_replicas,
                       got.status.observed_generation) == (3, 3, got.metadata.generation) \
            else Seen(str(got.status))
    await wait_for(status_says_three, WAIT_S)

    await client.patch("replicasets", "web", "default", patch={"spec": {"replicas": 1}})
    await wait_count(client, 1)


async def test_replicaset_adopts_a_matching_orphan_and_releases_a_relabelled_pod(cm, client):
    orphan = obj({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "orphan", "namespace": "default",
                               "labels": {"app": "adopt"}},
                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    await client.create(orphan)
    rs = await client.create(obj(rs_doc("adopter", 2, app="adopt")))
    pods = await wait_count(client, 2, app="adopt")
    adopted = next(p for p in pods if p.metadata.name == "orphan")
    assert adopted.metadata.owner_references[0].uid == rs.metadata.uid

    # Relabelled out of the selector: released (no owner) and replaced.
    await client.patch("pods", "orphan", "default",
                       patch={"metadata": {"labels": {"app": "elsewhere"}}})

    async def released():
        pod = await client.get("pods", "orphan", "default")
        return not pod.metadata.owner_references or Seen(str(pod.metadata.owner_references))
    await wait_for(released, WAIT_S)
    await wait_count(client, 2, app="adopt")


async def test_a_standby_takes_over_when_the_leader_is_killed(tmp_path, apiserver, client):
    a = await ControllerManagerProc(tmp_path, apiserver.address, "--controllers", "replicaset",
                                    name="cm-a").astart()
    b = None
    try:
        await client.create(obj(rs_doc("ha", 1, app="ha")))
        await wait_count(client, 1, app="ha")
        b = await ControllerManagerProc(tmp_path, apiserver.address, "--controllers",
                                        "replicaset", name="cm-b").astart()
        lease = await client.get("leases", "kube-controller-manager", "kube-system")
        assert lease.spec.holder_identity == "cm-a"
        await a.akill()
        await client.patch("replicasets", "ha", "default", patch={"spec": {"replicas": 3}})
        await wait_count(client, 3, app="ha")
        lease = await client.get("leases", "kube-controller-manager", "kube-system")
        assert lease.spec.holder_identity == "cm-b"
    finally:
        await a.astop()
        if b is not None:
            await b.astop()
