"""LoadBalancer addresses: the pool, allocation (lowest free, a requested
one, exhaustion with its event), release on a type change or deletion, and
no duplicates after a restart (tests/unit/controller_harness.py)."""
from __future__ import annotations

import pytest

from controller_manager import service_lb as lb
from controller_manager.base import Options
from tests.unit.cli_memclient import MemClient
from tests.unit.controller_harness import ControllerHarness
from tests.unit.svc_builders import svc


@pytest.mark.parametrize("cidr,first,last,size", [
    ("127.1.5.0/24", "127.1.5.1", "127.1.5.254", 254),
    ("127.1.5.0/30", "127.1.5.1", "127.1.5.2", 2),
    ("127.1.5.7/32", "127.1.5.7", "127.1.5.7", 1)],
    ids=["slash24", "slash30", "single"])
def test_pool(cidr, first, last, size):
    pool = lb.parse_pool(cidr)
    assert (pool[0], pool[-1], len(pool)) == (first, last, size)


@pytest.mark.parametrize("cidr", ["nonsense", "10.0.0.0/8"], ids=["invalid", "too-big"])
def test_pool_refused(cidr):
    with pytest.raises(lb.PoolError):
        lb.parse_pool(cidr)


def lb_svc(name, **kw):
    """Stored through the registry, which allocates each one its own ClusterIP."""
    return svc(name, type_="LoadBalancer", **{"cluster_ip": "", **kw})


async def stored(client, *services):
    out = []
    for s in services:
        s.metadata.ClearField("creation_timestamp")
        out.append(await client.create(s))
    return out


class LBHarness(ControllerHarness):
    async def relist(self):
        self.cache("services", (await self.client.list("services", "default")).items)

    async def ips(self) -> dict[str, list[str]]:
        return {s.metadata.name: [(i.ip, i.ip_mode) for i in s.status.load_balancer.ingress]
                for s in (await self.client.list("services", "default")).items}

    async def sync_all(self):
        await self.relist()
        for s in list(self.controller.services.list()):
            await self.controller.sync(f"default/{s.metadata.name}")


def harness(client, cidr="127.1.5.0/30"):
    return LBHarness(lb.ServiceLBController, client,
                     Options(apiserver="-", load_balancer_ip_range=cidr))


async def events(client):
    return [(e.reason, e.message) for e in (await client.list("events", "default")).items]


async def test_allocate_lowest_free_honour_requested_and_exhaust():
    client = await MemClient.new()
    await stored(client, lb_svc("a"), lb_svc("b", loadBalancerIP="127.1.5.1"),
                 lb_svc("c"), svc("plain", cluster_ip="127.1.0.30"),
                 lb_svc("other", loadBalancerClass="example.com/lb"))
    h = harness(client)
    try:
        await h.relist()
        for name in ("b", "a", "c", "plain", "other"):
            await h.controller.sync(f"default/{name}")
        ips = await h.ips()
        assert ips["b"] == [("127.1.5.1", "VIP")]
        assert ips["a"] == [("127.1.5.2", "VIP")]
        assert ips["c"] == [] and ips["plain"] == [] and ips["other"] == []
        await h.ctx.recorder("service-controller").flush(5)
        assert ("AllocationFailed", 'Failed to allocate IP for "default/c": no available IPs') in (
            await events(client))
        # a stops being a LoadBalancer: its address goes back and c (waiting) gets it.
        await h.relist()
        a = h.controller.services.get("default/a")
        a.spec.type = "ClusterIP"
        await client.update(a)
        await h.relist()
        await h.controller.sync("default/a")
        assert "default/c" in h.controller.queue._queue  # the waiting Service is requeued
        await h.controller.sync("default/c")
        ips = await h.ips()
        assert ips["a"] == [] and ips["c"] == [("127.1.5.2", "VIP")]
        # b is deleted: its address is free again.
        await client.delete("services", "b", "default")
        await h.relist()
        await h.controller.sync("default/b")
        assert h.controller.allocator.holder("127.1.5.1") is None
    finally:
        await h.stop()


@pytest.mark.parametrize("requested,reason", [
    ("127.9.9.9", '"127.9.9.9" is not allowed in config'),
    ("127.1.5.1", "address also in use by default/first")],
    ids=["outside-pool", "taken"])
async def test_requested_address_refused(requested, reason):
    client = await MemClient.new()
    await stored(client, lb_svc("first"), lb_svc("second", loadBalancerIP=requested))
    h = harness(client)
    try:
        await h.relist()
        await h.controller.sync("default/first")
        await h.controller.sync("default/second")
        assert (await h.ips())["second"] == []
        await h.ctx.recorder("service-controller").flush(5)
        assert any(r == "AllocationFailed" and reason in m for r, m in await events(client))
    finally:
        await h.stop()


async def test_restart_takes_the_stored_addresses_and_never_duplicates():
    client = await MemClient.new()
    await stored(client, lb_svc("a"), lb_svc("b"))
    first = harness(client)
    try:
        await first.sync_all()
    finally:
        await first.stop()
    before = await first.ips()
    assert sorted(ip for v in before.values() for ip, _ in v) == ["127.1.5.1", "127.1.5.2"]
    await stored(client, lb_svc("c"))
    # A new controller (a restart) with a bigger pool: a and b keep theirs, c gets a new one.
    second = harness(client, "127.1.5.0/29")
    try:
        await second.relist()
        await second.controller.sync("default/c")  # c first: it must not take a's or b's
        await second.sync_all()
        after = await second.ips()
        assert after["a"] == before["a"] and after["b"] == before["b"]
        assert after["c"] == [("127.1.5.3", "VIP")]
    finally:
        await second.stop()
