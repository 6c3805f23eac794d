"""The node lifecycle controller (kubernetes/pkg/controller/nodelifecycle).

Model, as kube-controller-manager's `node-lifecycle-controller`:
- Health: each Node's last sign of life is the controller's own clock at the
  moment it saw the Ready condition's lastHeartbeatTime change or the node's
  Lease (kube-node-lease/<node>) get a new renewTime (Kubernetes'
  probeTimestamp; the kubelet's clock is never compared with ours). A node
  seen for the first time (a new leader, a new node) counts as alive now; a
  node that never posted a Ready condition counts from its creation.
- Every `--node-monitor-period` each node is synced (and on every Node
  event). One silent for longer than `--node-monitor-grace-period`
  (`--node-startup-grace-period` while it never posted Ready) gets every
  condition the kubelet owns (Ready, MemoryPressure, DiskPressure,
  PIDPressure) set to Unknown, reason NodeStatusUnknown, "Kubelet stopped
  posting node status." (a condition it never posted: NodeStatusNeverUpdated,
  "Kubelet never posted node status."), written through UpdateStatus.
- Taints follow the Ready condition, Kubernetes' TaintNodesByCondition and
  taint-based eviction passes together: False -> node.kubernetes.io/not-ready,
  Unknown -> node.kubernetes.io/unreachable, each NoSchedule and NoExecute,
  with timeAdded; the opposite pair and, once Ready is True again, both pairs
  are removed. A cordoned node (spec.unschedulable) gets
  node.kubernetes.io/unschedulable:NoSchedule while it is. New NoExecute taints are rate limited as Kubernetes' zones
  are (all nodes are one zone here): --node-eviction-rate nodes per second
  (0.1) while the zone is healthy; in a partly disrupted zone (more than two
  nodes and at least --unhealthy-zone-threshold of them not Ready) the
  --secondary-node-eviction-rate, 0 in clusters of at most
  --large-cluster-size-threshold nodes; while no node at all is Ready (the
  control plane more likely lost the nodes than the nodes died) no NoExecute
  taint is put or kept, so nothing is evicted.
- Pods on a node whose Ready is not True get their Ready condition set to
  False (MarkPodsNotReady), with the Warning event NodeNotReady "Node is not
  ready"; the node gets the event NodeNotReady when we see it leave Ready.
- A monitor pass that comes much later than its period (this process was
  paused) restarts every node's grace period: what we did not watch cannot
  be blamed on the nodes.
- Silence is measured on the monotonic clock (`Context.monotonic`): a wall
  clock that jumps (or the tests' --clock-offset-file) never makes a node
  look silent. Conditions' and taints' times are the controllers' clock.

The decisions are pure functions of (node, lease, saved health, now), tested
on a fake clock; `sync` does the I/O. Not done: zones from the nodes'
topology labels, and the Memory/Disk/PIDPressure NoSchedule taints (the
nodes share the host's disk: a host under 10% free would taint them all).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.client.events import NORMAL, WARNING

from controller_manager import controllerutil as cu
from controller_manager.base import BY_NODE, Context, Controller, copy

NODE_LEASE_NAMESPACE = "kube-node-lease"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
READY = "Ready"
# The conditions the kubelet owns; NetworkUnavailable is the network's.
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
STATUS_UNKNOWN_REASON = "NodeStatusUnknown"
STATUS_UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_UPDATED_REASON = "NodeStatusNeverUpdated"
NEVER_UPDATED_MESSAGE = "Kubelet never posted node status."
# The taints this controller owns: (key, effect).
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
OWNED_TAINTS = frozenset([*((key, effect) for key in (NOT_READY_TAINT, UNREACHABLE_TAINT)
                            for effect in (NO_SCHEDULE, NO_EXECUTE)),
                          (UNSCHEDULABLE_TAINT, NO_SCHEDULE)])
# A monitor pass this many periods late means the process was not running.
LATE_PASS_PERIODS = 3.0


@dataclasses.dataclass(frozen=True)
class Health:
    """What the controller last saw of one node (Kubernetes' nodeHealthData)."""

    probe_s: float        # our clock when the node last showed life
    heartbeat: str        # its Ready condition's lastHeartbeatTime ("" none)
    lease_renew: str      # its Lease's renewTime ("" none)
    ready: str            # its Ready status ("" none)


def ready_condition(node: Message) -> Message | None:
    return cu.get_condition(node.status, READY)


def ready_status(node: Message) -> str:
    """"True", "False", "Unknown", or "" when the kubelet never posted Ready."""
    cond = ready_condition(node)
    return cond.status if cond is not None else ""


def observe(saved: Health | None, node: Message, lease: Message | None, now_s: float,
            awake_since_s: float = 0.0, wall_s: float | None = None) -> Health:
    """The node's health after one look (tryUpdateNodeHealth's bookkeeping):
    the probe time moves to now when the heartbeat or the lease renewal is
    new, never from the node's own timestamps. Times are on the controller's
    monotonic clock (`now_s`); `wall_s` (default: `now_s`) is the wall clock
    then, to place the node's creation on it."""
    cond = ready_condition(node)
    heartbeat = cond.last_heartbeat_time if cond is not None else ""
    renew = lease.spec.renew_time if lease is not None else ""
    if saved is None:
        wall_s = now_s if wall_s is None else wall_s
        age_s = max(0.0, wall_s - cu.created_s(node))
        probe_s = now_s if cond is not None else now_s - age_s
    elif heartbeat != saved.heartbeat:
        probe_s = now_s
    else:
        probe_s = saved.probe_s
    if renew and (saved is None or renew != saved.lease_renew):
        probe_s = now_s
    return Health(probe_s=max(probe_s, awake_since_s), heartbeat=heartbeat,
                  lease_renew=renew, ready=cond.status if cond is not None else "")


def grace_period_s(node: Message, monitor_grace_s: float, startup_grace_s: float) -> float:
    return monitor_grace_s if ready_condition(node) is not None else startup_grace_s


def is_silent(health: Health, node: Message, now_s: float, monitor_grace_s: float,
              startup_grace_s: float) -> bool:
    return now_s > health.probe_s + grace_period_s(node, monitor_grace_s, startup_grace_s)


def unknown_conditions(node: Message, now: str) -> list[Message] | None:
    """The node's conditions with every kubelet-owned one Unknown (missing ones
    added as never updated), or None when they already are."""
    out = [copy(c) for c in node.status.conditions]
    by_type = {c.type: c for c in out}
    changed = False
    for kind in KUBELET_CONDITIONS:
        cond = by_type.get(kind)
        if cond is None:
            out.append(core_pb2.NodeCondition(
                type=kind, status="Unknown", reason=NEVER_UPDATED_REASON,
                message=NEVER_UPDATED_MESSAGE, last_heartbeat_time=node.metadata.creation_timestamp,
                last_transition_time=now))
            changed = True
        elif cond.status != "Unknown":
            cond.status = "Unknown"
            cond.reason = STATUS_UNKNOWN_REASON
            cond.message = STATUS_UNKNOWN_MESSAGE
            cond.last_transition_time = now
            changed = True
    return out if changed else None


# The zone's state (ComputeZoneState), from its nodes' Ready statuses.
NORMAL_ZONE = "Normal"
PARTIAL_DISRUPTION = "PartialDisruption"
FULL_DISRUPTION = "FullDisruption"


def zone_state(ready_statuses: Iterable[str], unhealthy_threshold: float) -> str:
    """FullDisruption when no node is Ready; PartialDisruption when more than
    two are not and they are at least `unhealthy_threshold` of the zone."""
    statuses = list(ready_statuses)
    not_ready = sum(1 for s in statuses if s != "True")
    if not_ready and not_ready == len(statuses):
        return FULL_DISRUPTION
    if not_ready > 2 and not_ready / len(statuses) >= unhealthy_threshold:
        return PARTIAL_DISRUPTION
    return NORMAL_ZONE


def eviction_rate(state: str, nodes: int, rate: float, secondary_rate: float,
                  large_cluster_nodes: int) -> float:
    """Nodes per second that may get a new NoExecute taint (setLimiterInZone):
    the secondary rate in a partly disrupted zone, and none there in a cluster
    of at most `large_cluster_nodes`; none in a fully disrupted one."""
    if state == NORMAL_ZONE:
        return rate
    if state == PARTIAL_DISRUPTION:
        return secondary_rate if nodes > large_cluster_nodes else 0.0
    return 0.0


class EvictionLimiter:
    """Kubernetes' per-zone eviction limiter: a token bucket holding one token
    (EvictionRateLimiterBurst), refilled at the rate given with each try.
    `try_accept` takes the token, or says how long until there is one (inf
    at rate 0); it never reserves, as TryAccept."""

    def __init__(self, now_s: float):
        self._tokens = 1.0
        self._last_s = now_s

    def try_accept(self, now_s: float, rate: float) -> float:
        elapsed_s = max(0.0, now_s - self._last_s)
        self._last_s = now_s
        if rate > 0:
            self._tokens = min(1.0, self._tokens + elapsed_s * rate)
        if self._tokens >= 1.0 and rate > 0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rate if rate > 0 else float("inf")


def wanted_taints(ready: str, no_execute: bool, unschedulable: bool = False
                  ) -> list[tuple[str, str]]:
    """The owned taints a node with this Ready status (and spec.unschedulable)
    should carry, in the order Kubernetes adds them (NoSchedule first);
    `no_execute`: with the NoExecute one too."""
    key = {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT}.get(ready)
    out = [(key, NO_SCHEDULE)] if key is not None else []
    if unschedulable:
        out.append((UNSCHEDULABLE_TAINT, NO_SCHEDULE))
    if key is not None and no_execute:
        out.append((key, NO_EXECUTE))
    return out


def has_no_execute_taint(taints: Iterable[Message]) -> bool:
    """Whether the node carries one of the owned NoExecute taints (then a
    swap between not-ready and unreachable needs no token, as Kubernetes)."""
    return any((t.key, t.effect) in OWNED_TAINTS and t.effect == NO_EXECUTE for t in taints)


def reconcile_taints(taints: Sequence[Message], wanted: Iterable[tuple[str, str]],
                     now: str) -> list[Message] | None:
    """The node's taints with the owned ones made `wanted` (new ones get
    timeAdded `now`; others are kept as they are), or None when nothing changes."""
    wanted = list(wanted)
    keep = [copy(t) for t in taints
            if (t.key, t.effect) not in OWNED_TAINTS or (t.key, t.effect) in wanted]
    present = {(t.key, t.effect) for t in keep}
    added = [core_pb2.Taint(key=key, effect=effect, time_added=now)
             for key, effect in wanted if (key, effect) not in present]
    if not added and len(keep) == len(taints):
        return None
    return keep + added


def pods_to_mark_not_ready(pods: Iterable[Message], node_name: str) -> list[Message]:
    """The pods on the node whose Ready condition is True (MarkPodsNotReady)."""
    return [p for p in pods if p.spec.node_name == node_name and cu.is_pod_ready(p)]


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    aliases = ("nodelifecycle",)
    resources = ("nodes", "leases", "pods")
    event_source = "node-controller"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.nodes = self.informer("nodes")
        self.leases = self.informer("leases")
        self.pods = self.informer("pods")
        # Bounded by the nodes: an entry goes with its Node.
        self.health: dict[str, Health] = {}
        self._last_pass_s: float | None = None
        self._awake_since_s = 0.0
        self.limiter = EvictionLimiter(ctx.monotonic())
        self.nodes.add_handler(self.enqueue, lambda _old, new: self.enqueue(new), self.enqueue)
        self.pods.add_handler(self._pod_changed, lambda _old, new: self._pod_changed(new))

    def _pod_changed(self, pod: Message) -> None:
        # A Ready pod on a node that is not: mark it (Kubernetes' processPod).
        if not pod.spec.node_name or not cu.is_pod_ready(pod):
            return
        node = self.nodes.get(pod.spec.node_name)
        if node is not None and ready_status(node) not in ("True", ""):
            self.enqueue(pod.spec.node_name)

    def resync_period_s(self) -> float:
        return self.options.node_monitor_period_s

    def resync(self) -> None:
        now_s = self.ctx.monotonic()
        period_s = self.options.node_monitor_period_s
        if self._last_pass_s is not None and now_s - self._last_pass_s > \
                LATE_PASS_PERIODS * period_s + 1.0:
            self.log.warning("monitor pass late; restarting every node's grace period",
                             late_s=round(now_s - self._last_pass_s - period_s, 1))
            self._awake_since_s = now_s
        self._last_pass_s = now_s
        for node in self.nodes.list():
            self.enqueue(node)

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self.health.pop(key, None)
            return
        name = node.metadata.name
        opts = self.options
        now_s = self.ctx.monotonic()
        wall_s = self.ctx.clock()
        now = timefmt.rfc3339(wall_s)
        saved = self.health.get(name)
        lease = self.leases.get(f"{NODE_LEASE_NAMESPACE}/{name}")
        health = observe(saved, node, lease, now_s, self._awake_since_s, wall_s)
        self.health[name] = health
        if is_silent(health, node, now_s, opts.node_monitor_grace_s, opts.node_startup_grace_s):
            conditions = unknown_conditions(node, now)
            if conditions is not None:
                self.log.info("node stopped posting status; conditions Unknown", node=name,
                              silent_s=round(now_s - health.probe_s, 1))
                fresh = copy(node)
                del fresh.status.conditions[:]
                fresh.status.conditions.extend(conditions)
                node = await self.client.update_status(fresh)
        ready = ready_status(node)
        if saved is not None and saved.ready == "True" and ready != "True":
            self.recorder.record(node, NORMAL, "NodeNotReady",
                                 f"Node {name} status is now: NodeNotReady")
        # Keep what we wrote as seen, so that our own write is not a heartbeat.
        self.health[name] = dataclasses.replace(health, ready=ready)
        no_execute = self._no_execute(name, ready, node.spec.taints, now_s)
        taints = reconcile_taints(node.spec.taints,
                                  wanted_taints(ready, no_execute, node.spec.unschedulable), now)
        if taints is not None:
            fresh = copy(node)
            del fresh.spec.taints[:]
            fresh.spec.taints.extend(taints)
            self.log.info("node taints changed", node=name, ready=ready or "<none>",
                          taints=[f"{t.key}:{t.effect}" for t in taints])
            node = await self.client.update(fresh)
        if ready not in ("True", ""):
            await self._mark_pods_not_ready(name)

    def _no_execute(self, name: str, ready: str, taints: Sequence[Message], now_s: float) -> bool:
        """Whether the node (not Ready) is to carry the NoExecute taint: not
        while the zone (here: the whole cluster; nodes have no zone labels
        that we read) is fully disrupted; kept but not newly put while it is
        partly disrupted in a small cluster; else new ones at the eviction
        rate (a node that must wait is synced again when its turn comes)."""
        if ready in ("True", ""):
            return False
        opts = self.options
        statuses = [ready if n.metadata.name == name else ready_status(n)
                    for n in self.nodes.list()]
        state = zone_state(statuses, opts.unhealthy_zone_threshold)
        if state == FULL_DISRUPTION:
            return False
        if has_no_execute_taint(taints):
            return True
        rate = eviction_rate(state, len(statuses), opts.node_eviction_rate,
                             opts.secondary_node_eviction_rate, opts.large_cluster_size_threshold)
        wait_s = self.limiter.try_accept(now_s, rate)
        if wait_s == 0.0:
            return True
        if wait_s != float("inf"):
            self.enqueue_after(name, wait_s)
        return False

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        failed: Exception | None = None
        for pod in pods_to_mark_not_ready(self.pods.by_index(BY_NODE, node_name), node_name):
            fresh = copy(pod)
            cond = cu.get_condition(fresh.status, "Ready")
            cond.status = "False"
            cond.last_transition_time = timefmt.rfc3339(self.ctx.clock())
            try:
                await self.client.update_status(fresh)
            except errors.NotFound:
                continue
            except (errors.ApiError, TimeoutError) as exc:
                failed = exc  # the others are still tried; the node is synced again
                continue
            self.recorder.record(fresh, WARNING, "NodeNotReady", "Node is not ready")
        if failed is not None:
            raise failed
