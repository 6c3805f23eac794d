"""Jobs and CronJobs on a real cluster (scheduler, controller-manager, two
nodes, fast profile): the "Done means" of issue 9 for them.

- completions 5 / parallelism 2: never more than 2 active pods, checked at
  every watch event, and the Job completes;
- a failing Job (busybox `exit 1`) stops at backoffLimit 2, each replacement
  created only after the pod-failure backoff (2 s, then 4 s: this module sets
  the base to 2 s), so the delays grow;
- an Indexed Job: each pod's log prints its $JOB_COMPLETION_INDEX;
- a CronJob creates Jobs on schedule under the test clock (the hidden
  --clock-offset-file flag of the controller-manager) and honours Forbid, then
  Replace. It runs last: moving the clock moves every controller's.

Each test deletes its Jobs and CronJobs at its end (their pods lose the
tracking finalizer as orphans), then the `ns` fixture deletes the pods.
"""
from __future__ import annotations

import asyncio
import contextlib
import pathlib

import pytest

from deploy import components as comp
from kubemu import timefmt
from kubemu.api import codec, errors
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import ClusterThread, Seen, cli, obj, serving, workload_control_plane

pytestmark = pytest.mark.e2e

WAIT_S = 60.0
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
BACKOFF_BASE_S = 2


def control_plane(clock_file: pathlib.Path) -> tuple[comp.ComponentKind, ...]:
    """workload_control_plane() with the test clock and a 2 s backoff base."""
    flags = (*comp.CONTROLLER_MANAGER_FAST_FLAGS, "--clock-offset-file", str(clock_file),
             "--job-backoff-base-s", str(BACKOFF_BASE_S), "--job-backoff-max-s", "16")
    return tuple(comp.controller_manager_kind(flags) if kind.name == comp.CONTROLLER_MANAGER
                 else kind for kind in workload_control_plane())


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("jobs-clock") / "clock-offset"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, clock_file):
    home = tmp_path_factory.mktemp("jobs-home")
    yield from serving(ClusterThread(home, nodes=2, kinds=control_plane(clock_file)))


@pytest.fixture
async def jobs_ns(api, ns):
    """The test's namespace; its CronJobs and Jobs are deleted when it ends."""
    try:
        yield ns
    finally:
        for resource in ("cronjobs", "jobs"):
            for item in (await api.list(resource, ns)).items:
                with contextlib.suppress(errors.NotFound):
                    await api.delete(resource, item.metadata.name, ns,
                                     propagation_policy="Background")

        async def jobs_gone():
            return not (await api.list("jobs", ns)).items
        await wait_for(jobs_gone, WAIT_S, interval_s=0.2, message="jobs deleted")


def job_doc(name: str, ns: str, script: str, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns},
            "spec": {**spec, "template": {"spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox",
                                "command": ["sh", "-c", script]}]}}}}


def is_active(pod) -> bool:
    return pod.status.phase not in ("Succeeded", "Failed") and not pod.metadata.deletion_timestamp


def has_condition(job, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in job.status.conditions)


async def wait_job(api, ns: str, name: str, type_: str):
    async def done():
        job = await api.get("jobs", name, ns)
        return job if has_condition(job, type_) else Seen(codec.to_dict(job.status))
    return await wait_for(done, WAIT_S, interval_s=0.2, message=f"job {name} {type_}")


async def job_pods(api, ns: str, name: str) -> list:
    pods = (await api.list("pods", ns, label_selector=f"job-name={name}")).items
    return sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))


async def test_parallelism_2_never_runs_more_than_2_pods_and_completes(api, jobs_ns):
    ns = jobs_ns
    seen: dict[str, object] = {}
    most_active = 0
    violations: list[list[str]] = []
    started = asyncio.Event()

    async def watch_pods():
        nonlocal most_active
        async with contextlib.aclosing(api.watch("pods", ns, label_selector="job-name=five")) \
                as events:
            started.set()
            async for event in events:
                if event.type == "DELETED":
                    seen.pop(event.object.metadata.name, None)
                else:
                    seen[event.object.metadata.name] = event.object
                active = sorted(n for n, p in seen.items() if is_active(p))
                most_active = max(most_active, len(active))
                if len(active) > 2:
                    violations.append(active)

    watcher = asyncio.get_running_loop().create_task(watch_pods())
    try:
        await asyncio.wait_for(started.wait(), WAIT_S)
        await api.create(obj(job_doc("five", ns, "sleep 1", completions=5, parallelism=2)))
        job = await wait_job(api, ns, "five", "Complete")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert not violations, f"more than 2 active pods: {violations}"
    assert most_active == 2
    assert (job.status.succeeded, job.status.failed, job.status.active) == (5, 0, 0)
    pods = await job_pods(api, ns, "five")
    assert len(pods) == 5 and all(p.status.phase == "Succeeded" for p in pods)
    assert all("batch.kubernetes.io/job-tracking" not in p.metadata.finalizers for p in pods)
    assert [(c.type, c.reason) for c in job.status.conditions] == [
        ("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")]


async def test_failing_job_stops_at_its_backoff_limit_with_growing_delays(api, jobs_ns):
    ns = jobs_ns
    await api.create(obj(job_doc("fail", ns, "exit 1", backoffLimit=2)))
    job = await wait_job(api, ns, "fail", "Failed")
    assert job.status.failed == 3 and job.status.succeeded == 0
    [*_, final] = job.status.conditions
    assert (final.type, final.reason, final.message) == (
        "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    pods = await job_pods(api, ns, "fail")
    assert len(pods) == 3 and all(p.status.phase == "Failed" for p in pods)
    # Each replacement waited for the backoff after its predecessor finished
    # (stamps are whole seconds, as the controller reads them): 2 s, then 4 s.
    delays = []
    for before, after in zip(pods, pods[1:]):
        finished = max(timefmt.parse_rfc3339(cs.state.terminated.finished_at)
                       for cs in before.status.container_statuses)
        delays.append(timefmt.parse_rfc3339(after.metadata.creation_timestamp) - finished)
    assert delays[0] >= BACKOFF_BASE_S and delays[1] >= 2 * BACKOFF_BASE_S, delays
    assert delays[1] > delays[0], delays

    async def failed_event():
        items = (await api.list("events", ns)).items
        found = [e for e in items if e.involved_object.name == "fail"
                 and e.reason == "BackoffLimitExceeded"]
        return found[0] if found else None
    event = await wait_for(failed_event, WAIT_S, interval_s=0.2, message="event")
    assert (event.type, event.message) == ("Warning", "Job has reached the specified backoff limit")


async def test_indexed_job_gives_each_pod_its_index(cluster, api, jobs_ns):
    ns = jobs_ns
    await api.create(obj(job_doc("idx", ns, 'echo "index $JOB_COMPLETION_INDEX"',
                                 completions=3, parallelism=3, completionMode="Indexed")))
    job = await wait_job(api, ns, "idx", "Complete")
    assert (job.status.completed_indexes, job.status.succeeded) == ("0-2", 3)
    pods = await job_pods(api, ns, "idx")
    assert sorted(p.metadata.annotations[INDEX_KEY] for p in pods) == ["0", "1", "2"]
    for pod in pods:
        out = await cli(cluster, "logs", "-n", ns, pod.metadata.name)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"index {pod.metadata.annotations[INDEX_KEY]}\n"


class OffsetClock:
    """Moves the controller-manager's clock: the offset file it reads."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.offset_s = 0.0

    async def set(self, offset_s: float) -> None:
        self.offset_s = offset_s
        await asyncio.to_thread(self.path.write_text, f"{offset_s}\n")


async def test_cronjob_runs_on_schedule_and_honours_forbid_then_replace(api, jobs_ns,
                                                                       clock_file):
    ns = jobs_ns
    clock = OffsetClock(clock_file)
    doc = {"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": "tick", "namespace": ns},
           "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": "Forbid",
                    "jobTemplate": {"spec": {"template": {"spec": {
                        "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "main", "image": "busybox",
                                        "command": ["sh", "-c", "sleep 3600"]}]}}}}}}
    try:
        await api.create(obj(doc))
        await clock.set(60)

        async def jobs(predicate, what: str):
            async def check():
                items = sorted((await api.list("jobs", ns)).items, key=lambda j: j.metadata.name)
                return items if predicate(items) else Seen([j.metadata.name for j in items])
            return await wait_for(check, WAIT_S, interval_s=0.2, message=what)

        async def active_is(job):
            # The CronJob's status is written just after the Job is created.
            async def check():
                cj = await api.get("cronjobs", "tick", ns)
                names = [a.name for a in cj.status.active]
                return cj if names == [job.metadata.name] else Seen(names)
            return await wait_for(check, WAIT_S, interval_s=0.2, message="status.active")

        [first] = await jobs(lambda js: len(js) == 1, "the first job")
        cj = await active_is(first)
        scheduled = timefmt.parse_rfc3339(cj.status.last_schedule_time)
        assert first.metadata.name == f"tick-{int(scheduled) // 60}"

        async def running():
            pods = [p for p in (await api.list("pods", ns)).items if p.status.phase == "Running"]
            return pods or None
        await wait_for(running, WAIT_S, interval_s=0.2, message="the job's pod running")

        # Forbid: two minutes later, the first still runs and nothing else starts.
        await clock.set(180)

        async def forbidden():
            items = (await api.list("events", ns)).items
            return any(e.reason == "JobAlreadyActive" for e in items)
        await wait_for(forbidden, WAIT_S, interval_s=0.2, message="JobAlreadyActive")
        assert [j.metadata.name for j in (await api.list("jobs", ns)).items] == \
            [first.metadata.name]

        # Replace: the minute Forbid skipped now deletes the running Job and starts anew.
        await api.patch("cronjobs", "tick", ns, patch={"spec": {"concurrencyPolicy": "Replace"}})
        [second] = await jobs(lambda js: len(js) == 1 and js[0].metadata.name
                              != first.metadata.name, "the replacement job")
        assert int(second.metadata.name.rsplit("-", 1)[1]) > \
            int(first.metadata.name.rsplit("-", 1)[1])
        await active_is(second)
    finally:
        await clock.set(0)
