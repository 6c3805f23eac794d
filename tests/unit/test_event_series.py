"""EventSeriesCache and EventRecorder(api="events.k8s.io"): client-go's
tools/events series (kube-scheduler's recorder), on a fake clock.

Each case is a script of steps — ("record", seconds later, note[, object]) or
("tick", seconds later) — and the writes every step queues, as
(create | patch, series count or None, note).
"""
from __future__ import annotations

import pytest

from kubemu import timefmt
from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.client.events import (EVENTS_API, NORMAL, WARNING, EventRecorder, EventSeriesCache,
                                  series_key)
from tests.builders import make_pod

WINDOW_S = 360.0
HEARTBEAT_S = 1800.0
T0 = 1_764_474_594.0


def _event(note: str, obj: str = "stuck", at: float = T0) -> core_pb2.Event:
    event = core_pb2.Event(api_version="v1", kind="Event", type=WARNING,
                           reason="FailedScheduling", message=note, action="Scheduling",
                           reporting_component="default-scheduler",
                           reporting_instance="default-scheduler-host")
    event.metadata.name, event.metadata.namespace = f"{obj}.{int(at * 1e9):x}", "default"
    ref = event.involved_object
    ref.api_version, ref.kind, ref.namespace, ref.name, ref.uid = "v1", "Pod", "default", obj, obj
    event.event_time = timefmt.rfc3339_micro(at)
    return event


def _writes(items) -> list[tuple]:
    return [("patch" if w.patch else "create",
             w.event.series.count if w.event.HasField("series") else None, w.event.message)
            for w in items]


CASES = {
    "first occurrence is created without a series": (
        [("record", 0, "a")],
        [[("create", None, "a")]]),
    "second occurrence writes series count 2 at once": (
        [("record", 0, "a"), ("record", 10, "a")],
        [[("create", None, "a")], [("patch", 2, "a")]]),
    "a changed note joins the series of the first (not in client-go's key)": (
        [("record", 0, "a"), ("record", 10, "b")],
        [[("create", None, "a")], [("patch", 2, "a")]]),
    "later repeats are cached until the heartbeat": (
        [("record", 0, "a"), ("record", 10, "a")] + [("record", 300, "a")] * 5
        + [("tick", 290), ("tick", 10), ("tick", 1)],
        [[("create", None, "a")], [("patch", 2, "a")], [], [], [], [], [], [],
         [("patch", 7, "a")], []]),
    "a repeat once the heartbeat has passed is written at once": (
        [("record", 0, "a"), ("record", 10, "a")] + [("record", 300, "a")] * 6,
        [[("create", None, "a")], [("patch", 2, "a")], [], [], [], [], [],
         [("patch", 8, "a")]]),
    "a series that ended writes its unwritten count and leaves the cache": (
        [("record", 0, "a"), ("record", 10, "a"), ("record", 10, "a"),
         ("tick", WINDOW_S), ("tick", 1)],
        [[("create", None, "a")], [("patch", 2, "a")], [], [], [("patch", 3, "a")]]),
    "a repeat after the isomorphic window starts a new Event": (
        [("record", 0, "a"), ("record", 10, "a"), ("record", WINDOW_S + 1, "a"),
         ("record", 10, "a")],
        [[("create", None, "a")], [("patch", 2, "a")], [("create", None, "a")],
         [("patch", 2, "a")]]),
    "a repeat after the window first writes the old series' last count": (
        [("record", 0, "a"), ("record", 10, "a"), ("record", 10, "a"),
         ("record", WINDOW_S + 1, "a")],
        [[("create", None, "a")], [("patch", 2, "a")], [], [("patch", 3, "a"),
                                                            ("create", None, "a")]]),
    "another object is another series": (
        [("record", 0, "a"), ("record", 0, "a", "other")],
        [[("create", None, "a")], [("create", None, "a")]]),
}


@pytest.mark.parametrize("steps, expected", CASES.values(), ids=CASES.keys())
def test_series(steps, expected):
    clock = [T0]
    cache = EventSeriesCache(lambda: clock[0], isomorphic_window_s=WINDOW_S,
                             heartbeat_s=HEARTBEAT_S)
    got = []
    for step in steps:
        clock[0] += step[1]
        if step[0] == "tick":
            got.append(_writes(cache.tick()))
        else:
            got.append(_writes(cache.observe(_event(*step[2:], at=clock[0]))))
    assert got == expected


def test_the_series_write_is_a_patch_of_series_only():
    clock = [T0]
    cache = EventSeriesCache(lambda: clock[0])
    first = _event("a")
    [created] = cache.observe(first)
    clock[0] += 1.5
    [write] = cache.observe(_event("a", at=clock[0]))
    assert write.patch == {"series": {"count": 2,
                                      "lastObservedTime": "2025-11-30T03:49:55.500000Z"}}
    # The full Event (for a create when the first is gone) keeps the first's name and time.
    assert (write.event.metadata.name, write.event.event_time) == (first.metadata.name,
                                                                   first.event_time)
    assert write.key == created.key == series_key(first)


def test_the_cache_is_bounded_and_an_evicted_series_writes_its_count():
    clock = [T0]
    cache = EventSeriesCache(lambda: clock[0], cache_max=1)
    for _ in range(3):
        cache.observe(_event("a"))
    assert _writes(cache.observe(_event("a", "other"))) == [("patch", 3, "a"),
                                                           ("create", None, "a")]
    assert len(cache) == 1


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        EventSeriesCache(heartbeat_s=0)
    with pytest.raises(ValueError):
        EventRecorder(object(), "x", api="events")


# ------------------------------------------------------------ the recorder


class SeriesClient:
    """create and patch as the apiserver does for these two writes."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], core_pb2.Event] = {}
        self.calls: list[str] = []

    async def create(self, event):
        self.calls.append("create")
        self.events[(event.metadata.namespace, event.metadata.name)] = event
        return event

    async def patch(self, resource, name, namespace, *, patch):
        assert resource == "events" and set(patch) == {"series"}
        self.calls.append("patch")
        event = self.events.get((namespace, name))
        if event is None:
            raise errors.not_found("events", name)
        event.series.count = patch["series"]["count"]
        event.series.last_observed_time = patch["series"]["lastObservedTime"]
        return event


@pytest.fixture
async def recorder():
    clock = [T0]
    rec = EventRecorder(SeriesClient(), "default-scheduler",
                        instance="default-scheduler-host", clock=lambda: clock[0],
                        api=EVENTS_API, series_heartbeat_s=60, series_tick_s=3600)
    rec.clock = clock
    rec.start()
    try:
        yield rec
    finally:
        await rec.stop()


def _pod():
    pod = make_pod("stuck", "demo").build()
    pod.metadata.uid = "u1"
    return pod


async def test_an_events_api_event_reads_as_kubernetes_shows_it(recorder):
    recorder.record(_pod(), NORMAL, "Scheduled", "assigned", action="Binding")
    await recorder.flush(5)
    [event] = recorder.client.events.values()
    assert (event.event_time, event.action, event.reporting_component,
            event.reporting_instance) == ("2025-11-30T03:49:54.000000Z", "Binding",
                                          "default-scheduler", "default-scheduler-host")
    # No deprecated fields: kubectl falls back to eventTime and reportingController.
    assert (event.source.component, event.first_timestamp, event.last_timestamp,
            event.count, event.HasField("series")) == ("", "", "", 0, False)


async def test_repeats_patch_the_series_and_heartbeats_write_the_rest(recorder):
    pod = _pod()
    for _ in range(4):
        recorder.record(pod, WARNING, "FailedScheduling", "no fit", action="Scheduling")
        recorder.clock[0] += 1
    await recorder.flush(5)
    [event] = recorder.client.events.values()
    assert recorder.client.calls == ["create", "patch"]
    assert event.series.count == 2
    recorder.clock[0] += 60
    recorder.tick_series()
    await recorder.flush(5)
    assert (recorder.client.calls[-1], event.series.count) == ("patch", 4)
    assert event.series.last_observed_time == "2025-11-30T03:49:57.000000Z"


async def test_a_series_whose_event_is_gone_is_created_with_its_series(recorder):
    pod = _pod()
    recorder.record(pod, WARNING, "FailedScheduling", "no fit", action="Scheduling")
    await recorder.flush(5)
    recorder.client.events.clear()
    recorder.record(pod, WARNING, "FailedScheduling", "no fit", action="Scheduling")
    await recorder.flush(5)
    assert recorder.client.calls == ["create", "patch", "create"]
    [event] = recorder.client.events.values()
    assert event.series.count == 2
