"""JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386) over plain JSON values, as
kube-apiserver applies `--type json` and `--type merge`.

`merge_patch(target, patch)` is RFC 7386 (maps merge, null deletes, anything
else replaces); it returns a new value and shares no maps it changed.

`apply(doc, operations)` returns a new document; `doc` is never changed. Each
operation is an object with `op` (add, remove, replace, move, copy, test),
`path` (a JSON Pointer, RFC 6901: `~1` is `/`, `~0` is `~`) and, as its op
needs, `value` or `from`. An array index is a decimal number, or `-` (after
the last element) for add. A patch that cannot be applied raises
JSONPatchError whose message follows evanphx/json-patch (the library
kube-apiserver uses), e.g. `replace operation does not apply: doc is missing
key: /spec/foo`; nothing is half-applied since the input is not touched.
"""
from __future__ import annotations

import copy
from typing import Any

# A patch longer than this is refused (kube-apiserver bounds a JSON patch's
# operations too: maxJSONPatchOperations = 10000).
OPERATIONS_MAX = 10_000


PATCH_TYPES = ("json", "merge", "strategic")


def apply_patch(doc: Any, patch: Any, patch_type: str, *, kind: str = "") -> Any:
    """`doc` with a patch of `patch_type` (json, merge or strategic) applied, a new
    value. Raises ValueError (JSONPatchError, StrategicPatchError) when it does not apply."""
    if patch_type == "merge":
        return merge_patch(doc, patch)
    if patch_type == "json":
        return apply(doc, patch)
    if patch_type == "strategic":
        from kubemu.api import strategicpatch

        return strategicpatch.apply(doc, patch, kind=kind)
    raise JSONPatchError(f'patch type "{patch_type}" is not supported; use one of '
                         + ", ".join(f'"{t}"' for t in PATCH_TYPES))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class JSONPatchError(ValueError):
    """A patch that is malformed or does not apply to the document."""


def parse_pointer(path: str) -> list[str]:
    """RFC 6901 reference tokens of `path` ("" is the whole document)."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise JSONPatchError(f'JSON pointer must be empty or start with a "/": {path}')
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(token: str, size: int, path: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return size
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise JSONPatchError(f"Unable to access invalid index: {token}: {path}")
    index = int(token)
    if index > size or (index == size and not allow_end):
        raise JSONPatchError(f"Unable to access invalid index: {index}: {path}")
    return index


def _parent(doc: Any, tokens: list[str], path: str, op: str) -> Any:
    """The container the last token of `path` addresses into."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), path, allow_end=False)]
        else:
            raise JSONPatchError(f"{op} operation does not apply: doc is missing path: {path}")
    if not isinstance(node, (dict, list)):
        raise JSONPatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return node


def _get(doc: Any, path: str, op: str) -> Any:
    node = doc
    for token in parse_pointer(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), path, allow_end=False)]
        else:
            raise JSONPatchError(f"{op} operation does not apply: doc is missing key: {path}")
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = parse_pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path, "add")
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent.insert(_index(tokens[-1], len(parent), path, allow_end=True), value)
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> tuple[Any, Any]:
    tokens = parse_pointer(path)
    if not tokens:
        raise JSONPatchError(f"{op} operation does not apply: cannot remove the whole document")
    parent = _parent(doc, tokens, path, op)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise JSONPatchError(f"{op} operation does not apply: doc is missing key: {path}")
        return doc, parent.pop(tokens[-1])
    return doc, parent.pop(_index(tokens[-1], len(parent), path, allow_end=False))


def _field(operation: dict[str, Any], name: str, number: int) -> Any:
    if name not in operation:
        raise JSONPatchError(f"operation {number}: missing {name!r}")
    return operation[name]


def apply(doc: Any, operations: Any) -> Any:
    """`doc` with `operations` applied in order (a deep copy; `doc` is unchanged)."""
    if not isinstance(operations, list):
        raise JSONPatchError("a JSON patch must be a list of operations")
    if len(operations) > OPERATIONS_MAX:
        raise JSONPatchError(f"the allowed maximum operations in a JSON patch is {OPERATIONS_MAX}, "
                             f"got {len(operations)}")
    result = copy.deepcopy(doc)
    for number, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise JSONPatchError(f"operation {number}: not a JSON object")
        op = operation.get("op")
        path = _field(operation, "path", number)
        if not isinstance(path, str):
            raise JSONPatchError(f"operation {number}: path must be a string")
        if op == "add":
            result = _add(result, path, copy.deepcopy(_field(operation, "value", number)))
        elif op == "remove":
            result, _ = _remove(result, path)
        elif op == "replace":
            value = copy.deepcopy(_field(operation, "value", number))
            if path == "":
                result = value
                continue
            _get(result, path, "replace")  # must exist
            result, _ = _remove(result, path, "replace")
            result = _add(result, path, value)
        elif op == "move":
            source = _field(operation, "from", number)
            if path.startswith(source + "/"):
                raise JSONPatchError(f"move operation does not apply: cannot move {source} "
                                     f"into its own child {path}")
            _get(result, source, "move")
            result, value = _remove(result, source, "move")
            result = _add(result, path, value)
        elif op == "copy":
            value = copy.deepcopy(_get(result, _field(operation, "from", number), "copy"))
            result = _add(result, path, value)
        elif op == "test":
            want = _field(operation, "value", number)
            try:
                have = _get(result, path, "test")
            except JSONPatchError:
                have = None
            if have != want or isinstance(have, bool) != isinstance(want, bool):
                raise JSONPatchError(f"testing value {path} failed: test failed")
        else:
            raise JSONPatchError(f"Unexpected kind: {op}")
    return result
