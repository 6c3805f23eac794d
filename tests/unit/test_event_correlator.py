"""kubemu.client.events.EventCorrelator, client-go's, on a fake clock:
repeats become patches of one Event, similar events beyond ten in ten minutes
are combined, a source's events about one object are rate-limited, and every
cache is bounded."""
from __future__ import annotations

import pytest

from kubemu.api.v1 import core_pb2
from kubemu.client.events import EventCorrelator

T0 = 1_764_474_594.0


class Clock:
    def __init__(self) -> None:
        self.now_s = T0

    def __call__(self) -> float:
        return self.now_s


def new_event(message: str = "back-off", *, reason: str = "BackOff", type_: str = "Warning",
              obj: str = "web", name: str = "", at: str = "2025-11-30T03:49:54Z"):
    event = core_pb2.Event(api_version="v1", kind="Event", reason=reason, message=message,
                           type=type_, count=1, first_timestamp=at, last_timestamp=at)
    event.metadata.name = name or f"{obj}.{len(message)}{reason}"
    event.metadata.namespace = "demo"
    ref = event.involved_object
    ref.api_version, ref.kind, ref.namespace, ref.name, ref.uid = "v1", "Pod", "demo", obj, obj
    event.source.component, event.source.host = "kubelet", "node-1"
    return event


@pytest.fixture
def clock():
    return Clock()


def test_a_repeat_patches_the_first_event(clock):
    c = EventCorrelator(clock)
    first = c.correlate(new_event(name="web.a"))
    assert first.patch is None and first.event.count == 1
    second = c.correlate(new_event(name="web.b", at="2025-11-30T03:50:54Z"))
    assert second.patch == {"count": 2, "lastTimestamp": "2025-11-30T03:50:54Z",
                            "message": "back-off"}
    assert (second.event.metadata.name, second.event.first_timestamp, second.key) == (
        "web.a", "2025-11-30T03:49:54Z", first.key)
    assert c.correlate(new_event(name="web.c")).patch["count"] == 3


@pytest.mark.parametrize("change", [
    {"message": "other"}, {"reason": "Failed"}, {"type_": "Normal"}, {"obj": "db"}],
    ids=["message", "reason", "type", "object"])
def test_anything_else_different_is_a_new_event(clock, change):
    c = EventCorrelator(clock)
    c.correlate(new_event())
    assert c.correlate(new_event(**change)).patch is None


def test_the_tenth_different_message_is_combined_and_later_ones_update_it(clock):
    c = EventCorrelator(clock)
    for i in range(9):
        result = c.correlate(new_event(f"volume v{i} not ready"))
        assert result.patch is None and not result.event.message.startswith("(combined")
        clock.now_s += 1
    tenth = c.correlate(new_event("volume v9 not ready"))
    assert tenth.patch is None
    assert (tenth.event.message, tenth.event.count, tenth.event.metadata.name) == (
        "(combined from similar events): volume v9 not ready", 1, f"web.{int(clock.now_s * 1e9):x}")
    clock.now_s += 1
    eleventh = c.correlate(new_event("volume v10 not ready"))
    assert eleventh.key == tenth.key
    assert eleventh.event.metadata.name == tenth.event.metadata.name
    assert eleventh.patch["count"] == 2
    assert eleventh.patch["message"] == "(combined from similar events): volume v10 not ready"


def test_similar_events_further_apart_than_ten_minutes_are_not_combined(clock):
    c = EventCorrelator(clock)
    for i in range(20):
        result = c.correlate(new_event(f"m{i}", reason=f"R{i // 9}"))  # nine per reason
        assert not result.event.message.startswith("(combined")
    c = EventCorrelator(clock)
    for i in range(12):
        result = c.correlate(new_event(f"m{i}"))
        clock.now_s += 601
        assert not result.event.message.startswith("(combined")


def test_a_source_gets_25_events_about_an_object_then_one_every_5_minutes(clock):
    c = EventCorrelator(clock)
    accepted = [c.correlate(new_event(f"m{i}", reason=f"R{i}")) is not None for i in range(30)]
    assert accepted == [True] * 25 + [False] * 5
    assert c.correlate(new_event("w", type_="Normal")) is not None  # its own bucket
    assert c.correlate(new_event("x", obj="db")) is not None  # another object
    clock.now_s += 299
    assert c.correlate(new_event("y")) is None
    clock.now_s += 1
    assert c.correlate(new_event("y")) is not None
    assert c.correlate(new_event("z")) is None


def test_the_caches_are_bounded(clock):
    c = EventCorrelator(clock, cache_max=2)
    c.correlate(new_event("a"))
    c.correlate(new_event("b", reason="B"))
    c.correlate(new_event("c", reason="C"))  # "a" is forgotten
    assert c.correlate(new_event("a")).patch is None
    assert c.correlate(new_event("c", reason="C")).patch["count"] == 2
    assert max(len(c._aggregates), len(c._observed), len(c._buckets)) <= 2


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="must be > 0"):
        EventCorrelator(cache_max=0)
