"""The invariants a chaos run checks afterwards (pure: data in, verdict out).

Contract: every check takes plain data gathered by the runner (the writer's
log, the watcher's record, objects read from the apiserver, container
records, etcd members' status) and returns an Invariant: its name, pass or
fail, a one-line evidence string and the offending items (at most
DETAILS_MAX, so a report stays readable). Nothing here talks to a cluster,
so each check is tested on crafted bad input.

The writer numbers its writes per ConfigMap (data["seq"] = 1, 2, ...), so a
value names exactly one attempted write. A write that failed may still have
been applied (the error may have come after etcd committed it): such a
write is "uncertain", and finding it is neither a loss nor an invention.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

DETAILS_MAX = 20


@dataclasses.dataclass(frozen=True)
class Invariant:
    name: str
    passed: bool
    evidence: str
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "evidence": self.evidence,
                "details": list(self.details)}


def _verdict(name: str, bad: list[str], ok_evidence: str, bad_evidence: str) -> Invariant:
    if bad:
        return Invariant(name, False, bad_evidence, tuple(bad[:DETAILS_MAX]))
    return Invariant(name, True, ok_evidence)


@dataclasses.dataclass
class WriteLog:
    """One ConfigMap's writes: seq numbers acknowledged and seq numbers that failed."""

    acked: list[int] = dataclasses.field(default_factory=list)      # in order
    failed: list[int] = dataclasses.field(default_factory=list)
    acked_rv: dict[int, str] = dataclasses.field(default_factory=dict)


def check_writes(logs: Mapping[str, WriteLog], final: Mapping[str, int | None]) -> Invariant:
    """No acknowledged write lost, none invented.

    `final`: name -> the seq found at the end (None: the object is absent), for
    every object of the writer found and every name logged.
    """
    lost: list[str] = []
    invented: list[str] = []
    acked_total = sum(len(log.acked) for log in logs.values())
    for name in sorted(set(logs) | set(final)):
        log = logs.get(name, WriteLog())
        seq = final.get(name)
        last_acked = max(log.acked, default=0)
        attempted = set(log.acked) | set(log.failed)
        if seq is None:
            if last_acked:
                lost.append(f"{name}: absent, last acknowledged write seq={last_acked} "
                            f"(resourceVersion {log.acked_rv.get(last_acked, '?')})")
            continue
        if seq not in attempted:
            invented.append(f"{name}: holds seq={seq}, never written (acknowledged "
                            f"{_span(log.acked)}, failed {_span(log.failed)})")
        elif seq < last_acked:
            lost.append(f"{name}: holds seq={seq}, but seq={last_acked} was acknowledged "
                        f"(resourceVersion {log.acked_rv.get(last_acked, '?')})")
    bad = lost + invented
    if logs and not acked_total:
        bad.append("no write was acknowledged at all: nothing to check")
    return _verdict(
        "no acknowledged write lost or invented", bad,
        f"{acked_total} acknowledged writes to {len(logs)} ConfigMaps all found",
        f"{len(lost)} lost, {len(invented)} invented", )


def _span(seqs: Sequence[int]) -> str:
    if not seqs:
        return "none"
    return f"{len(seqs)} in [{min(seqs)}, {max(seqs)}]"


@dataclasses.dataclass
class WatchRecord:
    """What the watcher saw of one ConfigMap: (seq, resourceVersion) in arrival order."""

    seen: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    deleted: bool = False


def check_watch(records: Mapping[str, WatchRecord], logs: Mapping[str, WriteLog],
                final: Mapping[str, int | None], *, expired: int = 0,
                reconnects: int = 0) -> Invariant:
    """The watcher saw every acknowledged revision of each object, in order, ending at the
    final state. After a 410 Expired (counted in `expired`) the watcher relists, which
    skips revisions by design: then only a revision after the last one it saw is a gap."""
    bad: list[str] = []
    events = 0
    for name in sorted(set(logs) | set(final)):
        record = records.get(name, WatchRecord())
        events += len(record.seen)
        seqs = [s for s, _ in record.seen]
        rvs = [rv for _, rv in record.seen]
        for (a_seq, a_rv), (b_seq, b_rv) in zip(record.seen, record.seen[1:]):
            if b_rv <= a_rv or b_seq <= a_seq:
                bad.append(f"{name}: out of order: seq={a_seq}@rv{a_rv} then "
                           f"seq={b_seq}@rv{b_rv}")
                break
        log = logs.get(name, WriteLog())
        missing = sorted(set(log.acked) - set(seqs))
        if expired:
            # After a 410 Expired the watcher relists, as client-go does: the
            # revisions between its last event and the list are gone by design.
            # Only what it never caught up with is a gap.
            missing = [s for s in missing if s > max(seqs, default=0)]
        if missing:
            bad.append(f"{name}: never saw acknowledged seq {missing[:5]}"
                       f"{' ...' if len(missing) > 5 else ''} (saw {len(seqs)} revisions)")
        end = final.get(name)
        if end is not None and (not seqs or seqs[-1] != end):
            bad.append(f"{name}: last seen seq={seqs[-1] if seqs else None}, final seq={end}")
        if rvs and len(set(rvs)) != len(rvs):
            bad.append(f"{name}: a revision seen twice")
    return _verdict(
        "watch saw every revision in order", bad,
        f"{events} events over {len(final)} objects, no gap ({reconnects} re-watches, "
        f"{expired} 410 Expired)",
        f"{len(bad)} objects with a gap or disorder ({reconnects} re-watches, "
        f"{expired} 410 Expired)")


@dataclasses.dataclass(frozen=True)
class WorkloadStatus:
    kind: str
    name: str
    converged: bool
    detail: str            # e.g. "3/3 updated, 3 available, generation 4 observed"


def check_converged(statuses: Iterable[WorkloadStatus], settle_s: float,
                    converged_after_s: float | None) -> Invariant:
    statuses = list(statuses)
    bad = [f"{s.kind}/{s.name}: {s.detail}" for s in statuses if not s.converged]
    took = "" if converged_after_s is None else f" in {converged_after_s:.1f}s"
    return _verdict(f"workloads converged within {settle_s:g}s", bad,
                    f"{len(statuses)} workloads converged{took}",
                    f"{len(bad)} of {len(statuses)} not converged after {settle_s:g}s")


@dataclasses.dataclass(frozen=True)
class NodeCapacity:
    name: str
    cpu_m: int
    memory_b: int


@dataclasses.dataclass(frozen=True)
class PodRequest:
    namespace: str
    name: str
    node: str
    cpu_m: int
    memory_b: int


def check_overcommit(nodes: Iterable[NodeCapacity], pods: Iterable[PodRequest]) -> Invariant:
    """No node holds pods (not yet terminated) whose requests exceed its allocatable."""
    nodes = {n.name: n for n in nodes}
    used: dict[str, list[int]] = {name: [0, 0, 0] for name in nodes}
    for pod in pods:
        if pod.node in used:
            used[pod.node][0] += pod.cpu_m
            used[pod.node][1] += pod.memory_b
            used[pod.node][2] += 1
    bad = []
    for name, (cpu_m, memory_b, count) in sorted(used.items()):
        node = nodes[name]
        if cpu_m > node.cpu_m or memory_b > node.memory_b:
            bad.append(f"{name}: {count} pods request cpu {cpu_m}m/{node.cpu_m}m, "
                       f"memory {memory_b}/{node.memory_b} bytes")
    return _verdict("no node overcommitted by requests", bad,
                    f"{len(nodes)} nodes within allocatable",
                    f"{len(bad)} nodes overcommitted")


@dataclasses.dataclass(frozen=True)
class LiveContainer:
    """A container process alive on a node, from the runtime's record."""

    node: str
    pod_uid: str
    pod: str               # namespace/name
    container: str
    pid: int


def check_pod_processes(live: Iterable[LiveContainer], pod_uids: Iterable[str]) -> Invariant:
    """Every live container process has a pod object, and no container runs twice."""
    live = list(live)
    uids = set(pod_uids)
    bad = [f"{c.node}: pid {c.pid} of {c.pod} container {c.container!r}: no pod with uid "
           f"{c.pod_uid}" for c in live if c.pod_uid not in uids]
    by_container: dict[tuple[str, str], list[LiveContainer]] = {}
    for c in live:
        by_container.setdefault((c.pod_uid, c.container), []).append(c)
    for (_uid, container), copies in sorted(by_container.items()):
        if len(copies) > 1:
            where = ", ".join(f"{c.node} pid {c.pid}" for c in copies)
            bad.append(f"{copies[0].pod} container {container!r} runs {len(copies)} times: "
                       f"{where}")
    return _verdict("no orphan pod process, no container running twice", bad,
                    f"{len(live)} container processes, each of a pod, each once",
                    f"{len(bad)} orphan or duplicate containers")


@dataclasses.dataclass(frozen=True)
class MemberStatus:
    name: str
    revision: int | None = None
    hash: int | None = None       # HashKV at a common revision (None: not read)
    error: str = ""


def check_etcd_agree(members: Iterable[MemberStatus]) -> Invariant:
    members = list(members)
    bad = [f"{m.name}: {m.error}" for m in members if m.error]
    answered = [m for m in members if not m.error]
    # Revisions are read one member after another while leases keep writing:
    # they may differ on a healthy cluster. The hash at a common revision may not.
    hashes = [m for m in answered if m.hash is not None]
    if len({m.hash for m in hashes}) > 1:
        bad.append("hashes differ: " + ", ".join(f"{m.name}={m.hash:#x}" for m in hashes))
    if not members:
        bad.append("no etcd member answered")
    summary = (f"{len(members)} members, revision {answered[0].revision}"
               + (f", hash {hashes[0].hash:#x}" if hashes else "")) if answered else ""
    if len(answered) == 1:
        summary += " (one member: nothing to compare)"
    return _verdict("every etcd member agrees", bad, summary, f"{len(bad)} disagreements")


def check_no_process_left(left: Sequence[str]) -> Invariant:
    return _verdict("no process left after down", list(left), "no process of the home left",
                    f"{len(left)} processes left")


def check_faults(outcomes: Sequence[tuple[str, str, bool, str]], planned: int) -> Invariant:
    """Every planned fault was struck: (description, skipped reason, fired, error)
    per timeline entry. A run whose faults failed tested nothing."""
    bad = [f"{what}: {error}" for what, skipped, fired, error in outcomes
           if not skipped and error]
    bad += [f"{what}: not fired" for what, skipped, fired, error in outcomes
            if not skipped and not fired and not error]
    struck = sum(1 for _, skipped, fired, error in outcomes if fired and not error)
    if planned and not struck:
        bad.append("no fault was struck")
    return _verdict("every planned fault struck", bad, f"{struck} faults struck",
                    f"{len(bad)} faults not struck")
