"""The DNS server's I/O: informers, UDP and TCP listeners, forwarding, HTTP probes.

- Informers on Services and EndpointSlices (indexed by namespace, ClusterIP,
  owning Service and endpoint address) make the ClusterView that
  `records.resolve` reads; every change bumps the zone's SOA serial.
- UDP: one datagram per question; an answer larger than the client's size
  (512 bytes, or its EDNS payload) goes out truncated (TC set, no records) so
  the client retries over TCP. TCP: two-byte length-prefixed messages, several
  per connection, closed after IDLE_S without a query.
- Names outside the zone (and PTRs the cluster does not know) go to the
  upstreams (the Corefile's `forward .`, by default the nameservers of the
  host's /etc/resolv.conf) with a bounded timeout each; no upstream, or none
  answering: SERVFAIL. At most FORWARD_INFLIGHT_MAX forwards at once (the
  Corefile's max_concurrent); more get REFUSED, as CoreDNS does.
- HTTP: `/health` on the health address (always 200 while the process runs:
  CoreDNS's liveness), `/ready` on the ready address (200 once both informers
  have synced, else 503), `/metrics` on the metrics address (counters in
  Prometheus' text format).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import struct

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import structlog
from google.protobuf.message import Message

from addons.dns import records
from kubemu.client.clientset import Client
from kubemu.client.informer import Informer, index_by_namespace

log = structlog.get_logger()

UDP_PAYLOAD_BYTES_MIN = 512
UDP_PAYLOAD_BYTES_MAX = 4096
TCP_MESSAGE_BYTES_MAX = 65535
TCP_CONNECTIONS_MAX = 256
# UDP queries being answered at once; more are dropped (the client retries).
UDP_INFLIGHT_MAX = 2048
IDLE_S = 10.0
FORWARD_INFLIGHT_MAX = 1000
FORWARD_TIMEOUT_S = 2.0
HTTP_REQUEST_BYTES_MAX = 8192
HTTP_READ_TIMEOUT_S = 5.0

CLUSTER_IP_INDEX = "clusterIP"
SERVICE_INDEX = "service"
ADDRESS_INDEX = "address"


def _cluster_ips(svc: Message) -> list[str]:
    ips = list(svc.spec.cluster_ips) or [svc.spec.cluster_ip]
    return [ip for ip in ips if ip and ip != "None"]


def _slice_service(sl: Message) -> list[str]:
    name = sl.metadata.labels.get(records.SERVICE_NAME_LABEL, "")
    return [f"{sl.metadata.namespace}/{name}"] if name else []


def _slice_addresses(sl: Message) -> list[str]:
    return sorted({a for ep in sl.endpoints for a in ep.addresses})


class InformerView:
    """The ClusterView over the server's two informers."""

    def __init__(self, services: Informer, slices: Informer):
        self.services = services
        self.slices = slices
        services.add_indexers({"namespace": index_by_namespace, CLUSTER_IP_INDEX: _cluster_ips})
        slices.add_indexers({SERVICE_INDEX: _slice_service, ADDRESS_INDEX: _slice_addresses})

    def service(self, namespace: str, name: str) -> Message | None:
        return self.services.store.get_by_name(name, namespace)

    def endpoint_slices(self, namespace: str, service: str) -> list[Message]:
        return self.slices.by_index(SERVICE_INDEX, f"{namespace}/{service}")

    def namespace_has_services(self, namespace: str) -> bool:
        return bool(self.services.store.index_keys("namespace", namespace))

    def services_by_ip(self, ip: str) -> list[Message]:
        return self.services.by_index(CLUSTER_IP_INDEX, ip)

    def slices_by_address(self, ip: str) -> list[Message]:
        return self.slices.by_index(ADDRESS_INDEX, ip)


@dataclasses.dataclass
class Options:
    apiserver: str
    listen_host: str = "127.0.0.1"
    port: int = 53
    cluster_domain: str = "cluster.local"
    ttl_s: int = records.DEFAULT_TTL_S
    upstreams: list[str] = dataclasses.field(default_factory=list)
    forward_timeout_s: float = FORWARD_TIMEOUT_S
    health: str = ""     # host:port, "" = not served
    ready: str = ""
    metrics: str = ""
    api_timeout_s: float = 10.0


def split_host_port(address: str, default_host: str) -> tuple[str, int]:
    """`:8080` -> (default_host, 8080); `127.0.0.1:8080`; `[::1]:8080`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{address!r}: expected host:port")
    host = host.strip("[]") or default_host
    return host, int(port)


class DnsServer:
    def __init__(self, options: Options):
        self.options = options
        self.client = Client(options.apiserver, timeout_s=options.api_timeout_s,
                             user_agent="kubemu-dns")
        self.services = Informer(self.client, "services")
        self.slices = Informer(self.client, "endpointslices")
        self.view = InformerView(self.services, self.slices)
        self.serial = 1
        for informer in (self.services, self.slices):
            informer.add_handler(on_add=self._changed, on_update=self._changed2,
                                 on_delete=self._changed)
        self.counters: collections.Counter[str] = collections.Counter()
        self._forwarding = 0
        self._tcp_connections = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.bound: dict[str, tuple[str, int]] = {}

    def _changed(self, _obj: object) -> None:
        self.serial += 1

    def _changed2(self, _old: object, _new: object) -> None:
        self.serial += 1

    @property
    def ready(self) -> bool:
        return self.services.has_synced.is_set() and self.slices.has_synced.is_set()

    def zone(self) -> records.Zone:
        return records.Zone.of(self.options.cluster_domain, ttl_s=self.options.ttl_s,
                               serial=self.serial)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        o = self.options
        self.services.start()
        self.slices.start()
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(o.listen_host, o.port))
        self.bound["udp"] = self._udp.get_extra_info("sockname")[:2]
        tcp = await asyncio.start_server(self._serve_tcp, o.listen_host, o.port)
        self._servers.append(tcp)
        self.bound["tcp"] = tcp.sockets[0].getsockname()[:2]
        for name, address, handler in (("health", o.health, self._http_health),
                                       ("ready", o.ready, self._http_ready),
                                       ("metrics", o.metrics, self._http_metrics)):
            if not address:
                continue
            host, port = split_host_port(address, o.listen_host)
            server = await asyncio.start_server(
                lambda r, w, h=handler: self._serve_http(r, w, h), host, port)
            self._servers.append(server)
            self.bound[name] = server.sockets[0].getsockname()[:2]
        log.info("dns serving", zone=o.cluster_domain, bound=self.bound,
                 upstreams=o.upstreams)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for informer in (self.services, self.slices):
            with contextlib.suppress(Exception):
                await informer.stop()
        await self.client.close()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ queries

    async def handle(self, wire: bytes) -> dns.message.Message | None:
        """The response to one query's wire bytes; None to drop it (not a query
        we can even answer with FORMERR)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except dns.exception.DNSException:
            self.counters["formerr"] += 1
            return _formerr(wire)
        if query.flags & dns.flags.QR:
            return None  # a response: never answer one
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY
                               else dns.rcode.FORMERR)
            return response
        q = query.question[0]
        self.counters["queries"] += 1
        zone = self.zone()
        if not self.ready:
            if not records.in_zone(zone, q.name):
                return await self._forward(query)
            # Our zone before the caches have synced: the client should try again.
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            self.counters["servfail"] += 1
            return response
        found = records.resolve(self.view, zone, q.name, q.rdtype)
        if found is None:
            return await self._forward(query)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        response.set_rcode(found.rcode)
        response.answer.extend(found.answer)
        response.authority.extend(found.authority)
        response.additional.extend(found.additional)
        self.counters[f"rcode_{dns.rcode.to_text(found.rcode).lower()}"] += 1
        return response

    async def _forward(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if self._forwarding >= FORWARD_INFLIGHT_MAX:
            self.counters["forward_refused"] += 1
            response.set_rcode(dns.rcode.REFUSED)
            return response
        self._forwarding += 1
        try:
            for upstream in self.options.upstreams:
                host, port = upstream_address(upstream)
                timeout_s = self.options.forward_timeout_s
                try:
                    answer = await dns.asyncquery.udp(query, host, port=port, timeout=timeout_s)
                    if answer.flags & dns.flags.TC:
                        answer = await dns.asyncquery.tcp(query, host, port=port,
                                                          timeout=timeout_s)
                except (dns.exception.DNSException, OSError) as err:
                    log.debug("forward failed", upstream=upstream, error=str(err))
                    self.counters["forward_errors"] += 1
                    continue
                self.counters["forwarded"] += 1
                return answer
        finally:
            self._forwarding -= 1
        self.counters["servfail"] += 1
        response.set_rcode(dns.rcode.SERVFAIL)
        return response

    async def answer_udp(self, wire: bytes, addr: tuple) -> None:
        response = await self.handle(wire)
        if response is None or self._udp is None or self._udp.is_closing():
            return
        self._udp.sendto(_udp_wire(response), addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        if self._tcp_connections >= TCP_CONNECTIONS_MAX:
            writer.close()
            return
        self._tcp_connections += 1
        try:
            while True:
                async with asyncio.timeout(IDLE_S):
                    header = await reader.readexactly(2)
                    (size,) = struct.unpack("!H", header)
                    wire = await reader.readexactly(size)
                response = await self.handle(wire)
                if response is None:
                    break
                data = response.to_wire(max_size=TCP_MESSAGE_BYTES_MAX)
                writer.write(struct.pack("!H", len(data)) + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError,
                dns.exception.DNSException):
            pass
        finally:
            self._tcp_connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    # ------------------------------------------------------------ HTTP

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          handler) -> None:
        try:
            async with asyncio.timeout(HTTP_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > HTTP_REQUEST_BYTES_MAX:
                raise ValueError("request too large")
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode("ascii", "replace") if len(parts) >= 2 else "/"
            status, body = handler(path.split("?", 1)[0])
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; "
                         f"charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _http_health(self, path: str) -> tuple[int, bytes]:
        return (200, b"OK") if path == "/health" else (404, b"404 page not found\n")

    def _http_ready(self, path: str) -> tuple[int, bytes]:
        if path != "/ready":
            return 404, b"404 page not found\n"
        # CoreDNS's ready plugin names the plugins not ready yet.
        return (200, b"OK") if self.ready else (503, b"kubernetes")

    def _http_metrics(self, path: str) -> tuple[int, bytes]:
        if path != "/metrics":
            return 404, b"404 page not found\n"
        lines = [f'kubemu_dns_events_total{{event="{k}"}} {v}'
                 for k, v in sorted(self.counters.items())]
        lines.append(f"kubemu_dns_services {len(self.services.store)}")
        lines.append(f"kubemu_dns_endpointslices {len(self.slices.store)}")
        return 200, ("\n".join(lines) + "\n").encode()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer):
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if len(self.server._tasks) >= UDP_INFLIGHT_MAX:
            self.server.counters["udp_dropped"] += 1
            return
        self.server._spawn(self.server.answer_udp(data, addr))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error", error=str(exc))


def _formerr(wire: bytes) -> dns.message.Message | None:
    """FORMERR echoing the id of a query whose body could not be parsed."""
    if len(wire) < 12:
        return None
    response = dns.message.Message(id=struct.unpack("!H", wire[:2])[0])
    response.flags = dns.flags.QR
    response.set_rcode(dns.rcode.FORMERR)
    return response


def _udp_wire(response: dns.message.Message) -> bytes:
    """The response within the client's UDP size, else truncated (TC, no records)."""
    size = UDP_PAYLOAD_BYTES_MIN
    if response.request_payload:  # the query's EDNS payload (make_response copies it)
        size = max(UDP_PAYLOAD_BYTES_MIN, min(response.request_payload, UDP_PAYLOAD_BYTES_MAX))
    try:
        return response.to_wire(max_size=size)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=size)


def default_upstreams(nameservers: list[str], own: set[str]) -> list[str]:
    """Upstreams from a resolv.conf's nameservers, without our own address
    (forwarding to ourselves would loop: CoreDNS's `loop` plugin)."""
    found = []
    for ns in nameservers:
        try:
            host, _ = upstream_address(ns)
        except ValueError:
            continue
        if host not in own and ns not in found:
            found.append(ns)
    return found


def upstream_address(text: str) -> tuple[str, int]:
    """`10.0.0.2` -> (10.0.0.2, 53); `10.0.0.2:5353`; `[fd00::2]:53`. ValueError otherwise."""
    try:
        return str(ipaddress.ip_address(text)), 53
    except ValueError:
        pass
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected an IP address, optionally with :port")
    return str(ipaddress.ip_address(host.strip("[]"))), int(port)

