"""networking.k8s.io/v1 validation: Ingresses and IngressClasses (Kubernetes'
pkg/apis/networking/validation)."""
from __future__ import annotations

import ipaddress
import re

from google.protobuf.message import Message

from kubemu.api import errors, labels
from kubemu.api.validation.core import (
    _dns_subdomain,
    is_valid_port_name,
    is_valid_port_num,
)
from kubemu.api.validation.meta import (
    IMMUTABLE,
    Problems,
    _Shown,
    _int,
    _items,
    _opt,
    _str,
    _sub,
)

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
INGRESS_CLASS_CONTROLLER_MAX = 250
PARAMETER_SCOPES = ("Cluster", "Namespace")

_DNS1123_SUBDOMAIN_FMT = ("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
WILDCARD_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD_RE = re.compile(WILDCARD_FMT)
WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
                "subdomain, which must consist of lower case alphanumeric characters, '-' or "
                "'.' and end with an alphanumeric character")
HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"
_HTTP_PATH_RE = re.compile(HTTP_PATH_FMT)
# Kubernetes' path segment names (IsValidPathSegmentName).
_BAD_SEGMENT_NAMES = (".", "..")
_BAD_SEGMENT_PARTS = ("/", "%")


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    problems = []
    if len(value) > 253:
        problems.append(labels.max_len_error(253))
    if not _WILDCARD_RE.fullmatch(value):
        problems.append(labels.regex_error(WILDCARD_MSG, WILDCARD_FMT, "*.example.com"))
    return problems


def _host(host: str, path: str) -> Problems:
    if "*" in host:
        return [errors.invalid(path, host, m) for m in is_wildcard_dns1123_subdomain(host)]
    return _dns_subdomain(host, path)


def path_segment_name_problems(name: str) -> list[str]:
    if name in _BAD_SEGMENT_NAMES:
        return [f"may not be '{name}'"]
    return [f"may not contain '{part}'" for part in _BAD_SEGMENT_PARTS if part in name]


def typed_reference(ref: Message, path: str) -> Problems:
    """validateIngressTypedLocalObjectReference."""
    problems: Problems = []
    api_group = _opt(ref, "api_group")
    if api_group is not None:
        problems.extend(_dns_subdomain(api_group, f"{path}.apiGroup"))
    for field, json_name in (("kind", "kind"), ("name", "name")):
        value = _str(ref, field)
        if not value:
            problems.append(errors.required(f"{path}.{json_name}", f"{json_name} is required"))
        else:
            problems.extend(errors.invalid(f"{path}.{json_name}", value, m)
                            for m in path_segment_name_problems(value))
    return problems


def ingress_backend(backend: Message, path: str) -> Problems:
    """validateIngressBackend: exactly one of service and resource."""
    resource = _sub(backend, "resource")
    service = _sub(backend, "service")
    if resource is not None and service is not None:
        return [errors.invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return typed_reference(resource, f"{path}.resource")
    if service is None:
        return [errors.invalid(path, "", "resource or service backend is required")]
    problems: Problems = []
    name = _str(service, "name")
    if not name:
        problems.append(errors.required(f"{path}.service.name"))
    else:
        problems.extend(errors.invalid(f"{path}.service.name", name, m)
                        for m in labels.is_dns1035_label(name))
    port = _sub(service, "port")
    port_name, port_number = _str(port, "name"), _int(port, "number")
    if port_name and port_number:
        problems.append(errors.invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        problems.extend(errors.invalid(f"{path}.service.port.name", port_name, m)
                        for m in is_valid_port_name(port_name))
    elif port_number:
        problems.extend(errors.invalid(f"{path}.service.port.number", port_number, m)
                        for m in is_valid_port_num(port_number))
    else:
        problems.append(errors.required(path, "port name or number is required"))
    return problems


def _http_path(item: Message, path: str) -> Problems:
    """validateHTTPIngressPath."""
    path_type = _opt(item, "path_type")
    if path_type is None:
        return [errors.required(f"{path}.pathType", "pathType must be specified")]
    problems: Problems = []
    value = _str(item, "path")
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            problems.append(errors.invalid(f"{path}.path", value, "must be an absolute path"))
        if value:
            problems.extend(errors.invalid(f"{path}.path", value, f"must not contain '{seq}'")
                            for seq in INVALID_PATH_SEQUENCES if seq in value)
            problems.extend(errors.invalid(f"{path}.path", value, f"cannot end with '{suffix}'")
                            for suffix in INVALID_PATH_SUFFIXES if value.endswith(suffix))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            problems.append(errors.invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        problems.append(errors.unsupported(f"{path}.pathType", path_type, PATH_TYPES))
    problems.extend(ingress_backend(_sub(item, "backend"), f"{path}.backend"))
    return problems


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def validate_ingress(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems: Problems = []
    rules = _items(spec, "rules")
    default_backend = _sub(spec, "default_backend")
    if not rules and default_backend is None:
        problems.append(errors.invalid("spec", _Shown("[]networking.IngressRule(nil)"),
                                       "either `defaultBackend` or `rules` must be specified"))
    if default_backend is not None:
        problems.extend(ingress_backend(default_backend, "spec.defaultBackend"))
    for i, rule in enumerate(rules):
        path = f"spec.rules[{i}]"
        host = _str(rule, "host")
        if host:
            if _is_ip(host):
                problems.append(errors.invalid(f"{path}.host", host,
                                               "must be a DNS name, not an IP address"))
            problems.extend(_host(host, f"{path}.host"))
        http = _sub(rule, "http")
        if http is not None:
            paths = _items(http, "paths")
            if not paths:
                problems.append(errors.required(f"{path}.http.paths"))
            for j, item in enumerate(paths):
                problems.extend(_http_path(item, f"{path}.http.paths[{j}]"))
    for i, tls in enumerate(_items(spec, "tls")):
        for j, host in enumerate(_items(tls, "hosts")):
            problems.extend(_host(host, f"spec.tls[{i}].hosts[{j}]"))
        secret = _str(tls, "secret_name")
        if secret:
            problems.extend(_dns_subdomain(secret, f"spec.tls[{i}].secretName"))
    class_name = _opt(spec, "ingress_class_name")
    if class_name is not None:
        problems.extend(_dns_subdomain(class_name, "spec.ingressClassName"))
    return problems


def domain_prefixed_path(value: str, path: str) -> Problems:
    """IsDomainPrefixedPath (`acme.io/foo`)."""
    if not value:
        return [errors.required(path)]
    host, sep, rest = value.partition("/")
    if not sep or not host or not rest:
        return [errors.invalid(path, value,
                               'must be a domain-prefixed path (such as "acme.io/foo")')]
    problems = [errors.invalid(path, host, m) for m in labels.is_dns1123_subdomain(host)]
    if not _HTTP_PATH_RE.fullmatch(rest):
        problems.append(errors.invalid(path, rest,
                                       labels.regex_error("Invalid path", HTTP_PATH_FMT)))
    return problems


def validate_ingress_class(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems: Problems = []
    controller = _str(spec, "controller")
    if len(controller) > INGRESS_CLASS_CONTROLLER_MAX:
        problems.append(errors.too_long("spec.controller", controller,
                                        INGRESS_CLASS_CONTROLLER_MAX))
    problems.extend(domain_prefixed_path(controller, "spec.controller"))
    params = _sub(spec, "parameters")
    if params is not None:
        path = "spec.parameters"
        problems.extend(typed_reference(params, path))
        scope = _opt(params, "scope")
        namespace = _opt(params, "namespace")
        if scope is None:
            problems.append(errors.required(f"{path}.scope"))
        elif scope not in PARAMETER_SCOPES:
            problems.append(errors.unsupported(f"{path}.scope", scope, PARAMETER_SCOPES))
        elif scope == "Namespace":
            if namespace is None:
                problems.append(errors.required(f"{path}.namespace",
                                                "`parameters.scope` is set to 'Namespace'"))
            else:
                problems.extend(errors.invalid(f"{path}.namespace", namespace, m)
                                for m in labels.is_dns1123_label(namespace))
        elif namespace is not None:
            problems.append(errors.forbidden(f"{path}.namespace",
                                             "`parameters.scope` is set to 'Cluster'"))
    if old is not None and controller != _str(old.spec, "controller"):
        problems.append(errors.invalid("spec.controller", controller, IMMUTABLE))
    return problems
