"""The in-tree plugins and their registry (plugin name -> constructor(args)).

`default_registry()` returns a fresh dict each call: a caller may add its own
plugins without touching anyone else's registry.
"""
from __future__ import annotations

from scheduler.framework import PluginFactory
from scheduler.plugins import (inter_pod_affinity, node_affinity, node_name, node_ports,
                               node_resources_balanced_allocation, node_resources_fit,
                               node_resources_least_allocated, node_unschedulable,
                               pod_topology_spread, taint_toleration)

MODULES = (node_unschedulable, node_name, taint_toleration, node_affinity, node_ports,
           node_resources_fit, pod_topology_spread, inter_pod_affinity,
           node_resources_least_allocated, node_resources_balanced_allocation)


def default_registry() -> dict[str, PluginFactory]:
    return {module.NAME: module.new for module in MODULES}
