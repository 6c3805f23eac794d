"""controller_manager.namespace: the conditions Kubernetes writes while a
namespace terminates (pure), and sync on the apiserver's registry over the
in-memory store (tests/unit/controller_harness.py): content deleted, what
remains reported, the `kubernetes` finalizer removed once empty."""
from __future__ import annotations

import pytest

from controller_manager import namespace as nsc
from controller_manager.namespace import NamespaceController, Totals
from kubemu.api import codec, errors
from kubemu.api.v1 import core_pb2
from tests.builders import configmap, make_pod
from tests.unit.cli_memclient import NOW_S, MemClient
from tests.unit.controller_harness import ControllerHarness

T0, T1 = "2027-01-15T08:00:00Z", "2027-01-15T08:01:00Z"


@pytest.mark.parametrize("totals, expected", [
    (Totals(), []),
    (Totals(remaining={"pods.": 3, "configmaps.": 0}),
     [("NamespaceContentRemaining", "SomeResourcesRemain",
       "Some resources are remaining: pods. has 3 resource instances")]),
    (Totals(remaining={"pods.": 2, "jobs.batch": 1},
            finalizers={"batch.kubernetes.io/job-tracking": 2, "example.com/a": 1}),
     [("NamespaceContentRemaining", "SomeResourcesRemain",
       "Some resources are remaining: jobs.batch has 1 resource instances, "
       "pods. has 2 resource instances"),
      ("NamespaceFinalizersRemaining", "SomeFinalizersRemain",
       "Some content in the namespace has finalizers remaining: "
       "batch.kubernetes.io/job-tracking in 2 resource instances, "
       "example.com/a in 1 resource instances")]),
    (Totals(errors=["boom"]),
     [("NamespaceDeletionContentFailure", "ContentDeletionFailed",
       "Failed to delete all resource types, 1 remaining: boom")]),
    (Totals(errors=["a", "b"]),
     [("NamespaceDeletionContentFailure", "ContentDeletionFailed",
       "Failed to delete all resource types, 2 remaining: [a, b]")]),
], ids=["nothing-left", "pods-left", "sorted-with-finalizers", "one-error", "two-errors"])
def test_content_conditions_say_what_kubernetes_says(totals, expected):
    assert nsc.content_conditions(totals) == expected


def test_every_condition_type_is_kept_and_moves_its_time_only_on_a_status_change():
    status = core_pb2.NamespaceStatus(phase="Terminating")
    failing = [("NamespaceContentRemaining", "SomeResourcesRemain", "Some resources are "
                "remaining: pods. has 1 resource instances")]
    assert nsc.update_conditions(status, failing, T0)
    assert [(c.type, c.status, c.reason) for c in status.conditions] == [
        ("NamespaceDeletionDiscoveryFailure", "False", "ResourcesDiscovered"),
        ("NamespaceDeletionGroupVersionParsingFailure", "False", "ParsedGroupVersions"),
        ("NamespaceDeletionContentFailure", "False", "ContentDeleted"),
        ("NamespaceContentRemaining", "True", "SomeResourcesRemain"),
        ("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers")]
    assert not nsc.update_conditions(status, failing, T1)  # the same: no write
    changed = [("NamespaceContentRemaining", "SomeResourcesRemain", "Some resources are "
                "remaining: pods. has 2 resource instances")]
    assert nsc.update_conditions(status, changed, T1)
    assert status.conditions[3].last_transition_time == T0  # still True
    assert nsc.update_conditions(status, [], T1)
    assert (status.conditions[3].status, status.conditions[3].reason,
            status.conditions[3].message, status.conditions[3].last_transition_time) == (
        "False", "ContentRemoved", "All content successfully removed", T1)


@pytest.mark.parametrize("graces, elapsed_s, expected", [
    ([30, 5], 0, 30), ([30, 5], 29, 30), ([30, 5], 30, 0), ([], 0, 0), ([None], 0, 0)],
    ids=["longest", "within", "past-it", "no-pods", "no-grace"])
def test_the_pods_grace_estimate(graces, elapsed_s, expected):
    pods = []
    for grace in graces:
        pod = core_pb2.Pod()
        if grace is not None:
            pod.spec.termination_grace_period_seconds = grace
        pods.append(pod)
    assert nsc.pods_grace_estimate_s(pods, 100.0, 100.0 + elapsed_s) == expected


# ---------------------------------------------------------------- sync

@pytest.fixture
async def h():
    client = await MemClient.new()
    await client.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    harness = ControllerHarness(NamespaceController, client)
    try:
        yield harness
    finally:
        await harness.stop()


async def _conditions(client, name="demo"):
    ns = await client.get("namespaces", name)
    return ns.status.phase, {c.type: (c.status, c.reason, c.message)
                             for c in ns.status.conditions}


async def test_an_active_namespace_is_left_alone(h):
    await h.client.create(configmap("keep", "demo"))
    await h.controller.sync("demo")
    assert [c.metadata.name for c in (await h.client.list("configmaps", "demo")).items] == ["keep"]
    assert (await h.client.get("namespaces", "demo")).status.phase == "Active"


async def test_content_goes_then_the_finalizer_then_the_namespace(h):
    for i in range(3):
        await h.client.create(configmap(f"c{i}", "demo"))
    await h.client.create(make_pod("bound", "demo").on_node("node-1").grace(30).build())
    result = await h.client.delete("namespaces", "demo")
    assert not result.deleted and result.object.status.phase == "Terminating"

    await h.controller.sync("demo")
    assert (await h.client.list("configmaps", "demo")).items == []
    [pod] = (await h.client.list("pods", "demo")).items  # its kubelet has it for 30 s
    assert pod.metadata.deletion_timestamp
    phase, conds = await _conditions(h.client)
    assert phase == "Terminating"
    assert conds["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: pods. has 1 resource "
        "instances")
    assert conds["NamespaceDeletionContentFailure"] == (
        "False", "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization")
    assert h.controller.queue.num_delayed() == 1  # back after 30/2 + 1 s

    await h.client.delete("pods", "bound", "demo", grace_period_s=0)  # the kubelet is done
    await h.controller.sync("demo")
    with pytest.raises(errors.NotFound):
        await h.client.get("namespaces", "demo")


async def test_finalizers_holding_content_are_reported(h):
    held = configmap("held", "demo")
    held.metadata.finalizers.append("example.com/hold")
    await h.client.create(held)
    await h.client.delete("namespaces", "demo")
    await h.controller.sync("demo")
    _, conds = await _conditions(h.client)
    assert conds["NamespaceContentRemaining"][2] == (
        "Some resources are remaining: configmaps. has 1 resource instances")
    assert conds["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
        "resource instances")
    assert list((await h.client.get("namespaces", "demo")).spec.finalizers) == ["kubernetes"]

    await h.client.patch("configmaps", "held", "demo", patch={"metadata": {"finalizers": None}})
    await h.controller.sync("demo")
    with pytest.raises(errors.NotFound):
        await h.client.get("namespaces", "demo")


async def test_a_namespace_with_other_finalizers_waits_for_them(h):
    ns = await h.client.get("namespaces", "demo")
    ns.spec.finalizers.append("example.com/other")
    await h.client.finalize(ns)
    await h.client.delete("namespaces", "demo")
    await h.controller.sync("demo")
    left = await h.client.get("namespaces", "demo")
    assert list(left.spec.finalizers) == ["example.com/other"]
    assert codec.to_dict(left)["status"]["phase"] == "Terminating"


def test_describe_shows_the_conditions_of_a_terminating_namespace():
    import datetime

    from kubemu.api.kinds import REGISTRY
    from kubemu.cli import describe

    ns = {"metadata": {"name": "demo"}, "status": {"phase": "Terminating", "conditions": [
        {"type": "NamespaceContentRemaining", "status": "True",
         "lastTransitionTime": "2027-01-15T08:00:00Z", "reason": "SomeResourcesRemain",
         "message": "Some resources are remaining: pods. has 3 resource instances"}]}}
    text = describe.describe(REGISTRY.by_resource("namespaces"), ns, None,
                             now=datetime.datetime(2027, 1, 15, 8, 1, tzinfo=datetime.UTC))
    assert text == (
        "Name:         demo\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "Status:       Terminating\n"
        "Conditions:\n"
        "  Type                       Status  LastTransitionTime               Reason"
        "               Message\n"
        "  ----                       ------  ------------------               ------"
        "               -------\n"
        "  NamespaceContentRemaining  True    Fri, 15 Jan 2027 08:00:00 +0000  SomeResourcesRemain"
        "  Some resources are remaining: pods. has 3 resource instances\n"
        "\n"
        "No resource quota.\n"
        "\n"
        "No LimitRange resource.\n")


@pytest.mark.parametrize("terminating, tombstone, queued", [
    (True, False, 1), (True, True, 1), (False, False, 0)],
    ids=["terminating", "tombstone", "active"])
async def test_a_pod_gone_from_a_terminating_namespace_brings_it_back(
        h, terminating, tombstone, queued):
    from kubemu.client.informer import DeletedFinalStateUnknown

    ns = await h.client.get("namespaces", "demo")
    if terminating:
        ns.metadata.deletion_timestamp = "2027-01-15T08:00:00Z"
    h.cache("namespaces", [ns])
    pod = make_pod("p", "demo").build()
    h.controller._pod_gone(DeletedFinalStateUnknown("demo/p", pod) if tombstone else pod)
    assert h.controller.queue.num_delayed() == queued


async def test_a_pod_left_past_its_grace_is_a_content_failure(h):
    await h.client.create(make_pod("stuck", "demo").on_node("node-1").grace(30).build())
    await h.client.delete("namespaces", "demo")
    h.ctx.clock = lambda: NOW_S + 60  # the pod's 30 s are over; its kubelet never confirmed
    with pytest.raises(errors.Internal, match="unexpected items still remain"):
        await h.controller.sync("demo")
    _, conds = await _conditions(h.client)
    assert conds["NamespaceDeletionContentFailure"] == (
        "True", "ContentDeletionFailed",
        "Failed to delete all resource types, 1 remaining: unexpected items still remain in "
        "namespace: demo for gvr: /v1, Resource=pods")
    assert list((await h.client.get("namespaces", "demo")).spec.finalizers) == ["kubernetes"]
