"""Kubernetes field selectors: `metadata.name=x,status.phase!=Running`.

The model is apimachinery's `fields` package: a selector is an AND of terms
`field=value` / `field==value` / `field!=value` over an object's field set, a
flat map from field label to string that each kind defines (Kubernetes'
GetAttrs / ToSelectableFields). Every kind has metadata.name, namespaced kinds
also metadata.namespace; some kinds add a few (`spec.nodeName` and
`status.phase` for Pods, `spec.unschedulable` for Nodes, `type` for Secrets,
`involvedObject.*` for Events). A field outside the set raises
errors.BadRequest("field label not supported: <field>"). Values may escape
`\\`, `\\,` and `\\=` with a backslash. Pure functions; no I/O.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from google.protobuf import descriptor as _d
from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.kinds import REGISTRY, Kind

MAX_SELECTOR_LENGTH = 64 * 1024

# Extra selectable fields per kind: field label -> JSON path in the object.
# (Kubernetes' field label conversion funcs and GetAttrs, per kind.)
KIND_FIELDS: dict[str, dict[str, str]] = {
    "Pod": {
        "spec.nodeName": "spec.nodeName",
        "spec.restartPolicy": "spec.restartPolicy",
        "spec.schedulerName": "spec.schedulerName",
        "spec.serviceAccountName": "spec.serviceAccountName",
        "spec.hostNetwork": "spec.hostNetwork",
        "status.phase": "status.phase",
        "status.podIP": "status.podIP",
        "status.nominatedNodeName": "status.nominatedNodeName",
    },
    "Node": {"spec.unschedulable": "spec.unschedulable"},
    "Namespace": {"status.phase": "status.phase"},
    "Secret": {"type": "type"},
    "Event": {
        "involvedObject.kind": "involvedObject.kind",
        "involvedObject.namespace": "involvedObject.namespace",
        "involvedObject.name": "involvedObject.name",
        "involvedObject.uid": "involvedObject.uid",
        "involvedObject.apiVersion": "involvedObject.apiVersion",
        "involvedObject.resourceVersion": "involvedObject.resourceVersion",
        "involvedObject.fieldPath": "involvedObject.fieldPath",
        "reason": "reason",
        "reportingComponent": "reportingComponent",
        "source": "source.component",
        "type": "type",
    },
    "ReplicaSet": {"status.replicas": "status.replicas"},
    "Job": {"status.successful": "status.successful"},
}


def supported_fields(kind: Kind) -> tuple[str, ...]:
    base = ("metadata.name", "metadata.namespace") if kind.namespaced else ("metadata.name",)
    return base + tuple(KIND_FIELDS.get(kind.kind, {}))


# ---------------------------------------------------------------- field sets

def _value_at(obj: Message, json_path: str) -> str:
    """The string form of the field at a JSON path; unset reads as its zero value."""
    current: Any = obj
    for part in json_path.split("."):
        if not isinstance(current, Message):
            return ""
        field = _json_field(current.DESCRIPTOR, part)
        if field is None:
            return ""  # the message does not have this field (yet): zero value
        current = getattr(current, field.name)
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, (int, float)):
        return str(current)
    if isinstance(current, str):
        return current
    return ""


_JSON_FIELDS: dict[str, dict[str, _d.FieldDescriptor]] = {}  # bounded by the message types


def _json_field(desc: _d.Descriptor, json_name: str) -> _d.FieldDescriptor | None:
    by_json = _JSON_FIELDS.get(desc.full_name)
    if by_json is None:
        by_json = {f.json_name: f for f in desc.fields}
        _JSON_FIELDS[desc.full_name] = by_json
    return by_json.get(json_name)


def _kind_of(obj: Message, kind: Kind | None) -> Kind | None:
    if kind is not None:
        return kind
    try:
        return REGISTRY.by_message(obj)
    except errors.ApiError:
        return None


def field_set(obj: Message, kind: Kind | None = None) -> dict[str, str]:
    """Every selectable field of `obj` with its value (Kubernetes' fields.Set)."""
    kind = _kind_of(obj, kind)
    kind_name = kind.kind if kind is not None else obj.DESCRIPTOR.name
    namespaced = kind.namespaced if kind is not None else True
    out = {"metadata.name": obj.metadata.name}
    if namespaced:
        out["metadata.namespace"] = obj.metadata.namespace
    for label, path in KIND_FIELDS.get(kind_name, {}).items():
        out[label] = _value_at(obj, path)
    return out


# ---------------------------------------------------------------- selectors

@dataclasses.dataclass(frozen=True)
class Term:
    field: str
    value: str
    negated: bool = False  # `!=`

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have != self.value if self.negated else have == self.value

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negated else '='}{escape_value(self.value)}"


@dataclasses.dataclass(frozen=True)
class Selector:
    """An AND of terms; no terms = everything."""

    terms: tuple[Term, ...] = ()
    kind: Kind | None = None

    def matches(self, obj: Message) -> bool:
        if not self.terms:
            return True
        return self.matches_fields(field_set(obj, self.kind))

    def matches_fields(self, fields: Mapping[str, str]) -> bool:
        return all(t.matches(fields) for t in self.terms)

    def empty(self) -> bool:
        return not self.terms

    def requires_exact(self, field: str) -> str | None:
        """The value `field` must equal, if a term pins it (for index look-ups)."""
        for term in self.terms:
            if term.field == field and not term.negated:
                return term.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


EVERYTHING = Selector()


def escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise errors.BadRequest(
                    f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise errors.BadRequest(
                f"invalid field selector: unescaped character in value: {c}")
        else:
            out.append(c)
    if in_slash:
        raise errors.BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped."""
    terms, current, escaped = [], [], False
    for c in text:
        if escaped:
            current.append(c)
            escaped = False
        elif c == "\\":
            current.append(c)
            escaped = True
        elif c == ",":
            terms.append("".join(current))
            current = []
        else:
            current.append(c)
    terms.append("".join(current))
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first operator from the left wins, trying "!=" and "==" before "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse(text: str, kind: Kind | None = None) -> Selector:
    """A field Selector from its string form; "" selects everything.

    With `kind`, every field must be one the kind supports.
    """
    if len(text) > MAX_SELECTOR_LENGTH:
        raise errors.BadRequest(
            f"field selector is too long: {len(text)} characters, at most "
            f"{MAX_SELECTOR_LENGTH}")
    allowed = set(supported_fields(kind)) if kind is not None else None
    terms: list[Term] = []
    for part in sorted(_split_terms(text)):
        if not part.strip():
            continue
        split = _split_term(part)
        if split is None:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = split
        field = field.strip()
        if allowed is not None and field not in allowed:
            raise errors.BadRequest(f"field label not supported: {field}")
        terms.append(Term(field, unescape_value(value), negated=op == "!="))
    return Selector(tuple(terms), kind)


def from_dict(fields: Mapping[str, str], kind: Kind | None = None) -> Selector:
    """A selector requiring every field to equal its value (fields.SelectorFromSet)."""
    allowed = set(supported_fields(kind)) if kind is not None else None
    terms = []
    for field in sorted(fields):
        if allowed is not None and field not in allowed:
            raise errors.BadRequest(f"field label not supported: {field}")
        terms.append(Term(field, fields[field]))
    return Selector(tuple(terms), kind)


# ---------------------------------------------------------------- field access

def field_value(msg: Message | None, name: str, default: Any = None) -> Any:
    """`msg.<name>` if the message has that field and it is set, else `default`.

    Repeated and map fields come back as they are (possibly empty). Scalars
    without presence come back as they are (their zero value means unset).
    A name the message does not have reads as `default`, so code written
    against the Kubernetes field set keeps working while the protos catch up.
    """
    if msg is None:
        return default
    field = msg.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return default
    if not field.is_repeated and field.has_presence and not msg.HasField(name):
        return default
    return getattr(msg, name)


def field_is_set(msg: Message | None, name: str) -> bool:
    """Whether `msg.<name>` is set: present, non-empty, or non-zero."""
    if msg is None:
        return False
    field = msg.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return False
    if field.is_repeated:
        return len(getattr(msg, name)) > 0
    if field.has_presence:
        return msg.HasField(name)
    return getattr(msg, name) != field.default_value
