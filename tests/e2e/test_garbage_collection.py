"""Cascading deletion on a real cluster (the whole control plane, one node):
an owner's deletion with propagationPolicy Background removes its dependents,
Foreground removes the owner last, Orphan leaves the dependents running
without their ownerReference.

The owner is a ReplicaSet (its controller makes real pods on the node), then
a Deployment (Deployment -> ReplicaSet -> pods, all made by the controllers).

Ordering is checked on watch events: one watch per resource, all from one
resourceVersion, merged by resourceVersion (etcd's revisions are global, so
this is the order in which the changes happened)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (ClusterThread, Seen, busybox, obj, running, serving,
                                    workload_control_plane)

WAIT_S = 60.0

SLEEPER = "trap 'exit 0' TERM; while true; do sleep 1; done"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("gc-home"), nodes=1,
                                     kinds=workload_control_plane()))


def template(app: str) -> dict:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"terminationGracePeriodSeconds": 2,
                     "containers": [busybox(SLEEPER)]}}


def rs_doc(name: str, ns: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": template(name)}}


def deployment_doc(name: str, ns: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": template(name)}}


async def running_pods(api: Client, ns: str, app: str, n: int) -> list:
    from kubemu.api import codec

    async def all_running():
        pods = [p for p in (await api.list("pods", ns, label_selector=f"app={app}")).items
                if not p.metadata.deletion_timestamp]
        ok = len(pods) == n and all(running(codec.to_dict(p)) for p in pods)
        return pods if ok else Seen([(p.metadata.name, p.status.phase) for p in pods])
    return await wait_for(all_running, WAIT_S, interval_s=0.2, message=f"{n} running pods")


async def wait_gone(api: Client, resource: str, ns: str, name: str) -> None:
    async def gone():
        try:
            got = await api.get(resource, name, ns)
        except errors.NotFound:
            return True
        return Seen({"deletionTimestamp": got.metadata.deletion_timestamp,
                     "finalizers": list(got.metadata.finalizers)})
    await wait_for(gone, WAIT_S, interval_s=0.2, message=f"{resource}/{name} gone")


async def no_pods(api: Client, ns: str, app: str) -> None:
    async def none_left():
        pods = (await api.list("pods", ns, label_selector=f"app={app}")).items
        return True if not pods else Seen([p.metadata.name for p in pods])
    await wait_for(none_left, WAIT_S, interval_s=0.2, message=f"pods of {app} gone")


@dataclasses.dataclass(frozen=True)
class Change:
    rv: int
    resource: str
    type: str
    name: str
    uid: str
    deleting: bool
    finalizers: tuple[str, ...]


class Watches:
    """Every change of some resources of a namespace after one resourceVersion."""

    def __init__(self, api: Client, ns: str, resources: tuple[str, ...]):
        self.api, self.ns, self.resources = api, ns, resources
        self.changes: list[Change] = []
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        rv = (await self.api.list("pods", self.ns)).resource_version
        self._tasks = [asyncio.get_running_loop().create_task(self._watch(r, rv))
                       for r in self.resources]

    async def _watch(self, resource: str, rv: str) -> None:
        events = self.api.watch(resource, self.ns, resource_version=rv, timeout_s=WAIT_S * 2)
        async with contextlib.aclosing(events):
            async for event in events:
                meta = event.object.metadata
                self.changes.append(Change(int(meta.resource_version), resource, event.type,
                                           meta.name, meta.uid, bool(meta.deletion_timestamp),
                                           tuple(meta.finalizers)))

    def deleted(self, resource: str, uid: str) -> Change | None:
        return next((c for c in self.changes
                     if c.resource == resource and c.uid == uid and c.type == "DELETED"), None)

    async def wait_deleted(self, resource: str, uids: set[str]) -> None:
        async def all_deleted():
            left = {u for u in uids if self.deleted(resource, u) is None}
            return True if not left else Seen(sorted(left))
        await wait_for(all_deleted, WAIT_S, interval_s=0.1, message=f"{resource} DELETED")

    def in_order(self) -> list[Change]:
        return sorted(self.changes, key=lambda c: c.rv)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def assert_owner_deleted_last(changes: list[Change], owner_resource: str, owner_uid: str,
                              dependent_resource: str, dependent_uids: set[str]) -> None:
    """At every event (in resourceVersion order): once the owner is being
    deleted it keeps its foregroundDeletion finalizer, and it is DELETED only
    after every blocking dependent."""
    live = set(dependent_uids)
    owner_deleting = False
    for change in changes:
        if change.resource == dependent_resource and change.uid in live \
                and change.type == "DELETED":
            live.discard(change.uid)
        if change.resource != owner_resource or change.uid != owner_uid:
            continue
        if change.type == "DELETED":
            assert not live, f"owner deleted at rv {change.rv} while dependents live: {live}"
            assert owner_deleting, "the owner was never seen waiting for its dependents"
            return
        if change.deleting:
            owner_deleting = True
            assert "foregroundDeletion" in change.finalizers, change
    raise AssertionError("the owner's deletion was never seen")


# ---------------------------------------------------------------- ReplicaSet owner


async def test_background_deletion_of_a_replicaset_removes_its_pods(api, ns):
    rs = await api.create(obj(rs_doc("bg", ns)))
    pods = await running_pods(api, ns, "bg", 2)
    assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in pods)
    result = await api.delete("replicasets", "bg", ns, propagation_policy="Background")
    assert result.deleted
    await no_pods(api, ns, "bg")


async def test_foreground_deletion_of_a_replicaset_deletes_it_last(api, ns):
    rs = await api.create(obj(rs_doc("fg", ns)))
    pods = await running_pods(api, ns, "fg", 2)
    watches = Watches(api, ns, ("replicasets", "pods"))
    await watches.start()
    try:
        result = await api.delete("replicasets", "fg", ns, propagation_policy="Foreground")
        assert not result.deleted and result.object.metadata.deletion_timestamp
        await watches.wait_deleted("replicasets", {rs.metadata.uid})
        await watches.wait_deleted("pods", {p.metadata.uid for p in pods})
    finally:
        await watches.stop()
    assert_owner_deleted_last(watches.in_order(), "replicasets", rs.metadata.uid,
                              "pods", {p.metadata.uid for p in pods})
    await no_pods(api, ns, "fg")


async def test_orphan_deletion_of_a_replicaset_leaves_its_pods_running(api, ns):
    await api.create(obj(rs_doc("orph", ns)))
    pods = await running_pods(api, ns, "orph", 2)
    await api.delete("replicasets", "orph", ns, propagation_policy="Orphan")
    await wait_gone(api, "replicasets", ns, "orph")
    left = await running_pods(api, ns, "orph", 2)
    assert {p.metadata.uid for p in left} == {p.metadata.uid for p in pods}
    assert all(not p.metadata.owner_references for p in left)


# ---------------------------------------------------------------- Deployment owner


async def deployment_with_pods(api: Client, name: str, ns: str):
    deploy = await api.create(obj(deployment_doc(name, ns)))
    pods = await running_pods(api, ns, name, 2)

    async def its_replicaset():
        sets = [r for r in (await api.list("replicasets", ns)).items
                if any(o.uid == deploy.metadata.uid for o in r.metadata.owner_references)]
        return sets if sets else Seen("no ReplicaSet yet")
    return deploy, await wait_for(its_replicaset, WAIT_S, interval_s=0.2), pods


async def test_background_deletion_of_a_deployment_removes_replicasets_and_pods(api, ns):
    _, sets, _ = await deployment_with_pods(api, "dbg", ns)
    await api.delete("deployments", "dbg", ns, propagation_policy="Background")
    for rs in sets:
        await wait_gone(api, "replicasets", ns, rs.metadata.name)
    await no_pods(api, ns, "dbg")


async def test_foreground_deletion_of_a_deployment_deletes_it_last(api, ns):
    deploy, sets, pods = await deployment_with_pods(api, "dfg", ns)
    watches = Watches(api, ns, ("deployments", "replicasets", "pods"))
    await watches.start()
    try:
        await api.delete("deployments", "dfg", ns, propagation_policy="Foreground")
        await watches.wait_deleted("deployments", {deploy.metadata.uid})
    finally:
        await watches.stop()
    changes = watches.in_order()
    # The Deployment goes after its ReplicaSets, each of which (deleted in the
    # foreground in turn, having dependents) goes after its pods.
    assert_owner_deleted_last(changes, "deployments", deploy.metadata.uid,
                              "replicasets", {r.metadata.uid for r in sets})
    for rs in sets:
        assert_owner_deleted_last(changes, "replicasets", rs.metadata.uid, "pods",
                                  {p.metadata.uid for p in pods
                                   if p.metadata.owner_references[0].uid == rs.metadata.uid})
    await no_pods(api, ns, "dfg")


async def test_orphan_deletion_of_a_deployment_leaves_its_pods_running(api, ns):
    _, sets, pods = await deployment_with_pods(api, "dor", ns)
    await api.delete("deployments", "dor", ns, propagation_policy="Orphan")
    await wait_gone(api, "deployments", ns, "dor")
    for rs in sets:
        got = await api.get("replicasets", rs.metadata.name, ns)
        assert not got.metadata.owner_references and not got.metadata.deletion_timestamp
    left = await running_pods(api, ns, "dor", 2)
    assert {p.metadata.uid for p in left} == {p.metadata.uid for p in pods}
    for rs in sets:  # leave nothing that would recreate pods after the test
        await api.delete("replicasets", rs.metadata.name, ns, propagation_policy="Orphan")
