"""Containers' cgroups: what the kernel lets this runtime write, one cgroup
per container, its limits, its usage, its OOM kills, and killing all of it.

Detection (`detect`, at runtime start): cgroup v2 when the unified hierarchy
is mounted at the cgroup root (`<fs>/cgroup.controllers` exists); else v1,
one hierarchy per mounted directory (`<fs>/memory`, `<fs>/cpu`,
`<fs>/cpu,cpuacct`, ...; a hybrid machine's `<fs>/unified` has no
controllers and is not used). `Cgroups.open` then makes the runtime's parent
cgroup, `kubemu/<unique>` (`unique` is derived from the runtime's root, so
two runtimes never share one, and a restarted runtime finds its own again),
in each hierarchy it can write:
  - v1: `<fs>/<hierarchy>/kubemu/<unique>` for memory, cpu, cpuacct, pids;
  - v2: `<fs>/kubemu/<unique>` with memory, cpu, pids enabled in the
    `cgroup.subtree_control` of each level; where the cgroup root is not
    writable (an unprivileged runtime), under the runtime's own cgroup,
    which works where that subtree was delegated to it (a controller that
    cannot be enabled there is not used: only tracking and kill remain).
A controller the runtime cannot write is simply not in `controllers`; the
runtime falls back (memory: its RSS watch; CPU: its duty-cycle throttler).

Per container: `<parent>/<container id>` in every parent. The container's
first process joins them before it execs (`procs_files`: the cgroup.procs
paths it writes "0" into), so everything it starts is inside and stays
inside, whatever it does with sessions, process groups or its environment.
  - memory: v1 memory.limit_in_bytes; v2 memory.max, memory.swap.max 0 and
    memory.oom.group 1 (as the kubelet sets it on v2: an OOM kill takes the
    whole container, so its main process dies by SIGKILL: 137). v1 has no
    oom.group: the runtime kills the rest itself when it sees `oom_kills`
    grow. OOM kills: v1 memory.oom_control `oom_kill` (Linux 4.13), else
    memory.failcnt (hit the limit; reported only with a SIGKILL death);
    v2 memory.events `oom_kill`.
  - cpu: v1 cpu.cfs_period_us 100000 and cpu.cfs_quota_us; v2 cpu.max.
  - usage: cpu ns from v1 cpuacct.usage / v2 cpu.stat usage_usec; working set
    as cadvisor: usage minus inactive file pages (v1 memory.usage_in_bytes -
    total_inactive_file, v2 memory.current - inactive_file); rss: v1
    total_rss, v2 anon.
  - kill: kubemu.cgroupfs.kill_all (v2 cgroup.kill where present).
The parents are recorded in <root>/cgroups.json (kubemu.cluster_home reads
it: `kubemu down` stops what is in them and removes them).

Every call is blocking (cgroupfs reads and writes, mkdir/rmdir): from a
coroutine, run it in a thread.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Callable, Iterable

import structlog

from kubemu import cgroupfs
from kubemu.cluster_home import RUNTIME_CGROUPS_FILE
from kubemu.fileutil import atomic_write

log = structlog.get_logger()

DEFAULT_FS = pathlib.Path("/sys/fs/cgroup")
PARENT_DIR = "kubemu"
MEMORY, CPU, CPUACCT, PIDS = "memory", "cpu", "cpuacct", "pids"
V1_CONTROLLERS = (MEMORY, CPU, CPUACCT, PIDS)
V2_CONTROLLERS = (MEMORY, CPU, PIDS)
CFS_PERIOD_US = 100_000
CFS_QUOTA_US_MIN = 1_000  # the kernel refuses less
UNIQUE_CHARS = 16
MODES = ("auto", "none")


def unique_name(root: pathlib.Path) -> str:
    """The runtime's own parent name: stable for one root, distinct across roots."""
    digest = hashlib.sha256(str(pathlib.Path(root).resolve()).encode()).hexdigest()
    return digest[:UNIQUE_CHARS]


def cfs_quota_us(cpu_limit_millis: int, period_us: int = CFS_PERIOD_US) -> int:
    """The kubelet's MilliCPUToQuota: millis/1000 of each period, at least 1 ms."""
    return max(CFS_QUOTA_US_MIN, cpu_limit_millis * period_us // 1000)


# ---------------------------------------------------------------- detection

@dataclasses.dataclass(frozen=True)
class Hierarchy:
    mount: pathlib.Path
    version: int                     # 1 or 2
    controllers: frozenset[str]


def _read(path: pathlib.Path) -> str:
    with open(path) as f:
        return f.read()


def detect(fs: pathlib.Path = DEFAULT_FS) -> list[Hierarchy]:
    """The hierarchies mounted under `fs` that kubemu can use (no writes)."""
    fs = pathlib.Path(fs)
    unified = fs / "cgroup.controllers"
    if unified.is_file():
        try:
            names = frozenset(_read(unified).split())
        except OSError:
            names = frozenset()
        return [Hierarchy(fs, 2, names)]
    found = []
    try:
        entries = sorted(os.scandir(fs), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            continue  # cpu -> cpu,cpuacct: the same hierarchy under another name
        path = pathlib.Path(entry.path)
        if (path / "cgroup.controllers").exists() or not (path / cgroupfs.PROCS_FILE).exists():
            continue
        names = frozenset(n for n in entry.name.split(",") if n in V1_CONTROLLERS)
        if names:
            found.append(Hierarchy(path, 1, names))
    return found


def self_cgroup_v2(proc_self_cgroup: str) -> str:
    """This process's v2 cgroup path ("0::/a/b" -> "a/b"), '' when unknown."""
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip().strip("/")
    return ""


# ---------------------------------------------------------------- usage

@dataclasses.dataclass(frozen=True)
class Usage:
    cpu_ns: int
    working_set_bytes: int
    rss_bytes: int
    memory_bytes: int                # usage including page cache
    process_count: int


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events, oom_control)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def working_set(usage_bytes: int, inactive_file_bytes: int) -> int:
    """cadvisor's working set: what the kernel would not simply drop."""
    return max(0, usage_bytes - inactive_file_bytes)


# ---------------------------------------------------------------- the runtime's cgroups

@dataclasses.dataclass(frozen=True)
class Applied:
    """Which of a container's limits its cgroup enforces (`tracked`: it has one)."""
    memory: bool = False
    cpu: bool = False
    tracked: bool = False


class Cgroups:
    """The runtime's parent cgroups and its containers' cgroups in them.

    `parents` maps each parent directory to the controllers used there.
    An instance with no parents (`Cgroups.disabled()`) answers every query
    with "nothing": the runtime's fallbacks apply."""

    def __init__(self, version: int, parents: dict[pathlib.Path, frozenset[str]],
                 rmdir: Callable[[pathlib.Path], None] = os.rmdir):
        self.version = version
        self.parents = dict(parents)
        self.rmdir = rmdir

    @classmethod
    def disabled(cls) -> Cgroups:
        return cls(0, {})

    @classmethod
    def open(cls, root: pathlib.Path, *, fs: pathlib.Path = DEFAULT_FS, mode: str = "auto",
             proc_self_cgroup: str | None = None,
             rmdir: Callable[[pathlib.Path], None] = os.rmdir) -> Cgroups:
        """Detect, make the parents this runtime can write, record them under
        `root` (RUNTIME_CGROUPS_FILE). Never raises for a kernel that says no."""
        if mode not in MODES:
            raise ValueError(f"cgroups mode {mode!r}: must be one of {', '.join(MODES)}")
        found = cls.disabled() if mode == "none" else cls._open(
            root, pathlib.Path(fs), proc_self_cgroup, rmdir)
        found.rmdir = rmdir
        found.record(root)
        return found

    @classmethod
    def _open(cls, root: pathlib.Path, fs: pathlib.Path, proc_self_cgroup: str | None,
              rmdir: Callable[[pathlib.Path], None]) -> Cgroups:
        hierarchies = detect(fs)
        unique = unique_name(root)
        if hierarchies and hierarchies[0].version == 2:
            if proc_self_cgroup is None:
                try:
                    proc_self_cgroup = _read(pathlib.Path("/proc/self/cgroup"))
                except OSError:
                    proc_self_cgroup = ""
            own = self_cgroup_v2(proc_self_cgroup)
            bases = [fs] + ([fs / own] if own else [])
            for base in bases:
                made = _open_v2(base, unique, hierarchies[0].controllers)
                if made is not None:
                    parent, controllers = made
                    return cls(2, {parent: controllers}, rmdir)
            return cls.disabled()
        parents: dict[pathlib.Path, frozenset[str]] = {}
        for h in hierarchies:
            parent = h.mount / PARENT_DIR / unique
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                log.info("cgroup hierarchy not writable", hierarchy=str(h.mount), error=str(err))
                continue
            parents[parent] = h.controllers
        return cls(1 if parents else 0, parents, rmdir)

    # ------------------------------------------------------------ what is in use

    @property
    def controllers(self) -> list[str]:
        names: set[str] = set()
        for c in self.parents.values():
            names |= c
        return sorted(names)

    def has(self, controller: str) -> bool:
        return any(controller in c for c in self.parents.values())

    @property
    def tracking(self) -> bool:
        """Can the runtime find (and kill) every process of a container?"""
        return bool(self.parents)

    def describe(self) -> str:
        if not self.parents:
            return "none"
        return f"v{self.version} ({', '.join(self.controllers) or 'no controllers'})"

    def record(self, root: pathlib.Path) -> None:
        """Write the parents where `kubemu down` finds them."""
        data = {"version": self.version, "parents": sorted(str(p) for p in self.parents)}
        atomic_write(pathlib.Path(root) / RUNTIME_CGROUPS_FILE, json.dumps(data), fsync=False)

    def _parent(self, controller: str) -> pathlib.Path | None:
        return next((p for p, c in self.parents.items() if controller in c), None)

    def _dir(self, controller: str, container_id: str) -> pathlib.Path | None:
        parent = self._parent(controller)
        return None if parent is None else parent / container_id

    def dirs(self, container_id: str) -> list[pathlib.Path]:
        return [p / container_id for p in self.parents]

    def procs_files(self, container_id: str) -> list[str]:
        """The cgroup.procs files a container's first process joins (writes
        "0" or its pid into) before it execs: the nsinit contract
        (spec["cgroup_procs"]) and the plain mode's launcher."""
        return [str(d / cgroupfs.PROCS_FILE) for d in self.dirs(container_id)]

    # ------------------------------------------------------------ lifecycle

    def create(self, container_id: str, memory_limit_bytes: int,
               cpu_limit_millis: int) -> Applied:
        """Make the container's cgroups and set its limits; what is enforced."""
        for d in self.dirs(container_id):
            d.mkdir(exist_ok=True)
        memory = cpu = False
        if memory_limit_bytes > 0 and (d := self._dir(MEMORY, container_id)) is not None:
            memory = self._set_memory(d, memory_limit_bytes)
        if cpu_limit_millis > 0 and (d := self._dir(CPU, container_id)) is not None:
            cpu = self._set_cpu(d, cpu_limit_millis)
        return Applied(memory=memory, cpu=cpu, tracked=bool(self.parents))

    def _set_memory(self, d: pathlib.Path, limit_bytes: int) -> bool:
        try:
            if self.version == 2:
                (d / "memory.max").write_text(str(limit_bytes))
                for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    if (d / name).exists():
                        (d / name).write_text(value)
            else:
                (d / "memory.limit_in_bytes").write_text(str(limit_bytes))
            return True
        except OSError as err:
            log.warning("memory limit not set", cgroup=str(d), error=str(err))
            return False

    def _set_cpu(self, d: pathlib.Path, limit_millis: int) -> bool:
        quota = cfs_quota_us(limit_millis)
        try:
            if self.version == 2:
                (d / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
            else:
                (d / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (d / "cpu.cfs_quota_us").write_text(str(quota))
            return True
        except OSError as err:
            log.warning("cpu limit not set", cgroup=str(d), error=str(err))
            return False

    def members(self, container_id: str) -> set[int]:
        """Every process in the container's cgroups."""
        return cgroupfs.members(self.dirs(container_id))

    def kill(self, container_id: str, **bounds) -> set[int]:
        """SIGKILL everything in the container's cgroups, until empty (bounded);
        the pids left."""
        return cgroupfs.kill_all(self.dirs(container_id), **bounds)

    def remove(self, container_id: str) -> list[pathlib.Path]:
        """Kill what is left and remove the container's cgroups; the dirs left."""
        dirs = self.dirs(container_id)
        if not any(d.exists() for d in dirs):
            return []
        cgroupfs.kill_all(dirs)
        return cgroupfs.remove(dirs, rmdir=self.rmdir)

    def remove_parents(self) -> list[pathlib.Path]:
        """Remove the runtime's parents when they are empty (busy ones stay)."""
        left = []
        for parent in self.parents:
            try:
                self.rmdir(parent)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(parent)
                continue
            try:
                self.rmdir(parent.parent)  # kubemu/: shared by every runtime; only when empty
            except OSError:
                pass
        return left

    def cleanup(self, keep: Iterable[str]) -> list[str]:
        """Kill and remove the container cgroups not in `keep` (left by a runtime
        that died, or by containers removed while it was down); their ids."""
        keep = set(keep)
        stale: set[str] = set()
        for parent in self.parents:
            try:
                stale |= {e.name for e in os.scandir(parent)
                          if e.is_dir(follow_symlinks=False) and e.name not in keep}
            except OSError:
                continue
        for container_id in sorted(stale):
            left = self.remove(container_id)
            if left:
                log.warning("stale cgroup not removed", container=container_id[:12],
                            left=[str(p) for p in left])
        return sorted(stale)

    # ------------------------------------------------------------ usage and OOM

    def usage(self, container_id: str) -> Usage | None:
        """The container's usage from its cgroups; None without cpu and memory
        accounting (then the runtime samples the process tree)."""
        cpu_dir = self._dir(CPUACCT if self.version == 1 else CPU, container_id)
        mem_dir = self._dir(MEMORY, container_id)
        if cpu_dir is None or mem_dir is None:
            return None
        try:
            if self.version == 2:
                cpu_ns = parse_flat_keyed(_read(cpu_dir / "cpu.stat")).get("usage_usec", 0) * 1000
                current = int(_read(mem_dir / "memory.current"))
                stat = parse_flat_keyed(_read(mem_dir / "memory.stat"))
                inactive, rss = stat.get("inactive_file", 0), stat.get("anon", 0)
            else:
                cpu_ns = int(_read(cpu_dir / "cpuacct.usage"))
                current = int(_read(mem_dir / "memory.usage_in_bytes"))
                stat = parse_flat_keyed(_read(mem_dir / "memory.stat"))
                inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
                rss = stat.get("total_rss", stat.get("rss", 0))
        except (OSError, ValueError):
            return None
        return Usage(cpu_ns=cpu_ns, working_set_bytes=working_set(current, inactive),
                     rss_bytes=rss, memory_bytes=current,
                     process_count=len(cgroupfs.read_procs(mem_dir)))

    def oom_kills(self, container_id: str) -> tuple[int, bool]:
        """(count, exact): the kernel's OOM kills in the container's memory
        cgroup; not exact on a v1 kernel without oom_control's oom_kill, where
        the count is memory.failcnt (times the limit was hit)."""
        d = self._dir(MEMORY, container_id)
        if d is None:
            return 0, True
        try:
            if self.version == 2:
                events = parse_flat_keyed(_read(d / "memory.events"))
                return events.get("oom_kill", 0) + events.get("oom_group_kill", 0), True
            control = parse_flat_keyed(_read(d / "memory.oom_control"))
            if "oom_kill" in control:
                return control["oom_kill"], True
            return int(_read(d / "memory.failcnt")), False
        except (OSError, ValueError):
            return 0, True


def _open_v2(base: pathlib.Path, unique: str,
             available: frozenset[str]) -> tuple[pathlib.Path, frozenset[str]] | None:
    """Make <base>/kubemu/<unique> and enable what it can in every level's
    subtree_control; None when the directory cannot be made there."""
    parent = base / PARENT_DIR / unique
    try:
        parent.mkdir(parents=True, exist_ok=True)
        (parent / cgroupfs.PROCS_FILE).stat()
    except OSError as err:
        log.info("cgroup v2 base not writable", base=str(base), error=str(err))
        return None
    enabled = set()
    for name in V2_CONTROLLERS:
        if name not in available:
            continue
        ok = True
        for level in (base, base / PARENT_DIR, parent):
            control = level / "cgroup.subtree_control"
            try:
                if name in _read(control).split():
                    continue
                control.write_text(f"+{name}")
            except OSError:
                ok = False
                break
        if ok:
            enabled.add(name)
    return parent, frozenset(enabled)


# ---------------------------------------------------------------- joining

# The plain mode's launcher: the container's first process (and each exec'd
# command) is a shell that writes "0" (itself) into each cgroup.procs, then
# execs the command, so the move happens before the command runs and before
# it can fork: nothing it starts is ever outside. (No preexec_fn: not safe in
# a process with threads.) A failed write ends it with JOIN_FAILED_EXIT_CODE
# and the shell's message in the container's log.
JOIN_STUB = ('n=$1; shift; while [ "$n" -gt 0 ]; do '
             'echo 0 > "$1" || exit 128; shift; n=$((n - 1)); done; exec "$@"')
# What a shell adds to the environment it passes on; unset unless the
# container's environment had it.
SHELL_ADDED_ENV = ("PWD", "OLDPWD", "SHLVL")
JOIN_SHELL = "/bin/sh"
JOIN_ARGV0 = "kubemu-join-cgroup"
JOIN_FAILED_EXIT_CODE = 128


def is_join_stub(cmdline: list[str]) -> bool:
    """Is this process still the join stub (it has not exec'd the command yet)?"""
    return len(cmdline) > 3 and cmdline[:2] == [JOIN_SHELL, "-c"] and \
        cmdline[3] == JOIN_ARGV0


def join_argv(procs_files: list[str], argv: list[str], env: dict[str, str]) -> list[str]:
    """`argv`, run with `env` after joining the cgroups whose cgroup.procs are given."""
    if not procs_files:
        return list(argv)
    added = [name for name in SHELL_ADDED_ENV if name not in env]
    script = (f"unset {' '.join(added)}; " if added else "") + JOIN_STUB
    return [JOIN_SHELL, "-c", script, JOIN_ARGV0, str(len(procs_files)), *procs_files, *argv]
