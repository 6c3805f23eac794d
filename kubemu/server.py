"""gRPC server scaffold shared by every component.

`serve()` starts a grpc.aio server on an address (port 0 = pick one), adds
grpc.health.v1 health, one interceptor that logs each call with a request id
and its duration, and stops gracefully (a grace period for in-flight calls)
when the process gets SIGTERM or SIGINT.
"""
from __future__ import annotations

import asyncio
import signal
import time
import uuid

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kubemu.api.errors import REASON_KEY, ApiError

log = structlog.get_logger()

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients ping every 30 s to notice a paused server; accept that.
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10000),
    ("grpc.http2.max_ping_strikes", 0),
]


async def abort(context: grpc.aio.ServicerContext, err: ApiError) -> None:
    """End a call with the gRPC status for `err`: the one server-side mapping of
    ApiError (code, Kubernetes message, reason trailer for the client)."""
    await context.abort(err.code, err.message, trailing_metadata=((REASON_KEY, err.reason),))


class LoggingInterceptor(grpc.aio.ServerInterceptor):
    """Logs unary calls at debug level with a request id, and failures at info.

    The wrapped handler is built once per method, not once per call.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrap(method.rpartition("/")[2], handler)
        self._wrapped[method] = wrapped
        return wrapped

    @staticmethod
    def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary

        async def logged(request, context):
            started = time.monotonic()
            try:
                return await inner(request, context)
            finally:
                code = context.code()
                if code not in (None, grpc.StatusCode.OK, 0):
                    log.info("call failed", method=method, request_id=uuid.uuid4().hex[:12],
                             code=getattr(code, "name", code),
                             ms=round((time.monotonic() - started) * 1000, 2),
                             details=context.details())

        return grpc.unary_unary_rpc_method_handler(
            logged, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


class Server:
    """A grpc.aio server with health and graceful stop."""

    def __init__(self, address: str, *, grace_s: float = 5.0):
        self.requested_address = address
        self.grace_s = grace_s
        self.server = grpc.aio.server(interceptors=[LoggingInterceptor()],
                                      options=SERVER_OPTIONS)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.address = ""
        self._stopped = asyncio.Event()

    async def start(self) -> str:
        host, _, port = self.requested_address.rpartition(":")
        bound = self.server.add_insecure_port(self.requested_address)
        if bound == 0:
            raise OSError(f"cannot listen on {self.requested_address}")
        self.address = f"{host}:{bound}"
        await self.set_serving(False)
        await self.server.start()
        return self.address

    async def set_serving(self, serving: bool, service: str = "") -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(service, status)

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        await self.set_serving(False)
        await self.server.stop(self.grace_s)
        self._stopped.set()


def stop_requested() -> asyncio.Event:
    """An event set on the first SIGTERM or SIGINT (the caller then stops gracefully)."""
    loop = asyncio.get_running_loop()
    asked = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, asked.set)
    return asked
