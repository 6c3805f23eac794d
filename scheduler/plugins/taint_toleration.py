"""TaintToleration: a pod must tolerate a node's NoSchedule and NoExecute taints;
among feasible nodes, fewer untolerated PreferNoSchedule taints score higher.

Toleration matching is Kubernetes' ToleratesTaint: an empty effect matches
every effect; an empty key (operator Exists) matches every key; operator Exists
matches any value, Equal (or empty) only the same value.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from scheduler import podutil
from scheduler.framework import (NODE_ADD, NODE_TAINT_CHANGE, SKIP, SUCCESS, CycleState,
                                 NodeInfo, Snapshot, Status, default_normalize)

NAME = "TaintToleration"
EVENTS = frozenset({NODE_ADD, NODE_TAINT_CHANGE})
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
FILTER_EFFECTS = (NO_SCHEDULE, NO_EXECUTE)


def tolerates(toleration: Any, key: str, value: str, effect: str) -> bool:
    """Whether one toleration tolerates the taint (key, value, effect)."""
    if toleration.effect and toleration.effect != effect:
        return False
    if toleration.key and toleration.key != key:
        return False
    operator = toleration.operator
    if operator in ("", "Equal"):
        return toleration.value == value
    return operator == "Exists"


def tolerates_taint(tolerations: Iterable[Any], taint: Any) -> bool:
    return any(tolerates(t, taint.key, taint.value, taint.effect) for t in tolerations)


def first_untolerated(pod: Any, node_info: NodeInfo,
                      effects: Iterable[str] = FILTER_EFFECTS) -> Any | None:
    """The first taint with one of `effects` that the pod does not tolerate."""
    if not node_info.taints:
        return None
    effects = tuple(effects)
    tolerations = tuple(podutil.tolerations(pod))
    for taint in node_info.taints:
        if taint.effect in effects and not tolerates_taint(tolerations, taint):
            return taint
    return None


def reason(taint: Any) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def fits(pod: Any, node_info: NodeInfo) -> bool:
    return first_untolerated(pod, node_info) is None


def intolerable_prefer_no_schedule(pod: Any, node_info: NodeInfo) -> int:
    """How many PreferNoSchedule taints the pod does not tolerate (only tolerations
    with an empty or PreferNoSchedule effect count, as in Kubernetes)."""
    if not node_info.taints:
        return 0
    tolerations = [t for t in podutil.tolerations(pod)
                   if t.effect in ("", PREFER_NO_SCHEDULE)]
    return sum(1 for taint in node_info.taints
               if taint.effect == PREFER_NO_SCHEDULE and not tolerates_taint(tolerations, taint))


class TaintToleration:
    NAME = NAME
    EVENTS = EVENTS

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
               state: CycleState | None = None) -> Status:
        taint = first_untolerated(pod, node_info)
        return SUCCESS if taint is None else Status.unresolvable(reason(taint))

    def pre_score(self, pod: Any, snapshot: Snapshot, nodes: Any,
                  state: CycleState) -> Status | None:
        for node_info in nodes:
            if any(t.effect == PREFER_NO_SCHEDULE for t in node_info.taints):
                return None
        return SKIP  # no PreferNoSchedule taint anywhere: every node scores the same

    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
              state: CycleState | None = None) -> int:
        return intolerable_prefer_no_schedule(pod, node_info)

    def normalize(self, pod: Any, scores: Mapping[str, int], snapshot: Snapshot | None = None,
                  state: CycleState | None = None) -> dict[str, int]:
        return default_normalize(scores, reverse=True)


def new(args: Mapping[str, Any]) -> TaintToleration:
    return TaintToleration()
