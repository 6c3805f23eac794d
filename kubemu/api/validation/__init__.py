"""Object validation: `validate(kind, obj, old=None) -> list[FieldError]`.

The model is Kubernetes' pkg/apis/*/validation: every problem is a FieldError
with the field path and wording Kubernetes reports (`metadata.name`,
`spec.containers[0].image: Required value`, `spec.template.metadata.labels:
Invalid value: map[string]string{...}: `selector` does not match template
`labels``). Metadata rules apply to every kind; per-kind rules are looked up
by kind name in `VALIDATORS`, so a kind without rules needs no entry. With
`old`, update rules apply too (immutable fields).

One module per API group, as in Kubernetes: `meta` (metadata and the shared
helpers), `core`, `apps`, `batch`, `coordination`, `discovery`, `networking`,
`storage`, `scheduling`; a group module imports
only `meta` and `core`.

Objects are expected to be defaulted first (the apiserver defaults, then
validates). Fields that defaulting would fill (restartPolicy, protocol, ...)
are read as their default when empty, so validating a raw manifest reports
the same problems. Pure functions over protobuf messages; no I/O but one:
a CronJob's timeZone is looked up in the tz database (kubemu.api.cron.load_zone).
"""
from __future__ import annotations

from google.protobuf.message import Message

from kubemu.api.kinds import Kind
from kubemu.api.validation import (
    apps,
    autoscaling,
    batch,
    coordination,
    core,
    discovery,
    meta,
    networking,
    quota,
    policy,
    storage,
)
from kubemu.api.validation import scheduling
from kubemu.api.validation.batch import cron_error
from kubemu.api.validation.meta import KindValidator, Problems

__all__ = ["MODULES", "STATUS_VALIDATORS", "VALIDATORS", "cron_error", "validate",
           "validate_status"]

MODULES = (meta, core, apps, batch, coordination, discovery, networking, storage, quota,
           policy, scheduling, autoscaling)

VALIDATORS: dict[str, KindValidator] = {
    "Pod": core.validate_pod,
    "Deployment": apps.validate_deployment,
    "ReplicaSet": apps.validate_replica_set,
    "StatefulSet": apps.validate_stateful_set,
    "DaemonSet": apps.validate_daemon_set,
    "Job": batch.validate_job,
    "CronJob": batch.validate_cron_job,
    "Service": core.validate_service,
    "Endpoints": core.validate_endpoints,
    "Node": core.validate_node,
    "Namespace": core.validate_namespace,
    "ConfigMap": core.validate_config_map,
    "Secret": core.validate_secret,
    "Lease": coordination.validate_lease,
    "Event": core.validate_event,
    "PersistentVolume": core.validate_pv,
    "PersistentVolumeClaim": core.validate_pvc,
    "ControllerRevision": apps.validate_controller_revision,
    "StorageClass": storage.validate_storage_class,
    "EndpointSlice": discovery.validate_endpoint_slice,
    "Ingress": networking.validate_ingress,
    "IngressClass": networking.validate_ingress_class,
    "ResourceQuota": quota.validate_resource_quota,
    "LimitRange": quota.validate_limit_range,
    "PodDisruptionBudget": policy.validate_pod_disruption_budget,
    "PriorityClass": scheduling.validate_priority_class,
    "HorizontalPodAutoscaler": autoscaling.validate_horizontal_pod_autoscaler,
}


# Rules for what a status update writes (Kubernetes' Validate<Kind>StatusUpdate),
# on top of `validate`.
STATUS_VALIDATORS: dict[str, KindValidator] = {
    "Deployment": apps.validate_deployment_status,
    "ReplicaSet": apps.validate_replica_set_status,
    "StatefulSet": apps.validate_stateful_set_status,
    "DaemonSet": apps.validate_daemon_set_status,
    "Job": batch.validate_job_status,
    "PodDisruptionBudget": policy.validate_pod_disruption_budget_status,
}


def validate_status(kind: Kind, obj: Message, old: Message) -> Problems:
    """Every problem with a status update of `old` to `obj`."""
    problems = validate(kind, obj, old)
    validator = STATUS_VALIDATORS.get(kind.kind)
    if validator is not None:
        problems.extend(validator(obj, old))
    return problems


def validate(kind: Kind, obj: Message, old: Message | None = None) -> Problems:
    """Every problem with `obj` (created, or updated from `old`), in Kubernetes' words."""
    problems = meta.validate_object_meta(obj.metadata, kind)
    if old is not None:
        problems.extend(meta.validate_object_meta_update(obj.metadata, old.metadata))
    validator = VALIDATORS.get(kind.kind)
    if validator is not None:
        problems.extend(validator(obj, old))
    return problems
