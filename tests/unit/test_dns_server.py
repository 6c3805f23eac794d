"""The DNS server's message handling (addons.dns.server.DnsServer.handle and the
UDP size rule), on a fixed view: no sockets, no apiserver."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest

from addons.dns import records, server
from tests.dns_builders import endpoint, endpoint_slice, service


@pytest.fixture
async def dns_server():
    s = server.DnsServer(server.Options(apiserver="127.0.0.1:1", upstreams=[]))
    s.view = records.ListView(
        services=[service("kuard", cluster_ip="127.3.0.20", ports=[("http", 80, "TCP")]),
                  service("big", cluster_ip="None", ports=[("http", 80, "TCP")])],
        slices=[endpoint_slice("big", endpoints=[endpoint(f"127.3.1.{i}")
                                                 for i in range(1, 101)])])
    try:
        yield s
    finally:
        await s.client.close()


def synced(s: server.DnsServer) -> None:
    s.services.has_synced.set()
    s.slices.has_synced.set()


async def test_zone_answers_are_authoritative(dns_server):
    synced(dns_server)
    query = dns.message.make_query("kuard.default.svc.cluster.local", "A")
    r = await dns_server.handle(query.to_wire())
    assert r.id == query.id and r.flags & dns.flags.QR and r.flags & dns.flags.AA
    assert r.flags & dns.flags.RD  # copied from the query, as make_response does
    assert [rd.to_text() for rr in r.answer for rd in rr] == ["127.3.0.20"]


async def test_before_the_caches_sync_the_zone_is_servfail(dns_server):
    r = await dns_server.handle(dns.message.make_query("kuard.default.svc.cluster.local",
                                                       "A").to_wire())
    assert r.rcode() == dns.rcode.SERVFAIL
    synced(dns_server)
    r = await dns_server.handle(dns.message.make_query("kuard.default.svc.cluster.local",
                                                       "A").to_wire())
    assert r.rcode() == dns.rcode.NOERROR


async def test_outside_names_without_upstreams_are_servfail(dns_server):
    synced(dns_server)
    r = await dns_server.handle(dns.message.make_query("example.com", "A").to_wire())
    assert r.rcode() == dns.rcode.SERVFAIL and not r.flags & dns.flags.AA


async def test_malformed_and_unsupported_messages(dns_server):
    synced(dns_server)
    query = dns.message.make_query("kuard.default.svc.cluster.local", "A")
    assert await dns_server.handle(b"\x00\x01") is None  # not even a header
    garbage = query.to_wire()[:12] + b"\xff\xff\xff"
    r = await dns_server.handle(garbage)
    assert (r.id, r.rcode()) == (query.id, dns.rcode.FORMERR)
    update = dns.message.make_query("cluster.local", "SOA")
    update.set_opcode(dns.opcode.UPDATE)
    assert (await dns_server.handle(update.to_wire())).rcode() == dns.rcode.NOTIMP
    response = dns.message.make_response(query)
    assert await dns_server.handle(response.to_wire()) is None  # never answer a response


async def test_a_udp_answer_too_big_is_truncated(dns_server):
    synced(dns_server)
    query = dns.message.make_query("big.default.svc.cluster.local", "A")
    r = await dns_server.handle(query.to_wire())
    assert len(r.answer[0]) == 100
    small = dns.message.from_wire(server._udp_wire(r))
    assert small.flags & dns.flags.TC and small.answer == []
    # With EDNS the client's payload size is the limit: 100 A records fit in 4096.
    query = dns.message.make_query("big.default.svc.cluster.local", "A", use_edns=0,
                                   payload=4096)
    r = await dns_server.handle(query.to_wire())
    big = dns.message.from_wire(server._udp_wire(r))
    assert not big.flags & dns.flags.TC and len(big.answer[0]) == 100


@pytest.mark.parametrize("text,expected", [
    ("10.0.0.2", ("10.0.0.2", 53)), ("10.0.0.2:5353", ("10.0.0.2", 5353)),
    ("[fd00::2]:53", ("fd00::2", 53)), ("fd00::2", ("fd00::2", 53)),
], ids=["ip", "ip-port", "v6-port", "v6"])
def test_upstream_addresses(text, expected):
    assert server.upstream_address(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "10.0.0.2:0", "10.0.0.2:x", ""])
def test_bad_upstream_addresses(text):
    with pytest.raises(ValueError):
        server.upstream_address(text)
