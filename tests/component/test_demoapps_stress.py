"""The stress stand-ins (polinux/stress's stress 1.0.4, vish/stress) run as
processes: they really hold memory and burn CPU, so limits act on them, and
they print and exit as the real programs do."""
from __future__ import annotations

import os
import re
import signal

import psutil
import pytest

from kubemu.client.wait import wait_for_sync
from tests.component import demoapp_process

MIB = 1 << 20
WAIT_S = 30.0
CPU_SECONDS_BURNED = 0.5    # CPU time a hog must accumulate (any speed: a loaded machine)

apps = demoapp_process.apps   # the fixture


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


def children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def test_vm_hog_holds_the_requested_memory_and_a_killed_worker_fails_the_run(apps):
    """The docs' memory example (`--vm 1 --vm-bytes 150M --vm-hang 1`), smaller:
    the worker's pages are really resident, so an RSS or cgroup limit kills
    it; its SIGKILL is reported as stress reports an OOM kill."""
    app = apps.start("stress", "--vm", "1", "--vm-bytes", "64M", "--vm-hang", "0")
    out = app.wait_for_output("dispatching hogs", stream="stdout")
    assert re.search(rf"^stress: info: \[{app.pid}\] dispatching hogs: 0 cpu, 0 io, 1 vm, "
                     r"0 hdd$", out, re.M)
    rss = wait_for_sync(lambda: (r := tree_rss(app.pid)) >= 64 * MIB and r, WAIT_S,
                        message="stress's RSS past --vm-bytes 64M")
    assert rss < 64 * MIB + 64 * MIB, "the parent and the worker hold about 64M, not more"

    [worker] = children(app.pid)
    worker.send_signal(signal.SIGKILL)
    assert app.wait() == 1
    err = app.stderr()
    assert f"stress: FAIL: [{app.pid}] (415) <-- worker {worker.pid} got signal 9" in err
    assert f"stress: WARN: [{app.pid}] (417) now reaping child worker processes" in err
    assert re.search(rf"stress: FAIL: \[{app.pid}\] \(451\) failed run completed in \d+s", err)


def test_vm_hog_with_a_large_stride_touches_only_some_pages(apps):
    app = apps.start("stress", "--vm", "1", "--vm-bytes", "64M", "--vm-stride", "1M",
                     "--vm-hang", "0")
    app.wait_for_output("dispatching hogs")
    wait_for_sync(lambda: len(children(app.pid)) == 1 and "ready", WAIT_S)
    [worker] = children(app.pid)
    # 64 pages of 4 KiB dirtied: the worker stays far below 64M.
    wait_for_sync(lambda: worker.memory_info().rss > 0, WAIT_S)
    assert worker.memory_info().rss < 48 * MIB


def test_cpu_hogs_really_burn_cpu(apps):
    """What a CPU limit must hold back: each worker spins on a core."""
    app = apps.start("stress", "--cpu", "2")
    app.wait_for_output("dispatching hogs: 2 cpu, 0 io, 0 vm, 0 hdd")
    workers = wait_for_sync(lambda: len(c := children(app.pid)) == 2 and c, WAIT_S)
    for worker in workers:
        wait_for_sync(lambda w=worker: cpu_seconds(w) >= CPU_SECONDS_BURNED and "burned",
                      WAIT_S, message=f"cpu worker {worker.pid} accumulates CPU time")


def test_timeout_ends_the_workers_and_the_run_succeeds(apps):
    app = apps.start("stress", "--cpu", "1", "--vm", "1", "--vm-bytes", "8M", "--timeout", "1s")
    assert app.wait() == 0
    assert re.search(rf"^stress: info: \[{app.pid}\] successful run completed in [12]s$",
                     app.stdout(), re.M)
    assert app.stderr() == ""
    assert children(app.pid) == []


def test_hdd_hog_writes_into_the_working_directory_and_leaves_nothing(apps):
    done = apps.run("stress", "--hdd", "1", "--hdd-bytes", "2M", "--timeout", "1")
    assert done.returncode == 0, done.stderr
    assert b"dispatching hogs: 0 cpu, 0 io, 0 vm, 1 hdd" in done.stdout
    assert sorted(p.name for p in apps.rootfs.iterdir()) == []


@pytest.mark.parametrize("args, status, stream, line", [
    (["--vm", "1", "--bogus"], 1, "stderr", "(244) unrecognized option: --bogus"),
    (["-h"], 1, "stderr", "(244) unrecognized option: -h"),
    (["--cpu"], 1, "stderr", "(160) missing argument to option '--cpu'"),
    (["--vm", "1", "--vm-bytes", "10X"], 1, "stderr", "unrecognized suffix: X"),
    (["--vm", "0"], 1, "stderr", "invalid number of vm hogs: 0"),
    (["--timeout", "-1"], 1, "stderr", "invalid timeout value: -1s"),
    (["--version"], 0, "stdout", "stress 1.0.4"),
    ([], 0, "stdout", "`stress' imposes certain types of compute stress on your system"),
    (["--cpu", "1", "--io", "1", "--hdd", "1", "-n"], 0, "stdout",
     "successful run completed in 0s"),
    (["--cpu", "1", "-n", "-v"], 0, "stdout", "--> hogcpu worker 1 ["),
    (["--cpu", "1", "-n", "-q"], 0, "stdout", ""),
], ids=["unknown-option", "no-short-help", "missing-argument", "bad-suffix", "zero-hogs",
        "negative-timeout", "version", "no-hogs-usage", "dry-run", "verbose", "quiet"])
def test_stress_flags_and_errors_are_stress_1_0_4s(apps, args, status, stream, line):
    done = apps.run("stress", *args)
    output = (done.stdout if stream == "stdout" else done.stderr).decode()
    assert done.returncode == status, done
    assert line in output
    if args[-1:] == ["-q"]:
        assert done.stdout == b"" and done.stderr == b""


def test_vish_stress_allocates_its_total_and_burns_its_cpus(apps):
    """The CPU docs' vish/stress (`/stress -logtostderr -cpus 1`), with memory."""
    app = apps.start("vish_stress", "-logtostderr", "-cpus", "1", "-mem-total", "32Mi",
                     "-mem-alloc-size", "4Mi", "-mem-alloc-sleep", "1ms")
    err = app.wait_for_output('Allocated "32Mi" memory', WAIT_S, stream="stderr")
    assert re.search(r'^I\d{4} [\d:.]+ +\d+ main\.go:26\] Allocating "32Mi" memory, in "4Mi" '
                     r'chunks, with a 1ms sleep between allocations$', err, re.M)
    assert err.count("main.go:39] Spawning a thread to consume CPU") == 1
    assert tree_rss(app.pid) >= 32 * MIB
    [burner] = children(app.pid)
    wait_for_sync(lambda: cpu_seconds(burner) >= CPU_SECONDS_BURNED and "burned", WAIT_S,
                  message="the CPU burner accumulates CPU time")
    os.killpg(app.pid, signal.SIGTERM)
    assert app.wait() == -signal.SIGTERM   # no handler, as the Go program: killed by it


def test_vish_stress_rejects_an_unknown_flag_as_go_does(apps):
    done = apps.run("vish_stress", "-cpu", "2")
    assert done.returncode == 2
    assert done.stderr.decode().startswith("flag provided but not defined: -cpu\n"
                                           "Usage of /stress:\n")
