"""The supervisor: a real etcd and a real apiserver started, restarted and stopped.

Each test has its own KUBEMU_HOME under tmp_path and free ports; teardown stops
the cluster and kills whatever of it is still alive, even when the test
failed. A stand-in component (tests/component/fake_component.py) plays a
component that misbehaves on purpose. Scans of the process table are
blocking: async tests run them in a thread.
"""
from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import json
import os
import pathlib
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading

import psutil
import pytest

from deploy import components as comp
from deploy.supervisor import (Cluster, ClusterAlreadyRunning, ClusterStartError, PortAllocator,
                               ProcessStatus, ProcState, find_home_processes, kill_processes,
                               restart_backoff)
from kubemu import cluster_home
from kubemu.client.clientset import Client
from kubemu.client.config import load_cluster_config
from kubemu.client.wait import wait_for, wait_for_sync
from tests.e2e.test_kubelet import (busybox, control_plane, create_pod, fast_node_kinds, pod_doc,
                                    running, wait_pod)

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[2]
FAKE_COMPONENT = REPO / "tests" / "component" / "fake_component.py"
START_TIMEOUT_S = 60.0
RESTART_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 150.0


# --- helpers ------------------------------------------------------------

def by_component(statuses: list[ProcessStatus], component: str) -> ProcessStatus:
    matches = [s for s in statuses if s.component == component]
    assert len(matches) == 1, f"expected one {component} in {statuses}"
    return matches[0]


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by init) is not one."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def fake_kind(name: str = "fake", *flags: str, **changes) -> comp.ComponentKind:
    def argv(launch: comp.Launch) -> list[str]:
        return [launch.python, str(FAKE_COMPONENT),
                "--listen", f"{launch.host}:{launch.ports['grpc']}",
                "--log-file", str(launch.log_path), *flags]
    kind = comp.ComponentKind(name=name, ports=("grpc",), argv=argv, health=comp.grpc_health,
                              stop_grace_s=5.0)
    return dataclasses.replace(kind, **changes)


def fake_apiserver(*flags: str, **changes) -> comp.ComponentKind:
    """The stand-in under the apiserver's name, after etcd."""
    return fake_kind(comp.APISERVER, *flags, depends_on=(comp.ETCD,), **changes)


def cleanup_home(home: pathlib.Path) -> None:
    """Last resort after a test: kill whatever of the home is still alive. Blocking."""
    leftovers = find_home_processes(home.resolve(), by_cmdline=False)
    if leftovers:
        kill_processes(leftovers)


def umask_of(pid: int) -> int:
    """A live process's umask (Linux >= 4.7)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise AssertionError(f"no Umask line in /proc/{pid}/status")


# Open on purpose, for the users a container runs as (behind 0700 directories,
# so still private on the host): a container's termination-log file (0666, as
# the kubelet makes it), and in the namespaces mode an image's program
# wrappers and the pod's /dev/shm (1777).
FOR_CONTAINERS = ("nodes/*/kubelet/pods/*/containers/*/*-termination-log",
                  "nodes/*/runtime/images/*/bin", "nodes/*/runtime/images/*/bin/*",
                  "nodes/*/runtime/pods/*/shm")


def exposed(root: pathlib.Path) -> dict[str, str]:
    """Every directory, file and socket under root (root included) that its group
    or others may read, write or enter, but FOR_CONTAINERS: path relative to
    root -> mode (symlinks have no modes of their own)."""
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for path in [pathlib.Path(dirpath), *(pathlib.Path(dirpath) / f for f in files)]:
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue  # replaced meanwhile (an atomic write's temporary file)
            relative = path.relative_to(root)
            if any(fnmatch.fnmatchcase(str(relative), p) for p in FOR_CONTAINERS):
                continue
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found[str(relative)] = stat.filemode(mode)
    return found


@pytest.fixture
async def make_cluster(tmp_path):
    """Cluster factory: make(**kwargs) -> (cluster, progress lines); all shut down at the end."""
    made: list[Cluster] = []

    def make(home: pathlib.Path | None = None, **kwargs) -> tuple[Cluster, list[str]]:
        lines: list[str] = []
        cluster = Cluster(home or tmp_path / f"home{len(made)}", progress=lines.append, **kwargs)
        made.append(cluster)
        return cluster, lines

    try:
        yield make
    finally:
        for cluster in made:
            try:
                await cluster.shutdown(30.0)
            finally:
                await asyncio.to_thread(cleanup_home, cluster.home)


# --- pure pieces --------------------------------------------------------

@pytest.mark.parametrize(("failures", "delay_s"), [
    (1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (1000, 30.0),
], ids=["first", "second", "third", "sixth", "capped", "far-past-cap"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_restart_backoff_doubles_up_to_the_cap_with_jitter(failures, delay_s, seed):
    backoff = restart_backoff(random.Random(seed))
    delays = [backoff.next_s() for _ in range(failures)]
    # Equal jitter (kubemu.backoff.Exponential): half fixed, half random.
    assert delay_s / 2 <= delays[-1] <= delay_s
    backoff.reset()
    assert 0.25 <= backoff.next_s() <= 0.5


def test_start_levels_follow_dependencies():
    levels = comp.start_levels([comp.APISERVER_KIND, comp.ETCD_KIND, fake_kind("other")])
    assert [[k.name for k in level] for level in levels] == [["etcd", "other"], ["apiserver"]]


@pytest.mark.parametrize(("kinds", "message"), [
    ([fake_kind("a", depends_on=("missing",))], "a depends on unknown component 'missing'"),
    ([fake_kind("a", depends_on=("b",)), fake_kind("b", depends_on=("a",))],
     "dependency cycle among: a, b"),
], ids=["unknown-dependency", "cycle"])
def test_start_levels_reject_bad_tables(kinds, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        comp.start_levels(kinds)


@pytest.mark.parametrize(("environ", "expected"), [
    ({"KUBEMU_ETCD": "/bin/true"}, "/bin/true"),
    ({"KUBEMU_ETCD": "/nonexistent/etcd"}, comp.BinaryNotFound),
], ids=["from-env", "env-not-executable"])
def test_find_etcd_prefers_the_environment(environ, expected):
    if expected is comp.BinaryNotFound:
        with pytest.raises(comp.BinaryNotFound, match="KUBEMU_ETCD=/nonexistent/etcd"):
            comp.find_etcd(environ=environ)
    else:
        assert comp.find_etcd(environ=environ) == expected


def test_find_etcd_falls_back_to_the_venv(tmp_path):
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    found = comp.find_etcd(environ={"PATH": "/nonexistent"}, python=str(tmp_path / "python"))
    assert found == str(tmp_path / "etcd")


# --- a real cluster -----------------------------------------------------

@pytest.mark.parametrize("victim", ["apiserver", "etcd"])
async def test_cluster_starts_restarts_a_killed_process_and_stops(make_cluster, victim):
    cluster, lines = make_cluster(schedulers=0, controller_managers=0)
    await cluster.start(START_TIMEOUT_S)

    assert re.fullmatch(r"etcd-0 \d+\.\d+\.\d+ ready in \d+\.\d s \(127\.0\.0\.1:\d+\)", lines[0]), lines
    assert re.fullmatch(r"apiserver-0 ready in \d+\.\d s \(127\.0\.0\.1:\d+\)", lines[1]), lines
    assert re.fullmatch(rf"cluster ready in \d+\.\d s — KUBEMU_HOME={re.escape(str(cluster.home))}",
                        lines[2]), lines
    statuses = cluster.status()
    assert [(s.component, s.node, s.state, s.restarts) for s in statuses] == [
        ("etcd", "", "running", 0), ("apiserver", "", "running", 0)]
    config = load_cluster_config(cluster.home)
    # kubeconfig's apiserver is the supervisor's front over the apiservers (deploy/links.py).
    assert config.apiserver == cluster.address(comp.APISERVER) != by_component(statuses, "apiserver").address
    assert config.apiservers == [by_component(statuses, "apiserver").address]
    assert config.etcd == [by_component(statuses, "etcd").address]
    state = json.loads((cluster.home / "state.json").read_text())
    assert state["state"] == "ready"
    assert [(p["component"], p["pid"]) for p in state["processes"]] == [
        ("etcd", by_component(statuses, "etcd").pid),
        ("apiserver", by_component(statuses, "apiserver").pid)]
    assert (cluster.home / "ready").exists()
    await cluster.wait_healthy(10.0)

    before = by_component(statuses, victim)
    os.kill(before.pid, signal.SIGKILL)
    after = await wait_for(
        lambda: (s := by_component(cluster.status(), victim)).restarts == 1
        and s.state == ProcState.RUNNING and s,
        RESTART_TIMEOUT_S, message=f"{victim} restarted")
    assert after.pid != before.pid
    assert after.address == before.address
    assert not pid_alive(before.pid)
    await cluster.wait_healthy(RESTART_TIMEOUT_S)

    def restarts_recorded() -> dict[str, int]:
        state = json.loads((cluster.home / "state.json").read_text())
        return {p["component"]: p["restarts"] for p in state["processes"]}
    # state.json is written by a writer task, shortly after the change.
    await wait_for(lambda: restarts_recorded()[victim] == 1, RESTART_TIMEOUT_S,
                   message="restart recorded in state.json")

    pids = [s.pid for s in cluster.status()]
    # Every child starts with a private umask (a second line of defence).
    assert {pid: oct(umask_of(pid)) for pid in pids} == {pid: "0o77" for pid in pids}
    left = await cluster.shutdown(30.0)
    assert left == []
    assert [p for p in pids if pid_alive(p)] == []
    await asyncio.to_thread(cluster.assert_no_processes)
    assert [s.state for s in cluster.status()] == ["stopped", "stopped"]
    assert lines[-1].endswith("no process left"), lines
    assert not (cluster.home / "ready").exists()
    assert not (cluster.home / "supervisor.pid").exists()
    assert json.loads((cluster.home / "state.json").read_text())["state"] == "stopped"


async def test_no_restart_leaves_a_dead_process_dead(make_cluster):
    cluster, lines = make_cluster(restart=False)
    await cluster.start(START_TIMEOUT_S)
    apiserver = by_component(cluster.status(), "apiserver")
    os.kill(apiserver.pid, signal.SIGKILL)
    await wait_for(lambda: by_component(cluster.status(), "apiserver").state == ProcState.EXITED,
                   RESTART_TIMEOUT_S, message="apiserver marked exited")
    assert by_component(cluster.status(), "apiserver").restarts == 0
    assert by_component(cluster.status(), "etcd").state == ProcState.RUNNING
    with pytest.raises(TimeoutError, match="apiserver-0: exited"):
        await cluster.wait_healthy(0.5)
    assert await cluster.shutdown(30.0) == []


class TakenFirst(PortAllocator):
    """Hands out `taken` (a port someone else listens on) at the n-th pick."""

    def __init__(self, taken: int, at_pick: int):
        super().__init__()
        self.taken = taken
        self.at_pick = at_pick
        self.picks = 0

    def pick(self, host: str) -> int:
        self.picks += 1
        return self.taken if self.picks == self.at_pick else super().pick(host)


@pytest.mark.parametrize(("victim", "at_pick"), [("etcd", 1), ("apiserver", 3)],
                         ids=["etcd-client-port", "apiserver-port"])
async def test_a_start_that_loses_its_port_is_retried_on_new_ports(make_cluster, victim, at_pick):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        cluster, _ = make_cluster(ports=TakenFirst(taken, at_pick))
        await cluster.start(START_TIMEOUT_S)
    status = by_component(cluster.status(), victim)
    assert status.state == ProcState.RUNNING and status.restarts == 0
    assert status.address != f"127.0.0.1:{taken}"
    log_text = (cluster.home / "logs" / f"{victim}-0.log").read_text(errors="replace")
    assert re.search(r"address already in use|Failed to bind", log_text, re.I), log_text[-2000:]
    await cluster.wait_healthy(10.0)


@pytest.mark.parametrize(("apiserver", "message"), [
    (fake_apiserver("--exit-code", "7"),
     r"apiserver-0 exited with code 7 before it was ready: .*failing on purpose"),
    (fake_apiserver("--not-serving", ready_timeout_s=1.5),
     r"apiserver-0 not ready after \d+\.\d s: Health/Check: NOT_SERVING"),
], ids=["exits-early", "never-serving"])
async def test_a_failed_start_says_why_and_leaves_no_process(make_cluster, apiserver, message):
    cluster, lines = make_cluster(kinds=(comp.ETCD_KIND, apiserver))
    with pytest.raises(ClusterStartError, match=message):
        await cluster.start(START_TIMEOUT_S)
    state = json.loads((cluster.home / "state.json").read_text())
    assert state["state"] == "failed"
    assert re.search(message, state["reason"])
    assert re.search(message, (cluster.home / "failed").read_text())
    assert not (cluster.home / "ready").exists()
    assert [s.state for s in cluster.status()] == ["stopped", "stopped"]
    assert [s.pid for s in cluster.status() if s.pid and pid_alive(s.pid)] == []
    await asyncio.to_thread(cluster.assert_no_processes)


async def test_stop_kills_a_process_that_ignores_sigterm(make_cluster):
    stubborn = fake_kind("stubborn", "--ignore-sigterm", stop_grace_s=0.5)
    cluster, lines = make_cluster(kinds=(stubborn,))
    await cluster.start(START_TIMEOUT_S)
    pid = cluster.status()[0].pid
    assert await cluster.shutdown(30.0) == []
    assert not pid_alive(pid)
    await asyncio.to_thread(cluster.assert_no_processes)


async def test_one_supervisor_per_home(make_cluster, tmp_path):
    home = tmp_path / "shared"
    first, _ = make_cluster(home, kinds=(fake_kind(),))
    await first.start(START_TIMEOUT_S)
    second, _ = make_cluster(home, kinds=(fake_kind(),))
    with pytest.raises(ClusterAlreadyRunning, match=f"already running in .*pid {os.getpid()}"):
        await second.start(START_TIMEOUT_S)
    # The refused one touched nothing: the first still runs and owns the files.
    assert await second.shutdown(5.0) == []
    assert (first.home / "supervisor.pid").read_text().strip() == str(os.getpid())
    await first.wait_healthy(10.0)
    assert json.loads((home / "state.json").read_text())["state"] == "ready"


async def test_blocking_calls_stay_off_the_event_loop(make_cluster, monkeypatch):
    """Scans of the process table, kills that wait, the network claim (a
    machine-wide lock) and file writes run in threads, never on the loop: through
    a start with a node, a restart and a shutdown."""
    from deploy import supervisor
    from kubemu import fileutil

    on_loop: list[str] = []
    off_loop: set[str] = set()

    def guarded(module, name: str) -> None:
        original = getattr(module, name)

        def call(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop.append(name)
            except RuntimeError:
                off_loop.add(name)
            return original(*args, **kwargs)
        monkeypatch.setattr(module, name, call)

    for module, name in [(supervisor, "find_home_processes"), (supervisor, "kill_processes"),
                         (supervisor, "write_cluster_config"), (comp, "network_block"),
                         (cluster_home, "container_processes"), (cluster_home, "write_state"),
                         (fileutil, "atomic_write"), (psutil.Process, "net_connections")]:
        guarded(module, name)
    cluster, _ = make_cluster(nodes=1, kinds=control_plane(), node_kinds=fast_node_kinds())
    await cluster.start(START_TIMEOUT_S)
    kubelet = by_component(cluster.status(), comp.KUBELET)
    os.kill(kubelet.pid, signal.SIGKILL)
    await wait_for(lambda: by_component(cluster.status(), comp.KUBELET).restarts == 1
                   and by_component(cluster.status(), comp.KUBELET).state == ProcState.RUNNING,
                   RESTART_TIMEOUT_S, message="kubelet restarted")
    assert await cluster.shutdown(60.0) == []
    assert on_loop == []
    assert {"find_home_processes", "write_cluster_config", "network_block",
            "container_processes", "write_state", "atomic_write",
            "net_connections"} <= off_loop


# --- the kubemu command -------------------------------------------------

def kubemu(home: pathlib.Path, *args: str, timeout_s: float = CLI_TIMEOUT_S,
           stdin: str | None = None) -> subprocess.CompletedProcess:
    """`kubemu ...` as a user with the common umask 022 runs it."""
    env = dict(os.environ, KUBEMU_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout_s,
                          cwd=REPO, umask=0o022)


def status_rows(output: str) -> dict[str, dict[str, str]]:
    lines = output.strip().splitlines()
    header = lines[0].split()
    assert header == ["NAME", "STATE", "PID", "RESTARTS", "LAST-EXIT", "UPTIME", "ADDRESS"], lines
    rows = [dict(zip(header, line.split())) for line in lines[1:] if not line.startswith("node ")]
    return {row["NAME"]: row for row in rows}


def test_cli_up_status_down(tmp_path):
    home = tmp_path / "home"
    try:
        up = kubemu(home, "up", "--detach", "--nodes", "0")
        assert up.returncode == 0, up.stdout + up.stderr
        # Under a 022 umask, the home and all in it are private to the user.
        assert exposed(home) == {}
        state = json.loads((home / "state.json").read_text())
        pids = [state["supervisor"]["pid"], *(p["pid"] for p in state["processes"])]
        assert {pid: oct(umask_of(pid)) for pid in pids} == {pid: "0o77" for pid in pids}
        assert re.search(r"^etcd-0 \S+ ready in \d+\.\d s \(127\.0\.0\.1:\d+\)$", up.stdout, re.M), up.stdout
        assert re.search(r"^apiserver-0 ready in \d+\.\d s \(127\.0\.0\.1:\d+\)$", up.stdout, re.M), up.stdout
        assert re.search(r"^cluster ready in \d+\.\d s — KUBEMU_HOME=", up.stdout, re.M), up.stdout

        again = kubemu(home, "up", "--detach")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "cluster already running" in again.stdout

        status = kubemu(home, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        rows = status_rows(status.stdout)
        assert set(rows) == {"supervisor", "etcd-0", "apiserver-0", "scheduler-0",
                             "controller-manager-0"}
        assert rows["supervisor"]["STATE"] == "ready"
        config = load_cluster_config(home)
        for component, address in [("etcd-0", config.etcd[0]), ("apiserver-0", config.apiservers[0])]:
            assert rows[component]["STATE"] == "running"
            assert rows[component]["RESTARTS"] == "0"
            assert rows[component]["ADDRESS"] == address
            assert pid_alive(int(rows[component]["PID"]))
        pids = [int(row["PID"]) for row in rows.values()]

        down = kubemu(home, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "cluster stopped; no process left" in down.stdout
        assert [p for p in pids if pid_alive(p)] == []
        assert find_home_processes(home.resolve()) == []

        after = kubemu(home, "status")
        assert after.returncode == 1 and "no cluster running" in after.stderr, after
        again = kubemu(home, "down")
        assert again.returncode == 0 and "no process left" in again.stdout, again
    finally:
        kubemu(home, "down", timeout_s=120.0)
        cleanup_home(home)
        wait_for_sync(lambda: find_home_processes(home.resolve()) == [], 10.0,
                      message="no process of the home left")


def test_cli_cleans_up_after_a_killed_supervisor(tmp_path):
    home = tmp_path / "home"
    try:
        up = kubemu(home, "up", "--detach", "--nodes", "0")
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((home / "state.json").read_text())
        orphans = [p["pid"] for p in state["processes"]]
        os.kill(state["supervisor"]["pid"], signal.SIGKILL)
        wait_for_sync(lambda: not pid_alive(state["supervisor"]["pid"]), 10.0,
                      message="supervisor gone")

        # Its reaper stops what it started (etcd, a Go binary, too).
        wait_for_sync(lambda: [p for p in orphans if pid_alive(p)] == [], 30.0,
                      message="the dead supervisor's processes gone")
        status = kubemu(home, "status")
        assert status.returncode == 1, status.stdout + status.stderr
        rows = status_rows(status.stdout)
        assert rows["supervisor"]["STATE"] == "dead"
        assert {rows[c]["STATE"] for c in ("etcd-0", "apiserver-0")} == {"dead"}

        # A new supervisor first kills what the old one left, then starts afresh.
        again = kubemu(home, "up", "--detach", "--nodes", "0")
        assert again.returncode == 0, again.stdout + again.stderr
        assert [p for p in orphans if pid_alive(p)] == []
        assert kubemu(home, "status").returncode == 0

        down = kubemu(home, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "cluster stopped; no process left" in down.stdout
        assert find_home_processes(home.resolve()) == []
    finally:
        kubemu(home, "down", timeout_s=120.0)
        cleanup_home(home)
        wait_for_sync(lambda: find_home_processes(home.resolve()) == [], 10.0,
                      message="no process of the home left")


# --- the home's files, and pods -----------------------------------------

NODE = "node-1"
POD_TIMEOUT_S = 60.0


class LoopThread:
    """An event loop in a thread, for a cluster shared by a module's sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cluster", daemon=True)
        self.thread.start()

    def run(self, coro, timeout_s: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def umask_022_cluster(tmp_path_factory):
    """A cluster with one node and a running pod, started under the common umask
    022 and with its children inheriting it (child_umask=None), so that nothing
    in the home can owe its mode to the umask."""
    home = tmp_path_factory.mktemp("modes") / "home"
    previous = os.umask(0o022)
    runner = LoopThread()
    cluster = Cluster(home, nodes=1, kinds=control_plane(), node_kinds=fast_node_kinds(),
                      child_umask=None, progress=lambda line: None)

    async def start_with_a_pod() -> None:
        await cluster.start(START_TIMEOUT_S)
        async with Client(cluster.address(comp.APISERVER), timeout_s=10.0) as api:
            await create_pod(api, pod_doc("writer", "default",
                                          [busybox("echo hello; exec sleep 3600")]))
            await wait_pod(api, "default", "writer", running, POD_TIMEOUT_S)

    try:
        runner.run(start_with_a_pod(), START_TIMEOUT_S + POD_TIMEOUT_S)
        yield cluster
    finally:
        try:
            runner.run(cluster.shutdown(60.0), 90.0)
        finally:
            runner.close()
            os.umask(previous)
            cleanup_home(home)


def _in_a_node(path: str) -> bool:
    """Made by the node's kubelet or runtime, not by the supervisor (which makes
    nodes/ and nodes/<node>/ themselves, and volumes/)."""
    parts = pathlib.PurePath(path).parts
    return (parts[:1] == ("nodes",) and len(parts) > 2) or (parts[:1] == ("volumes",)
                                                            and len(parts) > 1)


@pytest.mark.parametrize("part", ["supervisor", "node"])
def test_nothing_in_the_home_is_open_to_group_or_others(umask_022_cluster, part):
    home = umask_022_cluster.home
    assert {home / "state.json", home / "kubeconfig.json", home / "supervisor.lock",
            home / "ready", home / "logs" / "etcd-0.log", home / "etcd" / "etcd-0",
            home / "nodes" / NODE} <= set(home.rglob("*"))  # the walk sees the cluster's files
    found = exposed(home)
    if part == "supervisor":
        assert {p: m for p, m in found.items() if not _in_a_node(p)} == {}
    else:
        assert {p: m for p, m in found.items() if _in_a_node(p)} == {}


# A pod whose processes spread over the container's process group, another
# group in its session, and a session of their own.
SPREADING_POD = (
    "import subprocess, time\n"
    "subprocess.Popen(['sleep', '3600'])\n"
    "subprocess.Popen(['sleep', '3601'], process_group=0)\n"
    "subprocess.Popen(['sleep', '3602'], start_new_session=True)\n"
    "time.sleep(3600)\n")
SPREADING_POD_PROCESSES = 4


def orphan_a_pod(home: pathlib.Path, victims: list[str]) -> list[psutil.Process]:
    """Run the spreading pod on node-1, check that no process of it carries the
    supervisor's marker, then SIGKILL `victims` (processes named as in
    state.json, e.g. node-1/runtime) so that nobody stops the pod. Its processes.
    Blocking."""
    manifest = json.dumps(pod_doc("spreading", "default", [
        {"name": "main", "image": "python:3.11", "command": ["python3", "-c", SPREADING_POD]}]))
    applied = kubemu(home, "apply", "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def pod_running():
        got = kubemu(home, "get", "pod", "spreading", "-o", "json")
        return got.returncode == 0 and running(json.loads(got.stdout)) or got.stdout[-2000:]
    wait_for_sync(pod_running, POD_TIMEOUT_S, interval_s=0.2, message="pod spreading running")
    state = json.loads((home / "state.json").read_text())
    pids = {p["name"]: p["pid"] for p in state["processes"]}
    pids["supervisor"] = state["supervisor"]["pid"]
    runtime = psutil.Process(pids[f"{NODE}/runtime"])

    def all_started():
        procs = runtime.children(recursive=True)
        return procs if len(procs) == SPREADING_POD_PROCESSES else [p.pid for p in procs]
    procs = wait_for_sync(all_started, POD_TIMEOUT_S, message="the pod's processes")
    assert len({(os.getpgid(p.pid), os.getsid(p.pid)) for p in procs}) == 3
    marked = [p.pid for p in procs if cluster_home.SUPERVISED_ENV in p.environ()]
    assert marked == [], "pods must not inherit the supervisor's marker"
    for name in victims:
        os.kill(pids[name], signal.SIGKILL)
    wait_for_sync(lambda: not any(pid_alive(pids[name]) for name in victims), 10.0,
                  message=f"{victims} gone")
    assert all(p.is_running() for p in procs)
    return procs


async def test_shutdown_stops_a_pod_whose_runtime_and_kubelet_were_killed(tmp_path):
    cluster = Cluster(tmp_path / "home", nodes=1, restart=False, kinds=control_plane(),
                      node_kinds=fast_node_kinds(), progress=lambda line: None)
    try:
        await cluster.start(START_TIMEOUT_S)
        procs = await asyncio.to_thread(orphan_a_pod, cluster.home,
                                        [f"{NODE}/kubelet", f"{NODE}/runtime"])
        assert await cluster.shutdown(60.0) == []
        assert [p.pid for p in procs if cluster_home.running(p)] == []
        await asyncio.to_thread(cluster.assert_no_processes)
    finally:
        await cluster.shutdown(60.0)
        await asyncio.to_thread(cleanup_home, cluster.home)


def test_kubemu_down_stops_a_pod_whose_supervisor_runtime_and_kubelet_were_killed(tmp_path):
    home = tmp_path / "home"
    try:
        up = kubemu(home, "up", "--detach", "--nodes", "1", "--no-addons")
        assert up.returncode == 0, up.stdout + up.stderr
        procs = orphan_a_pod(home, ["supervisor", f"{NODE}/kubelet", f"{NODE}/runtime"])
        down = kubemu(home, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "cluster stopped; no process left" in down.stdout
        assert [p.pid for p in procs if cluster_home.running(p)] == []
        assert find_home_processes(home.resolve()) == []
    finally:
        kubemu(home, "down", timeout_s=120.0)
        cleanup_home(home)
