"""The cluster zone's answers, as CoreDNS's `kubernetes` plugin gives them (pure).

`resolve(view, zone, qname, rdtype)` answers one question from a ClusterView
(the Services and EndpointSlices the server's informers hold):

- `svc.ns.svc.<zone>`: A (AAAA) = the ClusterIPs; for a headless Service
  (clusterIP None) the addresses of its ready endpoints (an endpoint whose
  `ready` is unset counts as ready, as the API says); for an ExternalName
  Service a CNAME to spec.externalName whatever the type asked.
- `<endpoint>.svc.ns.svc.<zone>`: a ready endpoint's addresses, named by its
  hostname (StatefulSet pods: `web-0.nginx...`) or, without one, by its
  address with dashes (`127-3-1-5.svc...`).
- SRV `_port._proto.svc.ns.svc.<zone>` for a named port: the Service's name
  and port (ClusterIP), or one record per ready endpoint (headless), with the
  targets' addresses in the additional section; SRV on the Service name
  itself lists every port.
- `a-b-c-d.ns.pod.<zone>`: A a.b.c.d (CoreDNS's `pods insecure`, kubeadm's
  default: any well-formed address, no pod lookup).
- PTR in in-addr.arpa for ClusterIPs and endpoint addresses.
- A name that exists without the type asked: NOERROR with no answer (NODATA);
  a name that does not exist: NXDOMAIN; both with the zone's SOA in the
  authority section so resolvers cache the negative answer for its minimum.

A question outside the zone, or a PTR for an address the cluster does not
know, is not ours: `resolve` returns None and the server forwards it (the
Corefile's `fallthrough in-addr.arpa ip6.arpa` and `forward .`).
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Iterable, Protocol, Sequence

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
from google.protobuf.message import Message

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_TTL_S = 30  # kubeadm's Corefile: `ttl 30`
# SOA timers, as CoreDNS writes them (refresh, retry, expire); the minimum is the TTL.
SOA_REFRESH_S = 7200
SOA_RETRY_S = 1800
SOA_EXPIRE_S = 86400
SRV_WEIGHT_TOTAL = 100
REVERSE_V4 = dns.name.from_text("in-addr.arpa.")


class ClusterView(Protocol):
    """What the resolver reads: the informers' caches, or fixed lists in tests."""

    def service(self, namespace: str, name: str) -> Message | None: ...

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[Message]: ...

    def namespace_has_services(self, namespace: str) -> bool: ...

    def services_by_ip(self, ip: str) -> Sequence[Message]: ...

    def slices_by_address(self, ip: str) -> Sequence[Message]: ...


@dataclasses.dataclass
class Answer:
    rcode: int = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = dataclasses.field(default_factory=list)
    authority: list[dns.rrset.RRset] = dataclasses.field(default_factory=list)
    additional: list[dns.rrset.RRset] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Zone:
    """The cluster zone and its negative-answer timers."""

    origin: dns.name.Name
    ttl_s: int = DEFAULT_TTL_S
    serial: int = 1

    @classmethod
    def of(cls, domain: str, *, ttl_s: int = DEFAULT_TTL_S, serial: int = 1) -> Zone:
        return cls(dns.name.from_text(domain.strip(".") + "."), ttl_s, serial)

    def soa(self) -> dns.rrset.RRset:
        o = self.origin.to_text()
        text = (f"ns.dns.{o} hostmaster.{o} {self.serial} {SOA_REFRESH_S} {SOA_RETRY_S} "
                f"{SOA_EXPIRE_S} {self.ttl_s}")
        return dns.rrset.from_text(self.origin, self.ttl_s, "IN", "SOA", text)


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def undashed_v4(label: str) -> str | None:
    """`127-3-1-5` -> `127.3.1.5`, None when it is not an IPv4 address."""
    try:
        return str(ipaddress.IPv4Address(label.replace("-", ".")))
    except ValueError:
        return None


def is_ready(endpoint: Message) -> bool:
    c = endpoint.conditions
    return not c.HasField("ready") or c.ready


def is_headless(svc: Message) -> bool:
    return svc.spec.cluster_ip == "None"


def _cluster_ips(svc: Message) -> list[str]:
    ips = list(svc.spec.cluster_ips) or ([svc.spec.cluster_ip] if svc.spec.cluster_ip else [])
    return [ip for ip in ips if ip and ip != "None"]


def _ready_endpoints(view: ClusterView, svc: Message) -> list[tuple[Message, Message]]:
    """(slice, endpoint) for every ready endpoint of the Service, first seen address wins."""
    m = svc.metadata
    seen: set[str] = set()
    found: list[tuple[Message, Message]] = []
    for sl in sorted(view.endpoint_slices(m.namespace, m.name), key=lambda s: s.metadata.name):
        if sl.address_type == "FQDN":
            continue
        for ep in sl.endpoints:
            if not is_ready(ep) or not ep.addresses or ep.addresses[0] in seen:
                continue
            seen.add(ep.addresses[0])
            found.append((sl, ep))
    return found


def endpoint_label(ep: Message) -> str:
    return ep.hostname if ep.HasField("hostname") and ep.hostname else dashed(ep.addresses[0])


def _address_rrsets(name: dns.name.Name, ips: Iterable[str], rdtype: int,
                    ttl_s: int) -> list[dns.rrset.RRset]:
    want = 4 if rdtype == dns.rdatatype.A else 6
    texts = sorted({ip for ip in ips if ipaddress.ip_address(ip).version == want})
    if not texts:
        return []
    return [dns.rrset.from_text_list(name, ttl_s, "IN", dns.rdatatype.to_text(rdtype), texts)]


class _Resolver:
    def __init__(self, view: ClusterView, zone: Zone):
        self.view = view
        self.zone = zone

    def fqdn(self, *labels: str) -> dns.name.Name:
        return dns.name.Name(labels + self.zone.origin.labels)

    def negative(self, rcode: int) -> Answer:
        return Answer(rcode=rcode, authority=[self.zone.soa()])

    # Each records_* method returns the name's records of the type asked
    # (possibly none: NODATA), or None when the name does not exist (NXDOMAIN).

    def answer(self, qname: dns.name.Name, rdtype: int) -> Answer:
        labels = [label.decode("ascii", "replace").lower()
                  for label in qname.relativize(self.zone.origin).labels]
        if labels == ["@"]:
            labels = []
        found = self.lookup(labels, qname, rdtype)
        if found is None:
            return self.negative(dns.rcode.NXDOMAIN)
        if not found.answer:
            return self.negative(dns.rcode.NOERROR)
        return found

    def lookup(self, labels: list[str], qname: dns.name.Name, rdtype: int) -> Answer | None:
        n = len(labels)
        if n == 0:
            if rdtype == dns.rdatatype.SOA:
                return Answer(answer=[self.zone.soa()])
            if rdtype == dns.rdatatype.NS:
                ns = f"ns.dns.{self.zone.origin.to_text()}"
                return Answer(answer=[dns.rrset.from_text(qname, self.zone.ttl_s, "IN", "NS", ns)])
            return Answer()
        if labels[-1] == "pod":
            if n == 1:
                return Answer()
            if n == 3:
                return self.pod(labels[0], qname, rdtype)
            return None
        if labels[-1] != "svc":
            return None
        if n == 1:
            return Answer()
        namespace = labels[-2]
        if n == 2:
            return Answer() if self.view.namespace_has_services(namespace) else None
        svc = self.view.service(namespace, labels[-3])
        if svc is None:
            return None
        if n == 3:
            return self.service(svc, qname, rdtype)
        if n == 4:
            return self.endpoint(svc, labels[0], qname, rdtype)
        if n == 5 and labels[0].startswith("_") and labels[1].startswith("_"):
            return self.srv(svc, labels[0][1:], labels[1][1:], qname, rdtype)
        return None

    def pod(self, label: str, qname: dns.name.Name, rdtype: int) -> Answer | None:
        ip = undashed_v4(label)
        if ip is None:
            return None
        return Answer(answer=_address_rrsets(qname, [ip], rdtype, self.zone.ttl_s)
                      if rdtype == dns.rdatatype.A else [])

    def service(self, svc: Message, qname: dns.name.Name, rdtype: int) -> Answer:
        ttl_s = self.zone.ttl_s
        if svc.spec.type == "ExternalName":
            target = svc.spec.external_name.strip(".") + "."
            return Answer(answer=[dns.rrset.from_text(qname, ttl_s, "IN", "CNAME", target)])
        if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            if is_headless(svc):
                ips = [ep.addresses[0] for _, ep in _ready_endpoints(self.view, svc)]
            else:
                ips = _cluster_ips(svc)
            return Answer(answer=_address_rrsets(qname, ips, rdtype, ttl_s))
        if rdtype == dns.rdatatype.SRV:
            return self.srv(svc, None, None, qname, rdtype)
        return Answer()

    def endpoint(self, svc: Message, label: str, qname: dns.name.Name, rdtype: int
                 ) -> Answer | None:
        if svc.spec.type == "ExternalName":
            return None
        ips = [ip for _, ep in _ready_endpoints(self.view, svc) if endpoint_label(ep) == label
               for ip in ep.addresses]
        if not ips:
            return None
        if rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return Answer()
        return Answer(answer=_address_rrsets(qname, ips, rdtype, self.zone.ttl_s))

    def srv(self, svc: Message, port_name: str | None, proto: str | None,
            qname: dns.name.Name, rdtype: int) -> Answer | None:
        """SRV for one named port (`_http._tcp.svc...`) or, with port_name None,
        every port of the Service."""
        def wanted(name: str, protocol: str) -> bool:
            if port_name is None:
                return True
            return name.lower() == port_name and (protocol or "TCP").lower() == proto

        if svc.spec.type == "ExternalName":
            return None
        m = svc.metadata
        svc_name = self.fqdn(m.name, m.namespace, "svc")
        targets: list[tuple[dns.name.Name, int, list[str]]] = []
        if is_headless(svc):
            for sl, ep in _ready_endpoints(self.view, svc):
                for p in sl.ports:
                    if wanted(p.name, p.protocol):
                        targets.append((self.fqdn(endpoint_label(ep), m.name, m.namespace, "svc"),
                                        p.port, list(ep.addresses)))
        else:
            for p in svc.spec.ports:
                if wanted(p.name, p.protocol):
                    targets.append((svc_name, p.port, _cluster_ips(svc)))
        if not targets:
            return None if port_name is not None else Answer()
        if rdtype != dns.rdatatype.SRV:
            return Answer()
        weight = max(1, SRV_WEIGHT_TOTAL // len(targets))
        ttl_s = self.zone.ttl_s
        texts = sorted({f"0 {weight} {port} {target.to_text()}" for target, port, _ in targets})
        extra: dict[dns.name.Name, list[str]] = {}
        for target, _, ips in targets:
            extra.setdefault(target, []).extend(ips)
        additional = [rr for target, ips in sorted(extra.items())
                      for rr in _address_rrsets(target, ips, dns.rdatatype.A, ttl_s)]
        return Answer(answer=[dns.rrset.from_text_list(qname, ttl_s, "IN", "SRV", texts)],
                      additional=additional)

    def ptr(self, qname: dns.name.Name) -> Answer | None:
        try:
            ip = dns.reversename.to_address(qname)
        except (dns.exception.SyntaxError, ValueError):
            return None
        names: set[str] = set()
        for svc in self.view.services_by_ip(ip):
            m = svc.metadata
            names.add(self.fqdn(m.name, m.namespace, "svc").to_text())
        for sl in self.view.slices_by_address(ip):
            service = sl.metadata.labels.get(SERVICE_NAME_LABEL, "")
            for ep in sl.endpoints:
                if ip in ep.addresses and is_ready(ep) and service:
                    names.add(self.fqdn(endpoint_label(ep), service, sl.metadata.namespace,
                                        "svc").to_text())
        if not names:
            return None
        return Answer(answer=[dns.rrset.from_text_list(qname, self.zone.ttl_s, "IN", "PTR",
                                                       sorted(names))])


def in_zone(zone: Zone, qname: dns.name.Name) -> bool:
    return qname.is_subdomain(zone.origin)


def resolve(view: ClusterView, zone: Zone, qname: dns.name.Name, rdtype: int) -> Answer | None:
    """The answer to one question, or None when it is not the cluster's to answer."""
    r = _Resolver(view, zone)
    if in_zone(zone, qname):
        return r.answer(qname, rdtype)
    if rdtype == dns.rdatatype.PTR and qname.is_subdomain(REVERSE_V4):
        return r.ptr(qname)
    return None


class ListView:
    """A ClusterView over fixed lists (tests; linear scans)."""

    def __init__(self, services: Sequence[Message] = (), slices: Sequence[Message] = ()):
        self.services = list(services)
        self.slices = list(slices)

    def service(self, namespace: str, name: str) -> Message | None:
        for s in self.services:
            if s.metadata.namespace == namespace and s.metadata.name == name:
                return s
        return None

    def endpoint_slices(self, namespace: str, service: str) -> list[Message]:
        return [s for s in self.slices if s.metadata.namespace == namespace
                and s.metadata.labels.get(SERVICE_NAME_LABEL) == service]

    def namespace_has_services(self, namespace: str) -> bool:
        return any(s.metadata.namespace == namespace for s in self.services)

    def services_by_ip(self, ip: str) -> list[Message]:
        return [s for s in self.services if ip in _cluster_ips(s)]

    def slices_by_address(self, ip: str) -> list[Message]:
        return [s for s in self.slices if any(ip in ep.addresses for ep in s.endpoints)]

