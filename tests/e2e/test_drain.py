"""`kubemu drain` with PodDisruptionBudgets on a real 3-node cluster (fast profile).

The issue's drain flow: node-1 holds two of the three replicas of a Deployment
whose PDB has minAvailable 2 (placed deterministically by cordoning: both
first replicas with only node-1 schedulable, the third with only node-2).
Draining node-1 evicts them one at a time: a watch on the namespace's pods
records, in event order, when a pod starts terminating and when a pod
becomes Ready; the second eviction only comes after a replacement is Ready,
and the Ready, non-terminating pods never number fewer than 2. The budget's
refusal reaches the user as kubectl's 429 retry line.
A bare pod blocks drain without --force (kubectl's exact error lines) and
goes with it; DaemonSet pods block drain without --ignore-daemonsets and are
left running with it.

Tests share the cluster, so each one leaves every node schedulable and its
controllers deleted.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (WAIT_S, ClusterThread, cli, kubemu, obj, serving,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

NODES = ("node-1", "node-2", "node-3")
SLEEPER = {"name": "main", "image": "busybox",
           "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}
DRAIN_TIMEOUT_S = 120.0  # the drain's own --timeout; the process gets a little more
BUDGET_LINE = ("(will retry after 5s): Cannot evict pod as it would violate the pod's "
               "disruption budget.")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("drain-home"), nodes=3,
                                     kinds=workload_control_plane()))


async def set_unschedulable(api: Client, node: str, value: bool) -> None:
    await api.patch("nodes", node, patch={"spec": {"unschedulable": True if value else None}})


@contextlib.asynccontextmanager
async def nodes_restored(api: Client):
    """Every node schedulable again when the test ends, whatever it did."""
    try:
        yield
    finally:
        for node in NODES:
            await set_unschedulable(api, node, False)


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def pods_by_node(api: Client, ns: str, label: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pod in (await api.list("pods", ns, label_selector=label)).items:
        if not pod.metadata.deletion_timestamp:
            out.setdefault(pod.spec.node_name, []).append(pod.metadata.name)
    return out


async def ready_replicas(api: Client, ns: str, name: str, count: int) -> Any:
    async def check():
        d = await api.get("deployments", name, ns)
        return d.status.ready_replicas == count and d.status.updated_replicas == count \
            and d.status.replicas == count and d
    return await wait_for(check, WAIT_S, interval_s=0.2, message=f"{name} {count} ready")


class Timeline:
    """The namespace's pod events, in watch order: ("terminating", name) when a
    pod gets its deletionTimestamp, ("ready", name) when a pod first becomes
    Ready, and the fewest Ready non-terminating pods seen after `arm()`."""

    def __init__(self, api: Client, ns: str):
        self.api, self.ns = api, ns
        self.steps: list[tuple[str, str]] = []
        self.healthy: dict[str, bool] = {}
        self.min_healthy: int | None = None
        self.armed = False
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Timeline":
        listed = await self.api.list("pods", self.ns)
        for pod in listed.items:
            self._see(pod)
        self._task = asyncio.get_running_loop().create_task(
            self._watch(listed.resource_version))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def arm(self) -> None:
        self.steps.clear()
        self.armed = True
        self.min_healthy = sum(self.healthy.values())

    def _see(self, pod, deleted: bool = False) -> None:
        name = pod.metadata.name
        was = self.healthy.get(name)
        terminating = deleted or bool(pod.metadata.deletion_timestamp)
        now = is_ready(pod) and not terminating
        if terminating and was is not None and ("terminating", name) not in self.steps:
            self.steps.append(("terminating", name))
        if now and not was and ("ready", name) not in self.steps:
            self.steps.append(("ready", name))
        if deleted:
            self.healthy.pop(name, None)
        else:
            self.healthy[name] = now
        if self.armed:
            count = sum(self.healthy.values())
            self.min_healthy = count if self.min_healthy is None else min(self.min_healthy,
                                                                        count)

    async def _watch(self, rv: str) -> None:
        async for event in self.api.watch("pods", self.ns, resource_version=rv):
            if event.type in ("ADDED", "MODIFIED"):
                self._see(event.object)
            elif event.type == "DELETED":
                self._see(event.object, deleted=True)


async def test_drain_evicts_one_at_a_time_within_the_budget(cluster, api, ns):
    async with nodes_restored(api):
        # Two replicas where only node-1 takes pods, the third where only node-2 does.
        await set_unschedulable(api, "node-2", True)
        await set_unschedulable(api, "node-3", True)
        await api.create(obj({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [SLEEPER]}}}}))
        await ready_replicas(api, ns, "web", 2)
        await set_unschedulable(api, "node-1", True)
        await set_unschedulable(api, "node-2", False)
        await api.patch("deployments", "web", ns, patch={"spec": {"replicas": 3}})
        await ready_replicas(api, ns, "web", 3)
        await set_unschedulable(api, "node-1", False)
        await set_unschedulable(api, "node-3", False)
        placed = await pods_by_node(api, ns, "app=web")
        assert sorted(len(v) for v in placed.values()) == [1, 2] and len(placed["node-1"]) == 2, \
            placed
        on_node_1 = set(placed["node-1"])

        await api.create(obj({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}))

        async def budget_computed():
            pdb = await api.get("poddisruptionbudgets", "web", ns)
            st = pdb.status
            return (st.observed_generation == pdb.metadata.generation
                    and (st.expected_pods, st.current_healthy, st.desired_healthy,
                         st.disruptions_allowed) == (3, 3, 2, 1)) and pdb
        pdb = await wait_for(budget_computed, WAIT_S, interval_s=0.2, message="pdb status")
        cond = next(c for c in pdb.status.conditions if c.type == "DisruptionAllowed")
        assert (cond.status, cond.reason) == ("True", "SufficientPods")
        described = await cli(cluster, "describe", "pdb", "web", "-n", ns)
        assert "Min available:  2\n" in described.stdout and \
            "    Allowed disruptions:  1\n" in described.stdout, described
        listed = await cli(cluster, "get", "pdb", "-n", ns)
        header, row = listed.stdout.splitlines()
        assert header.split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                                  "DISRUPTIONS", "AGE"], listed
        assert row.split()[:4] == ["web", "2", "N/A", "1"], listed

        async with Timeline(api, ns) as timeline:
            timeline.arm()
            result = await asyncio.to_thread(
                kubemu, cluster, "drain", "node-1", "--ignore-daemonsets",
                "--timeout", f"{DRAIN_TIMEOUT_S:.0f}s", timeout_s=DRAIN_TIMEOUT_S + 30)
            assert result.returncode == 0, result
            await ready_replicas(api, ns, "web", 3)
        out = result.stdout.splitlines()
        assert out[0] == "node/node-1 cordoned" and out[-1] == "node/node-1 drained", result
        assert sorted(line for line in out if line.endswith(" evicted")) == \
            sorted(f"pod/{name} evicted" for name in on_node_1), result
        # The budget held the second eviction back at least once: kubectl's retry line.
        retries = [line for line in result.stderr.splitlines() if line.endswith(BUDGET_LINE)]
        assert retries and all(line.startswith('error when evicting pods/"') for line in retries), \
            result

        # One at a time: between the two evictions a replacement became Ready,
        # and the application never had fewer than minAvailable Ready pods.
        steps = timeline.steps
        evicted = [i for i, step in enumerate(steps)
                   if step[0] == "terminating" and step[1] in on_node_1]
        assert len(evicted) == 2, steps
        between = steps[evicted[0] + 1:evicted[1]]
        assert any(kind == "ready" and name not in on_node_1 for kind, name in between), steps
        assert timeline.min_healthy is not None and timeline.min_healthy >= 2, \
            (timeline.min_healthy, steps)
        assert "node-1" not in await pods_by_node(api, ns, "app=web")
        node = await api.get("nodes", "node-1")
        assert node.spec.unschedulable
        await api.delete("deployments", "web", ns)


async def test_bare_pod_blocks_drain_without_force(cluster, api, ns):
    async with nodes_restored(api):
        await api.create(obj({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "namespace": ns},
            "spec": {"nodeName": "node-3", "terminationGracePeriodSeconds": 1,
                     "containers": [SLEEPER]}}))

        async def running():
            pod = await api.get("pods", "bare", ns)
            return is_ready(pod) and pod
        await wait_for(running, WAIT_S, interval_s=0.2, message="bare pod ready")

        refused = await cli(cluster, "drain", "node-3", "--ignore-daemonsets")
        # kubectl 1.32 says "cannot delete" twice here (its message and errors() both do).
        error = ("cannot delete cannot delete Pods that declare no controller (use --force to "
                 f"override): {ns}/bare")
        assert refused.returncode == 1, refused
        assert refused.stdout == "node/node-3 cordoned\n", refused
        assert refused.stderr.splitlines() == [
            f'error: unable to drain node "node-3" due to error: {error}, continuing command...',
            "There are pending nodes to be drained:",
            " node-3",
            error], refused
        assert not (await api.get("pods", "bare", ns)).metadata.deletion_timestamp

        forced = await cli(cluster, "drain", "node-3", "--ignore-daemonsets", "--force")
        assert forced.returncode == 0, forced
        assert forced.stdout.splitlines() == [
            "node/node-3 already cordoned", f"evicting pod {ns}/bare", "pod/bare evicted",
            "node/node-3 drained"], forced
        assert forced.stderr == \
            f"Warning: deleting Pods that declare no controller: {ns}/bare\n", forced
        with pytest.raises(errors.NotFound):
            await api.get("pods", "bare", ns)


async def test_daemonset_pods_are_skipped_with_ignore_daemonsets(cluster, api, ns):
    async with nodes_restored(api):
        await api.create(obj({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [SLEEPER]}}}}))

        async def one_per_node():
            by_node = await pods_by_node(api, ns, "app=agent")
            return sorted(by_node) == list(NODES) and by_node
        by_node = await wait_for(one_per_node, WAIT_S, interval_s=0.2, message="agent pods")
        agent = by_node["node-2"][0]

        refused = await cli(cluster, "drain", "node-2")
        error = (f"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                 f"{ns}/{agent}")
        assert refused.returncode == 1, refused
        assert refused.stderr.splitlines()[0] == \
            f'error: unable to drain node "node-2" due to error: {error}, continuing command...'
        assert refused.stderr.splitlines()[-1] == error, refused

        drained = await cli(cluster, "drain", "node-2", "--ignore-daemonsets")
        assert drained.returncode == 0, drained
        assert drained.stdout.splitlines() == ["node/node-2 already cordoned",
                                               "node/node-2 drained"], drained
        assert drained.stderr == f"Warning: ignoring DaemonSet-managed Pods: {ns}/{agent}\n"
        left = await api.get("pods", agent, ns)
        assert not left.metadata.deletion_timestamp and is_ready(left)
        await api.delete("daemonsets", "agent", ns)
