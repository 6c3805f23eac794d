"""--event-ttl: Events are stored under an etcd lease renewed by every write
(Kubernetes' TTLFunc for events), so they go that long after the last one.
The in-memory store keeps etcd's lease semantics on a fake clock; the lease
manager reuses a lease as kube-apiserver's does."""
from __future__ import annotations

import random

import pytest

from apiserver import storage
from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from apiserver.strategy import strategies
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from tests.builders import configmap

EVENTS = REGISTRY.by_resource("events")
CONFIGMAPS = REGISTRY.by_resource("configmaps")
NAMESPACES = REGISTRY.by_resource("namespaces")


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


# ---------------------------------------------------------------- the store

async def test_a_key_under_a_lease_goes_when_it_expires_and_watchers_see_it():
    clock = Clock()
    store = MemoryStore(clock=clock)
    lease = await store.grant_lease(10)
    await store.put_if(b"/registry/events/a/x", b"x", 0, lease=lease)
    await store.put_if(b"/registry/events/a/y", b"y", 0, lease=lease)
    await store.put_if(b"/registry/configmaps/a/z", b"z", 0)
    before = await store.current_revision()
    clock.now_s += 9.9
    assert await store.get(b"/registry/events/a/x") is not None
    clock.now_s += 0.1
    assert await store.get(b"/registry/events/a/x") is None
    assert await store.get(b"/registry/events/a/y") is None
    assert await store.get(b"/registry/configmaps/a/z") is not None
    # Both keys went in one change, as etcd revokes a lease.
    assert await store.current_revision() == before + 1
    watch = store.watch(b"/registry/events/", before + 1)
    batch = await anext(watch)
    assert [(c.key, c.deleted) for c in batch.changes] == [
        (b"/registry/events/a/x", True), (b"/registry/events/a/y", True)]
    await watch.aclose()


async def test_a_put_without_a_lease_detaches_the_key_and_an_unknown_lease_is_refused():
    clock = Clock()
    store = MemoryStore(clock=clock)
    lease = await store.grant_lease(5)
    rev = await store.put_if(b"k", b"1", 0, lease=lease)
    await store.put_if(b"k", b"2", rev)
    clock.now_s += 60
    assert (await store.get(b"k")).value == b"2"
    with pytest.raises(errors.NotFound, match="requested lease not found"):
        await store.put_if(b"other", b"1", 0, lease=lease)  # expired meanwhile


@pytest.mark.parametrize("ttl_s, after_s, reused", [
    (3600, 30, True),    # granted for 3660 s: still outlives 3600 s from now
    (3600, 61, False),   # past the 60 s reuse window
    (2, 0.5, False),     # 5% of 2 s is 0: no reuse
], ids=["within-reuse", "past-reuse", "short-ttl"])
async def test_the_lease_manager_reuses_a_lease_within_its_window(ttl_s, after_s, reused):
    clock = Clock()
    store = MemoryStore(clock=clock)
    leases = storage.LeaseManager(store, clock=clock)
    first = await leases.get(ttl_s)
    clock.now_s += after_s
    assert (await leases.get(ttl_s) == first) is reused


async def test_the_lease_manager_caps_the_keys_of_one_lease():
    clock = Clock()
    leases = storage.LeaseManager(MemoryStore(clock=clock), clock=clock, objects_max=2)
    ids = []
    for _ in range(5):
        clock.now_s += 1
        ids.append(await leases.get(3600))
    assert ids[0] == ids[1] != ids[2] == ids[3] != ids[4]


# ---------------------------------------------------------------- the registry

@pytest.fixture
async def reg():
    clock = Clock()
    store = MemoryStore(clock=clock)
    registry = ObjectRegistry(
        store, {}, rng=random.Random(1), clock=lambda: 1_800_000_000.0,
        kind_strategies=strategies(REGISTRY, event_ttl_s=60),
        leases=storage.LeaseManager(store, clock=clock))
    registry.fake_clock = clock
    await registry.create(NAMESPACES, "", codec.from_dict(NAMESPACES.message,
                                                          {"metadata": {"name": "default"}}))
    return registry


def _event(name: str):
    return codec.from_dict(EVENTS.message, {
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web"},
        "reason": "Started", "message": "started", "count": 1})


async def test_an_event_expires_after_the_ttl_since_its_last_write(reg):
    created = await reg.create(EVENTS, "default", _event("web.1"))
    await reg.create(CONFIGMAPS, "default", configmap("kept"))
    reg.fake_clock.now_s += 50
    created.count = 2
    await reg.update(EVENTS, created)  # a repeat: the TTL starts again
    reg.fake_clock.now_s += 50
    assert (await reg.get(EVENTS, "default", "web.1")).count == 2
    await reg.patch(EVENTS, "default", "web.1", '{"count": 3}')
    reg.fake_clock.now_s += 59
    assert (await reg.get(EVENTS, "default", "web.1")).count == 3
    reg.fake_clock.now_s += 4  # the lease's reuse window: 5% of 60 s
    with pytest.raises(errors.NotFound):
        await reg.get(EVENTS, "default", "web.1")
    assert (await reg.get(CONFIGMAPS, "default", "kept")).metadata.name == "kept"


async def test_other_kinds_never_expire(reg):
    await reg.create(CONFIGMAPS, "default", configmap("c"))
    reg.fake_clock.now_s += 10 * 365 * 86400
    assert (await reg.get(CONFIGMAPS, "default", "c")).metadata.name == "c"
