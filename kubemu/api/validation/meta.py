"""Validation shared by every kind: object metadata, names, quantities, ports,
and the helpers the group modules build on (Kubernetes' apimachinery
validation and pkg/apis/core/validation's generic parts). Pure functions over
protobuf messages; field paths and wording are Kubernetes'."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from google.protobuf.message import Message

from kubemu.api import codec, errors, labels
from kubemu.api.errors import FieldError
from kubemu.api.fields import field_is_set, field_value
from kubemu.api.kinds import Kind


Problems = list[FieldError]


KindValidator = Callable[[Message, Message | None], Problems]


TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * 1024


MAX_DIFF_PATHS = 5  # changed paths quoted in a "may not change" message


IMMUTABLE = "field is immutable"


IS_NEGATIVE = "must be greater than or equal to 0"


NOT_POSITIVE = "must be greater than zero"


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(path, "Not found", "", value, True)


def _opt(msg: Message | None, name: str) -> Any:
    """The field's value when set, else None (zero = unset for fields without presence)."""
    return field_value(msg, name) if field_is_set(msg, name) else None


def _sub(msg: Message | None, name: str) -> Message | None:
    """A sub-message when it is set, else None."""
    return field_value(msg, name) if field_is_set(msg, name) else None


def _str(msg: Message | None, name: str) -> str:
    return field_value(msg, name, "") or ""


def _int(msg: Message | None, name: str) -> int:
    return field_value(msg, name, 0) or 0


def _items(msg: Message | None, name: str) -> Sequence[Any]:
    return field_value(msg, name, ()) or ()


def _int_or_string(msg: Message | None, name: str) -> int | str | None:
    value = _sub(msg, name)
    return None if value is None else codec.int_or_string(value)


class _Shown:
    """A value printed as given (Kubernetes prints Go values; we print their look)."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


def label_selector_text(sel: Message | None) -> _Shown:
    """A LabelSelector as Kubernetes' field errors print it: the struct behind
    the pointer, with Go's %#v (`v1.LabelSelector{MatchLabels:map[string]string
    {"app":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}`)."""
    if sel is None:
        return _Shown("null")
    match = ("map[string]string{" + ", ".join(
        f"{_go_quote(k)}:{_go_quote(v)}" for k, v in sorted(sel.match_labels.items())) + "}"
        if sel.match_labels else "map[string]string(nil)")
    exprs = ("[]v1.LabelSelectorRequirement{" + ", ".join(
        f"v1.LabelSelectorRequirement{{Key:{_go_quote(e.key)}, "
        f"Operator:{_go_quote(e.operator)}, Values:{_go_strings(e.values)}}}"
        for e in sel.match_expressions) + "}"
        if sel.match_expressions else "[]v1.LabelSelectorRequirement(nil)")
    return _Shown(f"v1.LabelSelector{{MatchLabels:{match}, MatchExpressions:{exprs}}}")


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _go_strings(values: Sequence[str]) -> str:
    if not values:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _json_text(msg: Message | None) -> _Shown:
    if msg is None:
        return _Shown("null")
    return _Shown(json.dumps(codec.to_dict(msg), sort_keys=True, separators=(",", ":")))


def _changed_paths(old: Any, new: Any, path: str, out: list[str]) -> None:
    """JSON paths where two to_dict() trees differ (at most MAX_DIFF_PATHS)."""
    if len(out) >= MAX_DIFF_PATHS or old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _changed_paths(old.get(key), new.get(key), f"{path}.{key}", out)
    elif (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)):
        for i, (a, b) in enumerate(zip(old, new)):
            _changed_paths(a, b, f"{path}[{i}]", out)
    else:
        out.append(f"{path}: {json.dumps(old)} -> {json.dumps(new)}")


def _diff(old: Message, new: Message, path: str) -> str:
    """" (changed: a.b: 1 -> 2; ...)", to say which fields a forbidden update touched.

    Kubernetes appends a multi-line struct diff; one line suits a CLI error better.
    """
    out: list[str] = []
    _changed_paths(codec.to_dict(old), codec.to_dict(new), path, out)
    return f" (changed: {'; '.join(out)})" if out else ""


def _copy(msg: Message) -> Message:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def nonnegative(value: int | None, path: str) -> Problems:
    if value is not None and value < 0:
        return [errors.invalid(path, value, IS_NEGATIVE)]
    return []


def immutable(new: Any, old: Any, path: str, shown: Any = None) -> Problems:
    if new != old:
        return [errors.invalid(path, new if shown is None else shown, IMMUTABLE)]
    return []


def _dns_subdomain(value: str, path: str) -> Problems:
    return [errors.invalid(path, value, m) for m in labels.is_dns1123_subdomain(value)]


def _qualified_name(value: str, path: str) -> Problems:
    return [errors.invalid(path, value, m) for m in labels.is_qualified_name(value)]


# Name rules by kind; every other kind uses DNS-1123 subdomains.
NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "Namespace": labels.is_dns1123_label,
    "StatefulSet": labels.is_dns1123_label,  # its name is in its pods' hostnames
    "Service": labels.is_dns1035_label,  # Kubernetes' ValidateServiceName
}


def _mask_trailing_dash(name: str) -> str:
    """generateName prefixes may end in '-' (a suffix follows)."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def validate_annotations(annotations: Mapping[str, str], path: str) -> Problems:
    problems: Problems = []
    for key in sorted(annotations):
        # Annotation keys are qualified names, case-insensitively.
        problems.extend(errors.invalid(path, key, m)
                        for m in labels.is_qualified_name(key.lower()))
    total = sum(len(k) + len(v) for k, v in annotations.items())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        problems.append(FieldError(path, "Too long",
                                   f"must have at most {TOTAL_ANNOTATION_SIZE_LIMIT_B} bytes"))
    return problems


def validate_object_meta(meta: Message, kind: Kind, path: str = "metadata") -> Problems:
    rule = NAME_RULES.get(kind.kind, labels.is_dns1123_subdomain)
    problems: Problems = []
    if meta.generate_name:
        problems.extend(errors.invalid(f"{path}.generateName", meta.generate_name, m)
                        for m in rule(_mask_trailing_dash(meta.generate_name)))
    if not meta.name:
        if not meta.generate_name:
            problems.append(errors.required(f"{path}.name", "name or generateName is required"))
    else:
        problems.extend(errors.invalid(f"{path}.name", meta.name, m) for m in rule(meta.name))
    if kind.namespaced:
        if not meta.namespace:
            problems.append(errors.required(f"{path}.namespace"))
        else:
            problems.extend(errors.invalid(f"{path}.namespace", meta.namespace, m)
                            for m in labels.is_dns1123_label(meta.namespace))
    elif meta.namespace:
        problems.append(errors.forbidden(f"{path}.namespace", "not allowed on this type"))
    problems.extend(nonnegative(meta.generation, f"{path}.generation"))
    problems.extend(labels.validate_labels(meta.labels, f"{path}.labels"))
    problems.extend(validate_annotations(meta.annotations, f"{path}.annotations"))
    problems.extend(_owner_references(meta.owner_references, f"{path}.ownerReferences"))
    problems.extend(_finalizers(meta.finalizers, f"{path}.finalizers"))
    return problems


def _owner_references(refs: Sequence[Message], path: str) -> Problems:
    # Kubernetes reports these at the list's path, without an index.
    problems: Problems = []
    controller = ""
    for ref in refs:
        version = ref.api_version.rpartition("/")[2]
        if not version:
            problems.append(errors.invalid(f"{path}.apiVersion", ref.api_version,
                                           "version must not be empty"))
        if not ref.kind:
            problems.append(errors.invalid(f"{path}.kind", ref.kind, "kind must not be empty"))
        if not ref.name:
            problems.append(errors.invalid(f"{path}.name", ref.name, "name must not be empty"))
        if not ref.uid:
            problems.append(errors.invalid(f"{path}.uid", ref.uid, "uid must not be empty"))
        if ref.HasField("controller") and ref.controller:
            current = f"{ref.kind}/{ref.name}"
            if controller:
                problems.append(errors.invalid(
                    path, _Shown(f"[{', '.join(r.kind + '/' + r.name for r in refs)}]"),
                    "Only one reference can have Controller set to true. Found \"true\" in "
                    f"references for {controller} and {current}"))
            else:
                controller = current
    return problems


def _finalizers(finalizers: Sequence[str], path: str) -> Problems:
    problems: Problems = []
    for name in finalizers:
        problems.extend(_qualified_name(name, path))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        problems.append(errors.invalid(path, _Shown(f"[{' '.join(finalizers)}]"),
                                       "finalizer orphan and foregroundDeletion cannot be "
                                       "both set"))
    return problems


def validate_object_meta_update(new: Message, old: Message, path: str = "metadata") -> Problems:
    problems: Problems = []
    problems.extend(immutable(new.name, old.name, f"{path}.name"))
    problems.extend(immutable(new.namespace, old.namespace, f"{path}.namespace"))
    problems.extend(immutable(new.uid, old.uid, f"{path}.uid"))
    problems.extend(immutable(new.creation_timestamp, old.creation_timestamp,
                              f"{path}.creationTimestamp"))
    return problems


def _selector_immutable(new_spec: Message, old_spec: Message) -> Problems:
    new_sel, old_sel = _sub(new_spec, "selector"), _sub(old_spec, "selector")
    if new_sel != old_sel:
        return [errors.invalid("spec.selector", label_selector_text(new_sel), IMMUTABLE)]
    return []
