"""SchedulingQueue: priority order, backoff, requeue on relevant events only, flushes."""
from __future__ import annotations

import asyncio

import pytest

from scheduler import queue as q
from scheduler.default_config import default_framework
from scheduler.framework import (ASSIGNED_POD_ADD, ASSIGNED_POD_DELETE, NODE_ADD,
                                 NODE_ALLOCATABLE_CHANGE, NODE_LABEL_CHANGE,
                                 NODE_SPEC_UNSCHEDULABLE_CHANGE, NODE_TAINT_CHANGE,
                                 WILDCARD_EVENT)
from scheduler.podutil import pod_key
from scheduler.queue import (ACTIVE, BACKOFF, DROPPED, IN_FLIGHT, UNSCHEDULABLE, QueueClosed,
                             QueueEmpty, QueueFull, SchedulingQueue)
from tests.unit.scheduler_builders import FakeClock, make_node, make_pod


def make_queue(**kwargs) -> tuple[SchedulingQueue, FakeClock]:
    clock = FakeClock()
    kwargs.setdefault("events_to_plugins", default_framework().events_to_plugins)
    return SchedulingQueue(clock=clock, **kwargs), clock


def names(infos) -> list[str]:
    return [i.pod.metadata.name for i in infos]


def drain(queue: SchedulingQueue) -> list[str]:
    out = []
    while True:
        try:
            info = queue.pop_nowait()
        except QueueEmpty:
            return out
        out.append(info.pod.metadata.name)
        queue.done(info.key)


def fail(queue: SchedulingQueue, *plugins: str):
    """Pop the next pod and report it unschedulable by `plugins`."""
    info = queue.pop_nowait()
    where = queue.add_unschedulable(info, plugins)
    queue.done(info.key)
    return info, where


# ---------------------------------------------------------------- order

def test_higher_priority_first_then_fifo():
    queue, clock = make_queue()
    for name, prio in [("low", 1), ("high", 10), ("mid-1", 5), ("none", 0), ("mid-2", 5)]:
        queue.add(make_pod(name).priority(prio).build())
        clock.advance(1)
    assert drain(queue) == ["high", "mid-1", "mid-2", "low", "none"]


def test_priority_update_reorders():
    queue, _ = make_queue()
    queue.add(make_pod("a").build())
    queue.add(make_pod("b").build())
    queue.update(None, make_pod("b").priority(100).build())
    assert drain(queue) == ["b", "a"]


def test_add_twice_keeps_one_entry_and_place():
    queue, clock = make_queue()
    queue.add(make_pod("a").build())
    clock.advance(1)
    queue.add(make_pod("b").build())
    queue.add(make_pod("a").resource_version("2").build())
    assert len(queue) == 2
    assert drain(queue) == ["a", "b"]


def test_keys_include_uid():
    queue, _ = make_queue()
    queue.add(make_pod("a").uid("1").build())
    queue.add(make_pod("a").uid("2").build())
    queue.delete(make_pod("a").uid("1").build())
    info = queue.pop_nowait()
    assert info.key.uid == "2" and str(info.key) == "default/a"


# ---------------------------------------------------------------- backoff

@pytest.mark.parametrize("initial_s, max_s, expected", [
    (1.0, 10.0, [1, 2, 4, 8, 10, 10]),
    (0.5, 3.0, [0.5, 1, 2, 3, 3, 3]),
    (2.0, 2.0, [2, 2, 2, 2, 2, 2]),
], ids=["kube-defaults", "custom", "flat"])
def test_backoff_durations(initial_s, max_s, expected):
    queue, _ = make_queue(initial_backoff_s=initial_s, max_backoff_s=max_s)
    info = q.QueuedPodInfo(make_pod("a").build(), pod_key(make_pod("a").build()), 0.0)
    got = []
    for attempts in range(1, 7):
        info.attempts = attempts
        got.append(queue.backoff_duration_s(info))
    assert got == expected


def test_error_goes_to_backoff_and_comes_back_after_it():
    queue, clock = make_queue()
    queue.add(make_pod("a").build())
    _, where = fail(queue)  # no rejecting plugin: an error
    assert where == BACKOFF
    clock.advance(0.999)
    with pytest.raises(QueueEmpty):
        queue.pop_nowait()
    clock.advance(0.002)
    info = queue.pop_nowait()
    assert info.attempts == 2
    queue.add_unschedulable(info, ())
    queue.done(info.key)
    clock.advance(1.5)  # second failure: 2 s backoff
    with pytest.raises(QueueEmpty):
        queue.pop_nowait()
    clock.advance(0.6)
    assert queue.pop_nowait().attempts == 3


def test_invalid_backoff_config():
    with pytest.raises(ValueError, match="initial_backoff_s <= max_backoff_s"):
        SchedulingQueue(initial_backoff_s=5, max_backoff_s=1)


# ---------------------------------------------------------------- unschedulable pods

@pytest.mark.parametrize("rejected_by, event, moves", [
    ("NodeResourcesFit", ASSIGNED_POD_DELETE, True),
    ("NodeResourcesFit", NODE_ALLOCATABLE_CHANGE, True),
    ("NodeResourcesFit", NODE_ADD, True),
    ("NodeResourcesFit", NODE_LABEL_CHANGE, False),
    ("NodeResourcesFit", NODE_TAINT_CHANGE, False),
    ("TaintToleration", NODE_TAINT_CHANGE, True),
    ("TaintToleration", ASSIGNED_POD_DELETE, False),
    ("NodeAffinity", NODE_LABEL_CHANGE, True),
    ("NodeAffinity", NODE_ALLOCATABLE_CHANGE, False),
    ("NodeUnschedulable", NODE_SPEC_UNSCHEDULABLE_CHANGE, True),
    ("NodeUnschedulable", NODE_LABEL_CHANGE, False),
    ("InterPodAffinity", ASSIGNED_POD_ADD, True),
    ("NodePorts", ASSIGNED_POD_ADD, False),
    ("NodePorts", WILDCARD_EVENT, True),
], ids=lambda v: v if isinstance(v, str) else None)
def test_requeue_only_on_relevant_events(rejected_by, event, moves):
    queue, clock = make_queue()
    queue.add(make_pod("a").build())
    _, where = fail(queue, rejected_by)
    assert where == UNSCHEDULABLE
    clock.advance(5)  # past the 1 s backoff
    assert queue.move_all_to_active_or_backoff(event) == (1 if moves else 0)
    assert queue.where(make_pod("a").build()) == (ACTIVE if moves else UNSCHEDULABLE)


def test_event_during_backoff_goes_to_backoff_queue():
    queue, clock = make_queue()
    queue.add(make_pod("a").build())
    fail(queue, "NodeResourcesFit")
    clock.advance(0.5)
    assert queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE) == 1
    assert queue.where(make_pod("a").build()) == BACKOFF
    with pytest.raises(QueueEmpty):
        queue.pop_nowait()
    clock.advance(0.5)
    assert queue.pop_nowait().pod.metadata.name == "a"


def test_pre_check_narrows_the_move():
    queue, clock = make_queue()
    for name in ("a", "b"):
        queue.add(make_pod(name).build())
        fail(queue, "InterPodAffinity")
    clock.advance(5)
    moved = queue.move_all_to_active_or_backoff(ASSIGNED_POD_ADD,
                                                lambda pod: pod.metadata.name == "b")
    assert moved == 1
    assert queue.pending()[ACTIVE] == [pod_key(make_pod("b").build())]


def test_event_while_in_flight_sends_failure_to_backoff():
    queue, clock = make_queue()
    queue.add(make_pod("a").build())
    info = queue.pop_nowait()
    assert queue.where(info.key) == IN_FLIGHT
    queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)  # e.g. a pod went away meanwhile
    assert queue.add_unschedulable(info, ["NodeResourcesFit"]) == BACKOFF
    queue.done(info.key)


def test_event_before_the_attempt_does_not_count():
    queue, _ = make_queue()
    queue.add(make_pod("a").build())
    queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)
    assert fail(queue, "NodeResourcesFit")[1] == UNSCHEDULABLE


def test_unschedulable_pods_are_flushed_after_max_stay():
    queue, clock = make_queue(max_unschedulable_s=300)
    queue.add(make_pod("a").build())
    fail(queue, "NodeAffinity")
    clock.advance(1)
    queue.add(make_pod("b").build())
    fail(queue, "NodeAffinity")
    clock.advance(299)  # a has waited 300 s: not more than the limit yet
    assert queue.flush_unschedulable_left_over() == 0
    clock.advance(0.5)
    assert queue.flush_unschedulable_left_over() == 1
    assert queue.where(make_pod("a").build()) == ACTIVE
    assert queue.where(make_pod("b").build()) == UNSCHEDULABLE
    clock.advance(1)
    assert drain(queue) == ["a", "b"]  # pop flushes too


def test_update_of_unschedulable_pod_requeues_only_on_real_change():
    queue, clock = make_queue()
    old = make_pod("a").resource_version("1")
    queue.add(old.build())
    fail(queue, "NodeAffinity")
    clock.advance(5)
    queue.update(old.build(), old.copy().resource_version("2").build())
    assert queue.where(old.build()) == UNSCHEDULABLE
    queue.update(old.build(), old.copy().toleration(operator="Exists").build())
    assert queue.where(old.build()) == ACTIVE
    assert len(queue.pop_nowait().pod.spec.tolerations) == 1


def test_update_while_in_flight_is_kept_and_retried():
    queue, _ = make_queue()
    queue.add(make_pod("a").build())
    info = queue.pop_nowait()
    queue.update(None, make_pod("a").node_selector(disk="ssd").build())
    assert queue.add_unschedulable(info, ["NodeAffinity"]) == BACKOFF
    assert dict(info.pod.spec.node_selector) == {"disk": "ssd"}


def test_delete_removes_from_every_queue_and_in_flight():
    queue, _ = make_queue()
    queue.add(make_pod("a").build())
    queue.add(make_pod("b").build())
    info = queue.pop_nowait()
    queue.delete(make_pod(info.pod.metadata.name).build())
    assert queue.add_unschedulable(info, ["NodeResourcesFit"]) == DROPPED
    queue.delete(make_pod("b").build())
    assert len(queue) == 0


# ---------------------------------------------------------------- bounds and async

def test_queue_is_bounded():
    queue, _ = make_queue(max_len=2)
    queue.add(make_pod("a").build())
    info = queue.pop_nowait()  # in flight still counts
    queue.add(make_pod("b").build())
    with pytest.raises(QueueFull):
        queue.add(make_pod("c").build())
    queue.add(make_pod("b").build())  # a pod already tracked is no new pod
    assert queue.add_unschedulable(info, ["NodeName"]) == UNSCHEDULABLE


async def test_pop_waits_for_an_add():
    queue, _ = make_queue()
    popper = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    assert not popper.done()
    queue.add(make_pod("a").build())
    info = await asyncio.wait_for(popper, timeout=5)
    assert info.pod.metadata.name == "a"


async def test_pop_wakes_when_backoff_ends():
    queue = SchedulingQueue(initial_backoff_s=0.05, max_backoff_s=0.05)  # real clock
    queue.add(make_pod("a").build())
    info = queue.pop_nowait()
    queue.add_unschedulable(info, ())
    queue.done(info.key)
    again = await asyncio.wait_for(queue.pop(), timeout=5)
    assert again.attempts == 2


async def test_close_ends_pop():
    queue, _ = make_queue()
    popper = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(QueueClosed):
        await asyncio.wait_for(popper, timeout=5)


# ---------------------------------------------------------------- node events

@pytest.mark.parametrize("change, events", [
    (lambda n: n, []),
    (lambda n: n.labels(disk="ssd"), [NODE_LABEL_CHANGE]),
    (lambda n: n.taint("a", "b"), [NODE_TAINT_CHANGE]),
    (lambda n: n.allocatable(cpu="8"), [NODE_ALLOCATABLE_CHANGE]),
    (lambda n: n.unschedulable(), [NODE_SPEC_UNSCHEDULABLE_CHANGE]),
    (lambda n: n.labels(x="y").unschedulable(), [NODE_LABEL_CHANGE,
                                                 NODE_SPEC_UNSCHEDULABLE_CHANGE]),
], ids=["nothing", "labels", "taints", "allocatable", "cordon", "two"])
def test_node_update_events(change, events):
    old = make_node("n1")
    assert q.node_update_events(old.build(), change(old.copy()).build()) == events
