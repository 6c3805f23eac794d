"""Wires the kubelet: runtime client, Node and Lease, informers, pod workers, PLEG, API.

Start: wait for the runtime; serve the kubelet API on the node's address;
register the Node; note the pod IPs of the sandboxes the runtime already has;
sync the ConfigMap, Secret and Service informers, then the pod informer
(field selector spec.nodeName=<node>), whose events start one PodWorker per
pod uid (a new pod is first admitted against the node's pods, cpu and memory;
a pod a previous kubelet started is adopted with its containers). The pod
workers share one status manager, image puller and probe manager
(kubelet/status_manager.py, image_puller.py, probe_manager.py). Then the
loops, every one under kubemu.loops.Loops (a failure is logged, the loop
restarted with back-off, and the kubelet's health says NOT_SERVING while it
is down):
- the informers;
- PLEG (`pleg`): every `pleg_relist_s` the runtime's containers are listed
  and the worker of every pod whose containers changed state is woken; the
  fault point `pleg-relist` (--fault-dir) rehearses its failure;
- housekeeping: sandboxes of pods the API no longer has (deleted while the
  kubelet was down) are stopped and removed, leftover pod and log
  directories too, and a pod worker whose task died is started again;
- container logs: the running containers' logs are rotated
  (--container-log-max-size, --container-log-max-files, kubelet/logs.py);
- static pods (with --pod-manifest-path): every --file-check-frequency, and
  whenever one of the node's mirror pods changes in the API, the manifest
  directory is read again (a new or edited file starts a pod worker, a
  removed or edited one stops its pod) and the mirror pods are made to match
  (kubelet/static_pods.py); mirror pods never get a worker of their own;
- node status and lease (kubelet/node.py).
The health service says SERVING once the Node is registered and the pods are
synced. Stop (SIGTERM) stops the kubelet only: pods keep running, and a new
kubelet adopts them. Everything the kubelet makes under its root is private
(0700 directories, 0600 files).
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import pathlib
import shutil
import time

import structlog
from google.protobuf.message import Message

from kubelet import admission, cri, logs, node, server, static_pods, volumes
from kubelet import status as pod_status
from kubelet import dns as kdns
from kubelet.image_puller import ImagePuller
from kubelet.ipam import PodIPAllocator
from kubelet.pod_runtime import NodeContext
from kubelet.probe_manager import ProbeManager
from kubelet.status_manager import StatusManager
from kubelet.worker import PodWorker
from kubemu import server as grpc_server
from kubemu.api import errors, quantity
from kubemu.backoff import Backoff, Exponential
from kubemu.client.clientset import Client
from kubemu.client.events import NORMAL, EventRecorder
from kubemu.client.informer import Informer
from kubemu.faults import Faults
from kubemu.fileutil import private_dir
from kubemu.kubelet.v1 import kubelet_pb2_grpc
from kubemu.loops import Loops
from kubemu.runtime.v1 import runtime_pb2

log = structlog.get_logger()

SERVICE_NAME = "kubemu.kubelet.v1.Kubelet"
FINISHED_UIDS_MAX = 4096
HOUSEKEEPING_S = 2.0
START_RETRY_S_BASE = 0.1
START_RETRY_S_MAX = 2.0
PLEG_LOOP = "pleg"
PLEG_FAULT = "pleg-relist"
MIRROR_CHECK_S = 0.1


@dataclasses.dataclass
class Options:
    node_name: str
    apiserver: str
    runtime_socket: str
    root: pathlib.Path
    node_ip: str = "127.0.0.1"
    port: int = 0
    pod_cidr: str = "127.1.1.0/24"
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    ephemeral_storage: str = ""
    node_labels: dict[str, str] = dataclasses.field(default_factory=dict)
    taints: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    volumes_dir: pathlib.Path | None = None
    pod_env: dict[str, str] = dataclasses.field(default_factory=dict)
    node_status_update_s: float = 10.0
    node_status_report_s: float = 60.0
    node_lease_renew_s: float = 10.0
    node_lease_duration_s: int = 40
    sync_frequency_s: float = 10.0
    pleg_relist_s: float = 1.0
    crash_backoff_initial_s: float = 10.0
    crash_backoff_max_s: float = 300.0
    crash_backoff_reset_s: float = 600.0
    image_backoff_initial_s: float = 10.0
    image_backoff_max_s: float = 300.0
    min_grace_s: float = 2.0
    hook_timeout_s: float = 30.0
    runtime_timeout_s: float = 10.0
    api_timeout_s: float = 10.0
    start_timeout_s: float = 60.0
    log_follow_poll_s: float = 0.2
    shutdown_grace_s: float = 2.0
    container_log_max_bytes: int = logs.DEFAULT_MAX_BYTES
    container_log_max_files: int = logs.DEFAULT_MAX_FILES
    container_log_monitor_interval_s: float = 10.0
    fault_dir: str = ""
    eviction_hard: str = node.DEFAULT_EVICTION_HARD
    # Kubernetes' --cluster-dns (comma-separated IPs), --cluster-domain, --resolv-conf.
    cluster_dns: list[str] = dataclasses.field(default_factory=list)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = kdns.DEFAULT_RESOLV_CONF
    # Kubernetes' --pod-manifest-path (static pods; None: none) and --file-check-frequency.
    pod_manifest_path: pathlib.Path | None = None
    file_check_frequency_s: float = static_pods.DEFAULT_FILE_CHECK_FREQUENCY_S


def capacity(options: Options) -> dict[str, str]:
    storage = options.ephemeral_storage
    if not storage:
        try:
            storage = str(shutil.disk_usage(options.root).total)
        except OSError:
            storage = "0"
    for name, text in (("cpu", options.cpu), ("memory", options.memory),
                       ("ephemeral-storage", storage)):
        quantity.parse(text)  # ValueError names the bad flag value
    return {"cpu": options.cpu, "memory": options.memory, "ephemeral-storage": storage,
            "pods": str(options.pods)}


class Kubelet:
    def __init__(self, options: Options):
        self.options = options
        self.root = options.root.resolve()
        self.capacity = capacity(options)
        self.runtime = cri.RuntimeClient(options.runtime_socket,
                                         timeout_s=options.runtime_timeout_s)
        self.client = Client(options.apiserver, timeout_s=options.api_timeout_s,
                             user_agent=f"kubelet/{options.node_name}")
        self.events = EventRecorder(self.client, "kubelet", host=options.node_name)
        self.workers: dict[str, PodWorker] = {}
        self.finished_uids: collections.deque[str] = collections.deque(maxlen=FINISHED_UIDS_MAX)
        self.loops = Loops(on_health=self._loop_health)
        self.faults = Faults(options.fault_dir or None)
        self.server: grpc_server.Server | None = None
        self.node: node.NodeManager | None = None
        self.ipam: PodIPAllocator | None = None
        self.pods = Informer(self.client, "pods",
                             field_selector=f"spec.nodeName={options.node_name}")
        self.configmaps = Informer(self.client, "configmaps")
        self.secrets = Informer(self.client, "secrets")
        self.services = Informer(self.client, "services")
        self.ctx: NodeContext | None = None
        # Static pods by uid (the manifest's hash), as first seen; their mirrors' wake-up.
        self.static: dict[str, Message] = {}
        self.static_errors: dict[str, str] = {}  # path -> the error logged for it
        self.mirrors_changed = asyncio.Event()
        self.log = log.bind(node=options.node_name)

    # ------------------------------------------------------------ start / stop

    async def _loop_health(self, name: str, ok: bool) -> None:
        if self.server is not None:
            await self.server.set_check(name, ok)

    async def start(self) -> str:
        o = self.options

        def make_dirs() -> None:
            for d in (self.root, self.root / "logs", self.root / "pods"):
                private_dir(d)
        await asyncio.to_thread(make_dirs)
        version = await self._wait_runtime()
        self.server = grpc_server.Server(f"{o.node_ip}:{o.port}", grace_s=o.shutdown_grace_s)
        kubelet_pb2_grpc.add_KubeletServicer_to_server(
            server.KubeletService(o.node_name, self.runtime, self._find_pod,
                                  follow_poll_s=o.log_follow_poll_s), self.server.server)
        address = await self.server.start()
        port = int(address.rpartition(":")[2])
        self.node = node.NodeManager(
            self.client, node.NodeConfig(
                name=o.node_name, ip=o.node_ip, pod_cidr=o.pod_cidr, capacity=self.capacity,
                allocatable=self.capacity, labels=o.node_labels, taints=o.taints,
                kubelet_port=port, runtime_version=f"kubemu://{version.runtime_version}",
                root=str(self.root), isolation=version.isolation,
                isolation_reason=version.isolation_reason,
                eviction_hard=node.parse_eviction_hard(o.eviction_hard)),
            runtime_check=self._runtime_problem, images=self._images,
            record=lambda obj, kind, reason, message: self.events.record(obj, kind, reason,
                                                                        message),
            status_update_s=o.node_status_update_s, report_s=o.node_status_report_s,
            lease_renew_s=o.node_lease_renew_s, lease_duration_s=o.node_lease_duration_s)
        registered = await self._until_done(self.node.register, "node registration")
        self.events.start()
        self.events.record(registered, NORMAL, "Starting", "Starting kubelet.")
        self.node.start(self.loops)
        self.ipam = PodIPAllocator(o.pod_cidr, self.root / "ipam.json")
        await self._reconcile_ips()
        host_dns = await asyncio.to_thread(kdns.read_host, o.resolv_conf)
        dns = kdns.Configurer(cluster_dns=tuple(o.cluster_dns), cluster_domain=o.cluster_domain,
                              resolv_conf=o.resolv_conf, host=host_dns)
        if not o.cluster_dns:
            # As the kubelet: said once at start, then as an Event on each such pod.
            self.log.warning("no --cluster-dns: pods with dnsPolicy ClusterFirst get the "
                             "Default policy")
        self.ctx = NodeContext(
            node_name=o.node_name, node_ip=o.node_ip, root=self.root, runtime=self.runtime,
            client=self.client, events=self.events,
            volumes=volumes.VolumeManager(self.root, [o.volumes_dir or self.root]),
            ipam=self.ipam,
            status=StatusManager(self.client, self._api_pod, api_uid=self._status_uid),
            images=ImagePuller(self.runtime, self.events,
                               Backoff(o.image_backoff_initial_s, o.image_backoff_max_s,
                                       o.crash_backoff_reset_s)),
            probes=ProbeManager(self.runtime, self.events, self._wake),
            crash_backoff=Backoff(o.crash_backoff_initial_s, o.crash_backoff_max_s,
                                  o.crash_backoff_reset_s),
            lookup=self._lookup, services=self._services_of, claim_path=self._claim_path,
            allocatable=self.capacity, min_grace_s=o.min_grace_s,
            sync_period_s=o.sync_frequency_s, hook_timeout_s=o.hook_timeout_s,
            pod_env=dict(o.pod_env), dns=dns)
        for informer in (self.configmaps, self.secrets, self.services):
            informer.add_handler(on_add=self._on_source, on_update=lambda _o, n: self._on_source(n),
                                 on_delete=self._on_source)
            self.loops.spawn(f"informer-{informer.resource}", informer.run)
        for informer in (self.configmaps, self.secrets, self.services):
            await informer.wait_synced(o.start_timeout_s)
        self.pods.add_handler(on_add=self._on_pod, on_update=self._on_pod_update,
                              on_delete=self._on_pod_delete)
        self.loops.spawn("informer-pods", self.pods.run)
        await self.pods.wait_synced(o.start_timeout_s)
        if o.pod_manifest_path is not None:
            # Before housekeeping: the static pods' sandboxes are not orphans.
            await self._sync_static_pods()
            self.loops.spawn("static-pods", self._static_pods_loop)
        self.loops.spawn(PLEG_LOOP, self._pleg_loop)
        self.loops.spawn("housekeeping", self._housekeeping_loop)
        self.loops.spawn("container-logs", self._container_log_loop)
        await self.server.set_serving(True)
        await self.server.set_serving(True, SERVICE_NAME)
        self.log.info("kubelet ready", address=address, pods=len(self.workers),
                      runtime=o.runtime_socket)
        return address

    async def stop(self) -> None:
        """Stop the kubelet; pod processes keep running (the runtime owns them)."""
        if self.server is not None:
            await self.server.set_serving(False)
        await self.loops.stop()
        await asyncio.gather(*(w.stop() for w in list(self.workers.values())),
                             return_exceptions=True)
        if self.ctx is not None:
            self.ctx.probes.stop_all()
            await self.ctx.status.stop()
        await self.events.stop()
        if self.server is not None:
            await self.server.stop()
        await self.client.close()
        await self.runtime.close()
        self.log.info("kubelet stopped; pods left running")

    async def _until_done(self, make_call, what: str):
        """Retry a call that must succeed for the kubelet to start, until the start deadline."""
        deadline = time.monotonic() + self.options.start_timeout_s
        backoff = Exponential(START_RETRY_S_BASE, START_RETRY_S_MAX)
        while True:
            try:
                return await make_call()
            except (errors.Unavailable, errors.Timeout, errors.Conflict) as err:
                delay_s = backoff.next_s()
                if time.monotonic() + delay_s > deadline:
                    raise RuntimeError(f"{what} failed: {err}") from None
                self.log.info("retrying", what=what, error=str(err))
            await asyncio.sleep(delay_s)  # bounded retry back-off

    async def _wait_runtime(self) -> runtime_pb2.VersionResponse:
        deadline = time.monotonic() + self.options.start_timeout_s
        while True:
            try:
                return await self.runtime.version()
            except (cri.RuntimeUnavailable, cri.RuntimeCallError) as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the runtime at {self.options.runtime_socket} did not "
                                       f"answer within {self.options.start_timeout_s:g} s: "
                                       f"{err}") from None
            await asyncio.sleep(0.2)  # waiting for the runtime to come up, bounded above

    async def _runtime_problem(self) -> str | None:
        try:
            status = await self.runtime.status(timeout_s=2.0)
        except (cri.RuntimeUnavailable, cri.RuntimeCallError) as err:
            return f"container runtime is down: {err}"
        down = [c for c in status.conditions if not c.status]
        if down:
            return f"container runtime status check may not have completed yet: {down[0].type} " \
                   f"is false"
        return None

    async def _images(self) -> list[tuple[list[str], int]]:
        return [(list(i.repo_digests) + list(i.repo_tags), i.size)
                for i in await self.runtime.list_images()]

    async def _reconcile_ips(self) -> None:
        live = []
        for s in await self.runtime.list_sandboxes(ready_only=True):
            uid = s.labels.get(cri.POD_UID_LABEL, "")
            if uid:
                status = await self.runtime.sandbox_status(s.id)
                live.append((uid, status.network.ip))
        self.ipam.reconcile(live)
        await self.ipam.flush()

    # ------------------------------------------------------------ lookups

    def _find_pod(self, namespace: str, name: str) -> Message | None:
        """The pod the kubelet runs under that name: a static pod, not its mirror."""
        for pod in self.static.values():
            if pod.metadata.name == name and pod.metadata.namespace == namespace:
                return pod
        return self._api_pod(namespace, name)

    def _api_pod(self, namespace: str, name: str) -> Message | None:
        return self.pods.store.get_by_name(name, namespace)

    def _status_uid(self, uid: str) -> str | None:
        """The API pod a pod's status goes to: a static pod's mirror (None
        until it exists), else the pod itself."""
        pod = self.static.get(uid)
        if pod is None:
            return uid
        mirror = self._api_pod(pod.metadata.namespace, pod.metadata.name)
        if mirror is None or mirror.metadata.deletion_timestamp or \
                mirror.metadata.annotations.get(static_pods.MIRROR_ANNOTATION) != uid:
            return None
        return mirror.metadata.uid

    def _lookup(self, kind: str, namespace: str, name: str) -> Message | None:
        informer = self.configmaps if kind == "ConfigMap" else self.secrets
        return informer.store.get_by_name(name, namespace)

    def _services_of(self, namespace: str) -> list[Message]:
        return [s for s in self.services.store.list()
                if s.metadata.namespace == namespace
                or (s.metadata.namespace == "default" and s.metadata.name == "kubernetes")]

    async def _claim_path(self, namespace: str, claim: str) -> str:
        try:
            pvc = await self.client.get("persistentvolumeclaims", claim, namespace)
        except errors.NotFound:
            raise volumes.VolumeError(f'persistentvolumeclaim "{claim}" not found') from None
        if pvc.spec.volume_name:
            try:
                pv = await self.client.get("persistentvolumes", pvc.spec.volume_name)
            except errors.NotFound:
                pv = None
            if pv is not None and pv.spec.HasField("host_path") and pv.spec.host_path.path:
                return pv.spec.host_path.path
            if pv is not None and pv.spec.HasField("local") and pv.spec.local.path:
                return pv.spec.local.path
        elif await self._binder_binds(pvc):
            # Kubernetes' kubelet waits for the binder (FailedMount, retried).
            raise volumes.VolumeError(
                f'PVC {namespace}/{claim} has non-bound phase ("{pvc.status.phase}") or '
                f'empty pvc.Spec.VolumeName ("{pvc.spec.volume_name}")')
        base = self.options.volumes_dir or (self.root / "persistent-volumes")
        return str(base / f"pvc-{pvc.metadata.uid}")

    async def _binder_binds(self, pvc: Message) -> bool:
        """Whether a binder is to bind this unbound claim: it names a class, or
        has none and a default StorageClass exists. Otherwise (no class at all,
        as on a cluster without a controller-manager) the claim gets a directory
        of its own at once, kubemu's convenience."""
        if pvc.spec.HasField("storage_class_name"):
            return bool(pvc.spec.storage_class_name)
        try:
            classes = (await self.client.list("storageclasses")).items
        except errors.NotFound:
            return False  # an API without StorageClasses
        return any(sc.metadata.annotations.get("storageclass.kubernetes.io/is-default-class")
                   == "true" for sc in classes)

    # ------------------------------------------------------------ informer events

    def _worker(self, uid: str, pod: Message | None = None) -> PodWorker:
        worker = self.workers.get(uid)
        if worker is None:
            rejected = self._admit(pod) if pod is not None else None
            worker = PodWorker(self.ctx, uid, on_done=self._worker_done, rejected=rejected)
            self.workers[uid] = worker
            worker.start()
        return worker

    def _admit(self, pod: Message) -> tuple[str, str] | None:
        """Admission for a pod no kubelet has started yet (a restarted kubelet keeps
        the pods it had); None when it fits."""
        if pod.status.start_time or pod.status.phase in pod_status.TERMINAL_PHASES \
                or pod.metadata.deletion_timestamp:
            return None
        admitted = [w.pod for w in self.workers.values()
                    if w.pod is not None and not w.rejected
                    and w.pod.status.phase not in pod_status.TERMINAL_PHASES]
        return admission.admit(pod, admitted, self.capacity)

    def _worker_done(self, uid: str) -> None:
        self.workers.pop(uid, None)
        self.finished_uids.append(uid)

    def _wake(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.notify()

    def _on_mirror(self, pod: Message, *, new: bool = False) -> None:
        """A mirror pod changed: the static pods loop checks the mirrors; a
        new mirror gets its static pod's status."""
        self.mirrors_changed.set()
        uid = pod.metadata.annotations.get(static_pods.MIRROR_ANNOTATION, "")
        if new and uid in self.static and self.ctx is not None:
            self.ctx.status.resend(uid)

    def _on_pod(self, pod: Message) -> None:
        if static_pods.is_mirror(pod):
            self._on_mirror(pod, new=True)
            return
        uid = pod.metadata.uid
        if uid in self.finished_uids and uid not in self.workers:
            return  # already terminated and confirmed; the DELETED event is on its way
        self._worker(uid, pod).update(pod)

    def _on_pod_update(self, old: Message, new: Message) -> None:
        if static_pods.is_mirror(new) or static_pods.is_mirror(old):
            self._on_mirror(new, new=old.metadata.uid != new.metadata.uid)
            return
        if old.metadata.uid != new.metadata.uid:
            self._on_pod_delete(old)
        self._on_pod(new)

    def _on_pod_delete(self, pod: Message) -> None:
        if static_pods.is_mirror(pod):
            self._on_mirror(pod)
            return
        worker = self.workers.get(pod.metadata.uid)
        if worker is not None:
            worker.update(None)

    def _on_source(self, obj: Message) -> None:
        """A ConfigMap, Secret or Service changed: resync the pods of its namespace
        (env sources, volume files, service links)."""
        namespace = obj.metadata.namespace
        for worker in list(self.workers.values()):
            pod = worker.pod
            if pod is not None and pod.metadata.namespace == namespace:
                worker.notify()

    # ------------------------------------------------------------ loops

    async def _pleg_loop(self) -> None:
        """Wake the worker of every pod whose containers changed state. Runs under
        Loops: a failure other than the runtime's not answering ends this run."""
        previous: dict[str, dict[str, int]] = {}
        while True:
            await asyncio.sleep(self.options.pleg_relist_s)  # the relist period
            self.faults.check(PLEG_FAULT)
            try:
                found = await self.runtime.list_containers()
            except (cri.RuntimeUnavailable, cri.RuntimeCallError):
                continue
            current: dict[str, dict[str, int]] = {}
            for c in found:
                uid = c.labels.get(cri.POD_UID_LABEL, "")
                if uid:
                    current.setdefault(uid, {})[c.id] = c.state
            for uid in set(current) | set(previous):
                if current.get(uid) != previous.get(uid):
                    worker = self.workers.get(uid)
                    if worker is not None:
                        worker.notify()
            previous = current

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)  # housekeeping period
            self._supervise_workers()
            try:
                await self._housekeeping()
            except (cri.RuntimeUnavailable, cri.RuntimeCallError) as err:
                self.log.info("housekeeping skipped", error=str(err))
            except errors.ApiError as err:
                self.log.info("housekeeping skipped", error=str(err))

    def _supervise_workers(self) -> None:
        """A pod worker whose task ended without finishing its pod (a bug) is
        started again, so no pod is left without one."""
        for uid, worker in list(self.workers.items()):
            task = worker.task
            if task is None or not task.done() or worker.done:
                continue
            error = task.exception() if not task.cancelled() else None
            self.log.error("pod worker died; starting it again", pod_uid=uid,
                           error=repr(error))
            worker.start()

    async def _housekeeping(self) -> None:
        known = {p.metadata.uid for p in self.pods.store.list()} | set(self.static)
        sandboxes = await self.runtime.list_sandboxes()
        with_sandbox = set()
        for s in sandboxes:
            uid = s.labels.get(cri.POD_UID_LABEL, "")
            with_sandbox.add(uid)
            if uid and uid not in known and uid not in self.workers:
                self.log.info("orphaned pod found: stopping it", pod_uid=uid,
                              pod=f"{s.metadata.namespace}/{s.metadata.name}")
                self._worker(uid).update(None)
        for uid in await asyncio.to_thread(self.ctx.volumes.known_pods):
            if uid not in known and uid not in self.workers and uid not in with_sandbox:
                await asyncio.to_thread(self.ctx.volumes.teardown, uid)
                self.ipam.release(uid)
        await self.ipam.flush()
        # Log directories of pods gone while no worker ran for them.
        for uid, path in (await asyncio.to_thread(logs.pod_log_dirs, self.root / "logs")).items():
            if uid not in known and uid not in self.workers and uid not in with_sandbox:
                await asyncio.to_thread(shutil.rmtree, path, True)

    async def _container_log_loop(self) -> None:
        """Rotate the logs of running containers (the kubelet's container log manager)."""
        o = self.options
        while True:
            await asyncio.sleep(o.container_log_monitor_interval_s)  # the monitor interval
            try:
                found = await self.runtime.list_containers()
            except (cri.RuntimeUnavailable, cri.RuntimeCallError):
                continue
            paths = []
            for c in found:
                labels = c.labels
                if c.state != cri.RUNNING or cri.POD_UID_LABEL not in labels:
                    continue
                pod_dir = self.root / "logs" / (f"{labels.get(cri.POD_NAMESPACE_LABEL, '')}_"
                                                f"{labels.get(cri.POD_NAME_LABEL, '')}_"
                                                f"{labels[cri.POD_UID_LABEL]}")
                paths.append(str(logs.container_log_path(pod_dir, c.metadata.name,
                                                         c.metadata.attempt)))
            rotated = await asyncio.to_thread(logs.rotate_all, paths, o.container_log_max_bytes,
                                              o.container_log_max_files, time.time())
            if rotated:
                self.log.debug("container logs rotated", files=rotated)


    # ------------------------------------------------------------ static pods

    async def _static_pods_loop(self) -> None:
        """Read the manifests every --file-check-frequency; check the mirrors
        sooner when one changed in the API (at most every MIRROR_CHECK_S)."""
        o = self.options
        next_read_s = time.monotonic() + o.file_check_frequency_s
        while True:
            try:
                await asyncio.wait_for(self.mirrors_changed.wait(),
                                       max(0.0, next_read_s - time.monotonic()))
            except TimeoutError:
                pass
            self.mirrors_changed.clear()
            if time.monotonic() >= next_read_s:
                next_read_s = time.monotonic() + o.file_check_frequency_s
                await self._sync_static_pods()
            else:
                await self._sync_mirrors()
            await asyncio.sleep(MIRROR_CHECK_S)  # bounds the passes a burst of events makes

    async def _sync_static_pods(self) -> None:
        """Run what the manifest directory holds now, stop what it no longer does."""
        o = self.options
        try:
            manifests = await asyncio.to_thread(static_pods.read_manifests,
                                                o.pod_manifest_path)
        except OSError as err:
            self.log.error("static pod manifests not read; keeping the pods",
                           path=str(o.pod_manifest_path), error=str(err))
            await self._sync_mirrors()
            return
        now_s = time.time()
        wanted: dict[str, Message] = {}
        errors_now: dict[str, str] = {}
        for manifest in manifests:
            error = manifest.error
            if not error:
                uid = static_pods.manifest_hash(manifest.doc, o.node_name, manifest.path)
                if uid in self.static:
                    wanted[uid] = self.static[uid]  # as first seen (config.seen stays)
                    continue
                try:
                    pod = static_pods.static_pod(manifest.doc, o.node_name, manifest.path,
                                                 now_s)
                    wanted[pod.metadata.uid] = pod
                    continue
                except errors.ApiError as err:
                    error = err.message
            errors_now[manifest.path] = error
            if self.static_errors.get(manifest.path) != error:
                self.log.error("static pod manifest skipped", path=manifest.path, error=error)
        self.static_errors = errors_now
        for uid in set(self.static) - set(wanted):
            pod = self.static.pop(uid)
            self.log.info("static pod removed: stopping it", pod_uid=uid,
                          pod=f"{pod.metadata.namespace}/{pod.metadata.name}")
            worker = self.workers.get(uid)
            if worker is not None:
                worker.remove()
        for uid, pod in wanted.items():
            if uid not in self.static:
                self.static[uid] = pod
                self.log.info("static pod found: starting it", pod_uid=uid,
                              pod=f"{pod.metadata.namespace}/{pod.metadata.name}")
            if uid not in self.workers:
                # New, or back (same content) after its worker stopped it.
                self._worker(uid, pod).update(pod)
        await self._sync_mirrors()

    async def _sync_mirrors(self) -> None:
        """Create the missing mirror pods, delete the stale ones (grace 0, uid
        precondition: Kubernetes' mirror client); errors wait for the next pass."""
        o = self.options
        plan = static_pods.mirror_plan(self.static.values(), self.pods.store.list())
        try:
            for mirror in plan.delete:
                try:
                    await self.client.delete("pods", mirror.metadata.name,
                                             mirror.metadata.namespace, grace_period_s=0,
                                             uid=mirror.metadata.uid)
                    self.mirrors_changed.set()  # made again at the next pass
                except (errors.NotFound, errors.Conflict):
                    pass
            if plan.create:
                node_obj = await self.client.get("nodes", o.node_name)
                for pod in plan.create:
                    try:
                        await self.client.create(static_pods.mirror_pod(pod, node_obj))
                    except errors.AlreadyExists:
                        pass
        except errors.ApiError as err:
            self.log.info("mirror pods not in sync yet", error=str(err))
