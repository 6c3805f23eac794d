"""A subset of Go's text/template, for kubectl's -o go-template and go-template-file.

Supported, with Go's semantics and error wording: text and `{{ actions }}`
with `{{-`/`-}}` trimming and `{{/* comments */}}`; fields `.a.b`, `$`,
variables (`$x := ...`, `$x = ...`, `range $i, $v := ...`), pipelines with
`|`, parenthesised pipelines, string/raw-string/number/bool/nil constants;
`if`/`else if`/`else`, `range` (lists, maps in key order, `else`, `break`,
`continue`), `with`/`else`, `end`; the functions and, or, not, len, index,
print, printf, println, eq, ne, lt, le, gt, ge, plus kubectl's exists and
base64decode. Not supported: define/template/block, method calls, html/js/
urlquery/call/slice (a template using them fails to parse, naming the
function).

The data is decoded JSON as kubectl gives it to the template (map of
interface{}: integers are int64, other numbers float64). A missing map key
is Go's "no value" (`<no value>` when printed; kubectl's missingkey=default).
Parse errors read `template: output:LINE: ...`; execution errors `template:
output:LINE:COL: executing "output" at <NODE>: ...`, as Go words them.
Bounds: template length, nesting depth, range iterations and output size.
"""
from __future__ import annotations

import base64
import dataclasses
from typing import Any, Callable

from kubemu.cli import gofmt
from kubemu.cli.gofmt import MISSING, GoInt

NAME = "output"
TEMPLATE_CHARS_MAX = 64 * 1024
DEPTH_MAX = 100
OUTPUT_CHARS_MAX = 256 * 1024 * 1024
_KEYWORDS = ("if", "else", "end", "range", "with", "break", "continue", "define", "template",
             "block", "nil")


class TemplateError(Exception):
    """Go's error text, e.g. `template: output:1: unexpected EOF`."""


class _ExecError(TemplateError):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# ---------------------------------------------------------------- lexer

@dataclasses.dataclass
class Tok:
    kind: str  # text, left, right, space, field, var, ident, string, raw, number, char,
    #            bool, nil, dot, pipe, lparen, rparen, declare, assign, comma, comment,
    #            keyword, eof, error
    val: str
    pos: int
    line: int


def _is_space(c: str) -> bool:
    return c in " \t\r\n"


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


def _left_trim(text: str, j: int) -> bool:
    """`{{- `: a trim marker after the left delimiter at j."""
    return text[j + 2:j + 3] == "-" and _is_space(text[j + 3:j + 4] or "x")


def _right_delim(text: str, pos: int) -> tuple[bool, bool]:
    """(at a right delimiter, with a trim marker ` -}}`)."""
    if _is_space(text[pos:pos + 1] or "x") and text.startswith("-}}", pos + 1):
        return True, True
    return text.startswith("}}", pos), False


def _at_terminator(text: str, pos: int) -> bool:
    """Go's atTerminator: what may follow a word, field or variable."""
    if pos >= len(text):
        return True
    c = text[pos]
    return _is_space(c) or c in ".,|:()" or _right_delim(text, pos)[0]


def lex(text: str) -> list[Tok]:
    """Go's text/template lexer, as a list of tokens (an `error` token ends it)."""
    toks: list[Tok] = []
    n = len(text)

    def add(kind: str, val: str, p: int) -> None:
        toks.append(Tok(kind, val, p, 1 + text.count("\n", 0, p)))

    pos = 0
    trim_next = False
    while True:
        # ---- text up to the next {{
        if trim_next:
            while pos < n and _is_space(text[pos]):
                pos += 1
            trim_next = False
        j = text.find("{{", pos)
        end = n if j < 0 else j
        chunk_end = end
        trim = j >= 0 and _left_trim(text, j)
        if trim:
            while chunk_end > pos and _is_space(text[chunk_end - 1]):
                chunk_end -= 1
        if chunk_end > pos:
            add("text", text[pos:chunk_end], pos)
        if j < 0:
            add("eof", "", n)
            return toks
        # ---- an action (or a comment)
        pos = j + 2 + (2 if trim else 0)
        if text.startswith("/*", pos):
            close = text.find("*/", pos + 2)
            if close < 0:
                add("error", "unclosed comment", pos)
                return toks
            pos = close + 2
            at, trimmed = _right_delim(text, pos)
            if not at:
                add("error", "comment ends before closing delimiter", pos)
                return toks
            pos += 4 if trimmed else 2
            trim_next = trimmed
            continue
        add("left", "{{", j)
        depth = 0
        while True:
            at, trimmed = _right_delim(text, pos)
            if at:
                if depth:
                    add("error", "unclosed left paren", pos)
                    return toks
                pos += 2 if trimmed else 0
                add("right", "}}", pos)
                pos += 2
                trim_next = trimmed
                break
            if pos >= n:
                add("error", "unclosed action", pos)
                return toks
            c = text[pos]
            s = pos
            if _is_space(c):
                while pos < n and _is_space(text[pos]):
                    pos += 1
                if _right_delim(text, pos - 1) == (True, True):
                    pos -= 1  # that space belongs to ` -}}`
                if pos > s:
                    add("space", text[s:pos], s)
            elif c == "=":
                pos += 1
                add("assign", "=", s)
            elif c == ":":
                if not text.startswith(":=", pos):
                    add("error", "expected :=", pos)
                    return toks
                pos += 2
                add("declare", ":=", s)
            elif c in "|,":
                pos += 1
                add("pipe" if c == "|" else "comma", c, s)
            elif c == '"':
                pos += 1
                while True:
                    if pos >= n or text[pos] == "\n":
                        add("error", "unterminated quoted string", s)
                        return toks
                    if text[pos] == "\\":
                        pos += 2
                        continue
                    pos += 1
                    if text[pos - 1] == '"':
                        break
                add("string", text[s:pos], s)
            elif c == "`":
                close = text.find("`", pos + 1)
                if close < 0:
                    add("error", "unterminated raw quoted string", s)
                    return toks
                pos = close + 1
                add("raw", text[s:pos], s)
            elif c == "'":
                pos += 1
                while pos < n and text[pos] != "'":
                    if text[pos] == "\n":
                        break
                    pos += 2 if text[pos] == "\\" else 1
                if pos >= n or text[pos] != "'":
                    add("error", "unterminated character constant", s)
                    return toks
                pos += 1
                add("char", text[s:pos], s)
            elif c in "$." and not (c == "." and text[pos + 1:pos + 2].isdecimal()):
                pos += 1
                while pos < n and _is_alnum(text[pos]):
                    pos += 1
                if not _at_terminator(text, pos):
                    add("error", f"bad character {_go_rune(text[pos])}", pos)
                    return toks
                word = text[s:pos]
                add("var" if c == "$" else ("dot" if word == "." else "field"), word, s)
            elif c in "+-." or c.isdecimal():
                pos = _scan_number(text, pos)
                if pos == s or (pos < n and _is_alnum(text[pos])):
                    add("error", f'bad number syntax: "{text[s:pos + 1]}"', s)
                    return toks
                add("number", text[s:pos], s)
            elif _is_alnum(c):
                while pos < n and _is_alnum(text[pos]):
                    pos += 1
                if not _at_terminator(text, pos):
                    add("error", f"bad character {_go_rune(text[pos])}", pos)
                    return toks
                word = text[s:pos]
                if word in ("true", "false"):
                    add("bool", word, s)
                elif word == "nil":
                    add("nil", word, s)
                elif word in _KEYWORDS:
                    add("keyword", word, s)
                else:
                    add("ident", word, s)
            elif c == "(":
                depth += 1
                pos += 1
                add("lparen", c, s)
            elif c == ")":
                depth -= 1
                if depth < 0:
                    add("error", f"unexpected right paren {_go_rune(c)}", s)
                    return toks
                pos += 1
                add("rparen", c, s)
            else:
                add("error", f"bad character {_go_rune(c)}", s)
                return toks


def _scan_number(text: str, pos: int) -> int:
    n = len(text)
    if pos < n and text[pos] in "+-":
        pos += 1
    digits = "0123456789_"
    if text.startswith(("0x", "0X"), pos):
        pos += 2
        digits = "0123456789abcdefABCDEF_"
    while pos < n and text[pos] in digits:
        pos += 1
    if pos < n and text[pos] == ".":
        pos += 1
        while pos < n and text[pos] in digits:
            pos += 1
    if pos < n and text[pos] in "eE":
        pos += 1
        if pos < n and text[pos] in "+-":
            pos += 1
        while pos < n and text[pos] in "0123456789_":
            pos += 1
    return pos


def _go_rune(c: str) -> str:
    return f"U+{ord(c):04X} '{c}'"


# ---------------------------------------------------------------- parse tree

@dataclasses.dataclass
class Node:
    pos: int
    line: int


@dataclasses.dataclass
class Text(Node):
    text: str


@dataclasses.dataclass
class Field(Node):
    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclasses.dataclass
class Variable(Node):
    idents: list[str]  # [ "$x", "field", ... ]

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclasses.dataclass
class Dot(Node):
    def __str__(self) -> str:
        return "."


@dataclasses.dataclass
class Nil(Node):
    def __str__(self) -> str:
        return "nil"


@dataclasses.dataclass
class Ident(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass
class Const(Node):
    value: Any
    text: str

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass
class Chain(Node):
    node: Any
    fields: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "".join("." + f for f in self.fields)


@dataclasses.dataclass
class Command(Node):
    args: list[Any]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


@dataclasses.dataclass
class Pipe(Node):
    decl: list[str]
    is_assign: bool
    cmds: list[Command]

    def __str__(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(self.decl) + (" = " if self.is_assign else " := ")
        return head + " | ".join(str(c) for c in self.cmds)


@dataclasses.dataclass
class Action(Node):
    pipe: Pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclasses.dataclass
class Branch(Node):
    kind: str  # if, range, with
    pipe: Pipe
    body: list[Any]
    else_body: list[Any] | None


@dataclasses.dataclass
class Control(Node):
    kind: str  # break, continue


FUNCS = ("and", "or", "not", "len", "index", "print", "printf", "println", "eq", "ne", "lt",
         "le", "gt", "ge", "exists", "base64decode")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = lex(text)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.depth = 0

    def error(self, message: str, tok: Tok | None = None) -> TemplateError:
        tok = tok or self.toks[min(self.i, len(self.toks) - 1)]
        return TemplateError(f"template: {NAME}:{tok.line}: {message}")

    def next(self) -> Tok:
        tok = self.toks[self.i]
        if tok.kind == "error":
            raise self.error(tok.val, tok)
        self.i += 1
        return tok

    def peek(self) -> Tok:
        tok = self.toks[self.i]
        if tok.kind == "error":
            raise self.error(tok.val, tok)
        return tok

    def next_non_space(self) -> Tok:
        tok = self.next()
        while tok.kind == "space":
            tok = self.next()
        return tok

    def peek_non_space(self) -> Tok:
        j = self.i
        while self.toks[j].kind == "space":
            j += 1
        tok = self.toks[j]
        if tok.kind == "error":
            raise self.error(tok.val, tok)
        return tok

    # -------- lists

    def parse(self) -> list[Any]:
        body, end = self.item_list(top=True)
        return body

    def item_list(self, top: bool = False) -> tuple[list[Any], str]:
        """Nodes up to {{end}} / {{else}} (returned as the second value) or EOF at top level."""
        self.depth += 1
        if self.depth > DEPTH_MAX:
            raise self.error(f"nesting deeper than {DEPTH_MAX}")
        out: list[Any] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if not top:
                    raise self.error("unexpected EOF", tok)
                self.depth -= 1
                return out, "eof"
            if tok.kind == "text":
                self.next()
                out.append(Text(tok.pos, tok.line, tok.val))
                continue
            self.next()  # {{
            word = self.peek_non_space()
            if word.kind == "keyword" and word.val in ("end", "else"):
                self.next_non_space()
                if top:
                    raise self.error(f"unexpected {{{{{word.val}}}}}", word)
                self.depth -= 1
                if word.val == "end":
                    self.expect_right("end")
                return out, word.val
            out.append(self.action())

    def expect_right(self, context: str) -> None:
        tok = self.next_non_space()
        if tok.kind != "right":
            raise self.error(f"unexpected {self.describe(tok)} in {context}", tok)

    @staticmethod
    def describe(tok: Tok) -> str:
        if tok.kind == "eof":
            return "EOF"
        if tok.kind == "right":
            return "<right delim>"
        return f'"{tok.val}"'

    def action(self) -> Any:
        tok = self.peek_non_space()
        if tok.kind == "keyword":
            self.next_non_space()
            if tok.val in ("if", "range", "with"):
                return self.branch(tok)
            if tok.val in ("break", "continue"):
                if not self.range_depth:
                    raise self.error(f"{{{{{tok.val}}}}} outside {{{{range}}}}", tok)
                self.expect_right(tok.val)
                return Control(tok.pos, tok.line, tok.val)
            if tok.val in ("define", "template", "block"):
                raise self.error(f'"{tok.val}" is not supported by kubemu\'s go-template', tok)
        pipe = self.pipeline("command", allow_decl=True)
        return Action(tok.pos, tok.line, pipe)

    def branch(self, tok: Tok) -> Branch:
        saved_vars = len(self.vars)
        pipe = self.pipeline(tok.val, allow_decl=True, is_range=tok.val == "range")
        if tok.val == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if tok.val == "range":
            self.range_depth -= 1
        else_body = None
        if end == "else":
            nxt = self.peek_non_space()
            if nxt.kind == "keyword" and nxt.val in ("if", "with") and tok.val == nxt.val or (
                    nxt.kind == "keyword" and nxt.val == "if" and tok.val == "if"):
                # {{else if ...}}: an if nested in the else branch, sharing its {{end}}
                self.next_non_space()
                inner = self.branch(nxt)
                else_body = [inner]
            else:
                self.expect_right("else")
                else_body, end2 = self.item_list()
                if end2 != "end":
                    raise self.error("expected end; found {{else}}")
        del self.vars[saved_vars:]
        return Branch(tok.pos, tok.line, tok.val, pipe, body, else_body)

    def pipeline(self, context: str, *, allow_decl: bool, is_range: bool = False) -> Pipe:
        start = self.peek_non_space()
        decl: list[str] = []
        is_assign = False
        if allow_decl and start.kind == "var":
            # look ahead for `$x :=`, `$x =`, or `$i, $v :=`
            j = self.i
            while self.toks[j].kind == "space":
                j += 1
            k = j + 1
            while self.toks[k].kind == "space":
                k += 1
            after = self.toks[k]
            if after.kind in ("declare", "assign") or (after.kind == "comma" and is_range):
                self.i = j + 1
                decl.append(start.val)
                if after.kind == "comma":
                    self.i = k + 1
                    second = self.next_non_space()
                    if second.kind != "var":
                        raise self.error("range can only initialize variables", second)
                    decl.append(second.val)
                    after = self.next_non_space()
                    if after.kind != "declare":
                        raise self.error("range can only initialize variables", after)
                else:
                    self.i = k + 1
                is_assign = after.kind == "assign"
                if is_assign:
                    if start.val not in self.vars:
                        raise self.error(f"undefined variable \"{start.val}\"", start)
                else:
                    self.vars.extend(decl)
        cmds: list[Command] = []
        while True:
            tok = self.peek_non_space()
            if tok.kind == "right":
                self.next_non_space()
                if not cmds:
                    raise self.error(f"missing value for {context}", tok)
                return Pipe(start.pos, start.line, decl, is_assign, cmds)
            if tok.kind == "rparen":
                raise self.error(f"unexpected right paren {_go_rune(')')}", tok)
            cmd = self.command()
            cmds.append(cmd)
            tok = self.peek_non_space()
            if tok.kind == "pipe":
                self.next_non_space()
                continue
            if tok.kind != "right":
                raise self.error(f"unexpected {self.describe(tok)} in {context}", tok)

    def paren_pipeline(self, start: Tok) -> Pipe:
        cmds: list[Command] = []
        while True:
            cmds.append(self.command())
            tok = self.next_non_space()
            if tok.kind == "rparen":
                return Pipe(start.pos, start.line, [], False, cmds)
            if tok.kind != "pipe":
                raise self.error(f"unexpected {self.describe(tok)} in parenthesized pipeline",
                                 tok)

    def command(self) -> Command:
        first = self.peek_non_space()
        args: list[Any] = []
        while True:
            tok = self.peek()
            if tok.kind == "space":
                self.next()
                continue
            if tok.kind in ("right", "pipe", "rparen"):
                break
            args.append(self.operand())
            tok = self.peek()
            if tok.kind not in ("space", "right", "pipe", "rparen"):
                raise self.error(f"unexpected {self.describe(tok)} in operand", tok)
        if not args:
            raise self.error("empty command", first)
        return Command(first.pos, first.line, args)

    def operand(self) -> Any:
        node = self.term()
        if self.peek().kind != "field":
            return node
        # Go gives a chained operand the position of its first added field.
        at = self.peek()
        fields: list[str] = []
        while self.peek().kind == "field":
            fields.append(self.next().val[1:])
        if isinstance(node, Field):
            return Field(at.pos, at.line, node.idents + fields)
        if isinstance(node, Variable):
            return Variable(at.pos, at.line, node.idents + fields)
        if isinstance(node, (Const, Nil, Dot)):
            raise self.error(f"unexpected . after term {gofmt.quote(str(node))}")
        return Chain(at.pos, at.line, node, fields)

    def term(self) -> Any:
        tok = self.next_non_space()
        if tok.kind == "ident":
            if tok.val not in FUNCS:
                raise self.error(f'function "{tok.val}" not defined', tok)
            return Ident(tok.pos, tok.line, tok.val)
        if tok.kind == "dot":
            return Dot(tok.pos, tok.line)
        if tok.kind == "nil":
            return Nil(tok.pos, tok.line)
        if tok.kind == "var":
            if tok.val not in self.vars:
                raise self.error(f'undefined variable "{tok.val}"', tok)
            return Variable(tok.pos, tok.line, [tok.val])
        if tok.kind == "field":
            return Field(tok.pos, tok.line, [tok.val[1:]])
        if tok.kind == "bool":
            return Const(tok.pos, tok.line, tok.val == "true", tok.val)
        if tok.kind == "number":
            return Const(tok.pos, tok.line, self.number(tok), tok.val)
        if tok.kind in ("string", "raw"):
            return Const(tok.pos, tok.line, self.string(tok), tok.val)
        if tok.kind == "char":
            return Const(tok.pos, tok.line, GoInt(ord(self.string(tok))), tok.val)
        if tok.kind == "lparen":
            return self.paren_pipeline(tok)
        raise self.error(f"unexpected {self.describe(tok)} in operand", tok)

    def number(self, tok: Tok) -> Any:
        text = tok.val.replace("_", "")
        try:
            if text.lstrip("+-").startswith(("0x", "0X")):
                return GoInt(int(text, 16))
            if any(c in text for c in ".eE"):
                return float(text)
            return GoInt(int(text, 10))
        except ValueError:
            raise self.error(f"illegal number syntax: \"{tok.val}\"", tok) from None

    def string(self, tok: Tok) -> str:
        if tok.kind == "raw":
            return tok.val[1:-1]
        from kubemu.cli.jsonpath import _unquote_extend

        try:
            return _unquote_extend(tok.val)
        except ValueError:
            raise self.error("invalid syntax", tok) from None


def parse(text: str) -> list[Any]:
    if len(text) > TEMPLATE_CHARS_MAX:
        raise TemplateError(f"template: {NAME}: longer than {TEMPLATE_CHARS_MAX} characters")
    return _Parser(text).parse()


# ---------------------------------------------------------------- execution

def _truth(v: Any) -> bool:
    if v is MISSING or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, (str, dict, list)):
        return len(v) > 0
    return True


def _unwrap(v: Any) -> Any:
    """A nil interface{} is no value at all (text/template digs into interfaces)."""
    return MISSING if v is None else v


def _go_type(v: Any, root: Any) -> str:
    return gofmt.GO_TYPE_MAP if v is root else "interface {}"


class Template:
    """A parsed template; `execute(data)` renders it or raises TemplateError."""

    def __init__(self, text: str):
        self.text = text
        self.tree = parse(text)

    def execute(self, data: Any) -> str:
        """The rendered text; on an execution error, TemplateError whose `partial`
        attribute holds what was written before it (kubectl prints that too)."""
        state = _State(self.text, data)
        try:
            state.walk_list(data, self.tree)
        except _ExecError as exc:
            exc.partial = "".join(state.out)  # type: ignore[attr-defined]
            raise
        return "".join(state.out)


class _State:
    def __init__(self, text: str, root: Any):
        self.text = text
        self.root = root
        self.out: list[str] = []
        self.size = 0
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.node: Any = None

    def error(self, message: str) -> _ExecError:
        node = self.node
        if node is None:
            return _ExecError(f"template: {NAME}: {message}")
        col = node.pos - (self.text.rfind("\n", 0, node.pos) + 1)
        return _ExecError(f'template: {NAME}:{node.line}:{col}: executing "{NAME}" at '
                          f"<{node}>: {message}")

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > OUTPUT_CHARS_MAX:
            raise self.error(f"output larger than {OUTPUT_CHARS_MAX} characters")
        self.out.append(text)

    # -------- statements

    def walk_list(self, dot: Any, nodes: list[Any]) -> None:
        for node in nodes:
            self.walk(dot, node)

    def walk(self, dot: Any, node: Any) -> None:
        if isinstance(node, Text):
            self.write(node.text)
        elif isinstance(node, Action):
            # A declared variable lives to the end of the enclosing block.
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.write(self.printable(value))
        elif isinstance(node, Branch):
            mark = len(self.vars)
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                value = self.eval_pipeline(dot, node.pipe)
                if _truth(value):
                    self.walk_list(value if node.kind == "with" else dot, node.body)
                elif node.else_body is not None:
                    self.walk_list(dot, node.else_body)
            del self.vars[mark:]
        elif isinstance(node, Control):
            raise _Break() if node.kind == "break" else _Continue()

    def walk_range(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe, declare=False)
        decl = node.pipe.decl

        def one(key: Any, elem: Any) -> bool:
            del self.vars[mark:]
            if len(decl) == 1:
                self.vars.append((decl[0], elem))
            elif len(decl) == 2:
                self.vars.append((decl[0], key))
                self.vars.append((decl[1], elem))
            try:
                self.walk_list(elem, node.body)
            except _Break:
                return False
            except _Continue:
                pass
            return True

        if isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif value is MISSING or value is None:
            items = []
        else:
            self.node = node.pipe
            raise self.error(f"range can't iterate over {gofmt.sprint(value)}")
        if not items:
            if node.else_body is not None:
                del self.vars[mark:]
                self.walk_list(dot, node.else_body)
            return
        for key, elem in items:
            if not one(key, elem):
                break
        del self.vars[mark:]

    # -------- expressions

    def eval_pipeline(self, dot: Any, pipe: Pipe, declare: bool = True) -> Any:
        value: Any = MISSING
        final: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = _unwrap(self.eval_command(dot, cmd, final))
            final = value
        if pipe.decl and declare:
            if pipe.is_assign:
                self.set_var(pipe.decl[0], value)
            else:
                for name in pipe.decl:
                    self.vars.append((name, value))
        return value

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.error(f"undefined variable: {name}")

    def var(self, name: str) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        raise self.error(f"undefined variable: {name}")

    def eval_command(self, dot: Any, cmd: Command, final: Any) -> Any:
        first = cmd.args[0]
        self.node = cmd
        if isinstance(first, Field):
            return self.eval_fields(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, Chain):
            self.node = first
            base = self.eval_arg(dot, first.node)
            return self.eval_fields(dot, base, first, first.fields, cmd.args, final)
        if isinstance(first, Variable):
            base = self.var(first.idents[0])
            if len(first.idents) == 1:
                self.not_a_function(cmd.args, final)
                return base
            return self.eval_fields(dot, base, first, first.idents[1:], cmd.args, final)
        if isinstance(first, Ident):
            return self.call(dot, first, cmd, final)
        self.node = first
        if isinstance(first, Pipe):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first, declare=False)
        self.not_a_function(cmd.args, final)
        if isinstance(first, Dot):
            return dot
        if isinstance(first, Nil):
            raise self.error("nil is not a command")
        if isinstance(first, Const):
            return first.value
        raise self.error(f"can't evaluate command {first}")

    def not_a_function(self, args: list[Any], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            raise self.error(f"can't give argument to non-function {args[0]}")

    def eval_fields(self, dot: Any, receiver: Any, node: Any, idents: list[str],
                    args: list[Any], final: Any) -> Any:
        self.node = node
        for i, name in enumerate(idents):
            last = i == len(idents) - 1
            if last and (len(args) > 1 or final is not _NO_FINAL):
                if isinstance(receiver, dict):
                    raise self.error(f"{name} is not a method but has arguments")
            receiver = self.field(receiver, name)
        return receiver

    def field(self, receiver: Any, name: str) -> Any:
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            return receiver.get(name, MISSING) if name in receiver else MISSING
        raise self.error(f"can't evaluate field {name} in type {_go_type(receiver, self.root)}")

    def eval_arg(self, dot: Any, node: Any) -> Any:
        self.node = node
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Nil):
            return None
        if isinstance(node, Const):
            return node.value
        if isinstance(node, Field):
            return _unwrap(self.eval_fields(dot, dot, node, node.idents, [node], _NO_FINAL))
        if isinstance(node, Variable):
            base = self.var(node.idents[0])
            return _unwrap(self.eval_fields(dot, base, node, node.idents[1:], [node], _NO_FINAL)
                           if len(node.idents) > 1 else base)
        if isinstance(node, Pipe):
            return self.eval_pipeline(dot, node, declare=False)
        if isinstance(node, Chain):
            base = self.eval_arg(dot, node.node)
            return _unwrap(self.eval_fields(dot, base, node, node.fields, [node], _NO_FINAL))
        if isinstance(node, Ident):
            return self.call(dot, node, Command(node.pos, node.line, [node]), _NO_FINAL)
        raise self.error(f"can't handle {node} for arg")

    # -------- functions

    def call(self, dot: Any, ident: Ident, cmd: Command, final: Any) -> Any:
        name = ident.name
        raw_args = cmd.args[1:]
        if name in ("and", "or"):
            # short-circuit: stop at the first value that decides
            values = [n for n in raw_args]
            if final is not _NO_FINAL:
                values = values + [_FinalArg(final)]
            if not values:
                self.node = cmd
                raise self.error(f"wrong number of args for {name}: want at least 1 got 0")
            result: Any = MISSING
            for n in values:
                result = n.value if isinstance(n, _FinalArg) else self.eval_arg(dot, n)
                if _truth(result) == (name == "or"):
                    return result
            return result
        # A missing value reaches a function as nil, as Go's validateType makes it.
        args = [_arg(self.eval_arg(dot, n)) for n in raw_args]
        if final is not _NO_FINAL:
            args.append(_arg(final))
        self.node = cmd
        func = _BUILTINS[name]
        try:
            return func(args)
        except _FuncError as exc:
            raise self.error(f"error calling {name}: {exc}") from None
        except _ArgCountError as exc:
            raise self.error(f"wrong number of args for {name}: {exc}") from None

    def printable(self, value: Any) -> str:
        if value is MISSING:
            return "<no value>"
        return gofmt.sprint(value)


_NO_FINAL = object()


@dataclasses.dataclass
class _FinalArg:
    value: Any


class _FuncError(Exception):
    pass


class _ArgCountError(Exception):
    pass


def _want(args: list[Any], n: int) -> None:
    if len(args) != n:
        raise _ArgCountError(f"want {n} got {len(args)}")


def _fn_not(args: list[Any]) -> Any:
    _want(args, 1)
    return not _truth(args[0])


def _fn_len(args: list[Any]) -> Any:
    _want(args, 1)
    v = args[0]
    if isinstance(v, (str, dict, list)):
        return GoInt(len(v.encode()) if isinstance(v, str) else len(v))
    if v is MISSING or v is None:
        # Go's len formats the type of a zero Value and panics; kubectl shows the panic.
        raise _FuncError("reflect: call of reflect.Value.Type on zero Value")
    raise _FuncError(f"len of type {gofmt.type_name(v)}")


def _fn_index(args: list[Any]) -> Any:
    if not args:
        raise _ArgCountError("want at least 1 got 0")
    item = args[0]
    if item is MISSING or item is None:
        raise _FuncError("index of untyped nil")
    for index in args[1:]:
        if item is MISSING or item is None:
            raise _FuncError("index of nil pointer")
        if isinstance(item, list) or isinstance(item, str):
            if not isinstance(index, int) or isinstance(index, bool):
                raise _FuncError(f"cannot index slice/array with type {gofmt.type_name(index)}")
            if index < 0 or index >= len(item):
                raise _FuncError(f"index out of range: {index}")
            item = item[index] if isinstance(item, list) else GoInt(item.encode()[index])
        elif isinstance(item, dict):
            if not isinstance(index, str):
                raise _FuncError(f"value has type {gofmt.type_name(index)}; should be string")
            item = item.get(index)  # a missing key gives the zero value: nil
        else:
            raise _FuncError(f"can't index item of type {gofmt.type_name(item)}")
    return item


def _compare_funcs() -> dict[str, Callable[[list[Any]], Any]]:
    from kubemu.cli.jsonpath import JSONPathError, go_equal, go_less

    def wrap(check: Callable[[Any, Any], bool]) -> Callable[[list[Any]], Any]:
        def fn(args: list[Any]) -> Any:
            _want(args, 2)
            try:
                return check(_arg(args[0]), _arg(args[1]))
            except JSONPathError as exc:
                raise _FuncError(str(exc)) from None
        return fn

    def eq(args: list[Any]) -> Any:
        if len(args) < 2:
            raise _FuncError("missing argument for comparison")
        first = args[0]
        for other in args[1:]:
            if first is None or other is None:
                # a nil on either side: unequal, no error (both nil: equal)
                if first is None and other is None:
                    return True
                continue
            if isinstance(first, (dict, list)) or isinstance(other, (dict, list)):
                if type(first) is not type(other):
                    raise _FuncError("incompatible types for comparison")
                raise _FuncError(f"non-comparable type {gofmt.sprint(other)}: "
                                 f"{gofmt.type_name(other)}")
            try:
                if go_equal(first, other):
                    return True
            except JSONPathError as exc:
                raise _FuncError(str(exc)) from None
        return False

    return {
        "eq": eq,
        "ne": lambda args: (_want(args, 2), not eq(args))[1],
        "lt": wrap(go_less),
        "le": wrap(lambda a, b: go_less(a, b) or go_equal(a, b)),
        "gt": wrap(lambda a, b: not (go_less(a, b) or go_equal(a, b))),
        "ge": wrap(lambda a, b: not go_less(a, b)),
    }


def _arg(v: Any) -> Any:
    return None if v is MISSING else v


def _fn_exists(args: list[Any]) -> Any:
    if not args:
        raise _ArgCountError("want at least 1 got 0")
    item = args[0]
    for index in args[1:]:
        if item is MISSING or item is None:
            return False
        if isinstance(item, (list, str)):
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(item):
                return False
            item = item[index]
        elif isinstance(item, dict):
            if not isinstance(index, str):
                return False
            item = item.get(index)
        else:
            return False
    return not (item is MISSING or item is None)


def _fn_base64decode(args: list[Any]) -> Any:
    _want(args, 1)
    if not isinstance(args[0], str):
        raise _FuncError(f"wrong type for value; expected string; got {gofmt.type_name(args[0])}")
    try:
        return base64.b64decode(args[0], validate=True).decode("utf-8", errors="replace")
    except ValueError as exc:
        raise _FuncError(f"base64 decode failed: {exc}") from None


def _fn_printf(args: list[Any]) -> Any:
    if not args:
        raise _ArgCountError("want at least 1 got 0")
    if not isinstance(args[0], str):
        raise _FuncError(f"wrong type for value; expected string; got {gofmt.type_name(args[0])}")
    return gofmt.sprintf(args[0], *args[1:])


def _fn_println(args: list[Any]) -> Any:
    return " ".join("<no value>" if a is MISSING else gofmt.sprint(a) for a in args) + "\n"


_BUILTINS: dict[str, Callable[[list[Any]], Any]] = {
    "not": _fn_not, "len": _fn_len, "index": _fn_index, "exists": _fn_exists,
    "base64decode": _fn_base64decode, "printf": _fn_printf, "println": _fn_println,
    "print": lambda args: gofmt.sprint_args(args),
    **_compare_funcs(),
}


# ---------------------------------------------------------------- kubectl's wording

def parse_error(template: str, exc: TemplateError) -> str:
    return f"error parsing template {template}, {exc}"


def execute_error(template: str, exc: TemplateError) -> str:
    return f"error executing template {gofmt.quote(template)}: {exc}"


def debug_dump(template: str, exc: TemplateError, data: Any) -> str:
    """What kubectl writes to stdout after a failed template (GoTemplatePrinter.PrintObj)."""
    return (f"Error executing template: {exc}. Printing more information for debugging the "
            f"template:\n\ttemplate was:\n\t\t{template}\n\traw data was:\n\t\t"
            f"{gofmt.marshal(data)}\n\tobject given to template engine was:\n\t\t"
            f"{gofmt.sprint(data)}\n\n")
