"""autoscaling/v2 validation: HorizontalPodAutoscalers (Kubernetes'
pkg/apis/autoscaling/validation, with the HPAScaleToZero gate off)."""
from __future__ import annotations

from google.protobuf.message import Message

from kubemu.api import errors, quantity
from kubemu.api.validation.meta import Problems, _items, _opt, _str, _sub

METRIC_SOURCE_TYPES = ("Object", "Pods", "Resource", "External", "ContainerResource")
# The member each source type populates.
SOURCE_FIELDS = {"Object": "object", "Pods": "pods", "Resource": "resource",
                 "External": "external", "ContainerResource": "containerResource"}
_PROTO_FIELDS = {"object": "object", "pods": "pods", "resource": "resource",
                 "external": "external", "containerResource": "container_resource"}
TARGET_TYPES = ("Utilization", "Value", "AverageValue")
POLICY_SELECTS = ("Max", "Min", "Disabled")
POLICY_TYPES = ("Pods", "Percent")
MAX_STABILIZATION_WINDOW_S = 3600
MAX_PERIOD_S = 1800


def _positive_quantity(text: str, path: str) -> Problems:
    if not text:
        return []
    try:
        value = quantity.parse(text).value
    except ValueError as err:
        return [errors.invalid(path, text, str(err))]
    return [] if value > 0 else [errors.invalid(path, text, "must be positive")]


def _target(target: Message, path: str) -> Problems:
    problems: Problems = []
    kind = _str(target, "type")
    if not kind:
        problems.append(errors.required(f"{path}.type", "must specify a metric target type"))
    if kind not in TARGET_TYPES:
        problems.append(errors.invalid(f"{path}.type", kind,
                                       "must be either Utilization, Value, or AverageValue"))
    problems += _positive_quantity(_str(target, "value"), f"{path}.value")
    problems += _positive_quantity(_str(target, "average_value"), f"{path}.averageValue")
    utilization = _opt(target, "average_utilization")
    if utilization is not None and utilization < 1:
        problems.append(errors.invalid(f"{path}.averageUtilization", utilization,
                                       "must be greater than 0"))
    return problems


def _resource_source(src: Message, path: str) -> Problems:
    problems: Problems = []
    if not _str(src, "name"):
        problems.append(errors.required(f"{path}.name", "must specify a resource name"))
    target = src.target
    problems += _target(target, f"{path}.target")
    utilization = _opt(target, "average_utilization")
    average = _str(target, "average_value")
    if utilization is None and not average:
        problems.append(errors.required(f"{path}.target.averageUtilization",
                                        "must set either a target raw value or a target "
                                        "utilization"))
    if utilization is not None and average:
        problems.append(errors.invalid(f"{path}.target.averageValue", average,
                                       "may not set both a target raw value and a target "
                                       "utilization"))
    return problems


def _metric(spec: Message, path: str) -> Problems:
    problems: Problems = []
    kind = _str(spec, "type")
    if not kind:
        problems.append(errors.required(f"{path}.type", "must specify a metric source type"))
    elif kind not in METRIC_SOURCE_TYPES:
        problems.append(errors.unsupported(f"{path}.type", kind, METRIC_SOURCE_TYPES))
    present = [name for name, field in _PROTO_FIELDS.items() if _sub(spec, field) is not None]
    expected = SOURCE_FIELDS.get(kind, "")
    if expected and expected not in present:
        problems.append(errors.required(f"{path}.{expected}",
                                        "must populate information for the given metric source"))
    if len(present) != 1:
        problems += [errors.forbidden(f"{path}.{name}", "must populate the given metric "
                                                        "source only")
                     for name in sorted(present) if name != expected]
    if kind == "Resource" and _sub(spec, "resource") is not None:
        problems += _resource_source(spec.resource, f"{path}.resource")
    if kind == "ContainerResource" and _sub(spec, "container_resource") is not None:
        problems += _resource_source(spec.container_resource, f"{path}.containerResource")
        if not _str(spec.container_resource, "container"):
            problems.append(errors.required(f"{path}.containerResource.container",
                                            "must specify a container"))
    return problems


def _rules(rules: Message, path: str) -> Problems:
    problems: Problems = []
    window = _opt(rules, "stabilization_window_seconds")
    if window is not None and window < 0:
        problems.append(errors.invalid(f"{path}.stabilizationWindowSeconds", window,
                                       "must be greater than or equal to zero"))
    if window is not None and window > MAX_STABILIZATION_WINDOW_S:
        problems.append(errors.invalid(f"{path}.stabilizationWindowSeconds", window,
                                       f"must be less than or equal to "
                                       f"{MAX_STABILIZATION_WINDOW_S}"))
    select = _str(rules, "select_policy")
    if select and select not in POLICY_SELECTS:
        problems.append(errors.unsupported(f"{path}.selectPolicy", select, POLICY_SELECTS))
    policies = _items(rules, "policies")
    if not policies:
        problems.append(errors.required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        at = f"{path}.policies[{i}]"
        if policy.type not in POLICY_TYPES:
            problems.append(errors.unsupported(f"{at}.type", policy.type, POLICY_TYPES))
        if policy.value <= 0:
            problems.append(errors.invalid(f"{at}.value", policy.value,
                                           "must be greater than zero"))
        if policy.period_seconds <= 0:
            problems.append(errors.invalid(f"{at}.periodSeconds", policy.period_seconds,
                                           "must be greater than zero"))
        if policy.period_seconds > MAX_PERIOD_S:
            problems.append(errors.invalid(f"{at}.periodSeconds", policy.period_seconds,
                                           f"must be less than or equal to {MAX_PERIOD_S}"))
    return problems


def validate_horizontal_pod_autoscaler(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems: Problems = []
    ref = spec.scale_target_ref
    if not ref.kind:
        problems.append(errors.required("spec.scaleTargetRef.kind"))
    elif "/" in ref.kind or "%" in ref.kind:
        problems.append(errors.invalid("spec.scaleTargetRef.kind", ref.kind,
                                       "may not contain '/' or '%'"))
    if not ref.name:
        problems.append(errors.required("spec.scaleTargetRef.name"))
    elif "/" in ref.name or "%" in ref.name:
        problems.append(errors.invalid("spec.scaleTargetRef.name", ref.name,
                                       "may not contain '/' or '%'"))
    min_replicas = _opt(spec, "min_replicas")
    if min_replicas is not None and min_replicas < 1:
        problems.append(errors.invalid("spec.minReplicas", min_replicas,
                                       "must be greater than or equal to 1"))
    if spec.max_replicas < 1:
        problems.append(errors.invalid("spec.maxReplicas", spec.max_replicas,
                                       "must be greater than 0"))
    if min_replicas is not None and spec.max_replicas < min_replicas:
        problems.append(errors.invalid("spec.maxReplicas", spec.max_replicas,
                                       "must be greater than or equal to `minReplicas`"))
    for i, metric in enumerate(spec.metrics):
        problems += _metric(metric, f"spec.metrics[{i}]")
    behavior = _sub(spec, "behavior")
    if behavior is not None:
        for name, field in (("scaleUp", "scale_up"), ("scaleDown", "scale_down")):
            rules = _sub(behavior, field)
            if rules is not None:
                problems += _rules(rules, f"spec.behavior.{name}")
    return problems
