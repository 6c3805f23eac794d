"""`kubemu describe`: a readable, kubectl-like description of objects, then their Events.

Each describer writes `\\t`-separated lines at indentation levels (like
kubectl's PrefixWriter); printers.tabbed aligns them. Pods, deployments,
replicasets, services, nodes, configmaps, secrets and namespaces have their own
layout; other kinds print their spec and status generically, with field names
turned into labels (`holderIdentity` -> `Holder Identity`). Events are those
whose involvedObject is the object (a field selector first, then a filter over
the namespace's events if the server does not support that selector).
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from typing import Any, Callable

from kubemu.cli import common
from kubemu.cli.printers import (NONE, _g, format_labels, format_selector, human_duration,
                                 now_utc, parse_time, since, tabbed)

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
    items = [(k, v) for k, v in sorted((values or {}).items()) if k not in skip]
    if not items:
        out.w(level, f"{title}:\t{NONE}")
        return
    for i, (k, v) in enumerate(items):
        out.w(level, f"{title + ':' if i == 0 else ''}\t{k}{sep}{v}")


def _meta(out: Lines, obj: Obj, *, namespaced: bool = True) -> None:
    meta = obj.get("metadata") or {}
    out.w(0, f"Name:\t{meta.get('name', '')}")
    if namespaced:
        out.w(0, f"Namespace:\t{meta.get('namespace', '')}")
    _map_lines(out, 0, "Labels", meta.get("labels"))
    _map_lines(out, 0, "Annotations", meta.get("annotations"), ": ", SKIP_ANNOTATIONS)


def _controlled_by(obj: Obj) -> str:
    for ref in _g(obj, "metadata", "ownerReferences", default=[]):
        if ref.get("controller"):
            return f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return ""


# ---------------------------------------------------------------- generic

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+|[A-Z]+")


def smart_label(field: str) -> str:
    """`holderIdentity` -> `Holder Identity`, `podIP` -> `Pod IP` (kubectl's smartLabelFor)."""
    words = _WORD.findall(field)
    return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in words) or field


def _generic(out: Lines, level: int, value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            label = smart_label(str(key))
            if isinstance(sub, dict) and sub:
                out.w(level, f"{label}:")
                _generic(out, level + 1, sub)
            elif isinstance(sub, list) and sub and any(isinstance(i, (dict, list)) for i in sub):
                out.w(level, f"{label}:")
                for item in sub:
                    if isinstance(item, dict):
                        _generic(out, level + 1, item)
                    else:
                        out.w(level + 1, str(item))
            elif isinstance(sub, list):
                out.w(level, f"{label}:\t{', '.join(str(i) for i in sub) or NONE}")
            elif isinstance(sub, dict):
                out.w(level, f"{label}:\t{NONE}")
            else:
                out.w(level, f"{label}:\t{_scalar(sub)}")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe_generic(obj: Obj, namespaced: bool) -> Lines:
    out = Lines()
    _meta(out, obj, namespaced=namespaced)
    meta = obj.get("metadata") or {}
    if meta.get("creationTimestamp"):
        out.w(0, f"CreationTimestamp:\t{format_time(meta['creationTimestamp'])}")
    controller = _controlled_by(obj)
    if controller:
        out.w(0, f"Controlled By:\t{controller}")
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        label = smart_label(key)
        if isinstance(value, dict):
            out.w(0, f"{label}:")
            _generic(out, 1, value)
        elif isinstance(value, list):
            out.w(0, f"{label}:")
            for item in value:
                if isinstance(item, dict):
                    _generic(out, 1, item)
                else:
                    out.w(1, str(item))
        else:
            out.w(0, f"{label}:\t{_scalar(value)}")
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
               with_status: bool = True) -> None:
    out.w(level, f"{c.get('name', '')}:")
    level += 1
    if with_status:
        out.w(level, f"Container ID:\t{(status or {}).get('containerID', '')}")
    out.w(level, f"Image:\t{c.get('image', '')}")
    if with_status:
        out.w(level, f"Image ID:\t{(status or {}).get('imageID', '')}")
    ports = c.get("ports") or []
    if ports:
        out.w(level, "Port:\t" + ", ".join(
            f"{p.get('containerPort', 0)}/{p.get('protocol') or 'TCP'}" for p in ports))
        out.w(level, "Host Port:\t" + ", ".join(
            f"{p.get('hostPort', 0)}/{p.get('protocol') or 'TCP'}" for p in ports))
    else:
        out.w(level, f"Port:\t{NONE}")
        out.w(level, f"Host Port:\t{NONE}")
    for title, key in (("Command", "command"), ("Args", "args")):
        values = c.get(key) or []
        if values:
            out.w(level, f"{title}:")
            for v in values:
                out.w(level + 1, v)
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
                out.w(level + 1, f"{k}:\t{values[k]}")
    for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"),
                       ("Startup", "startupProbe")):
        if c.get(key):
            out.w(level, f"{title}:\t{_probe(c[key])}")
    env = c.get("env") or []
    env_from = c.get("envFrom") or []
    if not env and not env_from:
        out.w(level, f"Environment:\t{NONE}")
    else:
        if env_from:
            out.w(level, "Environment Variables from:")
            for src in env_from:
                if "configMapRef" in src:
                    out.w(level + 1, f"{src['configMapRef'].get('name', '')}\tConfigMap")
                elif "secretRef" in src:
                    out.w(level + 1, f"{src['secretRef'].get('name', '')}\tSecret")
        if env:
            out.w(level, "Environment:")
            for e in env:
                out.w(level + 1, f"{e.get('name', '')}:\t{_env_value(e)}")
    mounts = c.get("volumeMounts") or []
    if not mounts:
        out.w(level, f"Mounts:\t{NONE}")
    else:
        out.w(level, "Mounts:")
        for m in mounts:
            mode = "ro" if m.get("readOnly") else "rw"
            sub = f",path=\"{m['subPath']}\"" if m.get("subPath") else ""
            out.w(level + 1, f"{m.get('mountPath', '')} from {m.get('name', '')} ({mode}{sub})")


def _env_value(e: Obj) -> str:
    if "value" in e:
        return e["value"]
    src = e.get("valueFrom") or {}
    if "fieldRef" in src:
        return f"({src['fieldRef'].get('apiVersion', 'v1')}:{src['fieldRef'].get('fieldPath', '')})"
    if "resourceFieldRef" in src:
        ref = src["resourceFieldRef"]
        return f"{ref.get('resource', '')} ({ref.get('containerName', '')})"
    if "configMapKeyRef" in src:
        r = src["configMapKeyRef"]
        return f"<set to the key '{r.get('key', '')}' of config map '{r.get('name', '')}'>"
    if "secretKeyRef" in src:
        r = src["secretKeyRef"]
        return f"<set to the key '{r.get('key', '')}' in secret '{r.get('name', '')}'>"
    return ""


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


def _volumes(out: Lines, volumes: list[Obj]) -> None:
    if not volumes:
        out.w(0, f"Volumes:\t{NONE}")
        return
    out.w(0, "Volumes:")
    for v in volumes:
        out.w(1, f"{v.get('name', '')}:")
        for key, title in _VOLUME_TYPES.items():
            if key not in v:
                continue
            src = v[key] or {}
            out.w(2, f"Type:\t{title}")
            if key == "emptyDir":
                out.w(2, f"Medium:\t{src.get('medium', '')}")
                out.w(2, f"SizeLimit:\t{src.get('sizeLimit', '<unset>')}")
            elif key == "hostPath":
                out.w(2, f"Path:\t{src.get('path', '')}")
                out.w(2, f"HostPathType:\t{src.get('type', '')}")
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
            _generic(out, 2, {k: val for k, val in v.items() if k != "name"})


def _pod_template(out: Lines, level: int, template: Obj) -> None:
    out.w(level, "Pod Template:")
    _map_lines(out, level + 1, "Labels", _g(template, "metadata", "labels"))
    annotations = _g(template, "metadata", "annotations")
    if annotations:
        _map_lines(out, level + 1, "Annotations", annotations, ": ")
    spec = template.get("spec") or {}
    if spec.get("serviceAccountName"):
        out.w(level + 1, f"Service Account:\t{spec['serviceAccountName']}")
    for title, key in (("Init Containers", "initContainers"), ("Containers", "containers")):
        containers = spec.get(key) or []
        if containers or key == "containers":
            out.w(level + 1, f"{title}:" if containers else f"{title}:\t{NONE}")
            for c in containers:
                _container(out, level + 2, c, None, with_status=False)
    volumes = spec.get("volumes") or []
    if volumes:
        sub = Lines()
        _volumes(sub, volumes)
        out.lines.extend("  " * (level + 1) + line for line in sub.lines)
    else:
        out.w(level + 1, f"Volumes:\t{NONE}")
    out.w(level + 1, f"Node-Selectors:\t{format_labels(spec.get('nodeSelector'))}")
    out.w(level + 1, f"Tolerations:\t{_tolerations(spec.get('tolerations'))[0]}")


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
    _map_lines(out, 0, "Annotations", meta.get("annotations"), ": ", SKIP_ANNOTATIONS)
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
            _container(out, 1, c, statuses.get(c.get("name")))
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


def describe_deployment(d: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    _meta(out, d)
    spec, status = d.get("spec") or {}, d.get("status") or {}
    created = format_time(_g(d, "metadata", "creationTimestamp", default=""))
    out.lines.insert(2, f"CreationTimestamp:\t{created}")
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}")
    desired = spec.get("replicas", 1)
    out.w(0, f"Replicas:\t{desired} desired | {status.get('updatedReplicas', 0)} updated | "
             f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} "
             f"available | {status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    out.w(0, f"StrategyType:\t{strategy.get('type', 'RollingUpdate')}")
    out.w(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}")
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        rolling = rolling or {}
        out.w(0, f"RollingUpdateStrategy:\t{rolling.get('maxUnavailable', '25%')} max "
                 f"unavailable, {rolling.get('maxSurge', '25%')} max surge")
    _pod_template(out, 0, spec.get("template") or {})
    _conditions_table(out, status.get("conditions") or [])
    return out


def describe_replicaset(rs: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    _meta(out, rs)
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    out.lines.insert(2, f"Selector:\t{format_selector(spec.get('selector'))}")
    controller = _controlled_by(rs)
    if controller:
        out.w(0, f"Controlled By:\t{controller}")
    out.w(0, f"Replicas:\t{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired")
    out.w(0, f"Pods Status:\t{status.get('readyReplicas', 0)} Running / 0 Waiting / "
             "0 Succeeded / 0 Failed")
    _pod_template(out, 0, spec.get("template") or {})
    _conditions_table(out, status.get("conditions") or [])
    return out


def describe_service(svc: Obj, now: datetime.datetime) -> Lines:
    from kubemu.cli.printers import service_external_ip

    out = Lines()
    _meta(out, svc)
    spec = svc.get("spec") or {}
    out.w(0, f"Selector:\t{format_labels(spec.get('selector'))}")
    out.w(0, f"Type:\t{spec.get('type') or 'ClusterIP'}")
    out.w(0, f"IP Family Policy:\t{spec.get('ipFamilyPolicy') or 'SingleStack'}")
    out.w(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or ['IPv4'])}")
    out.w(0, f"IP:\t{spec.get('clusterIP') or NONE}")
    out.w(0, f"IPs:\t{','.join(spec.get('clusterIPs') or [spec.get('clusterIP') or NONE])}")
    if spec.get("type") == "LoadBalancer":
        out.w(0, f"LoadBalancer Ingress:\t{service_external_ip(svc)}")
    if spec.get("externalIPs"):
        out.w(0, f"External IPs:\t{','.join(spec['externalIPs'])}")
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        protocol = port.get("protocol") or "TCP"
        out.w(0, f"Port:\t{name}\t{port.get('port', 0)}/{protocol}")
        target = port.get("targetPort", port.get("port", 0))
        out.w(0, f"TargetPort:\t{target}/{protocol}")
        if port.get("nodePort"):
            out.w(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}")
    out.w(0, f"Session Affinity:\t{spec.get('sessionAffinity') or 'None'}")
    if spec.get("externalTrafficPolicy"):
        out.w(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}")
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
    _map_lines(out, 0, "Annotations", meta.get("annotations"), ": ", SKIP_ANNOTATIONS)
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


def describe_namespace(ns: Obj, now: datetime.datetime) -> Lines:
    out = Lines()
    _meta(out, ns, namespaced=False)
    out.w(0, f"Status:\t{_g(ns, 'status', 'phase', default='') or 'Active'}")
    out.w(0, "")
    out.w(0, "No resource quota.")
    out.w(0, "")
    out.w(0, "No LimitRange resource.")
    return out


DESCRIBERS: dict[str, Callable[[Obj, datetime.datetime], Lines]] = {
    "pods": describe_pod,
    "deployments": describe_deployment,
    "replicasets": describe_replicaset,
    "services": describe_service,
    "nodes": describe_node,
    "configmaps": describe_configmap,
    "secrets": describe_secret,
    "namespaces": describe_namespace,
}


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
    if events is not None:
        events_table(out, events, now)
    return out.render()


# ---------------------------------------------------------------- the command

NODE_LEASE_NAMESPACE = "kube-node-lease"


async def _extra_for(client: Any, kind: Any, obj: Obj) -> dict[str, Any]:
    """What a describer reads besides the object: for a node, its non-terminated pods
    (listed with the field selector kubectl uses) and its Lease."""
    from kubemu.api import errors

    if kind.resource != "nodes":
        return {}
    name = (obj.get("metadata") or {}).get("name", "")
    selector = f"spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"
    pods = (await client.list_all("pods", "", field_selector=selector)).items
    lease, lease_error = None, ""
    try:
        lease = common.to_json(await client.get("leases", name, NODE_LEASE_NAMESPACE))
    except errors.ApiError as exc:
        lease_error = exc.message
    return {"pods": [common.to_json(p) for p in pods], "lease": lease,
            "lease_error": lease_error}


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
