"""The CronJob controller in the real controller-manager process on a real
apiserver, with the test's clock (--clock-offset-file): no Job controller runs,
so the Jobs it creates stay active until the test marks them finished. Each
test starts its controller-manager against the worker's shared etcd +
apiserver (kubemu.testing) and works in a namespace of its own."""
from __future__ import annotations

import asyncio
import pathlib

import pytest

from kubemu import timefmt
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def cronjob(name: str, ns: str, policy: str, **spec) -> object:
    doc = {"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"schedule": "* * * * *", "concurrencyPolicy": policy, **spec,
                    "jobTemplate": {"spec": {"template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    return codec.from_dict(REGISTRY.by_gvk("batch/v1", "CronJob").message, doc)


class OffsetClock:
    """Moves the controller-manager's clock by rewriting its offset file."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.offset_s = 0.0

    async def advance(self, seconds: float) -> None:
        self.offset_s += seconds
        await asyncio.to_thread(self.path.write_text, f"{self.offset_s}\n")


@pytest.fixture
async def clock(tmp_path):
    return OffsetClock(tmp_path / "clock-offset")


@pytest.fixture
async def cm(tmp_path, kubemu_cluster, clock):
    proc = await ControllerManagerProc(tmp_path, kubemu_cluster.address, "--controllers",
                                       "cronjob-controller", "--clock-offset-file",
                                       str(clock.path)).astart()
    try:
        yield proc
    finally:
        await proc.astop()


async def jobs_of(client, ns: str, owner: str) -> list:
    items = (await client.list("jobs", ns)).items
    return sorted((j for j in items if j.metadata.owner_references
                   and j.metadata.owner_references[0].name == owner),
                  key=lambda j: j.metadata.name)


async def wait_jobs(client, ns: str, owner: str, predicate, what: str) -> list:
    async def check():
        jobs = await jobs_of(client, ns, owner)
        return jobs if predicate(jobs) else Seen([j.metadata.name for j in jobs])
    return await wait_for(check, WAIT_S, interval_s=0.1, message=what)


async def wait_status(client, ns: str, name: str, predicate):
    """The CronJob once its status satisfies `predicate` (written after its Jobs)."""
    async def check():
        cj = await client.get("cronjobs", name, ns)
        return cj if predicate(cj.status) else Seen(codec.to_dict(cj.status))
    return await wait_for(check, WAIT_S, interval_s=0.1, message=f"status of {name}")


async def events_of(client, ns: str, name: str, reason: str) -> list:
    items = (await client.list("events", ns)).items
    return [e for e in items if e.involved_object.name == name and e.reason == reason]


async def wait_event(client, ns: str, name: str, reason: str):
    async def seen():
        found = await events_of(client, ns, name, reason)
        return found[0] if found else None
    return await wait_for(seen, WAIT_S, interval_s=0.1, message=f"event {reason} on {name}")


async def test_forbid_waits_for_the_active_job_and_history(cm, api, ns, clock):
    await api.create(cronjob("tick", ns, "Forbid", successfulJobsHistoryLimit=1))
    await clock.advance(120)
    [first] = await wait_jobs(api, ns, "tick", lambda js: len(js) == 1, "one job")
    cj = await wait_status(api, ns, "tick", lambda st: [a.name for a in st.active]
                           == [first.metadata.name])
    scheduled = timefmt.parse_rfc3339(cj.status.last_schedule_time)
    assert scheduled % 60 == 0
    assert first.metadata.name == f"tick-{int(scheduled) // 60}"
    assert first.metadata.annotations[SCHEDULED] == cj.status.last_schedule_time
    ref = first.metadata.owner_references[0]
    assert (ref.kind, ref.uid, ref.controller) == ("CronJob", cj.metadata.uid, True)
    assert [(a.name, a.uid) for a in cj.status.active] == [(first.metadata.name,
                                                           first.metadata.uid)]
    created = await wait_event(api, ns, "tick", "SuccessfulCreate")
    assert created.message == f"Created job {first.metadata.name}"

    # Two more minutes while it runs: Forbid starts nothing.
    await clock.advance(120)
    event = await wait_event(api, ns, "tick", "JobAlreadyActive")
    assert event.message == ("Not starting job because prior execution is running and "
                             "concurrency policy is Forbid")
    assert len(await jobs_of(api, ns, "tick")) == 1

    # It completes: out of active, lastSuccessfulTime, and the next minute starts one.
    first.status.conditions.add(type="Complete", status="True",
                                last_transition_time=timefmt.rfc3339())
    first.status.completion_time = timefmt.rfc3339()
    first.status.start_time = timefmt.rfc3339()
    await api.update_status(first)

    async def saw_it():
        got = await api.get("cronjobs", "tick", ns)
        return got if got.status.last_successful_time else Seen(codec.to_dict(got.status))
    await wait_for(saw_it, WAIT_S)
    await clock.advance(60)
    jobs = await wait_jobs(api, ns, "tick", lambda js: len(js) == 2, "a second job")
    second = next(j for j in jobs if j.metadata.name != first.metadata.name)
    assert int(second.metadata.name.rsplit("-", 1)[1]) > int(first.metadata.name.rsplit("-", 1)[1])

    # A second completed Job: successfulJobsHistoryLimit 1 deletes the older one.
    second.status.conditions.add(type="Complete", status="True",
                                 last_transition_time=timefmt.rfc3339())
    second.status.completion_time = timefmt.rfc3339()
    second.status.start_time = timefmt.rfc3339(timefmt.parse_rfc3339(first.status.start_time) + 1)
    await api.update_status(second)
    await wait_jobs(api, ns, "tick", lambda js: first.metadata.name not in
                    {j.metadata.name for j in js}, "the older job deleted")


async def test_replace_deletes_the_running_job_and_too_many_missed_starts_warn(
        cm, api, ns, clock):
    await api.create(cronjob("swap", ns, "Replace"))
    await api.create(cronjob("zoned", ns, "Allow", timeZone="Asia/Kolkata"))
    await clock.advance(60)
    [first] = await wait_jobs(api, ns, "swap", lambda js: len(js) == 1, "one job")
    # The scheduled time is written in the CronJob's time zone.
    [zoned] = await wait_jobs(api, ns, "zoned", lambda js: len(js) == 1, "one zoned job")
    assert zoned.metadata.annotations[SCHEDULED].endswith(":00+05:30")
    await clock.advance(120)
    [second] = await wait_jobs(api, ns, "swap", lambda js: len(js) == 1
                               and js[0].metadata.name != first.metadata.name, "replaced")
    deleted = await wait_event(api, ns, "swap", "SuccessfulDelete")
    assert deleted.message == f"Deleted job {first.metadata.name}"
    await wait_status(api, ns, "swap", lambda st: [a.name for a in st.active]
                      == [second.metadata.name])

    # Three hours later: more than 100 starts missed; the latest still runs.
    await clock.advance(3 * 3600)
    event = await wait_event(api, ns, "swap", "TooManyMissedTimes")
    assert event.message == ("too many missed start times. Set or decrease "
                             ".spec.startingDeadlineSeconds or check clock skew")
    await wait_jobs(api, ns, "swap", lambda js: len(js) == 1
                    and js[0].metadata.name != second.metadata.name, "replaced again")
