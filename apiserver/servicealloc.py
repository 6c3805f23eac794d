"""ClusterIP and NodePort allocation for Services, kept in etcd with the Service.

Model (Kubernetes' ipallocator/portallocator, stored the way its IPAddress
objects are: one key per allocated value): every allocated ClusterIP is a key
`/registry/ranges/serviceips/<ip>` and every allocated NodePort a key
`/registry/ranges/servicenodeports/<port>`, each holding the owning
Service's object key. The registry writes these keys in the same etcd
transaction as the Service (created only if absent, deleted when released),
so two apiservers allocating at once can never hand out one value twice, a
failed write leaves nothing behind, and a restart finds every allocation.

`plan(obj, old)` is the only I/O here (it reads which values are taken); it
fills in what the Service needs (clusterIP/clusterIPs, nodePorts) and says
which keys to create and which to release. An explicit value that is taken or
out of range is refused with kube-apiserver's Invalid error. Dynamic picks
prefer the upper part of the range, leaving the first addresses (the
`kubernetes` Service's .1, kube-dns's .10) to static assignment, as
Kubernetes does since 1.24.
"""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import random

from google.protobuf.message import DecodeError, Message

from apiserver import storage
from apiserver.storage import Reservation as Plan
from kubemu.api import errors
from kubemu.api.fields import field_value
from kubemu.api.validation.core import go_strings

DEFAULT_SERVICE_CIDR = "127.1.0.0/24"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
IP_KEY_PREFIX = b"/registry/ranges/serviceips/"
PORT_KEY_PREFIX = b"/registry/ranges/servicenodeports/"
SERVICE_RANGE_ADDRESSES_MAX = 1 << 16  # /16: the largest service range allowed
# Kubernetes' calculateRangeOffset: the lower band kept for static picks.
STATIC_BAND_MIN, STATIC_BAND_MAX, STATIC_BAND_STEP = 16, 256, 16
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def parse_service_cidr(text: str) -> ipaddress.IPv4Network:
    """`--service-cluster-ip-range`: an IPv4 CIDR inside 127.0.0.0/8, /16 or smaller."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as err:
        raise ValueError(f"--service-cluster-ip-range {text!r}: {err}") from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(LOOPBACK):
        raise ValueError(f"--service-cluster-ip-range {text!r} must lie inside 127.0.0.0/8 "
                         "(kubemu serves ClusterIPs on loopback)")
    if net.num_addresses > SERVICE_RANGE_ADDRESSES_MAX or net.prefixlen > 30:
        raise ValueError(f"--service-cluster-ip-range {text!r}: the prefix length must be "
                         "between /16 and /30")
    return net


def parse_port_range(text: str) -> tuple[int, int]:
    """`--service-node-port-range`: `lo-hi` (Kubernetes' PortRange; `lo+n` too)."""
    raw = text.strip()
    try:
        if "+" in raw:
            lo_text, n_text = raw.split("+", 1)
            lo, hi = int(lo_text), int(lo_text) + int(n_text)
        elif "-" in raw:
            lo_text, hi_text = raw.split("-", 1)
            lo, hi = int(lo_text), int(hi_text)
        else:
            lo = hi = int(raw)
    except ValueError:
        raise ValueError(f"--service-node-port-range {text!r}: unable to parse port range")
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"--service-node-port-range {text!r}: not a valid port range")
    return lo, hi


def needs_cluster_ip(spec: Message) -> bool:
    service_type = spec.type or "ClusterIP"
    return service_type != "ExternalName" and spec.cluster_ip != "None"


def has_cluster_ip_field(spec: Message) -> bool:
    """Kubernetes' needsClusterIP: every type but ExternalName holds a value
    in clusterIP ("None", for a headless Service, counts)."""
    return (spec.type or "ClusterIP") != "ExternalName"


def needs_node_ports(spec: Message) -> bool:
    service_type = spec.type or "ClusterIP"
    if service_type == "NodePort":
        return True
    return service_type == "LoadBalancer" and field_value(
        spec, "allocate_load_balancer_node_ports", True)


def static_band(size: int) -> int:
    """How many addresses at the start of a range of `size` dynamic picks avoid."""
    if size < STATIC_BAND_MIN:
        return 0
    return max(STATIC_BAND_MIN, min(STATIC_BAND_MAX, size // STATIC_BAND_STEP))


@dataclasses.dataclass(frozen=True)
class Ranges:
    cidr: ipaddress.IPv4Network
    node_ports: tuple[int, int]

    @classmethod
    def parse(cls, cidr: str = DEFAULT_SERVICE_CIDR,
              node_ports: str = DEFAULT_NODE_PORT_RANGE) -> "Ranges":
        return cls(parse_service_cidr(cidr), parse_port_range(node_ports))

    @property
    def first_ip(self) -> str:
        return str(self.cidr.network_address + 1)

    @property
    def node_port_text(self) -> str:
        return f"{self.node_ports[0]}-{self.node_ports[1]}"

    def contains_ip(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return addr in self.cidr and addr not in (self.cidr.network_address,
                                                  self.cidr.broadcast_address)


def _scan(lo: int, count: int, rng: random.Random):
    """Offsets lo..lo+count-1 from a random one on, wrapping (the bitmap
    allocator's random-scan): no list of the whole range is built."""
    start = rng.randrange(count)
    for i in range(count):
        yield lo + (start + i) % count


def pick_ip(ranges: Ranges, taken: set[str], rng: random.Random) -> str | None:
    """A free address, from the upper band first; None when the range is full."""
    first = int(ranges.cidr.network_address) + 1
    usable = ranges.cidr.num_addresses - 2
    band = min(static_band(ranges.cidr.num_addresses), usable)
    for lo, count in ((band, usable - band), (0, band)):
        if count <= 0:
            continue
        for offset in _scan(lo, count, rng):
            ip = str(ipaddress.IPv4Address(first + offset))
            if ip not in taken:
                return ip
    return None


def pick_port(ranges: Ranges, taken: set[int], rng: random.Random) -> int | None:
    lo, hi = ranges.node_ports
    size = hi - lo + 1
    band = static_band(size)
    for first, count in ((lo + band, size - band), (lo, band)):
        if count <= 0:
            continue
        for port in _scan(first, count, rng):
            if port not in taken:
                return port
    return None


def ip_key(ip: str) -> bytes:
    return IP_KEY_PREFIX + ip.encode()


def port_key(port: int) -> bytes:
    return PORT_KEY_PREFIX + str(port).encode()


def _ips_of(spec: Message) -> list[str]:
    ips = list(spec.cluster_ips)
    if spec.cluster_ip and spec.cluster_ip not in ips:
        ips.insert(0, spec.cluster_ip)
    return [ip for ip in ips if ip and ip != "None"]


def node_ports_of(spec: Message) -> set[int]:
    return {p.node_port for p in spec.ports if p.node_port}


def release_plan(obj: Message) -> Plan:
    """What deleting `obj` releases."""
    spec = obj.spec
    plan = Plan()
    if needs_cluster_ip(spec):
        plan.release.extend(ip_key(ip) for ip in _ips_of(spec))
    plan.release.extend(port_key(p) for p in sorted(node_ports_of(spec)))
    return plan


def _externally_accessible(spec: Message) -> bool:
    service_type = spec.type or "ClusterIP"
    return service_type in ("NodePort", "LoadBalancer") or (
        service_type == "ClusterIP" and bool(spec.external_ips))


def drop_type_dependent_fields(new: Message, old: Message) -> None:
    """Kubernetes' dropTypeDependentFields: a type change wipes the values the
    old type had (and the server may have filled in) that the new type has
    no use for, when the client left them as they were."""
    spec, old_spec = new.spec, old.spec
    if has_cluster_ip_field(old_spec) and not has_cluster_ip_field(spec):
        if (spec.cluster_ip, list(spec.cluster_ips)) == (old_spec.cluster_ip,
                                                         list(old_spec.cluster_ips)):
            spec.cluster_ip = ""
            del spec.cluster_ips[:]
        if list(spec.ip_families) == list(old_spec.ip_families):
            del spec.ip_families[:]
        if (spec.HasField("ip_family_policy") == old_spec.HasField("ip_family_policy")
                and spec.ip_family_policy == old_spec.ip_family_policy):
            spec.ClearField("ip_family_policy")
        if (spec.type or "ClusterIP") == "ExternalName" and (
                spec.internal_traffic_policy == old_spec.internal_traffic_policy):
            spec.ClearField("internal_traffic_policy")
    if needs_node_ports(old_spec) and not needs_node_ports(spec):
        if [p.node_port for p in spec.ports] == [p.node_port for p in old_spec.ports]:
            for port in spec.ports:
                port.node_port = 0
    if old_spec.type == "LoadBalancer" and spec.type != "LoadBalancer":
        if (spec.HasField("allocate_load_balancer_node_ports")
                and old_spec.HasField("allocate_load_balancer_node_ports")
                and spec.allocate_load_balancer_node_ports
                == old_spec.allocate_load_balancer_node_ports):
            spec.ClearField("allocate_load_balancer_node_ports")
        if (spec.HasField("load_balancer_class") and old_spec.HasField("load_balancer_class")
                and spec.load_balancer_class == old_spec.load_balancer_class):
            spec.ClearField("load_balancer_class")
    if _externally_accessible(old_spec) and not _externally_accessible(spec):
        if spec.external_traffic_policy == old_spec.external_traffic_policy:
            spec.external_traffic_policy = ""
    if (spec.health_check_node_port and spec.health_check_node_port
            == old_spec.health_check_node_port and not (
                spec.type == "LoadBalancer" and spec.external_traffic_policy == "Local")):
        spec.health_check_node_port = 0


def patch_allocated_values(new: Message, old: Message) -> None:
    """Kubernetes' patchAllocatedValues: an update that leaves out a value
    the Service already holds keeps it (kubectl apply of the original file)."""
    spec, old_spec = new.spec, old.spec
    if has_cluster_ip_field(old_spec) and has_cluster_ip_field(spec):
        if not spec.cluster_ip:
            spec.cluster_ip = old_spec.cluster_ip
        if not spec.cluster_ips and old_spec.cluster_ips:
            spec.cluster_ips.extend(old_spec.cluster_ips)
    if needs_node_ports(old_spec) and needs_node_ports(spec):
        used = node_ports_of(old_spec) & node_ports_of(spec)
        by_name = {p.name: p.node_port for p in old_spec.ports}
        for port in spec.ports:
            if not port.node_port:
                kept = by_name.get(port.name, 0)
                if kept and kept not in used:
                    port.node_port = kept


def normalize_cluster_ips(new: Message, old: Message) -> None:
    """Kubernetes' normalizeClusterIPs on update: keep clusterIP and
    clusterIPs in step when a client (an old one, or a patch) set only one."""
    spec, old_spec = new.spec, old.spec
    same = list(spec.cluster_ips) == list(old_spec.cluster_ips)
    if not spec.cluster_ips and old_spec.cluster_ips and spec.cluster_ip == old_spec.cluster_ip:
        spec.cluster_ips.extend(old_spec.cluster_ips)
        same = True
    if spec.cluster_ip != old_spec.cluster_ip and same:
        del spec.cluster_ips[:]
        if spec.cluster_ip:  # changed, not cleared: validation refuses it by name
            spec.cluster_ips.append(spec.cluster_ip)


class Allocator:
    """Plans the ClusterIP and NodePort keys of one Service write."""

    def __init__(self, store: storage.Store, ranges: Ranges,
                 rng: random.Random | None = None):
        self.store = store
        self.ranges = ranges
        self.rng = rng or random.Random()

    async def _taken(self, prefix: bytes) -> set[str]:
        page = await self.store.range(prefix, storage.prefix_end(prefix), limit=0)
        return {kv.key[len(prefix):].decode() for kv in page.kvs}

    async def plan(self, obj: Message, old: Message | None) -> Plan:
        """Fill in `obj`'s ClusterIP(s) and NodePorts (in place) and return the
        keys to create and release; Invalid for an explicit value that is
        taken or out of range. `old` is the stored Service on an update."""
        plan = Plan()
        await self._plan_ips(obj, old, plan)
        await self._plan_node_ports(obj, old, plan)
        return plan

    async def _plan_ips(self, obj: Message, old: Message | None, plan: Plan) -> None:
        spec = obj.spec
        old_ips = (set(_ips_of(old.spec)) if old is not None and needs_cluster_ip(old.spec)
                   else set())
        if not needs_cluster_ip(spec):
            plan.release.extend(ip_key(ip) for ip in sorted(old_ips))
            return
        wanted = _ips_of(spec)
        if not wanted:
            ip = pick_ip(self.ranges, await self._taken(IP_KEY_PREFIX), self.rng)
            if ip is None:
                raise errors.internal("failed to allocate a serviceIP: range is full")
            spec.cluster_ip = ip
            del spec.cluster_ips[:]
            spec.cluster_ips.append(ip)
            plan.create.append(ip_key(ip))
        else:
            if not spec.cluster_ip:
                spec.cluster_ip = wanted[0]
            if not spec.cluster_ips:
                spec.cluster_ips.append(spec.cluster_ip)
            for ip in wanted:
                if ip in old_ips:
                    continue
                self._check_ip(obj, ip)
                if await self.store.get(ip_key(ip)) is not None:
                    self._refuse_ip(obj, ip, "provided IP is already allocated")
                plan.create.append(ip_key(ip))
        plan.release.extend(ip_key(ip) for ip in sorted(old_ips - set(_ips_of(spec))))

    def _check_ip(self, obj: Message, ip: str) -> None:
        if not self.ranges.contains_ip(ip):
            self._refuse_ip(obj, ip, f"the provided IP ({ip}) is not in the valid range. "
                                     f"The range of valid IPs is {self.ranges.cidr}")

    @staticmethod
    def _refuse_ip(obj: Message, ip: str, why: str) -> None:
        raise errors.Invalid("Service", obj.metadata.name, [errors.invalid(
            "spec.clusterIPs", go_strings(obj.spec.cluster_ips or [ip]),
            f"failed to allocate IP {ip}: {why}")])

    async def _plan_node_ports(self, obj: Message, old: Message | None, plan: Plan) -> None:
        spec = obj.spec
        old_ports = node_ports_of(old.spec) if old is not None else set()
        wants_ports = needs_node_ports(spec)
        if not wants_ports and (spec.type or "ClusterIP") != "LoadBalancer":
            for port in spec.ports:  # a ClusterIP or ExternalName Service holds none
                port.node_port = 0
        claimed: set[int] = set()
        # Explicit values (the same number twice is one port used for TCP and UDP).
        for i, port in enumerate(spec.ports):
            number = port.node_port
            if number and number not in old_ports and number not in claimed:
                await self._claim_port(obj, i, number)
                plan.create.append(port_key(number))
                claimed.add(number)
        if wants_ports and any(not p.node_port for p in spec.ports):
            taken = {int(p) for p in await self._taken(PORT_KEY_PREFIX)}
            for port in spec.ports:
                if port.node_port:
                    continue
                number = pick_port(self.ranges, taken | claimed | node_ports_of(spec), self.rng)
                if number is None:
                    raise errors.internal("failed to allocate a nodePort: range is full")
                port.node_port = number
                plan.create.append(port_key(number))
                claimed.add(number)
        plan.release.extend(port_key(p) for p in sorted(old_ports - node_ports_of(spec)))

    async def _claim_port(self, obj: Message, index: int, number: int) -> None:
        lo, hi = self.ranges.node_ports
        path = f"spec.ports[{index}].nodePort"
        if not lo <= number <= hi:
            raise errors.Invalid("Service", obj.metadata.name, [errors.invalid(
                path, number, "provided port is not in the valid range. The range of valid "
                f"ports is {self.ranges.node_port_text}")])
        if await self.store.get(port_key(number)) is not None:
            raise errors.Invalid("Service", obj.metadata.name, [errors.invalid(
                path, number, "provided port is already allocated")])


# ---------------------------------------------------------------- repair

SERVICES_PREFIX = storage.prefix_key("services")
REPAIR_SCAN_MAX = 100_000  # keys one repair pass reads per prefix
REPAIR_YIELD_EVERY = 500  # Services decoded between two yields to the event loop


@dataclasses.dataclass
class RepairReport:
    released: list[str] = dataclasses.field(default_factory=list)  # keys without a holder
    recorded: list[str] = dataclasses.field(default_factory=list)  # holdings without a key
    doubled: list[str] = dataclasses.field(default_factory=list)  # values two Services hold


def _holdings(kv: storage.KeyValue, service_message) -> list[bytes]:
    """The allocation keys the stored Service in `kv` holds (none if it does not decode)."""
    try:
        svc = service_message.FromString(kv.value)
    except (DecodeError, RuntimeWarning, ValueError):  # corrupt: nothing we can read
        return []
    return release_plan(svc).release


async def repair(store: storage.Store, ranges: Ranges, service_message) -> RepairReport:
    """Kubernetes' allocation repair: make the allocation keys match the
    stored Services. A key whose Service is gone or no longer holds its value
    is released (conditioned on the key's revision, so a key taken again in
    between stays); a value a Service holds without a key (a Service stored
    before allocation was kept in etcd) is recorded if still free. Every
    write is conditional, so a repair racing with Service writes can at worst
    leave work for the next pass."""
    report = RepairReport()
    held: dict[bytes, list[bytes]] = {}  # allocation key -> the Service keys holding it
    page = await store.range(SERVICES_PREFIX, storage.prefix_end(SERVICES_PREFIX),
                             limit=REPAIR_SCAN_MAX)
    for i, kv in enumerate(page.kvs):
        if i and i % REPAIR_YIELD_EVERY == 0:
            await asyncio.sleep(0)  # decoding thousands of Services: let requests in
        for key in _holdings(kv, service_message):
            held.setdefault(key, []).append(kv.key)
    allocated: dict[bytes, storage.KeyValue] = {}
    for prefix in (IP_KEY_PREFIX, PORT_KEY_PREFIX):
        keys = await store.range(prefix, storage.prefix_end(prefix), limit=REPAIR_SCAN_MAX)
        allocated.update({kv.key: kv for kv in keys.kvs})
    for key, kv in allocated.items():
        holders = held.get(key, [])
        if kv.value not in holders:
            # Read the holder again: it may have been written since the scan.
            owner = await store.get(kv.value) if kv.value else None
            if owner is not None and key in _holdings(owner, service_message):
                continue
            if await store.delete_if(key, kv.mod_revision) is not None:
                report.released.append(key.decode())
    for key, holders in held.items():
        if len(holders) > 1:
            report.doubled.append(key.decode())
        if key in allocated:
            continue
        value = key.rsplit(b"/", 1)[1].decode()
        if key.startswith(IP_KEY_PREFIX) and not ranges.contains_ip(value):
            continue  # outside today's range: never handed out, needs no key
        if await store.put_if(key, holders[0], 0) is not None:
            report.recorded.append(key.decode())
    return report
