"""The PersistentVolume binder and kubemu's local-path provisioner
(kubernetes/pkg/controller/volume/persistentvolume, and what rancher's
local-path-provisioner does for a kind cluster's `standard` class).

Claims (key "pvc:<ns>/<name>"):
- Bound ones (annotation pv.kubernetes.io/bind-completed) are kept Bound; a
  claim whose volume is gone, or bound elsewhere, becomes Lost (ClaimLost,
  ClaimMisbound).
- A claim with spec.volumeName (pre-bound) binds to that volume if it is
  free or already points at it and satisfies the claim; otherwise it stays
  Pending with Kubernetes' event.
- Otherwise the smallest Available volume that fits binds: the same class
  (the apiserver's DefaultStorageClass admission gives a claim with none the
  default class; a claim made before a default class existed gets it here,
  as Kubernetes' RetroactiveDefaultStorageClass), access modes a superset of
  the claim's, capacity at least the request, the same volumeMode, the claim's
  selector matching its labels; a volume pre-bound to the claim
  (claimRef) wins.
- No match: a claim of a class whose provisioner is `kubemu.io/local-path` is
  provisioned: a directory <volumes dir>/pvc-<uid>_<ns>_<name> and a
  PersistentVolume "pvc-<claim uid>" (hostPath, the class's reclaimPolicy,
  node affinity on the selected node) pre-bound to the claim, which then
  binds. With volumeBindingMode WaitForFirstConsumer nothing happens until a
  pod using the claim is scheduled: the binder then writes the annotation
  volume.kubernetes.io/selected-node (kube-scheduler's VolumeBinding
  plugin does it in Kubernetes; kubemu's scheduler has none) and provisions.
  Other provisioners are left to themselves (ExternalProvisioning).

Volumes (key "pv:<name>"): no claimRef (or a claimRef not yet bound) is
Available; a claimRef whose claim is bound to it is Bound; a claim that is
gone (another uid, or no such claim on a fresh read) makes the volume
Released, then its reclaim policy: Retain keeps it; Delete removes a
provisioned volume's directory and the PersistentVolume (once no pod still
uses the claim's name: kubemu has no pvc-protection finalizer), and fails any
other (no deleter plugin, as Kubernetes says of a hostPath outside /tmp).

Binding writes in Kubernetes' order (volume claimRef, volume phase, claim
volumeName, claim phase), each an update conditioned on the cached
resourceVersion, so a stale cache is a Conflict and a retry. At start the
binder creates the default StorageClass `standard` if there is none.
"""
from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
from typing import Any, Iterable

from google.protobuf.message import Message

from kubemu import fileutil, timefmt
from kubemu.api import errors, labels, quantity, scheduling
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from kubemu.client.events import NORMAL, WARNING
from kubemu.client.informer import object_of

from controller_manager import controllerutil as cu
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy

PROVISIONER = "kubemu.io/local-path"
DEFAULT_CLASS = "standard"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
DEFAULT_CLASS_ANNOTATIONS = (ANN_DEFAULT_CLASS, "storageclass.beta.kubernetes.io/is-default-class")
HOSTNAME_LABEL = "kubernetes.io/hostname"

PVC_PREFIX = "pvc:"
PV_PREFIX = "pv:"
BOOTSTRAP_KEY = "storageclass:bootstrap"

# Phases.
PENDING, AVAILABLE, BOUND, RELEASED, FAILED, LOST = (
    "Pending", "Available", "Bound", "Released", "Failed", "Lost")


def _claim_key(pvc: Message) -> str:
    return f"{pvc.metadata.namespace}/{pvc.metadata.name}"


def requested_storage(pvc: Any) -> str:
    return pvc.spec.resources.requests.get("storage", "0")


def claim_class(pvc: Any, default_class: str) -> str:
    """The class a claim asks for: its storageClassName, else (unset) the default's."""
    if pvc.spec.HasField("storage_class_name"):
        return pvc.spec.storage_class_name
    return default_class


def volume_mode(spec: Any) -> str:
    return spec.volume_mode if spec.HasField("volume_mode") and spec.volume_mode else "Filesystem"


def is_bound_to(pv: Any, pvc: Any) -> bool:
    """IsVolumeBoundToClaim: the claimRef names the claim (and its uid, when set)."""
    ref = pv.spec.claim_ref
    if not pv.spec.HasField("claim_ref") or (ref.namespace, ref.name) != (
            pvc.metadata.namespace, pvc.metadata.name):
        return False
    return not ref.uid or ref.uid == pvc.metadata.uid


def mismatch(pv: Any, pvc: Any, pvc_class: str) -> str:
    """Why `pv` cannot satisfy `pvc` ("" when it can): checkVolumeSatisfyClaim."""
    have = pv.spec.capacity.get("storage", "0")
    if quantity.compare(have, requested_storage(pvc)) < 0:
        return "requested PV is too small"
    if pv.spec.storage_class_name != pvc_class:
        return "storageClassName does not match"
    if volume_mode(pv.spec) != volume_mode(pvc.spec):
        return "incompatible volumeMode"
    if not set(pvc.spec.access_modes) <= set(pv.spec.access_modes):
        return "incompatible accessMode"
    return ""


def find_best_match(pvc: Any, volumes: Iterable[Any], pvc_class: str,
                    selected_node: Any | None = None) -> Any | None:
    """findBestMatchForClaim: a volume pre-bound to the claim that is big
    enough, else the smallest free volume that satisfies the claim."""
    try:
        selector = (labels.from_label_selector(pvc.spec.selector)
                    if pvc.spec.HasField("selector") else labels.EVERYTHING)
    except errors.ApiError:
        return None
    best = None
    for pv in volumes:
        if pv.metadata.deletion_timestamp:
            continue
        if volume_mode(pv.spec) != volume_mode(pvc.spec):
            continue
        if is_bound_to(pv, pvc):
            if quantity.compare(pv.spec.capacity.get("storage", "0"),
                                requested_storage(pvc)) >= 0:
                return pv
            continue
        if pv.spec.HasField("claim_ref"):
            continue
        if pv.status.phase not in (AVAILABLE, PENDING, ""):
            continue
        if selected_node is not None and not node_affinity_allows(pv, selected_node):
            continue
        if not selector.matches(pv.metadata.labels) or mismatch(pv, pvc, pvc_class):
            continue
        if best is None or quantity.compare(pv.spec.capacity.get("storage", "0"),
                                            best.spec.capacity.get("storage", "0")) < 0:
            best = pv
    return best


def node_affinity_allows(pv: Any, node: Any) -> bool:
    """The volume's required node affinity matches `node` (a Node); none: any node."""
    if not pv.spec.HasField("node_affinity") or not pv.spec.node_affinity.HasField("required"):
        return True
    return scheduling.selector_matches(pv.spec.node_affinity.required, node)


def claims_of(pod: Any) -> list[str]:
    return [v.persistent_volume_claim.claim_name for v in pod.spec.volumes
            if v.HasField("persistent_volume_claim")]


def volume_dir_name(pvc: Any) -> str:
    """local-path-provisioner's folder name: pvc-<uid>_<namespace>_<name>."""
    return f"pvc-{pvc.metadata.uid}_{pvc.metadata.namespace}_{pvc.metadata.name}"


def provisioned_volume(pvc: Any, sc: Any, path: str, node_name: str) -> core_pb2.PersistentVolume:
    """The PersistentVolume the local-path provisioner makes for `pvc`."""
    pv = core_pb2.PersistentVolume(api_version="v1", kind="PersistentVolume")
    pv.metadata.name = f"pvc-{pvc.metadata.uid}"
    pv.metadata.annotations[ANN_PROVISIONED_BY] = PROVISIONER
    pv.metadata.annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
    spec = pv.spec
    spec.capacity["storage"] = requested_storage(pvc)
    spec.access_modes.extend(pvc.spec.access_modes or ["ReadWriteOnce"])
    spec.host_path.path = path
    spec.host_path.type = "DirectoryOrCreate"
    spec.persistent_volume_reclaim_policy = (sc.reclaim_policy if sc.HasField("reclaim_policy")
                                             and sc.reclaim_policy else "Delete")
    spec.storage_class_name = sc.metadata.name
    spec.mount_options.extend(sc.mount_options)
    spec.volume_mode = volume_mode(pvc.spec)
    _set_claim_ref(pv, pvc)
    if node_name:
        term = spec.node_affinity.required.node_selector_terms.add()
        term.match_expressions.add(key=HOSTNAME_LABEL, operator="In", values=[node_name])
    return pv


def _set_claim_ref(pv: Any, pvc: Any) -> None:
    ref = pv.spec.claim_ref
    ref.kind, ref.api_version = "PersistentVolumeClaim", "v1"
    ref.namespace, ref.name = pvc.metadata.namespace, pvc.metadata.name
    ref.uid, ref.resource_version = pvc.metadata.uid, pvc.metadata.resource_version


def default_storage_class() -> Message:
    kind = REGISTRY.by_resource("storageclasses")
    sc = kind.message(api_version=kind.api_version, kind=kind.kind)
    sc.metadata.name = DEFAULT_CLASS
    sc.metadata.annotations[ANN_DEFAULT_CLASS] = "true"
    sc.provisioner = PROVISIONER
    sc.reclaim_policy = "Delete"
    sc.volume_binding_mode = WAIT_FOR_FIRST_CONSUMER
    return sc


class PersistentVolumeBinderController(Controller):
    name = "persistentvolume-binder-controller"
    aliases = ("persistentvolume-binder",)
    default_workers = 1
    resources = ("persistentvolumes", "persistentvolumeclaims", "pods", "nodes",
                 "storageclasses")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.volumes_dir = ctx.options.volumes_dir
        self.claims = self.informer("persistentvolumeclaims")
        self.volumes = self.informer("persistentvolumes")
        self.pods = self.informer("pods")
        self.nodes = self.informer("nodes")
        self.classes = self.informer("storageclasses")
        self.claims.add_handler(self._on_claim, lambda _old, new: self._on_claim(new),
                                self._on_claim_delete)
        self.volumes.add_handler(self._on_volume, lambda _old, new: self._on_volume(new),
                                 self._on_volume)
        self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), None)
        self.classes.add_handler(self._on_class, lambda _old, new: self._on_class(new), None)
        # Claims already told to wait for their first consumer (one event each).
        self._told_waiting: set[str] = set()
        if self.volumes_dir:
            self.enqueue(BOOTSTRAP_KEY)
        # Periodic re-sync (--pvclaimbinder-sync-period) is the informers' job
        # in Kubernetes; here each key re-queues itself while it waits.
        self.period_s = ctx.options.pv_sync_period_s

    # ------------------------------------------------------------ handlers

    def _on_claim(self, obj: Any) -> None:
        pvc = object_of(obj)
        self.enqueue(PVC_PREFIX + _claim_key(pvc))
        if pvc.spec.volume_name:
            self.enqueue(PV_PREFIX + pvc.spec.volume_name)

    def _on_claim_delete(self, obj: Any) -> None:
        pvc = object_of(obj)
        self._told_waiting.discard(pvc.metadata.uid)
        if pvc.spec.volume_name:
            self.enqueue(PV_PREFIX + pvc.spec.volume_name)
        for pv in self.volumes.list():
            if is_bound_to(pv, pvc):
                self.enqueue(PV_PREFIX + pv.metadata.name)

    def _on_volume(self, obj: Any) -> None:
        pv = object_of(obj)
        self.enqueue(PV_PREFIX + pv.metadata.name)
        ref = pv.spec.claim_ref
        if pv.spec.HasField("claim_ref") and ref.name:
            self.enqueue(f"{PVC_PREFIX}{ref.namespace}/{ref.name}")
        else:
            # A new free volume may be what a pending claim waits for (one
            # naming it, or any unbound one).
            for pvc in self.claims.list():
                if pvc.spec.volume_name in ("", pv.metadata.name):
                    self.enqueue(PVC_PREFIX + _claim_key(pvc))

    def _on_class(self, _sc: Message) -> None:
        # A new default class, or one that provisions: unbound claims look again.
        for pvc in self.claims.list():
            if not pvc.spec.volume_name:
                self.enqueue(PVC_PREFIX + _claim_key(pvc))

    def _on_pod(self, pod: Message) -> None:
        if not pod.spec.node_name:
            return
        for claim in claims_of(pod):
            self.enqueue(f"{PVC_PREFIX}{pod.metadata.namespace}/{claim}")

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        if key == BOOTSTRAP_KEY:
            await self._bootstrap()
        elif key.startswith(PVC_PREFIX):
            pvc = self.claims.get(key[len(PVC_PREFIX):])
            if pvc is not None and not pvc.metadata.deletion_timestamp:
                await self._sync_claim(pvc)
        elif key.startswith(PV_PREFIX):
            pv = self.volumes.get(key[len(PV_PREFIX):])
            if pv is not None:
                await self._sync_volume(pv)

    async def _bootstrap(self) -> None:
        if self._default_class() or self.classes.get(DEFAULT_CLASS) is not None:
            return
        try:
            await self.client.create(default_storage_class())
        except errors.AlreadyExists:
            pass

    def _default_class(self) -> str:
        """GetDefaultClass: of the classes marked default, the newest, then the
        first by name (as the apiserver's DefaultStorageClass admission)."""
        marked = sorted((sc for sc in self.classes.list()
                         if any(sc.metadata.annotations.get(a) == "true"
                                for a in DEFAULT_CLASS_ANNOTATIONS)),
                        key=lambda sc: sc.metadata.name)
        marked.sort(key=cu.created_s, reverse=True)
        return marked[0].metadata.name if marked else ""

    # ------------------------------------------------------------ claims

    async def _sync_claim(self, pvc: Any) -> None:
        if pvc.metadata.annotations.get(ANN_BIND_COMPLETED):
            await self._sync_bound_claim(pvc)
            return
        default_class = self._default_class()
        if not pvc.spec.HasField("storage_class_name") and default_class and \
                not pvc.spec.volume_name:
            # RetroactiveDefaultStorageClass: a claim made before any default
            # class existed gets it now (the update brings the claim back).
            new = copy(pvc)
            new.spec.storage_class_name = default_class
            await self.client.update(new)
            return
        pvc_class = claim_class(pvc, default_class)
        if pvc.spec.volume_name:
            await self._sync_prebound_claim(pvc, pvc_class)
            return
        sc = self.classes.get(pvc_class) if pvc_class else None
        node_name = pvc.metadata.annotations.get(ANN_SELECTED_NODE, "")
        if sc is not None and _waits_for_consumer(sc) and not node_name:
            await self._wait_for_consumer(pvc)
            return
        selected = self.nodes.get(node_name) if node_name else None
        pv = find_best_match(pvc, self.volumes.list(), pvc_class, selected)
        if pv is not None:
            await self._bind(pv, pvc)
            return
        await self._provision_or_wait(pvc, pvc_class, sc, node_name)

    async def _wait_for_consumer(self, pvc: Any) -> None:
        """WaitForFirstConsumer: nothing binds until a pod using the claim is
        scheduled; then its node goes into the claim's selected-node annotation
        (what kube-scheduler's VolumeBinding plugin writes at PreBind)."""
        await self._claim_status(pvc, PENDING)
        node_name = self._scheduled_consumer_node(pvc)
        if not node_name:
            if pvc.metadata.uid not in self._told_waiting:
                self._told_waiting.add(pvc.metadata.uid)
                self.recorder.record(pvc, NORMAL, "WaitForFirstConsumer",
                                     "waiting for first consumer to be created before binding")
            return
        new = copy(pvc)
        new.metadata.annotations[ANN_SELECTED_NODE] = node_name
        await self.client.update(new)  # the update brings the claim back with its node

    async def _sync_bound_claim(self, pvc: Any) -> None:
        if not pvc.spec.volume_name:
            await self._claim_lost(pvc, "ClaimLost",
                                   "Bound claim has lost reference to PersistentVolume. "
                                   "Data on the volume is lost!")
            return
        pv = self.volumes.get(pvc.spec.volume_name)
        if pv is None:
            try:
                pv = await self.client.get("persistentvolumes", pvc.spec.volume_name)
            except errors.NotFound:
                await self._claim_lost(pvc, "ClaimLost",
                                       "Bound claim has lost its PersistentVolume. "
                                       "Data on the volume is lost!")
                return
        if not pv.spec.HasField("claim_ref") or not pv.spec.claim_ref.name:
            await self._bind(pv, pvc)  # the volume forgot us: bind it again
            return
        if pv.spec.claim_ref.uid == pvc.metadata.uid:
            await self._bind(pv, pvc)  # finishes whatever step is missing; no-op when done
            return
        await self._claim_lost(pvc, "ClaimMisbound",
                               "Two claims are bound to the same volume, this one is bound "
                               "incorrectly")

    async def _sync_prebound_claim(self, pvc: Any, pvc_class: str) -> None:
        name = pvc.spec.volume_name
        pv = self.volumes.get(name)
        if pv is None:
            await self._claim_status(pvc, PENDING)
            self.recorder.record(pvc, NORMAL, "FailedBinding", f'volume "{name}" not found')
            self.enqueue_after(PVC_PREFIX + _claim_key(pvc), self.period_s)
            return
        if pv.spec.HasField("claim_ref") and pv.spec.claim_ref.name and not is_bound_to(pv, pvc):
            await self._claim_status(pvc, PENDING)
            self.recorder.record(pvc, NORMAL, "FailedBinding",
                                 f'volume "{name}" already bound to a different claim.')
            return
        problem = mismatch(pv, pvc, pvc_class)
        if problem:
            await self._claim_status(pvc, PENDING)
            self.recorder.record(pvc, WARNING, "VolumeMismatch",
                                 f'Cannot bind to requested volume "{name}": {problem}')
            return
        await self._bind(pv, pvc)

    async def _provision_or_wait(self, pvc: Any, pvc_class: str, sc: Any | None,
                                 node_name: str) -> None:
        await self._claim_status(pvc, PENDING)
        if not pvc_class:
            self.recorder.record(pvc, NORMAL, "FailedBinding",
                                 "no persistent volumes available for this claim and no "
                                 "storage class is set")
            return
        if sc is None:
            self.recorder.record(pvc, WARNING, "ProvisioningFailed",
                                 f'storageclass.storage.k8s.io "{pvc_class}" not found')
            self.enqueue_after(PVC_PREFIX + _claim_key(pvc), self.period_s)
            return
        if sc.provisioner != PROVISIONER or not self.volumes_dir:
            if pvc.metadata.annotations.get(ANN_STORAGE_PROVISIONER) != sc.provisioner:
                new = copy(pvc)
                new.metadata.annotations[ANN_STORAGE_PROVISIONER] = sc.provisioner
                new.metadata.annotations[ANN_BETA_STORAGE_PROVISIONER] = sc.provisioner
                await self.client.update(new)
                self.recorder.record(
                    pvc, NORMAL, "ExternalProvisioning",
                    f"Waiting for a volume to be created either by the external provisioner "
                    f"'{sc.provisioner}' or manually by the system administrator. If volume "
                    f"creation is delayed, please verify that the provisioner is running and "
                    f"correctly registered.")
            return
        await self._provision(pvc, sc, node_name if _waits_for_consumer(sc) else "")

    def _scheduled_consumer_node(self, pvc: Any) -> str:
        for pod in self.pods.by_index(BY_NAMESPACE, pvc.metadata.namespace):
            if pod.spec.node_name and not pod.metadata.deletion_timestamp and \
                    pvc.metadata.name in claims_of(pod):
                return pod.spec.node_name
        return ""

    async def _provision(self, pvc: Any, sc: Any, node_name: str) -> None:
        if pvc.metadata.annotations.get(ANN_STORAGE_PROVISIONER) != PROVISIONER:
            # setClaimProvisioner: who provisions the claim, before it is done.
            new = copy(pvc)
            new.metadata.annotations[ANN_STORAGE_PROVISIONER] = PROVISIONER
            new.metadata.annotations[ANN_BETA_STORAGE_PROVISIONER] = PROVISIONER
            pvc = await self.client.update(new)
        path = pathlib.Path(self.volumes_dir) / volume_dir_name(pvc)
        await asyncio.to_thread(fileutil.private_dir, path)
        pv = provisioned_volume(pvc, sc, str(path), node_name)
        try:
            pv = await self.client.create(pv)
        except errors.AlreadyExists:
            pv = await self.client.get("persistentvolumes", pv.metadata.name)
            if not is_bound_to(pv, pvc):
                raise errors.Conflict(
                    f'persistentvolume "{pv.metadata.name}" exists and is not bound to claim '
                    f'"{_claim_key(pvc)}"') from None
        else:
            self.recorder.record(pvc, NORMAL, "ProvisioningSucceeded",
                                 f"Successfully provisioned volume {pv.metadata.name} using "
                                 f"{PROVISIONER}")
        await self._bind(pv, pvc)

    async def _bind(self, pv: Any, pvc: Any) -> None:
        """bind(): volume claimRef, volume phase, claim volumeName, claim phase;
        each step only when not already done."""
        if not is_bound_to(pv, pvc) or not pv.spec.claim_ref.uid:
            new = copy(pv)
            _set_claim_ref(new, pvc)
            new.metadata.annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
            pv = await self.client.update(new)
        pv = await self._volume_status(pv, BOUND)
        if pvc.spec.volume_name != pv.metadata.name or \
                not pvc.metadata.annotations.get(ANN_BIND_COMPLETED):
            new = copy(pvc)
            new.spec.volume_name = pv.metadata.name
            new.metadata.annotations[ANN_BIND_COMPLETED] = "yes"
            if pvc.spec.volume_name != pv.metadata.name:
                new.metadata.annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
            pvc = await self.client.update(new)
        status = copy(pvc.status)
        status.phase = BOUND
        del status.access_modes[:]
        status.access_modes.extend(pv.spec.access_modes)
        status.capacity.clear()
        status.capacity.update(pv.spec.capacity)
        if status != pvc.status:
            new = copy(pvc)
            new.status.CopyFrom(status)
            await self.client.update_status(new)

    async def _claim_status(self, pvc: Any, phase: str) -> None:
        if pvc.status.phase == phase:
            return
        new = copy(pvc)
        new.status.phase = phase
        if phase != BOUND:
            del new.status.access_modes[:]
            new.status.capacity.clear()
        await self.client.update_status(new)

    async def _claim_lost(self, pvc: Any, reason: str, message: str) -> None:
        if pvc.status.phase != LOST:
            await self._claim_status(pvc, LOST)
            self.recorder.record(pvc, WARNING, reason, message)

    # ------------------------------------------------------------ volumes

    async def _volume_status(self, pv: Any, phase: str, message: str = "") -> Any:
        if pv.status.phase == phase and pv.status.message == message:
            return pv
        new = copy(pv)
        new.status.phase = phase
        new.status.message = message
        new.status.last_phase_transition_time = timefmt.rfc3339(self.ctx.clock())
        return await self.client.update_status(new)

    async def _sync_volume(self, pv: Any) -> None:
        ref = pv.spec.claim_ref
        if not pv.spec.HasField("claim_ref") or not ref.name:
            await self._volume_status(pv, AVAILABLE)
            return
        pvc = self.claims.get(f"{ref.namespace}/{ref.name}")
        if pvc is None and ref.uid:
            # The cache may lag: a fresh read decides that the claim is gone.
            try:
                pvc = await self.client.get("persistentvolumeclaims", ref.name, ref.namespace)
            except errors.NotFound:
                pvc = None
        if not ref.uid:
            # Pre-bound by the user to a claim that has not bound yet.
            if pv.status.phase in (PENDING, ""):
                await self._volume_status(pv, AVAILABLE)
            return
        if pvc is None or pvc.metadata.uid != ref.uid:
            await self._release(pv)
            return
        if pvc.spec.volume_name == pv.metadata.name:
            await self._volume_status(pv, BOUND)
            return
        if not pvc.spec.volume_name:
            return  # the claim's own sync finishes the binding
        # The claim is bound to another volume.
        if pv.metadata.annotations.get(ANN_BOUND_BY_CONTROLLER):
            new = copy(pv)
            new.spec.ClearField("claim_ref")
            new.metadata.annotations.pop(ANN_BOUND_BY_CONTROLLER, None)
            pv = await self.client.update(new)
            await self._volume_status(pv, AVAILABLE)

    async def _release(self, pv: Any) -> None:
        if pv.status.phase == FAILED:
            return
        if pv.status.phase != RELEASED:
            pv = await self._volume_status(pv, RELEASED)
        policy = pv.spec.persistent_volume_reclaim_policy or "Retain"
        if policy == "Retain":
            return
        if policy == "Delete" and pv.metadata.annotations.get(ANN_PROVISIONED_BY) == PROVISIONER:
            if self._in_use(pv):
                # kubemu has no pvc-protection finalizer: a pod still running on
                # the claim keeps its directory until the pod is gone.
                self.enqueue_after(PV_PREFIX + pv.metadata.name, self.period_s)
                return
            await self._delete_volume(pv)
            return
        if policy == "Delete":
            message = (f'error getting deleter volume plugin for volume "{pv.metadata.name}": '
                       f"no deletable volume plugin matched")
            reason = "VolumeFailedDelete"
        else:
            message = "No recycler plugin found for the volume!"
            reason = "VolumeFailedRecycle"
        await self._volume_status(pv, FAILED, message)
        self.recorder.record(pv, WARNING, reason, message)

    def _in_use(self, pv: Any) -> bool:
        ref = pv.spec.claim_ref
        return any(pod.status.phase not in ("Succeeded", "Failed")
                   and ref.name in claims_of(pod)
                   for pod in self.pods.by_index(BY_NAMESPACE, ref.namespace))

    async def _delete_volume(self, pv: Any) -> None:
        path = pv.spec.host_path.path
        if path and self.volumes_dir and is_provisioned_path(path, self.volumes_dir,
                                                             pv.metadata.name):
            await asyncio.to_thread(shutil.rmtree, path, True)
        try:
            await self.client.delete("persistentvolumes", pv.metadata.name,
                                     uid=pv.metadata.uid)
        except errors.NotFound:
            pass


def _waits_for_consumer(sc: Any) -> bool:
    return sc.HasField("volume_binding_mode") and sc.volume_binding_mode == WAIT_FOR_FIRST_CONSUMER


def is_provisioned_path(path: str, root: str, pv_name: str) -> bool:
    """Whether `path` is what the provisioner made for volume `pv_name`: a
    directory right under `root` named "<pv name>_..." (nothing else is ever
    removed, whatever a volume's annotations say)."""
    absolute, base = pathlib.Path(os.path.realpath(path)), pathlib.Path(os.path.realpath(root))
    return absolute.parent == base and absolute.name.startswith(pv_name + "_")
