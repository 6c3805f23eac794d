"""Process helpers: identity, liveness, exit codes, signals, tree sampling.

A process is identified by (pid, start time). On Linux the start time is the
`starttime` field of /proc/<pid>/stat (clock ticks since boot), which never
changes for a process; psutil's create_time (wall clock) is recorded too but
shifts when the clock is stepped, so it is only the fallback. A zombie counts
as exited: its exit status belongs to whoever reaps it.

`sample_trees` reads the whole process table once and sums RSS and CPU time
over each container's process tree (descendants of its roots, plus processes
seen in the tree before that were re-parented away).
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


def zombie_children(ppid: int) -> list[int]:
    """Zombie children of `ppid` (blocking: it reads /proc). Their list comes
    from /proc/<ppid>/task/*/children where the kernel has it, else from a
    scan of every process."""
    pids: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{ppid}/task"):
            with open(f"/proc/{ppid}/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
    except OSError:
        pids = {pid for parent, children in _children_map().items() if parent == ppid
                for pid in children}
    found = []
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None and fields[0] == "Z" and int(fields[1]) == ppid:
            found.append(pid)
    return found
