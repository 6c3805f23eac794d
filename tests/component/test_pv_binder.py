"""The PersistentVolume binder in the real controller-manager process on a real
apiserver (no nodes): claims bind to the smallest volume that fits, a claim
pre-bound by volumeName gets that volume, phases Pending / Available / Bound /
Released / Failed follow, reclaim Retain keeps a released volume and Delete
of a volume kubemu did not provision fails as Kubernetes says; the
local-path provisioner makes a directory and a volume for a
WaitForFirstConsumer claim once a pod using it is on a node, and removes both
when the claim goes."""
from __future__ import annotations

import pathlib

import pytest

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0
NS = "default"


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def pv_doc(name: str, size: str, *, modes: tuple = ("ReadWriteOnce",), klass: str = "",
           policy: str = "Retain", claim: str = "", labels: dict | None = None) -> dict:
    spec: dict = {"capacity": {"storage": size}, "accessModes": list(modes),
                  "hostPath": {"path": f"/tmp/kubemu-test-pv/{name}"},
                  "persistentVolumeReclaimPolicy": policy}
    if klass:
        spec["storageClassName"] = klass
    if claim:
        spec["claimRef"] = {"namespace": NS, "name": claim}
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def pvc_doc(name: str, size: str, *, modes: tuple = ("ReadWriteOnce",), klass: str | None = "",
            volume: str = "") -> dict:
    spec: dict = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if klass is not None:
        spec["storageClassName"] = klass
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


@pytest.fixture
async def cm(tmp_path, apiserver):
    volumes = tmp_path / "volumes"
    proc = await ControllerManagerProc(tmp_path, apiserver.address, "--controllers",
                                       "persistentvolume-binder",
                                       "--volumes-dir", str(volumes)).astart()
    proc.volumes_dir = volumes
    try:
        yield proc
    finally:
        await proc.astop()


async def wait_phase(client, resource: str, name: str, phase: str, namespace: str = ""):
    async def there():
        got = await client.get(resource, name, namespace)
        return got if got.status.phase == phase else Seen((got.status.phase,
                                                           got.status.message))
    return await wait_for(there, WAIT_S, interval_s=0.1, message=f"{resource}/{name} {phase}")


async def test_a_claim_binds_the_smallest_volume_that_fits(cm, client):
    await client.create(obj(pv_doc("small", "1Gi")))
    await client.create(obj(pv_doc("rwx", "5Gi", modes=("ReadWriteMany",))))
    await client.create(obj(pv_doc("medium", "5Gi")))
    await client.create(obj(pv_doc("large", "10Gi")))
    await client.create(obj(pv_doc("classy", "5Gi", klass="fast")))
    for name in ("small", "medium", "large", "classy"):
        await wait_phase(client, "persistentvolumes", name, "Available")

    await client.create(obj(pvc_doc("data", "2Gi")))
    pvc = await wait_phase(client, "persistentvolumeclaims", "data", "Bound", NS)
    assert pvc.spec.volume_name == "medium"
    assert (dict(pvc.status.capacity), list(pvc.status.access_modes)) == (
        {"storage": "5Gi"}, ["ReadWriteOnce"])
    assert pvc.metadata.annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert pvc.metadata.annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    pv = await wait_phase(client, "persistentvolumes", "medium", "Bound")
    ref = pv.spec.claim_ref
    assert (ref.kind, ref.namespace, ref.name, ref.uid) == (
        "PersistentVolumeClaim", NS, "data", pvc.metadata.uid)

    # Nothing fits 20Gi and no class is set: Pending, with Kubernetes' event.
    await client.create(obj(pvc_doc("huge", "20Gi")))
    await wait_phase(client, "persistentvolumeclaims", "huge", "Pending", NS)

    async def told():
        events = (await client.list("events", NS)).items
        found = [e for e in events if e.involved_object.name == "huge"]
        return found if any(
            e.reason == "FailedBinding" and e.message == "no persistent volumes available for "
            "this claim and no storage class is set" for e in found) else Seen(
            [(e.reason, e.message) for e in found])
    await wait_for(told, WAIT_S)
    # A big enough volume appears later: the pending claim takes it.
    await client.create(obj(pv_doc("jumbo", "50Gi")))
    pvc = await wait_phase(client, "persistentvolumeclaims", "huge", "Bound", NS)
    assert pvc.spec.volume_name == "jumbo"


async def test_pre_binding_both_ways(cm, client):
    # A claim naming its volume gets it though a smaller one would fit.
    await client.create(obj(pv_doc("tiny", "1Gi")))
    await client.create(obj(pv_doc("chosen", "8Gi")))
    await client.create(obj(pvc_doc("mine", "1Gi", volume="chosen")))
    pvc = await wait_phase(client, "persistentvolumeclaims", "mine", "Bound", NS)
    assert pvc.spec.volume_name == "chosen"
    assert "pv.kubernetes.io/bound-by-controller" not in pvc.metadata.annotations
    # A volume whose claimRef names a claim is kept for it.
    await client.create(obj(pv_doc("reserved", "1Gi", claim="later")))
    await wait_phase(client, "persistentvolumes", "reserved", "Available")
    await client.create(obj(pvc_doc("later", "1Gi")))
    pvc = await wait_phase(client, "persistentvolumeclaims", "later", "Bound", NS)
    assert pvc.spec.volume_name == "reserved"
    # A volume bound elsewhere is refused to a claim naming it.
    await client.create(obj(pvc_doc("thief", "1Gi", volume="reserved")))

    async def refused():
        events = (await client.list("events", NS)).items
        got = [(e.reason, e.message) for e in events if e.involved_object.name == "thief"]
        return got if ("FailedBinding", 'volume "reserved" already bound to a different '
                       'claim.') in got else Seen(got)
    await wait_for(refused, WAIT_S)
    assert (await client.get("persistentvolumeclaims", "thief", NS)).status.phase == "Pending"


async def test_released_volumes_follow_their_reclaim_policy(cm, client):
    await client.create(obj(pv_doc("kept", "1Gi", policy="Retain", labels={"pick": "kept"})))
    await client.create(obj(pv_doc("doomed", "1Gi", policy="Delete", klass="static")))
    await client.create(obj(pvc_doc("a", "1Gi")))
    await client.create(obj(pvc_doc("b", "1Gi", klass="static")))
    await wait_phase(client, "persistentvolumeclaims", "a", "Bound", NS)
    await wait_phase(client, "persistentvolumeclaims", "b", "Bound", NS)
    await client.delete("persistentvolumeclaims", "a", NS)
    await client.delete("persistentvolumeclaims", "b", NS)
    kept = await wait_phase(client, "persistentvolumes", "kept", "Released")
    assert kept.spec.claim_ref.name == "a"
    failed = await wait_phase(client, "persistentvolumes", "doomed", "Failed")
    assert failed.status.message == ('error getting deleter volume plugin for volume "doomed": '
                                     'no deletable volume plugin matched')


async def test_local_path_provisioning_waits_for_a_scheduled_consumer(cm, client):
    async def default_class():
        try:
            return await client.get("storageclasses", "standard")
        except errors.NotFound:
            return Seen("no storageclass standard")
    sc = await wait_for(default_class, WAIT_S)
    assert (sc.provisioner, sc.volume_binding_mode, sc.reclaim_policy,
            sc.metadata.annotations["storageclass.kubernetes.io/is-default-class"]) == (
        "kubemu.io/local-path", "WaitForFirstConsumer", "Delete", "true")

    await client.create(obj({"apiVersion": "v1", "kind": "Node",
                             "metadata": {"name": "node-a",
                                          "labels": {"kubernetes.io/hostname": "node-a"}}}))
    pvc = await client.create(obj(pvc_doc("www", "1Gi", klass=None)))
    await wait_phase(client, "persistentvolumeclaims", "www", "Pending", NS)

    async def waiting_told():
        events = (await client.list("events", NS)).items
        got = [(e.reason, e.message) for e in events if e.involved_object.name == "www"]
        return got if ("WaitForFirstConsumer", "waiting for first consumer to be created "
                       "before binding") in got else Seen(got)
    await wait_for(waiting_told, WAIT_S)
    assert not list(pathlib.Path(cm.volumes_dir).glob("pvc-*"))

    # A pod using it lands on node-a (bound by the test: no scheduler here).
    await client.create(obj({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": NS},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "www", "persistentVolumeClaim": {"claimName": "www"}}]}}))
    pvc = await wait_phase(client, "persistentvolumeclaims", "www", "Bound", NS)
    assert {k: v for k, v in pvc.metadata.annotations.items() if k != "pv.kubernetes.io/"
            "bind-completed"} == {
        "volume.kubernetes.io/selected-node": "node-a",
        "volume.kubernetes.io/storage-provisioner": "kubemu.io/local-path",
        "volume.beta.kubernetes.io/storage-provisioner": "kubemu.io/local-path",
        "pv.kubernetes.io/bound-by-controller": "yes"}
    assert pvc.metadata.annotations["pv.kubernetes.io/bind-completed"] == "yes"
    pv_name = f"pvc-{pvc.metadata.uid}"
    assert pvc.spec.volume_name == pv_name
    pv = await wait_phase(client, "persistentvolumes", pv_name, "Bound")
    path = pathlib.Path(cm.volumes_dir) / f"pvc-{pvc.metadata.uid}_{NS}_www"
    assert pv.spec.host_path.path == str(path) and path.is_dir()
    assert (pv.spec.storage_class_name, pv.spec.persistent_volume_reclaim_policy,
            pv.metadata.annotations["pv.kubernetes.io/provisioned-by"]) == (
        "standard", "Delete", "kubemu.io/local-path")
    term = pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
    assert (term.key, term.operator, list(term.values)) == (
        "kubernetes.io/hostname", "In", ["node-a"])
    events = (await client.list("events", NS)).items
    assert ("ProvisioningSucceeded", f"Successfully provisioned volume {pv_name} using "
            "kubemu.io/local-path") in [(e.reason, e.message) for e in events]

    # The claim goes while its pod is still there: the volume is Released but
    # its directory stays until the pod is gone; then reclaim Delete removes both.
    await client.delete("persistentvolumeclaims", "www", NS)
    await wait_phase(client, "persistentvolumes", pv_name, "Released")
    assert path.is_dir()
    await client.delete("pods", "web", NS, grace_period_s=0)

    async def volume_gone():
        try:
            got = await client.get("persistentvolumes", pv_name)
        except errors.NotFound:
            return not path.exists() or Seen("directory still there")
        return Seen(got.status.phase)
    await wait_for(volume_gone, WAIT_S)


async def test_a_claim_made_before_a_default_class_gets_it_later(cm, client):
    async def default_class():
        try:
            return await client.get("storageclasses", "standard")
        except errors.NotFound:
            return Seen("no storageclass standard")
    await wait_for(default_class, WAIT_S)
    await client.patch("storageclasses", "standard", patch={"metadata": {"annotations": {
        "storageclass.kubernetes.io/is-default-class": "false"}}})
    pvc = await client.create(obj(pvc_doc("early", "1Gi", klass=None)))
    assert not pvc.spec.HasField("storage_class_name"), "no default class at creation"
    await client.patch("storageclasses", "standard", patch={"metadata": {"annotations": {
        "storageclass.kubernetes.io/is-default-class": "true"}}})

    async def classed():
        got = await client.get("persistentvolumeclaims", "early", NS)
        return got if got.spec.storage_class_name == "standard" else Seen(str(got.spec))
    got = await wait_for(classed, WAIT_S)
    assert got.status.phase == "Pending"  # WaitForFirstConsumer: no pod yet


async def test_a_bound_claim_whose_volume_is_deleted_is_lost(cm, client):
    await client.create(obj(pv_doc("fragile", "1Gi")))
    await client.create(obj(pvc_doc("orphaned", "1Gi")))
    await wait_phase(client, "persistentvolumeclaims", "orphaned", "Bound", NS)
    await client.delete("persistentvolumes", "fragile")
    await wait_phase(client, "persistentvolumeclaims", "orphaned", "Lost", NS)
    events = (await client.list("events", NS)).items
    assert ("Warning", "ClaimLost") in [(e.type, e.reason) for e in events
                                        if e.involved_object.name == "orphaned"]
