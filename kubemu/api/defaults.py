"""Kubernetes defaulting: `apply_defaults(kind, obj)` fills what Kubernetes fills.

The model is Kubernetes' SetDefaults_* functions (pkg/apis/*/v1/defaults.go):
a field that is unset gets its Kubernetes default, in place; a field that is
set is never touched, so applying the defaults twice changes nothing the
second time. Per-kind functions are looked up by kind name in `DEFAULTERS`.
Pod templates (Deployment, Job, ...) get the pod-spec defaults; Pods alone
also get the defaults Kubernetes applies to Pods only (requests from limits,
enableServiceLinks).

Also here: `job_selector_defaults` (the selector and labels the apiserver
generates for a Job from its uid), `add_default_tolerations` (Kubernetes'
DefaultTolerationSeconds admission) and `qos_class` (the kubelet's QoS rule).
Pure functions over protobuf messages; no I/O.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from google.protobuf.message import Message

from kubemu.api import quantity
from kubemu.api.fields import field_is_set, field_value
from kubemu.api.kinds import Kind

Defaulter = Callable[[Message], None]

DEFAULT_GRACE_PERIOD_S = 30
DEFAULT_FILE_MODE = 0o644  # 420: configMap/secret/downwardAPI/projected volumes
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_TOLERATION_S = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
JOB_SELECTOR_LABEL = "batch.kubernetes.io/controller-uid"


# ---------------------------------------------------------------- setters

def _has(msg: Message | None, name: str) -> bool:
    return msg is not None and name in msg.DESCRIPTOR.fields_by_name


def _default(msg: Message | None, name: str, value: Any) -> None:
    """Set `msg.<name>` to `value` when it is unset (and the message has the field)."""
    if _has(msg, name) and not field_is_set(msg, name):
        setattr(msg, name, value)


def _ensure(msg: Message | None, name: str) -> Message | None:
    """The sub-message `msg.<name>`, marked present (printed as `{}`)."""
    if not _has(msg, name):
        return None
    sub = getattr(msg, name)
    sub.SetInParent()
    return sub


def _sub(msg: Message | None, name: str) -> Message | None:
    return field_value(msg, name) if field_is_set(msg, name) else None


def _items(msg: Message | None, name: str) -> Sequence[Any]:
    return field_value(msg, name, ()) or ()


def _default_int_or_string(msg: Message | None, name: str, value: int | str) -> None:
    if not _has(msg, name):
        return
    target = getattr(msg, name)
    if target.WhichOneof("value") is None:
        if isinstance(value, int):
            target.int_val = value
        else:
            target.str_val = value


# ---------------------------------------------------------------- pods

def image_tag(image: str) -> str:
    """The tag of an image reference ("latest" when it has neither tag nor digest)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if digest else "latest"


def _default_http_get(handler: Message | None) -> None:
    action = _sub(handler, "http_get")
    if action is not None:
        _default(action, "path", "/")
        _default(action, "scheme", "HTTP")


def _default_nonzero(msg: Message | None, name: str, value: Any) -> None:
    """Like _default, but 0 counts as unset (Kubernetes' `if x == 0 { x = default }`)."""
    if _has(msg, name) and not getattr(msg, name):
        setattr(msg, name, value)


def _default_probe(probe: Message | None) -> None:
    if probe is None:
        return
    # An explicit 0 gets the default too: a period of 0 would probe in a busy loop.
    _default_nonzero(probe, "timeout_seconds", 1)
    _default_nonzero(probe, "period_seconds", 10)
    _default_nonzero(probe, "success_threshold", 1)
    _default_nonzero(probe, "failure_threshold", 3)
    _default_http_get(probe)


def _default_field_ref(ref: Message | None) -> None:
    if ref is not None:
        _default(ref, "api_version", "v1")


def _default_container(ctr: Message, host_network: bool) -> None:
    if not field_is_set(ctr, "image_pull_policy"):
        pull = "Always" if image_tag(ctr.image) == "latest" else "IfNotPresent"
        _default(ctr, "image_pull_policy", pull)
    _default(ctr, "termination_message_path", "/dev/termination-log")
    _default(ctr, "termination_message_policy", "File")
    _ensure(ctr, "resources")  # Kubernetes prints `resources: {}`
    for port in _items(ctr, "ports"):
        _default(port, "protocol", "TCP")
        if host_network:
            _default(port, "host_port", port.container_port)
    for var in _items(ctr, "env"):
        _default_field_ref(_sub(_sub(var, "value_from"), "field_ref"))
    for field in ("liveness_probe", "readiness_probe", "startup_probe"):
        _default_probe(_sub(ctr, field))
    lifecycle = _sub(ctr, "lifecycle")
    for field in ("post_start", "pre_stop"):
        _default_http_get(_sub(lifecycle, field))


def _default_volume(volume: Message) -> None:
    sources = [f.name for f in volume.DESCRIPTOR.fields
               if f.message_type is not None and not f.is_repeated]
    if not any(field_is_set(volume, name) for name in sources):
        _ensure(volume, "empty_dir")  # a volume with no source is an emptyDir
    for field in ("config_map", "secret", "downward_api", "projected"):
        source = _sub(volume, field)
        if source is not None:
            _default(source, "default_mode", DEFAULT_FILE_MODE)
    downward = _sub(volume, "downward_api")
    for item in _items(downward, "items"):
        _default_field_ref(_sub(item, "field_ref"))
    host_path = _sub(volume, "host_path")
    if host_path is not None:
        _default(host_path, "type", "")


def default_pod_spec(spec: Message | None) -> None:
    """SetDefaults_PodSpec and what it implies, for pods and pod templates."""
    if spec is None:
        return
    _default(spec, "dns_policy", "ClusterFirst")
    _default(spec, "restart_policy", "Always")
    _default(spec, "termination_grace_period_seconds", DEFAULT_GRACE_PERIOD_S)
    _default(spec, "scheduler_name", DEFAULT_SCHEDULER)
    # serviceAccount is the deprecated alias of serviceAccountName; Kubernetes prints both.
    if field_value(spec, "service_account_name", "") and _has(spec, "service_account"):
        _default(spec, "service_account", spec.service_account_name)
    elif field_value(spec, "service_account", ""):
        _default(spec, "service_account_name", spec.service_account)
    _ensure(spec, "security_context")
    host_network = bool(field_value(spec, "host_network", False))
    for field in ("init_containers", "containers"):
        for ctr in _items(spec, field):
            _default_container(ctr, host_network)
    for volume in _items(spec, "volumes"):
        _default_volume(volume)
    for tol in _items(spec, "tolerations"):
        if field_is_set(tol, "value"):
            _default(tol, "operator", "Equal")


def _requests_from_limits(ctr: Message) -> None:
    resources = _sub(ctr, "resources")
    if resources is None or not _has(resources, "limits"):
        return
    for name, value in resources.limits.items():
        if name not in resources.requests:
            resources.requests[name] = value


def default_pod(pod: Message) -> None:
    spec = pod.spec
    default_pod_spec(spec)
    for field in ("init_containers", "containers"):
        for ctr in _items(spec, field):
            _requests_from_limits(ctr)
    _default(spec, "enable_service_links", True)
    # spec.priority and spec.preemptionPolicy are the Priority admission
    # plug-in's to set (from the PriorityClass), not defaults.


def default_pod_template(template: Message | None) -> None:
    if template is not None:
        default_pod_spec(template.spec)


def add_default_tolerations(pod: Message, not_ready_s: int = DEFAULT_TOLERATION_S,
                            unreachable_s: int = DEFAULT_TOLERATION_S) -> None:
    """DefaultTolerationSeconds admission: tolerate not-ready/unreachable nodes for a while.

    Not part of apply_defaults: Kubernetes does it at admission, on create only,
    and the seconds are an apiserver flag.
    """
    spec = pod.spec
    if not _has(spec, "tolerations"):
        return
    for key, seconds in ((NOT_READY_TAINT, not_ready_s), (UNREACHABLE_TAINT, unreachable_s)):
        if any(_tolerates_no_execute(tol, key) for tol in spec.tolerations):
            continue
        tol = spec.tolerations.add()
        tol.key, tol.operator, tol.effect = key, "Exists", "NoExecute"
        tol.toleration_seconds = seconds


def _tolerates_no_execute(tol: Message, key: str) -> bool:
    effect = field_value(tol, "effect", "")
    if effect not in ("", "NoExecute"):
        return False
    tol_key = field_value(tol, "key", "")
    if tol_key and tol_key != key:
        return False
    return field_value(tol, "operator", "") == "Exists" or not tol_key


# ---------------------------------------------------------------- workloads

def default_deployment(obj: Message) -> None:
    spec = obj.spec
    _default(spec, "replicas", 1)
    strategy = _ensure(spec, "strategy")
    _default(strategy, "type", "RollingUpdate")
    if strategy is not None and strategy.type == "RollingUpdate":
        rolling = _ensure(strategy, "rolling_update")
        _default_int_or_string(rolling, "max_unavailable", "25%")
        _default_int_or_string(rolling, "max_surge", "25%")
    _default(spec, "revision_history_limit", 10)
    _default(spec, "progress_deadline_seconds", 600)
    default_pod_template(_sub(spec, "template"))


def default_replica_set(obj: Message) -> None:
    _default(obj.spec, "replicas", 1)
    default_pod_template(_sub(obj.spec, "template"))


def default_stateful_set(obj: Message) -> None:
    spec = obj.spec
    _default(spec, "replicas", 1)
    _default(spec, "pod_management_policy", "OrderedReady")
    strategy = _ensure(spec, "update_strategy")
    if strategy is not None and not strategy.type:
        strategy.type = "RollingUpdate"
        _ensure(strategy, "rolling_update")
    rolling = _sub(strategy, "rolling_update")
    if strategy is not None and strategy.type == "RollingUpdate" and rolling is not None:
        _default(rolling, "partition", 0)
    retention = _ensure(spec, "persistent_volume_claim_retention_policy")
    _default(retention, "when_deleted", "Retain")
    _default(retention, "when_scaled", "Retain")
    _default(spec, "revision_history_limit", 10)
    default_pod_template(_sub(spec, "template"))
    for claim in _items(spec, "volume_claim_templates"):
        default_pvc(claim)


def default_daemon_set(obj: Message) -> None:
    spec = obj.spec
    strategy = _ensure(spec, "update_strategy")
    _default(strategy, "type", "RollingUpdate")
    if strategy is not None and strategy.type == "RollingUpdate":
        rolling = _ensure(strategy, "rolling_update")
        _default_int_or_string(rolling, "max_unavailable", 1)
        _default_int_or_string(rolling, "max_surge", 0)
    _default(spec, "revision_history_limit", 10)
    default_pod_template(_sub(spec, "template"))


def default_job(obj: Message) -> None:
    spec = obj.spec
    if not field_is_set(spec, "completions") and not field_is_set(spec, "parallelism"):
        _default(spec, "completions", 1)
    _default(spec, "parallelism", 1)
    _default(spec, "backoff_limit", 6)
    _default(spec, "completion_mode", "NonIndexed")
    _default(spec, "suspend", False)
    _default(spec, "pod_replacement_policy",
             "Failed" if field_is_set(spec, "pod_failure_policy") else "TerminatingOrFailed")
    template = _sub(spec, "template")
    default_pod_template(template)
    # A Job without labels takes its template's (SetDefaults_Job).
    if template is not None and not obj.metadata.labels and _sub(template, "metadata"):
        obj.metadata.labels.update(template.metadata.labels)


def job_selector_defaults(job: Message, uid: str) -> None:
    """The selector and pod labels Kubernetes generates for a Job (generateSelector).

    Template labels get job-name and controller-uid (legacy and batch.kubernetes.io
    keys) unless already there; the selector matches batch.kubernetes.io/controller-uid.
    A Job without labels of its own takes the template's.
    """
    spec = job.spec
    meta = spec.template.metadata
    for key in JOB_NAME_LABELS:
        meta.labels.setdefault(key, job.metadata.name)
    for key in CONTROLLER_UID_LABELS:
        meta.labels.setdefault(key, uid)
    spec.selector.SetInParent()
    spec.selector.match_labels.setdefault(JOB_SELECTOR_LABEL, uid)
    if not job.metadata.labels:
        job.metadata.labels.update(meta.labels)


def default_cron_job(obj: Message) -> None:
    spec = obj.spec
    _default(spec, "concurrency_policy", "Allow")
    _default(spec, "suspend", False)
    _default(spec, "successful_jobs_history_limit", 3)
    _default(spec, "failed_jobs_history_limit", 1)
    job_template = _sub(spec, "job_template")
    if job_template is not None:
        default_pod_template(_sub(job_template.spec, "template"))


# ---------------------------------------------------------------- core kinds

DEFAULT_CLIENT_IP_AFFINITY_S = 10800  # Kubernetes' DefaultClientIPServiceAffinitySeconds


def default_service(obj: Message) -> None:
    spec = obj.spec
    _default(spec, "type", "ClusterIP")
    _default(spec, "session_affinity", "None")
    for port in _items(spec, "ports"):
        _default(port, "protocol", "TCP")
        if _has(port, "target_port"):
            target = port.target_port
            which = target.WhichOneof("value")
            if (which is None or (which == "int_val" and not target.int_val)
                    or (which == "str_val" and not target.str_val)):
                target.int_val = port.port
    service_type = spec.type if _has(spec, "type") else "ClusterIP"
    if service_type != "ExternalName":
        _default(spec, "internal_traffic_policy", "Cluster")
        if _has(spec, "ip_families") and not spec.ip_families:
            spec.ip_families.append("IPv4")
        _default(spec, "ip_family_policy", "SingleStack")
        cluster_ip = field_value(spec, "cluster_ip", "")
        if cluster_ip and _has(spec, "cluster_ips") and not spec.cluster_ips:
            spec.cluster_ips.append(cluster_ip)
    if spec.session_affinity == "ClientIP":
        config = _ensure(_ensure(spec, "session_affinity_config"), "client_ip")
        _default(config, "timeout_seconds", DEFAULT_CLIENT_IP_AFFINITY_S)
    if service_type in ("NodePort", "LoadBalancer") or (
            service_type == "ClusterIP" and _items(spec, "external_ips")):
        _default(spec, "external_traffic_policy", "Cluster")
    if service_type == "LoadBalancer":
        _default(spec, "allocate_load_balancer_node_ports", True)


def default_endpoints(obj: Message) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            _default(port, "protocol", "TCP")


def default_secret(obj: Message) -> None:
    _default(obj, "type", "Opaque")
    if _has(obj, "string_data") and obj.string_data:
        # stringData is write-only: merged over data, never stored.
        for key, value in obj.string_data.items():
            obj.data[key] = value.encode("utf-8")
        obj.ClearField("string_data")


def default_namespace(obj: Message) -> None:
    if _has(obj, "status"):
        _default(obj.status, "phase", "Active")


def default_pv(obj: Message) -> None:
    _default(obj.spec, "persistent_volume_reclaim_policy", "Retain")
    _default(obj.spec, "volume_mode", "Filesystem")
    if _has(obj, "status"):
        _default(obj.status, "phase", "Pending")


def default_pvc(obj: Message) -> None:
    if _has(obj, "spec"):
        _default(obj.spec, "volume_mode", "Filesystem")
    if _has(obj, "status"):
        _default(obj.status, "phase", "Pending")


def default_storage_class(obj: Message) -> None:
    """SetDefaults_StorageClass: Delete and Immediate."""
    _default(obj, "reclaim_policy", "Delete")
    _default(obj, "volume_binding_mode", "Immediate")


def default_controller_revision(obj: Message) -> None:
    # Not a default in Kubernetes, but its `revision` has no omitempty: an
    # unset revision is 0 and printed.
    _default(obj, "revision", 0)


def default_node(obj: Message) -> None:
    status = _sub(obj, "status")
    if status is not None and _has(status, "allocatable") and not status.allocatable:
        status.allocatable.update(status.capacity)


def default_endpoint_slice(obj: Message) -> None:
    """discovery/v1 SetDefaults_EndpointPort: name "" and protocol TCP."""
    for port in _items(obj, "ports"):
        _default(port, "name", "")
        _default(port, "protocol", "TCP")


def default_ingress_class(obj: Message) -> None:
    """networking/v1 SetDefaults_IngressClass: parameters are cluster-scoped."""
    params = _sub(obj.spec, "parameters") if _has(obj, "spec") else None
    _default(params, "scope", "Cluster")


def default_priority_class(obj: Message) -> None:
    """scheduling/v1 SetDefaults_PriorityClass: PreemptLowerPriority. (`value`
    has no omitempty in Kubernetes: an unset value is 0 and printed.)"""
    _default(obj, "value", 0)
    _default(obj, "preemption_policy", "PreemptLowerPriority")
# autoscaling/v2 SetDefaults_HorizontalPodAutoscaler: 80% CPU when no metric
# is given; a behavior given is completed with the default rules (the scale
# down window stays unset: the controller's --horizontal-pod-autoscaler-
# downscale-stabilization fills it).
HPA_DEFAULT_CPU_UTILIZATION = 80
HPA_SCALE_UP_POLICIES = (("Pods", 4, 15), ("Percent", 100, 15))
HPA_SCALE_DOWN_POLICIES = (("Percent", 100, 15),)


def _default_scaling_rules(rules: Message, policies: tuple, window_s: int | None) -> None:
    if not rules.select_policy:
        rules.select_policy = "Max"
    if window_s is not None and not rules.HasField("stabilization_window_seconds"):
        rules.stabilization_window_seconds = window_s
    if not rules.policies:
        for kind, value, period_s in policies:
            rules.policies.add(type=kind, value=value, period_seconds=period_s)


def default_horizontal_pod_autoscaler(obj: Message) -> None:
    spec = obj.spec
    if not spec.HasField("min_replicas"):
        spec.min_replicas = 1
    if not spec.metrics:
        metric = spec.metrics.add(type="Resource")
        metric.resource.name = "cpu"
        metric.resource.target.type = "Utilization"
        metric.resource.target.average_utilization = HPA_DEFAULT_CPU_UTILIZATION
    if spec.HasField("behavior"):
        _default_scaling_rules(spec.behavior.scale_up, HPA_SCALE_UP_POLICIES, 0)
        _default_scaling_rules(spec.behavior.scale_down, HPA_SCALE_DOWN_POLICIES, None)


DEFAULTERS: dict[str, Defaulter] = {
    "Pod": default_pod,
    "Deployment": default_deployment,
    "ReplicaSet": default_replica_set,
    "StatefulSet": default_stateful_set,
    "DaemonSet": default_daemon_set,
    "Job": default_job,
    "CronJob": default_cron_job,
    "Service": default_service,
    "Endpoints": default_endpoints,
    "EndpointSlice": default_endpoint_slice,
    "IngressClass": default_ingress_class,
    "Secret": default_secret,
    "Namespace": default_namespace,
    "PersistentVolume": default_pv,
    "PersistentVolumeClaim": default_pvc,
    "Node": default_node,
    "StorageClass": default_storage_class,
    "ControllerRevision": default_controller_revision,
    "LimitRange": lambda obj: default_limit_range(obj),
    "PriorityClass": default_priority_class,
    "HorizontalPodAutoscaler": default_horizontal_pod_autoscaler,
}


def apply_defaults(kind: Kind, obj: Message) -> None:
    """Fill Kubernetes' defaults into `obj`, in place. Idempotent."""
    defaulter = DEFAULTERS.get(kind.kind)
    if defaulter is not None:
        defaulter(obj)


# ---------------------------------------------------------------- QoS

QOS_RESOURCES = ("cpu", "memory")


def qos_class(pod_or_spec: Message) -> str:
    """"Guaranteed", "Burstable" or "BestEffort", by Kubernetes' ComputePodQOS.

    Accepts a Pod or a PodSpec. Unparseable quantities count as zero.
    """
    spec = pod_or_spec.spec if _has(pod_or_spec, "metadata") else pod_or_spec
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    containers = list(_items(spec, "containers")) + list(_items(spec, "init_containers"))
    for ctr in containers:
        resources = _sub(ctr, "resources")
        for name, text in (field_value(resources, "requests", {}) or {}).items():
            value = _positive(name, text)
            if value is not None:
                requests[name] = requests.get(name, 0) + value
        found: set[str] = set()
        for name, text in (field_value(resources, "limits", {}) or {}).items():
            value = _positive(name, text)
            if value is not None:
                found.add(name)
                limits[name] = limits.get(name, 0) + value
        if not set(QOS_RESOURCES) <= found:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == value for name, value in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _positive(name: str, text: str):
    if name not in QOS_RESOURCES:
        return None
    try:
        value = quantity.parse(text).value
    except ValueError:
        return None
    return value if value > 0 else None


# ---------------------------------------------------------------- LimitRange

def default_limit_range(obj: Message) -> None:
    """SetDefaults_LimitRangeItem, for Container items: a default limit from
    max, then a default request from the default limit, else from min."""
    for item in obj.spec.limits:
        if item.type != "Container":
            continue
        for name, value in item.max.items():
            item.default.setdefault(name, value)
        for name, value in item.default.items():
            item.default_request.setdefault(name, value)
        for name, value in item.min.items():
            item.default_request.setdefault(name, value)
