"""Killing node processes: pods outlive their kubelet and their runtime, and nothing
outlives the cluster.

- kill -9 of the kubelet: every pod process keeps running with the same pid;
  the restarted kubelet reports the same containers (same ids, restartCount
  0, still Ready) and goes on managing them (a deletion, a new pod).
- kill -9 of the runtime: the same; the restarted runtime re-adopts the pod
  processes, and a re-adopted container that then dies is restarted by the
  kubelet (its exit status was lost with the old runtime: 255, Unknown).
- shutdown (the supervisor's, and `kubemu down`): no pod process is left,
  including one that ignores SIGTERM.
Each test runs its own cluster (supervisor Cluster, fast timings) and stops it.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from deploy.supervisor import Cluster, find_home_processes, kill_processes
from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (REPO, Seen, WAIT_S, alive, as_dict, busybox, container_pid,
                                    container_status, control_plane, create_pod, fast_node_kinds,
                                    is_ready, pod_doc, pod_json, running, wait_pod)

pytestmark = pytest.mark.chaos

NODE = "node-1"
START_TIMEOUT_S = 90.0


@pytest.fixture
async def node_cluster(tmp_path):
    cluster = Cluster(tmp_path / "home", nodes=1, kinds=control_plane(),
                      node_kinds=fast_node_kinds(), progress=lambda line: None)
    await cluster.start(START_TIMEOUT_S)
    try:
        yield cluster
    finally:
        left = await cluster.shutdown()
        strays = find_home_processes(cluster.home, by_cmdline=False)
        if strays:
            kill_processes(strays)
        assert not left and not strays, f"left after shutdown: {left} {strays}"


@pytest.fixture
async def api(node_cluster):
    client = Client(node_cluster.address("apiserver"), timeout_s=10.0)
    try:
        yield client
    finally:
        await client.close()


def kuard(name: str = "main") -> dict:
    return {"name": name, "image": "gcr.io/kuar-demo/kuard-amd64:blue",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"},
                               "periodSeconds": 1}}


async def start_pods(api: Client, cluster: Cluster) -> dict[str, tuple[str, int]]:
    """Two running pods; name -> (container id, pid)."""
    await create_pod(api, pod_doc("sleeper", "default", [busybox("exec sleep 3600")]))
    await create_pod(api, pod_doc("web", "default", [kuard()]))
    seen = {}
    for name in ("sleeper", "web"):
        pod = await wait_pod(api, "default", name, lambda p: running(p) and is_ready(p))
        cid = container_status(pod)["containerID"]
        seen[name] = (cid, await container_pid(cluster.address("runtime", NODE), cid))
    return seen


def process_of(cluster: Cluster, component: str):
    return next(s for s in cluster.status() if s.component == component and s.node == NODE)


async def kill_and_wait_restart(cluster: Cluster, component: str) -> None:
    before = process_of(cluster, component)
    os.kill(before.pid, signal.SIGKILL)

    def restarted():
        now = process_of(cluster, component)
        return now.restarts > before.restarts and now.state == "running" and now.pid != before.pid
    await wait_for(restarted, 30, interval_s=0.05, message=f"{component} restarted")


async def assert_same_containers(api: Client, cluster: Cluster,
                                 seen: dict[str, tuple[str, int]]) -> None:
    for name, (cid, pid) in seen.items():
        assert alive(pid), f"{name}'s process {pid} died"
        pod = await pod_json(api, "default", name)
        cs = container_status(pod)
        assert (cs["containerID"], cs["restartCount"]) == (cid, 0), cs
        assert "running" in cs["state"] and cs["ready"] is True
        assert await container_pid(cluster.address("runtime", NODE), cid) == pid


async def test_kill_9_of_the_kubelet_leaves_pods_running_and_adopted(node_cluster, api):
    seen = await start_pods(api, node_cluster)
    await kill_and_wait_restart(node_cluster, "kubelet")
    for name, (_, pid) in seen.items():
        assert alive(pid), f"{name} died with the kubelet"

    async def still_same():
        await assert_same_containers(api, node_cluster, seen)
        return True
    # The restarted kubelet has synced the pods and changed nothing about them.
    await wait_for(still_same, WAIT_S, interval_s=0.2, message="same containers after restart")
    node = as_dict(await api.get("nodes", NODE))
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"

    # It goes on managing them: a deletion stops the process, a new pod starts.
    await api.delete("pods", "sleeper", "default", grace_period_s=1)

    async def gone():
        try:
            await api.get("pods", "sleeper", "default")
            return False
        except errors.NotFound:
            return True
    await wait_for(gone, WAIT_S, interval_s=0.1, message="sleeper deleted")
    assert not alive(seen["sleeper"][1])
    await create_pod(api, pod_doc("late", "default", [busybox("exec sleep 3600")]))
    late = await wait_pod(api, "default", "late", running)
    web = await pod_json(api, "default", "web")
    assert late["status"]["podIP"] != web["status"]["podIP"]
    await assert_same_containers(api, node_cluster, {"web": seen["web"]})


async def test_kill_9_of_the_runtime_leaves_pods_running_and_readopted(node_cluster, api):
    seen = await start_pods(api, node_cluster)
    await kill_and_wait_restart(node_cluster, "runtime")
    for name, (_, pid) in seen.items():
        assert alive(pid), f"{name} died with the runtime"

    async def still_same():
        await assert_same_containers(api, node_cluster, seen)
        return True
    await wait_for(still_same, WAIT_S, interval_s=0.2, message="same containers after restart")

    # An adopted container that dies is noticed and restarted by the kubelet.
    cid, pid = seen["sleeper"]
    os.kill(pid, signal.SIGKILL)

    def restarted(pod):
        cs = container_status(pod)
        return cs.get("restartCount") == 1 and "running" in cs.get("state", {})
    pod = await wait_pod(api, "default", "sleeper", restarted, what="sleeper restarted")
    terminated = container_status(pod)["lastState"]["terminated"]
    assert terminated["containerID"] == cid
    assert (terminated["exitCode"], terminated["reason"]) == (255, "Unknown")
    await assert_same_containers(api, node_cluster, {"web": seen["web"]})


async def test_shutdown_leaves_no_pod_process(tmp_path):
    cluster = Cluster(tmp_path / "home", nodes=1, kinds=control_plane(),
                      node_kinds=fast_node_kinds(), progress=lambda line: None)
    await cluster.start(START_TIMEOUT_S)
    pids = []
    try:
        async with Client(cluster.address("apiserver"), timeout_s=10.0) as api:
            await create_pod(api, pod_doc("calm", "default", [busybox("exec sleep 3600")]))
            await create_pod(api, pod_doc("stubborn", "default", [busybox(
                "trap '' TERM; while true; do sleep 0.1; done")],
                terminationGracePeriodSeconds=1))
            for name in ("calm", "stubborn"):
                pod = await wait_pod(api, "default", name, running)
                pids.append(await container_pid(cluster.address("runtime", NODE),
                                                container_status(pod)["containerID"]))
    finally:
        left = await cluster.shutdown()
    assert not left
    assert [pid for pid in pids if alive(pid)] == []
    cluster.assert_no_processes()


def kubemu(home, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBEMU_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=150, cwd=REPO)


async def test_kubemu_down_leaves_no_pod_process(tmp_path):
    home = tmp_path / "home"
    pid = 0
    try:
        up = await asyncio.to_thread(kubemu, home, "up", "--detach", "--nodes", "1")
        assert up.returncode == 0, up.stdout + up.stderr
        nodes = await asyncio.to_thread(kubemu, home, "get", "nodes", "-o", "json")
        assert [n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]] == [NODE]
        manifest = json.dumps(pod_doc("sleeper", "default", [busybox("exec sleep 3600")]))
        created = await asyncio.to_thread(kubemu, home, "apply", "-f", "-", stdin=manifest)
        assert created.returncode == 0, created.stderr
        async with Client.from_home(home, timeout_s=10.0) as api:
            pod = await wait_pod(api, "default", "sleeper", running)
        state = json.loads((home / "state.json").read_text())
        runtime = next(p for p in state["processes"] if p["component"] == "runtime")
        socket = runtime["address"]
        pid = await container_pid(socket, container_status(pod)["containerID"])
        assert alive(pid)
    finally:
        down = await asyncio.to_thread(kubemu, home, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no process left" in down.stdout
    assert pid and not alive(pid)

    async def nothing_left():
        return not find_home_processes(home.resolve()) or Seen(
            [p.pid for p in find_home_processes(home.resolve())])
    await wait_for(nothing_left, 10, interval_s=0.1, message="no process of the home")
