"""PersistentVolumes and PersistentVolumeClaims (Kubernetes'
pkg/registry/core/persistentvolume{,claim}): Pending on create; a claim that
names no class gets the default StorageClass (Kubernetes' DefaultStorageClass
admission plugin)."""
from __future__ import annotations

from typing import Mapping, Sequence

from google.protobuf.message import Message

from apiserver.strategy import limitranger
from apiserver.strategy.base import Strategy
from kubemu import timefmt

DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
# The annotation that named a claim's class before spec.storageClassName.
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
STORAGE_CLASSES = "storageclasses"


class PendingOnCreateStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        obj.status.phase = "Pending"


class ClaimStrategy(PendingOnCreateStrategy):
    admission_reads = (STORAGE_CLASSES, limitranger.LIMIT_RANGES)

    def admit(self, obj: Message, current: Mapping[str, Sequence[Message]]) -> None:
        """LimitRanger's storage min/max; then DefaultStorageClass: a claim
        without a class (unset, not "") gets the default one, the newest if
        several are marked default."""
        limitranger.admit_claim(obj, current.get(limitranger.LIMIT_RANGES, ()))
        if obj.spec.HasField("storage_class_name") \
                or BETA_CLASS_ANNOTATION in obj.metadata.annotations:
            return
        default = default_class(current.get(STORAGE_CLASSES, ()))
        if default is not None:
            obj.spec.storage_class_name = default.metadata.name


def default_class(classes: Sequence[Message]) -> Message | None:
    return newest_marked(classes, DEFAULT_CLASS_ANNOTATIONS)


def newest_marked(classes: Sequence[Message], annotations: Sequence[str]) -> Message | None:
    """The class marked default by one of `annotations` = "true" (Kubernetes'
    GetDefaultClass, for storage and ingress classes): the newest, then the
    first by name."""
    marked = [c for c in classes
              if any(c.metadata.annotations.get(a) == "true" for a in annotations)]
    if not marked:
        return None
    marked.sort(key=lambda c: c.metadata.name)
    marked.sort(key=_created_s, reverse=True)
    return marked[0]


def _created_s(obj: Message) -> float:
    try:
        return timefmt.parse_rfc3339(obj.metadata.creation_timestamp)
    except ValueError:
        return 0.0
