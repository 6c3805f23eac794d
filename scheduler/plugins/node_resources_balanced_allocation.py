"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be
used in the same proportion.

fraction_r = requested_r / allocatable_r (capped at 1, requested including the
incoming pod, actual requests, no non-zero defaults); score =
(1 - std-dev of the fractions) * 100. For two resources the std-dev is
|f_cpu - f_mem| / 2, as kube-scheduler computes it.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from scheduler.framework import (ASSIGNED_POD_DELETE, MAX_NODE_SCORE, NODE_ADD,
                                 NODE_ALLOCATABLE_CHANGE, CycleState, NodeInfo, PodInfo,
                                 Snapshot, pod_info_of)
from scheduler.plugins.node_resources_least_allocated import (DEFAULT_RESOURCES,
                                                              allocatable_and_requested,
                                                              parse_resources)

NAME = "NodeResourcesBalancedAllocation"
_NATIVE = frozenset({"cpu", "memory"})
EVENTS = frozenset({NODE_ADD, NODE_ALLOCATABLE_CHANGE, ASSIGNED_POD_DELETE})


def fractions(pod_info: PodInfo, node_info: NodeInfo,
              resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES) -> list[float]:
    out = []
    node_allocatable, node_requested = node_info.allocatable, node_info.requested
    pod_requests = pod_info.requests
    for resource, _ in resources:
        if resource in _NATIVE:  # inline: every node, every cycle
            allocatable = node_allocatable.get(resource, 0)
            requested = node_requested.get(resource, 0) + pod_requests.get(resource, 0)
        else:
            allocatable, requested = allocatable_and_requested(pod_info, node_info, resource,
                                                               use_requested=True)
        if allocatable == 0:
            continue
        fraction = requested / allocatable
        out.append(fraction if fraction < 1.0 else 1.0)
    return out


def balanced_score(values: Sequence[float]) -> int:
    if len(values) == 2:
        std = abs(values[0] - values[1]) / 2
    elif len(values) > 2:
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


def score(pod_info: PodInfo, node_info: NodeInfo,
          resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES) -> int:
    return balanced_score(fractions(pod_info, node_info, resources))


class NodeResourcesBalancedAllocation:
    NAME = NAME
    EVENTS = EVENTS

    def __init__(self, resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES):
        self.resources = tuple(resources)

    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
              state: CycleState | None = None) -> int:
        return score(pod_info_of(pod, state), node_info, self.resources)


def new(args: Mapping[str, Any]) -> NodeResourcesBalancedAllocation:
    return NodeResourcesBalancedAllocation(parse_resources(args))
