"""The kubelet's gRPC API (kubemu.kubelet.v1.Kubelet): logs, exec, attach, port-forward
and stats of its pods.

The apiserver proxies pods/log, pods/exec and pods/attach here. They follow
a container's current instance, the one with the highest attempt
(kubelet/containers.py): exec and attach need it running; logs read it,
across its rotated files (kubelet/logs.py). Interactive exec is a session
relayed to the runtime's ExecStream (kubemu.streams); attach reads the
instance's log from its current end and sends stdin to the runtime's Attach. `--previous` reads what the container's lastState names,
as the kubelet does: the newest dead instance before a running one, or,
while a dead one waits to be restarted (CrashLoopBackOff), that one. Errors are ApiErrors sent
as the apiserver sends them (status code + `kubemu-reason` trailer), worded
as Kubernetes words them ("a container name must be specified for pod web,
choose one of: [app sidecar]", "previous terminated container \"app\" in pod
\"web\" not found", ...), so the CLI prints the same line kubectl would.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Callable

import grpc
import grpc.aio
import psutil
import structlog
from google.protobuf.message import Message

from kubelet import cri, logs
from kubelet import status as pod_status
from kubemu import server as grpc_server
from kubemu import streams
from kubemu.api import errors
from kubemu.api.v1 import resources_pb2 as apb
from kubemu.kubelet.v1 import kubelet_pb2_grpc
from kubemu.runtime.v1 import runtime_pb2 as rpb

log = structlog.get_logger()

EXEC_OUTPUT_BYTES_MAX = 16 << 20
# How often an attach looks for new output in the container's log (what a
# user typing into an attached terminal waits for its echo, at most).
ATTACH_POLL_S = 0.05


def _runtime_size(size: apb.TerminalSize) -> rpb.TerminalSize:
    return rpb.TerminalSize(width=size.width, height=size.height)


def _to_runtime(message: apb.PodStreamInput) -> rpb.StreamInput | None:
    """A client's session message as the runtime's (the target is the hop's own)."""
    kind = message.WhichOneof("input")
    if kind == "stdin":
        return rpb.StreamInput(stdin=message.stdin)
    if kind == "resize":
        return rpb.StreamInput(resize=_runtime_size(message.resize))
    if kind == "close_stdin":
        return rpb.StreamInput(close_stdin=True)
    return None


def _from_runtime(message: rpb.StreamOutput) -> apb.PodStreamOutput | None:
    """The runtime's session output as the API's: the exit code gains Kubernetes'
    status message."""
    kind = message.WhichOneof("output")
    if kind == "stdout":
        return apb.PodStreamOutput(stdout=message.stdout)
    if kind == "stderr":
        return apb.PodStreamOutput(stderr=message.stderr)
    if kind == "exit_code":
        return apb.PodStreamOutput(exit=apb.PodStreamExit(
            exit_code=message.exit_code, message=streams.exit_message(message.exit_code)))
    return None


def _runtime_unavailable(exc: Exception) -> errors.ApiError | None:
    if isinstance(exc, cri.RuntimeUnavailable):
        return errors.Unavailable(f"the container runtime is not answering: {exc}")
    return None


_unary = grpc_server.unary_errors(translate=_runtime_unavailable)


class KubeletService(kubelet_pb2_grpc.KubeletServicer):
    def __init__(self, node_name: str, runtime: cri.RuntimeClient,
                 find_pod: Callable[[str, str], Message | None], follow_poll_s: float = 0.2):
        self.node_name = node_name
        self.runtime = runtime
        self.find_pod = find_pod
        self.follow_poll_s = follow_poll_s
        self._me = psutil.Process()
        self._me.cpu_percent(None)  # the first call only starts the measurement

    def _own_usage(self) -> tuple[int, int]:
        """The kubelet's own CPU rate (since the last call) and RSS."""
        try:
            with self._me.oneshot():
                return int(self._me.cpu_percent(None) * 1e7), self._me.memory_info().rss
        except psutil.Error:
            return 0, 0

    def _pod(self, namespace: str, name: str) -> Message:
        pod = self.find_pod(namespace or "default", name)
        if pod is None:
            raise errors.NotFound(f'pods "{name}" not found on node "{self.node_name}"')
        return pod

    @staticmethod
    def _container_name(pod: Message, wanted: str) -> str:
        names = [c.name for c in pod.spec.containers]
        init_names = [c.name for c in pod.spec.init_containers]
        if not wanted:
            if len(names) == 1:
                return names[0]
            message = (f"a container name must be specified for pod {pod.metadata.name}, "
                       f"choose one of: [{' '.join(names)}]")
            if init_names:
                message += f" or one of the init containers: [{' '.join(init_names)}]"
            raise errors.BadRequest(message)
        if wanted not in names and wanted not in init_names:
            raise errors.BadRequest(f"container {wanted} is not valid for pod "
                                    f"{pod.metadata.name}")
        return wanted

    async def _instances(self, pod: Message, container: str) -> list[rpb.ContainerStatus]:
        """The container's instances on this node, newest first."""
        found = await self.runtime.list_containers(labels={
            cri.POD_UID_LABEL: pod.metadata.uid, cri.CONTAINER_NAME_LABEL: container})
        found.sort(key=lambda c: (c.metadata.attempt, c.created_at), reverse=True)
        out = []
        for c in found:
            try:
                out.append(await self.runtime.container_status(c.id))
            except cri.RuntimeCallError:
                continue
        return out

    @staticmethod
    def _status_of(pod: Message, container: str) -> Message | None:
        return next((s for s in [*pod.status.container_statuses,
                                 *pod.status.init_container_statuses] if s.name == container),
                    None)

    def _waiting_reason(self, pod: Message, container: str) -> str:
        s = self._status_of(pod, container)
        if s is not None and s.state.HasField("waiting"):
            return s.state.waiting.reason
        return "ContainerCreating"

    def _previous(self, pod: Message, container: str, instances: list[rpb.ContainerStatus]
                  ) -> rpb.ContainerStatus:
        """The instance lastState names (see the module doc)."""
        cur = instances[0]
        if cur.state != rpb.CONTAINER_RUNNING:
            s = self._status_of(pod, container)
            if s is not None and s.state.HasField("waiting") and \
                    s.last_state.terminated.container_id == pod_status.CONTAINER_ID_PREFIX + cur.id:
                return cur
        older = [i for i in instances[1:] if i.state != rpb.CONTAINER_RUNNING]
        if not older:
            raise errors.BadRequest(f'previous terminated container "{container}" in '
                                    f'pod "{pod.metadata.name}" not found')
        return older[0]

    async def ContainerLogs(self, request, context):
        try:
            pod = self._pod(request.namespace, request.name)
            container = self._container_name(pod, request.container)
            instances = await self._instances(pod, container)
            if request.previous:
                if not instances:
                    raise errors.BadRequest(f'previous terminated container "{container}" in '
                                            f'pod "{pod.metadata.name}" not found')
                target = self._previous(pod, container, instances)
            else:
                if not instances:
                    raise errors.BadRequest(
                        f'container "{container}" in pod "{pod.metadata.name}" is waiting to '
                        f'start: {self._waiting_reason(pod, container)}')
                target = instances[0]
        except errors.ApiError as err:
            await grpc_server.abort(context, err)
            return
        except cri.RuntimeUnavailable as err:
            await grpc_server.abort(context, _runtime_unavailable(err))
            return

        async def running() -> bool:
            try:
                current = await self.runtime.container_status(target.id)
            except (cri.RuntimeCallError, cri.RuntimeUnavailable):
                return False
            return current.state == rpb.CONTAINER_RUNNING

        tail = request.tail_lines if request.HasField("tail_lines") else None
        limit = request.limit_bytes if request.HasField("limit_bytes") else None
        async for chunk in logs.read_log(target.log_path, tail_lines=tail, limit_bytes=limit,
                                         follow=request.follow and not request.previous,
                                         running=running, poll_s=self.follow_poll_s):
            yield apb.LogChunk(data=chunk)

    @_unary
    async def Exec(self, request, context):
        pod = self._pod(request.namespace, request.name)
        container = self._container_name(pod, request.container)
        if not request.command:
            raise errors.BadRequest("you must specify at least one command for the container")
        instances = await self._instances(pod, container)
        if not instances or instances[0].state != rpb.CONTAINER_RUNNING:
            raise errors.BadRequest(f'unable to upgrade connection: container not found '
                                    f'("{container}")')
        try:
            response = await self.runtime.exec_sync(instances[0].id, list(request.command),
                                                    request.timeout_s)
        except cri.RuntimeCallError as err:
            if err.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise errors.Timeout(err.message) from None
            raise errors.BadRequest(err.message) from None
        return apb.PodExecResponse(stdout=response.stdout[:EXEC_OUTPUT_BYTES_MAX],
                                   stderr=response.stderr[:EXEC_OUTPUT_BYTES_MAX],
                                   exit_code=response.exit_code)

    # ------------------------------------------------------------ sessions

    async def _running_instance(self, pod: Message, container: str) -> rpb.ContainerStatus:
        instances = await self._instances(pod, container)
        if not instances or instances[0].state != rpb.CONTAINER_RUNNING:
            raise errors.BadRequest(f'unable to upgrade connection: container not found '
                                    f'("{container}")')
        return instances[0]

    @staticmethod
    def _spec(pod: Message, container: str) -> Message:
        return next(c for c in [*pod.spec.containers, *pod.spec.init_containers]
                    if c.name == container)

    async def _open(self, method: str, start: rpb.StreamStart) -> grpc.aio.StreamStreamCall:
        """A runtime session call, set up: the start sent and `started` received."""
        call = self.runtime.open_stream(method)
        try:
            await call.write(rpb.StreamInput(start=start))
            reply = await streams.read_first(call, streams.setup_timeout_s(0))
            if reply.WhichOneof("output") != "started":
                raise streams.ProtocolError(f"the runtime's {method} did not start")
        except BaseException:
            call.cancel()
            raise
        return call

    async def _session(self, context, run) -> None:
        """Serve a session (ExecStream, Attach): the target within the set-up
        deadline, then `run(target, context)`; every failure is reported as the
        apiserver reports it."""
        try:
            first = await streams.read_first(context, streams.SETUP_TIMEOUT_S)
            if streams.input_kind(first) != "target":
                raise streams.ProtocolError("the first message of a session must name its target")
            await run(first.target, context)
        except errors.ApiError as err:
            await grpc_server.abort(context, err)
        except (streams.ProtocolError, streams.SetupTimeout) as err:
            await grpc_server.abort(context, errors.BadRequest(str(err)))
        except cri.RuntimeUnavailable as err:
            await grpc_server.abort(context, _runtime_unavailable(err))
        except grpc.aio.AioRpcError as err:  # the runtime's session call failed
            failed = cri.RuntimeClient.stream_error("session", err)
            if isinstance(failed, cri.RuntimeUnavailable):
                await grpc_server.abort(context, _runtime_unavailable(failed))
            elif failed.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                await grpc_server.abort(context, errors.Timeout(failed.message))
            else:
                await grpc_server.abort(context, errors.BadRequest(failed.message))

    async def ExecStream(self, request_iterator, context):
        await self._session(context, self._exec_stream)

    async def _exec_stream(self, target: apb.PodStreamTarget, context) -> None:
        pod = self._pod(target.namespace, target.name)
        container = self._container_name(pod, target.container)
        if not target.command:
            raise errors.BadRequest("you must specify at least one command for the container")
        instance = await self._running_instance(pod, container)
        call = await self._open("ExecStream", rpb.StreamStart(
            container_id=instance.id, cmd=list(target.command), stdin=target.stdin,
            tty=target.tty, size=_runtime_size(target.size), timeout_s=target.timeout_s))
        await context.write(apb.PodStreamOutput(started=True))
        await streams.relay(context, call, map_in=_to_runtime, map_out=_from_runtime)

    async def PortForward(self, request_iterator, context):
        await self._session(context, self._port_forward)

    async def _port_forward(self, target: apb.PodStreamTarget, context) -> None:
        """One connection to the pod's IP at `target.port` (containers bind their
        pod IP), its bytes relayed both ways until the pod's side ends it."""
        pod = self._pod(target.namespace, target.name)
        if pod.status.phase != "Running":
            raise errors.BadRequest(f"unable to forward port because pod is not running. "
                                    f"Current status={pod.status.phase or 'Pending'}")
        port = target.port
        if not 0 < port < 65536:
            raise errors.BadRequest(f"invalid port {port}")
        ip = pod.status.pod_ip
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port),
                                                    streams.SETUP_TIMEOUT_S)
        except (OSError, TimeoutError) as err:
            # Go's wording: "connect: connection refused", "i/o timeout".
            reason = os.strerror(err.errno) if isinstance(err, OSError) and err.errno else \
                "i/o timeout"
            raise errors.BadRequest(
                f"error forwarding port {port} to pod {pod.metadata.name}, uid "
                f"{pod.metadata.uid}: dial tcp4 {ip}:{port}: connect: {reason.lower()}") from None
        try:
            await context.write(apb.PodStreamOutput(started=True))

            async def output() -> None:
                async for chunk in streams.socket_chunks(reader):
                    await context.write(apb.PodStreamOutput(stdout=chunk))
                await context.write(apb.PodStreamOutput(exit=apb.PodStreamExit(exit_code=0)))

            await streams.join(streams.pump_in(context, streams.SocketSink(writer)), output())
        finally:
            writer.close()

    async def Attach(self, request_iterator, context):
        await self._session(context, self._attach)

    async def _attach(self, target: apb.PodStreamTarget, context) -> None:
        """Output: the container's log from its current end, followed until the
        instance ends (a tty's output is in the log too: the runtime copies it).
        Input: stdin, when the container has `stdin`, and terminal resizes go to
        the runtime's Attach. Whether there is a terminal is the container's
        `tty`, as in Kubernetes (the client's `tty` only says how it shows it)."""
        pod = self._pod(target.namespace, target.name)
        container = self._container_name(pod, target.container)
        spec = self._spec(pod, container)
        instance = await self._running_instance(pod, container)
        stdin = target.stdin and spec.stdin  # stdin to a container without one: dropped
        call = None
        if stdin or spec.tty:
            call = await self._open("Attach", rpb.StreamStart(
                container_id=instance.id, stdin=stdin, tty=spec.tty,
                size=_runtime_size(target.size)))
        try:
            # From the log's end as it is before the client can type anything.
            try:
                offset = await asyncio.to_thread(logs.end_offset, instance.log_path)
            except FileNotFoundError:  # nothing written yet
                offset = 0
            await context.write(apb.PodStreamOutput(started=True))

            async def running() -> bool:
                try:
                    current = await self.runtime.container_status(instance.id)
                except (cri.RuntimeCallError, cri.RuntimeUnavailable):
                    return False
                return current.state == rpb.CONTAINER_RUNNING

            async def output() -> None:
                async for chunk in logs.read_log(instance.log_path, offset=offset, follow=True,
                                                 running=running,
                                                 poll_s=min(self.follow_poll_s, ATTACH_POLL_S)):
                    await context.write(apb.PodStreamOutput(stdout=chunk))
                await context.write(apb.PodStreamOutput(exit=apb.PodStreamExit(exit_code=0)))

            await streams.join(streams.pump_in(context, call, _to_runtime), output())
        finally:
            if call is not None:
                call.cancel()

    @_unary
    async def Stats(self, request, context):
        stats = await self.runtime.list_stats()
        pods: dict[str, apb.PodUsage] = {}
        cpu = memory = 0
        stamp = 0
        window_s = 0.0
        for s in stats:
            labels = s.attributes.labels
            uid = labels.get(cri.POD_UID_LABEL, "")
            if not uid:
                continue
            usage = pods.get(uid)
            if usage is None:
                usage = pods[uid] = apb.PodUsage(
                    namespace=labels.get(cri.POD_NAMESPACE_LABEL, ""),
                    name=labels.get(cri.POD_NAME_LABEL, ""), uid=uid)
            usage.containers.add(name=s.attributes.metadata.name,
                                 cpu_nano_cores=s.cpu.usage_nano_cores,
                                 memory_working_set_bytes=s.memory.working_set_bytes,
                                 cpu_window_seconds=s.cpu.window_seconds)
            window_s = max(window_s, s.cpu.window_seconds)
            cpu += s.cpu.usage_nano_cores
            memory += s.memory.working_set_bytes
            stamp = max(stamp, s.cpu.timestamp)
        agent_cpu, agent_memory = self._own_usage()
        stamp_text = pod_status.ns_to_rfc3339(stamp) or pod_status.rfc3339(time.time())
        return apb.NodeStatsResponse(node=self.node_name, timestamp=stamp_text,
                                     cpu_nano_cores=cpu + agent_cpu,
                                     memory_working_set_bytes=memory + agent_memory,
                                     cpu_window_seconds=window_s,
                                     pods=sorted(pods.values(),
                                                 key=lambda p: (p.namespace, p.name)))

