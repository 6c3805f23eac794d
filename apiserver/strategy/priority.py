"""The Priority admission plug-in (Kubernetes' plugin/pkg/admission/priority)
and the PriorityClass strategy.

Pods, on create: `spec.priorityClassName` resolves to the class's value and
preemptionPolicy, written into `spec.priority` and `spec.preemptionPolicy`;
without a class name the global default class (the lowest value if a race
left several) names it, else priority 0 and PreemptLowerPriority. An unknown
class, or a priority / preemptionPolicy given in the pod that differs from
what the class says, is Forbidden with Kubernetes' words. On update the
pod keeps what admission set (a client that leaves them out does not reset
them). PriorityClasses, on create and update: only one may be the global
default; the built-in ones (`system_priority_classes`, created by every
apiserver at start) cannot be deleted. Pure functions over messages; the
classes come in from the registry's watch cache (as the plug-in reads its
informer).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from google.protobuf.message import Message

from apiserver.strategy.base import Strategy
from kubemu.api import errors
from kubemu.api.fields import field_is_set
from kubemu.api.v1 import scheduling_pb2
from kubemu.api.validation import scheduling as validation

PRIORITY_CLASSES = "priorityclasses"
PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
# scheduling.DefaultPriorityWhenNoDefaultClassExists
DEFAULT_PRIORITY = 0
_GENERATED_SUFFIX_LEN = 5


def admission_name(obj: Message) -> str:
    """The name admission errors quote: Kubernetes admits before it generates
    a name, so a generated one is quoted as its generateName."""
    meta = obj.metadata
    if meta.generate_name and meta.name.startswith(meta.generate_name[:58]) \
            and len(meta.name) == len(meta.generate_name[:58]) + _GENERATED_SUFFIX_LEN:
        return meta.generate_name
    return meta.name


def _forbidden(resource: str, obj: Message, why: str) -> errors.Forbidden:
    return errors.Forbidden(f'{resource} "{admission_name(obj)}" is forbidden: {why}')


def global_default(classes: Sequence[Message]) -> Message | None:
    """The global default class; of several (a race), the one of lowest value."""
    marked = [pc for pc in classes if pc.global_default]
    return min(marked, key=lambda pc: (pc.value, pc.metadata.name)) if marked else None


def admit_pod(pod: Message, classes: Sequence[Message]) -> None:
    """Resolve the pod's priority from its class (in place), or refuse it."""
    spec = pod.spec
    if spec.priority_class_name:
        pc = next((c for c in classes if c.metadata.name == spec.priority_class_name), None)
        if pc is None:
            raise _forbidden("pods", pod, f"no PriorityClass with name "
                                          f"{spec.priority_class_name} was found")
        priority = pc.value
        policy = pc.preemption_policy if pc.HasField("preemption_policy") else None
    else:
        pc = global_default(classes)
        if pc is not None:
            spec.priority_class_name = pc.metadata.name
            priority = pc.value
            policy = pc.preemption_policy if pc.HasField("preemption_policy") else None
        else:
            priority, policy = DEFAULT_PRIORITY, PREEMPT_LOWER_PRIORITY
    if spec.HasField("priority") and spec.priority != priority:
        raise _forbidden("pods", pod, f"the integer value of priority ({spec.priority}) must "
                                      "not be provided in pod spec; priority admission "
                                      f"controller computed {priority} from the given "
                                      "PriorityClass name")
    spec.priority = priority
    if policy is not None:
        if spec.HasField("preemption_policy") and spec.preemption_policy != policy:
            raise _forbidden("pods", pod, "the string value of PreemptionPolicy "
                                          f"({spec.preemption_policy}) must not be provided "
                                          "in pod spec; priority admission controller "
                                          f"computed {policy} from the given PriorityClass "
                                          "name")
        spec.preemption_policy = policy


def keep_pod_priority(new: Message, old: Message) -> None:
    """On update: what admission set at create stays when the client left it out."""
    for field in ("priority", "preemption_policy"):
        if not field_is_set(new.spec, field) and field_is_set(old.spec, field):
            setattr(new.spec, field, getattr(old.spec, field))


_SYSTEM_DESCRIPTIONS = {
    validation.SYSTEM_CLUSTER_CRITICAL: "Used for system critical pods that must run in the "
                                        "cluster, but can be moved to another node if necessary.",
    validation.SYSTEM_NODE_CRITICAL: "Used for system critical pods that must not be moved "
                                     "from their current node.",
}


def system_priority_classes() -> list[Message]:
    """The built-in classes every apiserver makes sure exist at start
    (kube-apiserver's bootstrap-system-priority-classes post-start hook)."""
    return [scheduling_pb2.PriorityClass(
        metadata={"name": name}, value=value, description=_SYSTEM_DESCRIPTIONS[name],
        preemption_policy=PREEMPT_LOWER_PRIORITY)
        for name, value in validation.SYSTEM_PRIORITY_CLASSES.items()]


class PriorityClassStrategy(Strategy):
    admission_reads = (PRIORITY_CLASSES,)
    admits_updates = True

    def admit(self, obj: Message, current: Mapping[str, Sequence[Message]]) -> None:
        """Only one class may be the global default: a second one is refused."""
        self._one_default(obj, current)

    def admit_update(self, new: Message, old: Message,
                     current: Mapping[str, Sequence[Message]]) -> None:
        """Nor may another class become the default while one is."""
        self._one_default(new, current)

    def _one_default(self, obj: Message, current: Mapping[str, Sequence[Message]]) -> None:
        if not obj.global_default:
            return
        existing = global_default([pc for pc in current.get(PRIORITY_CLASSES, ())
                                   if pc.metadata.name != obj.metadata.name])
        if existing is not None:
            raise _forbidden("priorityclasses.scheduling.k8s.io", obj,
                             f"PriorityClass {existing.metadata.name} is already marked as "
                             "default. Only one default can exist")

    def check_delete(self, name: str) -> None:
        if name in validation.SYSTEM_PRIORITY_CLASSES:
            raise errors.Forbidden(f'priorityclasses.scheduling.k8s.io "{name}" is forbidden: '
                                   "this is a system priority class and cannot be deleted")
