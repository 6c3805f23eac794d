"""The cluster supervisor: starts, watches, restarts and stops every process of one cluster.

Model (after Ray's cluster_utils/node.py): a `Cluster` owns one home
(KUBEMU_HOME). `start()` claims the home (a lock file; one supervisor per
home), starts the kinds of `deploy.components` in dependency order on free
ports it picked (a start that loses its port to another process is retried on
new ports, a bounded number of times), waits for each one's health check
against a deadline, then writes the addresses to `<home>/kubeconfig.json`
and applies the add-ons it was given (deploy/addon_manager.py: cluster DNS,
as kubeadm does after its control plane; idempotent, so a restarted `up`
changes nothing).
`add_node()` starts one more node the same way once the cluster is ready
(node-<k>, k past every index used before), and `remove_node(name)` stops a
node's processes as shutdown does and deletes its Node object; the live set of
nodes is what state.json, kubeconfig.json and status show.

Every process runs in its own session, with a umask of 0o077 (a file it
creates without a mode is private), and with its output in
`<home>/logs/<name>.log`. One that dies unexpectedly is restarted after a
back-off (kubemu.backoff.Exponential: 0.5 s doubling to 30 s, with jitter;
back to the start after 10 s healthy) unless restart is off. After start-up
each running process's health check is polled every second: one that gets no
answer HEALTH_FAILURE_THRESHOLD times in a row (a hung or SIGSTOPped process)
is killed and restarted that way; one paused or partitioned through the
control API is not checked. Every connection to an apiserver or an etcd member
goes through the supervisor's fronts (`Cluster.links`, deploy/links.py, open
for the cluster's life): each component has its own front over the live
apiservers (kubeconfig.json's `apiserver` is a shared one), each apiserver one
per etcd member, each etcd member a peer front it advertises; an apiserver or
member that exits, stops or is paused has its links reset and is left out until
it runs again, and `partition` cuts a process's links. The control API (deploy/control_server.py, client kubemu/control.py)
serves faults by process name on a private unix socket once the cluster is
ready. A reaper process (deploy/reaper.py) stops the cluster's processes if
the supervisor dies without doing it. `shutdown()`
stops processes in reverse start order (SIGTERM to the process group, a
grace period, SIGKILL), kills whatever of the cluster is still alive (the
home's marker variable, and the containers the node runtimes recorded), and
checks that no process is left.

Files in the home (their names, the state format and the process checks are
kubemu.cluster_home's, shared with `kubemu up|status|down`): `state.json`,
`supervisor.pid`, `supervisor.lock`, `ready` or `failed`, `logs/`. All are
private to the cluster's user, set explicitly (kubemu.fileutil).

The event loop never waits on the disk or the process table: scans, kills
that wait, state and config writes run in threads (asyncio.to_thread); the
node network block (a machine-wide lock) is claimed once per start.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
from typing import IO, Any, Callable, Coroutine, Sequence, TypeVar

import psutil
import structlog

from deploy import addon_manager
from deploy.links import Links
from deploy import components as comp
from kubemu import aio, cluster_home, etcdinfo, fileutil, timefmt
from kubemu.backoff import Exponential
from kubemu.client.config import ClusterConfig, home_dir, write_cluster_config

log = structlog.get_logger()
T = TypeVar("T")

# The home's files, states and process checks: one definition, kubemu.cluster_home.
STATE_FILE = cluster_home.STATE_FILE
PID_FILE = cluster_home.PID_FILE
LOCK_FILE = cluster_home.LOCK_FILE
READY_FILE = cluster_home.READY_FILE
FAILED_FILE = cluster_home.FAILED_FILE
LOGS_DIR = cluster_home.LOGS_DIR
SUPERVISED_ENV = cluster_home.SUPERVISED_ENV
HOME_ENV = cluster_home.HOME_ENV
ProcState = cluster_home.ProcState
ClusterState = cluster_home.ClusterState
HOST = "127.0.0.1"

# Every child starts with it: what it creates without a mode is private.
# A second line of defence only: the supervisor sets its own files' modes.
CHILD_UMASK = 0o077
PORT_ATTEMPTS_MAX = 5
RESTART_BACKOFF_S_BASE = 0.5
RESTART_BACKOFF_S_MAX = 30.0
RESTART_RESET_AFTER_S = 10.0
# Health watching after start-up: a running process whose check fails this many
# times in a row, one poll apart, is killed and restarted (a SIGSTOPped etcd or
# apiserver still accepts connections but never answers).
HEALTH_WATCH_INTERVAL_S = 1.0
# Longer than start-up's: a loaded machine must not get a live process killed.
HEALTH_WATCH_TIMEOUT_S = 2.0
HEALTH_FAILURE_THRESHOLD = 3
CONTROL_STOP_GRACE_S = 5.0
HEALTH_CALL_TIMEOUT_S = 1.0
HEALTH_POLL_S_MIN = 0.02
HEALTH_POLL_S_MAX = 0.5
KILL_WAIT_S = cluster_home.KILL_WAIT_S
PROGRESS_LINES_MAX = 200
SPAWNED_PIDS_MAX = 1000
LOG_TAIL_BYTES = 8192
# etcd restore: the whole of it, one etcd tool call, one restore call, one etcd RPC.
RESTORE_TIMEOUT_S = 180.0
ETCD_TOOL_TIMEOUT_S = 30.0
ETCD_RESTORE_TIMEOUT_S = 120.0
ETCD_CALL_TIMEOUT_S = 10.0
# The revision after a restore is moved past the old one by this much more than
# the gap (what clients may have seen from a member not asked), at most
# RESTORE_BUMP_MAX writes when done by writes, RESTORE_BUMP_CONCURRENCY at a time.
RESTORE_BUMP_MARGIN = 1000
RESTORE_BUMP_MAX = 200_000
RESTORE_BUMP_CONCURRENCY = 64
# add_node / remove_node: the whole change by default; an add that failed
# undoes itself within NODE_UNDO_TIMEOUT_S; the Node object is polled this often.
NODE_CHANGE_TIMEOUT_S = 60.0
NODE_UNDO_TIMEOUT_S = 30.0
NODE_POLL_S = 0.2

# How a process says it lost the race for its port (etcd, grpc core, Python).
_PORT_IN_USE = re.compile(
    r"address already in use|EADDRINUSE|Errno 98|Failed to bind|cannot listen on", re.I)


# Signals `kill` refuses: they stop or continue a process behind the pause
# bookkeeping (the health watcher would kill a process stopped this way).
_PAUSE_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
                            signal.SIGCONT})


class ClusterError(Exception):
    """The cluster could not do what was asked; the message says why."""


class ClusterAlreadyRunning(ClusterError):
    """Another supervisor holds this home."""


class ClusterStartError(ClusterError):
    """start() failed; everything it had started is stopped again."""


class ProcessesLeft(AssertionError):
    """Processes of this cluster are still alive after shutdown."""


@dataclasses.dataclass(frozen=True)
class ProcessStatus:
    component: str
    node: str
    pid: int | None
    state: str
    restarts: int
    address: str
    name: str = ""   # the process name: etcd-0, apiserver-1, node-1/kubelet


def restart_backoff(rng: random.Random | None = None) -> Exponential:
    """One process's restart back-off: 0.5 s doubling per failure in a row, at
    most 30 s, with equal jitter (processes that died together do not all
    come back at once)."""
    return Exponential(RESTART_BACKOFF_S_BASE, RESTART_BACKOFF_S_MAX, rng=rng)


class PortAllocator:
    """Free ports on a host: bind port 0, read the port, close.

    The kernel may offer a port again once it is closed, so one allocator never
    hands out the same port twice. The port can still be taken by someone else
    before the child binds it; the supervisor retries that start on new ports.
    """

    ATTEMPTS_MAX = 100

    def __init__(self) -> None:
        self._given: set[int] = set()

    def pick(self, host: str) -> int:
        for _ in range(self.ATTEMPTS_MAX):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in self._given:
                self._given.add(port)
                return port
        raise OSError(f"no free port on {host} after {self.ATTEMPTS_MAX} tries")


class _ExitedEarly(Exception):
    def __init__(self, code: int | None, tail: str):
        super().__init__(code, tail)
        self.code = code
        self.tail = tail

    @property
    def port_in_use(self) -> bool:
        return bool(_PORT_IN_USE.search(self.tail))

    def last_line(self) -> str:
        lines = [line for line in self.tail.splitlines() if line.strip()]
        return lines[-1].strip()[:300] if lines else "no output"


class _NotReady(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(eq=False)
class _Process:
    kind: comp.ComponentKind
    node: str
    launch: comp.Launch
    proc: aio.Child | None = None
    create_time: float | None = None
    state: str = ProcState.STARTING
    restarts: int = 0
    backoff: Exponential = dataclasses.field(default_factory=restart_backoff)
    ready_at: float | None = None
    exit_code: int | None = None
    log_offset: int = 0
    stopping: bool = False
    monitor: asyncio.Task | None = None
    # Control (deploy/control_server.py): held down until start; paused by the
    # API (never health-restarted); restart without back-off once.
    held: bool = False
    paused: bool = False
    resume_task: asyncio.Task | None = None
    quick_restart: bool = False
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    started_at: float | None = None
    health_failures: int = 0
    last_exit: str = ""       # "code N", "signal NAME"; "" never exited

    @property
    def name(self) -> str:
        return self.launch.name

    @property
    def address(self) -> str:
        return self.kind.address(self.launch)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def note_exit(self, code: int | None) -> None:
        """Remember how it last exited (kept across restarts, for status)."""
        self.exit_code = code
        if code is not None:
            self.last_exit = exit_text(code)


def exit_text(code: int) -> str:
    """"code N" or "signal NAME" (a returncode of -N)."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name.removeprefix('SIG')}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


# A health check's reason that means nobody answered (a hung, SIGSTOPped or
# deadlocked process), as opposed to an answer saying "not serving".
_UNRESPONSIVE = re.compile(r"no answer|DEADLINE_EXCEEDED|UNAVAILABLE|refused|reset|timed out")


def unresponsive(reason: str) -> bool:
    return bool(_UNRESPONSIVE.search(reason))


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# Shared with the `kubemu` command (kubemu.cluster_home); blocking: call them
# from a thread in async code.
find_home_processes = cluster_home.find_home_processes
kill_processes = cluster_home.kill_processes
describe = cluster_home.describe


def _open_log(path: str | os.PathLike[str]) -> IO[bytes]:
    return open(fileutil.private_file(path), "ab")


def _create_time(pid: int) -> float | None:
    """A process's start time, or None when it is already gone (blocking)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None  # _wait_ready will say it exited


class Cluster:
    """One cluster's processes, in one home. Tests use it directly; `kubemu up` wraps it.

    Not thread-safe: use it from one event loop.
    """

    def __init__(self, home: str | os.PathLike[str] | None, *, nodes: int = 0,
                 restart: bool = True, etcd_binary: str | None = None,
                 kinds: Sequence[comp.ComponentKind] = comp.CONTROL_PLANE,
                 node_kinds: Sequence[comp.ComponentKind] = comp.NODE_COMPONENTS,
                 progress: Callable[[str], None] | None = None,
                 ports: PortAllocator | None = None, schedulers: int = 1,
                 controller_managers: int = 1, etcd: int = 1, apiservers: int = 1,
                 child_umask: int | None = CHILD_UMASK,
                 addons: Sequence[str] = ()):
        """child_umask: every child's umask (None: inherit this process's; a
        test uses it to check that nothing relies on the umask).
        etcd, apiservers, schedulers, controller_managers: how many processes
        of each control-plane kind, named <kind>-0, <kind>-1, ...: an etcd
        cluster of that many members (started together: each waits for a
        quorum), apiservers each given every member, schedulers and
        controller-managers past the first are standbys on their Lease.
        addons: the add-ons (deploy/addons/<name>.yaml, addon_manager.DEFAULT_ADDONS)
        applied once the control plane and the nodes are up, in a cluster with
        nodes; none by default here (tests get a bare cluster), all with
        `kubemu up` unless --no-addons. With coredns, every kubelet gets
        --cluster-dns (the kube-dns ClusterIP) and --cluster-domain."""
        if nodes < 0:
            raise ValueError(f"nodes: must be >= 0, got {nodes}")
        self._replicas = {comp.ETCD: etcd, comp.APISERVER: apiservers,
                          comp.SCHEDULER: schedulers,
                          comp.CONTROLLER_MANAGER: controller_managers}
        comp.check_replicas(self._replicas)
        # A kind with no instance is not started (nor waited for).
        kinds = [k for k in kinds if self._replicas.get(k.name, 1) > 0]
        # Absolute and resolved: it is matched against other processes' command
        # lines and environments.
        self.home = home_dir(home).resolve()
        # The live nodes in start order (node_names): the requested ones until
        # start(), then what add_node and remove_node make of them. A node's
        # name is node-<k>, k one more than the highest ever used here: a
        # removed node's name (its directory, its Node object) is never reused.
        self._nodes: list[str] = [f"node-{i}" for i in range(1, nodes + 1)]
        self._node_index_max = nodes
        self.restart = restart
        self.etcd_binary = etcd_binary
        self.etcd_version = ""
        self.child_umask = child_umask
        self.addons = tuple(addons)
        # Why the DNS add-on cannot run here (rootless: port 53), or None.
        self._dns_problem: str | None = None
        # Applied once, when the first node is up (at start, or by add_node in
        # a cluster started without nodes).
        self._addons_applied = False
        for name in self.addons:
            if not (addon_manager.ADDONS_DIR / f"{name}.yaml").is_file():
                raise ValueError(f"addons: no add-on {name!r} in {addon_manager.ADDONS_DIR}")
        self._levels = comp.start_levels(kinds)
        self._node_kinds = tuple(node_kinds)
        self._node_levels = comp.start_levels(node_kinds) if node_kinds else []
        self._progress_sink = progress if progress is not None else _print_line
        self._ports = ports or PortAllocator()
        self._procs: list[_Process] = []          # in start order
        self._binaries: dict[str, str] = {}
        self._state = ClusterState.NEW
        self._reason = ""
        self._progress_lines: collections.deque[str] = collections.deque(maxlen=PROGRESS_LINES_MAX)
        self._spawned: collections.deque[tuple[int, float | None]] = collections.deque(
            maxlen=SPAWNED_PIDS_MAX)
        self._lock_fd: int | None = None
        self._me = self._identity()
        self._network_block: int | None = None
        self._state_dirty = False
        self._state_writer: asyncio.Task[None] | None = None
        self._log = log.bind(home=str(self.home))
        # What the supervisor is doing that faults must not interleave with ("" = nothing).
        self._busy = ""
        self._restore_task: asyncio.Future[str] | None = None
        # The add_node / remove_node in progress (one at a time: _busy says
        # which); shutdown cancels an add (it undoes itself) and lets a removal finish.
        self._node_task: asyncio.Future | None = None
        # The supervisor's TCP fronts (deploy/links.py), for the cluster's life
        # (closed last): every connection to an apiserver or an etcd member goes
        # through one, which picks a live backend and is how partition cuts a
        # process off. None: partition answers "not available".
        self.links: Links | None = Links()
        # Process name -> its apiserver front (made at its first start, reused
        # by its restarts); apiserver name -> its etcd fronts (comma-separated);
        # etcd member -> its peer front; "" -> the shared front (kubeconfig).
        self._apiserver_fronts: dict[str, str] = {}
        self._etcd_fronts: dict[str, str] = {}
        self._peer_fronts: dict[str, str] = {}
        self._control_server = None
        self._reaper: subprocess.Popen[bytes] | None = None

    # --- public API -------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def nodes(self) -> int:
        """How many nodes the cluster has now."""
        return len(self._nodes)

    @property
    def node_names(self) -> list[str]:
        """The live nodes, in start order (those asked for until start() runs)."""
        return list(self._nodes)

    def address(self, component: str, node: str = "") -> str:
        """The address of the first process of a kind (etcd-0 for "etcd"); for
        "apiserver" the shared front that kubeconfig.json names (any live
        apiserver behind it), once the control plane is up. addresses() and
        process_address() give the processes' own addresses."""
        if component == comp.APISERVER and not node and "" in self._apiserver_fronts:
            return self._apiserver_fronts[""]
        for p in self._procs:
            if p.kind.name == component and p.node == node:
                return p.address
        raise KeyError(f"no process {component!r}" + (f" on node {node!r}" if node else ""))

    def addresses(self, component: str, node: str = "") -> list[str]:
        """Every process of a kind's address, in instance order."""
        return [p.address for p in self._procs if p.kind.name == component and p.node == node]

    def process_address(self, name: str) -> str:
        """One process's address by its name (etcd-1, apiserver-0, node-1/kubelet)."""
        for p in self._procs:
            if p.name == name:
                return p.address
        raise KeyError(f"no process named {name!r} "
                       f"(processes: {', '.join(p.name for p in self._procs)})")

    def status(self) -> list[ProcessStatus]:
        return [ProcessStatus(component=p.kind.name, node=p.node, pid=p.pid, state=p.state,
                              restarts=p.restarts, address=p.address, name=p.name)
                for p in self._procs]

    async def etcd_leader(self, timeout_s: float = 2.0) -> str | None:
        """The process name of the etcd member that leads now, or None when no
        running member knows a leader (asked in turn, each within timeout_s)."""
        members = [p for p in self._procs if p.kind.name == comp.ETCD and p.alive()]
        for p in members:
            try:
                status = await etcdinfo.status(p.address, timeout_s)
            except etcdinfo.EtcdQueryError:
                continue
            if status.leader_name:
                return status.leader_name
        return None

    async def start(self, timeout_s: float = 120.0) -> None:
        """Start every process and wait until each one is healthy.

        Raises ClusterAlreadyRunning when another supervisor holds the home, and
        ClusterStartError (after stopping what it started) when a process exits
        before it is ready or is not ready in time.
        """
        if self._state != ClusterState.NEW:
            raise ClusterError(f"start: the cluster is {self._state}; start() runs once")
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout_s
        await asyncio.to_thread(self._claim_home)
        try:
            await asyncio.to_thread(self._start_reaper)
            await self._prepare_home()
            self._set_state(ClusterState.STARTING)
            await self._resolve_binaries()
            # Fixed for the cluster's life: claimed once (a machine-wide lock),
            # before the control plane, whose addresses (the service range, the
            # LoadBalancer pool) come from it too.
            self._network_block = await asyncio.to_thread(comp.network_block, self.home)
            for level in self._levels:
                await self._start_level(level, node="", deadline=deadline)
            await self._make_shared_front()
            if self.nodes and not self._node_kinds:
                self._progress(f"nodes: {self.nodes} requested, but node components (kubelet, "
                               f"runtime, kube-proxy) are not part of this build yet; "
                               f"control plane only")
                self._nodes = []
                self._changed()
            # Asked even without nodes yet: add_node starts kubelets with it.
            if self._node_kinds and addon_manager.COREDNS in self.addons:
                self._dns_problem = await asyncio.to_thread(comp.low_port_problem,
                                                            comp.DNS_PORT)
            for node in self.node_names:
                for level in self._node_levels:
                    await self._start_level(level, node=node, deadline=deadline)
            await self._write_kubeconfig()
            await self._apply_addons(deadline)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                reason = "start was interrupted"
            elif isinstance(exc, ClusterError):
                reason = str(exc)
            else:
                reason = f"{type(exc).__name__}: {exc}"
            self._reason = reason
            self._log.error("start failed", reason=reason)
            self._set_state(ClusterState.FAILED)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(fileutil.atomic_write, self.home / FAILED_FILE,
                                        reason + "\n")
            await self._stop_control()
            await self._teardown(timeout_s=30.0)
            await self._release_home()
            if isinstance(exc, (asyncio.CancelledError, ClusterStartError)):
                raise
            raise ClusterStartError(reason) from exc
        await self._start_control()
        await asyncio.to_thread(fileutil.atomic_write, self.home / READY_FILE,
                                timefmt.rfc3339() + "\n")
        # Persisted with the progress line: `kubemu up` prints it before it sees "ready".
        self._state = ClusterState.READY
        self._progress(f"cluster ready in {loop.time() - started:.1f} s — KUBEMU_HOME={self.home}")
        await self._flush_state()

    async def wait_healthy(self, timeout_s: float) -> None:
        """Wait until every process is running and answers its health check, in one sweep."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        interval_s = HEALTH_POLL_S_MIN
        while True:
            problems: dict[str, str] = {}
            for p in self._procs:
                if p.state != ProcState.RUNNING:
                    problems[p.name] = p.state
                    continue
                remaining_s = max(0.05, deadline - loop.time())
                reason = await p.kind.health(p.address, min(HEALTH_CALL_TIMEOUT_S, remaining_s))
                if reason is not None:
                    problems[p.name] = reason
            if not problems and self._procs:
                return
            if not self._procs:
                problems["cluster"] = f"no process ({self._state})"
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                detail = "; ".join(f"{name}: {why}" for name, why in problems.items())
                raise TimeoutError(f"cluster not healthy after {timeout_s:g} s: {detail}")
            await asyncio.sleep(min(interval_s, remaining_s))  # poll interval, bounded by the deadline
            interval_s = min(interval_s * 2, HEALTH_POLL_S_MAX)

    async def shutdown(self, timeout_s: float = 60.0) -> list[psutil.Process]:
        """Stop everything (reverse start order); returns the processes still left (normally none)."""
        if self._lock_fd is None:
            return []  # never claimed the home, or already torn down
        if self._state != ClusterState.FAILED:
            self._set_state(ClusterState.STOPPING)
        await self._stop_control()
        restore = self._restore_task
        if restore is not None and not restore.done():
            # Members restored halfway would disagree: let it finish (it is bounded).
            await asyncio.wait({restore}, timeout=RESTORE_TIMEOUT_S)
            restore.cancel()
            await asyncio.gather(restore, return_exceptions=True)
        await self._end_node_change(timeout_s)
        left = await self._teardown(timeout_s)
        if self._state != ClusterState.FAILED:
            self._set_state(ClusterState.STOPPED)
        await self._release_home()
        return left

    async def restore_etcd(self, snapshot: str | os.PathLike[str],
                           timeout_s: float = RESTORE_TIMEOUT_S) -> str:
        """Restore the cluster's etcd from `snapshot` (an `etcdctl snapshot save`
        file); returns a line saying what was done.

        The control plane (etcd members, apiservers, schedulers,
        controller-managers) is stopped; each member's data directory is
        restored into a fresh one (etcdutl, or etcdctl for 3.4, with the
        member's own --name / --initial-cluster / peer URLs) and swapped in (the
        old one is kept beside it as `<data>.before-restore`); etcd starts
        again. The restored revision is behind what every client has seen, so
        before the apiservers start the revision is moved past the old one and
        compacted there (etcdutl's --bump-revision --mark-compacted where the
        version has them, else that many writes of one key): every watch that
        reconnects with an old resourceVersion gets Expired and relists, as after
        a compaction, so kubelets see the pods that are gone and stop them.
        Node processes keep running throughout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._control_ready()
        self._busy = "restoring etcd from a snapshot"
        # The cluster's own task: a caller that gives up (its deadline, Ctrl-C)
        # must not cut a restore short between members; shutdown waits for it.
        task = self._restore_task = asyncio.ensure_future(self._restore_etcd(snapshot, deadline))
        task.add_done_callback(lambda _: setattr(self, "_busy", ""))
        return await asyncio.shield(task)

    async def _restore_etcd(self, snapshot: str | os.PathLike[str], deadline: float) -> str:
        loop = asyncio.get_running_loop()
        path = pathlib.Path(snapshot).expanduser().resolve()
        members = [p for p in self._procs if p.kind.name == comp.ETCD]
        if not members:
            raise ClusterError("restore: this cluster has no etcd")
        control = [p for p in self._procs if not p.node]
        etcd_binary = members[0].launch.binaries[comp.ETCD]
        tools = {t: await asyncio.to_thread(comp.etcd_tool, etcd_binary, t)
                 for t in comp.ETCD_TOOLS}
        info = await asyncio.to_thread(etcd_snapshot_status, tools, path)
        before = await _etcd_revision(members, tools)
        self._progress(f"restore: snapshot {path} at revision {info['revision']} "
                       f"({info['totalKey']} keys); etcd is at revision {before or 'unknown'}; "
                       f"stopping the control plane")
        try:
            for p in reversed(control):
                await self._hold(p)
            bump = max(0, (before or 0) - int(info["revision"])) + RESTORE_BUMP_MARGIN
            native_bump = await asyncio.to_thread(_restore_has_bump, tools)
            restored: list[_Process] = []
            try:
                for p in members:
                    await asyncio.to_thread(_restore_member, tools, path, p,
                                            bump if native_bump else 0)
                    restored.append(p)
            except ClusterError as exc:
                # Nothing started on the new data yet: put every member's old
                # data back and bring the control plane up as it was.
                for p in restored:
                    await asyncio.to_thread(_undo_restore, p)
                await self._release_etcd(members, deadline)
                for p in control:
                    if p.kind.name != comp.ETCD:
                        await self._release(p, deadline)
                raise ClusterError(f"{exc}; the control plane runs on its old data again") from None
            await self._release_etcd(members, deadline)
            if not native_bump:
                await asyncio.to_thread(_bump_revision, members[0].address, bump,
                                        timeout_s=max(1.0, deadline - loop.time()))
            for p in control:
                if p.kind.name != comp.ETCD:
                    await self._release(p, deadline)
        finally:
            # Whatever happened (a failed start, the bump, a cancellation), every
            # control-plane process ends up supervised again: running under its
            # watcher, or restarted by it with back-off.
            for p in control:
                await self._resupervise(p)
        line = (f"restore: etcd restored from {path} (revision {info['revision']}, moved "
                f"on by {bump} and compacted); control plane running again")
        self._progress(line)
        return line

    async def _hold(self, p: _Process) -> None:
        """Stop p and keep it down (no restart) until _release."""
        p.stopping = True
        self._cancel_resume(p)
        p.paused = False
        if p.monitor is not None:
            p.monitor.cancel()
            await asyncio.gather(p.monitor, return_exceptions=True)
            p.monitor = None
        await self._stop_process(p, grace_s=p.kind.stop_grace_s)

    async def _resupervise(self, p: _Process) -> None:
        """Give p back to a watcher if a restore left it without one."""
        if p.monitor is not None:
            return
        p.stopping = False
        p.held = False
        if not p.alive():
            with contextlib.suppress(OSError):
                await self._spawn(p)
        p.monitor = asyncio.create_task(self._supervise(p), name=f"supervise-{p.name}")

    async def _release_etcd(self, members: list[_Process], deadline: float) -> None:
        """Start every member, then wait for each: one alone has no quorum."""
        for p in members:
            await self._release(p, deadline, wait=False)
        for p in members:
            await self._wait_released(p, deadline)

    async def _release(self, p: _Process, deadline: float, *, wait: bool = True) -> None:
        p.stopping = False
        p.held = False  # the restore brings it back: supervised as usual from here
        await self._spawn(p)
        if wait:
            await self._wait_released(p, deadline)

    async def _wait_released(self, p: _Process, deadline: float) -> None:
        try:
            await self._wait_ready(p, deadline)
        except _ExitedEarly as exc:
            p.state = ProcState.EXITED
            self._changed()
            raise ClusterError(f"{p.name} exited with code {exc.code} after the restore: "
                               f"{exc.last_line()} (log: {p.launch.log_path})") from None
        except _NotReady as exc:
            raise ClusterError(f"{p.name} not ready after the restore: {exc.reason} "
                               f"(log: {p.launch.log_path})") from None
        self._became_ready(p)
        p.monitor = asyncio.create_task(self._supervise(p), name=f"supervise-{p.name}")

    # --- nodes at run time --------------------------------------------------

    async def add_node(self, timeout_s: float = NODE_CHANGE_TIMEOUT_S) -> str:
        """Start one more node and return its name (node-<k>, k one more than
        the highest index ever used here) once each of its processes is ready
        and its Node object is Ready through the apiserver.

        Its processes start as start() starts a node's (the same levels and
        readiness checks), and the cluster's add-ons are applied if the cluster
        had no node for them yet. Refused (ClusterError) unless the cluster is
        ready, has node kinds and is not busy (a restore, another node change).
        A node that does not come up in time is stopped and removed again (its
        name stays used) and ClusterError says why; so is one whose caller
        gives up (cancels).
        """
        self._node_change_ready("add node")
        if not self._node_kinds:
            raise ClusterError("add node: this cluster has no node components (kubelet, "
                               "runtime, kube-proxy) to start")
        if self._node_index_max >= comp.NODES_MAX:
            raise ClusterError(f"add node: node-{comp.NODES_MAX} was the last node name "
                               f"this cluster can use")
        self._node_index_max += 1
        name = f"node-{self._node_index_max}"
        deadline = asyncio.get_running_loop().time() + timeout_s
        # Not shielded: a caller that gives up cancels it, and it undoes itself.
        return await self._node_change(f"adding node {name}", self._add_node(name, deadline))

    async def remove_node(self, name: str, timeout_s: float = NODE_CHANGE_TIMEOUT_S) -> None:
        """Take a node out for good, as an operator decommissions a machine:
        its processes are stopped as shutdown stops them (kube-proxy, the
        kubelet, then the runtime, which first stops its containers) and leave
        the supervision (status no longer lists them), then its Node object is
        deleted through the apiserver (already gone is fine).

        KeyError naming the nodes for an unknown name; ClusterError when the
        cluster is not ready or busy, or when the Node object could not be
        deleted in time (the processes are gone by then). A caller that gives
        up does not cut the removal short.
        """
        self._node_change_ready("remove node")
        if name not in self._nodes:
            raise KeyError(f"no node named {name!r} (nodes: {', '.join(self._nodes) or 'none'})")
        deadline = asyncio.get_running_loop().time() + timeout_s
        task = self._node_change(f"removing node {name}", self._remove_node(name, deadline))
        await asyncio.shield(task)

    def _node_change_ready(self, what: str) -> None:
        if self._state != ClusterState.READY:
            raise ClusterError(f"{what}: the cluster is {self._state}; nodes change in a "
                               f"ready cluster")
        if self._busy:
            raise ClusterError(f"{what}: the supervisor is {self._busy}; try again once it "
                               f"is done")

    def _node_change(self, busy: str, change: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run one node change as the cluster's task, with faults held off (_busy)."""
        self._busy = busy
        task = self._node_task = asyncio.ensure_future(change)

        def done(task: asyncio.Future[T]) -> None:
            self._busy = ""
            # A removal whose caller gave up still ends here: say how.
            if not task.cancelled() and task.exception() is not None:
                self._log.warning("node change failed", change=busy, error=str(task.exception()))
        task.add_done_callback(done)
        return task

    async def _end_node_change(self, timeout_s: float) -> None:
        """Shutdown: an add in progress is cancelled (it stops what it started),
        a removal finishes (both bounded by their deadlines and this one)."""
        task = self._node_task
        if task is None or task.done():
            return
        if self._busy.startswith("adding"):
            task.cancel()
        await asyncio.wait({task}, timeout=timeout_s)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _add_node(self, name: str, deadline: float) -> str:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        self._nodes.append(name)
        self._changed()
        try:
            for level in self._node_levels:
                await self._start_level(level, node=name, deadline=deadline)
            await self._write_kubeconfig()
            if self._has_apiserver():
                await self._wait_node_ready(name, deadline)
            if not self._addons_applied:
                await self._apply_addons(deadline)
        except BaseException as exc:
            reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc)
            self._progress(f"add node: {name} failed ({reason}); removing it again")
            # Shielded: a second cancellation must not leave half a node running
            # (shutdown would still find its processes, but not its Node object).
            await asyncio.shield(asyncio.ensure_future(self._drop_node(
                name, loop.time() + NODE_UNDO_TIMEOUT_S, best_effort=True)))
            if isinstance(exc, ClusterError):
                raise ClusterError(f"add node: {exc}; {name} was removed again") from None
            raise
        self._progress(f"node {name} added, Ready in {loop.time() - begun:.1f} s")
        return name

    async def _remove_node(self, name: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        self._progress(f"removing node {name}")
        await self._drop_node(name, deadline, best_effort=False)
        self._progress(f"node {name} removed in {loop.time() - begun:.1f} s")

    async def _drop_node(self, name: str, deadline: float, *, best_effort: bool) -> None:
        """Stop a node's processes for good, forget them and the node, and
        delete its Node object (after the kubelet is gone: a running kubelet
        would register it again). best_effort (undoing an add): a failed delete is only logged."""
        procs = [p for p in self._procs if p.node == name]
        await self._stop_for_good(procs, deadline)
        if self.links is not None:
            self.links.heal([p.name for p in procs])  # a cut of a process that is gone
        self._procs = [p for p in self._procs if p.node != name]
        if name in self._nodes:
            self._nodes.remove(name)
        self._changed()
        await self._write_kubeconfig()
        if not self._has_apiserver():
            return  # a test's cluster of stand-ins: no Node objects
        try:
            await self._delete_node_object(name, deadline)
        except ClusterError as exc:
            if not best_effort:
                raise
            self._log.warning("node object not deleted", node=name, error=str(exc))

    def _has_apiserver(self) -> bool:
        return any(p.kind.name == comp.APISERVER and not p.node for p in self._procs)

    def _api_client(self, timeout_s: float = HEALTH_CALL_TIMEOUT_S * 5):
        """A client of the cluster's apiservers (the shared front); close() it."""
        from kubemu.client.clientset import Client

        return Client(self.address(comp.APISERVER), timeout_s=timeout_s,
                      user_agent="kubemu-supervisor")

    async def _wait_node_ready(self, name: str, deadline: float) -> None:
        """Until the kubelet has registered its Node and reported it Ready."""
        from kubemu.api import errors
        from kubemu.client.wait import WaitTimeout, wait_for

        client = self._api_client()
        seen = ["not registered"]

        async def ready() -> bool:
            try:
                node = await client.get("nodes", name)
            except errors.NotFound:
                seen[0] = "not registered"
                return False
            condition = next((c for c in node.status.conditions if c.type == "Ready"), None)
            if condition is None:
                seen[0] = "no Ready condition"
                return False
            seen[0] = f"Ready={condition.status} ({condition.reason}: {condition.message})"
            return condition.status == "True"

        remaining_s = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            await wait_for(ready, remaining_s, interval_s=NODE_POLL_S)
        except WaitTimeout as exc:
            detail = f"; {type(exc.last_exception).__name__}: {exc.last_exception}" \
                if exc.last_exception is not None else ""
            raise ClusterError(f"{name}: its Node object is not Ready in time, its kubelet "
                               f"running: {seen[0]}{detail}") from None
        finally:
            await client.close()

    async def _delete_node_object(self, name: str, deadline: float) -> None:
        """Delete the Node object (kubectl delete node), retried until the
        deadline while the apiserver does not answer; NotFound is done."""
        from kubemu.api import errors
        from kubemu.client.wait import WaitTimeout, wait_for

        client = self._api_client()

        async def delete() -> bool:
            try:
                await client.delete("nodes", name)
            except errors.NotFound:
                pass
            return True

        remaining_s = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            await wait_for(delete, remaining_s, interval_s=NODE_POLL_S,
                           message=f"delete Node {name}")
        except WaitTimeout as exc:
            raise ClusterError(f"{name}: its processes are stopped, but its Node object "
                               f"could not be deleted ({exc})") from None
        finally:
            await client.close()

    def leftover_processes(self) -> list[psutil.Process]:
        """Live processes of this cluster (blocking: a scan of the process table)."""
        return find_home_processes(self.home, list(self._spawned))

    def assert_no_processes(self) -> None:
        """Blocking: from async code, `await asyncio.to_thread(cluster.assert_no_processes)`."""
        left = self.leftover_processes()
        if left:
            raise ProcessesLeft(f"{len(left)} process(es) of {self.home} still alive: "
                                f"{describe(left)}")

    # --- starting ---------------------------------------------------------

    @staticmethod
    def _identity() -> cluster_home.SupervisorRecord:
        try:
            me = psutil.Process()
            return cluster_home.SupervisorRecord(pid=me.pid, create_time=me.create_time(),
                                                 argv=list(sys.argv))
        except psutil.Error:
            return cluster_home.SupervisorRecord(pid=os.getpid(), argv=list(sys.argv))

    def _claim_home(self) -> None:
        """Blocking (a thread): the private home, and its lock."""
        cluster_home.make_private_home(self.home)
        fd = cluster_home.claim_lock(self.home)
        if fd is None:
            try:
                holder = (self.home / PID_FILE).read_text().strip()
            except OSError:
                holder = "unknown"
            raise ClusterAlreadyRunning(
                f"a cluster is already running in {self.home} (supervisor pid {holder})")
        self._lock_fd = fd

    async def _prepare_home(self) -> None:
        def clear() -> cluster_home.State | None:
            fileutil.atomic_write(self.home / PID_FILE, f"{os.getpid()}\n")
            for marker in (READY_FILE, FAILED_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self.home / marker).unlink()
            return cluster_home.read_state(self.home)

        previous = await asyncio.to_thread(clear)
        await self._reap_previous(previous.recorded() if previous else [])

    async def _reap_previous(self, recorded: list[tuple[int, float | None]]) -> None:
        """Kill what a previous supervisor of this home left running (it was killed
        itself): its recorded processes, marked ones, and its pods."""
        leftovers = await asyncio.to_thread(find_home_processes, self.home, recorded,
                                            by_cmdline=False)
        if not leftovers:
            return
        self._progress(f"killing {len(leftovers)} process(es) left by a previous supervisor: "
                       f"{describe(leftovers)}")
        still = await asyncio.to_thread(kill_processes, leftovers)
        if still:
            raise ClusterStartError(f"processes of a previous run would not die: {describe(still)}")

    async def _resolve_binaries(self) -> None:
        kinds = {k.name for level in self._levels + self._node_levels for k in level}
        if comp.ETCD in kinds:
            try:
                self._binaries[comp.ETCD] = comp.find_etcd(self.etcd_binary)
            except comp.BinaryNotFound as exc:
                raise ClusterStartError(str(exc)) from None

    async def _start_level(self, level: list[comp.ComponentKind], *, node: str,
                           deadline: float) -> None:
        """Every instance of every kind of the level, together (etcd members
        must: each waits for a quorum before it is healthy)."""
        try:
            async with asyncio.TaskGroup() as group:
                for kind in level:
                    count = 1 if node else self._replicas.get(kind.name, 1)
                    members: tuple[tuple[str, str], ...] = ()
                    fixed: list[dict[str, int] | None] = [None] * count
                    if kind.name == comp.ETCD and not node:
                        members, fixed = await self._etcd_members(kind, count)
                    for index in range(count):
                        group.create_task(self._start_new(
                            kind, node, deadline, index=index, ports=fixed[index],
                            etcd_cluster=members))
        except* ClusterError as eg:
            raise eg.exceptions[0] from None

    async def _etcd_members(self, kind: comp.ComponentKind, count: int
                            ) -> tuple[tuple[tuple[str, str], ...], list[dict[str, int] | None]]:
        """The etcd cluster's members (name, peer URL) and their ports, picked
        before any starts: --initial-cluster names them all. A single member
        may move to new ports when it loses one (its peer URL is not used);
        members of a larger cluster may not (their peers were told the URL)."""
        names = [comp.process_name(kind.name, i) for i in range(count)]
        try:
            ports = await asyncio.to_thread(comp.etcd_previous_ports, self.home, names)
        except ValueError as exc:
            raise ClusterStartError(str(exc)) from None
        if count == 1:
            return (), [None]  # picked per attempt: etcd_argv names it alone
        if ports is None:
            ports = [{port: self._ports.pick(HOST) for port in kind.ports} for _ in names]
        # Each member advertises its peer front (the others dial it, so a
        # partition can cut them apart) and listens behind it. etcd keeps the
        # advertised URL in its data: the front comes back on its recorded port.
        fronts: list[int] = []
        for name, p in zip(names, ports):
            recorded = p.pop("peer_front", None)
            address = self._peer_fronts.get(name) or (f"{HOST}:{recorded}" if recorded else "")
            try:
                address = await self.links.peer_front(name, f"{HOST}:{p['peer']}", address=address)
            except OSError as exc:
                raise ClusterStartError(f"{name}: cannot listen on its peer front {address}: "
                                        f"{exc}") from None
            self._peer_fronts[name] = address
            fronts.append(int(address.rpartition(":")[2]))
        await asyncio.to_thread(comp.record_etcd_ports, self.home, {
            name: {**p, "peer_front": front} for name, p, front in zip(names, ports, fronts)})
        members = tuple((name, comp.etcd_peer_url(HOST, front))
                        for name, front in zip(names, fronts))
        return members, list(ports)

    def _peers(self, kind: comp.ComponentKind, name: str) -> dict[str, str]:
        """What a control-plane or node process is told about the others
        (Launch.peers): for an apiserver its fronts to every etcd member; for
        everything else its apiserver front (component_apiserver())."""
        running = [p for p in self._procs if not p.node and p.state == ProcState.RUNNING]
        peers = {p.kind.name: p.address for p in reversed(running)}  # the first of each kind
        etcd = self._etcd_fronts.get(name) or ",".join(
            p.address for p in running if p.kind.name == comp.ETCD)
        if etcd:
            peers[comp.ETCD] = etcd
        apiserver = self.component_apiserver(name)
        if apiserver:
            peers[comp.APISERVER] = apiserver
        return peers

    def component_apiserver(self, name: str) -> str:
        """The one place a process's apiserver address is chosen: its own front
        (made by _make_fronts), which sends each connection to a live
        apiserver; "" when it has none (no apiserver runs)."""
        return self._apiserver_fronts.get(name, "")

    def _serving(self, p: _Process) -> bool:
        """A backend fronts may send new connections to: running (ready) and not
        paused. A partition is the fronts' own business (they skip cut ones)."""
        return p.state == ProcState.RUNNING and not p.paused

    def _live_apiservers(self, spread: int) -> list[tuple[str, str]]:
        """Serving apiservers (name, address), rotated by `spread` (a front's
        number) so that clients spread over them, those whose last health check
        went unanswered last (tried only when no other connects); a front tries
        them in this order."""
        live = [p for p in self._procs
                if p.kind.name == comp.APISERVER and not p.node and self._serving(p)]
        if not live:
            return []
        k = spread % len(live)
        live = live[k:] + live[:k]
        return [(p.name, p.address) for p in sorted(live, key=lambda p: p.health_failures > 0)]

    async def _make_fronts(self, kind: comp.ComponentKind, name: str) -> None:
        """A process's fronts, once for its life (its restarts reuse its argv):
        an apiserver gets one per etcd member (that member alone behind it: its
        own failover between members still acts, and a cut of either end drops
        the link); anything that talks to the apiserver gets one in front of
        every live apiserver."""
        if self.links is None:
            return
        if kind.name == comp.APISERVER:
            if name in self._etcd_fronts:
                return
            members = [p for p in self._procs if p.kind.name == comp.ETCD and not p.node]
            fronts = []
            for m in members:
                fronts.append(await self.links.frontend(
                    name, lambda m=m: [(m.name, m.address)] if self._serving(m) else []))
            if fronts:
                self._etcd_fronts[name] = ",".join(fronts)
        elif kind.name not in (comp.ETCD, comp.RUNTIME) and name not in self._apiserver_fronts:
            if self._has_apiserver():
                spread = len(self._apiserver_fronts)  # round robin over the processes
                self._apiserver_fronts[name] = await self.links.frontend(
                    name, lambda: self._live_apiservers(spread))

    async def _make_shared_front(self) -> None:
        """The address for the CLI and every kubeconfig.json client: a front
        over every live apiserver, which survives the loss of any one."""
        if self.links is None or "" in self._apiserver_fronts:
            return
        if self._has_apiserver():
            self._apiserver_fronts[""] = await self.links.frontend(
                "", lambda: self._live_apiservers(0))

    def _backend_gone(self, p: _Process) -> None:
        """p exited, was paused or stopped answering: its links reset now (its
        clients reconnect to another backend), and fronts leave it out until it
        serves again (_serving)."""
        if self.links is None or p.kind.name not in (comp.ETCD, comp.APISERVER):
            return
        dropped = self.links.backend_down(p.name)
        if dropped:
            self._log.info("links to a backend reset", process=p.name, connections=dropped)

    async def _start_new(self, kind: comp.ComponentKind, node: str, deadline: float, *,
                         index: int = 0, ports: dict[str, int] | None = None,
                         etcd_cluster: tuple[tuple[str, str], ...] = ()) -> None:
        """Start one process and wait until it is ready; `ports` fixed (an etcd
        member of a cluster: no retry on new ports) or picked per attempt."""
        loop = asyncio.get_running_loop()
        name = f"{node}/{kind.name}" if node else comp.process_name(kind.name, index)
        host = HOST
        label = name
        p: _Process | None = None
        begun = loop.time()
        attempts = 1 if ports is not None else PORT_ATTEMPTS_MAX
        try:
            await self._make_fronts(kind, name)
        except OSError as exc:
            raise ClusterStartError(f"{name}: cannot make its link fronts: {exc}") from None
        for attempt in range(1, attempts + 1):
            launch = comp.Launch(home=self.home, name=name, node=node, host=host,
                                 ports=dict(ports) if ports is not None else
                                 {port: self._ports.pick(host) for port in kind.ports},
                                 peers=self._peers(kind, name), binaries=dict(self._binaries),
                                 network_block=self._network_block,
                                 cluster_dns=self._cluster_dns() if node else "",
                                 etcd_cluster=etcd_cluster)
            if p is None:
                p = _Process(kind=kind, node=node, launch=launch)
                self._procs.append(p)
                if kind.version is not None:
                    try:
                        version = await asyncio.wait_for(kind.version(launch), 30.0)
                    except (RuntimeError, OSError, TimeoutError) as exc:
                        raise ClusterStartError(f"{name}: {exc}") from None
                    label = f"{name} {version}"
                    if kind.name == comp.ETCD and index == 0:
                        self.etcd_version = version
                        self._log.info("etcd version", version=version, binary=launch.binaries[comp.ETCD])
                        if comp.etcd_affected(version):
                            # DESIGN §5: those have a data-inconsistency bug when a member is killed under load.
                            self._log.warning("etcd 3.5.0-3.5.2 may lose consistency when killed under "
                                              "load; use 3.4.x or >= 3.5.3 (KUBEMU_ETCD) for chaos runs",
                                              version=version)
            else:
                p.launch = launch
            ready_by = min(deadline, loop.time() + kind.ready_timeout_s)
            try:
                await self._spawn(p)
                await self._wait_ready(p, ready_by)
            except _ExitedEarly as exc:
                p.state = ProcState.EXITED
                self._changed()
                if exc.port_in_use and attempt < attempts:
                    self._log.info("port taken; retrying on new ports", process=name,
                                   ports=dict(launch.ports), attempt=attempt)
                    continue
                raise ClusterStartError(
                    f"{name} exited with code {exc.code} before it was ready: {exc.last_line()} "
                    f"(log: {launch.log_path})") from None
            except _NotReady as exc:
                await self._stop_process(p, grace_s=1.0)
                raise ClusterStartError(
                    f"{name} not ready after {loop.time() - begun:.1f} s: {exc.reason} "
                    f"(log: {launch.log_path})") from None
            except OSError as exc:
                raise ClusterStartError(f"{name}: cannot start {launch.name}: {exc}") from None
            self._became_ready(p)
            self._progress(f"{label} ready in {loop.time() - begun:.1f} s ({p.address})")
            p.monitor = asyncio.create_task(self._supervise(p), name=f"supervise-{name}")
            return
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[HOME_ENV] = str(self.home)
        env[SUPERVISED_ENV] = str(self.home)
        env["PYTHONUNBUFFERED"] = "1"
        # `python -m <component>` must find the component packages wherever the
        # supervisor's cwd is; they sit next to this package.
        root = str(pathlib.Path(__file__).resolve().parent.parent)
        paths = [root] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x and x != root]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    async def _spawn(self, p: _Process) -> None:
        argv = p.kind.argv(p.launch)
        if p.kind.prepare is not None:
            await asyncio.to_thread(p.kind.prepare, p.launch)
        # Made 0600 here: the process appends to it (and may open it again itself).
        out = await asyncio.to_thread(_open_log, p.launch.log_path)
        with out:
            p.log_offset = os.fstat(out.fileno()).st_size
            p.proc = await aio.spawn(
                argv, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=self._child_env(), umask=-1 if self.child_umask is None else self.child_umask)
        # Read from /proc, which can stall on a process that is exiting: off the loop.
        p.create_time = await asyncio.to_thread(_create_time, p.proc.pid)
        self._spawned.append((p.proc.pid, p.create_time))
        if self.links is not None and p.kind.name == comp.ETCD:
            # A peer front tells its dialers apart by the pid owning the socket.
            self.links.register(p.name, p.proc.pid)
        p.state = ProcState.STARTING
        p.exit_code = None
        self._cancel_resume(p)
        p.paused = False  # a new process; whatever was paused is gone
        p.started_at = asyncio.get_running_loop().time()
        self._log.info("started", process=p.name, pid=p.proc.pid, argv=argv)
        self._changed()

    async def _wait_ready(self, p: _Process, deadline: float) -> None:
        """Poll the health check until it passes; _ExitedEarly / _NotReady otherwise."""
        loop = asyncio.get_running_loop()
        assert p.proc is not None
        exited = asyncio.ensure_future(p.proc.wait())
        interval_s = HEALTH_POLL_S_MIN
        last = "no answer yet"
        try:
            while True:
                if exited.done():
                    raise _ExitedEarly(p.proc.returncode, self._log_tail(p))
                remaining_s = deadline - loop.time()
                if remaining_s <= 0:
                    raise _NotReady(last)
                reason = await p.kind.health(p.address, min(HEALTH_CALL_TIMEOUT_S, remaining_s))
                if reason is None:
                    # Another process may answer on a port we lost the race for.
                    reason = await asyncio.to_thread(self._port_owner_problem, p)
                    if reason is None:
                        return
                last = reason
                await asyncio.wait({exited}, timeout=min(interval_s, max(0.0, deadline - loop.time())))
                interval_s = min(interval_s * 2, HEALTH_POLL_S_MAX)
        finally:
            exited.cancel()

    def _port_owner_problem(self, p: _Process) -> str | None:
        """None when the address's listening socket belongs to p (or its children).
        Blocking (reads the process table): run in a thread."""
        if not p.kind.ports:
            return None  # e.g. a unix socket: nobody else can hold it
        port = p.launch.ports[p.kind.ports[0]]
        try:
            root = psutil.Process(p.proc.pid)
            family = [root] + root.children(recursive=True)
            for proc in family:
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                        return None
        except psutil.Error:
            pass
        return f"port {port} answers, but not from pid {p.proc.pid}"

    def _log_tail(self, p: _Process) -> str:
        try:
            with open(p.launch.log_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(p.log_offset, size - LOG_TAIL_BYTES))
                return f.read(LOG_TAIL_BYTES).decode(errors="replace")
        except OSError:
            return ""

    def _became_ready(self, p: _Process) -> None:
        p.state = ProcState.RUNNING
        p.ready_at = asyncio.get_running_loop().time()
        self._log.info("ready", process=p.name, pid=p.pid, address=p.address, restarts=p.restarts)
        self._changed()

    # --- watching ---------------------------------------------------------

    async def _supervise(self, p: _Process) -> None:
        try:
            await self._watch(p)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug here must not leave the process silently unsupervised.
            self._log.exception("supervising failed; the process is no longer restarted",
                                process=p.name)
            p.state = ProcState.EXITED if not p.alive() else p.state
            self._progress(f"{p.name}: supervising failed (see the supervisor log); "
                           f"it will not be restarted")

    async def _watch(self, p: _Process) -> None:
        """Watch p for its life: health after start-up, exit, control requests.

        A running process whose check fails HEALTH_FAILURE_THRESHOLD times in a
        row is killed (a paused one through the API is never checked). One that
        died is restarted with back-off unless it is held down (stop, kill
        --keep-down: it waits for start), restart is off, or we are stopping.
        """
        loop = asyncio.get_running_loop()
        while True:
            assert p.proc is not None
            if p.alive():
                await self._watch_running(p)
            code = await p.proc.wait()
            if self.links is not None:
                self.links.unregister(p.name)
            self._backend_gone(p)
            if p.stopping:
                return
            p.note_exit(code)
            p.started_at = None
            self._cancel_resume(p)
            p.paused = False
            healthy_s = loop.time() - p.ready_at if p.ready_at is not None else 0.0
            p.ready_at = None
            if healthy_s >= RESTART_RESET_AFTER_S:
                p.backoff.reset()
            self._log.warning("process exited", process=p.name, pid=p.proc.pid, code=code,
                              healthy_s=round(healthy_s, 1))
            if not self.restart and not p.held:
                p.state = ProcState.EXITED
                self._changed()
                self._progress(f"{p.name} exited ({p.last_exit}); not restarting (restart is off)")
                p.held = True  # only a control start brings it back
            while True:
                if p.held:
                    if p.state != ProcState.EXITED:
                        p.state = ProcState.STOPPED
                        self._changed()
                        self._progress(f"{p.name} stopped ({p.last_exit}); down until started")
                    p.wake.clear()
                    while p.held:
                        await p.wake.wait()
                        p.wake.clear()
                    p.quick_restart = True
                if p.quick_restart:
                    p.quick_restart = False
                else:
                    delay_s = p.backoff.next_s()
                    p.state = ProcState.BACKOFF
                    self._changed()
                    self._progress(f"{p.name} exited ({p.last_exit}); "
                                   f"restarting in {delay_s:.1f} s")
                    p.wake.clear()
                    # The restart back-off itself; a control start/stop cuts it short.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(p.wake.wait(), delay_s)
                    if p.held:
                        continue
                p.quick_restart = False
                p.restarts += 1
                begun = loop.time()
                try:
                    await self._spawn(p)
                    await self._wait_ready(p, loop.time() + p.kind.ready_timeout_s)
                except (_ExitedEarly, _NotReady, OSError) as exc:
                    self._log.warning("restart failed", process=p.name, error=repr(exc))
                    await self._stop_process(p, grace_s=1.0, final=False)
                    p.note_exit(p.proc.returncode if p.proc else None)
                    continue
                if p.held:
                    # Stopped (stop, kill --keep-down) while it was starting: the
                    # stop found the old process dead and left this one to us.
                    await self._stop_process(p, grace_s=CONTROL_STOP_GRACE_S, final=False)
                    p.note_exit(p.proc.returncode if p.proc else None)
                    continue
                self._became_ready(p)
                self._progress(f"{p.name} restarted (restarts: {p.restarts}), ready in "
                               f"{loop.time() - begun:.1f} s ({p.address})")
                break

    async def _watch_running(self, p: _Process) -> None:
        """Return once p has exited; kill it when its health check gets no answer
        HEALTH_FAILURE_THRESHOLD times in a row (never while paused by the API).
        A check answered "not serving" is not a failure here: that process lives
        (an apiserver waiting for etcd); killing it would cascade."""
        assert p.proc is not None
        exited = asyncio.ensure_future(p.proc.wait())
        p.health_failures = 0
        try:
            while not exited.done():
                await asyncio.wait({exited}, timeout=HEALTH_WATCH_INTERVAL_S)
                # Partitioned is like paused: a cut etcd member loses its
                # leader and fails /health, and that is the experiment.
                if exited.done() or p.paused or p.stopping or p.state == ProcState.STOPPING \
                        or self.partitioned(p):
                    p.health_failures = 0
                    continue
                reason = await p.kind.health(p.address, HEALTH_WATCH_TIMEOUT_S)
                if reason is None or not unresponsive(reason) or p.paused or exited.done():
                    # An answer, even "not serving" (an apiserver whose etcd is
                    # down), is a live process: readiness, not liveness.
                    p.health_failures = 0
                    continue
                p.health_failures += 1
                self._log.warning("health check failed", process=p.name, reason=reason,
                                  failures=p.health_failures)
                if p.health_failures >= HEALTH_FAILURE_THRESHOLD:
                    self._progress(f"{p.name}: health check failed {p.health_failures} times "
                                   f"in a row ({reason}); killing it")
                    _signal_group(p.proc.pid, signal.SIGKILL)
                    _signal_group(p.proc.pid, signal.SIGCONT)
                    await exited
        finally:
            exited.cancel()

    # --- the reaper (deploy/reaper.py) -------------------------------------

    def _start_reaper(self) -> None:
        """Blocking (a thread). The process that stops this cluster's processes
        if this supervisor dies without stopping them (kill -9)."""
        from deploy import reaper

        env = self._child_env()
        env.pop(SUPERVISED_ENV, None)  # not one of the processes it kills
        env.pop(HOME_ENV, None)
        env[reaper.REAPER_HOME_ENV] = str(self.home)
        with _open_log(cluster_home.supervisor_log(self.home)) as out:
            self._reaper = subprocess.Popen(
                [sys.executable, "-m", "deploy.reaper"], stdin=subprocess.PIPE, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, env=env)

    def _stop_reaper(self) -> None:
        """Blocking (a thread): tell the reaper we stopped the cluster ourselves."""
        from deploy import reaper

        proc, self._reaper = self._reaper, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(reaper.DONE)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(KILL_WAIT_S)

    # --- control (deploy/control_server.py) --------------------------------

    async def _start_control(self) -> None:
        from deploy.control_server import ControlServer

        server = ControlServer(self, cluster_home.control_socket(self.home))
        await server.start()
        self._control_server = server

    async def _stop_control(self) -> None:
        """No more faults: the API closes, timed resumes and heals are dropped
        (a paused process is continued by its SIGTERM's SIGCONT in _stop_process)."""
        server, self._control_server = self._control_server, None
        if server is not None:
            await server.stop()
        for p in self._procs:
            self._cancel_resume(p)
        if self.links is not None:
            # Every partition ends with the API (and its timed heals, which are
            # the links' own timers): processes stop with their links, so a
            # kubelet can still say goodbye to the apiserver.
            self.links.heal()

    def process(self, name: str) -> _Process:
        for p in self._procs:
            if p.name == name:
                return p
        raise KeyError(f"no process named {name!r} "
                       f"(processes: {', '.join(q.name for q in self._procs)})")

    def processes(self, names: Sequence[str]) -> list[_Process]:
        """Every named process, or KeyError naming the first unknown one (nothing done)."""
        if not names:
            raise KeyError(f"no process named (processes: {', '.join(q.name for q in self._procs)})")
        return [self.process(name) for name in names]

    def _control_ready(self) -> None:
        if self._state != ClusterState.READY:
            raise ClusterError(f"the cluster is {self._state}; faults need a ready cluster")
        if self._busy:
            raise ClusterError(f"the supervisor is {self._busy}; try again once it is done")

    async def kill(self, names: Sequence[str], sig: int = signal.SIGKILL,
                   keep_down: bool = False) -> None:
        """Send sig to each process's group; it is restarted (with back-off)
        unless keep_down, when it stays down until start()."""
        self._control_ready()
        if sig in _PAUSE_SIGNALS:
            raise ValueError(f"signal: {signal.Signals(sig).name} stops or continues a process; "
                             f"use pause and resume, which the health watcher knows about")
        procs = self.processes(names)
        for p in procs:
            if not p.alive() and not keep_down:
                raise ClusterError(f"kill: {p.name} is {p.state}, not running")
        for p in procs:
            if keep_down:
                p.held = True
            if p.alive():
                self._log.info("control: kill", process=p.name, signal=sig, keep_down=keep_down)
                _signal_group(p.proc.pid, sig)
                if p.paused:
                    # A stopped process would not act on the signal.
                    self.resume_now(p)
            elif keep_down:
                p.wake.set()

    async def stop(self, names: Sequence[str]) -> None:
        """Stop each process (SIGTERM, grace, SIGKILL); down until start()."""
        self._control_ready()
        procs = self.processes(names)
        for p in procs:
            p.held = True
            p.wake.set()
        await asyncio.gather(*(self._control_stop(p) for p in procs))

    async def _control_stop(self, p: _Process) -> None:
        if not p.alive():
            return
        self._cancel_resume(p)
        grace_s = min(p.kind.stop_grace_s, CONTROL_STOP_GRACE_S)
        await self._stop_process(p, grace_s=grace_s, final=False)

    async def start_processes(self, names: Sequence[str]) -> None:
        """Bring held-down processes back now (no back-off); running ones are left alone."""
        self._control_ready()
        for p in self.processes(names):
            p.held = False
            p.quick_restart = not p.alive()
            p.wake.set()

    async def restart_processes(self, names: Sequence[str]) -> None:
        """Stop each process and start it again at once."""
        self._control_ready()
        procs = self.processes(names)
        for p in procs:
            p.held = False
            p.quick_restart = True
            p.wake.set()
        await asyncio.gather(*(self._control_stop(p) for p in procs))

    async def pause(self, names: Sequence[str], for_s: float | None = None) -> None:
        """SIGSTOP each process group; resumed after for_s (None: by resume())."""
        self._control_ready()
        procs = self.processes(names)
        for p in procs:
            # A starting one would miss its readiness deadline while stopped and be killed.
            if not p.alive() or p.state not in (ProcState.RUNNING, ProcState.PAUSED,
                                                 ProcState.PARTITIONED):
                raise ClusterError(f"pause: {p.name} is {p.state}, not running")
        for p in procs:
            self._cancel_resume(p)
            p.paused = True
            _signal_group(p.proc.pid, signal.SIGSTOP)
            p.state = ProcState.PAUSED
            # Its kernel still accepts: connections to it would hang, not fail.
            self._backend_gone(p)
            self._log.info("control: paused", process=p.name, for_s=for_s)
            if for_s is not None:
                p.resume_task = asyncio.get_running_loop().create_task(
                    self._resume_after(p, for_s), name=f"resume-{p.name}")
            self._changed()

    async def _resume_after(self, p: _Process, for_s: float) -> None:
        await asyncio.sleep(for_s)  # the pause's length, asked for
        p.resume_task = None
        self.resume_now(p)

    def _cancel_resume(self, p: _Process) -> None:
        if p.resume_task is not None:
            p.resume_task.cancel()
            p.resume_task = None

    def resume_now(self, p: _Process) -> None:
        if not p.paused:
            return
        p.paused = False
        p.health_failures = 0
        if p.alive():
            _signal_group(p.proc.pid, signal.SIGCONT)
            if p.state == ProcState.PAUSED:
                p.state = ProcState.RUNNING
        self._log.info("control: resumed", process=p.name)
        self._changed()

    async def resume(self, names: Sequence[str]) -> None:
        self._control_ready()
        for p in self.processes(names):
            self._cancel_resume(p)
            self.resume_now(p)

    async def partition(self, names: Sequence[str], for_s: float | None = None) -> None:
        self._control_ready()
        procs = self.processes(names)
        if self.links is None:
            raise ClusterError("partition: network links are not available in this cluster "
                               "(the supervisor runs no link proxies)")
        if for_s is not None and for_s <= 0:
            raise ClusterError(f"partition: --for must be > 0, got {for_s}")
        for p in procs:
            if p.kind.name == comp.RUNTIME:
                raise ClusterError(f"partition: {p.name} has no network link the supervisor "
                                   f"controls (the kubelet talks to it on a unix socket)")
        # Links heal by themselves after for_s (one timer per name, replaced by a new cut).
        await self.links.cut([p.name for p in procs], for_s)
        self._log.info("control: partitioned", processes=[p.name for p in procs], for_s=for_s)
        self._changed()

    async def heal(self, names: Sequence[str] | None = None) -> None:
        self._control_ready()
        procs = self.processes(names) if names else list(self._procs)
        if self.links is None:
            raise ClusterError("heal: network links are not available in this cluster "
                               "(the supervisor runs no link proxies)")
        self.links.heal([p.name for p in procs] if names else None)
        self._log.info("control: healed", processes=[p.name for p in procs])
        self._changed()

    def partitioned(self, p: _Process) -> bool:
        return self.links is not None and p.name in self.links.partitioned()

    def process_infos(self) -> list[dict]:
        """The control API's status: one dict per process (ProcessInfo's fields)."""
        now = asyncio.get_running_loop().time()
        out = []
        for p in self._procs:
            cut = self.partitioned(p)
            state = p.state
            if cut and state == ProcState.RUNNING:
                state = ProcState.PARTITIONED
            out.append(dict(
                name=p.name, component=p.kind.name, node=p.node,
                pid=p.pid if p.alive() else None, state=state, restarts=p.restarts,
                last_exit=p.last_exit,
                uptime_s=(now - p.started_at) if p.started_at is not None and p.alive() else None,
                address=p.address, partitioned=cut, paused=p.paused))
        return out

    # --- stopping ---------------------------------------------------------

    async def _stop_for_good(self, procs: Sequence[_Process], deadline: float) -> None:
        """Stop procs (given in start order) in reverse order, never to restart:
        their watchers end first; then each one's before_stop hook runs (a node
        runtime stops its containers) and it is stopped (SIGTERM, its grace
        period within the deadline, SIGKILL)."""
        loop = asyncio.get_running_loop()
        for p in procs:
            p.stopping = True
            self._cancel_resume(p)
        monitors = [p.monitor for p in procs if p.monitor is not None]
        for task in monitors:
            task.cancel()
        await asyncio.gather(*monitors, return_exceptions=True)
        for p in procs:
            p.monitor = None
        for p in reversed(procs):
            grace_s = max(0.1, min(p.kind.stop_grace_s, deadline - loop.time()))
            if p.kind.before_stop is not None:
                try:
                    await asyncio.wait_for(p.kind.before_stop(p.launch), grace_s)
                except Exception as exc:  # the process is stopped next regardless
                    self._log.warning("before-stop hook failed", process=p.name,
                                      error=repr(exc))
            await self._stop_process(p, grace_s=grace_s)

    async def _teardown(self, timeout_s: float) -> list[psutil.Process]:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        deadline = begun + timeout_s
        await self._stop_for_good(self._procs, deadline)
        # Children a component started and did not stop (they carry the marker),
        # and pods whose runtime was not there to stop them (its records).
        strays = await asyncio.to_thread(find_home_processes, self.home, by_cmdline=False)
        if strays:
            self._log.warning("killing stray processes", processes=describe(strays))
            await asyncio.to_thread(kill_processes, strays)
        left = await asyncio.to_thread(self.leftover_processes)
        if not left:
            stuck = await asyncio.to_thread(cluster_home.remove_cgroups, self.home)
            if stuck:
                self._log.warning("cgroups not removed", cgroups=[str(p) for p in stuck])

        def unlink_markers() -> None:
            for marker in (READY_FILE, PID_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self.home / marker).unlink()
        await asyncio.to_thread(unlink_markers)
        elapsed_s = loop.time() - begun
        if left:
            self._log.error("processes left after shutdown", processes=describe(left))
            self._progress(f"cluster stopped in {elapsed_s:.1f} s; {len(left)} process(es) left: "
                           f"{describe(left)}")
        else:
            self._progress(f"cluster stopped in {elapsed_s:.1f} s; no process left")
        return left

    async def _release_home(self) -> None:
        """Last step: after this another supervisor may claim the home."""
        if self.links is not None:
            await self.links.close()  # every process is gone: nothing dials a front now
        await self._flush_state()
        await asyncio.to_thread(self._stop_reaper)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    async def _stop_process(self, p: _Process, *, grace_s: float, final: bool = True) -> None:
        """SIGTERM the process group, wait up to grace_s, SIGKILL the group."""
        proc = p.proc
        if proc is None:
            if final:
                p.state = ProcState.STOPPED
            return
        if proc.returncode is None:
            if final:
                p.state = ProcState.STOPPING
                self._changed()
            # The leader is not reaped yet, so its pid still names its group.
            _signal_group(proc.pid, signal.SIGTERM)
            # A paused (SIGSTOPped) process acts on SIGTERM only once continued.
            _signal_group(proc.pid, signal.SIGCONT)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                self._log.warning("no exit within the grace period; SIGKILL", process=p.name,
                                  pid=proc.pid, grace_s=round(grace_s, 1))
                _signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), KILL_WAIT_S)
        # Group members that outlived their leader; a pid that still leads a
        # live group is not reused, so this cannot reach another process.
        _signal_group(proc.pid, signal.SIGKILL)
        p.note_exit(proc.returncode)
        if final:
            p.state = ProcState.STOPPED
            self._log.info("stopped", process=p.name, pid=proc.pid, code=proc.returncode)
            self._changed()

    # --- state ------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self._state = state
        self._changed()

    def _progress(self, line: str) -> None:
        self._progress_lines.append(line)
        self._log.info(line)
        self._progress_sink(line)
        self._changed()

    def _changed(self) -> None:
        """Persist state.json (`kubemu status` and `kubemu up` read it) soon.

        One writer task writes the latest state in a thread, again while
        something changed meanwhile: the loop never waits on the disk, writes
        never overlap, and the last state is always the one written.
        `_flush_state()` waits for it (before start returns, before release).
        """
        if self._lock_fd is None:
            return  # not our home (yet, or any more)
        self._state_dirty = True
        if self._state_writer is None or self._state_writer.done():
            self._state_writer = asyncio.get_running_loop().create_task(
                self._write_states(), name="write-state")

    async def _write_states(self) -> None:
        while self._state_dirty:
            self._state_dirty = False
            state = self._state_doc()
            try:
                await asyncio.to_thread(cluster_home.write_state, self.home, state)
            except OSError as exc:
                self._log.error("cannot write state file", error=str(exc))

    async def _flush_state(self) -> None:
        writer = self._state_writer
        while writer is not None and not writer.done():
            # Shielded: a cancelled caller must not leave a half-done writer behind.
            await asyncio.shield(writer)
            writer = self._state_writer

    def _state_doc(self) -> cluster_home.State:
        return cluster_home.State(
            home=str(self.home), state=self._state, reason=self._reason,
            updated=timefmt.rfc3339(), supervisor=self._me, etcd_version=self.etcd_version,
            nodes=self.node_names,
            processes=[cluster_home.ProcessRecord(
                name=p.name, component=p.kind.name, node=p.node, pid=p.pid,
                create_time=p.create_time, state=p.state, restarts=p.restarts,
                address=p.address, exit_code=p.exit_code, log=str(p.launch.log_path))
                for p in self._procs],
            progress=list(self._progress_lines))

    def _cluster_dns(self) -> str:
        if addon_manager.COREDNS not in self.addons or self._network_block is None \
                or self._dns_problem is not None:
            return ""
        return comp.dns_service_ip(self._network_block)

    async def _apply_addons(self, deadline: float) -> None:
        """Apply the add-ons' manifests (kubeadm's step after the control plane):
        idempotent, so a restarted `up` on the same etcd data changes nothing."""
        if not self.addons:
            return
        if not self.nodes or not self._node_kinds or self._network_block is None:
            self._progress(f"add-ons ({', '.join(self.addons)}): skipped, no node to run them"
                           + (" (the first node added applies them)" if self._node_kinds else ""))
            return
        names = list(self.addons)
        if self._dns_problem is not None and addon_manager.COREDNS in names:
            # Neither the DNS pods nor kube-proxy could listen on port 53: no
            # cluster DNS; kubelets run without --cluster-dns (pods use the
            # host's resolver, with a MissingClusterDNS event), as the README says.
            names.remove(addon_manager.COREDNS)
            self._progress(f"add-on {addon_manager.COREDNS}: skipped: {self._dns_problem}")
        if not names:
            self._addons_applied = True
            return
        values = addon_manager.AddonValues(dns_ip=comp.dns_service_ip(self._network_block))
        try:
            manifests = await asyncio.to_thread(addon_manager.load, names, values)
        except addon_manager.AddonError as exc:
            raise ClusterStartError(f"add-ons: {exc}") from None
        client = self._api_client()
        remaining_s = max(1.0, deadline - asyncio.get_running_loop().time())
        try:
            await addon_manager.apply(client, manifests, timeout_s=remaining_s,
                                      progress=lambda line: self._progress(f"add-on {line}"))
        except addon_manager.AddonError as exc:
            raise ClusterStartError(f"add-ons: {exc}") from None
        finally:
            await client.close()
        self._addons_applied = True

    async def _write_kubeconfig(self) -> None:
        components = {p.name: {"component": p.kind.name, "node": p.node, "address": p.address}
                      for p in self._procs}
        apiservers = [p.address for p in self._procs if p.kind.name == comp.APISERVER]
        etcd = [p.address for p in self._procs if p.kind.name == comp.ETCD]
        if not apiservers:
            # kubeconfig.json requires an apiserver; a cluster without one
            # (a test's own component table) has nothing for clients anyway.
            return
        # The shared front: the one address that survives the loss of any apiserver.
        config = ClusterConfig(apiserver=self._apiserver_fronts.get("", apiservers[0]),
                               apiservers=apiservers, etcd=etcd,
                               components=components)
        path = await asyncio.to_thread(write_cluster_config, self.home, config)
        self._log.info("kubeconfig written", path=str(path))


# --- etcd restore (blocking helpers run in threads) ---------------------

def _run_tool(argv: list[str], timeout_s: float = ETCD_TOOL_TIMEOUT_S) -> str:
    """Run an etcd tool; its stdout, or ClusterError with its last line."""
    env = dict(os.environ, ETCDCTL_API="3")
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{_what(argv)}: no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise ClusterError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        text = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise ClusterError(f"{_what(argv)} failed (exit code {done.returncode}): "
                           f"{text[-1] if text else 'no output'}")
    return done.stdout.decode(errors="replace")


def _what(argv: list[str]) -> str:
    """A command line, short: the tool and its sub-command (not a script's text)."""
    if len(argv) > 1 and argv[1] == "-c":
        return f"{argv[0]} -c (revision bump)"
    return " ".join(argv[:3])


def _snapshot_tool(tools: dict[str, str | None]) -> str:
    """etcdutl (3.5+: etcdctl's snapshot status/restore are deprecated there),
    else etcdctl (3.4)."""
    tool = tools.get("etcdutl") or tools.get("etcdctl")
    if tool is None:
        raise ClusterError("restore: neither etcdutl nor etcdctl beside the etcd binary or "
                           "on PATH")
    return tool


def etcd_snapshot_status(tools: dict[str, str | None], path: pathlib.Path) -> dict:
    """{"hash", "revision", "totalKey", "totalSize"} of a snapshot file."""
    if not path.is_file():
        raise ClusterError(f"restore: {path}: no such file")
    try:
        out = _run_tool([_snapshot_tool(tools), "snapshot", "status", str(path), "-w", "json"])
    except ClusterError as exc:
        raise ClusterError(f"restore: {path}: not an etcd snapshot ({exc})") from None
    try:
        doc = json.loads(out.strip().splitlines()[-1])
        int(doc["revision"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ClusterError(f"restore: {path}: not an etcd snapshot ({out.strip()[:200]!r})") from None
    return doc


def _restore_has_bump(tools: dict[str, str | None]) -> bool:
    """Whether `snapshot restore` takes --bump-revision / --mark-compacted
    (etcdutl of recent releases; not 3.4's etcdctl nor early 3.5's etcdutl)."""
    tool = _snapshot_tool(tools)
    try:
        text = _run_tool([tool, "snapshot", "restore", "--help"])
    except ClusterError:
        return False
    return "--bump-revision" in text and "--mark-compacted" in text


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _restore_member(tools: dict[str, str | None], snapshot: pathlib.Path, p: _Process,
                    bump: int) -> None:
    """Restore one (stopped) member's data directory from the snapshot: into a
    fresh directory beside it, then swapped in; the old one is kept as
    `<data>.before-restore` (one generation)."""
    argv = p.kind.argv(p.launch)
    data = pathlib.Path(_flag(argv, "--data-dir") or "")
    if not data.name:
        raise ClusterError(f"restore: {p.name}: no --data-dir in its command line")
    fresh = data.with_name(data.name + ".restoring")
    old = data.with_name(data.name + ".before-restore")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    restore = [_snapshot_tool(tools), "snapshot", "restore", str(snapshot),
               "--data-dir", str(fresh)]
    for name in ("--name", "--initial-cluster", "--initial-advertise-peer-urls",
                 "--initial-cluster-token"):
        value = _flag(argv, name)
        if value is not None:
            restore += [name, value]
    if bump:
        restore += ["--bump-revision", str(bump), "--mark-compacted"]
    _run_tool(restore, timeout_s=ETCD_RESTORE_TIMEOUT_S)
    os.chmod(fresh, 0o700)
    if data.exists():
        data.rename(old)
    fresh.rename(data)


def _undo_restore(p: _Process) -> None:
    """Put back the data directory _restore_member swapped out."""
    data = pathlib.Path(_flag(p.kind.argv(p.launch), "--data-dir") or "")
    old = data.with_name(data.name + ".before-restore")
    if old.is_dir():
        shutil.rmtree(data, ignore_errors=True)
        old.rename(data)


async def _etcd_revision(members: list[_Process], tools: dict[str, str | None]) -> int | None:
    """The highest revision any live member reports, or None (none answers)."""
    ctl = tools.get("etcdctl")
    if ctl is None:
        return None
    best: int | None = None
    for p in members:
        if not p.alive():
            continue
        try:
            out = await asyncio.to_thread(
                _run_tool, [ctl, "--endpoints", p.address, "--command-timeout", "3s",
                            "endpoint", "status", "-w", "json"])
            revision = int(json.loads(out)[0]["Status"]["header"]["revision"])
        except (ClusterError, ValueError, KeyError, IndexError, TypeError):
            continue
        best = revision if best is None else max(best, revision)
    return best


# Run in a child Python: thousands of etcd calls from the supervisor's own
# process would compete with its event loop for the GIL (the poller thread).
_BUMP_SCRIPT = """
import asyncio, sys
import aetcd

async def main(host, port, by, concurrency, call_timeout_s):
    client = aetcd.Client(host=host, port=port, timeout=int(call_timeout_s))
    try:
        await asyncio.wait_for(client.connect(), call_timeout_s)
        key = b"/kubemu/restore-bump"
        done = 0
        while done < by:
            batch = min(concurrency, by - done)
            await asyncio.wait_for(asyncio.gather(
                *(client.put(key, b"") for _ in range(batch))), call_timeout_s)
            done += batch
        # Its header's revision is the last one: compacted there.
        put = await asyncio.wait_for(client.put(key, b""), call_timeout_s)
        await asyncio.wait_for(client.compact(put.header.revision), call_timeout_s)
        print(put.header.revision)
    finally:
        await client.close()

host, port, by, concurrency, timeout_s = sys.argv[1:]
asyncio.run(main(host, int(port), int(by), int(concurrency), float(timeout_s)))
"""


def _bump_revision(address: str, by: int, *, timeout_s: float) -> int:
    """Move etcd's revision on by `by` (one write each of one key,
    RESTORE_BUMP_CONCURRENCY at a time) and compact at the last one (the key
    stays, a few bytes; the apiserver never reads outside /registry); returns
    that revision. Blocking: run it in a thread."""
    host, port = address.rsplit(":", 1)
    by = min(by, RESTORE_BUMP_MAX)
    out = _run_tool([sys.executable, "-c", _BUMP_SCRIPT, host, port, str(by),
                     str(RESTORE_BUMP_CONCURRENCY), str(ETCD_CALL_TIMEOUT_S)],
                    timeout_s=timeout_s)
    try:
        return int(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ClusterError(f"restore: moving the revision on said {out.strip()[:200]!r}") from None


def _print_line(line: str) -> None:
    print(line, flush=True)
