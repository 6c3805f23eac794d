"""The Job and TTL-after-finished controllers in the real controller-manager
process on a real apiserver, with no nodes: pods stay unscheduled and the test
plays the kubelet by writing their phase with update_status. Each test starts
its controller-manager against the worker's shared etcd + apiserver
(kubemu.testing) and works in a namespace of its own."""
from __future__ import annotations

import pytest

from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0
FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def job_doc(name: str, ns: str, *, completions: int | None = 1, parallelism: int = 1,
            backoff_limit: int = 6, mode: str = "NonIndexed", **spec) -> dict:
    body = {"parallelism": parallelism, "backoffLimit": backoff_limit, "completionMode": mode,
            "template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "c", "image": "busybox"}]}},
            **spec}
    if completions is not None:
        body["completions"] = completions
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns}, "spec": body}


@pytest.fixture
async def cm(tmp_path, kubemu_cluster):
    # The garbage collector too: the TTL controller deletes in the foreground.
    proc = await ControllerManagerProc(
        tmp_path, kubemu_cluster.address, "--controllers",
        "job-controller,ttl-after-finished-controller,garbage-collector-controller").astart()
    try:
        yield proc
    finally:
        await proc.astop()


async def job_pods(client, ns: str, name: str) -> list:
    pods = (await client.list("pods", ns, label_selector=f"job-name={name}")).items
    return sorted(pods, key=lambda p: p.metadata.creation_timestamp + p.metadata.name)


async def wait_active(client, ns: str, name: str, n: int) -> list:
    async def enough():
        pods = [p for p in await job_pods(client, ns, name)
                if p.status.phase not in ("Succeeded", "Failed")
                and not p.metadata.deletion_timestamp]
        return pods if len(pods) == n else Seen([p.metadata.name for p in pods])
    return await wait_for(enough, WAIT_S, interval_s=0.1, message=f"{n} active pods of {name}")


async def finish(client, pod, phase: str) -> None:
    fresh = await client.get("pods", pod.metadata.name, pod.metadata.namespace)
    fresh.status.phase = phase
    await client.update_status(fresh)


async def wait_job(client, ns: str, name: str, predicate, what: str):
    async def check():
        job = await client.get("jobs", name, ns)
        return job if predicate(job) else Seen(codec.to_dict(job.status))
    return await wait_for(check, WAIT_S, interval_s=0.1, message=what)


def conditions(job) -> list[tuple[str, str, str, str]]:
    return [(c.type, c.status, c.reason, c.message) for c in job.status.conditions]


async def test_nonindexed_job_runs_parallelism_pods_counts_each_once_and_completes(cm, api, ns):
    await api.create(obj(job_doc("work", ns, completions=3, parallelism=2)))
    first = await wait_active(api, ns, "work", 2)
    for pod in first:
        assert FINALIZER in pod.metadata.finalizers
        assert pod.metadata.owner_references[0].kind == "Job"
    await finish(api, first[0], "Succeeded")
    # One more to go: the third pod appears, never more than two at once.
    pods = await wait_active(api, ns, "work", 2)
    assert first[0].metadata.name not in {p.metadata.name for p in pods}
    for pod in pods:
        await finish(api, pod, "Succeeded")
    job = await wait_job(api, ns, "work", lambda j: any(c.type == "Complete"
                                                        for c in j.status.conditions), "Complete")
    assert (job.status.succeeded, job.status.failed, job.status.active) == (3, 0, 0)
    assert conditions(job) == [
        ("SuccessCriteriaMet", "True", "CompletionsReached",
         "Reached expected number of succeeded pods"),
        ("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")]
    assert job.status.completion_time and job.status.start_time
    assert not job.status.uncounted_terminated_pods.succeeded

    async def finalizers_gone():
        left = [p.metadata.name for p in await job_pods(api, ns, "work")
                if FINALIZER in p.metadata.finalizers]
        return not left or Seen(left)
    await wait_for(finalizers_gone, WAIT_S)


async def test_failed_and_deleted_pods_count_once_and_the_job_stops_at_its_backoff_limit(
        cm, api, ns):
    await api.create(obj(job_doc("flaky", ns, completions=1, backoff_limit=1)))
    [pod] = await wait_active(api, ns, "flaky", 1)
    await finish(api, pod, "Failed")
    await wait_job(api, ns, "flaky", lambda j: j.status.failed == 1, "failed 1")
    # The replacement comes after the backoff (1 s in the fast profile); deleting it
    # counts as a failure too, once, and that passes backoffLimit 1.
    [second] = await wait_active(api, ns, "flaky", 1)
    assert second.metadata.name != pod.metadata.name
    await api.delete("pods", second.metadata.name, ns)
    job = await wait_job(api, ns, "flaky", lambda j: any(c.type == "Failed"
                                                         for c in j.status.conditions), "Failed")
    assert job.status.failed == 2 and job.status.succeeded == 0
    assert conditions(job) == [
        ("FailureTarget", "True", "BackoffLimitExceeded",
         "Job has reached the specified backoff limit"),
        ("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]
    assert not job.status.completion_time
    # The deleted pod is gone once its finalizer went.
    async def deleted_pod_gone():
        names = [p.metadata.name for p in await job_pods(api, ns, "flaky")]
        return second.metadata.name not in names or Seen(names)
    await wait_for(deleted_pod_gone, WAIT_S)


async def test_indexed_job_gives_each_pod_its_index_and_compresses_completed_indexes(
        cm, api, ns):
    await api.create(obj(job_doc("idx", ns, completions=4, parallelism=3, mode="Indexed")))
    pods = await wait_active(api, ns, "idx", 3)
    by_index = {int(p.metadata.annotations[INDEX_KEY]): p for p in pods}
    assert sorted(by_index) == [0, 1, 2]
    for ix, pod in by_index.items():
        assert pod.metadata.labels[INDEX_KEY] == str(ix)
        assert pod.spec.hostname == f"idx-{ix}"
        assert pod.metadata.generate_name == f"idx-{ix}-"
        [env] = [e for e in pod.spec.containers[0].env if e.name == "JOB_COMPLETION_INDEX"]
        assert env.value_from.field_ref.field_path == f"metadata.labels['{INDEX_KEY}']"
    await finish(api, by_index[0], "Succeeded")
    await finish(api, by_index[2], "Succeeded")
    await wait_job(api, ns, "idx", lambda j: j.status.completed_indexes == "0,2"
                   and j.status.succeeded == 2, "completedIndexes 0,2")
    pods = await wait_active(api, ns, "idx", 2)
    assert sorted(p.metadata.annotations[INDEX_KEY] for p in pods) == ["1", "3"]
    for pod in pods:
        await finish(api, pod, "Succeeded")
    job = await wait_job(api, ns, "idx", lambda j: any(c.type == "Complete"
                                                       for c in j.status.conditions), "Complete")
    assert (job.status.completed_indexes, job.status.succeeded) == ("0-3", 4)


async def test_deadline_suspend_and_ttl(cm, api, ns):
    await api.create(obj(job_doc("slow", ns, completions=2, parallelism=2,
                                 activeDeadlineSeconds=2)))
    await wait_active(api, ns, "slow", 2)
    job = await wait_job(api, ns, "slow", lambda j: any(c.type == "Failed"
                                                        for c in j.status.conditions), "Failed")
    assert conditions(job)[-1] == ("Failed", "True", "DeadlineExceeded",
                                   "Job was active longer than specified deadline")
    assert job.status.failed == 2 and job.status.active == 0

    await api.create(obj(job_doc("paused", ns, completions=1, suspend=True)))
    job = await wait_job(api, ns, "paused", lambda j: any(c.type == "Suspended"
                                                          for c in j.status.conditions),
                         "Suspended")
    assert conditions(job) == [("Suspended", "True", "JobSuspended", "Job suspended")]
    assert not await job_pods(api, ns, "paused") and not job.status.start_time
    await api.patch("jobs", "paused", ns, patch={"spec": {"suspend": False}})
    [pod] = await wait_active(api, ns, "paused", 1)
    job = await wait_job(api, ns, "paused", lambda j: j.status.start_time
                         and ("Suspended", "False", "JobResumed", "Job resumed")
                         in conditions(j), "resumed")

    await api.patch("jobs", "paused", ns,
                    patch={"spec": {"ttlSecondsAfterFinished": 1}})
    await finish(api, pod, "Succeeded")
    await wait_job(api, ns, "paused", lambda j: any(c.type == "Complete"
                                                    for c in j.status.conditions), "Complete")

    async def job_gone():
        names = [j.metadata.name for j in (await api.list("jobs", ns)).items]
        return "paused" not in names or Seen(names)
    await wait_for(job_gone, WAIT_S)
    assert isinstance(pod, core_pb2.Pod)


async def test_work_queue_job_and_orphaned_pods_lose_the_tracking_finalizer(cm, api, ns):
    # No completions: parallelism pods run; once one succeeds the others may finish.
    await api.create(obj(job_doc("queue", ns, completions=None, parallelism=2)))
    pods = await wait_active(api, ns, "queue", 2)
    await finish(api, pods[0], "Succeeded")
    job = await wait_job(api, ns, "queue", lambda j: j.status.succeeded == 1
                         and j.status.active == 1, "one done, one still running")
    assert not any(c.type == "Complete" for c in job.status.conditions)
    assert len(await job_pods(api, ns, "queue")) == 2  # no replacement is started

    async def created_events():
        items = (await api.list("events", ns)).items
        found = sorted(e.message for e in items if e.involved_object.name == "queue"
                       and e.reason == "SuccessfulCreate")
        return found if len(found) == 2 else Seen(found)
    assert await wait_for(created_events, WAIT_S) == sorted(
        f"Created pod: {p.metadata.name}" for p in pods)

    # The Job goes (no garbage collector runs here): its pods are orphans
    # and must not be kept by the tracking finalizer.
    await api.delete("jobs", "queue", ns)

    async def released():
        left = [p.metadata.name for p in await job_pods(api, ns, "queue")
                if FINALIZER in p.metadata.finalizers]
        jobs = (await api.list("jobs", ns)).items
        return not left or Seen([left, [codec.to_dict(j.metadata) for j in jobs]])
    await wait_for(released, WAIT_S)


async def test_replacement_policy_failed_replaces_a_deleted_pod_only_once_it_failed(cm, api, ns):
    await api.create(obj(job_doc("strict", ns, podReplacementPolicy="Failed")))
    [pod] = await wait_active(api, ns, "strict", 1)
    await api.delete("pods", pod.metadata.name, ns)
    job = await wait_job(api, ns, "strict", lambda j: j.status.terminating == 1, "terminating 1")
    assert (job.status.active, job.status.failed) == (0, 0)
    assert [p.metadata.name for p in await job_pods(api, ns, "strict")] == [pod.metadata.name]
    # The kubelet's part: the deleted pod ends Failed; now it counts, and is replaced.
    await finish(api, pod, "Failed")
    job = await wait_job(api, ns, "strict", lambda j: j.status.failed == 1 and j.status.active == 1,
                         "failed 1, a replacement active")


async def test_on_failure_restarts_count_against_the_backoff_limit(cm, api, ns):
    # The seed notes' oneshot Job: restartPolicy OnFailure restarts in place;
    # at backoffLimit restarts the Job fails and its pod is deleted.
    doc = job_doc("oneshot", ns, backoff_limit=2)
    doc["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    await api.create(obj(doc))
    [pod] = await wait_active(api, ns, "oneshot", 1)
    fresh = await api.get("pods", pod.metadata.name, ns)
    fresh.status.phase = "Running"
    fresh.status.container_statuses.add(name="c", restart_count=2)
    await api.update_status(fresh)
    await wait_job(api, ns, "oneshot", lambda j: any(c.type == "FailureTarget"
                                                     for c in j.status.conditions),
                   "FailureTarget")

    async def deleted_event():
        items = (await api.list("events", ns)).items
        found = [e.message for e in items if e.involved_object.name == "oneshot"
                 and e.reason == "SuccessfulDelete"]
        return found or None
    assert await wait_for(deleted_event, WAIT_S) == [f"Deleted pod: {pod.metadata.name}"]


async def test_pod_failure_policy_ignores_and_fails_the_job_by_exit_code(cm, api, ns):
    await api.create(obj(job_doc("policy", ns, podFailurePolicy={"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]})))

    async def fail_with(pod, code: int) -> None:
        fresh = await api.get("pods", pod.metadata.name, ns)
        fresh.status.phase = "Failed"
        fresh.status.container_statuses.add(name="c").state.terminated.exit_code = code
        await api.update_status(fresh)

    [first] = await wait_active(api, ns, "policy", 1)
    await fail_with(first, 3)  # ignored: replaced at once, not counted
    [second] = await wait_active(api, ns, "policy", 1)
    assert second.metadata.name != first.metadata.name
    job = await api.get("jobs", "policy", ns)
    assert job.status.failed == 0
    await fail_with(second, 42)
    job = await wait_job(api, ns, "policy", lambda j: any(c.type == "Failed"
                                                          for c in j.status.conditions), "Failed")
    assert conditions(job)[-1] == (
        "Failed", "True", "PodFailurePolicy",
        f"Container c for pod {ns}/{second.metadata.name} failed with exit code 42 "
        "matching FailJob rule at index 0")
    assert job.status.failed == 1
