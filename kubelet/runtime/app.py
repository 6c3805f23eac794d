"""Wires the runtime: the core, the gRPC server on a unix socket, health.

Start: take the root's lock (one runtime per root), recover state (adopting
live container processes), then serve. Stop (SIGTERM): stop serving and stop
watching; container processes keep running, as with containerd.

The root, the lock file and the socket are private (0700 / 0600, set
explicitly). The socket is chmod-ed right after it is bound; in the moment
between, its directory (the node's, 0700) is what keeps others out. The
monitor loop runs under kubemu.loops.Loops, whose health is the server's: the
runtime reports NOT_SERVING while that loop is down.
"""
from __future__ import annotations

import dataclasses
import fcntl
import os
import pathlib
import socket
import stat

import structlog

from kubelet.runtime import runtime as rt
from kubelet.runtime.service import RuntimeService
from kubemu import server as grpc_server
from kubemu.faults import Faults
from kubemu.fileutil import FILE_MODE, private_dir
from kubemu.loops import Loops
from kubemu.runtime.v1 import runtime_pb2_grpc as pb_grpc

log = structlog.get_logger()

SERVICE_NAME = "kubemu.runtime.v1.Runtime"
UNIX_PATH_MAX_BYTES = 107


@dataclasses.dataclass
class Options:
    root: pathlib.Path
    socket: pathlib.Path
    images_file: str | None = None
    monitor_period_s: float = 0.2
    cpu_window_s: float = 10.0
    kill_wait_s: float = 10.0
    shutdown_grace_s: float = 2.0
    fault_dir: str = ""
    isolation: str = "auto"
    cgroups: str = "auto"
    cgroup_fs: pathlib.Path = pathlib.Path("/sys/fs/cgroup")


class RootInUse(RuntimeError):
    pass


def _take_lock(root: pathlib.Path) -> int:
    fd = os.open(root / "runtime.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RootInUse(f"another runtime is using {root} (lock {root / 'runtime.lock'})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _clear_stale_socket(path: pathlib.Path) -> None:
    """A socket file left by a killed runtime is removed; a live one is an error."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RootInUse(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
            return
    raise RootInUse(f"something is already listening on {path}")


class RuntimeServer:
    def __init__(self, options: Options):
        self.options = options
        self.server: grpc_server.Server | None = None
        self.loops = Loops(on_health=self._loop_health)
        self.runtime = rt.ContainerRuntime(rt.Options(
            root=options.root, images_file=options.images_file,
            monitor_period_s=options.monitor_period_s, cpu_window_s=options.cpu_window_s,
            kill_wait_s=options.kill_wait_s, isolation=options.isolation,
            cgroups=options.cgroups, cgroup_fs=options.cgroup_fs), loops=self.loops,
            faults=Faults(options.fault_dir or None))
        self.lock_fd: int | None = None

    async def _loop_health(self, name: str, ok: bool) -> None:
        if self.server is not None:
            await self.server.set_check(name, ok)

    async def start(self) -> str:
        root = self.options.root
        private_dir(root)  # start-up: nothing else runs on the loop yet
        sock = self.options.socket.absolute()
        if len(os.fsencode(sock)) > UNIX_PATH_MAX_BYTES:
            raise ValueError(f"socket path {sock} is {len(os.fsencode(sock))} bytes; "
                             f"unix sockets allow at most {UNIX_PATH_MAX_BYTES}")
        self.lock_fd = _take_lock(root)
        if not sock.parent.exists():  # an existing directory (e.g. /tmp) is not ours to chmod
            private_dir(sock.parent)
        _clear_stale_socket(sock)
        self.server = grpc_server.Server(f"unix:{sock}", grace_s=self.options.shutdown_grace_s)
        await self.runtime.start()
        pb_grpc.add_RuntimeServicer_to_server(RuntimeService(self.runtime), self.server.server)
        await self.server.start()
        os.chmod(sock, FILE_MODE)
        await self.server.set_serving(True)
        await self.server.set_serving(True, SERVICE_NAME)
        log.info("runtime listening", socket=str(sock), root=str(root))
        return f"unix:{sock}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.runtime.close()
        try:
            self.options.socket.absolute().unlink(missing_ok=True)
        except OSError:
            pass
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        log.info("runtime stopped")
