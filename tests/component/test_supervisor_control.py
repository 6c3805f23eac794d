"""The supervisor's control API (deploy/control_server.py) through its client
(kubemu/control.py), on a cluster of stand-in components
(tests/component/fake_component.py): kill, stop/start, restart, pause/resume,
partition without links, health watching after start-up, nodes added and
removed (stand-ins for node processes: no apiserver, so no Node objects; the
real ones are tests/e2e/test_node_add_remove.py), errors."""
from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import stat

import grpc
import psutil
import pytest

from deploy import components as comp
from deploy import supervisor
from deploy.supervisor import Cluster
from kubemu import cluster_home
from kubemu.client.wait import wait_for
from kubemu.control import ControlError, ProcessInfo, SupervisorClient, SupervisorGone
from kubemu.supervisor.v1 import control_pb2, control_pb2_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
FAKE_COMPONENT = REPO / "tests" / "component" / "fake_component.py"
START_TIMEOUT_S = 60.0
WAIT_S = 30.0


def fake_kind(name: str, *, per_node: bool = False,
              depends_on: tuple[str, ...] = ()) -> comp.ComponentKind:
    def argv(launch: comp.Launch) -> list[str]:
        return [launch.python, str(FAKE_COMPONENT),
                "--listen", f"{launch.host}:{launch.ports['grpc']}",
                "--log-file", str(launch.log_path)]
    return comp.ComponentKind(name=name, ports=("grpc",), argv=argv, health=comp.grpc_health,
                              stop_grace_s=5.0, per_node=per_node, depends_on=depends_on)


def process_state(pid: int) -> str:
    try:
        return psutil.Process(pid).status()
    except psutil.Error:
        return "gone"


@pytest.fixture
async def cluster(tmp_path, monkeypatch):
    """A ready cluster of two stand-ins, 'alpha' and 'beta', health-watched every
    0.2 s (threshold 3), and a client of its control API."""
    monkeypatch.setattr(supervisor, "HEALTH_WATCH_INTERVAL_S", 0.2)
    lines: list[str] = []
    made = Cluster(tmp_path / "home", kinds=(fake_kind("alpha"), fake_kind("beta")),
                   node_kinds=(), progress=lines.append)
    await made.start(START_TIMEOUT_S)
    client = SupervisorClient(made.home, timeout_s=10.0)
    try:
        yield made, client, lines
    finally:
        await client.close()
        left = await made.shutdown(30.0)
        assert left == []


async def info(client: SupervisorClient, name: str) -> ProcessInfo:
    return next(p for p in await client.status() if p.name == name)


async def wait_info(client: SupervisorClient, name: str, predicate, what: str) -> ProcessInfo:
    async def check():
        p = await info(client, name)
        return p if predicate(p) else None
    return await wait_for(check, WAIT_S, message=f"{name}: {what}")


async def test_status_lists_every_process_and_the_socket_is_private(cluster):
    made, client, _ = cluster
    infos = await client.status()
    assert [(p.name, p.component, p.state, p.restarts, p.last_exit, p.paused, p.partitioned)
            for p in infos] == [("alpha-0", "alpha", "running", 0, "", False, False),
                                ("beta-0", "beta", "running", 0, "", False, False)]
    assert all(p.pid and p.uptime_s is not None and p.uptime_s >= 0 for p in infos), infos
    mode = (await asyncio.to_thread(os.stat, cluster_home.control_socket(made.home))).st_mode
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.kill(["nosuch"]), "kill: no process named 'nosuch' (processes: alpha-0, beta-0)"),
    (lambda c: c.stop(["alpha-0", "nosuch"]), "stop: no process named 'nosuch' (processes: alpha-0, beta-0)"),
    (lambda c: c.pause(["nosuch"]), "pause: no process named 'nosuch' (processes: alpha-0, beta-0)"),
    (lambda c: c.partition(["alpha-0"]), "partition: network links are not available"),
    (lambda c: c.heal(), "heal: network links are not available"),
    (lambda c: c.kill(["alpha-0"], signal=signal.SIGSTOP),
     "kill: signal: SIGSTOP stops or continues a process; use pause and resume"),
    (lambda c: c.kill(["beta-0"], signal=signal.SIGCONT),
     "kill: signal: SIGCONT stops or continues a process; use pause and resume"),
    (lambda c: c.add_node(), "add node: this cluster has no node components (kubelet, runtime, "
                             "kube-proxy) to start"),
    (lambda c: c.remove_node("node-1"), "remove node: no node named 'node-1' (nodes: none)"),
], ids=["kill-unknown", "stop-one-unknown", "pause-unknown", "partition-no-links", "heal-no-links",
        "kill-sigstop", "kill-sigcont", "add-node-without-node-kinds", "remove-unknown-node"])
async def test_bad_requests_say_why_and_change_nothing(cluster, call, message):
    made, client, _ = cluster
    if "links are not available" in message:
        made.links = None  # a cluster without link fronts (every real one has them)
    before = await client.status()
    with pytest.raises(ControlError) as caught:
        await call(client)
    assert str(caught.value).startswith(message), str(caught.value)
    assert [(p.pid, p.state) for p in await client.status()] == [(p.pid, p.state) for p in before]


async def test_kill_keep_down_stays_down_until_start(cluster):
    _, client, lines = cluster
    before = await info(client, "alpha-0")
    await client.kill(["alpha-0"], keep_down=True)
    down = await wait_info(client, "alpha-0", lambda p: p.state == "stopped", "stopped")
    assert (down.pid, down.last_exit, down.restarts) == (None, "signal KILL", 0)
    assert not await asyncio.to_thread(psutil.pid_exists, before.pid)
    # Held: past the first back-off (0.5 s) it has not come back on its own.
    await wait_for(lambda: any("alpha-0 stopped" in line and "down until started" in line
                               for line in lines), WAIT_S, message="stop reported")
    assert (await info(client, "beta-0")).state == "running"
    await client.start(["alpha-0"])
    up = await wait_info(client, "alpha-0", lambda p: p.state == "running", "running again")
    assert up.pid != before.pid and up.restarts == 1


async def test_kill_without_keep_down_is_restarted(cluster):
    _, client, _ = cluster
    before = await info(client, "beta-0")
    await client.kill(["beta-0"], signal=signal.SIGTERM)
    after = await wait_info(client, "beta-0", lambda p: p.restarts == 1 and p.state == "running",
                            "restarted")
    assert after.pid != before.pid
    assert after.last_exit == "code 0"  # the stand-in exits 0 on SIGTERM


async def test_stop_then_start_and_restart(cluster):
    _, client, _ = cluster
    first = await info(client, "alpha-0")
    await client.stop(["alpha-0"])
    stopped = await info(client, "alpha-0")   # stop returns once it is down
    assert stopped.pid is None and stopped.state in ("stopping", "stopped"), stopped
    await wait_info(client, "alpha-0", lambda p: p.state == "stopped", "stopped")
    await client.start(["alpha-0"])
    second = await wait_info(client, "alpha-0", lambda p: p.state == "running", "started")
    await client.restart(["alpha-0"])
    third = await wait_info(client, "alpha-0", lambda p: p.state == "running" and p.pid != second.pid,
                            "restarted")
    assert len({first.pid, second.pid, third.pid}) == 3
    assert third.restarts == 2


async def test_a_paused_process_is_not_restarted_and_resumes(cluster):
    _, client, _ = cluster
    before = await info(client, "alpha-0")
    # Longer than the health threshold (3 x 0.2 s) several times over.
    await client.pause(["alpha-0"], for_s=2.5)
    paused = await info(client, "alpha-0")
    assert (paused.state, paused.paused, paused.pid) == ("paused", True, before.pid)
    assert await asyncio.to_thread(process_state, before.pid) == psutil.STATUS_STOPPED
    resumed = await wait_info(client, "alpha-0", lambda p: not p.paused, "resumed")
    assert (resumed.state, resumed.pid, resumed.restarts) == ("running", before.pid, 0)
    assert await asyncio.to_thread(process_state, before.pid) != psutil.STATUS_STOPPED
    # And resume ends a pause at once.
    await client.pause(["beta-0"])
    await client.resume(["beta-0"])
    beta = await info(client, "beta-0")
    assert (beta.state, beta.paused, beta.restarts) == ("running", False, 0)


async def test_a_process_stopped_behind_the_supervisors_back_is_restarted(cluster):
    made, client, lines = cluster
    before = await info(client, "beta-0")
    await asyncio.to_thread(os.killpg, before.pid, signal.SIGSTOP)
    after = await wait_info(client, "beta-0", lambda p: p.restarts == 1 and p.state == "running",
                            "restarted after failing its health checks")
    assert after.pid != before.pid
    assert after.last_exit == "signal KILL"
    assert any("beta-0: health check failed 3 times in a row" in line for line in lines), lines


async def test_no_supervisor_is_supervisor_gone(tmp_path):
    async with SupervisorClient(tmp_path, timeout_s=2.0) as client:
        with pytest.raises(SupervisorGone, match="no supervisor answers"):
            await client.status()


@pytest.mark.parametrize(("reason", "expected"), [
    ("Health/Check: DEADLINE_EXCEEDED", True),
    ("Health/Check: UNAVAILABLE", True),
    ("GET /health: no answer within 1.0 s", True),
    ("GET /health: Connection refused", True),
    ("Health/Check: NOT_SERVING", False),
    ("GET /health: HTTP/1.0 503 Service Unavailable", False),
    ('GET /health: {"health":"false"}', False),
], ids=["grpc-deadline", "grpc-unavailable", "http-timeout", "refused", "not-serving",
        "http-503", "etcd-no-leader"])
def test_only_a_check_nobody_answers_counts_against_liveness(reason, expected):
    assert supervisor.unresponsive(reason) is expected


async def test_partition_goes_through_the_links_hook_and_heals(cluster):
    made, client, _ = cluster
    await client.partition(["alpha-0"])
    alpha = await info(client, "alpha-0")
    assert (alpha.state, alpha.partitioned) == ("partitioned", True)
    assert (await info(client, "beta-0")).state == "running"
    await client.heal()
    assert made.links.partitioned() == set()
    assert (await info(client, "alpha-0")).state == "running"
    await client.partition(["alpha-0", "beta-0"], for_s=0.5)
    assert made.links.partitioned() == {"alpha-0", "beta-0"}
    await wait_for(lambda: made.links.partitioned() == set(), WAIT_S, message="healed by itself")


async def test_a_process_that_is_down_cannot_be_killed_or_paused(cluster):
    made, client, _ = cluster
    await client.stop(["alpha-0"])
    await wait_info(client, "alpha-0", lambda p: p.state == "stopped", "stopped")
    for call, verb in [(lambda: client.kill(["alpha-0"]), "kill"),
                       (lambda: client.pause(["alpha-0"]), "pause")]:
        with pytest.raises(ControlError, match=f"^{verb}: alpha-0 is stopped, not running"):
            await call()
    await client.kill(["alpha-0"], keep_down=True)  # already down: stays down, no error
    assert (await info(client, "alpha-0")).state == "stopped"


@pytest.fixture
async def node_cluster(tmp_path):
    """A ready cluster of one stand-in control-plane process and one node of
    two stand-ins ('agent', then 'proxy' which depends on it), a client of its
    control API, and the raw stub (for status codes)."""
    made = Cluster(tmp_path / "home", nodes=1, kinds=(fake_kind("alpha"),),
                   node_kinds=(fake_kind("agent", per_node=True),
                               fake_kind("proxy", per_node=True, depends_on=("agent",))),
                   progress=lambda line: None)
    await made.start(START_TIMEOUT_S)
    client = SupervisorClient(made.home, timeout_s=10.0)
    channel = grpc.aio.insecure_channel(f"unix:{cluster_home.control_socket(made.home)}")
    try:
        yield made, client, control_pb2_grpc.SupervisorStub(channel)
    finally:
        await channel.close()
        await client.close()
        left = await made.shutdown(30.0)
        assert left == []


def names(infos: list[ProcessInfo]) -> list[str]:
    return [p.name for p in infos]


async def state_nodes(home: pathlib.Path) -> list[str]:
    state = await asyncio.to_thread(cluster_home.read_state, home)
    return state.nodes if state else []


async def test_nodes_added_and_removed_follow_in_status_and_state(node_cluster):
    made, client, _ = node_cluster
    first = {p.name: p.pid for p in await client.status() if p.node == "node-1"}
    assert list(first) == ["node-1/agent", "node-1/proxy"]

    assert await client.add_node(timeout_s=30.0) == "node-2"
    infos = await client.status()
    assert names(infos) == ["alpha-0", "node-1/agent", "node-1/proxy",
                            "node-2/agent", "node-2/proxy"]
    assert all(p.state == "running" and p.pid for p in infos), infos

    async def written(nodes: list[str]):
        return await state_nodes(made.home) == nodes
    await wait_for(lambda: written(["node-1", "node-2"]), WAIT_S, message="state.json")

    await client.remove_node("node-1", timeout_s=30.0)
    assert names(await client.status()) == ["alpha-0", "node-2/agent", "node-2/proxy"]
    for pid in first.values():
        assert not await asyncio.to_thread(psutil.pid_exists, pid), pid
    assert made.node_names == ["node-2"]
    await wait_for(lambda: written(["node-2"]), WAIT_S, message="state.json without node-1")
    # A removed node's name is never given again.
    assert await client.add_node(timeout_s=30.0) == "node-3"
    assert made.node_names == ["node-2", "node-3"]


@pytest.mark.parametrize(("call", "code", "message"), [
    (lambda stub: stub.RemoveNode(control_pb2.RemoveNodeRequest(name="node-9"), timeout=10.0),
     grpc.StatusCode.NOT_FOUND, "remove node: no node named 'node-9' (nodes: node-1)"),
    (lambda stub: stub.AddNode(control_pb2.AddNodeRequest(timeout_s=-1), timeout=10.0),
     grpc.StatusCode.INVALID_ARGUMENT, "add node: timeout: must be between 0 and 3600 s, got -1"),
], ids=["remove-unknown", "add-bad-timeout"])
async def test_node_requests_have_the_apis_status_codes(node_cluster, call, code, message):
    made, client, stub = node_cluster
    before = await client.status()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(stub)
    assert (caught.value.code(), caught.value.details()) == (code, message)
    assert [(p.name, p.pid) for p in await client.status()] == [(p.name, p.pid) for p in before]


async def test_while_a_node_is_added_other_changes_and_faults_are_refused(node_cluster):
    made, client, stub = node_cluster
    # The add is held before its first process starts until the checks are done.
    gate = asyncio.Event()
    start_level = made._start_level

    async def held_start_level(*args, **kwargs):
        await gate.wait()
        return await start_level(*args, **kwargs)
    made._start_level = held_start_level
    adding = asyncio.create_task(client.add_node(timeout_s=30.0))
    await wait_for(lambda: "node-2" in made.node_names, WAIT_S, message="the add under way")
    busy = "the supervisor is adding node node-2; try again once it is done"
    for call, message in [
            (stub.AddNode(control_pb2.AddNodeRequest(), timeout=10.0), f"add node: {busy}"),
            (stub.RemoveNode(control_pb2.RemoveNodeRequest(name="node-1"), timeout=10.0),
             f"remove node: {busy}"),
            (stub.Kill(control_pb2.KillRequest(names=["alpha-0"]), timeout=10.0),
             f"kill: {busy}")]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert (caught.value.code(), caught.value.details()) == (
            grpc.StatusCode.FAILED_PRECONDITION, message)
    gate.set()
    assert await adding == "node-2"
    await client.kill(["alpha-0"])  # free again


async def test_an_add_that_fails_or_is_given_up_leaves_nothing_behind(node_cluster):
    made, client, _ = node_cluster
    before = names(await client.status())
    start_level = made._start_level
    started: list[int] = []

    async def start_then(level, *, node, deadline, then):
        """The real level, its pids noted, then `then` (a failure, or a wait)."""
        await start_level(level, node=node, deadline=deadline)
        started.extend(p.pid for p in await client.status() if p.node == node and p.pid)
        await then(node)

    async def fail(node):
        raise supervisor.ClusterStartError(f"{node}/agent not ready: no answer")

    async def forever(node):
        await asyncio.Event().wait()  # the caller gives up meanwhile

    async def all_gone() -> bool:
        alive = [await asyncio.to_thread(psutil.pid_exists, pid) for pid in started]
        return bool(started) and not any(alive)

    made._start_level = lambda level, **kw: start_then(level, then=fail, **kw)
    with pytest.raises(ControlError, match="^add node: node-2/agent not ready: no answer; "
                                           "node-2 was removed again$"):
        await client.add_node(timeout_s=30.0)
    assert names(await client.status()) == before and made.node_names == ["node-1"]
    assert await all_gone(), started

    started.clear()
    made._start_level = lambda level, **kw: start_then(level, then=forever, **kw)
    adding = asyncio.create_task(client.add_node(timeout_s=30.0))
    await wait_for(lambda: started, WAIT_S, message="node-3's first process up")
    adding.cancel()
    await wait_for(lambda: made.node_names == ["node-1"] and not made._busy, WAIT_S,
                   message="node-3 removed again")
    assert names(await client.status()) == before
    await wait_for(all_gone, WAIT_S, message="node-3's processes gone")
