"""A container's environment, as the kubelet builds it (makeEnvironmentVariables).

Order and precedence, as in Kubernetes: service links (when
enableServiceLinks), then `envFrom` sources in order (with their prefix),
then `env` in order; a later name wins. `env` values are expanded with
`$(VAR)` against everything defined before them (`$$` escapes, an unknown
reference stays as written); `command` and `args` are expanded against the
final environment. Values come from ConfigMaps, Secrets (through `lookup`),
the downward API (`fieldRef`) and the container's resources
(`resourceFieldRef`, limits defaulting to the node's allocatable).

A required source that is missing raises ConfigError with Kubernetes'
message (the container then waits with reason CreateContainerConfigError).
POD_IP and HOSTNAME are added by the runtime when the pod does not set them.
Pure functions: no I/O.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Mapping, Sequence

from google.protobuf.message import Message

from kubemu.api import quantity

# (kind "ConfigMap"|"Secret", namespace, name) -> the object, or None when missing.
Lookup = Callable[[str, str, str], Message | None]

_C_IDENTIFIER = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError)."""


# ---------------------------------------------------------------- $(VAR) expansion

def expand(text: str, mapping: Callable[[str], str | None]) -> str:
    """Kubernetes' third_party expansion: `$(NAME)` -> value, `$$` -> `$`; a
    reference with no value, or an unterminated one, is left as written."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2:close]
                    value = mapping(name)
                    out.append(value if value is not None else f"$({name})")
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def expand_all(items: Sequence[str], env: Mapping[str, str]) -> list[str]:
    return [expand(item, env.get) for item in items]


# ---------------------------------------------------------------- downward API

def field_value(pod: Message, path: str, host_ip: str, pod_ip: str) -> str:
    """The value of a downward API fieldRef.fieldPath."""
    meta = pod.metadata
    match = _FIELD_KEY.match(path)
    if match:
        which, key = match.groups()
        return dict(getattr(meta, which)).get(key, "")
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    if path in simple:
        return simple[path]
    if path == "metadata.labels":
        return format_map(meta.labels)
    if path == "metadata.annotations":
        return format_map(meta.annotations)
    raise ConfigError(f'unsupported fieldPath: "{path}"')


def format_map(values: Mapping[str, str]) -> str:
    """A labels/annotations file: `key="value"` lines, sorted, values quoted as Go's %q."""
    return "\n".join(f"{k}={_go_quote(values[k])}" for k in sorted(values))


def _go_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
        .replace("\t", "\\t").replace("\r", "\\r")
    return f'"{escaped}"'


def resource_value(pod: Message, container_name: str, resource: str, divisor: str,
                   allocatable: Mapping[str, str]) -> str:
    """A resourceFieldRef: the container's limit or request divided by `divisor`
    (rounded up); an unset limit is the node's allocatable."""
    ctr = next((c for c in [*pod.spec.containers, *pod.spec.init_containers]
                if c.name == container_name), None)
    if ctr is None:
        raise ConfigError(f'container "{container_name}" not found in the pod')
    which, _, name = resource.partition(".")
    if which not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise ConfigError(f'unsupported container resource: "{resource}"')
    values = dict(getattr(ctr.resources, which))
    text = values.get(name)
    if text is None and which == "limits":
        text = allocatable.get(name)
    if text is None and which == "requests":
        text = dict(ctr.resources.limits).get(name, "0")
    try:
        value = quantity.parse(text or "0").value
        div = quantity.parse(divisor or "1").value
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if div <= 0:
        raise ConfigError(f'divisor "{divisor}" must be positive')
    if name == "cpu":  # Kubernetes divides millicores by millicores
        return str(max(0, math.ceil(quantity.to_milli(value) / quantity.to_milli(div))))
    return str(max(0, math.ceil(quantity.to_int(value) / quantity.to_int(div))))


# ---------------------------------------------------------------- service links

# The apiserver's own Services in `default`: their variables are in every pod
# (kubelet_pods.go getServiceEnvVarMap), whatever enableServiceLinks says.
MASTER_SERVICES = ("kubernetes",)


def linked_services(services: Sequence[Message], namespace: str,
                    enable_links: bool) -> list[Message]:
    """The Services whose variables a pod of `namespace` gets, as the kubelet
    picks them: `kubernetes` in default always, the namespace's own only with
    enableServiceLinks (one of its own named like a master Service wins)."""
    chosen: dict[str, Message] = {}
    for svc in services:
        name = svc.metadata.name
        if svc.metadata.namespace == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif svc.metadata.namespace == namespace and enable_links:
            chosen[name] = svc
    return list(chosen.values())


def service_env(services: Sequence[Message]) -> dict[str, str]:
    """Docker-link style variables for services with a cluster IP."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s.metadata.name):
        ip = svc.spec.cluster_ip
        if not ip or ip == "None" or not svc.spec.ports:
            continue
        prefix = svc.metadata.name.upper().replace("-", "_")
        first = svc.spec.ports[0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first.port)
        for port in svc.spec.ports:
            if port.name:
                env[f"{prefix}_SERVICE_PORT_{port.name.upper().replace('-', '_')}"] = str(port.port)
        env[f"{prefix}_PORT"] = f"{(first.protocol or 'TCP').lower()}://{ip}:{first.port}"
        for port in svc.spec.ports:
            proto = port.protocol or "TCP"
            base = f"{prefix}_PORT_{port.port}_{proto.upper()}"
            env[base] = f"{proto.lower()}://{ip}:{port.port}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port.port)
            env[f"{base}_ADDR"] = ip
    return env


# ---------------------------------------------------------------- the environment

def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _source_data(kind: str, obj: Message) -> dict[str, str]:
    if kind == "ConfigMap":
        data = dict(obj.data)
        data.update({k: _decode(v) for k, v in obj.binary_data.items()})
        return data
    return {k: _decode(v) for k, v in obj.data.items()}


def _required(optional_field: Message, name: str = "optional") -> bool:
    return not (optional_field.HasField(name) and getattr(optional_field, name))


def container_env(pod: Message, container: Message, lookup: Lookup, *, host_ip: str,
                  pod_ip: str, allocatable: Mapping[str, str],
                  services: Sequence[Message] = ()) -> list[tuple[str, str]]:
    """The container's variables, in order; ConfigError when a source is missing."""
    namespace = pod.metadata.namespace
    env: dict[str, str] = {}
    links = pod.spec.enable_service_links if pod.spec.HasField("enable_service_links") else True
    env.update(service_env(linked_services(services, namespace, links)))
    for source in container.env_from:
        if source.HasField("config_map_ref"):
            kind, ref = "ConfigMap", source.config_map_ref
        elif source.HasField("secret_ref"):
            kind, ref = "Secret", source.secret_ref
        else:
            continue
        obj = lookup(kind, namespace, ref.name)
        if obj is None:
            if _required(ref):
                raise ConfigError(f'{kind.lower()} "{ref.name}" not found')
            continue
        for key, value in sorted(_source_data(kind, obj).items()):
            name = source.prefix + key
            if _C_IDENTIFIER.match(name):  # Kubernetes skips invalid names (with an event)
                env[name] = value
    for var in container.env:
        if not var.HasField("value_from"):
            env[var.name] = expand(var.value, env.get)
            continue
        vf = var.value_from
        if vf.HasField("field_ref"):
            env[var.name] = field_value(pod, vf.field_ref.field_path, host_ip, pod_ip)
        elif vf.HasField("resource_field_ref"):
            ref = vf.resource_field_ref
            env[var.name] = resource_value(pod, ref.container_name or container.name,
                                           ref.resource, ref.divisor, allocatable)
        elif vf.HasField("config_map_key_ref") or vf.HasField("secret_key_ref"):
            is_cm = vf.HasField("config_map_key_ref")
            kind = "ConfigMap" if is_cm else "Secret"
            ref = vf.config_map_key_ref if is_cm else vf.secret_key_ref
            obj = lookup(kind, namespace, ref.name)
            if obj is None:
                if _required(ref):
                    raise ConfigError(f'{kind.lower()} "{ref.name}" not found')
                continue
            data = _source_data(kind, obj)
            if ref.key not in data:
                if _required(ref):
                    raise ConfigError(f"couldn't find key {ref.key} in {kind} "
                                      f"{namespace}/{ref.name}")
                continue
            env[var.name] = data[ref.key]
    return list(env.items())
