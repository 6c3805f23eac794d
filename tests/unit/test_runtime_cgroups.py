"""kubelet/runtime/cgroups.py and throttle.py against fake cgroup trees in
tmp_path (v1 and v2 layouts), and the cgroup half of kubemu.cluster_home.

In a fake tree control files are plain files: a directory made by the code
has none until it writes one, and rmdir is replaced by one that removes a
directory with its files (as cgroupfs does)."""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest

from kubelet.runtime import cgroups, throttle
from kubemu import cgroupfs, cluster_home


def fake_rmdir(path: pathlib.Path) -> None:
    if any(p.is_dir() for p in path.iterdir()):
        raise OSError(16, "Device or resource busy", str(path))
    shutil.rmtree(path)


def v1_tree(fs: pathlib.Path, hierarchies=("memory", "cpu,cpuacct", "pids", "freezer")) -> None:
    for name in hierarchies:
        (fs / name).mkdir(parents=True)
        (fs / name / "cgroup.procs").write_text("1\n")
    if "cpu,cpuacct" in hierarchies:
        (fs / "cpu").symlink_to("cpu,cpuacct")
        (fs / "cpuacct").symlink_to("cpu,cpuacct")
    (fs / "unified").mkdir()
    (fs / "unified" / "cgroup.controllers").write_text("")
    (fs / "unified" / "cgroup.procs").write_text("")


def v2_tree(fs: pathlib.Path, root: pathlib.Path, controllers="cpuset cpu io memory pids") -> None:
    fs.mkdir(parents=True)
    (fs / "cgroup.controllers").write_text(controllers + "\n")
    (fs / "cgroup.subtree_control").write_text("")
    parent = fs / cgroups.PARENT_DIR / cgroups.unique_name(root)
    parent.mkdir(parents=True)  # cgroupfs gives a new directory its control files
    for d in (fs / cgroups.PARENT_DIR, parent):
        (d / "cgroup.subtree_control").write_text("")
        (d / "cgroup.procs").write_text("")


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "runtime"
    r.mkdir()
    return r


# ---------------------------------------------------------------- detection

def test_detect_v1_lists_each_hierarchy_once_and_skips_the_hybrid_unified_one(tmp_path):
    fs = tmp_path / "cg"
    v1_tree(fs)
    found = {h.mount.name: (h.version, sorted(h.controllers)) for h in cgroups.detect(fs)}
    assert found == {"memory": (1, ["memory"]), "cpu,cpuacct": (1, ["cpu", "cpuacct"]),
                     "pids": (1, ["pids"])}


def test_detect_v2_reads_the_root_controllers(tmp_path, root):
    fs = tmp_path / "cg"
    v2_tree(fs, root)
    [h] = cgroups.detect(fs)
    assert (h.mount, h.version) == (fs, 2)
    assert {"cpu", "memory", "pids"} <= h.controllers


def test_detect_nothing_where_there_is_no_cgroupfs(tmp_path):
    assert cgroups.detect(tmp_path / "missing") == []


@pytest.mark.parametrize("text, path", [
    ("12:memory:/x\n0::/user.slice/user-1000.slice/session-3.scope\n",
     "user.slice/user-1000.slice/session-3.scope"),
    ("0::/\n", ""),
    ("4:memory:/a\n", ""),
], ids=["hybrid", "root", "v1-only"])
def test_self_cgroup_v2(text, path):
    assert cgroups.self_cgroup_v2(text) == path


def test_unique_name_is_stable_per_root_and_distinct_across_roots(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cgroups.unique_name(a) == cgroups.unique_name(a / "x" / "..")
    assert cgroups.unique_name(a) != cgroups.unique_name(b)
    assert cluster_home.CGROUP_PARENT_RE.search(f"/x/kubemu/{cgroups.unique_name(a)}")


# ---------------------------------------------------------------- v1

def test_v1_open_makes_a_parent_per_hierarchy_and_records_them(tmp_path, root):
    fs = tmp_path / "cg"
    v1_tree(fs)
    cg = cgroups.Cgroups.open(root, fs=fs, rmdir=fake_rmdir)
    unique = cgroups.unique_name(root)
    assert cg.version == 1 and cg.tracking
    assert cg.controllers == ["cpu", "cpuacct", "memory", "pids"]
    assert sorted(cg.parents) == sorted(fs / h / "kubemu" / unique
                                        for h in ("memory", "cpu,cpuacct", "pids"))
    assert cg.describe() == "v1 (cpu, cpuacct, memory, pids)"
    recorded = json.loads((root / cluster_home.RUNTIME_CGROUPS_FILE).read_text())
    assert recorded == {"version": 1, "parents": sorted(str(p) for p in cg.parents)}


def test_v1_container_limits_procs_files_usage_and_oom(tmp_path, root):
    fs = tmp_path / "cg"
    v1_tree(fs)
    cg = cgroups.Cgroups.open(root, fs=fs, rmdir=fake_rmdir)
    applied = cg.create("c1", memory_limit_bytes=100 << 20, cpu_limit_millis=200)
    assert applied == cgroups.Applied(memory=True, cpu=True, tracked=True)
    unique = cgroups.unique_name(root)
    mem = fs / "memory" / "kubemu" / unique / "c1"
    cpu = fs / "cpu,cpuacct" / "kubemu" / unique / "c1"
    assert (mem / "memory.limit_in_bytes").read_text() == str(100 << 20)
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "20000"
    assert sorted(cg.procs_files("c1")) == sorted(
        str(p / "c1" / "cgroup.procs") for p in cg.parents)

    (cpu / "cpuacct.usage").write_text("1500000000\n")
    (mem / "memory.usage_in_bytes").write_text(str(80 << 20))
    (mem / "memory.stat").write_text(f"cache 1\nrss 2\ntotal_rss {50 << 20}\n"
                                     f"total_inactive_file {10 << 20}\n")
    (mem / "cgroup.procs").write_text("10\n11\n")
    assert cg.usage("c1") == cgroups.Usage(cpu_ns=1_500_000_000, working_set_bytes=70 << 20,
                                           rss_bytes=50 << 20, memory_bytes=80 << 20,
                                           process_count=2)
    assert cg.members("c1") == {10, 11}

    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.oom_kills("c1") == (2, True)
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (mem / "memory.failcnt").write_text("7\n")
    assert cg.oom_kills("c1") == (7, False)  # an old kernel: only "hit the limit"


def test_v1_without_a_cpu_hierarchy_the_cpu_limit_is_not_applied(tmp_path, root):
    fs = tmp_path / "cg"
    v1_tree(fs, hierarchies=("memory", "pids"))
    cg = cgroups.Cgroups.open(root, fs=fs, rmdir=fake_rmdir)
    assert cg.create("c1", 1 << 20, 500) == cgroups.Applied(memory=True, cpu=False, tracked=True)
    assert cg.usage("c1") is None  # no cpu accounting: the runtime samples the tree


def test_remove_and_cleanup_keep_only_known_containers(tmp_path, root):
    fs = tmp_path / "cg"
    v1_tree(fs)
    cg = cgroups.Cgroups.open(root, fs=fs, rmdir=fake_rmdir)
    for cid in ("keep", "stale1", "stale2"):
        cg.create(cid, 0, 0)
    assert cg.cleanup(keep=["keep"]) == ["stale1", "stale2"]
    assert all((p / "keep").is_dir() and not (p / "stale1").exists() for p in cg.parents)
    cg.remove("keep")
    assert not any((p / "keep").exists() for p in cg.parents)
    assert cg.remove_parents() == []
    assert not any(p.exists() for p in cg.parents)


# ---------------------------------------------------------------- v2

def test_v2_open_enables_controllers_down_to_the_parent(tmp_path, root):
    fs = tmp_path / "cg"
    v2_tree(fs, root)
    cg = cgroups.Cgroups.open(root, fs=fs, proc_self_cgroup="0::/\n", rmdir=fake_rmdir)
    parent = fs / "kubemu" / cgroups.unique_name(root)
    assert (cg.version, list(cg.parents), cg.controllers) == (2, [parent],
                                                              ["cpu", "memory", "pids"])
    # one "+name" write per level and controller; the fake file keeps the last one
    assert (parent / "cgroup.subtree_control").read_text() == "+pids"


def test_v2_container_limits_usage_and_oom(tmp_path, root):
    fs = tmp_path / "cg"
    v2_tree(fs, root)
    cg = cgroups.Cgroups.open(root, fs=fs, proc_self_cgroup="0::/\n", rmdir=fake_rmdir)
    d = fs / "kubemu" / cgroups.unique_name(root) / "c1"
    d.mkdir(parents=True)
    for name in ("memory.swap.max", "memory.oom.group"):
        (d / name).write_text("max\n")  # present in a real cgroup with the memory controller
    assert cg.create("c1", 64 << 20, 1500) == cgroups.Applied(memory=True, cpu=True, tracked=True)
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "memory.oom.group").read_text() == "1"
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert cg.procs_files("c1") == [str(d / "cgroup.procs")]

    (d / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n")
    (d / "memory.current").write_text(str(30 << 20))
    (d / "memory.stat").write_text(f"anon {20 << 20}\nfile {9 << 20}\n"
                                   f"inactive_file {4 << 20}\n")
    (d / "cgroup.procs").write_text("42\n")
    assert cg.usage("c1") == cgroups.Usage(cpu_ns=2_500_000, working_set_bytes=26 << 20,
                                           rss_bytes=20 << 20, memory_bytes=30 << 20,
                                           process_count=1)
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_kills("c1") == (1, True)


def test_v2_falls_back_to_the_runtimes_own_delegated_cgroup(tmp_path, root):
    fs = tmp_path / "cg"
    fs.mkdir()
    (fs / "cgroup.controllers").write_text("cpu memory pids\n")
    (fs / "kubemu").write_text("")  # no directory can be made at the root (not ours)
    own = fs / "user.slice" / "me.scope"
    parent = own / "kubemu" / cgroups.unique_name(root)
    parent.mkdir(parents=True)
    (parent / "cgroup.procs").write_text("")
    cg = cgroups.Cgroups.open(root, fs=fs, proc_self_cgroup="0::/user.slice/me.scope\n")
    assert (cg.version, list(cg.parents)) == (2, [parent])
    assert cg.controllers == []  # none could be enabled there: tracking and kill only
    assert cg.tracking and cg.create("c1", 1 << 20, 100) == cgroups.Applied(tracked=True)


def test_mode_none_and_an_unwritable_machine_give_no_cgroups(tmp_path, root):
    fs = tmp_path / "cg"
    v1_tree(fs)
    cg = cgroups.Cgroups.open(root, fs=fs, mode="none")
    assert (cg.version, cg.parents, cg.tracking, cg.describe()) == (0, {}, False, "none")
    assert cg.procs_files("c1") == [] and cg.usage("c1") is None
    assert cg.create("c1", 1 << 20, 100) == cgroups.Applied()
    assert json.loads((root / cluster_home.RUNTIME_CGROUPS_FILE).read_text())["parents"] == []
    with pytest.raises(ValueError, match="cgroups mode 'v3'"):
        cgroups.Cgroups.open(root, fs=fs, mode="v3")


@pytest.mark.parametrize("millis, quota", [(200, 20000), (1000, 100000), (2500, 250000),
                                           (1, 1000), (5, 1000)],
                         ids=["200m", "1", "2.5", "1m-floor", "5m-floor"])
def test_cfs_quota(millis, quota):
    assert cgroups.cfs_quota_us(millis) == quota


# ---------------------------------------------------------------- joining

def test_join_stub_moves_itself_then_execs_with_the_same_argv_and_environment(tmp_path):
    procs = [tmp_path / "a" / "cgroup.procs", tmp_path / "b" / "cgroup.procs"]
    for p in procs:
        p.parent.mkdir()
    env = {"PATH": "/usr/bin:/bin", "ONLY": "this"}
    argv = cgroups.join_argv([str(p) for p in procs], ["env"], env)
    assert cgroups.is_join_stub(argv)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    assert sorted(out.splitlines()) == ["ONLY=this", "PATH=/usr/bin:/bin"]
    argv = cgroups.join_argv([str(p) for p in procs], ["sh", "-c", 'echo "$0"'], env)
    assert subprocess.run(argv, env=env, capture_output=True, text=True).stdout == "sh\n"
    assert [p.read_text() for p in procs] == ["0\n", "0\n"]  # "0": the writer itself
    assert cgroups.join_argv([], ["true"], env) == ["true"]


def test_join_stub_fails_closed_when_a_cgroup_cannot_be_joined(tmp_path):
    argv = cgroups.join_argv([str(tmp_path / "missing" / "cgroup.procs")], ["true"], {})
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == cgroups.JOIN_FAILED_EXIT_CODE
    assert "missing" in done.stderr


# ---------------------------------------------------------------- the throttler

def run_duty(limit_cores: float, demand_cores: float, periods: int, period_s: float = 0.1):
    """A container that would use `demand_cores` when running; its CPU time."""
    duty = throttle.DutyCycle(limit_cores, period_s)
    t, cpu_ns, stopped = 0.0, 0, duty.step(0.0, 0)
    for _ in range(periods):
        t += period_s
        if not stopped:
            cpu_ns += int(demand_cores * period_s * 1e9)
        stopped = duty.step(t, cpu_ns)
    return cpu_ns / 1e9 / t, duty


@pytest.mark.parametrize("limit, demand, low, high", [
    (0.2, 1.0, 0.15, 0.25),
    (0.5, 1.0, 0.4, 0.6),
    (0.2, 2.0, 0.15, 0.25),   # two busy threads: still the limit
    (0.5, 0.3, 0.29, 0.31),   # under the limit: never stopped
], ids=["200m-busy", "500m-busy", "200m-two-cores", "under-limit"])
def test_duty_cycle_holds_usage_near_the_limit(limit, demand, low, high):
    rate, _ = run_duty(limit, demand, periods=500)
    assert low <= rate <= high


def test_duty_cycle_bounds_a_stop_and_the_burst():
    duty = throttle.DutyCycle(0.1, 0.1, stop_s_max=2.0)
    duty.step(0.0, 0)
    assert duty.step(0.1, int(50e9))  # 50 s of CPU in one sample: stopped...
    assert duty.balance_s == pytest.approx(-0.2)  # ...for at most stop_s_max
    stopped = [duty.step(0.1 + 0.1 * i, int(50e9)) for i in range(1, 25)]
    assert stopped.index(False) <= 20
    for i in range(1000):  # long idle: no more than the burst saved up
        duty.step(3.0 + i, int(50e9))
    assert duty.balance_s == pytest.approx(0.1 * 0.1 * throttle.BURST_PERIODS)


# ---------------------------------------------------------------- cluster_home

def test_cluster_home_finds_only_well_formed_recorded_parents(tmp_path):
    home = tmp_path / "home"
    good = tmp_path / "cg" / "memory" / "kubemu" / "0123456789abcdef"
    bad = tmp_path / "cg" / "memory" / "elsewhere"
    for d in (good, bad):
        d.mkdir(parents=True)
    (good / "c1").mkdir()
    (good / "c1" / "cgroup.procs").write_text("123\n456\n")
    for node, parents in (("node-0", [str(good), str(bad), 7]), ("node-1", "nonsense")):
        rt = cluster_home.runtime_root(home, node)
        rt.mkdir(parents=True)
        (rt / cluster_home.RUNTIME_CGROUPS_FILE).write_text(json.dumps({"parents": parents}))
    assert cluster_home.cgroup_parents(home) == [good]
    assert cluster_home.cgroup_parents(home, "node-1") == []
    assert cluster_home.cgroup_pids(home) == {123, 456}
    assert cgroupfs.members([good]) == {123, 456}
