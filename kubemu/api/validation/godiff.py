"""The struct diff Kubernetes appends to some Forbidden update errors
(`cmp.Diff(old, new)` of github.com/google/go-cmp), rendered from protobuf
messages.

The shape is go-cmp's: one line per field, a two-character marker (`  `
same, `- ` old, `+ ` new), a tab per level, Go field names (the JSON name
with its first letter raised, Go's initialisms kept: `TTY`, `DNSPolicy`),
values aligned within a run of one-line fields, a changed struct or list of
structs opened up (`Containers: []core.Container{`), unchanged fields
around a change kept two on each side and the rest counted (`... // 5
identical fields`). Identical values print without their type, changed
ones with it (`[]core.EnvVar{{Name: "A", Value: "1"}}`), zero fields of a
struct left out, as go-cmp does.

What cannot match byte for byte: the fields are the proto message's, in
its order (Kubernetes' internal Go structs have a few more, so the counts
of identical fields differ), which struct fields are pointers (`&{...}`)
is known for the common ones only, and quantities print as their strings.
"""
from __future__ import annotations

import dataclasses
import json

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

CONTEXT_RECORDS = 2  # go-cmp's numContextRecords

# Go's initialisms where the JSON name lowers them (golint's list, as used in the API).
_GO_NAMES = {
    "tty": "TTY", "dnsPolicy": "DNSPolicy", "dnsConfig": "DNSConfig", "hostPID": "HostPID",
    "hostIPC": "HostIPC", "os": "OS", "httpGet": "HTTPGet", "tcpSocket": "TCPSocket",
    "grpc": "GRPC", "fsGroup": "FSGroup", "fsGroupChangePolicy": "FSGroupChangePolicy",
    "seLinuxOptions": "SELinuxOptions", "apiVersion": "APIVersion", "uid": "UID",
    "hostIP": "HostIP", "podIP": "PodIP", "ip": "IP", "setHostnameAsFQDN": "SetHostnameAsFQDN",
    "nfs": "NFS", "iscsi": "ISCSI", "fc": "FC", "csi": "CSI", "pvcName": "PVCName",
}
# Struct fields that are pointers in Kubernetes' Go types (printed `&{...}`).
_POINTER_FIELDS = frozenset({
    "securityContext", "lifecycle", "livenessProbe", "readinessProbe", "startupProbe",
    "affinity", "dnsConfig", "os", "valueFrom", "fieldRef", "resourceFieldRef",
    "configMapKeyRef", "secretKeyRef", "configMapRef", "secretRef", "exec", "httpGet",
    "tcpSocket", "grpc", "sleep", "postStart", "preStop", "emptyDir", "hostPath", "configMap",
    "secret", "downwardAPI", "persistentVolumeClaim", "projected", "nodeAffinity",
    "podAffinity", "podAntiAffinity", "seccompProfile", "capabilities", "seLinuxOptions",
    "labelSelector", "requiredDuringSchedulingIgnoredDuringExecution",
})


def go_name(field: FieldDescriptor) -> str:
    name = field.json_name
    return _GO_NAMES.get(name) or name[:1].upper() + name[1:]


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and \
        field.message_type.GetOptions().map_entry


def _is_list(field: FieldDescriptor) -> bool:
    return field.is_repeated and not _is_map(field)


def _is_message(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and not _is_map(field)


def _type_name(msg_type, package: str) -> str:
    return f"{package}.{msg_type.name}"


def _scalar(field: FieldDescriptor, value) -> str:
    if field.type == FieldDescriptor.TYPE_STRING:
        return json.dumps(value, ensure_ascii=False)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return json.dumps(value.decode(errors="replace"))
    return str(value)


def _elem_type(field: FieldDescriptor, package: str) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _type_name(field.message_type, package)
    return {FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BOOL: "bool",
            FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_INT64: "int64",
            FieldDescriptor.TYPE_DOUBLE: "float64"}.get(field.type, "string")


def _is_pointer(field: FieldDescriptor) -> bool:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return field.json_name in _POINTER_FIELDS
    return field.has_presence  # an optional scalar: *int64, *string


def _present(msg: Message, field: FieldDescriptor) -> bool:
    """Not Go's zero value: a nil pointer, an empty list or map, a zero struct."""
    if _is_map(field) or _is_list(field):
        return len(getattr(msg, field.name)) > 0
    if _is_pointer(field):
        return msg.HasField(field.name)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return msg.HasField(field.name) and getattr(msg, field.name).ByteSize() > 0
    return getattr(msg, field.name) != field.default_value


def _struct(msg: Message, package: str) -> str:
    """A struct's nonzero fields on one line: `{Name: "a", Value: "1"}`."""
    if msg.DESCRIPTOR.name == "IntOrString":
        which = msg.WhichOneof("value")
        return f'{{Type: 1, StrVal: {json.dumps(msg.str_val)}}}' if which == "str_val" \
            else f"{{IntVal: {msg.int_val}}}"
    parts = [f"{go_name(f)}: {format_field(msg, f, package, typed=False)}"
             for f in msg.DESCRIPTOR.fields if _present(msg, f)]
    return "{" + ", ".join(parts) + "}"


def format_field(msg: Message, field: FieldDescriptor, package: str, *, typed: bool) -> str:
    """One field's value on one line, as go-cmp prints it (with its type when `typed`)."""
    value = getattr(msg, field.name)
    if _is_map(field):
        if not value:
            return "nil"
        value_field = field.message_type.fields_by_name["value"]
        items = ", ".join(f"{json.dumps(k)}: {_scalar(value_field, value[k])}"
                          for k in sorted(value))
        vtype = _elem_type(value_field, package)
        return (f"map[string]{vtype}{{{items}}}" if typed else f"{{{items}}}")
    if _is_list(field):
        if not value:
            return "nil"
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            items = ", ".join(_struct(v, package) for v in value)
        else:
            items = ", ".join(_scalar(field, v) for v in value)
        return f"[]{_elem_type(field, package)}{{{items}}}" if typed else f"{{{items}}}"
    pointer = _is_pointer(field)
    if pointer and not msg.HasField(field.name):
        return "nil"
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        text = _struct(value, package)
        if typed:
            text = _type_name(field.message_type, package) + text
        return "&" + text if pointer else text
    text = _scalar(field, value)
    return "&" + text if pointer else text


@dataclasses.dataclass
class _Record:
    """One line (or, opened up, several) of a struct or list being diffed."""

    key: str                      # "Name" (struct field) or "" (list element)
    same: bool
    lines: list[tuple[str, str]]  # (marker, text without indentation or key)
    multiline: bool = False       # an opened struct or list: lines are already laid out


def _field_records(old: Message, new: Message, package: str) -> list[_Record]:
    records = []
    for field in old.DESCRIPTOR.fields:
        key = go_name(field)
        a = format_field(old, field, package, typed=False)
        b = format_field(new, field, package, typed=False)
        same = a == b and _raw_equal(old, new, field)
        if same:
            records.append(_Record(key, True, [("  ", a)]))
            continue
        opened = _open(old, new, field, package)
        if opened is not None:
            records.append(_Record(key, False, opened, multiline=True))
            continue
        records.append(_Record(key, False, [
            ("- ", format_field(old, field, package, typed=True)),
            ("+ ", format_field(new, field, package, typed=True))]))
    return records


def _raw_equal(old: Message, new: Message, field: FieldDescriptor) -> bool:
    value_a, value_b = getattr(old, field.name), getattr(new, field.name)
    if _is_map(field):
        return dict(value_a) == dict(value_b)
    if _is_list(field):
        return list(value_a) == list(value_b)
    return value_a == value_b and _present(old, field) == _present(new, field)


def _open(old: Message, new: Message, field: FieldDescriptor, package: str
          ) -> list[tuple[str, str]] | None:
    """The lines of a changed struct, or list of structs of one length, opened
    up (relative indentation as leading tabs); None to print it as -/+ lines."""
    if _is_list(field) and field.type == FieldDescriptor.TYPE_MESSAGE:
        a, b = getattr(old, field.name), getattr(new, field.name)
        if not a or not b or len(a) != len(b):
            return None
        records = []
        for x, y in zip(a, b):
            if x == y:
                records.append(_Record("", True, [("  ", _struct(x, package))]))
            else:
                inner = _render(_field_records(x, y, package), "fields")
                records.append(_Record("", False, [("  ", "{"), *inner, ("  ", "}")],
                                       multiline=True))
        header = f"[]{_elem_type(field, package)}{{"
        return [("  ", header), *_render(records, "elements"), ("  ", "}")]
    if _is_message(field) and field.message_type.name != "IntOrString":
        pointer = _is_pointer(field)
        if pointer and not (old.HasField(field.name) and new.HasField(field.name)):
            return None  # nil on one side: a line each
        inner = _render(_field_records(getattr(old, field.name), getattr(new, field.name),
                                       package), "fields")
        header = ("&" if pointer else "") + _type_name(field.message_type, package) + "{"
        return [("  ", header), *inner, ("  ", "}")]
    return None


def _render(records: list[_Record], what: str) -> list[tuple[str, str]]:
    """A struct's (or list's) records as lines one tab deeper, unchanged runs
    cut down to CONTEXT_RECORDS on each side of a change (formatDiffList)."""
    shown: list[_Record | int] = []   # an int: that many identical records left out
    groups: list[list[_Record]] = []
    for rec in records:
        if groups and groups[-1][0].same == rec.same:
            groups[-1].append(rec)
        else:
            groups.append([rec])
    for i, group in enumerate(groups):
        if not group[0].same:
            shown.extend(group)
            continue
        lo = CONTEXT_RECORDS if i != 0 else 0
        hi = CONTEXT_RECORDS if i != len(groups) - 1 else 0
        lo, hi = min(lo, len(group)), min(hi, max(0, len(group) - lo))
        if len(group) - (lo + hi) == 1:
            hi += 1  # no point in leaving out a single record
        shown.extend(group[:lo])
        if len(group) > lo + hi:
            shown.append(len(group) - lo - hi)
        shown.extend(group[len(group) - hi:] if hi else [])
    lines: list[tuple[str, str]] = []
    run: list[_Record] = []

    def flush() -> None:
        width = max((len(r.key) for r in run), default=0)
        for r in run:
            for marker, text in r.lines:
                key = f"{r.key}:".ljust(width + 2) if r.key else ""
                lines.append((marker, f"\t{key}{text},"))
        run.clear()
    for item in shown:
        if isinstance(item, int):
            flush()
            lines.append(("  ", f"\t... // {item} identical {what}"))
        elif item.multiline:
            flush()
            first_marker, first = item.lines[0]
            key = f"{item.key}: " if item.key else ""
            lines.append((first_marker, f"\t{key}{first}"))
            for marker, text in item.lines[1:-1]:
                lines.append((marker, "\t" + text))
            last_marker, last = item.lines[-1]
            lines.append((last_marker, f"\t{last},"))
        else:
            run.append(item)
    flush()
    return lines


def cmp_diff(old: Message, new: Message, package: str = "core") -> str:
    """go-cmp's `cmp.Diff(old, new)` of two messages of one type; "" when equal."""
    if old == new:
        return ""
    body = _render(_field_records(old, new, package), "fields")
    lines = [("  ", f"{_type_name(old.DESCRIPTOR, package)}{{"), *body, ("  ", "}")]
    return "\n".join(marker + text for marker, text in lines) + "\n"
