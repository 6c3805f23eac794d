"""A Service's endpoints on a real cluster: one node whose kubelet runs the
pods and probes their readiness, the scheduler and the controller-manager
(the fast profile), through the supervisor.

What a user sees with `kubectl get endpointslices -w`: two busybox pods
behind a LoadBalancer Service with a named targetPort; the slice lists both
pod IPs on the named port; a pod whose readiness probe starts failing turns
not ready (ready and serving false) and comes back when it passes again; a
deleted pod shows as terminating (never ready) and then disappears. At
every watch event: exactly one slice for the Service (never a duplicate).
The Service gets an address of the cluster's own pool 127.1.B.0/24.
"""
from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (WAIT_S, ClusterThread, Seen, cli, obj, serving,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

NODE = "node-1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("endpointslice-home"), nodes=1,
                                     kinds=workload_control_plane()))


def pod_doc(name: str, namespace: str) -> dict:
    # Ready while the file `ready` exists; on SIGTERM it takes 2 s to go, so
    # the slice shows it terminating first.
    script = "touch ready; trap 'sleep 2; exit 0' TERM; sleep 3600 & wait"
    probe = {"exec": {"command": ["cat", "ready"]}, "periodSeconds": 1, "failureThreshold": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 10,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sh", "-c", script],
                                     "ports": [{"name": "http", "containerPort": 8080}],
                                     "readinessProbe": probe}]}}


def service_doc(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"name": "web", "port": 80, "targetPort": "http",
                                "protocol": "TCP"}]}}


class SliceWatch:
    """The Service's slices, every event checked as it arrives."""

    def __init__(self, api, namespace: str):
        self.api, self.namespace = api, namespace
        self.slices: dict[str, object] = {}
        self.violations: list[str] = []
        self.seen_terminating: set[str] = set()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "SliceWatch":
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        async with contextlib.aclosing(self.api.watch(
                "endpointslices", self.namespace,
                label_selector="kubernetes.io/service-name=web")) as events:
            async for ev in events:
                if ev.type == "DELETED":
                    self.slices.pop(ev.object.metadata.name, None)
                elif ev.type in ("ADDED", "MODIFIED"):
                    self.slices[ev.object.metadata.name] = ev.object
                else:
                    continue
                if len(self.slices) != 1:
                    self.violations.append(f"slices {sorted(self.slices)}")
                for s in self.slices.values():
                    for ep in s.endpoints:
                        c = ep.conditions
                        if c.terminating:
                            self.seen_terminating.add(ep.target_ref.name)
                            if c.ready:
                                self.violations.append(f"{ep.target_ref.name} terminating, ready")

    def endpoints(self) -> dict[str, tuple]:
        """pod name -> (address, ready, serving, terminating)."""
        if self.task.done():
            self.task.result()  # the watch failed: say why
        return {ep.target_ref.name: (ep.addresses[0], ep.conditions.ready,
                                     ep.conditions.serving, ep.conditions.terminating)
                for s in self.slices.values() for ep in s.endpoints}

    def ports(self) -> list[tuple]:
        return [(p.name, p.port) for s in self.slices.values() for p in s.ports]


async def pod_ip(api, namespace: str, name: str) -> str:
    async def ip():
        return (await api.get("pods", name, namespace)).status.pod_ip
    return await wait_for(ip, WAIT_S, message=f"{name}'s IP")


async def expect(watch: SliceWatch, want: dict[str, tuple], what: str) -> None:
    await wait_for(lambda: True if watch.endpoints() == want else Seen(watch.endpoints()),
                   WAIT_S, interval_s=0.02, message=what)


async def test_slice_follows_readiness_and_deletion(cluster, api, ns):
    async with SliceWatch(api, ns) as watch:
        await api.create(obj(service_doc(ns)))
        for name in ("web-0", "web-1"):
            await api.create(obj(pod_doc(name, ns)))
        ips = {name: await pod_ip(api, ns, name) for name in ("web-0", "web-1")}
        both = {n: (ip, True, True, False) for n, ip in ips.items()}
        await expect(watch, both, "both pods ready")
        assert watch.ports() == [("web", 8080)]

        await cli(cluster, "exec", "-n", ns, "web-0", "--", "rm", "ready")
        await expect(watch, {**both, "web-0": (ips["web-0"], False, False, False)},
                     "web-0 not ready")
        await cli(cluster, "exec", "-n", ns, "web-0", "--", "touch", "ready")
        await expect(watch, both, "web-0 ready again")

        await api.delete("pods", "web-1", ns)
        await expect(watch, {"web-0": both["web-0"]}, "web-1 gone")
        assert "web-1" in watch.seen_terminating
    assert watch.violations == []


async def test_load_balancer_address_from_the_cluster_pool(cluster, api, ns):
    await api.create(obj(service_doc(ns)))
    text = await asyncio.to_thread((cluster.home / "network.json").read_text)
    block = json.loads(text)["block"]

    async def ingress():
        svc = await api.get("services", "web", ns)
        got = [(i.ip, i.ip_mode) for i in svc.status.load_balancer.ingress]
        return got or Seen(got)

    ((ip, mode),) = await wait_for(ingress, WAIT_S, message="an LB address")
    assert ip.startswith(f"127.1.{block}.") and mode == "VIP"
