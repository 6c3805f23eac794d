"""PersistentVolumeClaims on a real cluster (one node, the whole control plane
with the fast profile): a claim of the default class `standard` waits for its
first consumer, is provisioned on the node its pod is scheduled to, and the
pod sees the volume's directory; a file written there outlives the pod and is
read by the next one; deleting the claim removes the volume and its
directory (reclaim Delete)."""
from __future__ import annotations

import pathlib

import pytest

from kubemu.api import errors
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (WAIT_S, Seen, busybox, cli, create_pod, delete_pods, obj,
                                    pod_doc, running, wait_pod)

pytestmark = pytest.mark.e2e


# A cluster of its own (kubemu.testing's marker): the whole control plane in
# the fast profile and one node.
@pytest.mark.kubemu(nodes=1)
async def test_a_default_class_claim_is_provisioned_for_its_pod_and_outlives_it(
        kubemu_cluster, kubemu_client, kubemu_namespace):
    cluster, api, ns = kubemu_cluster, kubemu_client, kubemu_namespace
    await api.create(obj({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                          "metadata": {"name": "data", "namespace": ns},
                          "spec": {"accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": "1Gi"}}}}))

    async def waiting():
        pvc = await api.get("persistentvolumeclaims", "data", ns)
        return pvc if pvc.status.phase == "Pending" else Seen(pvc.status.phase)
    await wait_for(waiting, WAIT_S)

    mount = [{"name": "data", "mountPath": "/data"}]
    claim = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    writer = busybox("echo kept > data/file", volumeMounts=mount)
    await create_pod(api, pod_doc("writer", ns, [writer], restartPolicy="Never", volumes=claim))
    await wait_pod(api, ns, "writer", lambda p: p["status"].get("phase") == "Succeeded")

    pvc = await api.get("persistentvolumeclaims", "data", ns)
    assert pvc.status.phase == "Bound"
    assert pvc.metadata.annotations["volume.kubernetes.io/selected-node"] == "node-1"
    pv = await api.get("persistentvolumes", pvc.spec.volume_name)
    path = pathlib.Path(pv.spec.host_path.path)
    assert path.parent == cluster.home / "volumes"
    assert (path / "file").read_text() == "kept\n"

    await delete_pods(api, ns)
    await create_pod(api, pod_doc("reader", ns, [busybox("exec sleep 3600", volumeMounts=mount)],
                                  volumes=claim))
    await wait_pod(api, ns, "reader", running)
    out = await cli(cluster, "exec", "-n", ns, "reader", "--", "cat", "data/file")
    assert out.stdout == "kept\n", out.stderr
    await delete_pods(api, ns)

    await api.delete("persistentvolumeclaims", "data", ns)

    async def reclaimed():
        try:
            got = await api.get("persistentvolumes", pv.metadata.name)
        except errors.NotFound:
            return not path.exists() or Seen(f"{path} still there")
        return Seen(got.status.phase)
    await wait_for(reclaimed, WAIT_S)
