"""The kubelet's Node object and its Lease.

- register(): create the Node (labels kubernetes.io/hostname, os, arch and
  --node-labels; addresses InternalIP and Hostname; podCIDR; taints;
  capacity and allocatable from the flags; nodeInfo; daemonEndpoints with
  the kubelet's port), or, when it exists (a restarted kubelet), update it.
  The runtime's isolation mode (kubelet/runtime/__init__.py) is the label
  `kubemu.io/isolation` (`namespaces` or `plain`, for nodeSelectors) and
  the annotation of the same name; the annotation
  `kubemu.io/isolation-reason` says why not a stronger mode ("" if none).
- Status: every `status_update_s` the conditions are re-evaluated and the
  status is written when something changed, or at least every `report_s`
  (the heartbeat). MemoryPressure / DiskPressure / PIDPressure compare the
  machine with the hard eviction thresholds (`--eviction-hard`, the kubelet's
  syntax and defaults: memory.available<100Mi, nodefs.available<10%,
  pid.available<10%; as in Kubernetes, setting the flag replaces all three,
  and a signal it leaves out is never crossed). The node shares the host's
  memory, disk and pid space, so a host with under 10% disk free reports
  DiskPressure, as a real kubelet on it would.
  Ready is false while the runtime does not answer.
- Lease: kube-node-lease/<node>, holder the node, renewed every `lease_renew_s`
  (optimistic concurrency; on conflict it is read again).
- Both loops run under the kubelet's kubemu.loops.Loops (`start(loops)`):
  a failure the loops do not handle themselves is logged, reported on the
  kubelet's health and the loop restarted.
"""
from __future__ import annotations

import asyncio
import dataclasses
import platform
import shutil
import time
from fractions import Fraction
from typing import Awaitable, Callable, Mapping, Sequence

import psutil
import structlog

from kubemu import timefmt
from kubemu.api import errors, quantity
from kubemu.api.v1 import coordination_pb2, core_pb2
from kubemu.client.clientset import Client
from kubemu.loops import Loops

log = structlog.get_logger()

KUBELET_VERSION = "v1.30.0-kubemu"
ISOLATION_KEY = "kubemu.io/isolation"
ISOLATION_REASON_KEY = "kubemu.io/isolation-reason"
LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_EVICTION_HARD = "memory.available<100Mi,nodefs.available<10%,pid.available<10%"
# imagefs shares nodefs here (one filesystem), so its thresholds are accepted
# and not evaluated, as a kubelet without a separate image filesystem does.
EVICTION_SIGNALS = ("memory.available", "nodefs.available", "pid.available",
                    "imagefs.available", "nodefs.inodesFree", "imagefs.inodesFree")
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
        "s390x": "s390x"}.get(platform.machine(), platform.machine())


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return platform.system()


@dataclasses.dataclass
class NodeConfig:
    name: str
    ip: str
    pod_cidr: str
    capacity: Mapping[str, str]
    allocatable: Mapping[str, str]
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: Sequence[tuple[str, str, str]] = ()       # key, value, effect
    kubelet_port: int = 0
    runtime_version: str = "kubemu://0.1.0"
    root: str = "/"
    isolation: str = ""          # the runtime's isolation mode ("" = not reported)
    isolation_reason: str = ""
    eviction_hard: Mapping[str, Threshold] = dataclasses.field(
        default_factory=lambda: parse_eviction_hard(DEFAULT_EVICTION_HARD))


@dataclasses.dataclass(frozen=True)
class Pressure:
    memory: bool
    disk: bool
    pid: bool


@dataclasses.dataclass(frozen=True)
class Threshold:
    """`available < quantity` or, with `fraction`, `available < fraction of the total`."""
    quantity: int = 0
    fraction: Fraction | None = None

    def crossed(self, available: int, total: int) -> bool:
        limit = self.fraction * total if self.fraction is not None else self.quantity
        return available < limit


def parse_eviction_hard(text: str) -> dict[str, Threshold]:
    """`--eviction-hard` in the kubelet's syntax: `signal<value[,signal<value]`,
    the value a quantity or a percentage. ValueError names what is wrong."""
    out: dict[str, Threshold] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        signal, op, value = item.partition("<")
        signal, value = signal.strip(), value.strip()
        if not op:
            raise ValueError(f"invalid eviction threshold {item!r}: want signal<value")
        if signal not in EVICTION_SIGNALS:
            raise ValueError(f"unsupported eviction signal {signal}")
        if signal in out:
            raise ValueError(f"found duplicate eviction threshold for signal {signal}")
        if value.endswith("%"):
            try:
                percent = Fraction(value[:-1])
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"invalid percentage {value} for signal {signal}") from None
            if not 0 <= percent <= 100:
                raise ValueError(f"eviction percentage threshold {signal} must be >= 0% "
                                 f"and <= 100%: {value}")
            out[signal] = Threshold(fraction=percent / 100)
        else:
            try:
                amount = quantity.to_int(value)
            except ValueError:
                raise ValueError(f"invalid quantity {value!r} for signal {signal}") from None
            if amount < 0:
                raise ValueError(f"eviction threshold {signal} must be positive: {value}")
            out[signal] = Threshold(quantity=amount)
    return out


def measure_pressure(root: str, thresholds: Mapping[str, Threshold]) -> Pressure:
    """Compare the machine with the thresholds; a signal without one is never crossed."""
    memory = disk = pid = False
    if (t := thresholds.get("memory.available")) is not None:
        vm = psutil.virtual_memory()
        memory = t.crossed(vm.available, vm.total)
    if (t := thresholds.get("nodefs.available")) is not None:
        try:
            usage = shutil.disk_usage(root)
            disk = t.crossed(usage.free, usage.total)
        except OSError:
            pass
    if (t := thresholds.get("pid.available")) is not None:
        try:
            pid_max = int(_read("/proc/sys/kernel/pid_max") or 0)
        except ValueError:
            pid_max = 0
        pid = bool(pid_max) and t.crossed(pid_max - len(psutil.pids()), pid_max)
    return Pressure(memory, disk, pid)


def conditions(pressure: Pressure, runtime_ok: bool, runtime_problem: str
               ) -> list[tuple[str, bool, str, str]]:
    """(type, status, reason, message) in the kubelet's order."""
    out = [
        ("MemoryPressure", pressure.memory,
         "KubeletHasInsufficientMemory" if pressure.memory else "KubeletHasSufficientMemory",
         "kubelet has insufficient memory available" if pressure.memory
         else "kubelet has sufficient memory available"),
        ("DiskPressure", pressure.disk,
         "KubeletHasDiskPressure" if pressure.disk else "KubeletHasNoDiskPressure",
         "kubelet has disk pressure" if pressure.disk else "kubelet has no disk pressure"),
        ("PIDPressure", pressure.pid,
         "KubeletHasInsufficientPID" if pressure.pid else "KubeletHasSufficientPID",
         "kubelet has insufficient PID available" if pressure.pid
         else "kubelet has sufficient PID available"),
    ]
    if runtime_ok:
        out.append(("Ready", True, "KubeletReady", "kubelet is posting ready status"))
    else:
        out.append(("Ready", False, "KubeletNotReady", runtime_problem or
                    "container runtime is down"))
    return out


def apply_conditions(status: core_pb2.NodeStatus, wanted: list[tuple[str, bool, str, str]],
                     previous: Sequence[core_pb2.NodeCondition], heartbeat: str) -> None:
    before = {c.type: c for c in previous}
    del status.conditions[:]
    for kind, ok, reason, message in wanted:
        text = "True" if ok else "False"
        old = before.get(kind)
        transition = old.last_transition_time if old is not None and old.status == text \
            and old.last_transition_time else heartbeat
        status.conditions.add(type=kind, status=text, reason=reason, message=message,
                              last_heartbeat_time=heartbeat, last_transition_time=transition)


class NodeManager:
    def __init__(self, client: Client, config: NodeConfig, *,
                 runtime_check: Callable[[], Awaitable[str | None]],
                 images: Callable[[], Awaitable[list[tuple[list[str], int]]]],
                 record: Callable[[core_pb2.Node, str, str, str], None] | None = None,
                 status_update_s: float = 10.0, report_s: float = 60.0,
                 lease_renew_s: float = 10.0, lease_duration_s: int = 40):
        self.client = client
        self.config = config
        self.runtime_check = runtime_check
        self.images = images
        self.record = record  # (node, type, reason, message): an Event
        self.status_update_s = status_update_s
        self.report_s = report_s
        self.lease_renew_s = lease_renew_s
        self.lease_duration_s = lease_duration_s
        self.node: core_pb2.Node | None = None
        self.ready = False
        self.last_report = 0.0
        self._info: core_pb2.NodeSystemInfo | None = None  # read once: it does not change
        self.log = log.bind(node=config.name)

    # ------------------------------------------------------------ the object

    def _labels(self) -> dict[str, str]:
        labels = {"kubernetes.io/hostname": self.config.name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": ARCH, "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": ARCH}
        if self.config.isolation:
            labels[ISOLATION_KEY] = self.config.isolation
        labels.update(self.config.labels)
        return labels

    def _annotations(self) -> dict[str, str]:
        if not self.config.isolation:
            return {}
        return {ISOLATION_KEY: self.config.isolation,
                ISOLATION_REASON_KEY: self.config.isolation_reason}

    def _node_info(self) -> core_pb2.NodeSystemInfo:
        machine_id = _read("/etc/machine-id")
        return core_pb2.NodeSystemInfo(
            machine_id=machine_id,
            system_uuid=_read("/sys/class/dmi/id/product_uuid") or machine_id,
            boot_id=_read("/proc/sys/kernel/random/boot_id"), kernel_version=platform.release(),
            os_image=os_image(), container_runtime_version=self.config.runtime_version,
            kubelet_version=KUBELET_VERSION, kube_proxy_version=KUBELET_VERSION,
            operating_system="linux", architecture=ARCH)

    async def _fill_status(self, node: core_pb2.Node, previous: core_pb2.NodeStatus | None
                           ) -> None:
        c = self.config
        status = node.status
        status.capacity.clear()
        status.capacity.update(c.capacity)
        status.allocatable.clear()
        status.allocatable.update(c.allocatable)
        del status.addresses[:]
        status.addresses.add(type="InternalIP", address=c.ip)
        status.addresses.add(type="Hostname", address=c.name)
        status.daemon_endpoints.kubelet_endpoint.port = c.kubelet_port
        if self._info is None:
            self._info = await asyncio.to_thread(self._node_info)  # reads /etc, /proc, /sys
        status.node_info.CopyFrom(self._info)
        problem = await self.runtime_check()
        pressure = await asyncio.to_thread(measure_pressure, c.root, c.eviction_hard)
        apply_conditions(status, conditions(pressure, problem is None, problem or ""),
                         previous.conditions if previous is not None else (), timefmt.rfc3339())
        was_ready = next((c.status == "True" for c in (previous.conditions if previous else ())
                          if c.type == "Ready"), None)
        self.ready = problem is None
        if self.record is not None and was_ready is not None and was_ready != self.ready:
            reason = "NodeReady" if self.ready else "NodeNotReady"
            self.record(node, "Normal", reason,
                        f"Node {self.config.name} status is now: {reason}")
        del status.images[:]
        try:
            for names, size in await self.images():
                status.images.add(names=names, size_bytes=size)
        except Exception:  # images are informative; a runtime hiccup must not block status
            pass

    async def register(self) -> core_pb2.Node:
        """Create the Node, or take over the one a previous kubelet left."""
        c = self.config
        node = core_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = c.name
        node.metadata.labels.update(self._labels())
        node.metadata.annotations.update(self._annotations())
        node.spec.pod_cidr = c.pod_cidr
        node.spec.pod_cidrs.append(c.pod_cidr)
        for key, value, effect in c.taints:
            node.spec.taints.add(key=key, value=value, effect=effect)
        await self._fill_status(node, None)
        try:
            created = await self.client.create(node)
            self.node = created
            self.log.info("node registered", ip=c.ip, pod_cidr=c.pod_cidr)
            return created
        except errors.AlreadyExists:
            pass
        existing = await self.client.get("nodes", c.name)
        existing.metadata.labels.update(self._labels())
        existing.metadata.annotations.update(self._annotations())
        if not existing.spec.pod_cidr:
            existing.spec.pod_cidr = c.pod_cidr
            existing.spec.pod_cidrs.append(c.pod_cidr)
        updated = await self.client.update(existing)
        await self._fill_status(updated, existing.status)
        self.node = await self.client.update_status(updated)
        self.last_report = time.monotonic()
        self.log.info("node re-registered", ip=c.ip, pod_cidr=c.pod_cidr)
        return self.node

    async def update_status(self, force: bool = False) -> None:
        current = await self.client.get("nodes", self.config.name)
        before = core_pb2.NodeStatus()
        before.CopyFrom(current.status)
        await self._fill_status(current, before)
        changed = _without_heartbeats(current.status) != _without_heartbeats(before)
        if changed or force or time.monotonic() - self.last_report >= self.report_s:
            self.node = await self.client.update_status(current)
            self.last_report = time.monotonic()

    # ------------------------------------------------------------ loops

    def start(self, loops: Loops) -> None:
        loops.spawn("node-status", self._status_loop)
        loops.spawn("node-lease", self._lease_loop)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_update_s)  # nodeStatusUpdateFrequency
            try:
                await self.update_status()
            except errors.NotFound:
                self.log.warning("the Node object is gone; registering again")
                try:
                    await self.register()
                except Exception as err:
                    self.log.warning("node registration failed", error=str(err))
            except Exception as err:  # the next round tries again
                self.log.warning("node status update failed", error=str(err))

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self.renew_lease()
            except Exception as err:
                self.log.warning("lease renewal failed", error=str(err))
            await asyncio.sleep(self.lease_renew_s)  # the lease renew interval

    async def renew_lease(self) -> coordination_pb2.Lease:
        name = self.config.name
        try:
            lease = await self.client.get("leases", name, LEASE_NAMESPACE)
        except errors.NotFound:
            lease = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
            lease.metadata.name = name
            lease.metadata.namespace = LEASE_NAMESPACE
            if self.node is not None:
                ref = lease.metadata.owner_references.add()
                ref.api_version, ref.kind = "v1", "Node"
                ref.name, ref.uid = name, self.node.metadata.uid
            lease.spec.holder_identity = name
            lease.spec.lease_duration_seconds = self.lease_duration_s
            lease.spec.renew_time = timefmt.rfc3339_micro()
            try:
                return await self.client.create(lease)
            except errors.AlreadyExists:
                lease = await self.client.get("leases", name, LEASE_NAMESPACE)
        lease.spec.holder_identity = name
        lease.spec.lease_duration_seconds = self.lease_duration_s
        lease.spec.renew_time = timefmt.rfc3339_micro()
        try:
            return await self.client.update(lease)
        except errors.Conflict:
            return await self.renew_lease_once_more()

    async def renew_lease_once_more(self) -> coordination_pb2.Lease:
        lease = await self.client.get("leases", self.config.name, LEASE_NAMESPACE)
        lease.spec.renew_time = timefmt.rfc3339_micro()
        return await self.client.update(lease)


def _without_heartbeats(status: core_pb2.NodeStatus) -> bytes:
    copy = core_pb2.NodeStatus()
    copy.CopyFrom(status)
    for c in copy.conditions:
        c.last_heartbeat_time = ""
    return copy.SerializeToString(deterministic=True)
