"""One pod's containers on this node, and what is done to them: the kubelet's
runtime manager (kuberuntime_manager.go, kuberuntime_container.go) for one pod.

A PodRuntime belongs to one pod worker (kubelet/worker.py), which decides
when each operation runs:
- `sync(pod)` (the body of SyncPod): a sandbox with the pod's IP (adopted
  after a kubelet restart; a new one, with a new IP, when the old one is
  gone), the volumes, the init containers in order (each to success), then
  the app containers: start what is missing, kill what failed its liveness
  or startup probe, kill and start again at once what runs from an older
  definition (a new image: kubelet/containers.py), restart what exited as
  the restartPolicy says with CrashLoopBackOff between restarts; then old
  instances are collected and the status handed to the status manager. A
  pod with restartPolicy Never whose sandbox is gone after its containers
  ran gets no new sandbox: its status says how it ended.
- `stop_all(pod, grace_s)` (KillPod): every running container at once (the
  Killing event, preStop within the grace period, SIGTERM, SIGKILL at its
  end), then the sandboxes; the IP goes back to the pool.
- `cleanup(pod)`: sandboxes, volumes and logs removed.
- `report(pod, ...)`: compute the status from what runs and hand it over.

Instances of a container are found in every sandbox of the pod and told
apart by attempt (kubelet/containers.py): the current one is the highest,
and a new one always gets a higher attempt than any known, so restartCount
never decreases. Failures that waiting can fix leave the container waiting
with Kubernetes' reason and an event, and ask the worker (`schedule`,
`notify`) for another pass.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import pathlib
import shutil
import time
from typing import Awaitable, Callable, Mapping

import grpc
import structlog
from google.protobuf.message import Message

from kubelet import actions, containers, cri, envvars, logs, prober, volumes
from kubelet import status as pod_status
from kubelet import dns as kdns
from kubelet.containers import Instance
from kubelet.image_puller import ImagePuller
from kubelet.ipam import PodIPAllocator
from kubelet.probe_manager import ProbeManager, Running, field_path, target
from kubelet.status_manager import StatusManager
from kubemu import timefmt
from kubemu.api import errors, quantity
from kubemu.api.v1 import core_pb2
from kubemu.backoff import Backoff
from kubemu.client.clientset import Client
from kubemu.client.events import NORMAL, WARNING, EventRecorder
from kubemu.fileutil import private_dir
from kubemu.runtime.v1 import runtime_pb2 as rpb

DEFAULT_GRACE_S = 30
RETRY_S = 2.0
# The reason of the Warning event for what the node's isolation mode cannot do
# for a container (CreateContainerResponse.warnings).
ISOLATION_GAP_REASON = "IsolationNotEnforced"
# Termination messages, as the kubelet reads them (kuberuntime_container.go).
TERMINATION_PATH_ANNOTATION = "io.kubernetes.container.terminationMessagePath"
TERMINATION_POLICY_ANNOTATION = "io.kubernetes.container.terminationMessagePolicy"
TERMINATION_MESSAGE_BYTES_MAX = 4096
TERMINATION_LOG_LINES_MAX = 80
TERMINATION_LOG_BYTES_MAX = 2048
# Event reason: a container limit the node enforces only approximately (no cgroup).
LIMIT_APPROXIMATED = "LimitApproximated"


@dataclasses.dataclass
class NodeContext:
    """What every pod worker of a node shares."""

    node_name: str
    node_ip: str
    root: pathlib.Path
    runtime: cri.RuntimeClient
    client: Client
    events: EventRecorder
    volumes: volumes.VolumeManager
    ipam: PodIPAllocator
    status: StatusManager
    images: ImagePuller
    probes: ProbeManager
    crash_backoff: Backoff
    lookup: envvars.Lookup
    services: Callable[[str], list[Message]]
    claim_path: Callable[[str, str], Awaitable[str]]
    allocatable: Mapping[str, str]
    min_grace_s: float = 2.0
    sync_period_s: float = 10.0
    hook_timeout_s: float = 30.0
    # Set in every container (before the pod's own variables, which win).
    pod_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Each pod's /etc/resolv.conf (--cluster-dns, --cluster-domain, --resolv-conf).
    dns: kdns.Configurer = dataclasses.field(default_factory=kdns.Configurer)

    def log_dir(self, pod: Message) -> pathlib.Path:
        m = pod.metadata
        return self.root / "logs" / f"{m.namespace}_{m.name}_{m.uid}"


@dataclasses.dataclass
class Sandbox:
    """The pod's current sandbox, as its PodRuntime knows it."""

    id: str = ""
    config: rpb.PodSandboxConfig | None = None
    ip: str = ""


def memory_limit_bytes(ctr: Message) -> int:
    text = ctr.resources.limits.get("memory")
    try:
        return quantity.to_int(text) if text else 0
    except ValueError:
        return 0


def cpu_limit_millis(ctr: Message) -> int:
    text = ctr.resources.limits.get("cpu")
    try:
        return quantity.to_milli(text) if text else 0
    except ValueError:
        return 0


def security_context(pod: Message, ctr: Message) -> rpb.ContainerSecurityContext:
    """The container's identity and restrictions: the container's securityContext
    over the pod's (as the kubelet's determineEffectiveSecurityContext), fsGroup
    and supplementalGroups as supplementary groups. ConfigError for runAsNonRoot
    with a root user, worded as the kubelet's verifyRunAsNonRoot."""
    psc, sc = pod.spec.security_context, ctr.security_context
    found = rpb.ContainerSecurityContext()
    for field in ("run_as_user", "run_as_group"):
        if sc.HasField(field):
            setattr(found, field, getattr(sc, field))
        elif psc.HasField(field):
            setattr(found, field, getattr(psc, field))
    groups = list(psc.supplemental_groups)
    if psc.HasField("fs_group"):
        groups.append(psc.fs_group)
    found.supplemental_groups.extend(sorted(set(groups)))
    found.readonly_rootfs = sc.HasField("read_only_root_filesystem") and \
        sc.read_only_root_filesystem
    found.no_new_privs = sc.HasField("allow_privilege_escalation") and \
        not sc.allow_privilege_escalation
    non_root = sc.run_as_non_root if sc.HasField("run_as_non_root") else \
        psc.HasField("run_as_non_root") and psc.run_as_non_root
    if non_root:
        m = pod.metadata
        who = f'(pod: "{m.name}_{m.namespace}({m.uid})", container: {ctr.name})'
        if not found.HasField("run_as_user"):  # every image of the catalog runs as root
            raise envvars.ConfigError(f"container has runAsNonRoot and image will run as root "
                                      f"{who}")
        if found.run_as_user == 0:
            raise envvars.ConfigError(f"container's runAsUser breaks non-root policy {who}")
    return found


def termination_log_file(path: pathlib.Path) -> str:
    """The host file bound at a container's terminationMessagePath, empty and
    writable by whichever user the container runs as (blocking)."""
    for directory in (path.parent.parent, path.parent):  # <pod dir>/containers/<name>
        private_dir(directory)
    path.write_bytes(b"")
    os.chmod(path, 0o666)  # as the kubelet makes it; private behind the 0700 directories
    return str(path)


def termination_message(status: rpb.ContainerStatus) -> str:
    """What an exited container said about its end (blocking): the file at its
    terminationMessagePath (at most 4096 bytes); with FallbackToLogsOnError,
    when that is empty and it failed, the last 80 lines of its log (at most
    2048 bytes)."""
    path = status.annotations.get(TERMINATION_PATH_ANNOTATION, "")
    message = b""
    host = next((m.host_path for m in status.mounts if m.container_path == path), "") \
        if path else ""
    if host:
        try:
            with open(host, "rb") as f:
                message = f.read(TERMINATION_MESSAGE_BYTES_MAX)
        except OSError:
            message = b""
    if not message and status.exit_code != 0 and \
            status.annotations.get(TERMINATION_POLICY_ANNOTATION) == "FallbackToLogsOnError":
        try:
            with open(status.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * TERMINATION_LOG_BYTES_MAX))
                lines = f.read().splitlines(keepends=True)[-TERMINATION_LOG_LINES_MAX:]
            message = b"".join(lines)[-TERMINATION_LOG_BYTES_MAX:]
        except OSError:
            message = b""
    return message.decode(errors="replace")


def pod_grace_s(pod: Message) -> int:
    spec = pod.spec
    return spec.termination_grace_period_seconds \
        if spec.HasField("termination_grace_period_seconds") else DEFAULT_GRACE_S


class PodRuntime:
    def __init__(self, ctx: NodeContext, uid: str, log: structlog.BoundLogger, *,
                 schedule: Callable[[float], None], notify: Callable[[], None]):
        self.ctx = ctx
        self.uid = uid
        self.log = log
        self.schedule = schedule    # ask for a pass within this long
        self.notify = notify        # ask for a pass now
        self.sandbox = Sandbox()
        self.volume_paths: dict[str, str] | None = None
        self.volume_error = ""
        self.waiting: dict[str, tuple[str, str]] = {}   # container name -> (reason, message)
        self.killing: set[str] = set()                   # container ids being stopped
        self.status_cache: dict[str, rpb.ContainerStatus] = {}
        self.backoff_reported: dict[str, int] = {}      # container name -> finished_at

    # ------------------------------------------------------------ SyncPod

    async def sync(self, pod: Message) -> core_pb2.PodStatus:
        """Make the pod run; the status handed over."""
        if not self.sandbox.id and not await self._find_sandbox(pod):
            if not await self._may_start_again(pod):
                self.sandbox.ip = self.sandbox.ip or pod.status.pod_ip
                return await self.report(pod)
            await self._create_sandbox(pod)
        if not await self._setup_volumes(pod):
            return await self.report(pod)
        grouped = await self.instances()
        self._sync_probes(pod, grouped)
        if await self._sync_init_containers(pod, grouped):
            for ctr in pod.spec.containers:
                await self._sync_container(pod, ctr, grouped.get(ctr.name, []))
        return await self.report(pod, collect=True)

    async def report(self, pod: Message, *, terminal: bool = False, reason: str = "",
                     message: str = "", collect: bool = False) -> core_pb2.PodStatus:
        """Hand the status, as the runtime says it now, to the status manager;
        with `collect`, old instances go then."""
        grouped = await self.instances()
        status = self._set_status(pod, grouped, terminal=terminal, reason=reason,
                                  message=message)
        if collect:
            await self._collect_garbage(grouped)
        return status

    async def _may_start_again(self, pod: Message) -> bool:
        if (pod.spec.restart_policy or "Always") != "Never":
            return True
        return not await self.instances()

    async def _sync_init_containers(self, pod: Message,
                                    grouped: dict[str, list[Instance]]) -> bool:
        """Run the init containers in order; True once every one has succeeded."""
        spec = pod.spec
        for ctr in spec.init_containers:
            items = grouped.get(ctr.name, [])
            cur = items[0] if items else None
            if cur is not None and cur.exited and cur.status.exit_code == 0:
                continue
            if cur is None:
                await self._start(pod, ctr, items, init=True)
            elif cur.status.state == rpb.CONTAINER_CREATED:
                await self._start_created(pod, ctr, cur, items, init=True)
            elif cur.exited and (spec.restart_policy or "Always") != "Never":
                await self._restart(pod, ctr, cur, items, init=True)
            return False
        return True

    async def _sync_container(self, pod: Message, ctr: Message, items: list[Instance]) -> None:
        cur = items[0] if items else None
        if cur is None:
            await self._start(pod, ctr, items)
        elif cur.status.state == rpb.CONTAINER_CREATED:
            await self._start_created(pod, ctr, cur, items)
        elif cur.running:
            if cur.id in self.killing:
                return
            failed = self.ctx.probes.failure(self.uid, cur.id)
            action = containers.running_action(ctr, cur, pod.spec.restart_policy,
                                               failed[0] if failed is not None else None)
            if action is None:
                return
            grace_s = self._probe_grace_s(pod, ctr, action.probe) if action.probe \
                else float(pod_grace_s(pod))
            await self._kill(pod, ctr, cur.id, grace_s, action.message)
            if action.restart_now:
                # A new definition: the new instance now, not through the back-off
                # (computePodActions puts it in ContainersToStart of this pass).
                await self._start(pod, ctr, items)
            else:
                self.notify()  # restart it now (through the back-off)
        elif cur.exited:
            policy = pod.spec.restart_policy or "Always"
            if policy == "Always" or (policy == "OnFailure" and cur.status.exit_code != 0):
                await self._restart(pod, ctr, cur, items)
            else:
                self.waiting.pop(ctr.name, None)

    @staticmethod
    def _probe_grace_s(pod: Message, ctr: Message, kind: str) -> float:
        probe = ctr.liveness_probe if kind == prober.LIVENESS else ctr.startup_probe
        if probe.HasField("termination_grace_period_seconds"):
            return float(probe.termination_grace_period_seconds)
        return float(pod_grace_s(pod))

    async def stop_running(self, grace_s: float) -> None:
        """Stop the running containers again with a shorter grace period."""
        try:
            found = await self.ctx.runtime.list_containers(labels={cri.POD_UID_LABEL: self.uid})
            await asyncio.gather(*(self.ctx.runtime.stop_container(c.id, grace_s)
                                   for c in found if c.state == rpb.CONTAINER_RUNNING),
                                 return_exceptions=True)
        except (cri.RuntimeUnavailable, cri.RuntimeCallError) as err:
            self.log.info("could not shorten the grace period", error=str(err))

    # ------------------------------------------------------------ KillPod, cleanup

    async def stop_all(self, pod: Message | None, grace_s: float) -> bool:
        """Stop every running container of the pod, together, then its sandboxes;
        False when the pod has no sandbox on this node."""
        sandboxes = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        if not sandboxes:
            return False
        if not self.sandbox.id:  # not synced since a kubelet restart: report on the newest
            newest = max(sandboxes, key=lambda s: (s.metadata.attempt, s.created_at))
            self.sandbox.id = newest.id
            self.sandbox.ip = (await self.ctx.runtime.sandbox_status(newest.id)).network.ip
        specs = {}
        if pod is not None:
            specs = {c.name: c for c in [*pod.spec.init_containers, *pod.spec.containers]}
        found = await self.ctx.runtime.list_containers(labels={cri.POD_UID_LABEL: self.uid})
        live = [c for c in found if c.state in (rpb.CONTAINER_RUNNING, rpb.CONTAINER_CREATED)]
        await asyncio.gather(*(self._kill(
            pod, specs.get(c.metadata.name), c.id, grace_s,
            f"Stopping container {c.metadata.name}", event=c.state == rpb.CONTAINER_RUNNING)
            for c in live))
        for s in sandboxes:
            if s.state == rpb.SANDBOX_READY:
                await self.ctx.runtime.stop_sandbox(s.id, 0.0)
        # Nothing will run in it again: the IP goes back (the status keeps it).
        self.ctx.ipam.release(self.uid)
        await self.ctx.ipam.flush()
        self.status_cache.clear()
        self.waiting.clear()
        return True

    async def cleanup(self, pod: Message | None) -> None:
        """Remove the pod's sandboxes, volumes and logs (`pod`: the last version seen)."""
        for s in await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid}):
            await self.ctx.runtime.remove_sandbox(s.id)
        await asyncio.to_thread(self.ctx.volumes.teardown, self.uid)
        self.ctx.ipam.release(self.uid)
        await self.ctx.ipam.flush()
        if pod is not None:
            await asyncio.to_thread(shutil.rmtree, self.ctx.log_dir(pod), True)
        else:  # an orphan: found by its uid
            found = await asyncio.to_thread(logs.pod_log_dirs, self.ctx.root / "logs")
            if self.uid in found:
                await asyncio.to_thread(shutil.rmtree, found[self.uid], True)
        self.ctx.crash_backoff.forget_prefix(f"{self.uid}/")
        self.ctx.images.forget_pod(self.uid)
        self.ctx.probes.remove_pod(self.uid)
        self.sandbox = Sandbox()

    # ------------------------------------------------------------ sandbox

    def _sandbox_config(self, pod: Message, attempt: int, pod_ip: str,
                        dns_config: rpb.DNSConfig) -> rpb.PodSandboxConfig:
        m = pod.metadata
        spec = pod.spec
        # The domain as the kubelet's GeneratePodHostNameAndDomain: only with a subdomain.
        cluster_domain = self.ctx.dns.cluster_domain
        domain = f"{spec.subdomain}.{m.namespace}.svc.{cluster_domain}" \
            if spec.subdomain and cluster_domain else ""
        return rpb.PodSandboxConfig(
            metadata=rpb.PodSandboxMetadata(name=m.name, uid=m.uid, namespace=m.namespace,
                                            attempt=attempt),
            hostname=spec.hostname or m.name, log_directory=str(self.ctx.log_dir(pod)),
            labels={cri.POD_NAME_LABEL: m.name, cri.POD_NAMESPACE_LABEL: m.namespace,
                    cri.POD_UID_LABEL: m.uid},
            annotations={cri.GRACE_ANNOTATION: str(pod_grace_s(pod))}, pod_ip=pod_ip,
            domain=domain,
            host_aliases=[rpb.HostAlias(ip=a.ip, hostnames=list(a.hostnames))
                          for a in spec.host_aliases],
            dns_config=dns_config,
            namespace_options=rpb.NamespaceOption(
                pid=rpb.NODE if spec.host_pid else
                rpb.POD if spec.HasField("share_process_namespace") and
                spec.share_process_namespace else rpb.CONTAINER,
                ipc=rpb.NODE if spec.host_ipc else rpb.POD))

    async def _find_sandbox(self, pod: Message) -> bool:
        """Adopt the pod's ready sandbox if the runtime has one (a kubelet restart)."""
        found = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        ready = [s for s in found if s.state == rpb.SANDBOX_READY]
        if not ready:
            return False
        best = max(ready, key=lambda s: (s.metadata.attempt, s.created_at))
        sandbox = await self.ctx.runtime.sandbox_status(best.id)
        ip = sandbox.network.ip
        if ip and ip != self.ctx.node_ip:
            self.ctx.ipam.assign(self.uid, ip)
            await self.ctx.ipam.flush()
        dns_config, _ = self.ctx.dns.pod_dns(pod)  # its events were recorded at creation
        self.sandbox = Sandbox(
            best.id, self._sandbox_config(pod, best.metadata.attempt, ip, dns_config), ip)
        return True

    async def _create_sandbox(self, pod: Message) -> None:
        found = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        attempt = max((s.metadata.attempt for s in found), default=-1) + 1
        pod_ip = self.ctx.node_ip if pod.spec.host_network else self.ctx.ipam.allocate(self.uid)
        await self.ctx.ipam.flush()
        dns_config, warnings = self.ctx.dns.pod_dns(pod)
        for warning in warnings:
            self.ctx.events.record(pod, WARNING, warning.reason, warning.message)
        config = self._sandbox_config(pod, attempt, pod_ip, dns_config)
        sandbox_id = await self.ctx.runtime.run_sandbox(config)
        self.sandbox = Sandbox(sandbox_id, config, pod_ip)
        self.log.info("sandbox created", sandbox=sandbox_id[:12], pod_ip=pod_ip, attempt=attempt)

    async def _setup_volumes(self, pod: Message) -> bool:
        try:
            self.volume_paths = await self.ctx.volumes.setup(
                pod, self.ctx.lookup, self.ctx.claim_path, host_ip=self.ctx.node_ip,
                pod_ip=self.sandbox.ip, allocatable=self.ctx.allocatable)
        except (volumes.VolumeError, errors.NotFound) as err:
            message = str(err) if isinstance(err, volumes.VolumeError) \
                else f"MountVolume.SetUp failed: {err}"
            if message != self.volume_error:
                self.ctx.events.record(pod, WARNING, "FailedMount", message)
            self.volume_error = message
            self.schedule(RETRY_S)
            return False
        self.volume_error = ""
        return True

    # ------------------------------------------------------------ containers

    async def instances(self) -> dict[str, list[Instance]]:
        """Container name -> its instances in every sandbox of the pod, newest first."""
        found = await self.ctx.runtime.list_containers(labels={cri.POD_UID_LABEL: self.uid})
        instances = []
        for c in found:
            cached = self.status_cache.get(c.id)
            if cached is None or cached.state != c.state:
                try:
                    cached = await self.ctx.runtime.container_status(c.id)
                except cri.RuntimeCallError as err:
                    if err.code == grpc.StatusCode.NOT_FOUND:
                        continue  # removed in between
                    raise
                if cached.state == rpb.CONTAINER_EXITED:
                    said = await asyncio.to_thread(termination_message, cached)
                    if said:
                        cached.message = f"{cached.message}: {said}" if cached.message else said
                self.status_cache[c.id] = cached
            instances.append(Instance(c, cached))
        live = {c.id for c in found}
        for cid in [cid for cid in self.status_cache if cid not in live]:
            del self.status_cache[cid]
        return containers.by_name(instances)

    async def _next_attempt(self, pod: Message, name: str, items: list[Instance]) -> int:
        """One more than any attempt of this container known: the runtime's, the
        API's and the kubelet's own status, and (with no instance left) the log
        files' names."""
        known = []
        for status in (pod.status, self.ctx.status.status(self.uid)):
            if status is not None:
                known.append(containers.api_attempt(
                    [*status.container_statuses, *status.init_container_statuses], name))
        if not items:
            known += await asyncio.to_thread(logs.logged_attempts,
                                             self.ctx.log_dir(pod) / name)
        return containers.next_attempt(items, known)

    def _termination_log_path(self, ctr: Message, attempt: int) -> pathlib.Path:
        return self.ctx.volumes.pod_dir(self.uid) / "containers" / ctr.name / \
            f"{attempt}-termination-log"

    def _container_config(self, pod: Message, ctr: Message, attempt: int,
                          init: bool) -> rpb.ContainerConfig:
        env = envvars.container_env(
            pod, ctr, self.ctx.lookup, host_ip=self.ctx.node_ip, pod_ip=self.sandbox.ip,
            allocatable=self.ctx.allocatable,
            services=self.ctx.services(pod.metadata.namespace))
        env_map = dict(env)
        mounts = []
        for mount in ctr.volume_mounts:
            try:
                host = volumes.mount_host_path(self.volume_paths or {}, mount)
            except volumes.VolumeError as err:
                raise envvars.ConfigError(str(err)) from None
            mounts.append(rpb.Mount(container_path=mount.mount_path, host_path=host,
                                    readonly=mount.HasField("read_only") and mount.read_only))
        termination = {}
        if ctr.termination_message_path and \
                all(m.container_path != ctr.termination_message_path for m in mounts):
            mounts.append(rpb.Mount(container_path=ctr.termination_message_path,
                                    host_path=str(self._termination_log_path(ctr, attempt))))
            termination = {TERMINATION_PATH_ANNOTATION: ctr.termination_message_path,
                           TERMINATION_POLICY_ANNOTATION: ctr.termination_message_policy or
                           "File"}
        m = pod.metadata
        return rpb.ContainerConfig(
            metadata=rpb.ContainerMetadata(name=ctr.name, attempt=attempt),
            image=rpb.ImageSpec(image=ctr.image),
            command=envvars.expand_all(ctr.command, env_map),
            args=envvars.expand_all(ctr.args, env_map), working_dir=ctr.working_dir,
            envs=[rpb.KeyValue(key=k, value=v) for k, v in [*self.ctx.pod_env.items(), *env]],
            mounts=mounts, memory_limit_bytes=memory_limit_bytes(ctr),
            cpu_limit_millis=cpu_limit_millis(ctr),
            log_path=logs.relative_log_path(ctr.name, attempt),
            stdin=ctr.stdin, stdin_once=ctr.stdin_once, tty=ctr.tty,
            security_context=security_context(pod, ctr),
            labels={cri.POD_NAME_LABEL: m.name, cri.POD_NAMESPACE_LABEL: m.namespace,
                    cri.POD_UID_LABEL: m.uid, cri.CONTAINER_NAME_LABEL: ctr.name},
            annotations={cri.RESTART_COUNT_ANNOTATION: str(attempt),
                         cri.CONTAINER_HASH_ANNOTATION: containers.hash_container(ctr),
                         cri.INIT_ANNOTATION: "true" if init else "false",
                         cri.GRACE_ANNOTATION: str(pod_grace_s(pod)), **termination})

    async def _start(self, pod: Message, ctr: Message, items: list[Instance],
                     init: bool = False) -> None:
        path = field_path(ctr.name, init)
        pulled = await self.ctx.images.ensure(pod, ctr, path)
        if not pulled.ok:
            self.waiting[ctr.name] = (pulled.reason, pulled.message)
            if pulled.retry_s is not None:
                self.schedule(pulled.retry_s)
            return
        attempt = await self._next_attempt(pod, ctr.name, items)
        if ctr.termination_message_path:
            await asyncio.to_thread(termination_log_file,
                                    self._termination_log_path(ctr, attempt))
        try:
            config = self._container_config(pod, ctr, attempt, init)
        except envvars.ConfigError as err:
            message = str(err)
            if self.waiting.get(ctr.name) != ("CreateContainerConfigError", message):
                self.ctx.events.record(pod, WARNING, "Failed", f"Error: {message}",
                                       field_path=path)
            self.waiting[ctr.name] = ("CreateContainerConfigError", message)
            self.schedule(RETRY_S)
            return
        try:
            container_id, warnings, isolation_warnings = await self.ctx.runtime.create_container(
                self.sandbox.id, config, self.sandbox.config)
        except cri.RuntimeCallError as err:
            if err.code == grpc.StatusCode.ALREADY_EXISTS:
                self.notify()  # an earlier create went through: find it on the next pass
                return
            if err.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION) \
                    and "sandbox" in err.message:
                self.log.warning("sandbox gone; making a new one", error=err.message)
                self.sandbox = Sandbox()
                self.notify()
                return
            self.waiting[ctr.name] = ("CreateContainerError", err.message)
            self.ctx.events.record(pod, WARNING, "Failed", f"Error: {err.message}",
                                   field_path=path)
            self.schedule(RETRY_S)
            return
        self.ctx.events.record(pod, NORMAL, "Created", f"Created container {ctr.name}",
                               field_path=path)
        for warning in warnings:
            # No cgroup enforces this limit on this node: say how it is approximated.
            self.ctx.events.record(pod, WARNING, LIMIT_APPROXIMATED,
                                   f"Container {ctr.name}: {warning}", field_path=path)
        for warning in isolation_warnings:  # the node's isolation mode's gaps, never silent
            self.ctx.events.record(pod, WARNING, ISOLATION_GAP_REASON, warning,
                                   field_path=path)
        await self._run_created(pod, ctr, container_id, init)

    async def _start_created(self, pod: Message, ctr: Message, cur: Instance,
                             items: list[Instance], init: bool = False) -> None:
        """A container created but never started (the kubelet stopped in between);
        one made in an earlier sandbox, or from an older definition of the
        container, is not started: a new one is made."""
        if cur.sandbox_id != self.sandbox.id or containers.definition_changed(ctr, cur):
            await self._start(pod, ctr, items, init)
            return
        await self._run_created(pod, ctr, cur.id, init)

    async def _run_created(self, pod: Message, ctr: Message, container_id: str,
                           init: bool) -> None:
        path = field_path(ctr.name, init)
        try:
            await self.ctx.runtime.start_container(container_id)
        except cri.RuntimeCallError as err:
            # The runtime recorded it as exited (StartError); restarts go through the back-off.
            self.waiting.pop(ctr.name, None)
            self.ctx.events.record(pod, WARNING, "Failed", f"Error: {err.message}",
                                   field_path=path)
            self.notify()
            return
        self.waiting.pop(ctr.name, None)
        self.ctx.events.record(pod, NORMAL, "Started", f"Started container {ctr.name}",
                               field_path=path)
        self.log.info("container started", container=ctr.name, container_id=container_id[:12])
        if not init:
            self.ctx.probes.add(pod, Running(ctr, container_id, time.time()), self.sandbox.ip)
        if ctr.HasField("lifecycle") and ctr.lifecycle.HasField("post_start"):
            outcome = await actions.run_hook(ctr.lifecycle.post_start, self.ctx.runtime,
                                             target(ctr, container_id, self.sandbox.ip),
                                             self.ctx.hook_timeout_s)
            if not outcome.ok:
                self.ctx.events.record(pod, WARNING, "FailedPostStartHook", outcome.message,
                                       field_path=path)
                await self._kill(pod, ctr, container_id, float(pod_grace_s(pod)),
                                 "FailedPostStartHook", run_pre_stop=False)

    async def _restart(self, pod: Message, ctr: Message, cur: Instance, items: list[Instance],
                       init: bool = False) -> None:
        key = f"{self.uid}/{ctr.name}"
        finished_s = cur.status.finished_at / 1e9 if cur.status.finished_at else time.time()
        remaining_s = self.ctx.crash_backoff.remaining_s(key, finished_s)
        if remaining_s > 0:
            m = pod.metadata
            delay = timefmt.go_duration(self.ctx.crash_backoff.delay_s(key))
            self.waiting[ctr.name] = (
                "CrashLoopBackOff", f"back-off {delay} restarting failed container={ctr.name} "
                                    f"pod={m.name}_{m.namespace}({m.uid})")
            if self.backoff_reported.get(ctr.name) != cur.status.finished_at:
                self.backoff_reported[ctr.name] = cur.status.finished_at
                self.ctx.events.record(
                    pod, WARNING, "BackOff", f"Back-off restarting failed container {ctr.name} "
                    f"in pod {m.name}_{m.namespace}({m.uid})",
                    field_path=field_path(ctr.name, init))
            self.schedule(remaining_s)
            return
        self.ctx.crash_backoff.next(key)
        self.waiting.pop(ctr.name, None)
        await self._start(pod, ctr, items, init=init)

    async def _collect_garbage(self, grouped: dict[str, list[Instance]]) -> None:
        """Remove old dead instances and their logs, then sandboxes left empty
        (kubelet/containers.py says which)."""
        removed = 0
        for inst in containers.removable(grouped):
            try:
                await self.ctx.runtime.remove_container(inst.id)
            except cri.RuntimeCallError as err:
                self.log.info("could not remove a container", container_id=inst.id[:12],
                              error=err.message)
                continue
            if inst.status.log_path:
                await asyncio.to_thread(logs.remove_log, inst.status.log_path)
            self.status_cache.pop(inst.id, None)
            removed += 1
        if not removed:
            return
        kept = [i for items in grouped.values() for i in items if i.id in self.status_cache]
        sandboxes = await self.ctx.runtime.list_sandboxes({cri.POD_UID_LABEL: self.uid})
        for sandbox_id in containers.sandboxes_to_remove(sandboxes, kept):
            if sandbox_id != self.sandbox.id:
                await self.ctx.runtime.remove_sandbox(sandbox_id)

    async def _kill(self, pod: Message | None, ctr: Message | None, container_id: str,
                    grace_s: float, message: str, *, run_pre_stop: bool = True,
                    event: bool = True) -> None:
        """Stop one container: Killing event, preStop within the grace period,
        then SIGTERM, the rest of the grace period, SIGKILL (the runtime's stop)."""
        if container_id in self.killing:
            return
        self.killing.add(container_id)
        try:
            self.ctx.probes.stop_container(self.uid, container_id)
            init = False
            if pod is not None and ctr is not None:
                init = any(c.name == ctr.name for c in pod.spec.init_containers)
            path = field_path(ctr.name, init) if ctr is not None else ""
            if pod is not None and event:
                self.ctx.events.record(pod, NORMAL, "Killing", message, field_path=path)
            begun = time.monotonic()
            if run_pre_stop and pod is not None and ctr is not None \
                    and ctr.HasField("lifecycle") and ctr.lifecycle.HasField("pre_stop") \
                    and grace_s > 0:
                outcome = await actions.run_hook(ctr.lifecycle.pre_stop, self.ctx.runtime,
                                                 target(ctr, container_id, self.sandbox.ip),
                                                 grace_s)
                if not outcome.ok:
                    self.ctx.events.record(pod, WARNING, "FailedPreStopHook", outcome.message,
                                           field_path=path)
                grace_s -= time.monotonic() - begun
            # Always a minimal shutdown window (the kubelet's minimumGracePeriodInSeconds).
            grace_s = max(grace_s, self.ctx.min_grace_s)
            await self.ctx.runtime.stop_container(container_id, grace_s)
            self.status_cache.pop(container_id, None)
        finally:
            self.killing.discard(container_id)

    # ------------------------------------------------------------ probes and status

    def _sync_probes(self, pod: Message, grouped: dict[str, list[Instance]]) -> None:
        """Probe workers exactly for the running app containers (adopted ones included)."""
        specs = {c.name: c for c in pod.spec.containers}
        running = {}
        for name, items in grouped.items():
            if items and items[0].running and name in specs:
                cur = items[0]
                running[cur.id] = Running(specs[name], cur.id, cur.status.started_at / 1e9)
        self.ctx.probes.sync(pod, running, self.sandbox.ip, frozenset(self.killing))

    def _views(self, pod: Message, grouped: dict[str, list[Instance]]
               ) -> tuple[list[pod_status.ContainerView], list[pod_status.ContainerView]]:
        def view(ctr: Message) -> pod_status.ContainerView:
            items = grouped.get(ctr.name, [])
            cur = items[0].status if items else None
            prev = items[1].status if len(items) > 1 else None
            reason, message = self.waiting.get(ctr.name, ("", ""))
            if cur is not None and cur.state == rpb.CONTAINER_RUNNING:
                reason, message = "", ""
            v = pod_status.ContainerView(name=ctr.name, image=ctr.image, current=cur,
                                         previous=prev, waiting_reason=reason,
                                         waiting_message=message)
            if cur is not None:
                v.started = self.ctx.probes.started(self.uid, cur.id)
                # Not ready before started (the startup probe gates readiness).
                v.ready = self.ctx.probes.ready(self.uid, cur.id)
            return v
        return [view(c) for c in pod.spec.init_containers], [view(c) for c in pod.spec.containers]

    def _set_status(self, pod: Message, grouped: dict[str, list[Instance]], *,
                    terminal: bool, reason: str, message: str) -> core_pb2.PodStatus:
        """Compute the pod's status from this view and hand it to the status manager."""
        init, app = self._views(pod, grouped)
        if self.volume_error:
            for v in [*init, *app]:
                if v.current is None and not v.waiting_reason:
                    v.waiting_reason = "ContainerCreating" if v in app else "PodInitializing"
        view = pod_status.PodView(init=init, app=app, pod_ip=self.sandbox.ip,
                                  host_ip=self.ctx.node_ip,
                                  sandbox_ready=bool(self.sandbox.id) and not terminal,
                                  terminal=terminal, reason=reason, message=message)
        new = pod_status.build(pod, view, time.time(), previous=self.ctx.status.status(self.uid))
        self.ctx.status.set_pod_status(pod, new)
        return self.ctx.status.status(self.uid) or new
