"""The Endpoints controller (kubernetes/pkg/controller/endpoint): the v1
Endpoints object of every Service with a selector (not ExternalName).

One Endpoints per Service, same name, labels = the Service's (plus
`service.kubernetes.io/headless` for a headless one). Its subsets list each
selected pod with an IP that is not terminal -- terminating pods only with
`publishNotReadyAddresses` -- under `addresses` when Ready (or always with
publishNotReadyAddresses), else `notReadyAddresses`; with nodeName, a Pod
targetRef, and hostname when the pod's spec.hostname is set and its
subdomain names the Service. Ports are the Service's, a named targetPort
resolved per pod (a pod lacking the name is left out of that port); a
headless Service without ports lists its pods with no ports. Subsets are
repacked as Kubernetes' RepackSubsets does: addresses with the same ports
share a subset, sorted. More than 1000 addresses are truncated (ready ones
first, in proportion per subset) and annotated
`endpoints.kubernetes.io/over-capacity: truncated`;
`endpoints.kubernetes.io/last-change-trigger-time` holds the earliest change
since the previous sync (TriggerTimeTracker). Nothing is written when
subsets, labels and the capacity annotation are already right. A deleted
Service's Endpoints is deleted; at start every Endpoints is looked at once
(checkLeftoverEndpoints) so those of Services deleted while we were away go.

Stale cache: after an update, the version it replaced is remembered; a sync
that still finds that version in the cache retries (Conflict) rather than
writing from old data. Handlers only enqueue Service keys (pods through the
services informer's selector index, at once unless
`--endpoint-updates-batch-period-s` says otherwise).
"""
from __future__ import annotations

import asyncio
import math
from typing import Sequence

from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.client.events import WARNING
from kubemu.client.informer import meta_namespace_key

from controller_manager import controllerutil as cu
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy, split_key

MAX_CAPACITY = 1000
ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
TRUNCATED = "truncated"
# An Endpoints used as a leader-election lock (old clusters): never ours to delete.
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def pod_address(pod: Message, svc: Message) -> core_pb2.EndpointAddress | None:
    """podToEndpointAddressForService (IPv4: kubemu's pod network)."""
    ip = next((ip for ip in cu.pod_ips(pod) if ":" not in ip), "")
    if not ip:
        return None
    addr = core_pb2.EndpointAddress(ip=ip, node_name=pod.spec.node_name)
    ref = addr.target_ref
    ref.kind, ref.namespace, ref.name, ref.uid = ("Pod", pod.metadata.namespace,
                                                  pod.metadata.name, pod.metadata.uid)
    if cu.should_set_hostname(pod, svc):
        addr.hostname = pod.spec.hostname
    return addr


def desired_subsets(svc: Message, pods: Sequence[Message]) -> list[core_pb2.EndpointSubset]:
    tolerate = svc.spec.publish_not_ready_addresses
    subsets: list[core_pb2.EndpointSubset] = []

    def add(addr: Message, pod: Message, port: Message | None) -> None:
        subset = core_pb2.EndpointSubset()
        if tolerate or cu.is_pod_ready(pod):
            subset.addresses.append(addr)
        else:
            subset.not_ready_addresses.append(addr)
        if port is not None:
            subset.ports.append(port)
        subsets.append(subset)

    for pod in pods:
        if not cu.should_pod_be_in_endpoints(pod, include_terminating=tolerate):
            continue
        addr = pod_address(pod, svc)
        if addr is None:
            continue
        if not svc.spec.ports:
            if svc.spec.cluster_ip == "None":
                add(addr, pod, None)
            continue
        for sp in svc.spec.ports:
            number = cu.find_port(pod, sp)
            if number is None:
                continue
            port = core_pb2.EndpointPort(name=sp.name, port=number, protocol=sp.protocol or "TCP")
            if sp.HasField("app_protocol"):
                port.app_protocol = sp.app_protocol
            add(addr, pod, port)
    return repack_subsets(subsets)


def _addr_key(addr: Message) -> tuple[str, str]:
    return (addr.ip, addr.target_ref.uid)


def _port_key(port: Message | None) -> tuple:
    if port is None:
        return (-1,)  # the sentinel of addresses without ports
    return (port.port, port.name, port.protocol,
            port.app_protocol if port.HasField("app_protocol") else None)


def repack_subsets(subsets: Sequence[Message]) -> list[core_pb2.EndpointSubset]:
    """RepackSubsets: one subset per set of addresses that share ports; an
    address ready on a port in any input is ready there. Sorted."""
    all_addrs: dict[tuple[str, str], Message] = {}
    ports: dict[tuple, Message | None] = {}
    ready_by_port: dict[tuple, dict[tuple[str, str], bool]] = {}
    for subset in subsets:
        for port in list(subset.ports) or [None]:
            pk = _port_key(port)
            ports.setdefault(pk, port)
            readiness = ready_by_port.setdefault(pk, {})
            for addr, ready in ([(a, True) for a in subset.addresses]
                                + [(a, False) for a in subset.not_ready_addresses]):
                ak = _addr_key(addr)
                all_addrs.setdefault(ak, addr)
                readiness[ak] = readiness.get(ak, False) or ready
    by_addresses: dict[tuple, list[tuple]] = {}
    for pk, readiness in ready_by_port.items():
        by_addresses.setdefault(tuple(sorted(readiness.items())), []).append(pk)
    out = []
    for addr_set, pks in by_addresses.items():
        subset = core_pb2.EndpointSubset()
        for ak, ready in addr_set:
            (subset.addresses if ready else subset.not_ready_addresses).append(all_addrs[ak])
        subset.ports.extend(ports[pk] for pk in sorted(pks) if ports[pk] is not None)
        out.append(subset)
    out.sort(key=lambda s: ([_addr_key(a) for a in s.addresses],
                            [_addr_key(a) for a in s.not_ready_addresses],
                            [_port_key(p) for p in s.ports]))
    return out


def truncate(endpoints: Message) -> bool:
    """truncateEndpoints: keep MAX_CAPACITY addresses, ready ones first, each
    subset its share (rounded up, the last ones taking what is left)."""
    total_ready = sum(len(s.addresses) for s in endpoints.subsets)
    total_not_ready = sum(len(s.not_ready_addresses) for s in endpoints.subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    truncate_ready = total_ready > MAX_CAPACITY
    limit = MAX_CAPACITY if truncate_ready else MAX_CAPACITY - total_ready
    num_total = total_ready if truncate_ready else total_not_ready
    can_add = limit
    for subset in endpoints.subsets:
        field = subset.addresses if truncate_ready else subset.not_ready_addresses
        share = math.ceil(len(field) / num_total * limit) if num_total else 0
        share = min(share, can_add)
        if len(field) > share:
            del field[share:]
        if truncate_ready:
            del subset.not_ready_addresses[:]
        can_add -= len(field)
    return True


def _capacity_annotation_right(endpoints: Message) -> bool:
    count = sum(len(s.addresses) + len(s.not_ready_addresses) for s in endpoints.subsets)
    if count > MAX_CAPACITY:
        return False
    return ANNOTATION_OVER_CAPACITY not in endpoints.metadata.annotations


class EndpointsController(Controller):
    name = "endpoints-controller"
    aliases = ("endpoint",)
    resources = ("services", "pods", "endpoints")
    default_workers = 5  # --concurrent-endpoint-syncs
    event_source = "endpoint-controller"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.triggers = cu.TriggerTimeTracker()
        # service key -> the resourceVersion our last update replaced.
        self._stale_rv: dict[str, str] = {}
        self.services = self.informer("services")
        self.pods = self.informer("pods")
        self.endpoints = self.informer("endpoints")
        self.services.add_handler(self.enqueue, lambda _old, new: self.enqueue(new),
                                  self.enqueue)
        self.pod_events = cu.ServicePodEvents(self.services, self.enqueue_batched,
                                              ctx.options.endpoint_updates_batch_period_s)
        self.pods.add_handler(self.pod_events.on_add, self.pod_events.on_update,
                              self.pod_events.on_delete)
        self.endpoints.add_handler(on_delete=self.enqueue)

    async def run(self, workers: int) -> None:
        await self.ctx.informers.wait_synced(list(self.resources))
        # checkLeftoverEndpoints: those of Services deleted while we were away.
        for ep in self.endpoints.list():
            if LEADER_ANNOTATION not in ep.metadata.annotations:
                self.enqueue(meta_namespace_key(ep))
        await super().run(workers)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self.services.get(key)
        if svc is None:
            try:
                await self.client.delete("endpoints", name, namespace)
            except errors.NotFound:
                pass
            self.triggers.delete(key)
            self._stale_rv.pop(key, None)
            return
        if svc.spec.type == "ExternalName" or not svc.spec.selector:
            return  # without a selector, its Endpoints are written through the API
        selector = svc.spec.selector
        pods = [p for p in self.pods.by_index(BY_NAMESPACE, namespace)
                if all(p.metadata.labels.get(k) == v for k, v in selector.items())]
        trigger = self.triggers.compute(key, svc, pods)
        # A Service of thousands of pods takes tens of milliseconds to compute:
        # let the other keys' work in between.
        await asyncio.sleep(0)
        subsets = desired_subsets(svc, pods)
        current = self.endpoints.get(key)
        if current is not None and current.metadata.resource_version == self._stale_rv.get(key):
            raise errors.Conflict(f"endpoints informer cache is out of date, resource version "
                                  f"{current.metadata.resource_version} already processed for "
                                  f"endpoints {key}")
        if current is not None:
            compare_labels = {k: v for k, v in current.metadata.labels.items()
                              if k != cu.LABEL_HEADLESS}
            if (list(current.subsets) == subsets
                    and compare_labels == dict(svc.metadata.labels)
                    and _capacity_annotation_right(current)):
                return
            new = copy(current)
        else:
            new = core_pb2.Endpoints(api_version="v1", kind="Endpoints")
            new.metadata.name, new.metadata.namespace = name, namespace
        del new.subsets[:]
        new.subsets.extend(subsets)
        new.metadata.labels.clear()
        new.metadata.labels.update(svc.metadata.labels)
        annotations = new.metadata.annotations
        if trigger:
            annotations[cu.ANNOTATION_TRIGGER_TIME] = trigger
        else:
            annotations.pop(cu.ANNOTATION_TRIGGER_TIME, None)
        if truncate(new):
            annotations[ANNOTATION_OVER_CAPACITY] = TRUNCATED
        else:
            annotations.pop(ANNOTATION_OVER_CAPACITY, None)
        if not cu.is_service_ip_set(svc):
            new.metadata.labels[cu.LABEL_HEADLESS] = ""
        try:
            if current is None:
                await self.client.create(new)
            else:
                updated = await self.client.update(new)
                if updated.metadata.resource_version != current.metadata.resource_version:
                    self._stale_rv[key] = current.metadata.resource_version
        except errors.ApiError as exc:
            if not isinstance(exc, errors.Conflict):
                if current is None:
                    self.recorder.record(new, WARNING, "FailedToCreateEndpoint",
                                         f"Failed to create endpoint for service {key}: {exc}")
                else:
                    self.recorder.record(new, WARNING, "FailedToUpdateEndpoint",
                                         f"Failed to update endpoint {key}: {exc}")
            raise
