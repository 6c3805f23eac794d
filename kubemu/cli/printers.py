"""kubectl's output formats: tables per kind, AGE, pod STATUS, -o json|yaml|name.

Tables work on the Kubernetes JSON form of an object (kubemu.api.codec.to_dict),
so a printer reads the same field names a Kubernetes user reads. Each table is
(columns, wide columns, row function); the row function returns the values of
both, and `-o wide` shows the wide ones too. Rendering copies kubectl's
tabwriter (minimum cell width 6, padding 3, last column unpadded), remembering
column widths across calls so that rows printed by `get -w` line up.
Everything here is pure: no I/O except the `write` callers pass in.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import Any, Callable, Iterable

NONE = "<none>"
UNKNOWN = "<unknown>"

Obj = dict[str, Any]


# ---------------------------------------------------------------- small helpers

def _g(obj: Any, *path: str | int, default: Any = None) -> Any:
    """obj[path0][path1]... or `default` when any step is missing."""
    for step in path:
        if isinstance(obj, dict):
            obj = obj.get(step)
        elif isinstance(obj, list) and isinstance(step, int) and -len(obj) <= step < len(obj):
            obj = obj[step]
        else:
            return default
        if obj is None:
            return default
    return obj


def _name(obj: Obj) -> str:
    return _g(obj, "metadata", "name", default="")


def parse_time(ts: str) -> datetime.datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when empty or malformed."""
    if not ts:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)  # Go truncates toward zero
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def since(ts: str, now: datetime.datetime) -> str:
    """kubectl's translateTimestampSince: the age of `ts`, `<unknown>` without one."""
    t = parse_time(ts)
    if t is None:
        return UNKNOWN
    return human_duration((now - t).total_seconds())


def age(obj: Obj, now: datetime.datetime) -> str:
    return since(_g(obj, "metadata", "creationTimestamp", default=""), now)


def format_labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: Obj | None, *, invalid: str = "<error>") -> str:
    """metav1.LabelSelectorAsSelector(selector).String(): requirements sorted by key,
    set values sorted; "" for a nil or empty selector, `invalid` when it does not parse."""
    from kubemu.api import errors, labels

    if not selector:
        return ""
    try:
        return str(labels.selector_from_dict(selector))
    except errors.ApiError:
        return invalid


def format_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: the selector's string, `<none>` when it is empty."""
    return selector_string(selector) or NONE


def _containers_and_images(pod_spec: Obj | None) -> list[str]:
    containers = _g(pod_spec, "containers", default=[])
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers)]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------- pods

def _restartable(container: Obj | None) -> bool:
    """A sidecar: an init container with restartPolicy Always."""
    return bool(container) and container.get("restartPolicy") == "Always"


def pod_status(pod: Obj) -> tuple[str, str, int, datetime.datetime | None]:
    """(READY, STATUS, restarts, last restart time) as kubectl 1.32's printPod computes them.

    STATUS precedence, later rules winning: the phase (or status.reason);
    SchedulingGated; the first init container that is not done (Init:N/M,
    Init:<reason>, Init:ExitCode:N); then, once initialized, the last container
    with a waiting or terminated reason (Completed turns back to Running or
    NotReady while another container runs); finally a pod with a
    deletionTimestamp is Unknown if its node is lost, else Terminating unless
    its phase is already Succeeded or Failed.
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    init_specs = spec.get("initContainers") or []
    init_by_name = {c.get("name"): c for c in init_specs}
    total = len(spec.get("containers") or []) + sum(_restartable(c) for c in init_specs)
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime.datetime | None = None
    last_sidecar_restart: datetime.datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def finished(cs: Obj) -> datetime.datetime | None:
        return parse_time(_g(cs, "lastState", "terminated", "finishedAt", default=""))

    def later(a: datetime.datetime | None, b: datetime.datetime | None) -> datetime.datetime | None:
        return b if b is not None and (a is None or b > a) else a

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += _int(cs.get("restartCount"))
        last_restart = later(last_restart, finished(cs))
        sidecar = _restartable(init_by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            last_sidecar_restart = later(last_sidecar_restart, finished(cs))
        terminated = _g(cs, "state", "terminated")
        waiting = _g(cs, "state", "waiting")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif (waiting is not None and waiting.get("reason")
              and waiting["reason"] != "PodInitializing"):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += _int(cs.get("restartCount"))
            last_restart = later(last_restart, finished(cs))
            waiting = _g(cs, "state", "waiting")
            terminated = _g(cs, "state", "terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if _int(terminated.get("signal")):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and _g(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"

    deleting = bool(_g(pod, "metadata", "deletionTimestamp"))
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return f"{ready}/{total}", reason, restarts, last_restart


def _pod_row(pod: Obj, now: datetime.datetime) -> list[str]:
    ready, status, restarts, last_restart = pod_status(pod)
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    nominated = _g(pod, "status", "nominatedNodeName", default="") or NONE
    gates = _g(pod, "spec", "readinessGates", default=[])
    if gates:
        conditions = {c.get("type"): c.get("status")
                      for c in _g(pod, "status", "conditions", default=[])}
        ready_gates = sum(conditions.get(g.get("conditionType")) == "True" for g in gates)
        gates_text = f"{ready_gates}/{len(gates)}"
    else:
        gates_text = NONE
    pod_ips = _g(pod, "status", "podIPs", default=[])
    pod_ip = (pod_ips[0].get("ip") if pod_ips else "") or _g(pod, "status", "podIP", default="")
    return [_name(pod), ready, status, restarts_text, age(pod, now), pod_ip or NONE,
            _g(pod, "spec", "nodeName", default="") or NONE, nominated, gates_text]


# ---------------------------------------------------------------- workloads

def _desired(obj: Obj) -> int:
    # An unset replicas count means 1, Kubernetes' default.
    value = _g(obj, "spec", "replicas")
    return 1 if value is None else _int(value)


def _deployment_row(d: Obj, now: datetime.datetime) -> list[str]:
    status = d.get("status") or {}
    # printDeployment prints selector.String() itself: empty stays empty, unlike the others
    return [_name(d),
            f"{_int(status.get('readyReplicas'))}/{_desired(d)}",
            str(_int(status.get("updatedReplicas"))),
            str(_int(status.get("availableReplicas"))), age(d, now),
            *_containers_and_images(_g(d, "spec", "template", "spec")),
            selector_string(_g(d, "spec", "selector"), invalid="<invalid>")]


def _replicaset_row(rs: Obj, now: datetime.datetime) -> list[str]:
    status = rs.get("status") or {}
    return [_name(rs), str(_desired(rs)),
            str(_int(status.get("replicas"))), str(_int(status.get("readyReplicas"))),
            age(rs, now), *_containers_and_images(_g(rs, "spec", "template", "spec")),
            format_selector(_g(rs, "spec", "selector"))]


def _statefulset_row(sts: Obj, now: datetime.datetime) -> list[str]:
    return [_name(sts),
            f"{_int(_g(sts, 'status', 'readyReplicas'))}/{_desired(sts)}", age(sts, now),
            *_containers_and_images(_g(sts, "spec", "template", "spec"))]


def _daemonset_row(ds: Obj, now: datetime.datetime) -> list[str]:
    status = ds.get("status") or {}
    node_selector = _g(ds, "spec", "template", "spec", "nodeSelector")
    return [_name(ds),
            str(_int(status.get("desiredNumberScheduled"))),
            str(_int(status.get("currentNumberScheduled"))),
            str(_int(status.get("numberReady"))),
            str(_int(status.get("updatedNumberScheduled"))),
            str(_int(status.get("numberAvailable"))),
            format_labels(node_selector), age(ds, now),
            *_containers_and_images(_g(ds, "spec", "template", "spec")),
            format_selector(_g(ds, "spec", "selector"))]


def condition_true(obj: Obj, condition_type: str) -> bool:
    """hasJobCondition: the first condition of that type decides."""
    for cond in _g(obj, "status", "conditions", default=[]):
        if cond.get("type") == condition_type:
            return cond.get("status") == "True"
    return False


def job_status(job: Obj) -> str:
    """printJob's STATUS column (kubectl 1.32): the first that holds wins."""
    if condition_true(job, "Complete"):
        return "Complete"
    if condition_true(job, "Failed"):
        return "Failed"
    if _g(job, "metadata", "deletionTimestamp"):
        return "Terminating"
    if condition_true(job, "Suspended"):
        return "Suspended"
    if condition_true(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_duration(job: Obj, now: datetime.datetime) -> str:
    """Start to completion, or to now while the Job runs; empty before it starts."""
    start = parse_time(_g(job, "status", "startTime", default=""))
    end = parse_time(_g(job, "status", "completionTime", default=""))
    if start is None:
        return ""
    return human_duration(((end or now) - start).total_seconds())


def _job_row(job: Obj, now: datetime.datetime) -> list[str]:
    succeeded = _int(_g(job, "status", "succeeded"))
    completions = _g(job, "spec", "completions")
    if completions is not None:
        completions_text = f"{succeeded}/{completions}"
    else:
        parallelism = _int(_g(job, "spec", "parallelism"))
        completions_text = (f"{succeeded}/1 of {parallelism}" if parallelism > 1
                            else f"{succeeded}/1")
    return [_name(job), job_status(job), completions_text, job_duration(job, now),
            age(job, now),
            *_containers_and_images(_g(job, "spec", "template", "spec")),
            format_selector(_g(job, "spec", "selector"))]


def bool_ptr(value: Any) -> str:
    """printBoolPtr: True / False, `<unset>` for a field that is not set."""
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def _cronjob_row(cj: Obj, now: datetime.datetime) -> list[str]:
    last = _g(cj, "status", "lastScheduleTime", default="")
    return [_name(cj), _g(cj, "spec", "schedule", default=""),
            _g(cj, "spec", "timeZone", default=None) or NONE,
            bool_ptr(_g(cj, "spec", "suspend")),
            str(len(_g(cj, "status", "active", default=[]))),
            since(last, now) if last else NONE, age(cj, now),
            *_containers_and_images(_g(cj, "spec", "jobTemplate", "spec", "template", "spec")),
            format_selector(_g(cj, "spec", "jobTemplate", "spec", "selector"))]


def controller_of(obj: Obj) -> Obj | None:
    """metav1.GetControllerOf: the ownerReference with controller: true."""
    for ref in _g(obj, "metadata", "ownerReferences", default=[]):
        if ref.get("controller"):
            return ref
    return None


def _controllerrevision_row(rev: Obj, now: datetime.datetime) -> list[str]:
    ref = controller_of(rev)
    controller = NONE
    if ref is not None:
        # formatResourceName: lower-cased GroupKind ("statefulset.apps"), then the name
        api_version = ref.get("apiVersion") or ""
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        kind = ref.get("kind") or ""
        group_kind = f"{kind}.{group}" if group else kind
        controller = (f"{group_kind.lower()}/{ref.get('name', '')}" if group_kind
                      else ref.get("name", ""))
    revision = rev.get("revision")
    revision_text = str(revision) if isinstance(revision, (int, str)) and revision != "" else "0"
    return [_name(rev), controller, revision_text, age(rev, now)]


# ---------------------------------------------------------------- cluster objects

def node_status(node: Obj) -> str:
    states = []
    for cond in _g(node, "status", "conditions", default=[]):
        if cond.get("type") == "Ready":
            states.append("Ready" if cond.get("status") == "True" else "NotReady")
            break
    if not states:
        states.append("Unknown")
    if _g(node, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def node_roles(node: Obj) -> str:
    roles = set()
    for key, value in (_g(node, "metadata", "labels", default={})).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) if roles else NONE


def _node_address(node: Obj, kind: str) -> str:
    for addr in _g(node, "status", "addresses", default=[]):
        if addr.get("type") == kind:
            return addr.get("address", "")
    return NONE


def _node_row(node: Obj, now: datetime.datetime) -> list[str]:
    info = _g(node, "status", "nodeInfo", default={})
    return [_name(node), node_status(node), node_roles(node),
            age(node, now), info.get("kubeletVersion", ""),
            _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
            info.get("osImage", "") or UNKNOWN, info.get("kernelVersion", "") or UNKNOWN,
            info.get("containerRuntimeVersion", "") or UNKNOWN]


def service_ports(svc: Obj) -> str:
    pieces = []
    for port in _g(svc, "spec", "ports", default=[]):
        protocol = port.get("protocol") or "TCP"
        if _int(port.get("nodePort")) > 0:
            pieces.append(f"{_int(port.get('port'))}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{_int(port.get('port'))}/{protocol}")
    return ",".join(pieces) if pieces else NONE


# kubectl's loadBalancerWidth: an address column is clipped to it unless -o wide.
LOAD_BALANCER_WIDTH = 16


def load_balancer_addresses(status: Obj | None, wide: bool = False) -> str:
    """loadBalancerStatusStringer: the ingress IPs (else hostnames), sorted and
    each once, clipped to 16 characters ("...") unless wide."""
    found = sorted({i.get("ip") or i.get("hostname") or ""
                    for i in (status or {}).get("ingress") or []} - {""})
    text = ",".join(found)
    if not wide and len(text) > LOAD_BALANCER_WIDTH:
        text = text[:LOAD_BALANCER_WIDTH - 3] + "..."
    return text


def service_external_ip(svc: Obj, wide: bool = False) -> str:
    svc_type = _g(svc, "spec", "type", default="") or "ClusterIP"
    external = _g(svc, "spec", "externalIPs", default=[]) or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if svc_type == "LoadBalancer":
        lb = load_balancer_addresses(_g(svc, "status", "loadBalancer"), wide)
        found = (lb.split(",") if lb else []) + list(external)
        return ",".join(found) if found else "<pending>"
    if svc_type == "ExternalName":
        return _g(svc, "spec", "externalName", default="")
    return UNKNOWN


def _service_row(svc: Obj, now: datetime.datetime, wide: bool = False) -> list[str]:
    cluster_ips = _g(svc, "spec", "clusterIPs", default=[]) or []
    cluster_ip = cluster_ips[0] if cluster_ips else _g(svc, "spec", "clusterIP", default="")
    return [_name(svc),
            _g(svc, "spec", "type", default="") or "ClusterIP",
            cluster_ip or NONE,
            service_external_ip(svc, wide), service_ports(svc), age(svc, now),
            format_labels(_g(svc, "spec", "selector"))]


def _service_row_wide(svc: Obj, now: datetime.datetime) -> list[str]:
    return _service_row(svc, now, wide=True)


def format_endpoints(ep: Obj, limit: int = 3) -> str:
    """formatEndpoints: `ip:port` per address and port, the first three and
    "+ N more..."; `<none>` without subsets (a subset of not-ready addresses
    only shows nothing)."""
    subsets = ep.get("subsets") or []
    if not subsets:
        return NONE
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        targets = ([(ip, None) for ip in addresses] if not ports
                   else [(ip, p.get("port")) for p in ports for ip in addresses])
        count += len(targets)
        for ip, port in targets:
            if len(shown) == limit:
                more = True
                break
            host = f"[{ip}]" if ":" in ip and port is not None else ip
            shown.append(host if port is None else f"{host}:{port}")
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _endpoints_row(ep: Obj, now: datetime.datetime) -> list[str]:
    return [_name(ep), format_endpoints(ep), age(ep, now)]


def list_with_more(items: list[str], count: int, limit: int = 3) -> str:
    """listWithMoreString: the first `limit` of `count`, "+ N more...", `<unset>` when empty."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def _endpointslice_row(eps: Obj, now: datetime.datetime) -> list[str]:
    ports = []
    for port in eps.get("ports") or []:
        if port.get("port") is not None:
            ports.append(str(port["port"]))
        elif port.get("name") is not None:
            ports.append(port["name"])
        else:
            ports.append("*")
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_name(eps), eps.get("addressType", ""), list_with_more(ports, len(ports)),
            list_with_more(addresses, len(addresses)), age(eps, now)]


def ingress_hosts(rules: list[Obj] | None, limit: int = 3) -> str:
    """formatHosts: the hosts of the first rules, `*` when none has one."""
    rules = rules or []
    shown: list[str] = []
    more = False
    for rule in rules:
        if len(shown) == limit:
            more = True
        if not more and rule.get("host"):
            shown.append(rule["host"])
    if not shown:
        return "*"
    text = ",".join(shown)
    return f"{text} + {len(rules) - limit} more..." if more else text


def _ingress_row(ing: Obj, now: datetime.datetime, wide: bool = False) -> list[str]:
    spec = ing.get("spec") or {}
    class_name = spec.get("ingressClassName")
    return [_name(ing), NONE if class_name is None else class_name,
            ingress_hosts(spec.get("rules")),
            load_balancer_addresses(_g(ing, "status", "loadBalancer"), wide),
            "80, 443" if spec.get("tls") else "80", age(ing, now)]


def _ingress_row_wide(ing: Obj, now: datetime.datetime) -> list[str]:
    return _ingress_row(ing, now, wide=True)


def _ingressclass_row(ic: Obj, now: datetime.datetime) -> list[str]:
    spec = ic.get("spec") or {}
    params = spec.get("parameters")
    text = NONE
    if params:
        text = params.get("kind", "")
        if params.get("apiGroup") is not None:
            text += "." + params["apiGroup"]
        text += "/" + params.get("name", "")
    return [_name(ic), spec.get("controller", ""), text, age(ic, now)]


def _hpa_metric_text(spec: Obj, status: Obj | None) -> str:
    """One metric of formatHPAMetrics: `cpu: 12%/50%`, `memory: 10Mi/100Mi`."""
    kind = spec.get("type", "")
    if kind in ("Resource", "ContainerResource"):
        member = "resource" if kind == "Resource" else "containerResource"
        source = spec.get(member) or {}
        target = source.get("target") or {}
        current = (status or {}).get(member)
        name = source.get("name", "")
        if target.get("averageValue") is not None:
            value = "<unknown>" if current is None else \
                _g(current, "current", "averageValue", default="")
            return f"{name}: {value}/{target['averageValue']}"
        value = "<unknown>"
        if current is not None and _g(current, "current", "averageUtilization") is not None:
            value = f"{current['current']['averageUtilization']}%"
        goal = "<auto>" if target.get("averageUtilization") is None else \
            f"{target['averageUtilization']}%"
        return f"{name}: {value}/{goal}"
    if kind == "Pods":
        return f"<unknown>/{_g(spec, 'pods', 'target', 'averageValue', default='')}"
    if kind in ("Object", "External"):
        target = _g(spec, kind.lower(), "target", default={})
        if target.get("averageValue") is not None:
            return f"<unknown>/{target['averageValue']} (avg)"
        return f"<unknown>/{target.get('value', '')}"
    return "<unknown type>"


def hpa_targets(specs: list[Obj] | None, statuses: list[Obj] | None, shown_max: int = 2) -> str:
    """kubectl's formatHPAMetrics: the first two metrics, then `+ N more...`."""
    if not specs:
        return NONE
    statuses = statuses or []
    texts = [_hpa_metric_text(s, statuses[i] if i < len(statuses) else None)
             for i, s in enumerate(specs)]
    if len(texts) > shown_max:
        return f"{', '.join(texts[:shown_max])} + {len(texts) - shown_max} more..."
    return ", ".join(texts)


def _hpa_row(hpa: Obj, now: datetime.datetime) -> list[str]:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = spec.get("minReplicas")
    return [_name(hpa), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            hpa_targets(spec.get("metrics"), status.get("currentMetrics")),
            "<unset>" if min_pods is None else str(min_pods), str(spec.get("maxReplicas", 0)),
            str(status.get("currentReplicas", 0)), age(hpa, now)]


def _usage_cells(usages: list[Obj]) -> list[str]:
    """The CPU and memory of metrics-server's table: the usages summed, as
    resource.Quantity.Add then String print them."""
    from fractions import Fraction

    from kubemu.api import quantity

    cpu = sum((quantity.parse(u["cpu"]).value for u in usages if u.get("cpu")), Fraction(0))
    memory = sum((quantity.parse(u["memory"]).value for u in usages if u.get("memory")),
                 Fraction(0))
    return [quantity.canonical(cpu, quantity.DECIMAL_SI),
            quantity.canonical(memory, quantity.BINARY_SI)]


def _nodemetrics_row(m: Obj, now: datetime.datetime) -> list[str]:
    return [_name(m), *_usage_cells([m.get("usage") or {}]), m.get("window", "")]


def _podmetrics_row(m: Obj, now: datetime.datetime) -> list[str]:
    usages = [c.get("usage") or {} for c in m.get("containers") or []]
    return [_name(m), *_usage_cells(usages), m.get("window", "")]


def _event_row(ev: Obj, now: datetime.datetime) -> list[str]:
    """printEvent (kubernetes pkg/printers/internalversion), what `kubectl get
    events` shows: LAST SEEN is lastTimestamp, or the series' lastObservedTime,
    or else the first time (firstTimestamp, or eventTime for events.k8s.io
    Events); COUNT is the series' count, else count, else 1. The "(xN over M)"
    interval is `kubectl events`' and describe's, not get's."""
    first = _g(ev, "firstTimestamp", default="")
    first_text = since(first, now) if first else since(_g(ev, "eventTime", default=""), now)
    last = _g(ev, "lastTimestamp", default="")
    last_text = since(last, now) if last else first_text
    count = _int(ev.get("count"))
    series = ev.get("series")
    if series:
        last_text = since(series.get("lastObservedTime", ""), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events.k8s.io Events have no count
    involved = ev.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    # formatEventSource: reportingController / reportingInstance stand in for
    # an empty source.component / source.host.
    source = _g(ev, "source", "component", default="") or ev.get("reportingComponent", "")
    host = _g(ev, "source", "host", default="") or ev.get("reportingInstance", "")
    if host:
        source = f"{source}, {host}"
    return [last_text, ev.get("type", ""), ev.get("reason", ""), target,
            (ev.get("message") or "").strip(),
            involved.get("fieldPath", ""), source, first_text, str(count),
            _name(ev)]


_ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"),
                 ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: list[str] | None) -> str:
    present = set(modes or [])
    return ",".join(short for long, short in _ACCESS_MODES if long in present)


def quantity_text(text: Any) -> str:
    """A quantity as resource.Quantity.String() prints it (canonical form); "0" when unset."""
    from kubemu.api import quantity

    if text is None or text == "":
        return "0"
    try:
        return str(quantity.parse(str(text)))
    except ValueError:
        return str(text)


BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def pv_storage_class(pv: Obj) -> str:
    """GetPersistentVolumeClass: the beta annotation wins over spec.storageClassName."""
    annotations = _g(pv, "metadata", "annotations", default={})
    if BETA_STORAGE_CLASS_ANNOTATION in annotations:
        return annotations[BETA_STORAGE_CLASS_ANNOTATION]
    return _g(pv, "spec", "storageClassName", default="")


def _unset(value: Any) -> str:
    return "<unset>" if value is None else str(value)


def volume_phase(obj: Obj) -> str:
    """A PV's or PVC's phase, Terminating once deleted; Pending, the phase Kubernetes
    defaults, when the status has none."""
    if _g(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return _g(obj, "status", "phase", default="") or "Pending"


def _pv_row(pv: Obj, now: datetime.datetime) -> list[str]:
    claim = _g(pv, "spec", "claimRef")
    claim_text = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    return [_name(pv), quantity_text(_g(pv, "spec", "capacity", "storage")),
            access_modes(_g(pv, "spec", "accessModes")),
            _g(pv, "spec", "persistentVolumeReclaimPolicy", default=""),
            volume_phase(pv), claim_text, pv_storage_class(pv),
            _unset(_g(pv, "spec", "volumeAttributesClassName")),
            _g(pv, "status", "reason", default=""), age(pv, now),
            _unset(_g(pv, "spec", "volumeMode"))]


def _pvc_row(pvc: Obj, now: datetime.datetime) -> list[str]:
    volume = _g(pvc, "spec", "volumeName", default="")
    capacity = modes = ""
    if volume:
        capacity = quantity_text(_g(pvc, "status", "capacity", "storage"))
        modes = access_modes(_g(pvc, "status", "accessModes"))
    # GetPersistentVolumeClaimClass reads the same annotation first
    return [_name(pvc), volume_phase(pvc), volume, capacity, modes, pv_storage_class(pvc),
            _unset(_g(pvc, "spec", "volumeAttributesClassName")), age(pvc, now),
            _unset(_g(pvc, "spec", "volumeMode"))]


DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")


def is_default_class(sc: Obj) -> bool:
    """storageutil.IsDefaultAnnotation: either annotation set to exactly "true"."""
    annotations = _g(sc, "metadata", "annotations", default={})
    return any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)


def _storageclass_row(sc: Obj, now: datetime.datetime) -> list[str]:
    name = _name(sc) + (" (default)" if is_default_class(sc) else "")
    return [name, sc.get("provisioner", ""), sc.get("reclaimPolicy") or "Delete",
            sc.get("volumeBindingMode") or "Immediate",
            "true" if sc.get("allowVolumeExpansion") else "false", age(sc, now)]


def _priorityclass_row(pc: Obj, now: datetime.datetime) -> list[str]:
    """printPriorityClass: the policy last, after AGE ("" when unset)."""
    return [_name(pc), str(_int(pc.get("value"))),
            "true" if pc.get("globalDefault") else "false", age(pc, now),
            pc.get("preemptionPolicy") or ""]


def _pdb_row(pdb: Obj, now: datetime.datetime) -> list[str]:
    def bare(value: Any) -> str:
        return "N/A" if value is None else str(value)
    return [_name(pdb), bare(_g(pdb, "spec", "minAvailable")),
            bare(_g(pdb, "spec", "maxUnavailable")),
            str(_int(_g(pdb, "status", "disruptionsAllowed"))), age(pdb, now)]


def _resourcequota_row(rq: Obj, now: datetime.datetime) -> list[str]:
    """printResourceQuota: `name: used/hard` by status.hard's sorted names, the
    limits.* ones under LIMIT and the rest under REQUEST."""
    hard = _g(rq, "status", "hard", default={}) or {}
    used = _g(rq, "status", "used", default={}) or {}
    request, limit = [], []
    for name in sorted(hard):
        pieces = name.split(".")
        column = limit if len(pieces) > 1 and pieces[0] == "limits" else request
        column.append(f"{name}: {quantity_text(used.get(name))}/{quantity_text(hard[name])}")
    return [_name(rq), age(rq, now), ", ".join(request), ", ".join(limit)]


def _limitrange_row(lr: Obj, now: datetime.datetime) -> list[str]:
    """printLimitRange: the creation time as the table's JSON carries it."""
    return [_name(lr), _g(lr, "metadata", "creationTimestamp", default="") or "<nil>"]


def _name_row(*getters: Callable[[Obj], str]) -> Callable[[Obj, datetime.datetime], list[str]]:
    def row(obj: Obj, now: datetime.datetime) -> list[str]:
        return [_name(obj), *(g(obj) for g in getters), age(obj, now)]
    return row


# ---------------------------------------------------------------- the tables

@dataclasses.dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    row: Callable[[Obj, datetime.datetime], list[str]]
    # Extra columns for -o wide; the row function returns them after `columns`.
    wide: tuple[str, ...] = ()
    # The row for -o wide when its columns differ too (an address not clipped).
    wide_row: Callable[[Obj, datetime.datetime], list[str]] | None = None

    @property
    def name_index(self) -> int | None:
        return self.columns.index("NAME") if "NAME" in self.columns else None


_WORKLOAD_WIDE = ("CONTAINERS", "IMAGES", "SELECTOR")

TABLES: dict[str, Table] = {
    "pods": Table(("NAME", "READY", "STATUS", "RESTARTS", "AGE"), _pod_row,
                  ("IP", "NODE", "NOMINATED NODE", "READINESS GATES")),
    "deployments": Table(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
                         _deployment_row, _WORKLOAD_WIDE),
    "replicasets": Table(("NAME", "DESIRED", "CURRENT", "READY", "AGE"),
                         _replicaset_row, _WORKLOAD_WIDE),
    "statefulsets": Table(("NAME", "READY", "AGE"), _statefulset_row,
                          ("CONTAINERS", "IMAGES")),
    "daemonsets": Table(("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                         "NODE SELECTOR", "AGE"), _daemonset_row, _WORKLOAD_WIDE),
    "jobs": Table(("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"), _job_row,
                  _WORKLOAD_WIDE),
    "cronjobs": Table(("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE",
                       "AGE"), _cronjob_row, _WORKLOAD_WIDE),
    "controllerrevisions": Table(("NAME", "CONTROLLER", "REVISION", "AGE"),
                                 _controllerrevision_row),
    "nodes": Table(("NAME", "STATUS", "ROLES", "AGE", "VERSION"), _node_row,
                   ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                    "CONTAINER-RUNTIME")),
    "services": Table(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"),
                      _service_row, ("SELECTOR",), wide_row=_service_row_wide),
    "endpoints": Table(("NAME", "ENDPOINTS", "AGE"), _endpoints_row),
    "endpointslices": Table(("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"),
                            _endpointslice_row),
    "ingresses": Table(("NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"), _ingress_row,
                       wide_row=_ingress_row_wide),
    "ingressclasses": Table(("NAME", "CONTROLLER", "PARAMETERS", "AGE"), _ingressclass_row),
    # metrics-server's own table (kubectl get nodemetrics / podmetrics).
    "nodemetrics": Table(("NAME", "CPU", "MEMORY", "WINDOW"), _nodemetrics_row),
    "podmetrics": Table(("NAME", "CPU", "MEMORY", "WINDOW"), _podmetrics_row),
    "events": Table(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"), _event_row,
                    ("SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME")),
    "namespaces": Table(("NAME", "STATUS", "AGE"),
                        _name_row(lambda o: _g(o, "status", "phase", default="") or "Active")),
    "configmaps": Table(("NAME", "DATA", "AGE"), _name_row(
        lambda o: str(len(o.get("data") or {}) + len(o.get("binaryData") or {})))),
    "secrets": Table(("NAME", "TYPE", "DATA", "AGE"), _name_row(
        lambda o: o.get("type") or "Opaque", lambda o: str(len(o.get("data") or {})))),
    "leases": Table(("NAME", "HOLDER", "AGE"),
                    _name_row(lambda o: _g(o, "spec", "holderIdentity", default=""))),
    "persistentvolumes": Table(("NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS",
                                "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON",
                                "AGE"), _pv_row, ("VOLUMEMODE",)),
    "persistentvolumeclaims": Table(("NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES",
                                     "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"), _pvc_row,
                                    ("VOLUMEMODE",)),
    "serviceaccounts": Table(("NAME", "SECRETS", "AGE"),
                             _name_row(lambda o: str(len(o.get("secrets") or [])))),
    "horizontalpodautoscalers": Table(("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                       "REPLICAS", "AGE"), _hpa_row),
    "poddisruptionbudgets": Table(("NAME", "MIN AVAILABLE", "MAX UNAVAILABLE",
                                   "ALLOWED DISRUPTIONS", "AGE"), _pdb_row),
    "networkpolicies": Table(("NAME", "POD-SELECTOR", "AGE"), _name_row(
        lambda o: format_selector(_g(o, "spec", "podSelector")))),
    "priorityclasses": Table(("NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"),
                             _priorityclass_row),
    "storageclasses": Table(("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                             "ALLOWVOLUMEEXPANSION", "AGE"), _storageclass_row),
    "resourcequotas": Table(("NAME", "AGE", "REQUEST", "LIMIT"), _resourcequota_row),
    "limitranges": Table(("NAME", "CREATED AT"), _limitrange_row),
}

DEFAULT_TABLE = Table(("NAME", "AGE"), _name_row())


def table_for(resource: str) -> Table:
    return TABLES.get(resource, DEFAULT_TABLE)


@dataclasses.dataclass(frozen=True)
class TableOptions:
    wide: bool = False
    all_namespaces: bool = False  # a leading NAMESPACE column
    show_labels: bool = False
    kind_prefix: str = ""  # "pod" -> NAME shows "pod/nginx" (several kinds in one get)
    label_columns: tuple[str, ...] = ()  # -L: one column per label key, before LABELS


def headers(resource: str, opts: TableOptions) -> list[str]:
    table = table_for(resource)
    cols = list(table.columns) + (list(table.wide) if opts.wide else [])
    if opts.all_namespaces:
        cols.insert(0, "NAMESPACE")
    # kubectl's formatLabelHeaders: the key's last path segment, upper-cased
    cols.extend(key.split("/")[-1].upper() for key in opts.label_columns)
    if opts.show_labels:
        cols.append("LABELS")
    return cols


def row(resource: str, obj: Obj, opts: TableOptions,
        now: datetime.datetime | None = None) -> list[str]:
    table = table_for(resource)
    make_row = table.wide_row if opts.wide and table.wide_row is not None else table.row
    values = make_row(obj, now or now_utc())
    values = values[:len(table.columns) + (len(table.wide) if opts.wide else 0)]
    if opts.kind_prefix and table.name_index is not None:
        values[table.name_index] = f"{opts.kind_prefix}/{values[table.name_index]}"
    if opts.all_namespaces:
        values.insert(0, _g(obj, "metadata", "namespace", default=""))
    labels = _g(obj, "metadata", "labels", default={})
    values.extend(str(labels.get(key, "")) for key in opts.label_columns)
    if opts.show_labels:
        values.append(format_labels(labels))
    return values


# ---------------------------------------------------------------- tabwriter

class TabWriter:
    """text/tabwriter as kubectl configures it; widths only ever grow (RememberWidths)."""

    def __init__(self, *, min_width: int = 6, padding: int = 3):
        self.min_width = min_width
        self.padding = padding
        self.widths: list[int] = []

    def render(self, rows: Iterable[list[str]]) -> str:
        rows = [list(r) for r in rows]
        for r in rows:
            for i, cell in enumerate(r[:-1]):
                width = max(self.min_width, len(cell) + self.padding)
                if i >= len(self.widths):
                    self.widths.append(width)
                elif width > self.widths[i]:
                    self.widths[i] = width
        lines = []
        for r in rows:
            cells = [cell.ljust(self.widths[i]) for i, cell in enumerate(r[:-1])]
            lines.append("".join(cells) + (r[-1] if r else ""))
        return "".join(line + "\n" for line in lines)


def render_table(rows: Iterable[list[str]]) -> str:
    return TabWriter().render(rows)


def tabbed(lines: Iterable[str], *, padding: int = 2) -> str:
    """Elastic tabstops over `\\t`-separated lines (kubectl describe's tabwriter).

    A column block is a run of consecutive lines that all have a cell in that
    column; a cell is text terminated by a tab, and the text after the last tab
    is never padded.
    """
    rows = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * (len(r) - 1) for r in rows]

    def align(column: int, start: int, end: int) -> None:
        i = start
        while i < end:
            if len(rows[i]) - 1 <= column:
                i += 1
                continue
            j = i
            while j < end and len(rows[j]) - 1 > column:
                j += 1
            width = max(len(rows[k][column]) for k in range(i, j)) + padding
            for k in range(i, j):
                widths[k][column] = width
            align(column + 1, i, j)
            i = j

    align(0, 0, len(rows))
    out = []
    for r, w in zip(rows, widths):
        out.append("".join(cell.ljust(w[i]) for i, cell in enumerate(r[:-1])) + r[-1])
    return "".join(line + "\n" for line in out)


# ---------------------------------------------------------------- -o json|yaml|name

def kind_label(kind: str, group: str) -> str:
    """`pod`, `deployment.apps`: how kubectl names a kind in `kind/name` output."""
    return f"{kind.lower()}.{group}" if group else kind.lower()


def with_type(obj: Obj, api_version: str, kind: str) -> Obj:
    """`obj` with apiVersion and kind first, as the server would send them."""
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": obj.get("apiVersion") or api_version,
            "kind": obj.get("kind") or kind, **rest}


def as_list(items: list[Obj]) -> Obj:
    """Several objects, the way kubectl prints them: a v1 List."""
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


def format_json(obj: Obj, *, sort_keys: bool = True) -> str:
    """kubectl's -o json: Go's encoding/json, 4-space indent, `<>&` escaped; keys sorted
    as in an object from the server (`sort_keys=False` keeps a generated object's order)."""
    from kubemu.cli import gofmt

    return gofmt.marshal(obj, "    ", sort_keys=sort_keys) + "\n"


def format_yaml(obj: Obj) -> str:
    import yaml

    return yaml.dump(obj, Dumper=_yaml_dumper(), sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 30)


@functools.cache
def _yaml_dumper() -> type:
    """A SafeDumper that quotes like kubectl's (double quotes, `|` blocks for multi-line)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def choose_scalar_style(self):  # noqa: ANN201 - PyYAML hook
            style = super().choose_scalar_style()
            return '"' if style == "'" else style

    def represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper
