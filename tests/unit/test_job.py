"""The Job controller's pure parts: completedIndexes compression, the
pod-failure backoff, how many pods should run, pending indexes, conditions,
and the TTL controller's expiry; no processes, fixed instants."""
from __future__ import annotations

import pytest

from controller_manager import controllerutil as cu
from controller_manager import job as jobctl
from controller_manager import ttl_after_finished as ttl
from kubemu.api.v1 import batch_pb2, core_pb2
from kubemu.client.workqueue import QueueEmpty
from tests.unit.cli_memclient import MemClient
from tests.unit.controller_harness import ControllerHarness


@pytest.mark.parametrize("indexes, text", [
    ([], ""),
    ([0], "0"),
    ([0, 1], "0-1"),
    ([0, 1, 2, 4], "0-2,4"),
    ([9, 5, 3, 4, 1, 4], "1,3-5,9"),
], ids=lambda v: str(v))
def test_completed_indexes_are_compressed_ranges(indexes, text):
    assert jobctl.compress_indexes(indexes) == text
    assert jobctl.parse_indexes(text, 100) == set(indexes)


def test_parse_indexes_drops_those_beyond_completions_and_junk():
    assert jobctl.parse_indexes("0-2,4,7-9,x,3-a", 8) == {0, 1, 2, 4, 7}


@pytest.mark.parametrize("failures, want_s", [
    (0, 0), (1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 320), (7, 360), (30, 360),
], ids=lambda v: str(v))
def test_backoff_doubles_from_the_base_and_is_capped(failures, want_s):
    assert jobctl.backoff_delay_s(failures, 10.0, 360.0) == want_s


@pytest.mark.parametrize("before, succeeded, failed, after", [
    (jobctl.BackoffRecord(), [], [], jobctl.BackoffRecord()),
    (jobctl.BackoffRecord(), [], [5.0, 3.0], jobctl.BackoffRecord(2, 5.0)),
    (jobctl.BackoffRecord(2, 5.0), [], [9.0], jobctl.BackoffRecord(3, 9.0)),
    (jobctl.BackoffRecord(2, 5.0), [10.0], [], jobctl.BackoffRecord(0, None)),
    # Only failures after the last success count.
    (jobctl.BackoffRecord(2, 5.0), [10.0], [8.0, 12.0, 11.0], jobctl.BackoffRecord(2, 12.0)),
], ids=["nothing", "two-failures", "one-more", "success-resets", "after-success"])
def test_backoff_record(before, succeeded, failed, after):
    assert jobctl.next_backoff_record(before, succeeded, failed) == after


def test_backoff_remaining_counts_from_the_last_failure():
    record = jobctl.BackoffRecord(3, 100.0)  # 3 failures: 40 s with base 10
    assert record.remaining_s(110.0, 10.0, 360.0) == 30.0
    assert record.remaining_s(140.0, 10.0, 360.0) == 0.0
    assert jobctl.BackoffRecord().remaining_s(110.0, 10.0, 360.0) == 0.0


@pytest.mark.parametrize("completions, parallelism, succeeded, active, want", [
    (5, 2, 0, 0, 2),
    (5, 2, 4, 1, 1),   # never more than the completions still to come
    (5, 2, 5, 0, 0),
    (5, 10, 1, 0, 4),
    (None, 3, 0, 1, 3),
    (None, 3, 1, 2, 2),  # one succeeded: let the others finish, start none
], ids=lambda v: str(v))
def test_want_active(completions, parallelism, succeeded, active, want):
    assert jobctl.want_active(completions, parallelism, succeeded, active) == want


def test_first_pending_indexes_skip_done_and_running_ones():
    assert jobctl.first_pending_indexes(6, {0, 2, 3}, 2) == [1, 4]
    assert jobctl.first_pending_indexes(3, {0, 1, 2}, 2) == []


def test_finish_time_prefers_the_containers_last_finish():
    pod = core_pb2.Pod()
    for stamp in ("2026-01-01T00:00:05Z", "2026-01-01T00:00:09Z"):
        cs = pod.status.container_statuses.add()
        cs.state.terminated.finished_at = stamp
    assert jobctl.finish_time(pod, 0.0) == 1767225609.0
    assert jobctl.finish_time(core_pb2.Pod(), 42.0) == 42.0


def test_ensure_condition_does_not_add_a_false_one_and_replaces_a_changed_one():
    status = batch_pb2.JobStatus()
    assert not jobctl.ensure_condition(status, "Suspended", "False", "JobResumed",
                                       "Job resumed", 0.0)
    assert jobctl.ensure_condition(status, "Suspended", "True", "JobSuspended",
                                   "Job suspended", 0.0)
    assert not jobctl.ensure_condition(status, "Suspended", "True", "JobSuspended",
                                       "Job suspended", 10.0)
    assert jobctl.ensure_condition(status, "Suspended", "False", "JobResumed",
                                   "Job resumed", 10.0)
    [cond] = status.conditions
    assert (cond.status, cond.reason, cond.last_transition_time) == (
        "False", "JobResumed", "1970-01-01T00:00:10Z")


def _job(*conditions: tuple[str, str, str], ttl_s: int | None = None) -> batch_pb2.Job:
    job = batch_pb2.Job()
    if ttl_s is not None:
        job.spec.ttl_seconds_after_finished = ttl_s
    for type_, status, stamp in conditions:
        job.status.conditions.add(type=type_, status=status, last_transition_time=stamp)
    return job


@pytest.mark.parametrize("job, want", [
    (_job(("Complete", "True", "2026-01-01T00:00:00Z"), ttl_s=30), 1767225630.0),
    (_job(("FailureTarget", "True", "2026-01-01T00:00:00Z"),
          ("Failed", "True", "2026-01-01T00:00:10Z"), ttl_s=0), 1767225610.0),
    (_job(("Complete", "True", "2026-01-01T00:00:00Z")), None),
    (_job(("SuccessCriteriaMet", "True", "2026-01-01T00:00:00Z"), ttl_s=5), None),
], ids=["complete", "failed", "no-ttl", "not-finished"])
def test_ttl_expiry(job, want):
    assert ttl.expires_at_s(job) == want
    assert jobctl.job_finished(job) in ("Complete", "Failed", "")


# ---------------------------------------------------------------- counting each pod once

def pod(uid: str, phase: str = "Running", *, finalizer: bool = True, deleted: bool = False,
        index: int | None = None) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = p.metadata.uid = uid
    p.status.phase = phase
    if finalizer:
        p.metadata.finalizers.append(jobctl.TRACKING_FINALIZER)
    if deleted:
        p.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    if index is not None:
        p.metadata.annotations[jobctl.COMPLETION_INDEX_ANNOTATION] = str(index)
    return p


FAILING = jobctl.failure(jobctl.REASON_BACKOFF_LIMIT, jobctl.MESSAGE_BACKOFF_LIMIT)


def plan(pods, *, uncounted_s=(), uncounted_f=(), expected_rm=(), finish=None,
         indexed=False, completions=0, prev_indexes=()):
    got = jobctl.plan_tracking(pods, set(uncounted_s), set(uncounted_f), set(expected_rm),
                               finish, indexed, completions, set(prev_indexes))
    return (got.succeeded, got.failed, sorted(got.new_indexes),
            [p.metadata.uid for p in got.to_release])


@pytest.mark.parametrize("pods, kwargs, want", [
    ([pod("a", "Succeeded"), pod("b", "Failed"), pod("c")], {},
     (["a"], ["b"], [], ["a", "b"])),
    # Already uncounted: released again (its removal failed), not recorded twice.
    ([pod("a", "Succeeded"), pod("b", "Failed")], {"uncounted_s": ["a"], "uncounted_f": ["b"]},
     ([], [], [], ["a", "b"])),
    # Its finalizer is gone, or its removal is on the way: counted already.
    ([pod("a", "Succeeded", finalizer=False), pod("b", "Failed")], {"expected_rm": ["b"]},
     ([], [], [], [])),
    # Deleted before it succeeded: a failure (TerminatingOrFailed).
    ([pod("a", deleted=True), pod("b", "Succeeded", deleted=True)], {},
     (["b"], ["a"], [], ["a", "b"])),
    # A failing Job counts its running pods as failed and lets them all go.
    ([pod("a"), pod("b", "Succeeded")], {"finish": FAILING}, (["b"], ["a"], [], ["a", "b"])),
    # A succeeding one releases a running pod without calling it failed.
    ([pod("a")], {"finish": jobctl.SUCCEEDED}, ([], [], [], ["a"])),
], ids=["finished", "uncounted", "gone-finalizer", "deleted", "failing-job", "succeeding-job"])
def test_plan_tracking_nonindexed(pods, kwargs, want):
    assert plan(pods, **kwargs) == want


def test_plan_tracking_indexed_records_indexes_not_uids():
    pods = [pod("a", "Succeeded", index=0), pod("b", "Succeeded", index=1),
            pod("c", "Succeeded", index=7), pod("d", "Failed", index=9), pod("e", "Failed", index=2)]
    assert plan(pods, indexed=True, completions=3, prev_indexes=[0]) == (
        [], ["e"], [1], ["a", "b", "c", "d", "e"])


def test_plan_tracking_stops_at_max_uncounted():
    pods = [pod(f"p{i}", "Succeeded") for i in range(jobctl.MAX_UNCOUNTED_PODS + 5)]
    got = jobctl.plan_tracking(pods, set(), set(), set(), None, False, 0, set())
    assert got.reached_max and len(got.succeeded) == jobctl.MAX_UNCOUNTED_PODS


@pytest.mark.parametrize("indexed, want", [(False, (7, 3, ["b"], ["d"])),
                                           (True, (5, 3, ["b"], ["d"]))],
                         ids=["nonindexed", "indexed"])
def test_count_uncounted_moves_those_without_finalizer(indexed, want):
    status = batch_pb2.JobStatus(succeeded=5, failed=2)
    status.uncounted_terminated_pods.succeeded.extend(["a", "b", "c"])
    status.uncounted_terminated_pods.failed.extend(["d", "e"])
    jobctl.count_uncounted(status, {"b", "d"}, indexed)
    assert (status.succeeded, status.failed, list(status.uncounted_terminated_pods.succeeded),
            list(status.uncounted_terminated_pods.failed)) == want


def test_replacement_policy_failed_waits_for_the_failed_phase():
    terminating = pod("a", deleted=True)
    assert jobctl.is_pod_failed(terminating) and not jobctl.is_pod_failed(terminating, True)
    got = jobctl.plan_tracking([terminating, pod("b", "Failed", deleted=True)], set(), set(),
                               set(), None, False, 0, set(), only_failed=True)
    assert (got.failed, [p.metadata.uid for p in got.to_release]) == (["b"], ["b"])
    job = batch_pb2.Job()
    assert not jobctl.only_replace_failed(job)
    job.spec.pod_replacement_policy = "Failed"
    assert jobctl.only_replace_failed(job)


def _failed_pod(exit_code: int, name: str = "main", *conditions: tuple[str, str]) -> core_pb2.Pod:
    p = pod("x", "Failed")
    p.metadata.namespace, p.metadata.name = "ns", "work-abc"
    cs = p.status.container_statuses.add(name=name)
    cs.state.terminated.exit_code = exit_code
    for type_, status in conditions:
        p.status.conditions.add(type=type_, status=status)
    return p


def _policy_job(*rules: dict) -> batch_pb2.Job:
    job = batch_pb2.Job()
    policy = job.spec.pod_failure_policy
    policy.SetInParent()
    for rule in rules:
        r = policy.rules.add(action=rule["action"])
        if "codes" in rule:
            operator, values = rule["codes"]
            r.on_exit_codes.operator = operator
            r.on_exit_codes.values.extend(values)
            if "container" in rule:
                r.on_exit_codes.container_name = rule["container"]
        for type_ in rule.get("conditions", ()):
            r.on_pod_conditions.add(type=type_, status="True")
    return job


RULES = (
    {"action": "Ignore", "conditions": ["DisruptionTarget"]},
    {"action": "FailJob", "codes": ("In", [42]), "container": "main"},
    {"action": "Ignore", "codes": ("In", [3, 4])},
    {"action": "Count", "codes": ("NotIn", [0, 42])},
)


@pytest.mark.parametrize("failed, want", [
    (_failed_pod(42), ("Container main for pod ns/work-abc failed with exit code 42 matching "
                       "FailJob rule at index 1", True)),
    (_failed_pod(42, "sidecar"), (None, True)),  # FailJob names container main only
    (_failed_pod(3), (None, False)),
    (_failed_pod(7), (None, True)),
    (_failed_pod(42, "main", ("DisruptionTarget", "True")), (None, False)),  # first rule wins
], ids=["fail-job", "other-container", "ignore", "count", "first-rule-wins"])
def test_pod_failure_policy(failed, want):
    assert jobctl.match_pod_failure_policy(_policy_job(*RULES), failed) == want
    assert jobctl.match_pod_failure_policy(batch_pb2.Job(), failed) == (None, True)


# ---------------------------------------------------------------- pod handlers

def _job() -> batch_pb2.Job:
    job = batch_pb2.Job(api_version="batch/v1", kind="Job")
    job.metadata.name, job.metadata.namespace, job.metadata.uid = "j", "default", "j-uid"
    job.spec.selector.match_labels["app"] = "j"
    return job


def _pod(rv: str = "1", *, owned: bool = True, finalizer: bool = True,
         terminating: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name, p.metadata.namespace, p.metadata.uid = "p", "default", "p-uid"
    p.metadata.resource_version = rv
    p.metadata.labels["app"] = "other"
    if owned:
        p.metadata.owner_references.append(cu.controller_ref(_job()))
    if finalizer:
        p.metadata.finalizers.append(jobctl.TRACKING_FINALIZER)
    if terminating:
        p.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    return p


POD_EVENTS = [
    # id, job in the cache, event, (keys enqueued, pod still awaited for its finalizer)
    ("owned-update-without-finalizer", True,
     lambda ev: ev.on_update(_pod("1"), _pod("2", finalizer=False)), (["default/j"], False)),
    ("owned-update-keeping-it", True,
     lambda ev: ev.on_update(_pod("1"), _pod("2")), (["default/j"], True)),
    ("owned-starts-terminating-with-it", True,
     lambda ev: ev.on_update(_pod("1"), _pod("2", terminating=True)), (["default/j"], True)),
    ("owned-deleted", True, lambda ev: ev.on_delete(_pod("2")), (["default/j"], False)),
    ("job-gone-tracked", False, lambda ev: ev.on_add(_pod()), (["orphan-pod/default/p"], True)),
    ("job-gone-terminating-tracked", False, lambda ev: ev.on_add(_pod(terminating=True)),
     (["orphan-pod/default/p"], True)),
    ("orphan-updated-tracked", True,
     lambda ev: ev.on_update(_pod("1", owned=False), _pod("2", owned=False)),
     (["orphan-pod/default/p"], True)),
    ("orphan-untracked", True, lambda ev: ev.on_add(_pod(owned=False, finalizer=False)),
     ([], True)),
]


def _drain(queue) -> list[str]:
    keys = []
    while True:
        try:
            keys.append(queue.get_nowait())
        except QueueEmpty:
            return sorted(keys)
        queue.done(keys[-1])


@pytest.mark.parametrize("cached, event, want", [c[1:] for c in POD_EVENTS],
                         ids=[c[0] for c in POD_EVENTS])
async def test_pod_events_keep_finalizer_expectations_and_release_orphans(cached, event, want):
    """The Job's hooks on DependentEvents: a pod gone or seen without the
    tracking finalizer is an observed removal; a tracked pod with no Job in
    the cache (an orphan, or its Job gone) is enqueued to lose the finalizer."""
    h = ControllerHarness(jobctl.JobController, await MemClient.new())
    try:
        h.cache("jobs", [_job()] if cached else [])
        _drain(h.controller.queue)  # the cache's own add events
        h.controller.finalizer_expectations["default/j"] = {"p-uid"}
        event(h.controller.events)
        awaited = "p-uid" in h.controller.finalizer_expectations.get("default/j", set())
        assert (_drain(h.controller.queue), awaited) == want
    finally:
        await h.stop()
