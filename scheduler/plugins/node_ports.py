"""NodePorts: a pod's hostPorts must be free on the node.

Two claims conflict when protocol and port are equal and the host IPs overlap:
the same IP, or either one 0.0.0.0 (all addresses). An empty hostIP means
0.0.0.0 and an empty protocol TCP.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from scheduler.framework import (ASSIGNED_POD_DELETE, NODE_ADD, SKIP, SUCCESS, CycleState,
                                 NodeInfo, Snapshot, Status, pod_info_of)
from scheduler.podutil import BIND_ALL_HOST_IP, HostPort

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
EVENTS = frozenset({NODE_ADD, ASSIGNED_POD_DELETE})


def conflicts(used: Iterable[HostPort], want: HostPort) -> bool:
    ip, protocol, port = want
    for used_ip, used_protocol, used_port in used:
        if used_port != port or used_protocol != protocol:
            continue
        if ip == BIND_ALL_HOST_IP or used_ip == BIND_ALL_HOST_IP or used_ip == ip:
            return True
    return False


def fits_ports(wanted: Iterable[HostPort], node_info: NodeInfo) -> bool:
    used = list(node_info.used_ports)
    return not any(conflicts(used, want) for want in wanted)


def fits(pod: Any, node_info: NodeInfo, state: CycleState | None = None) -> bool:
    wanted = pod_info_of(pod, state).host_ports
    return not wanted or fits_ports(wanted, node_info)


class NodePorts:
    NAME = NAME
    EVENTS = EVENTS

    def pre_filter(self, pod: Any, snapshot: Snapshot, state: CycleState) -> Status | None:
        return None if pod_info_of(pod, state).host_ports else SKIP

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
               state: CycleState | None = None) -> Status:
        return SUCCESS if fits(pod, node_info, state) else Status.unschedulable(REASON)


def new(args: Mapping[str, Any]) -> NodePorts:
    return NodePorts()
