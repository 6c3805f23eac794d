"""MemoryStore keeps etcd's revision, conditional-write, watch and compaction semantics."""
from __future__ import annotations

import asyncio

import pytest

from apiserver.memstore import MemoryStore
from apiserver.storage import prefix_end
from kubemu.api import errors

P = b"/registry/things/"
END = prefix_end(P)


def key(name: str) -> bytes:
    return P + name.encode()


async def next_batch(batches, timeout_s: float = 2.0):
    return await asyncio.wait_for(anext(batches), timeout_s)


async def test_every_write_makes_the_next_revision_and_keys_remember_theirs():
    store = MemoryStore()
    assert await store.current_revision() == 1
    assert await store.put_if(key("a"), b"a1", 0) == 2
    assert await store.put_if(key("b"), b"b1", 0) == 3
    assert await store.put_if(key("a"), b"a2", 2) == 4
    a = await store.get(key("a"))
    assert (a.value, a.mod_revision, a.create_revision) == (b"a2", 4, 2)
    assert await store.current_revision() == 4


@pytest.mark.parametrize("mod_revision", [0, 1, 3], ids=["absent", "older", "newer"])
async def test_a_write_conditioned_on_another_revision_fails_and_changes_nothing(mod_revision):
    store = MemoryStore()
    await store.put_if(key("a"), b"a1", 0)  # revision 2
    assert await store.put_if(key("a"), b"x", mod_revision) is None
    assert await store.delete_if(key("a"), mod_revision) is None
    assert (await store.get(key("a"))).value == b"a1"
    assert await store.current_revision() == 2


async def test_delete_then_recreate_starts_a_new_life():
    store = MemoryStore()
    await store.put_if(key("a"), b"a1", 0)  # 2
    assert await store.delete_if(key("a"), 2) == 3
    assert await store.get(key("a")) is None
    assert await store.put_if(key("a"), b"a2", 0) == 4
    assert (await store.get(key("a"))).create_revision == 4


async def test_range_limit_count_more_and_reads_at_an_old_revision():
    store = MemoryStore()
    for name in "cab":
        await store.put_if(key(name), name.encode(), 0)  # c=2 a=3 b=4
    await store.delete_if(key("c"), 2)  # 5
    page = await store.range(P, END, limit=1)
    assert [kv.key for kv in page.kvs] == [key("a")]
    assert (page.more, page.count, page.revision) == (True, 2, 5)
    old = await store.range(P, END, limit=0, revision=3)
    assert [kv.value for kv in old.kvs] == [b"a", b"c"]
    assert (old.more, old.count, old.revision) == (False, 2, 5)  # header: the current revision
    with pytest.raises(errors.Internal):
        await store.range(P, END, limit=0, revision=99)


async def test_compaction_expires_older_reads_but_keeps_the_state_at_it():
    store = MemoryStore()
    await store.put_if(key("a"), b"a1", 0)  # 2
    await store.put_if(key("a"), b"a2", 2)  # 3
    await store.put_if(key("b"), b"b1", 0)  # 4
    await store.delete_if(key("b"), 4)  # 5
    await store.compact(4)
    with pytest.raises(errors.Expired):
        await store.range(P, END, limit=0, revision=3)
    at4 = await store.range(P, END, limit=0, revision=4)
    assert [(kv.key, kv.value) for kv in at4.kvs] == [(key("a"), b"a2"), (key("b"), b"b1")]
    now = await store.range(P, END, limit=0)
    assert [kv.value for kv in now.kvs] == [b"a2"]
    await store.compact(3)  # already compacted further: nothing happens


async def test_watch_replays_from_a_revision_with_previous_values_then_follows():
    store = MemoryStore()
    await store.put_if(key("a"), b"a1", 0)  # 2
    await store.put_if(b"/registry/other/x", b"x", 0)  # 3: not under the prefix
    await store.put_if(key("a"), b"a2", 2)  # 4
    batches = store.watch(P, 2)
    try:
        batch = await next_batch(batches)
        assert [(c.value, c.prev_value, c.mod_revision, c.deleted) for c in batch.changes] == [
            (b"a1", b"", 2, False), (b"a2", b"a1", 4, False)]
        assert batch.revision == 4
        await store.delete_if(key("a"), 4)  # 5
        batch = await next_batch(batches)
        assert [(c.value, c.prev_value, c.deleted) for c in batch.changes] == [(b"", b"a2", True)]
    finally:
        await batches.aclose()


async def test_a_progress_request_is_answered_once_everything_was_sent():
    store = MemoryStore()
    progress: asyncio.Queue = asyncio.Queue(maxsize=1)
    batches = store.watch(P, 0, progress)
    try:
        await store.put_if(b"/registry/other/x", b"x", 0)  # 2, not watched
        progress.put_nowait(True)
        batch = await next_batch(batches)
        assert (batch.changes, batch.revision) == ([], 2)
    finally:
        await batches.aclose()


async def test_a_watch_from_a_compacted_revision_is_expired():
    store = MemoryStore()
    for i in range(4):
        await store.put_if(key(f"k{i}"), b"v", 0)  # 2..5
    await store.compact(4)
    with pytest.raises(errors.Expired):
        await anext(store.watch(P, 3))


async def test_a_watch_whose_undelivered_changes_are_compacted_is_expired():
    store = MemoryStore()
    await store.put_if(key("a"), b"a", 0)  # 2
    batches = store.watch(P, 2)
    try:
        assert [c.mod_revision for c in (await next_batch(batches)).changes] == [2]
        await store.put_if(key("b"), b"b", 0)  # 3: the watch has not read it yet
        await store.put_if(key("c"), b"c", 0)  # 4
        await store.compact(4)
        with pytest.raises(errors.Expired):
            await next_batch(batches)
    finally:
        await batches.aclose()


async def test_history_is_bounded_by_compacting_the_oldest_changes():
    store = MemoryStore(history_max=3)
    for i in range(6):
        await store.put_if(key(f"k{i}"), b"v", 0)  # 2..7
    assert store.compacted == 4
    with pytest.raises(errors.Expired):
        await store.range(P, END, limit=0, revision=3)
    assert (await store.range(P, END, limit=0)).count == 6


async def test_a_request_over_the_size_limit_is_refused_like_etcd_refuses_it():
    store = MemoryStore(request_bytes_max=4096)
    with pytest.raises(errors.RequestEntityTooLarge):
        await store.put_if(key("big"), b"x" * 4096, 0)
    assert await store.get(key("big")) is None


async def test_an_unreachable_store_fails_every_call():
    store = MemoryStore()
    store.fail_with = errors.Unavailable("etcd is unavailable")
    with pytest.raises(errors.Unavailable):
        await store.get(key("a"))
    with pytest.raises(errors.Unavailable):
        await store.put_if(key("a"), b"a", 0)


async def test_a_transaction_writes_everything_at_one_revision_or_nothing():
    store = MemoryStore()
    await store.put_if(key("gone"), b"g", 0)
    batches = store.watch(P, 3)
    rev = await store.txn([(key("a"), 0), (key("b"), 0)],
                          [(key("a"), b"a"), (key("b"), b"b")], [key("gone"), key("never")])
    assert rev == 3 and await store.current_revision() == 3
    assert [(kv.key, kv.mod_revision) for kv in (await store.range(P, END, limit=0)).kvs] == [
        (key("a"), 3), (key("b"), 3)]
    batch = await next_batch(batches)
    assert [(c.key, c.deleted, c.mod_revision) for c in batch.changes] == [
        (key("a"), False, 3), (key("b"), False, 3), (key("gone"), True, 3)]
    # One failed condition: nothing written, no new revision.
    assert await store.txn([(key("a"), 3), (key("c"), 99)], [(key("c"), b"c")], [key("a")]) \
        is None
    assert await store.current_revision() == 3 and await store.get(key("a")) is not None
