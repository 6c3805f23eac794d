"""The client of the supervisor's control API (deploy/control_server.py).

Faults by exact process name (`kubemu status` lists them): kill, stop/start,
restart, pause/resume (SIGSTOP/SIGCONT of the process group), partition/heal;
nodes added and removed at run time (add_node, remove_node).
The supervisor serves it on `kubemu.cluster_home.control_socket(home)`, private
to the cluster's user. Every call has a deadline (timeout_s). Errors:
ControlError with the supervisor's message (it names the process and the
reason); SupervisorGone when nothing answers on the socket.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import signal as signals
from typing import Iterable

import grpc

from kubemu import cluster_home, grpcaio
from kubemu.supervisor.v1 import control_pb2 as pb
from kubemu.supervisor.v1 import control_pb2_grpc as pb_grpc


# add_node / remove_node: the supervisor's own deadline, and how much longer the
# RPC waits for its answer (an add that failed is undone before it answers).
NODE_TIMEOUT_S = 60.0
NODE_RPC_MARGIN_S = 35.0


class ControlError(Exception):
    """The supervisor refused or failed; the message names the process and the reason."""


class SupervisorGone(ControlError):
    """No supervisor answers on the home's control socket."""


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    name: str
    component: str
    node: str
    pid: int | None
    state: str            # running|starting|paused|stopped|backoff|exited|stopping|partitioned
    restarts: int
    last_exit: str        # "code 1", "signal KILL", "" (never exited)
    uptime_s: float | None
    address: str
    partitioned: bool
    paused: bool


def _names(names: str | Iterable[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


class SupervisorClient:
    """One connection to a home's supervisor. Use from one event loop; close() it
    (or `async with`)."""

    def __init__(self, home: str | os.PathLike[str], *, timeout_s: float = 10.0) -> None:
        self.home = pathlib.Path(home).resolve()
        self.timeout_s = timeout_s
        self.socket = cluster_home.control_socket(self.home)
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.SupervisorStub | None = None

    async def __aenter__(self) -> "SupervisorClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_stub(self) -> pb_grpc.SupervisorStub:
        if self._stub is None:
            grpcaio.keep_initialized()
            self._channel = grpc.aio.insecure_channel(f"unix:{self.socket}")
            self._stub = pb_grpc.SupervisorStub(self._channel)
        return self._stub

    async def _call(self, method: str, request, timeout_s: float | None = None):
        rpc = getattr(self._get_stub(), method)
        try:
            return await rpc(request, timeout=timeout_s or self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise SupervisorGone(f"no supervisor answers for {self.home} "
                                     f"({self.socket}): {exc.details()}") from None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ControlError(f"{method.lower()}: the supervisor did not answer within "
                                   f"{timeout_s or self.timeout_s:g} s") from None
            raise ControlError(exc.details() or str(code)) from None

    async def status(self) -> list[ProcessInfo]:
        answer = await self._call("Status", pb.StatusRequest())
        return [ProcessInfo(
            name=p.name, component=p.component, node=p.node, pid=p.pid or None, state=p.state,
            restarts=p.restarts, last_exit=p.last_exit,
            uptime_s=p.uptime_s if p.has_uptime else None, address=p.address,
            partitioned=p.partitioned, paused=p.paused) for p in answer.processes]

    async def kill(self, names, *, signal: int = signals.SIGKILL, keep_down: bool = False) -> None:
        await self._call("Kill", pb.KillRequest(names=_names(names), signal=int(signal),
                                                keep_down=keep_down))

    async def stop(self, names) -> None:
        """Stop (SIGTERM, grace, SIGKILL); stays down until start."""
        await self._call("Stop", pb.NamesRequest(names=_names(names)),
                         timeout_s=max(self.timeout_s, 30.0))

    async def start(self, names) -> None:
        await self._call("Start", pb.NamesRequest(names=_names(names)))

    async def restart(self, names) -> None:
        await self._call("Restart", pb.NamesRequest(names=_names(names)),
                         timeout_s=max(self.timeout_s, 30.0))

    async def pause(self, names, *, for_s: float | None = None) -> None:
        await self._call("Pause", pb.TimedRequest(names=_names(names), for_s=for_s or 0.0))

    async def resume(self, names) -> None:
        await self._call("Resume", pb.NamesRequest(names=_names(names)))

    async def partition(self, names, *, for_s: float | None = None) -> None:
        await self._call("Partition", pb.TimedRequest(names=_names(names), for_s=for_s or 0.0))

    async def heal(self, names=None) -> None:
        await self._call("Heal", pb.NamesRequest(names=_names(names) if names else []))

    async def etcd_leader(self) -> str | None:
        answer = await self._call("EtcdLeader", pb.Empty())
        return answer.name or None

    async def restore_etcd(self, snapshot: str, *, timeout_s: float = 240.0) -> str:
        """Restore etcd from a snapshot file (an absolute path); the supervisor's
        line saying what it did."""
        answer = await self._call("RestoreEtcd", pb.RestoreEtcdRequest(snapshot=snapshot),
                                  timeout_s=timeout_s)
        return answer.message

    async def add_node(self, timeout_s: float = NODE_TIMEOUT_S) -> str:
        """Start one more node; its name (node-<k>) once its processes are ready
        and its Node object is Ready (the supervisor stops it again when not
        within timeout_s)."""
        answer = await self._call("AddNode", pb.AddNodeRequest(timeout_s=timeout_s),
                                  timeout_s=timeout_s + NODE_RPC_MARGIN_S)
        return answer.name

    async def remove_node(self, name: str, timeout_s: float = NODE_TIMEOUT_S) -> None:
        """Stop a node's processes for good and delete its Node object."""
        await self._call("RemoveNode", pb.RemoveNodeRequest(name=name, timeout_s=timeout_s),
                         timeout_s=timeout_s + NODE_RPC_MARGIN_S)

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()
