"""The kubelet over time: container logs rotate, a failing PLEG is reported and
recovers, and a whole cluster stopped and started again on its home picks its
pods up with restart counts that never go down.

The module's cluster (etcd, apiserver, one node) runs the kubelet with small
log limits (--container-log-max-size 4Ki, --container-log-max-files 3,
checked every 0.2 s) and a fault directory (--fault-dir). The restart test
runs clusters of its own, on one home, one after the other.
"""
from __future__ import annotations

import os
import pathlib
import re
import stat

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy import components as comp
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (serving, KUBELET_FLAGS, NODE, RUNTIME_FLAGS, WAIT_S, ClusterThread,
                                    Seen, alive, busybox, cli, container_pid, container_status,
                                    create_pod, is_ready, isolation, pod_doc,
                                    pod_json, running, wait_pod)

pytestmark = pytest.mark.e2e

LOG_MAX_BYTES = 4096
LOG_MAX_FILES = 3


def node_kinds(fault_dir: pathlib.Path) -> tuple[comp.ComponentKind, ...]:
    flags = [*KUBELET_FLAGS, "--container-log-max-size", "4Ki",
             "--container-log-max-files", str(LOG_MAX_FILES),
             "--container-log-monitor-interval-s", "0.2", "--fault-dir", str(fault_dir)]
    return comp.node_components(runtime_flags=RUNTIME_FLAGS, kubelet_flags=flags)


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, faults):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("lifecycle-home"),
                                     node_kinds=node_kinds(faults)))


def log_dir(cluster: ClusterThread, pod: dict, container: str = "main") -> pathlib.Path:
    m = pod["metadata"]
    return (cluster.home / "nodes" / NODE / "kubelet" / "logs" /
            f"{m['namespace']}_{m['name']}_{m['uid']}" / container)


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^line (\d+) ", text, re.M)]


# ---------------------------------------------------------------- logs

async def test_logs_rotate_keep_at_most_max_files_under_max_size_and_read_across_them(
        cluster, api, ns):
    # About 1.5 KiB a second: a rotation every few seconds.
    script = ('i=0; while true; do echo "line $i ................................."; '
              'i=$((i+1)); sleep 0.03; done')
    await create_pod(api, pod_doc("chatty", ns, [busybox(script)]))
    pod = await wait_pod(api, ns, "chatty", running)
    directory = log_dir(cluster, pod)
    observed = []

    def files():
        found = sorted(directory.iterdir())  # the rotation note (.0.log.rotation) included
        sizes = {f.name: f.stat().st_size for f in found if not f.name.startswith(".")}
        observed.append(sizes)
        rotated = {n: s for n, s in sizes.items() if n != "0.log"}
        # Never more than max-files files; every rotated one under max-size.
        assert len(sizes) <= LOG_MAX_FILES, sizes
        assert all(s <= LOG_MAX_BYTES for s in rotated.values()), sizes
        for f in found:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        return len(rotated) == LOG_MAX_FILES - 1 and len(observed) > 20 or Seen(sizes)
    # Until the oldest rotated file has been dropped at least once.
    await wait_for(files, WAIT_S, interval_s=0.1, message="logs rotated")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700

    async def rotated_twice_more():
        names = {n for sizes in observed for n in sizes if n != "0.log"}
        files()
        return len(names) >= LOG_MAX_FILES + 1 or Seen(sorted(names))
    await wait_for(rotated_twice_more, WAIT_S, interval_s=0.1, message="old rotations dropped")

    # --tail reads back across the live file into the rotated ones: no line lost
    # (lines written while it reads come too, as with the kubelet).
    tail = await cli(cluster, "logs", "-n", ns, "chatty", "--tail", "150")
    assert tail.returncode == 0, tail.stderr
    got = numbers(tail.stdout)
    assert len(got) >= 150 and got == list(range(got[0], got[0] + len(got))), got
    whole = await cli(cluster, "logs", "-n", ns, "chatty")
    every = numbers(whole.stdout)
    assert every == sorted(every) and every[-1] >= got[-1] - 5 and len(every) > 150


# ---------------------------------------------------------------- a failing loop

async def kubelet_health(cluster: ClusterThread) -> int:
    async with grpc.aio.insecure_channel(cluster.cluster.address(comp.KUBELET, NODE)) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2.0)
    return reply.status


async def test_a_failing_pleg_is_logged_reported_not_serving_and_recovers(
        cluster, api, ns, faults):
    serving = health_pb2.HealthCheckResponse.SERVING
    assert await kubelet_health(cluster) == serving
    fault = faults / "pleg-relist"
    fault.touch()
    try:
        async def not_serving():
            status = await kubelet_health(cluster)
            return status != serving or Seen(status)
        await wait_for(not_serving, WAIT_S, interval_s=0.05, message="kubelet NOT_SERVING")
        log = (cluster.home / "logs" / "node-1-kubelet.log").read_text()
        assert '"loop": "pleg"' in log and "injected fault 'pleg-relist'" in log
    finally:
        fault.unlink()

    async def serving_again():
        status = await kubelet_health(cluster)
        return status == serving or Seen(status)
    await wait_for(serving_again, WAIT_S, interval_s=0.05, message="kubelet SERVING again")
    # Pods are synced again: a new pod runs, and its container's exit is seen and
    # the container restarted.
    await create_pod(api, pod_doc("after", ns, [busybox("exec sleep 3600")]))
    pod = await wait_pod(api, ns, "after", running)
    os.kill(await container_pid(cluster.runtime_socket(), container_status(pod)["containerID"]), 9)

    def restarted(p):
        cs = container_status(p)
        return cs.get("restartCount") == 1 and "running" in cs.get("state", {})
    await wait_pod(api, ns, "after", restarted, what="restarted after the fault")


# ---------------------------------------------------------------- a cluster restart

async def test_after_a_cluster_restart_exec_logs_and_restart_counts_follow_the_new_instance(
        tmp_path):
    home = tmp_path / "home"
    first = ClusterThread(home, node_kinds=node_kinds(tmp_path))
    await first.astart()
    try:
        async with Client(first.apiserver, timeout_s=10.0) as api:
            # The shell reads its own pid (`$$` is Kubernetes' escape for `$`).
            script = 'read pid rest < /proc/self/stat; echo "pid $pid"; exec sleep 3600'
            await create_pod(api, pod_doc("steady", "default", [busybox(script)]))
            await create_pod(api, pod_doc("bumped", "default", [busybox(script)]))
            pod = await wait_pod(api, "default", "bumped", running)
            old_pid = await container_pid(first.runtime_socket(),
                                          container_status(pod)["containerID"])
            os.kill(old_pid, 9)

            def restarted(p):
                cs = container_status(p)
                return cs.get("restartCount") == 1 and "running" in cs.get("state", {})
            await wait_pod(api, "default", "bumped", restarted, what="bumped restarted")
            await wait_pod(api, "default", "steady", lambda p: running(p) and is_ready(p))
            before = {name: container_status(await pod_json(api, "default", name))
                      for name in ("steady", "bumped")}
            pids = [await container_pid(first.runtime_socket(), cs["containerID"])
                    for cs in before.values()]
    finally:
        left = await first.astop()
    assert not left, left
    assert not [pid for pid in pids if alive(pid)], "a pod process outlived its cluster"

    second = ClusterThread(home, node_kinds=node_kinds(tmp_path))
    await second.astart()
    try:
        async with Client(second.apiserver, timeout_s=10.0) as api:
            for name, old in before.items():
                def again(p, old=old):
                    cs = container_status(p)
                    return "running" in cs.get("state", {}) and \
                        cs.get("containerID") != old["containerID"]
                pod = await wait_pod(api, "default", name, again, what=f"{name} running again")
                cs = container_status(pod)
                assert cs["restartCount"] == old["restartCount"] + 1, (old, cs)
                pid = await container_pid(second.runtime_socket(), cs["containerID"])
                isolated = await isolation(api) == "namespaces"
                if isolated:
                    pid = 1  # the first process of its own PID namespace
                logs = await cli(second, "logs", name)
                assert logs.returncode == 0, logs.stderr
                assert logs.stdout == f"pid {pid}\n", (name, logs.stdout)
                out = await cli(second, "exec", name, "--", "echo", "reached")
                assert (out.returncode, out.stdout) == (0, "reached\n"), out.stderr
                previous = await cli(second, "logs", name, "--previous")
                assert previous.returncode == 0, previous.stderr
                assert previous.stdout.startswith("pid ")
                assert isolated or previous.stdout != logs.stdout  # (every PID 1 is pid 1)
    finally:
        left = await second.astop()
    assert not left, left
    second.cluster.assert_no_processes()
