"""gRPC server scaffold shared by every component.

`Server` is a grpc.aio server on an address (port 0 = pick one) with
grpc.health.v1 health, one interceptor, and a graceful stop (a grace period
for in-flight calls) that components run on SIGTERM or SIGINT.

- Request ids: every call has one, taken from the client's `x-request-id`
  metadata or made here (and then sent back to the client as initial
  metadata). It is bound into every log line written while the call is
  handled. Unary calls are logged at debug level, failures at info; streams
  (watches, logs) and sessions (interactive exec, attach) when they start
  and end.
- Health: the process is SERVING when the component says so
  (`set_serving`) and no named check is failing (`set_check(name, False)`,
  e.g. a background loop that is down, see kubemu.loops).
- Errors: `unary_errors` turns an ApiError raised by a unary handler into
  the call's status through `abort`, the one server-side mapping.
"""
from __future__ import annotations

import asyncio
import functools
import signal
import time
import uuid
from typing import Any, Callable, Iterable

import grpc
import structlog
from structlog.contextvars import bind_contextvars, reset_contextvars
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kubemu import grpcaio
from kubemu.api import limits
from kubemu.api.errors import REASON_KEY, REQUEST_ID_KEY, ApiError

log = structlog.get_logger()

REQUEST_ID_CHARS_MAX = 64  # a longer id from a client is cut: it goes into every log line

SERVER_OPTIONS = [
    ("grpc.max_send_message_length", limits.MESSAGE_BYTES_MAX),
    ("grpc.max_receive_message_length", limits.MESSAGE_BYTES_MAX),
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


def unary_errors(method: Callable | None = None, /, *,
                 translate: Callable[[Exception], ApiError | None] | None = None):
    """Decorate a servicer's unary method: an ApiError it raises ends the call
    with that error's status; `translate` may turn other exceptions (a
    component's own, e.g. "the runtime is not answering") into an ApiError."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        async def wrapper(self, request, context):
            try:
                return await fn(self, request, context)
            except ApiError as err:
                await abort(context, err)
            except Exception as exc:
                err = translate(exc) if translate is not None else None
                if err is None:
                    raise
                await abort(context, err)
        return wrapper
    return decorate(method) if method is not None else decorate


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


async def _request_id(context: grpc.aio.ServicerContext) -> str:
    """The client's request id, or a new one sent back to it."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)[:REQUEST_ID_CHARS_MAX]
    request_id = new_request_id()
    await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
    return request_id


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return getattr(code, "name", "OK" if code in (None, 0) else str(code))


class LoggingInterceptor(grpc.aio.ServerInterceptor):
    """Request ids and call logs for unary, server-streaming and bidirectional methods.

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
        if handler is None:
            return handler
        name = method.rpartition("/")[2]
        if handler.unary_unary is not None:
            wrapped = self._wrap_unary(name, handler)
        elif handler.unary_stream is not None:
            wrapped = self._wrap_stream(name, handler)
        elif handler.stream_stream is not None:
            wrapped = self._wrap_session(name, handler)
        else:
            return handler
        self._wrapped[method] = wrapped
        return wrapped

    @staticmethod
    def _wrap_unary(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary

        async def logged(request, context):
            started = time.monotonic()
            # bind/reset rather than the bound_contextvars context manager: this
            # runs once per call, and the generator-based manager costs more.
            tokens = bind_contextvars(request_id=await _request_id(context))
            try:
                return await inner(request, context)
            finally:
                code = _code_name(context)
                ms = round((time.monotonic() - started) * 1000, 2)
                if code != "OK":
                    log.info("call failed", method=method, code=code, ms=ms,
                             details=context.details())
                else:
                    log.debug("call", method=method, ms=ms)
                reset_contextvars(**tokens)

        return grpc.unary_unary_rpc_method_handler(
            logged, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    @staticmethod
    def _wrap_stream(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_stream

        async def logged(request, context):
            started = time.monotonic()
            request_id = await _request_id(context)
            sent = 0
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                log.debug("stream started", method=method)
                try:
                    async for item in inner(request, context):
                        sent += 1
                        yield item
                finally:
                    code = _code_name(context)
                    level = log.debug if code in ("OK", "CANCELLED") else log.info
                    level("stream ended", method=method, code=code, messages=sent,
                          ms=round((time.monotonic() - started) * 1000, 2))

        return grpc.unary_stream_rpc_method_handler(
            logged, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


    @staticmethod
    def _wrap_session(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """Bidirectional sessions (exec, attach), served with context.read/write."""
        inner = handler.stream_stream

        async def logged(request_iterator, context):
            started = time.monotonic()
            with structlog.contextvars.bound_contextvars(request_id=await _request_id(context)):
                log.debug("session started", method=method)
                try:
                    return await inner(request_iterator, context)
                finally:
                    code = _code_name(context)
                    level = log.debug if code in ("OK", "CANCELLED") else log.info
                    level("session ended", method=method, code=code,
                          ms=round((time.monotonic() - started) * 1000, 2))

        return grpc.stream_stream_rpc_method_handler(
            logged, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


class Server:
    """A grpc.aio server with health and graceful stop.

    `options` are gRPC server options that replace the defaults of the same
    name (e.g. a smaller grpc.max_receive_message_length for the apiserver).
    """

    def __init__(self, address: str, *, grace_s: float = 5.0,
                 options: Iterable[tuple[str, Any]] = ()):
        self.requested_address = address
        self.grace_s = grace_s
        merged = dict(SERVER_OPTIONS)
        merged.update(dict(options))
        grpcaio.keep_initialized()
        self.server = grpc.aio.server(interceptors=[LoggingInterceptor()],
                                      options=list(merged.items()))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.address = ""
        self._stopped = asyncio.Event()
        self._wanted: dict[str, bool] = {"": False}  # service -> what the component says
        self._failing: set[str] = set()             # named checks that fail now

    async def start(self) -> str:
        host, _, port = self.requested_address.rpartition(":")
        # gRPC core binds (and resolves the address) synchronously, waiting on
        # its own threads: 120-131 ms off-CPU seen on a loaded machine, so the
        # bind runs in a thread (the server is not started yet).
        bound = await asyncio.to_thread(self.server.add_insecure_port, self.requested_address)
        if bound == 0:
            raise OSError(f"cannot listen on {self.requested_address}")
        self.address = f"{host}:{bound}"
        await self.set_serving(False)
        await self.server.start()
        return self.address

    async def set_serving(self, serving: bool, service: str = "") -> None:
        """What the component says of itself (for `service`; "" = the process)."""
        self._wanted[service] = serving
        await self._publish(service)

    async def set_check(self, name: str, ok: bool) -> None:
        """A named check (a background loop, a dependency): while any fails,
        every service reports NOT_SERVING whatever the component says."""
        before = bool(self._failing)
        if ok:
            self._failing.discard(name)
        else:
            self._failing.add(name)
        if before != bool(self._failing):
            log.warning("health check changed", check=name, ok=ok,
                        failing=sorted(self._failing))
            for service in list(self._wanted):
                await self._publish(service)

    @property
    def serving(self) -> bool:
        return self._wanted.get("", False) and not self._failing

    async def _publish(self, service: str) -> None:
        serving = self._wanted.get(service, False) and not self._failing
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(service, status)

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        for service in list(self._wanted):
            await self.set_serving(False, service)
        await self.server.stop(self.grace_s)
        self._stopped.set()


def stop_requested() -> asyncio.Event:
    """An event set on the first SIGTERM or SIGINT (the caller then stops gracefully)."""
    loop = asyncio.get_running_loop()
    asked = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, asked.set)
    return asked
