"""The pod worker: one asyncio task per pod (by uid) makes the pod real.

A worker takes its pod through Kubernetes' pod lifecycle (pod_workers.go),
one state after the other, never back:

    SYNCING ──▶ TERMINATING ──▶ TERMINATED ──▶ (done)

- SYNCING, `sync_pod` (SyncPod), while the pod should run: its containers
  are made to run as its spec says (PodRuntime.sync) and its status handed
  to the status manager. The pod leaves SYNCING when it is deleted
  (deletionTimestamp), gone from the API, in a terminal phase (all its
  containers are done) or past its activeDeadlineSeconds.
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
changes). Passes never overlap. What is done to the pod's containers is
its PodRuntime's (kubelet/pod_runtime.py); image pulls, probes and status
writes are the node's, shared by its workers (kubelet/image_puller.py,
probe_manager.py, status_manager.py). A pass that fails is retried with
back-off; the worker never gives up on its pod.
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from typing import Callable

import structlog
from google.protobuf.message import Message

from kubelet import cri
from kubelet import status as pod_status
from kubelet.pod_runtime import NodeContext, PodRuntime, pod_grace_s
from kubemu import timefmt
from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.backoff import exponential_s
from kubemu.client.events import WARNING

log = structlog.get_logger()

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
        self.side_tasks: set[asyncio.Task] = set()
        self.pod_runtime = PodRuntime(ctx, uid, self.log, schedule=self.schedule,
                                      notify=self.notify)

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

    def remove(self) -> None:
        """The pod's source dropped it (a static pod's file went): stop it
        within its own grace period, as a pod deleted without one."""
        if self.last_pod is not None and \
                not self.last_pod.metadata.HasField("deletion_grace_period_seconds"):
            marked = core_pb2.Pod()
            marked.CopyFrom(self.last_pod)
            marked.metadata.deletion_grace_period_seconds = pod_grace_s(marked)
            self.last_pod = marked
        self.update(None)

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
                    retry_s = exponential_s(self.errors_in_row + 1, RETRY_S, ERROR_RETRY_S_MAX)
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
        task = asyncio.create_task(self.pod_runtime.stop_running(grace_s),
                                   name=f"shorten-{self.uid[:8]}")
        self.side_tasks.add(task)
        task.add_done_callback(self.side_tasks.discard)

    # ------------------------------------------------------------ SyncPod

    async def sync_pod(self, pod: Message) -> Termination | None:
        """Make the pod run; a Termination when it should stop (it completed, or
        is past its deadline), None while it runs."""
        deadline = self._past_deadline(pod)
        if deadline is not None:
            return deadline
        status = await self.pod_runtime.sync(pod)
        if status.phase in pod_status.TERMINAL_PHASES:
            return Termination(Cause.COMPLETED, 0.0)
        return None

    def _past_deadline(self, pod: Message) -> Termination | None:
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

    # ------------------------------------------------------------ SyncTerminatingPod

    async def sync_terminating_pod(self) -> None:
        t = self.termination
        self.ctx.probes.remove_pod(self.uid)
        if t.cause is Cause.REJECTED:
            if self.pod is not None:
                self._set_rejected_status(self.pod)
            return
        had_sandbox = await self.pod_runtime.stop_all(self.pod or self.last_pod, t.grace_s)
        if self.pod is not None and had_sandbox:
            await self.pod_runtime.report(self.pod, terminal=True, reason=t.reason,
                                      message=t.message)

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
        await self.pod_runtime.cleanup(self.last_pod)
        if pod is not None:
            await self._confirm_deletion(pod)
        else:
            self.log.info("pod gone from the API: stopped and cleaned up")
        self.ctx.status.forget(self.uid)
        return True

    async def _confirm_deletion(self, pod: Message) -> None:
        try:
            await self.ctx.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                         grace_period_s=0, uid=pod.metadata.uid)
        except errors.NotFound:
            pass
        except errors.Conflict:
            pass  # a new pod of the same name: ours is gone already
        self.log.info("pod deletion confirmed", pod=f"{pod.metadata.namespace}/{pod.metadata.name}")


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
