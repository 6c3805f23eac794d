"""The ingress proxy (addons/ingress/proxy.py) in this process, between a real
HTTP client and real upstream servers on loopback: what it passes through
untouched (methods, bodies, status, repeated headers, encoded bodies, streamed
bodies, redirects) and what it answers itself (413, 502, 503, 504)."""
from __future__ import annotations

import asyncio
import gzip

import aiohttp
import pytest
from aiohttp import web

from addons.ingress.proxy import Proxy
from addons.ingress.routing import Backend, Route
from tests.support import free_port

BACKEND = Backend("default", "up", 80)


class FakeState:
    def __init__(self) -> None:
        self.endpoints_of: dict[Backend, list[tuple[str, int]]] = {}

    def route(self, host: str, path: str) -> Route:
        return Route(BACKEND if host.startswith("up.") else None)

    def endpoints(self, backend: Backend) -> list[tuple[str, int]]:
        return self.endpoints_of.get(backend, [])


def upstream_app(release: asyncio.Event) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        resp = web.Response(status=201, body=body, headers={
            "X-Method": request.method, "X-Got-Connection": request.headers.get("Connection", ""),
            "X-Got-Custom": request.headers.get("X-Custom", ""),
            "X-Got-Type": request.headers.get("Content-Type", "")})
        resp.headers.add("Set-Cookie", "a=1")
        resp.headers.add("Set-Cookie", "b=2")
        return resp

    async def gzipped(_request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"squeezed"),
                            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp

    async def moved(_request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async def sized(_request: web.Request) -> web.Response:
        return web.Response(body=b"0123456789")

    async def slow(_request: web.Request) -> web.Response:
        await release.wait()  # the proxy's read timeout comes first
        return web.Response(text="late")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/stream", streamed)
    app.router.add_get("/moved", moved)
    app.router.add_get("/sized", sized)
    app.router.add_get("/slow", slow)
    return app


@pytest.fixture
async def rig():
    release = asyncio.Event()
    runners = []
    up_runner = web.AppRunner(upstream_app(release), access_log=None)
    await up_runner.setup()
    runners.append(up_runner)
    up_port = free_port()
    await web.TCPSite(up_runner, "127.0.0.1", up_port).start()
    state = FakeState()
    state.endpoints_of[BACKEND] = [("127.0.0.1", up_port)]
    proxy_port = free_port()
    proxy = Proxy(state, port=proxy_port, read_timeout_s=0.5)
    runner = web.ServerRunner(web.Server(proxy.handle, access_log=None), handle_signals=False)
    await runner.setup()
    runners.append(runner)
    await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                    auto_decompress=False)
    try:
        yield state, f"http://127.0.0.1:{proxy_port}", session, up_port
    finally:
        release.set()
        await session.close()
        await proxy.close()
        for r in reversed(runners):
            await r.cleanup()


UP = {"Host": "up.example.com"}


async def test_method_body_status_and_repeated_headers_pass_through(rig):
    _state, base, session, _ = rig
    async with session.put(f"{base}/echo", data=b"payload",
                           headers={**UP, "X-Custom": "kept", "Connection": "keep-alive",
                                    "Content-Type": "application/x-thing"}) as resp:
        assert resp.status == 201 and await resp.read() == b"payload"
        assert resp.headers["X-Method"] == "PUT"
        assert resp.headers["X-Got-Custom"] == "kept"
        assert resp.headers["X-Got-Type"] == "application/x-thing"
        assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    # Expect: 100-continue is answered by the proxy, which reads the body first.
    async with session.post(f"{base}/echo", data=b"later", headers=UP, expect100=True) as resp:
        assert (resp.status, await resp.read()) == (201, b"later")


async def test_hop_by_hop_headers_are_not_forwarded(rig):
    _state, base, session, _ = rig
    async with session.get(f"{base}/echo", headers={**UP, "Connection": "x-secret",
                                                    "X-Custom": "kept"}) as resp:
        # aiohttp's upstream client sets its own Connection, never the client's.
        assert resp.headers["X-Got-Connection"] != "x-secret"
        assert resp.headers["X-Got-Custom"] == "kept"


async def test_encoded_streamed_head_and_redirect_responses(rig):
    _state, base, session, _ = rig
    async with session.get(f"{base}/gzip", headers=UP) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await resp.read()) == b"squeezed"  # untouched bytes
    async with session.get(f"{base}/stream", headers=UP) as resp:
        assert resp.status == 200 and await resp.text() == "part0;part1;part2;"
    async with session.head(f"{base}/sized", headers=UP) as resp:
        assert resp.status == 200 and resp.headers["Content-Length"] == "10"
        assert await resp.read() == b""
    async with session.get(f"{base}/moved", headers=UP, allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (302, "/elsewhere")


async def test_answers_of_its_own(rig):
    state, base, session, up_port = rig
    async with session.get(f"{base}/x", headers={"Host": "other.example.com"}) as resp:
        assert (resp.status, await resp.text()) == (404, "default backend - 404")
    async with session.post(f"{base}/echo", data=b"x" * (1024 * 1024 + 1), headers=UP) as resp:
        assert resp.status == 413
    async with session.get(f"{base}/slow", headers=UP) as resp:
        assert resp.status == 504 and "504 Gateway Time-out" in await resp.text()
    state.endpoints_of[BACKEND] = [("127.0.0.1", free_port()), ("127.0.0.1", free_port())]
    async with session.get(f"{base}/echo", headers=UP) as resp:
        assert resp.status == 502 and "502 Bad Gateway" in await resp.text()
    state.endpoints_of[BACKEND] = [("127.0.0.1", free_port()), ("127.0.0.1", up_port)]
    for _ in range(3):  # the dead one first or second: always through
        async with session.get(f"{base}/echo", headers=UP) as resp:
            assert resp.status == 201
    state.endpoints_of[BACKEND] = []
    async with session.get(f"{base}/echo", headers=UP) as resp:
        assert resp.status == 503 and "503 Service Temporarily Unavailable" in await resp.text()
