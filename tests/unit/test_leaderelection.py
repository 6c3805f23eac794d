"""Leader election: the pure decision table, then the elector against an in-memory Lease store."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from kubemu.api import errors
from kubemu.client import leaderelection as le
from kubemu.client.leaderelection import (
    ACQUIRE, CREATE, RENEW, WAIT, LeaseRecord, LeaderElector, decide, format_time, parse_time,
    release_record)
from kubemu.client.wait import wait_for

NOW = 1_800_000_000.5
ME = "node-a"
OTHER = "node-b"


def ago(seconds: float) -> str:
    return format_time(NOW - seconds)


# ---------------------------------------------------------------- the pure function

@dataclasses.dataclass
class Case:
    id: str
    current: LeaseRecord | None
    action: str
    transitions: int | None = None  # expected leaseTransitions written
    acquire_time: str | None = None  # expected acquireTime written
    lease_duration_s: float = 15


CASES = [
    Case("no-lease-creates", None, CREATE, transitions=0, acquire_time=format_time(NOW)),
    Case("ours-renews-keeping-acquire-time",
         LeaseRecord(ME, 15, ago(100), ago(2), 3), RENEW, transitions=3, acquire_time=ago(100)),
    Case("ours-expired-still-renews",
         LeaseRecord(ME, 15, ago(100), ago(60), 3), RENEW, transitions=3, acquire_time=ago(100)),
    Case("other-valid-waits", LeaseRecord(OTHER, 15, ago(100), ago(2), 1), WAIT),
    Case("other-expired-takes-over",
         LeaseRecord(OTHER, 15, ago(100), ago(16), 1), ACQUIRE, transitions=2,
         acquire_time=format_time(NOW)),
    Case("other-expiring-exactly-now-takes-over",
         LeaseRecord(OTHER, 15, ago(100), ago(15), 1), ACQUIRE, transitions=2),
    Case("other-just-before-expiry-waits",
         LeaseRecord(OTHER, 15, ago(100), ago(14.999), 1), WAIT),
    Case("released-takes-over-at-once",
         LeaseRecord("", 1, ago(0.1), ago(0.1), 4), ACQUIRE, transitions=5),
    Case("record-duration-wins-over-ours",
         LeaseRecord(OTHER, 30, ago(100), ago(20), 0), WAIT, lease_duration_s=15),
    Case("missing-record-duration-uses-ours",
         LeaseRecord(OTHER, None, ago(100), ago(20), 0), ACQUIRE, transitions=1,
         lease_duration_s=15),
    Case("zero-record-duration-uses-ours",
         LeaseRecord(OTHER, 0, ago(100), ago(5), 0), WAIT, lease_duration_s=15),
    Case("holder-without-renew-time-is-expired",
         LeaseRecord(OTHER, 15, "", "", 0), ACQUIRE, transitions=1),
    Case("garbage-renew-time-is-expired",
         LeaseRecord(OTHER, 15, "", "yesterday", 7), ACQUIRE, transitions=8),
    Case("renew-time-without-zone-is-expired",
         LeaseRecord(OTHER, 15, "", "2027-01-15T08:00:00", 0), ACQUIRE, transitions=1),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case):
    decision = decide(case.current, now=NOW, identity=ME, lease_duration_s=case.lease_duration_s)
    assert decision.action == case.action, decision.reason
    if case.action == WAIT:
        assert decision.record is None
        assert OTHER in decision.reason
        return
    written = decision.record
    assert written.holder_identity == ME
    assert written.renew_time == format_time(NOW)
    assert written.lease_duration_s == 15
    if case.transitions is not None:
        assert written.lease_transitions == case.transitions
    if case.acquire_time is not None:
        assert written.acquire_time == case.acquire_time


@pytest.mark.parametrize("duration_s,written", [(15, 15), (0.5, 1), (2.2, 3)],
                         ids=["whole", "under-a-second", "fraction-rounds-up"])
def test_written_duration_is_whole_seconds_rounded_up(duration_s, written):
    decision = decide(None, now=NOW, identity=ME, lease_duration_s=duration_s)
    assert decision.record.lease_duration_s == written


def test_release_clears_holder_and_keeps_transitions():
    released = release_record(LeaseRecord(ME, 15, ago(50), ago(1), 6), now=NOW)
    assert released == LeaseRecord("", 1, format_time(NOW), format_time(NOW), 6)
    # ... and anyone may take it at once.
    assert decide(released, now=NOW, identity=OTHER, lease_duration_s=15).action == ACQUIRE


@pytest.mark.parametrize("text,expected", [
    ("2026-11-23T19:31:36.123456Z", 1795462296.123456),
    ("2026-11-23T19:31:36Z", 1795462296.0),
    ("2026-11-23T20:31:36+01:00", 1795462296.0),
    ("", None), ("not a time", None), ("2026-11-23T19:31:36", None),
], ids=["micros", "whole-seconds", "offset", "empty", "garbage", "no-zone"])
def test_parse_time(text, expected):
    assert parse_time(text) == (pytest.approx(expected) if expected is not None else None)


def test_format_time_is_rfc3339_micro_utc():
    assert format_time(1795462296.123456) == "2026-11-23T19:31:36.123456Z"
    assert parse_time(format_time(NOW)) == pytest.approx(NOW)


def test_elector_rejects_inconsistent_timings():
    with pytest.raises(ValueError, match="retry_period_s < renew_deadline_s < lease_duration_s"):
        LeaderElector(object(), "kube-system", "lock", ME, lease_duration_s=10,
                      renew_deadline_s=10, retry_period_s=2)


# ---------------------------------------------------------------- the elector, in memory

def _lease_class():
    """A message with the Lease's shape, so this test does not need coordination_pb2."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="kubemu_test_lease.proto", package="kubemu.test", syntax="proto3")
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    int32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
    message = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    meta = fdp.message_type.add(name="Meta")
    for number, name in enumerate(["name", "namespace", "resource_version"], 1):
        meta.field.add(name=name, number=number, type=string)
    spec = fdp.message_type.add(name="LeaseSpec")
    spec.field.add(name="holder_identity", number=1, type=string)
    spec.oneof_decl.add(name="_lease_duration_seconds")
    spec.field.add(name="lease_duration_seconds", number=2, type=int32, oneof_index=0,
                   proto3_optional=True)
    spec.field.add(name="acquire_time", number=3, type=string)
    spec.field.add(name="renew_time", number=4, type=string)
    spec.oneof_decl.add(name="_lease_transitions")
    spec.field.add(name="lease_transitions", number=5, type=int32, oneof_index=1,
                   proto3_optional=True)
    lease = fdp.message_type.add(name="Lease")
    lease.field.add(name="api_version", number=1, type=string)
    lease.field.add(name="kind", number=2, type=string)
    lease.field.add(name="metadata", number=3, type=message, type_name=".kubemu.test.Meta")
    lease.field.add(name="spec", number=4, type=message, type_name=".kubemu.test.LeaseSpec")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kubemu.test.Lease"))


FakeLease = _lease_class()


class FakeLeaseStore:
    """The Client calls the elector makes, over one Lease, with resourceVersion checks."""

    def __init__(self):
        self.lease = None
        self.revision = 0
        self.unavailable = False
        # Holder identity of every successful write, in order.
        self.holders: list[str] = []

    def _copy(self, lease):
        out = FakeLease()
        out.CopyFrom(lease)
        return out

    def _write(self, obj):
        self.revision += 1
        self.lease = self._copy(obj)
        self.lease.metadata.resource_version = str(self.revision)
        self.holders.append(obj.spec.holder_identity)
        return self._copy(self.lease)

    async def get(self, resource, name, namespace=""):
        assert resource == "leases"
        if self.unavailable:
            raise errors.Unavailable("etcd unreachable")
        if self.lease is None:
            raise errors.NotFound(f'leases.coordination.k8s.io "{name}" not found')
        return self._copy(self.lease)

    async def create(self, obj):
        if self.unavailable:
            raise errors.Unavailable("etcd unreachable")
        if self.lease is not None:
            raise errors.AlreadyExists("exists")
        assert obj.kind == "Lease" and obj.api_version == "coordination.k8s.io/v1"
        return self._write(obj)

    async def update(self, obj):
        if self.unavailable:
            raise errors.Unavailable("etcd unreachable")
        if obj.metadata.resource_version != self.lease.metadata.resource_version:
            raise errors.Conflict("modified")
        return self._write(obj)


@pytest.fixture
def store(monkeypatch):
    monkeypatch.setattr(le, "_lease_class", lambda: FakeLease)
    return FakeLeaseStore()


def elector(store, identity):
    return LeaderElector(store, "kube-system", "kube-scheduler", identity,
                         lease_duration_s=2, renew_deadline_s=0.6, retry_period_s=0.05)


class Candidate:
    """Runs an elector, recording what it was told."""

    def __init__(self, store, identity):
        self.elector = elector(store, identity)
        self.leading = asyncio.Event()
        self.leading_cancelled = False
        self.stopped = 0
        self.task = None

    async def _lead(self):
        self.leading.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.leading_cancelled = True
            raise

    def _stopped(self):
        self.stopped += 1

    def start(self):
        self.task = asyncio.create_task(self.elector.run(self._lead, self._stopped))
        return self


async def stop(candidate):
    candidate.task.cancel()
    await asyncio.gather(candidate.task, return_exceptions=True)


async def test_first_candidate_creates_lease_and_leads(store):
    a = Candidate(store, "a").start()
    await wait_for(lambda: a.leading.is_set(), 5)
    assert a.elector.is_leader
    assert store.lease.spec.holder_identity == "a"
    assert store.lease.spec.lease_transitions == 0
    await wait_for(lambda: store.holders.count("a") >= 3, 5)  # it keeps renewing
    await stop(a)


async def test_graceful_stop_releases_and_standby_takes_over(store):
    a = Candidate(store, "a").start()
    await wait_for(lambda: a.leading.is_set(), 5)
    b = Candidate(store, "b").start()
    await wait_for(lambda: b.elector.leader == "a", 5)
    assert not b.leading.is_set()
    await stop(a)
    assert a.leading_cancelled and a.stopped == 1
    # Released (holder ""), so b needs no lease expiry to take over.
    assert "" in store.holders
    await wait_for(lambda: b.leading.is_set(), 5)
    assert store.lease.spec.holder_identity == "b"
    assert store.lease.spec.lease_transitions == 1
    assert store.holders[store.holders.index(""):][:2] == ["", "b"]
    await stop(b)


async def test_steps_down_when_renewals_fail_past_deadline(store):
    a = Candidate(store, "a").start()
    await wait_for(lambda: a.leading.is_set(), 5)
    store.unavailable = True
    await asyncio.wait_for(a.task, 5)  # run() returns after stepping down
    assert a.leading_cancelled
    assert a.stopped == 1
    assert not a.elector.is_leader
    assert store.lease.spec.holder_identity == "a"  # not released: it could not write


async def test_steps_down_at_once_when_another_holder_appears(store):
    a = Candidate(store, "a").start()
    await wait_for(lambda: a.leading.is_set(), 5)
    stolen = FakeLease()
    stolen.CopyFrom(store.lease)
    stolen.spec.holder_identity = "usurper"
    stolen.spec.renew_time = format_time(le.time.time() + 60)
    store._write(stolen)
    await asyncio.wait_for(a.task, 5)
    assert a.leading_cancelled and a.stopped == 1
    assert store.lease.spec.holder_identity == "usurper"


async def test_leading_work_ending_releases_the_lease(store):
    done = []

    async def lead_briefly():
        done.append(True)

    e = elector(store, "a")
    await asyncio.wait_for(e.run(lead_briefly, lambda: done.append("stopped")), 5)
    assert done == [True, "stopped"]
    assert store.lease.spec.holder_identity == ""


async def test_standby_takes_over_expired_lease(store):
    store._write(_held_by("crashed", renew_time=format_time(le.time.time() - 10),
                          transitions=2))
    b = Candidate(store, "b").start()
    await wait_for(lambda: b.leading.is_set(), 5)
    assert store.lease.spec.lease_transitions == 3
    await stop(b)


def _held_by(holder, *, renew_time, transitions):
    lease = FakeLease(api_version="coordination.k8s.io/v1", kind="Lease")
    lease.metadata.name = "kube-scheduler"
    lease.metadata.namespace = "kube-system"
    lease.spec.holder_identity = holder
    lease.spec.lease_duration_seconds = 2
    lease.spec.renew_time = renew_time
    lease.spec.acquire_time = renew_time
    lease.spec.lease_transitions = transitions
    return lease


@pytest.mark.parametrize("holder, renewed_s_ago, want", [
    ("me", 1.0, True),
    ("me", 10.0, False),   # not renewed within the renew deadline: act on nothing
    ("other", 1.0, False),
    (None, 0.0, False),    # never observed
], ids=["fresh", "stale", "someone-else", "unknown"])
def test_holds_fresh_lease(holder, renewed_s_ago, want):
    now = 1_000_000.0
    elector = LeaderElector(object(), "kube-system", "lock", "me", lease_duration_s=15,
                            renew_deadline_s=10, retry_period_s=2, clock=lambda: now)
    if holder is not None:
        elector.observed = le.LeaseRecord(holder_identity=holder,
                                          renew_time=le.format_time(now - renewed_s_ago),
                                          acquire_time=le.format_time(now - 100),
                                          lease_duration_s=15, lease_transitions=0)
    assert elector.holds_fresh_lease() is want


@pytest.mark.parametrize("argv, error", [
    ([], ""),
    (["--leader-elect=false", "--lease-duration-s", "4", "--renew-deadline-s", "3",
      "--retry-period-s", "0.5"], ""),
    (["--renew-deadline-s", "20"], "need 0 < --retry-period-s < --renew-deadline-s < "
                                   "--lease-duration-s, got 2, 20, 15"),
])
def test_leader_election_flags(argv, error, capsys):
    import argparse
    p = argparse.ArgumentParser()
    le.add_flags(p, namespace="kube-system", name="x", lease_duration_s=15,
                 renew_deadline_s=10, retry_period_s=2)
    if error:
        with pytest.raises(SystemExit):
            le.check_flags(p, p.parse_args(argv))
        assert error in capsys.readouterr().err
    else:
        args = p.parse_args(argv)
        le.check_flags(p, args)
        assert args.leader_elect is ("--leader-elect=false" not in argv)
