"""LoadBalancer addresses for Services, as a bare-metal load balancer
(MetalLB's controller) gives them; kube-proxy then serves the address like a
ClusterIP.

The pool is `--load-balancer-ip-range` (a CIDR; its host addresses, the
lowest free one first; the supervisor passes the cluster's 127.1.B.0/24). A
Service of type LoadBalancer without `spec.loadBalancerClass` gets one
address, written as `status.loadBalancer.ingress: [{ip, ipMode: VIP}]`:
`spec.loadBalancerIP` when it is in the pool and free (else a Warning
AllocationFailed event and no address), else the address its status already
shows (kept across restarts), else the lowest free one. A Service with a
loadBalancerClass belongs to that class's controller: left alone. The
address is released (and the status cleared) when the Service stops being a
LoadBalancer, and released when it is deleted. An exhausted pool is a Warning
AllocationFailed event ("no available IPs"); the Services waiting are synced
again whenever an address is released.

Restart safety: before its first sync the allocator reads every cached
Service's status (the informers have synced) and takes the addresses they
hold, oldest Service first, so a restarted controller never hands out an
address twice; a later Service found holding a taken address gets a new one.
All allocation happens between two awaits, so concurrent workers never pick
the same address.
"""
from __future__ import annotations

import ipaddress

from google.protobuf.message import Message

from kubemu.client.events import NORMAL, WARNING
from kubemu.client.informer import meta_namespace_key

from controller_manager import controllerutil as cu
from controller_manager.base import Context, Controller, copy

IP_MODE_VIP = "VIP"
# Bound on the pool (a /16): the allocator scans it for the lowest free address.
POOL_SIZE_MAX = 65536


class PoolError(ValueError):
    pass


def parse_pool(cidr: str) -> list[str]:
    """The host addresses of an IPv4 CIDR (network and broadcast excluded
    from /30 and larger), at most POOL_SIZE_MAX."""
    try:
        net = ipaddress.IPv4Network(cidr, strict=False)
    except ValueError as exc:
        raise PoolError(f"invalid CIDR address: {cidr}") from exc
    if net.num_addresses > POOL_SIZE_MAX:
        raise PoolError(f"{cidr}: a pool holds at most {POOL_SIZE_MAX} addresses")
    return [str(ip) for ip in (net.hosts() if net.num_addresses > 2 else net)]


class Allocator:
    """Addresses of the pool -> the Service key holding it."""

    def __init__(self, pool: list[str]):
        self.pool = pool
        self._members = set(pool)
        self.by_ip: dict[str, str] = {}
        self.by_key: dict[str, str] = {}

    def contains(self, ip: str) -> bool:
        return ip in self._members

    def holder(self, ip: str) -> str | None:
        return self.by_ip.get(ip)

    def assign(self, key: str, ip: str) -> bool:
        """Give `ip` to `key` (releasing what key held); False when another holds it."""
        holder = self.by_ip.get(ip)
        if holder is not None and holder != key:
            return False
        if not self.contains(ip):
            return False
        self.release(key)
        self.by_ip[ip] = key
        self.by_key[key] = ip
        return True

    def allocate(self, key: str) -> str | None:
        """The lowest free address for `key` (its own if it holds one)."""
        if key in self.by_key:
            return self.by_key[key]
        for ip in self.pool:
            if ip not in self.by_ip:
                self.by_ip[ip] = key
                self.by_key[key] = ip
                return ip
        return None

    def release(self, key: str) -> str | None:
        ip = self.by_key.pop(key, None)
        if ip is not None:
            self.by_ip.pop(ip, None)
        return ip


def wants_address(svc: Message) -> bool:
    return svc.spec.type == "LoadBalancer" and not svc.spec.HasField("load_balancer_class")


def ingress_ips(svc: Message) -> list[str]:
    return [i.ip for i in svc.status.load_balancer.ingress if i.ip]


class ServiceLBController(Controller):
    name = "service-lb-controller"
    # kube-controller-manager: "service-lb-controller", formerly "service"; and
    # "service-lb", the short name kubemu's issue 10 uses.
    aliases = ("service", "service-lb")
    resources = ("services",)
    default_workers = 1  # --concurrent-service-syncs
    event_source = "service-controller"

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.allocator = Allocator(parse_pool(ctx.options.load_balancer_ip_range))
        self.services = self.informer("services")
        self._loaded = False
        # Services that found the pool exhausted: synced again on a release.
        self._waiting: set[str] = set()
        self.services.add_handler(self.enqueue, self._on_update, self.enqueue)

    def _on_update(self, old: Message, new: Message) -> None:
        if (old.spec != new.spec or old.status != new.status
                or old.metadata.deletion_timestamp != new.metadata.deletion_timestamp):
            self.enqueue(new)

    def _load(self) -> None:
        """Take the addresses the stored Services hold (oldest first)."""
        holders = sorted((s for s in self.services.list() if wants_address(s)),
                         key=lambda s: (cu.created_s(s), s.metadata.namespace, s.metadata.name))
        for svc in holders:
            key = meta_namespace_key(svc)
            for ip in ingress_ips(svc):
                if self.allocator.assign(key, ip):
                    break
        self._loaded = True

    def _release(self, key: str) -> None:
        if self.allocator.release(key) is not None:
            for waiting in sorted(self._waiting):
                self.enqueue(waiting)
            self._waiting.clear()

    async def sync(self, key: str) -> None:
        if not self._loaded:
            self._load()
        svc = self.services.get(key)
        if svc is None:
            self._waiting.discard(key)
            self._release(key)
            return
        if svc.spec.HasField("load_balancer_class") and svc.spec.type == "LoadBalancer":
            self._waiting.discard(key)
            self._release(key)
            return  # another load balancer's
        if not wants_address(svc):
            self._waiting.discard(key)
            self._release(key)
            # Ours to clear: an address of the pool (also one given before a
            # restart, which _load does not count for a Service no longer LB).
            if any(self.allocator.contains(ip) for ip in ingress_ips(svc)):
                status = copy(svc.status)
                status.load_balancer.ClearField("ingress")
                await cu.write_status(self.client, svc, status)
            return
        ip = self._choose(key, svc)
        if ip is None:
            return
        self._waiting.discard(key)
        want = [(ip, IP_MODE_VIP)]
        have = [(i.ip, i.ip_mode if i.HasField("ip_mode") else "")
                for i in svc.status.load_balancer.ingress]
        if have == want:
            return
        status = copy(svc.status)
        status.load_balancer.ClearField("ingress")
        entry = status.load_balancer.ingress.add()
        entry.ip, entry.ip_mode = ip, IP_MODE_VIP
        if await cu.write_status(self.client, svc, status) is not None:
            self.recorder.record(svc, NORMAL, "IPAllocated", f'Assigned IP ["{ip}"]')

    def _choose(self, key: str, svc: Message) -> str | None:
        requested = svc.spec.load_balancer_ip
        if requested:
            if not self.allocator.contains(requested):
                self._fail(key, svc, f'"{requested}" is not allowed in config')
                return None
            if not self.allocator.assign(key, requested):
                holder = self.allocator.holder(requested)
                self._fail(key, svc, f'can\'t change sharing key for "{key}", address also in '
                                     f'use by {holder}')
                return None
            return requested
        held = self.allocator.by_key.get(key)
        if held is not None:
            return held
        for ip in ingress_ips(svc):
            if self.allocator.assign(key, ip):
                return ip
        ip = self.allocator.allocate(key)
        if ip is None:
            self._waiting.add(key)
            self._fail(key, svc, "no available IPs")
        return ip

    def _fail(self, key: str, svc: Message, reason: str) -> None:
        self.recorder.record(svc, WARNING, "AllocationFailed",
                             f'Failed to allocate IP for "{key}": {reason}')
