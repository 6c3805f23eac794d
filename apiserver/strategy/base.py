"""The strategy interface and the default strategy for plain kinds.

A strategy holds what one kind does differently on writes, as Kubernetes'
`pkg/registry/<group>/<kind>/strategy.go`: the generic registry calls these
hooks in a fixed order and never names a kind.

Create: registry sets name/uid/creationTimestamp -> `default` -> `admit` (mutating
  admission, given the current objects of `admission_reads`) -> `prepare_for_create`
  -> `validate` -> `canonicalize` -> store.
Update: `prepare_for_update` (carry over what a main-resource update may not
  change) -> `default` -> `admit_update` (only when `admits_updates`, given
  the current objects of `admission_reads`) -> `validate_update` ->
  `canonicalize` -> store;
  a missing object is created instead when `allow_create_on_update`.
Status update: `prepare_for_status_update` -> `validate_status_update` -> store.
Delete: `check_delete` (may refuse) -> `check_graceful_delete` (may mark the
  object for a graceful deletion that someone else completes) -> the garbage
  collector's finalizers (`orphan`, `foregroundDeletion`) from the request's
  propagationPolicy, else those already set, else `default_gc_policy`
  -> `before_delete` (may make the deletion wait, e.g. a Namespace
  Terminating); `deletion_complete` says when a marked object may go.
Allocation: a kind that hands out cluster-wide values (a Service's ClusterIP
  and NodePorts) implements `reserve` (after validation, on create and update:
  fill them in and name the store keys to create and release) and `release`
  (on delete); the registry writes those keys in the object's own transaction.
Hooks are pure functions over messages, but `reserve`, which reads the store;
the clock comes in as `now_s`.
"""
from __future__ import annotations

import random
from typing import Mapping, Sequence

from google.protobuf.message import Message

from apiserver.storage import Reservation
from kubemu import timefmt
from kubemu.api import defaults, errors, validation
from kubemu.api.kinds import Kind

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339(clock_s: float) -> str:
    return timefmt.rfc3339(clock_s)


# names.SimpleNameGenerator: a generated name fits a DNS label (63), so the
# prefix is cut to 58 characters before the 5 random ones.
_GENERATED_PREFIX_MAX = 58


def generated_name(prefix: str, rng: random.Random) -> str:
    return prefix[:_GENERATED_PREFIX_MAX] + "".join(
        rng.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))


def has_field(obj: Message, name: str) -> bool:
    return name in obj.DESCRIPTOR.fields_by_name


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


class Strategy:
    """The default strategy: what every kind does unless its own says otherwise."""

    # Resources whose current objects `admit` reads (the registry passes them).
    admission_reads: tuple[str, ...] = ()
    # Dependents' fate when a deletion names no propagationPolicy
    # (Kubernetes' DefaultGarbageCollectionPolicy): "Background" or "Orphan".
    default_gc_policy = "Background"
    # Seconds a stored object lives after its last write (an etcd lease on
    # every create and update, as Kubernetes' TTLFunc); 0: forever.
    ttl_s = 0

    def __init__(self, kind: Kind, *, allow_create_on_update: bool = False):
        self.kind = kind
        self._allow_create_on_update = allow_create_on_update

    # ------------------------------------------------------------ create

    def default(self, obj: Message) -> None:
        """Kubernetes' defaults for the kind (idempotent)."""
        defaults.apply_defaults(self.kind, obj)

    def admit(self, obj: Message, current: Mapping[str, Sequence[Message]]) -> None:
        """Mutating admission on create (in place); `current` holds the objects
        of each resource in `admission_reads`. Nothing by default."""

    def prepare_for_create(self, obj: Message) -> None:
        """Reset what a client may not set on create (status) and start generation."""
        if self.kind.has_status and has_field(obj, "status"):
            obj.ClearField("status")
        if self.kind.has_spec:
            obj.metadata.generation = 1

    def validate(self, obj: Message) -> list[errors.FieldError]:
        return validation.validate(self.kind, obj, None)

    def canonicalize(self, obj: Message) -> None:
        """Normalize a validated object before it is stored (nothing by default)."""

    # Whether `admit_update` runs (an update then reads `admission_reads`).
    admits_updates = False

    def admit_update(self, new: Message, old: Message,
                     current: Mapping[str, Sequence[Message]]) -> None:
        """Admission on a main-resource update (in place, or raise); nothing by default."""

    # ------------------------------------------------------------ allocation

    reserves = False  # whether `reserve`/`release` do anything (the registry skips them)

    async def reserve(self, store, obj: Message, old: Message | None) -> Reservation:
        """Allocate what `obj` needs (in place; `old`: the stored object on an
        update); raise errors.Invalid for a value that cannot be had."""
        return Reservation()

    def release(self, obj: Message) -> Reservation:
        """What deleting `obj` frees."""
        return Reservation()

    # ------------------------------------------------------------ update

    @property
    def allow_create_on_update(self) -> bool:
        """Whether an update of a missing object creates it."""
        return self._allow_create_on_update

    def prepare_for_update(self, new: Message, old: Message) -> None:
        """Carry over what a main-resource update may not change; bump generation."""
        meta, old_meta = new.metadata, old.metadata
        if not meta.uid:
            meta.uid = old_meta.uid  # a uid that differs was refused as a precondition
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
        if self.kind.has_status and has_field(new, "status"):
            new.status.CopyFrom(old.status)
        if self.kind.has_spec and spec_bytes(new) != spec_bytes(old):
            meta.generation = old_meta.generation + 1

    def validate_update(self, new: Message, old: Message) -> list[errors.FieldError]:
        return validation.validate(self.kind, new, old)

    def validate_status_update(self, new: Message, old: Message) -> list[errors.FieldError]:
        return validation.validate_status(self.kind, new, old)

    def prepare_for_status_update(self, new: Message, old: Message) -> Message:
        """The stored object with only the status taken from `new`."""
        merged = type(old)()
        merged.CopyFrom(old)
        merged.status.CopyFrom(new.status)
        return merged

    def prepare_for_finalize(self, new: Message, old: Message) -> Message:
        """The stored object with what the finalize subresource writes taken
        from `new`; only Namespaces have one."""
        raise errors.NotFound(f"{self.kind.resource} has no finalize subresource")

    # ------------------------------------------------------------ delete

    def check_delete(self, name: str) -> None:
        """Refuse a deletion outright (raise an ApiError); nothing by default."""

    def check_graceful_delete(self, obj: Message, grace_period_s: int | None,
                              now_s: float) -> bool:
        """Mark `obj` for graceful deletion (in place); True if its deletion
        must now wait for someone to confirm it. Not graceful by default."""
        return False

    def before_delete(self, obj: Message) -> bool:
        """Adjust an object about to be deleted (in place); True if its
        deletion must wait even without finalizers."""
        return False

    def deletion_complete(self, obj: Message) -> bool:
        """Whether an object marked for deletion has nothing left to wait for."""
        meta = obj.metadata
        return bool(meta.deletion_timestamp) and not meta.finalizers
