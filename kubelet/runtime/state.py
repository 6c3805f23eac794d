"""The runtime's state on disk: one JSON file per sandbox and per container.

    <root>/state/sandboxes/<id>.json
    <root>/state/containers/<id>.json
    <root>/state/images.json          references pulled on this node
    <root>/state/isolation.json       {"mode": ..., "reason": ...} of the running runtime

A container record holds what finds its processes again: `pid` (the
container's main process, which is also its process group id and session id:
it is started with setsid), `pid_start_ticks` (field 22 of /proc/<pid>/stat,
which tells that very process from a later one with the same pid),
`pid_create_time` (psutil's, the fallback), `state` (CONTAINER_RUNNING while
it runs), `isolation` and, in the plain mode, `rootfs`: every process of the
container, execs included, has KUBEMU_ROOTFS=<rootfs> in its environment,
even one that left the group. In the namespaces mode `pid` is PID 1 of the
container's PID namespace (`pid_ns`, "pid:[<inode>]"): every process of the
container is in that namespace, and ends with it.

Every write goes to a temporary file that then replaces the old one
(kubemu.fileutil.atomic_write, mode 0600 in 0700 directories), so a runtime
killed at any point leaves either the old or the new record, never a torn
one. There is no fsync: the records must survive a killed runtime, not a
machine crash (after which no pod process survives either). Writes and
deletes run one at a time, in order, on one thread of their own (the event
loop never waits on the disk); loads are blocking and made on start-up, in
a thread.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import pathlib
from typing import Any, Callable

import structlog

from kubemu.fileutil import atomic_write, private_dir

log = structlog.get_logger()

SANDBOX_READY = "SANDBOX_READY"
SANDBOX_NOTREADY = "SANDBOX_NOTREADY"
CREATED = "CONTAINER_CREATED"
RUNNING = "CONTAINER_RUNNING"
EXITED = "CONTAINER_EXITED"
UNKNOWN = "CONTAINER_UNKNOWN"
ISOLATION_FILE = "isolation.json"


@dataclasses.dataclass
class SandboxRecord:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    hostname: str
    log_directory: str
    pod_dir: str
    pod_ip: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    state: str = SANDBOX_READY
    created_at: int = 0
    domain: str = ""           # /etc/hosts: the pod IP is <hostname>.<domain> too
    host_aliases: list[list] = dataclasses.field(default_factory=list)  # [ip, [names]]
    resolv_conf: str = ""      # its /etc/resolv.conf
    pid_mode: str = "CONTAINER"  # NamespaceMode of the PID namespace: CONTAINER, POD, NODE
    ipc_mode: str = "CONTAINER"
    # namespaces mode, pid_mode POD: the pod's pause process, PID 1 of the pod's
    # PID namespace, which its containers join (0: none).
    pause_pid: int = 0
    pause_start_ticks: int = -1

    @property
    def reserved_name(self) -> str:
        return f"{self.name}_{self.namespace}_{self.uid}_{self.attempt}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SandboxRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclasses.dataclass
class MountRecord:
    container_path: str
    host_path: str
    readonly: bool = False


@dataclasses.dataclass
class ContainerRecord:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str                 # as the kubelet gave it
    image_ref: str             # repository@sha256:...
    argv: list[str]            # after Kubernetes' command/args rule, as the image sees it
    exec_argv: list[str]       # what actually runs on the host
    programs: dict[str, list[str]]
    env: list[list[str]]       # ordered [key, value] pairs
    working_dir: str           # host path
    rootfs: str
    log_path: str
    mounts: list[MountRecord] = dataclasses.field(default_factory=list)
    memory_limit_bytes: int = 0
    cpu_limit_millis: int = 0
    memory_by_cgroup: bool = False  # the limit is the memory cgroup's (else the RSS watch)
    cpu_by_cgroup: bool = False     # the limit is the cpu cgroup's quota (else the throttler)
    warnings: list[str] = dataclasses.field(default_factory=list)  # limits approximated
    # What its isolation mode cannot do for it (CreateContainerResponse.isolation_warnings).
    isolation_warnings: list[str] = dataclasses.field(default_factory=list)
    in_cgroups: bool = False        # its processes join its cgroups (kubelet/runtime/cgroups.py)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    sandbox_name: str = ""     # <name>_<namespace>_<uid>_<attempt>, for name reservation
    state: str = CREATED
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    pid_start_ticks: int = -1  # /proc/<pid>/stat starttime: the process identity
    pid_create_time: float = 0.0  # psutil create_time
    # The isolation mode it runs in (kubelet/runtime/isolation.py); "" = plain.
    isolation: str = ""
    pid_ns: str = ""           # namespaces: "pid:[<inode>]" of its PID namespace
    workdir: str = "/"         # namespaces: the working directory inside the view
    uid: int = 0               # namespaces: the user it runs as, inside its user namespace
    gid: int = 0
    groups: list[int] = dataclasses.field(default_factory=list)
    no_new_privs: bool = False
    readonly_rootfs: bool = False
    bin_dir: str = ""          # the image's bin directory on the host ("" = none)
    stdin: bool = False        # Kubernetes' stdin / stdinOnce / tty (kubelet/runtime/stdio.py)
    stdin_once: bool = False
    tty: bool = False

    @property
    def reserved_name(self) -> str:
        return f"{self.name}_{self.sandbox_name}_{self.attempt}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ContainerRecord":
        data = dict(data)
        data["mounts"] = [MountRecord(**m) for m in data.get("mounts", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _write(path: pathlib.Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True), fsync=False)


class Store:
    def __init__(self, root: pathlib.Path):
        self.dir = root / "state"
        self.sandboxes_dir = self.dir / "sandboxes"
        self.containers_dir = self.dir / "containers"
        self.images_path = self.dir / "images.json"
        # One thread: writes land in the order they were asked for.
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="state")

    def prepare(self) -> None:
        """Make the state directories (blocking; start-up)."""
        for d in (self.sandboxes_dir, self.containers_dir):
            private_dir(d)

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    async def _run(self, fn: Callable[..., None], *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def save_sandbox(self, record: SandboxRecord) -> None:
        await self._run(_write, self.sandboxes_dir / f"{record.id}.json",
                        dataclasses.asdict(record))

    async def save_container(self, record: ContainerRecord) -> None:
        # The record is serialised now, not when the thread gets to it: later
        # changes to it are a later save's business.
        await self._run(_write, self.containers_dir / f"{record.id}.json",
                        dataclasses.asdict(record))

    async def delete_sandbox(self, sandbox_id: str) -> None:
        await self._run((self.sandboxes_dir / f"{sandbox_id}.json").unlink, True)

    async def delete_container(self, container_id: str) -> None:
        await self._run((self.containers_dir / f"{container_id}.json").unlink, True)

    async def save_isolation(self, mode: dict[str, str]) -> None:
        """state/isolation.json: the mode this runtime runs in (for `kubemu status`)."""
        await self._run(_write, self.dir / ISOLATION_FILE, mode)

    async def save_images(self, pulled: dict[str, dict]) -> None:
        await self._run(_write, self.images_path, json.loads(json.dumps(pulled)))

    def load_images(self) -> dict[str, dict]:
        try:
            return json.loads(self.images_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.warning("unreadable images state, starting empty", error=str(err))
            return {}

    def _load(self, directory: pathlib.Path, build) -> list:
        records = []
        for path in sorted(directory.glob("*.json")):
            try:
                records.append(build(json.loads(path.read_text())))
            except (OSError, ValueError, TypeError) as err:
                # A record we cannot read is kept aside, not deleted: it may name a live process.
                log.error("unreadable state record", path=str(path), error=str(err))
                path.rename(path.with_suffix(".corrupt"))
        return records

    def load_sandboxes(self) -> list[SandboxRecord]:
        return self._load(self.sandboxes_dir, SandboxRecord.from_dict)

    def load_containers(self) -> list[ContainerRecord]:
        return self._load(self.containers_dir, ContainerRecord.from_dict)
