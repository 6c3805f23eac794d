"""Core group (v1) validation: pods and their specs, templates, volumes,
services, endpoints, nodes, namespaces, config maps, secrets, events,
persistent volumes and claims (Kubernetes' pkg/apis/core/validation)."""
from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Collection, Iterable, Mapping, Sequence

from google.protobuf.message import Message

from kubemu.api import errors, labels, quantity
from kubemu.api.errors import FieldError
from kubemu.api.fields import field_value
from kubemu.api.validation import godiff
from kubemu.api.validation.meta import (
    IS_NEGATIVE,
    NOT_POSITIVE,
    Problems,
    _Shown,
    _copy,
    _diff,
    _dns_subdomain,
    _int,
    _int_or_string,
    _items,
    _opt,
    _qualified_name,
    _str,
    _sub,
    immutable,
    nonnegative,
    not_found,
    validate_annotations,
)


MAX_SECRET_SIZE_B = 1024 * 1024


MAX_INT32 = 2**31 - 1




PORT_RANGE = "must be between 1 and 65535, inclusive"


PROTOCOLS = ("SCTP", "TCP", "UDP")


RESTART_POLICIES = ("Always", "OnFailure", "Never")


DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")


PULL_POLICIES = ("Always", "IfNotPresent", "Never")


TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")


TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


TOLERATION_OPERATORS = ("Equal", "Exists")


WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")


SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


SESSION_AFFINITIES = ("ClientIP", "None")


TRAFFIC_POLICIES = ("Cluster", "Local")


ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


VOLUME_MODES = ("Block", "Filesystem")


RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")


STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


# Volume sources a pod volume may name (exactly one of them).
POD_VOLUME_SOURCES = ("empty_dir", "host_path", "config_map", "secret", "downward_api",
                      "persistent_volume_claim", "projected", "nfs", "csi", "ephemeral",
                      "local")


PV_SOURCES = ("host_path", "local", "nfs", "csi")


ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                   "status.podIP", "status.podIPs")


VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name",
                      "metadata.namespace", "metadata.uid")


RESOURCE_FIELD_REFS = ("limits.cpu", "limits.ephemeral-storage", "limits.memory",
                       "requests.cpu", "requests.ephemeral-storage", "requests.memory")


_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"


_ENV_VAR_NAME_RE = re.compile(_ENV_VAR_NAME_FMT)


_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"


_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)


_PORT_NAME_CHARS_RE = re.compile("[-a-z0-9]+")


_HTTP_HEADER_NAME_RE = re.compile("[-A-Za-z0-9]+")


_FILE_MODE_MAX = 0o777


def _map(msg: Message | None, name: str) -> Mapping[str, Any]:
    return field_value(msg, name, {}) or {}


def go_map(values: Mapping[str, str]) -> _Shown:
    """A label map as Go's %#v prints it: map[string]string{"a":"b", "c":"d"}."""
    if not values:
        return _Shown("map[string]string(nil)")
    body = ", ".join(f"{json.dumps(k)}:{json.dumps(values[k])}" for k in sorted(values))
    return _Shown("map[string]string{" + body + "}")


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [PORT_RANGE]


def is_valid_port_name(name: str) -> list[str]:
    """IANA_SVC_NAME, as Kubernetes' IsValidPortName."""
    errs: list[str] = []
    if len(name) > 15:
        errs.append(labels.max_len_error(15))
    if not _PORT_NAME_CHARS_RE.fullmatch(name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_env_var_name(name: str) -> list[str]:
    errs: list[str] = []
    if not _ENV_VAR_NAME_RE.fullmatch(name):
        errs.append(labels.regex_error(
            "a valid environment variable name must consist of alphabetic characters, "
            "digits, '_', '-', or '.', and must not start with a digit", _ENV_VAR_NAME_FMT,
            "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    errs.extend(_ch_dir_prefix(name))
    return errs


def is_config_map_key(key: str) -> list[str]:
    errs: list[str] = []
    if len(key) > labels.DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(labels.max_len_error(labels.DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _CONFIG_KEY_RE.fullmatch(key):
        errs.append(labels.regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    errs.extend(_ch_dir_prefix(key))
    return errs


def _ch_dir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_valid_ip(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def is_valid_cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    if "/" not in value:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


def _dns_label(value: str, path: str) -> Problems:
    return [errors.invalid(path, value, m) for m in labels.is_dns1123_label(value)]


def _port_num_or_name(value: int | str | None, path: str) -> Problems:
    """ValidatePortNumOrName (an unset value reads as 0)."""
    if isinstance(value, str):
        return [errors.invalid(path, value, m) for m in is_valid_port_name(value)]
    port = value or 0
    return [errors.invalid(path, port, m) for m in is_valid_port_num(port)]


def _quantity_problems(text: str, path: str) -> tuple[Problems, quantity.Quantity | None]:
    try:
        q = quantity.parse(text)
    except ValueError as err:
        detail = str(err)
        prefix = f'invalid quantity "{text}": '
        if detail.startswith(prefix):
            detail = detail[len(prefix):]
        return [errors.invalid(path, text, detail)], None
    if q.value < 0:
        return [errors.invalid(path, str(q), IS_NEGATIVE)], q
    return [], q


def validate_pod_spec(spec: Message, path: str, claim_names: Collection[str] = ()) -> Problems:
    """ValidatePodSpec at `path` ("spec", "spec.template.spec", ...).

    `claim_names`: volumes the pods will get besides the spec's own (a
    StatefulSet's volumeClaimTemplates), which volumeMounts may name too.
    """
    problems: Problems = []
    declared, volume_problems = _volumes(_items(spec, "volumes"), f"{path}.volumes")
    problems.extend(volume_problems)
    volumes = set(declared) | set(claim_names)
    containers = _items(spec, "containers")
    if not containers:
        problems.append(errors.required(f"{path}.containers"))
    names: set[str] = set()
    # Regular containers first: a clash is reported on the init container.
    for field, json_name in (("containers", "containers"),
                             ("init_containers", "initContainers")):
        for i, ctr in enumerate(_items(spec, field)):
            ctr_path = f"{path}.{json_name}[{i}]"
            problems.extend(_container(ctr, ctr_path, volumes, init=field == "init_containers"))
            if ctr.name and ctr.name in names:
                problems.append(errors.duplicate(f"{ctr_path}.name", ctr.name))
            names.add(ctr.name)
    restart_policy = _str(spec, "restart_policy") or "Always"
    if restart_policy not in RESTART_POLICIES:
        problems.append(errors.unsupported(f"{path}.restartPolicy", restart_policy,
                                           RESTART_POLICIES))
    dns_policy = _str(spec, "dns_policy") or "ClusterFirst"
    if dns_policy not in DNS_POLICIES:
        problems.append(errors.unsupported(f"{path}.dnsPolicy", dns_policy, DNS_POLICIES))
    problems.extend(labels.validate_labels(_map(spec, "node_selector"), f"{path}.nodeSelector"))
    if _str(spec, "service_account_name"):
        problems.extend(_dns_subdomain(spec.service_account_name,
                                       f"{path}.serviceAccountName"))
    if _str(spec, "node_name"):
        problems.extend(_dns_subdomain(spec.node_name, f"{path}.nodeName"))
    if _str(spec, "hostname"):
        problems.extend(_dns_label(spec.hostname, f"{path}.hostname"))
    if _str(spec, "subdomain"):
        problems.extend(_dns_label(spec.subdomain, f"{path}.subdomain"))
    if _str(spec, "scheduler_name"):
        problems.extend(_dns_subdomain(spec.scheduler_name, f"{path}.schedulerName"))
    deadline = _opt(spec, "active_deadline_seconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        problems.append(errors.invalid(f"{path}.activeDeadlineSeconds", deadline,
                                       f"must be between 1 and {MAX_INT32}, inclusive"))
    problems.extend(nonnegative(_opt(spec, "termination_grace_period_seconds"),
                                f"{path}.terminationGracePeriodSeconds"))
    problems.extend(_tolerations(_items(spec, "tolerations"), f"{path}.tolerations"))
    affinity = _sub(spec, "affinity")
    if affinity is not None:
        problems.extend(_affinity(affinity, f"{path}.affinity"))
    problems.extend(_topology_spread(_items(spec, "topology_spread_constraints"),
                                     f"{path}.topologySpreadConstraints"))
    for i, secret in enumerate(_items(spec, "image_pull_secrets")):
        if not _str(secret, "name"):
            problems.append(errors.required(f"{path}.imagePullSecrets[{i}].name"))
    return problems


def _container(ctr: Message, path: str, volumes: Collection[str], *,
               init: bool) -> Problems:
    problems: Problems = []
    if not ctr.name:
        problems.append(errors.required(f"{path}.name"))
    else:
        problems.extend(_dns_label(ctr.name, f"{path}.name"))
    restart_policy = _opt(ctr, "restart_policy")
    sidecar = init and restart_policy == "Always"
    if restart_policy is not None:
        if not init:
            problems.append(errors.forbidden(f"{path}.restartPolicy",
                                             "may not be set for non-init containers"))
        elif restart_policy != "Always":
            problems.append(errors.unsupported(f"{path}.restartPolicy", restart_policy,
                                               ("Always",)))
    image = _str(ctr, "image")
    if not image:
        problems.append(errors.required(f"{path}.image"))
    elif image != image.strip():
        problems.append(errors.invalid(f"{path}.image", image,
                                       "must not have leading or trailing whitespace"))
    pull = _str(ctr, "image_pull_policy")
    if pull and pull not in PULL_POLICIES:
        problems.append(errors.unsupported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    message_policy = _str(ctr, "termination_message_policy")
    if message_policy and message_policy not in TERMINATION_MESSAGE_POLICIES:
        problems.append(errors.unsupported(f"{path}.terminationMessagePolicy", message_policy,
                                           TERMINATION_MESSAGE_POLICIES))
    problems.extend(_container_ports(_items(ctr, "ports"), f"{path}.ports"))
    problems.extend(_env(_items(ctr, "env"), f"{path}.env"))
    problems.extend(_env_from(_items(ctr, "env_from"), f"{path}.envFrom"))
    problems.extend(_volume_mounts(_items(ctr, "volume_mounts"), volumes,
                                   f"{path}.volumeMounts"))
    for field, json_name in (("liveness_probe", "livenessProbe"),
                             ("readiness_probe", "readinessProbe"),
                             ("startup_probe", "startupProbe")):
        probe = _sub(ctr, field)
        if probe is None:
            continue
        if init and not sidecar:
            problems.append(errors.forbidden(
                f"{path}.{json_name}",
                "may not be set for init containers without restartPolicy=Always"))
            continue
        problems.extend(_probe(probe, f"{path}.{json_name}"))
        success = _opt(probe, "success_threshold")
        if json_name != "readinessProbe" and success is not None and success != 1:
            problems.append(errors.invalid(f"{path}.{json_name}.successThreshold", success,
                                           "must be 1"))
    lifecycle = _sub(ctr, "lifecycle")
    if lifecycle is not None:
        for field, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
            handler = _sub(lifecycle, field)
            if handler is not None:
                problems.extend(_handler(handler, f"{path}.lifecycle.{json_name}"))
    resources = _sub(ctr, "resources")
    if resources is not None:
        problems.extend(validate_resource_requirements(resources, f"{path}.resources"))
    return problems


def _container_ports(ports: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        port_path = f"{path}[{i}]"
        name = _str(port, "name")
        if name:
            msgs = is_valid_port_name(name)
            if msgs:
                problems.extend(errors.invalid(f"{port_path}.name", name, m) for m in msgs)
            elif name in names:
                problems.append(errors.duplicate(f"{port_path}.name", name))
            names.add(name)
        container_port = _int(port, "container_port")
        if container_port == 0:
            problems.append(errors.required(f"{port_path}.containerPort"))
        else:
            problems.extend(errors.invalid(f"{port_path}.containerPort", container_port, m)
                            for m in is_valid_port_num(container_port))
        host_port = _int(port, "host_port")
        if host_port:
            problems.extend(errors.invalid(f"{port_path}.hostPort", host_port, m)
                            for m in is_valid_port_num(host_port))
        protocol = _str(port, "protocol") or "TCP"
        if protocol not in PROTOCOLS:
            problems.append(errors.unsupported(f"{port_path}.protocol", protocol, PROTOCOLS))
    return problems


def _env(env: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    for i, var in enumerate(env):
        var_path = f"{path}[{i}]"
        if not var.name:
            problems.append(errors.required(f"{var_path}.name"))
        else:
            problems.extend(errors.invalid(f"{var_path}.name", var.name, m)
                            for m in is_env_var_name(var.name))
        value_from = _sub(var, "value_from")
        if value_from is None:
            continue
        from_path = f"{var_path}.valueFrom"
        sources = 0
        field_ref = _sub(value_from, "field_ref")
        if field_ref is not None:
            sources += 1
            problems.extend(_object_field_selector(field_ref, ENV_FIELD_PATHS,
                                                   f"{from_path}.fieldRef"))
        resource_ref = _sub(value_from, "resource_field_ref")
        if resource_ref is not None:
            sources += 1
            problems.extend(_resource_field_selector(resource_ref,
                                                     f"{from_path}.resourceFieldRef"))
        for field, json_name in (("config_map_key_ref", "configMapKeyRef"),
                                 ("secret_key_ref", "secretKeyRef")):
            ref = _sub(value_from, field)
            if ref is not None:
                sources += 1
                problems.extend(_key_selector(ref, f"{from_path}.{json_name}"))
        if sources == 0:
            problems.append(errors.invalid(
                from_path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                "`configMapKeyRef` or `secretKeyRef`"))
        elif _str(var, "value"):
            problems.append(errors.invalid(from_path, "",
                                           "may not be specified when `value` is not empty"))
        elif sources > 1:
            problems.append(errors.invalid(from_path, "",
                                           "may not have more than one field specified at a time"))
    return problems


_SUBSCRIPT_RE = re.compile(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$")


def _object_field_selector(ref: Message, allowed: Sequence[str], path: str) -> Problems:
    problems: Problems = []
    field_path = _str(ref, "field_path")
    if not _str(ref, "api_version"):
        problems.append(errors.required(f"{path}.apiVersion"))
    if not field_path:
        problems.append(errors.required(f"{path}.fieldPath"))
        return problems
    subscript = _SUBSCRIPT_RE.match(field_path)
    if subscript:
        key = subscript.group(2)
        if subscript.group(1) == "metadata.annotations":
            problems.extend(_qualified_name(key.lower(), f"{path}.fieldPath"))
        else:
            problems.extend(_qualified_name(key, f"{path}.fieldPath"))
    elif field_path not in allowed:
        problems.append(errors.unsupported(f"{path}.fieldPath", field_path, sorted(allowed)))
    return problems


def _resource_field_selector(ref: Message, path: str) -> Problems:
    resource = _str(ref, "resource")
    if not resource:
        return [errors.required(f"{path}.resource")]
    if resource not in RESOURCE_FIELD_REFS:
        return [errors.unsupported(f"{path}.resource", resource, RESOURCE_FIELD_REFS)]
    return []


def _key_selector(ref: Message, path: str) -> Problems:
    problems: Problems = []
    name = _str(ref, "name")
    if not name:
        problems.append(errors.required(f"{path}.name"))
    else:
        problems.extend(_dns_subdomain(name, f"{path}.name"))
    key = _str(ref, "key")
    if not key:
        problems.append(errors.required(f"{path}.key"))
    else:
        problems.extend(errors.invalid(f"{path}.key", key, m) for m in is_config_map_key(key))
    return problems


def _env_from(sources: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    for i, source in enumerate(sources):
        src_path = f"{path}[{i}]"
        prefix = _str(source, "prefix")
        if prefix:
            problems.extend(errors.invalid(f"{src_path}.prefix", prefix, m)
                            for m in is_env_var_name(prefix))
        refs = 0
        for field, json_name in (("config_map_ref", "configMapRef"),
                                 ("secret_ref", "secretRef")):
            ref = _sub(source, field)
            if ref is None:
                continue
            refs += 1
            name = _str(ref, "name")
            if not name:
                problems.append(errors.required(f"{src_path}.{json_name}.name"))
            else:
                problems.extend(_dns_subdomain(name, f"{src_path}.{json_name}.name"))
        if refs == 0:
            problems.append(errors.invalid(src_path, "",
                                           "must specify one of: `configMapRef` or `secretRef`"))
        elif refs > 1:
            problems.append(errors.invalid(src_path, "",
                                           "may not have more than one field specified at a time"))
    return problems


def _volume_mounts(mounts: Sequence[Message], volumes: Collection[str],
                   path: str) -> Problems:
    problems: Problems = []
    mount_paths: set[str] = set()
    for i, mount in enumerate(mounts):
        mount_path = f"{path}[{i}]"
        if not mount.name:
            problems.append(errors.required(f"{mount_path}.name"))
        if mount.name not in volumes:
            problems.append(not_found(f"{mount_path}.name", mount.name))
        target = _str(mount, "mount_path")
        if not target:
            problems.append(errors.required(f"{mount_path}.mountPath"))
        elif target in mount_paths:
            problems.append(errors.invalid(f"{mount_path}.mountPath", target, "must be unique"))
        mount_paths.add(target)
        sub_path = _str(mount, "sub_path")
        if sub_path:
            problems.extend(_local_descending_path(sub_path, f"{mount_path}.subPath"))
    return problems


def validate_path_no_backsteps(value: str, path: str) -> Problems:
    """validatePathNoBacksteps: no `..` element (one error, however many)."""
    if ".." in value.replace("\\", "/").split("/"):
        return [errors.invalid(path, value, "must not contain '..'")]
    return []


def _local_descending_path(value: str, path: str) -> Problems:
    problems: Problems = []
    if value.startswith("/"):
        problems.append(errors.invalid(path, value, "must be a relative path"))
    problems.extend(validate_path_no_backsteps(value, path))
    return problems


def _probe(probe: Message, path: str) -> Problems:
    problems = _handler(probe, path)
    for field, json_name in (("initial_delay_seconds", "initialDelaySeconds"),
                             ("timeout_seconds", "timeoutSeconds"),
                             ("period_seconds", "periodSeconds"),
                             ("success_threshold", "successThreshold"),
                             ("failure_threshold", "failureThreshold")):
        problems.extend(nonnegative(_opt(probe, field), f"{path}.{json_name}"))
    grace = _opt(probe, "termination_grace_period_seconds")
    if grace is not None and grace <= 0:
        problems.append(errors.invalid(f"{path}.terminationGracePeriodSeconds", grace,
                                       "must be greater than 0"))
    return problems


def _handler(handler: Message, path: str) -> Problems:
    """Exactly one of exec/httpGet/tcpSocket/grpc/sleep (probes and lifecycle hooks)."""
    problems: Problems = []
    count = 0
    for field, json_name in (("exec", "exec"), ("http_get", "httpGet"),
                             ("tcp_socket", "tcpSocket"), ("grpc", "grpc"),
                             ("sleep", "sleep")):
        action = _sub(handler, field)
        if action is None:
            continue
        if count:
            problems.append(errors.forbidden(f"{path}.{json_name}",
                                             "may not specify more than 1 handler type"))
            continue
        count += 1
        action_path = f"{path}.{json_name}"
        if field == "exec":
            if not _items(action, "command"):
                problems.append(errors.required(f"{action_path}.command"))
        elif field == "http_get":
            if not _str(action, "path"):
                problems.append(errors.required(f"{action_path}.path"))
            problems.extend(_port_num_or_name(_int_or_string(action, "port"),
                                              f"{action_path}.port"))
            scheme = _str(action, "scheme") or "HTTP"
            if scheme not in ("HTTP", "HTTPS"):
                problems.append(errors.unsupported(f"{action_path}.scheme", scheme,
                                                   ("HTTP", "HTTPS")))
            for j, header in enumerate(_items(action, "http_headers")):
                if not _HTTP_HEADER_NAME_RE.fullmatch(_str(header, "name")):
                    problems.append(errors.invalid(f"{action_path}.httpHeaders[{j}].name",
                                                   _str(header, "name"),
                                                   "a valid HTTP header must consist of "
                                                   "alphanumeric characters or '-'"))
        elif field == "tcp_socket":
            problems.extend(_port_num_or_name(_int_or_string(action, "port"),
                                              f"{action_path}.port"))
        elif field == "grpc":
            port = _int(action, "port")
            problems.extend(errors.invalid(f"{action_path}.port", port, m)
                            for m in is_valid_port_num(port))
        elif field == "sleep":
            seconds = _int(action, "seconds")
            if seconds <= 0:
                problems.append(errors.invalid(f"{action_path}.seconds", seconds,
                                               "must be greater than 0"))
    if count == 0:
        problems.append(errors.required(path, "must specify a handler type"))
    return problems


def validate_resource_requirements(resources: Message, path: str) -> Problems:
    """Quantities valid and non-negative, standard names, requests <= limits."""
    problems: Problems = []
    limits: dict[str, quantity.Quantity] = {}
    for kind_name, json_name in (("limits", "limits"), ("requests", "requests")):
        values = _map(resources, kind_name)
        for name in sorted(values):
            entry_path = f"{path}.{json_name}[{name}]"
            problems.extend(_resource_name(name, entry_path))
            found, q = _quantity_problems(values[name], entry_path)
            problems.extend(found)
            if q is None:
                continue
            if kind_name == "limits":
                limits[name] = q
            elif name in limits and q > limits[name]:
                problems.append(errors.invalid(
                    f"{path}.requests", str(q),
                    f"must be less than or equal to {name} limit of {limits[name]}"))
    return problems


def _resource_name(name: str, path: str) -> Problems:
    problems = _qualified_name(name, path)
    if "/" not in name and name not in STANDARD_CONTAINER_RESOURCES and not name.startswith(
            "hugepages-"):
        problems.append(errors.invalid(path, name, "must be a standard resource for containers"))
    return problems


def _volumes(volumes: Sequence[Message], path: str) -> tuple[dict[str, Message], Problems]:
    problems: Problems = []
    names: dict[str, Message] = {}
    for i, volume in enumerate(volumes):
        vol_path = f"{path}[{i}]"
        found = _volume_source(volume, vol_path, POD_VOLUME_SOURCES)
        if not volume.name:
            found.append(errors.required(f"{vol_path}.name"))
        else:
            found.extend(_dns_label(volume.name, f"{vol_path}.name"))
        if volume.name in names:
            found.append(errors.duplicate(f"{vol_path}.name", volume.name))
        if not found:
            names[volume.name] = volume
        else:
            problems.extend(found)
            names.setdefault(volume.name, volume)  # a broken volume still "exists" for mounts
    return names, problems


_JSON_NAMES = {"empty_dir": "emptyDir", "host_path": "hostPath", "config_map": "configMap",
               "secret": "secret", "downward_api": "downwardAPI",
               "persistent_volume_claim": "persistentVolumeClaim", "projected": "projected",
               "nfs": "nfs", "csi": "csi", "ephemeral": "ephemeral", "local": "local"}


def _volume_source(source: Message, path: str, kinds: Sequence[str]) -> Problems:
    problems: Problems = []
    count = 0
    for field in kinds:
        sub = _sub(source, field)
        if sub is None:
            continue
        json_name = _JSON_NAMES[field]
        if count:
            problems.append(errors.forbidden(f"{path}.{json_name}",
                                             "may not specify more than 1 volume type"))
            continue
        count += 1
        problems.extend(_one_volume_source(field, sub, f"{path}.{json_name}"))
    if count == 0:
        problems.append(errors.required(path, "must specify a volume type"))
    return problems


def _file_mode(msg: Message, field: str, path: str) -> Problems:
    mode = _opt(msg, field)
    if mode is not None and not 0 <= mode <= _FILE_MODE_MAX:
        return [errors.invalid(path, mode,
                               "must be a number between 0 and 0777 (octal), both inclusive")]
    return []


def _key_to_paths(items: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    for j, item in enumerate(items):
        item_path = f"{path}[{j}]"
        if not _str(item, "key"):
            problems.append(errors.required(f"{item_path}.key"))
        target = _str(item, "path")
        if not target:
            problems.append(errors.required(f"{item_path}.path"))
        else:
            problems.extend(_local_descending_path(target, f"{item_path}.path"))
        problems.extend(_file_mode(item, "mode", f"{item_path}.mode"))
    return problems


def _one_volume_source(field: str, sub: Message, path: str) -> Problems:
    problems: Problems = []
    if field == "empty_dir":
        limit = _str(sub, "size_limit")
        if limit:
            problems.extend(_quantity_problems(limit, f"{path}.sizeLimit")[0])
    elif field == "host_path":
        host_path = _str(sub, "path")
        if not host_path:
            problems.append(errors.required(f"{path}.path"))
        else:
            problems.extend(validate_path_no_backsteps(host_path, f"{path}.path"))
        host_type = _str(sub, "type")
        allowed = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")
        if host_type not in allowed:
            problems.append(errors.unsupported(f"{path}.type", host_type, allowed[1:]))
    elif field == "config_map":
        if not _str(sub, "name"):
            problems.append(errors.required(f"{path}.name"))
        problems.extend(_file_mode(sub, "default_mode", f"{path}.defaultMode"))
        problems.extend(_key_to_paths(_items(sub, "items"), f"{path}.items"))
    elif field == "secret":
        if not _str(sub, "secret_name"):
            problems.append(errors.required(f"{path}.secretName"))
        problems.extend(_file_mode(sub, "default_mode", f"{path}.defaultMode"))
        problems.extend(_key_to_paths(_items(sub, "items"), f"{path}.items"))
    elif field == "persistent_volume_claim":
        if not _str(sub, "claim_name"):
            problems.append(errors.required(f"{path}.claimName"))
    elif field == "downward_api":
        problems.extend(_file_mode(sub, "default_mode", f"{path}.defaultMode"))
        for j, item in enumerate(_items(sub, "items")):
            item_path = f"{path}.items[{j}]"
            target = _str(item, "path")
            if not target:
                problems.append(errors.required(f"{item_path}.path"))
            else:
                problems.extend(_local_descending_path(target, f"{item_path}.path"))
            field_ref = _sub(item, "field_ref")
            resource_ref = _sub(item, "resource_field_ref")
            if field_ref is not None and resource_ref is not None:
                problems.append(errors.invalid(item_path, "resource",
                                               "fieldRef and resourceFieldRef can not be "
                                               "specified simultaneously"))
            elif field_ref is not None:
                problems.extend(_object_field_selector(field_ref, VOLUME_FIELD_PATHS,
                                                       f"{item_path}.fieldRef"))
            elif resource_ref is not None:
                problems.extend(_resource_field_selector(resource_ref,
                                                         f"{item_path}.resourceFieldRef"))
            else:
                problems.append(errors.required(item_path,
                                                "one of fieldRef and resourceFieldRef is "
                                                "required"))
    elif field == "local":
        if not _str(sub, "path"):
            problems.append(errors.required(f"{path}.path"))
    elif field == "nfs":
        if not _str(sub, "server"):
            problems.append(errors.required(f"{path}.server"))
        if not _str(sub, "path"):
            problems.append(errors.required(f"{path}.path"))
    elif field == "csi":
        if not _str(sub, "driver"):
            problems.append(errors.required(f"{path}.driver"))
        if "volume_handle" in sub.DESCRIPTOR.fields_by_name and not sub.volume_handle:
            problems.append(errors.required(f"{path}.volumeHandle"))
    elif field == "projected":
        problems.extend(_file_mode(sub, "default_mode", f"{path}.defaultMode"))
        for j, source in enumerate(_items(sub, "sources")):
            src_path = f"{path}.sources[{j}]"
            kinds = [name for name in ("secret", "downward_api", "config_map",
                                       "service_account_token") if _sub(source, name)]
            if len(kinds) != 1:
                problems.append(errors.forbidden(
                    src_path, "may not specify more than 1 volume type per source"
                    if kinds else "must specify exactly 1 volume type"))
            for name in ("secret", "config_map"):
                projection = _sub(source, name)
                if projection is not None:
                    problems.extend(_key_to_paths(_items(projection, "items"),
                                                  f"{src_path}.{_JSON_NAMES[name]}.items"))
    return problems


def _taint_effect(effect: str, path: str, allow_empty: bool) -> Problems:
    if not effect:
        return [] if allow_empty else [errors.required(path)]
    if effect not in TAINT_EFFECTS:
        return [errors.unsupported(path, effect, TAINT_EFFECTS)]
    return []


def _tolerations(tolerations: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    for i, tol in enumerate(tolerations):
        tol_path = f"{path}[{i}]"
        key, operator = _str(tol, "key"), _str(tol, "operator")
        value, effect = _str(tol, "value"), _str(tol, "effect")
        if key:
            problems.extend(_qualified_name(key, f"{tol_path}.key"))
        if not key and operator != "Exists":
            problems.append(errors.invalid(
                f"{tol_path}.operator", operator,
                "operator must be Exists when `key` is empty, which means \"match all values "
                "and all keys\""))
        if _opt(tol, "toleration_seconds") is not None and effect != "NoExecute":
            problems.append(errors.invalid(f"{tol_path}.effect", effect,
                                           "effect must be 'NoExecute' when `tolerationSeconds` "
                                           "is set"))
        if operator in ("Equal", ""):
            msgs = labels.is_valid_label_value(value)
            if msgs:
                problems.append(errors.invalid(f"{tol_path}.operator", value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                problems.append(errors.invalid(f"{tol_path}.operator", value,
                                               "value must be empty when `operator` is 'Exists'"))
        else:
            problems.append(errors.unsupported(f"{tol_path}.operator", operator,
                                               TOLERATION_OPERATORS))
        problems.extend(_taint_effect(effect, f"{tol_path}.effect", allow_empty=True))
    return problems


def _node_selector_requirements(reqs: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    for i, req in enumerate(reqs):
        req_path = f"{path}[{i}]"
        operator, values = _str(req, "operator"), _items(req, "values")
        if operator in ("In", "NotIn"):
            if not values:
                problems.append(errors.required(
                    f"{req_path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                problems.append(errors.forbidden(
                    f"{req_path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif operator in ("Gt", "Lt"):
            if len(values) != 1:
                problems.append(errors.required(
                    f"{req_path}.values",
                    "must be specified single value when `operator` is 'Lt' or 'Gt'"))
        else:
            problems.append(errors.invalid(f"{req_path}.operator", operator,
                                           "not a valid selector operator"))
        problems.extend(_qualified_name(_str(req, "key"), f"{req_path}.key"))
    return problems


def _node_selector_term(term: Message, path: str) -> Problems:
    return (_node_selector_requirements(_items(term, "match_expressions"),
                                        f"{path}.matchExpressions")
            + _node_selector_requirements(_items(term, "match_fields"), f"{path}.matchFields"))


def _pod_affinity_term(term: Message, path: str) -> Problems:
    problems: Problems = []
    selector = _sub(term, "label_selector")
    if selector is not None:
        problems.extend(labels.validate_label_selector(selector, f"{path}.labelSelector"))
    ns_selector = _sub(term, "namespace_selector")
    if ns_selector is not None:
        problems.extend(labels.validate_label_selector(ns_selector,
                                                       f"{path}.namespaceSelector"))
    for namespace in _items(term, "namespaces"):
        problems.extend(_dns_label(namespace, f"{path}.namespace"))
    topology_key = _str(term, "topology_key")
    if not topology_key:
        problems.append(errors.required(f"{path}.topologyKey", "can not be empty"))
    else:
        problems.extend(_qualified_name(topology_key, f"{path}.topologyKey"))
    return problems


def _weight(term: Message, path: str) -> Problems:
    weight = _int(term, "weight")
    if not 1 <= weight <= 100:
        return [errors.invalid(path, weight, "must be in the range 1-100")]
    return []


def _affinity(affinity: Message, path: str) -> Problems:
    problems: Problems = []
    node = _sub(affinity, "node_affinity")
    if node is not None:
        node_path = f"{path}.nodeAffinity"
        required = _sub(node, "required_during_scheduling_ignored_during_execution")
        if required is not None:
            req_path = f"{node_path}.requiredDuringSchedulingIgnoredDuringExecution"
            terms = _items(required, "node_selector_terms")
            if not terms:
                problems.append(errors.required(f"{req_path}.nodeSelectorTerms",
                                                "must have at least one node selector term"))
            for i, term in enumerate(terms):
                problems.extend(_node_selector_term(term, f"{req_path}.nodeSelectorTerms[{i}]"))
        for i, pref in enumerate(_items(node,
                                        "preferred_during_scheduling_ignored_during_execution")):
            pref_path = f"{node_path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            problems.extend(_weight(pref, f"{pref_path}.weight"))
            preference = _sub(pref, "preference")
            if preference is not None:
                problems.extend(_node_selector_term(preference, f"{pref_path}.preference"))
    for field, json_name in (("pod_affinity", "podAffinity"),
                             ("pod_anti_affinity", "podAntiAffinity")):
        pod = _sub(affinity, field)
        if pod is None:
            continue
        pod_path = f"{path}.{json_name}"
        required = _items(pod, "required_during_scheduling_ignored_during_execution")
        for i, term in enumerate(required):
            problems.extend(_pod_affinity_term(
                term, f"{pod_path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"))
        for i, pref in enumerate(_items(pod,
                                        "preferred_during_scheduling_ignored_during_execution")):
            pref_path = f"{pod_path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            problems.extend(_weight(pref, f"{pref_path}.weight"))
            term = _sub(pref, "pod_affinity_term")
            if term is not None:
                problems.extend(_pod_affinity_term(term, f"{pref_path}.podAffinityTerm"))
    return problems


def _topology_spread(constraints: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    seen: set[tuple[str, str]] = set()
    for i, constraint in enumerate(constraints):
        c_path = f"{path}[{i}]"
        max_skew = _int(constraint, "max_skew")
        if max_skew <= 0:
            problems.append(errors.invalid(f"{c_path}.maxSkew", max_skew, NOT_POSITIVE))
        key = _str(constraint, "topology_key")
        if not key:
            problems.append(errors.required(f"{c_path}.topologyKey", "can not be empty"))
        else:
            problems.extend(_qualified_name(key, f"{c_path}.topologyKey"))
        action = _str(constraint, "when_unsatisfiable")
        if action not in WHEN_UNSATISFIABLE:
            problems.append(errors.unsupported(f"{c_path}.whenUnsatisfiable", action,
                                               WHEN_UNSATISFIABLE))
        min_domains = _opt(constraint, "min_domains")
        if min_domains is not None:
            if min_domains <= 0:
                problems.append(errors.invalid(f"{c_path}.minDomains", min_domains,
                                               NOT_POSITIVE))
            elif action != "DoNotSchedule":
                problems.append(errors.invalid(
                    f"{c_path}.minDomains", min_domains,
                    'can only use minDomains if whenUnsatisfiable="DoNotSchedule", not '
                    f'"{action}"'))
        if (key, action) in seen:
            problems.append(errors.duplicate(f"{c_path}.{{topologyKey, whenUnsatisfiable}}",
                                             _Shown(f"{{{key}, {action}}}")))
        seen.add((key, action))
        selector = _sub(constraint, "label_selector")
        if selector is not None:
            problems.extend(labels.validate_label_selector(selector, f"{c_path}.labelSelector"))
    return problems


_POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)")


MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


def validate_pod(pod: Message, old: Message | None) -> Problems:
    problems = validate_pod_spec(pod.spec, "spec")
    problems.extend(_mirror_annotation(pod, old))
    if old is not None:
        problems.extend(_pod_update(pod.spec, old.spec))
    return problems


def _mirror_annotation(pod: Message, old: Message | None) -> Problems:
    """A mirror pod (a kubelet's copy of a static pod) is bound, and stays a
    mirror (ValidatePodSpecificAnnotations / ...AnnotationUpdates)."""
    key = MIRROR_POD_ANNOTATION
    path = f"metadata.annotations[{key}]"
    new_value = pod.metadata.annotations.get(key)
    problems: Problems = []
    if new_value and not pod.spec.node_name:
        problems.append(errors.invalid(path, new_value, "must set spec.nodeName if mirror pod "
                                                        "annotation is set"))
    if old is not None:
        old_value = old.metadata.annotations.get(key)
        if old_value is not None and old_value != new_value:
            problems.append(errors.forbidden(path, "may not remove or update mirror pod "
                                                   "annotation"))
        elif old_value is None and new_value is not None:
            problems.append(errors.forbidden(path, "may not add mirror pod annotation"))
    return problems


def _pod_update(new: Message, old: Message) -> Problems:
    problems: Problems = []
    for field, json_name in (("containers", "containers"),
                             ("init_containers", "initContainers")):
        if len(_items(new, field)) != len(_items(old, field)):
            problems.append(errors.forbidden(f"spec.{json_name}",
                                             "pod updates may not add or remove containers"))
    if problems:
        return problems
    new_deadline = _opt(new, "active_deadline_seconds")
    old_deadline = _opt(old, "active_deadline_seconds")
    if new_deadline is not None:
        if old_deadline is not None and old_deadline < new_deadline:
            problems.append(errors.invalid("spec.activeDeadlineSeconds", new_deadline,
                                           "must be less than or equal to previous value"))
    elif old_deadline is not None:
        problems.append(errors.invalid("spec.activeDeadlineSeconds", _Shown("nil"),
                                       "must not update from a positive integer to nil value"))
    # Tolerations may only be added to (an existing one may change its seconds).
    new_tols = list(_items(new, "tolerations"))
    for i, tol in enumerate(_items(old, "tolerations")):
        if not any(_same_toleration(tol, t) for t in new_tols):
            problems.append(errors.forbidden(
                f"spec.tolerations[{i}]",
                "existing toleration can not be modified except its tolerationSeconds"))
    # Everything else must be equal: copy the mutable fields over and compare.
    munged = _copy(new)
    for field in ("containers", "init_containers"):
        for ctr, old_ctr in zip(_items(munged, field), _items(old, field)):
            ctr.image = old_ctr.image
    if "active_deadline_seconds" in munged.DESCRIPTOR.fields_by_name:
        munged.ClearField("active_deadline_seconds")
        if old_deadline is not None:
            munged.active_deadline_seconds = old_deadline
    if "tolerations" in munged.DESCRIPTOR.fields_by_name:
        del munged.tolerations[:]
        munged.tolerations.extend(old.tolerations)
    new_grace = _opt(munged, "termination_grace_period_seconds")
    old_grace = _opt(old, "termination_grace_period_seconds")
    if old_grace is not None and old_grace < 0 and new_grace == 1:
        munged.termination_grace_period_seconds = old_grace
    if munged.SerializeToString(deterministic=True) != old.SerializeToString(deterministic=True):
        # As Kubernetes: the list of what may change, then go-cmp's diff of the specs.
        problems.append(errors.forbidden(
            "spec", _POD_UPDATE_FORBIDDEN + "\n" + godiff.cmp_diff(old, munged)))
    return problems


def _same_toleration(old: Message, new: Message) -> bool:
    a, b = _copy(old), _copy(new)
    for msg in (a, b):
        if "toleration_seconds" in msg.DESCRIPTOR.fields_by_name:
            msg.ClearField("toleration_seconds")
    return a == b


def validate_pod_template(template: Message | None, path: str,
                          claim_names: Collection[str] = ()) -> Problems:
    """ValidatePodTemplateSpec: template labels/annotations and its pod spec
    (whose mounts may name `claim_names` too, see validate_pod_spec)."""
    if template is None:
        return [errors.required(path)]
    meta = _sub(template, "metadata")
    problems: Problems = []
    if meta is not None:
        # Kubernetes reports template labels at `<template>.labels`.
        problems.extend(labels.validate_labels(meta.labels, f"{path}.labels"))
        problems.extend(validate_annotations(meta.annotations, f"{path}.annotations"))
    # An unset spec reads as an empty one (whose containers are then missing).
    problems.extend(validate_pod_spec(template.spec, f"{path}.spec", claim_names))
    return problems


def _template_labels(template: Message | None) -> Mapping[str, str]:
    meta = _sub(template, "metadata")
    return meta.labels if meta is not None else {}


def _selector_matches_template(selector: Message | None, template: Message | None,
                               path: str) -> Problems:
    """`selector` does not match template `labels` (only for a usable, non-empty selector)."""
    if selector is None:
        return []
    try:
        sel = labels.from_label_selector(selector)
    except errors.BadRequest:
        return []
    template_labels = _template_labels(template)
    if not sel.empty() and not sel.matches(template_labels):
        return [errors.invalid(f"{path}.metadata.labels", go_map(dict(template_labels)),
                               "`selector` does not match template `labels`")]
    return []


def go_strings(values: Iterable[str]) -> _Shown:
    """A []string as Kubernetes prints it in an error."""
    return _Shown("[]string{" + ", ".join(json.dumps(v) for v in values) + "}")


def externally_accessible(spec: Message) -> bool:
    """Kubernetes' ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with externalIPs."""
    service_type = _str(spec, "type") or "ClusterIP"
    return service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(_items(spec, "external_ips")))


def validate_service(obj: Message, old: Message | None) -> Problems:
    """Kubernetes' ValidateService (+ ValidateServiceUpdate with `old`)."""
    spec = obj.spec
    problems: Problems = []
    service_type = _str(spec, "type") or "ClusterIP"
    cluster_ip = _str(spec, "cluster_ip")
    cluster_ips = list(_items(spec, "cluster_ips"))
    headless = cluster_ip == "None"
    ports = _items(spec, "ports")
    if not ports and not headless and service_type != "ExternalName":
        problems.append(errors.required("spec.ports"))
    if service_type in ("LoadBalancer", "NodePort") and headless:
        problems.append(errors.invalid("spec.clusterIPs[0]", cluster_ip,
                                       f"may not be set to 'None' for {service_type} services"))
    if service_type == "ExternalName":
        if cluster_ips or (cluster_ip and not headless):
            problems.append(errors.forbidden("spec.clusterIPs",
                                             "may not be set for ExternalName services"))
        if _items(spec, "ip_families"):
            problems.append(errors.forbidden("spec.ipFamilies",
                                             "may not be set for ExternalName services"))
        if _opt(spec, "ip_family_policy") is not None:
            problems.append(errors.forbidden("spec.ipFamilyPolicy",
                                             "may not be set for ExternalName services"))
        cname = _str(spec, "external_name").removesuffix(".")
        if cname:
            problems.extend(_dns_subdomain(cname, "spec.externalName"))
        else:
            problems.append(errors.required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        problems.extend(_service_port(port, len(ports) > 1, names, f"spec.ports[{i}]"))
    problems.extend(labels.validate_labels(_map(spec, "selector"), "spec.selector"))
    problems.extend(_session_affinity(spec))
    if service_type != "ExternalName":
        problems.extend(_cluster_ips(spec, cluster_ip, cluster_ips))
    for i, ip in enumerate(_items(spec, "external_ips")):
        problems.extend(errors.invalid(f"spec.externalIPs[{i}]", ip, m) for m in is_valid_ip(ip))
    if service_type not in SERVICE_TYPES:
        problems.append(errors.unsupported("spec.type", service_type, SERVICE_TYPES))
    node_ports: set[tuple[str, int]] = set()
    seen_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        port_path = f"spec.ports[{i}]"
        protocol = _str(port, "protocol") or "TCP"
        node_port = _int(port, "node_port")
        if node_port:
            if service_type == "ClusterIP":
                problems.append(errors.forbidden(f"{port_path}.nodePort",
                                                 "may not be used when `type` is 'ClusterIP'"))
            if (protocol, node_port) in node_ports:
                problems.append(errors.duplicate(f"{port_path}.nodePort", node_port))
            node_ports.add((protocol, node_port))
        number = _int(port, "port")
        if (protocol, number) in seen_ports:
            problems.append(errors.duplicate(
                port_path, _Shown(f"core.ServicePort{{Name:\"\", Protocol:\"{protocol}\", "
                                  f"AppProtocol:(*string)(nil), Port:{number}, "
                                  "TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, "
                                  "NodePort:0}")))
        seen_ports.add((protocol, number))
    source_ranges = _items(spec, "load_balancer_source_ranges")
    if source_ranges:
        # Kubernetes' own path, capital L included.
        if service_type != "LoadBalancer":
            problems.append(errors.forbidden("spec.LoadBalancerSourceRanges",
                                             "may only be used when `type` is 'LoadBalancer'"))
        for i, value in enumerate(source_ranges):
            problems.extend(errors.invalid(f"spec.LoadBalancerSourceRanges[{i}]", value.strip(), m)
                            for m in is_valid_cidr(value.strip()))
    problems.extend(_traffic_policies(spec, service_type))
    if old is not None:
        problems.extend(_service_update(spec, old.spec, service_type))
    return problems


def _service_port(port: Message, require_name: bool, names: set[str], path: str) -> Problems:
    """Kubernetes' validateServicePort."""
    problems: Problems = []
    name = _str(port, "name")
    if require_name and not name:
        problems.append(errors.required(f"{path}.name"))
    elif name:
        problems.extend(_dns_label(name, f"{path}.name"))
        if name in names:
            problems.append(errors.duplicate(f"{path}.name", name))
        names.add(name)
    number = _int(port, "port")
    problems.extend(errors.invalid(f"{path}.port", number, m) for m in is_valid_port_num(number))
    protocol = _str(port, "protocol") or "TCP"
    if protocol not in PROTOCOLS:
        problems.append(errors.unsupported(f"{path}.protocol", protocol, PROTOCOLS))
    target = _int_or_string(port, "target_port")
    problems.extend(_port_num_or_name(target if target not in (None, "", 0) else number,
                                      f"{path}.targetPort"))
    app_protocol = _opt(port, "app_protocol")
    if app_protocol is not None:
        problems.extend(_qualified_name(app_protocol, f"{path}.appProtocol"))
    return problems


MAX_CLIENT_IP_AFFINITY_S = 86400


def _session_affinity(spec: Message) -> Problems:
    affinity = _str(spec, "session_affinity") or "None"
    config = _sub(spec, "session_affinity_config")
    path = "spec.sessionAffinityConfig"
    if affinity not in SESSION_AFFINITIES:
        return [errors.unsupported("spec.sessionAffinity", affinity, SESSION_AFFINITIES)]
    if affinity == "None":
        if config is not None and _sub(config, "client_ip") is not None:
            return [errors.forbidden(path, "must not be set when session affinity is None")]
        return []
    why = "when session affinity type is ClientIP"
    client_ip = _sub(config, "client_ip")
    if config is None:
        return [errors.required(path, why)]
    if client_ip is None:
        return [errors.required(f"{path}.clientIP", why)]
    timeout_s = _opt(client_ip, "timeout_seconds")
    if timeout_s is None:
        return [errors.required(f"{path}.clientIP.timeoutSeconds", why)]
    if not 0 < timeout_s <= MAX_CLIENT_IP_AFFINITY_S:
        return [errors.invalid(f"{path}.clientIP.timeoutSeconds", timeout_s,
                               f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_S}")]
    return []


IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")


def _cluster_ips(spec: Message, cluster_ip: str, cluster_ips: list[str]) -> Problems:
    """Kubernetes' ValidateServiceClusterIPsRelatedFields, for a single-stack
    IPv4 cluster (kubemu's: every address is in 127.0.0.0/8)."""
    problems: Problems = []
    path = "spec.clusterIPs"
    if not cluster_ip and cluster_ips:
        problems.append(errors.invalid(path, go_strings(cluster_ips),
                                       "must be empty when `clusterIP` is not specified"))
    if cluster_ip and cluster_ips and cluster_ip != cluster_ips[0]:
        problems.append(errors.invalid(path, go_strings(cluster_ips),
                                       "first value must match `clusterIP`"))
    if len(cluster_ips) > 1:
        if cluster_ips[0] == "None":
            problems.append(errors.invalid(path, go_strings(cluster_ips),
                                           "'None' must be the first and only value"))
        else:
            problems.append(errors.invalid(path, go_strings(cluster_ips),
                                           "may only hold one value on a single-stack cluster"))
    for i, ip in enumerate(cluster_ips):
        if ip == "None" and i == 0:
            continue
        problems.extend(errors.invalid(f"{path}[{i}]", ip, m) for m in is_valid_ip(ip))
    if cluster_ip and not cluster_ips and cluster_ip != "None":
        problems.extend(errors.invalid("spec.clusterIP", cluster_ip, m)
                        for m in is_valid_ip(cluster_ip))
    policy = _opt(spec, "ip_family_policy")
    if policy is not None:
        if policy not in IP_FAMILY_POLICIES:
            problems.append(errors.unsupported("spec.ipFamilyPolicy", policy,
                                               IP_FAMILY_POLICIES))
        elif policy == "RequireDualStack":
            problems.append(errors.invalid("spec.ipFamilyPolicy", policy,
                                           "this cluster is not configured for dual-stack "
                                           "services"))
    for i, family in enumerate(_items(spec, "ip_families")):
        if family not in ("IPv4", "IPv6"):
            problems.append(errors.unsupported(f"spec.ipFamilies[{i}]", family,
                                               ("IPv4", "IPv6")))
        elif family != "IPv4":
            problems.append(errors.invalid(f"spec.ipFamilies[{i}]", family,
                                           "not configured on this cluster"))
    return problems


def _traffic_policies(spec: Message, service_type: str) -> Problems:
    """validateServiceExternalTrafficPolicy and the internal one."""
    problems: Problems = []
    external = _str(spec, "external_traffic_policy")
    if not externally_accessible(spec):
        if external:
            problems.append(errors.invalid("spec.externalTrafficPolicy", external,
                                           "may only be set for externally-accessible services"))
    elif external and external not in TRAFFIC_POLICIES:
        problems.append(errors.unsupported("spec.externalTrafficPolicy", external,
                                           TRAFFIC_POLICIES))
    health_port = _int(spec, "health_check_node_port")
    if health_port and not (service_type == "LoadBalancer" and external == "Local"):
        problems.append(errors.invalid(
            "spec.healthCheckNodePort", health_port,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is "
            "'Local'"))
    internal = _str(spec, "internal_traffic_policy")
    if internal and internal not in TRAFFIC_POLICIES:
        problems.append(errors.unsupported("spec.internalTrafficPolicy", internal,
                                           TRAFFIC_POLICIES))
    return problems


def _service_update(spec: Message, old_spec: Message, service_type: str) -> Problems:
    """ValidateServiceUpdate: the primary clusterIP never changes (but to or
    from ExternalName)."""
    old_type = _str(old_spec, "type") or "ClusterIP"
    if "ExternalName" in (service_type, old_type):
        return []
    old_ips = list(_items(old_spec, "cluster_ips")) or (
        [_str(old_spec, "cluster_ip")] if _str(old_spec, "cluster_ip") else [])
    new_ips = list(_items(spec, "cluster_ips"))
    if old_ips and not new_ips:
        return [errors.required("spec.clusterIPs[0]", "primary clusterIP can not be unset")]
    if old_ips and new_ips[0] != old_ips[0]:
        return [errors.invalid("spec.clusterIPs[0]", go_strings(new_ips),
                               "may not change once set")]
    return []


def validate_endpoints(obj: Message, old: Message | None) -> Problems:
    problems: Problems = []
    for i, subset in enumerate(_items(obj, "subsets")):
        s_path = f"subsets[{i}]"
        addresses = _items(subset, "addresses")
        not_ready = _items(subset, "not_ready_addresses")
        if not addresses and not not_ready:
            problems.append(errors.required(s_path,
                                            "must specify `addresses` or `notReadyAddresses`"))
        for field, json_name, items in (("addresses", "addresses", addresses),
                                        ("not_ready_addresses", "notReadyAddresses", not_ready)):
            for j, address in enumerate(items):
                a_path = f"{s_path}.{json_name}[{j}]"
                ip = _str(address, "ip")
                problems.extend(errors.invalid(f"{a_path}.ip", ip, m) for m in is_valid_ip(ip))
                hostname = _str(address, "hostname")
                if hostname:
                    problems.extend(_dns_label(hostname, f"{a_path}.hostname"))
                node_name = _opt(address, "node_name")
                if node_name:
                    problems.extend(_dns_subdomain(node_name, f"{a_path}.nodeName"))
        ports = _items(subset, "ports")
        for j, port in enumerate(ports):
            p_path = f"{s_path}.ports[{j}]"
            name = _str(port, "name")
            if len(ports) > 1 and not name:
                problems.append(errors.required(f"{p_path}.name"))
            elif name:
                problems.extend(_dns_label(name, f"{p_path}.name"))
            number = _int(port, "port")
            problems.extend(errors.invalid(f"{p_path}.port", number, m)
                            for m in is_valid_port_num(number))
            protocol = _str(port, "protocol") or "TCP"
            if protocol not in PROTOCOLS:
                problems.append(errors.unsupported(f"{p_path}.protocol", protocol, PROTOCOLS))
    return problems


def validate_node(obj: Message, old: Message | None) -> Problems:
    spec = _sub(obj, "spec")
    problems: Problems = []
    # Kubernetes reports taints under metadata.taints (a long-standing slip);
    # kubemu reports the field where it is.
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(_items(spec, "taints")):
        t_path = f"spec.taints[{i}]"
        key, value, effect = _str(taint, "key"), _str(taint, "value"), _str(taint, "effect")
        problems.extend(_qualified_name(key, f"{t_path}.key"))
        msgs = labels.is_valid_label_value(value)
        if msgs:
            problems.append(errors.invalid(f"{t_path}.value", value, ";".join(msgs)))
        problems.extend(_taint_effect(effect, f"{t_path}.effect", allow_empty=False))
        if (key, effect) in seen:
            problems.append(FieldError(t_path, "Duplicate value",
                                       "taints must be unique by key and effect pair",
                                       _Shown(f"{key}:{effect}"), True))
        seen.add((key, effect))
    pod_cidr = _str(spec, "pod_cidr")
    if pod_cidr:
        problems.extend(errors.invalid("spec.podCIDR", pod_cidr, m)
                        for m in is_valid_cidr(pod_cidr))
    for i, cidr in enumerate(_items(spec, "pod_cidrs")):
        problems.extend(errors.invalid(f"spec.podCIDRs[{i}]", cidr, m)
                        for m in is_valid_cidr(cidr))
    status = _sub(obj, "status")
    for field, json_name in (("capacity", "capacity"), ("allocatable", "allocatable")):
        values = _map(status, field)
        for name in sorted(values):
            problems.extend(_quantity_problems(values[name],
                                               f"status.{json_name}[{name}]")[0])
    if old is not None:
        old_cidr = _str(_sub(old, "spec"), "pod_cidr")
        if old_cidr and old_cidr != pod_cidr:
            problems.append(errors.forbidden("spec.podCIDRs",
                                             "node updates may not change podCIDR except from "
                                             "\"\" to valid"))
    return problems


def validate_namespace(obj: Message, old: Message | None) -> Problems:
    problems: Problems = []
    for finalizer in _items(_sub(obj, "spec"), "finalizers"):
        problems.extend(_qualified_name(finalizer, "spec.finalizers"))
        if "/" not in finalizer and finalizer not in STANDARD_FINALIZERS:
            problems.append(errors.invalid("spec.finalizers", finalizer,
                                           "name is neither a standard finalizer name nor is "
                                           "it fully qualified"))
    return problems


def _data_keys(keys: Iterable[str], field: str) -> Problems:
    problems: Problems = []
    for key in sorted(keys):
        problems.extend(errors.invalid(f"{field}[{key}]", key, m) for m in is_config_map_key(key))
    return problems


def _immutable_data(obj: Message, old: Message, fields: Sequence[tuple[str, str]]) -> Problems:
    if not _opt(old, "immutable"):
        return []
    problems: Problems = []
    if not _opt(obj, "immutable"):
        problems.append(errors.forbidden("immutable", "field is immutable when `immutable` is set"))
    for field, json_name in fields:
        if dict(_map(obj, field)) != dict(_map(old, field)):
            problems.append(errors.forbidden(json_name,
                                             "field is immutable when `immutable` is set"))
    return problems


def validate_config_map(obj: Message, old: Message | None) -> Problems:
    data, binary = _map(obj, "data"), _map(obj, "binary_data")
    problems = _data_keys(data, "data")
    for key in sorted(data):
        if key in binary:
            problems.append(errors.invalid(f"data[{key}]", key,
                                           "duplicate of key present in binaryData"))
    problems.extend(_data_keys(binary, "binaryData"))
    total = sum(len(v.encode()) for v in data.values()) + sum(len(v) for v in binary.values())
    if total > MAX_SECRET_SIZE_B:
        problems.append(FieldError("", "Too long", f"must have at most {MAX_SECRET_SIZE_B} bytes"))
    if old is not None:
        problems.extend(_immutable_data(obj, old, (("data", "data"),
                                                   ("binary_data", "binaryData"))))
    return problems


SECRET_REQUIRED_KEYS = {
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
}


def validate_secret(obj: Message, old: Message | None) -> Problems:
    data = _map(obj, "data")
    problems = _data_keys(data, "data")
    problems.extend(_data_keys(_map(obj, "string_data"), "stringData"))
    if sum(len(v) for v in data.values()) > MAX_SECRET_SIZE_B:
        problems.append(FieldError("data", "Too long",
                                   f"must have at most {MAX_SECRET_SIZE_B} bytes"))
    secret_type = _str(obj, "type")
    if secret_type == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        if not obj.metadata.annotations.get(key):
            problems.append(errors.required(f"metadata.annotations[{key}]"))
    elif secret_type == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            problems.append(errors.required("data[username]"))
            problems.append(errors.required("data[password]"))
    elif secret_type in SECRET_REQUIRED_KEYS:
        for key in SECRET_REQUIRED_KEYS[secret_type]:
            if key not in data or (key == "ssh-privatekey" and not data[key]):
                problems.append(errors.required(f"data[{key}]"))
    if old is not None:
        problems.extend(immutable(secret_type, _str(old, "type"), "type"))
        problems.extend(_immutable_data(obj, old, (("data", "data"),)))
    return problems


def validate_event(obj: Message, old: Message | None) -> Problems:
    involved = _sub(obj, "involved_object")
    if involved is None or not (_str(involved, "kind") or _str(involved, "name")):
        return [errors.required("involvedObject")]
    problems: Problems = []
    involved_ns = _str(involved, "namespace")
    namespace = obj.metadata.namespace
    if involved_ns:
        if namespace != involved_ns:
            problems.append(errors.invalid("involvedObject.namespace", involved_ns,
                                           "does not match event.namespace"))
    elif namespace not in ("", "default"):
        problems.append(errors.invalid("involvedObject.namespace", involved_ns,
                                       "does not match event.namespace"))
    event_type = _str(obj, "type")
    if event_type and event_type not in ("Normal", "Warning"):
        problems.append(errors.unsupported("type", event_type, ("Normal", "Warning")))
    return problems


def _access_modes(spec: Message | None, path: str, detail: str = "") -> Problems:
    modes = _items(spec, "access_modes")
    problems: Problems = []
    if not modes:
        problems.append(errors.required(path, detail))
    for mode in modes:
        if mode not in ACCESS_MODES:
            problems.append(errors.unsupported(path, mode, ACCESS_MODES))
    return problems


def _pvc_spec(spec: Message | None, path: str) -> Problems:
    problems = _access_modes(spec, f"{path}.accessModes", "at least 1 access mode is required")
    selector = _sub(spec, "selector")
    if selector is not None:
        problems.extend(labels.validate_label_selector(selector, f"{path}.selector"))
    requests = _map(_sub(spec, "resources"), "requests")
    storage_path = f"{path}.resources[storage]"  # sic: Kubernetes' path
    if "storage" not in requests:
        problems.append(errors.required(storage_path))
    else:
        found, q = _quantity_problems(requests["storage"], storage_path)
        problems.extend(found)
        if q is not None and q.value == 0:
            problems.append(errors.invalid(storage_path, str(q), NOT_POSITIVE))
    class_name = _str(spec, "storage_class_name")
    if class_name:
        problems.extend(_dns_subdomain(class_name, f"{path}.storageClassName"))
    mode = _str(spec, "volume_mode")
    if mode and mode not in VOLUME_MODES:
        problems.append(errors.unsupported(f"{path}.volumeMode", mode, VOLUME_MODES))
    return problems


BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def validate_pvc(obj: Message, old: Message | None) -> Problems:
    problems = _pvc_spec(_sub(obj, "spec"), "spec")
    if old is not None:
        new_spec, old_spec = _copy(obj.spec), _copy(old.spec)
        old_size = _map(_sub(old_spec, "resources"), "requests").get("storage")
        new_size = _map(_sub(new_spec, "resources"), "requests").get("storage")
        # A bound claim's storage request may change (grow); volumeName may be
        # set once; a claim without a class may get one (the retroactive
        # default StorageClass assignment) or take its beta annotation's.
        if _str(obj.status, "phase") == "Bound" and "storage" in new_spec.resources.requests:
            if old_size is None:
                del new_spec.resources.requests["storage"]
            else:
                new_spec.resources.requests["storage"] = old_size
        if not _str(old_spec, "volume_name") and _str(new_spec, "volume_name"):
            old_spec.volume_name = new_spec.volume_name
        annotated = old.metadata.annotations.get(BETA_STORAGE_CLASS_ANNOTATION)
        if not old_spec.HasField("storage_class_name") and new_spec.storage_class_name \
                and annotated in (None, new_spec.storage_class_name):
            new_spec.ClearField("storage_class_name")
        if new_spec.SerializeToString(deterministic=True) != old_spec.SerializeToString(
                deterministic=True):
            diff = _diff(old_spec, new_spec, "spec")
            problems.append(errors.forbidden(
                "spec", "spec is immutable after creation except resources.requests for bound "
                "claims" + diff))
        if old_size and new_size and quantity.is_valid(old_size) and quantity.is_valid(new_size):
            if quantity.compare(new_size, old_size) < 0:
                problems.append(errors.forbidden("spec.resources.requests.storage",
                                                 "field can not be less than previous value"))
    return problems


def validate_pv(obj: Message, old: Message | None) -> Problems:
    spec = _sub(obj, "spec")
    problems = _access_modes(spec, "spec.accessModes")
    capacity = _map(spec, "capacity")
    if not capacity:
        problems.append(errors.required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        shown = _Shown("map[" + " ".join(f"{k}:{capacity[k]}" for k in sorted(capacity)) + "]")
        problems.append(errors.unsupported("spec.capacity", shown, ("storage",)))
    for name in sorted(capacity):
        found, q = _quantity_problems(capacity[name], f"spec.capacity[{name}]")
        problems.extend(found)
        if q is not None and q.value == 0:
            problems.append(errors.invalid(f"spec.capacity[{name}]", str(q), NOT_POSITIVE))
    policy = _str(spec, "persistent_volume_reclaim_policy")
    if policy and policy not in RECLAIM_POLICIES:
        problems.append(errors.unsupported("spec.persistentVolumeReclaimPolicy", policy,
                                           RECLAIM_POLICIES))
    mode = _str(spec, "volume_mode")
    if mode and mode not in VOLUME_MODES:
        problems.append(errors.unsupported("spec.volumeMode", mode, VOLUME_MODES))
    class_name = _str(spec, "storage_class_name")
    if class_name:
        problems.extend(_dns_subdomain(class_name, "spec.storageClassName"))
    if spec is not None:
        problems.extend(_volume_source(spec, "spec", PV_SOURCES))
    else:
        problems.append(errors.required("spec", "must specify a volume type"))
    if old is not None:
        old_spec = _sub(old, "spec")
        for field in PV_SOURCES:
            if _sub(spec, field) != _sub(old_spec, field):
                problems.append(errors.forbidden("spec.persistentvolumesource",
                                                 "spec.persistentvolumesource is forbidden once "
                                                 "set"))
                break
    return problems
