"""storage.k8s.io/v1 validation: storage classes (Kubernetes'
pkg/apis/storage/validation)."""
from __future__ import annotations

from typing import Sequence

from google.protobuf.message import Message

from kubemu.api import errors, labels
from kubemu.api.validation.meta import IMMUTABLE, Problems, _opt, _str

PARAMETERS_MAX = 512  # keys
PARAMETERS_SIZE_MAX_B = 256 * 1024
RECLAIM_POLICIES = ("Delete", "Retain")  # Recycle is not offered to classes
VOLUME_BINDING_MODES = ("Immediate", "WaitForFirstConsumer")


def validate_storage_class(obj: Message, old: Message | None) -> Problems:
    problems = _provisioner(_str(obj, "provisioner"))
    problems.extend(_parameters(obj.parameters))
    policy = _opt(obj, "reclaim_policy")
    if policy and policy not in RECLAIM_POLICIES:
        problems.append(errors.unsupported("reclaimPolicy", policy, RECLAIM_POLICIES))
    mode = _opt(obj, "volume_binding_mode") or "Immediate"  # unset reads as its default
    if mode not in VOLUME_BINDING_MODES:
        problems.append(errors.unsupported("volumeBindingMode", mode, VOLUME_BINDING_MODES))
    problems.extend(_allowed_topologies(obj.allowed_topologies, "allowedTopologies"))
    if old is not None:
        problems.extend(_update(obj, old))
    return problems


def _update(new: Message, old: Message) -> Problems:
    """ValidateStorageClassUpdate: what provisions volumes may not change."""
    problems: Problems = []
    if dict(new.parameters) != dict(old.parameters):
        problems.append(errors.forbidden("parameters", "updates to parameters are forbidden."))
    if new.provisioner != old.provisioner:
        problems.append(errors.forbidden("provisioner", "updates to provisioner are forbidden."))
    if _opt(new, "reclaim_policy") != _opt(old, "reclaim_policy"):
        problems.append(errors.forbidden("reclaimPolicy",
                                         "updates to reclaimPolicy are forbidden."))
    new_mode, old_mode = _opt(new, "volume_binding_mode"), _opt(old, "volume_binding_mode")
    if new_mode != old_mode:
        problems.append(errors.invalid("volumeBindingMode", new_mode, IMMUTABLE))
    return problems


def _provisioner(provisioner: str) -> Problems:
    if not provisioner:
        return [errors.required("provisioner")]
    return [errors.invalid("provisioner", provisioner, m)
            for m in labels.is_qualified_name(provisioner.lower())]


def _parameters(params: dict[str, str]) -> Problems:
    if len(params) > PARAMETERS_MAX:
        return [_too_long(PARAMETERS_MAX)]
    problems: Problems = []
    size_b = 0
    for key in sorted(params):
        if not key:
            problems.append(errors.invalid("parameters", key, "field can not be empty."))
        size_b += len(key) + len(params[key])
    if size_b > PARAMETERS_SIZE_MAX_B:
        problems.append(_too_long(PARAMETERS_SIZE_MAX_B))
    return problems


def _too_long(limit: int) -> errors.FieldError:
    # Kubernetes' TooLong with an unused value: the value is not printed.
    return errors.FieldError("parameters", "Too long", f"must have at most {limit} bytes")


def _allowed_topologies(terms: Sequence[Message], path: str) -> Problems:
    problems: Problems = []
    seen: list[dict[str, frozenset[str]]] = []
    for i, term in enumerate(terms):
        term_path = f"{path}[{i}]"
        expressions, found = _topology_selector_term(term, term_path)
        problems.extend(found)
        if expressions in seen:
            problems.append(errors.duplicate(f"{term_path}.matchLabelExpressions", ""))
        seen.append(expressions)
    return problems


def _topology_selector_term(term: Message,
                            path: str) -> tuple[dict[str, frozenset[str]], Problems]:
    """ValidateTopologySelectorTerm: each key once, each with distinct values."""
    problems: Problems = []
    expressions: dict[str, frozenset[str]] = {}
    for i, req in enumerate(term.match_label_expressions):
        req_path = f"{path}.matchLabelExpressions[{i}]"
        values: set[str] = set()
        if not req.values:
            problems.append(errors.required(f"{req_path}.values"))
        for j, value in enumerate(req.values):
            if value in values:
                problems.append(errors.duplicate(f"{req_path}.values[{j}]", value))
            values.add(value)
        problems.extend(errors.invalid(f"{req_path}.key", req.key, m)
                        for m in labels.is_qualified_name(req.key))
        if req.key in expressions:
            problems.append(errors.duplicate(f"{req_path}.key", req.key))
        expressions[req.key] = frozenset(values)
    return expressions, problems
