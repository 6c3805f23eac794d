"""etcd snapshots on a real cluster: `kubemu etcd snapshot save|status`, then
more objects (and a Deployment whose pods run), then a restore
(`kubemu etcd snapshot restore`: the supervisor's RestoreEtcd control call,
deploy.supervisor.Cluster.restore_etcd): the later objects are gone, their pods' processes stop,
and the cluster is healthy and writable again.

The restore moves etcd's revision past every version a client has seen, so
each informer (kubelet, scheduler, controllers) relists on its next watch;
the kubelet sees its pods gone in the relist and stops them.
"""
from __future__ import annotations

import asyncio
import secrets

import pytest

from deploy.supervisor import ClusterError
from kubemu.api import errors
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (ClusterThread, Seen, alive, busybox, cli, container_pid, kubemu,
                                    obj, serving, workload_control_plane)

pytestmark = pytest.mark.e2e

WAIT_S = 60.0
RESTORE_S = 180.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("snapshot-home"), nodes=1,
                                     kinds=workload_control_plane()))


def configmap(name: str, namespace: str, value: str) -> object:
    return obj({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace}, "data": {"v": value}})


def sleeper(name: str, namespace: str, replicas: int) -> object:
    return obj({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": {
                             "terminationGracePeriodSeconds": 1,
                             "containers": [busybox("sleep 3600")]}}}})


async def running_pods(api, namespace: str, replicas: int):
    pods = (await api.list("pods", namespace)).items
    up = [p for p in pods if p.status.phase == "Running" and p.status.container_statuses
          and p.status.container_statuses[0].container_id]
    return up if len(up) == replicas else Seen([(p.metadata.name, p.status.phase) for p in pods])


async def exists(api, resource: str, name: str, namespace: str = "") -> bool:
    try:
        await api.get(resource, name, namespace)
    except errors.NotFound:
        return False
    return True


async def test_restore_drops_later_objects_and_stops_their_pods(cluster, api, tmp_path):
    ns = f"t-{secrets.token_hex(4)}"
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    await api.create(configmap("before", ns, "1"))
    snapshot = tmp_path / "etcd.db"

    saved = await cli(cluster, "etcd", "snapshot", "save", str(snapshot))
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == f"Snapshot saved at {snapshot}\n"
    status = await cli(cluster, "etcd", "snapshot", "status", str(snapshot))
    assert status.returncode == 0, status.stderr
    header = status.stdout.splitlines()[1]
    for column in ("HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"):
        assert column in header, status.stdout

    # Written after the snapshot: gone after the restore.
    await api.create(configmap("after", ns, "2"))
    before = await api.get("configmaps", "before", ns)
    before.data["v"] = "changed"
    await api.update(before)
    await api.create(sleeper("later", ns, 2))
    pods = await wait_for(lambda: running_pods(api, ns, 2), WAIT_S, message="later's pods running")
    socket = cluster.runtime_socket()
    pids = [await container_pid(socket, p.status.container_statuses[0].container_id)
            for p in pods]
    assert all(alive(pid) for pid in pids), pids

    # Through the command and the supervisor's control API, as a user restores.
    restored = await asyncio.to_thread(kubemu, cluster, "etcd", "snapshot", "restore",
                                       str(snapshot), timeout_s=RESTORE_S)
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout, restored.stdout

    assert not await exists(api, "configmaps", "after", ns)
    assert not await exists(api, "deployments", "later", ns)
    assert (await api.get("configmaps", "before", ns)).data["v"] == "1"

    async def pods_stopped():
        left = [pid for pid in pids if alive(pid)]
        return not left or Seen({"alive": left})
    await wait_for(pods_stopped, WAIT_S, message="the later Deployment's processes stopped")
    remaining = (await api.list("pods", ns)).items
    assert remaining == [], [p.metadata.name for p in remaining]

    # Healthy and writable: every process answers, a new Deployment's pod runs.
    await asyncio.to_thread(cluster.call, cluster.cluster.wait_healthy(WAIT_S), WAIT_S + 10)
    await api.create(configmap("post", ns, "3"))
    await api.create(sleeper("again", ns, 1))
    await wait_for(lambda: running_pods(api, ns, 1), WAIT_S, message="again's pod running")
    await api.delete("deployments", "again", ns)


async def test_restore_from_a_file_that_is_no_snapshot_changes_nothing(cluster, api, tmp_path):
    bogus = tmp_path / "not-a-snapshot.db"
    bogus.write_bytes(b"\0" * 4096)
    pids = {s.component: s.pid for s in cluster.cluster.status() if not s.node}
    with pytest.raises(ClusterError, match="not-a-snapshot.db"):
        await asyncio.to_thread(cluster.call, cluster.cluster.restore_etcd(bogus, RESTORE_S),
                                RESTORE_S + 10)
    # Refused before anything was stopped: the same processes serve.
    assert {s.component: s.pid for s in cluster.cluster.status() if not s.node} == pids
    await api.get("namespaces", "default")
