"""ControllerRevision history (kubernetes/pkg/controller/history), for StatefulSets
(and DaemonSets).

A revision is an immutable snapshot of the part of its owner that a rollout
changes (for a StatefulSet, `{"spec": {"template": {..., "$patch": "replace"}}}`),
numbered by `revision`. Its name is `<owner>-<hash>`, the hash being
Kubernetes' (FNV-1 32 of the data's JSON and the collision count, spelt with
rand.SafeEncodeString's alphabet), so pods can carry the revision name in
their `controller-revision-hash` label.

Pure: the hashes of both kinds of history (`fnv1_32` for revisions,
`fnv1a_32` for the Deployment's pod-template-hash, `safe_encode`),
`hash_revision`, `revision_name`, `template_patch` (getPatch, what a
StatefulSet's or DaemonSet's revision holds), `revision_of` (a revision with
the caller's name and labels: a DaemonSet names its revisions by the
template's pod-template-hash), `sort_revisions`, `next_revision`,
`decide_update_revision` (reuse the newest equal revision, renumber an older
equal one -- a rollback --, or create a new one) and `truncate` (which
revisions the history limit drops). `History` does the API calls: create with
the collision-count probe, renumber, delete.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Sequence

from google.protobuf.message import Message

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client

from controller_manager import controllerutil as cu
from controller_manager.base import copy

# The label a revision carries with its hash (history.ControllerRevisionHashLabel).
HASH_LABEL = "controller.kubernetes.io/hash"
# rand.SafeEncodeString's alphabet: no vowels, no 0/1/3 (no bad words, no look-alikes).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# ControllerRevisionName keeps names within 253 characters.
_NAME_PREFIX_MAX = 223
# Hash collisions in a row before CreateControllerRevision gives up (Kubernetes
# loops for ever; one is already astronomically rare).
COLLISIONS_MAX = 100

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv1_32(data: bytes, h: int = _FNV32_OFFSET) -> int:
    """Go's hash/fnv New32 (FNV-1): HashControllerRevision's hash."""
    for byte in data:
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
        h ^= byte
    return h


def fnv1a_32(data: bytes, h: int = _FNV32_OFFSET) -> int:
    """Go's hash/fnv New32a (FNV-1a): the Deployment's pod-template-hash."""
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: every character mapped onto consonants and
    digits that cannot spell words."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def data_bytes(data: dict[str, Any]) -> bytes:
    """The data as Go's json.Marshal writes a map: keys sorted, no spaces."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def hash_revision(data: dict[str, Any], collision_count: int | None) -> str:
    """HashControllerRevision."""
    h = fnv1_32(data_bytes(data))
    if collision_count is not None:
        h = fnv1_32(str(collision_count).encode(), h)
    return safe_encode(str(h))


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:_NAME_PREFIX_MAX]}-{hash_}"


def template_patch(owner: Message) -> dict[str, Any]:
    """getPatch (StatefulSet and DaemonSet alike): what a revision of `owner`
    holds, its template marked to replace the whole template when applied."""
    template = codec.to_dict(owner.spec.template)
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


# ---------------------------------------------------------------- reading revisions

def revision_data(rev: Message) -> dict[str, Any]:
    """The JSON object a ControllerRevision holds (whole numbers as ints)."""
    return codec.to_dict(rev).get("data", {})


def revision_number(rev: Message) -> int:
    return int(rev.revision)


def sort_revisions(revisions: Iterable[Message]) -> list[Message]:
    """Oldest first: by revision, then creation time, then name (SortControllerRevisions)."""
    return sorted(revisions, key=lambda r: (revision_number(r), cu.created_s(r), r.metadata.name))


def next_revision(sorted_revisions: Sequence[Message]) -> int:
    return revision_number(sorted_revisions[-1]) + 1 if sorted_revisions else 1


@dataclasses.dataclass(frozen=True)
class UpdateDecision:
    """What getStatefulSetRevisions does for the set's present template:
    "reuse" `revision` as it is, "renumber" it to `number` (a rollback to an
    older template), or "create" a new revision numbered `number`."""

    verb: str
    number: int
    revision: Message | None = None


def decide_update_revision(sorted_revisions: Sequence[Message],
                           data: dict[str, Any]) -> UpdateDecision:
    equal = [r for r in sorted_revisions if revision_data(r) == data]
    following = next_revision(sorted_revisions)
    if equal and equal[-1] is sorted_revisions[-1]:
        return UpdateDecision("reuse", revision_number(equal[-1]), equal[-1])
    if equal:
        return UpdateDecision("renumber", following, equal[-1])
    return UpdateDecision("create", following)


def truncate(sorted_revisions: Sequence[Message], live: set[str], limit: int) -> list[Message]:
    """The revisions truncateHistory deletes: the oldest of those no pod and
    neither the current nor the update revision uses, beyond `limit`."""
    history = [r for r in sorted_revisions if r.metadata.name not in live]
    excess = len(history) - max(0, limit)
    return history[:excess] if excess > 0 else []


# ---------------------------------------------------------------- writing revisions

def new_revision(owner: Message, template_labels: dict[str, str], data: dict[str, Any],
                 number: int, collision_count: int) -> Message:
    """NewControllerRevision: owned by `owner`, labelled like its template plus the hash."""
    hash_ = hash_revision(data, collision_count)
    return revision_of(owner, revision_name(owner.metadata.name, hash_),
                       {**template_labels, HASH_LABEL: hash_}, data, number)


def revision_of(owner: Message, name: str, rev_labels: dict[str, str], data: dict[str, Any],
                number: int) -> Message:
    """A ControllerRevision `name` of `owner` (its controller reference and
    annotations) holding `data`; the name and labels are the caller's, as a
    DaemonSet's revisions are named and labelled differently."""
    doc = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
           "metadata": {"name": name, "namespace": owner.metadata.namespace,
                        "labels": rev_labels,
                        "annotations": dict(owner.metadata.annotations)},
           "data": data, "revision": number}
    rev = codec.from_dict(REGISTRY.by_gvk("apps/v1", "ControllerRevision").message, doc)
    rev.metadata.owner_references.append(cu.controller_ref(owner))
    return rev


class History:
    """The API calls of controller history (realHistory)."""

    def __init__(self, client: Client):
        self.client = client

    async def create(self, owner: Message, template_labels: dict[str, str],
                     data: dict[str, Any], number: int,
                     collision_count: int) -> tuple[Message, int]:
        """CreateControllerRevision: on a name taken by different data, count a
        collision and try the next hash. Returns (revision, collision count)."""
        for _ in range(COLLISIONS_MAX):
            rev = new_revision(owner, template_labels, data, number, collision_count)
            try:
                return await self.client.create(rev), collision_count
            except errors.AlreadyExists:
                exists = await self.client.get("controllerrevisions", rev.metadata.name,
                                               rev.metadata.namespace)
                if revision_data(exists) == data:
                    return exists, collision_count
                collision_count += 1
        raise errors.Conflict(f"controllerrevision of {owner.metadata.name}: "
                              f"{COLLISIONS_MAX} hash collisions in a row")

    async def renumber(self, rev: Message, number: int) -> Message:
        """UpdateControllerRevision: the same data under a newer revision number."""
        if revision_number(rev) == number:
            return rev
        new = copy(rev)
        new.revision = number
        return await self.client.update(new)

    async def delete(self, rev: Message) -> None:
        try:
            await self.client.delete("controllerrevisions", rev.metadata.name,
                                     rev.metadata.namespace, uid=rev.metadata.uid)
        except errors.NotFound:
            pass
