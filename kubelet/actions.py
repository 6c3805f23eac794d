"""Probe and lifecycle-hook actions: exec, httpGet, tcpSocket, grpc, sleep.

Each returns an Outcome (ok + a message worded as the kubelet words it, which
ends up in Unhealthy / FailedPostStartHook events). Network actions target
the pod IP unless the action names a host; a named port is looked up in the
container's ports. httpGet succeeds on 200-399 and reads at most 10 KiB of
the body (as the kubelet does) so servers do not see a reset mid-reply.
Every action is bounded by its timeout.
"""
from __future__ import annotations

import asyncio
import dataclasses
import shlex
import ssl
from typing import Mapping

import grpc
import grpc.aio
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubelet import cri

USER_AGENT = "kube-probe/1.30"
BODY_BYTES_MAX = 10 * 1024
HEAD_BYTES_MAX = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Target:
    """What an action runs against: the container and the pod's address."""

    container_id: str
    pod_ip: str
    ports: Mapping[str, int]        # the container's named ports


class PortNotFound(Exception):
    pass


def resolve_port(port: Message, ports: Mapping[str, int]) -> int:
    """An IntOrString port: a number, or the name of one of the container's ports."""
    which = port.WhichOneof("value")
    if which == "int_val":
        return port.int_val
    if which == "str_val":
        text = port.str_val
        if text.isdigit():
            return int(text)
        if text in ports:
            return ports[text]
        raise PortNotFound(f'unable to find port "{text}" in the container\'s ports')
    raise PortNotFound("no port given")


async def run_exec(runtime: cri.RuntimeClient, container_id: str, command: list[str],
                   timeout_s: float) -> Outcome:
    try:
        response = await runtime.exec_sync(container_id, command, timeout_s)
    except cri.RuntimeCallError as err:
        if err.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Outcome(False, f"command {shlex.join(command)!r} timed out after "
                                  f"{timeout_s:g}s")
        return Outcome(False, err.message)
    except cri.RuntimeUnavailable as err:
        if "DEADLINE_EXCEEDED" in str(err):
            return Outcome(False, f"command {shlex.join(command)!r} timed out after "
                                  f"{timeout_s:g}s")
        raise
    output = (response.stdout + response.stderr).decode(errors="replace")
    if response.exit_code == 0:
        return Outcome(True, output)
    return Outcome(False, output)


def _ssl_context() -> ssl.SSLContext:
    # The kubelet does not verify probe certificates; so no CA store is loaded
    # (create_default_context reads it from disk, on the event loop, each time).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def http_get(action: Message, target: Target, timeout_s: float) -> Outcome:
    try:
        port = resolve_port(action.port, target.ports)
    except PortNotFound as err:
        return Outcome(False, str(err))
    host = action.host or target.pod_ip
    scheme = (action.scheme or "HTTP").upper()
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme.lower()}://{host}:{port}{path}"
    headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in action.http_headers:
        headers[header.name] = header.value
    headers["Connection"] = "close"
    request = f"GET {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=_ssl_context() if scheme == "HTTPS" else None)
            writer.write(request.encode("latin-1"))
            await writer.drain()
            status_line = await reader.readline()
            head = bytearray(status_line)
            while len(head) < HEAD_BYTES_MAX:
                line = await reader.readline()
                head += line
                if line in (b"\r\n", b"\n", b""):
                    break
            # Read (a bounded part of) the body, so the server finishes its reply.
            body = 0
            while body < BODY_BYTES_MAX:
                chunk = await reader.read(BODY_BYTES_MAX - body)
                if not chunk:
                    break
                body += len(chunk)
    except TimeoutError:
        return Outcome(False, f'Get "{url}": context deadline exceeded (Client.Timeout '
                              f'exceeded while awaiting headers)')
    except ConnectionRefusedError:
        return Outcome(False, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused')
    except (OSError, ssl.SSLError) as err:
        return Outcome(False, f'Get "{url}": {err.strerror or err}'
                       if isinstance(err, OSError) and err.strerror else f'Get "{url}": {err}')
    finally:
        if writer is not None:
            writer.close()
    parts = status_line.decode("latin-1", errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return Outcome(False, f'Get "{url}": malformed HTTP response {status_line[:80]!r}')
    code = int(parts[1])
    if 200 <= code < 400:
        return Outcome(True, "")
    return Outcome(False, f"HTTP probe failed with statuscode: {code}")


async def tcp_socket(action: Message, target: Target, timeout_s: float) -> Outcome:
    try:
        port = resolve_port(action.port, target.ports)
    except PortNotFound as err:
        return Outcome(False, str(err))
    host = action.host or target.pod_ip
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
        return Outcome(True, "")
    except TimeoutError:
        return Outcome(False, f"dial tcp {host}:{port}: i/o timeout")
    except ConnectionRefusedError:
        return Outcome(False, f"dial tcp {host}:{port}: connect: connection refused")
    except OSError as err:
        return Outcome(False, f"dial tcp {host}:{port}: {err.strerror or err}")


async def grpc_check(action: Message, target: Target, timeout_s: float) -> Outcome:
    address = f"{target.pod_ip}:{action.port}"
    service = action.service if action.HasField("service") else ""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=service),
                                      timeout=timeout_s, wait_for_ready=True)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                return Outcome(False, f'timeout: failed to connect service "{address}" '
                                      f'within {timeout_s:g}s')
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                return Outcome(False, "this server does not implement the grpc health protocol "
                                      "(grpc.health.v1.Health)")
            return Outcome(False, f"rpc error: code = {err.code().name} desc = {err.details()}")
    if answer.status == health_pb2.HealthCheckResponse.SERVING:
        return Outcome(True, "")
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return Outcome(False, f'service unhealthy (responded with "{name}")')


async def run_probe(probe: Message, runtime: cri.RuntimeClient, target: Target) -> Outcome:
    timeout_s = float(probe.timeout_seconds or 1)
    if probe.HasField("exec"):
        return await run_exec(runtime, target.container_id, list(probe.exec.command), timeout_s)
    if probe.HasField("http_get"):
        return await http_get(probe.http_get, target, timeout_s)
    if probe.HasField("tcp_socket"):
        return await tcp_socket(probe.tcp_socket, target, timeout_s)
    if probe.HasField("grpc"):
        return await grpc_check(probe.grpc, target, timeout_s)
    return Outcome(True, "")  # validation requires a handler; nothing to check


async def run_hook(handler: Message, runtime: cri.RuntimeClient, target: Target,
                   timeout_s: float) -> Outcome:
    """A lifecycle handler, bounded by timeout_s. Messages as in FailedPostStartHook."""
    if handler.HasField("exec"):
        command = list(handler.exec.command)
        outcome = await run_exec(runtime, target.container_id, command, timeout_s)
        if outcome.ok:
            return outcome
        return Outcome(False, f"Exec lifecycle hook ({command}) failed - error: command "
                              f"'{' '.join(command)}' exited with a failure, message: "
                              f"{outcome.message.strip()!r}")
    if handler.HasField("http_get"):
        outcome = await http_get(handler.http_get, target, timeout_s)
        if outcome.ok:
            return outcome
        return Outcome(False, f"HTTP lifecycle hook ({handler.http_get.path}) failed - error: "
                              f"{outcome.message}")
    if handler.HasField("sleep"):
        await asyncio.sleep(max(0.0, min(float(handler.sleep.seconds), timeout_s)))
        return Outcome(True, "")
    # tcpSocket is accepted by the API for compatibility and does nothing (as in Kubernetes).
    return Outcome(True, "")
