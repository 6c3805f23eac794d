"""The echo controller against a real cluster (kubemu.testing's fixtures).

The controller runs in the test's event loop (the `controller` fixture),
watching the test's own namespace (kubemu_namespace), on the cluster the
session shares. The last
test has a cluster of its own (the `kubemu` marker): it kills that cluster's
apiserver in the middle of a reconcile.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import pytest

from kubemu.api import errors
from kubemu.api.v1 import core_pb2
from kubemu.client import Client
from kubemu.testing import API_ONLY

from echo_controller import LABEL, LABEL_VALUE, EchoController, echo_name

TIMEOUT_S = 30.0


async def start_controller(controller: EchoController) -> asyncio.Task[None]:
    """Run `controller` as a task of the test's event loop, once it has listed."""
    task = asyncio.create_task(controller.run(), name="echo-controller")
    await controller.informer.wait_synced(TIMEOUT_S)
    return task


async def stop_controller(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def controller(kubemu_cluster, kubemu_namespace):
    """The echo controller, watching the test's namespace, on a client of its own."""
    async with kubemu_cluster.new_client() as client:
        controller = EchoController(client, namespace=kubemu_namespace)
        task = await start_controller(controller)
        try:
            yield controller
        finally:
            await stop_controller(task)


def configmap(name: str, data: dict[str, str], *, labelled: bool = True) -> dict[str, Any]:
    """A ConfigMap manifest; labelled for the echo controller unless told not."""
    meta: dict[str, Any] = {"name": name}
    if labelled:
        meta["labels"] = {LABEL: LABEL_VALUE}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def echo_problem(source: Any, echo: Any | None) -> str | None:
    """What is wrong with `echo` as the echo of `source`; None when it is right."""
    name = echo_name(source.metadata.name)
    if echo is None:
        return f"{name}: missing"
    refs = [r for r in echo.metadata.owner_references if r.controller]
    if len(refs) != 1 or (refs[0].kind, refs[0].name, refs[0].uid) != (
            "ConfigMap", source.metadata.name, source.metadata.uid):
        return f"{name}: controller reference {list(echo.metadata.owner_references)}"
    if dict(echo.data) != dict(source.data):
        return f"{name}: data {dict(echo.data)}, want {dict(source.data)}"
    return None


async def get_or_none(client: Client, name: str, namespace: str) -> Any | None:
    try:
        return await client.get("configmaps", name, namespace)
    except errors.NotFound:
        return None


async def echoes_right(client: Client, namespace: str) -> bool:
    """Every labelled ConfigMap has its right echo (a predicate for wait_for:
    the AssertionError it raises until then is the last thing a timeout reports)."""
    items = (await client.list("configmaps", namespace)).items
    by_name = {cm.metadata.name: cm for cm in items}
    sources = [cm for cm in items if cm.metadata.labels.get(LABEL) == LABEL_VALUE]
    problems = [p for p in (echo_problem(s, by_name.get(echo_name(s.metadata.name)))
                            for s in sources) if p]
    assert sources and not problems, f"{len(problems)} of {len(sources)} wrong: {problems[:5]}"
    return True


async def test_a_labelled_configmap_gets_its_echo(kubemu_cluster, kubemu_client,
                                                  kubemu_namespace, controller):
    ns = kubemu_namespace
    [source] = await kubemu_cluster.apply(configmap("app", {"greeting": "hello"}), namespace=ns)

    echo = await kubemu_cluster.wait_for(lambda: get_or_none(kubemu_client, "app-echo", ns),
                                         TIMEOUT_S)

    assert dict(echo.data) == {"greeting": "hello"}
    [ref] = echo.metadata.owner_references
    assert (ref.api_version, ref.kind, ref.name, ref.uid, ref.controller,
            ref.block_owner_deletion) == ("v1", "ConfigMap", "app", source["metadata"]["uid"],
                                          True, True)
    assert LABEL not in echo.metadata.labels, "an echo is no source: it must not echo itself"


@pytest.mark.parametrize("new_data", [
    pytest.param({"greeting": "bonjour"}, id="value-changed"),
    pytest.param({"greeting": "hello", "name": "world"}, id="key-added"),
    pytest.param({}, id="all-keys-removed"),
])
async def test_a_change_of_the_source_reaches_the_echo(kubemu_cluster, kubemu_client,
                                                       kubemu_namespace, controller, new_data):
    ns = kubemu_namespace
    await kubemu_cluster.apply(configmap("app", {"greeting": "hello"}), namespace=ns)
    await kubemu_cluster.wait_for(lambda: echoes_right(kubemu_client, ns), TIMEOUT_S)

    source = await kubemu_client.get("configmaps", "app", ns)
    source.data.clear()
    source.data.update(new_data)
    await kubemu_client.update(source)

    async def echoed() -> bool:
        echo = await kubemu_client.get("configmaps", "app-echo", ns)
        assert dict(echo.data) == new_data, dict(echo.data)
        return True
    await kubemu_cluster.wait_for(echoed, TIMEOUT_S)


async def test_an_unlabelled_configmap_gets_no_echo(kubemu_cluster, kubemu_client,
                                                    kubemu_namespace, controller):
    ns = kubemu_namespace
    await kubemu_cluster.apply(configmap("plain", {"k": "v"}, labelled=False), namespace=ns)
    # Created after `plain`, in the same watch stream: once its echo exists,
    # the controller has seen `plain` too.
    await kubemu_cluster.apply(configmap("marker", {"k": "v"}), namespace=ns)
    await kubemu_cluster.wait_for(lambda: get_or_none(kubemu_client, "marker-echo", ns),
                                  TIMEOUT_S)

    assert await get_or_none(kubemu_client, "plain-echo", ns) is None


async def test_an_echo_deleted_by_hand_comes_back(kubemu_cluster, kubemu_client,
                                                  kubemu_namespace, controller):
    ns = kubemu_namespace
    await kubemu_cluster.apply(configmap("app", {"k": "v"}), namespace=ns)
    first = await kubemu_cluster.wait_for(lambda: get_or_none(kubemu_client, "app-echo", ns),
                                          TIMEOUT_S)

    await kubemu_client.delete("configmaps", "app-echo", ns)

    async def recreated() -> Any:
        echo = await get_or_none(kubemu_client, "app-echo", ns)
        return echo if echo is not None and echo.metadata.uid != first.metadata.uid else None
    echo = await kubemu_cluster.wait_for(recreated, TIMEOUT_S)
    assert dict(echo.data) == {"k": "v"}


async def test_removing_the_label_removes_the_echo(kubemu_cluster, kubemu_client,
                                                   kubemu_namespace, controller):
    ns = kubemu_namespace
    await kubemu_cluster.apply(configmap("app", {"k": "v"}), namespace=ns)
    await kubemu_cluster.wait_for(lambda: get_or_none(kubemu_client, "app-echo", ns), TIMEOUT_S)

    await kubemu_cluster.apply(configmap("app", {"k": "v"}, labelled=False), namespace=ns)

    async def gone() -> bool:
        return await get_or_none(kubemu_client, "app-echo", ns) is None
    await kubemu_cluster.wait_for(gone, TIMEOUT_S)


async def test_deleting_the_source_deletes_its_echo(kubemu_cluster, kubemu_client,
                                                    kubemu_namespace, controller):
    """The ownerReference at work: the controller-manager's garbage collector
    (in the shared cluster, see pyproject.toml) deletes the echo."""
    ns = kubemu_namespace
    await kubemu_cluster.apply(configmap("app", {"k": "v"}), namespace=ns)
    await kubemu_cluster.wait_for(lambda: get_or_none(kubemu_client, "app-echo", ns), TIMEOUT_S)

    await kubemu_client.delete("configmaps", "app", ns)

    async def gone() -> bool:
        return await get_or_none(kubemu_client, "app-echo", ns) is None
    await kubemu_cluster.wait_for(gone, TIMEOUT_S)


async def test_a_configmap_in_the_way_is_left_alone_and_reported(kubemu_cluster, kubemu_client,
                                                                 kubemu_namespace, controller):
    ns = kubemu_namespace
    await kubemu_cluster.apply(configmap("app-echo", {"mine": "yes"}, labelled=False),
                               namespace=ns)
    await kubemu_cluster.apply(configmap("app", {"k": "v"}), namespace=ns)

    async def warned() -> Any:
        events = (await kubemu_client.list("events", ns)).items
        return [e for e in events if e.reason == "ErrResourceExists"]
    [event] = await kubemu_cluster.wait_for(warned, TIMEOUT_S)

    assert (event.type, event.involved_object.name) == ("Warning", "app")
    assert event.message == ('Resource "app-echo" already exists and is not managed by '
                             'echo-controller')
    in_the_way = await kubemu_client.get("configmaps", "app-echo", ns)
    assert dict(in_the_way.data) == {"mine": "yes"}
    assert not in_the_way.metadata.owner_references


# --- the apiserver killed in the middle of a reconcile ---------------------------

class GatedClient(Client):
    """A Client whose ConfigMap writes wait until `release` is set: the test
    knows the controller is in the middle of a reconcile (it has read the
    cache and decided what to write) when `writing` is set. Writes that
    failed are kept in `failed`."""

    def __init__(self, address: str, **kwargs: Any):
        super().__init__(address, **kwargs)
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.failed: list[Exception] = []

    async def create(self, obj: Any, **kwargs: Any) -> Any:
        return await self._gated(super().create, obj, **kwargs)

    async def update(self, obj: Any, **kwargs: Any) -> Any:
        return await self._gated(super().update, obj, **kwargs)

    async def _gated(self, write: Any, obj: Any, **kwargs: Any) -> Any:
        if isinstance(obj, core_pb2.ConfigMap):
            self.writing.set()
            await self.release.wait()
        try:
            return await write(obj, **kwargs)
        except Exception as exc:
            self.failed.append(exc)
            raise


SOURCES = 30


@pytest.mark.kubemu(components=API_ONLY)
async def test_converges_although_the_apiserver_is_killed_mid_reconcile(
        kubemu_cluster, kubemu_client, kubemu_namespace):
    ns = kubemu_namespace
    async with GatedClient(kubemu_cluster.address, timeout_s=5.0) as gated:
        controller = EchoController(gated, namespace=ns, workers=2)
        task = await start_controller(controller)
        try:
            await kubemu_cluster.apply(
                [configmap(f"cm-{i}", {"n": str(i)}) for i in range(SOURCES)], namespace=ns)
            async with asyncio.timeout(TIMEOUT_S):
                await gated.writing.wait()  # a sync is about to write its echo

            await kubemu_cluster.kill("apiserver-0", keep_down=True)
            gated.release.set()
            # The held writes reach no apiserver: the syncs fail and are requeued.
            await kubemu_cluster.wait_for(lambda: gated.failed, TIMEOUT_S)
            assert isinstance(gated.failed[0], errors.Unavailable), gated.failed[0]
            assert controller.sync_errors >= 1
            await kubemu_cluster.start("apiserver-0")

            # Back up: change half of the sources; the controller's watch resumes.
            await kubemu_cluster.wait_for(lambda: kubemu_client.list("configmaps", ns),
                                          TIMEOUT_S)
            for i in range(0, SOURCES, 2):
                await kubemu_client.patch("configmaps", f"cm-{i}", ns,
                                          patch={"data": {"n": f"{i} changed"}})

            await kubemu_cluster.wait_for(lambda: echoes_right(kubemu_client, ns), 60.0)
        finally:
            await stop_controller(task)
    assert controller.dropped == 0, "no key should have run out of retries"


async def test_runs_as_a_process_and_stops_on_sigterm(kubemu_cluster, kubemu_client,
                                                      kubemu_namespace):
    """`python -m echo_controller`, as a deployment would run it."""
    ns = kubemu_namespace
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "echo_controller", "--apiserver", kubemu_cluster.address,
        "--namespace", ns, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await kubemu_cluster.apply(configmap("app", {"k": "v"}), namespace=ns)
        await kubemu_cluster.wait_for(lambda: echoes_right(kubemu_client, ns), TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT_S):
            output, _ = await proc.communicate()
    assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
    assert b"echo-controller started" in output
