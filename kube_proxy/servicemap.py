"""What this node's kube-proxy must serve, from Services and EndpointSlices (pure).

Model (kube-proxy's ServicePort / Endpoint / CategorizeEndpoints):
- A Service port (`ns/name:portName`, TCP or UDP) is served on listeners:
  every clusterIP (the *internal* route), every LoadBalancer
  `status.loadBalancer.ingress[].ip` and `spec.externalIPs` entry, and — for
  NodePort and LoadBalancer Services — this node's own IP at the nodePort
  (the *external* route). ExternalName and headless Services get none; SCTP
  is not served.
- Its endpoints come from the EndpointSlices labelled
  `kubernetes.io/service-name=<name>` in its namespace (IPv4 ones), the slice
  port matched by name and protocol; the same address:port in two slices
  counts once.
- Conditions default as Kubernetes: `ready` unset = ready, `serving` unset =
  ready, `terminating` unset = false.
- A route gets the ready endpoints; when none is ready, the serving and
  terminating ones (Kubernetes' fallback, so a rolling update never drops
  traffic). `internalTrafficPolicy: Local` (internal route) and
  `externalTrafficPolicy: Local` (external route) keep only endpoints whose
  nodeName is this node, before that choice.
- Shared addresses (ClusterIPs, LoadBalancer and external IPs) are bound by
  every node's proxy with SO_REUSEPORT, so the kernel picks which proxy gets
  a connection. With a Local policy such an address is held only by the
  proxies of nodes that have usable local endpoints: connections then reach
  only those nodes, as a cloud load balancer's health check
  (healthCheckNodePort) steers LoadBalancer traffic; with none anywhere,
  nobody listens and connections are refused. A NodePort (this node's own
  address) is always held; with Local and no local endpoint it refuses.
- Two Service ports wanting the same listener (an invalid state the
  apiserver should not allow): the first in (namespace, name, port) order
  gets it; the other is reported in `conflicts`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TCP = "TCP"
UDP = "UDP"
PROTOCOLS = (TCP, UDP)
INTERNAL = "internal"
EXTERNAL = "external"
LOCAL = "Local"
CLIENT_IP = "ClientIP"
# Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds (3 h).
DEFAULT_AFFINITY_TIMEOUT_S = 10800


@dataclasses.dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclasses.dataclass(frozen=True)
class ServicePort:
    service: str                 # "namespace/name"
    port_name: str
    protocol: str
    port: int
    node_port: int = 0
    cluster_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()   # LoadBalancer ingress IPs and spec.externalIPs
    external_local: bool = False
    internal_local: bool = False
    affinity_timeout_s: int = 0          # 0: no session affinity

    @property
    def key(self) -> str:
        """kube-proxy's ServicePortName: ns/name:portName."""
        return f"{self.service}:{self.port_name}"


@dataclasses.dataclass(frozen=True)
class ListenerKey:
    protocol: str
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}/{self.protocol}"


@dataclasses.dataclass(frozen=True)
class RouteKey:
    service_port: str   # ServicePort.key
    scope: str          # INTERNAL or EXTERNAL


@dataclasses.dataclass(frozen=True)
class Route:
    service: str
    protocol: str
    endpoints: tuple[Endpoint, ...]
    affinity_timeout_s: int = 0


@dataclasses.dataclass
class Desired:
    listeners: dict[ListenerKey, RouteKey]
    routes: dict[RouteKey, Route]
    # Listener keys a second Service port also wanted: "what -> who has it".
    conflicts: list[str] = dataclasses.field(default_factory=list)

    def service_of(self, listener: ListenerKey) -> str:
        return self.routes[self.listeners[listener]].service


def _has(msg: Any, field: str) -> bool:
    try:
        return msg.HasField(field)
    except ValueError:
        return False


def service_ports(svc: Any) -> list[ServicePort]:
    """The servable ports of one Service (none for ExternalName or headless)."""
    spec = svc.spec
    if spec.type == "ExternalName":
        return []
    # IPv4 only: everything kubemu serves lives in 127.0.0.0/8.
    cluster_ips = [ip for ip in (list(spec.cluster_ips) or [spec.cluster_ip])
                   if ip and ip != "None" and ":" not in ip]
    if not cluster_ips:
        return []
    external = [ing.ip for ing in svc.status.load_balancer.ingress if ing.ip] \
        if spec.type == "LoadBalancer" else []
    external += [ip for ip in spec.external_ips if ip]
    external = [ip for ip in external if ":" not in ip]
    affinity_s = 0
    if spec.session_affinity == CLIENT_IP:
        affinity_s = DEFAULT_AFFINITY_TIMEOUT_S
        cfg = spec.session_affinity_config.client_ip
        if _has(cfg, "timeout_seconds") and cfg.timeout_seconds > 0:
            affinity_s = cfg.timeout_seconds
    node_ports = spec.type in ("NodePort", "LoadBalancer")
    out = []
    service = f"{svc.metadata.namespace}/{svc.metadata.name}"
    for p in spec.ports:
        protocol = p.protocol or TCP
        if protocol not in PROTOCOLS or not 0 < p.port < 65536:
            continue
        out.append(ServicePort(
            service=service, port_name=p.name, protocol=protocol, port=p.port,
            node_port=p.node_port if node_ports and 0 < p.node_port < 65536 else 0,
            cluster_ips=tuple(dict.fromkeys(cluster_ips)),
            external_ips=tuple(dict.fromkeys(external)),
            external_local=spec.external_traffic_policy == LOCAL,
            internal_local=_has(spec, "internal_traffic_policy")
            and spec.internal_traffic_policy == LOCAL,
            affinity_timeout_s=affinity_s))
    return out


def slice_endpoints(slices: Iterable[Any], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """The endpoints of one Service port across its slices (deduplicated, sorted)."""
    found: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if sl.address_type and sl.address_type != "IPv4":
            continue
        port = 0
        for sp in sl.ports:
            name = sp.name if _has(sp, "name") else ""
            proto = sp.protocol if _has(sp, "protocol") and sp.protocol else TCP
            if name == port_name and proto == protocol and _has(sp, "port"):
                port = sp.port
                break
        if not 0 < port < 65536:
            continue
        for ep in sl.endpoints:
            c = ep.conditions
            ready = c.ready if _has(c, "ready") else True
            serving = c.serving if _has(c, "serving") else ready
            terminating = c.terminating if _has(c, "terminating") else False
            node = ep.node_name if _has(ep, "node_name") else ""
            for ip in ep.addresses[:1]:  # Kubernetes uses the first address only
                found.setdefault((ip, port), Endpoint(ip, port, ready, serving, terminating, node))
    return tuple(found[k] for k in sorted(found))


def usable(endpoints: Iterable[Endpoint], *, local_only: bool, node_name: str
           ) -> tuple[Endpoint, ...]:
    """The endpoints that get new connections: ready ones, else serving-terminating
    ones; with local_only, only those on `node_name`."""
    pool = [e for e in endpoints if not local_only or e.node_name == node_name]
    ready = tuple(e for e in pool if e.ready)
    if ready:
        return ready
    return tuple(e for e in pool if e.serving and e.terminating)


def desired(services: Iterable[Any], slices_by_service: Mapping[str, list[Any]], *,
            node_name: str, node_ip: str) -> Desired:
    """Every listener and route this node serves. slices_by_service: "ns/name" ->
    its EndpointSlices."""
    out = Desired(listeners={}, routes={})
    ordered = sorted(services, key=lambda s: (s.metadata.namespace, s.metadata.name))
    for svc in ordered:
        for sp in service_ports(svc):
            eps = slice_endpoints(slices_by_service.get(sp.service, ()), sp.port_name,
                                  sp.protocol)
            internal = RouteKey(sp.key, INTERNAL)
            external = RouteKey(sp.key, EXTERNAL)
            inside = usable(eps, local_only=sp.internal_local, node_name=node_name)
            out.routes[internal] = Route(sp.service, sp.protocol, inside, sp.affinity_timeout_s)
            wanted = []
            # A shared address with a Local policy: held only where there are
            # local endpoints (see the module's docstring).
            if inside or not sp.internal_local:
                wanted += [(ListenerKey(sp.protocol, ip, sp.port), internal)
                           for ip in sp.cluster_ips]
            if sp.external_ips or sp.node_port:
                outside = usable(eps, local_only=sp.external_local, node_name=node_name)
                out.routes[external] = Route(sp.service, sp.protocol, outside,
                                             sp.affinity_timeout_s)
                if outside or not sp.external_local:
                    wanted += [(ListenerKey(sp.protocol, ip, sp.port), external)
                               for ip in sp.external_ips]
                if sp.node_port and node_ip:
                    wanted.append((ListenerKey(sp.protocol, node_ip, sp.node_port), external))
            for key, route in wanted:
                holder = out.listeners.get(key)
                if holder is not None and holder != route:
                    out.conflicts.append(f"{key} wanted by {sp.key}, served for "
                                         f"{holder.service_port}")
                    continue
                out.listeners[key] = route
    return out


def index_slice(sl: Any) -> list[str]:
    """Informer index: an EndpointSlice -> "ns/<service name>" (none without the label)."""
    name = sl.metadata.labels.get(SERVICE_NAME_LABEL, "")
    return [f"{sl.metadata.namespace}/{name}"] if name else []
