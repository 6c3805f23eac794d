"""kubemu.cluster_home: the supervisor's files, their format and modes, and how a
cluster's pod processes are told apart from others (pure, on a process table)."""
from __future__ import annotations

import json
import os
import stat

import pytest

from kubemu import cluster_home as ch
from kubemu.client.config import ClusterConfig, write_cluster_config


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


# --- container processes --------------------------------------------------

ROOTFS = "/h/nodes/node-1/runtime/containers/c1/rootfs"
OTHER_ROOTFS = "/h/nodes/node-1/runtime/containers/c2/rootfs"
LEADER = ch.ContainerRecord(pid=100, start_ticks=5000, create_time=1000.0, rootfs=ROOTFS)


def proc(pid, pgid, sid, ticks, rootfs=None, create_time=0.0) -> ch.ProcInfo:
    return ch.ProcInfo(pid=pid, pgid=pgid, sid=sid, start_ticks=ticks, create_time=create_time,
                       rootfs=rootfs)


@pytest.mark.parametrize(("records", "table", "expected"), [
    ([LEADER],
     [proc(100, 100, 100, 5000), proc(101, 100, 100, 5001), proc(102, 102, 100, 5002),
      proc(7, 7, 7, 10)],
     {100, 101, 102}),
    ([LEADER],
     [proc(100, 100, 100, 9000), proc(101, 100, 100, 9001)],
     set()),
    ([LEADER],
     [proc(100, 100, 100, 9000), proc(101, 100, 100, 9001, rootfs=ROOTFS)],
     {101}),
    ([LEADER],
     [proc(101, 100, 100, 5001, rootfs=ROOTFS), proc(102, 102, 100, 5002),
      proc(103, 103, 100, 5003, rootfs=OTHER_ROOTFS)],
     {101}),
    ([LEADER],
     [proc(100, 100, 100, 5000), proc(99, 100, 100, 4000, rootfs=ROOTFS)],
     {100}),
    ([LEADER],
     [proc(300, 300, 300, 6000, rootfs=ROOTFS), proc(301, 301, 301, 6001, rootfs=OTHER_ROOTFS),
      proc(302, 302, 302, 6002)],
     {300}),
    ([ch.ContainerRecord(pid=100, create_time=1000.0, rootfs=ROOTFS)],
     [proc(100, 100, 100, -1, create_time=1000.2), proc(101, 100, 100, -1, create_time=1001.0)],
     {100, 101}),
    ([ch.ContainerRecord(pid=100, create_time=1000.0, rootfs=ROOTFS)],
     [proc(100, 100, 100, -1, create_time=2000.0), proc(101, 100, 100, -1, create_time=2001.0)],
     set()),
    ([], [proc(100, 100, 100, 5000, rootfs=ROOTFS)], set()),
], ids=["leader-alive-takes-its-group-and-session", "pid-reused-takes-nothing",
        "pid-reused-takes-only-the-containers-own", "leader-gone-members-by-rootfs",
        "older-than-the-leader-is-not-a-member", "escaped-session-by-rootfs",
        "no-ticks-compares-create-times", "no-ticks-reused-pid", "no-records"])
def test_container_pids(records, table, expected):
    assert ch.container_pids(records, table) == expected


async def test_container_records_read_what_the_runtime_writes(tmp_path):
    """The layout and field names are kubelet/runtime/state.py's: read them back."""
    from kubelet.runtime import state as runtime_state

    home = tmp_path / "home"
    store = runtime_state.Store(ch.runtime_root(home, "node-1"))
    store.prepare()
    record = runtime_state.ContainerRecord(
        id="c1", sandbox_id="s1", name="main", attempt=0, image="busybox", image_ref="busybox",
        argv=["sh"], exec_argv=["/bin/sh"], programs={}, env=[[ch.ROOTFS_ENV, ROOTFS]],
        working_dir="/", rootfs=ROOTFS, log_path="/x.log", state=runtime_state.RUNNING,
        pid=4242, pid_start_ticks=777, pid_create_time=1234.5)
    await store.save_container(record)
    await store.save_container(runtime_state.ContainerRecord(  # created, never started: no pid
        id="c2", sandbox_id="s1", name="side", attempt=0, image="busybox", image_ref="busybox",
        argv=["sh"], exec_argv=["/bin/sh"], programs={}, env=[], working_dir="/",
        rootfs=OTHER_ROOTFS, log_path="/y.log"))
    store.close()
    (store.containers_dir / "broken.json").write_text("{not json")
    expected = [ch.ContainerRecord(pid=4242, start_ticks=777, create_time=1234.5, rootfs=ROOTFS)]
    assert ch.container_records(home) == expected
    assert ch.container_records(home, "node-1") == expected
    assert ch.container_records(home, "node-2") == []
    assert ch.container_records(tmp_path / "nowhere") == []


# --- the state file ----------------------------------------------------------

def test_state_round_trips_through_its_file_which_is_private(tmp_path, umask_022):
    state = ch.State(
        home=str(tmp_path), state=ch.ClusterState.READY,
        supervisor=ch.SupervisorRecord(pid=10, create_time=1.5, argv=["python", "-m", "deploy"]),
        nodes=["node-1"], progress=["etcd ready"],
        processes=[ch.ProcessRecord(name="node-1/runtime", component="runtime", node="node-1",
                                    pid=11, create_time=2.5, state=ch.ProcState.RUNNING,
                                    address="unix:/x.sock", log="/l")])
    ch.write_state(tmp_path, state)
    assert ch.read_state(tmp_path) == state
    assert _mode(tmp_path / ch.STATE_FILE) == 0o600
    assert state.recorded() == [(11, 2.5)]


@pytest.mark.parametrize(("doc", "expected"), [
    ("[1, 2]", None),
    ('{"processes": []}', None),
    ('{"state": "ready", "supervisor": {"pid": "x"}, "processes": [3, {"pid": true}, '
     '{"name": "etcd", "pid": 5, "restarts": "many"}], "progress": "no"}',
     ch.State(home="", state="ready", processes=[
         ch.ProcessRecord(name="", component="?", state="unknown"),
         ch.ProcessRecord(name="etcd", component="?", pid=5, state="unknown")])),
], ids=["not-an-object", "no-state", "malformed-parts-dropped"])
def test_a_bad_state_file_reads_as_what_can_be_trusted(tmp_path, doc, expected):
    (tmp_path / ch.STATE_FILE).write_text(doc)
    assert ch.read_state(tmp_path) == expected


def test_kubeconfig_and_home_are_private_whatever_the_umask(tmp_path, umask_022):
    home = tmp_path / "new" / "home"
    path = write_cluster_config(home, ClusterConfig(apiserver="127.0.0.1:1"))
    assert (_mode(home), _mode(path)) == (0o700, 0o600)
    assert json.loads(path.read_text())["apiserver"] == "127.0.0.1:1"
    ch.make_private_home(home)
    assert _mode(home / ch.LOGS_DIR) == 0o700


def test_one_supervisor_lock_per_home_and_it_is_private(tmp_path, umask_022):
    assert not ch.supervisor_lock_held(tmp_path)
    fd = ch.claim_lock(tmp_path)
    assert fd is not None
    try:
        assert _mode(tmp_path / ch.LOCK_FILE) == 0o600
        assert ch.supervisor_lock_held(tmp_path)
        assert ch.claim_lock(tmp_path) is None
    finally:
        os.close(fd)
    assert not ch.supervisor_lock_held(tmp_path)


def test_the_cli_still_starts_without_psutil_or_grpc():
    """kubemu/cli/cluster.py now takes its names from kubemu.cluster_home: loading
    the command must still not load psutil or grpc (they cost start-up time)."""
    import subprocess
    import sys

    probe = ("import sys, kubemu.cli.main, kubemu.cli.cluster, kubemu.cluster_home; "
             "print(sorted(m for m in ('psutil', 'grpc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_recorded_pid_without_a_start_time_is_never_taken_for_the_clusters(tmp_path):
    """A pid recorded without its start time (the child died before it could be
    read) may belong to anyone by now: `down` must not find (and kill) it."""
    import subprocess

    stranger = subprocess.Popen(["sleep", "30"])  # not the cluster's, not our ancestor
    try:
        home = tmp_path / "home"
        home.mkdir()
        found = ch.find_home_processes(home, [(stranger.pid, None)], by_cmdline=False)
        assert stranger.pid not in [p.pid for p in found]
    finally:
        stranger.kill()
        stranger.wait(10)
