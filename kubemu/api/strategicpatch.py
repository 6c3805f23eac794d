"""A strategic merge patch for the built-in kinds, as kube-apiserver applies `--type strategic`.

It is a JSON merge patch (RFC 7386: maps merge, null deletes a key, a
scalar or list replaces) except for the lists Kubernetes marks
`patchStrategy: merge` with a `patchMergeKey`: there each element of the
patch merges into the element of the document with the same key (appended
when none has it), and an element with `"$patch": "delete"` removes it.
Directives understood, as in k8s.io/apimachinery's strategicpatch:
- `"$patch": "replace"` in a map: the map replaces the document's;
  `"$patch": "delete"` in a map: the key is removed; in a merge list's
  element: that element is removed; a list given as `[{"$patch": "replace"},
  ...]` replaces the whole list;
- `$setElementOrder/<field>`, `$retainKeys` and `$deleteFromPrimitiveList/<field>`:
  the first two are accepted and ignored (the order kept is the document's,
  then new elements), the last removes the listed scalars.
The merge-key table is keyed by field name, which is what every built-in
kind's merge lists agree on (containers by name, ports by containerPort, ...).
"""
from __future__ import annotations

import copy
from typing import Any

# field name -> merge key, from k8s.io/api's `patchMergeKey` tags.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "conditions": "type",
    "ownerReferences": "uid",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "ports": "containerPort",   # a Service's ports merge by port (below)
}
# Lists of scalars with `patchStrategy: merge` (set union).
MERGE_SCALAR_LISTS = frozenset({"finalizers"})
DIRECTIVE = "$patch"


class StrategicPatchError(ValueError):
    """A patch that is malformed (kube-apiserver answers it with BadRequest)."""


def apply(doc: dict[str, Any], patch: dict[str, Any], *, kind: str = "") -> dict[str, Any]:
    """`doc` with the strategic merge `patch` applied (a new value; `doc` is unchanged)."""
    if not isinstance(patch, dict):
        raise StrategicPatchError("a strategic merge patch must be a JSON object")
    return _merge_map(copy.deepcopy(doc) if isinstance(doc, dict) else {}, patch, kind, ())


def _merge_key(field: str, kind: str, path: tuple[str, ...]) -> str | None:
    if field == "ports" and kind == "Service" and path == ("spec",):
        return "port"
    return MERGE_KEYS.get(field)


def _merge_map(doc: dict[str, Any], patch: dict[str, Any], kind: str,
               path: tuple[str, ...]) -> dict[str, Any]:
    directive = patch.get(DIRECTIVE)
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != DIRECTIVE}
    if directive not in (None, "merge"):
        raise StrategicPatchError(f"Unknown patch type: {directive} in map: {patch}")
    for key, value in patch.items():
        if key in (DIRECTIVE, "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(doc.get(field), list) and isinstance(value, list):
                doc[field] = [v for v in doc[field] if v not in value]
            continue
        if value is None:
            doc.pop(key, None)
            continue
        current = doc.get(key)
        if isinstance(value, dict):
            if value.get(DIRECTIVE) == "delete":
                doc.pop(key, None)
                continue
            doc[key] = _merge_map(current if isinstance(current, dict) else {}, value, kind,
                                  path + (key,))
        elif isinstance(value, list):
            doc[key] = _merge_list(key, current if isinstance(current, list) else [], value,
                                   kind, path)
        else:
            doc[key] = value
    return doc


def _merge_list(field: str, doc: list[Any], patch: list[Any], kind: str,
                path: tuple[str, ...]) -> list[Any]:
    if any(isinstance(v, dict) and v.get(DIRECTIVE) == "replace" for v in patch):
        return [copy.deepcopy(v) for v in patch
                if not (isinstance(v, dict) and v.get(DIRECTIVE) == "replace")]
    if field in MERGE_SCALAR_LISTS:
        return doc + [v for v in patch if v not in doc]
    key = _merge_key(field, kind, path)
    if key is None or not all(isinstance(v, dict) for v in patch):
        return copy.deepcopy(patch)   # no merge strategy: the patch's list replaces
    out = [copy.deepcopy(v) for v in doc]
    for element in patch:
        if key not in element:
            raise StrategicPatchError(f"map: {element} does not contain declared merge key: {key}")
        at = next((i for i, have in enumerate(out)
                   if isinstance(have, dict) and have.get(key) == element[key]), None)
        if element.get(DIRECTIVE) == "delete":
            if at is not None:
                out.pop(at)
            continue
        if at is None:
            out.append({k: copy.deepcopy(v) for k, v in element.items() if k != DIRECTIVE})
        else:
            out[at] = _merge_map(out[at], element, kind, path + (field,))
    return out
