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
    def __init__(self) -> None:
        self.responses: asyncio.Queue = asyncio.Queue()
        self.cancelled = False

    async def write(self, request) -> None:
        if request.HasField("progress_request"):
            raise RuntimeError("stream half-closed")

    async def read(self):
        return await self.responses.get()

    def cancel(self) -> None:
        self.cancelled = True


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


async def test_a_failed_progress_request_ends_the_watch_as_unavailable():
    call = FakeCall()
    store = EtcdStore("127.0.0.1:1")
    store._watch = FakeWatchStub(call)
    progress: asyncio.Queue = asyncio.Queue(maxsize=1)
    batches = store.watch(b"/registry/pods/", 1, progress)
    await call.responses.put(_event_response(5))
    first = await batches.__anext__()
    assert first.revision == 5
    progress.put_nowait(True)  # the pump writes a progress request: it fails
    await asyncio.sleep(0)
    await call.responses.put(_event_response(6))
    with pytest.raises(errors.Unavailable, match="progress requests on the etcd watch stopped"):
        await batches.__anext__()
    assert call.cancelled
