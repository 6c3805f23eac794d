"""Per-kind rules the generic registry applies on writes (Kubernetes' "strategies").

Pure functions over messages: what a create resets, what an update keeps from
the stored object, whether a change bumps metadata.generation.
"""
from __future__ import annotations

import datetime
import random
import string

from google.protobuf.message import Message

from kubemu.api import defaults
from kubemu.api.kinds import Kind

# Kinds whose status a client may set on create (kubelets create their Node
# with its status; events and leases have none to reset).
_STATUS_KEPT_ON_CREATE = {"Node"}
NAMESPACE_FINALIZER = "kubernetes"
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339(clock_s: float | None = None) -> str:
    moment = (datetime.datetime.fromtimestamp(clock_s, datetime.timezone.utc) if clock_s
              else datetime.datetime.now(datetime.timezone.utc))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def generated_name(prefix: str, rng: random.Random) -> str:
    return prefix + "".join(rng.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))


def has_field(obj: Message, name: str) -> bool:
    return name in obj.DESCRIPTOR.fields_by_name


def prepare_for_create(kind: Kind, obj: Message) -> None:
    if kind.has_status and has_field(obj, "status") and kind.kind not in _STATUS_KEPT_ON_CREATE:
        obj.ClearField("status")
    if kind.kind == "Pod":
        obj.status.phase = "Pending"
        obj.status.qos_class = defaults.qos_class(obj)
    elif kind.kind == "Namespace":
        obj.status.phase = "Active"
        if not obj.spec.finalizers:
            obj.spec.finalizers.append(NAMESPACE_FINALIZER)
    elif kind.kind == "PersistentVolumeClaim":
        obj.status.phase = "Pending"
    elif kind.kind == "PersistentVolume":
        obj.status.phase = "Pending"
    if kind.has_spec:
        obj.metadata.generation = 1


def spec_bytes(obj: Message) -> bytes:
    """Everything a generation counts: the object minus metadata and status."""
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.ClearField("metadata")
    if has_field(copy, "status"):
        copy.ClearField("status")
    copy.ClearField("api_version")
    copy.ClearField("kind")
    return copy.SerializeToString(deterministic=True)


def prepare_for_update(kind: Kind, new: Message, old: Message) -> None:
    """Carry over what a main-resource update may not change."""
    meta, old_meta = new.metadata, old.metadata
    meta.uid = old_meta.uid
    meta.creation_timestamp = old_meta.creation_timestamp
    meta.namespace = old_meta.namespace
    meta.generation = old_meta.generation
    if old_meta.deletion_timestamp:
        meta.deletion_timestamp = old_meta.deletion_timestamp
        if old_meta.HasField("deletion_grace_period_seconds"):
            meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds
    else:
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
    if kind.has_status and has_field(new, "status"):
        new.status.CopyFrom(old.status)
    if kind.has_spec and spec_bytes(new) != spec_bytes(old):
        meta.generation = old_meta.generation + 1


def prepare_for_status_update(kind: Kind, new: Message, old: Message) -> Message:
    """The stored object with only the status taken from `new`."""
    merged = type(old)()
    merged.CopyFrom(old)
    merged.status.CopyFrom(new.status)
    return merged


def deletion_complete(kind: Kind, obj: Message) -> bool:
    """Whether an object marked for deletion has nothing left to wait for."""
    meta = obj.metadata
    if not meta.deletion_timestamp or meta.finalizers:
        return False
    if kind.kind == "Pod":
        return not meta.deletion_grace_period_seconds  # a node confirms with grace 0
    if kind.kind == "Namespace":
        return not obj.spec.finalizers
    return True
