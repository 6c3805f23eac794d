"""Killing the controller-manager: nothing is doubled, nothing stalls.

- kill -9 in the middle of a scale-up: the supervisor restarts it; at no watch
  event are there more live pods than replicas, and the scale-up completes.
- kill -9 in the middle of a rolling update: at no watch event are there
  more live pods than replicas + maxSurge, and the rollout completes.
- two controller-managers (no restarts): killing the leader hands the Lease
  to the standby within the lease duration (read from the Lease's own times),
  and the new leader acts.
Each test runs its own cluster (supervisor, fast profile) and stops it.
"""
from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from deploy import components as comp
from deploy.supervisor import Cluster, find_home_processes, kill_processes
from kubemu import timefmt
from kubemu.client.clientset import Client
from kubemu.client.informer import Informer
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen, fast_node_kinds, obj, workload_control_plane

pytestmark = pytest.mark.chaos

START_TIMEOUT_S = 90.0
WAIT_S = 90.0
# The fast profile's lease timings (deploy/components.py CONTROLLER_MANAGER_FAST_FLAGS).
LEASE_DURATION_S = 4.0
RETRY_PERIOD_S = 0.5


async def run_cluster(home, **kwargs: Any):
    cluster = Cluster(home, nodes=2, kinds=workload_control_plane(),
                      node_kinds=fast_node_kinds(), progress=lambda line: None, **kwargs)
    await cluster.start(START_TIMEOUT_S)
    return cluster


async def stop_cluster(cluster: Cluster) -> None:
    left = await cluster.shutdown()
    strays = find_home_processes(cluster.home, by_cmdline=False)
    if strays:
        kill_processes(strays)
    assert not left and not strays, f"left after shutdown: {left} {strays}"


@pytest.fixture
async def cluster(tmp_path):
    running = await run_cluster(tmp_path / "home")
    try:
        yield running
    finally:
        await stop_cluster(running)


@pytest.fixture
async def api(cluster):
    async with Client(cluster.address(comp.APISERVER), timeout_s=10.0) as client:
        yield client


def deployment(name: str, replicas: int, image_tag: str = "1", **strategy: Any) -> dict:
    spec: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"terminationGracePeriodSeconds": 1,
                              "containers": [{"name": "main", "image": "busybox",
                                              "command": ["sh", "-c",
                                                          f"echo {image_tag}; exec sleep 3600"]}]}}}
    if strategy:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


class LivePods:
    """Counts the pods of one app that are not terminating, at every watch event."""

    def __init__(self, api: Client, app: str):
        self.informer = Informer(api, "pods", "default", label_selector=f"app={app}")
        self.most = 0
        self.informer.add_handler(self._seen, lambda _old, new: self._seen(new),
                                  lambda _obj: self._seen(None))

    def live(self) -> list:
        return [p for p in self.informer.list() if not p.metadata.deletion_timestamp]

    def _seen(self, _pod) -> None:
        self.most = max(self.most, len(self.live()))

    async def __aenter__(self) -> "LivePods":
        self.informer.start()
        await self.informer.wait_synced(10.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.informer.stop()


def cm_pid(cluster: Cluster, name: str = "controller-manager-0") -> int:
    pid = next(p.pid for p in cluster.status() if p.name == name)
    assert pid, f"{name} has no pid"
    return pid


async def kill_cm(cluster: Cluster, name: str = "controller-manager-0") -> int:
    pid = cm_pid(cluster, name)
    os.kill(pid, signal.SIGKILL)

    async def restarted():
        now = next(p for p in cluster.status() if p.name == name)
        return now.pid and now.pid != pid and now.state == "running" or Seen(str(now))
    await wait_for(restarted, WAIT_S, interval_s=0.1, message=f"{name} restarted")
    return pid


async def deployment_done(api: Client, name: str, replicas: int, pods: LivePods):
    async def done():
        d = await api.get("deployments", name, "default")
        s = d.status
        ok = (s.observed_generation == d.metadata.generation and s.updated_replicas == replicas
              and s.available_replicas == replicas and s.replicas == replicas
              and len(pods.live()) == replicas)
        return d if ok else Seen(f"{s} live={len(pods.live())}")
    return await wait_for(done, WAIT_S, interval_s=0.2, message=f"deployment {name} complete")


async def test_kill_during_a_scale_up_never_overshoots_and_completes(cluster, api):
    replicas = 12
    async with LivePods(api, "up") as pods:
        await api.create(obj(deployment("up", replicas)))
        await wait_for(lambda: len(pods.live()) >= 2 or Seen(len(pods.live())), WAIT_S,
                       interval_s=0.02, message="scale-up under way")
        await kill_cm(cluster)
        await deployment_done(api, "up", replicas, pods)
        assert pods.most <= replicas, f"{pods.most} live pods for {replicas} replicas"


async def test_kill_during_a_rollout_keeps_the_surge_bound_and_completes(cluster, api):
    replicas, surge = 6, 1
    async with LivePods(api, "roll") as pods:
        await api.create(obj(deployment("roll", replicas, maxSurge=surge, maxUnavailable=0)))
        await deployment_done(api, "roll", replicas, pods)
        pods.most = 0
        old = {p.metadata.labels["pod-template-hash"] for p in pods.live()}
        await api.patch("deployments", "roll", "default", patch={"spec": {"template": {
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": [
                "sh", "-c", "echo 2; exec sleep 3600"]}]}}}})

        def new_pod_seen():
            hashes = {p.metadata.labels.get("pod-template-hash") for p in pods.live()}
            return bool(hashes - old) or Seen(str(hashes))
        await wait_for(new_pod_seen, WAIT_S, interval_s=0.02, message="rollout under way")
        await kill_cm(cluster)
        await deployment_done(api, "roll", replicas, pods)
        assert pods.most <= replicas + surge, \
            f"{pods.most} live pods for {replicas} replicas and maxSurge {surge}"
        assert not {p.metadata.labels["pod-template-hash"] for p in pods.live()} & old


async def test_the_standby_takes_over_within_the_lease_duration(tmp_path):
    # No restarts: a restarted leader would race the standby for the expired
    # lease (both poll every retry period) and win half the time.
    cluster = await run_cluster(tmp_path / "home", controller_managers=2, restart=False)
    try:
        async with Client(cluster.address(comp.APISERVER), timeout_s=10.0) as api:
            async def lease():
                got = await api.get("leases", "kube-controller-manager", "kube-system")
                return got if got.spec.holder_identity else Seen("no holder")
            before = await wait_for(lease, WAIT_S, message="a leader")
            leader = before.spec.holder_identity.rsplit("_", 1)[0]
            standby = ({"controller-manager-0", "controller-manager-1"} - {leader}).pop()
            os.kill(cm_pid(cluster, leader), signal.SIGKILL)

            async def taken_over():
                got = await api.get("leases", "kube-controller-manager", "kube-system")
                return got if got.spec.holder_identity.startswith(standby + "_") \
                    else Seen(got.spec.holder_identity)
            after = await wait_for(taken_over, WAIT_S, interval_s=0.1, message="take-over")
            # The dead leader's last renewal to the standby's acquisition, by the
            # Lease's own clock: the lease duration plus at most a retry period
            # (and scheduling slack on a loaded machine).
            last_renew = timefmt.parse_rfc3339(before.spec.renew_time)
            acquired = timefmt.parse_rfc3339(after.spec.acquire_time)
            assert acquired - last_renew <= LEASE_DURATION_S + RETRY_PERIOD_S + 2.0, \
                f"took {acquired - last_renew:.2f}s after the last renewal"
            # And the new leader acts.
            async with LivePods(api, "after") as pods:
                await api.create(obj(deployment("after", 2)))
                await deployment_done(api, "after", 2, pods)
    finally:
        await stop_cluster(cluster)
