"""The cluster zone's answers (addons.dns.records), table-driven over one small cluster."""
from __future__ import annotations

import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from addons.dns import records
from tests.dns_builders import endpoint, endpoint_slice, service

ZONE = records.Zone.of("cluster.local", serial=7)

VIEW = records.ListView(
    services=[
        service("kuard", cluster_ip="127.3.0.20", ports=[("http", 80, "TCP")]),
        service("dns", "kube-system", cluster_ip="127.3.0.10",
                ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]),
        service("nginx", cluster_ip="None", ports=[("web", 80, "TCP")]),
        service("empty", cluster_ip="None", ports=[("web", 80, "TCP")]),
        service("db", type_="ExternalName", external_name="db.example.com"),
    ],
    slices=[
        endpoint_slice("kuard", endpoints=[endpoint("127.3.1.5"), endpoint("127.3.2.6")],
                       ports=[("http", 8080, "TCP")]),
        endpoint_slice("nginx", ports=[("web", 80, "TCP")], endpoints=[
            endpoint("127.3.1.7", hostname="web-0"),
            endpoint("127.3.2.8", hostname="web-1"),
            endpoint("127.3.1.9", ready=None),           # ready unset: counts as ready
            endpoint("127.3.2.10", ready=False, hostname="web-2"),
        ]),
        endpoint_slice("nginx", suffix="fghij", ports=[("web", 80, "TCP")],
                       endpoints=[endpoint("127.3.1.7", hostname="web-0")]),  # a duplicate
    ])


def ask(name: str, rdtype: str) -> records.Answer | None:
    return records.resolve(VIEW, ZONE, dns.name.from_text(name), dns.rdatatype.from_text(rdtype))


def texts(answer: records.Answer, section: str = "answer") -> list[str]:
    return sorted(f"{rr.name} {dns.rdatatype.to_text(rr.rdtype)} {rd.to_text()}"
                  for rr in getattr(answer, section) for rd in rr)


@pytest.mark.parametrize("name,rdtype,expected", [
    ("kuard.default.svc.cluster.local.", "A",
     ["kuard.default.svc.cluster.local. A 127.3.0.20"]),
    ("KUARD.Default.svc.cluster.local.", "A",
     ["KUARD.Default.svc.cluster.local. A 127.3.0.20"]),
    ("nginx.default.svc.cluster.local.", "A",
     ["nginx.default.svc.cluster.local. A 127.3.1.7", "nginx.default.svc.cluster.local. A 127.3.1.9",
      "nginx.default.svc.cluster.local. A 127.3.2.8"]),
    ("web-0.nginx.default.svc.cluster.local.", "A",
     ["web-0.nginx.default.svc.cluster.local. A 127.3.1.7"]),
    ("127-3-1-9.nginx.default.svc.cluster.local.", "A",
     ["127-3-1-9.nginx.default.svc.cluster.local. A 127.3.1.9"]),
    ("127-3-1-5.kuard.default.svc.cluster.local.", "A",
     ["127-3-1-5.kuard.default.svc.cluster.local. A 127.3.1.5"]),
    ("db.default.svc.cluster.local.", "A",
     ["db.default.svc.cluster.local. CNAME db.example.com."]),
    ("db.default.svc.cluster.local.", "AAAA",
     ["db.default.svc.cluster.local. CNAME db.example.com."]),
    ("127-3-9-4.default.pod.cluster.local.", "A",
     ["127-3-9-4.default.pod.cluster.local. A 127.3.9.4"]),
    ("_http._tcp.kuard.default.svc.cluster.local.", "SRV",
     ["_http._tcp.kuard.default.svc.cluster.local. SRV 0 100 80 kuard.default.svc.cluster.local."]),
    ("_dns._udp.dns.kube-system.svc.cluster.local.", "SRV",
     ["_dns._udp.dns.kube-system.svc.cluster.local. SRV 0 100 53 dns.kube-system.svc.cluster.local."]),
    ("_web._tcp.nginx.default.svc.cluster.local.", "SRV",
     ["_web._tcp.nginx.default.svc.cluster.local. SRV 0 33 80 127-3-1-9.nginx.default.svc.cluster.local.",
      "_web._tcp.nginx.default.svc.cluster.local. SRV 0 33 80 web-0.nginx.default.svc.cluster.local.",
      "_web._tcp.nginx.default.svc.cluster.local. SRV 0 33 80 web-1.nginx.default.svc.cluster.local."]),
    ("dns.kube-system.svc.cluster.local.", "SRV",
     ["dns.kube-system.svc.cluster.local. SRV 0 33 53 dns.kube-system.svc.cluster.local.",
      "dns.kube-system.svc.cluster.local. SRV 0 33 9153 dns.kube-system.svc.cluster.local."]),
    ("cluster.local.", "SOA",
     ["cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 30"]),
    ("cluster.local.", "NS", ["cluster.local. NS ns.dns.cluster.local."]),
], ids=["clusterip", "case-insensitive", "headless-ready-only", "statefulset-hostname",
        "endpoint-dashed-ip", "clusterip-endpoint-name", "externalname-cname",
        "externalname-cname-any-type", "pod-record", "srv-named-port", "srv-udp",
        "srv-headless-per-endpoint", "srv-all-ports", "apex-soa", "apex-ns"])
def test_answers(name, rdtype, expected):
    found = ask(name, rdtype)
    assert found is not None
    assert found.rcode == dns.rcode.NOERROR
    assert texts(found) == expected
    assert found.authority == []


def test_srv_names_its_targets_addresses():
    found = ask("_web._tcp.nginx.default.svc.cluster.local.", "SRV")
    assert texts(found, "additional") == [
        "127-3-1-9.nginx.default.svc.cluster.local. A 127.3.1.9",
        "web-0.nginx.default.svc.cluster.local. A 127.3.1.7",
        "web-1.nginx.default.svc.cluster.local. A 127.3.2.8"]


@pytest.mark.parametrize("name,rdtype,rcode", [
    ("nope.default.svc.cluster.local.", "A", dns.rcode.NXDOMAIN),
    ("kuard.other.svc.cluster.local.", "A", dns.rcode.NXDOMAIN),
    ("other.svc.cluster.local.", "A", dns.rcode.NXDOMAIN),
    ("web-2.nginx.default.svc.cluster.local.", "A", dns.rcode.NXDOMAIN),
    ("_nope._tcp.kuard.default.svc.cluster.local.", "SRV", dns.rcode.NXDOMAIN),
    ("_http._udp.kuard.default.svc.cluster.local.", "SRV", dns.rcode.NXDOMAIN),
    ("a.b.c.d.e.svc.cluster.local.", "A", dns.rcode.NXDOMAIN),
    ("not-an-ip.default.pod.cluster.local.", "A", dns.rcode.NXDOMAIN),
    ("foo.cluster.local.", "A", dns.rcode.NXDOMAIN),
    ("kuard.default.svc.cluster.local.", "AAAA", dns.rcode.NOERROR),
    ("kuard.default.svc.cluster.local.", "TXT", dns.rcode.NOERROR),
    ("empty.default.svc.cluster.local.", "A", dns.rcode.NOERROR),
    ("default.svc.cluster.local.", "A", dns.rcode.NOERROR),
    ("svc.cluster.local.", "A", dns.rcode.NOERROR),
    ("_http._tcp.kuard.default.svc.cluster.local.", "A", dns.rcode.NOERROR),
], ids=["unknown-service", "unknown-namespace", "namespace-without-services",
        "not-ready-endpoint", "srv-unknown-port", "srv-wrong-protocol", "too-deep",
        "pod-bad-ip", "unknown-under-zone", "nodata-aaaa", "nodata-txt",
        "headless-no-endpoints", "namespace-exists", "svc-ent", "srv-name-asked-for-a"])
def test_negative_answers_carry_the_soa(name, rdtype, rcode):
    found = ask(name, rdtype)
    assert found is not None
    assert (found.rcode, found.answer) == (rcode, [])
    assert texts(found, "authority") == [
        "cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 30"]


@pytest.mark.parametrize("name,rdtype", [
    ("example.com.", "A"), ("local.", "SOA"), ("cluster.local.example.", "A"),
    (dns.reversename.from_address("8.8.8.8").to_text(), "PTR"),
], ids=["outside", "parent", "suffix-lookalike", "unknown-ptr"])
def test_other_names_are_not_ours(name, rdtype):
    assert ask(name, rdtype) is None


@pytest.mark.parametrize("ip,expected", [
    ("127.3.0.20", ["kuard.default.svc.cluster.local."]),
    ("127.3.1.7", ["web-0.nginx.default.svc.cluster.local."]),
    ("127.3.1.5", ["127-3-1-5.kuard.default.svc.cluster.local."]),
], ids=["cluster-ip", "endpoint-hostname", "endpoint-dashed"])
def test_ptr(ip, expected):
    found = ask(dns.reversename.from_address(ip).to_text(), "PTR")
    assert [rd.to_text() for rr in found.answer for rd in rr] == expected


def test_other_zone_name():
    zone = records.Zone.of("example.internal.", ttl_s=5)
    found = records.resolve(VIEW, zone, dns.name.from_text("kuard.default.svc.example.internal."),
                            dns.rdatatype.A)
    assert texts(found) == ["kuard.default.svc.example.internal. A 127.3.0.20"]
    assert found.answer[0].ttl == 5
    assert ask("kuard.default.svc.example.internal.", "A") is None
