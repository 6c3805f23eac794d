"""The CronJob controller (kubernetes/pkg/controller/cronjob, the v2 controller of 1.32).

Handlers enqueue CronJobs and the CronJob owning a Job; besides, every
`cronjob_resync_s` every CronJob is enqueued, and each sync requeues its key
for the next schedule time (+100 ms, nextScheduleDelta).

sync(key), on the controller's clock (`ctx.clock()`, which a test moves with
the hidden --clock-offset-file flag):
- bookkeeping of the Jobs it controls: finished ones leave status.active
  (SawCompletedJob), the latest completionTime of a Complete one is
  lastSuccessfulTime, an active reference whose Job is gone is dropped
  (MissingJob), an unfinished Job missing from active is reported
  (UnexpectedJob);
- unless suspended or being deleted: parse the schedule in spec.timeZone
  (else the process's local time; `TZ=` inside the schedule is refused by
  validation, and only warned about here as Kubernetes does), find the most
  recent unmet schedule time since lastScheduleTime (else creationTimestamp)
  or now − startingDeadlineSeconds, warning TooManyMissedTimes past 100
  missed starts; skip it when it is past its starting deadline
  (MissSchedule) or already started; concurrencyPolicy Forbid skips while a
  Job is active (JobAlreadyActive), Replace deletes the active Jobs first;
  then create Job `<cronjob>-<scheduled unix minutes>` with the annotation
  batch.kubernetes.io/cronjob-scheduled-timestamp, add it to status.active
  and set lastScheduleTime;
- delete the oldest finished Jobs beyond successfulJobsHistoryLimit /
  failedJobsHistoryLimit (propagation Background);
- write status when it changed.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Any

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import cron, errors
from kubemu.api.v1 import batch_pb2, resources_pb2
from kubemu.client.events import NORMAL, WARNING
from kubemu.client.informer import object_of

from controller_manager import controllerutil as cu
from controller_manager.base import BY_CONTROLLER_UID, Context, Controller, copy
from controller_manager.job import job_finished

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# nextScheduleDelta: requeue a little after the schedule time.
NEXT_SCHEDULE_DELTA_S = 0.1
# Past this many missed start times the controller warns (and still starts the latest).
MAX_MISSED_STARTS = 100
# Bound of the walk from an estimated earliest time to now (a few steps in practice).
MOST_RECENT_WALK_MAX = 10_000
TOO_MANY_MISSED_MESSAGE = ("too many missed start times. Set or decrease "
                           ".spec.startingDeadlineSeconds or check clock skew")

NONE_MISSED, FEW_MISSED, MANY_MISSED = "none", "few", "many"


# ---------------------------------------------------------------- pure parts

def job_name(cronjob_name: str, scheduled_s: float) -> str:
    """getJobName: the CronJob's name and the scheduled time in unix minutes."""
    return f"{cronjob_name}-{int(scheduled_s) // 60}"


def most_recent_schedule(sched: cron.Schedule, zone: dt.tzinfo | None, earliest_s: float,
                         now_s: float) -> tuple[float | None, str]:
    """mostRecentScheduleTime: the latest schedule time in (earliest, now], and
    whether none, a few or too many (> 100) start times were missed.
    CronError when two consecutive times are less than a second apart."""
    t1 = sched.next(earliest_s, zone)
    if t1 is None or now_s < t1:
        return None, NONE_MISSED
    t2 = sched.next(t1, zone)
    if t2 is None or now_s < t2:
        return t1, NONE_MISSED
    between_s = int(round(t2 - t1))
    if between_s < 1:
        raise cron.CronError("time difference between two schedules is less than 1 second")
    missed = int(now_s - t1) // between_s + 1
    # Start a little before the estimate and let the schedule walk to now.
    t: float | None = t1 + (missed - 2) * between_s
    most_recent = None
    for _ in range(MOST_RECENT_WALK_MAX):
        t = sched.next(t, zone)
        if t is None or t > now_s:
            break
        most_recent = t
    state = MANY_MISSED if missed > MAX_MISSED_STARTS else FEW_MISSED
    return most_recent, state


def earliest_time_s(created_s: float, last_schedule_s: float | None,
                    starting_deadline_s: int | None, now_s: float) -> float:
    earliest = last_schedule_s if last_schedule_s is not None else created_s
    if starting_deadline_s is not None:
        # Nothing before now − startingDeadlineSeconds is started any more.
        earliest = max(earliest, now_s - starting_deadline_s)
    return earliest


def next_requeue_s(sched: cron.Schedule, zone: dt.tzinfo | None, created_s: float,
                   last_schedule_s: float | None, now_s: float) -> float | None:
    """nextScheduleTimeDuration: seconds until just after the next schedule time."""
    earliest = earliest_time_s(created_s, last_schedule_s, None, now_s)
    try:
        most_recent, _ = most_recent_schedule(sched, zone, earliest, now_s)
    except cron.CronError:
        most_recent = now_s
    base = most_recent if most_recent is not None else earliest
    nxt = sched.next(base, zone)
    if nxt is None:
        return None
    return nxt + NEXT_SCHEDULE_DELTA_S - now_s


def rfc3339_in(ts: float, zone: dt.tzinfo) -> str:
    """Go's Format(time.RFC3339) of ts in zone ("Z" for UTC)."""
    text = dt.datetime.fromtimestamp(int(ts), zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def rfc1123z_utc(ts: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(ts))


def by_start_time(jobs: list[Message]) -> list[Message]:
    """byJobStartTime: oldest startTime first, Jobs without one last, then by name."""
    def key(job: Message) -> tuple:
        start = cu.time_s(job.status.start_time)
        return (start is None, start or 0.0, job.metadata.name)
    return sorted(jobs, key=key)


def _job_ref(job: Message) -> resources_pb2.ObjectReference:
    return resources_pb2.ObjectReference(
        api_version="batch/v1", kind="Job", namespace=job.metadata.namespace,
        name=job.metadata.name, uid=job.metadata.uid,
        resource_version=job.metadata.resource_version)


def _remove_active(status: Any, uid: str) -> None:
    keep = [copy(ref) for ref in status.active if ref.uid != uid]
    del status.active[:]
    status.active.extend(keep)


# ---------------------------------------------------------------- the controller

class CronJobController(Controller):
    name = "cronjob-controller"
    aliases = ("cronjob",)
    resources = ("cronjobs", "jobs")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.cronjobs = self.informer("cronjobs")
        self.jobs = self.informer("jobs")
        self.cronjobs.add_handler(self.enqueue, lambda _old, new: self.enqueue(new),
                                  self.enqueue)
        self.jobs.add_handler(self._on_job, lambda _old, new: self._on_job(new), self._on_job)

    def _on_job(self, obj: Any) -> None:
        job = object_of(obj)
        ref = cu.controller_of(job)
        if ref is not None and ref.kind == "CronJob":
            self.enqueue(f"{job.metadata.namespace}/{ref.name}")

    def resync_period_s(self) -> float:
        return self.options.cronjob_resync_s

    def resync(self) -> None:
        """Look at every schedule now and then: a requeue may be far off, or the clock moved."""
        for cj in self.cronjobs.list():
            self.enqueue(cj)

    async def sync(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None:
            return
        jobs = [j for j in self.jobs.by_index(BY_CONTROLLER_UID, cj.metadata.uid)
                if j.metadata.namespace == cj.metadata.namespace]
        cj = copy(cj)
        original_status = copy(cj.status)
        requeue_s, error = await self._sync_cronjob(cj, jobs)
        await self._cleanup_finished(cj, jobs)
        if cj.status != original_status:
            try:
                await self.client.update_status(cj)
            except errors.NotFound:
                return
        if error is not None:
            raise error
        if requeue_s is not None:
            self.enqueue_after(key, requeue_s)

    async def _sync_cronjob(self, cj: Message, jobs: list[Message]
                            ) -> tuple[float | None, BaseException | None]:
        """Returns (seconds until the next look, an error to retry on)."""
        now = self.ctx.clock()
        status = cj.status
        children = {j.metadata.uid for j in jobs}
        active_uids = {ref.uid for ref in status.active}
        for job in jobs:
            finished = job_finished(job)
            if job.metadata.uid not in active_uids and not finished:
                fresh = await self.client.get("cronjobs", cj.metadata.name, cj.metadata.namespace)
                if any(ref.uid == job.metadata.uid for ref in fresh.status.active):
                    status.CopyFrom(fresh.status)
                    active_uids = {ref.uid for ref in status.active}
                    continue
                self.recorder.record(cj, WARNING, "UnexpectedJob",
                                     "Saw a job that the controller did not create or forgot: "
                                     f"{job.metadata.name}")
            elif job.metadata.uid in active_uids and finished:
                _remove_active(status, job.metadata.uid)
                self.recorder.record(cj, NORMAL, "SawCompletedJob",
                                     f"Saw completed job: {job.metadata.name}, "
                                     f"condition: {finished}")
            elif finished == "Complete" and job.status.completion_time:
                completed = cu.time_s(job.status.completion_time)
                last = cu.time_s(status.last_successful_time)
                if completed is not None and (last is None or completed > last):
                    status.last_successful_time = job.status.completion_time
        for ref in list(status.active):
            if ref.uid in children:
                continue
            try:
                await self.client.get("jobs", ref.name, ref.namespace)
            except errors.NotFound:
                self.recorder.record(cj, NORMAL, "MissingJob",
                                     f"Active job went missing: {ref.name}")
                _remove_active(status, ref.uid)

        if cj.metadata.deletion_timestamp:
            return None, None
        spec = cj.spec
        zone: dt.tzinfo | None = None
        if spec.HasField("time_zone"):
            try:
                zone = cron.load_zone(spec.time_zone)
            except cron.CronError as exc:
                self.recorder.record(cj, WARNING, "UnknownTimeZone",
                                     f'invalid timeZone: "{spec.time_zone}": {exc}')
                return None, None
        if spec.HasField("suspend") and spec.suspend:
            return None, None
        if "TZ" in spec.schedule:
            self.recorder.record(cj, WARNING, "UnsupportedSchedule",
                                 f'CRON_TZ or TZ used in schedule "{spec.schedule}" is not '
                                 "officially supported, see https://kubernetes.io/docs/concepts/"
                                 "workloads/controllers/cron-jobs/ for more details")
        try:
            sched = cron.parse(spec.schedule)
        except cron.CronError as exc:
            self.recorder.record(cj, WARNING, "UnparseableSchedule",
                                 f'unparseable schedule: "{spec.schedule}" : {exc}')
            return None, None
        created_s = cu.time_s(cj.metadata.creation_timestamp) or now
        last_s = cu.time_s(status.last_schedule_time)
        deadline_s = (spec.starting_deadline_seconds
                      if spec.HasField("starting_deadline_seconds") else None)
        try:
            scheduled, missed = most_recent_schedule(
                sched, zone, earliest_time_s(created_s, last_s, deadline_s, now), now)
        except cron.CronError as exc:
            self.recorder.record(cj, WARNING, "InvalidSchedule",
                                 f"invalid schedule: {spec.schedule} : {exc}")
            return None, None
        if missed == MANY_MISSED:
            self.recorder.record(cj, WARNING, "TooManyMissedTimes", TOO_MANY_MISSED_MESSAGE)

        def requeue() -> float | None:
            return next_requeue_s(sched, zone, created_s, cu.time_s(status.last_schedule_time), now)

        self.log.debug("schedule", key=f"{cj.metadata.namespace}/{cj.metadata.name}", now=now,
                       scheduled=scheduled, missed=missed, active=len(status.active))
        if scheduled is None:
            return requeue(), None
        if deadline_s is not None and scheduled + deadline_s < now:
            self.recorder.record(cj, WARNING, "MissSchedule",
                                 "Missed scheduled time to start a job: "
                                 f"{rfc1123z_utc(scheduled)}")
            return requeue(), None
        name = job_name(cj.metadata.name, scheduled)
        if any(ref.name == name for ref in status.active) or last_s == scheduled:
            return requeue(), None
        policy = spec.concurrency_policy or "Allow"
        if policy == "Forbid" and len(status.active) > 0:
            self.recorder.record(cj, NORMAL, "JobAlreadyActive",
                                 "Not starting job because prior execution is running and "
                                 "concurrency policy is Forbid")
            return requeue(), None
        if policy == "Replace":
            for ref in list(status.active):
                try:
                    job = await self.client.get("jobs", ref.name, ref.namespace)
                except errors.ApiError as exc:
                    self.recorder.record(cj, WARNING, "FailedGet", f"Get job: {exc}")
                    return None, exc
                if not await self._delete_job(cj, job):
                    return None, errors.ApiError(
                        f"could not replace job {job.metadata.namespace}/{job.metadata.name}")

        job = self._job_from_template(cj, scheduled, name)
        try:
            created = await self.client.create(job)
        except errors.AlreadyExists:
            created = await self.client.get("jobs", name, cj.metadata.namespace)
            if not cu.is_controlled_by(created, cj):
                return None, None
            if any(ref.uid == created.metadata.uid for ref in status.active):
                return None, None
        except errors.ApiError as exc:
            self.recorder.record(cj, WARNING, "FailedCreate", f"Error creating job: {exc}")
            return None, exc
        else:
            self.recorder.record(cj, NORMAL, "SuccessfulCreate",
                                 f"Created job {created.metadata.name}")
        status.active.append(_job_ref(created))
        status.last_schedule_time = timefmt.rfc3339(scheduled)
        return requeue(), None

    @staticmethod
    def _job_from_template(cj: Message, scheduled: float, name: str) -> batch_pb2.Job:
        template = cj.spec.job_template
        job = batch_pb2.Job(api_version="batch/v1", kind="Job")
        job.metadata.name = name
        job.metadata.namespace = cj.metadata.namespace
        job.metadata.labels.update(template.metadata.labels)
        job.metadata.annotations.update(template.metadata.annotations)
        # In spec.timeZone (time.LoadLocation("") is UTC).
        zone = cron.load_zone(cj.spec.time_zone if cj.spec.HasField("time_zone") else "")
        job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = rfc3339_in(scheduled, zone)
        job.metadata.owner_references.append(cu.controller_ref(cj))
        job.spec.CopyFrom(template.spec)
        return job

    async def _delete_job(self, cj: Message, job: Message) -> bool:
        try:
            await self.client.delete("jobs", job.metadata.name, job.metadata.namespace,
                                     propagation_policy="Background")
        except errors.NotFound:
            _remove_active(cj.status, job.metadata.uid)  # gone already
            return True
        except errors.ApiError as exc:
            self.recorder.record(cj, WARNING, "FailedDelete", f"Deleted job: {exc}")
            return False
        _remove_active(cj.status, job.metadata.uid)
        self.recorder.record(cj, NORMAL, "SuccessfulDelete", f"Deleted job {job.metadata.name}")
        return True

    async def _cleanup_finished(self, cj: Message, jobs: list[Message]) -> None:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cj.spec
        for kind, field in (("Complete", "successful_jobs_history_limit"),
                            ("Failed", "failed_jobs_history_limit")):
            if not spec.HasField(field):
                continue
            done = [j for j in jobs if job_finished(j) == kind
                    and not j.metadata.deletion_timestamp]
            excess = len(done) - getattr(spec, field)
            for job in by_start_time(done)[:max(0, excess)]:
                await self._delete_job(cj, job)

