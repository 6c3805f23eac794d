"""The HTTP reverse proxy: each request routed by the current table, sent straight
to one of the backend's ready endpoints (as ingress-nginx does, not through the
Service's ClusterIP).

Contract:
- Routing: `Proxy(state)` asks `state.route(host, path)` and
  `state.endpoints(backend)` per request, so a change seen by the informers
  applies to the next request, without a restart.
- No route (the controller's default backend): 404 with the body
  "default backend - 404", as ingress-nginx's default backend answers; a
  backend without ready endpoints: 503; every try failed to connect: 502; the
  upstream slower than the read timeout: 504 (nginx's pages for these).
- Endpoints are taken round robin per backend; a connect failure (refused,
  unreachable, connect timeout) tries the next endpoint, at most `tries_max`
  tries in all (nginx's proxy_next_upstream "error timeout", tries 3). The
  request has not reached an upstream then, so this is safe for any method.
- Request bodies are read whole before the first try (nginx buffers them too),
  at most 1 MiB (ingress-nginx's proxy-body-size): larger gets 413. Responses
  are streamed back as they come, content encoding untouched.
- Headers: hop-by-hop headers are dropped both ways; Host is passed as the
  client sent it; X-Forwarded-For and X-Real-IP are the client's address
  (ingress-nginx's default, compute-full-forwarded-for off),
  X-Forwarded-Host the Host header, X-Forwarded-Proto/X-Scheme `http`,
  X-Forwarded-Port our port, X-Request-ID the client's or a new one.
- Not done: HTTP/1.1 Upgrade (WebSocket), TLS, HTTP/2.
"""
from __future__ import annotations

import itertools
import secrets
from typing import Protocol

import aiohttp
import structlog
import yarl
from aiohttp import web
from multidict import CIMultiDict

from addons.ingress.routing import Backend, Route

log = structlog.get_logger("ingress.proxy")

DEFAULT_BACKEND_BODY = "default backend - 404"
BODY_BYTES_MAX = 1024 * 1024
CHUNK_BYTES = 64 * 1024
# Upstream connections open at once, for every backend together.
UPSTREAM_CONNECTIONS_MAX = 1024
# Round-robin counters kept; past this they start over (backends come and go).
ROUND_ROBIN_KEYS_MAX = 10_000

HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
    "TE", "Trailer", "Transfer-Encoding", "Upgrade"))
# Set by us, or recomputed by aiohttp for the body it sends; Expect was
# answered here (the body is read whole before the first try).
_NOT_FORWARDED = HOP_BY_HOP | {"content-length", "expect", "x-forwarded-for", "x-real-ip",
                               "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
                               "x-scheme"}
_NOT_RETURNED = HOP_BY_HOP | {"content-length"}

_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable",
            504: "Gateway Time-out"}


def nginx_error_page(status: int) -> str:
    title = f"{status} {_REASONS[status]}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            f"</body>\r\n</html>\r\n")


class State(Protocol):
    def route(self, host: str, path: str) -> Route: ...

    def endpoints(self, backend: Backend) -> list[tuple[str, int]]: ...


class RoundRobin:
    """The next endpoint per backend, in turn."""

    def __init__(self, keys_max: int = ROUND_ROBIN_KEYS_MAX):
        self.keys_max = keys_max
        self._next: dict[Backend, itertools.count] = {}

    def order(self, backend: Backend, endpoints: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """The endpoints, starting from this backend's next one."""
        if not endpoints:
            return []
        counter = self._next.get(backend)
        if counter is None:
            if len(self._next) >= self.keys_max:
                self._next.clear()
            counter = self._next[backend] = itertools.count()
        start = next(counter) % len(endpoints)
        return endpoints[start:] + endpoints[:start]


def forwarded_headers(request: web.BaseRequest, port: int) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED)
    client = request.remote or ""
    headers["X-Request-ID"] = request.headers.get("X-Request-ID") or secrets.token_hex(16)
    headers["X-Real-IP"] = client
    headers["X-Forwarded-For"] = client
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Port"] = str(port)
    headers["X-Forwarded-Proto"] = "http"
    headers["X-Scheme"] = "http"
    return headers


class Proxy:
    def __init__(self, state: State, *, port: int, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 60.0, tries_max: int = 3):
        if tries_max < 1:
            raise ValueError(f"Proxy: tries_max must be >= 1, got {tries_max}")
        self.state = state
        self.port = port
        self.tries_max = tries_max
        self.round_robin = RoundRobin()
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                              sock_read=read_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS_MAX,
                                               force_close=False),
                timeout=self._timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self.state.route(request.host, request.path)
        if route.backend is None:
            return web.Response(status=404, text=DEFAULT_BACKEND_BODY)
        endpoints = self.round_robin.order(route.backend, self.state.endpoints(route.backend))
        if not endpoints:
            log.info("ingress: no ready endpoints", backend=str(route.backend),
                     ingress=route.ingress)
            return _error(503)
        expect = request.headers.get("Expect", "")
        if expect:
            # aiohttp's low-level server leaves Expect to the handler.
            if expect.lower() != "100-continue":
                return web.Response(status=417, text="417 Expectation Failed")
            if request.version >= (1, 1) and request.writer is not None:
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="413 Request Entity Too Large")
        headers = forwarded_headers(request, self.port)
        for address, port in endpoints[:self.tries_max]:
            host = f"[{address}]" if ":" in address else address
            url = yarl.URL(f"http://{host}:{port}{request.raw_path}", encoded=True)
            try:
                upstream = await self._client().request(
                    request.method, url, headers=headers, data=body or None,
                    allow_redirects=False)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                log.info("ingress: upstream connect failed, trying the next endpoint",
                         backend=str(route.backend), endpoint=f"{address}:{port}",
                         error=str(exc))
                continue
            except aiohttp.ServerTimeoutError:
                return _error(504)
            except aiohttp.ClientError as exc:
                log.info("ingress: upstream failed", backend=str(route.backend),
                         endpoint=f"{address}:{port}", error=str(exc))
                return _error(502)
            async with upstream:
                return await self._relay(request, upstream)
        return _error(502)

    async def _relay(self, request: web.BaseRequest,
                     upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in _NOT_RETURNED:
                response.headers.add(name, value)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            # Headers are gone already: all we can do is cut the connection.
            log.info("ingress: response cut short", error=f"{type(exc).__name__}: {exc}")
            if request.transport is not None:
                request.transport.close()
        return response


def _error(status: int) -> web.Response:
    return web.Response(status=status, text=nginx_error_page(status), content_type="text/html")
