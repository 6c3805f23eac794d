"""The Job controller (kubernetes/pkg/controller/job, as of 1.32).

Handlers enqueue the Job of a pod and keep the expectations
(controllerutil.DependentEvents, as the ReplicaSet controller does); through
its hooks, a pod gone or seen without the tracking finalizer is an observed
finalizer removal, and a pod that still carries the finalizer but has no Job
in the cache is enqueued as an orphan key ("orphan-pod/ns/name") whose sync
only removes that finalizer.

sync(key) of a Job:
- claims the pods of the namespace (adopt/release by the generated selector);
- counts the newly finished pods that still carry `batch.kubernetes.io/
  job-tracking` (Succeeded; Failed, or deleted before succeeding), leaving out
  those already listed in status.uncountedTerminatedPods and those whose
  finalizer we removed but the informer has not shown yet;
- decides: a failed pod matching a podFailurePolicy FailJob rule →
  PodFailurePolicy (an Ignore rule's failures neither count nor back off);
  failed > backoffLimit (or, restartPolicy OnFailure, restarts >=
  backoffLimit) → BackoffLimitExceeded; startTime + activeDeadlineSeconds
  passed → DeadlineExceeded (active pods deleted); else manages pods:
  suspended → delete the active ones; otherwise create (after the pod-failure
  backoff: base doubling per failure since the last success, capped, from the
  last failure's finish time) or delete so that active = min(parallelism,
  completions − succeeded). Indexed Jobs create the lowest pending indexes,
  with the completion-index annotation and label, JOB_COMPLETION_INDEX from
  the downward API and hostname `<job>-<index>`;
- tracks as Kubernetes does, so that a pod is counted exactly once even when
  deleted: (1) add the newly finished pods' UIDs to uncountedTerminatedPods
  and write status; (2) remove their finalizers; (3) move the UIDs whose
  finalizer is gone into succeeded/failed (Indexed: completedIndexes "0-2,4",
  succeeded = its size) and write status;
- finishes as 1.32 does: the interim condition first (SuccessCriteriaMet
  reason CompletionsReached, or FailureTarget with the failure's reason), then,
  once no pod is uncounted or terminating, Complete (completionTime) or Failed,
  with the events Completed "Job completed" or the failure's reason/message.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Iterable, Sequence

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import errors, labels
from kubemu.api.v1 import core_pb2
from kubemu.client.events import NORMAL, WARNING
from kubemu.client.informer import meta_namespace_key, object_of

from controller_manager import controllerutil as cu
from controller_manager.base import BY_CONTROLLER_UID, BY_NAMESPACE, Context, Controller, copy, split_key
from controller_manager.expectations import Expectations

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
ORPHAN_PREFIX = "orphan-pod/"
# kube-controller-manager's MaxPodCreateDeletePerSync and MaxUncountedPods.
MAX_POD_CREATE_DELETE_PER_SYNC = 500
MAX_UNCOUNTED_PODS = 500
SLOW_START_INITIAL_BATCH = 1

COMPLETE, FAILED = "Complete", "Failed"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
SUSPENDED = "Suspended"
REASON_BACKOFF_LIMIT = "BackoffLimitExceeded"
MESSAGE_BACKOFF_LIMIT = "Job has reached the specified backoff limit"
REASON_DEADLINE = "DeadlineExceeded"
MESSAGE_DEADLINE = "Job was active longer than specified deadline"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_COMPLETIONS = "CompletionsReached"
MESSAGE_COMPLETIONS = "Reached expected number of succeeded pods"


# ---------------------------------------------------------------- pure parts

def compress_indexes(indexes: Iterable[int]) -> str:
    """Sorted indexes as Kubernetes writes completedIndexes: "0-2,4" ("0-1" for two)."""
    out: list[str] = []
    run: list[int] = []
    for ix in sorted(set(indexes)):
        if run and ix == run[-1] + 1:
            run.append(ix)
            continue
        if run:
            out.append(f"{run[0]}" if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [ix]
    if run:
        out.append(f"{run[0]}" if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def parse_indexes(text: str, completions: int) -> set[int]:
    """The indexes of a completedIndexes string below `completions` (bad parts skipped)."""
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            continue
        out.update(range(max(low, 0), min(high, completions - 1) + 1))
    return out


def completion_index(pod: Message) -> int:
    """The pod's completion index, or -1 (getCompletionIndex)."""
    text = pod.metadata.annotations.get(COMPLETION_INDEX_ANNOTATION, "")
    try:
        value = int(text)
    except ValueError:
        return -1
    return value if value >= 0 else -1


def backoff_delay_s(failures: int, base_s: float, max_s: float) -> float:
    """The wait after `failures` failures since the last success: base doubling, capped."""
    if failures <= 0:
        return 0.0
    delay_s = base_s
    for _ in range(1, failures):
        delay_s *= 2
        if delay_s >= max_s:
            return max_s
    return min(delay_s, max_s)


@dataclasses.dataclass(frozen=True)
class BackoffRecord:
    """What the pod-failure backoff remembers of a Job (backoffRecord)."""
    failures_after_last_success: int = 0
    last_failure_s: float | None = None

    def remaining_s(self, now: float, base_s: float, max_s: float) -> float:
        if self.failures_after_last_success == 0 or self.last_failure_s is None:
            return 0.0
        delay_s = backoff_delay_s(self.failures_after_last_success, base_s, max_s)
        return max(0.0, delay_s - (now - self.last_failure_s))


def next_backoff_record(record: BackoffRecord, succeeded_s: Sequence[float],
                        failed_s: Sequence[float]) -> BackoffRecord:
    """The record after pods finished at these times (newBackoffRecord)."""
    succeeded_s, failed_s = sorted(succeeded_s), sorted(failed_s)
    if not succeeded_s:
        if not failed_s:
            return record
        return BackoffRecord(record.failures_after_last_success + len(failed_s), failed_s[-1])
    after = [t for t in failed_s if t > succeeded_s[-1]]
    return BackoffRecord(len(after), after[-1] if after else None)


def want_active(completions: int | None, parallelism: int, succeeded: int, active: int) -> int:
    """How many pods should run: never more than parallelism, nor than the
    completions still to come; a Job without completions keeps what runs once
    one pod has succeeded."""
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(0, min(completions - succeeded, parallelism))


def first_pending_indexes(completions: int, taken: set[int], count: int) -> list[int]:
    """The `count` lowest indexes below completions that are neither done nor running."""
    out: list[int] = []
    for ix in range(completions):
        if len(out) >= count:
            break
        if ix not in taken:
            out.append(ix)
    return out


def finish_time(pod: Message, default_s: float) -> float:
    """When a pod finished (getFinishedTime): its containers' last finishedAt,
    else the Ready=False transition, else its deletion, else `default_s`."""
    times = [cu.time_s(cs.state.terminated.finished_at)
             for cs in [*pod.status.container_statuses, *pod.status.init_container_statuses]
             if cs.state.HasField("terminated")]
    finished = [t for t in times if t is not None]
    if finished:
        return max(finished)
    ready = cu.get_condition(pod.status, "Ready")
    for stamp in ((ready.last_transition_time if ready is not None and ready.status == "False"
                   else ""), pod.metadata.deletion_timestamp):
        moment = cu.time_s(stamp)
        if moment is not None:
            return moment
    return default_s


def has_finalizer(pod: Message) -> bool:
    return TRACKING_FINALIZER in pod.metadata.finalizers


def is_pod_failed(pod: Message, only_failed: bool = False) -> bool:
    """Failed, or (podReplacementPolicy TerminatingOrFailed) deleted before it
    succeeded: orphans never reach the Failed phase (isPodFailed)."""
    if pod.status.phase == "Failed":
        return True
    if only_failed:
        return False
    return bool(pod.metadata.deletion_timestamp) and pod.status.phase != "Succeeded"


def _exit_code_match(pod: Message, requirement: Message) -> Message | None:
    """The first terminated container (then init container) with a non-zero
    exit code that the onExitCodes requirement matches."""
    for cs in [*pod.status.container_statuses, *pod.status.init_container_statuses]:
        if not cs.state.HasField("terminated"):
            continue  # still terminating: no exit code to match
        if requirement.HasField("container_name") and requirement.container_name != cs.name:
            continue
        code = cs.state.terminated.exit_code
        if code == 0:
            continue
        if (code in requirement.values) == (requirement.operator == "In"):
            return cs
    return None


def match_pod_failure_policy(job: Message, pod: Message) -> tuple[str | None, bool]:
    """matchPodFailurePolicy for a failed pod: (the Job's failure message when
    a FailJob rule matches, whether the failure counts). The first matching rule
    decides; Ignore does not count, no match counts."""
    if not job.spec.HasField("pod_failure_policy"):
        return None, True
    meta = pod.metadata
    for index, rule in enumerate(job.spec.pod_failure_policy.rules):
        if rule.HasField("on_exit_codes"):
            cs = _exit_code_match(pod, rule.on_exit_codes)
            if cs is None:
                continue
            message = (f"Container {cs.name} for pod {meta.namespace}/{meta.name} failed with "
                       f"exit code {cs.state.terminated.exit_code} matching {rule.action} rule "
                       f"at index {index}")
        elif rule.on_pod_conditions:
            cond = next((c for c in pod.status.conditions for pattern in rule.on_pod_conditions
                         if c.type == pattern.type and c.status == (pattern.status or "True")),
                        None)
            if cond is None:
                continue
            message = (f"Pod {meta.namespace}/{meta.name} has condition {cond.type} matching "
                       f"{rule.action} rule at index {index}")
        else:
            continue
        if rule.action == "Ignore":
            return None, False
        if rule.action == "FailJob":
            return message, True
        return None, True  # Count (FailIndex needs backoffLimitPerIndex: counted here)
    return None, True


def only_replace_failed(job: Message) -> bool:
    """podReplacementPolicy Failed (the default with a podFailurePolicy): a
    terminating pod is neither a failure nor replaced until it has Failed."""
    return (job.spec.pod_replacement_policy == "Failed"
            or job.spec.HasField("pod_failure_policy"))


def is_terminating(pod: Message) -> bool:
    return bool(pod.metadata.deletion_timestamp) and pod.status.phase not in (
        "Succeeded", "Failed")


def finished_condition(job: Message) -> Any | None:
    """The Job's Complete or Failed condition when it is True (IsJobFinished;
    the CronJob and TTL-after-finished controllers ask it too), else None."""
    for cond in job.status.conditions:
        if cond.type in (COMPLETE, FAILED) and cond.status == "True":
            return cond
    return None


def job_finished(job: Message) -> str:
    """"Complete" or "Failed" when the Job has that condition True, else ""."""
    cond = finished_condition(job)
    return cond.type if cond is not None else ""


def is_suspended(job: Message) -> bool:
    return job.spec.HasField("suspend") and job.spec.suspend


def completions_of(job: Message) -> int | None:
    return job.spec.completions if job.spec.HasField("completions") else None


def is_indexed(job: Message) -> bool:
    return job.spec.completion_mode == "Indexed"


def ensure_condition(status: Any, type_: str, cond_status: str, reason: str, message: str,
                     now: float) -> bool:
    """ensureJobConditionStatus: replace a differing condition, add a new one
    unless it would be False. Returns whether the list changed."""
    stamp = timefmt.rfc3339(now)
    cond = cu.get_condition(status, type_)
    if cond is None:
        if cond_status == "False":
            return False
        cond = status.conditions.add()
    elif (cond.status, cond.reason, cond.message) == (cond_status, reason, message):
        return False
    cond.type, cond.status, cond.reason, cond.message = type_, cond_status, reason, message
    cond.last_probe_time = cond.last_transition_time = stamp
    return True


def past_backoff_limit_on_failure(job: Message, pods: Sequence[Message]) -> bool:
    """restartPolicy OnFailure: the restarts of running pods count against backoffLimit."""
    if job.spec.template.spec.restart_policy != "OnFailure":
        return False
    restarts = sum(cs.restart_count for p in pods if p.status.phase in ("Running", "Pending")
                   for cs in [*p.status.init_container_statuses, *p.status.container_statuses])
    limit = job.spec.backoff_limit
    return restarts > 0 if limit == 0 else restarts >= limit


@dataclasses.dataclass(frozen=True)
class Finish:
    """Where a Job is going: the interim condition, then the final one."""
    interim: str
    final: str
    reason: str
    message: str


SUCCEEDED = Finish(SUCCESS_CRITERIA_MET, COMPLETE, REASON_COMPLETIONS, MESSAGE_COMPLETIONS)


def failure(reason: str, message: str) -> Finish:
    return Finish(FAILURE_TARGET, FAILED, reason, message)


@dataclasses.dataclass
class Tracking:
    """What one sync does with the pods that still carry the tracking finalizer."""
    succeeded: list[str] = dataclasses.field(default_factory=list)  # UIDs newly uncounted
    failed: list[str] = dataclasses.field(default_factory=list)
    new_indexes: set[int] = dataclasses.field(default_factory=set)  # Indexed: newly done
    to_release: list[Message] = dataclasses.field(default_factory=list)
    reached_max: bool = False  # MAX_UNCOUNTED_PODS: the rest waits for the next sync


def plan_tracking(pods: Sequence[Message], uncounted_s: set[str], uncounted_f: set[str],
                  expected_rm: set[str], finish: Finish | None, indexed: bool,
                  completions: int, prev_indexes: set[int],
                  only_failed: bool = False,
                  counts: Callable[[Message], bool] = lambda _pod: True) -> Tracking:
    """Which finished pods to record as uncounted and which finalizers to remove:
    a pod is skipped once its finalizer is gone (or its removal is expected),
    and a UID already uncounted is not added twice; Indexed Jobs record the
    index instead of the UID of a succeeded pod; a failing Job counts every pod
    it did not see succeed as failed; every pod of a finishing Job is released."""
    out = Tracking()
    seen_s, seen_f = set(uncounted_s), set(uncounted_f)
    for pod in pods:
        uid = pod.metadata.uid
        if not has_finalizer(pod) or uid in expected_rm:
            continue
        ix = completion_index(pod)
        index_ok = not indexed or 0 <= ix < completions
        phase = pod.status.phase
        failed = is_pod_failed(pod, only_failed)
        if phase == "Succeeded" or failed or finish:
            out.to_release.append(pod)
        if phase == "Succeeded" and uid not in seen_f:
            if indexed:
                if index_ok and ix not in prev_indexes:
                    out.new_indexes.add(ix)
            elif uid not in seen_s:
                out.succeeded.append(uid)
                seen_s.add(uid)
        elif failed or (finish is not None and finish.final == FAILED):
            if uid not in seen_f and uid not in seen_s and index_ok and counts(pod):
                out.failed.append(uid)
                seen_f.add(uid)
        if len(out.new_indexes) + len(seen_s) + len(seen_f) >= MAX_UNCOUNTED_PODS:
            out.reached_max = True
            break
    return out


def count_uncounted(status: Any, with_finalizer: set[str], indexed: bool) -> None:
    """Move the uncounted UIDs whose pod lost its finalizer (or is gone) into
    succeeded/failed (cleanUncountedPodsWithoutFinalizers); an Indexed Job's
    succeeded is the size of completedIndexes instead."""
    uncounted = status.uncounted_terminated_pods
    keep_s = [u for u in uncounted.succeeded if u in with_finalizer]
    keep_f = [u for u in uncounted.failed if u in with_finalizer]
    if not indexed:
        status.succeeded += len(uncounted.succeeded) - len(keep_s)
    status.failed += len(uncounted.failed) - len(keep_f)
    del uncounted.succeeded[:]
    uncounted.succeeded.extend(keep_s)
    del uncounted.failed[:]
    uncounted.failed.extend(keep_f)


def add_index_env(template: Message) -> None:
    """JOB_COMPLETION_INDEX from the downward API in every container that lacks it."""
    field_path = f"metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"
    for container in [*template.spec.init_containers, *template.spec.containers]:
        if any(env.name == COMPLETION_INDEX_ENV for env in container.env):
            continue
        env = container.env.add()
        env.name = COMPLETION_INDEX_ENV
        env.value_from.field_ref.field_path = field_path


# ---------------------------------------------------------------- the controller

class JobController(Controller):
    name = "job-controller"
    aliases = ("job",)
    resources = ("jobs", "pods")

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.expectations = Expectations(ttl_s=ctx.options.expectations_ttl_s,
                                         clock=ctx.monotonic)
        # Pod UIDs whose finalizer we removed and whose update we have not seen.
        self.finalizer_expectations: dict[str, set[str]] = {}
        self.backoff: dict[str, BackoffRecord] = {}
        # Jobs whose interim condition we wrote, by key: (uid, where it goes). The
        # cache may not show that write yet when the pods it released are gone.
        self.finishing: dict[str, tuple[str, Finish]] = {}
        self.jobs = self.informer("jobs")
        self.pods = self.informer("pods")
        # Pods keep the expectations and, through the hooks, the finalizer
        # expectations and the orphans' clean-up.
        self.events = cu.DependentEvents(self.jobs, "Job", self.expectations, self.enqueue,
                                         self.enqueue_after, requeue_when_ready=False,
                                         observed=self._pod_observed,
                                         unowned=self._enqueue_orphan_if_tracked)
        self.pod_control = cu.PodControl(self.client, self.recorder, self.expectations)
        self.jobs.add_handler(self.enqueue, self._on_job_update, self._on_job_delete)
        self.pods.add_handler(self.events.on_add, self.events.on_update, self.events.on_delete)

    # ------------------------------------------------------------ handlers

    def _on_job_update(self, old: Message, new: Message) -> None:
        self.enqueue(new)
        if (new.spec.active_deadline_seconds != old.spec.active_deadline_seconds
                and new.spec.HasField("active_deadline_seconds") and new.status.start_time):
            start = cu.time_s(new.status.start_time)
            if start is not None:
                self.enqueue_after(new, start + new.spec.active_deadline_seconds
                                   - self.ctx.clock())

    def _on_job_delete(self, obj: Any) -> None:
        self.events.on_owner_delete(obj)
        # Its pods hear nothing of it: let those still tracked go (cleanupPodFinalizers).
        for pod in self.pods.by_index(BY_CONTROLLER_UID, object_of(obj).metadata.uid):
            self._enqueue_orphan_if_tracked(pod)

    def _enqueue_orphan_if_tracked(self, pod: Message) -> None:
        """A pod no Job in the cache controls: its finalizer is ours to remove."""
        if has_finalizer(pod):
            self.enqueue(ORPHAN_PREFIX + meta_namespace_key(pod))

    def _pod_observed(self, key: str, pod: Message, gone: bool) -> None:
        """A pod gone, or seen without the finalizer, is a removal we waited for."""
        if gone or not has_finalizer(pod):
            self._finalizer_observed(key, pod.metadata.uid)

    def _finalizer_observed(self, key: str, uid: str) -> None:
        pending = self.finalizer_expectations.get(key)
        if pending is not None:
            pending.discard(uid)
            if not pending:
                del self.finalizer_expectations[key]

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        if key.startswith(ORPHAN_PREFIX):
            await self._sync_orphan_pod(key[len(ORPHAN_PREFIX):])
            return
        job = self.jobs.get(key)
        if job is None:
            self.expectations.delete(key)
            self.finalizer_expectations.pop(key, None)
            self.backoff.pop(key, None)
            self.finishing.pop(key, None)
            return
        namespace, _ = split_key(key)
        selector = labels.from_label_selector(job.spec.selector)
        candidates = self.pods.by_index(BY_NAMESPACE, namespace)
        pods = (await cu.claim(self.client, job, selector, candidates)).objects
        if job_finished(job) or job.metadata.deletion_timestamp:
            # Counted already, or going (foreground/orphan deletion): only let the pods go.
            self.backoff.pop(key, None)
            self.finishing.pop(key, None)
            await self._remove_finalizers(key, [p for p in pods if has_finalizer(p)])
            return
        await self._sync_job(key, job, pods)

    async def _sync_orphan_pod(self, pod_key: str) -> None:
        pod = self.pods.get(pod_key)
        if pod is None or not has_finalizer(pod) or self.events.owner_of(pod) is not None:
            return
        await self._remove_finalizers("", [pod])

    async def _sync_job(self, key: str, job: Message, pods: list[Message]) -> None:
        now = self.ctx.clock()
        status = copy(job.status)
        satisfied = self.expectations.satisfied(key)
        uncounted = set(status.uncounted_terminated_pods.succeeded) | set(
            status.uncounted_terminated_pods.failed)
        expected_rm = self.finalizer_expectations.get(key, set())
        active_pods = [p for p in pods if cu.is_pod_active(p)]
        countable = [p for p in pods if has_finalizer(p) and p.metadata.uid not in uncounted
                     and p.metadata.uid not in expected_rm]
        completions = completions_of(job)
        indexed = is_indexed(job) and completions is not None
        if indexed:
            countable = [p for p in countable if 0 <= completion_index(p) < completions]
        new_succeeded = [p for p in countable if p.status.phase == "Succeeded"]
        only_failed = only_replace_failed(job)
        new_failed = [p for p in countable if p.status.phase != "Succeeded"
                      and is_pod_failed(p, only_failed)]
        fail_job_message = next(filter(None, (match_pod_failure_policy(job, p)[0]
                                              for p in new_failed)), None)
        # Failures a podFailurePolicy rule ignores neither count nor back off.
        new_failed = [p for p in new_failed if match_pod_failure_policy(job, p)[1]]
        if indexed:
            prev_indexes = parse_indexes(status.completed_indexes, completions)
            succeeded_indexes = prev_indexes | {completion_index(p) for p in new_succeeded}
            succeeded = len(succeeded_indexes)
        else:
            prev_indexes = succeeded_indexes = set()
            succeeded = (status.succeeded + len(new_succeeded)
                         + len(status.uncounted_terminated_pods.succeeded))
        failed = (status.failed + len(new_failed)
                  + len(status.uncounted_terminated_pods.failed))
        terminating = sum(1 for p in pods if is_terminating(p))
        ready = sum(1 for p in active_pods if cu.is_pod_ready(p))
        suspended = is_suspended(job)
        if not status.start_time and not suspended:
            status.start_time = timefmt.rfc3339(now)
        record = next_backoff_record(
            self.backoff.get(key, BackoffRecord()),
            [finish_time(p, now) for p in new_succeeded],
            [finish_time(p, now) for p in new_failed])

        finish = self._pending_finish(key, job)
        if finish is None and fail_job_message is not None:
            finish = failure(REASON_POD_FAILURE_POLICY, fail_job_message)
        if finish is None:
            if failed > job.spec.backoff_limit or past_backoff_limit_on_failure(job, pods):
                finish = failure(REASON_BACKOFF_LIMIT, MESSAGE_BACKOFF_LIMIT)
            elif self._past_deadline(job, status, now):
                finish = failure(REASON_DEADLINE, MESSAGE_DEADLINE)
            elif job.spec.HasField("active_deadline_seconds") and not suspended:
                start = timefmt.parse_rfc3339(status.start_time)
                self.enqueue_after(key, start + job.spec.active_deadline_seconds - now)

        active = len(active_pods)
        self.log.debug("job sync", key=key, active=active, succeeded=succeeded, failed=failed,
                       terminating=terminating, satisfied=satisfied,
                       finish=finish.reason if finish else None, rv=job.metadata.resource_version)
        manage_error: BaseException | None = None
        if finish is not None:
            deleted, manage_error = await self._delete_pods(job, key, active_pods)
            if deleted != active or not satisfied:
                finish = None  # some pods may still be unseen or undeleted
            active -= deleted
            terminating += deleted
        else:
            managed = False
            if satisfied and not job.metadata.deletion_timestamp:
                terminating_pods = [p for p in pods if is_terminating(p)]
                active, deleted, manage_error = await self._manage(
                    job, key, active_pods, terminating_pods, succeeded, succeeded_indexes,
                    record, now)
                terminating += deleted
                managed = True
            if completions is None:
                complete = succeeded > 0 and active == 0
            else:
                complete = succeeded >= completions and active == 0
            if complete:
                finish = SUCCEEDED
            elif managed:
                self._suspend_conditions(job, status, suspended, now)

        status.active = active
        # Pods deleted in this sync are no longer counted ready.
        status.ready = min(ready, active)
        status.terminating = terminating
        await self._track(key, job, status, pods, finish, record, indexed, prev_indexes, now)
        if manage_error is not None:
            raise manage_error

    def _pending_finish(self, key: str, job: Message) -> Finish | None:
        """A Job that already has its interim condition is going to finish that way."""
        for cond in job.status.conditions:
            if cond.status != "True":
                continue
            if cond.type == FAILURE_TARGET:
                return failure(cond.reason, cond.message)
            if cond.type == SUCCESS_CRITERIA_MET:
                return Finish(SUCCESS_CRITERIA_MET, COMPLETE, cond.reason, cond.message)
        uid, finish = self.finishing.get(key, ("", None))
        return finish if uid == job.metadata.uid else None

    @staticmethod
    def _past_deadline(job: Message, status: Any, now: float) -> bool:
        if not job.spec.HasField("active_deadline_seconds") or not status.start_time \
                or is_suspended(job):
            return False
        start = timefmt.parse_rfc3339(status.start_time)
        return now - start >= job.spec.active_deadline_seconds

    def _suspend_conditions(self, job: Message, status: Any, suspended: bool, now: float) -> None:
        if suspended:
            if ensure_condition(status, SUSPENDED, "True", "JobSuspended", "Job suspended", now):
                self.recorder.record(job, NORMAL, "Suspended", "Job suspended")
        elif ensure_condition(status, SUSPENDED, "False", "JobResumed", "Job resumed", now):
            self.recorder.record(job, NORMAL, "Resumed", "Job resumed")
            # activeDeadlineSeconds counts from the resume.
            status.start_time = timefmt.rfc3339(now)

    # ------------------------------------------------------------ pods

    async def _manage(self, job: Message, key: str, active_pods: list[Message],
                      terminating_pods: list[Message], succeeded: int,
                      succeeded_indexes: set[int], record: BackoffRecord,
                      now: float) -> tuple[int, int, BaseException | None]:
        """Create or delete pods; returns (active, deleted, error). With
        podReplacementPolicy Failed a terminating pod still holds its place."""
        active = len(active_pods)
        if is_suspended(job):
            deleted, error = await self._delete_pods(job, key, active_pods)
            return active - deleted, deleted, error
        completions = completions_of(job)
        want = want_active(completions, job.spec.parallelism, succeeded, active)
        victims = self._pods_for_removal(job, active_pods, max(0, active - want),
                                         succeeded_indexes)[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if victims:
            # Deleting and creating in one sync could double-count: deletes win.
            deleted, error = await self._delete_pods(job, key, victims)
            return active - deleted, deleted, error
        holding = terminating_pods if only_replace_failed(job) else []
        diff = min(want - len(holding) - active, MAX_POD_CREATE_DELETE_PER_SYNC)
        if diff <= 0:
            return active, 0, None
        opts = self.options
        remaining_s = record.remaining_s(now, opts.job_backoff_base_s, opts.job_backoff_max_s)
        if remaining_s > 0:
            self.enqueue_after(key, remaining_s)
            return active, 0, None
        indexes: list[int] = []
        if is_indexed(job) and completions is not None:
            taken = succeeded_indexes | {completion_index(p) for p in [*active_pods, *holding]}
            indexes = first_pending_indexes(completions, taken, diff)
            diff = len(indexes)
            if diff == 0:
                return active, 0, None
        template = copy(job.spec.template)
        if indexes:
            add_index_env(template)
        if TRACKING_FINALIZER not in template.metadata.finalizers:
            template.metadata.finalizers.append(TRACKING_FINALIZER)
        pending = list(indexes)

        def next_pod() -> core_pb2.Pod:
            if not pending:
                return cu.pod_from_template(template, job)
            ix = pending.pop(0)
            pod = cu.pod_from_template(template, job,
                                       generate_name=f"{job.metadata.name}-{ix}-")
            pod.metadata.annotations[COMPLETION_INDEX_ANNOTATION] = str(ix)
            pod.metadata.labels[COMPLETION_INDEX_ANNOTATION] = str(ix)
            pod.spec.hostname = f"{job.metadata.name}-{ix}"
            return pod

        self.expectations.expect_creations(key, diff)
        successes, error = await cu.slow_start_batch(
            diff, SLOW_START_INITIAL_BATCH, lambda: self.pod_control.create(job, next_pod()))
        if error is not None:
            self.expectations.lower_creations(key, diff - successes)
            if errors.is_namespace_terminating(error):
                error = None  # a terminating namespace takes no pods: nothing to retry
        return active + successes, 0, error

    def _pods_for_removal(self, job: Message, active_pods: list[Message], count: int,
                          succeeded_indexes: set[int]) -> list[Message]:
        """activePodsForRemoval: Indexed Jobs first drop pods of a bad, duplicate
        or already succeeded index; then the pods a scale-down ranks first."""
        completions = completions_of(job)
        out: list[Message] = []
        rest = list(active_pods)
        if is_indexed(job) and completions is not None:
            seen: set[int] = set()
            rest = []
            for pod in cu.rank_for_deletion(active_pods)[::-1]:
                ix = completion_index(pod)
                if ix < 0 or ix >= completions or ix in succeeded_indexes or ix in seen:
                    out.append(pod)
                else:
                    seen.add(ix)
                    rest.append(pod)
        if len(out) < count:
            out.extend(cu.rank_for_deletion(rest)[:count - len(out)])
        return out

    async def _delete_pods(self, job: Message, key: str,
                           pods: list[Message]) -> tuple[int, BaseException | None]:
        if not pods:
            return 0, None
        self.expectations.expect_deletions(key, [meta_namespace_key(p) for p in pods])
        results = await asyncio.gather(*(self.pod_control.delete(job, p) for p in pods),
                                       return_exceptions=True)
        deleted = sum(1 for r in results if not isinstance(r, BaseException))
        error = next((r for r in results if isinstance(r, BaseException)), None)
        return deleted, error

    async def _remove_finalizers(self, key: str, pods: list[Message]) -> set[str]:
        """Remove the tracking finalizer; returns the UIDs it is gone from."""
        async def remove(pod: Message) -> str:
            keep = [f for f in pod.metadata.finalizers if f != TRACKING_FINALIZER]
            try:
                await self.client.patch("pods", pod.metadata.name, pod.metadata.namespace,
                                        patch={"metadata": {"finalizers": keep or None}})
            except errors.NotFound:
                pass
            return pod.metadata.uid

        if key:
            self.finalizer_expectations.setdefault(key, set()).update(
                p.metadata.uid for p in pods)
        results = await asyncio.gather(*(remove(p) for p in pods), return_exceptions=True)
        done = {r for r in results if isinstance(r, str)}
        if key:
            failed = {p.metadata.uid for p in pods} - done
            for uid in failed:
                self._finalizer_observed(key, uid)
        error = next((r for r in results if isinstance(r, BaseException)), None)
        if error is not None and not done:
            raise error
        return done

    # ------------------------------------------------------------ status

    async def _track(self, key: str, job: Message, status: Any, pods: list[Message],
                     finish: Finish | None, record: BackoffRecord, indexed: bool,
                     prev_indexes: set[int], now: float) -> None:
        """trackJobStatusAndRemoveFinalizers: count every finished pod exactly once."""
        uncounted = status.uncounted_terminated_pods
        # A snapshot: handlers change the live set while we wait on the API.
        expected_rm = set(self.finalizer_expectations.get(key, ()))
        plan = plan_tracking(pods, set(uncounted.succeeded), set(uncounted.failed), expected_rm,
                             finish, indexed, completions_of(job) or 0, prev_indexes,
                             only_replace_failed(job),
                             lambda pod: match_pod_failure_policy(job, pod)[1])
        uncounted.succeeded.extend(plan.succeeded)
        uncounted.failed.extend(plan.failed)
        to_release, reached_max = plan.to_release, plan.reached_max
        if indexed:
            all_indexes = prev_indexes | plan.new_indexes
            status.completed_indexes = compress_indexes(all_indexes)
            status.succeeded = len(all_indexes)
        if finish is not None and not plan.reached_max:
            # Written before any finalizer goes: once the pods are gone, only
            # this says the Job is finishing (and must not start new pods).
            ensure_condition(status, finish.interim, "True", finish.reason, finish.message, now)
        # (1) Record who is about to be counted before any finalizer goes.
        job = await cu.write_status(self.client, job, status)
        if job is None:
            return
        if finish is not None and not plan.reached_max:
            self.finishing[key] = (job.metadata.uid, finish)
        status = copy(job.status)
        # (2) Let the finished pods go.
        released = await self._remove_finalizers(key, to_release)
        with_finalizer = {p.metadata.uid for p in pods if has_finalizer(p)
                          and p.metadata.uid not in expected_rm} - released
        # (3) Count those whose finalizer is gone (or whose pod is).
        count_uncounted(status, with_finalizer, indexed)
        self.backoff[key] = record
        finished_now = False
        uncounted = status.uncounted_terminated_pods
        if finish is not None and not reached_max:
            ensure_condition(status, finish.interim, "True", finish.reason, finish.message, now)
            if not uncounted.succeeded and not uncounted.failed and status.terminating == 0:
                ensure_condition(status, finish.final, "True", finish.reason, finish.message,
                                 now)
                if finish.final == COMPLETE:
                    status.completion_time = timefmt.rfc3339(now)
                finished_now = True
        written = await cu.write_status(self.client, job, status)
        if written is None or not finished_now:
            return
        if finish.final == COMPLETE:
            self.recorder.record(written, NORMAL, "Completed", "Job completed")
        else:
            self.recorder.record(written, WARNING, finish.reason, finish.message)
