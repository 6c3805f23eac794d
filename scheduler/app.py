"""The scheduler process: informers -> queue and cache -> one scheduling loop -> async binds.

Model (kube-scheduler's, in one asyncio event loop):
- A `Term` is one stretch of this process's life: its own pod, node and
  namespace informers, SchedulerCache, SchedulingQueue and event recorder.
  Informers run (and caches stay warm) whether or not we lead; only the leader
  runs the scheduling loop. When leadership is lost the whole term is thrown
  away and a fresh standby term starts, so nothing a lost term assumed leaks
  into the next.
- Informer handlers only sort objects: pending pods whose schedulerName is ours
  go to the queue; assigned pods (not terminated) go to the cache; node,
  assigned-pod and namespace changes become cluster events that move
  unschedulable pods back (queue.move_all_to_active_or_backoff).
- The loop: pop -> skip stale (deleted, already assumed or bound) -> snapshot
  -> schedule_one with the seeded rng -> assume in the cache -> bind in a task
  (at most bind_concurrency in flight: the next pod is scheduled while binds
  are on the wire). A failed bind forgets the assumption and requeues with
  backoff. A pod that fits nowhere runs preemption (victim choice is pure; the
  API calls run in a bounded background task), gets a FailedScheduling event
  (de-duplicated) and PodScheduled=False, and goes back to the queue.
- Leadership: a Lease (kube-system/kube-scheduler). The elector cancels the
  loop when it steps down; in addition the loop checks before every decision
  that the lease was renewed within renew_deadline_s (a process that was
  paused resumes without binding anything on a stale lease).
Every RPC has a deadline (the Client's timeout_s); queues, caches and task
sets are bounded.
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import time
import uuid
from typing import Any, Awaitable, Callable

import structlog

from kubemu import server as grpc_server
from kubemu import aio, fileutil, timefmt
from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.events import (EVENTS_API, NORMAL, SERIES_HEARTBEAT_S, WARNING,
                                  EventRecorder)
from kubemu.client.informer import Informer, object_of
from kubemu.client.leaderelection import LeaderElector
from kubemu.loops import Loops

from scheduler import podutil, preemption
from scheduler.cache import CacheError, CacheFull, SchedulerCache
from scheduler.framework import (ASSIGNED_POD_ADD, ASSIGNED_POD_DELETE, ASSIGNED_POD_UPDATE,
                                 DEFAULT_SCHEDULER_NAME, NODE_ADD, NODE_DELETE, Framework,
                                 PodInfo, SchedulingError, schedule_one)
from scheduler.podutil import PodKey
from scheduler.queue import QueueFull, QueuedPodInfo, SchedulingQueue, node_update_events

log = structlog.get_logger("scheduler")

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")
DEFAULT_GRACE_PERIOD_S = 30
STATUS_UPDATE_ATTEMPTS = 3
HOUSEKEEPING_INTERVAL_S = 1.0
SYNC_WAIT_LOG_S = 30.0
DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"


@dataclasses.dataclass
class Options:
    apiserver: str
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    leader_elect: bool = True
    lease_namespace: str = LEASE_NAMESPACE
    lease_name: str = LEASE_NAME
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    identity: str = ""
    seed: int | None = None
    pod_initial_backoff_s: float = 1.0
    pod_max_backoff_s: float = 10.0
    health_listen: str = "127.0.0.1:0"
    address_file: str = ""
    rpc_timeout_s: float = 10.0
    # Binds on the wire at once; the loop waits for a slot (backpressure).
    bind_concurrency: int = 128
    # Status updates and preemptions in flight; beyond it a condition update
    # is skipped (the event still says why) and preemption waits for its turn.
    api_writes_max: int = 256
    queue_max: int = 100_000
    assumed_pod_ttl_s: float = 30.0
    # Larger than client-go's 1000: a 2,000-pod burst keeps all its Scheduled events.
    events_queue_max: int = 10_000
    # client-go tools/events' refreshTime: a FailedScheduling series' count is
    # written at most this often after its second occurrence.
    event_series_heartbeat_s: float = SERIES_HEARTBEAT_S
    shutdown_grace_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.identity:
            # kube-scheduler's: hostname + "_" + a fresh UUID, unique per process.
            self.identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        if self.bind_concurrency <= 0 or self.api_writes_max <= 0:
            raise ValueError("bind_concurrency and api_writes_max must be > 0")


class LeaseLost(Exception):
    """The lease was not renewed in time: stop scheduling at once."""


def is_terminal(pod: Any) -> bool:
    return pod.status.phase in TERMINAL_PHASES


def _copy(msg: Any) -> Any:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


class Term:
    """One term's informers, cache and queue; schedules while `lead()` runs."""

    def __init__(self, client: Client, options: Options, framework: Framework,
                 rng: random.Random, loops: Loops | None = None):
        self.client = client
        # The term's informers and housekeeping: restarted after a bug, and
        # reported on the health endpoint while down (when the app wires it).
        self.loops = loops or Loops()
        self.options = options
        self.framework = framework
        self.rng = rng
        self.scheduler_name = framework.scheduler_name
        self.cache = SchedulerCache(assumed_pod_ttl_s=options.assumed_pod_ttl_s)
        self.queue = SchedulingQueue(initial_backoff_s=options.pod_initial_backoff_s,
                                     max_backoff_s=options.pod_max_backoff_s,
                                     max_len=options.queue_max,
                                     events_to_plugins=framework.events_to_plugins)
        self.pods = Informer(client, "pods")
        self.nodes = Informer(client, "nodes")
        self.namespaces = Informer(client, "namespaces")
        # kube-scheduler records through the events.k8s.io recorder (series,
        # not count). Its reportingInstance is "<scheduler name>-<hostname>";
        # here every replica shares one host, so the leader-election identity
        # stands in and still tells the replicas' events apart.
        self.recorder = EventRecorder(
            client, self.scheduler_name, instance=options.identity,
            queue_max=options.events_queue_max, api=EVENTS_API,
            series_heartbeat_s=options.event_series_heartbeat_s,
            series_tick_s=min(30.0, options.event_series_heartbeat_s))
        self._bind_slots = asyncio.Semaphore(options.bind_concurrency)
        self._write_slots = asyncio.Semaphore(options.api_writes_max)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_start = 0
        self.scheduled = 0
        self.failed_attempts = 0
        self._log = log.bind(scheduler=self.scheduler_name)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.namespaces.add_handler(self._on_namespace, lambda _old, new: self._on_namespace(new),
                                    self._on_namespace_delete)

    # ------------------------------------------------------------ lifecycle

    async def start(self, stop_waiting_log_s: float = SYNC_WAIT_LOG_S) -> None:
        """Start the informers and wait (as long as it takes) for their first list."""
        for informer in (self.namespaces, self.nodes, self.pods):
            informer.start(self.loops)
        for informer in (self.namespaces, self.nodes, self.pods):
            while True:
                try:
                    await informer.wait_synced(stop_waiting_log_s)
                    break
                except TimeoutError:
                    self._log.warning("informer not synced yet", resource=informer.resource)
        self._log.info("caches synced", nodes=len(self.nodes.store), pods=len(self.pods.store),
                       pending=len(self.queue))

    async def stop(self, flush_events_s: float = 0.0) -> None:
        """Stop everything; with flush_events_s, queued events get that long to be written."""
        self.queue.close()
        await self._cancel_tasks()
        if flush_events_s > 0:
            try:
                await self.recorder.flush(flush_events_s)
            except TimeoutError:
                self._log.warning("events not all written at stop",
                                  dropped=self.recorder.dropped)
        await self.recorder.stop()
        await self.loops.stop()

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def lead(self, lease_ok: Callable[[], bool]) -> None:
        """Schedule until cancelled (or until lease_ok() says the lease went stale)."""
        self._log.info("scheduling", pending=len(self.queue))
        self.recorder.start()
        self.loops.spawn("housekeeping", self._housekeeping)
        try:
            while True:
                info = await self.queue.pop()
                if not lease_ok():
                    self.queue.done(info.key)
                    raise LeaseLost("the lease was not renewed within the renew deadline")
                await self._bind_slots.acquire()
                took_slot = False
                try:
                    took_slot = self.schedule(info)
                except Exception:  # noqa: BLE001 - a bug must not stop scheduling others
                    self._log.exception("scheduling cycle failed", pod=str(info.key))
                    self.queue.add_unschedulable(info, ())
                    self.queue.done(info.key)
                finally:
                    if not took_slot:
                        self._bind_slots.release()
                # Let bind replies and informer events in between two pods.
                await asyncio.sleep(0)
        finally:
            await self.loops.cancel("housekeeping")
            await self._cancel_tasks()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            expired = self.cache.cleanup_expired()
            if expired:
                self._log.warning("assumed pods expired without a bind confirmation",
                                  pods=[str(k) for k in expired[:20]], count=len(expired))

    # ------------------------------------------------------------ informer handlers

    def _responsible(self, pod: Any) -> bool:
        return (pod.spec.scheduler_name or DEFAULT_SCHEDULER_NAME) == self.scheduler_name

    def _move(self, event: str) -> None:
        self.queue.move_all_to_active_or_backoff(event)

    def _on_pod_add(self, pod: Any) -> None:
        if pod.spec.node_name:
            if not is_terminal(pod):
                self.cache.add_pod(pod)
                self._move(ASSIGNED_POD_ADD)
        elif (self._responsible(pod) and not pod.metadata.deletion_timestamp
              and not is_terminal(pod)):
            self._enqueue(lambda: self.queue.add(pod), pod)

    def _on_pod_update(self, old: Any, new: Any) -> None:
        if new.spec.node_name:
            if not old.spec.node_name:
                self.queue.delete(old)  # bound: no longer ours to schedule
            if is_terminal(new):
                # A finished pod frees its requests (kube drops it from the cache).
                if self.cache.get_pod(podutil.pod_key(new)) is not None:
                    self.cache.remove_pod(new)
                    self._move(ASSIGNED_POD_DELETE)
                return
            self.cache.update_pod(old, new)
            if not old.spec.node_name:
                self._move(ASSIGNED_POD_ADD)
            elif dict(old.metadata.labels) != dict(new.metadata.labels):
                self._move(ASSIGNED_POD_UPDATE)
            return
        if not self._responsible(new):
            if self._responsible(old):
                self.queue.delete(old)
            return
        if self.cache.is_assumed(podutil.pod_key(new)):
            return  # our bind is in flight; the informer has not seen it yet
        self._enqueue(lambda: self.queue.update(old, new), new)

    def _on_pod_delete(self, pod: Any) -> None:
        pod = object_of(pod)  # a tombstone after a relist: its last known state
        key = podutil.pod_key(pod)
        if pod.spec.node_name or self.cache.get_pod(key) is not None:
            if self.cache.is_assumed(key):
                self.cache.forget(key)
            else:
                self.cache.remove_pod(pod)
            self._move(ASSIGNED_POD_DELETE)
        self.queue.delete(pod)

    def _enqueue(self, add: Callable[[], None], pod: Any) -> None:
        try:
            add()
        except QueueFull as exc:
            # Informer handlers must not raise; the pod is picked up again when
            # it changes or on the next relist.
            self._log.error("scheduling queue full; pod not queued", pod=str(podutil.pod_key(pod)),
                            error=str(exc))

    def _on_node_add(self, node: Any) -> None:
        self.cache.add_node(node)
        self._move(NODE_ADD)

    def _on_node_update(self, old: Any, new: Any) -> None:
        self.cache.update_node(old, new)
        for event in node_update_events(old, new):
            self._move(event)

    def _on_node_delete(self, node: Any) -> None:
        self.cache.remove_node(object_of(node))
        self._move(NODE_DELETE)

    def _on_namespace(self, ns: Any) -> None:
        self.cache.set_namespace_labels(ns.metadata.name, ns.metadata.labels)

    def _on_namespace_delete(self, ns: Any) -> None:
        self.cache.remove_namespace(ns.metadata.name)

    # ------------------------------------------------------------ one pod

    def schedule(self, info: QueuedPodInfo) -> bool:
        """One scheduling cycle; True when a bind task was started (it owns a bind slot)."""
        pod, key = info.pod, info.key
        if self._skip(pod, key):
            self.queue.done(key)
            return False
        snapshot = self.cache.snapshot()
        pod_info = PodInfo(pod)  # computed once: the cycle and the cache share it
        try:
            result = schedule_one(self.framework, pod, snapshot, self.rng,
                                  start_index=self._next_start, pod_info=pod_info)
        except SchedulingError as exc:
            self._log.error("scheduling error", pod=str(key), error=str(exc))
            self._record_failure(pod, f"running scheduling plugins: {exc}")
            self.queue.add_unschedulable(info, ())
            self.queue.done(key)
            return False
        self._next_start = result.next_start_index
        if result.node_name is None:
            self._unschedulable(info, snapshot, result.diagnosis)
            return False
        try:
            self.cache.assume(pod, result.node_name, pod_info)
        except (CacheError, CacheFull) as exc:
            self._log.error("cannot assume pod", pod=str(key), error=str(exc))
            self.queue.add_unschedulable(info, ())
            self.queue.done(key)
            return False
        self._spawn(self._bind(info, result.node_name), f"bind:{key}")
        return True

    def _skip(self, pod: Any, key: PodKey) -> bool:
        """kube's skipPodSchedule: the popped copy is stale or not ours any more."""
        if pod.metadata.deletion_timestamp:
            return True
        if self.cache.get_pod(key) is not None:
            return True  # assumed (bind in flight) or already bound
        latest = self.pods.get(f"{key.namespace}/{key.name}")
        return (latest is None or latest.metadata.uid != key.uid or bool(latest.spec.node_name)
                or not self._responsible(latest))

    async def _bind(self, info: QueuedPodInfo, node_name: str) -> None:
        pod, key = info.pod, info.key
        try:
            try:
                await self.client.bind(key.namespace, key.name, node_name, uid=key.uid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: undo and retry later
                self.cache.forget(key)
                if isinstance(exc, errors.NotFound):
                    return  # deleted meanwhile: nothing to schedule
                self._log.warning("bind failed", pod=str(key), node=node_name,
                                  error=f"{type(exc).__name__}: {exc}")
                if not (isinstance(exc, errors.Conflict) and "already assigned" in str(exc)):
                    self._record_failure(pod, f"Binding rejected: {exc}")
                # Back off; if the pod got bound or deleted meanwhile the
                # informer takes it out of the queue again.
                self.queue.add_unschedulable(info, ())
                return
            self.cache.finish_binding(key)
            self.scheduled += 1
            self.recorder.record(pod, NORMAL, "Scheduled",
                                 f"Successfully assigned {key} to {node_name}", action="Binding")
            self._log.debug("bound", pod=str(key), node=node_name, attempts=info.attempts)
        finally:
            self.queue.done(key)
            self._bind_slots.release()

    def _unschedulable(self, info: QueuedPodInfo, snapshot: Any, diagnosis: Any) -> None:
        pod, key = info.pod, info.key
        self.failed_attempts += 1
        post_filter_msg = ""
        if diagnosis.num_all_nodes > 0:
            try:
                result = preemption.preempt(self.framework, pod, snapshot, diagnosis)
            except SchedulingError as exc:
                self._log.error("preemption failed", pod=str(key), error=str(exc))
                result = None
            if result is not None:
                post_filter_msg = result.message
                if result.node_name is not None:
                    self._log.info("preempting", pod=str(key), node=result.node_name,
                                   victims=[str(podutil.pod_key(v)) for v in result.victims])
                    self._spawn_write(self._preempt(pod, result.node_name, result.victims),
                                      f"preempt:{key}", must=True)
        message = diagnosis.message(post_filter_msg)
        self._record_failure(pod, message)
        where = self.queue.add_unschedulable(info, diagnosis.unschedulable_plugins)
        self.queue.done(key)
        self._log.info("unschedulable", pod=str(key), message=message, requeued_to=where,
                       attempts=info.attempts)

    def _record_failure(self, pod: Any, message: str) -> None:
        self.recorder.record(pod, WARNING, "FailedScheduling", message, action="Scheduling")
        if _scheduled_condition_is(pod, "False", "Unschedulable", message):
            return
        self._spawn_write(self._set_unschedulable(pod, message), f"condition:{pod.metadata.name}")

    # ------------------------------------------------------------ API writes

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("background task failed", task=task.get_name(),
                            error=repr(task.exception()))

    def _spawn_write(self, coro: Awaitable[Any], name: str, *, must: bool = False) -> None:
        """Run an API write in the background, at most api_writes_max at once.

        Beyond the bound an optional write (a condition) is dropped; a `must`
        one (preemption) waits for a slot in its task, unless that many are
        waiting already (then it is dropped too: the pod's next attempt redoes it).
        """
        waiting_max = self.options.bind_concurrency + 2 * self.options.api_writes_max
        if (self._write_slots.locked() and not must) or len(self._tasks) >= waiting_max:
            self._log.warning("too many API writes in flight; skipping one", task=name)
            coro.close()  # type: ignore[attr-defined]
            return

        async def run() -> None:
            async with self._write_slots:
                await coro
        self._spawn(run(), name)

    async def _update_pod_status(self, pod: Any, mutate: Callable[[Any], bool]) -> Any | None:
        """Change a pod's status from its latest copy; None when the pod is gone.

        `mutate(copy)` returns False when there is nothing to change. Conflicts
        are retried (a few times) from a fresh GET.
        """
        key = podutil.pod_key(pod)
        current = self.pods.get(f"{key.namespace}/{key.name}") or pod
        for attempt in range(STATUS_UPDATE_ATTEMPTS):
            if current.metadata.uid != key.uid:
                return None
            changed = _copy(current)
            if not mutate(changed):
                return current
            try:
                return await self.client.update_status(changed)
            except errors.NotFound:
                return None
            except errors.Conflict:
                if attempt + 1 == STATUS_UPDATE_ATTEMPTS:
                    raise
                current = await self.client.get("pods", key.name, key.namespace)
        return None

    async def _set_unschedulable(self, pod: Any, message: str) -> None:
        def mutate(p: Any) -> bool:
            if p.spec.node_name:
                return False  # bound meanwhile
            return _set_condition(p, "PodScheduled", "False", "Unschedulable", message)
        try:
            await self._update_pod_status(pod, mutate)
        except errors.ApiError as exc:
            self._log.info("cannot set PodScheduled condition", pod=str(podutil.pod_key(pod)),
                           error=str(exc))

    async def _preempt(self, pod: Any, node_name: str, victims: tuple[Any, ...]) -> None:
        """The API side of preemption: victims marked and deleted, the preemptor nominated."""
        key = podutil.pod_key(pod)
        for victim in victims:
            victim_key = podutil.pod_key(victim)
            reason_msg = f"{self.scheduler_name}: preempting to accommodate a higher priority pod"
            try:
                await self._update_pod_status(victim, lambda p: _set_condition(
                    p, DISRUPTION_TARGET, "True", PREEMPTION_BY_SCHEDULER, reason_msg))
                grace_s = (victim.spec.termination_grace_period_seconds
                           if victim.spec.HasField("termination_grace_period_seconds")
                           else DEFAULT_GRACE_PERIOD_S)
                await self.client.delete("pods", victim_key.name, victim_key.namespace,
                                         grace_period_s=grace_s, uid=victim_key.uid)
            except errors.NotFound:
                continue  # gone already: that is what we wanted
            except errors.ApiError as exc:
                self._log.warning("cannot preempt victim", pod=str(key), victim=str(victim_key),
                                  error=str(exc))
                continue
            self.recorder.record(victim, NORMAL, "Preempted",
                                 f"Preempted by pod {key.uid} on node {node_name}", action="Preempting")

        def nominate(p: Any) -> bool:
            if p.spec.node_name or p.status.nominated_node_name == node_name:
                return False
            p.status.nominated_node_name = node_name
            return True
        try:
            await self._update_pod_status(pod, nominate)
        except errors.ApiError as exc:
            self._log.warning("cannot set nominatedNodeName", pod=str(key), error=str(exc))


def _scheduled_condition_is(pod: Any, status: str, reason: str, message: str) -> bool:
    for cond in pod.status.conditions:
        if cond.type == "PodScheduled":
            return cond.status == status and cond.reason == reason and cond.message == message
    return False


def _set_condition(pod: Any, type_: str, status: str, reason: str, message: str) -> bool:
    """Set a pod condition; False when it is already so (no write needed)."""
    now = timefmt.rfc3339()
    for cond in pod.status.conditions:
        if cond.type == type_:
            if cond.status == status and cond.reason == reason and cond.message == message:
                return False
            if cond.status != status:
                cond.last_transition_time = now
            cond.status, cond.reason, cond.message = status, reason, message
            return True
    pod.status.conditions.add(type=type_, status=status, reason=reason, message=message,
                              last_transition_time=now)
    return True


# ---------------------------------------------------------------- the process

class SchedulerApp:
    """Health server, client, and the standby/leader terms, until stopped."""

    def __init__(self, options: Options, framework: Framework,
                 clock: Callable[[], float] = time.time):
        self.options = options
        self.framework = framework
        self.rng = random.Random(options.seed)
        self._clock = clock
        self._log = log.bind(identity=options.identity)
        self.server: grpc_server.Server | None = None
        self.term: Term | None = None
        self.elector: LeaderElector | None = None
        self._stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        options = self.options
        client = Client(options.apiserver, timeout_s=options.rpc_timeout_s,
                        user_agent=f"kubemu-scheduler/{options.identity}")
        self.server = grpc_server.Server(options.health_listen, grace_s=options.shutdown_grace_s)
        address = await self.server.start()
        if options.address_file:
            # A write with fsync: off the event loop, which must never block.
            await asyncio.to_thread(fileutil.atomic_write, options.address_file, address + "\n")
        self._log.info("scheduler started", health=address, apiserver=options.apiserver,
                       scheduler_name=self.framework.scheduler_name,
                       leader_elect=options.leader_elect, seed=options.seed)
        try:
            await aio.run_until(stop, self._run_terms(client), before_cancel=self._stop_gracefully)
        finally:
            await self.server.stop()
            await client.close()
            self._log.info("scheduler stopped")

    async def _run_terms(self, client: Client) -> None:
        assert self.server is not None
        while True:
            term = self.term = Term(client, self.options, self.framework, self.rng,
                                    Loops(on_health=self._loop_health))
            try:
                await term.start()
                await self.server.set_serving(True)
                if not self.options.leader_elect:
                    await term.lead(lambda: True)
                    return
                elector = self.elector = LeaderElector(
                    client, self.options.lease_namespace, self.options.lease_name,
                    self.options.identity, lease_duration_s=self.options.lease_duration_s,
                    renew_deadline_s=self.options.renew_deadline_s,
                    retry_period_s=self.options.retry_period_s, clock=self._clock)
                self._log.info("waiting for the lease", lease=f"{self.options.lease_namespace}/"
                               f"{self.options.lease_name}")
                await elector.run(lambda: self._lead(term, elector), lambda: None)
                self._log.warning("stopped leading; starting over as a standby",
                                  scheduled=term.scheduled)
            finally:
                # A graceful stop lets queued events out (the lease is released by now).
                await term.stop(self.options.shutdown_grace_s if self._stopping else 0.0)

    def _stop_gracefully(self) -> None:
        self._stopping = True

    async def _loop_health(self, name: str, ok: bool) -> None:
        if self.server is not None:
            await self.server.set_check(f"loop:{name}", ok)

    async def _lead(self, term: Term, elector: LeaderElector) -> None:
        self._log.info("became leader")
        try:
            await term.lead(elector.holds_fresh_lease)
        except LeaseLost as exc:
            self._log.warning("stepping down", reason=str(exc))

