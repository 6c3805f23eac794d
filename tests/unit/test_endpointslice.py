"""The EndpointSlice controller: the reconcile (what slices a Service's pods
make: conditions, ports per pod, hostname, the cap, the placeholder, the
churn), then syncs on the memory-backed registry with hand-fed informers
(tests/unit/controller_harness.py): no writes on a resync, a lagging cache
never makes duplicates, a slice edited or deleted by someone else comes back."""
from __future__ import annotations

import pytest

from controller_manager import controllerutil as cu
from controller_manager import endpointslice as es
from controller_manager.base import Options
from kubemu.api import errors
from kubemu.api.v1 import discovery_pb2
from tests.unit.cli_memclient import MemClient
from tests.unit.controller_harness import ControllerHarness
from tests.unit.svc_builders import pod, svc

SVC_UID = "svc-uid"


def service(**kw):
    kw.setdefault("uid", SVC_UID)
    return svc(**kw)


def endpoints_of(plan_slices) -> dict[str, tuple]:
    """pod name -> (addresses, ready, serving, terminating, hostname, node)."""
    out = {}
    for s in plan_slices:
        for ep in s.endpoints:
            out[ep.target_ref.name] = (
                list(ep.addresses), ep.conditions.ready, ep.conditions.serving,
                ep.conditions.terminating, ep.hostname if ep.HasField("hostname") else None,
                ep.node_name)
    return out


CONDITION_CASES = [
    # id, service kwargs, pod kwargs, expected (ready, serving, terminating) or None: left out
    ("ready", {}, {}, (True, True, False)),
    ("not-ready", {}, {"ready": False}, (False, False, False)),
    ("terminating-ready", {}, {"terminating": True}, (False, True, True)),
    ("terminating-not-ready", {}, {"terminating": True, "ready": False}, (False, False, True)),
    ("publish-not-ready", {"publish_not_ready": True}, {"ready": False}, (True, False, False)),
    ("publish-terminating", {"publish_not_ready": True}, {"terminating": True},
     (True, True, True)),
    ("no-ip", {}, {"ip": None}, None),
    ("succeeded", {}, {"phase": "Succeeded"}, None),
    ("failed", {}, {"phase": "Failed", "ready": False}, None),
]


@pytest.mark.parametrize("svc_kw,pod_kw,expected", [c[1:] for c in CONDITION_CASES],
                         ids=[c[0] for c in CONDITION_CASES])
def test_endpoint_conditions(svc_kw, pod_kw, expected):
    plan = es.reconcile(service(**svc_kw), [pod("web-1", **pod_kw)], [], 100)
    got = endpoints_of(plan.create)
    if expected is None:
        assert got == {}
        assert len(plan.create) == 1 and not plan.create[0].endpoints  # the placeholder
    else:
        assert got["web-1"][1:4] == expected


def test_slice_shape_labels_owner_ports_and_endpoint_fields():
    s = service(labels={"team": "a", "kubernetes.io/service-name": "spoof"})
    plan = es.reconcile(s, [pod("web-1", ip="127.2.1.5")], [], 100)
    (created,) = plan.create
    assert created.metadata.generate_name == "web-"
    assert created.address_type == "IPv4"
    assert dict(created.metadata.labels) == {
        "team": "a", "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    (ref,) = created.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == (
        "Service", "web", SVC_UID, True, True)
    assert [(p.name, p.protocol, p.port) for p in created.ports] == [("http", "TCP", 8080)]
    (ep,) = created.endpoints
    assert list(ep.addresses) == ["127.2.1.5"]
    assert (ep.target_ref.kind, ep.target_ref.name, ep.target_ref.uid) == (
        "Pod", "web-1", "uid-web-1")
    assert ep.node_name == "node-1"
    assert not ep.HasField("hostname")


@pytest.mark.parametrize("cluster_ip,headless_label", [("None", True), ("127.1.0.9", False)],
                         ids=["headless", "clusterip"])
def test_headless_label(cluster_ip, headless_label):
    plan = es.reconcile(service(cluster_ip=cluster_ip), [pod("web-1")], [], 100)
    assert (cu.LABEL_HEADLESS in plan.create[0].metadata.labels) is headless_label


SELECTOR_CASES = [
    ("matches", {"app": "web"}, {"app": "web", "tier": "x"}, True),
    ("all-pairs", {"app": "web", "tier": "x"}, {"app": "web"}, False),
    ("other-value", {"app": "web"}, {"app": "db"}, False),
]


@pytest.mark.parametrize("selector,pod_labels,selected", [c[1:] for c in SELECTOR_CASES],
                         ids=[c[0] for c in SELECTOR_CASES])
async def test_selector_matching_in_sync_and_in_the_pod_index(selector, pod_labels, selected):
    h = ControllerHarness(es.EndpointSliceController, await MemClient.new())
    try:
        s = service(selector=selector)
        h.cache("services", [s])
        h.cache("pods", [pod("web-1", labels=pod_labels)])
        h.cache("endpointslices", [])
        assert cu.services_selecting(h.controller.services, "default", pod_labels) == (
            {"default/web"} if selected else set())
        await h.controller.sync("default/web")
        (created,) = (await h.client.list("endpointslices", "default")).items
        assert len(created.endpoints) == (1 if selected else 0)
    finally:
        await h.stop()


@pytest.mark.parametrize("hostname,subdomain,expected", [
    ("web-0", "web", "web-0"), ("web-0", "other", None), ("", "web", None)],
    ids=["statefulset-pod", "other-subdomain", "no-hostname"])
def test_hostname_only_under_its_subdomain(hostname, subdomain, expected):
    plan = es.reconcile(service(cluster_ip="None"),
                        [pod("web-0", hostname=hostname, subdomain=subdomain)], [], 100)
    assert endpoints_of(plan.create)["web-0"][4] == expected


def test_named_target_port_resolved_per_pod_groups_pods_by_port_set():
    s = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [pod("a", ip="127.2.1.1", container_ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", ip="127.2.1.2", container_ports=[{"name": "web", "containerPort": 8080}]),
            pod("c", ip="127.2.1.3", container_ports=[{"name": "web", "containerPort": 9090}]),
            pod("d", ip="127.2.1.4", container_ports=[{"name": "other", "containerPort": 1}])]
    plan = es.reconcile(s, pods, [], 100)
    by_port = {tuple(p.port for p in sl.ports): sorted(e.target_ref.name for e in sl.endpoints)
               for sl in plan.create}
    # d lacks the name: its slice has no ports (as Kubernetes').
    assert by_port == {(8080,): ["a", "b"], (9090,): ["c"], (): ["d"]}


@pytest.mark.parametrize("pods,cap,sizes", [
    (250, 100, [100, 100, 50]), (100, 100, [100]), (7, 3, [3, 3, 1])],
    ids=["250-pods", "exactly-full", "small-cap"])
def test_slices_are_capped(pods, cap, sizes):
    plan = es.reconcile(service(), [pod(f"web-{i:03d}", ip=f"127.2.{i // 250}.{i % 250 + 1}")
                                    for i in range(pods)], [], cap)
    assert sorted((len(s.endpoints) for s in plan.create), reverse=True) == sizes


def _materialize(plan, existing=()):
    """The slices after `plan`, with names for the created ones."""
    by_name = {s.metadata.name: s for s in existing}
    for s in plan.delete:
        by_name.pop(s.metadata.name)
    for s in plan.update:
        by_name[s.metadata.name] = s
    for i, s in enumerate(plan.create):
        named = discovery_pb2.EndpointSlice()
        named.CopyFrom(s)
        named.metadata.name = f"web-new{len(by_name)}-{i}"
        by_name[named.metadata.name] = named
    return list(by_name.values())


def test_no_churn_when_nothing_changed_and_updates_in_place():
    pods = [pod(f"web-{i:03d}", ip=f"127.2.1.{i + 1}") for i in range(150)]
    slices = _materialize(es.reconcile(service(), pods, [], 100))
    assert es.reconcile(service(), pods, slices, 100).empty()
    # One pod turns not ready: exactly its slice is updated, nothing created.
    pods[7] = pod("web-007", ip="127.2.1.8", ready=False)
    plan = es.reconcile(service(), pods, slices, 100)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert endpoints_of(plan.update)["web-007"][1] is False
    # One pod goes, one comes: the new one takes the freed place in the same slice.
    slices = _materialize(plan, slices)
    pods = pods[1:] + [pod("web-new", ip="127.2.2.1")]
    plan = es.reconcile(service(), pods, slices, 100)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert {"web-new"} <= set(endpoints_of(plan.update)) and "web-000" not in endpoints_of(
        plan.update)


def test_placeholder_when_no_pods_and_kept():
    plan = es.reconcile(service(), [], [], 100)
    (placeholder,) = plan.create
    assert not placeholder.endpoints and not placeholder.ports
    slices = _materialize(plan)
    assert es.reconcile(service(), [], slices, 100).empty()
    # Pods come: the placeholder is reused (an update), not deleted and recreated.
    plan = es.reconcile(service(), [pod("web-1")], slices, 100)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert [p.port for p in plan.update[0].ports] == [8080]


def test_slices_of_a_former_service_of_that_name_are_deleted():
    old = _materialize(es.reconcile(service(uid="old-uid"), [pod("web-1")], [], 100))
    plan = es.reconcile(service(), [pod("web-1")], old, 100)
    assert [s.metadata.name for s in plan.delete] == [old[0].metadata.name]
    assert len(plan.create) == 1


# ---------------------------------------------------------------- syncs

class SliceHarness(ControllerHarness):
    async def relist(self) -> None:
        self.cache("endpointslices", (await self.client.list("endpointslices", "default")).items)

    async def slices(self):
        return (await self.client.list("endpointslices", "default")).items


@pytest.fixture
async def h():
    harness = SliceHarness(es.EndpointSliceController, await MemClient.new())
    harness.cache("services", [service()])
    harness.cache("endpointslices", [])
    try:
        yield harness
    finally:
        await harness.stop()


def writes(client: MemClient) -> list[tuple[str, str, str]]:
    return [c for c in client.calls if c[0] != "get" and c[1] == "endpointslices"]


async def test_sync_writes_once_then_nothing_on_resync(h):
    h.cache("pods", [pod(f"web-{i:03d}", ip=f"127.2.1.{i + 1}") for i in range(250)])
    await h.controller.sync("default/web")
    assert sorted(len(s.endpoints) for s in await h.slices()) == [50, 100, 100]
    await h.relist()
    before = len(writes(h.client))
    for _ in range(3):
        await h.controller.sync("default/web")
    assert len(writes(h.client)) == before


async def test_lagging_cache_never_creates_duplicates(h):
    h.cache("pods", [pod("web-1")])
    await h.controller.sync("default/web")
    assert len(await h.slices()) == 1
    # The informer has not seen the slice yet: a second sync must not create another.
    with pytest.raises(errors.Conflict):
        await h.controller.sync("default/web")
    assert len(await h.slices()) == 1
    await h.relist()
    await h.controller.sync("default/web")
    assert len(await h.slices()) == 1


async def test_readiness_flip_updates_the_endpoint(h):
    h.cache("pods", [pod("web-1")])
    await h.controller.sync("default/web")
    await h.relist()
    h.cache("pods", [pod("web-1", ready=False)])
    await h.controller.sync("default/web")
    (s,) = await h.slices()
    assert (s.endpoints[0].conditions.ready, s.endpoints[0].conditions.serving) == (False, False)
    await h.relist()
    h.cache("pods", [])
    await h.controller.sync("default/web")
    (s,) = await h.slices()
    assert not s.endpoints  # the pod went: the slice stays as the placeholder


async def test_own_writes_do_not_requeue_but_others_edits_do(h):
    h.cache("pods", [pod("web-1")])
    await h.controller.sync("default/web")
    (ours,) = await h.slices()
    tracker, key = h.controller.tracker, "default/web"
    assert not tracker.should_sync(key, ours)
    edited = discovery_pb2.EndpointSlice()
    edited.CopyFrom(ours)
    del edited.endpoints[:]
    edited = await h.client.update(edited)
    assert tracker.should_sync(key, edited)
    # Put back on the next sync once the cache shows the edit.
    await h.relist()
    await h.controller.sync(key)
    (s,) = await h.slices()
    assert [e.target_ref.name for e in s.endpoints] == ["web-1"]


async def test_a_deleted_slice_of_ours_is_recreated_and_our_deletions_are_expected(h):
    h.cache("pods", [pod("web-1")])
    await h.controller.sync("default/web")
    (ours,) = await h.slices()
    await h.relist()
    await h.client.delete("endpointslices", ours.metadata.name, "default")
    assert not h.controller.tracker.handle_deletion("default/web", ours)  # not ours to expect
    await h.relist()
    await h.controller.sync("default/web")
    assert len(await h.slices()) == 1


async def test_service_without_selector_gets_no_managed_slices(h):
    h.cache("services", [service(selector={})])
    h.cache("pods", [pod("web-1")])
    await h.controller.sync("default/web")
    assert await h.slices() == []


async def test_max_endpoints_per_slice_option():
    h = SliceHarness(es.EndpointSliceController, await MemClient.new(),
                     Options(apiserver="-", max_endpoints_per_slice=2))
    try:
        h.cache("services", [service()])
        h.cache("endpointslices", [])
        h.cache("pods", [pod(f"p{i}", ip=f"127.2.1.{i + 1}") for i in range(5)])
        await h.controller.sync("default/web")
        assert sorted(len(s.endpoints) for s in await h.slices()) == [1, 2, 2]
    finally:
        await h.stop()


POD_UPDATE_CASES = [
    # id, old pod kwargs, new pod kwargs, services enqueued
    ("readiness", {}, {"ready": False}, {"default/web"}),
    ("ip", {}, {"ip": "127.2.9.9"}, {"default/web"}),
    ("deletion", {}, {"terminating": True}, {"default/web"}),
    ("nothing-endpoints-show", {}, {"node": "node-1"}, set()),
    ("labels-only-moves-membership", {"labels": {"app": "web"}}, {"labels": {"app": "db"}},
     {"default/web", "default/db"}),
    ("labels-kept-membership", {"labels": {"app": "web"}},
     {"labels": {"app": "web", "extra": "x"}}, set()),
    ("labels-and-readiness", {"labels": {"app": "web", "tier": "x"}},
     {"labels": {"app": "web"}, "ready": False}, {"default/web"}),
]


@pytest.mark.parametrize("old_kw,new_kw,expected", [c[1:] for c in POD_UPDATE_CASES],
                         ids=[c[0] for c in POD_UPDATE_CASES])
async def test_pod_updates_enqueue_the_services_concerned(old_kw, new_kw, expected):
    h = ControllerHarness(es.EndpointSliceController, await MemClient.new())
    try:
        h.cache("services", [service(), service(name="db", uid="db-uid")])
        old, new = pod("web-1", **old_kw), pod("web-1", **new_kw)
        old.metadata.resource_version, new.metadata.resource_version = "5", "6"
        assert cu.services_to_update(h.controller.services, old, new) == expected
        # A resync (same version) enqueues nothing.
        assert cu.services_to_update(h.controller.services, old, old) == set()
        queue = h.controller.queue
        while len(queue):  # the Services' own add events
            queue.done(queue.get_nowait())
        h.controller.pod_events.on_update(old, new)
        assert set(queue._queue) == expected  # at once: no batch delay
    finally:
        await h.stop()
