"""The runtime's resource isolation on this machine's real cgroups
(kubelet/runtime/cgroups.py): CPU limits by the cpu cgroup's quota or, with
`--cgroups none`, by the duty-cycle throttler; memory limits by the memory
cgroup (the kernel's OOM kill: OOMKilled 137); every process a container
starts, a double-forked `setsid` `env -i` daemon included, is in its cgroup
and ends with it; cgroups left by a dead runtime are cleaned on start.

Tests that need a writable cgroup skip where the runtime reports none. Each
test ends with no cgroup of its runtime left (the harness removes those of
the runtimes it kills, and checks).
"""
from __future__ import annotations

import asyncio
import functools
import os
import pathlib
import random
import signal
import subprocess
import time

import psutil
import pytest

from kubelet.runtime import cgroups
from kubemu import cgroupfs, cluster_home
from kubemu.client.wait import wait_for
from kubemu.runtime.v1 import runtime_pb2 as pb
from tests.component import runtime_harness
from tests.component.runtime_harness import PLAIN, RPC_TIMEOUT_S, WAIT_S, Runtime, alive

# These tests are about cgroups and their fallbacks with the plain mode's
# process semantics (a container's leader takes SIGTERM, orphans come back to
# the runtime); the namespaces mode's limits are test_runtime.py's (the OOM
# kill in both modes) and test_container_view.py's.
running_runtime = functools.partial(runtime_harness.running_runtime, mode=PLAIN)

MiB = 1 << 20
BUSY_LOOP = ["sh", "-c", "while :; do :; done"]
CPU_WINDOW_S = 3.0
CPU_LIMIT_MILLIS = 200
CPU_BOUND_MILLIS = 400   # wide: the limit is 200m; unlimited, the loop takes ~1000m


async def version(rt: Runtime) -> pb.VersionResponse:
    return await rt.stub.Version(pb.VersionRequest(), timeout=RPC_TIMEOUT_S)


async def require(rt: Runtime, *controllers: str) -> pb.VersionResponse:
    v = await version(rt)
    if v.cgroup_version == "none" or not set(controllers) <= set(v.cgroup_controllers):
        pytest.skip(f"no writable cgroup with {', '.join(controllers)} here "
                    f"({v.cgroup_version}: {list(v.cgroup_controllers)})")
    return v


def parents(rt: Runtime) -> list[pathlib.Path]:
    return cluster_home.runtime_cgroup_parents(rt.root)


def cgroup_dir(rt: Runtime, container_id: str, controller: str) -> pathlib.Path:
    """The container's cgroup directory in the hierarchy with `controller`."""
    for parent in parents(rt):
        if controller in parent.parts[-3].split(",") or (parent.parent.parent /
                                                         "cgroup.controllers").exists():
            return parent / container_id
    raise AssertionError(f"no {controller} parent among {parents(rt)}")


def cgroup_cpu_ns(rt: Runtime, container_id: str) -> int:
    """The container's CPU time as its cgroup accounts it (v1 cpuacct, v2 cpu.stat)."""
    for parent in parents(rt):
        d = parent / container_id
        if (d / "cpuacct.usage").exists():
            return int((d / "cpuacct.usage").read_text())
        if (d / "cpu.stat").exists() and (parent.parent.parent / "cgroup.controllers").exists():
            stat = cgroups.parse_flat_keyed((d / "cpu.stat").read_text())
            return stat["usage_usec"] * 1000
    raise AssertionError(f"no cpu accounting for {container_id[:12]} in {parents(rt)}")


def tree_cpu_ns(pid: int) -> int:
    """CPU time of a process and its live children (psutil): the no-cgroup measure."""
    total = 0.0
    try:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
    except psutil.Error:
        pass
    return int(total * 1e9)


async def cpu_rate_millis(read_ns, window_s: float = CPU_WINDOW_S) -> float:
    """Millicores used over a window the test measures itself."""
    start_ns, start_s = await asyncio.to_thread(read_ns), time.monotonic()

    def window_passed():
        return time.monotonic() - start_s >= window_s
    await wait_for(window_passed, window_s + 5.0, interval_s=0.1)
    used_ns, elapsed_s = await asyncio.to_thread(read_ns), time.monotonic() - start_s
    return (used_ns - start_ns) / 1e6 / elapsed_s


def daemon_pids(marker: str) -> list[int]:
    """The `sleep MARKER` processes: once exec'd into sleep (before that, the same
    pid still runs `setsid` or `env` with the marker in its command line)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (proc.info["status"] != psutil.STATUS_ZOMBIE and cmdline[:1] == ["sleep"]
                and marker in cmdline):
            found.append(proc.pid)
    return found


# ---------------------------------------------------------------- mode

async def test_version_reports_the_cgroup_mode(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    async with running_runtime(tmp_path / "a") as rt:
        v = await version(rt)
        assert v.cgroup_version in ("v1", "v2", "none")
        assert v.child_subreaper
        if v.cgroup_version != "none":
            assert parents(rt), "the parents are recorded for kubemu down"
            assert all(cluster_home.CGROUP_PARENT_RE.search(str(p)) for p in parents(rt))
    async with running_runtime(tmp_path / "b", ("--cgroups", "none")) as rt:
        v = await version(rt)
        assert (v.cgroup_version, list(v.cgroup_controllers)) == ("none", [])
        assert not parents(rt)


# ---------------------------------------------------------------- CPU

async def test_cpu_limit_holds_a_busy_loop_near_its_quota(tmp_path):
    async with running_runtime(tmp_path) as rt:
        await require(rt, "cpu")
        sandbox = await rt.sandbox()
        reply = await rt.stub.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sandbox, config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="busy"), image=pb.ImageSpec(image="busybox"),
                command=BUSY_LOOP, cpu_limit_millis=CPU_LIMIT_MILLIS)), timeout=RPC_TIMEOUT_S)
        assert list(reply.warnings) == []  # enforced by the cgroup: nothing approximated
        cid = reply.container_id
        await rt.stub.StartContainer(pb.StartContainerRequest(container_id=cid),
                                     timeout=RPC_TIMEOUT_S)
        quota_dir = cgroup_dir(rt, cid, "cpu")
        if (quota_dir / "cpu.cfs_quota_us").exists():
            assert (quota_dir / "cpu.cfs_quota_us").read_text().strip() == "20000"
        else:
            assert (quota_dir / "cpu.max").read_text().split() == ["20000", "100000"]
        millis = await cpu_rate_millis(lambda: cgroup_cpu_ns(rt, cid))
        assert 0 < millis < CPU_BOUND_MILLIS, f"the busy loop used {millis:.0f}m"


async def test_without_cgroups_the_throttler_holds_a_busy_loop_and_never_leaves_it_stopped(
        tmp_path):
    async with running_runtime(tmp_path, ("--cgroups", "none")) as rt:
        sandbox = await rt.sandbox()
        reply = await rt.stub.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sandbox, config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="busy"), image=pb.ImageSpec(image="busybox"),
                command=BUSY_LOOP, cpu_limit_millis=CPU_LIMIT_MILLIS)), timeout=RPC_TIMEOUT_S)
        assert [w for w in reply.warnings if "cpu limit 200m is approximated" in w], \
            list(reply.warnings)
        cid = reply.container_id
        await rt.stub.StartContainer(pb.StartContainerRequest(container_id=cid),
                                     timeout=RPC_TIMEOUT_S)
        pid = (await rt.status(cid)).pid
        millis = await cpu_rate_millis(lambda: tree_cpu_ns(pid))
        assert 0 < millis < CPU_BOUND_MILLIS, f"the busy loop used {millis:.0f}m"

        # Stopped by the throttler or not, SIGTERM ends it within the grace period.
        await rt.stop(cid, timeout_s=5)
        status = await rt.status(cid)
        assert (status.exit_code, status.reason) == (143, "Error")


async def test_the_throttler_continues_its_containers_when_the_runtime_stops(tmp_path):
    async with running_runtime(tmp_path, ("--cgroups", "none")) as rt:
        sandbox = await rt.sandbox()
        cid = await rt.run(sandbox, "busy", command=BUSY_LOOP, cpu_limit_millis=50)
        pid = (await rt.status(cid)).pid

        def state():
            return psutil.Process(pid).status()
        await wait_for(lambda: state() == psutil.STATUS_STOPPED, WAIT_S,
                       message="the throttler stops the busy loop")
        assert await rt.terminate() == 0
        # The runtime is gone: the loop runs again, stopped by nothing.
        await wait_for(lambda: state() in (psutil.STATUS_RUNNING, psutil.STATUS_SLEEPING)
                       and alive(pid), WAIT_S, message="continued when the runtime stopped")


# ---------------------------------------------------------------- memory

async def test_a_pod_over_its_memory_limit_is_oomkilled_by_its_memory_cgroup(tmp_path):
    """The docs' memory task: polinux/stress allocating 250M under a 100Mi limit."""
    async with running_runtime(tmp_path) as rt:
        await require(rt, "memory")
        sandbox = await rt.sandbox()
        reply = await rt.stub.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sandbox, config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="memory-demo-2-ctr"),
                image=pb.ImageSpec(image="polinux/stress"), command=["stress"],
                args=["--vm", "1", "--vm-bytes", "250M", "--vm-hang", "1"],
                memory_limit_bytes=100 * MiB)), timeout=RPC_TIMEOUT_S)
        assert list(reply.warnings) == []
        cid = reply.container_id
        limit_file = cgroup_dir(rt, cid, "memory")
        limit_file = limit_file / ("memory.limit_in_bytes"
                                   if (limit_file / "memory.limit_in_bytes").exists()
                                   else "memory.max")
        assert int(limit_file.read_text()) == 100 * MiB
        await rt.stub.StartContainer(pb.StartContainerRequest(container_id=cid),
                                     timeout=RPC_TIMEOUT_S)
        status = await rt.wait_state(cid, pb.CONTAINER_EXITED)
        assert (status.exit_code, status.reason) == (137, "OOMKilled")
        assert "OOM killer" in status.message


# ---------------------------------------------------------------- nothing escapes

UNIFIED = pathlib.Path("/sys/fs/cgroup/unified")  # a hybrid machine's v2 mount (no controllers)


@pytest.mark.parametrize("args", [
    (),
    ("--cgroup-fs", str(UNIFIED)),   # v2 on the real kernel, even where v1 has the controllers
], ids=["default", "v2-unified"])
async def test_a_double_forked_setsid_daemon_is_in_the_cgroup_and_dies_with_its_container(
        tmp_path, args):
    if args and not (UNIFIED / "cgroup.controllers").exists():
        pytest.skip(f"no cgroup v2 mount at {UNIFIED}")
    async with running_runtime(tmp_path, args) as rt:
        v = await require(rt)
        if args:
            assert v.cgroup_version == "v2"
        marker = f"{random.randint(100_000, 999_999)}"
        script = f"(setsid env -i sleep {marker} &) ; exec sleep 300"
        sandbox = await rt.sandbox()
        cid = await rt.run(sandbox, "main", command=["sh", "-c", script])
        pids = await wait_for(lambda: daemon_pids(marker), WAIT_S, message="the daemon runs")
        daemon = psutil.Process(pids[0])
        leader = (await rt.status(cid)).pid
        assert daemon.ppid() != leader and os.getsid(daemon.pid) != leader  # it got away...
        assert "KUBEMU_ROOTFS" not in daemon.environ()
        await wait_for(lambda: daemon.ppid() == rt.proc.popen.pid, WAIT_S,
                       message="the orphan re-parented to the runtime, a child subreaper")
        members = set()
        for parent in parents(rt):
            members |= cgroupfs.read_procs(parent / cid)
        assert daemon.pid in members  # ...but not out of its cgroup

        await rt.stop(cid, timeout_s=1)
        # Gone, and reaped by the runtime it was re-parented to (a child subreaper).
        await wait_for(lambda: not psutil.pid_exists(daemon.pid), WAIT_S,
                       message="the daemon is gone with its container, and reaped")


async def test_without_cgroups_orphans_that_kept_their_session_or_environment_die_too(
        tmp_path):
    """The plain mode's tracking: an orphan re-parented to the runtime (a child
    subreaper) is put back with its container by its session or its
    environment; one that dropped both (`setsid env -i`) is the stated gap."""
    async with running_runtime(tmp_path, ("--cgroups", "none")) as rt:
        a, b = (str(random.randint(100_000, 999_999)) for _ in range(2))
        script = f"(setsid sleep {a} &) ; (env -i sleep {b} &) ; exec sleep 300"
        sandbox = await rt.sandbox()
        cid = await rt.run(sandbox, "main", command=["sh", "-c", script])
        await wait_for(lambda: daemon_pids(a) and daemon_pids(b), WAIT_S)

        async def tracked():
            reply = await rt.stub.ContainerStats(pb.ContainerStatsRequest(container_id=cid),
                                                 timeout=RPC_TIMEOUT_S)
            return reply.stats.process_count == 3
        await wait_for(tracked, WAIT_S, message="both orphans counted with the container")
        await rt.stop(cid, timeout_s=1)
        await wait_for(lambda: not daemon_pids(a) and not daemon_pids(b), WAIT_S,
                       message="both orphans gone with their container")


async def test_an_exec_runs_in_the_container_cgroup(tmp_path):
    async with running_runtime(tmp_path) as rt:
        await require(rt)
        sandbox = await rt.sandbox()
        cid = await rt.run(sandbox, "main", command=["sleep", "300"])
        reply = await rt.exec(cid, ["sh", "-c", "cat /proc/self/cgroup"])
        assert reply.exit_code == 0
        assert cid in reply.stdout.decode()
        missing = await rt.exec(cid, ["no-such-program"])
        assert missing.exit_code == 126
        assert b"executable file not found in $PATH" in missing.stderr


async def test_cgroups_left_by_a_dead_runtime_are_cleaned_on_start_and_removed_with_containers(
        tmp_path):
    async with running_runtime(tmp_path) as rt:
        await require(rt)
        sandbox = await rt.sandbox()
        kept = await rt.run(sandbox, "kept", command=["sleep", "300"])
        await rt.kill()
        # A container cgroup the runtime has no record of, with a process in it.
        stale = "f" * 64
        for parent in parents(rt):
            (parent / stale).mkdir()
        stray = await asyncio.to_thread(
            subprocess.Popen,
            cgroups.join_argv([str(p / stale / "cgroup.procs") for p in parents(rt)],
                              ["sleep", "301"], {}), start_new_session=True)
        await wait_for(lambda: all(stray.pid in cgroupfs.read_procs(p / stale)
                                   for p in parents(rt)), WAIT_S)

        await rt.start()
        await asyncio.to_thread(stray.wait, WAIT_S)
        assert stray.returncode == -signal.SIGKILL
        assert not any((p / stale).exists() for p in parents(rt))
        assert all((p / kept).is_dir() for p in parents(rt))  # adopted: kept
        assert (await rt.status(kept)).state == pb.CONTAINER_RUNNING

        await rt.stub.RemoveContainer(pb.RemoveContainerRequest(container_id=kept),
                                      timeout=RPC_TIMEOUT_S)
        assert not any((p / kept).exists() for p in parents(rt))
