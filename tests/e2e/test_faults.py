"""Faults through the `kubemu` command on a real cluster (etcd and the
apiserver): kill --keep-down then start, pause that is not taken for dead,
SIGSTOP behind the supervisor's back that is, `logs --component`,
`status -o json`, and a supervisor killed with SIGKILL leaving nothing.
Process names come from `kubemu status -o json` (never spelled here)."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import psutil
import pytest

from kubemu.client.wait import wait_for_sync
from kubemu.cluster_home import find_home_processes, kill_processes

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 150.0
FAULT_TIMEOUT_S = 45.0


def kubemu(home: pathlib.Path, *args: str, timeout_s: float = CLI_TIMEOUT_S
           ) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBEMU_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s, cwd=REPO)


def ok(home: pathlib.Path, *args: str) -> str:
    done = kubemu(home, *args)
    assert done.returncode == 0, f"kubemu {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def status(home: pathlib.Path) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(ok(home, "status", "-o", "json"))["processes"]}


def named(home: pathlib.Path, component: str) -> dict:
    return next(p for p in status(home).values() if p["component"] == component)


def process_status(pid: int) -> str:
    try:
        return psutil.Process(pid).status()
    except psutil.Error:
        return "gone"


def cleanup(home: pathlib.Path) -> None:
    kubemu(home, "down")
    left = find_home_processes(home.resolve(), by_cmdline=False)
    if left:
        kill_processes(left)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("faults") / "home"
    try:
        ok(home, "up", "--detach", "--nodes", "0", "--no-addons")
        yield home
    finally:
        cleanup(home)


def test_kill_keep_down_stays_down_until_start(home):
    before = named(home, "apiserver")
    out = ok(home, "kill", before["name"], "--keep-down")
    assert out == f"{before['name']} killed\n"
    down = wait_for_sync(lambda: (p := status(home)[before["name"]])["state"] == "stopped" and p,
                         FAULT_TIMEOUT_S, message="apiserver stopped")
    assert (down["pid"], down["last_exit"]) == (None, "signal KILL")
    assert process_status(before["pid"]) == "gone"
    ok(home, "start", before["name"])
    up = wait_for_sync(lambda: (p := status(home)[before["name"]])["state"] == "running" and p,
                       FAULT_TIMEOUT_S, message="apiserver running again")
    assert up["pid"] != before["pid"]
    assert up["address"] == before["address"]


def test_a_paused_apiserver_is_not_restarted_and_resumes(home):
    before = named(home, "apiserver")
    # Longer than the health threshold (3 failures, 1 s apart).
    ok(home, "pause", before["name"], "--for", "6s")
    paused = status(home)[before["name"]]
    assert (paused["state"], paused["paused"]) == ("paused", True)
    assert process_status(before["pid"]) == psutil.STATUS_STOPPED
    resumed = wait_for_sync(lambda: (p := status(home)[before["name"]])["state"] == "running"
                            and p, FAULT_TIMEOUT_S, message="apiserver resumed")
    assert (resumed["pid"], resumed["restarts"]) == (before["pid"], before["restarts"])


def test_sigstop_behind_the_supervisors_back_is_restarted(home):
    before = named(home, "etcd")
    os.killpg(before["pid"], signal.SIGSTOP)
    after = wait_for_sync(
        lambda: (p := status(home)[before["name"]])["restarts"] == before["restarts"] + 1
        and p["state"] == "running" and p, FAULT_TIMEOUT_S, message="etcd restarted")
    assert after["pid"] != before["pid"]
    assert after["last_exit"] == "signal KILL"


def test_unknown_names_and_component_logs(home):
    bad = kubemu(home, "stop", "nosuch")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: stop: no process named 'nosuch' (processes: "), bad.stderr
    name = named(home, "apiserver")["name"]
    logs = ok(home, "logs", "--component", name, "--tail", "3")
    assert len(logs.splitlines()) == 3, logs
    missing = kubemu(home, "logs", "--component", "nosuch")
    assert missing.returncode == 1 and "no log for component 'nosuch'" in missing.stderr


def test_status_without_the_pid_and_state_files(home):
    (home / "supervisor.pid").unlink()
    (home / "state.json").unlink()
    doc = json.loads(ok(home, "status", "-o", "json"))
    assert doc["live"] is True
    assert doc["supervisor"]["pid"] and doc["supervisor"]["state"] == "running"
    assert {p["state"] for p in doc["processes"]} == {"running"}, doc


def test_a_killed_supervisor_leaves_nothing(home):
    doc = json.loads(ok(home, "status", "-o", "json"))
    children = [p["pid"] for p in doc["processes"] if p["pid"]]
    os.kill(doc["supervisor"]["pid"], signal.SIGKILL)
    wait_for_sync(lambda: [p for p in children if process_status(p) != "gone"
                           and process_status(p) != psutil.STATUS_ZOMBIE] == [],
                  FAULT_TIMEOUT_S, message="the supervisor's children gone")
    dead = kubemu(home, "status")
    assert dead.returncode == 1, dead.stdout + dead.stderr
    down = kubemu(home, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert find_home_processes(home.resolve()) == []


def test_down_finds_a_supervisor_without_its_files(tmp_path):
    home = tmp_path / "home"
    try:
        ok(home, "up", "--detach", "--nodes", "0", "--no-addons", "--schedulers", "0",
           "--controller-managers", "0")
        supervisor = json.loads(ok(home, "status", "-o", "json"))["supervisor"]["pid"]
        (home / "supervisor.pid").unlink()
        (home / "state.json").unlink()
        down = kubemu(home, "down", timeout_s=120.0)
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"supervisor pid {supervisor}" in down.stdout
        # Reaped by whoever adopted it (the `up` that started it has exited).
        assert process_status(supervisor) in ("gone", psutil.STATUS_ZOMBIE)
        assert find_home_processes(home.resolve()) == []
    finally:
        cleanup(home)
