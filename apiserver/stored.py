"""Objects as they are stored: encoding, decoding, and values that do not decode.

A stored value is the object's serialized protobuf message with apiVersion
and kind set and no resourceVersion (that is the key's mod_revision). A value
that does not decode (written by another tool, or damaged) is a corrupt
object: reading it raises CorruptObject, which the registry answers as
kube-apiserver does (an InternalError naming the key) and which lists and
the watch caches skip, logging the key once per process (CorruptLog), so
that one bad key never stops a resource from being served.
"""
from __future__ import annotations

from google.protobuf.message import DecodeError, Message

import structlog

from apiserver.storage import KeyValue
from kubemu.api import errors
from kubemu.api.kinds import Kind

log = structlog.get_logger()

CORRUPT_KEYS_LOGGED_MAX = 10_000


class CorruptObject(Exception):
    """A stored value that does not decode into its kind's message."""

    def __init__(self, key: bytes, revision: int, cause: Exception):
        self.key = key.decode(errors="replace")
        self.revision = revision
        self.cause = cause
        super().__init__(f"object not decodable revision={revision}: {cause}")

    def api_error(self) -> errors.Internal:
        """What kube-apiserver answers for it (storage.NewCorruptObjError)."""
        return errors.internal(errors.storage_error("corrupt object", 7, self.key, str(self)))


def decode(kind: Kind, kv: KeyValue) -> Message:
    """The object stored in `kv`, with its resourceVersion; CorruptObject if it
    does not decode."""
    try:
        obj = kind.message.FromString(kv.value)
    except (DecodeError, RuntimeWarning, ValueError) as err:
        raise CorruptObject(kv.key, kv.mod_revision, err) from None
    if not obj.metadata.name:  # bytes that happen to parse, but are no object
        raise CorruptObject(kv.key, kv.mod_revision,
                            DecodeError(f"no metadata.name in a stored {kind.kind}"))
    obj.metadata.resource_version = str(kv.mod_revision)
    return obj


def encode(kind: Kind, obj: Message) -> bytes:
    """The stored form: apiVersion and kind set, no resourceVersion (it is the
    key's mod_revision). No copy when `obj` is in that form already (a create)."""
    if (not obj.metadata.resource_version and obj.api_version == kind.api_version
            and obj.kind == kind.kind):
        return obj.SerializeToString(deterministic=True)
    stored = type(obj)()
    stored.CopyFrom(obj)
    stored.api_version, stored.kind = kind.api_version, kind.kind
    stored.metadata.resource_version = ""
    return stored.SerializeToString(deterministic=True)


class CorruptLog:
    """Logs each corrupt key once (at most CORRUPT_KEYS_LOGGED_MAX remembered;
    past that the memory starts over, so a key may be logged again)."""

    def __init__(self, keys_max: int = CORRUPT_KEYS_LOGGED_MAX):
        self.keys_max = keys_max
        self._seen: set[tuple[str, int]] = set()

    def report(self, err: CorruptObject, during: str) -> None:
        marker = (err.key, err.revision)
        if marker in self._seen:
            return
        if len(self._seen) >= self.keys_max:
            self._seen.clear()
        self._seen.add(marker)
        log.error("stored object cannot be decoded; skipped (delete it with "
                  "ignoreStoreReadErrorWithClusterBreakingPotential)",
                  key=err.key, revision=err.revision, during=during, error=str(err.cause))
