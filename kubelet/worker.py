"""The pod worker: one asyncio task per pod (by uid) makes the pod real.

`update(pod)` hands it the pod's latest version (None once the pod is gone
from the API); `notify()` asks for a sync (container exits seen by the PLEG,
probe results, ConfigMap/Secret changes). Syncs of one pod never overlap.

A sync, in the order of the kubelet's syncPod:
- pod gone: stop its containers, remove the sandbox, volumes and IP.
- pod marked for deletion: stop every container with the deletion's grace
  period (preStop hooks first, within it), write the final status, clean up,
  then confirm with a grace-0 delete (uid precondition): the pod object goes
  only once its processes have.
- otherwise: a sandbox with the pod's IP, the volumes, the init containers in
  order (each to success), then the app containers: start what is missing,
  kill what failed its liveness/startup probe, restart what exited as the
  restartPolicy says with CrashLoopBackOff between restarts; then the status,
  written only when it changed.

Image pulls, container config (env sources), volumes and starts that fail
leave the container waiting with Kubernetes' reason and an event; the worker
retries on the next sync (soon, or at the end of the back-off).
"""
from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import shutil
import time
from typing import Awaitable, Callable, Mapping

import grpc
import structlog
from google.protobuf.message import Message

from kubelet import actions, cri, envvars, prober, status, volumes
from kubelet.ipam import PodIPAllocator
from kubemu import timefmt
from kubemu.api import errors, quantity
from kubemu.api.v1 import core_pb2
from kubemu.backoff import Backoff
from kubemu.client.clientset import Client
from kubemu.client.events import NORMAL, WARNING, EventRecorder
from kubemu.runtime.v1 import runtime_pb2 as rpb

log = structlog.get_logger()

DEFAULT_GRACE_S = 30
RETRY_S = 2.0
ERROR_RETRY_S_MAX = 30.0


@dataclasses.dataclass
class NodeContext:
    """What every pod worker of a node shares."""

    node_name: str
    node_ip: str
    root: pathlib.Path
    runtime: cri.RuntimeClient
    client: Client
    events: EventRecorder
    volumes: volumes.VolumeManager
    ipam: PodIPAllocator
    crash_backoff: Backoff
    image_backoff: Backoff
    lookup: envvars.Lookup
    services: Callable[[str], list[Message]]
    claim_path: Callable[[str, str], Awaitable[str]]
    allocatable: Mapping[str, str]
    min_grace_s: float = 2.0
    sync_period_s: float = 10.0
    hook_timeout_s: float = 30.0
    # Set in every container (before the pod's own variables, which win).
    pod_env: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def log_dir(self, pod: Message) -> pathlib.Path:
        m = pod.metadata
        return self.root / "logs" / f"{m.namespace}_{m.name}_{m.uid}"


@dataclasses.dataclass
class Instance:
    """One container instance as the runtime reports it."""

    summary: rpb.Container
    status: rpb.ContainerStatus

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def attempt(self) -> int:
        return self.summary.metadata.attempt

    @property
    def running(self) -> bool:
        return self.status.state == rpb.CONTAINER_RUNNING

    @property
    def exited(self) -> bool:
        return self.status.state in (rpb.CONTAINER_EXITED, rpb.CONTAINER_UNKNOWN)


def field_path(ctr_name: str, init: bool) -> str:
    return f"spec.{'initContainers' if init else 'containers'}{{{ctr_name}}}"


def memory_limit_bytes(ctr: Message) -> int:
    text = ctr.resources.limits.get("memory")
    try:
        return quantity.to_int(text) if text else 0
    except ValueError:
        return 0


def cpu_limit_millis(ctr: Message) -> int:
    text = ctr.resources.limits.get("cpu")
    try:
        return quantity.to_milli(text) if text else 0
    except ValueError:
        return 0


def pod_grace_s(pod: Message) -> int:
    spec = pod.spec
    return spec.termination_grace_period_seconds \
        if spec.HasField("termination_grace_period_seconds") else DEFAULT_GRACE_S


class PodWorker:
    def __init__(self, ctx: NodeContext, uid: str, on_done: Callable[[str], None],
                 rejected: tuple[str, str] | None = None):
        self.ctx = ctx
        self.rejected = rejected  # (reason, message): admission said no
        self.uid = uid
        self.on_done = on_done
        self.pod: Message | None = None       # latest from the API; None once gone
        self.last_pod: Message | None = None  # the last version seen
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.log = log.bind(pod_uid=uid)
        self.sandbox_id = ""
        self.sandbox_config: rpb.PodSandboxConfig | None = None
        self.pod_ip = ""
        self.volume_paths: dict[str, str] | None = None
        self.volume_error = ""
        # container name -> (reason, message) while it cannot run
        self.waiting: dict[str, tuple[str, str]] = {}
        self.probes: dict[str, list[prober.ProbeWorker]] = {}   # container id -> workers
        self.ready: dict[str, bool] = {}
        self.started: dict[str, bool] = {}
        self.probe_failed: dict[str, tuple[str, str]] = {}     # container id -> (kind, message)
        self.killing: set[str] = set()
        self.status_cache: dict[str, rpb.ContainerStatus] = {}
        self.last_status: core_pb2.PodStatus | None = None
        self.backoff_reported: dict[str, int] = {}             # container name -> finished_at
        self.wake_at: float | None = None
        self.errors_in_row = 0
        self.terminal_reason: tuple[str, str] | None = None
        self.finished = False
        self.sandbox_stopped = False
        self.final_status_written = False
        self.terminating_grace_s: float | None = None  # set while stopping the pod
        self.side_tasks: set[asyncio.Task] = set()
        self.instances: dict[str, list[Instance]] = {}   # as of the last listing
        self.pull_failed_at: dict[str, float] = {}       # image back-off key -> when

    # ------------------------------------------------------------ driving

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.uid[:8]}")

    async def stop(self) -> None:
        """Stop the task without touching containers (kubelet shutdown)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self._stop_all_probes()

    def update(self, pod: Message | None) -> None:
        """The pod's latest version. A change of its status alone (most often the
        kubelet's own write) is no reason to sync, unless it is a condition the
        kubelet does not own (a readiness gate)."""
        before = self.pod
        self.pod = pod
        if pod is not None:
            self.last_pod = pod
        if self.terminating_grace_s is not None:
            self._maybe_shorten_grace(pod)
        if pod is None or before is None or _sync_key(pod) != _sync_key(before):
            self.notify()

    def _maybe_shorten_grace(self, pod: Message | None) -> None:
        """A second deletion with a shorter grace period (or a forced one) while the
        pod is being stopped: stop its containers again, sooner."""
        if pod is None:
            grace_s = self.ctx.min_grace_s
        elif pod.metadata.HasField("deletion_grace_period_seconds"):
            grace_s = float(pod.metadata.deletion_grace_period_seconds)
        else:
            return
        if grace_s >= self.terminating_grace_s:
            return
        self.terminating_grace_s = grace_s
        task = asyncio.create_task(self._stop_running(grace_s), name=f"shorten-{self.uid[:8]}")
        self.side_tasks.add(task)
        task.add_done_callback(self.side_tasks.discard)

    async def _stop_running(self, grace_s: float) -> None:
        try:
            found = await self.ctx.runtime.list_containers(labels={cri.POD_UID_LABEL: self.uid})
            await asyncio.gather(*(self.ctx.runtime.stop_container(c.id, grace_s)
                                   for c in found if c.state == rpb.CONTAINER_RUNNING),
                                 return_exceptions=True)
        except (cri.RuntimeUnavailable, cri.RuntimeCallError) as err:
            self.log.info("could not shorten the grace period", error=str(err))

    def notify(self) -> None:
        self.wake.set()

    def schedule(self, delay_s: float) -> None:
        """Sync again in `delay_s` at the latest."""
        at = time.monotonic() + max(0.0, delay_s)
        if self.wake_at is None or at < self.wake_at:
            self.wake_at = at

    async def _run(self) -> None:
        self.wake.set()
        try:
            while True:
                timeout_s = self.ctx.sync_period_s
                if self.wake_at is not None:
                    timeout_s = min(timeout_s, max(0.0, self.wake_at - time.monotonic()))
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout_s)
                except TimeoutError:
                    pass
                self.wake.clear()
                self.wake_at = None
                try:
                    done = await self.sync()
                    self.errors_in_row = 0
                except cri.RuntimeUnavailable as err:
                    self.log.info("runtime unavailable; retrying", error=str(err))
                    self.schedule(1.0)
                    continue
                except Exception as err:  # retry with back-off; never lose the pod
                    self.errors_in_row += 1
                    retry_s = min(ERROR_RETRY_S_MAX, RETRY_S * 2 ** min(self.errors_in_row, 8))
                    if isinstance(err, (errors.ApiError, cri.RuntimeCallError)):
                        self.log.warning("pod sync failed", error=str(err), retry_s=retry_s)
                    else:
                        self.log.exception("pod sync failed", retry_s=retry_s)
                    self.schedule(retry_s)
                    continue
                if done:
                    self.finished = True
                    return
        finally:
            self._stop_all_probes()
            for task in self.side_tasks:
                task.cancel()
            if self.finished:
                self.on_done(self.uid)

    # ------------------------------------------------------------ sync

    async def sync(self) -> bool:
        """One pass; True when the pod is gone and the worker can end."""
        pod = self.pod
        if pod is None:
            grace_s = self._vanished_grace_s()
            await self._terminate(self.last_pod, grace_s)
            await self._cleanup()
            self.log.info("pod gone from the API: stopped and cleaned up")
            return True
        if pod.metadata.deletion_timestamp:
            grace_s = float(pod.metadata.deletion_grace_period_seconds) \
                if pod.metadata.HasField("deletion_grace_period_seconds") else pod_grace_s(pod)
            if not self.final_status_written:  # a retry after a failed step skips what is done
                await self._terminate(pod, grace_s)
                await self._write_status(pod, terminal=True)
                self.final_status_written = True
            await self._cleanup()
            await self._confirm_deletion(pod)
            return True
        await self._sync_pod(pod)
        return False

    def _vanished_grace_s(self) -> float:
        pod = self.last_pod
        if pod is not None and pod.metadata.HasField("deletion_grace_period_seconds"):
            return float(pod.metadata.deletion_grace_period_seconds)
        return self.ctx.min_grace_s  # force-deleted: what the kubelet gives at least

    async def _sync_pod(self, pod: Message) -> None:
        if self.rejected:
            await self._write_rejected(pod)
            return
        if self._is_terminal(pod):
            # Terminal pods are never restarted: nothing will run in the sandbox
            # again, so it is stopped and its IP freed (the status keeps the IP).
            if self.sandbox_id or await self._find_sandbox(pod):
                if not self.sandbox_stopped:
                    await self.ctx.runtime.stop_sandbox(self.sandbox_id, 0.0)
                    self.ctx.ipam.release(self.uid)
                    self.sandbox_stopped = True
                await self._write_status(pod, terminal=bool(self.terminal_reason))
            return
        if await self._past_deadline(pod):
            return
        if not self.sandbox_id and not await self._find_sandbox(pod):
            await self._create_sandbox(pod)
        if not await self._setup_volumes(pod):
            await self._write_status(pod)
            return
        instances = await self._instances()
        self._reconcile_probes(pod, instances)
        spec = pod.spec
        initialized = True
        for ctr in spec.init_containers:
            cur = instances.get(ctr.name, [None])[0]
            if cur is not None and cur.exited and cur.status.exit_code == 0:
                continue
            initialized = False
            if cur is None:
                await self._start(pod, ctr, 0, init=True)
            elif cur.status.state == rpb.CONTAINER_CREATED:
                await self._start_created(pod, ctr, cur, init=True)
            elif cur.exited and (spec.restart_policy or "Always") != "Never":
                await self._restart(pod, ctr, cur, init=True)
            break
        if initialized:
            for ctr in spec.containers:
                await self._sync_container(pod, ctr, instances.get(ctr.name, [None])[0])
        await self._write_status(pod)
        if self._is_terminal(pod):
            self.notify()  # over: release the sandbox now

    async def _write_rejected(self, pod: Message) -> None:
        reason, message = self.rejected
        new = core_pb2.PodStatus()
        new.CopyFrom(pod.status)
        new.phase, new.reason, new.message = "Failed", reason, message
        new.start_time = new.start_time or status.rfc3339(time.time())
        if status.same(new, self.last_status) or (
                pod.status.phase == "Failed" and pod.status.reason == reason):
            return
        self.ctx.events.record(pod, WARNING, reason, message)
        obj = core_pb2.Pod()
        obj.metadata.name, obj.metadata.namespace = pod.metadata.name, pod.metadata.namespace
        obj.status.CopyFrom(new)
        try:
            await self.ctx.client.update_status(obj)
        except errors.NotFound:
            return
        self.last_status = new
        self.log.info("pod rejected", reason=reason, message=message)

    def _is_terminal(self, pod: Message) -> bool:
        """Succeeded or Failed, as the API or the kubelet's last write says."""
        return pod.status.phase in status.TERMINAL_PHASES or bool(self.terminal_reason) or (
            self.last_status is not None and self.last_status.phase in status.TERMINAL_PHASES)

    async def _sync_container(self, pod: Message, ctr: Message, cur: Instance | None) -> None:
        if cur is None:
            await self._start(pod, ctr, 0)
        elif cur.status.state == rpb.CONTAINER_CREATED:
            await self._start_created(pod, ctr, cur)
        elif cur.running:
            failed = self.probe_failed.get(cur.id)
            if failed is not None and cur.id not in self.killing:
                kind, _ = failed
                why = "liveness" if kind == prober.LIVENESS else "startup"
                grace_s = self._probe_grace_s(pod, ctr, kind)
                await self._kill(pod, ctr, cur.id, grace_s,
                                 f"Container {ctr.name} failed {why} probe, will be restarted")
                self.notify()  # restart it now (through the back-off)
        elif cur.exited:
            policy = pod.spec.restart_policy or "Always"
            if policy == "Always" or (policy == "OnFailure" and cur.status.exit_code != 0):
                await self._restart(pod, ctr, cur)
            else:
                self.waiting.pop(ctr.name, None)

    def _probe_grace_s(self, pod: Message, ctr: Message, kind: str) -> float:
        probe = ctr.liveness_probe if kind == prober.LIVENESS else ctr.startup_probe
        if probe.HasField("termination_grace_period_seconds"):
            return float(probe.termination_grace_period_seconds)
        return float(pod_grace_s(pod))

    async def _past_deadline(self, pod: Message) -> bool:
        spec = pod.spec
        if not spec.HasField("active_deadline_seconds") or not pod.status.start_time:
            return False
        started_s = timefmt.parse_rfc3339(pod.status.start_time)
        if time.time() < started_s + spec.active_deadline_seconds:
            self.schedule(started_s + spec.active_deadline_seconds - time.time())
            return False
        message = "Pod was active on the node longer than the specified deadline"
        self.ctx.events.record(pod, WARNING, "DeadlineExceeded", message)
        self.terminal_reason = ("DeadlineExceeded", message)
        await self._terminate(pod, float(pod_grace_s(pod)))
        await self._write_status(pod, terminal=True)
        return True

    # ------------------------------------------------------------ sandbox

    def _sandbox_config(self, pod: Message, attempt: int, pod_ip: str) -> rpb.PodSandboxConfig:
        m = pod.metadata
        return rpb.PodSandboxConfig(
            metadata=rpb.PodSandboxMetadata(name=m.name, uid=m.uid, namespace=m.namespace,
                                            attempt=attempt),
            hostname=pod.spec.hostname or m.name, log_directory=str(self.ctx.log_dir(pod)),
            labels={cri.POD_NAME_LABEL: m.name, cri.POD_NAMESPACE_LABEL: m.namespace,
                    cri.POD_UID_LABEL: m.uid},
            annotations={cri.GRACE_ANNOTATION: str(pod_grace_s(pod))}, pod_ip=pod_ip)

    async def _find_sandbox(self, pod: Message) -> bool:
        """Adopt the pod's sandbox if the runtime has one (e.g. after a kubelet restart)."""
        found = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        ready = [s for s in found if s.state == rpb.SANDBOX_READY]
        if not ready:
            return False
        best = max(ready, key=lambda s: (s.metadata.attempt, s.created_at))
        sandbox = await self.ctx.runtime.sandbox_status(best.id)
        self.sandbox_id = best.id
        self.pod_ip = sandbox.network.ip
        if self.pod_ip and self.pod_ip != self.ctx.node_ip:
            self.ctx.ipam.assign(self.uid, self.pod_ip)
        self.sandbox_config = self._sandbox_config(pod, best.metadata.attempt, self.pod_ip)
        return True

    async def _create_sandbox(self, pod: Message) -> None:
        found = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        attempt = max((s.metadata.attempt for s in found), default=-1) + 1
        pod_ip = self.ctx.node_ip if pod.spec.host_network else self.ctx.ipam.allocate(self.uid)
        config = self._sandbox_config(pod, attempt, pod_ip)
        self.sandbox_id = await self.ctx.runtime.run_sandbox(config)
        self.sandbox_config = config
        self.pod_ip = pod_ip
        self.log.info("sandbox created", sandbox=self.sandbox_id[:12], pod_ip=pod_ip,
                      attempt=attempt)

    async def _setup_volumes(self, pod: Message) -> bool:
        try:
            self.volume_paths = await self.ctx.volumes.setup(
                pod, self.ctx.lookup, self.ctx.claim_path, host_ip=self.ctx.node_ip,
                pod_ip=self.pod_ip, allocatable=self.ctx.allocatable)
        except volumes.VolumeError as err:
            message = str(err)
            if message != self.volume_error:
                self.ctx.events.record(pod, WARNING, "FailedMount", message)
            self.volume_error = message
            self.schedule(RETRY_S)
            return False
        except errors.NotFound as err:
            message = f"MountVolume.SetUp failed: {err}"
            if message != self.volume_error:
                self.ctx.events.record(pod, WARNING, "FailedMount", message)
            self.volume_error = message
            self.schedule(RETRY_S)
            return False
        self.volume_error = ""
        return True

    # ------------------------------------------------------------ containers

    async def _instances(self) -> dict[str, list[Instance]]:
        """Container name -> its instances in the sandbox, newest first."""
        found = await self.ctx.runtime.list_containers(self.sandbox_id)
        by_name: dict[str, list[Instance]] = {}
        for c in found:
            cached = self.status_cache.get(c.id)
            if cached is None or cached.state != c.state:
                try:
                    cached = await self.ctx.runtime.container_status(c.id)
                except cri.RuntimeCallError as err:
                    if err.code == grpc.StatusCode.NOT_FOUND:
                        continue  # removed in between
                    raise
                self.status_cache[c.id] = cached
            by_name.setdefault(c.metadata.name, []).append(Instance(c, cached))
        for items in by_name.values():
            items.sort(key=lambda i: (i.attempt, i.summary.created_at), reverse=True)
        live = {c.id for c in found}
        for cid in [cid for cid in self.status_cache if cid not in live]:
            del self.status_cache[cid]
        self.instances = by_name
        return by_name

    async def _ensure_image(self, pod: Message, ctr: Message, path: str) -> bool:
        image = ctr.image
        policy = ctr.image_pull_policy or "IfNotPresent"
        name = ctr.name
        try:
            present = await self.ctx.runtime.image_status(image)
        except cri.RuntimeCallError as err:
            if err.code == grpc.StatusCode.INVALID_ARGUMENT:
                message = f'Failed to apply default image tag "{image}": {err.message}'
                self.waiting[name] = ("InvalidImageName", message)
                self.ctx.events.record(pod, WARNING, "InspectFailed", message, field_path=path)
                return False
            raise
        if policy == "Never":
            if present is None:
                message = f'Container image "{image}" is not present with pull policy of Never'
                self.waiting[name] = ("ErrImageNeverPull", message)
                self.ctx.events.record(pod, WARNING, "ErrImageNeverPull", message, field_path=path)
                return False
            return True
        if present is not None and policy != "Always":
            self.ctx.events.record(pod, NORMAL, "Pulled",
                                   f'Container image "{image}" already present on machine', field_path=path)
            return True
        key = f"{self.uid}/image/{image}"
        failed_at = self.pull_failed_at.get(key)
        if failed_at is not None:
            remaining_s = self.ctx.image_backoff.remaining_s(key, failed_at)
            if remaining_s > 0:
                message = f'Back-off pulling image "{image}"'
                if self.waiting.get(name, ("",))[0] != "ImagePullBackOff":
                    self.ctx.events.record(pod, NORMAL, "BackOff", message, field_path=path)
                self.waiting[name] = ("ImagePullBackOff", message)
                self.schedule(remaining_s)
                return False
        self.ctx.events.record(pod, NORMAL, "Pulling", f'Pulling image "{image}"', field_path=path)
        begun = time.monotonic()
        try:
            await self.ctx.runtime.pull_image(image)
        except cri.RuntimeCallError as err:
            self.pull_failed_at[key] = time.time()
            delay_s = self.ctx.image_backoff.next(key)
            # Worded as the kubelet relays a CRI error.
            message = f"rpc error: code = {_go_code(err.code)} desc = {err.message}"
            self.waiting[name] = ("ErrImagePull", message)
            self.ctx.events.record(pod, WARNING, "Failed",
                                   f'Failed to pull image "{image}": {message}', field_path=path)
            self.ctx.events.record(pod, WARNING, "Failed", "Error: ErrImagePull", field_path=path)
            self.schedule(delay_s)
            return False
        self.pull_failed_at.pop(key, None)
        self.ctx.image_backoff.forget(key)
        took = timefmt.go_duration(time.monotonic() - begun)
        pulled = await self.ctx.runtime.image_status(image)
        size = f" Image size: {pulled.size} bytes." if pulled is not None else ""
        self.ctx.events.record(pod, NORMAL, "Pulled", f'Successfully pulled image "{image}" '
                               f'in {took} ({took} including waiting).{size}', field_path=path)
        return True

    def _container_config(self, pod: Message, ctr: Message, attempt: int,
                          init: bool) -> rpb.ContainerConfig:
        env = envvars.container_env(
            pod, ctr, self.ctx.lookup, host_ip=self.ctx.node_ip, pod_ip=self.pod_ip,
            allocatable=self.ctx.allocatable,
            services=self.ctx.services(pod.metadata.namespace))
        env_map = dict(env)
        mounts = []
        for mount in ctr.volume_mounts:
            try:
                host = volumes.mount_host_path(self.volume_paths or {}, mount)
            except volumes.VolumeError as err:
                raise envvars.ConfigError(str(err)) from None
            mounts.append(rpb.Mount(container_path=mount.mount_path, host_path=host,
                                    readonly=mount.HasField("read_only") and mount.read_only))
        m = pod.metadata
        return rpb.ContainerConfig(
            metadata=rpb.ContainerMetadata(name=ctr.name, attempt=attempt),
            image=rpb.ImageSpec(image=ctr.image),
            command=envvars.expand_all(ctr.command, env_map),
            args=envvars.expand_all(ctr.args, env_map), working_dir=ctr.working_dir,
            envs=[rpb.KeyValue(key=k, value=v) for k, v in [*self.ctx.pod_env.items(), *env]],
            mounts=mounts, memory_limit_bytes=memory_limit_bytes(ctr),
            cpu_limit_millis=cpu_limit_millis(ctr),
            labels={cri.POD_NAME_LABEL: m.name, cri.POD_NAMESPACE_LABEL: m.namespace,
                    cri.POD_UID_LABEL: m.uid, cri.CONTAINER_NAME_LABEL: ctr.name},
            annotations={cri.RESTART_COUNT_ANNOTATION: str(attempt),
                         cri.INIT_ANNOTATION: "true" if init else "false",
                         cri.GRACE_ANNOTATION: str(pod_grace_s(pod))})

    async def _start(self, pod: Message, ctr: Message, attempt: int, init: bool = False) -> None:
        path = field_path(ctr.name, init)
        if not await self._ensure_image(pod, ctr, path):
            return
        try:
            config = self._container_config(pod, ctr, attempt, init)
        except envvars.ConfigError as err:
            message = str(err)
            if self.waiting.get(ctr.name) != ("CreateContainerConfigError", message):
                self.ctx.events.record(pod, WARNING, "Failed", f"Error: {message}", field_path=path)
            self.waiting[ctr.name] = ("CreateContainerConfigError", message)
            self.schedule(RETRY_S)
            return
        try:
            container_id = await self.ctx.runtime.create_container(
                self.sandbox_id, config, self.sandbox_config)
        except cri.RuntimeCallError as err:
            if err.code == grpc.StatusCode.ALREADY_EXISTS:
                self.notify()  # an earlier create went through: find it on the next pass
                return
            if err.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION) \
                    and "sandbox" in err.message:
                self.log.warning("sandbox gone; making a new one", error=err.message)
                self.sandbox_id = ""
                self.notify()
                return
            self.waiting[ctr.name] = ("CreateContainerError", err.message)
            self.ctx.events.record(pod, WARNING, "Failed", f"Error: {err.message}", field_path=path)
            self.schedule(RETRY_S)
            return
        self.ctx.events.record(pod, NORMAL, "Created", f"Created container {ctr.name}", field_path=path)
        await self._run_created(pod, ctr, container_id, init)
        await self._collect_garbage(ctr.name, attempt)

    async def _start_created(self, pod: Message, ctr: Message, cur: Instance,
                             init: bool = False) -> None:
        """A container created but never started (the kubelet stopped in between)."""
        await self._run_created(pod, ctr, cur.id, init)

    async def _run_created(self, pod: Message, ctr: Message, container_id: str,
                           init: bool) -> None:
        path = field_path(ctr.name, init)
        try:
            await self.ctx.runtime.start_container(container_id)
        except cri.RuntimeCallError as err:
            # The runtime recorded it as exited (StartError); restarts go through the back-off.
            self.waiting.pop(ctr.name, None)
            self.ctx.events.record(pod, WARNING, "Failed", f"Error: {err.message}", field_path=path)
            self.notify()
            return
        self.waiting.pop(ctr.name, None)
        self.ctx.events.record(pod, NORMAL, "Started", f"Started container {ctr.name}", field_path=path)
        self.log.info("container started", container=ctr.name, container_id=container_id[:12])
        if not init:
            self._start_probes(pod, ctr, container_id, time.time())
        if ctr.HasField("lifecycle") and ctr.lifecycle.HasField("post_start"):
            outcome = await actions.run_hook(ctr.lifecycle.post_start, self.ctx.runtime,
                                             self._target(ctr, container_id),
                                             self.ctx.hook_timeout_s)
            if not outcome.ok:
                self.ctx.events.record(pod, WARNING, "FailedPostStartHook", outcome.message, field_path=path)
                await self._kill(pod, ctr, container_id, float(pod_grace_s(pod)),
                                 "FailedPostStartHook", run_pre_stop=False)

    async def _restart(self, pod: Message, ctr: Message, cur: Instance, init: bool = False) -> None:
        key = f"{self.uid}/{ctr.name}"
        finished_s = cur.status.finished_at / 1e9 if cur.status.finished_at else time.time()
        remaining_s = self.ctx.crash_backoff.remaining_s(key, finished_s)
        if remaining_s > 0:
            m = pod.metadata
            delay = timefmt.go_duration(self.ctx.crash_backoff.delay_s(key))
            self.waiting[ctr.name] = (
                "CrashLoopBackOff", f"back-off {delay} restarting failed container={ctr.name} "
                                    f"pod={m.name}_{m.namespace}({m.uid})")
            if self.backoff_reported.get(ctr.name) != cur.status.finished_at:
                self.backoff_reported[ctr.name] = cur.status.finished_at
                self.ctx.events.record(
                    pod, WARNING, "BackOff", f"Back-off restarting failed container {ctr.name} "
                    f"in pod {m.name}_{m.namespace}({m.uid})", field_path=field_path(ctr.name, init))
            self.schedule(remaining_s)
            return
        self.ctx.crash_backoff.next(key)
        self.waiting.pop(ctr.name, None)
        await self._start(pod, ctr, cur.attempt + 1, init=init)

    async def _collect_garbage(self, name: str, attempt: int) -> None:
        """Keep the newest instance and the one before it (for lastState and
        `logs --previous`); remove older ones and their logs."""
        for inst in self.instances.get(name, []):
            if inst.attempt < attempt - 1:
                try:
                    await self.ctx.runtime.remove_container(inst.id)
                except cri.RuntimeCallError:
                    pass
                if inst.status.log_path:
                    pathlib.Path(inst.status.log_path).unlink(missing_ok=True)
                self.status_cache.pop(inst.id, None)

    def _target(self, ctr: Message, container_id: str) -> actions.Target:
        ports = {p.name: p.container_port for p in ctr.ports if p.name}
        return actions.Target(container_id=container_id, pod_ip=self.pod_ip, ports=ports)

    async def _kill(self, pod: Message | None, ctr: Message | None, container_id: str,
                    grace_s: float, message: str, *, run_pre_stop: bool = True,
                    event: bool = True) -> None:
        """Stop one container: Killing event, preStop within the grace period,
        then SIGTERM, the rest of the grace period, SIGKILL (the runtime's stop)."""
        if container_id in self.killing:
            return
        self.killing.add(container_id)
        try:
            self._stop_probes(container_id)
            init = False
            if pod is not None and ctr is not None:
                init = any(c.name == ctr.name for c in pod.spec.init_containers)
            path = field_path(ctr.name, init) if ctr is not None else ""
            if pod is not None and event:
                self.ctx.events.record(pod, NORMAL, "Killing", message, field_path=path)
            begun = time.monotonic()
            if run_pre_stop and pod is not None and ctr is not None \
                    and ctr.HasField("lifecycle") and ctr.lifecycle.HasField("pre_stop") \
                    and grace_s > 0:
                outcome = await actions.run_hook(ctr.lifecycle.pre_stop, self.ctx.runtime,
                                                 self._target(ctr, container_id), grace_s)
                if not outcome.ok:
                    self.ctx.events.record(pod, WARNING, "FailedPreStopHook", outcome.message,
                                           field_path=path)
                grace_s -= time.monotonic() - begun
            # Always a minimal shutdown window (the kubelet's minimumGracePeriodInSeconds).
            grace_s = max(grace_s, self.ctx.min_grace_s)
            await self.ctx.runtime.stop_container(container_id, grace_s)
            self.status_cache.pop(container_id, None)
        finally:
            self.killing.discard(container_id)

    async def _terminate(self, pod: Message | None, grace_s: float) -> None:
        """Stop every running container of the pod, together, then the sandbox."""
        self._stop_all_probes()
        if self.terminating_grace_s is not None:
            grace_s = min(grace_s, self.terminating_grace_s)
        self.terminating_grace_s = grace_s
        sandboxes = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        if not sandboxes:
            return
        if not self.sandbox_id:  # not synced since a kubelet restart: report on the newest
            newest = max(sandboxes, key=lambda s: (s.metadata.attempt, s.created_at))
            self.sandbox_id = newest.id
            self.pod_ip = (await self.ctx.runtime.sandbox_status(newest.id)).network.ip
        specs = {}
        if pod is not None:
            specs = {c.name: c for c in [*pod.spec.init_containers, *pod.spec.containers]}
        found = await self.ctx.runtime.list_containers(labels={cri.POD_UID_LABEL: self.uid})
        running = [c for c in found if c.state in (rpb.CONTAINER_RUNNING, rpb.CONTAINER_CREATED)]
        await asyncio.gather(*(self._kill(
            pod, specs.get(c.metadata.name), c.id, grace_s,
            f"Stopping container {c.metadata.name}", event=c.state == rpb.CONTAINER_RUNNING)
            for c in running))
        for s in sandboxes:
            if s.state == rpb.SANDBOX_READY:
                await self.ctx.runtime.stop_sandbox(s.id, 0.0)
        self.status_cache.clear()

    async def _cleanup(self) -> None:
        for s in await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid}):
            await self.ctx.runtime.remove_sandbox(s.id)
        pod = self.last_pod
        self.ctx.volumes.teardown(self.uid)
        self.ctx.ipam.release(self.uid)
        if pod is not None:
            shutil.rmtree(self.ctx.log_dir(pod), ignore_errors=True)
        self.ctx.crash_backoff.forget_prefix(f"{self.uid}/")
        self.ctx.image_backoff.forget_prefix(f"{self.uid}/")
        self.sandbox_id = ""

    async def _confirm_deletion(self, pod: Message) -> None:
        try:
            await self.ctx.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                         grace_period_s=0, uid=pod.metadata.uid)
        except errors.NotFound:
            pass
        except errors.Conflict:
            pass  # a new pod of the same name: ours is gone already
        self.log.info("pod deletion confirmed", pod=f"{pod.metadata.namespace}/{pod.metadata.name}")

    # ------------------------------------------------------------ probes

    def _start_probes(self, pod: Message, ctr: Message, container_id: str, started_at_s: float,
                      ready: bool | None = None, started: bool | None = None) -> None:
        target = self._target(ctr, container_id)
        workers = []
        has_startup = ctr.HasField("startup_probe")
        self.started[container_id] = started if started is not None else not has_startup
        self.ready[container_id] = ready if ready is not None else \
            not ctr.HasField("readiness_probe")

        def startup_done() -> bool:
            return self.started.get(container_id, False)

        for kind, field in ((prober.STARTUP, "startup_probe"), (prober.LIVENESS, "liveness_probe"),
                            (prober.READINESS, "readiness_probe")):
            if not ctr.HasField(field):
                continue
            if kind == prober.STARTUP and self.started[container_id]:
                continue
            initial = None
            if kind == prober.READINESS and ready is not None:
                initial = ready
            worker = prober.ProbeWorker(
                kind, getattr(ctr, field), self.ctx.runtime, target, started_at_s,
                on_result=self._on_probe_result, on_failure=self._probe_failure_reporter(pod, ctr),
                startup_done=startup_done, initial=initial)
            worker.start()
            workers.append(worker)
        self.probes[container_id] = workers

    def _probe_failure_reporter(self, pod: Message, ctr: Message):
        path = field_path(ctr.name, False)

        def report(kind: str, container_id: str, message: str) -> None:
            self.ctx.events.record(self.pod or pod, WARNING, "Unhealthy",
                                   f"{kind} probe failed: {message}", field_path=path)
        return report

    def _on_probe_result(self, kind: str, container_id: str, ok: bool, message: str) -> None:
        if kind == prober.READINESS:
            self.ready[container_id] = ok
        elif kind == prober.STARTUP:
            self.started[container_id] = ok
            if not ok:
                self.probe_failed[container_id] = (kind, message)
        elif kind == prober.LIVENESS and not ok:
            self.probe_failed[container_id] = (kind, message)
        self.notify()

    def _stop_probes(self, container_id: str) -> None:
        for worker in self.probes.pop(container_id, []):
            worker.stop()

    def _stop_all_probes(self) -> None:
        for container_id in list(self.probes):
            self._stop_probes(container_id)

    def _reconcile_probes(self, pod: Message, instances: dict[str, list[Instance]]) -> None:
        """Probe workers exactly for the running instances (adopted ones included)."""
        specs = {c.name: c for c in pod.spec.containers}
        running = {}
        for name, items in instances.items():
            if items and items[0].running and name in specs:
                running[items[0].id] = (specs[name], items[0])
        for container_id in [cid for cid in self.probes if cid not in running]:
            self._stop_probes(container_id)
        previous = {s.container_id: s for s in pod.status.container_statuses}
        for container_id, (ctr, inst) in running.items():
            if container_id in self.probes or container_id in self.killing \
                    or container_id in self.probe_failed:
                continue
            # Adopted (kubelet restart): keep what the API says about it, so a
            # restart does not flap Ready.
            known = previous.get(status.CONTAINER_ID_PREFIX + container_id)
            ready = known.ready if known is not None and known.HasField("ready") else None
            started = known.started if known is not None and known.HasField("started") else None
            self._start_probes(pod, ctr, container_id, inst.status.started_at / 1e9,
                               ready=ready, started=started)
        for container_id in [cid for cid in self.ready if cid not in running]:
            self.ready.pop(container_id, None)
            self.started.pop(container_id, None)
        for container_id in [cid for cid in self.probe_failed
                             if cid not in running and cid not in self.killing]:
            self.probe_failed.pop(container_id, None)

    # ------------------------------------------------------------ status

    def _views(self, pod: Message, instances: dict[str, list[Instance]]
               ) -> tuple[list[status.ContainerView], list[status.ContainerView]]:
        def view(ctr: Message) -> status.ContainerView:
            items = instances.get(ctr.name, [])
            cur = items[0].status if items else None
            prev = items[1].status if len(items) > 1 else None
            reason, message = self.waiting.get(ctr.name, ("", ""))
            if cur is not None and cur.state == rpb.CONTAINER_RUNNING:
                reason, message = "", ""
            v = status.ContainerView(name=ctr.name, image=ctr.image, current=cur, previous=prev,
                                     waiting_reason=reason, waiting_message=message)
            if cur is not None:
                v.started = self.started.get(cur.id, False)
                # Not ready before started (the startup probe gates readiness).
                v.ready = v.started and self.ready.get(cur.id, False)
            return v
        return [view(c) for c in pod.spec.init_containers], [view(c) for c in pod.spec.containers]

    async def _write_status(self, pod: Message, terminal: bool = False) -> None:
        instances = await self._instances() if self.sandbox_id else {}
        if terminal:
            self.waiting.clear()
        init, app = self._views(pod, instances)
        if self.volume_error:
            for v in [*init, *app]:
                if v.current is None and not v.waiting_reason:
                    v.waiting_reason = "ContainerCreating" if v in app else "PodInitializing"
        reason, message = self.terminal_reason or ("", "")
        view = status.PodView(init=init, app=app, pod_ip=self.pod_ip, host_ip=self.ctx.node_ip,
                              sandbox_ready=bool(self.sandbox_id) and not terminal
                              and not self.sandbox_stopped,
                              terminal=terminal, reason=reason, message=message)
        new = status.build(pod, view, time.time(), previous=self.last_status)
        if self.last_status is not None and status.same(new, self.last_status):
            return
        if self.last_status is None and status.same(new, pod.status):
            self.last_status = new
            return
        obj = core_pb2.Pod()
        obj.metadata.name = pod.metadata.name
        obj.metadata.namespace = pod.metadata.namespace
        obj.metadata.uid = pod.metadata.uid
        obj.status.CopyFrom(new)
        try:
            await self.ctx.client.update_status(obj)
        except errors.NotFound:
            return  # gone: the informer will say so
        self.last_status = new


def _go_code(code: grpc.StatusCode) -> str:
    """grpc-go's name of a status code: NOT_FOUND -> NotFound."""
    return "".join(part.capitalize() for part in code.name.split("_"))


def _sync_key(pod: Message) -> bytes:
    """The pod without what only the kubelet changes (its status), but with the
    conditions others own."""
    key = core_pb2.Pod()
    key.metadata.CopyFrom(pod.metadata)
    key.metadata.resource_version = ""
    key.spec.CopyFrom(pod.spec)
    key.status.conditions.extend(c for c in pod.status.conditions
                                 if c.type not in status.KUBELET_CONDITIONS)
    return key.SerializeToString(deterministic=True)

