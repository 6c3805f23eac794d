"""Watches through the watch cache: replay, Expired, compaction, etcd restarts.

The first tests watch the worker's shared etcd + apiserver (kubemu.testing),
each in a namespace of its own; those that need a small watch cache or stop
etcd or the apiserver have processes of their own (tests/support.py)."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from kubemu.api import errors
from kubemu.client.informer import Informer
from kubemu.client.wait import wait_for
from tests.builders import configmap
from tests.support import APIServerProc


async def collect(client, ns, count, **kw):
    """The first `count` non-bookmark events of a watch, as (type, name, rv)."""
    seen = []
    async for event in client.watch("configmaps", ns, **kw):
        if event.type == "BOOKMARK":
            continue
        seen.append((event.type, event.object.metadata.name,
                     event.object.metadata.resource_version))
        if len(seen) == count:
            return seen
    return seen


async def test_watch_from_old_version_replays_exactly_the_missed_events(api, ns):
    start = await api.create(configmap("w0", ns))
    expected = []
    a = await api.create(configmap("w1", ns))
    expected.append(("ADDED", "w1", a.metadata.resource_version))
    a.data["k"] = "v"
    b = await api.update(a)
    expected.append(("MODIFIED", "w1", b.metadata.resource_version))
    c = await api.delete("configmaps", "w0", ns)
    assert c.deleted
    d = await api.create(configmap("w2", ns))
    expected.append(("DELETED", "w0", None))
    expected.append(("ADDED", "w2", d.metadata.resource_version))

    seen = await asyncio.wait_for(
        collect(api, ns, 4, resource_version=start.metadata.resource_version), 10)
    assert [(t, n) for t, n, _ in seen] == [(t, n) for t, n, _ in expected]
    assert [rv for _, _, rv in seen][:2] == [expected[0][2], expected[1][2]]
    assert seen[3][2] == expected[3][2]
    # The versions are increasing: nothing replayed twice, nothing out of order.
    rvs = [int(rv) for _, _, rv in seen]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4


async def test_watch_from_zero_lists_then_follows(api, ns):
    await api.create(configmap("z1", ns))
    async with contextlib.aclosing(api.watch("configmaps", ns,
                                             resource_version="0")) as events:
        first = await asyncio.wait_for(anext(events), 10)
        assert (first.type, first.object.metadata.name) == ("ADDED", "z1")
        # The watch is open and has listed: z2 can only come as a change.
        await api.create(configmap("z2", ns))
        second = await asyncio.wait_for(anext(events), 10)
        assert (second.type, second.object.metadata.name) == ("ADDED", "z2")


async def test_selector_transitions_become_added_and_deleted(api, ns):
    made = await api.create(configmap("sel", ns))
    task = asyncio.create_task(collect(api, ns, 2, resource_version=made.metadata.resource_version,
                                       label_selector="team=a"))
    await api.patch("configmaps", "sel", ns, patch={"metadata": {"labels": {"team": "a"}}})
    await api.patch("configmaps", "sel", ns, patch={"metadata": {"labels": {"team": "b"}}})
    seen = await asyncio.wait_for(task, 10)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "sel"), ("DELETED", "sel")]


async def test_bookmarks_carry_the_current_version(api, ns):
    made = await api.create(configmap("bm", ns))
    async for event in api.watch("configmaps", ns, allow_bookmarks=True,
                                 resource_version=made.metadata.resource_version):
        assert event.type == "BOOKMARK"
        assert int(event.object.metadata.resource_version) >= int(made.metadata.resource_version)
        break


@pytest.fixture
def small_cache_apiserver(tmp_path, etcd):
    server = APIServerProc(tmp_path, etcd.endpoint, "--watch-cache-size", "20",
                           "--compaction-interval-s", "0.5",
                           "--bookmark-interval-s", "60").start()
    try:
        yield server
    finally:
        server.stop()


async def test_expired_after_compaction_and_the_informer_relists(small_cache_apiserver, etcd):
    from kubemu.client.clientset import Client

    client = Client(small_cache_apiserver.address)
    try:
        old = await client.create(configmap("e0"))
        # Short watch streams: the informer re-watches from its last version often.
        informer = Informer(client, "configmaps", "default", watch_timeout_s=0.5)
        informer.start()
        await asyncio.wait_for(informer.has_synced.wait(), 10)
        for i in range(1, 5):
            await client.create(configmap(f"e{i}"))

        # Wait until etcd has been compacted past the old version.
        async def compacted():
            from apiserver.storage import EtcdStore
            store = EtcdStore(etcd.endpoint)
            await store.connect()
            try:
                await store.range(b"/registry/", b"/registry0", limit=1,
                                  revision=int(old.metadata.resource_version))
                return False
            except errors.Expired:
                return True
            finally:
                await store.close()
        await wait_for(compacted, 15)
        await client.create(configmap("e5"))  # an event after compaction

        with pytest.raises(errors.Expired):
            async for _ in client.watch("configmaps", "default",
                                        resource_version=old.metadata.resource_version):
                pass

        # An informer whose last version is that old (as if it had been cut off
        # since) gets Expired on its next re-watch, relists and converges. The
        # old version is set again until it relists: an event or bookmark still
        # arriving on its current stream moves its version on (under load, e5's
        # event came after a single assignment and no re-watch ever expired).
        relists_before = informer.relists

        def relisted() -> bool:
            if informer.relists > relists_before:
                return True
            informer.resource_version = old.metadata.resource_version
            return False
        await wait_for(relisted, 15)
        await wait_for(lambda: sorted(k.split("/")[1] for k in informer.store.keys())
                       == [f"e{i}" for i in range(6)], 10)
        await informer.stop()
    finally:
        await client.close()


async def test_etcd_restart_mid_watch_loses_no_event(tmp_path, etcd, apiserver, client):
    made = await client.create(configmap("r0"))
    seen: list[str] = []

    async def watch():
        rv = made.metadata.resource_version
        while True:  # a client re-watches from the last version it saw
            try:
                async for event in client.watch("configmaps", "default", resource_version=rv):
                    if event.type != "BOOKMARK":
                        seen.append(event.object.metadata.name)
                    rv = event.object.metadata.resource_version
            except (errors.Unavailable, errors.Timeout):
                await asyncio.sleep(0.05)  # a client's re-watch backoff

    task = asyncio.create_task(watch())
    try:
        for i in range(1, 6):
            await client.create(configmap(f"r{i}"))
        await wait_for(lambda: len(seen) == 5, 10)

        await etcd.akill()
        # Store unreachable: UNAVAILABLE, or a timeout when the etcd connection
        # was still being re-established when the call came in.
        with pytest.raises((errors.Unavailable, errors.Timeout)):
            await client.create(configmap("during-outage"))
        await etcd.astart()

        async def create(name):
            try:
                await client.create(configmap(name))
                return True
            except errors.AlreadyExists:  # an earlier attempt landed after all
                return True
            except (errors.Unavailable, errors.Timeout):
                return False
        await wait_for(lambda: create("r6"), 30)
        for i in range(7, 11):
            await client.create(configmap(f"r{i}"))
        await wait_for(lambda: len(seen) >= 10, 15)
        assert seen == [f"r{i}" for i in range(1, 11)]
    finally:
        task.cancel()


async def test_a_broken_store_watch_is_restarted_and_its_watches_lose_nothing(tmp_path, etcd):
    """An injected failure in the pods cache's etcd watch: health says NOT_SERVING
    while it is down; once it is back, a watch opened before it sees what
    happened meanwhile."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from kubemu.client.clientset import Client
    from tests.builders import make_pod

    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    server = await APIServerProc(tmp_path, etcd.endpoint, "--fault-dir", str(fault_dir),
                                 "--bookmark-interval-s", "0.2").astart()
    client = Client(server.address)
    channel = grpc.aio.insecure_channel(server.address)
    health = health_pb2_grpc.HealthStub(channel)

    async def status():
        response = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    seen: list[tuple[str, str]] = []

    async def watch(rv):
        async for event in client.watch("pods", "default", resource_version=rv):
            if event.type != "BOOKMARK":
                seen.append((event.type, event.object.metadata.name))

    task = None
    try:
        first = await client.create(make_pod("p0").build())
        task = asyncio.create_task(watch(first.metadata.resource_version))
        await client.create(make_pod("p1").build())
        await wait_for(lambda: seen == [("ADDED", "p1")], 10)

        (fault_dir / "etcd-watch-pods").touch()
        await wait_for(lambda: _is(status, "NOT_SERVING"), 15)
        await client.create(make_pod("p2").build())
        assert seen == [("ADDED", "p1")]  # the cache is not following etcd
        (fault_dir / "etcd-watch-pods").unlink()
        await wait_for(lambda: _is(status, "SERVING"), 30)
        await wait_for(lambda: seen == [("ADDED", "p1"), ("ADDED", "p2")], 10)
        assert not task.done()  # the watch stayed open throughout
        log_text = server.proc.log_path.read_text(errors="replace")
        assert "injected fault 'etcd-watch-pods'" in log_text
    finally:
        if task is not None:
            task.cancel()
        await channel.close()
        await client.close()
        await server.astop()


async def _is(status, wanted: str) -> bool:
    return await status() == wanted
