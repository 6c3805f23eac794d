"""The controller-manager process on a real apiserver (no nodes: pods stay
unscheduled, which is all the ReplicaSet controller's counting needs): it
creates and deletes pods to match replicas, adopts and releases, writes
status, and a standby takes over when the leader dies. Each test starts its
controller-manager against the worker's shared etcd + apiserver
(kubemu.testing) and works in a namespace of its own."""
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


def rs_doc(name: str, ns: str, replicas: int, app: str = "web") -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


@pytest.fixture
async def cm(tmp_path, kubemu_cluster):
    proc = await ControllerManagerProc(tmp_path, kubemu_cluster.address,
                                       "--controllers", "replicaset").astart()
    try:
        yield proc
    finally:
        await proc.astop()


async def pods_of(client, ns: str, app: str = "web") -> list:
    return [p for p in (await client.list("pods", ns, label_selector=f"app={app}")).items
            if not p.metadata.deletion_timestamp]


async def wait_count(client, ns: str, n: int, app: str = "web") -> list:
    async def enough():
        pods = await pods_of(client, ns, app)
        return pods if len(pods) == n else Seen(sorted(p.metadata.name for p in pods))
    return await wait_for(enough, WAIT_S, interval_s=0.1, message=f"{n} pods of {app}")


async def test_replicaset_creates_replaces_and_scales_down_its_pods(cm, api, ns):
    rs = await api.create(obj(rs_doc("web", ns, 3)))
    pods = await wait_count(api, ns, 3)
    for pod in pods:
        ref = pod.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
            ("ReplicaSet", "web", rs.metadata.uid, True, True)
        assert pod.metadata.generate_name == "web-"

    await api.delete("pods", pods[0].metadata.name, ns, grace_period_s=0)
    replaced = await wait_count(api, ns, 3)
    assert pods[0].metadata.name not in {p.metadata.name for p in replaced}

    async def status_says_three():
        got = await api.get("replicasets", "web", ns)
        return got if (got.status.replicas, got.status.fully_labeled_replicas,
                       got.status.observed_generation) == (3, 3, got.metadata.generation) \
            else Seen(str(got.status))
    await wait_for(status_says_three, WAIT_S)

    await api.patch("replicasets", "web", ns, patch={"spec": {"replicas": 1}})
    await wait_count(api, ns, 1)


async def test_replicaset_adopts_a_matching_orphan_and_releases_a_relabelled_pod(cm, api, ns):
    orphan = obj({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "orphan", "namespace": ns,
                               "labels": {"app": "adopt"}},
                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    await api.create(orphan)
    rs = await api.create(obj(rs_doc("adopter", ns, 2, app="adopt")))
    pods = await wait_count(api, ns, 2, app="adopt")
    adopted = next(p for p in pods if p.metadata.name == "orphan")
    assert adopted.metadata.owner_references[0].uid == rs.metadata.uid

    # Relabelled out of the selector: released (no owner) and replaced.
    await api.patch("pods", "orphan", ns,
                    patch={"metadata": {"labels": {"app": "elsewhere"}}})

    async def released():
        pod = await api.get("pods", "orphan", ns)
        return not pod.metadata.owner_references or Seen(str(pod.metadata.owner_references))
    await wait_for(released, WAIT_S)
    await wait_count(api, ns, 2, app="adopt")


async def test_a_standby_takes_over_when_the_leader_is_killed(tmp_path, kubemu_cluster, api,
                                                               ns):
    a = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                    "replicaset", name="cm-a").astart()
    b = None
    try:
        await api.create(obj(rs_doc("ha", ns, 1, app="ha")))
        await wait_count(api, ns, 1, app="ha")
        b = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                        "replicaset", name="cm-b").astart()
        lease = await api.get("leases", "kube-controller-manager", "kube-system")
        assert lease.spec.holder_identity == "cm-a"
        await a.akill()
        await api.patch("replicasets", "ha", ns, patch={"spec": {"replicas": 3}})
        await wait_count(api, ns, 3, app="ha")
        lease = await api.get("leases", "kube-controller-manager", "kube-system")
        assert lease.spec.holder_identity == "cm-b"
    finally:
        await a.astop()
        if b is not None:
            await b.astop()
