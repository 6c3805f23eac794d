"""The StatefulSet controller in the real controller-manager process on a real
apiserver, no nodes: pods stay unscheduled, and the test plays the kubelet by
writing pod status (Running and Ready) with update_status to step the
OrderedReady sequence. A watch checks, at every event, that web-i never
appears before web-(i-1) is Ready and that scale-down goes from the highest
ordinal down. Each test starts its controller-manager against the worker's
shared etcd + apiserver (kubemu.testing) and works in a namespace of its own."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from kubemu import timefmt
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def sts_doc(ns: str, name: str = "web", replicas: int = 3, *, policy: str = "OrderedReady",
            partition: int = 0, claims: bool = False) -> dict:
    container = {"name": "nginx", "image": "busybox", "command": ["sleep", "3600"]}
    spec = {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"partition": partition}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [container]}}}
    if claims:
        container["volumeMounts"] = [{"name": "www", "mountPath": "/www"}]
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


@pytest.fixture
async def cm(tmp_path, kubemu_cluster):
    proc = await ControllerManagerProc(tmp_path, kubemu_cluster.address,
                                       "--controllers", "statefulset").astart()
    try:
        yield proc
    finally:
        await proc.astop()


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


class OrderWatch:
    """Every pod event of one set, checked as it arrives (starting from the
    pods listed on entry): `created_early` names each pod created while its
    predecessor was missing or not Ready; `deleted_early` each pod that went
    (marked for deletion, or removed at once) while a higher ordinal was
    still there, which a scale-down never does (a rolling update and a pod
    deleted by hand do); `marked` lists, in order, each pod that went with
    the other pods that were not Ready at that moment."""

    def __init__(self, client, name: str, namespace: str, selector: str = ""):
        self.client, self.name, self.namespace = client, name, namespace
        self.selector = selector or f"app={name}"
        self.pods: dict[int, object] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.created_early: list[str] = []
        self.deleted_early: list[str] = []
        self.marked: list[tuple[str, list[str]]] = []
        self.task: asyncio.Task | None = None

    @property
    def violations(self) -> list[str]:
        return self.created_early + self.deleted_early

    def ordinal(self, pod) -> int:
        return int(pod.metadata.name.rsplit("-", 1)[1])

    def on(self, kind: str, pod) -> None:
        i = self.ordinal(pod)
        if kind == "ADDED":
            self.created.append(pod.metadata.name)
            before = self.pods.get(i - 1)
            if i > 0 and (before is None or not is_ready(before)):
                self.created_early.append(f"{pod.metadata.name} created before "
                                          f"{self.name}-{i - 1} was Ready")
            self.pods[i] = pod
        elif kind == "MODIFIED":
            old = self.pods.get(i)
            if pod.metadata.deletion_timestamp and (old is None or
                                                    not old.metadata.deletion_timestamp):
                self._going(pod, i)
            self.pods[i] = pod
        elif kind == "DELETED":
            self.deleted.append(pod.metadata.name)
            old = self.pods.pop(i, None)
            if old is None or not old.metadata.deletion_timestamp:
                self._going(pod, i)

    def _going(self, pod, i: int) -> None:
        others = [p for j, p in self.pods.items() if j != i]
        self.marked.append((pod.metadata.name,
                            sorted(p.metadata.name for p in others if not is_ready(p))))
        higher = [j for j in self.pods if j > i]
        if higher:
            self.deleted_early.append(f"{pod.metadata.name} deleted while "
                                      f"{self.name}-{max(higher)} exists")

    async def run(self, resource_version: str) -> None:
        events = self.client.watch("pods", self.namespace, resource_version=resource_version,
                                   label_selector=self.selector)
        async with contextlib.aclosing(events):
            async for event in events:
                self.on(event.type, event.object)

    async def __aenter__(self) -> "OrderWatch":
        listed = await self.client.list("pods", self.namespace, label_selector=self.selector)
        self.pods = {self.ordinal(p): p for p in listed.items}
        self.task = asyncio.get_running_loop().create_task(
            self.run(listed.resource_version))
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # the watch failed: say why
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def pods_of(client, ns: str, app: str = "web") -> dict[str, object]:
    listed = await client.list("pods", ns, label_selector=f"app={app}")
    return {p.metadata.name: p for p in listed.items if not p.metadata.deletion_timestamp}


async def wait_names(client, ns: str, names: list[str], app: str = "web") -> dict[str, object]:
    async def exactly():
        pods = await pods_of(client, ns, app)
        return [pods] if sorted(pods) == sorted(names) else Seen(sorted(pods))
    (pods,) = await wait_for(exactly, WAIT_S, interval_s=0.05, message=f"pods {names}")
    return pods


async def make_ready(client, ns: str, name: str) -> None:
    """Play the kubelet: the pod is Running and Ready."""
    pod = await client.get("pods", name, ns)
    pod.status.phase = "Running"
    now = timefmt.rfc3339()
    for type_ in ("Ready", "ContainersReady"):
        cond = pod.status.conditions.add()
        cond.type, cond.status, cond.last_transition_time = type_, "True", now
    await client.update_status(pod)


async def status_of(client, ns: str, name: str = "web"):
    return (await client.get("statefulsets", name, ns)).status


async def wait_status(client, ns: str, check, name: str = "web"):
    async def ok():
        status = await status_of(client, ns, name)
        return status if check(status) else Seen(str(status))
    return await wait_for(ok, WAIT_S, interval_s=0.05, message=f"status of {name}")


async def test_ordered_ready_starts_in_order_and_scales_down_from_the_top(cm, api, ns):
    async with OrderWatch(api, "web", ns) as watch:
        sts = await api.create(obj(sts_doc(ns)))
        for i in range(3):
            pods = await wait_names(api, ns, [f"web-{j}" for j in range(i + 1)])
            # Only web-i was added; web-(i+1) waits for it to be Ready.
            pod = pods[f"web-{i}"]
            assert pod.spec.hostname == f"web-{i}" and pod.spec.subdomain == "nginx"
            assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
            assert pod.metadata.labels["apps.kubernetes.io/pod-index"] == str(i)
            ref = pod.metadata.owner_references[0]
            assert (ref.kind, ref.uid, ref.controller) == ("StatefulSet", sts.metadata.uid, True)
            await make_ready(api, ns, f"web-{i}")
        status = await wait_status(api, ns, lambda s: s.ready_replicas == 3)
        assert (status.replicas, status.current_replicas, status.updated_replicas,
                status.available_replicas) == (3, 3, 3, 3)
        assert status.current_revision == status.update_revision
        assert status.observed_generation == 1
        revisions = (await api.list("controllerrevisions", ns)).items
        assert [(r.metadata.name, r.revision) for r in revisions] == \
            [(status.update_revision, 1)]
        pods = await pods_of(api, ns)
        assert {p.metadata.labels["controller-revision-hash"] for p in pods.values()} == \
            {status.update_revision}

        await api.patch("statefulsets", "web", ns, patch={"spec": {"replicas": 1}})
        await wait_names(api, ns, ["web-0"])
        await wait_status(api, ns, lambda s: (s.replicas, s.ready_replicas) == (1, 1))
        assert watch.created == ["web-0", "web-1", "web-2"]
        assert watch.deleted == ["web-2", "web-1"]
        assert watch.violations == []

    events = [(e.reason, e.message) for e in (await api.list("events", ns)).items
              if e.involved_object.name == "web"]
    assert ("SuccessfulCreate", "create Pod web-0 in StatefulSet web successful") in events
    assert ("SuccessfulDelete", "delete Pod web-2 in StatefulSet web successful") in events


async def test_a_failed_pod_is_deleted_and_recreated(cm, api, ns):
    await api.create(obj(sts_doc(ns, "db", 2)))
    await wait_names(api, ns, ["db-0"], app="db")
    await make_ready(api, ns, "db-0")
    first = (await wait_names(api, ns, ["db-0", "db-1"], app="db"))["db-1"]
    pod = await api.get("pods", "db-1", ns)
    pod.status.phase = "Failed"
    await api.update_status(pod)

    async def recreated():
        pods = await pods_of(api, ns, "db")
        again = pods.get("db-1")
        return again if again is not None and again.metadata.uid != first.metadata.uid \
            else Seen(sorted(pods))
    await wait_for(recreated, WAIT_S, interval_s=0.05, message="db-1 recreated")


async def test_parallel_creates_every_ordinal_at_once(cm, api, ns):
    await api.create(obj(sts_doc(ns, "par", 3, policy="Parallel")))
    await wait_names(api, ns, ["par-0", "par-1", "par-2"], app="par")
    await api.patch("statefulsets", "par", ns, patch={"spec": {"replicas": 0}})
    await wait_names(api, ns, [], app="par")


async def test_rolling_update_with_partition_then_all(cm, api, ns):
    await api.create(obj(sts_doc(ns, "ru", 3, partition=1)))
    for i in range(3):
        await wait_names(api, ns, [f"ru-{j}" for j in range(i + 1)], app="ru")
        await make_ready(api, ns, f"ru-{i}")
    old = (await wait_status(api, ns, lambda s: s.ready_replicas == 3, "ru")).current_revision

    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}}}
    await api.patch("statefulsets", "ru", ns, patch=patch)

    async def at_revision(name: str, rev_is_new: bool):
        async def check():
            pods = await pods_of(api, ns, "ru")
            pod = pods.get(name)
            rev = pod.metadata.labels["controller-revision-hash"] if pod else ""
            return pod if pod is not None and (rev != old) == rev_is_new else Seen(rev)
        return await wait_for(check, WAIT_S, interval_s=0.05, message=f"{name} revision")

    new2 = await at_revision("ru-2", True)
    assert new2.spec.containers[0].image == "busybox:1.36"
    await make_ready(api, ns, "ru-2")
    await at_revision("ru-1", True)
    await make_ready(api, ns, "ru-1")
    status = await wait_status(api, ns, lambda s: (s.updated_replicas, s.ready_replicas) == (2, 3),
                               "ru")
    assert status.current_revision == old and status.update_revision != old
    assert (await api.get("pods", "ru-0", ns)).metadata.labels[
        "controller-revision-hash"] == old

    await api.patch("statefulsets", "ru", ns,
                    patch={"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})
    await at_revision("ru-0", True)
    await make_ready(api, ns, "ru-0")
    status = await wait_status(
        api, ns, lambda s: s.current_revision == s.update_revision and s.ready_replicas == 3,
        "ru")
    assert status.current_replicas == 3
    revisions = sorted((r.revision, r.metadata.name)
                       for r in (await api.list("controllerrevisions", ns)).items
                       if r.metadata.name.startswith("ru-"))
    assert revisions == [(1, old), (2, status.update_revision)]


async def test_claims_are_created_before_their_pods_and_kept(cm, api, ns):
    await api.create(obj(sts_doc(ns, "vol", 2, claims=True)))
    pods = await wait_names(api, ns, ["vol-0"], app="vol")
    claim = await api.get("persistentvolumeclaims", "www-vol-0", ns)
    assert claim.metadata.creation_timestamp <= pods["vol-0"].metadata.creation_timestamp
    assert not claim.metadata.owner_references
    assert dict(claim.metadata.labels) == {"app": "vol"}
    (volume,) = [v for v in pods["vol-0"].spec.volumes if v.name == "www"]
    assert volume.persistent_volume_claim.claim_name == "www-vol-0"
    await api.patch("statefulsets", "vol", ns, patch={"spec": {"replicas": 0}})
    await wait_names(api, ns, [], app="vol")
    await api.get("persistentvolumeclaims", "www-vol-0", ns)  # retained


def image_patch(image: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": image, "command": ["sleep", "3600"]}]}}}}


async def revisions_of(api, ns: str, name: str) -> dict[str, int]:
    return {r.metadata.name: r.revision
            for r in (await api.list("controllerrevisions", ns)).items
            if r.metadata.owner_references and r.metadata.owner_references[0].name == name}


async def test_on_delete_history_limit_and_rollback(cm, api, ns):
    doc = sts_doc(ns, "od", 1)
    doc["spec"]["updateStrategy"] = {"type": "OnDelete"}
    doc["spec"]["revisionHistoryLimit"] = 0
    await api.create(obj(doc))
    first = (await wait_names(api, ns, ["od-0"], app="od"))["od-0"]
    await make_ready(api, ns, "od-0")
    r1 = (await wait_status(api, ns, lambda s: s.ready_replicas == 1, "od")).update_revision

    await api.patch("statefulsets", "od", ns, patch=image_patch("busybox:v2"))
    await wait_status(api, ns, lambda s: s.update_revision != r1, "od")
    await api.patch("statefulsets", "od", ns, patch=image_patch("busybox:v3"))
    r3 = (await wait_status(api, ns, lambda s: s.observed_generation == 3, "od")).update_revision

    # OnDelete: the pod keeps its template; the unused v2 revision is dropped
    # (limit 0), the pod's and the update revision stay.
    async def only_live():
        got = await revisions_of(api, ns, "od")
        return got if got == {r1: 1, r3: 3} else Seen(got)
    await wait_for(only_live, WAIT_S, interval_s=0.05, message="history truncated")
    pod = (await pods_of(api, ns, "od"))["od-0"]
    assert pod.metadata.uid == first.metadata.uid
    assert pod.metadata.labels["controller-revision-hash"] == r1

    # Deleted by hand: recreated from the update revision.
    await api.delete("pods", "od-0", ns)

    async def recreated_at_r3():
        pod = (await pods_of(api, ns, "od")).get("od-0")
        rev = pod.metadata.labels["controller-revision-hash"] if pod else ""
        return pod if rev == r3 else Seen(rev)
    pod = await wait_for(recreated_at_r3, WAIT_S, interval_s=0.05, message="od-0 at v3")
    assert pod.spec.containers[0].image == "busybox:v3"

    # Back to the first template: its revision is renumbered, not copied.
    await api.patch("statefulsets", "od", ns, patch=image_patch("busybox"))
    status = await wait_status(api, ns, lambda s: s.observed_generation == 4, "od")
    assert status.update_revision == r1

    async def renumbered():
        got = await revisions_of(api, ns, "od")
        return got if got.get(r1) == 4 else Seen(got)
    await wait_for(renumbered, WAIT_S, interval_s=0.05, message="r1 renumbered")


async def test_retention_policy_delete_gives_claims_owners(cm, api, ns):
    doc = sts_doc(ns, "rp", 2, claims=True)
    doc["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete",
                                                           "whenScaled": "Delete"}
    sts = await api.create(obj(doc))
    await wait_names(api, ns, ["rp-0"], app="rp")
    await make_ready(api, ns, "rp-0")
    pod1 = (await wait_names(api, ns, ["rp-0", "rp-1"], app="rp"))["rp-1"]
    await make_ready(api, ns, "rp-1")
    await api.patch("statefulsets", "rp", ns, patch={"spec": {"replicas": 1}})
    await wait_names(api, ns, ["rp-0"], app="rp")
    claim0 = await api.get("persistentvolumeclaims", "www-rp-0", ns)
    claim1 = await api.get("persistentvolumeclaims", "www-rp-1", ns)
    assert [(r.kind, r.uid, r.controller) for r in claim0.metadata.owner_references] == \
        [("StatefulSet", sts.metadata.uid, False)]
    assert [(r.kind, r.uid) for r in claim1.metadata.owner_references] == \
        [("StatefulSet", sts.metadata.uid), ("Pod", pod1.metadata.uid)]


async def test_a_new_controller_manager_takes_the_sequence_up_where_the_killed_one_left_it(
        tmp_path, kubemu_cluster, api, ns):
    a = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                    "statefulset", name="cm-a").astart()
    b = None
    try:
        async with OrderWatch(api, "ha", ns) as watch:
            await api.create(obj(sts_doc(ns, "ha", 3)))
            await wait_names(api, ns, ["ha-0"], app="ha")
            await a.akill()
            await make_ready(api, ns, "ha-0")
            b = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                            "statefulset", name="cm-b").astart()
            await wait_names(api, ns, ["ha-0", "ha-1"], app="ha")
            await make_ready(api, ns, "ha-1")
            await wait_names(api, ns, ["ha-0", "ha-1", "ha-2"], app="ha")
            # The list can see ha-2 before the watch delivers its ADDED.
            await wait_for(lambda: len(watch.created) >= 3 or Seen(watch.created), 10.0,
                           message="the watch saw three pods created")
            assert watch.created == ["ha-0", "ha-1", "ha-2"]
            assert watch.violations == []
    finally:
        await a.astop()
        if b is not None:
            await b.astop()
