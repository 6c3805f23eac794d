"""Pods (Kubernetes' pkg/registry/core/pod): creation admission, graceful
deletion confirmed by the node, and the binding subresource."""
from __future__ import annotations

from typing import Mapping, Sequence

from google.protobuf.message import Message

from apiserver.strategy import limitranger, priority
from apiserver.strategy.base import Strategy, now_rfc3339
from kubemu import timefmt
from kubemu.api import defaults, errors
from kubemu.api.kinds import Kind

DEFAULT_GRACE_PERIOD_S = 30
TERMINAL_PHASES = ("Succeeded", "Failed")


class PodStrategy(Strategy):
    admission_reads = (limitranger.LIMIT_RANGES, priority.PRIORITY_CLASSES)

    def __init__(self, kind: Kind, *, default_toleration_s: int,
                 default_unreachable_toleration_s: int = 300):
        super().__init__(kind)
        self.default_toleration_s = default_toleration_s  # not-ready
        self.default_unreachable_toleration_s = default_unreachable_toleration_s

    def admit(self, obj: Message, current: Mapping[str, Sequence[Message]]) -> None:
        """Mutating admission in kube-apiserver's order: LimitRanger (default
        requests and limits, then min/max/ratio checks), then Priority
        (priorityClassName -> spec.priority, preemptionPolicy)."""
        limitranger.admit_pod(obj, current.get(limitranger.LIMIT_RANGES, ()))
        priority.admit_pod(obj, current.get(priority.PRIORITY_CLASSES, ()))

    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        priority.keep_pod_priority(new, old)

    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        # DefaultTolerationSeconds admission (create only; the seconds are a flag).
        defaults.add_default_tolerations(obj, self.default_toleration_s,
                                         self.default_unreachable_toleration_s)
        obj.status.phase = "Pending"
        obj.status.qos_class = defaults.qos_class(obj)

    def check_graceful_delete(self, obj: Message, grace_period_s: int | None,
                              now_s: float) -> bool:
        """A bound, running pod is marked and waits for its node to delete it with
        grace 0; an unbound or finished one goes at once. A pod already marked
        keeps its deletion unless a shorter grace period is asked for, which
        moves its deletionTimestamp earlier by the difference (Kubernetes'
        rest.BeforeDelete); a grace period of 0 then lets it go (as soon as its
        finalizers do)."""
        meta = obj.metadata
        if meta.deletion_timestamp:
            current_s = meta.deletion_grace_period_seconds
            if not current_s:
                return False  # marked with grace 0: nothing left to wait for
            if grace_period_s is None or grace_period_s >= current_s:
                return True  # pending, with an equal or shorter grace period
            shifted_s = timefmt.parse_rfc3339(meta.deletion_timestamp) - current_s \
                + grace_period_s
            meta.deletion_timestamp = now_rfc3339(shifted_s)
            meta.deletion_grace_period_seconds = grace_period_s
            return grace_period_s > 0
        if grace_period_s is None:
            grace_period_s = (obj.spec.termination_grace_period_seconds
                              if obj.spec.HasField("termination_grace_period_seconds")
                              else DEFAULT_GRACE_PERIOD_S)
        if not obj.spec.node_name or obj.status.phase in TERMINAL_PHASES:
            grace_period_s = 0
        if grace_period_s == 0:
            return False
        meta.deletion_timestamp = now_rfc3339(now_s + grace_period_s)
        meta.deletion_grace_period_seconds = grace_period_s
        return True

    def deletion_complete(self, obj: Message) -> bool:
        # A node confirms a pod stopped by setting its grace period to 0.
        return (super().deletion_complete(obj)
                and not obj.metadata.deletion_grace_period_seconds)


def bind(pod: Message, node_name: str, now_s: float) -> None:
    """The pods/binding subresource on `pod` (in place): assign it to `node_name`.

    Raises Conflict when the pod is being deleted or already assigned.
    """
    name = pod.metadata.name
    if pod.metadata.deletion_timestamp:
        raise errors.conflict("pods", name, f"pod {name} is being deleted, cannot be "
                              "assigned to a host")
    if pod.spec.node_name:
        raise errors.conflict("pods", name, f"pod {name} is already assigned to node "
                              f'"{pod.spec.node_name}"')
    pod.spec.node_name = node_name
    now = now_rfc3339(now_s)
    for cond in pod.status.conditions:
        if cond.type == "PodScheduled":
            cond.status, cond.reason, cond.message = "True", "", ""
            cond.last_transition_time = now
            break
    else:
        pod.status.conditions.add(type="PodScheduled", status="True",
                                  last_transition_time=now)
