"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that
tolerate the node.kubernetes.io/unschedulable:NoSchedule taint."""
from __future__ import annotations

from typing import Any, Mapping

from scheduler import podutil
from scheduler.framework import (NODE_ADD, NODE_SPEC_UNSCHEDULABLE_CHANGE, NODE_TAINT_CHANGE,
                                 SUCCESS, CycleState, NodeInfo, Snapshot, Status)
from scheduler.plugins.taint_toleration import NO_SCHEDULE, tolerates

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
EVENTS = frozenset({NODE_ADD, NODE_SPEC_UNSCHEDULABLE_CHANGE, NODE_TAINT_CHANGE})
TAINT_KEY = "node.kubernetes.io/unschedulable"


def fits(pod: Any, node_info: NodeInfo) -> bool:
    if not node_info.unschedulable:
        return True
    return any(tolerates(t, TAINT_KEY, "", NO_SCHEDULE) for t in podutil.tolerations(pod))


class NodeUnschedulable:
    NAME = NAME
    EVENTS = EVENTS

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
               state: CycleState | None = None) -> Status:
        return SUCCESS if fits(pod, node_info) else Status.unresolvable(REASON)


def new(args: Mapping[str, Any]) -> NodeUnschedulable:
    return NodeUnschedulable()
