"""The one shape of every controller (sample-controller's), and what they share.

- `Options`: every timing and size of the process, Kubernetes' defaults; the
  supervisor's fast profile passes smaller ones as flags.
- `InformerFactory`: one shared Informer per resource per process (client-go's
  SharedInformerFactory). Controllers ask for informers in their constructor
  and add handlers and indexers there; the factory starts them under the
  term's Loops.
- `Context`: what a controller gets: the client, the informers, an event
  recorder per controller name, options, the wall clock (injectable: CronJob
  schedules and availability are tested on a fake clock) and the term's Loops.
- `Controller`: subclass it, set `name` (kube-controller-manager's name, as
  `--controllers` takes it), add handlers in `__init__` that only call
  `enqueue`, and write one idempotent `sync(key)`. `run(workers)` waits for the
  informers' first list, then `workers` tasks take keys from the rate-limited
  workqueue: a sync that raises is retried with per-key exponential backoff
  (bounded by `Options.requeue_max_delay_s`); one that returns is forgotten.
  A controller that also looks periodically sets `resync_period_s` and
  `resync` (which only enqueues, as a handler does).
  A key is never synced by two workers at once (the workqueue's contract).
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any, Callable, ClassVar, Iterable

import structlog
from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.events import EventRecorder
from kubemu.api.kinds import REGISTRY
from kubemu.client.informer import (DeletedFinalStateUnknown, Informer, index_by_controller_uid,
                                    index_by_namespace, index_by_node_name, index_by_owner_uid,
                                    meta_namespace_key, object_of)
from kubemu.client.workqueue import RateLimitingQueue, ShutDown
from kubemu.loops import Loops

log = structlog.get_logger("controller_manager")

SYNC_WAIT_LOG_S = 30.0

# The indexes every shared informer has (namespaced kinds; pods also by node).
BY_NAMESPACE = "namespace"
BY_CONTROLLER_UID = "controller-uid"
BY_OWNER_UID = "owner-uid"
BY_NODE = "node"
# Services: one value "<namespace>/<key>=<value>" per pair of the selector, so
# the Services that may select a pod are found from the pod's own labels.
BY_SELECTOR = "selector"


def index_by_service_selector(svc: Message) -> list[str]:
    # A Service without a selector selects nothing (not everything).
    ns = svc.metadata.namespace
    return [f"{ns}/{k}={v}" for k, v in svc.spec.selector.items()]


@dataclasses.dataclass
class Options:
    """The process's flags (kube-controller-manager's names, seconds with _s)."""

    apiserver: str
    identity: str = ""
    leader_elect: bool = True
    lease_namespace: str = "kube-system"
    lease_name: str = "kube-controller-manager"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    controllers: tuple[str, ...] = ("*",)
    # Workers per controller name (--concurrent-<name>-syncs); default per class.
    concurrency: dict[str, int] = dataclasses.field(default_factory=dict)
    health_listen: str = "127.0.0.1:0"
    address_file: str = ""
    rpc_timeout_s: float = 10.0
    shutdown_grace_s: float = 5.0
    # The workqueue's per-key failure backoff (client-go's controller default).
    requeue_base_delay_s: float = 0.005
    requeue_max_delay_s: float = 1000.0
    queue_max: int = 100_000
    events_queue_max: int = 10_000
    # ControllerExpectations' TTL (Kubernetes: 5 minutes).
    expectations_ttl_s: float = 300.0
    # Periodic re-list of every informer (0: never; Kubernetes' min-resync is 12h).
    resync_s: float = 0.0
    # Per-controller timings (Kubernetes' defaults; the fast profile shrinks them).
    # Job: the pod-failure backoff base and cap.
    job_backoff_base_s: float = 10.0
    job_backoff_max_s: float = 360.0
    # DaemonSet: the per-node backoff before deleting a failed daemon pod
    # again (kube-controller-manager's flowcontrol.NewBackOff(1s, 15min)).
    daemonset_failed_pod_backoff_base_s: float = 1.0
    daemonset_failed_pod_backoff_max_s: float = 900.0
    # CronJob: how often the controller looks at every schedule.
    cronjob_resync_s: float = 10.0
    # Garbage collector: how often the owner graph is checked for dangling refs.
    gc_resync_s: float = 30.0
    # PersistentVolume binder's periodic sync (--pvclaimbinder-sync-period).
    pv_sync_period_s: float = 15.0
    # Endpoints / EndpointSlice controllers: the delay that batches a
    # Service's pod changes into one sync (--endpoint-updates-batch-period,
    # --endpointslice-updates-batch-period; Kubernetes' default 0: none) and
    # the endpoints of one slice (--max-endpoints-per-slice).
    endpoint_updates_batch_period_s: float = 0.0
    endpointslice_updates_batch_period_s: float = 0.0
    max_endpoints_per_slice: int = 100
    # The LoadBalancer address pool (--load-balancer-ip-range; the supervisor
    # passes the cluster's 127.1.B.0/24).
    load_balancer_ip_range: str = "127.1.1.0/24"
    # The horizontal pod autoscaler (--horizontal-pod-autoscaler-*): how often
    # each HPA is looked at, the ratio within which nothing changes, the
    # scale-down stabilization window (without spec.behavior, or when it
    # leaves the window unset), how long after a pod's start its CPU is
    # judged by readiness, and the delay within which a pod's first
    # readiness change does not make it unready.
    hpa_sync_period_s: float = 15.0
    hpa_tolerance: float = 0.1
    hpa_downscale_stabilization_s: float = 300.0
    hpa_cpu_initialization_period_s: float = 300.0
    hpa_initial_readiness_delay_s: float = 30.0
    # Where the local-path provisioner makes volume directories ("" = off).
    volumes_dir: str = ""
    # Resource quota controller: the period of a full recount
    # (--resource-quota-sync-period, Kubernetes' 5m).
    resource_quota_sync_period_s: float = 300.0
    # Tests only (--clock-offset-file): the controllers' clock is the wall
    # clock plus the seconds this file holds, so a test moves CronJob time on.
    clock_offset_file: str = ""
    # Node lifecycle controller (--node-monitor-period, --node-monitor-grace-period,
    # --node-startup-grace-period; Kubernetes' defaults 5s, 50s, 1m0s).
    node_monitor_period_s: float = 5.0
    node_monitor_grace_s: float = 50.0
    node_startup_grace_s: float = 60.0
    # --node-eviction-rate, --secondary-node-eviction-rate (nodes per second),
    # --unhealthy-zone-threshold, --large-cluster-size-threshold.
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    # Pod garbage collector: its pass's period and how long a node pods are
    # bound to must be missing before they go (Kubernetes' gcCheckPeriod 20s
    # and quarantineTime 40s, constants there), the terminated pods kept
    # (--terminated-pod-gc-threshold; <= 0: all) and the deletes of one pass.
    pod_gc_period_s: float = 20.0
    pod_gc_quarantine_s: float = 40.0
    terminated_pod_gc_threshold: int = 12500
    pod_gc_deletes_per_pass_max: int = 500

    def workers(self, name: str, default: int) -> int:
        return self.concurrency.get(name, default)


class InformerFactory:
    """One Informer per resource, shared by every controller of a term."""

    def __init__(self, client: Client, loops: Loops, *, resync_s: float = 0.0):
        self.client = client
        self.loops = loops
        self.resync_s = resync_s
        self._informers: dict[str, Informer] = {}
        self._started = False

    def get(self, resource: str) -> Informer:
        informer = self._informers.get(resource)
        if informer is None:
            informer = self._informers[resource] = Informer(
                self.client, resource, resync_s=self.resync_s)
            indexers = {BY_CONTROLLER_UID: index_by_controller_uid,
                        BY_OWNER_UID: index_by_owner_uid}
            if REGISTRY.by_resource(resource).namespaced:
                indexers[BY_NAMESPACE] = index_by_namespace
            if resource == "pods":
                indexers[BY_NODE] = index_by_node_name
            if resource == "services":
                indexers[BY_SELECTOR] = index_by_service_selector
            informer.add_indexers(indexers)
            if self._started:
                informer.start(self.loops)
        return informer

    def start(self) -> None:
        self._started = True
        for informer in self._informers.values():
            informer.start(self.loops)

    async def wait_synced(self, resources: list[str] | None = None,
                          log_every_s: float = SYNC_WAIT_LOG_S) -> None:
        """Wait (as long as it takes) for the first list of each informer."""
        names = resources if resources is not None else list(self._informers)
        for name in names:
            informer = self.get(name)
            while True:
                try:
                    await informer.wait_synced(log_every_s)
                    break
                except TimeoutError:
                    log.warning("informer not synced yet", resource=name)

    def __iter__(self):  # noqa: ANN204 - iterator of Informer
        return iter(self._informers.values())


class FileOffsetClock:
    """The wall clock plus the offset (float seconds) written in a file: a
    test's way to move the controllers' time forward without waiting.

    The file is read again only when its mtime changes, and stat'ed at most
    every `check_every_s` (a stat of a local file; nothing that can hang). A
    missing or unreadable file means offset 0. Only the controllers' clock
    moves: leader election keeps the real one.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, check_every_s: float = 0.05):
        self.path = path
        self._clock = clock
        self._monotonic = monotonic
        self._check_every_s = check_every_s
        self._checked_at: float | None = None
        self._mtime_ns = -1
        self.offset_s = 0.0

    def __call__(self) -> float:
        now = self._monotonic()
        if self._checked_at is None or now - self._checked_at >= self._check_every_s:
            self._checked_at = now
            self._reload()
        return self._clock() + self.offset_s

    def _reload(self) -> None:
        try:
            mtime_ns = os.stat(self.path).st_mtime_ns
            if mtime_ns == self._mtime_ns:
                return
            with open(self.path, encoding="utf-8") as f:
                text = f.read(64).strip()
            self.offset_s = float(text) if text else 0.0
            self._mtime_ns = mtime_ns
        except (OSError, ValueError):
            self.offset_s = 0.0
            self._mtime_ns = -1


class Context:
    """What every controller of one term shares."""

    def __init__(self, client: Client, options: Options, loops: Loops, *,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.client = client
        self.options = options
        self.loops = loops
        if options.clock_offset_file:
            clock = FileOffsetClock(options.clock_offset_file, clock, monotonic)
        self.clock = clock
        self.monotonic = monotonic
        self.informers = InformerFactory(client, loops, resync_s=options.resync_s)
        # Whether we still hold the lease (set by the app while leading): a
        # process resumed after a pause must not act on a lease it lost.
        self.lease_ok: Callable[[], bool] = lambda: True
        self._recorders: dict[str, EventRecorder] = {}

    def recorder(self, component: str) -> EventRecorder:
        """The event recorder whose source is `component` (e.g. "deployment-controller")."""
        recorder = self._recorders.get(component)
        if recorder is None:
            recorder = self._recorders[component] = EventRecorder(
                self.client, component, instance=self.options.identity,
                queue_max=self.options.events_queue_max, clock=self.clock)
            recorder.start()
        return recorder

    async def stop(self, flush_events_s: float = 0.0) -> None:
        for recorder in self._recorders.values():
            if flush_events_s > 0:
                try:
                    await recorder.flush(flush_events_s)
                except TimeoutError:
                    log.warning("events not all written at stop", source=recorder.component)
            await recorder.stop()
        await self.loops.stop()


class Controller:
    """Informers -> keys -> rate-limited workqueue -> sync(key). Subclass per controller."""

    # kube-controller-manager's name (`--controllers`), e.g. "replicaset-controller".
    name: ClassVar[str] = ""
    # Older names `--controllers` also accepts (e.g. "replicaset").
    aliases: ClassVar[tuple[str, ...]] = ()
    # Workers when --concurrent-... does not say (Kubernetes' defaults).
    default_workers: ClassVar[int] = 5
    # Whether "*" enables it.
    on_by_default: ClassVar[bool] = True
    # The informers this controller waits for before its first sync.
    resources: ClassVar[tuple[str, ...]] = ()
    # The source of its events (defaults to `name`).
    event_source: ClassVar[str] = ""

    def __init__(self, ctx: Context):
        assert self.name, "a Controller subclass sets name"
        self.ctx = ctx
        self.client = ctx.client
        self.options = ctx.options
        opts = ctx.options
        self.queue = RateLimitingQueue(base_delay_s=opts.requeue_base_delay_s,
                                       max_delay_s=opts.requeue_max_delay_s,
                                       max_len=opts.queue_max)
        self.recorder = ctx.recorder(self.event_source or self.name)
        self.log = log.bind(controller=self.name)
        # Keys synced (successfully or not): tests and status.
        self.syncs = 0
        self.sync_errors = 0

    # ------------------------------------------------------------ helpers for handlers

    def informer(self, resource: str) -> Informer:
        return self.ctx.informers.get(resource)

    def enqueue(self, obj: Message | DeletedFinalStateUnknown | str) -> None:
        key = obj if isinstance(obj, str) else meta_namespace_key(object_of(obj))
        try:
            self.queue.add(key)
        except ShutDown:
            pass
        except Exception:  # noqa: BLE001 - QueueFull: the key is dropped, said loudly
            self.log.exception("workqueue refused a key", key=key)

    def enqueue_batched(self, keys: Iterable[str], batch_s: float) -> None:
        """Enqueue each key, after batch_s when it is > 0 (Kubernetes'
        --endpoint-updates-batch-period: one sync for a burst of pod changes)."""
        for key in keys:
            if batch_s > 0:
                self.enqueue_after(key, batch_s)
            else:
                self.enqueue(key)

    def enqueue_after(self, obj: Message | str, delay_s: float) -> None:
        key = obj if isinstance(obj, str) else meta_namespace_key(obj)
        try:
            self.queue.add_after(key, max(0.0, delay_s))
        except ShutDown:
            pass
        except Exception:  # noqa: BLE001
            self.log.exception("workqueue refused a key", key=key)

    # ------------------------------------------------------------ the loop

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    def resync_period_s(self) -> float:
        """Seconds between two `resync` calls; 0 (the default): none."""
        return 0.0

    def resync(self) -> None:
        """A periodic look besides the events (the CronJob's schedules, the
        garbage collector's sweep); like a handler, it only enqueues."""

    async def run(self, workers: int) -> None:
        """Wait for the informers, then run `workers` workers (and the resync
        loop, if any) until cancelled."""
        await self.ctx.informers.wait_synced(list(self.resources) or None)
        self.log.info("controller started", workers=workers)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._worker(), name=f"{self.name}-{i}")
                 for i in range(workers)]
        if self.resync_period_s() > 0:
            tasks.append(loop.create_task(self._resync_loop(), name=f"{self.name}-resync"))
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _resync_loop(self) -> None:
        await self.ctx.informers.wait_synced(list(self.resources) or None)
        while True:
            await asyncio.sleep(self.resync_period_s())
            try:
                self.resync()
            except Exception:  # noqa: BLE001 - a bug in one look must not end the looks
                self.log.exception("resync failed; trying again next period")

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """One sync of `key` with the retry policy (also what tests call)."""
        if not self.ctx.lease_ok():
            # The elector steps down soon; until then act on nothing.
            self.enqueue_after(key, self.options.retry_period_s)
            return
        self.syncs += 1
        try:
            await self.sync(key)
        except asyncio.CancelledError:
            raise
        except errors.Conflict as exc:
            # Our cache was stale: the informer brings the new version soon.
            self.log.debug("sync conflict; retrying", key=key, error=str(exc))
            self.queue.add_rate_limited(key)
        except (errors.ApiError, TimeoutError, OSError) as exc:
            self.sync_errors += 1
            self.log.warning("sync failed; retrying", key=key, error=str(exc),
                             requeues=self.queue.num_requeues(key))
            self.queue.add_rate_limited(key)
        except Exception:  # noqa: BLE001 - a bug in one key must not stop the others
            self.sync_errors += 1
            self.log.exception("sync failed (bug); retrying", key=key)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)


def split_key(key: str) -> tuple[str, str]:
    """(namespace, name) of a "namespace/name" (or "name") key."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def copy(msg: Any) -> Any:
    out = type(msg)()
    out.CopyFrom(msg)
    return out
