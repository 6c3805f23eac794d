"""EtcdStore.watch: a progress pump that fails ends the watch with Unavailable
(so the watch cache resumes it) instead of dying silently.

The etcd stub is a fake with the two calls the watch makes (write, read).
"""
from __future__ import annotations

import asyncio

import pytest
from aetcd import rpc

from apiserver.storage import EtcdStore
from kubemu.api import errors


class FakeCall:
    """grpc.aio's stream call as the watch uses it: cancel() makes a pending or
    later read() raise CancelledError."""

    def __init__(self) -> None:
        self.responses: asyncio.Queue = asyncio.Queue()
        self.cancelled = False

    async def write(self, request) -> None:
        if request.HasField("progress_request"):
            raise RuntimeError("stream half-closed")

    async def read(self):
        item = await self.responses.get()
        if item is _CANCELLED:
            raise asyncio.CancelledError()
        return item

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.responses.put_nowait(_CANCELLED)


_CANCELLED = object()


class FakeWatchStub:
    def __init__(self, call: FakeCall):
        self.call = call

    def Watch(self):  # noqa: N802 - the gRPC method's name
        return self.call


def _event_response(revision: int) -> rpc.WatchResponse:
    resp = rpc.WatchResponse()
    resp.header.revision = revision
    event = resp.events.add()
    event.kv.key, event.kv.value, event.kv.mod_revision = b"/registry/pods/d/p", b"x", revision
    return resp


async def test_a_failed_progress_request_ends_a_quiet_watch_at_once_as_unavailable():
    call = FakeCall()
    store = EtcdStore("127.0.0.1:1")
    store._watch = FakeWatchStub(call)
    progress: asyncio.Queue = asyncio.Queue(maxsize=1)
    batches = store.watch(b"/registry/pods/", 1, progress)
    await call.responses.put(_event_response(5))
    first = await batches.__anext__()
    assert first.revision == 5
    # No more writes to this resource: the read below would wait forever.
    progress.put_nowait(True)  # the pump writes a progress request: it fails
    with pytest.raises(errors.Unavailable, match="progress requests on the etcd watch stopped"):
        await asyncio.wait_for(batches.__anext__(), 5)
    assert call.cancelled


async def test_cancelling_the_watcher_still_cancels():
    call = FakeCall()
    store = EtcdStore("127.0.0.1:1")
    store._watch = FakeWatchStub(call)
    task = asyncio.create_task(store.watch(b"/registry/pods/", 1, asyncio.Queue(1)).__anext__())
    await asyncio.sleep(0)  # let it start reading
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
