"""The TTL-after-finished controller (kubernetes/pkg/controller/ttlafterfinished).

A Job with spec.ttlSecondsAfterFinished that has finished (condition Complete
or Failed True) is deleted ttlSecondsAfterFinished after that condition's
lastTransitionTime. Handlers enqueue Jobs that need clean-up; sync waits
(enqueue_after) until the TTL expires, then re-reads the Job from the
apiserver (its TTL may have been changed since the cache saw it) and deletes
it with propagationPolicy Foreground, as Kubernetes does (the garbage
collector deletes its pods, then the Job), and its uid as a precondition, so a
Job recreated under the same name is never the one deleted.
"""
from __future__ import annotations

from google.protobuf.message import Message

from kubemu.api import errors

from controller_manager import controllerutil as cu
from controller_manager.base import Context, Controller, split_key
from controller_manager.job import finished_condition

PROPAGATION = "Foreground"


def finish_time_s(job: Message) -> float | None:
    """When the Job finished (its Complete/Failed condition's transition), or None."""
    cond = finished_condition(job)
    return cu.time_s(cond.last_transition_time) if cond is not None else None


def expires_at_s(job: Message) -> float | None:
    """When a finished Job with a TTL is to be deleted (None: never)."""
    if job.metadata.deletion_timestamp or not job.spec.HasField("ttl_seconds_after_finished"):
        return None
    finished = finish_time_s(job)
    if finished is None:
        return None
    return finished + job.spec.ttl_seconds_after_finished


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished-controller"
    aliases = ("ttl-after-finished",)
    resources = ("jobs",)

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.jobs = self.informer("jobs")
        self.jobs.add_handler(self._maybe_enqueue, lambda _old, new: self._maybe_enqueue(new))

    def _maybe_enqueue(self, job: Message) -> None:
        if expires_at_s(job) is not None:
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            return
        expire_s = expires_at_s(job)
        if expire_s is None:
            return
        now = self.ctx.clock()
        if now < expire_s:
            self.enqueue_after(key, expire_s - now)
            return
        namespace, name = split_key(key)
        try:
            fresh = await self.client.get("jobs", name, namespace)
        except errors.NotFound:
            return
        fresh_expire_s = expires_at_s(fresh)
        if fresh_expire_s is None or fresh.metadata.uid != job.metadata.uid:
            return
        if now < fresh_expire_s:
            self.enqueue_after(key, fresh_expire_s - now)
            return
        self.log.info("deleting a finished Job whose TTL expired", key=key)
        try:
            await self.client.delete("jobs", name, namespace, uid=fresh.metadata.uid,
                                     propagation_policy=PROPAGATION)
        except errors.NotFound:
            return
