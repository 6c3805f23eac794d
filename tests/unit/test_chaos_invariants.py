"""deploy.chaos.invariants: each check passes on good data and fails, with
evidence naming the object, on crafted bad data; plus the etcd version check
and the workload status reading the runner does."""
from __future__ import annotations

import pytest

from deploy.chaos import invariants as inv
from deploy.chaos.etcdcheck import _own as etcd_affected_own
from deploy.chaos.runner import workload_status
from deploy.chaos.workloads import Availability


def log(acked=(), failed=()):
    return inv.WriteLog(acked=list(acked), failed=list(failed),
                        acked_rv={s: str(100 + s) for s in acked})


@pytest.mark.parametrize("logs, final, passed, detail", [
    ({"w-0": log([1, 2, 3])}, {"w-0": 3}, True, ""),
    ({"w-0": log([1, 2], [3])}, {"w-0": 3}, True, ""),          # a failed write that applied
    ({"w-0": log([1, 2], [3])}, {"w-0": 2}, True, ""),          # ... or did not
    ({"w-0": log([1, 2, 3])}, {"w-0": 2}, False, "w-0: holds seq=2, but seq=3 was acknowledged"),
    ({"w-0": log([1])}, {"w-0": None}, False, "w-0: absent, last acknowledged write seq=1"),
    ({"w-0": log([1, 2])}, {"w-0": 7}, False, "w-0: holds seq=7, never written"),
    ({}, {"w-9": 1}, False, "w-9: holds seq=1, never written"),
], ids=["all-found", "failed-applied", "failed-not-applied", "lost", "absent", "invented",
        "unknown-object"])
def test_writes(logs, final, passed, detail):
    result = inv.check_writes(logs, final)
    assert result.passed is passed, result
    if detail:
        assert any(d.startswith(detail) for d in result.details), result.details


def rec(*seen):
    return inv.WatchRecord(seen=list(seen))


@pytest.mark.parametrize("records, logs, final, expired, passed, detail", [
    ({"w-0": rec((1, 10), (2, 11), (3, 12))}, {"w-0": log([1, 2, 3])}, {"w-0": 3}, 1, True, ""),
    ({"w-0": rec((1, 10), (3, 12))}, {"w-0": log([1], [2], )}, {"w-0": 1}, 1, False,
     "w-0: last seen seq=3, final seq=1"),
    ({"w-0": rec((1, 10), (3, 12))}, {"w-0": log([1, 3], [2])}, {"w-0": 3}, 0, True, ""),
    ({"w-0": rec((1, 10), (3, 12))}, {"w-0": log([1, 2, 3])}, {"w-0": 3}, 0, False,
     "w-0: never saw acknowledged seq [2]"),
    # A relist after 410 Expired skips what changed meanwhile, by design.
    ({"w-0": rec((1, 10), (3, 12))}, {"w-0": log([1, 2, 3])}, {"w-0": 3}, 1, True, ""),
    ({"w-0": rec((2, 11), (1, 10))}, {"w-0": log([1, 2])}, {"w-0": 1}, 1, False,
     "w-0: out of order"),
    ({}, {"w-0": log([1])}, {"w-0": 1}, 1, False, "w-0: never saw acknowledged seq [1]"),
], ids=["complete", "ends-elsewhere", "gap-of-a-failed-write", "gap", "skipped-across-a-relist",
        "disorder", "nothing-seen"])
def test_watch(records, logs, final, expired, passed, detail):
    result = inv.check_watch(records, logs, final, expired=expired, reconnects=2)
    assert result.passed is passed, result
    assert f"{expired} 410 Expired" in result.evidence
    if detail:
        assert any(d.startswith(detail) for d in result.details), result.details


def test_converged():
    good = inv.WorkloadStatus("Deployment", "chaos/web", True, "3/3 ready")
    bad = inv.WorkloadStatus("Job", "chaos/batch-1", False, "0 succeeded, 1 active")
    assert inv.check_converged([good], 60, 4.2).passed
    result = inv.check_converged([good, bad], 60, None)
    assert not result.passed and result.details == ("Job/chaos/batch-1: 0 succeeded, 1 active",)


def test_overcommit():
    nodes = [inv.NodeCapacity("node-0", 1000, 1 << 30)]
    fits = [inv.PodRequest("a", "p1", "node-0", 600, 1 << 29),
            inv.PodRequest("a", "p2", "node-0", 400, 1 << 29)]
    assert inv.check_overcommit(nodes, fits).passed
    over = inv.check_overcommit(nodes, fits + [inv.PodRequest("a", "p3", "node-0", 1, 0)])
    assert not over.passed
    assert over.details == (f"node-0: 3 pods request cpu 1001m/1000m, memory {1 << 30}/"
                            f"{1 << 30} bytes",)


def test_pod_processes():
    a = inv.LiveContainer("node-0", "uid-a", "chaos/a", "main", 100)
    assert inv.check_pod_processes([a], ["uid-a"]).passed
    orphan = inv.check_pod_processes([a], ["uid-b"])
    assert not orphan.passed and "no pod with uid uid-a" in orphan.details[0]
    twice = inv.check_pod_processes([a, inv.LiveContainer("node-1", "uid-a", "chaos/a", "main",
                                                          200)], ["uid-a"])
    assert twice.details == ("chaos/a container 'main' runs 2 times: node-0 pid 100, "
                             "node-1 pid 200",)


@pytest.mark.parametrize("members, passed, detail", [
    ([inv.MemberStatus("etcd-0", 50, 7), inv.MemberStatus("etcd-1", 50, 7)], True, ""),
    # Read one after another under writes: revisions may differ, hashes may not.
    ([inv.MemberStatus("etcd-0", 50, 7), inv.MemberStatus("etcd-1", 49, 7)], True, ""),
    ([inv.MemberStatus("etcd-0", 50, 7), inv.MemberStatus("etcd-1", 50, 8)], False,
     "hashes differ: etcd-0=0x7, etcd-1=0x8"),
    ([inv.MemberStatus("etcd-0", 50, 7), inv.MemberStatus("etcd-1", error="status: timeout")],
     False, "etcd-1: status: timeout"),
    ([], False, "no etcd member answered"),
], ids=["agree", "revision", "hash", "unreachable", "none"])
def test_etcd_agree(members, passed, detail):
    result = inv.check_etcd_agree(members)
    assert result.passed is passed, result
    if detail:
        assert detail in result.details


def test_no_process_left():
    assert inv.check_no_process_left([]).passed
    left = inv.check_no_process_left(["pid 12 (etcd --data-dir x)"])
    assert not left.passed and left.details == ("pid 12 (etcd --data-dir x)",)


@pytest.mark.parametrize("version, affected", [
    ("3.5.0", True), ("3.5.1", True), ("v3.5.2", True), ("3.5.3", False), ("3.4.23", False),
    ("3.6.0", False), ("", False), ("unknown", False)])
def test_etcd_affected(version, affected):
    assert etcd_affected_own(version) is affected


@pytest.mark.parametrize("kind, doc, converged", [
    ("Deployment", {"metadata": {"generation": 3}, "spec": {"replicas": 2}, "status": {
        "observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
        "availableReplicas": 2}}, True),
    ("Deployment", {"metadata": {"generation": 3}, "spec": {"replicas": 2}, "status": {
        "observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
        "availableReplicas": 2}}, False),
    ("Deployment", {"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 2,
        "availableReplicas": 2}}, False),
    ("DaemonSet", {"metadata": {"generation": 1}, "status": {
        "observedGeneration": 1, "desiredNumberScheduled": 2, "numberReady": 2,
        "updatedNumberScheduled": 2}}, True),
    ("Job", {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}, True),
    ("Job", {"status": {"active": 1}}, False),
], ids=["deploy-ok", "deploy-old-generation", "deploy-surplus", "ds-ok", "job-done",
        "job-running"])
def test_workload_status(kind, doc, converged):
    assert workload_status(kind, doc).converged is converged


def test_availability_longest_outage_runs_from_success_to_success():
    # Calls at t (seconds since t0): ok 0.5; failures 1.2, 6.4 (a call that
    # hung 5 s); ok 7.0; failure 9.0 with nothing after. Seconds without a
    # completed call still count: the outage is 0.5 -> 7.0.
    clock = [0.0]
    a = Availability("writer", t0=0.0, clock=lambda: clock[0])
    for t, ok in [(0.5, True), (1.2, False), (6.4, False), (7.0, True), (9.0, False)]:
        clock[0] = t
        a.record(ok, "" if ok else "Unavailable")
    assert a.longest_outage_s() == 6.5
    assert a.seconds == {0: [1, 0], 1: [0, 1], 6: [0, 1], 7: [1, 0], 9: [0, 1]}


def test_no_outage_without_failures():
    a = Availability("writer", t0=0.0)
    assert a.longest_outage_s() == 0.0


def test_faults_invariant_fails_on_an_error_or_on_nothing_struck():
    ok = inv.check_faults([("kill etcd-0 at 2s", "", True, "")], planned=1)
    assert ok.passed
    failed = inv.check_faults([("kill etcd-0 at 2s", "", True, "the supervisor is busy")],
                              planned=1)
    assert not failed.passed and "the supervisor is busy" in failed.details[0]
    skipped_only = inv.check_faults([("kill any at 2s", "nothing to pick", False, "")], planned=0)
    assert skipped_only.passed
    none = inv.check_faults([("kill x at 2s", "", False, "")], planned=1)
    assert not none.passed


def test_a_writer_with_no_acknowledged_write_checked_nothing():
    got = inv.check_writes({"cm-1": inv.WriteLog(failed=[1, 2])}, {"cm-1": None})
    assert not got.passed
    assert "nothing to check" in " ".join(got.details)