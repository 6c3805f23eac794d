"""Every controller this process can run: one line each.

`--controllers` takes kube-controller-manager's syntax: a comma-separated list
where `*` enables every controller that is on by default, `foo` enables the
controller named foo and `-foo` disables it (disabling wins). Names are
kube-controller-manager's ("replicaset-controller"), and the older short names
("replicaset") are accepted too.
"""
from __future__ import annotations

from typing import Iterable

from controller_manager.base import Controller
from controller_manager.cronjob import CronJobController
from controller_manager.daemonset import DaemonSetController
from controller_manager.deployment import DeploymentController
from controller_manager.disruption import DisruptionController
from controller_manager.endpoints import EndpointsController
from controller_manager.endpointslice import EndpointSliceController
from controller_manager.garbagecollector import GarbageCollector
from controller_manager.hpa import HorizontalPodAutoscalerController
from controller_manager.job import JobController
from controller_manager.namespace import NamespaceController
from controller_manager.node_lifecycle import NodeLifecycleController
from controller_manager.podgc import PodGCController
from controller_manager.pv_binder import PersistentVolumeBinderController
from controller_manager.replicaset import ReplicaSetController
from controller_manager.resource_quota import ResourceQuotaController
from controller_manager.service_lb import ServiceLBController
from controller_manager.statefulset import StatefulSetController
from controller_manager.taint_eviction import TaintEvictionController
from controller_manager.ttl_after_finished import TTLAfterFinishedController

CONTROLLERS: tuple[type[Controller], ...] = (
    ReplicaSetController,
    DeploymentController,
    StatefulSetController,
    DaemonSetController,
    JobController,
    CronJobController,
    TTLAfterFinishedController,
    GarbageCollector,
    PersistentVolumeBinderController,
    EndpointsController,
    EndpointSliceController,
    ServiceLBController,
    ResourceQuotaController,
    DisruptionController,
    HorizontalPodAutoscalerController,
    NamespaceController,
    NodeLifecycleController,
    TaintEvictionController,
    PodGCController,
)


class UnknownController(ValueError):
    pass


def _by_name(controllers: Iterable[type[Controller]]) -> dict[str, type[Controller]]:
    out: dict[str, type[Controller]] = {}
    for cls in controllers:
        for name in (cls.name, *cls.aliases):
            out[name] = cls
    return out


def select(spec: Iterable[str],
           controllers: tuple[type[Controller], ...] = CONTROLLERS) -> list[type[Controller]]:
    """The controllers `spec` (the --controllers items) enables, in registry order."""
    by_name = _by_name(controllers)
    enabled: set[type[Controller]] = set()
    disabled: set[type[Controller]] = set()
    for raw in spec:
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            enabled.update(c for c in controllers if c.on_by_default)
            continue
        negate = item.startswith("-")
        name = item[1:] if negate else item
        cls = by_name.get(name)
        if cls is None:
            known = ", ".join(sorted(c.name for c in controllers))
            raise UnknownController(f'"{name}" is not in the list of known controllers: {known}')
        (disabled if negate else enabled).add(cls)
    return [c for c in controllers if c in enabled and c not in disabled]
