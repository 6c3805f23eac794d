"""SchedulerCache: assume / confirm / forget / expire, snapshots, and no overcommit in a burst."""
from __future__ import annotations

import random

import pytest

from scheduler.cache import CacheError, CacheFull, SchedulerCache
from scheduler.default_config import default_framework
from scheduler.framework import schedule_one
from scheduler.podutil import pod_key
from tests.unit.scheduler_builders import FakeClock, make_node, make_pod


def make_cache(**kwargs) -> tuple[SchedulerCache, FakeClock]:
    clock = FakeClock()
    return SchedulerCache(clock=clock, **kwargs), clock


def requested(cache: SchedulerCache, node: str) -> dict[str, int]:
    ni = cache.snapshot().get(node)
    return {**ni.requested, "pods": len(ni.pods)}


def key(name: str):
    return pod_key(make_pod(name).build())


def test_informer_pods_are_counted_on_their_nodes():
    cache, _ = make_cache()
    cache.add_node(make_node("n1").build())
    cache.add_pod(make_pod("a").requests(cpu="1").on_node("n1").build())
    cache.add_pod(make_pod("b").requests(memory="1Gi").on_node("n1").build())
    assert requested(cache, "n1") == {"cpu": 1000, "memory": 2**30, "pods": 2}
    cache.update_pod(None, make_pod("b").requests(memory="2Gi").on_node("n1").build())
    assert requested(cache, "n1") == {"cpu": 1000, "memory": 2 * 2**30, "pods": 2}
    cache.remove_pod(make_pod("a").on_node("n1").build())
    assert requested(cache, "n1") == {"memory": 2 * 2**30, "pods": 1}


def test_unassigned_pods_do_not_belong():
    cache, _ = make_cache()
    with pytest.raises(CacheError, match="no spec.nodeName"):
        cache.add_pod(make_pod("a").build())


def test_assume_counts_at_once_and_confirmation_keeps_one_copy():
    cache, _ = make_cache()
    cache.add_node(make_node("n1").build())
    pod = make_pod("a").requests(cpu="1")
    assumed = cache.assume(pod.build(), "n1")
    assert assumed.spec.node_name == "n1" and not pod.build().spec.node_name  # a copy
    assert cache.is_assumed(key("a"))
    assert requested(cache, "n1") == {"cpu": 1000, "pods": 1}
    cache.finish_binding(key("a"))
    cache.add_pod(pod.copy().on_node("n1").resource_version("7").build())  # the informer
    assert not cache.is_assumed(key("a"))
    assert requested(cache, "n1") == {"cpu": 1000, "pods": 1}
    assert cache.get_pod(key("a")).metadata.resource_version == "7"


def test_confirmation_on_another_node_moves_the_pod():
    cache, _ = make_cache()
    cache.add_node(make_node("n1").build())
    cache.add_node(make_node("n2").build())
    cache.assume(make_pod("a").requests(cpu="1").build(), "n1")
    cache.update_pod(None, make_pod("a").requests(cpu="1").on_node("n2").build())
    assert requested(cache, "n1") == {"pods": 0}
    assert requested(cache, "n2") == {"cpu": 1000, "pods": 1}
    assert cache.node_of(key("a")) == "n2"


def test_forget_undoes_the_assumption():
    cache, _ = make_cache()
    cache.add_node(make_node("n1").build())
    cache.assume(make_pod("a").requests(cpu="1").build(), "n1")
    assert cache.forget(key("a"))
    assert requested(cache, "n1") == {"pods": 0}
    assert not cache.forget(key("a"))
    cache.add_pod(make_pod("b").on_node("n1").build())
    assert not cache.forget(key("b"))  # confirmed pods are not forgotten
    assert requested(cache, "n1") == {"pods": 1}


def test_assuming_twice_is_an_error():
    cache, _ = make_cache()
    cache.add_node(make_node("n1").build())
    cache.assume(make_pod("a").build(), "n1")
    with pytest.raises(CacheError, match="already in the scheduler cache"):
        cache.assume(make_pod("a").build(), "n1")


@pytest.mark.parametrize("finish_binding, advance_s, confirmed, expires", [
    (True, 29.9, False, False),
    (True, 30.0, False, True),
    (False, 3600, False, False),
    (True, 3600, True, False),
], ids=["before-ttl", "at-ttl", "binding-not-finished", "confirmed"])
def test_assumed_pod_expiry(finish_binding, advance_s, confirmed, expires):
    cache, clock = make_cache(assumed_pod_ttl_s=30)
    cache.add_node(make_node("n1").build())
    cache.assume(make_pod("a").requests(cpu="1").build(), "n1")
    if finish_binding:
        cache.finish_binding(key("a"))
    if confirmed:
        cache.add_pod(make_pod("a").requests(cpu="1").on_node("n1").build())
    clock.advance(advance_s)
    assert cache.cleanup_expired() == ([key("a")] if expires else [])
    assert requested(cache, "n1")["pods"] == (0 if expires else 1)


def test_zero_ttl_never_expires():
    cache, clock = make_cache(assumed_pod_ttl_s=0)
    cache.add_node(make_node("n1").build())
    cache.assume(make_pod("a").build(), "n1")
    cache.finish_binding(key("a"))
    clock.advance(10**6)
    assert cache.cleanup_expired() == []


def test_burst_of_assumed_pods_never_overcommits():
    cache, _ = make_cache()
    for name in ("n1", "n2", "n3"):
        cache.add_node(make_node(name).allocatable(cpu="2", memory="4Gi", pods="110").build())
    framework, rng = default_framework(), random.Random(7)
    placed, failed, start = {}, [], 0
    for i in range(20):
        pod = make_pod(f"p{i:02}").requests(cpu="500m", memory="512Mi").build()
        result = schedule_one(framework, pod, cache.snapshot(), rng, start_index=start)
        start = result.next_start_index
        if result.node_name is None:
            failed.append(result.message)
            continue
        cache.assume(pod, result.node_name)  # no informer confirmation in between
        placed.setdefault(result.node_name, 0)
        placed[result.node_name] += 1
    assert placed == {"n1": 4, "n2": 4, "n3": 4}
    assert failed == ["0/3 nodes are available: 3 Insufficient cpu."] * 8
    for name in ("n1", "n2", "n3"):
        assert requested(cache, name) == {"cpu": 2000, "memory": 2 * 2**30, "pods": 4}


def test_snapshot_is_incremental_and_immutable():
    cache, _ = make_cache()
    for name in ("n1", "n2"):
        cache.add_node(make_node(name).build())
    first = cache.snapshot()
    assert cache.snapshot() is first  # nothing changed
    cache.add_pod(make_pod("a").requests(cpu="1").on_node("n1").build())
    second = cache.snapshot()
    assert second is not first
    assert second.get("n2") is first.get("n2")  # unchanged node shared, not cloned
    assert second.get("n1") is not first.get("n1")
    assert first.get("n1").requested == {}  # the old snapshot did not move
    assert second.get("n1").requested == {"cpu": 1000}


def test_removed_node_with_pods_leaves_snapshot_but_keeps_counts():
    cache, _ = make_cache()
    cache.add_node(make_node("n1").build())
    cache.add_pod(make_pod("a").on_node("n1").build())
    cache.remove_node(make_node("n1").build())
    assert cache.snapshot().get("n1") is None
    assert cache.node_names() == []
    cache.add_node(make_node("n1").build())  # back before its pods went
    assert requested(cache, "n1")["pods"] == 1
    cache.remove_node(make_node("n1").build())
    cache.remove_pod(make_pod("a").on_node("n1").build())
    assert cache.dump() == {}


def test_pods_before_their_node():
    cache, _ = make_cache()
    cache.add_pod(make_pod("a").requests(cpu="1").on_node("n1").build())
    assert cache.snapshot().get("n1") is None
    cache.add_node(make_node("n1").build())
    assert requested(cache, "n1") == {"cpu": 1000, "pods": 1}


def test_node_update_changes_allocatable():
    cache, _ = make_cache()
    cache.add_node(make_node("n1").allocatable(cpu="1").build())
    cache.update_node(None, make_node("n1").allocatable(cpu="3").build())
    assert cache.snapshot().get("n1").allocatable["cpu"] == 3000


def test_namespace_labels_reach_the_snapshot():
    cache, _ = make_cache()
    cache.set_namespace_labels("team-a", {"team": "a"})
    assert cache.snapshot().namespace_labels == {"team-a": {"team": "a"}}
    cache.remove_namespace("team-a")
    assert cache.snapshot().namespace_labels == {}


def test_cache_is_bounded():
    cache, _ = make_cache(max_nodes=1, max_pods=1)
    cache.add_node(make_node("n1").build())
    with pytest.raises(CacheFull):
        cache.add_node(make_node("n2").build())
    cache.assume(make_pod("a").build(), "n1")
    with pytest.raises(CacheFull):
        cache.add_pod(make_pod("b").on_node("n1").build())
