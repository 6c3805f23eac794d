"""The EndpointSlice controller (kubernetes/pkg/controller/endpointslice and
the k8s.io/endpointslice reconciler).

For every Service with a selector (not ExternalName), the IPv4
EndpointSlices of the pods it selects: named `<service>-<random>` through
generateName, labelled `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`
(plus the Service's own labels and `service.kubernetes.io/headless` for a
headless one), controlled by the Service (the garbage collector removes them
with it). One endpoint per pod with an IP that is not terminal, terminating
pods included: `ready` = Ready and not terminating (always true with
`publishNotReadyAddresses`), `serving` = Ready, `terminating` =
deletionTimestamp set; targetRef, nodeName, and hostname for a pod whose
spec.hostname is set and whose subdomain names the Service. Ports are the Service's, a named targetPort
resolved in each pod's containers: pods that resolve to different port sets
go to different slices. At most `Options.max_endpoints_per_slice` endpoints
a slice. A Service whose pods are all gone keeps one empty placeholder slice,
as Kubernetes does.

Minimal churn (the reconciler's order): endpoints that stay keep their
slice; a slice whose endpoints changed is updated in place and first gets
the new endpoints; the rest go into the unchanged slice they fill best, else
into new slices; a slice that would be deleted while another is created is
updated instead. A sync that changes nothing writes nothing.

Stale caches: every slice written is remembered with the resourceVersion
the write returned (Kubernetes' EndpointSliceTracker, keyed by generation;
kubemu's resourceVersions are etcd revisions, which only grow). A sync whose
cache does not yet show those versions (or still shows a slice it deleted)
retries (a Conflict: quietly, with backoff) instead of creating duplicates.
A managed slice changed or deleted by someone else (a version we did not
write) requeues its Service, which puts it back.

Handlers only enqueue Service keys: Services on every change; pods through
the services informer's selector index (the Services whose selector matches
the pod's labels, old and new, when something an endpoint shows changed:
readiness, IPs, deletion, labels, hostname); slices as above. The pod
handlers enqueue at once unless `--endpointslice-updates-batch-period-s`
says otherwise (Kubernetes' default 0), so a readiness change reaches the
slice within one sync.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any, Sequence

from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.v1 import discovery_pb2
from kubemu.client.informer import DeletedFinalStateUnknown, object_of

from controller_manager import controllerutil as cu
from controller_manager.base import BY_NAMESPACE, Context, Controller, copy, split_key

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ADDRESS_TYPE = "IPv4"
# The endpointslices informer's index: "<namespace>/<service-name label>".
BY_SERVICE = "service-name"
# Kubernetes' endpointSliceChangeMinSyncDelay: a slice changed by someone else
# is put back after a second, not in a tight fight with its writer.
SLICE_CHANGE_MIN_SYNC_DELAY_S = 1.0
_DELETION_EXPECTED = -1


def index_by_service_name(obj: Message) -> list[str]:
    name = obj.metadata.labels.get(LABEL_SERVICE_NAME, "")
    return [f"{obj.metadata.namespace}/{name}"] if name else []


def managed_by_us(obj: Message) -> bool:
    return obj.metadata.labels.get(LABEL_MANAGED_BY) == CONTROLLER_NAME


def service_key_of(obj: Message) -> str | None:
    name = obj.metadata.labels.get(LABEL_SERVICE_NAME, "")
    return f"{obj.metadata.namespace}/{name}" if name else None


def _rv(obj: Message) -> int:
    try:
        return int(obj.metadata.resource_version)
    except ValueError:
        return 0


class SliceTracker:
    """EndpointSliceTracker: per Service, the uid -> resourceVersion of every
    slice this controller wrote (or _DELETION_EXPECTED for one it deleted)."""

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}

    def update(self, svc_key: str, slice_: Message) -> None:
        self._by_service.setdefault(svc_key, {})[slice_.metadata.uid] = _rv(slice_)

    def expect_deletion(self, svc_key: str, slice_: Message) -> None:
        self._by_service.setdefault(svc_key, {})[slice_.metadata.uid] = _DELETION_EXPECTED

    def has(self, svc_key: str, slice_: Message) -> bool:
        return slice_.metadata.uid in self._by_service.get(svc_key, {})

    def should_sync(self, svc_key: str, slice_: Message) -> bool:
        """Whether an event of `slice_` is news: not a version we wrote."""
        known = self._by_service.get(svc_key, {}).get(slice_.metadata.uid)
        return known is None or _rv(slice_) > known

    def handle_deletion(self, svc_key: str, slice_: Message) -> bool:
        """Forget a deleted slice; whether we deleted it ourselves."""
        known = self._by_service.get(svc_key, {}).pop(slice_.metadata.uid, None)
        return known == _DELETION_EXPECTED

    def stale(self, svc_key: str, slices: Sequence[Message]) -> bool:
        """StaleSlices: the cache lacks a write of ours or still holds a slice we deleted."""
        tracked = self._by_service.get(svc_key)
        if not tracked:
            return False
        cached: dict[str, int] = {}
        for s in slices:
            cached[s.metadata.uid] = _rv(s)
            known = tracked.get(s.metadata.uid)
            if known is not None and (known == _DELETION_EXPECTED or known > _rv(s)):
                return True
        return any(known != _DELETION_EXPECTED and uid not in cached
                   for uid, known in tracked.items())

    def delete_service(self, svc_key: str) -> None:
        self._by_service.pop(svc_key, None)


# ---------------------------------------------------------------- desired state

PortKey = tuple[tuple[str, str, int, str | None], ...]
EndpointKey = tuple[str, tuple[str, ...], str]


def port_key(ports: Sequence[Message]) -> PortKey:
    return tuple(sorted((p.name, p.protocol, p.port,
                         p.app_protocol if p.HasField("app_protocol") else None)
                        for p in ports))


def endpoint_key(ep: Message) -> EndpointKey:
    ref = ep.target_ref
    who = ref.uid or f"{ref.namespace}/{ref.name}"
    return (who, tuple(sorted(ep.addresses)), ep.hostname if ep.HasField("hostname") else "")


def endpoint_ports(svc: Message, pod: Message) -> list[discovery_pb2.SliceEndpointPort]:
    """getEndpointPorts: the Service's ports as `pod` serves them (a named
    targetPort the pod lacks leaves that port out)."""
    out = []
    for sp in svc.spec.ports:
        number = cu.find_port(pod, sp)
        if number is None:
            continue
        port = discovery_pb2.SliceEndpointPort(name=sp.name, protocol=sp.protocol or "TCP",
                                               port=number)
        if sp.HasField("app_protocol"):
            port.app_protocol = sp.app_protocol
        out.append(port)
    return out


def pod_to_endpoint(pod: Message, svc: Message) -> discovery_pb2.SliceEndpoint:
    """podToEndpoint (IPv4 addresses only: kubemu's pod network is 127.0.0.0/8)."""
    serving = cu.is_pod_ready(pod)
    terminating = bool(pod.metadata.deletion_timestamp)
    ready = svc.spec.publish_not_ready_addresses or (serving and not terminating)
    ep = discovery_pb2.SliceEndpoint(addresses=[ip for ip in cu.pod_ips(pod) if ":" not in ip])
    ep.conditions.ready = ready
    ep.conditions.serving = serving
    ep.conditions.terminating = terminating
    ep.target_ref.kind = "Pod"
    ep.target_ref.namespace = pod.metadata.namespace
    ep.target_ref.name = pod.metadata.name
    ep.target_ref.uid = pod.metadata.uid
    if pod.spec.node_name:
        ep.node_name = pod.spec.node_name
    if cu.should_set_hostname(pod, svc):
        ep.hostname = pod.spec.hostname
    return ep


def _opt(msg: Message, field: str) -> Any:
    return getattr(msg, field) if msg.HasField(field) else None


def endpoints_equal_beyond_key(a: Message, b: Message) -> bool:
    """EndpointsEqualBeyondHash: nodeName, zone, conditions and targetRef
    (its resourceVersion aside)."""
    if _opt(a, "node_name") != _opt(b, "node_name") or _opt(a, "zone") != _opt(b, "zone"):
        return False
    for cond in ("ready", "serving", "terminating"):
        if _opt(a.conditions, cond) != _opt(b.conditions, cond):
            return False
    ra, rb = copy(a.target_ref), copy(b.target_ref)
    ra.resource_version = rb.resource_version = ""
    return ra == rb


def slice_labels(slice_: Message | None, svc: Message) -> tuple[dict[str, str], bool]:
    """setEndpointSliceLabels: the Service's labels plus the reserved ones,
    and whether the non-reserved ones differ from the slice's."""
    reserved = (LABEL_SERVICE_NAME, LABEL_MANAGED_BY, cu.LABEL_HEADLESS)
    current = {k: v for k, v in (slice_.metadata.labels.items() if slice_ is not None else ())
               if k not in reserved}
    wanted = {k: v for k, v in svc.metadata.labels.items() if k not in reserved}
    changed = current != wanted
    if not cu.is_service_ip_set(svc):
        wanted[cu.LABEL_HEADLESS] = ""
    wanted[LABEL_SERVICE_NAME] = svc.metadata.name
    wanted[LABEL_MANAGED_BY] = CONTROLLER_NAME
    return wanted, changed


def new_slice(svc: Message, ports: Sequence[Message]) -> discovery_pb2.EndpointSlice:
    s = discovery_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice",
                                    address_type=ADDRESS_TYPE)
    s.metadata.namespace = svc.metadata.namespace
    s.metadata.generate_name = f"{svc.metadata.name}-"
    s.metadata.owner_references.append(cu.controller_ref(svc))
    labels, _ = slice_labels(None, svc)
    s.metadata.labels.update(labels)
    s.ports.extend(copy(p) for p in ports)
    return s


def owned_by(slice_: Message, svc: Message) -> bool:
    return any(r.uid == svc.metadata.uid and r.kind == "Service" and r.api_version == "v1"
               for r in slice_.metadata.owner_references)


def _is_placeholder_of(slice_: Message, placeholder: Message) -> bool:
    """placeholderSliceCompare: namespace, labels, owners, ports, endpoints, type."""
    return (slice_.metadata.namespace == placeholder.metadata.namespace
            and dict(slice_.metadata.labels) == dict(placeholder.metadata.labels)
            and list(slice_.metadata.owner_references)
            == list(placeholder.metadata.owner_references)
            and not slice_.endpoints and not slice_.ports
            and slice_.address_type == placeholder.address_type)


class Plan:
    """What one reconcile writes."""

    def __init__(self) -> None:
        self.create: list[Message] = []
        self.update: list[Message] = []
        self.delete: list[Message] = []

    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def reconcile(svc: Message, pods: Sequence[Message], existing: Sequence[Message],
              max_per_slice: int) -> Plan:
    """The slices to create, update and delete so that `existing` (the
    Service's managed slices) shows `pods` (the pods it selects). Pure."""
    assert max_per_slice > 0
    plan = Plan()
    owned: list[Message] = []
    for s in existing:
        if owned_by(s, svc) and s.address_type == ADDRESS_TYPE:
            owned.append(s)
        else:
            plan.delete.append(s)  # a former Service's of the same name, or another type
    desired: dict[PortKey, dict[EndpointKey, Message]] = {}
    ports_of: dict[PortKey, list[Message]] = {}
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        if not cu.should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = endpoint_ports(svc, pod)
        ep = pod_to_endpoint(pod, svc)
        if not ep.addresses:
            continue
        pk = port_key(ports)
        ports_of.setdefault(pk, ports)
        desired.setdefault(pk, {})[endpoint_key(ep)] = ep
    existing_by_pk: dict[PortKey, list[Message]] = {}
    for s in owned:
        existing_by_pk.setdefault(port_key(s.ports), []).append(s)
    for pk in sorted(desired, key=repr):
        _reconcile_port_group(svc, existing_by_pk.get(pk, []), desired[pk], ports_of[pk],
                              max_per_slice, plan)
    for pk, slices in existing_by_pk.items():
        if pk not in desired:
            plan.delete.extend(slices)
    if len(existing) == len(plan.delete) and not plan.create:
        placeholder = new_slice(svc, [])
        if len(plan.delete) == 1 and _is_placeholder_of(plan.delete[0], placeholder):
            plan.delete = []  # the placeholder there is the one we would make
        else:
            plan.create.append(placeholder)
    _creates_into_updates(svc, plan)
    return plan


def _reconcile_port_group(svc: Message, existing: list[Message],
                          desired: dict[EndpointKey, Message], ports: list[Message],
                          max_per_slice: int, plan: Plan) -> None:
    """reconcileByPortMapping for one set of ports."""
    remaining = dict(desired)
    to_update: dict[str, Message] = {}
    unchanged: dict[str, Message] = {}
    for s in existing:
        kept = []
        changed = False
        for ep in s.endpoints:
            key = endpoint_key(ep)
            want = remaining.pop(key, None)
            if want is None:
                continue
            kept.append(want)
            changed = changed or not endpoints_equal_beyond_key(want, ep)
        labels, labels_changed = slice_labels(s, svc)
        if changed or len(kept) != len(s.endpoints):
            if not kept:
                plan.delete.append(s)
                continue
            new = copy(s)
            del new.endpoints[:]
            new.endpoints.extend(kept)
            _set_labels(new, labels)
            to_update[s.metadata.name] = new
        elif labels_changed:
            new = copy(s)
            _set_labels(new, labels)
            to_update[s.metadata.name] = new
        else:
            unchanged[s.metadata.name] = s
    queue = collections.deque(remaining.values())
    # 2. Fill the slices being updated anyway, fullest first.
    for s in sorted(to_update.values(), key=lambda s: -len(s.endpoints)):
        while queue and len(s.endpoints) < max_per_slice:
            s.endpoints.append(queue.popleft())
    # 3. The rest: into the unchanged slice they fill best, else new slices.
    while queue:
        target: Message | None = None
        if len(queue) < max_per_slice and unchanged:
            target = _slice_to_fill(list(unchanged.values()), len(queue), max_per_slice)
        if target is None:
            target = new_slice(svc, ports)
        else:
            target = copy(target)
            del unchanged[target.metadata.name]
        while queue and len(target.endpoints) < max_per_slice:
            target.endpoints.append(queue.popleft())
        if target.metadata.name:
            to_update[target.metadata.name] = target
        else:
            plan.create.append(target)
    plan.update.extend(to_update.values())


def _set_labels(slice_: Message, labels: dict[str, str]) -> None:
    slice_.metadata.labels.clear()
    slice_.metadata.labels.update(labels)


def _slice_to_fill(slices: list[Message], count: int, max_per_slice: int) -> Message | None:
    """getSliceToFill: the slice closest to full once `count` more are added."""
    best, best_diff = None, max_per_slice
    for s in slices:
        diff = max_per_slice - (count + len(s.endpoints))
        if 0 <= diff < best_diff:
            best, best_diff = s, diff
            if diff == 0:
                break
    return best


def _creates_into_updates(svc: Message, plan: Plan) -> None:
    """finalize: a slice that would be deleted while one is created is reused."""
    i = 0
    while i < len(plan.delete) and plan.create:
        victim = plan.delete[i]
        if victim.address_type == ADDRESS_TYPE and owned_by(victim, svc):
            created = plan.create.pop()
            reused = copy(victim)
            reused.metadata.labels.clear()
            reused.metadata.labels.update(created.metadata.labels)
            del reused.ports[:]
            reused.ports.extend(created.ports)
            del reused.endpoints[:]
            reused.endpoints.extend(created.endpoints)
            plan.update.append(reused)
            plan.delete.pop(i)
        else:
            i += 1


def set_trigger_time(slice_: Message, trigger: str | None) -> None:
    if trigger:
        slice_.metadata.annotations[cu.ANNOTATION_TRIGGER_TIME] = trigger
    else:
        slice_.metadata.annotations.pop(cu.ANNOTATION_TRIGGER_TIME, None)


# ---------------------------------------------------------------- the controller

class EndpointSliceController(Controller):
    name = "endpointslice-controller"
    aliases = ("endpointslice",)
    resources = ("services", "pods", "endpointslices")
    default_workers = 5  # --concurrent-service-endpoint-syncs
    event_source = "endpoint-slice-controller"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.max_per_slice = ctx.options.max_endpoints_per_slice
        self.tracker = SliceTracker()
        self.triggers = cu.TriggerTimeTracker()
        self.services = self.informer("services")
        self.pods = self.informer("pods")
        self.slices = self.informer("endpointslices")
        self.slices.add_indexers({BY_SERVICE: index_by_service_name})
        self.services.add_handler(self.enqueue, lambda _old, new: self.enqueue(new),
                                  self.enqueue)
        self.pod_events = cu.ServicePodEvents(self.services, self.enqueue_batched,
                                              ctx.options.endpointslice_updates_batch_period_s)
        self.pods.add_handler(self.pod_events.on_add, self.pod_events.on_update,
                              self.pod_events.on_delete)
        self.slices.add_handler(self._on_slice_add, self._on_slice_update, self._on_slice_delete)

    # ------------------------------------------------------------ handlers

    def _queue_for_slice(self, slice_: Message) -> None:
        key = service_key_of(slice_)
        if key is not None:
            self.enqueue_after(key, SLICE_CHANGE_MIN_SYNC_DELAY_S)

    def _on_slice_add(self, slice_: Message) -> None:
        key = service_key_of(slice_)
        if key is not None and managed_by_us(slice_) and self.tracker.should_sync(key, slice_):
            self._queue_for_slice(slice_)

    def _on_slice_update(self, old: Message, new: Message) -> None:
        old_key, new_key = service_key_of(old), service_key_of(new)
        if old_key != new_key:
            self._queue_for_slice(old)
            self._queue_for_slice(new)
            return
        if managed_by_us(old) != managed_by_us(new) or (
                new_key is not None and managed_by_us(new)
                and self.tracker.should_sync(new_key, new)):
            self._queue_for_slice(new)

    def _on_slice_delete(self, obj: Message | DeletedFinalStateUnknown) -> None:
        slice_ = object_of(obj)
        key = service_key_of(slice_)
        if key is None or not managed_by_us(slice_) or not self.tracker.has(key, slice_):
            return
        if not self.tracker.handle_deletion(key, slice_):
            self._queue_for_slice(slice_)  # someone else deleted ours: put it back

    # ------------------------------------------------------------ sync

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            # The garbage collector deletes its slices (they name it as controller).
            self.tracker.delete_service(key)
            self.triggers.delete(key)
            return
        if svc.spec.type == "ExternalName" or not svc.spec.selector:
            # No selector: its slices are someone else's (made through the API).
            return
        namespace, _ = split_key(key)
        selector = svc.spec.selector
        pods = [p for p in self.pods.by_index(BY_NAMESPACE, namespace)
                if all(p.metadata.labels.get(k) == v for k, v in selector.items())]
        existing = [s for s in self.slices.by_index(BY_SERVICE, key)
                    if managed_by_us(s) and not s.metadata.deletion_timestamp]
        if self.tracker.stale(key, existing):
            raise errors.Conflict("EndpointSlice informer cache is out of date")
        trigger = self.triggers.compute(key, svc, pods)
        # A Service of thousands of pods takes tens of milliseconds to compute:
        # let the other keys' work in between.
        await asyncio.sleep(0)
        plan = reconcile(svc, pods, existing, self.max_per_slice)
        if plan.empty():
            return
        await self._finalize(key, svc, plan, trigger)

    async def _finalize(self, key: str, svc: Message, plan: Plan, trigger: str | None) -> None:
        if not svc.metadata.deletion_timestamp:
            # A Service being deleted gets no new slices (the GC would race them).
            for s in plan.create:
                set_trigger_time(s, trigger)
                self.tracker.update(key, await self.client.create(s))
        for s in plan.update:
            set_trigger_time(s, trigger)
            self.tracker.update(key, await self.client.update(s))
        for s in plan.delete:
            self.tracker.expect_deletion(key, s)
            try:
                await self.client.delete("endpointslices", s.metadata.name, s.metadata.namespace,
                                         uid=s.metadata.uid)
            except errors.NotFound:
                self.tracker.handle_deletion(key, s)  # gone already: nothing to wait for
            except BaseException:
                self.tracker.handle_deletion(key, s)
                raise
