"""`kubemu describe`: a readable, kubectl-like description of objects, then their Events.

Each describer writes `\\t`-separated lines at indentation levels (like
kubectl's PrefixWriter); printers.tabbed aligns them. Pods, the workload kinds
(deployments, replicasets, statefulsets, daemonsets, jobs, cronjobs), volumes,
claims, storage classes, services, nodes, configmaps, secrets and namespaces have
kubectl 1.32's own layout; other kinds (ControllerRevision among them) get
kubectl's generic one: every field, sorted, labelled as kubectl labels them
(`holderIdentity` -> `Holder Identity`). What a describer needs besides the
object is listed the way kubectl lists it (a Deployment's ReplicaSets and a
controller's pods by its selector, a claim's namespace's pods, a node's pods and
Lease). Events are those whose involvedObject is the object (a field selector
first, then a filter over the namespace's events if the server does not support
that selector).
"""
from __future__ import annotations

import argparse
import datetime
import re
from fractions import Fraction
import sys
from typing import Any, Callable

from kubemu.cli import common
from kubemu.cli.printers import (NONE, _g, _unset, access_modes, bool_ptr, controller_of,
                                 format_labels, format_selector, human_duration,
                                 is_default_class, job_duration, now_utc, parse_time,
                                 pv_storage_class, quantity_text, selector_string, since, tabbed)

Obj = dict[str, Any]
SKIP_ANNOTATIONS = {common.LAST_APPLIED}


class Lines:
    """kubectl's PrefixWriter: lines at indentation levels of two spaces."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def w(self, level: int, text: str) -> None:
        self.lines.append("  " * level + text)

    def render(self) -> str:
        return tabbed(self.lines)


def format_time(ts: str) -> str:
    """RFC 1123 with a numeric zone, as kubectl describe prints times."""
    t = parse_time(ts)
    if t is None:
        return NONE
    return t.strftime("%a, %d %b %Y %H:%M:%S %z")


GO_ZERO_TIME = "Mon, 01 Jan 0001 00:00:00 +0000"


def _go_time(ts: str) -> str:
    """A time kubectl formats without a nil check: Go's zero time when unset."""
    return format_time(ts) if ts else GO_ZERO_TIME


def _map_lines(out: Lines, level: int, title: str, values: dict[str, str] | None,
               sep: str = "=", skip: set[str] = frozenset()) -> None:
    if sep != "=":
        _annotation_lines(out, level, title, values, skip)
        return
    items = [(k, v) for k, v in sorted((values or {}).items()) if k not in skip]
    if not items:
        out.w(level, f"{title}:\t{NONE}")
        return
    for i, (k, v) in enumerate(items):
        out.w(level, f"{title + ':' if i == 0 else ''}\t{k}{sep}{v}")


MAX_ANNOTATION_LEN = 140


def _annotation_lines(out: Lines, level: int, title: str, values: dict[str, str] | None,
                      skip: set[str] = SKIP_ANNOTATIONS) -> None:
    """printAnnotationsMultiline: `key: value`, or for a long or multi-line value the key
    alone, then each line of the value indented by two and cut at 138 characters."""
    items = [(k, v) for k, v in sorted((values or {}).items()) if k not in skip]
    if not items:
        out.w(level, f"{title}:\t{NONE}")
        return
    for i, (k, v) in enumerate(items):
        lead = f"{title}:" if i == 0 else ""
        value = v.removesuffix("\n")
        if len(value) + len(k) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            out.w(level, f"{lead}\t{k}:")
            for line in value.split("\n"):
                cut = MAX_ANNOTATION_LEN - 2
                out.w(level, f"\t  {line[:cut] + '...' if len(line) > cut else line}")
        else:
            out.w(level, f"{lead}\t{k}: {v.removesuffix(chr(10))}")


def _meta(out: Lines, obj: Obj, *, namespaced: bool = True) -> None:
    meta = obj.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    if namespaced:
        out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))


def _controlled_by(obj: Obj) -> str:
    for ref in _g(obj, "metadata", "ownerReferences", default=[]):
        if ref.get("controller"):
            return f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return ""


# ---------------------------------------------------------------- generic

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]+|[a-z]+|[0-9]+|[^A-Za-z0-9]")
_ACRONYMS = {"API", "URL", "UID", "OSB", "GUID"}


def smart_label(field: str) -> str:
    """kubectl's smartLabelFor: `holderIdentity` -> `Holder Identity`, `uid` -> `UID`;
    a field with characters other than letters and `-` stays as it is."""
    if not field or any(not (c.isalpha() or c == "-") for c in field):
        return field
    parts = []
    for part in _split_camel(field):
        if part == "_":
            continue
        parts.append(part.upper() if part.upper() in _ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(parts)


def _split_camel(word: str) -> list[str]:
    """fatih/camelcase.Split: runs of lower case, upper case (the last upper letter of a
    run starts the next word when lower case follows), digits and other characters."""
    kinds = []
    for c in word:
        kind = 1 if c.islower() else 2 if c.isupper() else 3 if c.isdigit() else 4
        if kinds and kinds[-1][0] == kind:
            kinds[-1][1].append(c)
        else:
            kinds.append((kind, [c]))
    runs = [list(chars) for _, chars in kinds]
    for i in range(len(runs) - 1):
        if kinds[i][0] == 2 and kinds[i + 1][0] == 1 and len(runs[i]) > 0:
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


def _go_value(value: Any) -> str:
    """fmt's %v of a decoded JSON value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unstructured(out: Lines, level: int, content: Obj, prefix: str, skip: set[str]) -> None:
    """printUnstructuredContent: fields sorted, maps and lists as nested sections."""
    for field in sorted(content):
        value = content[field]
        path = f"{prefix}.{field}"
        if path in skip:
            continue
        if isinstance(value, dict):
            out.w(level, f"{smart_label(field)}:")
            _unstructured(out, level + 1, value, path, skip)
        elif isinstance(value, list):
            out.w(level, f"{smart_label(field)}:")
            for child in value:
                if isinstance(child, dict):
                    _unstructured(out, level + 1, child, path, skip)
                else:
                    out.w(level + 1, _go_value(child))
        else:
            out.w(level, f"{smart_label(field)}:\t{_go_value(value)}")


_GENERIC_SKIP = {".metadata.managedFields", ".metadata.name", ".metadata.namespace",
                 ".metadata.labels", ".metadata.annotations"}


def describe_generic(obj: Obj, namespaced: bool = True) -> Lines:
    """kubectl's genericDescriber, for kinds without a describer of their own."""
    out = Lines()
    meta = obj.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    _unstructured(out, 0, obj, "", _GENERIC_SKIP)
    return out


# ---------------------------------------------------------------- pods

def _probe(probe: Obj) -> str:
    if "httpGet" in probe:
        h = probe["httpGet"]
        host = h.get("host", "")
        what = (f"http-get {(h.get('scheme') or 'HTTP').lower()}://{host}:"
                f"{h.get('port', '')}{h.get('path', '')}")
    elif "tcpSocket" in probe:
        tcp = probe["tcpSocket"]
        what = f"tcp-socket {tcp.get('host', '')}:{tcp.get('port', '')}"
    elif "exec" in probe:
        what = f"exec [{' '.join(_g(probe, 'exec', 'command', default=[]))}]"
    elif "grpc" in probe:
        what = f"grpc <pod>:{_g(probe, 'grpc', 'port', default='')}"
    else:
        what = "unknown"
    return (f"{what} delay={probe.get('initialDelaySeconds', 0)}s "
            f"timeout={probe.get('timeoutSeconds', 1)}s period={probe.get('periodSeconds', 10)}s "
            f"#success={probe.get('successThreshold', 1)} "
            f"#failure={probe.get('failureThreshold', 3)}")


def _state(out: Lines, level: int, title: str, state: Obj | None) -> None:
    state = state or {}
    if "running" in state:
        out.w(level, f"{title}:\tRunning")
        out.w(level + 1, f"Started:\t{format_time(state['running'].get('startedAt', ''))}")
    elif "waiting" in state:
        out.w(level, f"{title}:\tWaiting")
        if state["waiting"].get("reason"):
            out.w(level + 1, f"Reason:\t{state['waiting']['reason']}")
        if state["waiting"].get("message"):
            out.w(level + 1, f"Message:\t{state['waiting']['message']}")
    elif "terminated" in state:
        t = state["terminated"]
        out.w(level, f"{title}:\tTerminated")
        if t.get("reason"):
            out.w(level + 1, f"Reason:\t{t['reason']}")
        if t.get("message"):
            out.w(level + 1, f"Message:\t{t['message']}")
        out.w(level + 1, f"Exit Code:\t{t.get('exitCode', 0)}")
        if t.get("signal"):
            out.w(level + 1, f"Signal:\t{t['signal']}")
        out.w(level + 1, f"Started:\t{format_time(t.get('startedAt', ''))}")
        out.w(level + 1, f"Finished:\t{format_time(t.get('finishedAt', ''))}")
    elif title == "State":
        out.w(level, f"{title}:\tWaiting")


def _container(out: Lines, level: int, c: Obj, status: Obj | None, *,
               with_status: bool = True, name_indent: str = "",
               pod: Obj | None = None) -> None:
    """describeContainerBasicInfo and the rest: the name at `level` (a pod template's
    names one space further in), its fields one level deeper."""
    out.w(level, f"{name_indent}{c.get('name', '')}:")
    level += 1
    if with_status:
        out.w(level, f"Container ID:\t{(status or {}).get('containerID', '')}")
    out.w(level, f"Image:\t{c.get('image', '')}")
    if with_status:
        out.w(level, f"Image ID:\t{(status or {}).get('imageID', '')}")
    ports = c.get("ports") or []
    for title, key in (("Port", "containerPort"), ("Host Port", "hostPort")):
        text = ", ".join(f"{p.get(key, 0)}/{p.get('protocol') or 'TCP'}" for p in ports)
        if "," in text:
            out.w(level, f"{title}s:\t{text}")
        else:
            out.w(level, f"{title}:\t{text or NONE}")
    for title, key in (("Command", "command"), ("Args", "args")):
        values = c.get(key) or []
        if values:
            out.w(level, f"{title}:")
            for v in values:
                for line in v.split("\n"):
                    out.w(level + 1, line)
    if with_status:
        _state(out, level, "State", (status or {}).get("state"))
        if (status or {}).get("lastState"):
            _state(out, level, "Last State", status["lastState"])
        out.w(level, f"Ready:\t{'True' if (status or {}).get('ready') else 'False'}")
        out.w(level, f"Restart Count:\t{(status or {}).get('restartCount', 0)}")
    for title in ("limits", "requests"):
        values = _g(c, "resources", title, default={})
        if values:
            out.w(level, f"{title.capitalize()}:")
            for k in sorted(values):
                out.w(level + 1, f"{k}:\t{quantity_text(values[k])}")
    for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"),
                       ("Startup", "startupProbe")):
        if c.get(key):
            out.w(level, f"{title}:\t{_probe(c[key])}")
    env_from = c.get("envFrom") or []
    if env_from:
        out.w(level, "Environment Variables from:")
        for src in env_from:
            ref, source = ((src.get("configMapRef"), "ConfigMap") if "configMapRef" in src
                           else (src.get("secretRef"), "Secret") if "secretRef" in src
                           else ({}, ""))
            ref = ref or {}
            prefix = f" with prefix '{src['prefix']}'" if src.get("prefix") else ""
            out.w(level + 1, f"{ref.get('name', '')}\t{source}{prefix}\t"
                             f"Optional: {_go_bool(ref.get('optional'))}")
    env = c.get("env") or []
    out.w(level, "Environment:" + ("" if env else f"\t{NONE}"))
    for e in env:
        if "valueFrom" not in e:
            for i, line in enumerate((e.get("value") or "").split("\n")):
                out.w(level + 1, f"{e.get('name', '') + ':' if i == 0 else ''}\t{line}")
        else:
            text = _env_value(e, c, pod)
            if text is not None:
                out.w(level + 1, f"{e.get('name', '')}:\t{text}")
    mounts = c.get("volumeMounts") or []
    if not mounts:
        out.w(level, f"Mounts:\t{NONE}")
    else:
        out.w(level, "Mounts:")
        for m in mounts:
            mode = "ro" if m.get("readOnly") else "rw"
            sub = f",path=\"{m['subPath']}\"" if m.get("subPath") else ""
            out.w(level + 1, f"{m.get('mountPath', '')} from {m.get('name', '')} ({mode}{sub})")


_FIELD_PATH = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def _field_value(pod: Obj, path: str) -> str:
    """fieldpath.ExtractFieldPathAsString for the paths the downward API allows."""
    meta = pod.get("metadata") or {}
    found = _FIELD_PATH.match(path)
    if found:
        return (meta.get(found.group(1)) or {}).get(found.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{values[k]}"' for k in sorted(values))
    value = _g(pod, *path.split("."), default="")
    return value if isinstance(value, str) else str(value)


def _resource_value(ref: Obj, container: Obj) -> str:
    """ExtractContainerResourceValue with the default divisor: whole cores rounded up,
    bytes; "0" when the container sets no such resource."""
    from kubemu.api import quantity

    kind, _, name = (ref.get("resource") or "").partition(".")
    text = _g(container, "resources", kind, name)
    if text is None:
        return "0"
    try:
        q = quantity.parse(str(text))
    except ValueError:
        return str(text)
    if name == "cpu":
        return str(-(-q.milli() // 1000))
    return str(q.int_value())


def _env_value(e: Obj, container: Obj, pod: Obj | None) -> str | None:
    """describeContainerEnvVars for a valueFrom: a field read from the pod (nothing to
    read in a template), a resource, or the key a ConfigMap or Secret gives."""
    src = e.get("valueFrom") or {}
    if "fieldRef" in src:
        ref = src["fieldRef"] or {}
        value = _field_value(pod, ref.get("fieldPath", "")) if pod is not None else ""
        return f"{value} ({ref.get('apiVersion', '')}:{ref.get('fieldPath', '')})"
    if "resourceFieldRef" in src:
        ref = src["resourceFieldRef"] or {}
        value = _resource_value(ref, container)
        if value == "0" and ref.get("resource") in ("limits.cpu", "limits.memory"):
            value = "node allocatable"
        return f"{value} ({ref.get('resource', '')})"
    if "secretKeyRef" in src:
        r = src["secretKeyRef"] or {}
        return (f"<set to the key '{r.get('key', '')}' in secret '{r.get('name', '')}'>\t"
                f"Optional: {_go_bool(r.get('optional'))}")
    if "configMapKeyRef" in src:
        r = src["configMapKeyRef"] or {}
        return (f"<set to the key '{r.get('key', '')}' of config map '{r.get('name', '')}'>\t"
                f"Optional: {_go_bool(r.get('optional'))}")
    return None


_VOLUME_TYPES = {
    "emptyDir": "EmptyDir (a temporary directory that shares a pod's lifetime)",
    "hostPath": "HostPath (bare host directory volume)",
    "configMap": "ConfigMap (a volume populated by a ConfigMap)",
    "secret": "Secret (a volume populated by a Secret)",
    "persistentVolumeClaim": "PersistentVolumeClaim (a reference to a PersistentVolumeClaim "
                             "in the same namespace)",
    "downwardAPI": "DownwardAPI (a volume populated by information about the pod)",
    "projected": "Projected (a volume that contains injected data from multiple sources)",
}


def _volumes(out: Lines, volumes: list[Obj], space: str = "") -> None:
    """describeVolumes; in a pod template (`space` "  ") the title is indented and the
    names one space further in, the fields stay where they are."""
    if not volumes:
        out.w(0, f"{space}Volumes:\t{NONE}")
        return
    out.w(0, f"{space}Volumes:")
    for v in volumes:
        out.w(1, f"{' ' if space else ''}{v.get('name', '')}:")
        for key, title in _VOLUME_TYPES.items():
            if key not in v:
                continue
            src = v[key] or {}
            out.w(2, f"Type:\t{title}")
            if key == "emptyDir":
                out.w(2, f"Medium:\t{src.get('medium', '')}")
                limit = src.get("sizeLimit")
                positive = limit is not None and quantity_text(limit) != "0"
                out.w(2, f"SizeLimit:\t{quantity_text(limit) if positive else '<unset>'}")
            elif key == "hostPath":
                out.w(2, f"Path:\t{src.get('path', '')}")
                out.w(2, f"HostPathType:\t{src.get('type') or NONE}")
            elif key == "configMap":
                out.w(2, f"Name:\t{src.get('name', '')}")
                out.w(2, f"Optional:\t{'true' if src.get('optional') else 'false'}")
            elif key == "secret":
                out.w(2, f"SecretName:\t{src.get('secretName', '')}")
                out.w(2, f"Optional:\t{'true' if src.get('optional') else 'false'}")
            elif key == "persistentVolumeClaim":
                out.w(2, f"ClaimName:\t{src.get('claimName', '')}")
                out.w(2, f"ReadOnly:\t{'true' if src.get('readOnly') else 'false'}")
            break
        else:
            _unstructured(out, 2, {k: val for k, val in v.items() if k != "name"}, "", set())


def _pod_template(out: Lines, level: int, template: Obj) -> None:
    out.w(level, "Pod Template:")
    _map_lines(out, level + 1, "Labels", _g(template, "metadata", "labels"))
    annotations = _g(template, "metadata", "annotations")
    if annotations:
        _annotation_lines(out, level + 1, "Annotations", annotations)
    spec = template.get("spec") or {}
    if spec.get("serviceAccountName"):
        out.w(level + 1, f"Service Account:\t{spec['serviceAccountName']}")
    for title, key in (("Init Containers", "initContainers"), ("Containers", "containers")):
        containers = spec.get(key) or []
        if containers or key == "containers":
            # describeContainersLabel: a space, not a tab, before <none>
            out.w(level + 1, f"{title}:" if containers else f"{title}: {NONE}")
            for c in containers:
                _container(out, level + 1, c, None, with_status=False, name_indent=" ")
    _volumes(out, spec.get("volumes") or [], "  " * (level + 1))
    if spec.get("priorityClassName"):
        out.w(level + 1, f"Priority Class Name:\t{spec['priorityClassName']}")
    out.w(level + 1, f"Node-Selectors:\t{format_labels(spec.get('nodeSelector'))}")
    tolerations = _tolerations(spec.get("tolerations"))
    out.w(level + 1, f"Tolerations:\t{tolerations[0]}")
    for t in tolerations[1:]:
        out.w(0, f"\t{t}")


def _tolerations(tolerations: list[Obj] | None) -> list[str]:
    out = []
    for t in tolerations or []:
        text = t.get("key", "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        out.append(text)
    return out or [NONE]


def describe_pod(pod: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    status = pod.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, f"Priority:\t{spec.get('priority', 0)}")
    if spec.get("priorityClassName"):
        out.w(0, f"Priority Class Name:\t{spec['priorityClassName']}")
    out.w(0, f"Service Account:\t{spec.get('serviceAccountName') or 'default'}")
    node = spec.get("nodeName", "")
    host_ip = status.get("hostIP", "")
    out.w(0, f"Node:\t{node + ('/' + host_ip if host_ip else '') if node else NONE}")
    if status.get("startTime"):
        out.w(0, f"Start Time:\t{format_time(status['startTime'])}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    if meta.get("deletionTimestamp"):
        deleted = parse_time(meta["deletionTimestamp"])
        left = human_duration((deleted - now).total_seconds()) if deleted else ""
        out.w(0, f"Status:\tTerminating (lasts {left})")
        if meta.get("deletionGracePeriodSeconds") is not None:
            out.w(0, f"Termination Grace Period:\t{meta['deletionGracePeriodSeconds']}s")
    else:
        out.w(0, f"Status:\t{status.get('phase', '')}")
    if status.get("reason"):
        out.w(0, f"Reason:\t{status['reason']}")
    if status.get("message"):
        out.w(0, f"Message:\t{status['message']}")
    out.w(0, f"IP:\t{status.get('podIP', '')}")
    ips = status.get("podIPs") or ([{"ip": status["podIP"]}] if status.get("podIP") else [])
    if ips:
        out.w(0, "IPs:")
        for ip in ips:
            out.w(1, f"IP:\t{ip.get('ip', '')}")
    else:
        out.w(0, f"IPs:\t{NONE}")
    controller = _controlled_by(pod)
    if controller:
        out.w(0, f"Controlled By:\t{controller}")
    for title, key, status_key in (("Init Containers", "initContainers", "initContainerStatuses"),
                                   ("Containers", "containers", "containerStatuses")):
        containers = spec.get(key) or []
        if not containers:
            continue
        statuses = {s.get("name"): s for s in status.get(status_key) or []}
        out.w(0, f"{title}:")
        for c in containers:
            _container(out, 1, c, statuses.get(c.get("name")), pod=pod)
    conditions = status.get("conditions") or []
    if conditions:
        out.w(0, "Conditions:")
        out.w(1, "Type\tStatus")
        for cond in conditions:
            out.w(1, f"{cond.get('type', '')} \t{cond.get('status', '')} ")
    _volumes(out, spec.get("volumes") or [])
    if status.get("qosClass"):
        out.w(0, f"QoS Class:\t{status['qosClass']}")
    out.w(0, f"Node-Selectors:\t{format_labels(spec.get('nodeSelector'))}")
    tolerations = _tolerations(spec.get("tolerations"))
    out.w(0, f"Tolerations:\t{tolerations[0]}")
    for t in tolerations[1:]:
        out.w(0, f"\t{t}")
    return out


# ---------------------------------------------------------------- workloads, services, nodes

def _conditions_table(out: Lines, conditions: list[Obj]) -> None:
    if not conditions:
        return
    out.w(0, "Conditions:")
    out.w(1, "Type\tStatus\tReason")
    out.w(1, "----\t------\t------")
    for c in conditions:
        out.w(1, f"{c.get('type', '')} \t{c.get('status', '')}\t{c.get('reason', '')}")


def _replicas(obj: Obj) -> int:
    """spec.replicas, which Kubernetes defaults to 1."""
    value = _g(obj, "spec", "replicas")
    return 1 if value is None else int(value)


def _int_or_string(value: Any) -> str:
    """IntOrString.String() of a pointer: `<nil>` when unset."""
    return "<nil>" if value is None else str(value)


def pod_phase_counts(pods: list[Obj], owner_uid: str) -> tuple[int, int, int, int]:
    """getPodStatusForController: (running, waiting, succeeded, failed) over the pods
    whose controller is `owner_uid`; orphans and other controllers' pods are skipped."""
    counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for pod in pods:
        ref = controller_of(pod)
        if ref is None or ref.get("uid") != owner_uid:
            continue
        phase = _g(pod, "status", "phase", default="")
        if phase in counts:
            counts[phase] += 1
    return counts["Running"], counts["Pending"], counts["Succeeded"], counts["Failed"]


def _pods_status(out: Lines, obj: Obj, pods: list[Obj] | None) -> None:
    running, waiting, succeeded, failed = pod_phase_counts(
        pods or [], _g(obj, "metadata", "uid", default=""))
    out.w(0, f"Pods Status:\t{running} Running / {waiting} Waiting / {succeeded} Succeeded / "
             f"{failed} Failed")


POD_TEMPLATE_HASH = "pod-template-hash"


def _pruned(value: Any) -> Any:
    """A JSON value without empty maps and lists: Semantic.DeepEqual holds nil and empty
    equal, and the JSON form drops some of them and keeps others."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _template_without_hash(template: Obj | None) -> Any:
    template = dict(template or {})
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                      if k != POD_TEMPLATE_HASH}
    template["metadata"] = meta
    return _pruned(template)


def deployment_replicasets(d: Obj, replicasets: list[Obj]) -> tuple[list[Obj], Obj | None]:
    """deploymentutil.GetAllReplicaSets as kubectl describe uses it: of the ReplicaSets
    the Deployment controls (by ownerReference uid), oldest first, the new one is the
    first whose template equals the Deployment's but for pod-template-hash; every other
    is old, scaled to zero or not."""
    uid = _g(d, "metadata", "uid", default="")
    owned = [rs for rs in replicasets if (controller_of(rs) or {}).get("uid") == uid and uid]
    owned.sort(key=lambda rs: (parse_time(_g(rs, "metadata", "creationTimestamp", default=""))
                               or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
                               _g(rs, "metadata", "name", default="")))
    want = _template_without_hash(_g(d, "spec", "template"))
    new = next((rs for rs in owned
                if _template_without_hash(_g(rs, "spec", "template")) == want), None)
    old = [rs for rs in owned if rs is not new]
    return old, new


def _replicasets_text(replicasets: list[Obj]) -> str:
    """printReplicaSetsByLabels: `name (current/desired replicas created)`, comma-joined."""
    text = ", ".join(f"{_g(rs, 'metadata', 'name', default='')} "
                     f"({_g(rs, 'status', 'replicas', default=0)}/{_replicas(rs)} "
                     "replicas created)" for rs in replicasets)
    return text or NONE


def describe_deployment(d: Obj, now: datetime.datetime,
                        replicasets: list[Obj] | None = None) -> Lines:
    """kubectl's describeDeployment; `replicasets` are the namespace's ReplicaSets that
    match its selector (None: they could not be listed, the ReplicaSet lines are left out)."""
    out = Lines()
    meta, spec, status = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, f"CreationTimestamp:\t{_go_time(meta.get('creationTimestamp', ''))}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    out.w(0, f"Selector:\t{selector_string(spec.get('selector'))}")
    out.w(0, f"Replicas:\t{_replicas(d)} desired | {status.get('updatedReplicas', 0)} updated | "
             f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} "
             f"available | {status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    out.w(0, f"StrategyType:\t{strategy.get('type', '')}")
    out.w(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}")
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        out.w(0, f"RollingUpdateStrategy:\t{_int_or_string(rolling.get('maxUnavailable'))} max "
                 f"unavailable, {_int_or_string(rolling.get('maxSurge'))} max surge")
    _pod_template(out, 0, spec.get("template") or {})
    _conditions_table(out, status.get("conditions") or [])
    if replicasets is not None:
        old, new = deployment_replicasets(d, replicasets)
        if old or new is not None:
            out.w(0, f"OldReplicaSets:\t{_replicasets_text(old)}")
            out.w(0, f"NewReplicaSet:\t{_replicasets_text([new] if new else [])}")
    return out


def describe_replicaset(rs: Obj, now: datetime.datetime,
                        pods: list[Obj] | None = None) -> Lines:
    """kubectl's describeReplicaSet; `pods` are those matching its selector."""
    out = Lines()
    meta, spec, status = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    controller = _controlled_by(rs)
    if controller:
        out.w(0, f"Controlled By:\t{controller}")
    out.w(0, f"Replicas:\t{status.get('replicas', 0)} current / {_replicas(rs)} desired")
    _pods_status(out, rs, pods)
    _pod_template(out, 0, spec.get("template") or {})
    _conditions_table(out, status.get("conditions") or [])
    return out


def _go_list(values: list[Any] | None) -> str:
    """fmt's %v of a slice: `[a b]`."""
    return "[" + " ".join(str(v) for v in values or []) + "]"


def _volume_claim_templates(out: Lines, templates: list[Obj]) -> None:
    if not templates:
        out.w(0, f"Volume Claims:\t{NONE}")
        return
    out.w(0, "Volume Claims:")
    for pvc in templates:
        out.w(1, f"Name:\t{_g(pvc, 'metadata', 'name', default='')}")
        out.w(1, f"StorageClass:\t{pv_storage_class(pvc)}")
        # kubectl prints both with its labels printer: annotations as key=value too
        _map_lines(out, 1, "Labels", _g(pvc, "metadata", "labels"))
        _map_lines(out, 1, "Annotations", _g(pvc, "metadata", "annotations"))
        capacity = _g(pvc, "spec", "resources", "requests", "storage")
        out.w(1, f"Capacity:\t{quantity_text(capacity) if capacity is not None else '<default>'}")
        out.w(1, f"Access Modes:\t{_go_list(_g(pvc, 'spec', 'accessModes'))}")


def describe_statefulset(sts: Obj, now: datetime.datetime,
                         pods: list[Obj] | None = None) -> Lines:
    """kubectl's describeStatefulSet; `pods` are those matching its selector."""
    out = Lines()
    meta, spec, status = (sts.get("metadata") or {}, sts.get("spec") or {},
                          sts.get("status") or {})
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, f"CreationTimestamp:\t{_go_time(meta.get('creationTimestamp', ''))}")
    out.w(0, f"Selector:\t{selector_string(spec.get('selector'))}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    out.w(0, f"Replicas:\t{_replicas(sts)} desired | {status.get('replicas', 0)} total")
    strategy = spec.get("updateStrategy") or {}
    out.w(0, f"Update Strategy:\t{strategy.get('type', '')}")
    rolling = strategy.get("rollingUpdate")
    if rolling is not None and rolling.get("partition") is not None:
        out.w(1, f"Partition:\t{rolling['partition']}")
        if rolling.get("maxUnavailable") is not None:
            out.w(1, f"MaxUnavailable:\t{rolling['maxUnavailable']}")
    _pods_status(out, sts, pods)
    _pod_template(out, 0, spec.get("template") or {})
    _volume_claim_templates(out, spec.get("volumeClaimTemplates") or [])
    return out


def describe_daemonset(ds: Obj, now: datetime.datetime,
                       pods: list[Obj] | None = None) -> Lines:
    """kubectl's describeDaemonSet (its counters have no tab: they stand out of the
    alignment); `pods` are those matching its selector."""
    out = Lines()
    meta, spec, status = ds.get("metadata") or {}, ds.get("spec") or {}, ds.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Selector:\t{selector_string(spec.get('selector'))}")
    out.w(0, f"Node-Selector:\t{format_labels(_g(spec, 'template', 'spec', 'nodeSelector'))}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    for title, key in (("Desired Number of Nodes Scheduled", "desiredNumberScheduled"),
                       ("Current Number of Nodes Scheduled", "currentNumberScheduled"),
                       ("Number of Nodes Scheduled with Up-to-date Pods",
                        "updatedNumberScheduled"),
                       ("Number of Nodes Scheduled with Available Pods", "numberAvailable"),
                       ("Number of Nodes Misscheduled", "numberMisscheduled")):
        out.w(0, f"{title}: {status.get(key, 0)}")
    _pods_status(out, ds, pods)
    _pod_template(out, 0, spec.get("template") or {})
    return out


def _go_bool(value: Any) -> str:
    return "true" if value else "false"


def completed_indexes(indexes: str, soft_limit: int = 50) -> str:
    """capIndexesListOrNone: cut after the first comma past `soft_limit` characters."""
    if not indexes:
        return NONE
    cut = indexes.find(",", soft_limit)
    return indexes if cut < 0 else indexes[:cut + 1] + "..."


def describe_job(job: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describeJob (it lists no pods: the counts are the Job's status)."""
    out = Lines()
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, f"Selector:\t{selector_string(spec.get('selector'))}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    controller = _controlled_by(job)
    if controller:
        out.w(0, f"Controlled By:\t{controller}")
    if spec.get("parallelism") is not None:
        out.w(0, f"Parallelism:\t{spec['parallelism']}")
    out.w(0, f"Completions:\t{_unset(spec.get('completions'))}")
    if spec.get("completionMode") is not None:
        out.w(0, f"Completion Mode:\t{spec['completionMode']}")
    if spec.get("suspend") is not None:
        out.w(0, f"Suspend:\t{_go_bool(spec['suspend'])}")
    if spec.get("backoffLimit") is not None:
        out.w(0, f"Backoff Limit:\t{spec['backoffLimit']}")
    if spec.get("ttlSecondsAfterFinished") is not None:
        out.w(0, f"TTL Seconds After Finished:\t{spec['ttlSecondsAfterFinished']}")
    start, end = status.get("startTime"), status.get("completionTime")
    if start:
        out.w(0, f"Start Time:\t{format_time(start)}")
    if end:
        out.w(0, f"Completed At:\t{format_time(end)}")
    if start and end:
        out.w(0, f"Duration:\t{job_duration(job, now)}")
    if spec.get("activeDeadlineSeconds") is not None:
        out.w(0, f"Active Deadline Seconds:\t{spec['activeDeadlineSeconds']}s")
    counts = (f"{status.get('succeeded', 0)} Succeeded / {status.get('failed', 0)} Failed")
    if status.get("ready") is None:
        out.w(0, f"Pods Statuses:\t{status.get('active', 0)} Active / {counts}")
    else:
        out.w(0, f"Pods Statuses:\t{status.get('active', 0)} Active ({status['ready']} Ready) / "
                 f"{counts}")
    if spec.get("completionMode") == "Indexed":
        out.w(0, f"Completed Indexes:\t{completed_indexes(status.get('completedIndexes', ''))}")
    _pod_template(out, 0, spec.get("template") or {})
    return out


def describe_cronjob(cj: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describeCronJob, with its job template."""
    out = Lines()
    meta, spec, status = cj.get("metadata") or {}, cj.get("spec") or {}, cj.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    out.w(0, f"Schedule:\t{spec.get('schedule', '')}")
    out.w(0, f"Concurrency Policy:\t{spec.get('concurrencyPolicy', '')}")
    out.w(0, f"Suspend:\t{bool_ptr(spec.get('suspend'))}")
    out.w(0, f"Successful Job History Limit:\t{_unset(spec.get('successfulJobsHistoryLimit'))}")
    out.w(0, f"Failed Job History Limit:\t{_unset(spec.get('failedJobsHistoryLimit'))}")
    deadline = spec.get("startingDeadlineSeconds")
    out.w(0, f"Starting Deadline Seconds:\t{'<unset>' if deadline is None else f'{deadline}s'}")
    job_spec = _g(spec, "jobTemplate", "spec", default={})
    selector = job_spec.get("selector")
    out.w(0, f"Selector:\t{'<unset>' if selector is None else selector_string(selector)}")
    out.w(0, f"Parallelism:\t{_unset(job_spec.get('parallelism'))}")
    out.w(0, f"Completions:\t{_unset(job_spec.get('completions'))}")
    if job_spec.get("activeDeadlineSeconds") is not None:
        out.w(0, f"Active Deadline Seconds:\t{job_spec['activeDeadlineSeconds']}s")
    _pod_template(out, 0, job_spec.get("template") or {})
    last = status.get("lastScheduleTime")
    out.w(0, f"Last Schedule Time:\t{format_time(last) if last else '<unset>'}")
    active = [ref.get("name", "") for ref in status.get("active") or []]
    out.w(0, f"Active Jobs:\t{', '.join(active) if active else NONE}")
    return out


# ---------------------------------------------------------------- services and networking

def format_endpoint_slices(slices: list[Obj] | None, port_names: set[str] | None,
                           limit: int = 3) -> str:
    """kubectl's formatEndpointSlices: the ready endpoints (ready unset counts as
    ready) as `ip:port` for the slice ports named in `port_names` (None: all),
    the first three and "+ N more..."; `<none>` without slices."""
    if not slices:
        return NONE
    shown: list[str] = []
    more = False
    count = 0
    for eps in slices:
        endpoints = eps.get("endpoints") or []
        ports = eps.get("ports") or []
        targets: list[tuple[Obj, Any]] = []
        if not ports:
            targets = [(e, None) for e in endpoints]
        else:
            for port in ports:
                if port_names is None or (port.get("name") or "") in port_names:
                    targets += [(e, port.get("port")) for e in endpoints]
        for endpoint, port in targets:
            if len(shown) == limit:
                more = True
            ready = (endpoint.get("conditions") or {}).get("ready")
            if ready is False:
                continue
            if not more:
                address = (endpoint.get("addresses") or [""])[0]
                if port is not None and ":" in address:
                    address = f"[{address}]"
                shown.append(address if port is None else f"{address}:{port}")
            count += 1
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def load_balancer_ingress(ingress: list[Obj] | None) -> str:
    """buildIngressString: each ingress point's IP (else hostname), with its ipMode."""
    out = []
    for point in ingress or []:
        text = point.get("ip") or point.get("hostname") or ""
        if point.get("ipMode"):
            text += f" ({point['ipMode']})"
        out.append(text)
    return ", ".join(out)


def describe_service(svc: Obj, now: datetime.datetime,
                     endpointslices: list[Obj] | None = None) -> Lines:
    out = Lines()
    _meta(out, svc)
    spec = svc.get("spec") or {}
    out.w(0, f"Selector:\t{format_labels(spec.get('selector'))}")
    out.w(0, f"Type:\t{spec.get('type', '')}")
    if spec.get("ipFamilyPolicy"):
        out.w(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}")
    out.w(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or NONE}")
    out.w(0, f"IP:\t{spec.get('clusterIP', '')}")
    out.w(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or NONE}")
    if spec.get("externalIPs"):
        out.w(0, f"External IPs:\t{','.join(spec['externalIPs'])}")
    if spec.get("loadBalancerIP"):
        out.w(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}")
    if spec.get("loadBalancerClass"):
        out.w(0, f"LoadBalancer Class:\t{spec['loadBalancerClass']}")
    if spec.get("externalName"):
        out.w(0, f"External Name:\t{spec['externalName']}")
    ingress = _g(svc, "status", "loadBalancer", "ingress", default=[])
    if ingress:
        out.w(0, f"LoadBalancer Ingress:\t{load_balancer_ingress(ingress)}")
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        protocol = port.get("protocol", "")
        out.w(0, f"Port:\t{name}\t{port.get('port', 0)}/{protocol}")
        target = port.get("targetPort", 0)
        out.w(0, f"TargetPort:\t{target}/{protocol}")
        if port.get("nodePort"):
            out.w(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}")
        out.w(0, f"Endpoints:\t{format_endpoint_slices(endpointslices, {port.get('name') or ''})}")
    out.w(0, f"Session Affinity:\t{spec.get('sessionAffinity', '')}")
    if spec.get("externalTrafficPolicy"):
        out.w(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}")
    if spec.get("internalTrafficPolicy"):
        out.w(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}")
    if spec.get("healthCheckNodePort"):
        out.w(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}")
    if spec.get("loadBalancerSourceRanges"):
        out.w(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}")
    return out


def describe_endpoints(ep: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    _meta(out, ep)
    out.w(0, "Subsets:")
    for subset in ep.get("subsets") or []:
        ready = ",".join(a.get("ip", "") for a in subset.get("addresses") or [])
        not_ready = ",".join(a.get("ip", "") for a in subset.get("notReadyAddresses") or [])
        out.w(1, f"Addresses:\t{ready or NONE}")
        out.w(1, f"NotReadyAddresses:\t{not_ready or NONE}")
        if subset.get("ports"):
            out.w(1, "Ports:")
            out.w(2, "Name\tPort\tProtocol")
            out.w(2, "----\t----\t--------")
            for port in subset["ports"]:
                out.w(2, f"{port.get('name') or '<unset>'}\t{port.get('port', 0)}\t"
                         f"{port.get('protocol', '')}")
        out.w(0, "")
    return out


def describe_endpointslice(eps: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    _meta(out, eps)
    out.w(0, f"AddressType:\t{eps.get('addressType', '')}")
    ports = eps.get("ports") or []
    if not ports:
        out.w(0, "Ports: <unset>")
    else:
        out.w(0, "Ports:")
        out.w(1, "Name\tPort\tProtocol")
        out.w(1, "----\t----\t--------")
        for port in ports:
            number = port.get("port")
            out.w(1, f"{port.get('name') or '<unset>'}\t"
                     f"{'<unset>' if number is None else number}\t{port.get('protocol', '')}")
    endpoints = eps.get("endpoints") or []
    if not endpoints:
        out.w(0, "Endpoints: <none>")
    else:
        out.w(0, "Endpoints:")
        for endpoint in endpoints:
            out.w(1, f"- Addresses:\t{', '.join(endpoint.get('addresses') or []) or NONE}")
            out.w(2, "Conditions:")
            ready = (endpoint.get("conditions") or {}).get("ready")
            out.w(3, f"Ready:\t{'<unset>' if ready is None else str(bool(ready)).lower()}")
            hostname = endpoint.get("hostname")
            out.w(2, f"Hostname:\t{'<unset>' if hostname is None else hostname}")
            ref = endpoint.get("targetRef")
            if ref:
                out.w(2, f"TargetRef:\t{ref.get('kind', '')}/{ref.get('name', '')}")
            node = endpoint.get("nodeName")
            out.w(2, f"NodeName:\t{'<unset>' if node is None else node}")
            zone = endpoint.get("zone")
            out.w(2, f"Zone:\t{'<unset>' if zone is None else zone}")
    return out


def ingress_backend(backend: Obj | None, services: dict[str, Any]) -> str:
    """describeBackendV1: `svc:port (endpoints)` (or the error reaching them), or a
    resource backend. `services` maps a Service's name to (the Service, its
    EndpointSlices), or to the error message getting them."""
    if not backend:
        return ""
    service_ref = backend.get("service")
    if service_ref:
        name = service_ref.get("name", "")
        port = service_ref.get("port") or {}
        label = f"{name}:{port['name']}" if port.get("name") else f"{name}:{port.get('number', 0)}"
        found = services.get(name)
        if found is None or isinstance(found, str):
            return f"{label} (<error: {found or 'not fetched'}>)"
        svc, slices = found
        port_name = ""
        for sp in _g(svc, "spec", "ports", default=[]) or []:
            if port.get("number") and port["number"] == sp.get("port"):
                port_name = sp.get("name") or ""
            elif port.get("name") and port["name"] == sp.get("name"):
                port_name = sp.get("name") or ""
        return f"{label} ({format_endpoint_slices(slices, {port_name})})"
    resource = backend.get("resource")
    if resource:
        group = resource.get("apiGroup")
        return (f"APIGroup: {NONE if group is None else group}, Kind: {resource.get('kind', '')}, "
                f"Name: {resource.get('name', '')}")
    return ""


def ingress_service_names(ing: Obj) -> list[str]:
    """The Services an Ingress's backends name, each once, in order."""
    spec = ing.get("spec") or {}
    backends = [spec.get("defaultBackend")] + [
        path.get("backend") for rule in spec.get("rules") or []
        for path in (rule.get("http") or {}).get("paths") or []]
    names = [(b.get("service") or {}).get("name", "") for b in backends if b]
    return list(dict.fromkeys(n for n in names if n))


def describe_ingress(ing: Obj, now: datetime.datetime,
                     services: dict[str, Any] | None = None) -> Lines:
    from kubemu.cli.printers import load_balancer_addresses

    services = services or {}
    out = Lines()
    meta = ing.get("metadata") or {}
    spec = ing.get("spec") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, f"Address:\t{load_balancer_addresses(_g(ing, 'status', 'loadBalancer'), True)}")
    class_name = spec.get("ingressClassName")
    out.w(0, f"Ingress Class:\t{NONE if class_name is None else class_name}")
    default = spec.get("defaultBackend")
    out.w(0, f"Default backend:\t"
             f"{ingress_backend(default, services) if default else '<default>'}")
    if spec.get("tls"):
        out.w(0, "TLS:")
        for tls in spec["tls"]:
            hosts = ",".join(tls.get("hosts") or [])
            out.w(1, f"{tls['secretName']} terminates {hosts}" if tls.get("secretName")
                  else f"SNI routes {hosts}")
    out.w(0, "Rules:")
    out.w(1, "Host\tPath\tBackends")
    out.w(1, "----\t----\t--------")
    count = 0
    for rule in spec.get("rules") or []:
        http = rule.get("http")
        if http is None:
            continue
        count += 1
        out.w(1, f"{rule.get('host') or '*'}\t")
        for path in http.get("paths") or []:
            out.w(2, f"\t{path.get('path', '')} \t{ingress_backend(path.get('backend'), services)}")
    if count == 0:
        out.w(1, f"*\t*\t{ingress_backend(default, services)}")
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    return out


def describe_ingressclass(ic: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    _meta(out, ic, namespaced=False)
    spec = ic.get("spec") or {}
    out.w(0, f"Controller:\t{spec.get('controller', '')}")
    params = spec.get("parameters")
    if params:
        out.w(0, "Parameters:")
        if params.get("apiGroup") is not None:
            out.w(1, f"APIGroup:\t{params['apiGroup']}")
        out.w(1, f"Kind:\t{params.get('kind', '')}")
        out.w(1, f"Name:\t{params.get('name', '')}")
    return out


def _add(total: dict[str, Any], values: dict[str, Any]) -> None:
    """addResourceList: a new key takes the quantity (and its format), others add to it."""
    from kubemu.api import quantity

    for name, q in values.items():
        total[name] = q if name not in total else quantity.Quantity(total[name].value + q.value,
                                                                   total[name].format)


def _max(total: dict[str, Any], values: dict[str, Any]) -> None:
    for name, q in values.items():
        if name not in total or q.value > total[name].value:
            total[name] = q


def _quantities(values: dict[str, str] | None) -> dict[str, Any]:
    from kubemu.api import quantity

    out = {}
    for name, text in (values or {}).items():
        try:
            out[name] = quantity.parse(str(text))
        except ValueError:
            continue  # the apiserver validated it; a bad one counts as nothing
    return out


def pod_requests_and_limits(pod: Obj) -> tuple[dict[str, Any], dict[str, Any]]:
    """kubectl's resourcehelper.PodRequestsAndLimits: containers summed, the largest init
    step (sidecars counted in), plus the pod's overhead."""
    spec = pod.get("spec") or {}
    out = []
    for field in ("requests", "limits"):
        total: dict[str, Any] = {}
        for c in spec.get("containers") or []:
            _add(total, _quantities(_g(c, "resources", field)))
        sidecars: dict[str, Any] = {}
        init_max: dict[str, Any] = {}
        for c in spec.get("initContainers") or []:
            own = _quantities(_g(c, "resources", field))
            if c.get("restartPolicy") == "Always":
                _add(total, own)
                _add(sidecars, own)
                step = dict(sidecars)
            else:
                step = {}
                _add(step, own)
                _add(step, sidecars)
            _max(init_max, step)
        _max(total, init_max)
        if spec.get("overhead"):
            overhead = _quantities(spec["overhead"])
            if field == "limits":  # kubectl adds overhead only to limits that are set
                overhead = {k: v for k, v in overhead.items() if k in total}
            _add(total, overhead)
        out.append(total)
    return out[0], out[1]


def _percent(part: Any, whole: Any, *, milli: bool) -> int:
    """int64(float64(part) / float64(whole) * 100), kubectl's truncated percentage."""
    if part is None:
        return 0
    a = part.milli() if milli else part.int_value()
    b = (whole.milli() if milli else whole.int_value()) if whole is not None else 0
    return int(a / b * 100) if b else 0


def _node_resources(out: Lines, node: Obj, pods: list[Obj], now: datetime.datetime) -> None:
    """kubectl's describeNodeResource: Non-terminated Pods and Allocated resources."""
    from kubemu.api import quantity

    status = node.get("status") or {}
    allocatable = _quantities(status.get("allocatable") or status.get("capacity"))
    cpu_alloc, mem_alloc = allocatable.get("cpu"), allocatable.get("memory")
    zero = quantity.parse("0")

    def cell(q: Any, whole: Any, milli: bool) -> str:
        return f"{q or zero} ({_percent(q, whole, milli=milli)}%)"

    out.w(0, f"Non-terminated Pods:\t({len(pods)} in total)")
    out.w(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge")
    out.w(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---")
    for pod in pods:
        reqs, limits = pod_requests_and_limits(pod)
        meta = pod.get("metadata") or {}
        out.w(1, f"{meta.get('namespace', '')}\t{meta.get('name', '')}\t\t"
                 f"{cell(reqs.get('cpu'), cpu_alloc, True)}\t"
                 f"{cell(limits.get('cpu'), cpu_alloc, True)}\t"
                 f"{cell(reqs.get('memory'), mem_alloc, False)}\t"
                 f"{cell(limits.get('memory'), mem_alloc, False)}\t"
                 f"{since(meta.get('creationTimestamp', ''), now)}")
    out.w(0, "Allocated resources:")
    out.w(0, "  (Total limits may be over 100 percent, i.e., overcommitted.)")
    out.w(1, "Resource\tRequests\tLimits")
    out.w(1, "--------\t--------\t------")
    reqs: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for pod in pods:
        r, lim = pod_requests_and_limits(pod)
        _add(reqs, r)
        _add(limits, lim)
    for name, milli in (("cpu", True), ("memory", False), ("ephemeral-storage", False)):
        whole = allocatable.get(name)
        out.w(1, f"{name}\t{cell(reqs.get(name), whole, milli)}\t"
                 f"{cell(limits.get(name), whole, milli)}")
    standard = {"cpu", "memory", "ephemeral-storage", "pods", "storage"}
    huge = sorted(n for n in allocatable if n.startswith("hugepages-"))
    extended = sorted(n for n in allocatable if n not in standard and n not in huge
                      and not n.startswith("requests.") and not n.startswith("limits."))
    for name in huge:
        whole = allocatable[name]
        out.w(1, f"{name}\t{cell(reqs.get(name), whole, False)}\t"
                 f"{cell(limits.get(name), whole, False)}")
    for name in extended:
        out.w(1, f"{name}\t{reqs.get(name) or zero}\t{limits.get(name) or zero}")


def describe_node(node: Obj, now: datetime.datetime, pods: list[Obj] | None = None,
                  lease: Obj | None = None, lease_error: str = "") -> Lines:
    """kubectl's describeNode; `pods` are the node's non-terminated pods (None: their
    sections are left out), `lease` its kube-node-lease Lease (or why it is not there)."""
    from kubemu.cli.printers import node_roles

    out = Lines()
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    status = node.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Roles:\t{node_roles(node)}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    out.w(0, f"CreationTimestamp:\t{format_time(meta.get('creationTimestamp', ''))}")
    taints = [f"{t.get('key', '')}{'=' + t['value'] if t.get('value') else ''}:"
              f"{t.get('effect', '')}" for t in spec.get("taints") or []]
    out.w(0, f"Taints:\t{taints[0] if taints else NONE}")
    for t in taints[1:]:
        out.w(0, f"\t{t}")
    out.w(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}")
    if lease_error:
        out.w(0, f"Lease:\tFailed to get lease: {lease_error}")
    elif lease is not None:
        lease_spec = lease.get("spec") or {}
        out.w(0, "Lease:")
        out.w(1, f"HolderIdentity:\t{lease_spec.get('holderIdentity') or '<unset>'}")
        for title, key in (("AcquireTime", "acquireTime"), ("RenewTime", "renewTime")):
            value = lease_spec.get(key)
            out.w(1, f"{title}:\t{format_time(value) if value else '<unset>'}")
    conditions = status.get("conditions") or []
    if conditions:
        out.w(0, "Conditions:")
        out.w(1, "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage")
        out.w(1, "----\t------\t-----------------\t------------------\t------\t-------")
        for c in conditions:
            out.w(1, f"{c.get('type', '')} \t{c.get('status', '')} \t"
                     f"{_go_time(c.get('lastHeartbeatTime', ''))} \t"
                     f"{_go_time(c.get('lastTransitionTime', ''))} \t"
                     f"{c.get('reason', '')} \t{c.get('message', '')}")
    out.w(0, "Addresses:")
    for a in status.get("addresses") or []:
        out.w(1, f"{a.get('type', '')}:\t{a.get('address', '')}")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        values = status.get(key) or {}
        if values:
            out.w(0, f"{title}:")
            for k in sorted(values):
                out.w(1, f"{k}:\t{values[k]}")
    info = status.get("nodeInfo") or {}
    out.w(0, "System Info:")
    for key in ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                "operatingSystem", "architecture", "containerRuntimeVersion", "kubeletVersion",
                "kubeProxyVersion"):
        label = {"machineID": "Machine ID", "systemUUID": "System UUID", "bootID": "Boot ID",
                 "osImage": "OS Image", "kubeProxyVersion": "Kube-Proxy Version"}.get(
            key, smart_label(key))
        out.w(1, f"{label}:\t{info.get(key, '')}")
    if spec.get("podCIDR"):
        out.w(0, f"PodCIDR:\t{spec['podCIDR']}")
    if spec.get("podCIDRs"):
        out.w(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}")
    if spec.get("providerID"):
        out.w(0, f"ProviderID:\t{spec['providerID']}")
    if pods is not None:
        _node_resources(out, node, pods, now)
    return out


def describe_configmap(cm: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    _meta(out, cm)
    out.w(0, "")
    out.w(0, "Data")
    out.w(0, "====")
    for key in sorted(cm.get("data") or {}):
        out.w(0, f"{key}:")
        out.w(0, "----")
        out.lines.extend(cm["data"][key].split("\n"))
        out.w(0, "")
    out.w(0, "")
    out.w(0, "BinaryData")
    out.w(0, "====")
    for key in sorted(cm.get("binaryData") or {}):
        import base64

        size = len(base64.b64decode(cm["binaryData"][key]))
        out.w(0, f"{key}: {size} bytes")
    out.w(0, "")
    return out


def describe_secret(secret: Obj, now: datetime.datetime) -> Lines:
    import base64

    out = Lines()
    _meta(out, secret)
    out.w(0, "")
    out.w(0, f"Type:\t{secret.get('type') or 'Opaque'}")
    out.w(0, "")
    out.w(0, "Data")
    out.w(0, "====")
    for key in sorted(secret.get("data") or {}):
        size = len(base64.b64decode(secret["data"][key]))
        out.w(0, f"{key}:\t{size} bytes")
    return out


def describe_namespace(ns: Obj, now: datetime.datetime,
                       resourcequotas: list[Obj] | None = None,
                       limitranges: list[Obj] | None = None) -> Lines:
    """kubectl's describeNamespace, with the namespace's quotas and limit ranges."""
    out = Lines()
    _meta(out, ns, namespaced=False)
    out.w(0, f"Status:\t{_g(ns, 'status', 'phase', default='') or 'Active'}")
    conditions = _g(ns, "status", "conditions", default=None) or []
    if conditions:  # the namespace controller's, while it terminates
        out.w(0, "Conditions:")
        out.w(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage")
        out.w(1, "----\t------\t------------------\t------\t-------")
        for c in conditions:
            out.w(1, f"{c.get('type', '')}\t{c.get('status', '')}\t"
                     f"{_go_time(c.get('lastTransitionTime', ''))}\t{c.get('reason', '')}\t"
                     f"{c.get('message', '')}")
    out.w(0, "")
    _namespace_quotas(out, resourcequotas or [])
    out.w(0, "")
    _namespace_limits(out, limitranges or [])
    return out


# ---------------------------------------------------------------- quotas and limits

_SCOPE_HELP = {
    "Terminating": "Matches all pods that have an active deadline. These pods have a limited "
                   "lifespan on a node before being actively terminated by the system.",
    "NotTerminating": "Matches all pods that do not have an active deadline. These pods usually "
                      "include long running pods whose container command is not expected to "
                      "terminate.",
    "BestEffort": "Matches all pods that do not have resource requirements set. These pods have "
                  "a best effort quality of service.",
    "NotBestEffort": "Matches all pods that have at least one resource requirement set. These "
                     "pods have a burstable or guaranteed quality of service.",
}


def _scopes(out: Lines, level: int, rq: Obj, bullet: str) -> None:
    scopes = sorted(_g(rq, "spec", "scopes", default=[]) or [])
    if not scopes:
        return
    out.w(level, f"Scopes:\t{', '.join(scopes)}")
    for scope in scopes:
        if scope in _SCOPE_HELP:
            out.w(level, f"{bullet}{_SCOPE_HELP[scope]}")


def _used_as_hard(used: Any, hard: Any) -> str:
    """describeQuota: a used quantity in another format than its hard one is
    printed as its whole value (rounded up) in the hard one's format."""
    from kubemu.api import quantity

    try:
        hard_q = quantity.parse(str(hard))
        used_q = quantity.parse(str(used)) if used not in (None, "") else quantity.parse("0")
    except ValueError:
        return quantity_text(used)
    if used_q.format == hard_q.format:
        return str(used_q)
    return quantity.canonical(Fraction(used_q.int_value()), hard_q.format)


def describe_resourcequota(rq: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describeQuota (no labels, no events)."""
    out = Lines()
    meta = rq.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    _scopes(out, 0, rq, " * ")
    out.w(0, "Resource\tUsed\tHard")
    out.w(0, "--------\t----\t----")
    hard = _g(rq, "status", "hard", default={}) or {}
    used = _g(rq, "status", "used", default={}) or {}
    for name in sorted(hard):
        out.w(0, f"{name}\t{_used_as_hard(used.get(name), hard[name])}\t"
                 f"{quantity_text(hard[name])}")
    return out


def _limit_rows(out: Lines, lr: Obj, prefix: str) -> None:
    """describeLimitRangeSpec: a row per item and resource, `-` where unset
    (kubectl walks a Go map, in no fixed order; sorted here)."""
    for item in _g(lr, "spec", "limits", default=[]) or []:
        columns = [item.get(f) or {} for f in ("min", "max", "defaultRequest", "default",
                                               "maxLimitRequestRatio")]
        names = set().union(*columns)
        for name in sorted(names):
            cells = [quantity_text(c[name]) if name in c else "-" for c in columns]
            out.w(0, f"{prefix}{item.get('type', '')}\t{name}\t" + "\t".join(cells))


_LIMITS_HEADER = "Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio"
_LIMITS_RULE = "----\t--------\t---\t---\t---------------\t-------------\t-----------------------"


def describe_limitrange(lr: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describeLimitRange (no labels, no events)."""
    out = Lines()
    meta = lr.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, _LIMITS_HEADER)
    out.w(0, _LIMITS_RULE)
    _limit_rows(out, lr, "")
    return out


def _namespace_quotas(out: Lines, quotas: list[Obj]) -> None:
    """DescribeResourceQuotas: every quota of the namespace, by name."""
    if not quotas:
        out.w(0, "No resource quota.")
        return
    out.w(0, "Resource Quotas")
    for rq in sorted(quotas, key=lambda q: _g(q, "metadata", "name", default="")):
        out.w(1, f"Name:\t{_g(rq, 'metadata', 'name', default='')}")
        _scopes(out, 1, rq, "* ")
        out.w(1, "Resource\tUsed\tHard")
        out.w(1, "--------\t---\t---")
        hard = _g(rq, "status", "hard", default={}) or {}
        used = _g(rq, "status", "used", default={}) or {}
        for name in sorted(hard):
            out.w(1, f"{name}\t{quantity_text(used.get(name))}\t{quantity_text(hard[name])}")


def _namespace_limits(out: Lines, ranges: list[Obj]) -> None:
    """DescribeLimitRanges: every range's rows under one header."""
    if not ranges:
        out.w(0, "No LimitRange resource.")
        return
    out.w(0, "Resource Limits")
    out.w(0, " " + _LIMITS_HEADER)
    out.w(0, " " + _LIMITS_RULE)
    for lr in ranges:
        _limit_rows(out, lr, " ")


# ---------------------------------------------------------------- storage

def _node_selector_terms(out: Lines, level: int, title: str, requirements: list[Obj]) -> None:
    if not requirements:
        out.w(level, f"{title}:\t{NONE}")
        return
    for i, req in enumerate(requirements):
        text = f"{req.get('key', '')} {(req.get('operator') or '').lower()}"
        if req.get("values"):
            text += f" [{', '.join(req['values'])}]"
        out.w(level, f"{title + ':' if i == 0 else ''}\t{text}")


def _volume_node_affinity(out: Lines, affinity: Obj | None) -> None:
    required = (affinity or {}).get("required")
    if required is None:
        out.w(0, f"Node Affinity:\t{NONE}")
        return
    out.w(0, "Node Affinity:\t")
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        out.w(1, f"Required Terms:\t{NONE}")
        return
    out.w(1, "Required Terms:\t")
    for i, term in enumerate(terms):
        _node_selector_terms(out, 2, f"Term {i}", term.get("matchExpressions") or [])


def _pv_source(out: Lines, spec: Obj) -> None:
    """The volume source kinds kubemu provisions; others print `<unknown>` here."""
    if "hostPath" in spec:
        src = spec["hostPath"] or {}
        out.w(2, "Type:\tHostPath (bare host directory volume)")
        out.w(2, f"Path:\t{src.get('path', '')}")
        out.w(2, f"HostPathType:\t{src.get('type') if src.get('type') is not None else NONE}")
    elif "local" in spec:
        out.w(2, "Type:\tLocalVolume (a persistent volume backed by local storage on a node)")
        out.w(2, f"Path:\t{(spec['local'] or {}).get('path', '')}")
    elif "nfs" in spec:
        src = spec["nfs"] or {}
        out.w(2, "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)")
        out.w(2, f"Server:\t{src.get('server', '')}")
        out.w(2, f"Path:\t{src.get('path', '')}")
        out.w(2, f"ReadOnly:\t{_go_bool(src.get('readOnly'))}")
    else:
        out.w(1, "<unknown>")


def _volume_status(out: Lines, obj: Obj, now: datetime.datetime) -> None:
    deleted = _g(obj, "metadata", "deletionTimestamp", default="")
    if deleted:
        out.w(0, f"Status:\tTerminating (lasts {since(deleted, now)})")
    else:
        out.w(0, f"Status:\t{_g(obj, 'status', 'phase', default='') or 'Pending'}")


def describe_persistentvolume(pv: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describePersistentVolume."""
    out = Lines()
    meta, spec, status = pv.get("metadata") or {}, pv.get("spec") or {}, pv.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    out.w(0, f"Finalizers:\t{_go_list(meta.get('finalizers'))}")
    out.w(0, f"StorageClass:\t{pv_storage_class(pv)}")
    _volume_status(out, pv, now)
    claim = spec.get("claimRef")
    out.w(0, f"Claim:\t{claim.get('namespace', '') + '/' + claim.get('name', '') if claim else ''}")
    out.w(0, f"Reclaim Policy:\t{spec.get('persistentVolumeReclaimPolicy', '')}")
    out.w(0, f"Access Modes:\t{access_modes(spec.get('accessModes'))}")
    if spec.get("volumeMode") is not None:
        out.w(0, f"VolumeMode:\t{spec['volumeMode']}")
    out.w(0, f"Capacity:\t{quantity_text(_g(spec, 'capacity', 'storage'))}")
    _volume_node_affinity(out, spec.get("nodeAffinity"))
    out.w(0, f"Message:\t{status.get('message', '')}")
    out.w(0, "Source:")
    _pv_source(out, spec)
    return out


def pods_using_claim(pvc: Obj, pods: list[Obj]) -> list[Obj]:
    """getPodsForPVC: pods with a volume naming the claim (once per such volume, as
    kubectl counts them), then pods that own the claim; sorted by name."""
    name = _g(pvc, "metadata", "name", default="")
    using = [pod for pod in pods for volume in _g(pod, "spec", "volumes", default=[])
             if _g(volume, "persistentVolumeClaim", "claimName") == name]
    for ref in _g(pvc, "metadata", "ownerReferences", default=[]):
        if ref.get("kind") != "Pod":
            continue
        owner = next((p for p in pods if _g(p, "metadata", "uid") == ref.get("uid")), None)
        if owner is not None and all(_g(p, "metadata", "uid") != ref.get("uid") for p in using):
            using.append(owner)
    return sorted(using, key=lambda p: _g(p, "metadata", "name", default=""))


def describe_persistentvolumeclaim(pvc: Obj, now: datetime.datetime,
                                   pods: list[Obj] | None = None) -> Lines:
    """kubectl's describePersistentVolumeClaim; `pods` are the namespace's pods, of
    which those using the claim show under Used By."""
    out = Lines()
    meta, spec, status = pvc.get("metadata") or {}, pvc.get("spec") or {}, pvc.get("status") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    out.w(0, f"StorageClass:\t{pv_storage_class(pvc)}")
    _volume_status(out, pvc, now)
    out.w(0, f"Volume:\t{spec.get('volumeName', '')}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _annotation_lines(out, 0, "Annotations", meta.get("annotations"))
    out.w(0, f"Finalizers:\t{_go_list(meta.get('finalizers'))}")
    capacity = modes = ""
    if spec.get("volumeName"):
        capacity = quantity_text(_g(status, "capacity", "storage"))
        modes = access_modes(status.get("accessModes"))
    out.w(0, f"Capacity:\t{capacity}")
    out.w(0, f"Access Modes:\t{modes}")
    if spec.get("volumeMode") is not None:
        out.w(0, f"VolumeMode:\t{spec['volumeMode']}")
    source = spec.get("dataSource")
    if source is not None:
        out.w(0, "DataSource:")
        if source.get("apiGroup") is not None:
            out.w(1, f"APIGroup:\t{source['apiGroup']}")
        out.w(1, f"Kind:\t{source.get('kind', '')}")
        out.w(1, f"Name:\t{source.get('name', '')}")
    users = [_g(p, "metadata", "name", default="") for p in pods_using_claim(pvc, pods or [])]
    out.w(0, f"Used By:\t{users[0] if users else NONE}")
    for name in users[1:]:
        out.w(0, f"\t{name}")
    conditions = status.get("conditions") or []
    if conditions:
        out.w(0, "Conditions:")
        out.w(1, "Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage")
        out.w(1, "----\t------\t-----------------\t------------------\t------\t-------")
        for c in conditions:
            out.w(1, f"{c.get('type', '')} \t{c.get('status', '')} \t"
                     f"{_go_time(c.get('lastProbeTime', ''))} \t"
                     f"{_go_time(c.get('lastTransitionTime', ''))} \t"
                     f"{c.get('reason', '')} \t{c.get('message', '')}")
    return out


def describe_storageclass(sc: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describeStorageClass."""
    out = Lines()
    meta = sc.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"IsDefaultClass:\t{'Yes' if is_default_class(sc) else 'No'}")
    out.w(0, f"Annotations:\t{format_labels(meta.get('annotations'))}")
    out.w(0, f"Provisioner:\t{sc.get('provisioner', '')}")
    out.w(0, f"Parameters:\t{format_labels(sc.get('parameters'))}")
    out.w(0, f"AllowVolumeExpansion:\t{bool_ptr(sc.get('allowVolumeExpansion'))}")
    options = sc.get("mountOptions") or []
    if not options:
        out.w(0, f"MountOptions:\t{NONE}")
    else:
        out.w(0, "MountOptions:")
        for option in options:
            out.w(1, option)
    if sc.get("reclaimPolicy") is not None:
        out.w(0, f"ReclaimPolicy:\t{sc['reclaimPolicy']}")
    if sc.get("volumeBindingMode") is not None:
        out.w(0, f"VolumeBindingMode:\t{sc['volumeBindingMode']}")
    topologies = sc.get("allowedTopologies")
    if topologies is not None:
        if not topologies:
            out.w(0, f"AllowedTopologies:\t{NONE}")
        else:
            out.w(0, "AllowedTopologies:\t")
            for i, term in enumerate(topologies):
                reqs = [{"key": r.get("key", ""), "operator": "in", "values": r.get("values")}
                        for r in term.get("matchLabelExpressions") or []]
                _node_selector_terms(out, 1, f"Term {i}", reqs)
    return out


def describe_poddisruptionbudget(pdb: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describePodDisruptionBudgetV1 (no labels or annotations there)."""
    out = Lines()
    meta = pdb.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    spec = pdb.get("spec") or {}
    if spec.get("minAvailable") is not None:
        out.w(0, f"Min available:\t{spec['minAvailable']}")
    elif spec.get("maxUnavailable") is not None:
        out.w(0, f"Max unavailable:\t{spec['maxUnavailable']}")
    selector = spec.get("selector")
    out.w(0, f"Selector:\t{format_selector(selector) if selector is not None else '<unset>'}")
    status = pdb.get("status") or {}
    out.w(0, "Status:")
    out.w(2, f"Allowed disruptions:\t{int(status.get('disruptionsAllowed') or 0)}")
    out.w(2, f"Current:\t{int(status.get('currentHealthy') or 0)}")
    out.w(2, f"Desired:\t{int(status.get('desiredHealthy') or 0)}")
    out.w(2, f"Total:\t{int(status.get('expectedPods') or 0)}")
    return out


def describe_priorityclass(pc: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describePriorityClass."""
    out = Lines()
    meta = pc.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    out.w(0, f"Value:\t{int(pc.get('value') or 0)}")
    out.w(0, f"GlobalDefault:\t{'true' if pc.get('globalDefault') else 'false'}")
    out.w(0, f"PreemptionPolicy:\t{pc.get('preemptionPolicy', '')}")
    out.w(0, f"Description:\t{pc.get('description', '')}")
    out.w(0, f"Annotations:\t{format_labels(meta.get('annotations'))}")
    return out
# ---------------------------------------------------------------- autoscaling

def _hpa_direction(out: Lines, direction: str, rules: Obj | None) -> None:
    """printDirectionBehavior."""
    if rules is None:
        return
    out.w(1, f"{direction}:")
    if rules.get("stabilizationWindowSeconds") is not None:
        out.w(2, f"Stabilization Window: {rules['stabilizationWindowSeconds']} seconds")
    if rules.get("policies"):
        out.w(2, f"Select Policy: {rules.get('selectPolicy') or 'Max'}")
        out.w(2, "Policies:")
        for p in rules["policies"]:
            out.w(3, f"- Type: {p.get('type', '')}\tValue: {p.get('value', 0)}\t"
                     f"Period: {p.get('periodSeconds', 0)} seconds")


def describe_horizontalpodautoscaler(hpa: Obj, now: datetime.datetime) -> Lines:
    """kubectl's describeHorizontalPodAutoscalerV2 (Resource and ContainerResource
    metrics with their values; the other types with what kubemu can know of them)."""
    out = Lines()
    meta, spec, status = hpa.get("metadata") or {}, hpa.get("spec") or {}, hpa.get("status") or {}
    _meta(out, hpa)
    out.w(0, f"CreationTimestamp:\t{format_time(meta.get('creationTimestamp', ''))}")
    ref = spec.get("scaleTargetRef") or {}
    out.w(0, f"Reference:\t{ref.get('kind', '')}/{ref.get('name', '')}")
    out.w(0, "Metrics:\t( current / target )")
    currents = status.get("currentMetrics") or []
    for i, metric in enumerate(spec.get("metrics") or []):
        kind = metric.get("type", "")
        current = currents[i] if i < len(currents) else None
        if kind == "Resource":
            source = metric.get("resource") or {}
            _hpa_direct_metric(out, f"resource {source.get('name', '')} on pods", source,
                               (current or {}).get("resource"))
        elif kind == "ContainerResource":
            source = metric.get("containerResource") or {}
            _hpa_direct_metric(out, f"resource {source.get('name', '')} of container "
                                    f"\"{source.get('container', '')}\" on pods", source,
                               (current or {}).get("containerResource"))
        elif kind == "Pods":
            source = metric.get("pods") or {}
            name = _g(source, "metric", "name", default="")
            out.w(1, f'"{name}" on pods:\t<unknown> / '
                     f'{_g(source, "target", "averageValue", default="")}')
        elif kind == "Object":
            source = metric.get("object") or {}
            obj_ref = source.get("describedObject") or {}
            name = _g(source, "metric", "name", default="")
            target = source.get("target") or {}
            value = target.get("averageValue") or target.get("value") or ""
            out.w(1, f'"{name}" on {obj_ref.get("kind", "")}/{obj_ref.get("name", "")}:\t'
                     f'<unknown> / {value}')
        elif kind == "External":
            source = metric.get("external") or {}
            name = _g(source, "metric", "name", default="")
            target = source.get("target") or {}
            value = target.get("averageValue") or target.get("value") or ""
            out.w(1, f'"{name}" (target value):\t<unknown> / {value}')
        else:
            out.w(1, f'<unknown metric type "{kind}">')
    min_replicas = spec.get("minReplicas")
    out.w(0, f"Min replicas:\t{'<unset>' if min_replicas is None else min_replicas}")
    out.w(0, f"Max replicas:\t{spec.get('maxReplicas', 0)}")
    behavior = spec.get("behavior")
    if behavior is not None:
        out.w(0, "Behavior:")
        _hpa_direction(out, "Scale Up", behavior.get("scaleUp"))
        _hpa_direction(out, "Scale Down", behavior.get("scaleDown"))
    out.w(0, f"{ref.get('kind', '')} pods:\t{status.get('currentReplicas', 0)} current / "
             f"{status.get('desiredReplicas', 0)} desired")
    conditions = status.get("conditions") or []
    if conditions:
        out.w(0, "Conditions:")
        out.w(1, "Type\tStatus\tReason\tMessage")
        out.w(1, "----\t------\t------\t-------")
        for c in conditions:
            out.w(1, f"{c.get('type', '')}\t{c.get('status', '')}\t{c.get('reason', '')}\t"
                     f"{c.get('message', '')}")
    return out


def _hpa_direct_metric(out: Lines, label: str, source: Obj, current: Obj | None) -> None:
    """A (container) resource metric: `label: current / target` for an average
    value, else the label then `(as a percentage of request): ...` on its own line
    (kubectl writes the label without a newline, then the rest at level 1)."""
    target = source.get("target") or {}
    now = (current or {}).get("current") or {}
    if target.get("averageValue") is not None:
        value = now.get("averageValue", "") if current is not None else "<unknown>"
        out.w(1, f"{label}:\t{value} / {target['averageValue']}")
        return
    shown = "<unknown>"
    if current is not None and now.get("averageUtilization") is not None:
        shown = f"{now['averageUtilization']}% ({now.get('averageValue', '0')})"
    goal = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None \
        else "<auto>"
    out.w(1, f"{label}  (as a percentage of request):\t{shown} / {goal}")


DESCRIBERS: dict[str, Callable[[Obj, datetime.datetime], Lines]] = {
    "pods": describe_pod,
    "deployments": describe_deployment,
    "replicasets": describe_replicaset,
    "statefulsets": describe_statefulset,
    "daemonsets": describe_daemonset,
    "jobs": describe_job,
    "cronjobs": describe_cronjob,
    "persistentvolumes": describe_persistentvolume,
    "persistentvolumeclaims": describe_persistentvolumeclaim,
    "storageclasses": describe_storageclass,
    "services": describe_service,
    "endpoints": describe_endpoints,
    "endpointslices": describe_endpointslice,
    "ingresses": describe_ingress,
    "ingressclasses": describe_ingressclass,
    "nodes": describe_node,
    "configmaps": describe_configmap,
    "secrets": describe_secret,
    "namespaces": describe_namespace,
    "resourcequotas": describe_resourcequota,
    "limitranges": describe_limitrange,
    "poddisruptionbudgets": describe_poddisruptionbudget,
    "priorityclasses": describe_priorityclass,
    "horizontalpodautoscalers": describe_horizontalpodautoscaler,
}

# Kinds whose kubectl describer prints no Events section.
WITHOUT_EVENTS = {"resourcequotas", "limitranges", "namespaces"}


# ---------------------------------------------------------------- events

def events_table(out: Lines, events: list[Obj], now: datetime.datetime) -> None:
    if not events:
        out.w(0, f"Events:\t{NONE}")
        return
    out.w(0, "Events:")
    out.w(1, "Type\tReason\tAge\tFrom\tMessage")
    out.w(1, "----\t------\t----\t----\t-------")
    for e in events:
        first = e.get("eventTime") or e.get("firstTimestamp") or ""
        first_text = since(first, now)
        series = e.get("series")
        if series:
            interval = (f"{since(series.get('lastObservedTime', ''), now)} "
                        f"(x{series.get('count', 0)} over {first_text})")
        elif (e.get("count") or 0) > 1:
            interval = (f"{since(e.get('lastTimestamp', ''), now)} (x{e['count']} over "
                        f"{first_text})")
        else:
            interval = first_text
        source = _g(e, "source", "component", default="") or e.get("reportingComponent", "")
        out.w(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                 f"{(e.get('message') or '').strip()}")


def _event_time(e: Obj) -> str:
    series_time = _g(e, "series", "lastObservedTime", default="")
    return series_time or e.get("lastTimestamp") or e.get("eventTime") or \
        e.get("firstTimestamp") or ""


async def events_for(client: Any, kind: Any, obj: Obj) -> list[Obj]:
    """The events about `obj`, oldest first (none when the cluster serves no events)."""
    from kubemu.api import errors

    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace", "") if kind.namespaced else ""
    name = meta.get("name", "")
    try:
        result = await client.list_all(
            "events", namespace,
            field_selector=f"involvedObject.name={name},involvedObject.kind={kind.kind}")
    except (errors.BadRequest, errors.Invalid):
        # The server cannot select on these fields: filter the namespace's events here.
        try:
            result = await client.list_all("events", namespace)
        except errors.ApiError:
            return []
    except errors.ApiError:
        return []
    found = []
    for item in result.items:
        e = common.to_json(item)
        involved = e.get("involvedObject") or {}
        if involved.get("name") != name or involved.get("kind") not in ("", kind.kind):
            continue
        if involved.get("uid") and meta.get("uid") and involved["uid"] != meta["uid"]:
            continue
        found.append(e)
    found.sort(key=_event_time)
    return found


def describe(kind: Any, obj: Obj, events: list[Obj] | None,
             now: datetime.datetime | None = None, extra: dict[str, Any] | None = None) -> str:
    """The description of `obj`; `events` None leaves the Events section out; `extra`
    is what the describer needs besides the object (a node's pods and lease)."""
    now = now or now_utc()
    describer = DESCRIBERS.get(kind.resource)
    out = (describer(obj, now, **(extra or {})) if describer
           else describe_generic(obj, kind.namespaced))
    if events is not None and kind.resource not in WITHOUT_EVENTS:
        events_table(out, events, now)
    return out.render()


# ---------------------------------------------------------------- the command

NODE_LEASE_NAMESPACE = "kube-node-lease"


async def _extra_for(client: Any, kind: Any, obj: Obj) -> dict[str, Any]:
    """What a describer reads besides the object, fetched as kubectl fetches it: a
    node's non-terminated pods and its Lease; a Deployment's ReplicaSets, and a
    ReplicaSet's, StatefulSet's or DaemonSet's pods, listed by its selector; the
    pods of a claim's namespace. A list the server refuses leaves its part out."""
    from kubemu.api import errors

    meta = obj.get("metadata") or {}
    if kind.resource == "nodes":
        name = meta.get("name", "")
        selector = f"spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"
        pods = (await client.list_all("pods", "", field_selector=selector)).items
        lease, lease_error = None, ""
        try:
            lease = common.to_json(await client.get("leases", name, NODE_LEASE_NAMESPACE))
        except errors.ApiError as exc:
            lease_error = exc.message
        return {"pods": [common.to_json(p) for p in pods], "lease": lease,
                "lease_error": lease_error}
    if kind.resource == "services":
        return {"endpointslices": await _service_slices(client, meta.get("namespace", ""),
                                                        meta.get("name", ""))}
    if kind.resource == "ingresses":
        return {"services": await _ingress_services(client, obj)}
    if kind.resource == "namespaces":
        found: dict[str, Any] = {}
        for resource in ("resourcequotas", "limitranges"):
            try:
                result = await client.list_all(resource, meta.get("name", ""))
            except errors.ApiError:
                continue
            found[resource] = [common.to_json(item) for item in result.items]
        return found
    listed = _LISTED_WITH.get(kind.resource)
    if listed is None:
        return {}
    resource, by_selector = listed
    selector = selector_string(_g(obj, "spec", "selector")) if by_selector else ""
    try:
        result = await client.list_all(resource, meta.get("namespace", ""),
                                       label_selector=selector)
    except errors.ApiError:
        return {}
    return {resource: [common.to_json(item) for item in result.items]}


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


async def _service_slices(client: Any, namespace: str, name: str) -> list[Obj]:
    """A Service's EndpointSlices (by their service-name label), none when refused."""
    from kubemu.api import errors

    try:
        result = await client.list_all("endpointslices", namespace,
                                       label_selector=f"{SERVICE_NAME_LABEL}={name}")
    except errors.ApiError:
        return []
    return [common.to_json(item) for item in result.items]


async def _ingress_services(client: Any, ing: Obj) -> dict[str, Any]:
    """For each Service an Ingress names: (the Service, its EndpointSlices), or the
    error message getting it (kubectl prints it in place of the endpoints)."""
    from kubemu.api import errors

    namespace = _g(ing, "metadata", "namespace", default="")
    out: dict[str, Any] = {}
    for name in ingress_service_names(ing):
        slices = await _service_slices(client, namespace, name)
        try:
            svc = common.to_json(await client.get("services", name, namespace))
        except errors.ApiError as exc:
            out[name] = exc.message
            continue
        out[name] = (svc, slices)
    return out


# resource -> (what its describer lists, whether by the object's selector)
_LISTED_WITH = {
    "deployments": ("replicasets", True),
    "replicasets": ("pods", True),
    "statefulsets": ("pods", True),
    "daemonsets": ("pods", True),
    "persistentvolumeclaims": ("pods", False),
}


async def run_describe(args: argparse.Namespace) -> int:
    from kubemu.api import errors

    targets = common.parse_targets(args.resources)
    namespace = "" if args.all_namespaces else common.namespace_of(args)
    failed = False
    first = True
    async with common.client_for(args) as client:
        for target in targets:
            kind = target.kind
            ns = namespace if kind.namespaced else ""
            if target.names:
                objs = []
                for name in target.names:
                    try:
                        objs.append(await client.get(kind.resource, name, ns))
                    except errors.NotFound as exc:
                        common.print_error(exc)
                        failed = True
            else:
                result = await client.list_all(kind.resource, ns,
                                               label_selector=args.selector or "")
                objs = result.items
                if not objs and len(targets) == 1:
                    # kubectl words it by -A alone (a node list says "in default namespace")
                    print("No resources found" if args.all_namespaces else
                          f"No resources found in {common.namespace_of(args)} namespace.",
                          file=sys.stderr)
            for item in objs:
                obj = common.to_json(item, kind)
                extra = await _extra_for(client, kind, obj)
                events = await events_for(client, kind, obj) if args.show_events else None
                if not first:
                    sys.stdout.write("\n\n")
                first = False
                sys.stdout.write(describe(kind, obj, events, extra=extra))
                sys.stdout.flush()
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("describe", help="show details of objects, with their events",
                              description="Describe objects the way kubectl describe does.")
    p.add_argument("resources", nargs="+", metavar="TYPE [NAME...] | TYPE/NAME...")
    common.add_namespace_arg(p, all_namespaces=True)
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--show-events", action=argparse.BooleanOptionalAction, default=True,
                   help="print the object's events (default: yes)")
    p.set_defaults(func=run_describe)
