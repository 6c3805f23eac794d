"""The kubelet's status manager against a fake apiserver: what it merges, how it
handles conflicts, replaced pods and failures, and how it coalesces writes.

The fake keeps pods by name with an integer resourceVersion and refuses a
write whose resourceVersion or uid is not the stored one with Conflict, as
the apiserver does. Time is a fake clock; back-off sleeps are recorded, not
waited for.
"""
from __future__ import annotations

import asyncio

import pytest

from kubelet import status as pod_status
from kubelet.status_manager import StatusManager
from kubemu.api import codec, errors
from kubemu.api.v1 import core_pb2
from tests.builders import obj

NOW_S = 1_700_000_000.0
NOW = pod_status.rfc3339(NOW_S)
EARLIER = pod_status.rfc3339(NOW_S - 600)


def pod(uid: str = "u1", rv: int = 1, conditions=(), gates=(), phase: str = "Running",
        restarts: int = 0, policy: str = "Always"):
    doc = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "default", "uid": uid,
                        "resourceVersion": str(rv)},
           "spec": {"nodeName": "n1", "restartPolicy": policy,
                    "containers": [{"name": "main", "image": "busybox"}],
                    "readinessGates": [{"conditionType": g} for g in gates]},
           "status": {"phase": phase, "qosClass": "BestEffort",
                      "conditions": [dict(c) for c in conditions],
                      "containerStatuses": [{"name": "main", "image": "busybox",
                                             "restartCount": restarts, "ready": False,
                                             "state": {"running": {"startedAt": EARLIER}}}]}}
    return obj(doc)


def cond(kind: str, value: str = "True", when: str = EARLIER, **extra) -> dict:
    return {"type": kind, "status": value, "lastTransitionTime": when, **extra}


def kubelet_status(ready: bool = True, phase: str = "Running", restarts: int = 0,
                   terminated: int | None = None) -> core_pb2.PodStatus:
    """A status as kubelet/status.py builds it: the kubelet's conditions only."""
    value = "True" if ready else "False"
    conditions = [cond("PodReadyToStartContainers"), cond("Initialized"),
                  cond("Ready", value, NOW), cond("ContainersReady", value, NOW),
                  cond("PodScheduled")]
    state = {"running": {"startedAt": EARLIER}} if terminated is None else \
        {"terminated": {"exitCode": terminated, "reason": "Error"}}
    doc = {"phase": phase, "podIP": "127.9.1.2", "startTime": EARLIER,
           "conditions": conditions,
           "containerStatuses": [{"name": "main", "image": "busybox", "ready": ready,
                                  "restartCount": restarts, "state": state}]}
    return codec.from_dict(core_pb2.PodStatus, doc)


class FakeApi:
    """Pods by name; UpdateStatus checks resourceVersion and uid like the apiserver."""

    def __init__(self, *pods):
        self.pods = {p.metadata.name: p for p in pods}
        self.writes: list[core_pb2.Pod] = []
        self.gets = 0
        self.fail_next: list[errors.ApiError] = []   # raised by the next writes, in order
        self.gate: asyncio.Event | None = None       # when set up, writes wait for it
        self.before_write = None                     # called with the stored pod

    def put(self, p) -> None:
        """Another writer's change: stored with a new resourceVersion."""
        stored = core_pb2.Pod()
        stored.CopyFrom(p)
        old = self.pods.get(p.metadata.name)
        rv = int(old.metadata.resource_version) + 1 if old is not None else 1
        stored.metadata.resource_version = str(rv)
        self.pods[p.metadata.name] = stored

    async def get(self, resource: str, name: str, namespace: str = ""):
        self.gets += 1
        if name not in self.pods:
            raise errors.NotFound(f'pods "{name}" not found')
        found = core_pb2.Pod()
        found.CopyFrom(self.pods[name])
        return found

    async def update_status(self, p):
        self.writes.append(p)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            raise self.fail_next.pop(0)
        stored = self.pods.get(p.metadata.name)
        if stored is None:
            raise errors.NotFound(f'pods "{p.metadata.name}" not found')
        if self.before_write is not None:
            self.before_write(stored)
            stored = self.pods[p.metadata.name]
        if p.metadata.uid and p.metadata.uid != stored.metadata.uid:
            raise errors.Conflict("Precondition failed: UID in precondition: "
                                  f"{p.metadata.uid}, UID in object meta: {stored.metadata.uid}")
        if p.metadata.resource_version and \
                p.metadata.resource_version != stored.metadata.resource_version:
            raise errors.Conflict('Operation cannot be fulfilled on pods "web": the object has '
                                  'been modified; please apply your changes to the latest '
                                  'version and try again')
        new = core_pb2.Pod()
        new.CopyFrom(stored)
        new.status.CopyFrom(p.status)
        self.put(new)
        written = core_pb2.Pod()
        written.CopyFrom(self.pods[p.metadata.name])
        return written


class Harness:
    def __init__(self, api: FakeApi, cached=None, **kw):
        self.api = api
        self.cached = cached  # what the informer has: None = nothing
        self.slept: list[float] = []

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)
        self.manager = StatusManager(api, lambda ns, name: self.cached, clock=lambda: NOW_S,
                                     sleep=sleep, **kw)

    async def set_and_flush(self, p, status, timeout_s: float = 5.0) -> bool:
        self.manager.set_pod_status(p, status)
        return await self.manager.flush(p.metadata.uid, timeout_s)


def stored(api: FakeApi) -> dict:
    return codec.to_dict(api.pods["web"])


def condition_types(doc: dict) -> list[str]:
    return [c["type"] for c in doc["status"].get("conditions", [])]


# ---------------------------------------------------------------- merging

@pytest.mark.parametrize("others", [
    [cond("DisruptionTarget", reason="PreemptionByScheduler", message="preempted")],
    [cond("example.com/gate")],
    [cond("PodScheduled", "True", "2020-01-01T00:00:00Z"), cond("example.com/a", "False")],
], ids=["disruption-target", "readiness-gate", "scheduled-and-custom"])
async def test_conditions_others_wrote_survive_a_write_from_a_stale_copy(others):
    fresh = pod(rv=7, conditions=others)
    api = FakeApi(fresh)
    h = Harness(api, cached=pod(rv=3))  # the informer has not seen the other writer yet
    assert await h.set_and_flush(pod(rv=3), kubelet_status())
    doc = stored(api)
    for other in others:
        assert next(c for c in doc["status"]["conditions"] if c["type"] == other["type"]) == other
    assert condition_types(doc)[:4] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                        "ContainersReady"]
    # The stale copy's write was refused (Conflict); one fresh read, one more write.
    assert [w.metadata.resource_version for w in api.writes] == ["3", "7"]
    assert api.gets >= 1


async def test_writes_carry_the_resource_version_read_and_the_uid():
    api = FakeApi(pod(rv=4))
    h = Harness(api, cached=pod(rv=4))
    assert await h.set_and_flush(pod(rv=4), kubelet_status())
    (write,) = api.writes
    assert (write.metadata.uid, write.metadata.resource_version) == ("u1", "4")
    assert api.gets == 0  # the informer's copy was current: no extra read


async def test_fields_the_kubelet_does_not_own_are_kept():
    fresh = pod(rv=2)
    fresh.status.nominated_node_name = "n2"
    fresh.status.start_time = "2020-01-01T00:00:00Z"
    api = FakeApi(fresh)
    h = Harness(api, cached=fresh)
    assert await h.set_and_flush(fresh, kubelet_status())
    status = stored(api)["status"]
    assert (status["nominatedNodeName"], status["qosClass"], status["startTime"]) == \
        ("n2", "BestEffort", "2020-01-01T00:00:00Z")
    assert status["podIP"] == "127.9.1.2"


@pytest.mark.parametrize("gate,ready,reason", [
    (None, "False", "ReadinessGatesNotReady"),
    ("False", "False", "ReadinessGatesNotReady"),
    ("True", "True", ""),
], ids=["gate-missing", "gate-false", "gate-true"])
async def test_ready_requires_the_readiness_gates_as_read(gate, ready, reason):
    conditions = [cond("example.com/gate", gate)] if gate else []
    fresh = pod(rv=5, conditions=conditions, gates=["example.com/gate"])
    api = FakeApi(fresh)
    # The kubelet built its status from a copy that said nothing of the gate.
    h = Harness(api, cached=pod(rv=5, conditions=conditions, gates=["example.com/gate"]))
    assert await h.set_and_flush(fresh, kubelet_status(ready=True))
    doc = stored(api)
    found = next(c for c in doc["status"]["conditions"] if c["type"] == "Ready")
    assert (found["status"], found.get("reason", "")) == (ready, reason)
    containers_ready = next(c for c in doc["status"]["conditions"]
                            if c["type"] == "ContainersReady")
    assert containers_ready["status"] == "True"


# ---------------------------------------------------------------- never backwards

async def test_a_terminal_phase_stays_terminal_and_restart_counts_never_decrease():
    api = FakeApi(pod(rv=1, restarts=3))
    h = Harness(api, cached=None)
    p = pod(rv=1, restarts=3)
    assert await h.set_and_flush(p, kubelet_status(phase="Failed", restarts=2, terminated=1))
    assert stored(api)["status"]["containerStatuses"][0]["restartCount"] == 3
    # A later (wrong) view of the pod as running again does not undo Failed.
    assert await h.set_and_flush(p, kubelet_status(phase="Running", restarts=0))
    status = stored(api)["status"]
    assert status["phase"] == "Failed"
    assert status["containerStatuses"][0]["restartCount"] == 3
    assert h.manager.status("u1").phase == "Failed"


async def test_the_apis_terminal_phase_wins_over_the_kubelets_view():
    api = FakeApi(pod(rv=9, phase="Succeeded"))
    h = Harness(api, cached=pod(rv=2))
    assert await h.set_and_flush(pod(rv=2), kubelet_status(phase="Running"))
    assert stored(api)["status"]["phase"] == "Succeeded"


async def test_a_container_that_may_not_restart_stays_terminated():
    api = FakeApi(pod(rv=1, policy="Never"))
    h = Harness(api)
    p = pod(rv=1, policy="Never")
    assert await h.set_and_flush(p, kubelet_status(phase="Failed", terminated=3, ready=False))
    assert await h.set_and_flush(p, kubelet_status(phase="Running"))
    state = stored(api)["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 3


# ---------------------------------------------------------------- conflicts, replaced pods

async def test_conflicts_are_retried_from_a_fresh_read_a_bounded_number_of_times():
    api = FakeApi(pod(rv=1))

    def someone_else_writes_first(stored_pod):
        bumped = core_pb2.Pod()
        bumped.CopyFrom(stored_pod)
        api.put(bumped)
    api.before_write = someone_else_writes_first  # every write loses the race
    h = Harness(api, cached=pod(rv=1), conflict_retries=3)
    assert await h.set_and_flush(pod(rv=1), kubelet_status()) is False
    assert len(api.writes) == 4 and api.gets == 3
    assert not h.manager.synced("u1")
    # The next set (same status) tries again once the race is over.
    api.before_write = None
    h.manager.set_pod_status(pod(rv=1), kubelet_status())
    assert await h.manager.flush("u1", 5.0)
    assert stored(api)["status"]["podIP"] == "127.9.1.2"


async def test_a_pod_whose_uid_changed_is_not_written_and_its_statuses_are_dropped():
    api = FakeApi(pod(uid="u2", rv=8))  # deleted and made again under its name
    h = Harness(api, cached=pod(uid="u1", rv=3))
    assert await h.set_and_flush(pod(uid="u1", rv=3), kubelet_status())
    assert stored(api)["metadata"]["uid"] == "u2"
    assert "podIP" not in stored(api)["status"]
    writes = len(api.writes)
    h.manager.set_pod_status(pod(uid="u1", rv=3), kubelet_status(ready=False))
    assert await h.manager.flush("u1", 5.0)
    assert len(api.writes) == writes


async def test_a_pod_gone_from_the_api_is_dropped():
    api = FakeApi()
    h = Harness(api)
    assert await h.set_and_flush(pod(rv=1), kubelet_status())
    assert api.writes == []


async def test_an_unchanged_status_is_not_written():
    api = FakeApi(pod(rv=1))
    h = Harness(api, cached=pod(rv=1))
    assert await h.set_and_flush(pod(rv=1), kubelet_status())
    written = stored(api)
    h.cached = api.pods["web"]
    assert await h.set_and_flush(pod(rv=1), kubelet_status())
    assert len(api.writes) == 1 and stored(api) == written
    # A new manager (a restarted kubelet) with the same view writes nothing either.
    again = Harness(api, cached=api.pods["web"])
    assert await again.set_and_flush(api.pods["web"], kubelet_status())
    assert len(api.writes) == 1


async def test_unavailable_is_retried_with_back_off_then_left_for_the_next_sync():
    api = FakeApi(pod(rv=1))
    api.fail_next = [errors.Unavailable("etcd is down")] * 3
    h = Harness(api, cached=pod(rv=1), error_retries=2)
    assert await h.set_and_flush(pod(rv=1), kubelet_status()) is False
    assert len(h.slept) == 2 and all(s > 0 for s in h.slept)
    assert await h.set_and_flush(pod(rv=1), kubelet_status())  # the next sync
    assert stored(api)["status"]["podIP"] == "127.9.1.2"


async def test_a_flush_after_a_failed_write_sends_the_status_again():
    """A deleted pod's final status whose writes all failed (an apiserver restart)
    is written by the next flush, so the pod's deletion can be confirmed."""
    api = FakeApi(pod(rv=1))
    api.fail_next = [errors.Unavailable("apiserver restarting")] * 4
    h = Harness(api, cached=pod(rv=1), error_retries=3)
    assert await h.set_and_flush(pod(rv=1), kubelet_status(phase="Failed", ready=False,
                                                           terminated=137)) is False
    assert await h.manager.flush("u1", 5.0)
    assert stored(api)["status"]["phase"] == "Failed"


async def test_a_refused_status_is_not_retried():
    api = FakeApi(pod(rv=1))
    api.fail_next = [errors.Invalid("Pod", "web", message="Pod \"web\" is invalid")]
    h = Harness(api, cached=pod(rv=1))
    assert await h.set_and_flush(pod(rv=1), kubelet_status()) is False
    assert len(api.writes) == 1 and h.slept == []


# ---------------------------------------------------------------- coalescing

async def test_updates_while_a_write_is_in_flight_make_one_more_write_with_the_latest():
    api = FakeApi(pod(rv=1))
    api.gate = asyncio.Event()
    h = Harness(api, cached=pod(rv=1))
    p = pod(rv=1)
    h.manager.set_pod_status(p, kubelet_status(ready=False))
    await asyncio.sleep(0)  # the first write is now waiting on the server
    assert len(api.writes) == 1
    for restarts in range(1, 11):
        h.manager.set_pod_status(p, kubelet_status(ready=restarts % 2 == 0, restarts=restarts))
    api.gate.set()
    assert await h.manager.flush("u1", 5.0)
    assert len(api.writes) == 2
    latest = stored(api)["status"]
    assert latest["containerStatuses"][0]["restartCount"] == 10
    assert latest["containerStatuses"][0]["ready"] is True


async def test_flush_times_out_while_a_write_hangs():
    api = FakeApi(pod(rv=1))
    api.gate = asyncio.Event()
    h = Harness(api, cached=pod(rv=1))
    h.manager.set_pod_status(pod(rv=1), kubelet_status())
    assert await h.manager.flush("u1", 0.01) is False
    api.gate.set()
    assert await h.manager.flush("u1", 5.0)
    await h.manager.stop()


def test_merge_is_pure_and_orders_conditions_as_kubernetes_does():
    fresh = pod(rv=1, conditions=[cond("DisruptionTarget"), cond("PodScheduled", "True")])
    merged = pod_status.merge(fresh, kubelet_status(), NOW_S)
    assert [c.type for c in merged.conditions] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled",
        "DisruptionTarget"]
    assert fresh.status.conditions[0].type == "DisruptionTarget"  # not changed in place


# ---------------------------------------------------------------- static pods

async def test_a_static_pods_status_goes_to_its_mirror_and_waits_for_one():
    """The kubelet's pod (uid = the manifest's hash) has its status written to
    its mirror pod (another uid); without a mirror it is kept, not dropped."""
    mirrors = {"hash-1": None}
    api = FakeApi()
    h = Harness(api, api_uid=lambda uid: mirrors.get(uid, uid))
    static = pod(uid="hash-1", rv=0)
    assert not await h.set_and_flush(static, kubelet_status())  # no mirror yet
    assert api.writes == []
    api.put(pod(uid="mirror-uid", phase="Pending"))
    mirrors["hash-1"] = "mirror-uid"
    h.manager.resend("hash-1")
    assert await h.manager.flush("hash-1", 5.0)
    assert [w.metadata.uid for w in api.writes] == ["mirror-uid"]
    assert stored(api)["status"]["phase"] == "Running"
    # The mirror deleted and made again (a new uid): the same status goes to it.
    api.pods.clear()
    api.put(pod(uid="mirror-2", phase="Pending"))
    mirrors["hash-1"] = "mirror-2"
    h.manager.resend("hash-1")
    assert await h.manager.flush("hash-1", 5.0)
    assert stored(api)["metadata"]["uid"] == "mirror-2"
    assert stored(api)["status"]["phase"] == "Running"
async def test_another_writers_change_to_the_kubelets_fields_is_set_right_at_the_next_sync():
    """Kubernetes' needsReconcile: the node lifecycle controller marked the pod
    Ready=False while the node was away; the kubelet's next sync, with the same
    view as before, writes Ready=True again (once, not at every sync)."""
    api = FakeApi(pod(rv=1))
    h = Harness(api, cached=pod(rv=1))
    assert await h.set_and_flush(pod(rv=1), kubelet_status())
    marked = core_pb2.Pod()
    marked.CopyFrom(api.pods["web"])
    next(c for c in marked.status.conditions if c.type == "Ready").status = "False"
    api.put(marked)
    h.cached = api.pods["web"]
    assert await h.set_and_flush(pod(rv=1), kubelet_status())
    assert len(api.writes) == 2
    assert [c["status"] for c in stored(api)["status"]["conditions"] if c["type"] == "Ready"] \
        == ["True"]
    h.cached = api.pods["web"]
    assert await h.set_and_flush(pod(rv=1), kubelet_status())
    assert len(api.writes) == 2
