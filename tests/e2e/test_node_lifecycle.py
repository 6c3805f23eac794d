"""A node lost and found again, on a real cluster: the whole control plane
(fast profile, with a node-monitor grace period of a few seconds) and three
nodes.

A node is taken away by pausing (SIGSTOP, through the supervisor's control
API, so that its health watching leaves them alone) its kubelet, runtime and
kube-proxy: its pods' processes keep running, but nothing speaks for the
node any more, as when it is cut off the network. Resuming brings it back; a
`finally` always does, so nothing is left stopped.

What the test checks is what a Kubernetes user sees: the node NotReady with
its conditions Unknown (NodeStatusUnknown), the unreachable taints, the
pods on it Ready=False, then deleted by the taint-eviction controller after
their tolerationSeconds (not before) and replaced, Running, on the other
nodes; the node back Ready without the taints, and the evicted pods gone; a
pod tolerating the loss forever stays, and one whose 300 s had not run out
has its deletion cancelled; both are Ready again.
"""
from __future__ import annotations

import contextlib
import pathlib

import pytest

from deploy import components as comp
from kubemu import timefmt
from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from kubemu.control import SupervisorClient
from tests.e2e.test_kubelet import ClusterThread, Seen, cli, events_of, obj, serving

pytestmark = pytest.mark.e2e

# Well above the test kubelets' 1 s lease renewal, so that a healthy node
# starved of CPU on a loaded machine is not taken for lost.
GRACE = "6s"
MONITOR_PERIOD = "500ms"
TOLERATION_S = 5
REPLICAS = 6
WAIT_S = 90.0
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NODE_PROCESSES = (comp.KUBELET, comp.RUNTIME, comp.KUBE_PROXY)


def control_plane() -> tuple[comp.ComponentKind, ...]:
    """The fast profile with a grace period short enough for a test (the
    later flags win)."""
    flags = (*comp.CONTROLLER_MANAGER_FAST_FLAGS, "--node-monitor-grace-period", GRACE,
             "--node-monitor-period", MONITOR_PERIOD)
    return (comp.ETCD_KIND, comp.APISERVER_KIND, comp.SCHEDULER_KIND,
            comp.controller_manager_kind(flags))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("nodelife-home"), nodes=3,
                                     kinds=control_plane()))


class NodeProcesses:
    """A node's kubelet, runtime and kube-proxy; stop() pauses them all
    through the supervisor's control API (SIGSTOP, and the supervisor knows
    it: a process stopped behind its back fails its health checks and is
    restarted), resume() continues them."""

    def __init__(self, home: pathlib.Path, node: str):
        self.home, self.node = home, node
        self.names = [f"{node}/{kind}" for kind in NODE_PROCESSES]

    async def stop(self) -> None:
        async with SupervisorClient(self.home) as control:
            await control.pause(self.names)

    async def resume(self) -> None:
        async with SupervisorClient(self.home) as control:
            await control.resume(self.names)


def deployment(name: str, namespace: str) -> dict:
    tolerations = [{"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": TOLERATION_S} for key in (NOT_READY, UNREACHABLE)]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 2, "tolerations": tolerations,
                         "containers": [{"name": "main",
                                         "image": "registry.k8s.io/pause:3.9"}]}}}}


def pinned(name: str, namespace: str, node: str, tolerations: list[dict]) -> dict:
    """A bare pause pod bound to `node` (no scheduler)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2,
                     "tolerations": tolerations,
                     "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}}


async def pod_running_ready(api: Client, ns: str, name: str):
    pod = await api.get("pods", name, ns)
    return pod if running_ready(pod) else Seen([pod.status.phase, is_ready(pod)])


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def running_ready(pod) -> bool:
    return (pod.status.phase == "Running" and is_ready(pod)
            and not pod.metadata.deletion_timestamp)


def condition(obj_, kind: str):
    return next((c for c in obj_.status.conditions if c.type == kind), None)


async def pods_of(api: Client, ns: str, app: str) -> list:
    return list((await api.list("pods", ns, label_selector=f"app={app}")).items)


async def all_running(api: Client, ns: str, app: str, avoid: str = "") -> list | Seen:
    pods = await pods_of(api, ns, app)
    live = [p for p in pods if running_ready(p)]
    if len(live) == REPLICAS and not any(p.spec.node_name == avoid for p in live):
        return live
    return Seen([(p.metadata.name, p.spec.node_name, p.status.phase, is_ready(p),
                  bool(p.metadata.deletion_timestamp)) for p in pods])


async def wait_events(api: Client, ns: str, name: str, wanted: list[tuple]) -> None:
    """Until the object's events (type, reason, message, source) include `wanted`
    in that order (events are written in the background)."""
    async def seen():
        # The scheduler's events (events.k8s.io style) name their reporter,
        # not a source.
        found = [(e["type"], e["reason"], e["message"],
                  (e.get("source") or {}).get("component") or e.get("reportingComponent"))
                 for e in await events_of(api, ns, name)]
        return [e for e in found if e in wanted] == wanted or Seen(found)
    await wait_for(seen, WAIT_S, interval_s=0.2, message=f"events of {name}")


def taints_of(node) -> list[tuple[str, str]]:
    return [(t.key, t.effect) for t in node.spec.taints]


async def test_lost_node_is_tainted_its_pods_evicted_and_replaced_then_it_comes_back(
        cluster, api, ns):
    app = "web"
    await api.create(obj(deployment(app, ns)))
    victim_procs: NodeProcesses | None = None
    try:
        pods = await wait_for(lambda: all_running(api, ns, app), WAIT_S, interval_s=0.2,
                              message="every replica Running and Ready")
        by_node: dict[str, list[str]] = {}
        for pod in pods:
            by_node.setdefault(pod.spec.node_name, []).append(pod.metadata.name)
        victim = max(sorted(by_node), key=lambda n: len(by_node[n]))
        lost = sorted(by_node[victim])
        # Two bare pods there: one tolerating the node's loss forever, one
        # with the apiserver's default 300 s (the node is back long before).
        await api.create(obj(pinned("stays", ns, victim, [
            {"key": key, "operator": "Exists", "effect": "NoExecute"}
            for key in (NOT_READY, UNREACHABLE)])))
        await api.create(obj(pinned("spared", ns, victim, [])))
        for name in ("stays", "spared"):
            await wait_for(lambda: pod_running_ready(api, ns, name), WAIT_S, interval_s=0.2,
                           message=f"{name} Running and Ready")
        victim_procs = NodeProcesses(cluster.home, victim)
        await victim_procs.stop()

        # NotReady after the grace period: every kubelet condition Unknown.
        async def unknown():
            node = await api.get("nodes", victim)
            ready = condition(node, "Ready")
            if ready.status == "Unknown" and taints_of(node) == [(UNREACHABLE, "NoSchedule"),
                                                                 (UNREACHABLE, "NoExecute")]:
                return node
            return Seen([ready.status, taints_of(node)])
        node = await wait_for(unknown, WAIT_S, interval_s=0.2, message=f"{victim} Unknown")
        assert {(c.type, c.status, c.reason, c.message) for c in node.status.conditions} == {
            (kind, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
            for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")}
        assert all(t.time_added for t in node.spec.taints)
        tainted_s = min(timefmt.parse_rfc3339(t.time_added) for t in node.spec.taints
                        if t.effect == "NoExecute")
        await wait_events(api, "default", victim, [
            ("Normal", "NodeNotReady", f"Node {victim} status is now: NodeNotReady",
             "node-controller")])
        listed = await cli(cluster, "get", "nodes")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
        assert rows[victim] == "NotReady", listed.stdout
        assert sorted(set(rows.values())) == ["NotReady", "Ready"], listed.stdout

        # Replaced on the other nodes, once the lost pods' tolerationSeconds ran out.
        await wait_for(lambda: all_running(api, ns, app, avoid=victim), WAIT_S, interval_s=0.2,
                       message="replicas Running again on the other nodes")
        for name in lost:
            await wait_events(api, ns, name, [
                ("Warning", "NodeNotReady", "Node is not ready", "node-controller"),
                ("Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}",
                 "taint-eviction-controller")])
            evicted = await api.get("pods", name, ns)   # still Terminating: its node is away
            assert evicted.metadata.deletion_timestamp, name
            assert not is_ready(evicted), name
            target = condition(evicted, "DisruptionTarget")
            assert (target.status, target.reason) == ("True", "DeletionByTaintManager")
            # Not before the toleration ran out (whole seconds on both sides).
            assert timefmt.parse_rfc3339(target.last_transition_time) >= \
                tainted_s + TOLERATION_S, (target.last_transition_time, tainted_s)

        # The bare pods: marked NotReady, still there; "spared" has a deletion
        # due in 300 s.
        for name in ("stays", "spared"):
            await wait_events(api, ns, name, [
                ("Warning", "NodeNotReady", "Node is not ready", "node-controller")])
            pod = await api.get("pods", name, ns)
            assert not pod.metadata.deletion_timestamp and not is_ready(pod), name

        # The node comes back: Ready, no taints, the evicted pods finish terminating.
        await victim_procs.resume()

        async def back():
            node = await api.get("nodes", victim)
            ready = condition(node, "Ready")
            return node if ready.status == "True" and not node.spec.taints else \
                Seen([ready.status, taints_of(node)])
        await wait_for(back, WAIT_S, interval_s=0.2, message=f"{victim} Ready again")

        async def old_pods_gone():
            left = [p.metadata.name for p in await pods_of(api, ns, app)
                    if p.metadata.name in lost]
            return not left or Seen(left)
        await wait_for(old_pods_gone, WAIT_S, interval_s=0.2, message="evicted pods deleted")
        await wait_for(lambda: all_running(api, ns, app), WAIT_S, interval_s=0.2,
                       message="every replica Running and Ready at the end")
        # The bare pods are Ready again (the kubelet's status wins), and the
        # spared one's deletion was cancelled.
        for name in ("stays", "spared"):
            await wait_for(lambda: pod_running_ready(api, ns, name), WAIT_S, interval_s=0.2,
                           message=f"{name} Ready again")
        await wait_events(api, ns, "spared", [
            ("Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {ns}/spared",
             "taint-eviction-controller")])
        assert "TaintManagerEviction" not in [e["reason"] for e in await events_of(api, ns,
                                                                                   "stays")]
    finally:
        if victim_procs is not None:
            await victim_procs.resume()
        with contextlib.suppress(errors.NotFound):
            await api.delete("deployments", app, ns)
