"""A cluster's home: the supervisor's files in it, their format, and how a
cluster's processes are found from them. One definition, shared by the
supervisor (deploy/) and the `kubemu` command (which may not import deploy).

Files (DESIGN.md §3), every one private to the cluster's user (written with
kubemu.fileutil: directories 0700, files 0600, whatever the umask):

    <home>/                  the home itself
      state.json             STATE_FILE: a `State`, replaced atomically on every change
      supervisor.pid         PID_FILE: the supervisor's pid, written when it claims the home
      supervisor.lock        LOCK_FILE: flock held by the live supervisor (one per home)
      ready | failed         READY_FILE (an RFC 3339 time: every process healthy) or
                             FAILED_FILE (why start failed)
      logs/                  LOGS_DIR: `<process>.log` per process, SUPERVISOR_LOG
      nodes/<node>/runtime/  a node runtime's root; its `state/containers/<id>.json`
                             records each container (kubelet/runtime/state.py): pid,
                             pid_start_ticks, pid_create_time, rootfs; its
                             `cgroups.json` (RUNTIME_CGROUPS_FILE) the runtime's
                             parent cgroups, each holding one cgroup per container
                             (kubelet/runtime/cgroups.py)

A process belongs to the cluster in `home` when
  - it is recorded (pid plus start time, so a reused pid is never taken for it);
  - its environment carries SUPERVISED_ENV=home: every process the supervisor
    starts, and their children, but not pods (a runtime gives each container a
    clean environment);
  - it is a container process that a node runtime recorded: the container's
    leader (pid plus start ticks), every process in the leader's process group
    or session (containers run in a session of their own) while that leader
    lives, or, once it is gone, those of them still carrying the container's
    ROOTFS_ENV, and any process carrying a recorded container's ROOTFS_ENV;
  - it is in a node runtime's parent cgroup (or a cgroup below it): wherever a
    runtime could make cgroups, every process a container started is there,
    whatever it did with its session, group or environment;
  - when asked, its command line names a path in the home.
The caller, its ancestors and `kubemu` commands never count.

psutil is imported inside the functions that need it: the `kubemu` command
imports this module at start-up, which must stay fast. The functions that scan
processes or wait are blocking: call them from a thread in async code.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import re
import signal
import tempfile
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from kubemu import fileutil

if TYPE_CHECKING:
    import psutil

# --- names ----------------------------------------------------------------

STATE_FILE = "state.json"
PID_FILE = "supervisor.pid"
LOCK_FILE = "supervisor.lock"
READY_FILE = "ready"
FAILED_FILE = "failed"
CONTROL_SOCKET = "control.sock"
# sun_path is 108 bytes with the NUL; kept as deploy.components has it.
UNIX_SOCKET_PATH_MAX_BYTES = 100
LOGS_DIR = "logs"
SUPERVISOR_LOG = "supervisor.log"
NODES_DIR = "nodes"
NODE_MANIFESTS_DIR = "manifests"
NODE_RUNTIME_DIR = "runtime"
# Under a runtime's root; the layout is kubelet/runtime/state.py's.
RUNTIME_CONTAINER_RECORDS = ("state", "containers")
RUNTIME_SANDBOX_RECORDS = ("state", "sandboxes")
# Under a runtime's root: {"version": 1|2|0, "parents": [cgroup directory, ...]}
# (kubelet/runtime/cgroups.py writes it). A parent is always .../kubemu/<hex>.
RUNTIME_CGROUPS_FILE = "cgroups.json"
CGROUP_PARENT_RE = re.compile(r"/kubemu/[0-9a-f]{8,64}$")

HOME_ENV = "KUBEMU_HOME"
# Set on every process the supervisor starts and inherited by their children
# (not by pods), so anything a cluster left behind can be found by it.
SUPERVISED_ENV = "KUBEMU_SUPERVISED_HOME"
# Every container's environment has it (kubelet/runtime/__init__.py): the
# container's own root directory, unique per container.
ROOTFS_ENV = "KUBEMU_ROOTFS"

# `python -m deploy up` exits with this when another supervisor holds the home.
SUPERVISOR_EXIT_ALREADY_RUNNING = 3

STATE_FORMAT_VERSION = 1
STATE_BYTES_MAX = 4 << 20
RECORD_BYTES_MAX = 1 << 20
CONTAINER_RECORDS_MAX = 20_000
CREATE_TIME_SLACK_S = 0.05
KILL_WAIT_S = 5.0
POLL_S = 0.05


class ClusterState:
    NEW = "new"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


class ProcState:
    STARTING = "starting"
    RUNNING = "running"      # passed its health check
    BACKOFF = "backoff"      # died; waiting to be restarted
    EXITED = "exited"        # died and restart is off
    STOPPING = "stopping"
    STOPPED = "stopped"      # stopped (through the control API: down until started)
    PAUSED = "paused"        # SIGSTOPped through the control API
    PARTITIONED = "partitioned"  # running, but its links are cut


# A process recorded in one of these states should be alive.
LIVE_STATES = (ProcState.STARTING, ProcState.RUNNING, ProcState.STOPPING, ProcState.PAUSED,
               ProcState.PARTITIONED)


def state_path(home: pathlib.Path) -> pathlib.Path:
    return home / STATE_FILE


def control_socket(home: pathlib.Path) -> pathlib.Path:
    """The supervisor's control API socket: <home>/control.sock, or a short path
    in the temp directory when that one is too long for a unix socket (108 bytes
    with the NUL); the supervisor makes it 0600 either way."""
    preferred = home / CONTROL_SOCKET
    if len(os.fsencode(str(preferred))) <= UNIX_SOCKET_PATH_MAX_BYTES:
        return preferred
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return pathlib.Path(tempfile.gettempdir()) / f"kubemu-{digest}-control.sock"


def logs_dir(home: pathlib.Path) -> pathlib.Path:
    return home / LOGS_DIR


def supervisor_log(home: pathlib.Path) -> pathlib.Path:
    return home / LOGS_DIR / SUPERVISOR_LOG


def node_dir(home: pathlib.Path, node: str) -> pathlib.Path:
    return home / NODES_DIR / node


def runtime_root(home: pathlib.Path, node: str) -> pathlib.Path:
    return node_dir(home, node) / NODE_RUNTIME_DIR


def manifests_dir(home: pathlib.Path, node: str) -> pathlib.Path:
    """The node's static pod manifests (its kubelet's --pod-manifest-path), as
    kubeadm's /etc/kubernetes/manifests: a pod file dropped here runs on that node."""
    return node_dir(home, node) / NODE_MANIFESTS_DIR


def make_private_home(home: pathlib.Path) -> None:
    """The home and its logs directory, 0700 (made if missing). Blocking, quick."""
    fileutil.private_dir(home)
    fileutil.private_dir(logs_dir(home))


# --- the state file ---------------------------------------------------------

def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclasses.dataclass
class SupervisorRecord:
    pid: int
    create_time: float | None = None
    argv: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any) -> SupervisorRecord | None:
        if not isinstance(data, dict) or _int_or_none(data.get("pid")) is None:
            return None
        argv = data.get("argv")
        return cls(pid=data["pid"], create_time=_float_or_none(data.get("create_time")),
                   argv=[str(a) for a in argv] if isinstance(argv, list) else [])


@dataclasses.dataclass
class ProcessRecord:
    name: str
    component: str
    node: str = ""
    pid: int | None = None
    create_time: float | None = None
    state: str = ProcState.STARTING
    restarts: int = 0
    address: str = ""
    exit_code: int | None = None
    log: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> ProcessRecord | None:
        if not isinstance(data, dict):
            return None
        return cls(name=_str(data.get("name")), component=_str(data.get("component")) or "?",
                   node=_str(data.get("node")), pid=_int_or_none(data.get("pid")),
                   create_time=_float_or_none(data.get("create_time")),
                   state=_str(data.get("state")) or "unknown",
                   restarts=_int_or_none(data.get("restarts")) or 0,
                   address=_str(data.get("address")), exit_code=_int_or_none(data.get("exit_code")),
                   log=_str(data.get("log")))


@dataclasses.dataclass
class State:
    """state.json: what the supervisor does, for `kubemu up|status|down`."""

    home: str
    state: str
    supervisor: SupervisorRecord | None = None
    reason: str = ""
    updated: str = ""
    etcd_version: str = ""
    nodes: list[str] = dataclasses.field(default_factory=list)
    processes: list[ProcessRecord] = dataclasses.field(default_factory=list)
    progress: list[str] = dataclasses.field(default_factory=list)
    version: int = STATE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> State | None:
        """None when `data` is not a state document. Unknown keys are ignored
        and malformed process entries skipped: `kubemu status` shows what it can."""
        if not isinstance(data, dict) or not isinstance(data.get("state"), str):
            return None
        processes = data.get("processes")
        progress = data.get("progress")
        nodes = data.get("nodes")
        return cls(
            home=_str(data.get("home")), state=data["state"],
            supervisor=SupervisorRecord.from_dict(data.get("supervisor")),
            reason=_str(data.get("reason")), updated=_str(data.get("updated")),
            etcd_version=_str(data.get("etcd_version")),
            nodes=[str(n) for n in nodes] if isinstance(nodes, list) else [],
            processes=[p for p in map(ProcessRecord.from_dict,
                                      processes if isinstance(processes, list) else [])
                       if p is not None],
            progress=[str(line) for line in progress] if isinstance(progress, list) else [],
            version=_int_or_none(data.get("version")) or STATE_FORMAT_VERSION)

    def recorded(self) -> list[tuple[int, float | None]]:
        """(pid, start time) of every process the state names."""
        return [(p.pid, p.create_time) for p in self.processes if p.pid]


def read_state(home: pathlib.Path) -> State | None:
    """state.json, or None when there is none (or it is not one)."""
    try:
        with open(state_path(home), "rb") as f:
            raw = f.read(STATE_BYTES_MAX + 1)
        doc = json.loads(raw) if len(raw) <= STATE_BYTES_MAX else None
    except (OSError, ValueError):
        return None
    return State.from_dict(doc)


def write_state(home: pathlib.Path, state: State) -> None:
    """Replace state.json (0600) atomically. Blocking. No fsync: it is rewritten
    on every change and describes processes that a machine crash ends anyway."""
    fileutil.atomic_write(state_path(home), json.dumps(state.to_dict(), indent=1) + "\n",
                          fsync=False)


# --- the supervisor's lock ----------------------------------------------------

def claim_lock(home: pathlib.Path) -> int | None:
    """Take the home's supervisor lock: its fd (closing it releases the lock),
    or None when a live supervisor holds it. The fd is not inherited by children,
    so the lock dies with the process that took it."""
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, fileutil.FILE_MODE)
    try:
        os.fchmod(fd, fileutil.FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def supervisor_lock_held(home: pathlib.Path) -> bool:
    """Does a live supervisor hold that home's lock?"""
    try:
        fd = os.open(pathlib.Path(home) / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we got it


# --- process checks -----------------------------------------------------------

def alive(pid: Any, create_time: Any = None) -> psutil.Process | None:
    """The process with that pid (and start time, when known), if it runs."""
    import psutil

    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if isinstance(create_time, (int, float)) and \
                abs(proc.create_time() - create_time) > CREATE_TIME_SLACK_S:
            return None  # the pid was reused by an unrelated process
        return proc
    except psutil.Error:
        return None


def running(proc: psutil.Process) -> bool:
    """Still that very process, and not a zombie."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def lock_holder(home: pathlib.Path) -> int | None:
    """The pid holding the home's supervisor lock (flock), from /proc/locks, or
    None: what finds the supervisor when its pid file is gone. Blocking."""
    try:
        st = os.stat(pathlib.Path(home) / LOCK_FILE)
        with open("/proc/locks") as f:
            table = f.read(1 << 20)
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" ("->" marks a waiter)
        if len(fields) >= 6 and fields[1] == "FLOCK" and "->" not in fields:
            if fields[5] == wanted and fields[4].isdigit():
                return int(fields[4])
    return None


def running_supervisor(home: pathlib.Path) -> psutil.Process | None:
    """The live supervisor of `home`, found by its pid file, else (the file
    gone) as the holder of the home's lock."""
    import psutil

    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        holder = lock_holder(home)
        proc = alive(holder) if holder else None
        try:
            cmdline = proc.cmdline() if proc else []
        except psutil.Error:
            return None
        return proc if "deploy" in cmdline and "up" in cmdline else None
    state = read_state(home)
    recorded = state.supervisor if state else None
    if recorded is not None and recorded.pid == pid:
        return alive(pid, recorded.create_time)
    # The pid file is written before the first state: check it is a supervisor.
    proc = alive(pid)
    try:
        cmdline = proc.cmdline() if proc else []
    except psutil.Error:
        return None
    return proc if "deploy" in cmdline and "up" in cmdline else None


def is_cli(cmdline: Iterable[str]) -> bool:
    """A `kubemu ...` command (someone asking about the cluster), not part of it."""
    cmdline = list(cmdline)
    head = [os.path.basename(a) for a in cmdline[:2]]
    return "kubemu" in head or "kubemu.cli.main" in cmdline


def wait_gone(procs: Sequence[psutil.Process], timeout_s: float,
              poll_s: float = POLL_S) -> list[psutil.Process]:
    """Wait until none of procs runs; the ones still running after timeout_s.

    Not psutil.wait_procs: it waits for a zombie to be reaped, and an orphan's
    zombie may never be when pid 1 does not reap (as in some containers).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in procs if running(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))  # poll interval


def signal_processes(procs: Iterable[psutil.Process], sig: int) -> None:
    """Send `sig` to each process, to its whole process group when it leads one
    (a component's or a container's children go with it). A process that is no
    longer the one scanned (its pid reused) is skipped."""
    import psutil

    own_pgid = os.getpgid(0)
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            if not proc.is_running():  # compares the start time: not a reused pid
                continue
            pgid = os.getpgid(proc.pid)
            if pgid == proc.pid and pgid != own_pgid:
                os.killpg(pgid, sig)
            else:
                proc.send_signal(sig)


def kill_processes(procs: Sequence[psutil.Process], *,
                   wait_s: float = KILL_WAIT_S) -> list[psutil.Process]:
    """SIGKILL each process (and its group when it leads one); the ones still alive."""
    signal_processes(procs, signal.SIGKILL)
    return wait_gone(procs, wait_s)


def terminate(procs: Sequence[psutil.Process], grace_s: float, *,
              kill_wait_s: float = KILL_WAIT_S) -> list[psutil.Process]:
    """SIGTERM, up to grace_s to end, then SIGKILL; the ones still alive."""
    signal_processes(procs, signal.SIGTERM)
    left = wait_gone(procs, grace_s)
    if left:
        left = kill_processes(left, wait_s=kill_wait_s)
    return left


def describe(procs: Iterable[psutil.Process], width: int = 120) -> str:
    import psutil

    parts = []
    for proc in procs:
        try:
            cmd = " ".join(proc.cmdline())[:width]
        except psutil.Error:
            cmd = "?"
        parts.append(f"pid {proc.pid} ({cmd})")
    return ", ".join(parts)


# --- container processes, from the node runtimes' records -------------------

@dataclasses.dataclass(frozen=True)
class ContainerRecord:
    """What a runtime's record says about a container's process."""

    pid: int
    start_ticks: int = -1          # /proc/<pid>/stat starttime; -1: unknown
    create_time: float = 0.0       # psutil create_time; the fallback identity
    rootfs: str = ""               # its ROOTFS_ENV


@dataclasses.dataclass(frozen=True)
class ProcInfo:
    """One row of the process table, as container matching needs it."""

    pid: int
    pgid: int
    sid: int
    start_ticks: int = -1
    create_time: float = 0.0
    rootfs: str | None = None      # its ROOTFS_ENV (None: none, or unreadable)


def container_records(home: pathlib.Path, node: str | None = None) -> list[ContainerRecord]:
    """The container records of every node runtime in `home` (or one node's).
    Unreadable records are skipped; at most CONTAINER_RECORDS_MAX are read."""
    nodes_root = home / NODES_DIR
    if node is not None:
        node_dirs = [node_dir(home, node)]
    else:
        try:
            node_dirs = sorted(p for p in nodes_root.iterdir() if p.is_dir())
        except OSError:
            return []
    records: list[ContainerRecord] = []
    for directory in node_dirs:
        records_dir = directory.joinpath(NODE_RUNTIME_DIR, *RUNTIME_CONTAINER_RECORDS)
        try:
            paths = sorted(records_dir.glob("*.json"))
        except OSError:
            continue
        for path in paths:
            if len(records) >= CONTAINER_RECORDS_MAX:
                return records
            try:
                with open(path, "rb") as f:
                    data = json.loads(f.read(RECORD_BYTES_MAX + 1))
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict):
                continue
            pid = _int_or_none(data.get("pid"))
            if not pid or pid <= 0:
                continue  # never started
            ticks = _int_or_none(data.get("pid_start_ticks"))
            records.append(ContainerRecord(
                pid=pid, start_ticks=ticks if ticks is not None else -1,
                create_time=_float_or_none(data.get("pid_create_time")) or 0.0,
                rootfs=_str(data.get("rootfs"))))
        records += _pause_records(directory, CONTAINER_RECORDS_MAX - len(records))
    return records


def _pause_records(directory: pathlib.Path, room: int) -> list[ContainerRecord]:
    """A node's pods' pause processes (shareProcessNamespace in the namespaces
    mode: PID 1 of the pod's PID namespace), from its sandbox records."""
    found: list[ContainerRecord] = []
    try:
        paths = sorted(directory.joinpath(NODE_RUNTIME_DIR, *RUNTIME_SANDBOX_RECORDS)
                       .glob("*.json"))
    except OSError:
        return found
    for path in paths[:max(0, room)]:
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read(RECORD_BYTES_MAX + 1))
        except (OSError, ValueError):
            continue
        pid = _int_or_none(data.get("pause_pid")) if isinstance(data, dict) else None
        if pid and pid > 0:
            ticks = _int_or_none(data.get("pause_start_ticks"))
            found.append(ContainerRecord(pid=pid, start_ticks=ticks if ticks is not None else -1,
                                         create_time=0.0, rootfs=""))
    return found


def _same_start(proc: ProcInfo, record: ContainerRecord) -> bool:
    if proc.start_ticks >= 0 and record.start_ticks >= 0:
        return proc.start_ticks == record.start_ticks
    return record.create_time > 0 and abs(proc.create_time - record.create_time) <= 1.0


def _not_older(proc: ProcInfo, record: ContainerRecord) -> bool:
    """A member of a container cannot have started before the container's leader."""
    if proc.start_ticks >= 0 and record.start_ticks >= 0:
        return proc.start_ticks >= record.start_ticks
    return proc.create_time + 1.0 >= record.create_time


def container_pids(records: Iterable[ContainerRecord], table: Iterable[ProcInfo]) -> set[int]:
    """The pids in `table` that belong to a recorded container (pure).

    - The leader: the recorded pid with the recorded start time.
    - Its process group and session: while the leader lives, every member
      (no other group or session can have its id then); once it is gone,
      only members still carrying the container's rootfs, since its id may
      have been reused by another process that made a group or a session
      after the container's ended. Members older than the leader never count.
    - Anywhere: a process carrying a recorded container's rootfs (one that
      left the session), unless older than the leader.
    """
    records = list(records)
    table = list(table)
    by_pid = {p.pid: p for p in table}
    by_group: dict[int, list[ProcInfo]] = {}
    for p in table:
        by_group.setdefault(p.pgid, []).append(p)
        if p.sid != p.pgid:
            by_group.setdefault(p.sid, []).append(p)
    found: set[int] = set()
    for record in records:
        leader = by_pid.get(record.pid)
        leader_alive = leader is not None and _same_start(leader, record)
        if leader_alive:
            found.add(record.pid)
        for member in by_group.get(record.pid, ()):
            if member.pid == record.pid or not _not_older(member, record):
                continue
            if leader_alive or (record.rootfs and member.rootfs == record.rootfs):
                found.add(member.pid)
    by_rootfs = {r.rootfs: r for r in records if r.rootfs}
    for p in table:
        record = by_rootfs.get(p.rootfs) if p.rootfs else None
        if record is not None and _not_older(p, record):
            found.add(p.pid)
    return found


def cgroup_parents(home: pathlib.Path, node: str | None = None) -> list[pathlib.Path]:
    """The parent cgroups the node runtimes in `home` (or one node's) recorded
    (those that still exist).
    A path not shaped like a runtime's parent (.../kubemu/<hex>) is ignored:
    whatever is in it is not certainly ours."""
    try:
        node_dirs = [node_dir(home, node)] if node is not None else \
            sorted(p for p in (home / NODES_DIR).iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for d in node_dirs for p in runtime_cgroup_parents(d / NODE_RUNTIME_DIR)]


def runtime_cgroup_parents(root: pathlib.Path) -> list[pathlib.Path]:
    """The parent cgroups one runtime (its root) recorded, those that exist."""
    try:
        with open(pathlib.Path(root) / RUNTIME_CGROUPS_FILE, "rb") as f:
            data = json.loads(f.read(RECORD_BYTES_MAX + 1))
    except (OSError, ValueError):
        return []
    listed = data.get("parents") if isinstance(data, dict) else None
    return [pathlib.Path(path) for path in (listed if isinstance(listed, list) else ())
            if isinstance(path, str) and CGROUP_PARENT_RE.search(path) and os.path.isdir(path)]


def cgroup_pids(home: pathlib.Path, node: str | None = None) -> set[int]:
    """Every process in the node runtimes' (or one node's) cgroups. Blocking."""
    from kubemu import cgroupfs
    return cgroupfs.members(cgroup_parents(home, node))


def remove_cgroups(home: pathlib.Path) -> list[pathlib.Path]:
    """Kill whatever is left in the node runtimes' cgroups and remove them (the
    cluster is down: nothing of it may run). The directories that could not
    be removed. Blocking."""
    return remove_cgroup_parents(cgroup_parents(home))


def remove_cgroup_parents(parents: Sequence[pathlib.Path]) -> list[pathlib.Path]:
    """Kill what is in these runtime parents and remove them; the dirs left."""
    from kubemu import cgroupfs
    if not parents:
        return []
    cgroupfs.kill_all(parents)
    left = cgroupfs.remove(parents)
    for shared in {p.parent for p in parents}:
        with contextlib.suppress(OSError):
            shared.rmdir()  # kubemu/: shared with other clusters; only when empty
    return left


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(pgid, sid, start ticks) from /proc/<pid>/stat; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        try:
            return os.getpgid(pid), os.getsid(pid), -1
        except OSError:
            return None
    fields = data[data.rfind(")") + 2:].split()
    if len(fields) < 20:
        return None
    return int(fields[2]), int(fields[3]), int(fields[19])


# --- the scan -----------------------------------------------------------------

def _scan(home: pathlib.Path, recorded: Iterable[tuple[int, Any]], *, by_env: bool,
          by_cmdline: bool, records: Sequence[ContainerRecord],
          cgroup_members: set[int]) -> list[psutil.Process]:
    """One pass over the process table; blocking."""
    import psutil

    home_text = str(home)
    names_home = re.compile(re.escape(home_text) + r"(?=$|[/\s:,;\"'])")
    me = psutil.Process()
    skip = {me.pid} | {p.pid for p in me.parents()}
    found: dict[int, psutil.Process] = {}
    for pid, create_time in recorded:
        if not isinstance(create_time, (int, float)):
            continue  # no start time: the pid alone may be someone else's process by now
        proc = alive(pid, create_time)
        if proc is not None and pid not in skip:
            found[pid] = proc
    table: list[ProcInfo] = []
    scanned: dict[int, psutil.Process] = {}
    attrs = ["environ", "status", "create_time"] + (["cmdline"] if by_cmdline else [])
    for proc in psutil.process_iter(attrs):
        if proc.pid in skip or proc.info["status"] in (psutil.STATUS_ZOMBIE, None):
            continue
        environ: Mapping[str, str] = proc.info["environ"] or {}
        if by_env and environ.get(SUPERVISED_ENV) == home_text:
            found.setdefault(proc.pid, proc)
        elif by_cmdline:
            cmdline = proc.info["cmdline"] or []
            if not is_cli(cmdline) and any(names_home.search(a) for a in cmdline):
                found.setdefault(proc.pid, proc)
        if records:
            stat = _stat(proc.pid)
            if stat is not None:
                scanned[proc.pid] = proc
                table.append(ProcInfo(pid=proc.pid, pgid=stat[0], sid=stat[1],
                                      start_ticks=stat[2],
                                      create_time=proc.info["create_time"] or 0.0,
                                      rootfs=environ.get(ROOTFS_ENV)))
    for pid in container_pids(records, table):
        found.setdefault(pid, scanned[pid])
    for pid in cgroup_members:
        if pid not in skip and pid not in found:
            proc = scanned.get(pid) or alive(pid)
            if proc is not None:
                found[pid] = proc
    return sorted(found.values(), key=lambda p: p.pid)


def find_home_processes(home: pathlib.Path, recorded: Iterable[tuple[int, Any]] = (),
                        *, by_cmdline: bool = True) -> list[psutil.Process]:
    """Live processes of the cluster in `home` (see the module docstring), in
    pid order. Blocking."""
    home = pathlib.Path(home)
    return _scan(home, recorded, by_env=True, by_cmdline=by_cmdline,
                 records=container_records(home), cgroup_members=cgroup_pids(home))


def container_processes(home: pathlib.Path, node: str | None = None) -> list[psutil.Process]:
    """The live processes of the containers that the node runtimes (or one
    node's) recorded. Blocking."""
    records = container_records(pathlib.Path(home), node)
    members = cgroup_pids(pathlib.Path(home), node)
    if not records and not members:
        return []
    return _scan(pathlib.Path(home), (), by_env=False, by_cmdline=False, records=records,
                 cgroup_members=members)
