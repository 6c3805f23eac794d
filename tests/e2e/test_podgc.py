"""The pod garbage collector on a real cluster: the whole control plane with
the fast profile (the controller-manager's pod GC looks every 1s and waits
5s for a missing node) and two nodes.

A pod bound (spec.nodeName) to a node that does not exist is written Failed
with the DisruptionTarget condition (DeletionByPodGC), no sooner than the
quarantine after it was created, then deleted. A Deployment's pod on a node
removed from the cluster (the supervisor's remove_node: its processes stop
and its Node object is deleted) goes the same way, and the Deployment's
replacement runs on the node that is left. Without the collector both pods
stay for ever: nothing else deletes a pod whose kubelet is gone.
"""
from __future__ import annotations

import contextlib

import pytest

from deploy import components as comp
from kubemu import timefmt
from kubemu.api import codec, errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from kubemu.control import SupervisorClient
from tests.e2e.test_kubelet import (ClusterThread, Seen, busybox, obj, serving,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

QUARANTINE_S = 5.0   # the fast profile's --pod-gc-quarantine
WAIT_S = 60.0
CHANGE_TIMEOUT_S = 60.0


def test_the_fast_profile_sets_the_quarantine_this_test_counts_on():
    flags = list(comp.CONTROLLER_MANAGER_FAST_FLAGS)
    assert flags[flags.index("--pod-gc-quarantine") + 1] == f"{QUARANTINE_S:g}s"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("podgc-home"), nodes=2,
                                     kinds=workload_control_plane()))


async def history(api: Client, namespace: str, name: str, resource_version: str,
                  timeout_s: float) -> list[tuple[str, dict]]:
    """The pod's watch events (type, pod as JSON) from `resource_version` until
    it is deleted, or until `timeout_s` ends the stream."""
    seen = []
    async with contextlib.aclosing(api.watch("pods", namespace,
                                             resource_version=resource_version,
                                             timeout_s=timeout_s)) as events:
        async for event in events:
            if event.object.metadata.name != name:
                continue
            seen.append((event.type, codec.to_dict(event.object)))
            if event.type == "DELETED":
                break
    return seen


def gc_condition(pod: dict) -> dict | None:
    return next((c for c in pod.get("status", {}).get("conditions", [])
                 if c["type"] == "DisruptionTarget"), None)


async def test_a_pod_bound_to_a_missing_node_is_failed_then_deleted(api, ns):
    created = await api.create(obj({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "namespace": ns},
        "spec": {"nodeName": "no-such-node", "terminationGracePeriodSeconds": 30,
                 "containers": [busybox("exec sleep 3600")]}}))

    seen = await history(api, ns, "orphan", created.metadata.resource_version, WAIT_S)

    assert seen and seen[-1][0] == "DELETED", [(t, p.get("status")) for t, p in seen]
    failed = [p for t, p in seen if p.get("status", {}).get("phase") == "Failed"]
    assert failed, [(t, p.get("status")) for t, p in seen]
    cond = gc_condition(failed[0])
    assert cond is not None and (cond["status"], cond["reason"], cond["message"]) == (
        "True", "DeletionByPodGC", "PodGC: node no longer exists"), failed[0]["status"]
    # Not before the node had been missing for the quarantine (whole seconds).
    waited_s = (timefmt.parse_rfc3339(cond["lastTransitionTime"])
                - timefmt.parse_rfc3339(created.metadata.creation_timestamp))
    assert waited_s >= QUARANTINE_S - 1, (cond, created.metadata.creation_timestamp)
    with pytest.raises(errors.NotFound):
        await api.get("pods", "orphan", ns)


async def test_a_deployments_pod_on_a_removed_node_is_replaced(cluster, api, ns):
    await api.create(obj({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 2,
                     "containers": [busybox("exec sleep 3600")]}}}}))
    try:
        async def running_pods():
            pods = (await api.list("pods", ns, label_selector="app=web")).items
            live = [p for p in pods if p.status.phase == "Running"
                    and not p.metadata.deletion_timestamp]
            return live if len(live) == 1 and len(pods) == 1 else Seen(
                [(p.metadata.name, p.spec.node_name, p.status.phase) for p in pods])

        first = (await wait_for(running_pods, WAIT_S, interval_s=0.2,
                                message="the Deployment's pod Running"))[0]
        lost = first.spec.node_name
        async with SupervisorClient(cluster.home, timeout_s=10.0) as control:
            await control.remove_node(lost, timeout_s=CHANGE_TIMEOUT_S)
        with pytest.raises(errors.NotFound):
            await api.get("nodes", lost)

        async def replaced():
            pods = (await api.list("pods", ns, label_selector="app=web")).items
            names = {p.metadata.name for p in pods}
            live = [p for p in pods if p.status.phase == "Running"
                    and not p.metadata.deletion_timestamp]
            if first.metadata.name not in names and len(live) == 1 \
                    and live[0].spec.node_name != lost:
                return live[0]
            return Seen([(p.metadata.name, p.spec.node_name, p.status.phase)
                         for p in pods])

        new = await wait_for(replaced, WAIT_S, interval_s=0.2,
                             message="the lost pod deleted and replaced")
        assert new.metadata.name != first.metadata.name
    finally:
        for resource in ("deployments", "replicasets"):
            for item in (await api.list(resource, ns)).items:
                with contextlib.suppress(errors.NotFound):
                    await api.delete(resource, item.metadata.name, ns)
