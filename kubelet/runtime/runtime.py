"""The container runtime's core, without gRPC: sandboxes, containers, exec,
stats, images and the recovery of a restarted runtime.

The contract (mounts, environment, working directory, stop, exit codes,
memory limit, state and adoption) is in the package docstring,
kubelet/runtime/__init__.py. Here: how it is done.

- Containers are spawned with subprocess.Popen, not asyncio subprocesses:
  closing an asyncio subprocess transport (at loop shutdown, or when it is
  garbage collected) SIGKILLs a child still running, and a runtime that stops
  must leave its containers running. Exits are seen through a pidfd (readable
  when the process ends; it works for children and adopted processes alike),
  with a polling fallback where there are no pidfds.
- One monitor loop samples every running container each
  `monitor_period_s` (in a thread: its cgroup's usage files where there is
  one, else its process tree through psutil), handles the memory cgroup's
  OOM kills or enforces the RSS watch, steps the CPU throttler of containers
  without a cpu cgroup, keeps CPU samples for the usage rate over
  `cpu_window_s`, and reaps orphans re-parented to the runtime (a child
  subreaper). It runs under kubemu.loops.Loops (a failure is logged,
  reported on the runtime's health and the loop restarted); the fault point
  `runtime-monitor` rehearses that.
- Cgroups (kubelet/runtime/cgroups.py): made at create, joined by the
  container's command through a shell stub before it execs (no preexec_fn:
  the runtime has threads), killed whole when the container ends, removed
  with it.
- Nothing blocks the event loop: directory trees are made and removed,
  /proc is scanned and state records are written in threads.
- Files: everything under the root is private (0700 directories, 0600
  files, made so explicitly, whatever the umask); container logs are 0600.
- Errors are RuntimeFailure subclasses, each naming its gRPC status code.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import json
import math
import os
import pathlib
import posixpath
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from typing import Iterable, Sequence

import grpc
import structlog

from kubelet.runtime import cgroups as cgroups_mod
from kubelet.runtime import images as images_mod
from kubelet.runtime import isolation as iso
from kubelet.runtime import lowports, nsinit, process
from kubelet.runtime import state as st
from kubelet.runtime import stdio
from kubelet.runtime import throttle
from kubemu import aio, streams
from kubemu.faults import NO_FAULTS, Faults
from kubemu.fileutil import atomic_write, private_dir, private_file
from kubemu.loops import Loops
from kubemu.runtime.v1 import runtime_pb2 as pb

log = structlog.get_logger()

RUNTIME_NAME = "kubemu"
RUNTIME_VERSION = "0.1.0"
RUNTIME_API_VERSION = "v1"
UNKNOWN_EXIT_CODE = 255       # containerd's code for an exit status it could not collect
UNKNOWN_EXIT_REASON = "Unknown"
START_ERROR_EXIT_CODE = 128   # containerd's code when the process could not start
OOM_EXIT_CODE = 137
EXEC_CANNOT_RUN_EXIT_CODE = 126
ID_PREFIX_MIN = 4
ETC_FILES = ("hostname", "hosts", "resolv.conf")
PAUSE_DIR = "pause"
# The pod's pause process (shareProcessNamespace, namespaces mode): PID 1 of the
# pod's PID namespace, it reaps what is re-parented to it and ends on SIGTERM.
PAUSE_SCRIPT = ("import os, signal\n"
                "wanted = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}\n"
                "signal.pthread_sigmask(signal.SIG_BLOCK, wanted)\n"
                "while signal.sigwaitinfo(wanted).si_signo == signal.SIGCHLD:\n"
                "    try:\n"
                "        while os.waitpid(-1, os.WNOHANG)[0] > 0:\n"
                "            pass\n"
                "    except ChildProcessError:\n"
                "        pass\n")
SHM_DIR = "shm"
SHM_MODE = 0o1777  # /dev/shm of the pod's containers (inside the 0700 pod directory)
MONITOR_LOOP = "runtime-monitor"
SCRIPT_MODE = 0o700  # an image's program wrapper: private, and executable
JOIN_WAIT_S = 2.0     # a container's start waits this long at most for its cgroup join stub
JOIN_POLL_S = 0.002


# ---------------------------------------------------------------- errors

class RuntimeFailure(Exception):
    code = grpc.StatusCode.UNKNOWN


class NotFound(RuntimeFailure):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RuntimeFailure):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(RuntimeFailure):
    code = grpc.StatusCode.FAILED_PRECONDITION


class InvalidArgument(RuntimeFailure):
    code = grpc.StatusCode.INVALID_ARGUMENT


class StartFailed(RuntimeFailure):
    code = grpc.StatusCode.UNKNOWN


class ExecTimeout(RuntimeFailure):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


# ---------------------------------------------------------------- pure helpers

def container_relative(container_path: str) -> str:
    """A container path as a path relative to the root view ('' for /)."""
    clean = posixpath.normpath("/" + container_path).lstrip("/")
    return "" if clean == "." else clean


def resolve_program(argv: Sequence[str], programs: dict[str, Sequence[str]],
                    rootfs: pathlib.Path | None) -> list[str]:
    """argv[0] as the host runs it: an image program, else (plain mode, `rootfs`
    given) an absolute path that exists in the container's root view (e.g. a
    script in a mounted volume), else unchanged (a path, or a name looked up on
    the container's PATH)."""
    head, rest = argv[0], list(argv[1:])
    if head in programs:
        return [*programs[head], *rest]
    if head.startswith("/") and rootfs is not None:
        inside = rootfs / container_relative(head)
        if os.path.lexists(inside):
            return [str(inside), *rest]
    return [head, *rest]


start_error_message = nsinit.start_error_message  # runc's wording, one definition


def exit_reason(code: int) -> str:
    return "Completed" if code == 0 else "Error"


def matches_labels(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _now_ns() -> int:
    return time.time_ns()


# ---------------------------------------------------------------- live state

@dataclasses.dataclass
class Options:
    root: pathlib.Path
    images_file: str | None = None
    monitor_period_s: float = 0.2
    cpu_window_s: float = 10.0
    kill_wait_s: float = 10.0           # after SIGKILL, how long until we call it stuck
    exec_output_bytes_max: int = 16 << 20
    exec_drain_s: float = 1.0           # output still open after the command exited
    isolation: str = iso.AUTO           # auto | namespaces | plain (isolation.py)
    cgroups: str = "auto"               # "none": no cgroups (the RSS watch, the throttler)
    cgroup_fs: pathlib.Path = cgroups_mod.DEFAULT_FS


class Container:
    """A container record plus what only a running runtime knows about it."""

    def __init__(self, record: st.ContainerRecord, cpu_samples_max: int):
        self.record = record
        self.popen: subprocess.Popen | None = None     # None: not ours (adopted) or not started
        self.identity: process.Identity | None = None
        self.exited = asyncio.Event()
        if record.state in (st.EXITED, st.UNKNOWN):
            self.exited.set()
        self.lock = asyncio.Lock()
        self.watch_task: asyncio.Task | None = None
        self.reapable = False   # re-parented to this runtime (a subreaper): it collects the exit
        self.bind_supervisor: lowports.Supervisor | None = None  # namespaces: ports < 1024
        self.kill_sent = False
        self.oom_message = ""
        self.execs: dict[int, process.Identity] = {}
        self.console: stdio.Console | None = None  # stdin/tty containers (attach)
        self.known: dict[int, process.Identity] = {}
        self.cpu_samples: collections.deque[tuple[float, int]] = collections.deque(
            maxlen=cpu_samples_max)
        self.cpu_total_ns = 0
        self.rss_bytes = 0
        self.process_count = 0
        self.sampled_at_ns = 0
        self.working_set_bytes = 0
        self.oom_kills_seen = 0         # the memory cgroup's OOM kill count already handled
        self.duty: throttle.DutyCycle | None = None  # the CPU throttler, without a cpu cgroup
        self.throttled: set[int] = set()  # pids stopped by the throttler (the group's, members)
        self.stopping = False           # being stopped or ended: no more throttling

    @property
    def running(self) -> bool:
        return self.record.state == st.RUNNING

    def apply_sample(self, sample: process.TreeSample, mono_s: float, now_ns: int) -> None:
        # CPU time of a process that died unreaped by the tree is lost: keep the
        # counter monotonic, as a cgroup's would be.
        self.cpu_total_ns = max(self.cpu_total_ns, sample.cpu_ns)
        self.cpu_samples.append((mono_s, self.cpu_total_ns))
        self.rss_bytes = sample.rss_bytes
        self.working_set_bytes = sample.rss_bytes
        self.process_count = len(sample.processes)
        self.sampled_at_ns = now_ns
        leader = self.record.pid
        self.known = {pid: ident for pid, ident in sample.processes.items() if pid != leader}

    def apply_usage(self, usage: cgroups_mod.Usage, mono_s: float, now_ns: int) -> None:
        self.cpu_total_ns = max(self.cpu_total_ns, usage.cpu_ns)
        self.cpu_samples.append((mono_s, self.cpu_total_ns))
        self.rss_bytes = usage.rss_bytes
        self.working_set_bytes = usage.working_set_bytes
        self.process_count = usage.process_count
        self.sampled_at_ns = now_ns

    def nano_cores(self, window_s: float) -> int:
        return self.cpu_rate(window_s)[0]

    def cpu_rate(self, window_s: float) -> tuple[int, float]:
        """(nano cores, seconds): the CPU rate over the samples of the last
        `window_s`, and the span those samples cover (what metrics-server
        reports as a metric's window)."""
        if len(self.cpu_samples) < 2:
            return 0, 0.0
        last_t, last_cpu = self.cpu_samples[-1]
        first_t, first_cpu = self.cpu_samples[0]
        for t, cpu in self.cpu_samples:
            if t >= last_t - window_s:
                first_t, first_cpu = t, cpu
                break
        elapsed_s = last_t - first_t
        if elapsed_s <= 0:
            return 0, 0.0
        return int((last_cpu - first_cpu) / elapsed_s), elapsed_s


@dataclasses.dataclass
class ExecCommand:
    """How to start a command in a running container: pass these to
    kubemu.aio.spawn (subprocess.Popen's arguments, from a thread; with
    start_new_session=True and the stdio you want), then call close().
    Namespaces mode: nsinit.py's `exec`, which enters the container first;
    plain mode: the command itself with the container's environment."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    pass_fds: tuple[int, ...] = ()

    def close(self) -> None:
        """Close what was handed to the child (once it is started)."""
        for fd in self.pass_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.pass_fds = ()


async def wait_exit(identity: process.Identity, poll_s: float) -> None:
    """Return when that process has ended (a zombie has ended)."""
    try:
        fd = os.pidfd_open(identity.pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            if not process.is_running(identity):  # the pid may already name another process
                return
            await aio.readable(fd)
        finally:
            os.close(fd)
        return
    while process.is_running(identity):
        await asyncio.sleep(poll_s)


async def _read_bounded(stream: asyncio.StreamReader, into: bytearray, limit_bytes: int) -> None:
    """Append up to `limit_bytes` to `into`; the rest is read and dropped so the
    writer never blocks on a full pipe."""
    while chunk := await stream.read(64 * 1024):
        room = limit_bytes - len(into)
        if room > 0:
            into += chunk[:room]


# ---------------------------------------------------------------- the runtime

class ContainerRuntime:
    def __init__(self, options: Options, catalog: images_mod.Catalog | None = None, *,
                 loops: Loops | None = None, faults: Faults = NO_FAULTS):
        self.options = options
        self.loops = loops or Loops()
        self.faults = faults
        self.root = options.root.resolve()
        self.catalog = catalog or images_mod.Catalog.load(options.images_file)
        self.store = st.Store(self.root)
        self.pods_dir = self.root / "pods"
        self.containers_dir = self.root / "containers"
        self.images_dir = self.root / "images"
        self.sandboxes: dict[str, st.SandboxRecord] = {}
        self.sandbox_names: dict[str, str] = {}
        self.containers: dict[str, Container] = {}
        self.container_names: dict[str, str] = {}
        self.pulled: dict[str, dict] = {}
        self.cpu_samples_max = min(10_000, math.ceil(options.cpu_window_s /
                                                     max(options.monitor_period_s, 0.01)) + 2)
        self.isolation = iso.plain("not started")
        self.cgroups = cgroups_mod.Cgroups.disabled()  # made on start
        self.subreaper = False
        self.spawning = 0  # exec commands and launchers being spawned: pids not known yet

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Prepare the root, find the isolation mode (iso.Unavailable when the
        one asked for cannot be had), recover the state, start monitoring."""
        def prepare() -> None:
            for d in (self.root, self.pods_dir, self.containers_dir, self.images_dir):
                private_dir(d)
            self.store.prepare()
            self.cgroups = cgroups_mod.Cgroups.open(self.root, fs=self.options.cgroup_fs,
                                                    mode=self.options.cgroups)
        await asyncio.to_thread(prepare)
        # Orphans of containers (double forks, daemons; a namespace's PID 1 once
        # its launcher is gone) become ours, not init's: reaped, exits collected.
        # (Before the detection: its trial container's exit is collected so.)
        self.subreaper = process.set_child_subreaper()
        self.isolation = await asyncio.to_thread(iso.detect, self.options.isolation, self.root)
        log.info("isolation mode", mode=self.isolation.mode, reason=self.isolation.reason,
                 rootless=self.isolation.rootless, uid_base=self.isolation.uid_base,
                 idmap_mounts=self.isolation.idmap_mounts, subreaper=self.subreaper)
        log.info("resource isolation", cgroups=self.cgroups.describe(),
                 parents=[str(p) for p in self.cgroups.parents], subreaper=self.subreaper)
        await self.store.save_isolation({"mode": self.isolation.mode,
                                         "reason": self.isolation.reason})
        await self._recover()
        self.loops.spawn(MONITOR_LOOP, self._monitor_loop)

    def limits_info(self) -> dict:
        """What the runtime's Version reports about resource isolation."""
        return {"cgroup_version": f"v{self.cgroups.version}" if self.cgroups.tracking
                else "none", "cgroup_controllers": self.cgroups.controllers,
                "child_subreaper": self.subreaper}

    async def close(self) -> None:
        """Stop watching; every container process keeps running (like containerd)."""
        watchers = [c.watch_task for c in self.containers.values() if c.watch_task]
        for task in watchers:
            task.cancel()
        await self.loops.stop()
        await asyncio.gather(*watchers, return_exceptions=True)
        # Consoles (stdin pipes, terminals) die with this process anyway (kubelet/runtime/stdio.py).
        await asyncio.gather(*(c.console.aclose() for c in self.containers.values() if c.console))
        await asyncio.to_thread(self.store.close)
        for c in self.containers.values():
            self._unthrottle(c)  # never leave a container stopped behind us
            if c.popen is not None and c.popen.returncode is None:
                # A Popen collected while its child runs is put on subprocess's
                # list to be reaped later; we hand the child over instead.
                c.popen.returncode = 0
        if not self.containers:
            # Nothing of ours runs: the parents go (kubemu down removes them otherwise).
            await asyncio.to_thread(self.cgroups.remove_parents)
        log.info("runtime closed; container processes left running",
                 running=sum(c.running for c in self.containers.values()))

    async def _recover(self) -> None:
        sandboxes, records, pulled, alive = await asyncio.to_thread(self._read_state)
        # A runtime killed while its throttler had stopped a container: continue it.
        for identity in alive.values():
            process.signal_group(identity.pid, signal.SIGCONT)
        for sandbox in sandboxes:
            self.sandboxes[sandbox.id] = sandbox
            self.sandbox_names[sandbox.reserved_name] = sandbox.id
        adopted = lost = 0
        for record in records:
            c = Container(record, self.cpu_samples_max)
            self.containers[record.id] = c
            self.container_names[record.reserved_name] = record.id
            if record.state != st.RUNNING:
                continue
            if record.id in alive:
                c.identity = alive[record.id]
                c.watch_task = asyncio.create_task(self._watch(c), name=f"watch-{record.id[:12]}")
                adopted += 1
            else:
                await self._set_exited(c, UNKNOWN_EXIT_CODE, UNKNOWN_EXIT_REASON,
                                       "the container's process ended while the runtime was "
                                       "down; its exit status is unknown")
                lost += 1
        self.pulled = pulled
        log.info("state recovered", sandboxes=len(self.sandboxes), containers=len(self.containers),
                 adopted=adopted, exited_while_down=lost)

    def _read_state(self) -> tuple[list[st.SandboxRecord], list[st.ContainerRecord],
                                   dict[str, dict], dict[str, process.Identity]]:
        """The records, and the identity of every recorded container still running
        (blocking: it reads the records and /proc). What is left of a container
        whose main process died while the runtime was down is killed, as when a
        pid namespace loses its init."""
        sandboxes = self.store.load_sandboxes()
        records = self.store.load_containers()
        alive: dict[str, process.Identity] = {}
        for record in records:
            if record.state != st.RUNNING:
                continue
            identity = process.Identity(record.pid, record.pid_start_ticks,
                                        record.pid_create_time)
            if process.is_running(identity):
                alive[record.id] = identity
                continue
            if record.pid_ns:
                continue  # its PID namespace ended with it: nothing can be left
            for pid in process.container_members(record.pid, f"KUBEMU_ROOTFS={record.rootfs}"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.cgroups.kill(record.id)
        # Cgroups of containers this runtime no longer knows (removed while it was
        # down, or left by a runtime that died mid-removal): emptied and removed.
        stale = self.cgroups.cleanup(r.id for r in records)
        if stale:
            log.info("stale cgroups removed", count=len(stale))
        return sandboxes, records, self.store.load_images(), alive

    # ------------------------------------------------------------ lookups

    @staticmethod
    def _find(table: dict, key: str, what: str):
        if not key:
            raise InvalidArgument(f"{what} id is required")
        if key in table:
            return table[key]
        if len(key) >= ID_PREFIX_MIN:
            hits = [v for k, v in table.items() if k.startswith(key)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise InvalidArgument(f"{what} id prefix {key!r} is ambiguous")
        raise NotFound(f"{what} {key!r} not found")

    def sandbox(self, sandbox_id: str) -> st.SandboxRecord:
        return self._find(self.sandboxes, sandbox_id, "sandbox")

    def container(self, container_id: str) -> Container:
        return self._find(self.containers, container_id, "container")

    def list_sandboxes(self, id_: str = "", state: str | None = None,
                       labels: dict[str, str] | None = None) -> list[st.SandboxRecord]:
        return [s for s in self.sandboxes.values()
                if (not id_ or s.id.startswith(id_)) and (state is None or s.state == state)
                and matches_labels(s.labels, labels or {})]

    def list_containers(self, id_: str = "", sandbox_id: str = "", state: str | None = None,
                        labels: dict[str, str] | None = None) -> list[Container]:
        return [c for c in self.containers.values()
                if (not id_ or c.record.id.startswith(id_))
                and (not sandbox_id or c.record.sandbox_id.startswith(sandbox_id))
                and (state is None or c.record.state == state)
                and matches_labels(c.record.labels, labels or {})]

    # ------------------------------------------------------------ sandboxes

    async def run_sandbox(self, config: pb.PodSandboxConfig) -> str:
        md = config.metadata
        for field, value in (("name", md.name), ("namespace", md.namespace), ("uid", md.uid)):
            if not value:
                raise InvalidArgument(f"config.metadata.{field} is required")
            if "/" in value or value in (".", ".."):
                raise InvalidArgument(f"config.metadata.{field} {value!r} is not a valid name")
        if config.pod_ip:
            try:
                ipaddress.ip_address(config.pod_ip)
            except ValueError:
                raise InvalidArgument(f"config.pod_ip {config.pod_ip!r} is not an IP address")
        reserved = f"{md.name}_{md.namespace}_{md.uid}_{md.attempt}"
        if reserved in self.sandbox_names:
            raise AlreadyExists(f'failed to reserve sandbox name "{reserved}": name '
                                f'"{reserved}" is reserved for "{self.sandbox_names[reserved]}"')
        sandbox_id = secrets.token_hex(32)
        pod_dir = self.pods_dir / f"{md.namespace}_{md.name}_{md.uid}"
        hostname = config.hostname or md.name
        aliases = [[a.ip, list(a.hostnames)] for a in config.host_aliases]
        dns = config.dns_config
        ns = self.isolation.namespaces

        def write_pod_dir() -> dict[str, str]:
            files = iso.pod_files(hostname, config.pod_ip, config.domain, aliases,
                                  iso.resolv_conf(dns.servers, dns.searches, dns.options))
            private_dir(pod_dir)
            for name, content in files.items():
                atomic_write(pod_dir / name, content, fsync=False)
            if ns:
                shm = pod_dir / SHM_DIR
                shm.mkdir(exist_ok=True)
                os.chmod(shm, SHM_MODE)
                if self.isolation.idmap_mounts:
                    os.chown(shm, 0, 0)  # idmapped: the containers' root's
            return files
        files = await asyncio.to_thread(write_pod_dir)
        options = config.namespace_options
        record = st.SandboxRecord(
            id=sandbox_id, name=md.name, namespace=md.namespace, uid=md.uid,
            attempt=md.attempt, hostname=hostname,
            log_directory=config.log_directory or str(pod_dir / "logs"), pod_dir=str(pod_dir),
            pod_ip=config.pod_ip, labels=dict(config.labels),
            annotations=dict(config.annotations), created_at=_now_ns(), domain=config.domain,
            host_aliases=aliases, resolv_conf=files["resolv.conf"],
            pid_mode=pb.NamespaceMode.Name(options.pid),
            ipc_mode=pb.NamespaceMode.Name(options.ipc))
        if ns and record.pid_mode == "POD":
            await self._start_pause(record)
        if reserved in self.sandbox_names:  # made meanwhile, by a call that did not wait
            self._stop_pause(record)
            raise AlreadyExists(f'failed to reserve sandbox name "{reserved}": name '
                                f'"{reserved}" is reserved for "{self.sandbox_names[reserved]}"')
        self.sandboxes[sandbox_id] = record
        self.sandbox_names[reserved] = sandbox_id
        await self.store.save_sandbox(record)
        log.info("sandbox ready", sandbox=sandbox_id[:12], pod=f"{md.namespace}/{md.name}",
                 pod_ip=config.pod_ip)
        return sandbox_id

    async def _start_pause(self, sandbox: st.SandboxRecord) -> None:
        """The pod's pause process (shareProcessNamespace): PID 1 of the PID
        namespace the pod's containers join. StartFailed when it cannot start."""
        base = pathlib.Path(sandbox.pod_dir) / PAUSE_DIR
        i = self.isolation

        def prepare() -> dict:
            for d in (base, base / "root", base / "layer"):
                private_dir(d)
            files = iso.pod_files(sandbox.hostname, sandbox.pod_ip, sandbox.domain,
                                  sandbox.host_aliases, sandbox.resolv_conf)
            return {**i.identity_spec(), "root": str(base / "root"),
                    "layer": str(base / "layer"), "hostname": sandbox.hostname,
                    "namespaces": {"pid": True, "ipc": True}, "masks": list(i.masks),
                    "binds": list(i.binds), "etc_files": files,
                    "process": {"argv": [i.python, "-I", "-S", "-c", PAUSE_SCRIPT],
                                "env": [["PATH", images_mod.DEFAULT_PATH]], "cwd": "/",
                                "uid": 0, "gid": 0, "groups": []}}
        spec = await asyncio.to_thread(prepare)
        null = await asyncio.to_thread(os.open, os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        self.spawning += 1  # the launcher is our child until it has reported
        try:
            launched = await asyncio.to_thread(iso.launch, i, spec, stdout=null, stderr=null)
        finally:
            self.spawning -= 1
            os.close(null)
        if launched.error:
            raise StartFailed(f"the pod's shared PID namespace could not be made: "
                              f"{launched.error}")
        identity = process.identify(launched.pid) or process.Identity(launched.pid)
        sandbox.pause_pid, sandbox.pause_start_ticks = launched.pid, identity.start_ticks

    def _stop_pause(self, sandbox: st.SandboxRecord) -> None:
        """SIGKILL the pod's pause process: the end of the pod's PID namespace,
        and of whatever is still in it."""
        if sandbox.pause_pid:
            process.signal_process(process.Identity(sandbox.pause_pid,
                                                    sandbox.pause_start_ticks), signal.SIGKILL)

    async def stop_sandbox(self, sandbox_id: str, timeout_s: float = 0.0) -> None:
        try:
            sandbox = self.sandbox(sandbox_id)
        except NotFound:
            return  # idempotent: nothing left to stop
        members = [c for c in self.containers.values() if c.record.sandbox_id == sandbox.id]
        await asyncio.gather(*(self._stop(c, timeout_s) for c in members))
        await asyncio.to_thread(self._stop_pause, sandbox)
        if sandbox.state != st.SANDBOX_NOTREADY:
            sandbox.state = st.SANDBOX_NOTREADY
            await self.store.save_sandbox(sandbox)
            log.info("sandbox stopped", sandbox=sandbox.id[:12],
                     pod=f"{sandbox.namespace}/{sandbox.name}")

    async def remove_sandbox(self, sandbox_id: str) -> None:
        try:
            sandbox = self.sandbox(sandbox_id)
        except NotFound:
            return
        await self.stop_sandbox(sandbox.id, 0.0)
        for c in [c for c in self.containers.values() if c.record.sandbox_id == sandbox.id]:
            await self.remove_container(c.record.id)
        await self.store.delete_sandbox(sandbox.id)
        self.sandboxes.pop(sandbox.id, None)
        self.sandbox_names.pop(sandbox.reserved_name, None)
        if not any(s.pod_dir == sandbox.pod_dir for s in self.sandboxes.values()):
            await asyncio.to_thread(shutil.rmtree, sandbox.pod_dir, True)
        log.info("sandbox removed", sandbox=sandbox.id[:12],
                 pod=f"{sandbox.namespace}/{sandbox.name}")

    # ------------------------------------------------------------ containers

    async def create_container(self, sandbox_id: str, config: pb.ContainerConfig) -> str:
        """The container's id. Its record says which limits are approximated
        (`warnings`) and what this node's isolation mode cannot do for it
        (`isolation_warnings`): one sentence each, Warning events for the kubelet."""
        sandbox = self.sandbox(sandbox_id)
        if sandbox.state != st.SANDBOX_READY:
            raise FailedPrecondition(f"sandbox {sandbox.id} is not ready ({sandbox.state})")
        name = config.metadata.name
        if not name:
            raise InvalidArgument("config.metadata.name is required")
        reserved = f"{name}_{sandbox.reserved_name}_{config.metadata.attempt}"
        if reserved in self.container_names:
            raise AlreadyExists(f'failed to reserve container name "{reserved}": name '
                                f'"{reserved}" is reserved for "{self.container_names[reserved]}"')
        image_name = config.image.image
        try:
            image = self.catalog.resolve(image_name)
            argv = images_mod.container_argv(image, config.command, config.args)
        except images_mod.ImageNotFound as err:
            raise NotFound(f'failed to resolve image "{image_name}": {err}') from None
        except (images_mod.InvalidReference, images_mod.NoCommand) as err:
            raise InvalidArgument(str(err)) from None
        mounts = []
        for i, m in enumerate(config.mounts):
            if not m.host_path.startswith("/"):
                raise InvalidArgument(f"config.mounts[{i}].host_path {m.host_path!r} "
                                      f"must be absolute")
            if not container_relative(m.container_path):
                raise InvalidArgument(f"config.mounts[{i}].container_path "
                                      f"{m.container_path!r} must name a path below /")
            mounts.append(st.MountRecord(m.container_path, m.host_path, m.readonly))
        ns = self.isolation.namespaces
        user = self._user(config, sandbox)
        isolation_warnings = self._isolation_warnings(config, sandbox, mounts)

        container_id = secrets.token_hex(32)
        container_dir = self.containers_dir / container_id
        rootfs = container_dir / "rootfs"
        workdir = container_relative(config.working_dir or image.workdir)
        host_workdir = rootfs / workdir if workdir else rootfs

        memory_limit_bytes = max(0, config.memory_limit_bytes)
        cpu_limit_millis = max(0, config.cpu_limit_millis)

        def build() -> tuple[pathlib.Path | None, cgroups_mod.Applied, bool]:
            if ns:
                for d in (container_dir, container_dir / "rootfs", container_dir / "layer"):
                    private_dir(d)  # nsinit mounts the view and its layer on these
            else:
                self._build_rootfs(rootfs, mounts, pathlib.Path(sandbox.pod_dir), container_id)
                private_dir(host_workdir)  # as Docker creates a missing workdir
            applied, joined = cgroups_mod.Applied(), False
            if self.cgroups.tracking:
                try:
                    applied = self.cgroups.create(container_id, memory_limit_bytes,
                                                  cpu_limit_millis)
                    joined = True
                except OSError as err:  # e.g. the kernel's cgroup limits: run without
                    log.warning("container cgroup not made; its limits are approximated",
                                container=container_id[:12], error=str(err))
            return self._image_bin_dir(image), applied, joined
        bin_dir, applied, joined = await asyncio.to_thread(build)
        warnings = self._limit_warnings(memory_limit_bytes, cpu_limit_millis, applied)
        env = self._environment(image, config, sandbox, None if ns else rootfs, bin_dir)
        log_path = self._log_path(sandbox, config)
        record = st.ContainerRecord(
            id=container_id, sandbox_id=sandbox.id, name=name, attempt=config.metadata.attempt,
            image=image_name, image_ref=image.image_ref, argv=argv,
            exec_argv=resolve_program(argv, image.programs, None if ns else rootfs),
            programs={k: list(v) for k, v in image.programs.items()},
            env=[[k, v] for k, v in env.items()],
            working_dir="/" + workdir if ns else str(host_workdir),
            rootfs=str(rootfs), log_path=str(log_path), mounts=mounts,
            memory_limit_bytes=memory_limit_bytes, cpu_limit_millis=cpu_limit_millis,
            memory_by_cgroup=applied.memory, cpu_by_cgroup=applied.cpu, warnings=warnings,
            isolation_warnings=isolation_warnings,
            in_cgroups=joined,
            labels=dict(config.labels),
            annotations=dict(config.annotations), sandbox_name=sandbox.reserved_name,
            created_at=_now_ns(), isolation=self.isolation.mode, workdir="/" + workdir,
            uid=user[0], gid=user[1], groups=user[2],
            no_new_privs=config.security_context.no_new_privs,
            readonly_rootfs=config.security_context.readonly_rootfs,
            bin_dir=str(bin_dir or ""), stdin=config.stdin, stdin_once=config.stdin_once,
            tty=config.tty)
        if reserved in self.container_names:  # made meanwhile, by a call that did not wait
            await asyncio.to_thread(shutil.rmtree, container_dir, True)
            await asyncio.to_thread(self.cgroups.remove, container_id)
            raise AlreadyExists(f'failed to reserve container name "{reserved}": name '
                                f'"{reserved}" is reserved for "{self.container_names[reserved]}"')
        self.containers[container_id] = Container(record, self.cpu_samples_max)
        self.container_names[reserved] = container_id
        await self.store.save_container(record)
        log.info("container created", container=container_id[:12], name=name,
                 pod=f"{sandbox.namespace}/{sandbox.name}", image=image_name,
                 argv=shlex.join(argv), isolation=self.isolation.mode, warnings=warnings,
                 isolation_warnings=isolation_warnings)
        return container_id

    def _user(self, config: pb.ContainerConfig,
              sandbox: st.SandboxRecord) -> tuple[int, int, list[int]]:
        """(uid, gid, supplementary groups) inside the container; InvalidArgument
        when the user namespace cannot map them. Rootless, the container's own
        user namespace maps its uid and gid (any), with no supplementary groups
        (setgroups is denied: _isolation_warnings says so)."""
        sc = config.security_context
        uid = sc.run_as_user if sc.HasField("run_as_user") else 0
        gid = sc.run_as_group if sc.HasField("run_as_group") else 0
        groups = sorted(set(sc.supplemental_groups))
        if not self.isolation.namespaces:
            return uid, gid, groups
        shared = self.isolation.rootless and sandbox.pid_mode == "POD"
        for what, value in (("runAsUser", uid), ("runAsGroup", gid),
                            *(("supplementalGroups/fsGroup", g) for g in groups)):
            if shared and value != 0 and not what.startswith("supplemental"):
                raise InvalidArgument(
                    f"{what} {value}: this node runs containers rootless, where the pod's "
                    f"shared process namespace (shareProcessNamespace) has one user "
                    f"namespace mapping id 0 only; run the cluster as root for other ids")
            if value < 0 or self.isolation.host_uid(value) is None:
                raise InvalidArgument(f"{what} {value}: outside the container's user "
                                      f"namespace (ids 0-{self.isolation.id_count - 1})")
        if self.isolation.rootless:
            groups = []
        return uid, gid, groups

    def _isolation_warnings(self, config: pb.ContainerConfig, sandbox: st.SandboxRecord,
                            mounts: list[st.MountRecord]) -> list[str]:
        """What the current mode cannot do for this container."""
        sc = config.security_context
        found = []
        if sandbox.pid_mode == "POD" and not self.isolation.namespaces:
            found.append("shareProcessNamespace: the plain isolation mode has no PID "
                         "namespaces (every process of the node is visible)")
        if self.isolation.namespaces:
            if self.isolation.rootless and sc.supplemental_groups:
                found.append(f"supplementalGroups/fsGroup {sorted(set(sc.supplemental_groups))} "
                             f"are not applied: this node runs containers rootless, where "
                             f"setgroups is denied")
            return found
        mode = "in the plain isolation mode"
        for m in mounts:
            if m.readonly:
                found.append(f"volume mount {m.container_path}: readOnly is not enforced {mode}")
        if sc.HasField("run_as_user") or sc.HasField("run_as_group") or sc.supplemental_groups:
            found.append(f"runAsUser, runAsGroup, fsGroup and supplementalGroups are not "
                         f"applied {mode}: the container runs as the runtime's user")
        if sc.readonly_rootfs:
            found.append(f"readOnlyRootFilesystem is not enforced {mode}")
        if sc.no_new_privs:
            found.append(f"allowPrivilegeEscalation: false is not enforced {mode}")
        return found

    def _limit_warnings(self, memory_limit_bytes: int, cpu_limit_millis: int,
                        applied: cgroups_mod.Applied) -> list[str]:
        """How a limit that no cgroup enforces is approximated (the kubelet makes
        them Warning events)."""
        warnings = []
        rootless = "" if os.geteuid() == 0 or self.options.cgroups == "none" else \
            f": the runtime runs as uid {os.geteuid()} and no cgroup is delegated to it"
        why = "no writable memory cgroup" if applied.tracked else f"no writable cgroups{rootless}"
        if memory_limit_bytes and not applied.memory:
            warnings.append(
                f"memory limit {memory_limit_bytes} bytes is approximated ({why}): the runtime "
                f"samples the container's RSS every {self.options.monitor_period_s:g}s and "
                f"kills it above the limit")
        why = "no writable cpu cgroup" if applied.tracked else f"no writable cgroups{rootless}"
        if cpu_limit_millis and not applied.cpu:
            warnings.append(
                f"cpu limit {cpu_limit_millis}m is approximated ({why}): the runtime stops and "
                f"continues the container on a duty cycle of "
                f"{self.options.monitor_period_s:g}s periods")
        return warnings

    def _build_rootfs(self, rootfs: pathlib.Path, mounts: list[st.MountRecord],
                      pod_dir: pathlib.Path, container_id: str) -> None:
        """The container's root view in the plain mode (blocking: run it in a thread)."""
        private_dir(rootfs)
        private_dir(rootfs / "root")
        links: list[str] = []
        for m in sorted(mounts, key=lambda m: container_relative(m.container_path).count("/")):
            relative = container_relative(m.container_path)
            outer = next((l for l in links if relative.startswith(l + "/")), None)
            if outer is not None:
                # The parent is itself a mount: a link here would be written into that volume.
                log.warning("nested mount not supported; skipped", container=container_id[:12],
                            mount=m.container_path, inside="/" + outer)
                continue
            host = pathlib.Path(m.host_path)
            if not host.exists():
                host.mkdir(parents=True, exist_ok=True)  # as containerd does for a bind source
            link = rootfs / relative
            private_dir(link.parent)
            if link.is_symlink():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)  # a directory we created for an earlier, deeper path
            os.symlink(m.host_path, link)
            links.append(relative)
        etc = rootfs / "etc"
        for name in ETC_FILES:
            if f"etc/{name}" in links or "etc" in links:
                continue
            private_dir(etc)
            if not (etc / name).is_symlink():
                os.symlink(pod_dir / name, etc / name)

    def _image_bin_dir(self, image: images_mod.ResolvedImage) -> pathlib.Path | None:
        """A bin directory with the image's bare-named programs, put first on PATH
        (blocking: run it in a thread). In the namespaces mode it is mounted,
        read-only, at nsinit.IMAGE_BIN_DIR in the container."""
        named = {k: v for k, v in image.programs.items() if "/" not in k}
        if not named:
            return None
        bin_dir = self.images_dir / f"{image.entry.name}-{image.id[7:19]}" / "bin"
        private_dir(bin_dir)
        for program, argv in named.items():
            path = bin_dir / program
            if path.exists() or path.is_symlink():
                continue
            tmp = bin_dir / f".{program}.{secrets.token_hex(4)}"
            if len(argv) == 1 and argv[0].startswith("/"):
                os.symlink(argv[0], tmp)
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SCRIPT_MODE)
                with os.fdopen(fd, "w") as f:
                    os.fchmod(f.fileno(), SCRIPT_MODE)
                    f.write(f"#!/bin/sh\nexec {shlex.join(argv)} \"$@\"\n")
            os.replace(tmp, path)
        if self.isolation.namespaces and self.isolation.idmap_mounts:
            # Seen through a plain bind: the host's root is nobody in there, so
            # the scripts must be readable and executable by anyone.
            for path in (bin_dir, *bin_dir.iterdir()):
                if not path.is_symlink():
                    os.chmod(path, 0o755)
        return bin_dir

    @staticmethod
    def _environment(image: images_mod.ResolvedImage, config: pb.ContainerConfig,
                     sandbox: st.SandboxRecord, rootfs: pathlib.Path | None,
                     bin_dir: pathlib.Path | None) -> dict[str, str]:
        """The image's env, the container's (which wins), then what is added when
        unset: PATH (the image's programs first), HOSTNAME, POD_IP; in the plain
        mode (`rootfs` given) HOME and KUBEMU_ROOTFS too. In the namespaces mode
        HOME is set by nsinit from the container's /etc/passwd."""
        env = dict(image.env)
        for kv in config.envs:
            env[kv.key] = kv.value
        env.setdefault("PATH", images_mod.DEFAULT_PATH)
        if bin_dir is not None:
            env["PATH"] = f"{bin_dir if rootfs is not None else nsinit.IMAGE_BIN_DIR}:" \
                          f"{env['PATH']}"
        env.setdefault("HOSTNAME", sandbox.hostname)
        if sandbox.pod_ip:
            env.setdefault("POD_IP", sandbox.pod_ip)
        if rootfs is not None:
            env.setdefault("HOME", str(rootfs / "root"))
            env["KUBEMU_ROOTFS"] = str(rootfs)
        return env

    @staticmethod
    def _log_path(sandbox: st.SandboxRecord, config: pb.ContainerConfig) -> pathlib.Path:
        log_dir = pathlib.Path(sandbox.log_directory)
        if config.log_path:
            return log_dir / config.log_path  # an absolute log_path stays as it is
        return log_dir / config.metadata.name / f"{config.metadata.attempt}.log"

    def _process_spec(self, r: st.ContainerRecord, argv: Sequence[str]) -> dict:
        return {"argv": list(argv), "env": r.env, "cwd": r.workdir, "uid": r.uid, "gid": r.gid,
                "groups": r.groups, "no_new_privs": r.no_new_privs}

    def _run_spec(self, r: st.ContainerRecord, sandbox: st.SandboxRecord) -> dict:
        """What nsinit.py's `run` needs to make this container's view."""
        i = self.isolation
        pod_dir = pathlib.Path(sandbox.pod_dir)
        shm = pod_dir / SHM_DIR
        files = iso.pod_files(sandbox.hostname, sandbox.pod_ip, sandbox.domain,
                              sandbox.host_aliases, sandbox.resolv_conf or
                              iso.resolv_conf((), (), ()))
        container_dir = pathlib.Path(r.rootfs).parent
        return {**i.identity_spec(r.uid, r.gid), "root": r.rootfs,
                "layer": str(container_dir / "layer"),
                "hostname": sandbox.hostname, "readonly_rootfs": r.readonly_rootfs,
                "namespaces": {"pid": sandbox.pid_mode != "NODE",
                               "ipc": sandbox.ipc_mode != "NODE"},
                "masks": list(i.masks), "binds": list(i.binds), "etc_files": files,
                "low_ports": bool(sandbox.pod_ip) and not i.rootless and lowports.supported(),
                "shm": str(shm) if shm.is_dir() else "", "bin_dir": r.bin_dir,
                "mounts": [dataclasses.asdict(m) for m in r.mounts],
                "process": self._process_spec(r, r.exec_argv),
                **({"join": {"pid": sandbox.pause_pid, "start_ticks": sandbox.pause_start_ticks}}
                   if sandbox.pid_mode == "POD" and sandbox.pause_pid else {})}

    async def start_container(self, container_id: str) -> None:
        c = self.container(container_id)
        async with c.lock:
            r = c.record
            if r.state != st.CREATED:
                raise FailedPrecondition(f"container {r.id} is in {r.state} state, "
                                         f"not {st.CREATED}")
            sandbox = self.sandboxes.get(r.sandbox_id)
            if sandbox is None or sandbox.state != st.SANDBOX_READY:
                raise FailedPrecondition(f"sandbox {r.sandbox_id} of container {r.id} "
                                         f"is not ready")
            log_path = pathlib.Path(r.log_path)

            def open_log() -> int:
                private_dir(log_path.parent)
                private_file(log_path)  # 0600 whatever the umask, before anything is in it
                return os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            log_fd = await asyncio.to_thread(open_log)
            console = stdio.Console(stdin=r.stdin, stdin_once=r.stdin_once, tty=r.tty) \
                if r.stdin or r.tty else None
            try:
                if r.isolation == iso.NAMESPACES:
                    pid = await self._launch(c, sandbox, log_fd, console)
                else:
                    pid = await self._spawn_plain(c, log_fd, console)
            except BaseException:
                if console is not None:
                    console.close()
                os.close(log_fd)
                raise
            if console is not None:
                console.started(log_fd, c.exited, self.options.exec_drain_s)
                c.console = console
            os.close(log_fd)
            c.identity = process.identify(pid) or process.Identity(pid)
            if r.in_cgroups and c.popen is not None:
                await self._joined(c.popen)  # (nsinit joins before it forks the container)
            r.state, r.started_at, r.pid = st.RUNNING, _now_ns(), pid
            r.pid_start_ticks, r.pid_create_time = c.identity.start_ticks, c.identity.create_time
            c.watch_task = asyncio.create_task(self._watch(c), name=f"watch-{r.id[:12]}")
            await self.store.save_container(r)
            log.info("container started", container=r.id[:12], name=r.name, pid=pid,
                     isolation=r.isolation or iso.PLAIN)

    async def _start_failed(self, c: Container, message: str) -> StartFailed:
        r = c.record
        r.started_at = _now_ns()
        await self._set_exited(c, START_ERROR_EXIT_CODE, "StartError", message)
        log.info("container failed to start", container=r.id[:12], name=r.name, error=message)
        return StartFailed(f'failed to start container "{r.id}": {message}')

    async def _spawn_plain(self, c: Container, log_fd: int,
                           console: stdio.Console | None) -> int:
        r = c.record
        try:
            argv, env = r.exec_argv, dict(r.env)
            if console is not None and console.tty:
                argv = stdio.ctty_argv(argv, env, r.working_dir)
            argv = self._in_cgroups(r, argv, env, r.working_dir)
            out = log_fd if console is None or console.child_output is None \
                else console.child_output
            # fork/exec from a thread: in the kernel they can take longer than a
            # loop may block (kubemu.aio.spawn); the child is ours but its pid
            # not known yet, so orphan reaping waits (`spawning`).
            self.spawning += 1
            try:
                c.popen = await asyncio.to_thread(
                    subprocess.Popen, argv,
                    stdin=subprocess.DEVNULL if console is None else console.child_stdin,
                    stdout=out, stderr=out, cwd=r.working_dir, env=env, start_new_session=True,
                    close_fds=True)
            finally:
                self.spawning -= 1
        except OSError as err:
            raise await self._start_failed(c, start_error_message(r.argv[0], err)) from None
        return c.popen.pid

    async def _launch(self, c: Container, sandbox: st.SandboxRecord, log_fd: int,
                      console: stdio.Console | None) -> int:
        """Start the container in its namespaces (nsinit.py); its PID 1's host pid.
        A `tty` container's terminal becomes its PID 1's controlling terminal."""
        r = c.record
        spec = await asyncio.to_thread(self._run_spec, r, sandbox)
        if console is not None and console.tty:
            spec["process"]["tty"] = True
        if r.in_cgroups:
            spec["cgroup_procs"] = self.cgroups.procs_files(r.id)  # nsinit.enter_cgroup
        out = log_fd if console is None or console.child_output is None \
            else console.child_output
        self.spawning += 1  # the launcher is our child until it has reported
        try:
            launched = await asyncio.to_thread(
                iso.launch, self.isolation, spec, stdout=out, stderr=out,
                stdin=subprocess.DEVNULL if console is None else console.child_stdin)
        finally:
            self.spawning -= 1
        if launched.error:
            message = launched.error
            if launched.stage == "exec" and launched.errno is not None:
                message = start_error_message(r.argv[0], OSError(launched.errno,
                                                                 os.strerror(launched.errno)))
            raise await self._start_failed(c, message)
        # Its own PID namespace, which ends with it (with a shared one, the pod's,
        # its processes are found and killed as in the plain mode).
        r.pid_ns = launched.pid_ns if sandbox.pid_mode == "CONTAINER" else ""
        c.reapable = self.subreaper
        if launched.bind_listener is not None:
            loop = asyncio.get_running_loop()
            fd = launched.bind_listener
            supervisor = lowports.Supervisor(fd, sandbox.pod_ip,
                                             on_close=lambda: loop.remove_reader(fd))
            loop.add_reader(fd, supervisor.on_ready)
            c.bind_supervisor = supervisor
        return launched.pid

    async def _watch(self, c: Container) -> None:
        """Wait for the leader to end, tear down what is left, record the exit."""
        try:
            await wait_exit(c.identity, self.options.monitor_period_s)
        except asyncio.CancelledError:
            raise
        except Exception:  # a container must never be left RUNNING for good: poll instead
            log.exception("exit watch failed; polling", container=c.record.id[:12])
            while process.is_running(c.identity):
                await asyncio.sleep(self.options.monitor_period_s)
        oom_kills = await asyncio.to_thread(self._kill_leftovers, c)
        returncode = None
        if c.popen is not None:
            # The leader is our zombie child: reaping it returns at once.
            returncode = c.popen.poll()
            if returncode is None:
                returncode = await asyncio.to_thread(c.popen.wait)
        elif c.reapable:
            returncode = await asyncio.to_thread(process.reap, c.record.pid)
        if c.bind_supervisor is not None:
            c.bind_supervisor.close()
        count, exact = oom_kills
        if count > c.oom_kills_seen and not c.oom_message and \
                (exact or returncode in (None, -signal.SIGKILL)):
            # The kernel killed for memory between two samples (or the leader itself).
            c.oom_message = self._oom_message(c, count)
        await self._record_exit(c, returncode)

    def _kill_leftovers(self, c: Container) -> tuple[int, bool]:
        """When a container's main process ends, the rest of it goes too (as when a
        pid namespace loses its init; with a PID namespace, the kernel has done
        it): its group, the processes seen in its tree, its execs, and everything
        in its cgroups. Blocking (it reads /proc and cgroupfs): run it in a
        thread. The memory cgroup's OOM kill count."""
        c.stopping = True
        if not c.record.pid_ns:
            leftovers = [i for i in c.known.values() if process.is_running(i)]
            if c.popen is not None or c.reapable or leftovers:
                # Our unreaped leader, or a live member, keeps the group id from being reused.
                process.signal_group(c.record.pid, signal.SIGKILL)
            process.kill_all(leftovers)
        for identity in c.execs.values():
            process.signal_group(identity.pid, signal.SIGKILL)
        if self.cgroups.tracking:
            left = self.cgroups.kill(c.record.id)
            if left:
                log.warning("processes left in a container's cgroup", container=c.record.id[:12],
                            pids=sorted(left)[:20])
        c.throttled.clear()  # SIGKILL ends stopped processes too
        if c.record.memory_by_cgroup:
            return self.cgroups.oom_kills(c.record.id)
        return 0, True

    @staticmethod
    def _oom_message(c: Container, count: int) -> str:
        return (f"the kernel's OOM killer killed {count} process(es) of the container at its "
                f"memory cgroup limit of {c.record.memory_limit_bytes} bytes")

    async def _record_exit(self, c: Container, returncode: int | None) -> None:
        if c.oom_message:
            code, reason, message = OOM_EXIT_CODE, "OOMKilled", c.oom_message
        elif returncode is not None:
            code = process.exit_code(returncode)
            reason, message = exit_reason(code), ""
        elif c.kill_sent:
            code, reason, message = OOM_EXIT_CODE, "Error", ""  # SIGKILL cannot be caught
        else:
            code, reason = UNKNOWN_EXIT_CODE, UNKNOWN_EXIT_REASON
            message = ("the process was adopted after a runtime restart; "
                       "its exit status is unknown")
        await self._set_exited(c, code, reason, message)
        log.info("container exited", container=c.record.id[:12], name=c.record.name,
                 exit_code=code, reason=reason)

    async def _set_exited(self, c: Container, code: int, reason: str, message: str) -> None:
        r = c.record
        r.state, r.exit_code, r.reason, r.message = st.EXITED, code, reason, message
        r.finished_at = _now_ns()
        c.exited.set()
        await self.store.save_container(r)

    async def stop_container(self, container_id: str, timeout_s: float) -> None:
        await self._stop(self.container(container_id), timeout_s)

    def _signal(self, c: Container, sig: int) -> None:
        """SIGTERM/SIGKILL a container: its PID 1 when it has a PID namespace (as
        containerd: a PID 1 without a handler ignores SIGTERM; SIGKILL ends the
        namespace), else its process group."""
        if c.record.pid_ns:
            if c.identity is not None and (c.reapable or process.is_running(c.identity)):
                process.signal_process(c.identity, sig)
        elif c.popen is not None or c.reapable or process.is_running(c.identity):
            process.signal_group(c.record.pid, sig)

    async def _stop(self, c: Container, timeout_s: float) -> None:
        if not c.running:
            return
        c.stopping = True
        if timeout_s > 0:
            self._signal(c, signal.SIGTERM)
            self._unthrottle(c)  # a stopped process handles SIGTERM only once continued
            try:
                await asyncio.wait_for(c.exited.wait(), timeout_s)
                return
            except TimeoutError:
                pass
        self._kill(c)
        if self.cgroups.tracking:
            # Whatever left the group (setsid, double fork) is still in the cgroups.
            await asyncio.to_thread(self.cgroups.kill, c.record.id)
        try:
            await asyncio.wait_for(c.exited.wait(), self.options.kill_wait_s)
        except TimeoutError:
            raise RuntimeFailure(f"container {c.record.id} still running "
                                 f"{self.options.kill_wait_s:g}s after SIGKILL") from None

    def _kill(self, c: Container) -> None:
        c.kill_sent = True
        self._signal(c, signal.SIGKILL)
        if not c.record.pid_ns:
            process.kill_all(c.known.values())
        for identity in c.execs.values():
            process.signal_group(identity.pid, signal.SIGKILL)

    async def remove_container(self, container_id: str) -> None:
        try:
            c = self.container(container_id)
        except NotFound:
            return  # idempotent
        async with c.lock:
            await self._stop(c, 0.0)
            if c.watch_task is not None:
                await asyncio.gather(c.watch_task, return_exceptions=True)
            r = c.record
            self.containers.pop(r.id, None)
            self.container_names.pop(r.reserved_name, None)
            await self.store.delete_container(r.id)
            await asyncio.to_thread(shutil.rmtree, pathlib.Path(r.rootfs).parent, True)
            if self.cgroups.tracking:
                left = await asyncio.to_thread(self.cgroups.remove, r.id)
                if left:
                    log.warning("cgroup not removed", container=r.id[:12],
                                left=[str(p) for p in left])
            log.info("container removed", container=r.id[:12], name=r.name)

    # ------------------------------------------------------------ exec

    def exec_command(self, c: Container, cmd: Sequence[str], *, tty: bool = False) -> ExecCommand:
        """How to run `cmd` in the running container `c` (for ExecSync here, and
        for an interactive exec's transport): in the namespaces mode it enters
        the container's namespaces as its user (nsinit.py `exec`); `tty`: the
        command gets its own session with stdin as controlling terminal."""
        r = c.record
        argv = resolve_program(cmd, r.programs,
                               None if r.isolation == iso.NAMESPACES else pathlib.Path(r.rootfs))
        if r.isolation != iso.NAMESPACES:
            return ExecCommand(argv=argv, env=dict(r.env), cwd=r.working_dir)
        sandbox = self.sandboxes.get(r.sandbox_id)
        spec = iso.exec_spec(self.isolation, r.pid, r.pid_start_ticks,
                             {**self._process_spec(r, argv), "tty": tty},
                             {"pid": sandbox is None or sandbox.pid_mode != "NODE",
                              "ipc": sandbox is None or sandbox.ipc_mode != "NODE"})
        fd = iso.memfd_with(json.dumps(spec).encode())
        return ExecCommand(argv=self.isolation.launcher("exec", fd), env={"LANG": "C.UTF-8"},
                           cwd="/", pass_fds=(fd,))

    async def exec_sync(self, container_id: str, cmd: Sequence[str],
                        timeout_s: float) -> tuple[bytes, bytes, int]:
        c = self.container(container_id)
        r = c.record
        if not c.running:
            raise FailedPrecondition(f"container {r.id} is not running ({r.state})")
        if not cmd:
            raise InvalidArgument("cmd is required")
        command = self.exec_command(c, cmd)
        self.spawning += 1
        try:
            # From a thread (kubemu.aio.spawn): a fork/exec can block a loop.
            proc = await aio.spawn(
                self._in_cgroups(r, command.argv, command.env, command.cwd),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=command.cwd, env=command.env, start_new_session=True,
                pass_fds=command.pass_fds)
        except OSError as err:
            return b"", (start_error_message(cmd[0], err) + "\n").encode(), \
                EXEC_CANNOT_RUN_EXIT_CODE
        finally:
            command.close()
            self.spawning -= 1
        c.execs[proc.pid] = process.identify(proc.pid) or process.Identity(proc.pid)
        limit = self.options.exec_output_bytes_max
        out, err = bytearray(), bytearray()
        readers = [asyncio.create_task(_read_bounded(proc.stdout, out, limit)),
                   asyncio.create_task(_read_bounded(proc.stderr, err, limit))]
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s if timeout_s > 0 else None)
            except TimeoutError:
                raise ExecTimeout(f"timeout {timeout_s:g}s exceeded: command "
                                  f"{shlex.join(cmd)!r} did not finish") from None
            # Output pipes can outlive the command (a background child holds them).
            await asyncio.wait(readers, timeout=self.options.exec_drain_s)
            return bytes(out), bytes(err), process.exit_code(proc.returncode)
        finally:
            if proc.returncode is None:
                process.signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
            for task in readers:
                task.cancel()
            proc.close()
            c.execs.pop(proc.pid, None)

    async def spawn_in_container(self, c: Container, cmd: Sequence[str], *, stdin: int,
                                 stdout: int, stderr: int, tty: bool) -> aio.Child:
        """Start `cmd` inside container `c`: the one place where a streaming exec's
        process enters a container. Namespaces mode: nsinit.py `exec` enters its
        namespaces and takes its user (exec_command); plain mode: the
        container's environment, working directory and image programs. Either
        way a session of its own (with `tty`, `stdin` is a terminal that becomes
        its controlling terminal), recorded in c.execs so that it is sampled
        with the container and SIGKILLed with it. The caller removes it from
        c.execs once it has ended. Raises OSError when the command cannot start
        (FileNotFoundError, PermissionError; in the namespaces mode the
        launcher reports that on stderr and exits 126)."""
        r = c.record
        command = self.exec_command(c, cmd, tty=tty)
        argv = command.argv
        if tty and r.isolation != iso.NAMESPACES:
            argv = stdio.ctty_argv(argv, command.env, command.cwd)
        argv = self._in_cgroups(r, argv, command.env, command.cwd)
        self.spawning += 1
        try:
            proc = await aio.spawn(
                argv, stdin=stdin, stdout=stdout, stderr=stderr, cwd=command.cwd,
                env=command.env, start_new_session=True, pass_fds=command.pass_fds)
        finally:
            command.close()
            self.spawning -= 1
        c.execs[proc.pid] = process.identify(proc.pid) or process.Identity(proc.pid)
        return proc

    async def _joined(self, popen: subprocess.Popen) -> None:
        """Return once the join stub has exec'd the command (or ended), as a
        started container is its command; bounded by JOIN_WAIT_S."""
        deadline = time.monotonic() + JOIN_WAIT_S
        while popen.poll() is None and time.monotonic() < deadline:
            if not cgroups_mod.is_join_stub(process.cmdline(popen.pid)):
                return
            await asyncio.sleep(JOIN_POLL_S)

    def _in_cgroups(self, r: st.ContainerRecord, argv: list[str], env: dict[str, str],
                    cwd: str) -> list[str]:
        """`argv` as launched into the container's cgroups (through the join
        stub: kubelet/runtime/cgroups.py). The program is looked up first, so
        a missing one fails here with the usual error (OSError), as an exec
        would, and not in the stub. (In the namespaces mode `argv` is nsinit's
        `exec`, which then enters the container: the command is in them too.)"""
        if not r.in_cgroups:
            return list(argv)
        stdio.resolve_executable(argv[0], env, cwd)
        return cgroups_mod.join_argv(self.cgroups.procs_files(r.id), argv, env)

    async def exec_stream(self, start: pb.StreamStart, inputs, send) -> None:
        """An interactive exec (the ExecStream call): `inputs` are the client's
        messages after `start`, `send` sends one StreamOutput. `started` first,
        output, then the exit code; a command that cannot start gives 126 and
        the reason on stderr, as ExecSync does. However it ends (timeout,
        client gone, error), the command's process group is SIGKILLed."""
        c = self.container(start.container_id)
        r = c.record
        if not c.running:
            raise FailedPrecondition(f"container {r.id} is not running ({r.state})")
        if not start.cmd:
            raise InvalidArgument("cmd is required")
        io = stdio.ExecIO(stdin=start.stdin, tty=start.tty, width=start.size.width,
                          height=start.size.height)
        proc = None
        try:
            try:
                proc = await self.spawn_in_container(
                    c, list(start.cmd), stdin=io.child_stdin, stdout=io.child_stdout,
                    stderr=io.child_stderr, tty=start.tty)
            except OSError as err:
                await send(pb.StreamOutput(started=True))
                await send(pb.StreamOutput(
                    stderr=(start_error_message(start.cmd[0], err) + "\n").encode()))
                await send(pb.StreamOutput(exit_code=EXEC_CANNOT_RUN_EXIT_CODE))
                return
            finally:
                io.close_child()
            await send(pb.StreamOutput(started=True))
            try:
                returncode = await stdio.pump_session(proc, io, inputs, send,
                                                      timeout_s=start.timeout_s,
                                                      drain_s=self.options.exec_drain_s)
            except TimeoutError:
                raise ExecTimeout(f"timeout {start.timeout_s:g}s exceeded: command "
                                  f"{shlex.join(start.cmd)!r} did not finish") from None
            except streams.ProtocolError as err:
                raise InvalidArgument(str(err)) from None
            await send(pb.StreamOutput(exit_code=process.exit_code(returncode)))
        finally:
            if proc is not None:
                if proc.returncode is None:
                    process.signal_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
                c.execs.pop(proc.pid, None)
            io.close()

    async def attach(self, start: pb.StreamStart, inputs, send) -> None:
        """Attach to a container's main process (the Attach call): its stdin (when it
        was created with `stdin` and `start.stdin` asks) and terminal size. Sends
        `started`, then the exit code when the container ends. With `stdin_once`
        (no tty) the end of this client's stdin, or of the call, closes the
        container's stdin for good."""
        c = self.container(start.container_id)
        r = c.record
        if not c.running:
            raise FailedPrecondition(f"container {r.id} is not running ({r.state})")
        console = c.console
        wants_stdin = start.stdin and r.stdin
        if console is None and (wants_stdin or (r.tty and start.tty)):
            raise FailedPrecondition(
                f"container {r.id} was started by an earlier instance of the runtime: its "
                f"{'terminal' if r.tty else 'stdin'} is gone (restart the container to "
                f"attach to it)")
        if wants_stdin and console.stdin_closed:
            wants_stdin = False  # stdinOnce: an earlier client closed it
        await send(pb.StreamOutput(started=True))

        async def feed() -> None:
            order = streams.InputOrder()
            order.check("start")
            async for message in inputs:
                kind = streams.input_kind(message)
                order.check(kind)
                if kind == "stdin" and wants_stdin:
                    await console.write(message.stdin)
                elif kind == "resize" and console is not None:
                    console.resize(message.resize.width, message.resize.height)
                elif kind == "close_stdin":
                    break

        feeder = asyncio.ensure_future(feed())
        ended = asyncio.ensure_future(c.exited.wait())
        try:
            await asyncio.wait({feeder, ended}, return_when=asyncio.FIRST_COMPLETED)
            if feeder.done() and feeder.exception() is not None:
                raise InvalidArgument(str(feeder.exception()))
            if wants_stdin and console.stdin_once:
                console.close_stdin()
            await ended
            await send(pb.StreamOutput(exit_code=r.exit_code))
        finally:
            if wants_stdin and console.stdin_once:
                console.close_stdin()
            for task in (feeder, ended):
                task.cancel()
            await asyncio.gather(feeder, ended, return_exceptions=True)

    # ------------------------------------------------------------ stats

    async def _monitor_loop(self) -> None:
        """Runs under Loops: a failure outside one sample (or the fault point)
        ends this run; Loops logs it, reports it on health and starts it again."""
        while True:
            self.faults.check(MONITOR_LOOP)
            try:
                await self.sample()
            except Exception:  # one bad sample is logged; the next one may do
                log.exception("monitor sample failed")
            self._reap_orphans()
            await asyncio.sleep(self.options.monitor_period_s)  # the sampling period

    async def sample(self, only: Iterable[Container] | None = None) -> None:
        """Sample running containers' usage (their cgroups where there are, else
        their process trees); enforce memory limits (the cgroup's OOM kills, or
        the RSS watch) and the throttler's CPU limits."""
        targets = [c for c in (only if only is not None else self.containers.values())
                   if c.running and c.identity is not None]
        if not targets:
            return
        accounting = self.cgroups.has(cgroups_mod.MEMORY) and (
            self.cgroups.has(cgroups_mod.CPUACCT if self.cgroups.version == 1
                             else cgroups_mod.CPU))
        queries = {c.record.id: process.TreeQuery(
            roots=(c.identity, *c.execs.values()), known=tuple(c.known.values()))
            for c in targets}
        throttled = {c.record.id for c in targets if self._throttles(c)}
        # Without cgroups, orphans re-parented to the runtime are put back with
        # the container they came from, where that can be told.
        orphans = self._orphans() if not self.cgroups.tracking else set()
        leaders = {c.record.pid: c.record.id for c in targets}
        markers = {f"KUBEMU_ROOTFS={c.record.rootfs}": c.record.id for c in targets}

        def measure() -> tuple[dict, dict, dict, dict]:
            for key, found in process.attribute_orphans(orphans, leaders, markers).items():
                q = queries.get(key)
                if q is not None:
                    queries[key] = dataclasses.replace(q, known=(*q.known, *found))
            usages: dict[str, cgroups_mod.Usage] = {}
            if accounting:
                for key in list(queries):
                    usage = self.cgroups.usage(key)
                    if usage is not None:
                        usages[key] = usage
                        del queries[key]
            ooms = {c.record.id: self.cgroups.oom_kills(c.record.id)
                    for c in targets if c.record.memory_by_cgroup}
            members = {key: self.cgroups.members(key) for key in throttled} \
                if self.cgroups.tracking else {}
            return process.sample_trees(queries), usages, ooms, members
        samples, usages, ooms, members = await asyncio.to_thread(measure)
        mono_s, now_ns = time.monotonic(), _now_ns()
        for c in targets:
            key = c.record.id
            if not c.running:
                continue
            if key in usages:
                c.apply_usage(usages[key], mono_s, now_ns)
            elif key in samples:
                c.apply_sample(samples[key], mono_s, now_ns)
            else:
                continue
            limit = c.record.memory_limit_bytes
            count, exact = ooms.get(key, (0, True))
            if count > c.oom_kills_seen and exact and not c.oom_message:
                # cgroup v1 has no memory.oom.group: the kernel killed one process;
                # the container goes whole, as on v2 (and as the kubelet has it there).
                c.oom_message = self._oom_message(c, count)
                log.warning("container OOM-killed in its memory cgroup", container=key[:12],
                            name=c.record.name, oom_kills=count, limit_bytes=limit)
                self._kill(c)
                await asyncio.to_thread(self.cgroups.kill, key)
            elif limit and not c.record.memory_by_cgroup and c.rss_bytes > limit \
                    and not c.oom_message:
                c.oom_message = (f"memory usage {c.rss_bytes} bytes exceeded the limit "
                                 f"of {limit} bytes")
                log.warning("container over its memory limit: killed", container=key[:12],
                            name=c.record.name, rss_bytes=c.rss_bytes, limit_bytes=limit)
                self._kill(c)
            if key in throttled:
                self._throttle(c, mono_s, members.get(key, set()))

    # ------------------------------------------------------------ the CPU throttler

    @staticmethod
    def _throttles(c: Container) -> bool:
        r = c.record
        return bool(r.cpu_limit_millis) and not r.cpu_by_cgroup and not c.stopping

    def _throttle(self, c: Container, mono_s: float, members: set[int]) -> None:
        """One duty-cycle step (kubelet/runtime/throttle.py): stop the container
        when it has used its CPU budget, continue it when the budget is back."""
        if c.duty is None:
            c.duty = throttle.DutyCycle(c.record.cpu_limit_millis / 1000,
                                        self.options.monitor_period_s)
        was_stopped = c.duty.stopped
        if c.duty.step(mono_s, c.cpu_total_ns) and not c.stopping:
            if not was_stopped:
                pids = (members | set(c.known)) - {c.record.pid}
                process.signal_group(c.record.pid, signal.SIGSTOP)
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGSTOP)
                c.throttled = pids | {c.record.pid}
        elif was_stopped:
            self._unthrottle(c)

    def _unthrottle(self, c: Container) -> None:
        """SIGCONT whatever the throttler stopped (idempotent, cheap)."""
        if c.duty is not None:
            c.duty.stopped = False
            c.duty.balance_s = max(c.duty.balance_s, 0.0)
        if not c.throttled:
            return
        process.signal_group(c.record.pid, signal.SIGCONT)
        for pid in c.throttled - {c.record.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGCONT)
        c.throttled = set()

    def _reap_orphans(self) -> None:
        """As a child subreaper the runtime inherits what containers orphan; the
        ones that have ended are reaped here. Only children that are not the
        runtime's own (container leaders, exec commands) are touched, and not
        while an exec command is being spawned (its pid is not known yet). On
        the event loop: a few small /proc reads."""
        orphans = self._orphans()
        if orphans:
            process.reap_zombies(orphans)

    def _orphans(self) -> set[int]:
        """The runtime's children that it did not start (empty while an exec
        command is being spawned: its pid is not known yet)."""
        if not self.subreaper or self.spawning:
            return set()
        ours = {c.popen.pid for c in self.containers.values() if c.popen is not None}
        for c in self.containers.values():
            ours.update(c.execs)
            if c.running:
                ours.add(c.record.pid)  # a leader re-parented here is watched, not an orphan
        return process.child_pids() - ours

    async def stats(self, c: Container) -> dict:
        if c.running and not c.sampled_at_ns:
            await self.sample([c])
        nano_cores, window_s = (c.cpu_rate(self.options.cpu_window_s) if c.running
                                else (0, 0.0))
        return {"timestamp": c.sampled_at_ns or _now_ns(),
                "cpu_ns": c.cpu_total_ns if c.running else 0,
                "nano_cores": nano_cores, "cpu_window_s": window_s,
                "rss_bytes": c.rss_bytes if c.running else 0,
                "working_set_bytes": c.working_set_bytes if c.running else 0,
                "process_count": c.process_count if c.running else 0}

    # ------------------------------------------------------------ images

    def _resolve(self, image: str) -> images_mod.ResolvedImage:
        try:
            return self.catalog.resolve(image)
        except images_mod.InvalidReference as err:
            raise InvalidArgument(str(err)) from None

    def image_status(self, image: str) -> dict | None:
        try:
            resolved = self._resolve(image)
        except images_mod.ImageNotFound:
            return None
        if str(resolved.reference) not in self.pulled:
            return None
        return self._image_info(resolved.id)

    def _image_info(self, image_id: str) -> dict:
        refs = sorted(ref for ref, info in self.pulled.items() if info["id"] == image_id)
        sizes = [info.get("size", 0) for info in self.pulled.values() if info["id"] == image_id]
        return {"id": image_id, "repo_tags": [r for r in refs if "@" not in r],
                "repo_digests": [r for r in refs if "@" in r], "size": max(sizes, default=0)}

    async def pull_image(self, image: str) -> str:
        try:
            resolved = self._resolve(image)
        except images_mod.ImageNotFound as err:
            raise NotFound(f'failed to pull image "{image}": {err}') from None
        ref = str(resolved.reference)
        if ref not in self.pulled:
            self.pulled[ref] = {"id": resolved.id, "image_ref": resolved.image_ref,
                                "size": resolved.entry.size_bytes}
            await self.store.save_images(self.pulled)
            log.info("image pulled", image=image, ref=ref, entry=resolved.entry.name)
        return resolved.image_ref

    def list_images(self) -> list[dict]:
        return [self._image_info(i) for i in sorted({v["id"] for v in self.pulled.values()})]
