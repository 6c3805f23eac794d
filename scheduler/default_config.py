"""kube-scheduler's default profile, limited to the plugins kubemu has.

Filter order and score weights are the upstream defaults: TaintToleration 3,
NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit
(LeastAllocated) 1, NodeResourcesBalancedAllocation 1. Volume, image-locality
and DRA plugins have no counterpart here. `default_framework()` builds it.
"""
from __future__ import annotations

import copy
from typing import Any

from scheduler.framework import DEFAULT_SCHEDULER_NAME, Framework
from scheduler.plugins import default_registry

_DEFAULT_PROFILE: dict[str, Any] = {
    "schedulerName": DEFAULT_SCHEDULER_NAME,
    # 100 = consider every node (kube's own default is adaptive, 0).
    "percentageOfNodesToScore": 100,
    "plugins": {
        "filter": {"enabled": [
            {"name": "NodeUnschedulable"},
            {"name": "NodeName"},
            {"name": "TaintToleration"},
            {"name": "NodeAffinity"},
            {"name": "NodePorts"},
            {"name": "NodeResourcesFit"},
            {"name": "PodTopologySpread"},
            {"name": "InterPodAffinity"},
        ]},
        "score": {"enabled": [
            {"name": "TaintToleration", "weight": 3},
            {"name": "NodeAffinity", "weight": 2},
            {"name": "NodeResourcesFit", "weight": 1},
            {"name": "PodTopologySpread", "weight": 2},
            {"name": "InterPodAffinity", "weight": 2},
            {"name": "NodeResourcesBalancedAllocation", "weight": 1},
        ]},
    },
    "pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {
            "type": "LeastAllocated",
            "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]}}},
        {"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 1}},
    ],
}


def default_config() -> dict[str, Any]:
    """A fresh copy of the default profile (safe to modify)."""
    return copy.deepcopy(_DEFAULT_PROFILE)


def default_framework(**overrides: Any) -> Framework:
    """The default profile's Framework; `overrides` replace top-level profile fields
    (e.g. percentageOfNodesToScore=50)."""
    config = default_config()
    config.update(overrides)
    return Framework.from_config(config, default_registry())
