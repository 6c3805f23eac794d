"""discovery.k8s.io/v1 validation: EndpointSlices (Kubernetes'
pkg/apis/discovery/validation). The one difference: Kubernetes refuses
loopback addresses (ValidateNonSpecialIP); every kubemu address is in
127.0.0.0/8, so only the unspecified, link-local and multicast ones are refused."""
from __future__ import annotations

import ipaddress

from google.protobuf.message import Message

from kubemu.api import errors, labels
from kubemu.api.validation.core import PROTOCOLS, _dns_label, _map
from kubemu.api.validation.meta import (
    IMMUTABLE,
    Problems,
    _items,
    _opt,
    _qualified_name,
    _str,
    _sub,
)

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 100
MAX_TOPOLOGY_LABELS = 16
_LINK_LOCAL_MULTICAST = (ipaddress.ip_network("224.0.0.0/24"),
                         ipaddress.ip_network("ff02::/10", strict=False))


def too_many(path: str, count: int, limit: int) -> errors.FieldError:
    """field.TooMany: `endpoints: Too many: 1001: must have at most 1000 items`."""
    return errors.FieldError(path, "Too many", f"must have at most {limit} items", count, True)


def _special_ip(address: str, path: str) -> Problems:
    """ValidateNonSpecialIP, loopback allowed (see the module docstring)."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        return [errors.invalid(path, address, f"may not be unspecified ({address})")]
    if ip.is_link_local:
        return [errors.invalid(path, address,
                               "may not be in the link-local range (169.254.0.0/16, fe80::/10)")]
    if any(ip in net for net in _LINK_LOCAL_MULTICAST):
        return [errors.invalid(path, address, "may not be in the link-local multicast range "
                                              "(224.0.0.0/24, ff02::/10)")]
    return []


def _address(address: str, address_type: str, path: str) -> Problems:
    if address_type in ("IPv4", "IPv6"):
        version = 4 if address_type == "IPv4" else 6
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if ip is None or ip.version != version:
            return [errors.invalid(path, address, f"must be a valid {address_type} address")]
        return _special_ip(address, path)
    if address_type == "FQDN":
        return fqdn_problems(address, path)
    return []


def fqdn_problems(name: str, path: str) -> Problems:
    """IsFullyQualifiedDomainName."""
    name = name.removesuffix(".")
    if not name:
        return [errors.required(path)]
    problems = [errors.invalid(path, name, m) for m in labels.is_dns1123_subdomain(name)]
    if not problems and "." not in name:
        problems.append(errors.invalid(path, name,
                                       "should be a domain with at least two segments "
                                       "separated by dots"))
    return problems


def validate_endpoint_slice(obj: Message, old: Message | None) -> Problems:
    problems: Problems = []
    address_type = _str(obj, "address_type")
    if not address_type:
        problems.append(errors.required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        problems.append(errors.unsupported("addressType", address_type, ADDRESS_TYPES))
    endpoints = _items(obj, "endpoints")
    if len(endpoints) > MAX_ENDPOINTS:
        problems.append(too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
        endpoints = ()
    for i, endpoint in enumerate(endpoints):
        path = f"endpoints[{i}]"
        addresses = _items(endpoint, "addresses")
        if not addresses:
            problems.append(errors.required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            problems.append(too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
        for j, address in enumerate(addresses):
            problems.extend(_address(address, address_type, f"{path}.addresses[{j}]"))
        node_name = _opt(endpoint, "node_name")
        if node_name:
            problems.extend(errors.invalid(f"{path}.nodeName", node_name, m)
                            for m in labels.is_dns1123_subdomain(node_name))
        topology = _map(endpoint, "deprecated_topology")
        if len(topology) > MAX_TOPOLOGY_LABELS:
            problems.append(too_many(f"{path}.deprecatedTopology", len(topology),
                                     MAX_TOPOLOGY_LABELS))
        problems.extend(labels.validate_labels(topology, f"{path}.deprecatedTopology"))
        hostname = _opt(endpoint, "hostname")
        if hostname is not None:
            problems.extend(_dns_label(hostname, f"{path}.hostname"))
        zone_hints = _items(_sub(endpoint, "hints"), "for_zones")
        for j, hint in enumerate(zone_hints):
            zone = _str(hint, "name")
            problems.extend(errors.invalid(f"{path}.hints.forZones[{j}].name", zone, m)
                            for m in labels.is_valid_label_value(zone))
    ports = _items(obj, "ports")
    if len(ports) > MAX_PORTS:
        problems.append(too_many("ports", len(ports), MAX_PORTS))
        ports = ()
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"ports[{i}]"
        name = _opt(port, "name") or ""
        if name:
            problems.extend(_dns_label(name, f"{path}.name"))
        if name in names:
            problems.append(errors.duplicate(f"{path}.name", name))
        names.add(name)
        protocol = _opt(port, "protocol")
        if protocol is None:
            problems.append(errors.required(f"{path}.protocol"))
        elif protocol not in PROTOCOLS:
            problems.append(errors.unsupported(f"{path}.protocol", protocol, PROTOCOLS))
        app_protocol = _opt(port, "app_protocol")
        if app_protocol is not None:
            problems.extend(_qualified_name(app_protocol, f"{path}.appProtocol"))
    if old is not None and address_type != _str(old, "address_type"):
        problems.append(errors.invalid("addressType", address_type, IMMUTABLE))
    return problems
