"""Preemption (kube's DefaultPreemption PostFilter), as pure victim selection.

For a pod that fits nowhere:
1. Eligibility: preemptionPolicy Never cannot preempt; a pod whose nominated
   node still has lower-priority pods terminating by preemption waits for them.
2. Candidate nodes: those rejected as Unschedulable (UnschedulableAndUnresolvable
   ones: "Preemption is not helpful for scheduling"). On each, remove every pod
   of lower priority; no such pod -> "No preemption victims found for incoming
   pod"; the pod still does not fit -> the filters' reasons. Otherwise put the
   pods back most important first (higher priority, then earlier start) while
   the pod still fits; those that cannot go back are the victims — the
   least important ones, a minimal set in that order.
3. Pick the node (pickOneNodeForPreemption): fewest PDB violations (PDBs are
   not modelled: always 0), lowest highest-victim priority, smallest sum of
   victim priorities (each offset by 2**31, so fewer victims weigh less), fewest
   victims, latest start among the highest-priority victims, then the first
   by name.
Filters are re-run through the Framework on a copy of the node and snapshot;
nothing shared is mutated. Nominated pods (room kept for earlier preemptors)
are not modelled. The message is the PostFilter message Kubernetes appends to
FailedScheduling ("preemption: 0/3 nodes are available: ..."), "" on success.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from kubemu.api.fields import field_value

from scheduler import podutil
from scheduler.framework import (Code, Diagnosis, Framework, NodeInfo, PodInfo, Snapshot,
                                 Status)

NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
PREEMPT_NEVER = "Never"
MESSAGE_PREFIX = "preemption: "
_PRIORITY_OFFSET = 2**31  # math.MaxInt32 + 1: sums stay positive for negative priorities


@dataclasses.dataclass(frozen=True)
class Candidate:
    node_name: str
    victims: tuple[Any, ...]  # pods, most important first
    num_pdb_violations: int = 0


@dataclasses.dataclass(frozen=True)
class PreemptionResult:
    node_name: str | None  # the nominated node; None when preemption cannot help
    victims: tuple[Any, ...] = ()
    message: str = ""  # PostFilter message for FailedScheduling; "" when a node was found
    candidates: tuple[Candidate, ...] = ()


def eligible(pod: Any, snapshot: Snapshot, diagnosis: Diagnosis) -> tuple[bool, str]:
    """PodEligibleToPreemptOthers: (eligible, why not)."""
    if field_value(pod.spec, "preemption_policy", "") == PREEMPT_NEVER:
        return False, NOT_ELIGIBLE_NEVER
    nominated = pod.status.nominated_node_name
    if nominated:
        status = diagnosis.node_to_status.get(nominated)
        if status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            return True, ""  # the nominated node is hopeless: look elsewhere
        node_info = snapshot.get(nominated)
        if node_info is not None:
            priority = podutil.priority(pod)
            for info in node_info.pods:
                if info.priority < priority and _terminating_by_preemption(info.pod):
                    return False, NOT_ELIGIBLE_TERMINATING
    return True, ""


def _terminating_by_preemption(pod: Any) -> bool:
    if not podutil.is_terminating(pod):
        return False
    for condition in pod.status.conditions:
        if condition.type == "DisruptionTarget":
            return condition.status == "True" and condition.reason == "PreemptionByScheduler"
    return False


def select_victims_on_node(framework: Framework, pod: Any, node_info: NodeInfo,
                           snapshot: Snapshot) -> tuple[list[Any] | None, Status]:
    """The minimal victims on one node (most important first), or None and why not."""
    priority = podutil.priority(pod)
    working = node_info.clone()
    potential: list[PodInfo] = [p for p in working.pods if p.priority < priority]
    if not potential:
        return None, Status.unresolvable(NO_VICTIMS)
    for info in potential:
        working.remove_pod(info.key)
    status = framework.check_node(pod, working, snapshot.with_node_info(working))
    if not status.is_success():
        return None, status
    potential.sort(key=lambda p: podutil.importance_key(p.pod))
    victims = []
    for info in potential:
        working.add_pod(info)
        # A fresh Snapshot each time: its lazy indexes must see the change.
        if not framework.check_node(pod, working, snapshot.with_node_info(working)).is_success():
            working.remove_pod(info.key)
            victims.append(info.pod)
    if not victims:
        # It fits with nothing removed: not a preemption case (the snapshot moved on).
        return None, Status.error(f"expected at least one victim pod on node {node_info.name!r}")
    return victims, Status()


def _earliest_start_of_highest(victims: Sequence[Any]) -> float:
    top = max(podutil.priority(v) for v in victims)
    return min(podutil.start_time_s(v) for v in victims if podutil.priority(v) == top)


def pick_one_node(candidates: Sequence[Candidate]) -> Candidate | None:
    """pickOneNodeForPreemption over candidates in node-name order."""
    def rank(c: Candidate) -> tuple[int, int, int, int, float]:
        priorities = [podutil.priority(v) for v in c.victims]
        return (c.num_pdb_violations,
                max(priorities),
                sum(p + _PRIORITY_OFFSET for p in priorities),
                len(c.victims),
                -_earliest_start_of_highest(c.victims))  # later start wins
    return min(candidates, key=rank, default=None)  # min keeps the first of equals


def preempt(framework: Framework, pod: Any, snapshot: Snapshot,
            diagnosis: Diagnosis) -> PreemptionResult:
    """Find a node where evicting lower-priority pods lets `pod` fit."""
    ok, why = eligible(pod, snapshot, diagnosis)
    if not ok:
        return PreemptionResult(None, message=MESSAGE_PREFIX + why)
    statuses: dict[str, Status] = {}
    candidates: list[Candidate] = []
    for node_info in snapshot:
        status = diagnosis.node_to_status.get(node_info.name)
        if status is None or status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            # No status: the node came after the failed cycle; leave it to the next one.
            statuses[node_info.name] = Status.unresolvable(NOT_HELPFUL)
            continue
        victims, status = select_victims_on_node(framework, pod, node_info, snapshot)
        if victims:
            candidates.append(Candidate(node_info.name, tuple(victims)))
        else:
            statuses[node_info.name] = status
    if not candidates:
        fit_error = Diagnosis(len(snapshot), statuses)
        return PreemptionResult(None, message=MESSAGE_PREFIX + fit_error.message())
    best = pick_one_node(candidates)
    assert best is not None  # candidates is not empty
    return PreemptionResult(best.node_name, best.victims, "", tuple(candidates))
