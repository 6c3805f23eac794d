"""Kubernetes JSON <-> protobuf messages.

The model: a message field's `json_name` is its Kubernetes JSON name. Decoding
is strict (an unknown field is an error naming its path, e.g.
`spec.containers[0].imagee: unknown field`) and collects every problem before
failing. Encoding follows Kubernetes' `omitempty` habits: unset and empty
fields are left out, fields with presence (`optional`, messages) are printed
when set, even when empty (`emptyDir: {}`). Integers print as JSON numbers,
`bytes` as base64, IntOrString as the bare number or string.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from google.protobuf import descriptor as _d
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from kubemu.api import errors

M = TypeVar("M", bound=Message)

INT_OR_STRING = "kubemu.api.v1.IntOrString"
STRUCT = "google.protobuf.Struct"
_INT32_RANGE = (-(2**31), 2**31 - 1)
_INT64_RANGE = (-(2**63), 2**63 - 1)
_INT_TYPES = {
    _d.FieldDescriptor.TYPE_INT32: _INT32_RANGE,
    _d.FieldDescriptor.TYPE_SINT32: _INT32_RANGE,
    _d.FieldDescriptor.TYPE_SFIXED32: _INT32_RANGE,
    _d.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_INT64: _INT64_RANGE,
    _d.FieldDescriptor.TYPE_SINT64: _INT64_RANGE,
    _d.FieldDescriptor.TYPE_SFIXED64: _INT64_RANGE,
    _d.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    _d.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_TYPES = {_d.FieldDescriptor.TYPE_FLOAT, _d.FieldDescriptor.TYPE_DOUBLE}
# Quantity-valued fields: Kubernetes accepts `cpu: 1` and `cpu: 0.5` as well as
# strings there, so numbers are taken and kept as their decimal text.
_QUANTITY_MAPS = {"requests", "limits", "capacity", "allocatable", "hard", "used",
                  # LimitRangeItem (the docs' `default: {cpu: 1}`), metrics' usage
                  "max", "min", "default", "defaultRequest", "maxLimitRequestRatio", "usage"}
_QUANTITY_FIELDS = {"sizeLimit", "storage", "divisor", "averageValue"}
# `value` is a quantity only in these messages (an env var's or a label
# requirement's value is a plain string, and a number there is refused).
_QUANTITY_VALUE_MESSAGES = {"MetricTarget", "MetricValueStatus"}


# ---------------------------------------------------------------- encoding

def to_dict(msg: Message) -> dict[str, Any]:
    """The Kubernetes JSON form of `msg` (a plain dict, ready for json.dumps)."""
    if msg.DESCRIPTOR.full_name == INT_OR_STRING:
        raise TypeError("IntOrString has no dict form; it is a bare value")
    if msg.DESCRIPTOR.full_name == STRUCT:
        return struct_to_dict(msg)
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        if _is_map(field):
            entries = getattr(msg, field.name)
            if entries:
                value_field = field.message_type.fields_by_name["value"]
                out[field.json_name] = {
                    k: _encode_value(value_field, entries[k]) for k in sorted(entries)}
        elif _is_repeated(field):
            items = getattr(msg, field.name)
            if items:
                out[field.json_name] = [_encode_value(field, v) for v in items]
        elif field.has_presence:
            if msg.HasField(field.name):
                out[field.json_name] = _encode_value(field, getattr(msg, field.name))
        else:
            value = getattr(msg, field.name)
            if value != field.default_value:
                out[field.json_name] = _encode_value(field, value)
    return out


def _encode_value(field: _d.FieldDescriptor, value: Any) -> Any:
    if field.type == _d.FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == INT_OR_STRING:
            return int_or_string(value)
        if field.message_type.full_name == STRUCT:
            return struct_to_dict(value)
        return to_dict(value)
    if field.type == _d.FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def int_or_string(value: Message) -> int | str | None:
    which = value.WhichOneof("value")
    if which == "int_val":
        return value.int_val
    if which == "str_val":
        return value.str_val
    return None


def struct_to_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    """The JSON object a Struct holds, keys sorted (as kubectl prints
    objects), whole numbers as ints."""
    return _whole_numbers(json_format.MessageToDict(value))


def struct_from_dict(target: struct_pb2.Struct, data: dict[str, Any]) -> None:
    """Replace `target`'s content with the JSON object `data`."""
    target.Clear()
    target.update(data)


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


# ---------------------------------------------------------------- decoding

def from_dict(cls: type[M], data: Any, *, kind: str = "", name: str = "") -> M:
    """Build a `cls` message from Kubernetes JSON, strictly.

    Raises errors.Invalid listing every bad field with its path.
    """
    msg = cls()
    problems: list[errors.FieldError] = []
    if not isinstance(data, dict):
        problems.append(errors.invalid("", type(data).__name__, "expected a JSON object"))
    else:
        _decode_into(msg, data, "", problems)
    if problems:
        kind = kind or (data.get("kind") if isinstance(data, dict) else "") or cls.DESCRIPTOR.name
        if not name and isinstance(data, dict):
            meta = data.get("metadata")
            if isinstance(meta, dict):
                name = meta.get("name") or meta.get("generateName") or ""
        raise errors.Invalid(kind, str(name), problems)
    return msg


def merge_dict(msg: Message, data: dict[str, Any], path: str,
               problems: list[errors.FieldError]) -> None:
    """Decode `data` into an existing message, appending problems (no raise)."""
    _decode_into(msg, data, path, problems)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _decode_into(msg: Message, data: dict[str, Any], path: str,
                 problems: list[errors.FieldError]) -> None:
    fields = _json_fields(msg.DESCRIPTOR)
    for key, value in data.items():
        field_path = _join(path, str(key))
        field = fields.get(key)
        if field is None:
            problems.append(errors.unknown_field(field_path))
            continue
        if value is None:
            continue  # JSON null means "unset", as in Kubernetes
        if _is_map(field):
            _decode_map(msg, field, value, field_path, problems)
        elif _is_repeated(field):
            if not isinstance(value, list):
                problems.append(_type_error(field_path, value, "array"))
                continue
            target = getattr(msg, field.name)
            for i, item in enumerate(value):
                item_path = f"{field_path}[{i}]"
                if field.type == _d.FieldDescriptor.TYPE_MESSAGE:
                    if field.message_type.full_name == INT_OR_STRING:
                        _decode_int_or_string(target.add(), item, item_path, problems)
                    elif isinstance(item, dict):
                        _decode_into(target.add(), item, item_path, problems)
                    else:
                        problems.append(_type_error(item_path, item, "object"))
                else:
                    ok, scalar = _decode_scalar(field, item, item_path, problems)
                    if ok:
                        target.append(scalar)
        elif field.type == _d.FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(msg, field.name)
            if field.message_type.full_name == INT_OR_STRING:
                _decode_int_or_string(sub, value, field_path, problems)
            elif field.message_type.full_name == STRUCT and isinstance(value, dict):
                struct_from_dict(sub, value)
            elif isinstance(value, dict):
                sub.SetInParent()
                _decode_into(sub, value, field_path, problems)
            else:
                problems.append(_type_error(field_path, value, "object"))
        else:
            if field.json_name in _QUANTITY_FIELDS or (
                    field.json_name == "value"
                    and msg.DESCRIPTOR.name in _QUANTITY_VALUE_MESSAGES):
                value = _quantity_text(value)
            ok, scalar = _decode_scalar(field, value, field_path, problems)
            if ok:
                setattr(msg, field.name, scalar)


def _decode_map(msg, field, value, path, problems) -> None:
    if not isinstance(value, dict):
        problems.append(_type_error(path, value, "object"))
        return
    target = getattr(msg, field.name)
    value_field = field.message_type.fields_by_name["value"]
    for k, v in value.items():
        entry_path = f"{path}[{k}]"
        if v is None:
            continue
        if value_field.type == _d.FieldDescriptor.TYPE_MESSAGE:
            if not isinstance(v, dict):
                problems.append(_type_error(entry_path, v, "object"))
                continue
            _decode_into(target[k], v, entry_path, problems)
        else:
            if field.json_name in _QUANTITY_MAPS:
                v = _quantity_text(v)
            ok, scalar = _decode_scalar(value_field, v, entry_path, problems)
            if ok:
                target[k] = scalar


def _quantity_text(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _decode_int_or_string(target: Message, value: Any, path: str,
                          problems: list[errors.FieldError]) -> None:
    if isinstance(value, bool):
        problems.append(_type_error(path, value, "integer or string"))
    elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        if not _INT32_RANGE[0] <= value <= _INT32_RANGE[1]:
            problems.append(errors.invalid(path, value, "must fit in 32 bits"))
        else:
            target.int_val = int(value)
    elif isinstance(value, str):
        target.str_val = value
    else:
        problems.append(_type_error(path, value, "integer or string"))


def _decode_scalar(field, value, path, problems) -> tuple[bool, Any]:
    t = field.type
    if t == _d.FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return True, value
        problems.append(_type_error(path, value, "string"))
    elif t == _d.FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return True, value
        problems.append(_type_error(path, value, "boolean"))
    elif t in _INT_TYPES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = _INT_TYPES[t]
            if low <= value <= high:
                return True, value
            problems.append(errors.invalid(path, value, f"must be between {low} and {high}"))
        else:
            problems.append(_type_error(path, value, "integer"))
    elif t in _FLOAT_TYPES:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        problems.append(_type_error(path, value, "number"))
    elif t == _d.FieldDescriptor.TYPE_BYTES:
        if isinstance(value, str):
            try:
                return True, base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                problems.append(errors.invalid(path, "<bytes>", "illegal base64 data"))
        else:
            problems.append(_type_error(path, value, "base64 string"))
    else:  # enums are not used by the API types
        problems.append(errors.invalid(path, value, f"unsupported field type {t}"))
    return False, None


def _type_error(path: str, value: Any, expected: str) -> errors.FieldError:
    got = type(value).__name__
    got = {"str": "string", "int": "number", "float": "number", "dict": "object",
           "list": "array", "bool": "boolean"}.get(got, got)
    return errors.FieldError(path, "Invalid value", f"expected {expected}, got {got}")


_FIELD_CACHE: dict[str, dict[str, _d.FieldDescriptor]] = {}


def _json_fields(desc: _d.Descriptor) -> dict[str, _d.FieldDescriptor]:
    fields = _FIELD_CACHE.get(desc.full_name)
    if fields is None:
        fields = {f.json_name: f for f in desc.fields}
        _FIELD_CACHE[desc.full_name] = fields
    return fields


def _is_repeated(field: _d.FieldDescriptor) -> bool:
    return field.is_repeated


def _is_map(field: _d.FieldDescriptor) -> bool:
    return (_is_repeated(field) and field.type == _d.FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)
