"""`kubemu port-forward`'s decisions, as kubectl makes them (kubectl's
portforward.go: translateServicePortToTargetPort, convertPodNamedPortToNumber,
client-go's parsePorts), and the socket end of a forwarded connection
(kubemu.streams.SocketSink). The whole path runs in tests/e2e/test_port_forward.py.
"""
from __future__ import annotations

import asyncio
import datetime

import pytest

from kubemu import streams
from kubemu.api.v1 import resources_pb2 as apb
from kubemu.cli import portforward
from kubemu.cli.common import CliError
from tests.unit.cli_memclient import MemClient, install, run_cli

POD = {"metadata": {"name": "web"}, "spec": {"containers": [
    {"name": "a", "ports": [{"name": "http", "containerPort": 8080},
                            {"name": "metrics", "containerPort": 9090}]}]}}
SVC = {"metadata": {"name": "front"}, "spec": {"ports": [
    {"name": "web", "port": 80, "targetPort": "http"},
    {"name": "admin", "port": 81, "targetPort": 9091},
    {"name": "plain", "port": 82}]}}


@pytest.mark.parametrize("words, out", [
    (["8080"], ["8080"]),
    (["5000:8080"], ["5000:8080"]),
    (["http"], ["8080"]),
    (["5000:http"], ["5000:8080"]),
    ([":metrics"], [":9090"]),
], ids=["number", "pair", "name", "local-and-name", "free-local-and-name"])
def test_pod_named_ports_become_numbers(words, out):
    assert portforward.pod_ports(words, POD) == out


def test_pod_without_the_named_port():
    with pytest.raises(CliError, match="^Pod 'web' does not have a named port 'grpc'$"):
        portforward.pod_ports(["grpc"], POD)


@pytest.mark.parametrize("words, out", [
    # a bare service port keeps its number locally and goes to the targetPort
    (["80"], ["80:8080"]),
    (["8000:80"], ["8000:8080"]),
    ([":80"], [":8080"]),
    (["web"], ["80:8080"]),
    (["0:web"], ["0:8080"]),
    (["81"], ["81:9091"]),
    # no targetPort: the port itself
    (["82"], ["82"]),
], ids=["port", "pair", "free-local", "name", "zero-local-name", "numeric-target", "no-target"])
def test_service_ports_become_target_ports(words, out):
    assert portforward.service_ports(words, SVC, POD) == out


@pytest.mark.parametrize("words, message", [
    (["83"], "Service front does not have a service port 83"),
    (["dns"], "Service 'front' does not have a named port 'dns'"),
])
def test_service_port_errors(words, message):
    with pytest.raises(CliError) as err:
        portforward.service_ports(words, SVC, POD)
    assert str(err.value) == message


@pytest.mark.parametrize("words, pairs", [
    (["8080"], [(8080, 8080)]),
    (["5000:80", ":81", "0:82"], [(5000, 80), (0, 81), (0, 82)]),
])
def test_parse_ports(words, pairs):
    assert [(p.local, p.remote) for p in portforward.parse_ports(words)] == pairs


@pytest.mark.parametrize("word, message", [
    ("1:2:3", "invalid port format '1:2:3'"),
    ("x:80", "error parsing local port 'x': strconv.ParseUint: parsing \"x\": invalid syntax"),
    ("80:70000", "error parsing remote port '70000': strconv.ParseUint: parsing \"70000\": "
                 "invalid syntax"),
    ("8080:0", "remote port must be > 0"),
])
def test_parse_port_errors(word, message):
    with pytest.raises(CliError) as err:
        portforward.parse_ports([word])
    assert str(err.value) == message


def test_addresses():
    assert portforward.listen_addresses("localhost") == [("127.0.0.1", False), ("::1", False)]
    assert portforward.listen_addresses("0.0.0.0,::1") == [("0.0.0.0", True), ("::1", True)]
    with pytest.raises(CliError, match="^nowhere is not a valid IP$"):
        portforward.listen_addresses("nowhere")
    assert portforward.shown_address("::1") == "[::1]"


def pod(name: str, phase: str, ready: bool, created: str, deleting: bool = False) -> dict:
    meta = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pick_pod_prefers_running_ready_and_older():
    pods = [pod("pending", "Pending", False, "2026-01-01T00:00:00Z"),
            pod("young-ready", "Running", True, "2026-01-03T00:00:00Z"),
            pod("old-unready", "Running", False, "2026-01-01T00:00:00Z"),
            pod("old-ready", "Running", True, "2026-01-02T00:00:00Z"),
            pod("going", "Running", True, "2025-01-01T00:00:00Z", deleting=True)]
    assert portforward.pick_pod(pods)["metadata"]["name"] == "old-ready"
    assert portforward.pick_pod(pods[:1]) is None


def test_klog_error_line():
    at = datetime.datetime(2026, 11, 30, 13, 5, 6, 7)
    line = portforward.klog_error("an error occurred forwarding 8080 -> 80: boom", at)
    assert line.startswith("E1130 13:05:06.000007 ")
    assert line.endswith(" portforward.go:424] an error occurred forwarding 8080 -> 80: boom")


@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


async def test_a_pending_pod_is_refused_before_listening(mem, capsys):
    await mem.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waiting"},
                   "spec": {"containers": [{"name": "a", "image": "nginx"}]}})
    assert await run_cli("port-forward", "pod/waiting", "8080:80") == 1
    assert capsys.readouterr().err == ("error: unable to forward port because pod is not "
                                       "running. Current status=Pending\n")


async def test_a_kind_without_pods_is_refused(mem, capsys):
    assert await run_cli("port-forward", "configmap/x", "80") == 1
    assert capsys.readouterr().err == \
        "error: cannot attach to ConfigMap: selector for ConfigMap not implemented\n"


# ---------------------------------------------------------------- the socket end

async def test_socket_sink_writes_stdin_and_half_closes():
    received: list[bytes] = []
    done = asyncio.Event()

    async def serve(reader, writer):
        while chunk := await reader.read(1024):
            received.append(chunk)
        writer.write(b"bye")  # the half-closed side can still answer
        await writer.drain()
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sink = streams.SocketSink(writer)
        await sink.write(apb.PodStreamInput(stdin=b"hello "))
        await sink.write(apb.PodStreamInput(resize=apb.TerminalSize(width=1)))  # ignored
        await sink.write(apb.PodStreamInput(stdin=b"pod"))
        await sink.write(apb.PodStreamInput(close_stdin=True))
        await sink.write(apb.PodStreamInput(stdin=b"dropped"))
        await sink.done_writing()  # twice is harmless
        chunks = [c async for c in streams.socket_chunks(reader)]
        await asyncio.wait_for(done.wait(), 5)
        assert b"".join(received) == b"hello pod"
        assert b"".join(chunks) == b"bye"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
