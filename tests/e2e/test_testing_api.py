"""kubemu.testing.Cluster as a user's test meets it: real supervisor, real processes."""
from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from kubemu import cluster_home
from kubemu.client.wait import WaitTimeout, wait_for
from kubemu.testing import API_ONLY, Cluster, ClusterError

pytestmark = pytest.mark.e2e

WAIT_S = 30.0

CONFIGMAPS_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: from-yaml-1}
data: {k: one}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: from-yaml-2}
data: {k: two}
"""


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


async def test_an_api_only_cluster_runs_etcd_and_the_apiserver_and_leaves_nothing(tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-file}\n"
                        "data: {k: file}\n")
    cluster = Cluster(components=API_ONLY)
    async with cluster:
        home = cluster.home
        processes = await asyncio.to_thread(cluster.status)
        assert [(p.name, p.state) for p in processes] == [("etcd-0", "running"),
                                                          ("apiserver-0", "running")]
        pids = [p.pid for p in processes] + [cluster._supervisor.pid]

        applied = await cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "from-dict"}, "data": {"k": "dict"}},
                                      namespace="kube-public")
        assert applied[0]["metadata"]["namespace"] == "kube-public"
        await cluster.apply(CONFIGMAPS_YAML)
        await cluster.apply(manifest)
        again = await cluster.apply(str(manifest))  # unchanged: applied twice is fine
        assert again[0]["data"] == {"k": "file"}
        names = sorted(c.metadata.name for c in (await cluster.client.list("configmaps",
                                                                           "default")).items)
        assert {"from-yaml-1", "from-yaml-2", "from-file"} <= set(names), names
        assert "apiserver listening" in await asyncio.to_thread(cluster.logs, "apiserver-0")
        with pytest.raises(KeyError, match="apiserver-0"):
            cluster.logs("scheduler-0")

        with pytest.raises(WaitTimeout, match=r"an empty list.*last value: \[\]"):
            await cluster.wait_for(lambda: [], timeout_s=0.2, message="an empty list")
    assert not home.exists(), "a temporary home is removed by down()"
    assert not cluster.running
    assert await asyncio.to_thread(alive, pids) == []


async def test_faults_by_process_name_and_the_cluster_heals():
    async with Cluster(components=API_ONLY) as cluster:
        before = {p.name: p for p in await asyncio.to_thread(cluster.status)}
        await cluster.kill("apiserver-0")

        async def restarted():
            now = {p.name: p for p in await asyncio.to_thread(cluster.status)}
            ap = now["apiserver-0"]
            return ap.state == "running" and ap.restarts > before["apiserver-0"].restarts and ap
        after = await wait_for(restarted, WAIT_S, interval_s=0.1, message="apiserver-0 restarted")
        assert after.pid != before["apiserver-0"].pid
        await wait_for(lambda: cluster.client.list("namespaces"), WAIT_S,
                       message="the API answers again")

        await cluster.stop("apiserver-0")
        stopped = {p.name: p.state for p in await asyncio.to_thread(cluster.status)}
        assert stopped["apiserver-0"] == "stopped"
        await cluster.start("apiserver-0")
        await wait_for(lambda: cluster.client.list("namespaces"), WAIT_S,
                       message="the API answers after start")

        with pytest.raises(Exception, match="no-such-process"):
            await cluster.kill("no-such-process")


def test_a_sync_cluster_and_a_given_home_is_kept(tmp_path):
    home = tmp_path / "home"
    with Cluster(components=API_ONLY, home=home) as cluster:
        assert cluster.home == home.resolve()
        assert cluster.address.startswith("127.")
    assert (home / "logs" / "apiserver-0.log").is_file(), "a given home is kept, logs and all"
    assert cluster_home.find_home_processes(home) == []
    with pytest.raises(ClusterError, match="not up"):
        cluster.address


_KILLED_PARENT = textwrap.dedent("""
    import asyncio, os, sys
    from kubemu.testing import Cluster

    async def main(home):
        cluster = Cluster(nodes=1, home=home)
        await cluster.aup()
        await cluster.apply({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "sleeper", "namespace": "default"},
                             "spec": {"containers": [{"name": "main", "image": "busybox",
                                                      "command": ["sh", "-c", "exec sleep 3600"]}]}})

        async def running():
            pod = await cluster.client.get("pods", "sleeper", "default")
            return pod.status.phase == "Running"
        await cluster.wait_for(running, 60)
        print("ready", cluster._supervisor.pid, flush=True)
        await asyncio.Event().wait()   # the test SIGKILLs this process here

    asyncio.run(main(sys.argv[1]))
""")


async def test_a_test_process_killed_with_sigkill_leaves_no_kubemu_process(tmp_path):
    home = tmp_path / "home"
    script = tmp_path / "parent.py"
    script.write_text(_KILLED_PARENT)
    parent = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(home), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    lines: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not lines or not lines[-1].startswith("ready"):
                line = await parent.stdout.readline()
                assert line, "the parent exited before its cluster was ready:\n" + "".join(lines)
                lines.append(line.decode(errors="replace"))
        found = await asyncio.to_thread(cluster_home.find_home_processes, home)
        containers = await asyncio.to_thread(cluster_home.container_processes, home)
        assert containers, "the pod's process runs"
        pids = sorted({p.pid for p in found} | {p.pid for p in containers})
        assert len(pids) >= 6, found  # supervisor, reaper, etcd, apiserver, ..., the pod
        os.kill(parent.pid, signal.SIGKILL)
        await parent.wait()

        async def nothing_left():
            left = await asyncio.to_thread(cluster_home.find_home_processes, home)
            running = await asyncio.to_thread(alive, pids)
            return (not left and not running) or None
        try:
            await wait_for(nothing_left, WAIT_S, interval_s=0.2,
                           message="every process of the killed test's cluster gone")
        except WaitTimeout:
            left = await asyncio.to_thread(cluster_home.find_home_processes, home)
            pytest.fail(f"left behind: {cluster_home.describe(left)}")
    finally:
        if parent.returncode is None:
            os.kill(parent.pid, signal.SIGKILL)
            await parent.wait()
        left = await asyncio.to_thread(cluster_home.find_home_processes, home)
        await asyncio.to_thread(cluster_home.terminate, left, 5.0)


@pytest.mark.parametrize("shape, reason", [
    ({"components": ["kubelet"]}, "'etcd' is required"),
    ({"components": ["etcd", "apiserver", "kubelet"]}, "'kubelet' needs 'runtime'"),
    ({"components": ["etcd", "apiserver", "kube-scheduler"]}, "unknown 'kube-scheduler'"),
    ({"nodes": 1, "components": API_ONLY}, "a node needs 'runtime' and 'kubelet'"),
    ({"nodes": -1}, "nodes: must be >= 0"),
    ({"profile": "slow"}, "profile: must be one of fast, default"),
])
def test_a_shape_that_cannot_run_is_refused_before_anything_starts(shape, reason):
    with pytest.raises(ValueError, match=reason):
        Cluster(**shape)


def test_the_home_given_is_where_the_cluster_lives(tmp_path):
    cluster = Cluster(home=tmp_path / "h")
    assert cluster.home == (tmp_path / "h").resolve()
    assert pathlib.Path(cluster.home).name == "h"


async def test_nodes_are_added_and_removed_by_name():
    async with Cluster(nodes=1) as cluster:
        assert await cluster.wait_for_nodes(1) == ["node-1"]
        assert await cluster.add_node() == "node-2"
        assert await cluster.wait_for_nodes(2) == ["node-1", "node-2"]
        names = {p.name for p in await asyncio.to_thread(cluster.status)}
        assert {"node-2/runtime", "node-2/kubelet", "node-2/kube-proxy"} <= names, names
        await cluster.remove_node("node-1")
        assert await cluster.wait_for_nodes(1) == ["node-2"]
        left = [p.name for p in await asyncio.to_thread(cluster.status) if p.node == "node-1"]
        assert left == []
        with pytest.raises(Exception, match="node-7.*node-2"):
            await cluster.remove_node("node-7")


async def test_a_cluster_without_a_kubelet_cannot_add_a_node():
    async with Cluster(components=API_ONLY) as cluster:
        with pytest.raises(ClusterError, match="runs no kubelet"):
            await cluster.add_node()
