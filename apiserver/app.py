"""Wires the apiserver: etcd store, watch caches, registry, gRPC server, loops.

Background loops run under kubemu.loops.Loops: an unexpected error is logged,
the loop restarts with capped back-off, and health answers NOT_SERVING while
any loop is down. Each is cancelled on stop:
- one watch cache per kind (one etcd watch each);
- bootstrap: the `default`, `kube-system`, `kube-public` and
  `kube-node-lease` namespaces exist, and the built-in PriorityClasses
  (`system-cluster-critical`, `system-node-critical`); an existing one is
  left as it is, so several apiservers may do it at once;
- health: SERVING while etcd answers and every cache has synced, once the
  bootstrap is done;
- bookmarks: every `bookmark_interval_s`, watchers that asked get a BOOKMARK;
- compaction: every `compaction_interval_s`, etcd is compacted to the
  revision seen one interval earlier (as kube-apiserver does) and the caches
  forget what is older;
- kubernetes-service: the `kubernetes` Service in `default`, this
  apiserver's lease and the Service's Endpoints/EndpointSlice
  (apiserver.kubernetes_service); its address is taken out at stop;
- allocation-repair: at start and every `allocation_repair_s`, the ClusterIP
  and NodePort keys are made to match the stored Services
  (apiserver.servicealloc.repair: leaks released, keys recorded for Services
  stored before allocations were kept).
A deleted namespace stays Terminating until the namespace controller
(controller-manager) has emptied it and removed its `kubernetes` finalizer.
"""
from __future__ import annotations

import asyncio
import dataclasses

import structlog

from apiserver import servicealloc, storage, stored
from apiserver.kubernetes_service import KubernetesService
from apiserver.registry import ObjectRegistry
from apiserver.service import ResourcesService
from apiserver.strategy import DEFAULT_EVENT_TTL_S, strategies
from apiserver.strategy.priority import system_priority_classes
from apiserver.watchcache import WatchCache
from kubemu import fileutil
from kubemu import server as grpc_server
from kubemu.api import errors, limits
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from kubemu.api.v1 import resources_pb2_grpc as pb_grpc
from kubemu.backoff import Exponential
from kubemu.faults import Faults
from kubemu.loops import Loops

log = structlog.get_logger()

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
LOOP_BACKOFF_S_BASE = 0.05
LOOP_BACKOFF_S_MAX = 2.0


@dataclasses.dataclass
class Options:
    listen: str = "127.0.0.1:0"
    etcd_endpoint: str = "127.0.0.1:2379"   # host:port[,host:port...]: every member
    etcd_timeout_s: float = 5.0
    watch_cache_size: int = 10_000
    watch_backlog_max: int = 10_000
    bookmark_interval_s: float = 1.0
    compaction_interval_s: float = 300.0
    health_interval_s: float = 1.0
    shutdown_grace_s: float = 5.0
    address_file: str = ""
    default_toleration_s: int = 300  # not-ready (--default-not-ready-toleration-seconds)
    default_unreachable_toleration_s: int = 300
    fault_dir: str = ""  # kubemu.faults: fault points active while their file is here
    service_cluster_ip_range: str = servicealloc.DEFAULT_SERVICE_CIDR
    service_node_port_range: str = servicealloc.DEFAULT_NODE_PORT_RANGE
    endpoint_reconcile_s: float = 10.0  # Kubernetes' --endpoint-reconciler interval
    master_lease_ttl_s: float = 15.0
    allocation_repair_s: float = 180.0  # as Kubernetes' repair controllers
    metric_resolution_s: float = 15.0  # metrics-server's --metric-resolution
    event_ttl_s: int = DEFAULT_EVENT_TTL_S  # --event-ttl: Events expire this long after a write


class APIServer:
    def __init__(self, options: Options):
        self.options = options
        # A range outside 127.0.0.0/8 is refused here, before anything starts.
        self.service_ranges = servicealloc.Ranges.parse(options.service_cluster_ip_range,
                                                        options.service_node_port_range)
        self.faults = Faults(options.fault_dir)
        self.store = storage.EtcdStore(options.etcd_endpoint, timeout_s=options.etcd_timeout_s)
        corrupt_log = stored.CorruptLog()
        self.caches = {kind.resource: WatchCache(self.store, kind,
                                                 capacity=options.watch_cache_size,
                                                 backlog_max=options.watch_backlog_max,
                                                 corrupt_log=corrupt_log, faults=self.faults)
                       for kind in REGISTRY.kinds}
        self.objects = ObjectRegistry(
            self.store, self.caches, corrupt_log=corrupt_log,
            kind_strategies=strategies(REGISTRY,
                                       default_toleration_s=options.default_toleration_s,
                                       default_unreachable_toleration_s=(
                                           options.default_unreachable_toleration_s),
                                       service_ranges=self.service_ranges,
                                       event_ttl_s=options.event_ttl_s))
        # A write request larger than kube-apiserver's limit is refused by gRPC
        # before it is buffered.
        self.server = grpc_server.Server(
            options.listen, grace_s=options.shutdown_grace_s,
            options=[("grpc.max_receive_message_length", limits.REQUEST_BYTES_MAX)])
        pb_grpc.add_ResourcesServicer_to_server(
            ResourcesService(self.objects, self.caches, REGISTRY,
                             metric_resolution_s=options.metric_resolution_s), self.server.server)
        self.loops = Loops(on_health=self._loop_health)
        # Set once the system namespaces and priority classes exist (readyz
        # waits for kube-apiserver's post-start hooks alike).
        self.bootstrapped = asyncio.Event()
        self.compacted_rv = 0
        self.kubernetes_service: KubernetesService | None = None

    async def start(self) -> str:
        await self.store.connect()
        address = await self.server.start()
        for cache in self.caches.values():
            self.loops.spawn(f"watch-cache-{cache.kind.resource}", cache.run)
        self.loops.spawn("bootstrap", self._bootstrap, forever=False)
        self.kubernetes_service = KubernetesService(
            self.objects, self.store, address=address,
            cluster_ip=self.service_ranges.first_ip,
            interval_s=self.options.endpoint_reconcile_s,
            lease_ttl_s=self.options.master_lease_ttl_s)
        self.loops.spawn("kubernetes-service", self.kubernetes_service.run)
        self.loops.spawn("allocation-repair", self._allocation_repair)
        self.loops.spawn("health", self._health)
        self.loops.spawn("bookmarks", self._bookmarks)
        if self.options.compaction_interval_s > 0:
            self.loops.spawn("compaction", self._compaction)
        if self.options.address_file:
            fileutil.atomic_write(self.options.address_file, address)
        log.info("apiserver listening", address=address, etcd=self.options.etcd_endpoint)
        return address

    async def stop(self) -> None:
        await self.server.stop()
        if self.kubernetes_service is not None:
            await self.kubernetes_service.leave(self.options.shutdown_grace_s)
        await self.loops.stop()
        await self.store.close()
        log.info("apiserver stopped")

    async def _loop_health(self, name: str, ok: bool) -> None:
        await self.server.set_check(f"loop:{name}", ok)

    # ------------------------------------------------------------ loops

    async def _bootstrap(self) -> None:
        namespaces = REGISTRY.by_resource("namespaces")
        classes = REGISTRY.by_resource("priorityclasses")
        backoff = Exponential(LOOP_BACKOFF_S_BASE, LOOP_BACKOFF_S_MAX)
        pending = [(namespaces, core_pb2.Namespace(metadata={"name": name}))
                   for name in SYSTEM_NAMESPACES]
        pending += [(classes, pc) for pc in system_priority_classes()]
        while pending:
            kind, obj = pending[0]
            try:
                await self.objects.create(kind, "", obj)
                pending.pop(0)
            except errors.AlreadyExists:
                pending.pop(0)
            except errors.ApiError as err:
                if not err.temporary and not isinstance(err, errors.Timeout):
                    log.error("cannot create a system object", kind=kind.kind,
                              name=obj.metadata.name, error=str(err))
                    pending.pop(0)
                    continue
                await asyncio.sleep(backoff.next_s())  # bounded retry back-off
        # Admission reads the classes from this apiserver's watch cache: when
        # another apiserver created them, our cache may not have seen that
        # yet, and a pod naming a class right after start would be refused.
        # Serve only once both caches have caught up with etcd.
        while True:
            try:
                revision = await self.store.current_revision()
                await asyncio.gather(*(self.caches[kind.resource].wait_fresh(revision)
                                       for kind in (namespaces, classes)))
                break
            except errors.ApiError as err:
                log.info("waiting for the system objects in the watch cache", error=str(err))
                await asyncio.sleep(backoff.next_s())  # bounded retry back-off
        self.bootstrapped.set()
        log.info("system namespaces and priority classes present")

    async def _health(self) -> None:
        serving = False
        await asyncio.gather(*(c.ready.wait() for c in self.caches.values()))
        await self.bootstrapped.wait()
        while True:
            try:
                await self.store.current_revision()
                ok = all(c.ready.is_set() for c in self.caches.values())
            except errors.ApiError:
                ok = False
            if ok != serving:
                serving = ok
                await self.server.set_serving(serving)
                log.info("health changed", serving=serving)
            await asyncio.sleep(self.options.health_interval_s)

    async def _bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self.options.bookmark_interval_s)
            for cache in self.caches.values():
                if cache.watchers:
                    cache.request_progress()
                    cache.send_bookmarks()

    async def _compaction(self) -> None:
        previous = 0
        while True:
            await asyncio.sleep(self.options.compaction_interval_s)
            try:
                current = await self.store.current_revision()
                if previous:
                    await self.store.compact(previous)
                    self.compacted_rv = previous
                    for cache in self.caches.values():
                        cache.forget_before(previous)
                    log.info("compacted etcd", revision=previous)
                previous = current
            except errors.ApiError as err:
                log.info("compaction skipped", error=str(err))

    async def _allocation_repair(self) -> None:
        services = REGISTRY.by_resource("services")
        while True:
            try:
                report = await servicealloc.repair(self.store, self.service_ranges,
                                                   services.message)
                if report.released or report.recorded or report.doubled:
                    log.warning("service allocations repaired", released=report.released,
                                recorded=report.recorded, held_twice=report.doubled)
            except errors.ApiError as err:
                log.info("service allocation repair skipped", error=str(err))
            await asyncio.sleep(self.options.allocation_repair_s)
