"""The ingress controller process: informers, the proxy, the status writer, healthz.

- Informers (kubemu.client) on Ingresses, IngressClasses, Services and
  EndpointSlices (the slices indexed by their `kubernetes.io/service-name`).
  Their handlers only mark the routing table stale and enqueue Ingress keys
  for the status writer; the table is rebuilt (routing.RoutingTable) at the
  next request that finds it stale, and endpoints are resolved per backend
  from the caches, remembered until a Service or slice changes.
- The proxy (proxy.Proxy) listens on --bind-address:--http-port once every
  cache has synced, so the first request already sees every Ingress.
- Status: each Ingress that is ours gets `status.loadBalancer.ingress` from
  --publish-status-address, else from the --publish-service Service's
  `status.loadBalancer.ingress` (ingress-nginx's rule), watched on its own (it
  may be outside --watch-namespace); a change of it re-syncs every Ingress.
  sync_ingress(key) writes only a difference; a failed write is retried with
  the workqueue's backoff.
- Events: `Normal Sync "Scheduled for sync"` from nginx-ingress-controller on
  every add and update of an Ingress that is ours, as ingress-nginx records.
- Health: GET /healthz on --healthz-port answers 200 "ok" once the caches
  have synced and the proxy listens, 500 before and while a loop is down.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os

import structlog
from aiohttp import web

from kubemu.api import errors
from kubemu.api.v1 import core_pb2, networking_pb2
from kubemu.client import workqueue
from kubemu.client.clientset import Client
from kubemu.client.events import NORMAL, EventRecorder
from kubemu.client.informer import Informer, meta_namespace_key
from kubemu.loops import Loops

from addons.ingress import routing
from addons.ingress.proxy import Proxy
from addons.ingress.routing import Backend, ClassConfig, Route, RoutingTable

log = structlog.get_logger("ingress")

SERVICE_INDEX = "serviceName"
# How often a cache that has not synced yet is logged about.
SYNC_LOG_S = 10.0
# Requests in flight at a stop get this long to finish (within the pod's
# terminationGracePeriodSeconds of 30).
SHUTDOWN_S = 10.0
STATUS_WORKERS = 2
STATUS_RETRY_S_MAX = 60.0
EVENT_COMPONENT = "nginx-ingress-controller"
EVENTS_FLUSH_S = 2.0


@dataclasses.dataclass
class Options:
    apiserver: str
    classes: ClassConfig = ClassConfig()
    watch_namespace: str = ""
    publish_service: str = ""            # namespace/name
    publish_status_address: str = ""     # comma-separated addresses
    update_status: bool = True
    default_backend_service: str = ""    # namespace/name
    bind_address: str = "127.0.0.1"
    http_port: int = 80
    healthz_host: str = ""               # default: bind_address
    healthz_port: int = 10254
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    tries_max: int = 3
    rpc_timeout_s: float = 10.0
    pod_name: str = ""                   # the Events' source host ($POD_NAME)


def _split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.rpartition("/")
    return namespace, name


def slice_service_key(eps) -> list[str]:
    name = eps.metadata.labels.get(routing.SERVICE_NAME_LABEL, "")
    return [f"{eps.metadata.namespace}/{name}"] if name else []


def status_addresses(options: Options, publish_service: core_pb2.Service | None
                     ) -> list[networking_pb2.IngressLoadBalancerIngress]:
    """What every Ingress of ours should show in status.loadBalancer.ingress."""
    found: list[networking_pb2.IngressLoadBalancerIngress] = []
    if options.publish_status_address:
        for address in options.publish_status_address.split(","):
            address = address.strip()
            if not address:
                continue
            try:
                ipaddress.ip_address(address)
            except ValueError:
                found.append(networking_pb2.IngressLoadBalancerIngress(hostname=address))
            else:
                found.append(networking_pb2.IngressLoadBalancerIngress(ip=address))
    elif publish_service is not None:
        if publish_service.spec.type == "ExternalName":
            found.append(networking_pb2.IngressLoadBalancerIngress(
                hostname=publish_service.spec.external_name))
        for lb in publish_service.status.load_balancer.ingress:
            found.append(networking_pb2.IngressLoadBalancerIngress(ip=lb.ip, hostname=lb.hostname))
        for ip in publish_service.spec.external_ips:
            found.append(networking_pb2.IngressLoadBalancerIngress(ip=ip))
    unique = {(a.ip, a.hostname): a for a in found}
    return [unique[k] for k in sorted(unique)]


class ListenError(RuntimeError):
    """A port we were told to serve on cannot be bound (taken, or privileged)."""


class IngressController:
    def __init__(self, client: Client, options: Options):
        self.client = client
        self.options = options
        ns = options.watch_namespace
        self.ingresses = Informer(client, "ingresses", ns)
        self.classes = Informer(client, "ingressclasses")
        self.services = Informer(client, "services", ns)
        self.slices = Informer(client, "endpointslices", ns)
        self.slices.add_indexers({SERVICE_INDEX: slice_service_key})
        # The published Service on its own (it may live outside --watch-namespace).
        self.published: Informer | None = None
        if options.publish_service:
            pub_ns, pub_name = _split_key(options.publish_service)
            self.published = Informer(client, "services", pub_ns,
                                      field_selector=f"metadata.name={pub_name}")
            self.published.add_handler(lambda _svc: self._enqueue_all(),
                                       lambda _old, _new: self._enqueue_all(),
                                       lambda _svc: self._enqueue_all())
        self.queue = workqueue.RateLimitingQueue(max_delay_s=STATUS_RETRY_S_MAX)
        self.loops = Loops()
        self.recorder = EventRecorder(client, EVENT_COMPONENT, host=options.pod_name)
        self.proxy = Proxy(self, port=options.http_port,
                           connect_timeout_s=options.connect_timeout_s,
                           read_timeout_s=options.read_timeout_s, tries_max=options.tries_max)
        self.default_backend: Backend | None = None
        if options.default_backend_service:
            ns_, name = _split_key(options.default_backend_service)
            # ingress-nginx sends its default backend to the Service's first port.
            self.default_backend = Backend(ns_, name, 0, "")
        self._table: RoutingTable | None = None
        self._endpoints: dict[Backend, list[tuple[str, int]]] = {}
        self._serving = False
        self._runners: list[web.BaseRunner] = []
        self.listen_address = ""   # host:port of the proxy once it listens
        self.healthz_address = ""
        self.ingresses.add_handler(self._on_ingress, lambda _old, new: self._on_ingress(new),
                                   self._on_ingress_delete)
        self.ingresses.add_handler(self._record_sync, lambda _old, new: self._record_sync(new))
        self.classes.add_handler(self._on_class, lambda _old, new: self._on_class(new),
                                 self._on_class)
        self.services.add_handler(self._on_service, lambda _o, new: self._on_service(new),
                                  self._on_service)
        self.slices.add_handler(self._on_slice, lambda _old, new: self._on_slice(new),
                                self._on_slice)

    # ------------------------------------------------------------ handlers

    def _on_ingress(self, ing) -> None:
        self._table = None
        self.queue.add(meta_namespace_key(ing))

    def _record_sync(self, ing) -> None:
        # ingress-nginx's Event for every change of an Ingress it serves (its own
        # status write included: `kubectl describe` shows "(x2 over ...)").
        if self.is_ours(ing):
            self.recorder.record(ing, NORMAL, "Sync", "Scheduled for sync")

    def _on_ingress_delete(self, _ing) -> None:
        self._table = None

    def _on_class(self, _cls) -> None:
        self._table = None
        self._enqueue_all()

    def _on_service(self, _svc) -> None:
        self._endpoints.clear()

    def _on_slice(self, _eps) -> None:
        self._endpoints.clear()

    def _enqueue_all(self) -> None:
        for key in self.ingresses.store.keys():
            self.queue.add(key)

    # ------------------------------------------------------------ what the proxy asks

    def is_ours(self, ing: networking_pb2.Ingress) -> bool:
        return routing.is_ours(ing, self.classes.list(), self.options.classes)

    def table(self) -> RoutingTable:
        if self._table is None:
            self._table = RoutingTable(i for i in self.ingresses.list() if self.is_ours(i))
        return self._table

    def route(self, host: str, path: str) -> Route:
        route = self.table().route(host, path)
        if route.backend is None and self.default_backend is not None:
            return dataclasses.replace(route, backend=self.default_backend)
        return route

    def endpoints(self, backend: Backend) -> list[tuple[str, int]]:
        cached = self._endpoints.get(backend)
        if cached is not None:
            return cached
        key = f"{backend.namespace}/{backend.service}"
        service = self.services.get(key)
        if service is not None and backend == self.default_backend and service.spec.ports:
            first = service.spec.ports[0]
            backend_for_port = Backend(backend.namespace, backend.service, first.port, "")
        else:
            backend_for_port = backend
        found = routing.ready_endpoints(backend_for_port, service,
                                        self.slices.by_index(SERVICE_INDEX, key))
        self._endpoints[backend] = found
        return found

    # ------------------------------------------------------------ status

    def desired_status(self) -> list[networking_pb2.IngressLoadBalancerIngress]:
        svc = self.published.get(self.options.publish_service) \
            if self.published is not None else None
        return status_addresses(self.options, svc)

    async def sync_ingress(self, key: str) -> None:
        ing = self.ingresses.get(key)
        if ing is None or not self.is_ours(ing):
            return
        if not self.options.update_status or \
                not (self.options.publish_service or self.options.publish_status_address):
            return
        want = self.desired_status()
        if list(ing.status.load_balancer.ingress) == want:
            return
        new = networking_pb2.Ingress()
        new.CopyFrom(ing)
        del new.status.load_balancer.ingress[:]
        new.status.load_balancer.ingress.extend(want)
        await self.client.update_status(new)
        log.info("ingress: status updated", ingress=key,
                 addresses=[a.ip or a.hostname for a in want])

    async def _status_worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except workqueue.ShutDown:
                return
            try:
                await self.sync_ingress(key)
            except errors.NotFound:
                self.queue.forget(key)
            except (errors.ApiError, TimeoutError, OSError) as exc:
                log.info("ingress: status update failed, retrying", ingress=key,
                         error=f"{type(exc).__name__}: {exc}")
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)

    # ------------------------------------------------------------ serving

    async def healthz(self, _request: web.BaseRequest) -> web.Response:
        if self._serving and self.loops.healthy:
            return web.Response(text="ok")
        return web.Response(status=500, text="healthz check failed")

    async def _listen(self, runner: web.BaseRunner, host: str, port: int) -> str:
        await runner.setup()
        self._runners.append(runner)
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(f"cannot listen on {host}:{port}: {reason}") from exc
        bound = runner.addresses[-1]
        return f"{bound[0]}:{bound[1]}"

    def _informers(self) -> list[Informer]:
        found = [self.classes, self.services, self.slices, self.ingresses]
        return found + ([self.published] if self.published is not None else [])

    async def _wait_synced(self) -> None:
        """Until every cache has synced (as client-go's WaitForCacheSync: no
        deadline; /healthz says 500 meanwhile), saying so now and then."""
        for informer in self._informers():
            while True:
                try:
                    await informer.wait_synced(SYNC_LOG_S)
                    break
                except TimeoutError:
                    log.warning("ingress: still waiting for the cache to sync",
                                resource=informer.resource, apiserver=self.options.apiserver)

    async def start(self) -> None:
        """Start the health endpoint, sync the caches, then open the proxy."""
        opts = self.options
        health_app = web.Application()
        health_app.router.add_get("/healthz", self.healthz)
        self.healthz_address = await self._listen(
            web.AppRunner(health_app, access_log=None, shutdown_timeout=SHUTDOWN_S),
            opts.healthz_host or opts.bind_address, opts.healthz_port)
        self.recorder.start()
        for informer in self._informers():
            informer.start(self.loops)
        await self._wait_synced()
        for i in range(STATUS_WORKERS):
            self.loops.spawn(f"status-worker-{i}", self._status_worker)
        self.listen_address = await self._listen(
            web.ServerRunner(web.Server(self.proxy.handle, access_log=None),
                             shutdown_timeout=SHUTDOWN_S),
            opts.bind_address, opts.http_port)
        self._serving = True
        log.info("ingress: serving", http=self.listen_address, healthz=self.healthz_address,
                 ingress_class=opts.classes.ingress_class,
                 controller_class=opts.classes.controller)

    async def stop(self) -> None:
        self._serving = False
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.loops.stop()   # workers and informers, before the queue they read
        self.queue.shutdown()
        await self.proxy.close()
        with contextlib.suppress(TimeoutError):
            await self.recorder.flush(EVENTS_FLUSH_S)
        await self.recorder.stop()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()
