"""The `kubernetes` Service in `default` and its Endpoints and EndpointSlice.

As kube-apiserver's controlplane controller and lease endpoint reconciler:
- the Service (ClusterIP = the first address of the service range, port 443
  named https, targetPort = this apiserver's port, no selector) is created
  when missing; its targetPort is moved to this apiserver's port only when
  no live apiserver listens on the one it names;
- every apiserver renews a lease `/registry/masterleases/<host:port>`
  (value: the wall-clock time of renewal, JSON) every `interval_s`; leases
  older than `lease_ttl_s` are expired and removed, as etcd's TTL would;
- the Endpoints `kubernetes` (label endpointslice.kubernetes.io/skip-mirror)
  and EndpointSlice `kubernetes` (label kubernetes.io/service-name, IPv4,
  every endpoint ready) list every live apiserver's address. Kubernetes'
  apiservers share one port; kubemu's may not, so there is one subset (and
  one slice: `kubernetes`, then `kubernetes-<port>`) per port;
- at a graceful stop an apiserver removes its lease and its address.
Writes go through the registry (validated, watched) and are made only when
the stored objects differ from what they should be.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Callable

import structlog

from apiserver import storage
from apiserver.registry import ObjectRegistry
from kubemu.api import codec, errors
from kubemu.backoff import Exponential
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2, discovery_pb2

log = structlog.get_logger()

NAMESPACE = "default"
NAME = "kubernetes"
LEASE_PREFIX = b"/registry/masterleases/"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
LEASES_MAX = 1000  # apiservers one cluster may have at once
RETRY_S_BASE = 0.05


def lease_key(address: str) -> bytes:
    return LEASE_PREFIX + address.encode()


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return host, int(port)


def service_object(cluster_ip: str, target_port: int) -> core_pb2.Service:
    return codec.from_dict(core_pb2.Service, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": target_port}]}})


def by_port(addresses: list[str]) -> dict[int, list[str]]:
    """`host:port` addresses grouped by port, hosts sorted, ports ascending."""
    groups: dict[int, set[str]] = {}
    for address in addresses:
        host, port = split_address(address)
        groups.setdefault(port, set()).add(host)
    return {port: sorted(groups[port]) for port in sorted(groups)}


def endpoints_object(addresses: list[str]) -> core_pb2.Endpoints:
    subsets = [{"addresses": [{"ip": ip} for ip in ips],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
               for port, ips in by_port(addresses).items()]
    return codec.from_dict(core_pb2.Endpoints, {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {SKIP_MIRROR_LABEL: "true"}},
        "subsets": subsets})


def slice_name(index: int, port: int) -> str:
    return NAME if index == 0 else f"{NAME}-{port}"


def slice_objects(addresses: list[str]) -> list[discovery_pb2.EndpointSlice]:
    return [codec.from_dict(discovery_pb2.EndpointSlice, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name(i, port), "namespace": NAMESPACE,
                     "labels": {SERVICE_NAME_LABEL: NAME}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
        for i, (port, ips) in enumerate(by_port(addresses).items())]


class KubernetesService:
    def __init__(self, objects: ObjectRegistry, store: storage.Store, *, address: str,
                 cluster_ip: str, interval_s: float = 10.0, lease_ttl_s: float = 15.0,
                 clock: Callable[[], float] = time.time):
        self.objects = objects
        self.store = store
        self.address = "%s:%d" % split_address(address)
        self.cluster_ip = cluster_ip
        self.interval_s = interval_s
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock
        self._lock = asyncio.Lock()
        self._left = False

    async def run(self) -> None:
        """Forever: keep the Service, this apiserver's lease and the endpoints right."""
        backoff = Exponential(RETRY_S_BASE, self.interval_s)
        while True:
            try:
                await self.sync()
                backoff.reset()
                delay_s = self.interval_s
            except errors.ApiError as err:
                # e.g. the `default` namespace not bootstrapped yet: soon again.
                delay_s = backoff.next_s()
                log.info("kubernetes service sync will retry", error=str(err), delay_s=delay_s)
            await asyncio.sleep(delay_s)

    async def sync(self, *, leaving: bool = False) -> None:
        # One sync at a time; once leaving, the periodic one renews nothing
        # (it would put this apiserver's address back after `leave`).
        async with self._lock:
            if self._left and not leaving:
                return
            await self._sync(leaving=leaving)

    async def _sync(self, *, leaving: bool) -> None:
        svc = None
        if not leaving:
            svc = await self._ensure_service()
            await self._renew()
        else:
            kv = await self.store.get(lease_key(self.address))
            if kv is not None:
                await self.store.delete_if(kv.key, kv.mod_revision)
        live = await self._live_addresses()
        if leaving and self.address in live:
            live.remove(self.address)
        if svc is not None:
            await self._fix_target_port(svc, live)
        await self._write_endpoints(live)

    async def _fix_target_port(self, svc, live: list[str]) -> None:
        """targetPort follows the apiservers: it is set to this one's port when
        no live apiserver listens on the one it names (e.g. after a restart on
        a new port). Apiservers on several ports leave it alone, so they never
        take turns rewriting it."""
        ports = {split_address(address)[1] for address in live}
        own = split_address(self.address)[1]
        for port in svc.spec.ports:
            if port.name == "https" and port.target_port.int_val not in ports:
                port.target_port.int_val = own
                try:
                    await self.objects.update(REGISTRY.by_resource("services"), svc)
                    log.info("kubernetes service targetPort updated", target_port=own)
                except errors.Conflict:
                    pass  # written meanwhile; the next sync looks again
                return

    async def leave(self, timeout_s: float) -> None:
        """Take this apiserver's address out (a graceful stop)."""
        self._left = True
        try:
            await asyncio.wait_for(self.sync(leaving=True), timeout_s)
        except (errors.ApiError, asyncio.TimeoutError) as err:
            log.info("could not remove this apiserver from the kubernetes endpoints",
                     error=str(err))

    async def _ensure_service(self):
        """The `kubernetes` Service, created if missing (else left as it is)."""
        kind = REGISTRY.by_resource("services")
        try:
            return await self.objects.get(kind, NAMESPACE, NAME)
        except errors.NotFound:
            pass
        try:
            created = await self.objects.create(kind, NAMESPACE, service_object(
                self.cluster_ip, split_address(self.address)[1]))
            log.info("created the kubernetes service", cluster_ip=self.cluster_ip)
            return created
        except errors.AlreadyExists:
            return await self.objects.get(kind, NAMESPACE, NAME)

    async def _renew(self) -> None:
        key = lease_key(self.address)
        value = json.dumps({"renewed_s": self.clock()}).encode()
        for _ in range(3):
            kv = await self.store.get(key)
            if await self.store.put_if(key, value, kv.mod_revision if kv else 0) is not None:
                return
        raise errors.conflict("masterleases", self.address, "too many concurrent writers")

    async def _live_addresses(self) -> list[str]:
        page = await self.store.range(LEASE_PREFIX, storage.prefix_end(LEASE_PREFIX),
                                      limit=LEASES_MAX)
        live = []
        now_s = self.clock()
        for kv in page.kvs:
            address = kv.key[len(LEASE_PREFIX):].decode()
            try:
                renewed_s = float(json.loads(kv.value)["renewed_s"])
            except (ValueError, KeyError, TypeError):
                renewed_s = 0.0
            if now_s - renewed_s > self.lease_ttl_s:
                await self.store.delete_if(kv.key, kv.mod_revision)  # expired
                log.info("apiserver lease expired", address=address)
                continue
            live.append(address)
        return live

    async def _write_endpoints(self, addresses: list[str]) -> None:
        ep_kind = REGISTRY.by_resource("endpoints")
        wanted = endpoints_object(addresses)
        try:
            current = await self.objects.get(ep_kind, NAMESPACE, NAME)
        except errors.NotFound:
            current = None
        if current is None:
            if addresses:
                await self._create_or_skip(ep_kind, wanted)
        elif (list(current.subsets) != list(wanted.subsets)
              or dict(current.metadata.labels) != dict(wanted.metadata.labels)):
            current.ClearField("subsets")
            current.subsets.extend(wanted.subsets)
            current.metadata.labels.clear()
            current.metadata.labels.update(wanted.metadata.labels)
            await self.objects.update(ep_kind, current)
        slice_kind = REGISTRY.by_resource("endpointslices")
        wanted_slices = {s.metadata.name: s for s in slice_objects(addresses)}
        items, _, _, _ = await self.objects.list(
            slice_kind, NAMESPACE,
            lambda s: s.metadata.labels.get(SERVICE_NAME_LABEL) == NAME, 0, "")
        for item in items:
            want = wanted_slices.pop(item.metadata.name, None)
            if want is None:
                try:
                    await self.objects.delete(slice_kind, NAMESPACE, item.metadata.name,
                                              grace_period_s=None, propagation_policy="",
                                              resource_version=item.metadata.resource_version)
                except (errors.NotFound, errors.Conflict):
                    pass
            elif (list(item.endpoints) != list(want.endpoints)
                  or list(item.ports) != list(want.ports)
                  or dict(item.metadata.labels) != dict(want.metadata.labels)
                  or item.address_type != want.address_type):
                want.metadata.resource_version = item.metadata.resource_version
                want.metadata.uid = item.metadata.uid
                await self.objects.update(slice_kind, want)
        for want in wanted_slices.values():
            await self._create_or_skip(slice_kind, want)

    async def _create_or_skip(self, kind, obj) -> None:
        try:
            await self.objects.create(kind, NAMESPACE, obj)
        except errors.AlreadyExists:
            pass  # another apiserver wrote it; the next sync compares again
