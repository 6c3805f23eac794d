"""The kinds registry: every API kind kubemu serves, in one table.

A `Kind` says what the API needs to know of a kind: its group, version,
plural resource name, protobuf message, scope (namespaced or not), short
names, and whether it has a status subresource and a spec (whose changes bump
metadata.generation). Adding a kind is a message in proto/ plus one
`Kind(...)` entry in `KINDS`; the rules for it live elsewhere, looked up by
kind, and are needed only where it has any: validation in
`kubemu.api.validation.VALIDATORS`, defaults in `kubemu.api.defaults.DEFAULTERS`,
the apiserver's write rules in `apiserver.strategy` (a strategy per kind).
Names resolve the way kubectl resolves them: plural, singular, short name or
kind, case-insensitively, optionally qualified with the group
(`deployments.apps`).
"""
from __future__ import annotations

import dataclasses

from google.protobuf import any_pb2
from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.v1 import (apps_pb2, autoscaling_pb2, batch_pb2, coordination_pb2, core_pb2,
                           discovery_pb2, metrics_pb2, networking_pb2, policy_pb2,
                           scheduling_pb2, storage_pb2)

TYPE_URL_PREFIX = "type.googleapis.com/"


@dataclasses.dataclass(frozen=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    resource: str  # plural, unique across kinds
    message: type[Message]
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    # Whether the kind has a status subresource (status only via UpdateStatus).
    has_status: bool = True
    # Whether a change of spec bumps metadata.generation (kinds with a spec).
    has_spec: bool = True
    # False: not kept in etcd but computed by the apiserver on each read (the
    # metrics API); get and list only, every other verb is refused.
    stored: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def type_url(self) -> str:
        return TYPE_URL_PREFIX + self.message.DESCRIPTOR.full_name

    @property
    def qualified_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "", "v1", "namespaces", core_pb2.Namespace, namespaced=False,
         short_names=("ns",)),
    Kind("ConfigMap", "", "v1", "configmaps", core_pb2.ConfigMap, short_names=("cm",),
         has_status=False, has_spec=False),
    Kind("Secret", "", "v1", "secrets", core_pb2.Secret, has_status=False, has_spec=False),
    Kind("Pod", "", "v1", "pods", core_pb2.Pod, short_names=("po",)),
    Kind("Node", "", "v1", "nodes", core_pb2.Node, namespaced=False, short_names=("no",)),
    Kind("Event", "", "v1", "events", core_pb2.Event, short_names=("ev",),
         has_status=False, has_spec=False),
    Kind("Service", "", "v1", "services", core_pb2.Service, short_names=("svc",)),
    Kind("Endpoints", "", "v1", "endpoints", core_pb2.Endpoints, short_names=("ep",),
         has_status=False, has_spec=False),
    Kind("PersistentVolume", "", "v1", "persistentvolumes", core_pb2.PersistentVolume,
         namespaced=False, short_names=("pv",)),
    Kind("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims",
         core_pb2.PersistentVolumeClaim, short_names=("pvc",)),
    Kind("Deployment", "apps", "v1", "deployments", apps_pb2.Deployment,
         short_names=("deploy",)),
    Kind("ReplicaSet", "apps", "v1", "replicasets", apps_pb2.ReplicaSet, short_names=("rs",)),
    Kind("StatefulSet", "apps", "v1", "statefulsets", apps_pb2.StatefulSet,
         short_names=("sts",)),
    Kind("DaemonSet", "apps", "v1", "daemonsets", apps_pb2.DaemonSet, short_names=("ds",)),
    Kind("ControllerRevision", "apps", "v1", "controllerrevisions",
         apps_pb2.ControllerRevision, has_status=False, has_spec=False),
    Kind("Job", "batch", "v1", "jobs", batch_pb2.Job),
    Kind("CronJob", "batch", "v1", "cronjobs", batch_pb2.CronJob, short_names=("cj",)),
    Kind("Lease", "coordination.k8s.io", "v1", "leases", coordination_pb2.Lease,
         has_status=False),
    Kind("StorageClass", "storage.k8s.io", "v1", "storageclasses", storage_pb2.StorageClass,
         namespaced=False, short_names=("sc",), has_status=False, has_spec=False),
    Kind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices",
         discovery_pb2.EndpointSlice, has_status=False, has_spec=False),
    Kind("Ingress", "networking.k8s.io", "v1", "ingresses", networking_pb2.Ingress,
         short_names=("ing",)),
    Kind("IngressClass", "networking.k8s.io", "v1", "ingressclasses",
         networking_pb2.IngressClass, namespaced=False, has_status=False),
    Kind("ResourceQuota", "", "v1", "resourcequotas", core_pb2.ResourceQuota,
         short_names=("quota",)),
    Kind("LimitRange", "", "v1", "limitranges", core_pb2.LimitRange, short_names=("limits",),
         has_status=False),
    Kind("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets",
         policy_pb2.PodDisruptionBudget, short_names=("pdb",)),
    Kind("PriorityClass", "scheduling.k8s.io", "v1", "priorityclasses",
         scheduling_pb2.PriorityClass, namespaced=False, short_names=("pc",),
         has_status=False, has_spec=False),
    Kind("NodeMetrics", "metrics.k8s.io", "v1beta1", "nodemetrics", metrics_pb2.NodeMetrics,
         namespaced=False, has_status=False, has_spec=False, stored=False),
    Kind("PodMetrics", "metrics.k8s.io", "v1beta1", "podmetrics", metrics_pb2.PodMetrics,
         has_status=False, has_spec=False, stored=False),
    Kind("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers",
         autoscaling_pb2.HorizontalPodAutoscaler, short_names=("hpa",)),
)


class Registry:
    """Look-ups over a fixed set of kinds."""

    def __init__(self, kinds: tuple[Kind, ...]):
        self.kinds = kinds
        self._by_resource = {k.resource: k for k in kinds}
        self._by_type = {k.message.DESCRIPTOR.full_name: k for k in kinds}
        self._by_gvk = {(k.api_version, k.kind): k for k in kinds}
        self._names: dict[str, Kind] = {}
        for k in kinds:
            for alias in (k.resource, k.singular, k.kind.lower(), *k.short_names):
                self._names.setdefault(alias.lower(), k)
                if k.group:
                    self._names.setdefault(f"{alias.lower()}.{k.group}", k)
        assert len(self._by_resource) == len(kinds), "resource names must be unique"

    def by_resource(self, resource: str) -> Kind:
        kind = self._by_resource.get(resource)
        if kind is None:
            raise errors.NotFound(f'the server doesn\'t have a resource type "{resource}"')
        return kind

    def by_message(self, message: Message | type[Message]) -> Kind:
        kind = self._by_type.get(message.DESCRIPTOR.full_name)
        if kind is None:
            raise errors.BadRequest(f"no kind is registered for {message.DESCRIPTOR.full_name}")
        return kind

    def by_gvk(self, api_version: str, kind: str) -> Kind:
        found = self._by_gvk.get((api_version, kind))
        if found is None:
            raise errors.BadRequest(
                f'no matches for kind "{kind}" in version "{api_version}"')
        return found

    def resolve(self, name: str) -> Kind:
        """A kind from anything kubectl accepts as a resource type."""
        found = self._names.get(name.lower())
        if found is None:
            raise errors.NotFound(f'the server doesn\'t have a resource type "{name}"')
        return found

    # -- Any packing: objects cross the wire as google.protobuf.Any

    def pack(self, obj: Message) -> any_pb2.Any:
        packed = any_pb2.Any()
        packed.Pack(obj)
        return packed

    def unpack(self, packed: any_pb2.Any) -> Message:
        full_name = packed.type_url.rpartition("/")[2]
        kind = self._by_type.get(full_name)
        if kind is None:
            raise errors.BadRequest(f"unknown object type {packed.type_url!r}")
        obj = kind.message()
        obj.ParseFromString(packed.value)
        return obj


REGISTRY = Registry(KINDS)


def stamp(obj: Message, kind: Kind | None = None) -> Message:
    """Set apiVersion and kind on `obj` (in place) from its registry entry."""
    kind = kind or REGISTRY.by_message(obj)
    obj.api_version = kind.api_version
    obj.kind = kind.kind
    return obj
