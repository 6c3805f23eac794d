"""`python -m addons.dns` against a real etcd and apiserver, queried with dnspython
over UDP and TCP: Services and EndpointSlices made by hand (no controllers), the
apiserver found through KUBERNETES_SERVICE_HOST/PORT as in a pod, /ready once
synced, answers that follow changes, names outside the zone forwarded to an
upstream (a stub server in the test), SERVFAIL when no upstream answers."""
from __future__ import annotations

import asyncio
import os
import sys
import urllib.request

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from kubemu.client.wait import WaitTimeout, wait_for
from tests.dns_builders import endpoint, endpoint_slice, service
from tests.support import Proc, free_port

WAIT_S = 20.0
QUERY_TIMEOUT_S = 2.0


class _Upstream(asyncio.DatagramProtocol):
    """A stub upstream: example.com A 192.0.2.1, no reply at all for drop.example.,
    NXDOMAIN for anything else."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        q = query.question[0]
        if q.name.to_text() == "drop.example.":
            return
        if q.name.to_text() == "example.com." and q.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", "192.0.2.1"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def upstream():
    port = free_port()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _Upstream, local_addr=("127.0.0.1", port))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        transport.close()


@pytest.fixture
async def dns_server(tmp_path, apiserver, upstream):
    host, port = apiserver.address.rsplit(":", 1)
    ports = {name: free_port() for name in ("dns", "health", "ready", "metrics")}
    env = dict(os.environ, KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=port,
               POD_IP="127.0.0.1")
    argv = [sys.executable, "-m", "addons.dns", "--listen", f"127.0.0.1:{ports['dns']}",
            "--health", f":{ports['health']}", "--ready", f":{ports['ready']}",
            "--metrics", f":{ports['metrics']}", "--upstream", upstream,
            "--upstream", f"127.0.0.1:{free_port()}",  # nobody there: skipped
            "--forward-timeout-s", "0.5", "--log-level", "debug"]
    proc = await asyncio.to_thread(Proc(argv, tmp_path / "dns.log", env=env).start)
    proc.ports = ports
    try:
        await _eventually(lambda: asyncio.to_thread(_http_status, proc, "ready", "/ready"), 200)
        yield proc
    finally:
        await proc.astop()
        assert proc.popen.returncode == 0, proc.log_tail()


def _http_status(proc: Proc, which: str, path: str) -> int | str:
    if not proc.alive():
        raise AssertionError(f"dns exited: {proc.log_tail()}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.ports[which]}{path}",
                                    timeout=1.0) as r:
            return r.status
    except OSError as err:
        return getattr(err, "code", None) or str(err)


async def ask(proc: Proc, name: str, rdtype: str = "A", *, tcp: bool = False):
    query = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, "127.0.0.1", port=proc.ports["dns"], timeout=QUERY_TIMEOUT_S)


def rdatas(response) -> list[str]:
    return sorted(rd.to_text() for rr in response.answer for rd in rr)


async def create(client, *objs):
    for o in objs:
        await client.create(o)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_answers_from_the_apiserver(client, dns_server, tcp):
    await create(client,
                 service("kuard", cluster_ip="127.1.0.20", ports=[("http", 80, "TCP")]),
                 service("nginx", cluster_ip="None", ports=[("web", 80, "TCP")]),
                 service("db", type_="ExternalName", external_name="db.example.com"),
                 endpoint_slice("nginx", ports=[("web", 80, "TCP")], endpoints=[
                     endpoint("127.1.1.7", hostname="web-0"),
                     endpoint("127.1.2.8", hostname="web-1"),
                     endpoint("127.1.2.9", ready=False, hostname="web-2")]))

    async def kuard_ip():
        return rdatas(await ask(dns_server, "kuard.default.svc.cluster.local", tcp=tcp))

    assert await _eventually(kuard_ip, ["127.1.0.20"])
    assert await _eventually(
        lambda: _rdatas_of(dns_server, "nginx.default.svc.cluster.local", tcp=tcp),
        ["127.1.1.7", "127.1.2.8"])
    r = await ask(dns_server, "web-0.nginx.default.svc.cluster.local", tcp=tcp)
    assert (r.rcode(), rdatas(r)) == (dns.rcode.NOERROR, ["127.1.1.7"])
    r = await ask(dns_server, "_web._tcp.nginx.default.svc.cluster.local", "SRV", tcp=tcp)
    assert rdatas(r) == ["0 50 80 web-0.nginx.default.svc.cluster.local.",
                         "0 50 80 web-1.nginx.default.svc.cluster.local."]
    assert sorted(rd.to_text() for rr in r.additional for rd in rr) == ["127.1.1.7", "127.1.2.8"]
    r = await ask(dns_server, "_http._tcp.kuard.default.svc.cluster.local", "SRV", tcp=tcp)
    assert rdatas(r) == ["0 100 80 kuard.default.svc.cluster.local."]
    r = await ask(dns_server, "db.default.svc.cluster.local", tcp=tcp)
    assert rdatas(r) == ["db.example.com."]
    r = await ask(dns_server, "127-1-3-4.default.pod.cluster.local", tcp=tcp)
    assert rdatas(r) == ["127.1.3.4"]
    for name in ("nope.default.svc.cluster.local", "web-2.nginx.default.svc.cluster.local"):
        r = await ask(dns_server, name, tcp=tcp)
        assert r.rcode() == dns.rcode.NXDOMAIN, name
        assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA], name
    r = await ask(dns_server, "example.com", tcp=tcp)
    assert (r.rcode(), rdatas(r)) == (dns.rcode.NOERROR, ["192.0.2.1"])
    r = await ask(dns_server, "unknown.example.com", tcp=tcp)
    assert r.rcode() == dns.rcode.NXDOMAIN
    # No upstream answers (one times out, the other is not listening): SERVFAIL.
    r = await ask(dns_server, "drop.example", tcp=tcp)
    assert r.rcode() == dns.rcode.SERVFAIL


async def _rdatas_of(proc, name, *, tcp=False):
    return rdatas(await ask(proc, name, tcp=tcp))


async def _eventually(fn, expected) -> bool:
    """wait_for an async probe to give `expected`; a timeout says the last answer."""
    seen: list = []

    async def probe() -> bool:
        seen[:] = [await fn()]
        return seen[0] == expected

    try:
        return await wait_for(probe, WAIT_S)
    except WaitTimeout as err:
        raise AssertionError(f"{err}; last answer {seen!r}, expected {expected!r}") from None


async def test_answers_follow_changes(client, dns_server):
    await create(client, service("web", cluster_ip="None", ports=[("http", 80, "TCP")]))
    name = "web.default.svc.cluster.local"
    assert await _eventually(lambda: _rcode_and_rdatas(dns_server, name), (0, []))
    sl = endpoint_slice("web", ports=[("http", 80, "TCP")], endpoints=[endpoint("127.1.1.5")])
    await client.create(sl)
    assert await _eventually(lambda: _rcode_and_rdatas(dns_server, name), (0, ["127.1.1.5"]))
    await client.delete("endpointslices", sl.metadata.name, "default")
    await client.delete("services", "web", "default")
    assert await _eventually(lambda: _rcode_and_rdatas(dns_server, name),
                             (dns.rcode.NXDOMAIN, []))


async def _rcode_and_rdatas(proc, name):
    r = await ask(proc, name)
    return (r.rcode(), rdatas(r))


async def test_probes_and_metrics(dns_server):
    assert await asyncio.to_thread(_http_status, dns_server, "health", "/health") == 200
    assert await asyncio.to_thread(_http_status, dns_server, "health", "/nope") == 404
    await ask(dns_server, "x.default.svc.cluster.local")

    def metrics() -> str:
        url = f"http://127.0.0.1:{dns_server.ports['metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=1.0) as r:
            return r.read().decode()

    text = await asyncio.to_thread(metrics)
    assert 'kubemu_dns_events_total{event="queries"}' in text
    assert 'kubemu_dns_events_total{event="rcode_nxdomain"}' in text
