"""The StatefulSet controller on a real cluster (whole control plane, two
nodes): a 3-replica StatefulSet whose pods become Ready only through their
readiness probe starts web-0, web-1, web-2 strictly in order, each only after
its predecessor is Ready (checked at every watch event); a file written into
web-1's claim is still there after web-1 is deleted and recreated; a
scale-down removes the highest ordinal first, one at a time."""
from __future__ import annotations

import pytest

from kubemu.api import errors
from kubemu.client.wait import wait_for
from tests.component.test_statefulset import OrderWatch
from tests.e2e.test_kubelet import (ClusterThread, Seen, cli, obj, serving,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

WAIT_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("statefulset-home"), nodes=2,
                                     kinds=workload_control_plane()))


def web(ns: str, replicas: int = 3) -> dict:
    """nginx's StatefulSet from the Kubernetes docs, with busybox: Ready one
    second after it starts (so a successor started too early would show)."""
    container = {"name": "nginx", "image": "busybox",
                 "command": ["sh", "-c", "sleep 1; touch ready; exec sleep 3600"],
                 "readinessProbe": {"exec": {"command": ["sh", "-c", "test -e ready"]},
                                    "periodSeconds": 1},
                 "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": replicas, "serviceName": "nginx",
                     "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [container]}},
                     "volumeClaimTemplates": [{
                         "metadata": {"name": "www"},
                         "spec": {"accessModes": ["ReadWriteOnce"],
                                  "resources": {"requests": {"storage": "1Gi"}}}}]}}


def is_ready(pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def ready_pods(api, ns: str) -> dict:
    listed = await api.list("pods", ns, label_selector="app=nginx")
    return {p.metadata.name: p for p in listed.items
            if is_ready(p) and not p.metadata.deletion_timestamp}


async def wait_ready(api, ns: str, names: list[str]) -> dict:
    async def exactly():
        pods = await ready_pods(api, ns)
        return [pods] if sorted(pods) == sorted(names) else Seen(sorted(pods))
    (pods,) = await wait_for(exactly, WAIT_S, interval_s=0.1, message=f"Ready {names}")
    return pods


@pytest.fixture
async def sts(api, ns):
    """The namespace of the StatefulSet web, which is deleted (before the ns
    fixture deletes the pods, so nothing recreates them) at the end."""
    yield ns
    try:
        await api.delete("statefulsets", "web", ns)
    except errors.NotFound:
        pass


async def test_pods_start_strictly_in_order_each_after_its_predecessor_is_ready(api, sts):
    ns = sts
    async with OrderWatch(api, "web", ns, "app=nginx") as watch:
        await api.create(obj(web(ns)))
        pods = await wait_ready(api, ns, ["web-0", "web-1", "web-2"])
        assert watch.created == ["web-0", "web-1", "web-2"]
        assert watch.violations == []
    for i, pod in enumerate(sorted(pods.values(), key=lambda p: p.metadata.name)):
        assert (pod.spec.hostname, pod.spec.subdomain) == (f"web-{i}", "nginx")
        (volume,) = [v for v in pod.spec.volumes if v.name == "www"]
        assert volume.persistent_volume_claim.claim_name == f"www-web-{i}"
    assert {p.spec.node_name for p in pods.values()} <= {"node-1", "node-2"}

    async def status_done():
        got = await api.get("statefulsets", "web", ns)
        s = got.status
        return s if (s.replicas, s.ready_replicas, s.current_replicas, s.updated_replicas) \
            == (3, 3, 3, 3) and s.current_revision == s.update_revision else Seen(str(s))
    await wait_for(status_done, WAIT_S, interval_s=0.1, message="status 3/3")


async def test_a_file_in_web_1s_claim_survives_its_deletion_and_recreation(cluster, api, sts):
    ns = sts
    await api.create(obj(web(ns, replicas=2)))
    old = (await wait_ready(api, ns, ["web-0", "web-1"]))["web-1"]
    out = await cli(cluster, "exec", "-n", ns, "web-1", "--", "sh", "-c",
                    "echo kept > usr/share/nginx/html/file")
    assert out.returncode == 0, out.stderr

    await api.delete("pods", "web-1", ns)

    async def recreated():
        pods = await ready_pods(api, ns)
        again = pods.get("web-1")
        return again if again is not None and again.metadata.uid != old.metadata.uid \
            else Seen(sorted(pods))
    new = await wait_for(recreated, WAIT_S, interval_s=0.1, message="web-1 recreated")
    (volume,) = [v for v in new.spec.volumes if v.name == "www"]
    assert volume.persistent_volume_claim.claim_name == "www-web-1"
    out = await cli(cluster, "exec", "-n", ns, "web-1", "--", "cat",
                    "usr/share/nginx/html/file")
    assert (out.returncode, out.stdout) == (0, "kept\n"), out.stderr


async def test_scale_down_removes_the_highest_ordinal_first(cluster, api, sts):
    ns = sts
    await api.create(obj(web(ns)))
    await wait_ready(api, ns, ["web-0", "web-1", "web-2"])
    async with OrderWatch(api, "web", ns, "app=nginx") as watch:
        out = await cli(cluster, "scale", "-n", ns, "statefulset/web", "--replicas=1")
        assert (out.returncode, out.stdout) == (0, "statefulset.apps/web scaled\n"), out.stderr

        async def only_web_0():
            names = sorted(p.metadata.name
                           for p in (await api.list("pods", ns, label_selector="app=nginx")).items)
            return names == ["web-0"] or Seen(names)
        await wait_for(only_web_0, WAIT_S, interval_s=0.1, message="scaled down to web-0")
        assert watch.deleted == ["web-2", "web-1"]
        assert watch.violations == []
    # The claims stay (persistentVolumeClaimRetentionPolicy Retain).
    claims = sorted(c.metadata.name for c in (await api.list("persistentvolumeclaims", ns)).items)
    assert claims == ["www-web-0", "www-web-1", "www-web-2"]


async def test_rolling_update_replaces_pods_highest_first_each_after_the_rest_are_ready(
        cluster, api, sts):
    ns = sts
    await api.create(obj(web(ns)))
    await wait_ready(api, ns, ["web-0", "web-1", "web-2"])
    async with OrderWatch(api, "web", ns, "app=nginx") as watch:
        out = await cli(cluster, "set", "image", "-n", ns, "statefulset/web",
                        "nginx=busybox:1.36")
        assert out.returncode == 0, out.stderr
        out = await cli(cluster, "rollout", "status", "-n", ns, "statefulset/web",
                        "--timeout=60s")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == \
            "partitioned roll out complete: 3 new pods have been updated..."
        pods = await wait_ready(api, ns, ["web-0", "web-1", "web-2"])
        assert [name for name, _ in watch.marked] == ["web-2", "web-1", "web-0"]
        assert [unready for _, unready in watch.marked] == [[], [], []]
        assert watch.created_early == []
    status = (await api.get("statefulsets", "web", ns)).status
    assert status.current_revision == status.update_revision
    for pod in pods.values():
        assert pod.spec.containers[0].image == "busybox:1.36"
        assert pod.metadata.labels["controller-revision-hash"] == status.update_revision
    first = next(r for r in (await api.list("controllerrevisions", ns)).items
                 if r.metadata.name != status.update_revision)

    # Undo: the first template comes back under its own revision, renumbered 3.
    out = await cli(cluster, "rollout", "undo", "-n", ns, "statefulset/web")
    assert (out.returncode, out.stdout) == (0, "statefulset.apps/web rolled back\n"), out.stderr
    out = await cli(cluster, "rollout", "status", "-n", ns, "statefulset/web", "--timeout=60s")
    assert out.returncode == 0, out.stderr
    status = (await api.get("statefulsets", "web", ns)).status
    assert status.update_revision == first.metadata.name
    revisions = {r.metadata.name: r.revision
                 for r in (await api.list("controllerrevisions", ns)).items}
    assert revisions[first.metadata.name] == 3 and sorted(revisions.values()) == [2, 3]
    out = await cli(cluster, "rollout", "history", "-n", ns, "statefulset/web")
    assert [line.split()[0] for line in out.stdout.splitlines()[2:] if line.strip()] == \
        ["2", "3"], out.stdout
    pods = await wait_ready(api, ns, ["web-0", "web-1", "web-2"])
    assert {p.spec.containers[0].image for p in pods.values()} == {"busybox"}
