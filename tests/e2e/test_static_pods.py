"""Static pods on a real cluster (etcd, apiserver, scheduler, controller-manager,
one node), as a Kubernetes user sees them: a manifest dropped into the node's
manifest directory (<home>/nodes/<node>/manifests, its kubelet's
--pod-manifest-path) runs without the scheduler and shows in `kubemu get pods`
as its mirror pod `<name>-<node>`, with Kubernetes' annotations and the Node as
its owner; deleting the mirror through the API brings it back (the kubelet
owns it); editing the file replaces the pod; removing the file stops the pod
and the mirror goes.
"""
from __future__ import annotations

import asyncio
import os
import signal

import psutil
import pytest

from deploy import components as comp
from kubemu import cluster_home
from kubemu.client.wait import wait_for
from kubemu.api import errors
from tests.e2e.test_kubelet import (KUBELET_FLAGS, NODE, RUNTIME_FLAGS, WAIT_S, ClusterThread,
                                    Seen, cli, pod_json, serving,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

MIRROR = f"static-web-{NODE}"
MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: static-web
  labels:
    role: myrole
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: busybox
      command: ["sh", "-c", "echo {word}; exec sleep 3600"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    node_kinds = comp.node_components(
        runtime_flags=RUNTIME_FLAGS,
        kubelet_flags=[*KUBELET_FLAGS, "--file-check-frequency", "500ms"])
    yield from serving(ClusterThread(tmp_path_factory.mktemp("static-home"),
                                     node_kinds=node_kinds, kinds=workload_control_plane()))


def running(pod: dict | None) -> bool:
    statuses = (pod or {}).get("status", {}).get("containerStatuses", [])
    return pod is not None and pod["status"].get("phase") == "Running" and bool(statuses) \
        and all("running" in s.get("state", {}) for s in statuses)


async def mirror(api, check, what: str) -> dict:
    async def seen():
        try:
            pod = await pod_json(api, "default", MIRROR)
        except errors.NotFound:
            return Seen("no mirror pod") if not check(None) else "gone"
        return pod if check(pod) else Seen(pod.get("status"))
    return await wait_for(seen, WAIT_S, interval_s=0.1, message=what)


async def test_static_pod_runs_with_a_mirror_pod_and_stops_with_its_file(cluster, api):
    directory = cluster_home.manifests_dir(cluster.home, NODE)
    path = directory / "static-web.yaml"
    await asyncio.to_thread(path.write_text, MANIFEST.format(word="one"))

    first = await mirror(api, running, "mirror Running")
    meta = first["metadata"]
    annotations = meta["annotations"]
    assert annotations["kubernetes.io/config.source"] == "file"
    assert annotations["kubernetes.io/config.mirror"] == annotations["kubernetes.io/config.hash"]
    assert annotations["kubernetes.io/config.seen"]
    assert meta["labels"] == {"role": "myrole"}
    node = await api.get("nodes", NODE)
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": NODE,
                                        "uid": node.metadata.uid, "controller": True}]
    assert first["spec"]["nodeName"] == NODE
    out = await cli(cluster, "get", "pods")
    assert out.returncode == 0, out.stderr
    assert [line.split()[:3] for line in out.stdout.splitlines()] == [
        ["NAME", "READY", "STATUS"], [MIRROR, "1/1", "Running"]]
    out = await cli(cluster, "logs", MIRROR)
    assert (out.returncode, out.stdout) == (0, "one\n"), out.stderr

    # Deleting the mirror through the API: the kubelet makes it again; the pod runs on.
    out = await cli(cluster, "delete", "pod", MIRROR, "--wait=false")
    assert out.returncode == 0, out.stderr
    again = await mirror(api, lambda p: running(p) and p["metadata"]["uid"] != meta["uid"], "mirror made again")
    assert again["metadata"]["annotations"]["kubernetes.io/config.hash"] == \
        annotations["kubernetes.io/config.hash"]
    assert again["status"]["containerStatuses"][0]["restartCount"] == 0

    # An edit is a new pod (new hash): its mirror is replaced.
    await asyncio.to_thread(path.write_text, MANIFEST.format(word="two"))
    edited = await mirror(api, lambda p: running(p) and
                          p["metadata"]["annotations"]["kubernetes.io/config.hash"] !=
                          annotations["kubernetes.io/config.hash"], "edited pod Running")
    async def logs_two():
        out = await cli(cluster, "logs", MIRROR)
        return out if out.stdout == "two\n" else Seen(out.stdout + out.stderr)
    await wait_for(logs_two, WAIT_S, interval_s=0.2, message="the edited pod's log")
    # This cluster's containers only: the other pytest worker's pods run
    # `sleep 3600` too, and live on.
    def sleeper(proc: psutil.Process) -> bool:
        try:
            return proc.cmdline()[-2:] == ["sleep", "3600"]
        except psutil.Error:  # ended since it was listed
            return False
    pids = await asyncio.to_thread(lambda: {
        p.pid for p in cluster_home.container_processes(cluster.home, NODE) if sleeper(p)})
    assert pids, "the edited static pod's process"

    # Removing the file stops the pod; its mirror goes.
    await asyncio.to_thread(path.unlink)
    await mirror(api, lambda p: p is None, "mirror deleted")

    async def stopped():
        alive = await asyncio.to_thread(lambda: [pid for pid in pids if psutil.pid_exists(pid)
                                                 and psutil.Process(pid).status()
                                                 != psutil.STATUS_ZOMBIE])
        return not alive or Seen(alive)
    await wait_for(stopped, WAIT_S, interval_s=0.2, message="the pod's process gone")
    assert edited["metadata"]["name"] == MIRROR


async def test_a_restarted_kubelet_keeps_its_static_pod_and_mirror(cluster, api):
    """The kubelet is the pod's only source: killed and restarted, it reads the
    same manifest (same hash), adopts the running container and keeps the mirror."""
    path = cluster_home.manifests_dir(cluster.home, NODE) / "keep.yaml"
    await asyncio.to_thread(path.write_text, MANIFEST.replace("static-web", "keep")
                            .format(word="kept"))
    name = f"keep-{NODE}"

    async def keep_running():
        try:
            pod = await pod_json(api, "default", name)
        except errors.NotFound:
            return Seen("no mirror pod")
        return pod if running(pod) else Seen(pod.get("status"))
    before = await wait_for(keep_running, WAIT_S, interval_s=0.1, message="keep Running")

    def kubelet():
        [found] = [p for p in cluster.cluster.status() if p.component == comp.KUBELET]
        return found
    killed = kubelet()
    os.kill(killed.pid, signal.SIGKILL)
    await wait_for(lambda: kubelet().restarts == killed.restarts + 1
                   and kubelet().state == cluster_home.ProcState.RUNNING and kubelet().pid != killed.pid,
                   WAIT_S, interval_s=0.1, message="kubelet restarted")

    async def settled():
        pod = await pod_json(api, "default", name)
        statuses = pod["status"].get("containerStatuses", [])
        return pod if running(pod) and statuses[0]["containerID"] == \
            before["status"]["containerStatuses"][0]["containerID"] else Seen(pod["status"])
    after = await wait_for(settled, WAIT_S, interval_s=0.2, message="same container")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    await asyncio.to_thread(path.unlink)
    await wait_for(lambda: _gone(api, name), WAIT_S, interval_s=0.1, message="keep deleted")


async def _gone(api, name: str) -> bool:
    try:
        await api.get("pods", name, "default")
    except errors.NotFound:
        return True
    return False
