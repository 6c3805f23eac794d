"""The supervisor's control API: faults by process name, on a private unix socket.

Served by `Cluster` (deploy/supervisor.py) once the cluster is ready, on
`kubemu.cluster_home.control_socket(home)`, made 0600 before anyone can use it
(the home is 0700 too). The client is kubemu/control.py. Each RPC maps to one
Cluster control method; errors: NOT_FOUND for an unknown process or node (the
message lists them), FAILED_PRECONDITION for what the cluster cannot do now
(not ready, busy, no links for a partition, pausing a process that is down, a
node added without node components or that did not come up), INVALID_ARGUMENT
for a bad signal, duration or timeout.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
from typing import TYPE_CHECKING, Any, Awaitable

import grpc
import structlog

from kubemu import grpcaio
from kubemu.supervisor.v1 import control_pb2 as pb
from kubemu.supervisor.v1 import control_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from deploy.supervisor import Cluster

log = structlog.get_logger()

STOP_GRACE_S = 1.0
DURATION_S_MAX = 24 * 3600.0
# AddNode / RemoveNode: a request's timeout_s of 0 means this.
NODE_TIMEOUT_S_DEFAULT = 60.0
NODE_TIMEOUT_S_MAX = 3600.0


class ControlServicer(pb_grpc.SupervisorServicer):
    def __init__(self, cluster: "Cluster") -> None:
        self.cluster = cluster

    async def _call(self, context: grpc.aio.ServicerContext, what: str,
                    action: Awaitable[Any]) -> Any:
        from deploy.supervisor import ClusterError

        try:
            return await action
        except KeyError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{what}: {exc.args[0]}")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{what}: {exc}")
        except ClusterError as exc:
            message = str(exc) if str(exc).startswith(f"{what}:") else f"{what}: {exc}"
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)

    @staticmethod
    def _for_s(value: float) -> float | None:
        if value < 0 or value > DURATION_S_MAX:
            raise ValueError(f"for: must be between 0 and {DURATION_S_MAX:g} s, got {value:g}")
        return value or None

    async def Status(self, request, context):
        infos = self.cluster.process_infos()
        return pb.StatusResponse(supervisor_pid=os.getpid(), processes=[pb.ProcessInfo(
            name=i["name"], component=i["component"], node=i["node"], pid=i["pid"] or 0,
            state=i["state"], restarts=i["restarts"], last_exit=i["last_exit"],
            uptime_s=i["uptime_s"] or 0.0, has_uptime=i["uptime_s"] is not None,
            address=i["address"], partitioned=i["partitioned"], paused=i["paused"])
            for i in infos])

    async def Kill(self, request, context):
        async def kill():
            sig = request.signal or signal.SIGKILL
            try:
                signal.Signals(sig)
            except ValueError:
                raise ValueError(f"signal: unknown signal {sig}") from None
            await self.cluster.kill(list(request.names), sig, keep_down=request.keep_down)
        await self._call(context, "kill", kill())
        return pb.Empty()

    async def Stop(self, request, context):
        await self._call(context, "stop", self.cluster.stop(list(request.names)))
        return pb.Empty()

    async def Start(self, request, context):
        await self._call(context, "start", self.cluster.start_processes(list(request.names)))
        return pb.Empty()

    async def Restart(self, request, context):
        await self._call(context, "restart", self.cluster.restart_processes(list(request.names)))
        return pb.Empty()

    async def Pause(self, request, context):
        async def pause():
            await self.cluster.pause(list(request.names), for_s=self._for_s(request.for_s))
        await self._call(context, "pause", pause())
        return pb.Empty()

    async def Resume(self, request, context):
        await self._call(context, "resume", self.cluster.resume(list(request.names)))
        return pb.Empty()

    async def Partition(self, request, context):
        async def partition():
            await self.cluster.partition(list(request.names), for_s=self._for_s(request.for_s))
        await self._call(context, "partition", partition())
        return pb.Empty()

    async def Heal(self, request, context):
        await self._call(context, "heal", self.cluster.heal(list(request.names) or None))
        return pb.Empty()

    async def EtcdLeader(self, request, context):
        name = await self._call(context, "etcd leader", self.cluster.etcd_leader())
        return pb.EtcdLeaderResponse(name=name or "")

    async def RestoreEtcd(self, request, context):
        if not os.path.isabs(request.snapshot):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"restore: snapshot: must be an absolute path, "
                                f"got {request.snapshot!r}")
        line = await self._call(context, "restore", self.cluster.restore_etcd(request.snapshot))
        return pb.RestoreEtcdResponse(message=line)

    @staticmethod
    def _timeout_s(value: float) -> float:
        if value < 0 or value > NODE_TIMEOUT_S_MAX:
            raise ValueError(f"timeout: must be between 0 and {NODE_TIMEOUT_S_MAX:g} s, "
                             f"got {value:g}")
        return value or NODE_TIMEOUT_S_DEFAULT

    async def AddNode(self, request, context):
        async def add():
            return await self.cluster.add_node(self._timeout_s(request.timeout_s))
        name = await self._call(context, "add node", add())
        return pb.AddNodeResponse(name=name)

    async def RemoveNode(self, request, context):
        async def remove():
            await self.cluster.remove_node(request.name, self._timeout_s(request.timeout_s))
        await self._call(context, "remove node", remove())
        return pb.Empty()


class ControlServer:
    """The grpc.aio server on the control socket; start() then stop()."""

    def __init__(self, cluster: "Cluster", path: pathlib.Path) -> None:
        self.path = path
        grpcaio.keep_initialized()
        self.server = grpc.aio.server()
        pb_grpc.add_SupervisorServicer_to_server(ControlServicer(cluster), self.server)

    async def start(self) -> None:
        def bind() -> int:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a dead supervisor's socket
            # Created private: nobody else can connect between bind and chmod.
            old = os.umask(0o077)
            try:
                return self.server.add_insecure_port(f"unix:{self.path}")
            finally:
                os.umask(old)

        # gRPC core binds synchronously, waiting on its threads: off the loop.
        if await asyncio.to_thread(bind) == 0:
            raise OSError(f"cannot listen on {self.path}")
        await asyncio.to_thread(os.chmod, self.path, 0o600)
        await self.server.start()
        log.info("control API serving", socket=str(self.path))

    async def stop(self) -> None:
        await self.server.stop(STOP_GRACE_S)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path.unlink)
