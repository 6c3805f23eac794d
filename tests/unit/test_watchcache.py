"""The watch cache on the in-memory store: replay, windows, compaction, late
events, slow watchers, corrupt values and restarts."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from apiserver import storage
from apiserver.memstore import MemoryStore
from apiserver.stored import encode
from apiserver.watchcache import WatchCache
from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.wait import wait_for
from kubemu.faults import Faults, InjectedFault
from tests.builders import configmap

CONFIGMAPS = REGISTRY.by_resource("configmaps")
EVERYTHING = lambda obj: True  # noqa: E731


def key(name: str) -> bytes:
    return storage.object_key("configmaps", "default", name)


async def put(store: MemoryStore, name: str, **data: str) -> int:
    current = await store.get(key(name))
    return await store.put_if(key(name), encode(CONFIGMAPS, configmap(name, **data)),
                              current.mod_revision if current else 0)


async def delete(store: MemoryStore, name: str) -> int:
    current = await store.get(key(name))
    return await store.delete_if(key(name), current.mod_revision)


@contextlib.asynccontextmanager
async def running(cache: WatchCache):
    task = asyncio.create_task(cache.run())
    try:
        await wait_for(cache.ready.is_set, 5)
        yield task
    finally:
        task.cancel()
        await asyncio.wait([task])  # its outcome is the test's business


async def events(watcher, count: int, timeout_s: float = 5.0) -> list[tuple[str, str, int]]:
    seen = []
    for _ in range(count):
        item = await asyncio.wait_for(watcher.next(), timeout_s)
        assert item is not None, f"the watch ended: {watcher.closed}"
        kind, event = item
        seen.append((kind, event.obj.metadata.name, event.rv))
    return seen


async def test_a_watch_from_a_version_replays_exactly_what_came_after_it():
    store = MemoryStore()
    cache = WatchCache(store, CONFIGMAPS)
    async with running(cache):
        start = await put(store, "a")
        b = await put(store, "b")
        a2 = await put(store, "a", k="v")
        gone = await delete(store, "b")
        await cache.wait_fresh(gone)
        watcher = await cache.watch(start, "", EVERYTHING, False)
        assert await events(watcher, 3) == [("ADDED", "b", b), ("MODIFIED", "a", a2),
                                            ("DELETED", "b", gone)]
        c = await put(store, "c")
        assert await events(watcher, 1) == [("ADDED", "c", c)]


async def test_a_watch_from_zero_gets_the_current_state_then_changes():
    store = MemoryStore()
    a = await put(store, "a")
    cache = WatchCache(store, CONFIGMAPS)
    async with running(cache):
        watcher = await cache.watch(0, "", EVERYTHING, False)
        assert await events(watcher, 1) == [("ADDED", "a", a)]
        b = await put(store, "b")
        assert await events(watcher, 1) == [("ADDED", "b", b)]


async def test_a_version_older_than_the_window_is_expired():
    store = MemoryStore()
    cache = WatchCache(store, CONFIGMAPS, capacity=3)
    async with running(cache):
        first = await put(store, "c0")
        last = 0
        for i in range(1, 5):
            last = await put(store, f"c{i}")
        await cache.wait_fresh(last)
        with pytest.raises(errors.Expired, match=f"too old resource version: {first}"):
            await cache.watch(first, "", EVERYTHING, False)
        # The oldest version still in the window works.
        watcher = await cache.watch(cache.window_start, "", EVERYTHING, False)
        assert [name for _, name, _ in await events(watcher, 3)] == ["c2", "c3", "c4"]


async def test_a_compacted_version_is_expired():
    store = MemoryStore()
    cache = WatchCache(store, CONFIGMAPS)
    async with running(cache):
        first = await put(store, "a")
        latest = await put(store, "b")
        await cache.wait_fresh(latest)
        await store.compact(latest)
        cache.forget_before(latest)
        with pytest.raises(errors.Expired):
            await cache.watch(first, "", EVERYTHING, False)


async def test_a_watch_served_from_a_premature_progress_notice_ends_when_a_late_event_comes():
    """etcd 3.5.1 may report progress to revision R before sending an event <= R."""
    cache = WatchCache(MemoryStore(), CONFIGMAPS)
    cache.ready.set()
    await cache._advance(10)  # the premature progress notice
    early = await cache.watch(8, "", EVERYTHING, False)
    served_from_notice = await cache.watch(10, "", EVERYTHING, False)
    late = storage.Change(key("a"), encode(CONFIGMAPS, configmap("a")), b"", 9, False)
    cache._apply(late)
    assert isinstance(served_from_notice.closed, errors.Expired)
    assert "arrived late" in str(served_from_notice.closed)
    assert served_from_notice not in cache.watchers
    assert await events(early, 1) == [("ADDED", "a", 9)]  # not lost for an older watch
    assert early.closed is None


async def test_a_watcher_that_falls_behind_is_closed_and_others_go_on():
    cache = WatchCache(MemoryStore(), CONFIGMAPS, backlog_max=2)
    cache.ready.set()
    slow = await cache.watch(0, "", EVERYTHING, False)
    keeping_up = await cache.watch(0, "", EVERYTHING, False)
    for rev, name in enumerate(["a", "b", "c"], start=2):
        cache._apply(storage.Change(key(name), encode(CONFIGMAPS, configmap(name)), b"", rev,
                                    False))
        if rev < 4:
            await keeping_up.next()
    assert isinstance(slow.closed, errors.Unavailable)
    assert "fell too far behind" in str(slow.closed)
    assert slow not in cache.watchers and keeping_up in cache.watchers
    assert [name for _, name, _ in await events(keeping_up, 1)] == ["c"]


async def test_a_corrupt_value_is_skipped_and_the_object_it_replaced_is_deleted():
    store = MemoryStore()
    cache = WatchCache(store, CONFIGMAPS)
    async with running(cache):
        await put(store, "a")
        await put(store, "b")
        await cache.wait_fresh(await store.current_revision())
        watcher = await cache.watch(0, "", EVERYTHING, False)
        await events(watcher, 2)
        current = await store.get(key("a"))
        broken = await store.put_if(key("a"), b"\xff\xff garbage", current.mod_revision)
        c = await put(store, "c")
        assert await events(watcher, 2) == [("DELETED", "a", broken), ("ADDED", "c", c)]
        assert sorted(cache.objects) == ["default/b", "default/c"]


async def test_a_corrupt_value_does_not_stop_the_first_listing():
    store = MemoryStore()
    await put(store, "a")
    await store.put_if(key("bad"), b"\xff\xff garbage", 0)
    cache = WatchCache(store, CONFIGMAPS)
    async with running(cache):
        assert sorted(cache.objects) == ["default/a"]


async def test_after_an_unexpected_failure_the_cache_relists_and_open_watches_lose_nothing(
        tmp_path):
    store = MemoryStore()
    cache = WatchCache(store, CONFIGMAPS, faults=Faults(tmp_path))
    await put(store, "a")  # 2
    await put(store, "b")  # 3
    async with running(cache) as task:
        watcher = await cache.watch(0, "", EVERYTHING, False)
        await events(watcher, 2)
        (tmp_path / cache.fault_point).touch()
        x = await put(store, "x")  # the failing watch never applies it
        with pytest.raises(InjectedFault):
            await asyncio.wait_for(asyncio.shield(task), 5)
    (tmp_path / cache.fault_point).unlink()
    a = await put(store, "a", k="2")
    b_gone = await delete(store, "b")
    async with running(cache):  # what the supervising loop does: run it again
        assert await events(watcher, 3) == [("ADDED", "x", x), ("MODIFIED", "a", a),
                                            ("DELETED", "b", b_gone)]
        assert watcher.closed is None and watcher in cache.watchers
        c = await put(store, "c")
        assert await events(watcher, 1) == [("ADDED", "c", c)]
