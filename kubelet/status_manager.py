"""The status manager: one per kubelet, the only writer of its pods' status.

Model (Kubernetes' pkg/kubelet/status/status_manager.go):
- A pod worker computes its pod's status (kubelet/status.py) and hands it
  over with `set_pod_status(pod, status)`; it never writes the API itself.
  `status(uid)` is the latest status set, the kubelet's own view of the pod
  (the previous status of the worker's next computation).
- Nothing goes backwards: a status set is passed through
  `status.never_backwards` against the one set before it (or the pod's, the
  first time), and every write again against the pod as read.
- One write per pod at a time, in a task of its own. Statuses set while a
  write is in flight are coalesced: when it ends, one more write sends the
  latest, so a burst of updates to one pod makes at most two writes.
- A write starts from the newest copy of the pod it has (the informer's, or
  what its own last write returned, by resourceVersion), merges
  (`status.merge`: the kubelet's fields and the conditions it owns from its
  view, every other condition as that copy has it) and sends an UpdateStatus
  that carries that copy's resourceVersion and the pod's uid. On Conflict it
  reads the pod again and merges anew, at most `conflict_retries` times.
  A pod that is gone, or whose uid changed (deleted and made again under
  its name), is not written: its entry is dropped, and later statuses for
  that uid are ignored. Nothing is sent when the merged status is the one
  stored already.
- The kubelet's view wins over another writer's: a status set that is the
  same as before is still written when the API's copy (the informer's, or
  our last write's) disagrees with it on the kubelet's fields (Kubernetes'
  needsReconcile; the node lifecycle controller marks the pods of a node it
  lost Ready=False, and the kubelet that comes back sets them right).
- Any other failure (Unavailable, a timeout) is retried `error_retries`
  times with back-off; after that the pod stays unsynced and the next
  `set_pod_status` (the worker's next sync, at least every sync period)
  tries again even when the status did not change.
- `flush(uid, timeout_s)` waits until what was set has been written (or
  dropped): a pod worker confirms a deletion only after the final status is
  in the API, as the kubelet's status manager does before it deletes a pod.
- `forget(uid)` when the worker ends; entries are bounded by the node's pods.
- A static pod's status goes to its mirror pod (Kubernetes' translatePodUID):
  `api_uid(uid)` names the API pod a kubelet pod's status is written to —
  the uid itself for a pod from the API, the mirror's for a static pod, None
  while it has no mirror. A static pod's status waits for its mirror (not
  written yet, tried again at the next sync) instead of being dropped.

Time (conditions' transition times) comes from `clock`, back-off sleeps
through `sleep`, so tests drive both.
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from typing import Awaitable, Callable

import structlog
from google.protobuf.message import Message

from kubelet import status as pod_status
from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.backoff import Exponential

log = structlog.get_logger()

CONFLICT_RETRIES = 5
ERROR_RETRIES = 3
ERROR_BACKOFF_S_BASE = 0.2
ERROR_BACKOFF_S_MAX = 5.0

# (namespace, name) -> the pod as the kubelet's informer has it, or None.
CachedPod = Callable[[str, str], Message | None]
# The kubelet's pod uid -> the uid of the API pod its status goes to, or None.
ApiUid = Callable[[str], str | None]


def _same_uid(uid: str) -> str:
    return uid


class PodClient:
    """What the status manager needs of a clientset (kubemu.client.Client)."""

    async def get(self, resource: str, name: str, namespace: str = "") -> Message: ...

    async def update_status(self, obj: Message) -> Message: ...


@dataclasses.dataclass
class _Entry:
    uid: str
    namespace: str
    name: str
    spec: Message
    status: core_pb2.PodStatus | None = None   # the latest status set
    version: int = 0                            # statuses set so far
    done_version: int = 0                       # the last one written (or given up on)
    synced: bool = False                        # was that one written?
    dropped: bool = False                       # gone, or its uid changed: never written
    written: Message | None = None              # what our last write returned
    reconciled_rv: int = -1                     # the API copy last checked (needs_reconcile)
    task: asyncio.Task | None = None
    idle: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


def _rv(pod: Message | None) -> int:
    try:
        return int(pod.metadata.resource_version) if pod is not None else -1
    except ValueError:
        return -1


class StatusManager:
    def __init__(self, client: PodClient, cached: CachedPod, *,
                 conflict_retries: int = CONFLICT_RETRIES, error_retries: int = ERROR_RETRIES,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None, api_uid: ApiUid = _same_uid):
        if conflict_retries < 0 or error_retries < 0:
            raise ValueError(f"StatusManager: retries must be >= 0, got {conflict_retries}, "
                             f"{error_retries}")
        self.client = client
        self.cached = cached
        self.api_uid = api_uid
        self.conflict_retries = conflict_retries
        self.error_retries = error_retries
        self.clock = clock
        self.sleep = sleep
        self._rng = rng or random.Random()
        self._entries: dict[str, _Entry] = {}
        self.writes = 0  # UpdateStatus calls made (for tests and logs)

    # ------------------------------------------------------------ the pod workers' side

    def status(self, uid: str) -> core_pb2.PodStatus | None:
        entry = self._entries.get(uid)
        return entry.status if entry is not None else None

    def synced(self, uid: str) -> bool:
        entry = self._entries.get(uid)
        return entry is not None and (entry.dropped or (
            entry.synced and entry.done_version == entry.version))

    def set_pod_status(self, pod: Message, status: core_pb2.PodStatus) -> None:
        meta = pod.metadata
        entry = self._entries.get(meta.uid)
        if entry is None:
            entry = _Entry(meta.uid, meta.namespace, meta.name, pod.spec)
            entry.idle.set()
            self._entries[meta.uid] = entry
        if entry.dropped:
            return
        entry.spec = pod.spec
        new = core_pb2.PodStatus()
        new.CopyFrom(status)
        pod_status.never_backwards(entry.status if entry.status is not None else pod.status,
                                   new, pod.spec)
        if entry.status is not None and pod_status.same(new, entry.status) and (
                entry.task is not None
                or (entry.synced and not self._needs_reconcile(entry))):
            return  # nothing new (a failed write is tried again, though)
        entry.status = new
        self._schedule(entry)

    def _schedule(self, entry: _Entry) -> None:
        """A new version to write; the entry's writer task starts if idle."""
        entry.version += 1
        if entry.task is None:
            entry.idle.clear()
            entry.task = asyncio.get_running_loop().create_task(
                self._run(entry), name=f"status-{entry.uid[:8]}")

    def _needs_reconcile(self, entry: _Entry) -> bool:
        """Whether the API's copy of the pod (the informer's, or our last
        write's) says something else than the kubelet's view of the fields it
        owns (Kubernetes' needsReconcile): another writer changed them, e.g.
        the node lifecycle controller set Ready=False while the node was away.
        A copy already checked is not merged again."""
        uid = self.api_uid(entry.uid)  # a static pod's status lives on its mirror
        base = self._newest_copy(entry, uid) if uid is not None else None
        if base is None or base.metadata.uid != uid or entry.status is None \
                or _rv(base) == entry.reconciled_rv:
            return False
        entry.reconciled_rv = _rv(base)
        return not pod_status.same(pod_status.merge(base, entry.status, self.clock()),
                                   base.status)

    async def flush(self, uid: str, timeout_s: float) -> bool:
        """Wait until the latest status set for `uid` is written; False when it
        could not be (a write failed, or timeout_s passed). A dropped pod counts
        as flushed: there is nothing left to write."""
        entry = self._entries.get(uid)
        if entry is None:
            return True
        if entry.task is None and not entry.synced and not entry.dropped \
                and entry.status is not None:
            # The last write failed (the apiserver was away): a flush sends the
            # latest status again rather than reporting the old failure forever.
            entry.version += 1
            entry.idle.clear()
            entry.task = asyncio.get_running_loop().create_task(
                self._run(entry), name=f"status-{uid[:8]}")
        try:
            async with asyncio.timeout(timeout_s):
                await entry.idle.wait()
        except TimeoutError:
            return False
        return entry.dropped or (entry.synced and entry.done_version == entry.version)

    def resend(self, uid: str) -> None:
        """Write the latest status again, even if written before: a static
        pod's mirror was made again and starts with none."""
        entry = self._entries.get(uid)
        if entry is None or entry.dropped or entry.status is None:
            return
        entry.written = None
        self._schedule(entry)

    def forget(self, uid: str) -> None:
        entry = self._entries.pop(uid, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()

    async def stop(self) -> None:
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ writing

    async def _run(self, entry: _Entry) -> None:
        try:
            while entry.done_version < entry.version and not entry.dropped:
                version, wanted = entry.version, entry.status
                ok = await self._write_with_retries(entry, wanted)
                entry.done_version, entry.synced = version, ok
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: log it; the next set_pod_status tries again
            log.exception("pod status write failed", pod=f"{entry.namespace}/{entry.name}",
                          pod_uid=entry.uid)
            entry.done_version, entry.synced = entry.version, False
        finally:
            entry.task = None
            entry.idle.set()

    async def _write_with_retries(self, entry: _Entry, wanted: core_pb2.PodStatus) -> bool:
        backoff = Exponential(ERROR_BACKOFF_S_BASE, ERROR_BACKOFF_S_MAX, rng=self._rng)
        for attempt in range(self.error_retries + 1):
            try:
                return await self._write(entry, wanted)
            except errors.ApiError as err:
                if not err.temporary:  # refused (Invalid, Forbidden): no retry helps
                    log.error("pod status refused", pod=f"{entry.namespace}/{entry.name}",
                              pod_uid=entry.uid, error=str(err))
                    return False
                if attempt == self.error_retries:
                    log.warning("pod status not written; will try again at the next sync",
                                pod=f"{entry.namespace}/{entry.name}", pod_uid=entry.uid,
                                error=str(err))
                    return False
                await self.sleep(backoff.next_s())  # back-off before the next try
        return False

    def _newest_copy(self, entry: _Entry, uid: str) -> Message | None:
        cached = self.cached(entry.namespace, entry.name)
        if cached is not None and cached.metadata.uid != uid:
            cached = None  # a newer pod of that name; our write result may still be ours
        written = entry.written
        return written if _rv(written) > _rv(cached) else cached

    def _drop(self, entry: _Entry, why: str) -> bool:
        entry.dropped = True
        log.info("pod status not written: " + why, pod=f"{entry.namespace}/{entry.name}",
                 pod_uid=entry.uid)
        return True

    async def _write(self, entry: _Entry, wanted: core_pb2.PodStatus) -> bool:
        """Merge `wanted` into the newest copy of the pod and write it; True when
        written, unchanged, or not to be written (gone, uid changed)."""
        uid = self.api_uid(entry.uid)
        if uid is None:
            return False  # a static pod without its mirror yet: later
        mirrored = uid != entry.uid
        base = self._newest_copy(entry, uid)
        for _ in range(self.conflict_retries + 1):
            if base is None:
                try:
                    base = await self.client.get("pods", entry.name, entry.namespace)
                except errors.NotFound:
                    return False if mirrored else self._drop(entry, "the pod is gone")
            if base.metadata.uid != uid:
                if mirrored:
                    return False  # its mirror is being made again: later
                return self._drop(entry, f"the pod was replaced (uid {base.metadata.uid})")
            merged = pod_status.merge(base, wanted, self.clock())
            if pod_status.same(merged, base.status):
                entry.written = base
                return True
            obj = core_pb2.Pod()
            obj.metadata.name, obj.metadata.namespace = entry.name, entry.namespace
            obj.metadata.uid = uid
            obj.metadata.resource_version = base.metadata.resource_version
            obj.status.CopyFrom(merged)
            self.writes += 1
            try:
                entry.written = await self.client.update_status(obj)
                return True
            except errors.Conflict:
                base = None  # someone wrote in between: read it again and merge anew
            except errors.NotFound:
                return False if mirrored else self._drop(entry, "the pod is gone")
        log.warning("pod status not written: conflicts on every try",
                    pod=f"{entry.namespace}/{entry.name}", pod_uid=entry.uid,
                    tries=self.conflict_retries + 1)
        return False
