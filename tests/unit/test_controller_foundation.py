"""The controller-manager's shared logic: expectations, --controllers,
deletion ranking, slow-start batches, conditions."""
from __future__ import annotations

import asyncio
import threading

import pytest

from controller_manager import app as app_mod
from controller_manager import controllerutil as cu
from controller_manager import registry
from controller_manager.base import Context, Controller, InformerFactory, Options
from controller_manager.expectations import Expectations
from kubemu import timefmt
from kubemu.api import errors
from kubemu.api.v1 import apps_pb2, core_pb2
from kubemu.client.wait import wait_for
from kubemu.loops import Loops
from tests.builders import make_pod
from tests.unit.cli_memclient import MemClient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- expectations

def test_expectations_hold_until_every_creation_is_observed():
    exp = Expectations(clock=Clock())
    assert exp.satisfied("ns/rs")  # nothing recorded
    exp.expect_creations("ns/rs", 3)
    for _ in range(2):
        exp.creation_observed("ns/rs")
        assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")  # an extra event never goes negative
    assert exp.pending("ns/rs") == (0, 0)


def test_failed_creates_lower_expectations():
    exp = Expectations(clock=Clock())
    exp.expect_creations("k", 5)
    exp.lower_creations("k", 4)
    assert exp.pending("k") == (1, 0)
    exp.creation_observed("k")
    assert exp.satisfied("k")


def test_deletions_are_tracked_by_pod_and_counted_once():
    exp = Expectations(clock=Clock())
    exp.expect_deletions("k", ["ns/a", "ns/b"])
    exp.deletion_observed("k", "ns/a")
    exp.deletion_observed("k", "ns/a")  # twice: still one
    exp.deletion_observed("k", "ns/other")  # not one we wait for
    assert exp.pending("k") == (0, 1)
    assert not exp.satisfied("k")
    exp.deletion_observed("k", "ns/b")
    assert exp.satisfied("k")


def test_expectations_expire_after_their_ttl():
    clock = Clock()
    exp = Expectations(ttl_s=300, clock=clock)
    exp.expect_creations("k", 1)
    clock.now += 300
    assert not exp.satisfied("k")
    clock.now += 1
    assert exp.satisfied("k")
    assert len(exp) == 0


# ---------------------------------------------------------------- --controllers

class A(Controller):
    name = "a-controller"
    aliases = ("a",)


class B(Controller):
    name = "b-controller"


class Off(Controller):
    name = "off-controller"
    on_by_default = False


ALL = (A, B, Off)


@pytest.mark.parametrize("spec, want", [
    (["*"], [A, B]),
    (["*", "-a"], [B]),
    (["*", "-a-controller"], [B]),
    (["*", "off-controller"], [A, B, Off]),
    (["b-controller"], [B]),
    (["a", "-a"], []),
    ([""], []),
], ids=["star", "star-minus-alias", "star-minus-name", "star-plus-off", "one", "disable-wins",
        "empty"])
def test_controllers_flag_syntax(spec, want):
    assert registry.select(spec, ALL) == want


def test_an_unknown_controller_is_refused_with_the_known_list():
    with pytest.raises(registry.UnknownController, match=r'"nope" is not in the list of known '
                                                         r'controllers: a-controller, '):
        registry.select(["*", "-nope"], ALL)


def test_the_registry_names_are_unique_and_replicaset_is_on():
    names = [n for c in registry.CONTROLLERS for n in (c.name, *c.aliases)]
    assert len(names) == len(set(names))
    assert "replicaset-controller" in [c.name for c in registry.select(["*"])]


# ---------------------------------------------------------------- pods

def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool | None = True,
        ready_at: float = 100.0, created: float = 50.0, restarts: int = 0,
        cost: str | None = None) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = name
    p.metadata.creation_timestamp = timefmt.rfc3339(created)
    if cost is not None:
        p.metadata.annotations[cu.POD_DELETION_COST] = cost
    p.spec.node_name = node
    p.status.phase = phase
    if ready is not None:
        cond = p.status.conditions.add()
        cond.type, cond.status = "Ready", "True" if ready else "False"
        cond.last_transition_time = timefmt.rfc3339(ready_at)
    if restarts:
        p.status.container_statuses.add(name="c", restart_count=restarts)
    return p


# The ranking's "now": ages of 5 s and 100 s and more are in different powers of two.
RANK_NOW_S = 205.0


def with_uid(p: core_pb2.Pod, uid: str) -> core_pb2.Pod:
    p.metadata.uid = uid
    return p


def never_created(p: core_pb2.Pod) -> core_pb2.Pod:
    p.metadata.ClearField("creation_timestamp")
    return p


@pytest.mark.parametrize("first, second", [
    (pod("unassigned", node=""), pod("assigned")),
    (pod("pending", phase="Pending", ready=None), pod("running")),
    (pod("no-phase-yet", phase="", ready=None), pod("unknown", phase="Unknown", ready=None)),
    (pod("not-ready", ready=False), pod("ready")),
    (pod("cheap", cost="-5"), pod("dear", cost="5")),
    (pod("plus-sign-is-no-cost", cost="+5"), pod("dear", cost="5")),
    (pod("ready-later", ready_at=200.0), pod("ready-earlier", ready_at=100.0)),
    # Ready 100 s and 120 s ago: the same power of two, so the uid decides.
    (with_uid(pod("ready-earlier-a", ready_at=85.0), "a"),
     with_uid(pod("ready-later-b", ready_at=105.0), "b")),
    (pod("restarted", restarts=3), pod("steady")),
    (pod("newer", created=200.0), pod("older", created=50.0)),
    (never_created(pod("no-creation-time")), pod("newer", created=200.0)),
    # The Unix epoch is a time like any other (only Go's zero time is unset).
    (pod("newer", created=200.0), pod("epoch", created=0.0)),
], ids=["unassigned", "pending", "no-phase-is-pending", "not-ready", "deletion-cost",
        "invalid-deletion-cost", "ready-for-less-time", "same-power-of-two-by-uid",
        "more-restarts", "newer", "no-creation-time", "epoch-is-a-time"])
def test_rank_for_deletion_puts_the_cheaper_pod_first(first, second):
    ranked = cu.rank_for_deletion([second, first], [], RANK_NOW_S)
    assert [p.metadata.name for p in ranked] == [first.metadata.name, second.metadata.name]


def test_rank_for_deletion_prefers_pods_doubled_up_on_a_node():
    crowded = [pod("c1", node="busy"), pod("c2", node="busy")]
    alone = pod("alone", node="quiet")
    ranked = cu.rank_for_deletion([alone, *crowded], [alone, *crowded], RANK_NOW_S)
    assert ranked[-1].metadata.name == "alone"
    # Without related pods nothing is doubled up: the newer pod goes first.
    newer = pod("newer", node="quiet", created=200.0)
    assert cu.rank_for_deletion([*crowded, newer], [], RANK_NOW_S)[0].metadata.name == "newer"
    # Without `related`, the pods themselves are counted; without `now_s`,
    # times are compared as they are (the newest first, whatever its power of two).
    assert cu.rank_for_deletion([alone, *crowded])[-1].metadata.name == "alone"
    a, b = pod("a", created=100.0), pod("b", created=101.0)
    assert cu.rank_for_deletion([a, b])[0].metadata.name == "b"


@pytest.mark.parametrize("ready_at, min_ready_s, now, want", [
    (100.0, 0, 100.0, True),
    (100.0, 10, 109.0, False),
    (100.0, 10, 110.0, False),  # IsPodAvailable: the deadline strictly Before now
    (100.0, 10, 110.5, True),
], ids=["no-min-ready", "too-soon", "at-the-deadline", "past-the-deadline"])
def test_availability_waits_for_min_ready_seconds(ready_at, min_ready_s, now, want):
    assert cu.is_pod_available(pod("p", ready_at=ready_at), min_ready_s, now) is want
    assert not cu.is_pod_available(pod("p", ready=False), 0, now)


def test_a_ready_condition_without_transition_time_is_not_available_after_min_ready():
    p = pod("p")
    p.status.conditions[0].ClearField("last_transition_time")
    assert cu.is_pod_available(p, 0, 1000.0)
    assert not cu.is_pod_available(p, 10, 1000.0)
    assert cu.is_pod_available(pod("p", ready_at=0.0), 10, 1000.0)  # the epoch is a time


def test_pod_from_template_carries_the_template_and_a_controller_ref():
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = "web", "ns", "u-1"
    rs.spec.template.metadata.labels["app"] = "web"
    rs.spec.template.metadata.annotations["a"] = "b"
    rs.spec.template.spec.containers.add(name="c", image="busybox")
    p = cu.pod_from_template(rs.spec.template, rs)
    assert (p.metadata.generate_name, p.metadata.namespace) == ("web-", "ns")
    assert dict(p.metadata.labels) == {"app": "web"}
    assert dict(p.metadata.annotations) == {"a": "b"}
    ref = p.metadata.owner_references[0]
    assert (ref.api_version, ref.kind, ref.name, ref.uid, ref.controller,
            ref.block_owner_deletion) == ("apps/v1", "ReplicaSet", "web", "u-1", True, True)
    assert p.spec.containers[0].image == "busybox"


# ---------------------------------------------------------------- slow start

@pytest.mark.parametrize("count, fail_call, want_batches, want_ok", [
    (7, None, [1, 2, 4], 7),
    (10, None, [1, 2, 4, 3], 10),
    (10, 3, [1, 2], 2),   # the third call fails: its batch of 2 is the last
    (0, None, [], 0),
], ids=["exact", "tail", "stops-at-failed-batch", "none"])
async def test_slow_start_batches_double_and_stop_at_a_failure(count, fail_call, want_batches,
                                                                want_ok):
    # A batch = the calls that start while the same number of calls has finished.
    started_after: list[int] = []
    done = 0

    async def fn():
        nonlocal done
        started_after.append(done)
        mine = len(started_after)
        await asyncio.sleep(0)
        done += 1
        if mine == fail_call:
            raise RuntimeError("refused")
    ok, err = await cu.slow_start_batch(count, 1, fn)
    batches = [started_after.count(v) for v in sorted(set(started_after))]
    assert batches == want_batches
    assert ok == want_ok
    assert (err is None) == (fail_call is None)


# ---------------------------------------------------------------- conditions

def test_set_condition_moves_the_transition_time_only_on_a_status_change():
    status = apps_pb2.DeploymentStatus()
    assert cu.set_condition(status, "Available", "False", "R1", "m1", now=100.0)
    first = status.conditions[0].last_transition_time
    assert cu.set_condition(status, "Available", "False", "R2", "m2", now=200.0)
    assert status.conditions[0].last_transition_time == first
    assert status.conditions[0].last_update_time == timefmt.rfc3339(200.0)
    assert not cu.set_condition(status, "Available", "False", "R2", "m2", now=300.0)
    assert cu.set_condition(status, "Available", "True", "R3", "m3", now=400.0)
    assert status.conditions[0].last_transition_time == timefmt.rfc3339(400.0)
    assert cu.remove_condition(status, "Available")
    assert not status.conditions


# ---------------------------------------------------------------- dependent events

class Events:
    """DependentEvents over a ReplicaSet cache, recording what it enqueues."""

    def __init__(self, *owners, requeue_when_ready: bool = True):
        self.informer = InformerFactory(None, Loops()).get("replicasets")  # type: ignore[arg-type]
        self.informer._replace(list(owners))
        self.expectations = Expectations(clock=Clock())
        self.enqueued: list[str] = []
        self.after: list[tuple[str, float]] = []
        # What the hooks saw: ("observed", owner key, dependent, gone) / ("unowned", dependent).
        self.hooks: list[tuple] = []
        self.handlers = cu.DependentEvents(
            self.informer, "ReplicaSet", self.expectations,
            lambda o: self.enqueued.append(o.metadata.name),
            lambda o, delay_s: self.after.append((o.metadata.name, delay_s)),
            requeue_when_ready=requeue_when_ready,
            observed=lambda key, d, gone: self.hooks.append(
                ("observed", key, d.metadata.name, gone)),
            unowned=lambda d: self.hooks.append(("unowned", d.metadata.name)))


def owner(name: str, app: str = "web", min_ready_s: int = 0, selector: dict | None = None):
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = name, "default", f"{name}-uid"
    rs.spec.min_ready_seconds = min_ready_s
    if selector is None:
        rs.spec.selector.match_labels["app"] = app
    else:
        rs.spec.selector.match_expressions.add(**selector)
    return rs


def dependent(name: str, rv: str = "1", *, of=None, app: str = "web", terminating: bool = False,
              ready: bool | None = None) -> core_pb2.Pod:
    p = pod(name, ready=ready)
    p.metadata.namespace, p.metadata.resource_version = "default", rv
    p.metadata.labels["app"] = app
    if of is not None:
        p.metadata.owner_references.append(cu.controller_ref(of))
    if terminating:
        p.metadata.deletion_timestamp = timefmt.rfc3339(500.0)
    return p


def test_dependent_events_keep_the_owners_expectations():
    rs = owner("web")
    ev = Events(rs)
    ev.expectations.expect_creations("default/web", 1)
    ev.handlers.on_add(dependent("web-a", of=rs))
    assert ev.expectations.pending("default/web") == (0, 0) and ev.enqueued == ["web"]

    ev.expectations.expect_deletions("default/web", ["default/web-a", "default/web-b"])
    ev.handlers.on_update(dependent("web-a", "1", of=rs), dependent("web-a", "2", of=rs,
                                                                    terminating=True))
    # Seen terminating for the first time (a restart): a deletion, never a creation.
    ev.expectations.expect_creations("default/other", 1)
    ev.handlers.on_add(dependent("web-b", of=rs, terminating=True))
    assert ev.expectations.pending("default/web") == (0, 0)


def test_dependent_events_wake_old_and_matching_owners_and_never_raise():
    a, b = owner("a"), owner("b")
    bad = owner("bad", selector={"key": "app", "operator": "Bogus", "values": ["web"]})
    ev = Events(a, b, bad)
    ev.handlers.on_update(dependent("p", "1", of=a), dependent("p", "2"))  # released by a
    assert sorted(ev.enqueued) == ["a", "a", "b"]  # the old owner, then every match
    ev.enqueued.clear()
    ev.handlers.on_add(dependent("orphan"))
    ev.handlers.on_add(dependent("other-app", app="db"))
    ev.handlers.on_update(dependent("p", "2", of=a), dependent("p", "2", of=a))  # a resync
    assert sorted(ev.enqueued) == ["a", "b"]


@pytest.mark.parametrize("requeue_when_ready, want", [(True, [("web", 6)]), (False, [])],
                         ids=["requeue", "no-requeue"])
def test_a_dependent_becoming_ready_requeues_after_min_ready_seconds(requeue_when_ready, want):
    rs = owner("web", min_ready_s=5)
    ev = Events(rs, requeue_when_ready=requeue_when_ready)
    ev.handlers.on_update(dependent("p", "1", of=rs, ready=False),
                          dependent("p", "2", of=rs, ready=True))
    assert ev.after == want


_RS = owner("web")


@pytest.mark.parametrize("event, want", [
    (lambda h: h.on_add(dependent("p", of=_RS)), []),
    (lambda h: h.on_add(dependent("p", of=_RS, terminating=True)),
     [("observed", "default/web", "p", False)]),
    (lambda h: h.on_update(dependent("p", "1", of=_RS), dependent("p", "2", of=_RS)),
     [("observed", "default/web", "p", False)]),
    (lambda h: h.on_update(dependent("p", "1", of=_RS), dependent("p", "2", of=_RS,
                                                                  terminating=True)),
     [("observed", "default/web", "p", False)]),
    (lambda h: h.on_update(dependent("p", "1", of=_RS), dependent("p", "2")),
     [("observed", "default/web", "p", False), ("unowned", "p")]),
    (lambda h: h.on_delete(dependent("p", of=_RS)), [("observed", "default/web", "p", True)]),
    (lambda h: h.on_add(dependent("p")), [("unowned", "p")]),
    (lambda h: h.on_add(dependent("p", of=owner("gone"))), [("unowned", "p")]),
    (lambda h: h.on_update(dependent("p", "1"), dependent("p", "2")), [("unowned", "p")]),
    (lambda h: h.on_delete(dependent("p", of=owner("gone"))), [("unowned", "p")]),
    (lambda h: h.on_update(dependent("p", "1", of=_RS), dependent("p", "1", of=_RS)), []),
], ids=["add-owned", "add-terminating", "update-owned", "update-starts-terminating",
        "update-released", "delete-owned", "add-orphan", "add-owner-gone", "update-orphan",
        "delete-owner-gone", "resync"])
def test_dependent_events_hooks_see_owned_and_unowned_dependents(event, want):
    """The Job's hooks: `observed` for an update or deletion reaching an owner
    (gone only for a real deletion), `unowned` for any event without one."""
    ev = Events(_RS)
    event(ev.handlers)
    assert ev.hooks == want


# ---------------------------------------------------------------- times

@pytest.mark.parametrize("text, want_time_s, want_created_s", [
    ("1970-01-01T00:16:40Z", 1000.0, 1000.0),
    ("", None, 0.0),
    ("yesterday", None, 0.0),
], ids=["rfc3339", "unset", "unreadable"])
def test_time_s_and_created_s(text, want_time_s, want_created_s):
    obj = core_pb2.Pod()
    obj.metadata.creation_timestamp = text
    assert (cu.time_s(text), cu.created_s(obj)) == (want_time_s, want_created_s)


# ---------------------------------------------------------------- pod control

class Recorded:
    """An EventRecorder that keeps (type, reason, message)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, _obj, type_: str, reason: str, message: str, **_) -> None:
        self.events.append((type_, reason, message))


async def test_pod_control_records_kubernetes_events_and_observes_failed_deletions():
    client, recorder = await MemClient.new(), Recorded()
    expectations = Expectations(clock=Clock())
    control = cu.PodControl(client, recorder, expectations)  # type: ignore[arg-type]
    rs = owner("web")
    template = make_pod("template").build()
    created = await control.create(rs, cu.pod_from_template(template, rs, name="web-a"))
    with pytest.raises(errors.Invalid):
        await control.create(rs, core_pb2.Pod(api_version="v1", kind="Pod"))
    expectations.expect_deletions("default/web", ["default/web-a", "default/gone"])
    await control.delete(rs, created)
    await control.delete(rs, dependent("gone"))  # NotFound: observed now, no event
    assert [(t, r) for t, r, _ in recorder.events] == [
        ("Normal", "SuccessfulCreate"), ("Warning", "FailedCreate"),
        ("Normal", "SuccessfulDelete")]
    assert recorder.events[0][2] == "Created pod: web-a"
    assert recorder.events[1][2].startswith("Error creating: ")
    assert recorder.events[2][2] == "Deleted pod: web-a"
    # web-a still awaits its informer event; the pod that was gone does not.
    assert expectations.pending("default/web") == (0, 1)


@pytest.mark.parametrize("change, want", [(False, "unchanged"), (True, "written")],
                         ids=["unchanged-no-write", "changed-written"])
async def test_write_status_writes_only_a_changed_status(change, want):
    client = await MemClient.new()
    pod = await client.create(make_pod("p").build())
    status = core_pb2.PodStatus()
    status.CopyFrom(pod.status)
    if change:
        status.phase = "Running"
    written = await cu.write_status(client, pod, status)
    stored = await client.get("pods", "p", "default")
    got = "written" if stored.metadata.resource_version != pod.metadata.resource_version \
        else "unchanged"
    assert got == want and written.status == status
    await client.delete("pods", "p", "default", grace_period_s=0)
    assert await cu.write_status(client, pod, core_pb2.PodStatus(phase="Failed")) is None


# ---------------------------------------------------------------- the process

async def test_the_address_file_is_written_off_the_event_loop(tmp_path, monkeypatch):
    """atomic_write fsyncs: on the event loop it could stall every controller."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, bool]] = []

    def fake_write(path, text, **_):
        seen.append((str(path), threading.current_thread() is threading.main_thread()))
        loop.call_soon_threadsafe(stop.set)
    monkeypatch.setattr(app_mod.fileutil, "atomic_write", fake_write)
    options = Options(apiserver="127.0.0.1:1", address_file=str(tmp_path / "addr"),
                      leader_elect=False, controllers=("replicaset",), rpc_timeout_s=1.0)
    await asyncio.wait_for(app_mod.ControllerManagerApp(options).run(stop), 10)
    assert seen == [(str(tmp_path / "addr"), False)]


# ---------------------------------------------------------------- the worker loop

class Flaky(Controller):
    """Raises a bug for "bad", records every key it syncs."""
    name = "flaky-controller"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.synced: list[str] = []

    async def sync(self, key: str) -> None:
        self.synced.append(key)
        if key == "bad":
            raise KeyError("a bug")


def flaky_context() -> Context:
    options = Options(apiserver="-", requeue_base_delay_s=0.001, retry_period_s=0.05)
    return Context(None, options, Loops())  # type: ignore[arg-type] - no client needed


async def test_a_sync_that_raises_a_bug_is_retried_and_the_worker_goes_on():
    ctx = flaky_context()
    flaky = Flaky(ctx)
    run = asyncio.get_running_loop().create_task(flaky.run(workers=1))
    flaky.enqueue("bad")
    flaky.enqueue("good")
    await wait_for(lambda: "good" in flaky.synced and flaky.synced.count("bad") >= 2, 5.0)
    assert flaky.sync_errors >= 2
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await ctx.stop()


class Ticking(Flaky):
    """Looks every 10 ms besides the events; its first look is a bug."""
    name = "ticking-controller"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.looks = 0

    def resync_period_s(self) -> float:
        return 0.01

    def resync(self) -> None:
        self.looks += 1
        if self.looks == 1:
            raise RuntimeError("a bug in one look")
        self.enqueue(f"tick-{self.looks}")


async def test_the_periodic_resync_runs_beside_the_workers_and_survives_a_bug():
    ctx = flaky_context()
    ticking = Ticking(ctx)
    run = asyncio.get_running_loop().create_task(ticking.run(workers=1))
    await wait_for(lambda: "tick-3" in ticking.synced, 5.0)
    assert "tick-1" not in ticking.synced and "tick-2" in ticking.synced
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await ctx.stop()


async def test_without_the_lease_a_key_is_not_synced_but_kept_for_later():
    ctx = flaky_context()
    ctx.lease_ok = lambda: False
    flaky = Flaky(ctx)
    await flaky.process("good")
    assert flaky.synced == [] and flaky.syncs == 0
    ctx.lease_ok = lambda: True
    # Put back with a delay (retry_period_s), not dropped.
    assert flaky.queue.num_requeues("good") == 0
    await wait_for(lambda: len(flaky.queue) == 1, flaky.options.retry_period_s + 5.0)
    await flaky.process(flaky.queue.get_nowait())
    assert flaky.synced == ["good"]
    await ctx.stop()
