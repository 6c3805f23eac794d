"""RateLimitingQueue keeps client-go's workqueue contract."""
from __future__ import annotations

import asyncio

import pytest

from kubemu.client.workqueue import QueueEmpty, QueueFull, RateLimitingQueue, ShutDown


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_queue(**kwargs) -> tuple[RateLimitingQueue, FakeClock]:
    clock = FakeClock()
    return RateLimitingQueue(clock=clock, **kwargs), clock


def drain(q: RateLimitingQueue) -> list:
    """Every key ready now, marking each done."""
    keys = []
    while True:
        try:
            key = q.get_nowait()
        except QueueEmpty:
            return keys
        keys.append(key)
        q.done(key)


async def let_others_run(rounds: int = 5) -> None:
    # Yields to the loop so tasks that could make progress do; not a wait.
    for _ in range(rounds):
        await asyncio.sleep(0)


def test_add_dedupes_waiting_keys():
    q, _ = make_queue()
    for key in ["a", "b", "a", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert drain(q) == ["a", "b", "c"]


async def test_get_hands_out_keys_in_order():
    q, _ = make_queue()
    q.add("x")
    q.add("y")
    assert await q.get() == "x"
    assert await q.get() == "y"


async def test_key_being_processed_is_not_handed_to_another_worker():
    q, _ = make_queue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # changed again while a worker holds it
    assert len(q) == 0
    with pytest.raises(QueueEmpty):
        q.get_nowait()
    second_worker = asyncio.create_task(q.get())
    await let_others_run()
    assert not second_worker.done(), "a key in processing was handed out twice"
    q.done("a")
    assert await asyncio.wait_for(second_worker, 5) == "a"


def test_dirty_key_is_requeued_once_on_done():
    q, _ = make_queue()
    q.add("a")
    assert q.get_nowait() == "a"
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 1  # only b; a waits for done
    q.done("a")
    assert drain(q) == ["b", "a"]


def test_done_without_re_add_does_not_requeue():
    q, _ = make_queue()
    q.add("a")
    q.done(q.get_nowait())
    assert len(q) == 0
    assert not q.is_processing("a")


async def test_waiting_getter_is_woken_by_add():
    q, _ = make_queue()
    getter = asyncio.create_task(q.get())
    await let_others_run()
    assert not getter.done()
    q.add("k")
    assert await asyncio.wait_for(getter, 5) == "k"


@pytest.mark.parametrize("base_delay_s,max_delay_s,expected", [
    (0.005, 1000, [0.005, 0.01, 0.02, 0.04, 0.08, 0.16]),
    (1, 10, [1, 2, 4, 8, 10, 10]),
    (0, 10, [0, 0, 0, 0, 0, 0]),
], ids=["client-go-defaults", "capped-at-max", "zero-base"])
def test_per_key_exponential_backoff(base_delay_s, max_delay_s, expected):
    q, _ = make_queue(base_delay_s=base_delay_s, max_delay_s=max_delay_s, qps=1e9, burst=10**6)
    delays = [q.add_rate_limited("a") for _ in expected]
    assert delays == pytest.approx(expected)
    assert q.num_requeues("a") == len(expected)
    assert q.num_requeues("b") == 0


def test_backoff_is_per_key():
    q, _ = make_queue(qps=1e9, burst=10**6)
    q.add_rate_limited("a")
    q.add_rate_limited("a")
    assert q.add_rate_limited("b") == pytest.approx(0.005)
    assert q.add_rate_limited("a") == pytest.approx(0.02)


def test_forget_resets_failures():
    q, _ = make_queue(qps=1e9, burst=10**6)
    for _ in range(4):
        q.add_rate_limited("a")
    assert q.num_requeues("a") == 4
    q.forget("a")
    assert q.num_requeues("a") == 0
    assert q.add_rate_limited("a") == pytest.approx(0.005)


def test_huge_failure_count_stays_at_the_cap():
    q, _ = make_queue(base_delay_s=0.005, max_delay_s=1000, qps=1e9, burst=10**6)
    for _ in range(2000):
        delay = q.add_rate_limited("a")
    assert delay == 1000


def test_global_token_bucket_limits_after_burst():
    q, clock = make_queue(base_delay_s=0.001, qps=10, burst=2)
    delays = [q.add_rate_limited(f"k{i}") for i in range(5)]
    # Two tokens at once, then one every 1/qps seconds, reserved in turn.
    assert delays == pytest.approx([0.001, 0.001, 0.1, 0.2, 0.3])
    clock.advance(10)  # the bucket refills, but never beyond burst
    delays = [q.add_rate_limited(f"j{i}") for i in range(3)]
    assert delays == pytest.approx([0.001, 0.001, 0.1])


def test_rate_limited_key_becomes_ready_after_its_delay():
    q, clock = make_queue(base_delay_s=1, max_delay_s=100)
    q.add_rate_limited("a")
    q.add_rate_limited("a")  # already delayed, for 1 s: the earlier time wins
    assert len(q) == 0
    clock.advance(0.75)
    assert len(q) == 0
    clock.advance(0.25)
    assert drain(q) == ["a"]


def test_add_after_orders_by_ready_time():
    q, clock = make_queue()
    q.add_after("c", 3)
    q.add_after("a", 1)
    q.add_after("b", 2)
    q.add_after("now", 0)
    assert drain(q) == ["now"]
    clock.advance(1.5)
    assert drain(q) == ["a"]
    clock.advance(10)
    assert drain(q) == ["b", "c"]


def test_add_after_keeps_earliest_time_per_key():
    q, clock = make_queue()
    q.add_after("a", 5)
    q.add_after("a", 1)
    q.add_after("a", 9)
    assert q.num_delayed() == 1
    clock.advance(1)
    assert drain(q) == ["a"]
    clock.advance(10)
    assert drain(q) == []  # the later entries did not queue it again


def test_delayed_key_already_waiting_is_not_duplicated():
    q, clock = make_queue()
    q.add("a")
    q.add_after("a", 1)
    clock.advance(1)
    assert drain(q) == ["a"]


async def test_getter_wakes_for_delayed_key_on_real_clock():
    q = RateLimitingQueue()
    q.add_after("soon", 0.01)
    assert await asyncio.wait_for(q.get(), 5) == "soon"


async def test_shutdown_drains_queued_keys_then_raises():
    q, _ = make_queue()
    q.add("a")
    q.add_after("later", 1)
    q.shutdown()
    q.add("ignored")
    assert q.shutting_down
    assert await q.get() == "a"
    with pytest.raises(ShutDown):
        await q.get()


async def test_shutdown_wakes_waiting_getters():
    q, _ = make_queue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await let_others_run()
    q.shutdown()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 5)
    assert all(isinstance(r, ShutDown) for r in results), results


@pytest.mark.parametrize("fill", [
    lambda q: [q.add(f"k{i}") for i in range(3)],
    lambda q: [q.add_after(f"k{i}", 10) for i in range(3)],
    lambda q: [q.add("k0"), q.add_after("k1", 10), q.add("k2")],
], ids=["queued", "delayed", "mixed"])
def test_bound_on_waiting_keys(fill):
    q, _ = make_queue(max_len=3)
    fill(q)
    q.add("k0")  # already waiting: dedupe, no growth, no error
    with pytest.raises(QueueFull, match="workqueue is full: 3 keys waiting"):
        q.add("one-too-many")
    with pytest.raises(QueueFull):
        q.add_after("one-too-many", 1)


def test_bound_frees_up_as_keys_are_taken():
    q, _ = make_queue(max_len=2)
    q.add("a")
    q.add("b")
    q.done(q.get_nowait())
    q.add("c")
    assert drain(q) == ["b", "c"]


def test_bound_on_keys_backing_off():
    q, _ = make_queue(max_len=2, qps=1e9, burst=10**6)
    q.add_rate_limited("a")
    q.add_rate_limited("b")
    with pytest.raises(QueueFull, match="forget"):
        q.add_rate_limited("c")
    q.forget("a")
    q.add_rate_limited("a")  # re-delayed key: no growth
