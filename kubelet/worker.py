"""The pod worker: one asyncio task per pod (by uid) makes the pod real.

A worker takes its pod through Kubernetes' pod lifecycle (pod_workers.go),
one state after the other, never back:

    SYNCING ──▶ TERMINATING ──▶ TERMINATED ──▶ (done)

- SYNCING, `sync_pod` (SyncPod), while the pod should run: a sandbox with the
  pod's IP, the volumes, the init containers in order (each to success),
  then the app containers: start what is missing, kill what failed its
  liveness or startup probe, restart what exited as the restartPolicy says
  with CrashLoopBackOff between restarts; collect old instances (see
  kubelet/containers.py); hand the status to the status manager. The pod
  leaves SYNCING when it is deleted (deletionTimestamp), gone from the API,
  in a terminal phase (all its containers are done) or past its
  activeDeadlineSeconds.
- TERMINATING, `sync_terminating_pod`: stop every container together (the
  Killing event, preStop hooks within the grace period, SIGTERM, SIGKILL at
  its end: the deletion's grace period, shortened by a later deletion; the
  pod's for a deadline; --min-grace-s when the pod vanished), stop the
  sandbox, release the IP, hand over the final status (a terminal phase).
  A pod rejected at admission starts here: it gets its Failed status only.
- TERMINATED, `sync_terminated_pod`: a pod still in the API (it completed,
  or was rejected) keeps its final status until it is deleted. A deleted or
  vanished pod has its sandboxes, volumes and logs removed; a deleted one is
  then confirmed with a grace-0 delete with a uid precondition, once the
  status manager has written its final status. Then the worker is done.

`update(pod)` hands the worker the pod's latest version (None once gone from
the API); `notify()` asks for a pass (PLEG, probe results, ConfigMap/Secret
changes). Passes never overlap. Image pulls (kubelet/image_puller.py),
probes (kubelet/probe_manager.py) and status writes
(kubelet/status_manager.py) are the node's, shared by its workers. Pulls,
container config (env sources), volumes and starts that fail leave the
container waiting with Kubernetes' reason and an event; the worker retries
on its next pass (soon, or at the end of a back-off).
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import pathlib
import shutil
import time
from typing import Awaitable, Callable, Mapping

import grpc
import structlog
from google.protobuf.message import Message

from kubelet import actions, containers, cri, envvars, logs, prober, volumes
from kubelet import status as pod_status
from kubelet.containers import Instance
from kubelet.image_puller import ImagePuller
from kubelet.ipam import PodIPAllocator
from kubelet.probe_manager import ProbeManager, Running, field_path, target
from kubelet.status_manager import StatusManager
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
STATUS_FLUSH_TIMEOUT_S = 30.0


class Lifecycle(enum.Enum):
    SYNCING = "syncing"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


class Cause(enum.Enum):
    """Why a pod left SYNCING."""

    DELETED = "deleted"          # deletionTimestamp set: stop, then confirm the deletion
    GONE = "gone"                # no longer in the API (force-deleted, or while we were down)
    COMPLETED = "completed"      # a terminal phase: its containers are done
    DEADLINE = "deadline"        # past activeDeadlineSeconds
    REJECTED = "rejected"        # admission said no: it never ran here


@dataclasses.dataclass
class Termination:
    cause: Cause
    grace_s: float               # a later, shorter deletion lowers it
    reason: str = ""             # status.reason and message (DeadlineExceeded, OutOfcpu)
    message: str = ""


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
    status: StatusManager
    images: ImagePuller
    probes: ProbeManager
    crash_backoff: Backoff
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
class Sandbox:
    """The pod's current sandbox, as this worker knows it."""

    id: str = ""
    config: rpb.PodSandboxConfig | None = None
    ip: str = ""


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


def deletion_grace_s(pod: Message) -> float:
    meta = pod.metadata
    return float(meta.deletion_grace_period_seconds) \
        if meta.HasField("deletion_grace_period_seconds") else float(pod_grace_s(pod))


class PodWorker:
    def __init__(self, ctx: NodeContext, uid: str, on_done: Callable[[str], None],
                 rejected: tuple[str, str] | None = None):
        self.ctx = ctx
        self.uid = uid
        self.on_done = on_done
        self.log = log.bind(pod_uid=uid)
        self.pod: Message | None = None       # latest from the API; None once gone
        self.last_pod: Message | None = None  # the last version seen
        self.lifecycle = Lifecycle.SYNCING
        self.termination: Termination | None = None
        if rejected is not None:
            self.lifecycle = Lifecycle.TERMINATING
            self.termination = Termination(Cause.REJECTED, 0.0, *rejected)
        self.wake = asyncio.Event()
        self.wake_at: float | None = None
        self.task: asyncio.Task | None = None
        self.done = False
        self.errors_in_row = 0
        self.sandbox = Sandbox()
        self.volume_paths: dict[str, str] | None = None
        self.volume_error = ""
        self.waiting: dict[str, tuple[str, str]] = {}   # container name -> (reason, message)
        self.killing: set[str] = set()                   # container ids being stopped
        self.status_cache: dict[str, rpb.ContainerStatus] = {}
        self.backoff_reported: dict[str, int] = {}      # container name -> finished_at
        self.side_tasks: set[asyncio.Task] = set()

    @property
    def rejected(self) -> bool:
        return self.termination is not None and self.termination.cause is Cause.REJECTED

    # ------------------------------------------------------------ driving

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.uid[:8]}")

    async def stop(self) -> None:
        """Stop the task without touching containers (kubelet shutdown)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def update(self, pod: Message | None) -> None:
        """The pod's latest version. A change of its status alone (most often the
        kubelet's own write) is no reason to sync, unless it is a condition the
        kubelet does not own (a readiness gate)."""
        before = self.pod
        self.pod = pod
        if pod is not None:
            self.last_pod = pod
        if self.lifecycle is Lifecycle.TERMINATING and self.termination is not None:
            self._maybe_shorten_grace(pod)
        if pod is None or before is None or _sync_key(pod) != _sync_key(before):
            self.notify()

    def notify(self) -> None:
        self.wake.set()

    def schedule(self, delay_s: float) -> None:
        """Run a pass in `delay_s` at the latest."""
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
                    if await self._step():
                        self.done = True
                        return
                    self.errors_in_row = 0
                except cri.RuntimeUnavailable as err:
                    self.log.info("runtime unavailable; retrying", error=str(err))
                    self.schedule(1.0)
                except Exception as err:  # retry with back-off; never lose the pod
                    self.errors_in_row += 1
                    retry_s = min(ERROR_RETRY_S_MAX, RETRY_S * 2 ** min(self.errors_in_row, 8))
                    if isinstance(err, (errors.ApiError, cri.RuntimeCallError)):
                        self.log.warning("pod sync failed", error=str(err), retry_s=retry_s,
                                         lifecycle=self.lifecycle.value)
                    else:
                        self.log.exception("pod sync failed", retry_s=retry_s,
                                           lifecycle=self.lifecycle.value)
                    self.schedule(retry_s)
        finally:
            for task in self.side_tasks:
                task.cancel()
            if self.done:
                self.on_done(self.uid)

    async def _step(self) -> bool:
        """One pass through the lifecycle; True when the worker is done."""
        if self.lifecycle is Lifecycle.SYNCING:
            self.termination = self._termination_wanted()
            if self.termination is None:
                self.termination = await self.sync_pod(self.pod)
                if self.termination is None:
                    return False
            self.lifecycle = Lifecycle.TERMINATING
            self.log.info("pod terminating", cause=self.termination.cause.value,
                          grace_s=self.termination.grace_s)
        if self.lifecycle is Lifecycle.TERMINATING:
            await self.sync_terminating_pod()
            self.lifecycle = Lifecycle.TERMINATED
        return await self.sync_terminated_pod()

    def _termination_wanted(self) -> Termination | None:
        pod = self.pod
        if pod is None:
            return Termination(Cause.GONE, self._vanished_grace_s())
        if pod.metadata.deletion_timestamp:
            return Termination(Cause.DELETED, deletion_grace_s(pod))
        if self._is_terminal(pod):
            return Termination(Cause.COMPLETED, 0.0)
        return None

    def _vanished_grace_s(self) -> float:
        pod = self.last_pod
        if pod is not None and pod.metadata.HasField("deletion_grace_period_seconds"):
            return float(pod.metadata.deletion_grace_period_seconds)
        return self.ctx.min_grace_s  # force-deleted: what the kubelet gives at least

    def _is_terminal(self, pod: Message) -> bool:
        """Succeeded or Failed, as the API or the kubelet's own view says."""
        mine = self.ctx.status.status(self.uid)
        return pod.status.phase in pod_status.TERMINAL_PHASES or (
            mine is not None and mine.phase in pod_status.TERMINAL_PHASES)

    def _maybe_shorten_grace(self, pod: Message | None) -> None:
        """A second deletion with a shorter grace period (or a forced one) while the
        pod is being stopped: stop its containers again, sooner."""
        if pod is None:
            grace_s = self.ctx.min_grace_s
        elif pod.metadata.HasField("deletion_grace_period_seconds"):
            grace_s = float(pod.metadata.deletion_grace_period_seconds)
        else:
            return
        if grace_s >= self.termination.grace_s:
            return
        self.termination.grace_s = grace_s
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

    # ------------------------------------------------------------ SyncPod

    async def sync_pod(self, pod: Message) -> Termination | None:
        """Make the pod run; a Termination when it should stop (completed, past
        its deadline), None while it runs."""
        deadline = await self._past_deadline(pod)
        if deadline is not None:
            return deadline
        if not self.sandbox.id and not await self._find_sandbox(pod):
            if not await self._may_start_again(pod):
                # restartPolicy Never, and it ran in a sandbox that is gone (a node
                # or cluster restart): no new sandbox; its final status says how it ended.
                self.sandbox.ip = self.sandbox.ip or pod.status.pod_ip
                return await self._report(pod)
            await self._create_sandbox(pod)
        if not await self._setup_volumes(pod):
            await self._report(pod)
            return None
        grouped = await self._instances()
        self._sync_probes(pod, grouped)
        if await self._sync_init_containers(pod, grouped):
            for ctr in pod.spec.containers:
                await self._sync_container(pod, ctr, grouped.get(ctr.name, []))
        return await self._report(pod, collect=True)

    async def _report(self, pod: Message, collect: bool = False) -> Termination | None:
        """Hand over the status; a Termination once it is terminal."""
        grouped = await self._instances()
        status = self._set_status(pod, grouped)
        if collect:
            await self._collect_garbage(grouped)
        if status.phase in pod_status.TERMINAL_PHASES:
            return Termination(Cause.COMPLETED, 0.0)
        return None

    async def _may_start_again(self, pod: Message) -> bool:
        if (pod.spec.restart_policy or "Always") != "Never":
            return True
        return not await self._instances()

    async def _past_deadline(self, pod: Message) -> Termination | None:
        spec = pod.spec
        if not spec.HasField("active_deadline_seconds") or not pod.status.start_time:
            return None
        started_s = timefmt.parse_rfc3339(pod.status.start_time)
        if time.time() < started_s + spec.active_deadline_seconds:
            self.schedule(started_s + spec.active_deadline_seconds - time.time())
            return None
        message = "Pod was active on the node longer than the specified deadline"
        self.ctx.events.record(pod, WARNING, "DeadlineExceeded", message)
        return Termination(Cause.DEADLINE, float(pod_grace_s(pod)), "DeadlineExceeded", message)

    async def _sync_init_containers(self, pod: Message,
                                    grouped: dict[str, list[Instance]]) -> bool:
        """Run the init containers in order; True once every one has succeeded."""
        spec = pod.spec
        for ctr in spec.init_containers:
            items = grouped.get(ctr.name, [])
            cur = items[0] if items else None
            if cur is not None and cur.exited and cur.status.exit_code == 0:
                continue
            if cur is None:
                await self._start(pod, ctr, items, init=True)
            elif cur.status.state == rpb.CONTAINER_CREATED:
                await self._start_created(pod, ctr, cur, items, init=True)
            elif cur.exited and (spec.restart_policy or "Always") != "Never":
                await self._restart(pod, ctr, cur, items, init=True)
            return False
        return True

    async def _sync_container(self, pod: Message, ctr: Message, items: list[Instance]) -> None:
        cur = items[0] if items else None
        if cur is None:
            await self._start(pod, ctr, items)
        elif cur.status.state == rpb.CONTAINER_CREATED:
            await self._start_created(pod, ctr, cur, items)
        elif cur.running:
            failed = self.ctx.probes.failure(self.uid, cur.id)
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
                await self._restart(pod, ctr, cur, items)
            else:
                self.waiting.pop(ctr.name, None)

    @staticmethod
    def _probe_grace_s(pod: Message, ctr: Message, kind: str) -> float:
        probe = ctr.liveness_probe if kind == prober.LIVENESS else ctr.startup_probe
        if probe.HasField("termination_grace_period_seconds"):
            return float(probe.termination_grace_period_seconds)
        return float(pod_grace_s(pod))

    # ------------------------------------------------------------ SyncTerminatingPod

    async def sync_terminating_pod(self) -> None:
        t = self.termination
        self.ctx.probes.remove_pod(self.uid)
        if t.cause is Cause.REJECTED:
            if self.pod is not None:
                self._set_rejected_status(self.pod)
            return
        pod = self.pod or self.last_pod
        had_sandbox = await self._stop_all(pod, t.grace_s)
        if self.pod is not None and had_sandbox:
            self._set_status(self.pod, await self._instances(), terminal=True)

    def _set_rejected_status(self, pod: Message) -> None:
        t = self.termination
        if pod.status.phase == "Failed" and pod.status.reason == t.reason:
            return  # rejected before (by a previous kubelet)
        new = core_pb2.PodStatus()
        new.CopyFrom(pod.status)
        new.phase, new.reason, new.message = "Failed", t.reason, t.message
        new.start_time = new.start_time or timefmt.rfc3339()
        self.ctx.events.record(pod, WARNING, t.reason, t.message)
        self.ctx.status.set_pod_status(pod, new)
        self.log.info("pod rejected", reason=t.reason, message=t.message)

    async def _stop_all(self, pod: Message | None, grace_s: float) -> bool:
        """Stop every running container of the pod, together, then its sandboxes;
        False when the pod has no sandbox on this node."""
        sandboxes = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        if not sandboxes:
            return False
        if not self.sandbox.id:  # not synced since a kubelet restart: report on the newest
            newest = max(sandboxes, key=lambda s: (s.metadata.attempt, s.created_at))
            self.sandbox.id = newest.id
            self.sandbox.ip = (await self.ctx.runtime.sandbox_status(newest.id)).network.ip
        specs = {}
        if pod is not None:
            specs = {c.name: c for c in [*pod.spec.init_containers, *pod.spec.containers]}
        found = await self.ctx.runtime.list_containers(labels={cri.POD_UID_LABEL: self.uid})
        live = [c for c in found if c.state in (rpb.CONTAINER_RUNNING, rpb.CONTAINER_CREATED)]
        await asyncio.gather(*(self._kill(
            pod, specs.get(c.metadata.name), c.id, min(grace_s, self.termination.grace_s),
            f"Stopping container {c.metadata.name}", event=c.state == rpb.CONTAINER_RUNNING)
            for c in live))
        for s in sandboxes:
            if s.state == rpb.SANDBOX_READY:
                await self.ctx.runtime.stop_sandbox(s.id, 0.0)
        # Nothing will run in it again: the IP goes back (the status keeps it).
        self.ctx.ipam.release(self.uid)
        await self.ctx.ipam.flush()
        self.status_cache.clear()
        self.waiting.clear()
        return True

    # ------------------------------------------------------------ SyncTerminatedPod

    async def sync_terminated_pod(self) -> bool:
        pod = self.pod
        if pod is not None and not pod.metadata.deletion_timestamp:
            # Completed or rejected, still in the API: its final status stays.
            mine = self.ctx.status.status(self.uid)
            if mine is not None and not self.ctx.status.synced(self.uid):
                self.ctx.status.set_pod_status(pod, mine)  # the last write failed: again
            return False
        if pod is not None and not await self.ctx.status.flush(self.uid,
                                                               STATUS_FLUSH_TIMEOUT_S):
            raise errors.Unavailable("the final pod status is not written yet")
        await self._cleanup()
        if pod is not None:
            await self._confirm_deletion(pod)
        else:
            self.log.info("pod gone from the API: stopped and cleaned up")
        self.ctx.status.forget(self.uid)
        return True

    async def _cleanup(self) -> None:
        for s in await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid}):
            await self.ctx.runtime.remove_sandbox(s.id)
        await asyncio.to_thread(self.ctx.volumes.teardown, self.uid)
        self.ctx.ipam.release(self.uid)
        await self.ctx.ipam.flush()
        pod = self.last_pod
        if pod is not None:
            await asyncio.to_thread(shutil.rmtree, self.ctx.log_dir(pod), True)
        self.ctx.crash_backoff.forget_prefix(f"{self.uid}/")
        self.ctx.images.forget_pod(self.uid)
        self.ctx.probes.remove_pod(self.uid)
        self.sandbox = Sandbox()

    async def _confirm_deletion(self, pod: Message) -> None:
        try:
            await self.ctx.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                         grace_period_s=0, uid=pod.metadata.uid)
        except errors.NotFound:
            pass
        except errors.Conflict:
            pass  # a new pod of the same name: ours is gone already
        self.log.info("pod deletion confirmed", pod=f"{pod.metadata.namespace}/{pod.metadata.name}")

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
        """Adopt the pod's ready sandbox if the runtime has one (a kubelet restart)."""
        found = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        ready = [s for s in found if s.state == rpb.SANDBOX_READY]
        if not ready:
            return False
        best = max(ready, key=lambda s: (s.metadata.attempt, s.created_at))
        sandbox = await self.ctx.runtime.sandbox_status(best.id)
        ip = sandbox.network.ip
        if ip and ip != self.ctx.node_ip:
            self.ctx.ipam.assign(self.uid, ip)
            await self.ctx.ipam.flush()
        self.sandbox = Sandbox(best.id, self._sandbox_config(pod, best.metadata.attempt, ip), ip)
        return True

    async def _create_sandbox(self, pod: Message) -> None:
        found = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        attempt = max((s.metadata.attempt for s in found), default=-1) + 1
        pod_ip = self.ctx.node_ip if pod.spec.host_network else self.ctx.ipam.allocate(self.uid)
        await self.ctx.ipam.flush()
        config = self._sandbox_config(pod, attempt, pod_ip)
        sandbox_id = await self.ctx.runtime.run_sandbox(config)
        self.sandbox = Sandbox(sandbox_id, config, pod_ip)
        self.log.info("sandbox created", sandbox=sandbox_id[:12], pod_ip=pod_ip, attempt=attempt)

    async def _setup_volumes(self, pod: Message) -> bool:
        try:
            self.volume_paths = await self.ctx.volumes.setup(
                pod, self.ctx.lookup, self.ctx.claim_path, host_ip=self.ctx.node_ip,
                pod_ip=self.sandbox.ip, allocatable=self.ctx.allocatable)
        except (volumes.VolumeError, errors.NotFound) as err:
            message = str(err) if isinstance(err, volumes.VolumeError) \
                else f"MountVolume.SetUp failed: {err}"
            if message != self.volume_error:
                self.ctx.events.record(pod, WARNING, "FailedMount", message)
            self.volume_error = message
            self.schedule(RETRY_S)
            return False
        self.volume_error = ""
        return True

    # ------------------------------------------------------------ containers

    async def _instances(self) -> dict[str, list[Instance]]:
        """Container name -> its instances in every sandbox of the pod, newest first."""
        found = await self.ctx.runtime.list_containers(labels={cri.POD_UID_LABEL: self.uid})
        instances = []
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
            instances.append(Instance(c, cached))
        live = {c.id for c in found}
        for cid in [cid for cid in self.status_cache if cid not in live]:
            del self.status_cache[cid]
        return containers.by_name(instances)

    async def _next_attempt(self, pod: Message, name: str, items: list[Instance]) -> int:
        """One more than any attempt of this container known: the runtime's, the
        API's and the kubelet's own status, and (with no instance left) the log
        files' names."""
        known = []
        for status in (pod.status, self.ctx.status.status(self.uid)):
            if status is not None:
                known.append(containers.api_attempt(
                    [*status.container_statuses, *status.init_container_statuses], name))
        if not items:
            known += await asyncio.to_thread(logs.logged_attempts,
                                             self.ctx.log_dir(pod) / name)
        return containers.next_attempt(items, known)

    def _container_config(self, pod: Message, ctr: Message, attempt: int,
                          init: bool) -> rpb.ContainerConfig:
        env = envvars.container_env(
            pod, ctr, self.ctx.lookup, host_ip=self.ctx.node_ip, pod_ip=self.sandbox.ip,
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
            log_path=logs.relative_log_path(ctr.name, attempt),
            labels={cri.POD_NAME_LABEL: m.name, cri.POD_NAMESPACE_LABEL: m.namespace,
                    cri.POD_UID_LABEL: m.uid, cri.CONTAINER_NAME_LABEL: ctr.name},
            annotations={cri.RESTART_COUNT_ANNOTATION: str(attempt),
                         cri.INIT_ANNOTATION: "true" if init else "false",
                         cri.GRACE_ANNOTATION: str(pod_grace_s(pod))})

    async def _start(self, pod: Message, ctr: Message, items: list[Instance],
                     init: bool = False) -> None:
        path = field_path(ctr.name, init)
        pulled = await self.ctx.images.ensure(pod, ctr, path)
        if not pulled.ok:
            self.waiting[ctr.name] = (pulled.reason, pulled.message)
            if pulled.retry_s is not None:
                self.schedule(pulled.retry_s)
            return
        attempt = await self._next_attempt(pod, ctr.name, items)
        try:
            config = self._container_config(pod, ctr, attempt, init)
        except envvars.ConfigError as err:
            message = str(err)
            if self.waiting.get(ctr.name) != ("CreateContainerConfigError", message):
                self.ctx.events.record(pod, WARNING, "Failed", f"Error: {message}",
                                       field_path=path)
            self.waiting[ctr.name] = ("CreateContainerConfigError", message)
            self.schedule(RETRY_S)
            return
        try:
            container_id = await self.ctx.runtime.create_container(
                self.sandbox.id, config, self.sandbox.config)
        except cri.RuntimeCallError as err:
            if err.code == grpc.StatusCode.ALREADY_EXISTS:
                self.notify()  # an earlier create went through: find it on the next pass
                return
            if err.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION) \
                    and "sandbox" in err.message:
                self.log.warning("sandbox gone; making a new one", error=err.message)
                self.sandbox = Sandbox()
                self.notify()
                return
            self.waiting[ctr.name] = ("CreateContainerError", err.message)
            self.ctx.events.record(pod, WARNING, "Failed", f"Error: {err.message}",
                                   field_path=path)
            self.schedule(RETRY_S)
            return
        self.ctx.events.record(pod, NORMAL, "Created", f"Created container {ctr.name}",
                               field_path=path)
        await self._run_created(pod, ctr, container_id, init)

    async def _start_created(self, pod: Message, ctr: Message, cur: Instance,
                             items: list[Instance], init: bool = False) -> None:
        """A container created but never started (the kubelet stopped in between);
        one made in an earlier sandbox cannot start any more: a new one is made."""
        if cur.sandbox_id != self.sandbox.id:
            await self._start(pod, ctr, items, init)
            return
        await self._run_created(pod, ctr, cur.id, init)

    async def _run_created(self, pod: Message, ctr: Message, container_id: str,
                           init: bool) -> None:
        path = field_path(ctr.name, init)
        try:
            await self.ctx.runtime.start_container(container_id)
        except cri.RuntimeCallError as err:
            # The runtime recorded it as exited (StartError); restarts go through the back-off.
            self.waiting.pop(ctr.name, None)
            self.ctx.events.record(pod, WARNING, "Failed", f"Error: {err.message}",
                                   field_path=path)
            self.notify()
            return
        self.waiting.pop(ctr.name, None)
        self.ctx.events.record(pod, NORMAL, "Started", f"Started container {ctr.name}",
                               field_path=path)
        self.log.info("container started", container=ctr.name, container_id=container_id[:12])
        if not init:
            self.ctx.probes.add(pod, Running(ctr, container_id, time.time()), self.sandbox.ip)
        if ctr.HasField("lifecycle") and ctr.lifecycle.HasField("post_start"):
            outcome = await actions.run_hook(ctr.lifecycle.post_start, self.ctx.runtime,
                                             target(ctr, container_id, self.sandbox.ip),
                                             self.ctx.hook_timeout_s)
            if not outcome.ok:
                self.ctx.events.record(pod, WARNING, "FailedPostStartHook", outcome.message,
                                       field_path=path)
                await self._kill(pod, ctr, container_id, float(pod_grace_s(pod)),
                                 "FailedPostStartHook", run_pre_stop=False)

    async def _restart(self, pod: Message, ctr: Message, cur: Instance, items: list[Instance],
                       init: bool = False) -> None:
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
        await self._start(pod, ctr, items, init=init)

    async def _collect_garbage(self, grouped: dict[str, list[Instance]]) -> None:
        """Remove old dead instances and their logs, then sandboxes left empty
        (kubelet/containers.py says which)."""
        removed = 0
        for inst in containers.removable(grouped):
            try:
                await self.ctx.runtime.remove_container(inst.id)
            except cri.RuntimeCallError as err:
                self.log.info("could not remove a container", container_id=inst.id[:12],
                              error=err.message)
                continue
            if inst.status.log_path:
                await asyncio.to_thread(logs.remove_log, inst.status.log_path)
            self.status_cache.pop(inst.id, None)
            removed += 1
        if not removed:
            return
        kept = [i for items in grouped.values() for i in items if i.id in self.status_cache]
        sandboxes = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        for sandbox_id in containers.sandboxes_to_remove(sandboxes, kept):
            if sandbox_id != self.sandbox.id:
                await self.ctx.runtime.remove_sandbox(sandbox_id)

    async def _kill(self, pod: Message | None, ctr: Message | None, container_id: str,
                    grace_s: float, message: str, *, run_pre_stop: bool = True,
                    event: bool = True) -> None:
        """Stop one container: Killing event, preStop within the grace period,
        then SIGTERM, the rest of the grace period, SIGKILL (the runtime's stop)."""
        if container_id in self.killing:
            return
        self.killing.add(container_id)
        try:
            self.ctx.probes.stop_container(self.uid, container_id)
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
                                                 target(ctr, container_id, self.sandbox.ip),
                                                 grace_s)
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

    # ------------------------------------------------------------ probes and status

    def _sync_probes(self, pod: Message, grouped: dict[str, list[Instance]]) -> None:
        """Probe workers exactly for the running app containers (adopted ones included)."""
        specs = {c.name: c for c in pod.spec.containers}
        running = {}
        for name, items in grouped.items():
            if items and items[0].running and name in specs:
                cur = items[0]
                running[cur.id] = Running(specs[name], cur.id, cur.status.started_at / 1e9)
        self.ctx.probes.sync(pod, running, self.sandbox.ip, frozenset(self.killing))

    def _views(self, pod: Message, grouped: dict[str, list[Instance]]
               ) -> tuple[list[pod_status.ContainerView], list[pod_status.ContainerView]]:
        def view(ctr: Message) -> pod_status.ContainerView:
            items = grouped.get(ctr.name, [])
            cur = items[0].status if items else None
            prev = items[1].status if len(items) > 1 else None
            reason, message = self.waiting.get(ctr.name, ("", ""))
            if cur is not None and cur.state == rpb.CONTAINER_RUNNING:
                reason, message = "", ""
            v = pod_status.ContainerView(name=ctr.name, image=ctr.image, current=cur,
                                         previous=prev, waiting_reason=reason,
                                         waiting_message=message)
            if cur is not None:
                v.started = self.ctx.probes.started(self.uid, cur.id)
                # Not ready before started (the startup probe gates readiness).
                v.ready = self.ctx.probes.ready(self.uid, cur.id)
            return v
        return [view(c) for c in pod.spec.init_containers], [view(c) for c in pod.spec.containers]

    def _set_status(self, pod: Message, grouped: dict[str, list[Instance]],
                    terminal: bool = False) -> core_pb2.PodStatus:
        """Compute the pod's status from this view and hand it to the status manager."""
        init, app = self._views(pod, grouped)
        if self.volume_error:
            for v in [*init, *app]:
                if v.current is None and not v.waiting_reason:
                    v.waiting_reason = "ContainerCreating" if v in app else "PodInitializing"
        t = self.termination
        reason, message = (t.reason, t.message) if t is not None else ("", "")
        view = pod_status.PodView(init=init, app=app, pod_ip=self.sandbox.ip,
                                  host_ip=self.ctx.node_ip,
                                  sandbox_ready=bool(self.sandbox.id) and not terminal,
                                  terminal=terminal, reason=reason, message=message)
        new = pod_status.build(pod, view, time.time(), previous=self.ctx.status.status(self.uid))
        self.ctx.status.set_pod_status(pod, new)
        return self.ctx.status.status(self.uid) or new


def _sync_key(pod: Message) -> bytes:
    """The pod without what only the kubelet changes (its status), but with the
    conditions others own."""
    key = core_pb2.Pod()
    key.metadata.CopyFrom(pod.metadata)
    key.metadata.resource_version = ""
    key.spec.CopyFrom(pod.spec)
    key.status.conditions.extend(c for c in pod.status.conditions
                                 if c.type not in pod_status.KUBELET_CONDITIONS)
    return key.SerializeToString(deterministic=True)
