"""ResourceQuota and LimitRange validation (core v1; Kubernetes'
ValidateResourceQuota and ValidateLimitRange in pkg/apis/core/validation),
kept apart from `core` so the quota kinds' rules read in one place."""
from __future__ import annotations

from typing import Mapping

from google.protobuf.message import Message

from kubemu.api import errors, quantity
from kubemu.api import quota as q
from kubemu.api.validation.core import _quantity_problems, _resource_name
from kubemu.api.validation.meta import Problems, _qualified_name, _Shown

LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
SCOPE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# Scopes that only pods' count may be limited with (the others also allow compute).
_POD_COUNT_ONLY_SCOPES = (q.SCOPE_BEST_EFFORT,)
_CONFLICTING_SCOPES = ((q.SCOPE_TERMINATING, q.SCOPE_NOT_TERMINATING),
                       (q.SCOPE_BEST_EFFORT, q.SCOPE_NOT_BEST_EFFORT))


def _quota_resource_name(name: str, path: str) -> Problems:
    """validateResourceQuotaResourceName."""
    problems = _qualified_name(name, path)
    if "/" not in name and name not in q.STANDARD_QUOTA_RESOURCES \
            and not name.startswith(("hugepages-", "requests.hugepages-")):
        problems.append(errors.invalid(path, name, "must be a standard resource for quota"))
    return problems


def _quota_quantities(values: Mapping[str, str], path: str) -> Problems:
    problems: Problems = []
    for name in sorted(values):
        entry = f"{path}[{name}]"
        problems.extend(_quota_resource_name(name, entry))
        found, value = _quantity_problems(values[name], entry)
        problems.extend(found)
        if value is not None and not found and name in q.INTEGER_RESOURCES \
                and value.value.denominator != 1:
            problems.append(errors.invalid(entry, values[name], "must be an integer"))
    return problems


def _scopes(quota: Message) -> Problems:
    problems: Problems = []
    scopes = list(quota.spec.scopes)
    hard = list(quota.spec.hard)
    for i, scope in enumerate(scopes):
        path = f"spec.scopes[{i}]"
        if scope not in q.STANDARD_SCOPES:
            problems.append(errors.invalid(path, scope, "unsupported scope"))
            continue
        for name in hard:
            allowed = (name in (q.PODS, q.COUNT_PREFIX + q.PODS)
                       if scope in _POD_COUNT_ONLY_SCOPES else q.is_pod_resource(name))
            if not allowed:
                problems.append(errors.invalid(
                    "spec.hard", name, "unsupported scope applied to resource"))
    for a, b in _CONFLICTING_SCOPES:
        if a in scopes and b in scopes:
            shown = _Shown("[]core.ResourceQuotaScope{"
                           + ", ".join(f'"{x}"' for x in scopes) + "}")
            problems.append(errors.invalid("spec.scopes", shown, "conflicting scopes"))
    exprs = quota.spec.scope_selector.match_expressions
    for i, expr in enumerate(exprs):
        path = f"spec.scopeSelector.matchExpressions[{i}]"
        if expr.scope_name not in q.STANDARD_SCOPES:
            problems.append(errors.invalid(f"{path}.scopeName", expr.scope_name,
                                           "unsupported scope"))
        if expr.operator not in SCOPE_OPERATORS:
            problems.append(errors.invalid(f"{path}.operator", expr.operator,
                                           "not a valid selector operator"))
        elif expr.operator in ("In", "NotIn") and not expr.values:
            problems.append(errors.required(
                f"{path}.values", "must be at least one value when `operator` is 'In' or "
                "'NotIn' for scope selector"))
        elif expr.operator in ("Exists", "DoesNotExist") and expr.values:
            problems.append(errors.invalid(
                f"{path}.values", list(expr.values),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope "
                "selector"))
    return problems


def validate_resource_quota(obj: Message, old: Message | None) -> Problems:
    problems = _quota_quantities(dict(obj.spec.hard), "spec.hard")
    problems.extend(_scopes(obj))
    problems.extend(_quota_quantities(dict(obj.status.hard), "status.hard"))
    problems.extend(_quota_quantities(dict(obj.status.used), "status.used"))
    return problems


def _limit_resource_name(limit_type: str, name: str, path: str) -> Problems:
    if limit_type in ("Pod", "Container"):
        return _resource_name(name, path)
    return _qualified_name(name, path)


def validate_limit_range(obj: Message, old: Message | None) -> Problems:
    problems: Problems = []
    seen: set[str] = set()
    for i, item in enumerate(obj.spec.limits):
        path = f"spec.limits[{i}]"
        problems.extend(_qualified_name(item.type, f"{path}.type"))
        if "/" not in item.type and item.type not in LIMIT_TYPES:
            problems.append(errors.invalid(f"{path}.type", item.type,
                                           "must be a standard limit type or fully qualified"))
        if item.type in seen:
            problems.append(errors.duplicate(f"{path}.type", item.type))
        seen.add(item.type)
        values: dict[str, dict[str, quantity.Quantity]] = {}
        fields = [("max", "max"), ("min", "min"), ("maxLimitRequestRatio",
                                                   "max_limit_request_ratio")]
        if item.type == "Pod":
            for json_name, field in (("default", "default"),
                                     ("defaultRequest", "default_request")):
                if getattr(item, field):
                    problems.append(errors.forbidden(
                        f"{path}.{json_name}", "may not be specified when `type` is 'Pod'"))
        else:
            fields += [("default", "default"), ("defaultRequest", "default_request")]
        for json_name, field in fields:
            values[json_name] = {}
            entries = getattr(item, field)
            for name in sorted(entries):
                entry = f"{path}.{json_name}[{name}]"
                problems.extend(_limit_resource_name(item.type, name, entry))
                found, value = _quantity_problems(entries[name], entry)
                problems.extend(found)
                if value is not None and not found:
                    values[json_name][name] = value
        if item.type == "PersistentVolumeClaim" and "storage" not in item.min \
                and "storage" not in item.max:
            problems.append(errors.required(
                f"{path}.limits", "either minimum or maximum storage value is required, but "
                "neither was provided"))
        problems.extend(_limit_order(values, path))
    return problems


def _limit_order(values: dict[str, dict[str, quantity.Quantity]], path: str) -> Problems:
    """min <= defaultRequest <= default <= max, and a ratio of at least 1 that
    max/min allows, with Kubernetes' messages."""
    problems: Problems = []
    mins, maxs = values.get("min", {}), values.get("max", {})
    defs, reqs = values.get("default", {}), values.get("defaultRequest", {})
    ratios = values.get("maxLimitRequestRatio", {})
    for name in sorted(set(mins) | set(maxs) | set(defs) | set(reqs) | set(ratios)):
        lo, hi = mins.get(name), maxs.get(name)
        default, request = defs.get(name), reqs.get(name)
        ratio = ratios.get(name)
        if lo is not None and hi is not None and lo > hi:
            problems.append(errors.invalid(f"{path}.min[{name}]", str(lo),
                                           f"min value {lo} is greater than max value {hi}"))
        if request is not None and lo is not None and lo > request:
            problems.append(errors.invalid(
                f"{path}.defaultRequest[{name}]", str(request),
                f"min value {lo} is greater than default request value {request}"))
        if request is not None and hi is not None and request > hi:
            problems.append(errors.invalid(
                f"{path}.defaultRequest[{name}]", str(request),
                f"default request value {request} is greater than max value {hi}"))
        if request is not None and default is not None and request > default:
            problems.append(errors.invalid(
                f"{path}.defaultRequest[{name}]", str(request),
                f"default request value {request} is greater than default limit value "
                f"{default}"))
        if default is not None and lo is not None and lo > default:
            problems.append(errors.invalid(
                f"{path}.default[{name}]", str(lo),
                f"min value {lo} is greater than default value {default}"))
        if default is not None and hi is not None and default > hi:
            problems.append(errors.invalid(
                f"{path}.default[{name}]", str(hi),
                f"default value {default} is greater than max value {hi}"))
        if ratio is not None and lo is not None and hi is not None and lo.value > 0:
            allowed = float(hi.value / lo.value)
            if float(ratio.value) > allowed:
                problems.append(errors.invalid(
                    f"{path}.maxLimitRequestRatio[{name}]", str(ratio),
                    f"ratio {ratio} is greater than max/min = {allowed:f}"))
    for name in sorted(ratios):
        if ratios[name].value < 1:
            problems.append(errors.invalid(f"{path}.maxLimitRequestRatio[{name}]",
                                           str(ratios[name]), f"ratio {ratios[name]} is less than 1"))
    return problems
