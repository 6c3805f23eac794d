"""How strongly the runtime isolates containers: the mode, found at start, and
what the container's launcher (nsinit.py) is told.

Modes (flag --isolation, default $KUBEMU_ISOLATION, else auto):
- `namespaces`: each container in its own user, mount, PID, UTS and IPC
  namespaces, its view built by nsinit.py (package docstring: the contract).
- `plain`: the process tree of old, with $KUBEMU_ROOTFS and symlinks.
- `auto`: `namespaces` when a trial container starts and behaves (it runs
  as PID 1, writes into an idmapped volume), else `plain`, with the reason
  logged and reported (Version: isolation, isolation_reason).

Identity: as root, a container's uids 0..65535 are host uids from a base
that is the same for every start of a runtime root (`uid_base`: a hash of
the root's path, so two nodes or clusters use different ranges); volume
mounts are idmapped through the container's user namespace, so files the
kubelet made (host root's) are the container root's in there. Rootless (the
runtime not root): one uid and one gid, the runtime's own, are mapped, to
the container process's (0 by default, else runAsUser/runAsGroup), so the
kubelet's files are that user's; setgroups is denied (supplementalGroups
and fsGroup are not applied: a warning says so); nothing is idmapped. With
shareProcessNamespace the pod's containers share the pause process's user
namespace, which maps 0: only id 0 there.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import pathlib
import select
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Iterable, Sequence

from kubelet.runtime import nsinit

AUTO = "auto"
NAMESPACES = "namespaces"
PLAIN = "plain"
MODES = (AUTO, NAMESPACES, PLAIN)
ENV = "KUBEMU_ISOLATION"

NSINIT = pathlib.Path(nsinit.__file__).resolve()
UID_COUNT = 65536
UID_BASE_MIN = 0x1000_0000
UID_BASE_SLOTS = 0x3000        # bases up to 0x4000_0000
LAUNCH_TIMEOUT_S = 30.0
TRIAL_TIMEOUT_S = 20.0
TRIAL_MOUNT = "/kubemu-trial"


class Unavailable(RuntimeError):
    """The namespaces mode cannot run here; the message says why."""


@dataclasses.dataclass(frozen=True)
class Isolation:
    mode: str
    reason: str = ""                 # why this mode (the stronger one's failure)
    rootless: bool = False
    uid_base: int = 0                # host uid of the container's root
    gid_base: int = 0
    id_count: int = 1
    idmap_mounts: bool = False
    masks: tuple[str, ...] = ()      # host paths shown empty in containers
    binds: tuple[str, ...] = ()      # host paths shown read-only (the image stand-ins need them)
    python: str = sys.executable

    @property
    def namespaces(self) -> bool:
        return self.mode == NAMESPACES

    def launcher(self, action: str, spec_fd: int, report_fd: int | None = None) -> list[str]:
        argv = [self.python, "-I", "-S", "-B", str(NSINIT), action, "--spec-fd", str(spec_fd)]
        if report_fd is not None:
            argv += ["--report-fd", str(report_fd)]
        return argv

    def identity_spec(self, uid: int = 0, gid: int = 0) -> dict[str, Any]:
        """The user namespace of a container whose process runs as uid/gid.
        Rootless, the one id mapped is the process's own (the runtime's user
        outside): runAsUser 1000 is 1000 inside, the runtime's user outside."""
        inner_uid, inner_gid = (uid, gid) if self.rootless else (0, 0)
        return {"rootless": self.rootless, "chown": not self.rootless,
                "root_uid": 0 if self.rootless else self.uid_base,
                "root_gid": 0 if self.rootless else self.gid_base,
                "uid_map": [[inner_uid, self.uid_base, self.id_count]],
                "gid_map": [[inner_gid, self.gid_base, self.id_count]],
                "setgroups": "deny" if self.rootless else "allow",
                "idmap_mounts": self.idmap_mounts}

    def host_uid(self, uid: int) -> int | None:
        """The host uid of a container uid; None when it is not mapped (rootless,
        any one id is mapped, to the runtime's user)."""
        if self.rootless:
            return self.uid_base if uid >= 0 else None
        return self.uid_base + uid if 0 <= uid < self.id_count else None


def plain(reason: str) -> Isolation:
    return Isolation(mode=PLAIN, reason=reason)


def uid_base_for(root: pathlib.Path) -> int:
    digest = hashlib.sha256(str(root).encode()).digest()
    return UID_BASE_MIN + (int.from_bytes(digest[:4], "big") % UID_BASE_SLOTS) * UID_COUNT


def package_root() -> pathlib.Path:
    """The directory holding the component packages (kubelet/, kubemu/)."""
    return pathlib.Path(__file__).resolve().parents[2]


def needed_binds(python: str = sys.executable) -> tuple[str, ...]:
    """What the image stand-ins run from: the interpreter's installation, the
    virtualenv, and the source tree (demo apps)."""
    found = [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             str(package_root())]
    real = os.path.realpath(python)
    if not any(nsinit.under(real, p) for p in found):
        found.append(os.path.dirname(real))
    return tuple(dict.fromkeys(found))


def masked_paths(root: pathlib.Path, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Paths no container may see: this cluster's home, the runtime's root,
    kubemu's default homes (~/.kubemu of this user, of root and under /home),
    and, when rootless, this user's home itself."""
    environ = os.environ if environ is None else environ
    found = [str(root)]
    home = environ.get("KUBEMU_HOME")
    if home:
        found.append(os.path.realpath(home))
    elif root.parent.parent.name == "nodes":  # <home>/nodes/<node>/runtime
        found.append(str(root.parents[2]))
    user_home = os.path.expanduser("~")
    found += [os.path.join(user_home, ".kubemu"), "/root/.kubemu",
              *sorted(glob.glob("/home/*/.kubemu"))]
    if os.geteuid() != 0 and user_home not in ("/", ""):
        found.append(user_home)
    return tuple(dict.fromkeys(os.path.realpath(p) for p in found))


def configured(root: pathlib.Path, *, idmap: bool = True) -> Isolation:
    """The namespaces mode's settings for this process and root (not yet tried)."""
    rootless = os.geteuid() != 0
    return Isolation(
        mode=NAMESPACES, rootless=rootless,
        uid_base=os.geteuid() if rootless else uid_base_for(root),
        gid_base=os.getegid() if rootless else uid_base_for(root),
        id_count=1 if rootless else UID_COUNT, idmap_mounts=idmap and not rootless,
        masks=masked_paths(root), binds=needed_binds())


def check_kernel() -> None:
    if sys.platform != "linux":
        raise Unavailable(f"namespaces need Linux (this is {sys.platform})")
    for ns in ("user", "mnt", "pid", "uts", "ipc"):
        if not os.path.exists(f"/proc/self/ns/{ns}"):
            raise Unavailable(f"the kernel has no {ns} namespaces")
    if nsinit.PIVOT_ROOT_SYSCALL.get(os.uname().machine) is None:
        raise Unavailable(f"pivot_root's syscall number on {os.uname().machine} is unknown")
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read().strip() or "0") == 0:
                raise Unavailable("user namespaces are disabled (user.max_user_namespaces = 0)")
    except (OSError, ValueError):
        pass
    if not overlay_ok():
        raise Unavailable("the kernel has no overlay filesystem")


def overlay_ok() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


# ---------------------------------------------------------------- launching

def memfd_with(data: bytes, name: str = "kubemu-spec") -> int:
    """A file descriptor (memfd, or an unlinked temporary file) holding `data`,
    inheritable by a child that is passed it."""
    try:
        fd = os.memfd_create(name, 0)
    except (AttributeError, OSError):
        import tempfile
        fd, path = tempfile.mkstemp()
        os.unlink(path)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclasses.dataclass
class Launched:
    pid: int = 0
    pid_ns: str = ""
    error: str = ""
    stage: str = ""
    errno: int | None = None
    bind_listener: int | None = None   # the low-ports filter's listener (lowports.py)


def launch(isolation: Isolation, spec: dict[str, Any], *, stdout: int, stderr: int,
           stdin: int = subprocess.DEVNULL, timeout_s: float = LAUNCH_TIMEOUT_S) -> Launched:
    """Start a container through nsinit.py (blocking: run it in a thread): the
    container's PID 1 is running its command when this returns with a pid."""
    spec = {"version": nsinit.SPEC_VERSION, **spec}
    spec_fd = memfd_with(json.dumps(spec).encode())
    report_r, report_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fds: list[int] = []
    try:
        proc = subprocess.Popen(
            isolation.launcher("run", spec_fd, report_w.fileno()), stdin=stdin,
            stdout=stdout, stderr=stderr, pass_fds=(spec_fd, report_w.fileno()),
            close_fds=True, start_new_session=True, env={"LANG": "C.UTF-8"}, cwd="/")
    except BaseException:
        report_r.close()
        raise
    finally:
        os.close(spec_fd)
        report_w.close()
    try:
        raw = _read_until_eof(report_r, timeout_s, fds)
    finally:
        report_r.close()
        try:
            proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if raw is None:
        return Launched(error=f"error during container init: no answer within {timeout_s:g}s",
                        stage="init")
    try:
        report = json.loads(raw) if raw else {}
    except ValueError:
        report = {}
    if "pid" in report:
        listener = fds.pop(0) if report.get("bind_listener") and fds else None
        for fd in fds:
            os.close(fd)
        return Launched(pid=int(report["pid"]), pid_ns=report.get("pid_ns", ""),
                        bind_listener=listener)
    for fd in fds:
        os.close(fd)
    return Launched(error=report.get("error") or f"error during container init: the launcher "
                                                 f"exited with {proc.returncode}",
                    stage=report.get("stage", "init"), errno=report.get("errno"))


def _read_until_eof(sock: socket.socket, timeout_s: float, fds: list[int]) -> bytes | None:
    """What the launcher reports, and the fds it passes (appended to `fds`)."""
    deadline = time.monotonic() + timeout_s
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        chunk, passed, _, _ = socket.recv_fds(sock, 65536, 4)
        fds.extend(passed)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# ---------------------------------------------------------------- detection

def detect(requested: str, root: pathlib.Path) -> Isolation:
    """The strongest mode allowed that `requested` permits (blocking: it starts
    a trial container). Unavailable when `namespaces` was asked for and cannot be."""
    if requested == PLAIN:
        return plain("the plain mode was asked for (--isolation plain)")
    try:
        check_kernel()
        isolation = configured(root)
        try:
            trial(isolation, root)
        except Unavailable:
            if not isolation.idmap_mounts:
                raise
            isolation = dataclasses.replace(configured(root, idmap=False))
            trial(isolation, root)
            isolation = dataclasses.replace(
                isolation, reason="idmapped mounts unavailable: volumes show the host's owners")
        if isolation.rootless:
            isolation = dataclasses.replace(isolation, reason=rootless_reason())
        return isolation
    except Unavailable as err:
        if requested == NAMESPACES:
            raise
        return plain(f"namespaces unavailable: {err}")


def unprivileged_port_start(path: str = "/proc/sys/net/ipv4/ip_unprivileged_port_start") -> int:
    """The lowest port an unprivileged process may bind (1024 when unknown)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def rootless_reason() -> str:
    """What a rootless namespaces mode cannot do (the node's isolation reason)."""
    low = unprivileged_port_start()
    ports = f"ports below {low} cannot be bound (net.ipv4.ip_unprivileged_port_start, " \
            f"a root sysctl)" if low > 0 else "every port can be bound"
    return (f"rootless (uid {os.geteuid()}): one id mapped (the container user's), so no "
            f"supplementalGroups/fsGroup and files of other owners show as nobody; {ports}")


def trial(isolation: Isolation, root: pathlib.Path) -> None:
    """Start one container that checks its view: PID 1, a private /tmp and a
    writable idmapped volume. Raises Unavailable with the reason."""
    base = root / "containers" / f".trial-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    volume = base / "volume"
    os.makedirs(volume, mode=0o700)
    script = ("import os, sys\n"
              "assert os.getpid() == 1, f'pid {os.getpid()}'\n"
              f"open('{TRIAL_MOUNT}/ok', 'w').write(str(os.getuid()))\n")
    spec = {**isolation.identity_spec(), "root": str(base / "root"),
            "layer": str(base / "layer"), "hostname": "kubemu-trial", "masks": [str(root)],
            "binds": list(isolation.binds),
            "mounts": [{"container_path": TRIAL_MOUNT, "host_path": str(volume),
                        "readonly": False}],
            "process": {"argv": [isolation.python, "-I", "-S", "-c", script],
                        "env": [["PATH", "/usr/bin:/bin"]], "cwd": "/", "uid": 0, "gid": 0,
                        "groups": []}}
    log_path = base / "trial.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        launched = launch(isolation, spec, stdout=fd, stderr=fd, timeout_s=TRIAL_TIMEOUT_S)
    finally:
        os.close(fd)
    try:
        if launched.error:
            raise Unavailable(launched.error)
        status = wait_child(launched.pid, TRIAL_TIMEOUT_S)
        if status != 0 or not (volume / "ok").exists():
            output = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise Unavailable(f"the trial container failed (exit {status}): "
                              f"{' '.join(output) or 'no output'}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def wait_child(pid: int, timeout_s: float) -> int | None:
    """Wait for a child (or a process re-parented to us, a subreaper) to end and
    reap it: its exit code, None when it is not ours (or did not end: killed)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    if fd is not None:
        try:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                os.kill(pid, 9)
                select.select([fd], [], [], timeout_s)
        finally:
            os.close(fd)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def set_child_subreaper() -> bool:
    """Orphans of the containers become this process's children (so they are
    reaped and found), not init's."""
    try:
        nsinit.Kernel().prctl(nsinit.PR_SET_CHILD_SUBREAPER, 1)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- spec pieces

def exec_spec(isolation: Isolation, pid: int, start_ticks: int, process: dict[str, Any],
              namespaces: dict[str, bool]) -> dict[str, Any]:
    return {"version": nsinit.SPEC_VERSION, "pid": pid, "start_ticks": start_ticks,
            "setgroups": "deny" if isolation.rootless else "allow",
            "namespaces": namespaces, "process": process}


def resolv_conf(servers: Sequence[str], searches: Sequence[str], options: Sequence[str],
                host_file: str = "/etc/resolv.conf") -> str:
    """/etc/resolv.conf from a DNS config; without one, the host's (kubelet's
    dnsPolicy Default), or a stub that says why it is empty."""
    if servers or searches or options:
        lines = [f"nameserver {s}" for s in servers]
        if searches:
            lines.append("search " + " ".join(searches))
        if options:
            lines.append("options " + " ".join(options))
        return "\n".join(lines) + "\n"
    try:
        with open(host_file) as f:
            return f.read()
    except OSError:
        return "# kubemu: no DNS configuration (the host has no /etc/resolv.conf)\n"


def pod_files(hostname: str, pod_ip: str, domain: str,
              aliases: Iterable[tuple[str, Iterable[str]]], resolv: str) -> dict[str, str]:
    return {"hostname": hostname + "\n",
            "hosts": nsinit.hosts_file(hostname, pod_ip, domain, aliases),
            "resolv.conf": resolv}
