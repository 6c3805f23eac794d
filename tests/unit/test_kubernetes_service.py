"""The `kubernetes` Service and its endpoints (apiserver.kubernetes_service),
on the in-memory store with a hand-driven clock."""
from __future__ import annotations

import random

from apiserver.kubernetes_service import KubernetesService, by_port, split_address
from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2

NAMESPACES = REGISTRY.by_resource("namespaces")


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now_s


async def setup():
    store = MemoryStore()
    reg = ObjectRegistry(store, {}, rng=random.Random(1))
    await reg.create(NAMESPACES, "", core_pb2.Namespace(metadata={"name": "default"}))
    return store, reg


def apiserver(reg, store, address: str, clock: Clock) -> KubernetesService:
    return KubernetesService(reg, store, address=address, cluster_ip="127.1.0.1", clock=clock,
                             interval_s=10.0, lease_ttl_s=15.0)


async def addresses(reg) -> tuple[dict, dict]:
    ep = await reg.get(REGISTRY.by_resource("endpoints"), "default", "kubernetes")
    slices, _, _, _ = await reg.list(REGISTRY.by_resource("endpointslices"), "default",
                                     None, 0, "")
    return ({s.ports[0].port: [a.ip for a in s.addresses] for s in ep.subsets},
            {s.metadata.name: ([a for e in s.endpoints for a in e.addresses], s.ports[0].port)
             for s in slices})


def test_addresses_are_grouped_by_port():
    assert split_address("0.0.0.0:6443") == ("127.0.0.1", 6443)
    assert by_port(["127.0.0.2:7000", "127.0.0.1:6443", "127.0.0.1:7000"]) == {
        6443: ["127.0.0.1"], 7000: ["127.0.0.1", "127.0.0.2"]}


async def test_service_endpoints_and_slices_follow_live_apiservers():
    store, reg = await setup()
    clock = Clock()
    a = apiserver(reg, store, "127.0.0.1:6443", clock)
    await a.sync()
    svc = await reg.get(REGISTRY.by_resource("services"), "default", "kubernetes")
    assert codec.to_dict(svc)["spec"]["ports"] == [
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    assert svc.spec.cluster_ip == "127.1.0.1"
    assert await addresses(reg) == ({6443: ["127.0.0.1"]},
                                    {"kubernetes": (["127.0.0.1"], 6443)})

    b = apiserver(reg, store, "127.0.0.2:6443", clock)
    c = apiserver(reg, store, "127.0.0.1:7000", clock)
    await b.sync()
    await c.sync()
    assert await addresses(reg) == (
        {6443: ["127.0.0.1", "127.0.0.2"], 7000: ["127.0.0.1"]},
        {"kubernetes": (["127.0.0.1", "127.0.0.2"], 6443),
         "kubernetes-7000": (["127.0.0.1"], 7000)})

    await c.leave(5.0)  # graceful stop: gone at once, and its periodic sync adds nothing
    await c.sync()
    assert await addresses(reg) == ({6443: ["127.0.0.1", "127.0.0.2"]},
                                    {"kubernetes": (["127.0.0.1", "127.0.0.2"], 6443)})

    clock.now_s += 16.0  # b stopped renewing (killed): its lease expires
    await a.sync()
    assert await addresses(reg) == ({6443: ["127.0.0.1"]},
                                    {"kubernetes": (["127.0.0.1"], 6443)})


async def test_target_port_follows_an_apiserver_restarted_on_a_new_port():
    store, reg = await setup()
    clock = Clock()
    first = apiserver(reg, store, "127.0.0.1:6443", clock)
    await first.sync()
    await first.leave(5.0)
    restarted = apiserver(reg, store, "127.0.0.1:7443", clock)
    await restarted.sync()
    svc = await reg.get(REGISTRY.by_resource("services"), "default", "kubernetes")
    assert svc.spec.ports[0].target_port.int_val == 7443
    other = apiserver(reg, store, "127.0.0.1:8443", clock)
    await other.sync()  # 7443 is live: left alone
    svc = await reg.get(REGISTRY.by_resource("services"), "default", "kubernetes")
    assert svc.spec.ports[0].target_port.int_val == 7443
