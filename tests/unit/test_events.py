"""kubemu.client.events.EventRecorder: naming, references, aggregation, bounds.

The client is a fake with the two calls the recorder makes (create, patch).
"""
from __future__ import annotations

import pytest

from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.client.events import NORMAL, WARNING, EventRecorder
from tests.builders import make_pod


class FakeClient:
    def __init__(self) -> None:
        self.events: dict[tuple[str, str], core_pb2.Event] = {}
        self.calls: list[str] = []

    async def create(self, event):
        self.calls.append("create")
        self.events[(event.metadata.namespace, event.metadata.name)] = event
        return event

    async def patch(self, resource, name, namespace, *, patch):
        self.calls.append("patch")
        event = self.events.get((namespace, name))
        if event is None:
            raise errors.not_found("events", name)
        event.count, event.last_timestamp = patch["count"], patch["lastTimestamp"]
        event.message = patch["message"]
        return event


@pytest.fixture
def clock():
    return [1_764_474_594.0]


@pytest.fixture
async def recorder(clock):
    client = FakeClient()
    rec = EventRecorder(client, "kubelet", host="node-1", clock=lambda: clock[0])
    rec.start()
    rec.fake = client
    try:
        yield rec
    finally:
        await rec.stop()


def _pod():
    pod = make_pod("web", "demo").build()
    pod.metadata.uid, pod.metadata.resource_version = "u1", "7"
    return pod


async def test_an_event_names_its_object_and_source(recorder):
    recorder.record(_pod(), NORMAL, "Pulled", "pulled it", field_path="spec.containers{web}")
    await recorder.flush(5)
    [event] = recorder.fake.events.values()
    assert event.metadata.namespace == "demo"
    assert event.metadata.name.startswith("web.")
    ref = event.involved_object
    assert (ref.api_version, ref.kind, ref.namespace, ref.name, ref.uid, ref.resource_version,
            ref.field_path) == ("v1", "Pod", "demo", "web", "u1", "7", "spec.containers{web}")
    assert (event.source.component, event.source.host) == ("kubelet", "node-1")
    assert (event.first_timestamp, event.count) == ("2025-11-30T03:49:54Z", 1)
    assert event.event_time == "2025-11-30T03:49:54.000000Z"


async def test_repeats_are_aggregated_into_one_event(recorder, clock):
    pod = _pod()
    recorder.record(pod, WARNING, "BackOff", "back-off")
    await recorder.flush(5)
    clock[0] += 60
    recorder.record(pod, WARNING, "BackOff", "back-off")
    recorder.record(pod, WARNING, "BackOff", "back-off")
    await recorder.flush(5)
    [event] = recorder.fake.events.values()
    assert (event.count, event.last_timestamp) == (3, "2025-11-30T03:50:54Z")
    assert recorder.fake.calls == ["create", "patch", "patch"]


async def test_a_different_message_or_path_is_a_new_event(recorder):
    pod = _pod()
    recorder.record(pod, WARNING, "BackOff", "back-off a")
    recorder.record(pod, WARNING, "BackOff", "back-off b")
    recorder.record(pod, WARNING, "BackOff", "back-off a", field_path="spec.containers{x}")
    await recorder.flush(5)
    assert len(recorder.fake.events) == 3


async def test_an_aggregated_event_deleted_meanwhile_is_created_again(recorder):
    """As client-go's recordEvent: the patch finds nothing, so the Event is
    created with its name and the count it would have had."""
    pod = _pod()
    recorder.record(pod, NORMAL, "Started", "started")
    await recorder.flush(5)
    [name] = [n for _, n in recorder.fake.events]
    recorder.fake.events.clear()
    recorder.record(pod, NORMAL, "Started", "started")
    await recorder.flush(5)
    assert recorder.fake.calls == ["create", "patch", "create"]
    assert [(e.metadata.name, e.count) for e in recorder.fake.events.values()] == [(name, 2)]


async def test_cluster_scoped_objects_get_events_in_default(recorder):
    node = core_pb2.Node()
    node.metadata.name, node.metadata.uid = "node-1", "n1"
    recorder.record(node, NORMAL, "Starting", "Starting kubelet.")
    await recorder.flush(5)
    [event] = recorder.fake.events.values()
    assert (event.metadata.namespace, event.involved_object.namespace,
            event.involved_object.kind) == ("default", "", "Node")


async def test_long_messages_are_cut_and_a_full_queue_drops():
    rec = EventRecorder(FakeClient(), "scheduler", queue_max=2, senders=1)  # not started
    pod = _pod()
    for i in range(5):
        rec.record(pod, NORMAL, "R", f"m{i}")
    assert rec.dropped == 3  # and record() never raised: events are best effort
    long = EventRecorder(FakeClient(), "scheduler")
    long.start()
    try:
        long.record(pod, NORMAL, "R", "x" * 5000)
        await long.flush(5)
        [event] = long.client.events.values()
        assert len(event.message) == 1024 and event.message.endswith("...")
    finally:
        await long.stop()


async def test_similar_events_beyond_ten_are_combined(recorder, clock):
    pod = _pod()
    for i in range(12):
        recorder.record(pod, WARNING, "FailedMount", f"volume v{i} not ready")
        clock[0] += 1
    await recorder.flush(5)
    events = sorted(recorder.fake.events.values(), key=lambda e: e.metadata.name)
    assert [e.message for e in events[:9]] == [f"volume v{i} not ready" for i in range(9)]
    [combined] = events[9:]
    assert (combined.message, combined.count, combined.reason, combined.type) == (
        "(combined from similar events): volume v11 not ready", 3, "FailedMount", "Warning")
    assert combined.involved_object.uid == "u1" and combined.source.component == "kubelet"
