"""The container runtime as a real process (`python -m kubelet.runtime`) for
component tests: one runtime per test on a socket in the test's directory, in
the isolation mode the test asks for, and, at the end, it and every process
of its containers killed (found by their records: the plain mode's
KUBEMU_ROOTFS marker, the namespaces mode's PID namespace).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubemu import cluster_home
from kubemu.client.wait import wait_for, wait_for_sync
from kubemu.runtime.v1 import runtime_pb2 as pb
from kubemu.runtime.v1 import runtime_pb2_grpc as pb_grpc
from tests.support import Proc

RPC_TIMEOUT_S = 10.0
START_TIMEOUT_S = 20.0
WAIT_S = 15.0
MONITOR_PERIOD_S = 0.05
MiB = 1 << 20
NAMESPACES = "namespaces"
PLAIN = "plain"
MODES = (NAMESPACES, PLAIN)


@functools.lru_cache(maxsize=1)
def namespaces_unavailable() -> str:
    """Why this machine cannot run the namespaces mode ("" when it can): the
    runtime's own detection, run once in a process of its own."""
    with tempfile.TemporaryDirectory() as root:
        probe = subprocess.run(
            [sys.executable, "-c", "import pathlib, sys\n"
             "from kubelet.runtime import isolation as iso\n"
             "iso.set_child_subreaper()\n"
             "i = iso.detect('auto', pathlib.Path(sys.argv[1]))\n"
             "print(i.reason if i.mode == 'plain' else '')", root],
            capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"the detection failed: {probe.stderr.strip()[-500:]}"
    return probe.stdout.strip()


def require(mode: str) -> None:
    """Skip (saying why) a test of the namespaces mode on a machine without it."""
    if mode == NAMESPACES and namespaces_unavailable():
        pytest.skip(f"the namespaces mode is unavailable here: {namespaces_unavailable()}")


def alive(pid: int) -> bool:
    """A process that has not exited (a zombie has; nobody reaps adopted ones here)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def catches(pid: int, sig: int) -> bool:
    """Has the process installed a handler for `sig` (SigCgt in /proc/<pid>/status)?"""
    with open(f"/proc/{pid}/status") as f:
        caught = next(line.split()[1] for line in f if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (sig - 1)))


def pod_ip() -> str:
    """A random loopback address, so parallel tests do not share ports."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_get(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class NotYet(str):
    """A falsy predicate result that still says what was seen."""

    def __bool__(self) -> bool:
        return False


class Runtime:
    """One runtime process on a socket in the test's directory; restartable."""

    def __init__(self, workdir: pathlib.Path, extra_args: tuple[str, ...] = (),
                 mode: str = NAMESPACES):
        self.workdir = workdir
        self.root = workdir / "root"
        self.socket = workdir / "rt.sock"
        self.mode = mode
        self.extra_args = ("--isolation", mode, *extra_args)
        self.proc: Proc | None = None
        self.channel: grpc.aio.Channel | None = None
        self.stub: pb_grpc.RuntimeStub | None = None
        self.env = {**os.environ, "KUBEMU_HOME": str(workdir / "home")}

    async def start(self) -> Runtime:
        argv = [sys.executable, "-m", "kubelet.runtime", "--root", str(self.root),
                "--socket", str(self.socket), "--images-file", str(self.workdir / "images.yaml"),
                "--monitor-period-s", str(MONITOR_PERIOD_S), "--log-level", "debug",
                "--log-file", str(self.workdir / "runtime.log"), *self.extra_args]
        self.proc = Proc(argv, self.workdir / "runtime.out", env=self.env).start()
        await self._connect()
        return self

    async def _connect(self) -> None:
        # Connecting before the socket exists would put the channel in reconnect backoff.
        def listening():
            if not self.proc.alive():
                raise RuntimeError(f"runtime exited: {self.proc.log_tail()}\n{self.log_tail()}")
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(self.socket))
                    return True
                except OSError:  # not there yet, or the stale one of a killed runtime
                    return False
        try:
            await wait_for(listening, START_TIMEOUT_S, interval_s=0.02, message="runtime socket")
        except AssertionError:
            raise AssertionError(f"runtime not listening; log:\n{self.log_tail()}") from None
        self.channel = grpc.aio.insecure_channel(f"unix:{self.socket}")
        health = health_pb2_grpc.HealthStub(self.channel)

        async def serving():
            if not self.proc.alive():
                raise AssertionError(f"runtime exited: {self.proc.log_tail()}\n{self.log_tail()}")
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            return reply.status == health_pb2.HealthCheckResponse.SERVING

        try:
            await wait_for(serving, START_TIMEOUT_S, message="runtime health")
        except AssertionError:
            raise AssertionError(f"runtime not serving; log:\n{self.log_tail()}") from None
        self.stub = pb_grpc.RuntimeStub(self.channel)

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "runtime.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    async def kill(self) -> None:
        """kill -9: no chance to clean anything up."""
        await self.close_channel()
        await asyncio.to_thread(self.proc.kill)  # waits for the exit: off the loop

    async def terminate(self) -> int:
        await self.close_channel()
        await self.proc.astop()
        return self.proc.popen.returncode

    async def close_channel(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    # -------------------------------------------------------- calls

    async def sandbox(self, name: str = "pod", ip: str | None = None, **kw) -> str:
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace="default",
                                           uid=f"uid-{name}", attempt=0),
            hostname=name, pod_ip=ip or pod_ip(), **kw)
        reply = await self.stub.RunPodSandbox(pb.RunPodSandboxRequest(config=config),
                                              timeout=RPC_TIMEOUT_S)
        return reply.pod_sandbox_id

    async def create(self, sandbox_id: str, name: str, image: str = "busybox", *,
                     command=(), args=(), env: dict | None = None, attempt: int = 0,
                     **kw) -> str:
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt),
            image=pb.ImageSpec(image=image), command=list(command), args=list(args),
            envs=[pb.KeyValue(key=k, value=v) for k, v in (env or {}).items()], **kw)
        reply = await self.stub.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config),
            timeout=RPC_TIMEOUT_S)
        return reply.container_id

    async def run(self, sandbox_id: str, name: str, image: str = "busybox", **kw) -> str:
        container_id = await self.create(sandbox_id, name, image, **kw)
        await self.stub.StartContainer(pb.StartContainerRequest(container_id=container_id),
                                       timeout=RPC_TIMEOUT_S)
        return container_id

    async def status(self, container_id: str) -> pb.ContainerStatus:
        reply = await self.stub.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id), timeout=RPC_TIMEOUT_S)
        return reply.status

    async def wait_state(self, container_id: str, state: int,
                         timeout_s: float = WAIT_S) -> pb.ContainerStatus:
        async def reached():
            s = await self.status(container_id)
            return s if s.state == state else NotYet(f"{pb.ContainerState.Name(s.state)} "
                                                     f"reason={s.reason!r}")
        result = await wait_for(reached, timeout_s, message=f"container {container_id[:12]} "
                                f"to be {pb.ContainerState.Name(state)}")
        return result

    async def stop(self, container_id: str, timeout_s: float) -> None:
        await self.stub.StopContainer(
            pb.StopContainerRequest(container_id=container_id, timeout_s=timeout_s),
            timeout=timeout_s + RPC_TIMEOUT_S)

    async def exec(self, container_id: str, cmd: list[str], timeout_s: float = 5.0):
        return await self.stub.ExecSync(
            pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout_s=timeout_s),
            timeout=timeout_s + RPC_TIMEOUT_S)

    async def wait_log(self, container_id: str, text: str) -> str:
        path = pathlib.Path((await self.status(container_id)).log_path)

        def has_text():
            content = path.read_text() if path.exists() else ""
            return content if text in content else None
        return await wait_for(has_text, WAIT_S, message=f"{text!r} in {path}")


def recorded_pid_namespaces(root: pathlib.Path) -> set[str]:
    found = set()
    for path in (root / "state" / "containers").glob("*.json"):
        try:
            pid_ns = json.loads(path.read_text()).get("pid_ns")
        except (OSError, ValueError):
            continue
        if pid_ns:
            found.add(pid_ns)
    return found


def container_processes(root: pathlib.Path) -> list[psutil.Process]:
    """Every live process of a container under `root`: its environment says so
    (plain mode), or it is in a PID namespace the runtime recorded."""
    prefix = str(root)
    namespaces = recorded_pid_namespaces(root)
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if namespaces and os.readlink(f"/proc/{proc.pid}/ns/pid") in namespaces:
                found.append(proc)
            elif proc.environ().get("KUBEMU_ROOTFS", "").startswith(prefix):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


@contextlib.asynccontextmanager
async def running_runtime(workdir: pathlib.Path, extra_args: tuple[str, ...] = (),
                          umask: int | None = None, mode: str = NAMESPACES):
    """A started runtime (its process made under `umask` when given); at the end,
    it and every container process under its root are killed."""
    await asyncio.to_thread(require, mode)  # the first call runs the detection
    rt = Runtime(workdir, extra_args, mode)
    old = os.umask(umask) if umask is not None else None
    try:
        try:
            await rt.start()
        finally:
            if old is not None:
                os.umask(old)  # the runtime process has inherited it
        yield rt
    finally:
        await rt.close_channel()
        await asyncio.to_thread(_kill_everything, rt)  # process scans and waits: off the loop


def _kill_everything(rt: Runtime) -> None:
    """Kill the runtime and every container process under its root (blocking)."""
    if rt.proc is not None:
        rt.proc.kill()
    for proc in container_processes(rt.root):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.kill()
        except psutil.Error:
            pass
    wait_for_sync(lambda: not container_processes(rt.root) and
                  (rt.proc is None or not rt.proc.alive()), 10,
                  message="no runtime or container process left")
    # The runtime was killed: its cgroups (and anything in them) are the test's to remove.
    left = cluster_home.remove_cgroup_parents(cluster_home.runtime_cgroup_parents(rt.root))
    assert not left, f"cgroups left: {left}"


def without_kubemu_binds(names: list[str], directory: str = "/tmp") -> list[str]:
    """A container's listing of `directory` without the entries kubemu binds in
    for the image stand-ins (its interpreter, virtualenv and source tree, at
    their host paths: a checkout under /tmp shows in the container's /tmp)."""
    from kubelet.runtime import isolation
    prefix = directory.rstrip("/") + "/"
    binds = {path[len(prefix):].split("/")[0] for path in isolation.needed_binds()
             if path.startswith(prefix)}
    return [name for name in names if name not in binds]
