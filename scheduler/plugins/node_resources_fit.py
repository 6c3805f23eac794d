"""NodeResourcesFit: the pod's requests must fit in what the node has left.

Left = status.allocatable minus the requests of the pods bound or assumed on
the node. The pod's request per resource is max(sum of its containers, largest
init container) plus overhead (podutil.pod_requests). Reasons, one per short
resource: `Too many pods` (allocatable "pods" counts pods), `Insufficient cpu`,
`Insufficient memory`, `Insufficient ephemeral-storage`, `Insufficient <name>`
for extended resources. Scoring follows the configured strategy
(scoringStrategy.type LeastAllocated, the default, or MostAllocated).
"""
from __future__ import annotations

from typing import Any, Mapping

from scheduler import podutil
from scheduler.framework import (ASSIGNED_POD_DELETE, NODE_ADD, NODE_ALLOCATABLE_CHANGE,
                                 SUCCESS, CycleState, NodeInfo, Snapshot, Status, pod_info_of)
from scheduler.plugins import node_resources_least_allocated as least

NAME = "NodeResourcesFit"
EVENTS = frozenset({NODE_ADD, NODE_ALLOCATABLE_CHANGE, ASSIGNED_POD_DELETE})
TOO_MANY_PODS = "Too many pods"
LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
_ORDERED = (podutil.CPU, podutil.MEMORY, podutil.EPHEMERAL_STORAGE)
_CHECKED_KEY = "NodeResourcesFit/checked"


def checked(requests: Mapping[str, int],
            ignored: frozenset[str] = frozenset()) -> tuple[tuple[str, int], ...]:
    """The (resource, amount) pairs a node is checked for, in the order reasons appear:
    cpu, memory, ephemeral-storage, then extended resources by name; 0 is not checked."""
    names = [r for r in _ORDERED if requests.get(r, 0) > 0]
    names += sorted(r for r, v in requests.items()
                    if v > 0 and r not in _ORDERED and podutil.is_scalar_resource_name(r)
                    and r not in ignored)
    return tuple((r, requests[r]) for r in names)


def insufficient_for(wanted: tuple[tuple[str, int], ...], node_info: NodeInfo) -> list[str]:
    """The reasons `wanted` (from `checked`) does not fit (empty when it does)."""
    reasons = []
    if len(node_info.pods) + 1 > node_info.allocatable.get(podutil.PODS, 0):
        reasons.append(TOO_MANY_PODS)
    allocatable, requested = node_info.allocatable, node_info.requested
    for resource, amount in wanted:
        if amount > allocatable.get(resource, 0) - requested.get(resource, 0):
            reasons.append(f"Insufficient {resource}")
    return reasons


def insufficient(requests: Mapping[str, int], node_info: NodeInfo,
                 ignored: frozenset[str] = frozenset()) -> list[str]:
    """The reasons the requests do not fit (empty when they do)."""
    return insufficient_for(checked(requests, ignored), node_info)


def reasons(pod: Any, node_info: NodeInfo, state: CycleState | None = None) -> list[str]:
    return insufficient(pod_info_of(pod, state).requests, node_info)


def fits(pod: Any, node_info: NodeInfo, state: CycleState | None = None) -> bool:
    return not reasons(pod, node_info, state)


class NodeResourcesFit:
    NAME = NAME
    EVENTS = EVENTS

    def __init__(self, strategy: str = LEAST_ALLOCATED,
                 resources=least.DEFAULT_RESOURCES, ignored: frozenset[str] = frozenset()):
        if strategy not in (LEAST_ALLOCATED, MOST_ALLOCATED):
            raise ValueError(f'scoringStrategy.type: Unsupported value: "{strategy}": '
                             f'supported values: "{LEAST_ALLOCATED}", "{MOST_ALLOCATED}"')
        self.scorer = (least.least_requested_score if strategy == LEAST_ALLOCATED
                       else least.most_requested_score)
        self.resources = tuple(resources)
        self.ignored = frozenset(ignored)

    def pre_filter(self, pod: Any, snapshot: Snapshot, state: CycleState) -> Status | None:
        # Per pod, not per node: which resources to check, in reason order.
        state.write(_CHECKED_KEY, checked(pod_info_of(pod, state).requests, self.ignored))
        return None

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
               state: CycleState | None = None) -> Status:
        wanted = state.read(_CHECKED_KEY) if state is not None else None
        if wanted is None:
            wanted = checked(pod_info_of(pod, state).requests, self.ignored)
        found = insufficient_for(wanted, node_info)
        return SUCCESS if not found else Status.unschedulable(*found)

    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
              state: CycleState | None = None) -> int:
        return least.score(pod_info_of(pod, state), node_info, self.resources, self.scorer)


def new(args: Mapping[str, Any]) -> NodeResourcesFit:
    strategy = args.get("scoringStrategy") or {}
    return NodeResourcesFit(strategy.get("type") or LEAST_ALLOCATED,
                            least.parse_resources(strategy),
                            frozenset(args.get("ignoredResources") or ()))
