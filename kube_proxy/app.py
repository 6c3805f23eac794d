"""The kube-proxy process: informers -> one sync loop -> listeners and choice tables.

Model (kube-proxy's, userspace mode, in one asyncio event loop):
- Two informers, Services and EndpointSlices (indexed by their
  `kubernetes.io/service-name` label). Their handlers only mark the state
  dirty; one sync loop recomputes the whole desired state from the caches
  (servicemap.desired, pure) and applies the difference (Proxier.apply), at
  most once per min_sync_period_s, and at least every resync_s (which also
  retries listeners that failed to bind).
- Health: grpc.health.v1, SERVING once the first sync is applied,
  NOT_SERVING while a loop it owns is down or the last sync failed (a bug:
  logged; what is bound stays served, the next change or resync retries).
- Metrics: on the same gRPC server, the method METRICS_METHOD
  (`/kubemu.kubeproxy.v1.KubeProxy/Metrics`) takes any bytes and answers a
  JSON object: {"node", "syncs", "services": {"ns/name": {connections_total,
  connections_active, udp_sessions_total, udp_sessions_active, bytes_in,
  bytes_out, refused, connect_errors, dropped, errors}}, "listeners":
  [{"listener": "ip:port/PROTO", "route", "scope", "endpoints", "active"} or
  {"listener", "error"}]}. Raw bytes both ways, so a client needs no
  generated code: `channel.unary_unary(METRICS_METHOD)(b"", timeout=...)`.
- A listener that cannot be bound gets a Warning Event `FailedToListen` on its
  Service ("cannot serve 127.B.0.10:53/UDP: permission denied ...") and a log
  line; the rest is served.
- Stop (SIGTERM): NOT_SERVING, listeners closed, connections drained (up to
  drain_s), then the process ends.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from typing import Any

import grpc
import structlog

from kubemu import aio, fileutil
from kubemu import server as grpc_server
from kubemu.client.clientset import Client
from kubemu.client.events import WARNING, EventRecorder
from kubemu.client.informer import Informer
from kubemu.loops import Loops

from kube_proxy import servicemap
from kube_proxy.balancer import ROUND_ROBIN
from kube_proxy.proxier import ListenFailure, Proxier, failure_message, unprivileged_port_start
from kube_proxy.proxy import Limits

log = structlog.get_logger("kube_proxy")

METRICS_SERVICE = "kubemu.kubeproxy.v1.KubeProxy"
METRICS_METHOD = f"/{METRICS_SERVICE}/Metrics"
COMPONENT = "kube-proxy"
SLICE_INDEX = "serviceName"
FAILED_TO_LISTEN = "FailedToListen"


@dataclasses.dataclass
class Options:
    apiserver: str
    node_name: str
    node_ip: str
    health_listen: str = "127.0.0.1:0"
    address_file: str = ""
    rpc_timeout_s: float = 10.0
    balance: str = ROUND_ROBIN
    seed: int | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    min_sync_period_s: float = 0.0
    resync_s: float = 30.0
    drain_s: float = 5.0
    shutdown_grace_s: float = 2.0
    events_queue_max: int = 1000


class KubeProxyApp:
    def __init__(self, options: Options):
        self.options = options
        self.proxier = Proxier(options.limits, balance=options.balance,
                               rng=random.Random(options.seed))
        self.server: grpc_server.Server | None = None
        self.services: Informer | None = None
        self.slices: Informer | None = None
        self.recorder: EventRecorder | None = None
        self._dirty = asyncio.Event()
        self._port_start = 1024  # net.ipv4.ip_unprivileged_port_start, read at start
        self._log = log.bind(node=options.node_name)

    async def run(self, stop: asyncio.Event) -> None:
        opts = self.options
        client = Client(opts.apiserver, timeout_s=opts.rpc_timeout_s,
                        user_agent=f"kubemu-kube-proxy/{opts.node_name}")
        self.server = grpc_server.Server(opts.health_listen, grace_s=opts.shutdown_grace_s)
        self.server.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            METRICS_SERVICE, {"Metrics": grpc.unary_unary_rpc_method_handler(self._metrics)}),))
        address = await self.server.start()
        self._port_start = await asyncio.to_thread(unprivileged_port_start)
        if opts.address_file:
            await asyncio.to_thread(fileutil.atomic_write, opts.address_file, address + "\n")
        self._log.info("kube-proxy started", health=address, apiserver=opts.apiserver,
                       node_ip=opts.node_ip)
        loops = Loops(on_health=self._loop_health)
        self.recorder = EventRecorder(client, COMPONENT, host=opts.node_name,
                                      queue_max=opts.events_queue_max)
        self.recorder.start()
        try:
            await aio.run_until(stop, self._serve(client, loops))
        finally:
            await self.server.set_serving(False)
            await self.proxier.stop(opts.drain_s)
            await loops.stop()
            try:
                await self.recorder.flush(1.0)
            except TimeoutError:
                pass
            await self.recorder.stop()
            await self.server.stop()
            await client.close()
            self._log.info("kube-proxy stopped")

    async def _serve(self, client: Client, loops: Loops) -> None:
        assert self.server is not None
        self.services = Informer(client, "services")
        self.slices = Informer(client, "endpointslices")
        self.slices.add_indexers({SLICE_INDEX: servicemap.index_slice})
        for informer in (self.services, self.slices):
            informer.add_handler(self._mark, lambda _old, _new: self._mark(), self._mark)
            informer.start(loops)
        for informer in (self.services, self.slices):
            while True:
                try:
                    await informer.wait_synced(30.0)
                    break
                except TimeoutError:
                    self._log.warning("informer not synced yet", resource=informer.resource)
        await self.sync()
        await self.server.set_serving(True)
        self._log.info("serving", services=len(self.services.store),
                       listeners=len(self.proxier.listeners))
        await self._sync_loop()

    def _mark(self, *_: Any) -> None:
        self._dirty.set()

    async def _sync_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), self.options.resync_s)
            except TimeoutError:
                pass
            wait_s = last + self.options.min_sync_period_s - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)  # rate limit, like kube-proxy's minSyncPeriod
            last = loop.time()
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - a bug: report it, keep serving what is bound
                self._log.exception("sync failed; retrying at the next change or resync")
                await self._sync_health(False)
            else:
                await self._sync_health(True)

    async def _sync_health(self, ok: bool) -> None:
        if self.server is not None:
            await self.server.set_check("sync", ok)

    async def sync(self) -> None:
        assert self.services is not None and self.slices is not None
        self._dirty.clear()
        services = self.services.list()
        by_service = {f"{s.metadata.namespace}/{s.metadata.name}": self.slices.by_index(
            SLICE_INDEX, f"{s.metadata.namespace}/{s.metadata.name}") for s in services}
        desired = servicemap.desired(services, by_service, node_name=self.options.node_name,
                                     node_ip=self.options.node_ip)
        for conflict in desired.conflicts:
            self._log.warning("listener conflict", conflict=conflict)
        for failure in await self.proxier.apply(desired):
            self._report(failure)

    def _report(self, failure: ListenFailure) -> None:
        message = failure_message(failure, self.options.node_name, self._port_start)
        self._log.warning("cannot listen", listener=str(failure.key), service=failure.service,
                          error=failure.error)
        assert self.services is not None and self.recorder is not None
        svc = self.services.store.get(failure.service)
        if svc is not None:
            self.recorder.record(svc, WARNING, FAILED_TO_LISTEN, message)

    def metrics(self) -> dict[str, Any]:
        return {"node": self.options.node_name, "syncs": self.proxier.syncs,
                "services": self.proxier.metrics.snapshot(),
                "listeners": self.proxier.snapshot()}

    async def _metrics(self, request: bytes, context: Any) -> bytes:
        return json.dumps(self.metrics(), sort_keys=True).encode()

    async def _loop_health(self, name: str, ok: bool) -> None:
        if self.server is not None:
            await self.server.set_check(f"loop:{name}", ok)
