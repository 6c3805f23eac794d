"""Process helpers: identity, liveness, exit codes, signals, tree sampling.

A process is identified by (pid, start time). On Linux the start time is the
`starttime` field of /proc/<pid>/stat (clock ticks since boot), which never
changes for a process; psutil's create_time (wall clock) is recorded too but
shifts when the clock is stepped, so it is only the fallback. A zombie counts
as exited: its exit status belongs to whoever reaps it.

`sample_trees` reads the whole process table once and sums RSS and CPU time
over each container's process tree (descendants of its roots, plus processes
seen in the tree before that were re-parented away): the usage of containers
without cgroups. `set_child_subreaper`, `child_pids` and `reap_zombies` keep
what containers orphan within the runtime's reach and reap it.
"""
from __future__ import annotations

import dataclasses
import os
import signal
from typing import Iterable, Mapping

import psutil

CREATE_TIME_TOLERANCE_S = 1.0
_DEAD_STATES = ("Z", "X", "x")


@dataclasses.dataclass(frozen=True)
class Identity:
    pid: int
    start_ticks: int = -1        # /proc/<pid>/stat starttime; -1 where there is no /proc
    create_time: float = 0.0     # psutil create_time, unix seconds

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def identify(pid: int) -> Identity | None:
    """The identity of a live (or zombie) process, None when there is none."""
    fields = _proc_stat(pid)
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        if fields is None:
            return None
        create_time = 0.0
    start_ticks = int(fields[19]) if fields and len(fields) > 19 else -1
    return Identity(pid=pid, start_ticks=start_ticks, create_time=create_time)


def is_running(identity: Identity) -> bool:
    """True while that very process exists and has not exited (zombies have)."""
    fields = _proc_stat(identity.pid)
    if fields is not None and identity.start_ticks >= 0:
        return fields[0] not in _DEAD_STATES and int(fields[19]) == identity.start_ticks
    try:
        proc = psutil.Process(identity.pid)
        if abs(proc.create_time() - identity.create_time) > CREATE_TIME_TOLERANCE_S:
            return False
        return proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def cmdline(pid: int) -> list[str]:
    """A process's argv from /proc (empty when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in data.split(b"\0")[:-1]]


def exit_code(returncode: int) -> int:
    """A shell's convention: death by signal N is 128 + N (SIGKILL: 137)."""
    return 128 - returncode if returncode < 0 else returncode


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when there is none left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def signal_process(identity: Identity, sig: int) -> None:
    if is_running(identity):
        try:
            os.kill(identity.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def group_has_members(pgid: int) -> bool:
    """Does any live process still belong to process group `pgid`?"""
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def container_members(pgid: int, env_marker: str) -> list[int]:
    """Live processes in group `pgid` whose environment holds `env_marker`
    (e.g. "KUBEMU_ROOTFS=<rootfs>"). For a group whose leader is long gone, the
    group id alone does not prove the processes are the container's."""
    marker = env_marker.encode()
    members = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not name.isdigit():
            continue
        fields = _proc_stat(int(name))
        if fields is None or len(fields) < 3 or fields[0] in _DEAD_STATES:
            continue
        if int(fields[2]) != pgid:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    members.append(int(name))
        except OSError:
            continue
    return members


@dataclasses.dataclass
class TreeSample:
    rss_bytes: int = 0
    cpu_ns: int = 0               # cumulative user+system, reaped children included
    processes: dict[int, Identity] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TreeQuery:
    roots: tuple[Identity, ...]           # the leader, running exec commands
    known: tuple[Identity, ...] = ()      # members seen before (may have been re-parented)


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids, from one scan of /proc (psutil's process_iter costs ~5x more,
    and this runs every monitor period)."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        names = None
    if names is not None:
        for name in names:
            if not name.isdigit():
                continue
            fields = _proc_stat(int(name))
            if fields is not None and len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(name))
        return children
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children.setdefault(ppid, []).append(proc.pid)
    return children


def _measure(pid: int) -> tuple[Identity, int, int] | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return None
            times = proc.cpu_times()
            cpu_s = times.user + times.system + getattr(times, "children_user", 0.0) + \
                getattr(times, "children_system", 0.0)
            rss = proc.memory_info().rss
            create_time = proc.create_time()
    except psutil.Error:
        return None
    fields = _proc_stat(pid)
    start_ticks = int(fields[19]) if fields and len(fields) > 19 else -1
    return Identity(pid, start_ticks, create_time), rss, int(cpu_s * 1e9)


def sample_trees(queries: Mapping[str, TreeQuery]) -> dict[str, TreeSample]:
    """One pass over the process table; blocking (run it in a thread)."""
    if not queries:
        return {}
    children = _children_map()
    samples: dict[str, TreeSample] = {}
    for key, query in queries.items():
        sample = TreeSample()
        pending = [i.pid for i in (*query.roots, *query.known) if is_running(i)]
        seen: set[int] = set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            measured = _measure(pid)
            if measured is None:
                continue
            identity, rss, cpu_ns = measured
            sample.processes[pid] = identity
            sample.rss_bytes += rss
            sample.cpu_ns += cpu_ns
            pending.extend(children.get(pid, ()))
        samples[key] = sample
    return samples


def kill_all(identities: Iterable[Identity]) -> None:
    for identity in identities:
        signal_process(identity, signal.SIGKILL)


def reap(pid: int, block: bool = True) -> int | None:
    """Collect the exit of a child (or of a process re-parented to us, a child
    subreaper): its returncode as subprocess reports it (-N for signal N), or
    None when it is not ours (or, not blocking, still running)."""
    try:
        got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return None
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(status)


# ---------------------------------------------------------------- subreaper

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def set_child_subreaper() -> bool:
    """Become a child subreaper: what a container orphans (a double fork, a
    daemon) is re-parented to this process instead of init, so it stays
    within reach (and is reaped here). True when it is (or already was) one."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        if libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value:
            return True
        return libc.prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def child_pids(pid: int | None = None) -> set[int]:
    """The direct children of a process (every thread's), from
    /proc/<pid>/task/*/children; empty where the kernel does not list them."""
    pid = os.getpid() if pid is None else pid
    children: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                children.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return children


def reap_zombies(candidates: Iterable[int]) -> list[int]:
    """waitpid the candidates that are zombies (orphans re-parented to this
    subreaper that nobody else will reap); the pids reaped."""
    reaped = []
    for pid in candidates:
        fields = _proc_stat(pid)
        if fields is None or fields[0] != "Z":
            continue
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done:
            reaped.append(pid)
    return reaped


def attribute_orphans(orphans: Iterable[int], leaders: Mapping[int, str],
                      markers: Mapping[str, str]) -> dict[str, list[Identity]]:
    """Which container each orphan (a live child the runtime did not start:
    re-parented to it, a subreaper) came from, where that can be told without
    a cgroup: its session or process group is a running container's leader
    (`leaders`: leader pid -> key), or its environment holds a container's
    marker (`markers`: "KUBEMU_ROOTFS=<rootfs>" -> key). An orphan that left
    both and dropped the marker (`setsid env -i ...`) cannot be told: the
    plain mode's gap. Blocking (reads /proc)."""
    found: dict[str, list[Identity]] = {}
    encoded = {m.encode(): key for m, key in markers.items()}
    for pid in orphans:
        fields = _proc_stat(pid)
        if fields is None or len(fields) < 20 or fields[0] in _DEAD_STATES:
            continue
        key = leaders.get(int(fields[3])) or leaders.get(int(fields[2]))
        if key is None and encoded:
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                env = []
            key = next((encoded[e] for e in env if e in encoded), None)
        if key is not None:
            identity = Identity(pid=pid, start_ticks=int(fields[19]))
            found.setdefault(key, []).append(identity)
    return found
