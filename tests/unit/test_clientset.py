"""The client library against an in-process fake Resources server.

The fake is a unit-test double of the apiserver's gRPC surface (ConfigMaps
only, a revision counter, a compactable event log, scripted failures); it
records every request with the deadline it arrived with. The real apiserver is
exercised by the component tests.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket

import grpc
import grpc.aio
import pytest

from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2, resources_pb2, resources_pb2_grpc
from kubemu.client import config
from kubemu.client.clientset import Client, DeleteResult, ListResult
from kubemu.client.informer import (CONTROLLER_UID_INDEX, NAMESPACE_INDEX, NODE_NAME_INDEX,
                                    OWNER_UID_INDEX, DeletedFinalStateUnknown, Informer, Store,
                                    index_by_controller_uid, index_by_namespace,
                                    index_by_node_name, index_by_owner_uid, meta_namespace_key,
                                    object_of)
from kubemu.client.wait import wait_for

TIMEOUT_S = 5.0
DEADLINE_SLACK_S = 0.25


def cm(name: str, namespace: str = "default", **data: str) -> core_pb2.ConfigMap:
    obj = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data=data)
    obj.metadata.name = name
    obj.metadata.namespace = namespace
    return obj


def copy(obj):
    out = type(obj)()
    out.CopyFrom(obj)
    return out


@dataclasses.dataclass
class Seen:
    method: str
    request: object
    time_remaining: float | None
    request_id: str = ""


class FakeResources(resources_pb2_grpc.ResourcesServicer):
    def __init__(self) -> None:
        self.address = ""
        self.objects: dict[str, core_pb2.ConfigMap] = {}
        self.revision = 100
        # Watches from a version below this get OUT_OF_RANGE.
        self.compacted = 0
        self.events: list[tuple[int, str, core_pb2.ConfigMap]] = []
        self.watchers: set[asyncio.Queue] = set()
        self.seen: list[Seen] = []
        # method -> status codes to fail the next calls with, in order.
        self.failures: dict[str, list[grpc.StatusCode]] = {}
        # method -> async fn(request, context) run as each call arrives (the
        # server holds the servicer's bound methods, so methods cannot be swapped).
        self.hooks: dict[str, object] = {}
        # Serve continue pages at the current revision rather than the snapshot's.
        self.pages_at_current_version = False

    # -- test controls

    def calls(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]

    def fail(self, method: str, *codes: grpc.StatusCode) -> None:
        self.failures.setdefault(method, []).extend(codes)

    def put(self, obj: core_pb2.ConfigMap, *, notify: bool = True) -> core_pb2.ConfigMap:
        key = meta_namespace_key(obj)
        self.revision += 1
        stored = copy(obj)
        stored.metadata.resource_version = str(self.revision)
        stored.metadata.uid = stored.metadata.uid or f"uid-{stored.metadata.name}"
        event = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = stored
        self._emit(event, stored, notify)
        return copy(stored)

    def remove(self, key: str, *, notify: bool = True) -> core_pb2.ConfigMap:
        stored = self.objects.pop(key)
        self.revision += 1
        gone = copy(stored)
        gone.metadata.resource_version = str(self.revision)
        self._emit("DELETED", gone, notify)
        return gone

    def compact(self) -> None:
        # Watching from the current revision stays valid; anything older is gone.
        self.compacted = self.revision
        self.events.clear()

    def bookmark(self) -> None:
        mark = core_pb2.ConfigMap()
        mark.metadata.resource_version = str(self.revision)
        for q in self.watchers:
            q.put_nowait(("BOOKMARK", mark))

    def break_watches(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        for q in self.watchers:
            q.put_nowait(("ABORT", code))

    def _emit(self, event: str, obj: core_pb2.ConfigMap, notify: bool) -> None:
        self.events.append((self.revision, event, obj))
        if notify:
            for q in self.watchers:
                q.put_nowait((event, obj))

    # -- servicer

    async def _enter(self, method: str, request, context) -> None:
        request_id = dict(context.invocation_metadata() or ()).get(errors.REQUEST_ID_KEY, "")
        self.seen.append(Seen(method, request, context.time_remaining(), request_id))
        hook = self.hooks.get(method)
        if hook is not None:
            await hook(request, context)
        pending = self.failures.get(method)
        if pending:
            code = pending.pop(0)
            await context.abort(code, f"fake {method} failure: {code.name}")

    async def _lookup(self, key: str, resource: str, name: str, context):
        if key not in self.objects:
            await context.abort(grpc.StatusCode.NOT_FOUND, f'{resource} "{name}" not found')
        return self.objects[key]

    @staticmethod
    def _key(namespace: str, name: str) -> str:
        return f"{namespace}/{name}" if namespace else name

    async def Create(self, request, context):
        await self._enter("Create", request, context)
        obj = REGISTRY.unpack(request.object)
        obj.metadata.namespace = request.namespace
        if meta_namespace_key(obj) in self.objects:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS,
                                f'configmaps "{obj.metadata.name}" already exists')
        stored = obj if request.dry_run else self.put(obj)
        return resources_pb2.ObjectResponse(object=REGISTRY.pack(stored))

    async def Get(self, request, context):
        await self._enter("Get", request, context)
        obj = await self._lookup(self._key(request.namespace, request.name), request.resource,
                                 request.name, context)
        return resources_pb2.ObjectResponse(object=REGISTRY.pack(obj))

    async def List(self, request, context):
        await self._enter("List", request, context)
        items = [o for k, o in sorted(self.objects.items())
                 if not request.namespace or o.metadata.namespace == request.namespace]
        # The continue token carries the snapshot's version and the offset.
        snapshot, offset = str(self.revision), 0
        if request.continue_token:
            snapshot, offset_text = request.continue_token.split(":")
            offset = int(offset_text)
        end = offset + request.limit if request.limit else len(items)
        page = items[offset:end]
        token = f"{snapshot}:{end}" if end < len(items) else ""
        version = str(self.revision) if self.pages_at_current_version else snapshot
        return resources_pb2.ListResponse(
            items=[REGISTRY.pack(o) for o in page], resource_version=version,
            continue_token=token, remaining_item_count=max(0, len(items) - end))

    async def Watch(self, request, context):
        await self._enter("Watch", request, context)
        since = int(request.resource_version or 0)
        if since and since < self.compacted:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE,
                                f"too old resource version: {since} ({self.compacted})",
                                trailing_metadata=((errors.REASON_KEY, "Expired"),))
        queue: asyncio.Queue = asyncio.Queue()
        self.watchers.add(queue)
        try:
            if since:
                backlog = [(e, o) for rev, e, o in self.events if rev > since]
            else:
                backlog = [("ADDED", o) for _, o in sorted(self.objects.items())]
            for event, obj in backlog:
                yield resources_pb2.WatchEvent(type=event, object=REGISTRY.pack(obj))
            while True:
                event, obj = await queue.get()
                if event == "ABORT":
                    await context.abort(obj, "fake: watch stream broken")
                if event == "BOOKMARK" and not request.allow_watch_bookmarks:
                    continue
                yield resources_pb2.WatchEvent(type=event, object=REGISTRY.pack(obj))
        finally:
            self.watchers.discard(queue)

    async def _update(self, method, request, context):
        await self._enter(method, request, context)
        obj = REGISTRY.unpack(request.object)
        current = await self._lookup(meta_namespace_key(obj), request.resource,
                                     obj.metadata.name, context)
        if obj.metadata.resource_version != current.metadata.resource_version:
            await context.abort(
                grpc.StatusCode.ABORTED,
                f'Operation cannot be fulfilled on configmaps "{obj.metadata.name}": '
                "the object has been modified")
        return resources_pb2.ObjectResponse(object=REGISTRY.pack(self.put(obj)))

    async def Update(self, request, context):
        return await self._update("Update", request, context)

    async def UpdateStatus(self, request, context):
        return await self._update("UpdateStatus", request, context)

    async def Patch(self, request, context):
        await self._enter("Patch", request, context)
        current = await self._lookup(self._key(request.namespace, request.name),
                                     request.resource, request.name, context)
        patch = json.loads(request.patch)
        obj = copy(current)
        for k, v in patch.get("data", {}).items():
            if v is None:
                obj.data.pop(k, None)
            else:
                obj.data[k] = v
        return resources_pb2.ObjectResponse(object=REGISTRY.pack(self.put(obj)))

    async def Delete(self, request, context):
        await self._enter("Delete", request, context)
        key = self._key(request.namespace, request.name)
        await self._lookup(key, request.resource, request.name, context)
        return resources_pb2.DeleteResponse(object=REGISTRY.pack(self.remove(key)), deleted=True)

    async def Bind(self, request, context):
        await self._enter("Bind", request, context)
        await context.abort(grpc.StatusCode.NOT_FOUND, f'pods "{request.name}" not found')

    async def Evict(self, request, context):
        await self._enter("Evict", request, context)
        # What the apiserver answers when a disruption budget forbids it (429).
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                            trailing_metadata=((errors.REASON_KEY, "TooManyRequests"),))

    async def Discovery(self, request, context):
        await self._enter("Discovery", request, context)
        return resources_pb2.DiscoveryResponse(
            server_version="fake", resources=[resources_pb2.APIResource(
                name="configmaps", singular_name="configmap", short_names=["cm"],
                api_version="v1", kind="ConfigMap", namespaced=True, verbs=["get", "list"])])


@pytest.fixture
async def fake():
    servicer = FakeResources()
    server = grpc.aio.server()
    resources_pb2_grpc.add_ResourcesServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    servicer.address = f"127.0.0.1:{port}"
    yield servicer
    await server.stop(grace=None)


@pytest.fixture
async def client(fake):
    c = Client(fake.address, timeout_s=TIMEOUT_S, retry_attempts=3, backoff_s_max=0.01)
    yield c
    await c.close()


U = grpc.StatusCode.UNAVAILABLE


# ---------------------------------------------------------------- verbs

async def test_create_get_update_delete_round_trip(fake, client):
    created = await client.create(cm("app", "team", color="blue"))
    assert isinstance(created, core_pb2.ConfigMap)
    assert created.metadata.resource_version == "101"
    assert fake.calls("Create")[0].request.namespace == "team"
    assert fake.calls("Create")[0].request.resource == "configmaps"

    got = await client.get("cm", "app", "team")
    assert got.data == {"color": "blue"}

    got.data["color"] = "green"
    updated = await client.update(got)
    assert updated.data["color"] == "green"
    assert updated.metadata.resource_version == "102"

    result = await client.delete("configmaps", "app", "team")
    assert isinstance(result, DeleteResult)
    assert result.deleted and result.object.metadata.name == "app"
    with pytest.raises(errors.NotFound, match='configmaps "app" not found'):
        await client.get("configmap", "app", "team")


@pytest.mark.parametrize("name", ["configmaps", "configmap", "cm", "ConfigMap", "CM"])
async def test_resource_names_resolve_like_kubectl(fake, client, name):
    fake.put(cm("a"))
    await client.get(name, "a", "default")
    assert fake.calls("Get")[-1].request.resource == "configmaps"


async def test_unknown_resource_fails_without_a_call(fake, client):
    with pytest.raises(errors.NotFound, match='resource type "widgets"'):
        await client.get("widgets", "a")
    assert fake.seen == []


async def test_dry_run_create_is_passed_on(fake, client):
    await client.create(cm("dry"), dry_run=True)
    assert fake.calls("Create")[0].request.dry_run
    assert fake.objects == {}


async def test_patch_sends_json_merge_patch(fake, client):
    fake.put(cm("app", color="blue", size="m"))
    patched = await client.patch("cm", "app", "default", patch={"data": {"color": "red",
                                                                         "size": None}})
    request = fake.calls("Patch")[0].request
    assert request.patch_type == "merge"
    assert json.loads(request.patch) == {"data": {"color": "red", "size": None}}
    assert not request.status and not request.dry_run
    assert patched.data == {"color": "red"}


async def test_patch_status_and_dry_run_flags(fake, client):
    fake.put(cm("app"))
    await client.patch("cm", "app", "default", patch={}, status=True, dry_run=True)
    request = fake.calls("Patch")[0].request
    assert request.status and request.dry_run


@pytest.mark.parametrize("kwargs,grace,preconditions", [
    ({}, None, None),
    ({"grace_period_s": 0}, 0, None),
    ({"grace_period_s": 30, "propagation_policy": "Foreground"}, 30, None),
    ({"uid": "u1", "resource_version": "7"}, None, ("u1", "7")),
], ids=["defaults", "grace-zero-is-sent", "grace-and-policy", "preconditions"])
async def test_delete_options(fake, client, kwargs, grace, preconditions):
    fake.put(cm("app"))
    await client.delete("cm", "app", "default", **kwargs)
    request = fake.calls("Delete")[0].request
    if grace is None:
        assert not request.HasField("grace_period_seconds")
    else:
        assert request.HasField("grace_period_seconds")
        assert request.grace_period_seconds == grace
    assert request.propagation_policy == kwargs.get("propagation_policy", "")
    if preconditions is None:
        assert not request.HasField("preconditions")
    else:
        assert (request.preconditions.uid, request.preconditions.resource_version) == preconditions


async def test_bind_sends_target(fake, client):
    with pytest.raises(errors.NotFound):
        await client.bind("default", "web-0", "node-1", uid="u")
    request = fake.calls("Bind")[0].request
    assert (request.namespace, request.name, request.node_name, request.uid) == (
        "default", "web-0", "node-1", "u")


async def test_discovery(fake, client):
    response = await client.discovery()
    assert response.resources[0].short_names == ["cm"]


# ---------------------------------------------------------------- lists

async def test_list_returns_one_page(fake, client):
    for i in range(5):
        fake.put(cm(f"c{i}"))
    page = await client.list("cm", "default", limit=2, label_selector="a=b",
                             field_selector="metadata.name!=x")
    assert isinstance(page, ListResult)
    assert [o.metadata.name for o in page.items] == ["c0", "c1"]
    assert page.continue_token and page.remaining_item_count == 3
    request = fake.calls("List")[0].request
    assert (request.label_selector, request.field_selector, request.limit) == (
        "a=b", "metadata.name!=x", 2)


async def test_list_all_follows_continue_tokens(fake, client):
    for i in range(7):
        fake.put(cm(f"c{i}"))
    snapshot = str(fake.revision)
    result = await client.list_all("cm", "default", page_size=3)
    assert [o.metadata.name for o in result.items] == [f"c{i}" for i in range(7)]
    assert result.resource_version == snapshot
    assert result.continue_token == ""
    requests = [s.request for s in fake.calls("List")]
    assert [r.limit for r in requests] == [3, 3, 3]
    assert [r.continue_token for r in requests] == ["", f"{snapshot}:3", f"{snapshot}:6"]


async def test_list_all_keeps_first_page_version(fake, client):
    for i in range(4):
        fake.put(cm(f"c{i}"))
    first_version = str(fake.revision)
    fake.pages_at_current_version = True

    async def others_write_meanwhile(request, context):
        if request.continue_token:
            fake.put(cm(f"new-{len(fake.seen)}", namespace="elsewhere"))

    fake.hooks["List"] = others_write_meanwhile
    result = await client.list_all("cm", "default", page_size=2)
    assert len(fake.calls("List")) == 2
    assert fake.revision > int(first_version)
    assert result.resource_version == first_version


async def test_list_all_restarts_once_when_continue_token_expires(fake, client):
    for i in range(4):
        fake.put(cm(f"c{i}"))
    expired_once = []

    async def expire_first_continue(request, context):
        if request.continue_token and not expired_once:
            expired_once.append(True)
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "continue token expired")

    fake.hooks["List"] = expire_first_continue
    result = await client.list_all("cm", "default", page_size=3)
    assert [o.metadata.name for o in result.items] == ["c0", "c1", "c2", "c3"]
    assert expired_once
    assert [s.request.continue_token != "" for s in fake.calls("List")] == [
        False, True, False, True]


async def test_list_all_gives_up_when_continue_keeps_expiring(fake, client):
    for i in range(4):
        fake.put(cm(f"c{i}"))

    async def always_expire(request, context):
        if request.continue_token:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "continue token expired")

    fake.hooks["List"] = always_expire
    with pytest.raises(errors.Expired):
        await client.list_all("cm", "default", page_size=3)
    assert len(fake.calls("List")) == 4


# ---------------------------------------------------------------- errors and retries

@pytest.mark.parametrize("code,cls", [
    (grpc.StatusCode.NOT_FOUND, errors.NotFound),
    (grpc.StatusCode.ABORTED, errors.Conflict),
    (grpc.StatusCode.OUT_OF_RANGE, errors.Expired),
    (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
    (grpc.StatusCode.INVALID_ARGUMENT, errors.Invalid),
    (grpc.StatusCode.PERMISSION_DENIED, errors.Forbidden),
    (grpc.StatusCode.DEADLINE_EXCEEDED, errors.Timeout),
    (grpc.StatusCode.INTERNAL, errors.Internal),
], ids=lambda v: getattr(v, "name", None) or v.__name__)
async def test_status_codes_map_to_error_classes(fake, client, code, cls):
    fake.put(cm("app"))
    fake.fail("Get", code)
    with pytest.raises(cls) as info:
        await client.get("cm", "app", "default")
    assert type(info.value) is cls
    assert f"fake Get failure: {code.name}" in str(info.value)
    assert len(fake.calls("Get")) == 1  # none of these is retried


async def test_eviction_sends_the_eviction_and_rebuilds_too_many_requests(fake, client):
    with pytest.raises(errors.TooManyRequests) as info:
        await client.evict("default", "web-1", grace_period_s=0, dry_run=True)
    # RESOURCE_EXHAUSTED is 413 too; the reason trailer makes it a 429.
    assert type(info.value) is errors.TooManyRequests and info.value.temporary
    assert info.value.message == \
        "Cannot evict pod as it would violate the pod's disruption budget."
    (seen,) = fake.calls("Evict")
    ev = seen.request.eviction
    assert (seen.request.namespace, ev.api_version, ev.kind, ev.metadata.name,
            ev.metadata.namespace) == ("default", "policy/v1", "Eviction", "web-1", "default")
    assert ev.delete_options.HasField("grace_period_seconds") and \
        ev.delete_options.grace_period_seconds == 0
    assert list(ev.delete_options.dry_run) == ["All"]


async def test_conflict_from_update(fake, client):
    stale = fake.put(cm("app"))
    fake.put(cm("app", changed="yes"))
    with pytest.raises(errors.Conflict, match="has been modified"):
        await client.update(stale)


async def test_get_retries_on_unavailable(fake, client):
    fake.put(cm("app"))
    fake.fail("Get", U, U)
    got = await client.get("cm", "app", "default")
    assert got.metadata.name == "app"
    assert len(fake.calls("Get")) == 3


@pytest.mark.parametrize("method,call", [
    ("List", lambda c: c.list("cm")),
    ("Discovery", lambda c: c.discovery()),
], ids=["list", "discovery"])
async def test_idempotent_calls_retry(fake, client, method, call):
    fake.fail(method, U)
    await call(client)
    assert len(fake.calls(method)) == 2


async def test_retries_are_bounded(fake, client):
    fake.put(cm("app"))
    fake.fail("Get", *[U] * 10)
    with pytest.raises(errors.Unavailable):
        await client.get("cm", "app", "default")
    assert len(fake.calls("Get")) == 1 + client.retry_attempts


async def test_zero_retry_attempts_means_one_call(fake):
    async with Client(fake.address, retry_attempts=0, backoff_s_max=0.01) as c:
        fake.fail("Get", U)
        with pytest.raises(errors.Unavailable):
            await c.get("cm", "x", "default")
    assert len(fake.calls("Get")) == 1


NON_IDEMPOTENT = [
    ("Create", lambda c: c.create(cm("new"))),
    ("Update", lambda c: c.update(c._fixture_obj)),
    ("UpdateStatus", lambda c: c.update_status(c._fixture_obj)),
    ("Patch", lambda c: c.patch("cm", "app", "default", patch={"data": {"a": "b"}})),
    ("Delete", lambda c: c.delete("cm", "app", "default")),
    ("Bind", lambda c: c.bind("default", "app", "node-1")),
    ("Evict", lambda c: c.evict("default", "app")),
]


@pytest.mark.parametrize("method,call", NON_IDEMPOTENT, ids=[m for m, _ in NON_IDEMPOTENT])
async def test_writes_are_never_retried(fake, client, method, call):
    client._fixture_obj = fake.put(cm("app"))
    fake.fail(method, U)
    with pytest.raises(errors.Unavailable):
        await call(client)
    assert len(fake.calls(method)) == 1


async def test_unreachable_server_is_unavailable_after_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on `port` now.
    async with Client(f"127.0.0.1:{port}", timeout_s=2, retry_attempts=2,
                      backoff_s_max=0.01) as c:
        with pytest.raises(errors.Unavailable):
            await c.get("cm", "x", "default")


ALL_UNARY = [
    ("Create", lambda c: c.create(cm("new"))),
    ("Get", lambda c: c.get("cm", "app", "default")),
    ("List", lambda c: c.list("cm")),
    ("Update", lambda c: c.update(c._fixture_obj)),
    ("UpdateStatus", lambda c: c.update_status(c._fixture_obj)),
    ("Patch", lambda c: c.patch("cm", "app", "default", patch={})),
    ("Delete", lambda c: c.delete("cm", "app", "default")),
    ("Bind", lambda c: c.bind("default", "app", "node-1")),
    ("Evict", lambda c: c.evict("default", "app")),
    ("Discovery", lambda c: c.discovery()),
]


@pytest.mark.parametrize("method,call", ALL_UNARY, ids=[m for m, _ in ALL_UNARY])
async def test_every_call_has_a_deadline(fake, client, method, call):
    client._fixture_obj = fake.put(cm("app"))
    with contextlib.suppress(errors.ApiError):
        await call(client)
    (seen,) = fake.calls(method)
    assert seen.time_remaining is not None, f"{method} was sent without a deadline"
    # The server's view of the deadline can run a few ms over (clock granularity).
    assert 0 < seen.time_remaining <= TIMEOUT_S + DEADLINE_SLACK_S


@pytest.mark.parametrize("method,call", ALL_UNARY, ids=[m for m, _ in ALL_UNARY])
async def test_every_call_carries_its_own_request_id(fake, client, method, call):
    client._fixture_obj = fake.put(cm("app"))
    for _ in range(2):
        with contextlib.suppress(errors.ApiError):
            await call(client)
    first, second = fake.calls(method)
    assert first.request_id and second.request_id and first.request_id != second.request_id


def test_client_rejects_bad_options():
    with pytest.raises(ValueError, match="timeout_s"):
        Client("127.0.0.1:1", timeout_s=0)
    with pytest.raises(ValueError, match="retry_attempts"):
        Client("127.0.0.1:1", retry_attempts=-1)


# ---------------------------------------------------------------- watch

async def next_events(events, n: int) -> list:
    out = []
    async with asyncio.timeout(TIMEOUT_S):
        while len(out) < n:
            out.append(await anext(events))
    return out


async def test_watch_streams_changes_after_version(fake, client):
    base = fake.put(cm("a"))
    events = client.watch("cm", "default", resource_version=base.metadata.resource_version)
    async with contextlib.aclosing(events):
        first = asyncio.ensure_future(next_events(events, 3))
        await wait_for(lambda: fake.watchers, TIMEOUT_S)
        fake.put(cm("b"))
        fake.put(cm("a", v="2"))
        fake.remove("default/b")
        got = await first
    assert [(e.type, e.object.metadata.name) for e in got] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    request = fake.calls("Watch")[0].request
    assert request.resource == "configmaps" and not request.allow_watch_bookmarks
    assert fake.calls("Watch")[0].time_remaining is None  # streams have no deadline by default


async def test_watch_from_empty_version_lists_first(fake, client):
    fake.put(cm("a"))
    fake.put(cm("b"))
    events = client.watch("cm", allow_bookmarks=True)
    async with contextlib.aclosing(events):
        got = await next_events(events, 2)
    assert [(e.type, e.object.metadata.name) for e in got] == [("ADDED", "a"), ("ADDED", "b")]
    assert fake.calls("Watch")[0].request.allow_watch_bookmarks


async def test_watch_expired_raises_expired(fake, client):
    fake.put(cm("a"))
    fake.compact()
    with pytest.raises(errors.Expired, match="too old resource version"):
        async for _ in client.watch("cm", resource_version="50"):
            pass
    assert len(fake.calls("Watch")) == 1


async def test_watch_retries_unavailable_before_first_event(fake, client):
    fake.put(cm("a"))
    fake.fail("Watch", U, U)
    events = client.watch("cm")
    async with contextlib.aclosing(events):
        (event,) = await next_events(events, 1)
    assert event.object.metadata.name == "a"
    assert len(fake.calls("Watch")) == 3


async def test_watch_does_not_retry_after_first_event(fake, client):
    fake.put(cm("a"))
    events = client.watch("cm")
    async with contextlib.aclosing(events):
        await next_events(events, 1)
        fake.break_watches(U)
        with pytest.raises(errors.Unavailable):
            await next_events(events, 1)
    assert len(fake.calls("Watch")) == 1


async def test_watch_with_timeout_has_deadline_and_ends_normally(fake, client):
    events = [e async for e in client.watch("cm", timeout_s=0.2)]
    assert events == []
    remaining = fake.calls("Watch")[0].time_remaining
    assert remaining is not None and remaining <= 0.2 + DEADLINE_SLACK_S


async def test_closing_watch_cancels_the_stream(fake, client):
    fake.put(cm("a"))
    events = client.watch("cm")
    await next_events(events, 1)
    await wait_for(lambda: len(fake.watchers) == 1, TIMEOUT_S)
    await events.aclose()
    await wait_for(lambda: not fake.watchers, TIMEOUT_S, message="server saw the stream end")


# ---------------------------------------------------------------- informer

class Recorder:
    def __init__(self, informer: Informer):
        self.calls: list[tuple] = []
        self.informer = informer
        informer.add_handler(
            on_add=lambda o: self.calls.append(("add", o.metadata.name)),
            on_update=lambda old, new: self.calls.append(
                ("update", new.metadata.name, old.metadata.resource_version,
                 new.metadata.resource_version)),
            on_delete=lambda o: self.calls.append(("delete", o.metadata.name)))

    def names(self, kind: str) -> list[str]:
        return sorted(c[1] for c in self.calls if c[0] == kind)


@pytest.fixture
async def informer(client):
    inf = Informer(client, "cm", "default", relist_backoff_s_max=0.05)
    yield inf
    await inf.stop()


async def test_informer_lists_then_watches_from_list_version(fake, client, informer):
    fake.put(cm("a"))
    fake.put(cm("b"))
    version = str(fake.revision)
    rec = Recorder(informer)
    informer.start()
    await informer.wait_synced(TIMEOUT_S)
    assert rec.names("add") == ["a", "b"]
    assert sorted(informer.store.keys()) == ["default/a", "default/b"]
    await wait_for(lambda: fake.calls("Watch"), TIMEOUT_S)
    watch = fake.calls("Watch")[0].request
    assert watch.resource_version == version
    assert watch.allow_watch_bookmarks
    assert fake.calls("Watch")[0].time_remaining is not None  # bounded re-watch period

    fake.put(cm("c"))
    fake.put(cm("a", v="2"))
    fake.remove("default/b")
    await wait_for(lambda: len(rec.calls) >= 5, TIMEOUT_S, message=f"handler calls {rec.calls}")
    assert rec.calls[2:] == [("add", "c"), ("update", "a", "101", "104"), ("delete", "b")]
    assert informer.get("default/a").data == {"v": "2"}
    assert informer.get("default/b") is None
    assert informer.resource_version == str(fake.revision)
    assert informer.relists == 0


async def test_informer_relists_on_expired_and_delivers_the_difference(fake, client, informer):
    fake.put(cm("stays"))
    fake.put(cm("vanishes"))
    fake.put(cm("changes"))
    rec = Recorder(informer)
    informer.start()
    await informer.wait_synced(TIMEOUT_S)
    await wait_for(lambda: fake.watchers, TIMEOUT_S)
    # Changes the informer never hears about, then the history is compacted
    # away and the stream breaks: re-watching from its version must say Expired.
    fake.remove("default/vanishes", notify=False)
    fake.put(cm("appears"), notify=False)
    fake.put(cm("changes", v="2"), notify=False)
    fake.compact()
    rec.calls.clear()
    fake.break_watches(U)
    await wait_for(lambda: informer.relists == 1, TIMEOUT_S)
    assert rec.names("delete") == ["vanishes"]
    assert rec.names("add") == ["appears"]
    assert rec.names("update") == ["changes"]  # "stays" did not change: no call
    assert sorted(informer.store.keys()) == ["default/appears", "default/changes",
                                             "default/stays"]
    # And it watches again, from the new list's version.
    await wait_for(lambda: len(fake.calls("Watch")) >= 3 and fake.watchers, TIMEOUT_S)
    assert fake.calls("Watch")[-1].request.resource_version == str(fake.revision)
    fake.put(cm("later"))
    await wait_for(lambda: informer.get("default/later"), TIMEOUT_S)


async def test_informer_rewatches_from_last_version_without_relisting(fake, client, informer):
    fake.put(cm("a"))
    rec = Recorder(informer)
    informer.start()
    await informer.wait_synced(TIMEOUT_S)
    await wait_for(lambda: fake.watchers, TIMEOUT_S)
    fake.put(cm("b"))
    await wait_for(lambda: informer.get("default/b"), TIMEOUT_S)
    seen_version = informer.resource_version
    fake.fail("Watch", U, U, U, U, U, U)  # more than the client's own retries
    fake.break_watches(U)
    fake.put(cm("c"), notify=False)  # happens while the stream is down
    await wait_for(lambda: informer.get("default/c"), TIMEOUT_S,
                   message="event missed while disconnected was not replayed")
    assert informer.relists == 0
    assert len(fake.calls("List")) == 1
    resumed = [s.request.resource_version for s in fake.calls("Watch")[1:]]
    assert resumed and set(resumed) == {seen_version}
    assert rec.names("add") == ["a", "b", "c"]


async def test_informer_rewatches_quiet_streams_without_backing_off(fake, client):
    # Streams that end at their own (short) timeout are normal, not failures:
    # with backoff they would soon be seconds apart (the cap here is 30 s).
    inf = Informer(client, "cm", "default", watch_timeout_s=0.02, relist_backoff_s_max=30)
    inf.start()
    try:
        await wait_for(lambda: inf.watches >= 10, TIMEOUT_S,
                       message="quiet watch streams were re-opened with backoff")
        assert inf.relists == 0
    finally:
        await inf.stop()


async def test_informer_keeps_retrying_when_streams_fail_at_once(fake, client):
    async def end_at_once(request, context):
        await context.abort(grpc.StatusCode.UNAVAILABLE, "closing")

    fake.hooks["Watch"] = end_at_once
    inf = Informer(client, "cm", "default", relist_backoff_s_max=0.2)
    inf.start()
    try:
        # Each finished round is the client's own attempts (1 + retries), then
        # the informer's backoff; the informer keeps going, it does not give up.
        # (Wait on the calls themselves: `watches` counts a round before its
        # first call reaches the server.)
        await wait_for(lambda: len(fake.calls("Watch")) >= 2 * (1 + client.retry_attempts) + 1,
                       TIMEOUT_S)
        assert inf.watches >= 3
        assert len(fake.calls("List")) == 1
        assert not inf._task.done()
    finally:
        await inf.stop()


@pytest.mark.parametrize("message, relists", [
    pytest.param("Too large resource version: 900, current: 12", 1,
                 id="too-large-relists"),
    pytest.param("context deadline exceeded", 0, id="other-timeout-rewatches"),
])
async def test_informer_relists_when_its_version_is_ahead_of_the_store(fake, client, message,
                                                                        relists):
    # An etcd restored from a snapshot is behind what the informer saw; the
    # apiserver answers a watch from that version "Too large resource
    # version" (504 Timeout). client-go relists then; any other timeout re-watches.
    failed: list[str] = []

    async def once(request, context):
        if not failed:
            failed.append(request.resource_version)
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, message,
                                trailing_metadata=((errors.REASON_KEY, "Timeout"),))

    fake.put(cm("a"))
    fake.hooks["Watch"] = once
    inf = Informer(client, "cm", "default", relist_backoff_s_max=0.2)
    inf.start()
    try:
        await wait_for(lambda: len(fake.calls("Watch")) >= 2 and fake.watchers, TIMEOUT_S)
        assert inf.relists == relists
        assert len(fake.calls("List")) == 1 + relists
    finally:
        await inf.stop()


async def test_an_informer_whose_first_list_times_out_lists_again_before_watching(fake, client):
    # A list answered Timeout (an apiserver back from a pause, its cache not
    # yet fresh): it never delivered, so the informer must list again, not
    # watch from a version it never listed at (it used to, and never synced).
    failed: list[str] = []

    async def once(request, context):
        if not failed:
            failed.append("list")
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded",
                                trailing_metadata=((errors.REASON_KEY, "Timeout"),))

    fake.put(cm("a"))
    fake.hooks["List"] = once
    inf = Informer(client, "cm", "default", relist_backoff_s_max=0.2)
    inf.start()
    try:
        await inf.wait_synced(TIMEOUT_S)
        assert failed == ["list"]
        assert sorted(inf.store.keys()) == ["default/a"]
        assert len(fake.calls("List")) == 2
    finally:
        await inf.stop()


async def test_informer_bookmarks_advance_version(fake, client, informer):
    informer.start()
    await informer.wait_synced(TIMEOUT_S)
    await wait_for(lambda: fake.watchers, TIMEOUT_S)
    fake.put(cm("x", namespace="other-namespace"), notify=False)  # moves the revision
    fake.bookmark()
    await wait_for(lambda: informer.resource_version == str(fake.revision), TIMEOUT_S)
    assert len(informer.store) == 0


async def test_informer_resync_redelivers_updates(fake, client):
    fake.put(cm("a"))
    inf = Informer(client, "cm", "default", resync_s=0.02)
    rec = Recorder(inf)
    inf.start()
    try:
        await wait_for(lambda: len([c for c in rec.calls if c[0] == "update"]) >= 2, TIMEOUT_S)
        _, name, old_rv, new_rv = next(c for c in rec.calls if c[0] == "update")
        assert (name, old_rv) == ("a", new_rv)
    finally:
        await inf.stop()


async def test_handler_added_after_sync_gets_existing_objects(fake, client, informer):
    fake.put(cm("a"))
    informer.start()
    await informer.wait_synced(TIMEOUT_S)
    rec = Recorder(informer)
    assert rec.calls == [("add", "a")]


async def test_failing_handler_does_not_stop_the_informer(fake, client, informer):
    def boom(obj):
        raise RuntimeError("handler bug")

    informer.add_handler(on_add=boom)
    rec = Recorder(informer)
    informer.start()
    await informer.wait_synced(TIMEOUT_S)
    fake.put(cm("a"))
    await wait_for(lambda: rec.names("add") == ["a"], TIMEOUT_S)


async def test_stop_without_await_stops(fake, client):
    inf = Informer(client, "cm")
    task = inf.start()
    await inf.wait_synced(TIMEOUT_S)
    inf.stop()
    await wait_for(lambda: task.done(), TIMEOUT_S)


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("explicit,env,expected", [
    ("/explicit", "/from-env", "/explicit"),
    (None, "/from-env", "/from-env"),
    (None, None, os.path.expanduser("~/.kubemu")),
    ("", None, os.path.expanduser("~/.kubemu")),
], ids=["explicit-wins", "env", "default", "empty-explicit-is-unset"])
def test_home_dir(monkeypatch, explicit, env, expected):
    if env is None:
        monkeypatch.delenv("KUBEMU_HOME", raising=False)
    else:
        monkeypatch.setenv("KUBEMU_HOME", env)
    assert str(config.home_dir(explicit)) == expected


def test_missing_cluster_config_says_what_to_do(tmp_path):
    with pytest.raises(config.ClusterNotFound) as info:
        config.load_cluster_config(tmp_path)
    assert str(info.value) == (
        f"no cluster found in {tmp_path}: run 'kubemu up' first (or set KUBEMU_HOME)")


def test_cluster_config_round_trip_is_atomic(tmp_path):
    home = tmp_path / "home"
    cfg = config.ClusterConfig("127.0.0.1:4000", ["127.0.0.1:2379"],
                               {"scheduler": {"pid": 12, "address": "127.0.0.1:5000"}})
    path = config.write_cluster_config(home, cfg)
    assert path == home / "kubeconfig.json"
    assert config.load_cluster_config(home) == cfg
    cfg.apiserver = "127.0.0.1:4001"
    config.write_cluster_config(home, cfg)
    assert config.load_cluster_config(home).apiserver == "127.0.0.1:4001"
    assert sorted(p.name for p in home.iterdir()) == ["kubeconfig.json"]  # no temp files left


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"etcd": []}', "apiserver: Required value"),
    ('{"apiserver": "a:1", "etcd": "a:2"}', "etcd: Invalid value"),
    ('{"apiserver": "a:1", "components": []}', "components: Invalid value"),
], ids=["garbage", "not-object", "no-apiserver", "etcd-not-list", "components-not-object"])
def test_bad_cluster_config(tmp_path, text, match):
    (tmp_path / "kubeconfig.json").write_text(text)
    with pytest.raises(config.BadClusterConfig, match=match):
        config.load_cluster_config(tmp_path)


async def test_client_from_home(tmp_path, fake, monkeypatch):
    config.write_cluster_config(tmp_path, config.ClusterConfig(fake.address))
    fake.put(cm("a"))
    async with Client.from_home(tmp_path, timeout_s=3) as c:
        assert c.timeout_s == 3
        assert (await c.get("cm", "a", "default")).metadata.name == "a"
    monkeypatch.setenv("KUBEMU_HOME", str(tmp_path))
    async with Client.from_home() as c:
        assert c.address == fake.address


async def test_a_deletion_seen_only_by_a_relist_is_a_tombstone(fake, client, informer):
    fake.put(cm("vanishes", v="last"))
    deleted: list = []
    informer.add_handler(on_delete=deleted.append)
    informer.start()
    await informer.wait_synced(TIMEOUT_S)
    await wait_for(lambda: fake.watchers, TIMEOUT_S)
    fake.remove("default/vanishes", notify=False)
    fake.compact()
    fake.break_watches(U)
    await wait_for(lambda: deleted, TIMEOUT_S)
    [gone] = deleted
    assert isinstance(gone, DeletedFinalStateUnknown)
    assert gone.key == "default/vanishes" and gone.metadata.name == "vanishes"
    assert object_of(gone).data == {"v": "last"}
    # A deletion the watch delivers is the object itself.
    fake.put(cm("seen"))
    await wait_for(lambda: informer.get("default/seen"), TIMEOUT_S)
    fake.remove("default/seen")
    await wait_for(lambda: len(deleted) == 2, TIMEOUT_S)
    assert isinstance(deleted[1], core_pb2.ConfigMap) and object_of(deleted[1]) is deleted[1]


def _owned(name: str, namespace: str, *owners: tuple[str, bool]) -> core_pb2.ConfigMap:
    obj = cm(name, namespace)
    for uid, controller in owners:
        obj.metadata.owner_references.add(uid=uid, controller=controller, kind="ReplicaSet",
                                          name=f"rs-{uid}", api_version="apps/v1")
    return obj


async def test_indexes_follow_adds_updates_deletes_and_relists(fake, client):
    informer = Informer(client, "cm", relist_backoff_s_max=0.05)
    informer.add_indexers({NAMESPACE_INDEX: index_by_namespace,
                           OWNER_UID_INDEX: index_by_owner_uid,
                           CONTROLLER_UID_INDEX: index_by_controller_uid})
    fake.put(_owned("a", "default", ("rs1", True)))
    fake.put(_owned("b", "other", ("rs1", False), ("rs2", True)))
    informer.start()
    try:
        await informer.wait_synced(TIMEOUT_S)

        def names(index: str, value: str) -> list[str]:
            return [o.metadata.name for o in informer.by_index(index, value)]

        assert names(NAMESPACE_INDEX, "other") == ["b"]
        assert names(OWNER_UID_INDEX, "rs1") == ["a", "b"]
        assert names(CONTROLLER_UID_INDEX, "rs1") == ["a"]
        assert names(CONTROLLER_UID_INDEX, "rs2") == ["b"]
        await wait_for(lambda: fake.watchers, TIMEOUT_S)
        fake.put(_owned("a", "default", ("rs2", True)))   # adopted by another owner
        fake.remove("other/b")
        await wait_for(lambda: names(CONTROLLER_UID_INDEX, "rs2") == ["a"], TIMEOUT_S)
        assert names(OWNER_UID_INDEX, "rs1") == [] and names(NAMESPACE_INDEX, "other") == []
        assert informer.store.index_values(OWNER_UID_INDEX) == ["rs2"]
        # A relist rebuilds the indexes from the new list.
        fake.put(_owned("c", "other", ("rs3", True)), notify=False)
        fake.compact()
        fake.break_watches(U)
        await wait_for(lambda: names(CONTROLLER_UID_INDEX, "rs3") == ["c"], TIMEOUT_S)
        assert names(NAMESPACE_INDEX, "other") == ["c"]
    finally:
        await informer.stop()


def test_index_by_node_name_and_unknown_indexes():
    store = Store()
    store.add_indexers({NODE_NAME_INDEX: index_by_node_name})
    bound, pending = core_pb2.Pod(), core_pb2.Pod()
    bound.metadata.name, bound.metadata.namespace, bound.spec.node_name = "p1", "d", "node-1"
    pending.metadata.name, pending.metadata.namespace = "p2", "d"
    store._put("d/p1", bound)
    store._put("d/p2", pending)
    assert store.by_index(NODE_NAME_INDEX, "node-1") == [bound]
    assert store.index_values(NODE_NAME_INDEX) == ["node-1"]
    with pytest.raises(KeyError, match="no indexer"):
        store.by_index("nope", "x")
    with pytest.raises(ValueError, match="exists already"):
        store.add_indexers({NODE_NAME_INDEX: index_by_node_name})


async def test_an_informer_under_loops_is_restarted_after_a_bug(fake, client):
    from kubemu.loops import Loops

    loops = Loops(backoff_s_base=0.01, backoff_s_max=0.01)
    informer = Informer(client, "cm", relist_backoff_s_max=0.05)
    fake.put(cm("a"))
    real_loop = informer._list_and_watch
    failures = []

    async def broken_once() -> None:  # a bug that escapes the informer's own retries
        if not failures:
            failures.append(1)
            raise AttributeError("a bug")
        await real_loop()

    informer._list_and_watch = broken_once
    informer.start(loops)
    try:
        await informer.wait_synced(TIMEOUT_S)
        status = loops.status()["informer:cm"]
        assert (status.failures, status.restarts) == (1, 1)
        assert status.last_error == "AttributeError: a bug"
        assert informer.get("default/a") is not None and loops.healthy
    finally:
        await loops.stop()


async def test_a_bug_inside_the_informer_is_not_retried_as_a_broken_stream(fake, client):
    """A bug (not a failed call) ends the informer's run, so that Loops logs it,
    reports it on health and restarts it, instead of a silent retry forever."""
    from kubemu.loops import Loops

    loops = Loops(backoff_s_base=0.01, backoff_s_max=0.01)
    informer = Informer(client, "cm", relist_backoff_s_max=0.05)
    fake.put(cm("a"))
    real_replace = informer._replace
    calls = []

    def replace_broken_once(items) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug in the informer")
        real_replace(items)

    informer._replace = replace_broken_once
    informer.start(loops)
    try:
        await informer.wait_synced(TIMEOUT_S)
        status = loops.status()["informer:cm"]
        assert status.failures == 1 and status.last_error == "KeyError: 'a bug in the informer'"
    finally:
        await loops.stop()
