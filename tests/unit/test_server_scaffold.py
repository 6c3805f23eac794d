"""kubemu.server: health with named checks, request ids, the error decorator.

An in-process grpc.aio server on a free loopback port, with the health
service and a tiny servicer registered by hand.
"""
from __future__ import annotations

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubemu import server as grpc_server
from kubemu.api import errors

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return response.status


@pytest.fixture
async def server():
    srv = grpc_server.Server("127.0.0.1:0", grace_s=0.5)
    seen: list[dict] = []

    class Echo:
        @grpc_server.unary_errors(translate=lambda exc: errors.Unavailable(str(exc))
                                  if isinstance(exc, ConnectionError) else None)
        async def call(self, request: bytes, context) -> bytes:
            seen.append(structlog.contextvars.get_contextvars())
            if request == b"missing":
                raise errors.not_found("pods", "x")
            if request == b"down":
                raise ConnectionError("runtime socket refused")
            return request

    echo = Echo()
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Call": grpc.unary_unary_rpc_method_handler(lambda req, ctx: echo.call(req, ctx))})
    srv.server.add_generic_rpc_handlers((handler,))
    await srv.start()
    srv.seen = seen
    try:
        yield srv
    finally:
        await srv.stop()


async def test_named_checks_override_what_the_component_says(server):
    assert await _status(server.address) == NOT_SERVING
    await server.set_serving(True)
    await server.set_serving(True, "kubemu.Named")
    assert await _status(server.address) == SERVING
    await server.set_check("loop:cache-pods", False)
    assert await _status(server.address) == NOT_SERVING
    assert await _status(server.address, "kubemu.Named") == NOT_SERVING
    await server.set_check("loop:pleg", False)
    await server.set_check("loop:cache-pods", True)
    assert await _status(server.address) == NOT_SERVING  # one check still fails
    await server.set_check("loop:pleg", True)
    assert await _status(server.address) == SERVING
    assert await _status(server.address, "kubemu.Named") == SERVING


async def _call(address: str, payload: bytes, metadata=()):
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary("/test.Echo/Call")(payload, timeout=5, metadata=metadata)
        response = await call
        return response, await call.initial_metadata()


async def test_a_client_request_id_is_used_and_bound_into_logs(server):
    response, initial = await _call(server.address, b"hi", metadata=(("x-request-id", "abc123"),))
    assert response == b"hi"
    assert server.seen[-1]["request_id"] == "abc123"
    assert "x-request-id" not in dict(initial)  # the client knows its own id


async def test_a_request_id_is_made_and_returned_when_the_client_sent_none(server):
    _, initial = await _call(server.address, b"hi")
    made = dict(initial)["x-request-id"]
    assert len(made) == 16 and server.seen[-1]["request_id"] == made


@pytest.mark.parametrize("payload,code,reason", [
    (b"missing", grpc.StatusCode.NOT_FOUND, "NotFound"),
    (b"down", grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable"),
], ids=["api-error", "translated"])
async def test_unary_errors_map_to_a_status_with_the_reason(server, payload, code, reason):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(server.address, payload)
    assert caught.value.code() == code
    assert (errors.REASON_KEY, reason) in tuple(caught.value.trailing_metadata())
