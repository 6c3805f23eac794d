"""NodeResourcesLeastAllocated: prefer nodes with more room left.

Per resource: (allocatable - requested) * 100 / allocatable, where requested
counts the pods already there plus the incoming pod, with kube's non-zero
defaults for containers that request no cpu/memory (100m, 200Mi) so that many
request-less pods still spread. Averaged over the resources by weight (cpu 1,
memory 1). This is NodeResourcesFit's default scoring strategy; the module is
also registered on its own under its pre-1.23 name.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from scheduler import podutil
from scheduler.framework import (ASSIGNED_POD_DELETE, MAX_NODE_SCORE, NODE_ADD,
                                 NODE_ALLOCATABLE_CHANGE, CycleState, NodeInfo, PodInfo,
                                 Snapshot, pod_info_of)

NAME = "NodeResourcesLeastAllocated"
EVENTS = frozenset({NODE_ADD, NODE_ALLOCATABLE_CHANGE, ASSIGNED_POD_DELETE})
DEFAULT_RESOURCES: tuple[tuple[str, int], ...] = ((podutil.CPU, 1), (podutil.MEMORY, 1))


def allocatable_and_requested(pod_info: PodInfo, node_info: NodeInfo, resource: str,
                              use_requested: bool) -> tuple[int, int]:
    """(allocatable, requested incl. the incoming pod) of one resource on a node.

    use_requested=False takes the non-zero figures for cpu and memory. An
    extended resource the pod does not request reads (0, 0): not scored.
    """
    if resource in (podutil.CPU, podutil.MEMORY) and not use_requested:
        pod_request = (pod_info.non_zero_cpu if resource == podutil.CPU
                       else pod_info.non_zero_memory)
        on_node = node_info.non_zero_requested[resource]
    else:
        pod_request = pod_info.requests.get(resource, 0)
        on_node = node_info.requested.get(resource, 0)
        if pod_request == 0 and podutil.is_scalar_resource_name(resource):
            return 0, 0
    return node_info.allocatable.get(resource, 0), on_node + pod_request


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


def score(pod_info: PodInfo, node_info: NodeInfo,
          resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES,
          scorer=least_requested_score) -> int:
    """Weighted average of the per-resource scores, 0..100 (integer maths, as kube)."""
    total = weight_sum = 0
    node_allocatable = node_info.allocatable
    for resource, weight in resources:
        # cpu and memory inline (every node, every cycle); the rest the long way.
        if resource == podutil.CPU:
            allocatable = node_allocatable.get(resource, 0)
            requested = node_info.non_zero_requested[resource] + pod_info.non_zero_cpu
        elif resource == podutil.MEMORY:
            allocatable = node_allocatable.get(resource, 0)
            requested = node_info.non_zero_requested[resource] + pod_info.non_zero_memory
        else:
            allocatable, requested = allocatable_and_requested(pod_info, node_info, resource,
                                                               use_requested=False)
        if allocatable == 0:
            continue
        total += scorer(requested, allocatable) * weight
        weight_sum += weight
    return total // weight_sum if weight_sum else 0


def parse_resources(args: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    entries = args.get("resources")
    if not entries:
        return DEFAULT_RESOURCES
    out = []
    for entry in entries:
        weight = int(entry.get("weight", 1))
        if not 1 <= weight <= 100:
            raise ValueError(f"resources[{entry.get('name')}].weight: Invalid value: {weight}: "
                             f"resource weight of {entry.get('name')} should be in range [1, 100]")
        out.append((str(entry["name"]), weight))
    return tuple(out)


class NodeResourcesLeastAllocated:
    NAME = NAME
    EVENTS = EVENTS

    def __init__(self, resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES):
        self.resources = tuple(resources)

    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
              state: CycleState | None = None) -> int:
        return score(pod_info_of(pod, state), node_info, self.resources)


def new(args: Mapping[str, Any]) -> NodeResourcesLeastAllocated:
    return NodeResourcesLeastAllocated(parse_resources(args))
