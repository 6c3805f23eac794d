"""kubectl's JSONPath dialect (k8s.io/client-go/util/jsonpath), for -o jsonpath and friends.

A template is text with actions in braces: `{.items[*].metadata.name}`,
`{range .items[*]}{.metadata.name}{"\\n"}{end}`. Inside an action: `.field`,
`['key']`, `[n]`, `[start:end:step]`, `[*]`, unions `[0,2]`, `..` recursive
descent, filters `[?(@.x == "y")]` (==, !=, <, >, <=, >=, or bare existence),
`"quoted text"`, numbers, `true`/`false`, and the words `range` and `end`.

The model is client-go's, ported closely so that output and errors match
kubectl's byte for byte, quirks included:
- parsing yields a flat list of nodes (text and actions); `range` ... `end`
  is resolved while executing, as client-go does (a `range` without `end`
  runs to the end of the template, and what follows it then runs once more on
  the outer value);
- each action's results print joined by one space; a map or list prints as
  compact JSON (Go's encoding/json), a string as it is, null as `null`;
- `allow_missing_keys` (kubectl get's default) makes a missing field empty
  instead of an error;
- maps are walked in sorted key order (Go's order is random; sorted is one of
  the orders kubectl may print).
Errors carry client-go's messages (`unclosed action`, `array index out of
bounds: index 5, length 3`, ...). Values are decoded JSON (dict, list, str,
int, float, bool, None). Pure; no I/O.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from kubemu.cli import gofmt

# Bounds on what one template may ask for; real templates are far below these.
TEMPLATE_CHARS_MAX = 64 * 1024
RANGE_DEPTH_MAX = 64


class JSONPathError(Exception):
    """A template that does not parse, or fails on the data (client-go's message)."""


class _EvalError(JSONPathError):
    """An evaluation error; `value` is what client-go returns alongside it."""

    def __init__(self, message: str, value: list[Any]):
        super().__init__(message)
        self.value = value


# ---------------------------------------------------------------- nodes

@dataclasses.dataclass
class ListNode:
    nodes: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TextNode:
    text: str


@dataclasses.dataclass
class FieldNode:
    value: str


@dataclasses.dataclass
class IdentifierNode:
    name: str


@dataclasses.dataclass
class Param:
    value: int = 0
    known: bool = False
    derived: bool = False


@dataclasses.dataclass
class ArrayNode:
    params: list[Param]


@dataclasses.dataclass
class FilterNode:
    left: ListNode
    right: ListNode
    operator: str


@dataclasses.dataclass
class IntNode:
    value: int


@dataclasses.dataclass
class FloatNode:
    value: float


@dataclasses.dataclass
class BoolNode:
    value: bool


@dataclasses.dataclass
class WildcardNode:
    pass


@dataclasses.dataclass
class RecursiveNode:
    pass


@dataclasses.dataclass
class UnionNode:
    nodes: list[ListNode]


# ---------------------------------------------------------------- parser

_EOF = ""
_DICT_KEY = re.compile(r"^'([^']*)'$")
_SLICE = re.compile(r"^(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)\Z", re.DOTALL)


def _is_terminator(r: str) -> bool:
    return r in (_EOF, " ", "\t", "\r", "\n", ".", ",", "[", "]", "$", "@", "{", "}")


def _is_alphanumeric(r: str) -> bool:
    return r == "_" or r.isalpha() or r.isdecimal()


def _go_rune(r: str) -> str:
    """Go's %#U of a rune: U+0023 '#'."""
    return f"U+{ord(r):04X} '{r}'" if r.isprintable() else f"U+{ord(r):04X}"


class _Parser:
    """client-go's Parser: a rune scanner over `input`; `start` marks the pending text."""

    def __init__(self, text: str):
        self.input = text
        self.pos = 0
        self.start = 0
        self.width = 0
        self.root = ListNode()

    # -------- scanning

    def consume(self) -> str:
        value = self.input[self.start:self.pos]
        self.start = self.pos
        return value

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.width = 0
            return _EOF
        self.width = 1
        self.pos += 1
        return self.input[self.pos - 1]

    def peek(self) -> str:
        r = self.next()
        self.backup()
        return r

    def backup(self) -> None:
        self.pos -= self.width

    # -------- grammar (client-go's tail calls become a loop over states)

    def parse(self) -> ListNode:
        state: tuple[str, ListNode] | None = ("text", self.root)
        while state is not None:
            kind, cur = state
            state = self._text(cur) if kind == "text" else self._inside_action(cur)
        return self.root

    def _text(self, cur: ListNode) -> tuple[str, ListNode] | None:
        while True:
            if self.input.startswith("{", self.pos):
                if self.pos > self.start:
                    cur.nodes.append(TextNode(self.consume()))
                self.pos += 1  # the left delimiter
                self.consume()
                node = ListNode()
                cur.nodes.append(node)
                return ("action", node)
            if self.next() == _EOF:
                break
        if self.pos > self.start:
            cur.nodes.append(TextNode(self.consume()))
        return None

    def _inside_action(self, cur: ListNode) -> tuple[str, ListNode] | None:
        rest = self.input[self.pos:]
        if rest.startswith("}"):
            self.pos += 1
            self.consume()
            return ("text", self.root)
        if rest.startswith("[?("):
            self._filter(cur)
            return ("action", cur)
        if rest.startswith(".."):
            self._recursive(cur)
            return ("action", cur)
        r = self.next()
        if r == _EOF or r in "\r\n":
            raise JSONPathError("unclosed action")
        if r == " ":
            self.consume()
        elif r in "@$":  # the current object: nothing to do
            self.consume()
        elif r == "[":
            self._array(cur)
        elif r in "\"'":
            self._quote(cur, r)
        elif r == ".":
            self._field(cur)
        elif r in "+-" or r.isdecimal():
            self.backup()
            self._number(cur)
        elif _is_alphanumeric(r):
            self.backup()
            self._identifier(cur)
        else:
            raise JSONPathError(f"unrecognized character in action: {_go_rune(r)}")
        return ("action", cur)

    def _identifier(self, cur: ListNode) -> None:
        while True:
            if _is_terminator(self.next()):
                self.backup()
                break
        value = self.consume()
        if value in ("true", "false"):
            cur.nodes.append(BoolNode(value == "true"))
        else:
            cur.nodes.append(IdentifierNode(value))

    def _recursive(self, cur: ListNode) -> None:
        if cur.nodes and isinstance(cur.nodes[-1], RecursiveNode):
            raise JSONPathError("invalid multiple recursive descent")
        self.pos += 2
        self.consume()
        cur.nodes.append(RecursiveNode())
        if _is_alphanumeric(self.peek()):
            self._field(cur)

    def _number(self, cur: ListNode) -> None:
        if self.peek() in ("+", "-"):
            self.next()
        while True:
            r = self.next()
            if r != "." and not r.isdecimal():
                self.backup()
                break
        value = self.consume()
        if re.fullmatch(r"[+-]?[0-9]+", value):
            cur.nodes.append(IntNode(int(value)))
            return
        try:
            if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", value):
                raise ValueError(value)
            cur.nodes.append(FloatNode(float(value)))
        except ValueError:
            raise JSONPathError(f"cannot parse number {value}") from None

    def _array(self, cur: ListNode) -> None:
        while True:
            r = self.next()
            if r == _EOF or r == "\n":
                raise JSONPathError("unterminated array")
            if r == "]":
                break
        text = self.consume()[1:-1]
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:
            union = [_parse_action(f"[{part.strip(' ')}]") for part in parts]
            cur.nodes.append(UnionNode(union))
            return
        key = _DICT_KEY.match(text)
        if key:
            cur.nodes.extend(_parse_action(f".{key.group(1)}").nodes)
            return
        m = _SLICE.match(text)
        if m is None:
            raise JSONPathError(f"invalid array index {text}")
        groups = [g or "" for g in m.groups()]
        params = [Param(), Param(), Param()]
        for i in range(3):
            value = groups[i]
            if value:
                if i > 0:
                    value = value[1:]
                if i > 0 and value == "":
                    params[i].known = False
                else:
                    params[i].known = True
                    try:
                        params[i].value = int(value)
                    except ValueError:
                        raise JSONPathError(f"array index {value} is not a number") from None
            elif i == 1:
                params[i] = Param(params[0].value + 1, True, True)
            else:
                params[i] = Param(0, False)
        cur.nodes.append(ArrayNode(params))

    def _filter(self, cur: ListNode) -> None:
        self.pos += 3
        self.consume()
        begin = end = False
        pair = ""
        while True:
            r = self.next()
            if r == _EOF or r == "\n":
                raise JSONPathError("unterminated filter")
            if r in "\"'":
                if not begin:
                    begin = True
                    pair = r
                    continue
                if self.input[self.pos - 2] != "\\" and r == pair:
                    end = True
            elif r == ")":
                if begin == end:
                    break
        if self.next() != "]":
            raise JSONPathError("unclosed array expect ]")
        text = self.consume()[:-2]
        m = _FILTER.match(text)
        if m is None:
            cur.nodes.append(FilterNode(_parse_action(text), ListNode(), "exists"))
        else:
            cur.nodes.append(FilterNode(_parse_action(m.group(1)), _parse_action(m.group(3)),
                                        m.group(2)))

    def _quote(self, cur: ListNode, end: str) -> None:
        while True:
            r = self.next()
            if r == _EOF or r == "\n":
                raise JSONPathError("unterminated quoted string")
            if r == end and self.input[self.pos - 2] != "\\":
                break
        value = self.consume()
        try:
            cur.nodes.append(TextNode(_unquote_extend(value)))
        except ValueError:
            raise JSONPathError(f"unquote string {value} error invalid syntax") from None

    def _field(self, cur: ListNode) -> None:
        self.consume()
        while self._advance():
            pass
        value = self.consume()
        cur.nodes.append(WildcardNode() if value == "*" else FieldNode(value.replace("\\", "")))

    def _advance(self) -> bool:
        r = self.next()
        if r == "\\":
            self.next()
        elif _is_terminator(r):
            self.backup()
            return False
        return True


def _parse_action(text: str) -> ListNode:
    """client-go's parseAction: `text` parsed as one action, its list node."""
    root = _Parser("{" + text + "}").parse()
    first = root.nodes[0]
    assert isinstance(first, ListNode)
    return first


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\"}


def _unquote_extend(s: str) -> str:
    """client-go's UnquoteExtend: strconv.Unquote that also takes single quotes."""
    if len(s) < 2 or s[0] != s[-1] or s[0] not in "\"'":
        raise ValueError(s)
    quote, body = s[0], s[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote:
            raise ValueError(s)
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError(s)
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e in "'\"":
            if e != quote:
                raise ValueError(s)
            out.append(e)
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i:i + size]
            if len(digits) != size or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError(s)
            out.append(chr(int(digits, 16)))
            i += size
        elif e in "01234567":
            digits = body[i - 1:i + 2]
            if len(digits) != 3 or not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise ValueError(s)
            out.append(chr(int(digits, 8)))
            i += 2
        else:
            raise ValueError(s)
    return "".join(out)


def parse(template: str) -> list[Any]:
    """The template's top-level nodes, or JSONPathError with client-go's message."""
    if len(template) > TEMPLATE_CHARS_MAX:
        raise JSONPathError(f"template longer than {TEMPLATE_CHARS_MAX} characters")
    return _Parser(template).parse().nodes


# ---------------------------------------------------------------- comparisons (Go templates)

def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    raise _EvalError("invalid type for comparison", [])


def go_equal(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka != kb:
        raise _EvalError("incompatible types for comparison", [])
    return a == b


def go_less(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka != kb:
        raise _EvalError("incompatible types for comparison", [])
    if ka == "bool":
        raise _EvalError("invalid type for comparison", [])
    return a < b


_COMPARE = {
    "<": go_less,
    ">": lambda a, b: not (go_less(a, b) or go_equal(a, b)),
    "==": go_equal,
    "!=": lambda a, b: not go_equal(a, b),
    "<=": lambda a, b: go_less(a, b) or go_equal(a, b),
    ">=": lambda a, b: not go_less(a, b),
}


# ---------------------------------------------------------------- evaluation

def _children(v: Any) -> list[Any]:
    """What `*` and `..` see in a value: map values (sorted by key), list items, string bytes."""
    if isinstance(v, dict):
        return [v[k] for k in sorted(v)]
    if isinstance(v, list):
        return list(v)
    if isinstance(v, str):
        return list(v.encode())
    return []


class JSONPath:
    """One parsed template; `find` gives client-go's result lists, `execute` the text."""

    def __init__(self, template: str, *, allow_missing_keys: bool = True,
                 json_output: bool = False):
        self.template = template
        self.nodes = parse(template)
        self.allow_missing_keys = allow_missing_keys
        self.json_output = json_output

    # -------- results

    def find(self, data: Any) -> list[list[Any]]:
        self._begin_range = self._in_range = self._end_range = 0
        self._last_end = -1
        return self._find(data, 0, 0)

    def _find(self, data: Any, start: int, depth: int) -> list[list[Any]]:
        if depth > RANGE_DEPTH_MAX:
            raise _EvalError(f"ranges nested deeper than {RANGE_DEPTH_MAX}", [])
        nodes = self.nodes
        cur = [data]
        full: list[list[Any]] = []
        i = start
        while i < len(nodes):
            results = self._walk(cur, nodes[i])
            # an end node: the current block is over
            if self._end_range > 0 and self._end_range <= self._in_range:
                self._end_range -= 1
                self._last_end = i
                break
            # a range node: run the rest of the block once per result
            if self._begin_range > 0:
                self._begin_range -= 1
                self._in_range += 1
                if results:
                    for value in results:
                        full.extend(self._find(value, i + 1, depth + 1))
                else:
                    self._find(None, i + 1, depth + 1)  # only to find the block's end
                self._in_range -= 1
                for k in range(i + 1, len(nodes)):
                    if k == self._last_end:
                        i = k
                        break
                i += 1
                continue
            full.append(results)
            i += 1
        return full

    def execute(self, data: Any) -> str:
        out = []
        for results in self.find(data):
            out.append(self.print_results(results))
        return "".join(out)

    def print_results(self, results: list[Any]) -> str:
        if self.json_output:
            return gofmt.marshal(list(results), "    ") + "\n"
        texts = []
        for r in results:
            if isinstance(r, (dict, list)):
                texts.append(gofmt.marshal(r))
            elif r is None:
                texts.append("null")
            else:
                texts.append(gofmt.sprint(r))
        return " ".join(texts)

    # -------- nodes

    def _walk(self, value: list[Any], node: Any) -> list[Any]:
        if isinstance(node, ListNode):
            return self._eval_list(value, node)
        if isinstance(node, TextNode):
            return [node.text]
        if isinstance(node, FieldNode):
            return self._eval_field(value, node)
        if isinstance(node, ArrayNode):
            return self._eval_array(value, node)
        if isinstance(node, FilterNode):
            return self._eval_filter(value, node)
        if isinstance(node, (IntNode, FloatNode, BoolNode)):
            return [node.value for _ in value]
        if isinstance(node, WildcardNode):
            return [c for v in value if v is not None for c in _children(v)]
        if isinstance(node, RecursiveNode):
            return self._eval_recursive(value)
        if isinstance(node, UnionNode):
            out: list[Any] = []
            for sub in node.nodes:
                try:
                    out.extend(self._eval_list(value, sub))
                except _EvalError as exc:
                    raise _EvalError(str(exc), value) from None
            return out
        if isinstance(node, IdentifierNode):
            return self._eval_identifier(value, node)
        raise _EvalError(f"unexpected Node {node}", value)

    def _eval_list(self, value: list[Any], node: ListNode) -> list[Any]:
        cur = value
        for sub in node.nodes:
            cur = self._walk(cur, sub)
        return cur

    def _eval_identifier(self, value: list[Any], node: IdentifierNode) -> list[Any]:
        if node.name == "range":
            self._begin_range += 1
            return value
        if node.name == "end":
            if self._in_range > 0:
                self._end_range += 1
                return []
            raise _EvalError("not in range, nothing to end", [])
        raise _EvalError(f"unrecognized identifier {node.name}", value)

    def _eval_field(self, value: list[Any], node: FieldNode) -> list[Any]:
        if not value:
            return []
        results = [v[node.value] for v in value if isinstance(v, dict) and node.value in v]
        if not results and not self.allow_missing_keys:
            raise _EvalError(f"{node.value} is not found", [])
        return results

    def _eval_array(self, value: list[Any], node: ArrayNode) -> list[Any]:
        result: list[Any] = []
        for v in value:
            if v is None:
                continue
            if not isinstance(v, list):
                raise _EvalError(f"{gofmt.type_name(v)} is not array or slice", value)
            length = len(v)
            p0, p1, p2 = (dataclasses.replace(p) for p in node.params)
            if not p0.known:
                p0.value = 0
            if p0.value < 0:
                p0.value += length
            if not p1.known:
                p1.value = length
            if p1.value < 0 or (p1.value == 0 and p1.derived):
                p1.value += length
            if p1.value == p0.value:
                return result  # zero elements asked for: client-go stops here
            if p0.value >= length or p0.value < 0:
                raise _EvalError(f"array index out of bounds: index {p0.value}, length {length}",
                                 value)
            if p1.value > length or p1.value < 0:
                raise _EvalError(
                    f"array index out of bounds: index {p1.value - 1}, length {length}", value)
            if p0.value > p1.value:
                raise _EvalError(f"starting index {p0.value} is greater than ending index "
                                 f"{p1.value}", value)
            step = 1
            if p2.known:
                if p2.value <= 0:
                    raise _EvalError("step must be > 0", value)
                step = p2.value
            result.extend(v[p0.value:p1.value:step])
        return result

    def _eval_recursive(self, value: list[Any]) -> list[Any]:
        result: list[Any] = []
        stack = [(list(value), 0)]  # iterative pre-order walk: no recursion limit on deep data
        while stack:
            items, index = stack.pop()
            if index >= len(items):
                continue
            stack.append((items, index + 1))
            v = items[index]
            if v is None:
                continue
            children = _children(v)
            if children:
                result.append(v)
                stack.append((children, 0))
        return result

    def _eval_filter(self, value: list[Any], node: FilterNode) -> list[Any]:
        results: list[Any] = []
        for v in value:
            if not isinstance(v, list):
                raise _EvalError(f"{gofmt.sprint(v)} is not array or slice and cannot be "
                                 "filtered", value)
            for item in v:
                temp = [item]
                try:
                    lefts = self._eval_list(temp, node.left)
                except _EvalError as exc:
                    if node.operator != "exists":
                        raise _EvalError(str(exc), value) from None
                    lefts = exc.value
                if node.operator == "exists":
                    if lefts:
                        results.append(item)
                    continue
                if not lefts:
                    continue
                if len(lefts) > 1:
                    raise _EvalError("can only compare one element at a time", value)
                try:
                    rights = self._eval_list(temp, node.right)
                except _EvalError as exc:
                    raise _EvalError(str(exc), value) from None
                if not rights:
                    continue
                if len(rights) > 1:
                    raise _EvalError("can only compare one element at a time", value)
                compare = _COMPARE.get(node.operator)
                if compare is None:
                    raise _EvalError(f"unrecognized filter operator {node.operator}", results)
                try:
                    passed = compare(lefts[0], rights[0])
                except _EvalError as exc:
                    raise _EvalError(str(exc), results) from None
                if passed:
                    results.append(item)
        return results


# ---------------------------------------------------------------- kubectl's wording

def parse_error(template: str, exc: JSONPathError) -> str:
    """What kubectl says when a template does not parse (before `error: `)."""
    return f"error parsing jsonpath {template}, {exc}"


def execute_error(template: str, exc: JSONPathError, data: Any) -> str:
    """What kubectl says when a template fails on the data (JSONPathPrinter.PrintObj)."""
    return (f"error executing jsonpath {gofmt.quote(template)}: Error executing template: "
            f"{exc}. Printing more information for debugging the template:\n"
            f"\ttemplate was:\n\t\t{template}\n"
            f"\tobject given to jsonpath engine was:\n\t\t{gofmt.sharp_v(data)}\n\n\n")


# ---------------------------------------------------------------- custom-columns paths

_RELAXED = re.compile(r"^\{\.?([^{}]+)\}$|^\.?([^{}]+)$")


def relaxed(expression: str) -> str:
    """kubectl's RelaxedJSONPathExpression: `metadata.name`, `.metadata.name` and
    `{metadata.name}` all mean `{.metadata.name}`."""
    if not expression:
        return expression
    m = _RELAXED.match(expression)
    if m is None:
        raise JSONPathError("unexpected path string, expected a 'name1.name2' or '.name1.name2' "
                            "or '{name1.name2}' or '{.name1.name2}'")
    return "{." + (m.group(1) or m.group(2)) + "}"
