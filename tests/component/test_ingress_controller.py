"""`python -m addons.ingress` against a real etcd + apiserver, with hand-made
Services, EndpointSlices and Ingresses; the endpoints are small HTTP servers this
test runs on 127.x addresses of its own. Checks: two hosts to two Services, an
unknown host to the default backend, round robin, X-Forwarded-* headers, status
from the published Service, re-routing on an Ingress update without a restart,
retry past a dead endpoint, 503 without ready endpoints."""
from __future__ import annotations

import asyncio
import json
import random
import sys

import aiohttp
import pytest
from aiohttp import web

from kubemu.api.v1 import networking_pb2
from kubemu.client.wait import wait_for
from tests.builders import obj
from tests.ingress_builders import (endpoint_slice, ingress_class, make_ingress, prefix,
                                    service)
from tests.support import Proc, free_port

WAIT_S = 20.0
PUBLISH_NS, PUBLISH_NAME = "ingress-nginx", "ingress-nginx-controller"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5)


def random_block() -> str:
    """127.X.Y: a /24 of loopback this test alone is likely to use."""
    return f"127.{random.randint(150, 250)}.{random.randint(1, 250)}"


class Backends:
    """Tiny HTTP servers, one per address, all on one port (a slice port is one
    number for every endpoint): each answers with its name, the path and the
    headers it got."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []
        self.port = 0

    async def start(self, names_by_address: dict[str, str]) -> None:
        for attempt in range(20):  # a port free on one address may be taken on another
            self.port = free_port()
            try:
                for address, name in names_by_address.items():
                    await self._serve(address, name)
                return
            except OSError:
                await self.stop()
        raise RuntimeError("no port free on every backend address")

    async def _serve(self, address: str, name: str) -> None:
        async def answer(request: web.Request) -> web.Response:
            return web.json_response({"server": name, "path": request.path_qs,
                                      "headers": dict(request.headers)})
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self.runners.append(runner)
        await web.TCPSite(runner, address, self.port).start()

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()


class IngressControllerProc:
    def __init__(self, workdir, apiserver: str, address: str, *flags: str):
        self.http = f"{address}:{free_port()}"
        self.healthz = f"{address}:{free_port()}"
        self.argv = [sys.executable, "-m", "addons.ingress", "--apiserver-host", apiserver,
                     "--bind-address", address, "--http-port", self.http.rsplit(":", 1)[1],
                     "--healthz-port", self.healthz.rsplit(":", 1)[1],
                     "--publish-service", f"{PUBLISH_NS}/{PUBLISH_NAME}",
                     "--election-id=ingress-nginx-leader",  # accepted, ignored
                     "--log-level", "debug", *flags]
        self.proc = Proc(self.argv, workdir / "ingress.log")

    async def start(self, session: aiohttp.ClientSession) -> None:
        await asyncio.to_thread(self.proc.start)

        async def healthy():
            assert self.proc.alive(), self.proc.log_tail()
            async with session.get(f"http://{self.healthz}/healthz") as resp:
                return resp.status == 200 and await resp.text() == "ok"
        await wait_for(healthy, WAIT_S)

    async def stop(self) -> None:
        await asyncio.to_thread(self.proc.stop)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as s:
        yield s


@pytest.fixture
async def backends():
    b = Backends()
    try:
        yield b
    finally:
        await b.stop()


async def get(session: aiohttp.ClientSession, controller: IngressControllerProc, host: str,
              path: str = "/") -> tuple[int, str]:
    async with session.get(f"http://{controller.http}{path}", headers={"Host": host}) as resp:
        return resp.status, await resp.text()


async def served_by(session, controller, host: str, path: str = "/") -> str:
    status, body = await get(session, controller, host, path)
    assert status == 200, (status, body)
    return json.loads(body)["server"]


async def publish_service(client, ip: str):
    await client.create(obj({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": PUBLISH_NS}}))
    svc = await client.create(service(PUBLISH_NAME, PUBLISH_NS, ("http", 80, "http"),
                                      type="LoadBalancer"))
    svc.status.load_balancer.ingress.add(ip=ip)
    return await client.update_status(svc)


def status_ips(ing: networking_pb2.Ingress) -> list[str]:
    return [a.ip for a in ing.status.load_balancer.ingress]


async def test_routes_hosts_to_services_default_backend_status_and_update(
        tmp_path, apiserver, client, session, backends):
    block = random_block()
    await backends.start({f"{block}.11": "foo-1", f"{block}.12": "foo-2",
                          f"{block}.21": "bar-1"})
    port = backends.port
    lb_ip = f"{block}.200"
    await publish_service(client, lb_ip)
    await client.create(ingress_class("nginx", default=True))
    for name, addresses in (("foo", [".11", ".12"]), ("bar", [".21"])):
        await client.create(service(name, "default", ("http", 80, "http")))
        await client.create(endpoint_slice(
            f"{name}-abcde", "default", name, [("http", port)],
            [(block + a, True) for a in addresses]))
    await client.create(make_ingress("hosts")
                        .host("foo.example.com", prefix("/", "foo", 80))
                        .host("bar.example.com", prefix("/", "bar", "http")).build())
    # No class at all: ours because our IngressClass is the default one.
    controller = IngressControllerProc(tmp_path, apiserver.address, f"{block}.1")
    await controller.start(session)
    try:
        # Two hosts to two Services; foo's two endpoints take turns.
        seen = {await served_by(session, controller, "foo.example.com") for _ in range(4)}
        assert seen == {"foo-1", "foo-2"}
        assert await served_by(session, controller, "bar.example.com:80") == "bar-1"
        # An unknown host: the controller's default backend.
        assert await get(session, controller, "unknown.example.com") == \
            (404, "default backend - 404")

        # What the backend got: the path and query as sent, Host, X-Forwarded-*
        # (the request comes from an address of our own).
        client_ip = f"{block}.99"
        async with aiohttp.ClientSession(
                timeout=REQUEST_TIMEOUT,
                connector=aiohttp.TCPConnector(local_addr=(client_ip, 0))) as from_ip:
            status, body = await get(from_ip, controller, "foo.example.com", "/a/b?c=d%20e")
        got = json.loads(body)
        headers = {k.lower(): v for k, v in got["headers"].items()}
        assert (status, got["path"]) == (200, "/a/b?c=d%20e")
        assert headers["host"] == "foo.example.com"
        assert headers["x-forwarded-host"] == "foo.example.com"
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-for"] == headers["x-real-ip"] == client_ip
        assert headers["x-forwarded-port"] == controller.http.rsplit(":", 1)[1]

        # Status: the published Service's LoadBalancer address.
        async def status_written():
            return status_ips(await client.get("ingresses", "hosts", "default"))
        assert await wait_for(status_written, WAIT_S) == [lb_ip]

        # ingress-nginx's Event on the Ingress it took.
        async def sync_event():
            events = await client.list("events", "default",
                                       field_selector="involvedObject.name=hosts")
            return [(e.type, e.reason, e.message, e.source.component) for e in events.items]
        assert await wait_for(sync_event, WAIT_S) == [
            ("Normal", "Sync", "Scheduled for sync", "nginx-ingress-controller")]

        # An update re-routes without a restart: foo.example.com now goes to bar.
        ing = await client.get("ingresses", "hosts", "default")
        ing.spec.rules[0].http.paths[0].backend.service.name = "bar"
        await client.update(ing)

        async def rerouted():
            return await served_by(session, controller, "foo.example.com") == "bar-1"
        await wait_for(rerouted, WAIT_S)

        # The published Service's address changes: every Ingress's status follows.
        svc = await client.get("services", PUBLISH_NAME, PUBLISH_NS)
        svc.status.load_balancer.ingress[0].ip = f"{block}.201"
        await client.update_status(svc)

        async def status_followed():
            return status_ips(await client.get("ingresses", "hosts", "default")) == \
                [f"{block}.201"]
        await wait_for(status_followed, WAIT_S)
        assert controller.proc.alive()
    finally:
        await controller.stop()


async def test_class_selection_retry_past_dead_endpoints_and_no_ready_endpoints(
        tmp_path, apiserver, client, session, backends):
    block = random_block()
    await backends.start({f"{block}.11": "live"})
    port = backends.port
    await publish_service(client, f"{block}.200")
    await client.create(ingress_class("nginx"))   # ours, not the default class
    await client.create(service("web", "default", ("http", 80, "http")))
    # Two endpoints where nothing listens, one that answers: every request
    # gets through, retried past the dead ones.
    await client.create(endpoint_slice("web-abcde", "default", "web", [("http", port)],
                                       [(f"{block}.31", True), (f"{block}.32", True),
                                        (f"{block}.11", True)]))
    await client.create(make_ingress("ours").class_name("nginx")
                        .host("web.example.com", prefix("/", "web", 80)).build())
    await client.create(make_ingress("theirs").class_name("other")
                        .host("theirs.example.com", prefix("/", "web", 80)).build())
    await client.create(make_ingress("no-class")
                        .host("noclass.example.com", prefix("/", "web", 80)).build())
    # One namespace watched; the published Service is outside it and still seen.
    controller = IngressControllerProc(tmp_path, apiserver.address, f"{block}.1",
                                       "--watch-namespace=default")
    await controller.start(session)
    try:
        for _ in range(6):
            assert await served_by(session, controller, "web.example.com") == "live"
        # Not ours: the default backend, and no status written for them.
        assert (await get(session, controller, "theirs.example.com"))[0] == 404
        assert (await get(session, controller, "noclass.example.com"))[0] == 404

        async def ours_status():
            return status_ips(await client.get("ingresses", "ours", "default"))
        await wait_for(ours_status, WAIT_S)
        for name in ("theirs", "no-class"):
            assert status_ips(await client.get("ingresses", name, "default")) == []
            events = await client.list("events", "default",
                                       field_selector=f"involvedObject.name={name}")
            assert events.items == []

        # Only the live endpoint is ready... then none: 503.
        eps = await client.get("endpointslices", "web-abcde", "default")
        for endpoint in eps.endpoints:
            endpoint.conditions.ready = False
        await client.update(eps)

        async def unavailable():
            return (await get(session, controller, "web.example.com"))[0] == 503
        await wait_for(unavailable, WAIT_S)
    finally:
        await controller.stop()


def test_a_port_it_cannot_bind_exits_2_saying_which(tmp_path):
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "addons.ingress", "--apiserver-host", "127.0.0.1:1",
             "--bind-address", "127.0.0.1", f"--healthz-port={port}"],
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
