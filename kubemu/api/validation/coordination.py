"""coordination.k8s.io/v1 validation: leases (Kubernetes'
pkg/apis/coordination/validation)."""
from __future__ import annotations

from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.validation.meta import IS_NEGATIVE, Problems, _opt, _sub


def validate_lease(obj: Message, old: Message | None) -> Problems:
    spec = _sub(obj, "spec")
    problems: Problems = []
    duration = _opt(spec, "lease_duration_seconds")
    if duration is not None and duration <= 0:
        problems.append(errors.invalid("spec.leaseDurationSeconds", duration,
                                       "must be greater than 0"))
    transitions = _opt(spec, "lease_transitions")
    if transitions is not None and transitions < 0:
        problems.append(errors.invalid("spec.leaseTransitions", transitions, IS_NEGATIVE))
    return problems
