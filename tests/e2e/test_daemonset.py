"""DaemonSets on a real cluster: two nodes with kubelets, the scheduler and the
controller-manager (the fast profile), shared by this module's tests.

What a user of the seed notes' DaemonSet sees: exactly one pod per node, each
Running, never two live pods of the set on one node (checked at every watch
event); a node tainted NoSchedule is skipped unless the DaemonSet tolerates
the taint; a node registered later gets its pod (the scheduler binds it there
through the pod's `matchFields metadata.name` affinity) and loses it when it
is removed. The supervisor cannot start a kubelet for a node added to a
running cluster, so the later node is a Node object the test registers: its
pod is bound, never run.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (WAIT_S, ClusterThread, Seen, cli, obj, serving,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

NODES = ("node-1", "node-2")
TAINT = {"key": "e2e.kubemu.io/dedicated", "value": "infra", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("daemonset-home"), nodes=2,
                                     kinds=workload_control_plane()))


def ds_doc(name: str, namespace: str, tolerations: list | None = None) -> dict:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]}
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def target_node(pod) -> str:
    if pod.spec.node_name:
        return pod.spec.node_name
    for term in pod.spec.affinity.node_affinity.\
            required_during_scheduling_ignored_during_execution.node_selector_terms:
        for field in term.match_fields:
            if field.key == "metadata.name" and field.operator == "In":
                return field.values[0]
    return ""


class OnePerNode:
    """Watches a DaemonSet's pods and records every moment (watch event) at
    which one node had two live (not terminating) pods of it."""

    def __init__(self, api: Client, namespace: str, app: str):
        self.api, self.namespace, self.app = api, namespace, app
        self.live: dict[str, Any] = {}
        self.violations: list[str] = []
        self.events = 0
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "OnePerNode":
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        async with contextlib.aclosing(self.api.watch(
                "pods", self.namespace, label_selector=f"app={self.app}")) as events:
            async for event in events:
                pod = event.object
                self.events += 1
                if event.type == "DELETED" or pod.metadata.deletion_timestamp:
                    self.live.pop(pod.metadata.name, None)
                else:
                    self.live[pod.metadata.name] = pod
                per_node: dict[str, list[str]] = {}
                for name, live in self.live.items():
                    per_node.setdefault(target_node(live), []).append(name)
                for node, names in per_node.items():
                    if len(names) > 1:
                        self.violations.append(f"event {self.events}: {node} has {sorted(names)}")


async def pods_of(api: Client, namespace: str, app: str) -> list:
    return [p for p in (await api.list("pods", namespace, label_selector=f"app={app}")).items
            if not p.metadata.deletion_timestamp]


async def wait_running_on(api: Client, namespace: str, app: str, nodes: set[str]) -> dict:
    """Until the live pods of `app` are one per node of `nodes`, each Running there."""
    async def placed():
        pods = await pods_of(api, namespace, app)
        seen = sorted((p.metadata.name, p.spec.node_name, p.status.phase) for p in pods)
        by_node = {p.spec.node_name: p for p in pods}
        if (len(pods) == len(nodes) and set(by_node) == nodes
                and all(p.status.phase == "Running" for p in pods)):
            return by_node
        return Seen(seen)
    return await wait_for(placed, WAIT_S * 2, interval_s=0.2,
                          message=f"{app}: one Running pod on each of {sorted(nodes)}")


@contextlib.asynccontextmanager
async def daemon_set(api: Client, doc: dict):
    """Create a DaemonSet; delete it at the end (before the namespace's pods
    are deleted, or it would recreate them)."""
    created = await api.create(obj(doc))
    try:
        yield created
    finally:
        with contextlib.suppress(errors.NotFound):
            await api.delete("daemonsets", doc["metadata"]["name"], doc["metadata"]["namespace"])


async def set_taints(api: Client, node: str, taints: list) -> None:
    await api.patch("nodes", node, patch={"spec": {"taints": taints}})


async def test_one_running_pod_per_node(api, ns):
    async with OnePerNode(api, ns, "agent") as watch, daemon_set(api, ds_doc("agent", ns)):
        pods = await wait_running_on(api, ns, "agent", set(NODES))

        async def status_complete():
            ds = await api.get("daemonsets", "agent", ns)
            s = ds.status
            numbers = (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready,
                       s.updated_number_scheduled, s.number_available, s.number_misscheduled)
            return ds if numbers == (2, 2, 2, 2, 2, 0) else Seen(numbers)
        await wait_for(status_complete, WAIT_S)
        # Placed by the scheduler, pinned by name.
        for node, pod in pods.items():
            terms = pod.spec.affinity.node_affinity.\
                required_during_scheduling_ignored_during_execution.node_selector_terms
            assert [(f.key, f.operator, list(f.values)) for f in terms[0].match_fields] == \
                [("metadata.name", "In", [node])]
        events = (await api.list("events", ns)).items
        assert sorted(e.message for e in events if e.reason == "Scheduled") == sorted(
            f"Successfully assigned {ns}/{p.metadata.name} to {node}"
            for node, p in pods.items())
    assert watch.events > 0 and watch.violations == []


async def test_a_tainted_node_is_skipped_unless_tolerated(api, ns):
    await set_taints(api, "node-2", [TAINT])
    try:
        async with OnePerNode(api, ns, "plain") as plain_watch, \
                OnePerNode(api, ns, "tolerant") as tolerant_watch, \
                daemon_set(api, ds_doc("plain", ns)), \
                daemon_set(api, ds_doc("tolerant", ns, tolerations=[
                    {"key": TAINT["key"], "operator": "Equal", "value": TAINT["value"],
                     "effect": "NoSchedule"}])):
            await wait_running_on(api, ns, "tolerant", set(NODES))
            await wait_running_on(api, ns, "plain", {"node-1"})

            async def desired_one():
                ds = await api.get("daemonsets", "plain", ns)
                s = ds.status
                return ds if (s.desired_number_scheduled, s.number_ready) == (1, 1) \
                    else Seen(str(s))
            await wait_for(desired_one, WAIT_S)
            assert [p.spec.node_name for p in await pods_of(api, ns, "plain")] == ["node-1"]
        assert plain_watch.violations == [] and tolerant_watch.violations == []
    finally:
        await set_taints(api, "node-2", [])


async def test_a_node_added_later_gets_its_pod_and_loses_it_when_removed(api, ns):
    late = "node-late"
    async with OnePerNode(api, ns, "late") as watch, daemon_set(api, ds_doc("late", ns)):
        await wait_running_on(api, ns, "late", set(NODES))
        await api.create(obj({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": late, "labels": {"kubernetes.io/hostname": late}},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}))
        try:
            async def bound_there():
                pods = [p for p in await pods_of(api, ns, "late") if target_node(p) == late]
                if len(pods) == 1 and pods[0].spec.node_name == late:
                    return pods[0]
                return Seen([(p.metadata.name, p.spec.node_name) for p in pods])
            await wait_for(bound_there, WAIT_S)

            async def desired_three():
                ds = await api.get("daemonsets", "late", ns)
                s = ds.status
                return ds if (s.desired_number_scheduled, s.current_number_scheduled) == (3, 3) \
                    else Seen(str(s))
            await wait_for(desired_three, WAIT_S)
        finally:
            with contextlib.suppress(errors.NotFound):
                await api.delete("nodes", late)

        async def gone_from_late():
            pods = (await api.list("pods", ns, label_selector="app=late")).items
            on_late = [p.metadata.name for p in pods if target_node(p) == late]
            return not on_late or Seen(on_late)
        await wait_for(gone_from_late, WAIT_S)
        # The real nodes keep theirs.
        await wait_running_on(api, ns, "late", set(NODES))
    assert watch.violations == []


class Availability:
    """Watches a DaemonSet's pods and records, at every watch event, how many
    nodes have a live Ready pod of it (the fewest seen is what a rolling
    update's maxUnavailable bounds)."""

    def __init__(self, api: Client, namespace: str, app: str):
        self.api, self.namespace, self.app = api, namespace, app
        self.live: dict[str, Any] = {}
        self.fewest_ready_nodes: int | None = None
        self._task: asyncio.Task | None = None
        self.started = asyncio.Event()

    async def __aenter__(self) -> "Availability":
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def ready_nodes(self) -> int:
        return len({p.spec.node_name for p in self.live.values()
                    if any(c.type == "Ready" and c.status == "True"
                           for c in p.status.conditions)})

    async def _watch(self) -> None:
        listed = await self.api.list("pods", self.namespace, label_selector=f"app={self.app}")
        for pod in listed.items:
            if not pod.metadata.deletion_timestamp:
                self.live[pod.metadata.name] = pod
        self.started.set()
        async with contextlib.aclosing(self.api.watch(
                "pods", self.namespace, label_selector=f"app={self.app}",
                resource_version=listed.resource_version)) as events:
            async for event in events:
                pod = event.object
                if event.type == "DELETED" or pod.metadata.deletion_timestamp:
                    self.live.pop(pod.metadata.name, None)
                else:
                    self.live[pod.metadata.name] = pod
                ready = self.ready_nodes()
                if self.fewest_ready_nodes is None or ready < self.fewest_ready_nodes:
                    self.fewest_ready_nodes = ready


async def test_rolling_update_keeps_all_but_max_unavailable_nodes_ready(api, ns):
    doc = ds_doc("roller", ns)
    doc["spec"]["updateStrategy"] = {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": 1}}
    async with daemon_set(api, doc), OnePerNode(api, ns, "roller") as one_per_node:
        await wait_running_on(api, ns, "roller", set(NODES))

        async def all_ready():
            ds = await api.get("daemonsets", "roller", ns)
            return ds if ds.status.number_ready == 2 else Seen(str(ds.status))
        await wait_for(all_ready, WAIT_S)
        async with Availability(api, ns, "roller") as watch:
            await watch.started.wait()
            await api.patch("daemonsets", "roller", ns, patch={"spec": {"template": {
                "metadata": {"annotations": {"rollout": "2"}}}}})

            async def rolled():
                ds = await api.get("daemonsets", "roller", ns)
                s = ds.status
                numbers = (s.observed_generation, s.updated_number_scheduled, s.number_ready)
                return ds if numbers == (ds.metadata.generation, 2, 2) else Seen(numbers)
            await wait_for(rolled, WAIT_S * 2)
            pods = await wait_running_on(api, ns, "roller", set(NODES))
            assert all(p.metadata.annotations.get("rollout") == "2" for p in pods.values())
        # maxUnavailable 1 of 2 nodes: one node always had a Ready pod.
        assert watch.fewest_ready_nodes == 1, watch.fewest_ready_nodes
    assert one_per_node.violations == []


async def test_a_cordoned_node_still_runs_its_daemon_pod(api, ns):
    """The daemon tolerations let the scheduler place the pod on a node that
    is unschedulable (kubectl cordon), as Kubernetes does."""
    await api.patch("nodes", "node-2", patch={"spec": {"unschedulable": True}})
    try:
        async with daemon_set(api, ds_doc("cordoned", ns)):
            pods = await wait_running_on(api, ns, "cordoned", set(NODES))
            tolerations = {(t.key, t.effect) for t in pods["node-2"].spec.tolerations}
            assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerations
    finally:
        await api.patch("nodes", "node-2", patch={"spec": {"unschedulable": False}})


async def test_rollout_status_history_and_undo_through_the_cli(cluster, api, ns):
    """kubectl's rollout verbs read the controller's ControllerRevisions and status."""
    doc = ds_doc("hist", ns)
    doc["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first"}
    doc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "V", "value": "1"}]
    async with daemon_set(api, doc):
        status = await cli(cluster, "rollout", "status", "daemonset/hist", "-n", ns,
                           "--timeout", "60s")
        assert status.returncode == 0, status.stderr
        assert status.stdout.splitlines()[-1] == 'daemon set "hist" successfully rolled out'

        container = dict(doc["spec"]["template"]["spec"]["containers"][0],
                         env=[{"name": "V", "value": "2"}])
        await api.patch("daemonsets", "hist", ns, patch={
            "metadata": {"annotations": {"kubernetes.io/change-cause": "second"}},
            "spec": {"template": {"spec": {"containers": [container]}}}})
        status = await cli(cluster, "rollout", "status", "daemonset/hist", "-n", ns,
                           "--timeout", "60s")
        assert status.returncode == 0, status.stderr
        history = await cli(cluster, "rollout", "history", "daemonset/hist", "-n", ns)
        assert history.returncode == 0, history.stderr
        rows = [line.split() for line in history.stdout.splitlines()[1:] if line.strip()]
        assert rows == [["REVISION", "CHANGE-CAUSE"], ["1", "first"], ["2", "second"]], \
            history.stdout

        undo = await cli(cluster, "rollout", "undo", "daemonset/hist", "-n", ns)
        assert undo.returncode == 0, undo.stderr

        async def back_to_first():
            pods = await pods_of(api, ns, "hist")
            values = sorted(p.spec.containers[0].env[0].value for p in pods
                            if p.status.phase == "Running")
            return pods if values == ["1", "1"] else Seen(values)
        await wait_for(back_to_first, WAIT_S * 2)
        revisions = {r.revision for r in (await api.list(
            "controllerrevisions", ns, label_selector="app=hist")).items}
        assert revisions == {2, 3}, "the first template came back as revision 3"
