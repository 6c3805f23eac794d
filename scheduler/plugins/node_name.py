"""NodeName: a pod that names a node (spec.nodeName) fits only that node."""
from __future__ import annotations

from typing import Any, Mapping

from scheduler.framework import NODE_ADD, SKIP, SUCCESS, CycleState, NodeInfo, Snapshot, Status

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"
EVENTS = frozenset({NODE_ADD})


def fits(pod: Any, node_info: NodeInfo) -> bool:
    return not pod.spec.node_name or pod.spec.node_name == node_info.name


class NodeName:
    NAME = NAME
    EVENTS = EVENTS

    def pre_filter(self, pod: Any, snapshot: Snapshot, state: CycleState) -> Status | None:
        return None if pod.spec.node_name else SKIP  # no node named: every node passes

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
               state: CycleState | None = None) -> Status:
        return SUCCESS if fits(pod, node_info) else Status.unresolvable(REASON)


def new(args: Mapping[str, Any]) -> NodeName:
    return NodeName()
