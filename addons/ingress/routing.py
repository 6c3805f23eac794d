"""The routing decisions of the ingress controller, pure: no I/O, no clock.

Model (ingress-nginx's, as its controller builds nginx servers and locations):
- Class: an Ingress is ours when `spec.ingressClassName` names an IngressClass
  whose `spec.controller` is our controller value; else when its
  `kubernetes.io/ingress.class` annotation equals our class name; else (no
  class at all) when we watch Ingresses without a class, or when one of our
  IngressClasses carries `ingressclass.kubernetes.io/is-default-class: "true"`
  (Kubernetes' DefaultIngressClass admission would have set that class on it).
- Servers: one per host. Ingresses are taken oldest first (creationTimestamp,
  then namespace/name); the first Ingress naming a host makes its server, whose
  root (what answers when no path matches) is that Ingress's `defaultBackend`,
  else the controller's default backend. Rules without a host go to the
  default server `_`, whose root is the `defaultBackend` of the oldest Ingress
  with a defaultBackend and no rules, else the controller's default backend.
  A path already present on a server (same path and pathType) stays with the
  Ingress that came first.
- Host: exact names first, then a wildcard `*.foo.com` (one label: `a.foo.com`,
  neither `foo.com` nor `a.b.foo.com`), then the default server. Case is
  ignored, and so are a port and a trailing dot.
- Path (Kubernetes' rules): Exact matches the path as it is; Prefix matches
  element-wise by `/`-separated elements, a trailing slash ignored (`/foo`
  matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`); ImplementationSpecific
  is taken as Prefix. The longest match wins; at equal length Exact beats Prefix.
- Endpoints: a backend names a Service and one of its ports (number or name);
  its EndpointSlices (label `kubernetes.io/service-name`) give the addresses
  whose `conditions.ready` is true or unset and the slice port of the same
  name as the Service port. An ExternalName Service answers at its name.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from kubemu.api.v1 import core_pb2, discovery_pb2, networking_pb2

DEFAULT_SERVER = "_"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
EXACT, PREFIX, IMPLEMENTATION_SPECIFIC = "Exact", "Prefix", "ImplementationSpecific"


@dataclasses.dataclass(frozen=True)
class ClassConfig:
    """Which Ingresses are ours (ingress-nginx's --ingress-class, --controller-class,
    --watch-ingress-without-class)."""

    ingress_class: str = "nginx"
    controller: str = "k8s.io/ingress-nginx"
    watch_without_class: bool = False


@dataclasses.dataclass(frozen=True)
class Backend:
    """A Service port in a namespace: by number, or by the Service port's name."""

    namespace: str
    service: str
    port_number: int = 0
    port_name: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port_number or self.port_name}"


@dataclasses.dataclass(frozen=True)
class Route:
    """Where a request goes. backend None: the controller's default backend."""

    backend: Backend | None
    ingress: str = ""        # namespace/name of the Ingress that routed it; "" for none
    host: str = DEFAULT_SERVER
    path: str = ""           # the matching rule's path; "" when the server's root answered
    path_type: str = ""


@dataclasses.dataclass(frozen=True)
class _PathRule:
    path: str
    path_type: str
    backend: Backend
    ingress: str


@dataclasses.dataclass
class _Server:
    host: str
    root: Backend | None
    root_ingress: str
    paths: list[_PathRule] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------- class

def our_classes(classes: Iterable[networking_pb2.IngressClass],
                config: ClassConfig) -> list[networking_pb2.IngressClass]:
    """The IngressClasses whose controller is ours."""
    return [c for c in classes if c.spec.controller == config.controller]


def is_ours(ingress: networking_pb2.Ingress,
            classes: Iterable[networking_pb2.IngressClass], config: ClassConfig) -> bool:
    ours = our_classes(classes, config)
    if ingress.spec.HasField("ingress_class_name"):
        return any(c.metadata.name == ingress.spec.ingress_class_name for c in ours)
    annotation = ingress.metadata.annotations.get(CLASS_ANNOTATION)
    if annotation is not None:
        return annotation == config.ingress_class
    if config.watch_without_class:
        return True
    return any(c.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION) == "true" for c in ours)


# ---------------------------------------------------------------- hosts and paths

def normalize_host(host: str) -> str:
    """A Host header as a server name: lower case, without port or trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        host = host[1:end] if end > 0 else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def wildcard_matches(pattern: str, host: str) -> bool:
    """`*.foo.com` matches one more label: `a.foo.com`, not `foo.com`, not `a.b.foo.com`."""
    if not pattern.startswith("*."):
        return False
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == pattern[2:]


def path_elements(path: str) -> tuple[str, ...]:
    return tuple(e for e in path.split("/") if e)


def path_matches(path_type: str, rule_path: str, request_path: str) -> bool:
    if path_type == EXACT:
        return rule_path == request_path
    rule = path_elements(rule_path)
    return path_elements(request_path)[:len(rule)] == rule


def _match_length(rule: _PathRule) -> int:
    return len(rule.path) if rule.path_type == EXACT else len(rule.path.rstrip("/"))


# ---------------------------------------------------------------- the table

def _backend(namespace: str, backend: networking_pb2.IngressBackend) -> Backend | None:
    if not backend.HasField("service") or not backend.service.name:
        return None  # a resource backend: not something a proxy can reach
    port = backend.service.port
    return Backend(namespace, backend.service.name, port.number, port.name)


def _age_key(ingress: networking_pb2.Ingress) -> tuple[str, str, str]:
    # RFC 3339 in UTC sorts as text.
    meta = ingress.metadata
    return (meta.creation_timestamp, meta.namespace, meta.name)


class RoutingTable:
    """Servers and their paths, built once from the Ingresses that are ours."""

    def __init__(self, ingresses: Iterable[networking_pb2.Ingress]):
        self._exact: dict[str, _Server] = {}
        self._wildcard: dict[str, _Server] = {}
        self._default = _Server(DEFAULT_SERVER, None, "")
        ordered = sorted(ingresses, key=_age_key)
        for ing in ordered:
            self._add_servers(ing)
        for ing in ordered:
            self._add_paths(ing)
        for server in self._servers():
            server.paths.sort(key=lambda r: (-_match_length(r), r.path_type != EXACT))

    def _servers(self) -> list[_Server]:
        return [*self._exact.values(), *self._wildcard.values(), self._default]

    def _server(self, host: str) -> _Server | None:
        if not host:
            return self._default
        return (self._wildcard if host.startswith("*.") else self._exact).get(host.lower())

    def _add_servers(self, ing: networking_pb2.Ingress) -> None:
        key = f"{ing.metadata.namespace}/{ing.metadata.name}"
        root = None
        if ing.spec.HasField("default_backend"):
            root = _backend(ing.metadata.namespace, ing.spec.default_backend)
        if root is not None and not ing.spec.rules and self._default.root is None:
            self._default.root, self._default.root_ingress = root, key  # the catch-all
        for rule in ing.spec.rules:
            host = rule.host.lower()
            if not host or self._server(host) is not None:
                continue
            servers = self._wildcard if host.startswith("*.") else self._exact
            servers[host] = _Server(host, root, key if root is not None else "")

    def _add_paths(self, ing: networking_pb2.Ingress) -> None:
        key = f"{ing.metadata.namespace}/{ing.metadata.name}"
        for rule in ing.spec.rules:
            server = self._server(rule.host)
            assert server is not None, "every rule's host got a server in _add_servers"
            for p in rule.http.paths:
                backend = _backend(ing.metadata.namespace, p.backend)
                if backend is None:
                    continue
                path_type = p.path_type if p.HasField("path_type") else IMPLEMENTATION_SPECIFIC
                if path_type not in (EXACT, PREFIX, IMPLEMENTATION_SPECIFIC):
                    continue
                path = p.path or "/"
                if any(r.path == path and r.path_type == path_type for r in server.paths):
                    continue  # the older Ingress keeps it
                server.paths.append(_PathRule(path, path_type, backend, key))

    def server_for(self, host: str) -> str:
        """The server name a Host header selects."""
        return self._select(normalize_host(host)).host

    def _select(self, host: str) -> _Server:
        server = self._exact.get(host)
        if server is not None:
            return server
        label, dot, rest = host.partition(".")
        if label and dot:
            server = self._wildcard.get(f"*.{rest}")
            if server is not None:
                return server
        return self._default

    def route(self, host: str, path: str) -> Route:
        server = self._select(normalize_host(host))
        for rule in server.paths:  # longest first, Exact before Prefix
            if path_matches(rule.path_type, rule.path, path):
                return Route(rule.backend, rule.ingress, server.host, rule.path, rule.path_type)
        return Route(server.root, server.root_ingress, server.host)

    def backends(self) -> set[Backend]:
        """Every backend some request can reach."""
        found = {r.backend for s in self._servers() for r in s.paths}
        found.update(s.root for s in self._servers() if s.root is not None)
        return found


# ---------------------------------------------------------------- endpoints

def service_port(service: core_pb2.Service, backend: Backend) -> core_pb2.ServicePort | None:
    for port in service.spec.ports:
        if backend.port_number and port.port == backend.port_number:
            return port
        if backend.port_name and port.name == backend.port_name:
            return port
    return None


def ready_endpoints(backend: Backend, service: core_pb2.Service | None,
                    slices: Sequence[discovery_pb2.EndpointSlice]) -> list[tuple[str, int]]:
    """(address, port) of the backend's ready endpoints, sorted, each once."""
    if service is None:
        return []
    port = service_port(service, backend)
    if service.spec.type == "ExternalName":
        number = port.port if port is not None else backend.port_number
        return [(service.spec.external_name, number)] if service.spec.external_name and number else []
    if port is None:
        return []
    found: set[tuple[str, int]] = set()
    for eps in slices:
        if eps.address_type not in ("", "IPv4", "IPv6"):
            continue
        numbers = [p.port for p in eps.ports
                   if p.name == port.name and p.HasField("port")
                   and (p.protocol or "TCP") == "TCP"]
        if not numbers:
            continue
        for endpoint in eps.endpoints:
            cond = endpoint.conditions
            if cond.HasField("ready") and not cond.ready:
                continue
            for address in endpoint.addresses:
                found.add((address, numbers[0]))
    return sorted(found)

