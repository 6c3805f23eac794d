"""Kubernetes label selectors, and the string rules for names, keys and values.

The model is apimachinery's `labels` package: a Selector is an AND of
Requirements (key, operator, values). It comes from the string form
(`app=web,tier!=db,env in (a,b),!canary`), from a LabelSelector message
(matchLabels + matchExpressions) or from a plain dict. `str(selector)` is the
canonical form Kubernetes prints (requirements sorted by key, values sorted).
An empty selector matches everything; `NOTHING` (a nil LabelSelector) matches
nothing. Bad syntax raises errors.BadRequest worded as Kubernetes words it.

The second half holds the string validators that labels, names and selectors
share (IsQualifiedName, IsValidLabelValue, IsDNS1123Subdomain, ...), returning
Kubernetes' messages. Pure functions; no I/O.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Mapping

from kubemu.api import errors

# ---------------------------------------------------------------- string rules

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MAX_LENGTH = 63

_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(DNS1035_LABEL_FMT)
_QUALIFIED_NAME_RE = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_FMT)

_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must "
                       "start and end with an alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character")
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric "
                      "character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case "
                          "alphanumeric characters, '-' or '.', and must start and end with "
                          "an alphanumeric character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters "
                      "or '-', start with an alphabetic character, and end with an "
                      "alphanumeric character")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Kubernetes' RegexError wording (double spaces before 'or' included)."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


EMPTY_ERROR = "must be non-empty"


def _full(regex: re.Pattern[str], value: str) -> bool:
    return regex.fullmatch(value) is not None


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: `[prefix/]name` (IsQualifiedName)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [("a qualified name " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                                   "MyName", "my.name", "123-abc")
                 + " with an optional DNS subdomain prefix and '/' (e.g. "
                 "'example.com/MyName')")]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _full(_QUALIFIED_NAME_RE, name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value",
                                "12345"))
    return errs


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _full(_DNS1123_LABEL_RE, value):
        errs.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _full(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _full(_DNS1035_LABEL_RE, value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def validate_labels(labels: Mapping[str, str], path: str) -> list[errors.FieldError]:
    """ValidateLabels: every key a qualified name, every value a label value.

    Kubernetes reports both at the map's path (`metadata.labels`), not per key.
    """
    problems: list[errors.FieldError] = []
    for key in sorted(labels):
        problems.extend(errors.invalid(path, key, m) for m in is_qualified_name(key))
        value = labels[key]
        problems.extend(errors.invalid(path, value, m) for m in is_valid_label_value(value))
    return problems


# ---------------------------------------------------------------- requirements

EXISTS = "exists"
DOES_NOT_EXIST = "!"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
# LabelSelector (API object) operators -> string-form operators.
_API_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()  # sorted, deduplicated

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels:
                return False
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > want if op == GREATER_THAN else have < want
        raise AssertionError(f"unknown operator {op!r}")  # construction checks operators

    def __str__(self) -> str:
        op, key = self.operator, self.key
        if op == EXISTS:
            return key
        if op == DOES_NOT_EXIST:
            return "!" + key
        if op in (IN, NOT_IN):
            return f"{key} {op} ({','.join(self.values)})"
        if op == GREATER_THAN:
            return f"{key}>{self.values[0]}"
        if op == LESS_THAN:
            return f"{key}<{self.values[0]}"
        return f"{key}{op}{self.values[0]}"


def new_requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    """A checked Requirement (NewRequirement); raises BadRequest when it is not valid."""
    vals = tuple(sorted(set(values)))
    key_errs = is_qualified_name(key)
    if key_errs:
        raise errors.BadRequest(f'invalid label key "{key}": {"; ".join(key_errs)}')
    if operator in (IN, NOT_IN):
        if not vals:
            raise errors.BadRequest("for 'in', 'notin' operators, values set can't be empty")
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            raise errors.BadRequest("exact-match compatibility requires one single value")
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            raise errors.BadRequest(
                "values set must be empty for exists and does not exist")
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            raise errors.BadRequest(
                "for 'Gt', 'Lt' operators, exactly one value is required")
        try:
            int(vals[0])
        except ValueError:
            raise errors.BadRequest(
                "for 'Gt', 'Lt' operators, the value must be an integer") from None
    else:
        raise errors.BadRequest(f'operator "{operator}" is not recognized')
    for value in vals:
        value_errs = is_valid_label_value(value)
        if value_errs:
            raise errors.BadRequest(
                f'invalid label value: "{value}": at key: "{key}": {"; ".join(value_errs)}')
    return Requirement(key, operator, vals)


@dataclasses.dataclass(frozen=True)
class Selector:
    """An AND of requirements; empty = everything, `nothing=True` = matches nothing."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """Whether it selects everything."""
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def _selector(requirements: Iterable[Requirement]) -> Selector:
    # Stable sort by key: Kubernetes sorts so that the string form is deterministic.
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


# ---------------------------------------------------------------- parsing

_SPECIAL = set("=!(),><")
_TOKENS = {")": "CLOSE", ",": "COMMA", "!": "NOT", "!=": "NOT_EQUALS", "==": "DOUBLE_EQUALS",
           "=": "EQUALS", ">": "GT", "<": "LT", "(": "OPEN", "in": "IN", "notin": "NOTIN"}
MAX_SELECTOR_LENGTH = 64 * 1024


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (type, literal), ending with ("EOS", "")."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            out.append(("EOS", ""))
            return out
        ch = text[i]
        if ch in _SPECIAL:
            # The longest run of special symbols that is a known token.
            j, best = i, None
            while j < n and text[j] in _SPECIAL:
                candidate = text[i:j + 1]
                if candidate in _TOKENS:
                    best = candidate
                elif best is not None:
                    break
                j += 1
            if best is None:
                out.append(("ERROR", f"error expected: keyword found '{text[i:j]}'"))
                return out
            out.append((_TOKENS[best], best))
            i += len(best)
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            word = text[i:j]
            out.append((_TOKENS.get(word, "IDENT") if word in ("in", "notin") else "IDENT",
                        word))
            i = j


class _Parser:
    """A port of apimachinery's label selector parser (same errors, same corners)."""

    def __init__(self, text: str):
        self.tokens = _lex(text)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.tokens[min(self.pos, len(self.tokens) - 1)]
        if values and tok in ("IN", "NOTIN"):
            tok = "IDENT"  # keywords are plain identifiers where a value is expected
        return tok, lit

    def _next(self, values: bool = True) -> tuple[str, str]:
        item = self._peek(values)
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok in ("IDENT", "NOT"):
                try:
                    requirements.append(self._requirement())
                except errors.BadRequest as err:
                    raise errors.BadRequest(f"unable to parse requirement: {err.message}") from None
                tok, lit = self._next()
                if tok == "EOS":
                    return requirements
                if tok == "COMMA":
                    tok2, lit2 = self._peek()
                    if tok2 not in ("IDENT", "NOT"):
                        raise errors.BadRequest(
                            f"found '{lit2}', expected: identifier after ','")
                else:
                    raise errors.BadRequest(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == "EOS":
                return requirements
            else:
                raise errors.BadRequest(
                    f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        tok, lit = self._next()
        negated = tok == "NOT"
        if negated:
            tok, lit = self._next()
        if tok != "IDENT":
            raise errors.BadRequest(f"found '{lit}', expected: identifier")
        key = lit
        key_errs = is_qualified_name(key)
        if key_errs:
            raise errors.BadRequest(f'invalid label key "{key}": {"; ".join(key_errs)}')
        if negated:
            # `!a=b` then fails in parse(), on the `=` where a ',' should be.
            return new_requirement(key, DOES_NOT_EXIST, ())
        if self._peek()[0] in ("EOS", "COMMA"):
            return new_requirement(key, EXISTS, ())
        operator = self._operator()
        if operator in (IN, NOT_IN):
            values = self._values()
        else:
            values = self._exact_value()
        return new_requirement(key, operator, values)

    def _operator(self) -> str:
        tok, lit = self._next(values=False)
        ops = {"IN": IN, "NOTIN": NOT_IN, "EQUALS": EQUALS, "DOUBLE_EQUALS": DOUBLE_EQUALS,
               "NOT_EQUALS": NOT_EQUALS, "GT": GREATER_THAN, "LT": LESS_THAN}
        if tok not in ops:
            raise errors.BadRequest(
                f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def _values(self) -> set[str]:
        tok, lit = self._next()
        if tok != "OPEN":
            raise errors.BadRequest(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok in ("IDENT", "COMMA"):
            values = self._identifiers()
            tok2, lit2 = self._next()
            if tok2 != "CLOSE":
                raise errors.BadRequest(f"found '{lit2}', expected: ')'")
            return values
        if tok == "CLOSE":
            self._next()
            return {""}
        raise errors.BadRequest(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> set[str]:
        values: set[str] = set()
        # Each round consumes at least one token, and the token list ends with EOS,
        # which the default branch rejects: the loop is bounded by the input.
        while True:
            tok, lit = self._next()
            if tok == "IDENT":
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == "COMMA":
                    continue
                if tok2 == "CLOSE":
                    return values
                raise errors.BadRequest(f"found '{lit2}', expected: ',' or ')'")
            if tok == "COMMA":
                if not values:
                    values.add("")  # "(,x)" holds the empty value
                tok2, _ = self._peek()
                if tok2 == "CLOSE":
                    values.add("")
                    return values
                if tok2 == "COMMA":
                    self._next()
                    values.add("")
                continue
            raise errors.BadRequest(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        tok, _ = self._peek()
        if tok in ("EOS", "COMMA"):
            return {""}  # `a=` selects the empty value
        tok, lit = self._next()
        if tok == "IDENT":
            return {lit}
        raise errors.BadRequest(f"found '{lit}', expected: identifier")


def parse(text: str) -> Selector:
    """A Selector from its string form; "" selects everything."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise errors.BadRequest(
            f"label selector is too long: {len(text)} characters, at most "
            f"{MAX_SELECTOR_LENGTH}")
    return _selector(_Parser(text).parse())


# ---------------------------------------------------------------- other sources

def from_label_selector(sel: Any | None) -> Selector:
    """LabelSelectorAsSelector: a LabelSelector message (None = nothing, empty = everything)."""
    if sel is None:
        return NOTHING
    if not sel.match_labels and not sel.match_expressions:
        return EVERYTHING
    requirements = [new_requirement(k, EQUALS, [v]) for k, v in sel.match_labels.items()]
    for expr in sel.match_expressions:
        op = _API_OPERATORS.get(expr.operator)
        if op is None:
            raise errors.BadRequest(f'"{expr.operator}" is not a valid label selector operator')
        requirements.append(new_requirement(expr.key, op, list(expr.values)))
    return _selector(requirements)


def selector_from_dict(data: Mapping[str, Any] | None) -> Selector:
    """A selector from a dict.

    A plain label map ({"app": "web"}, a Service's selector) selects objects with
    all of those labels (SelectorFromSet; empty = everything). A dict in
    LabelSelector JSON form ({"matchLabels": {...}, "matchExpressions": [...]}) is
    read as a LabelSelector. None selects nothing.
    """
    if data is None:
        return NOTHING
    if data and set(data) <= {"matchLabels", "matchExpressions"} and not any(
            isinstance(v, str) for v in data.values()):
        requirements = [new_requirement(k, EQUALS, [v])
                        for k, v in (data.get("matchLabels") or {}).items()]
        for expr in data.get("matchExpressions") or []:
            op = _API_OPERATORS.get(expr.get("operator", ""))
            if op is None:
                raise errors.BadRequest(
                    f'"{expr.get("operator", "")}" is not a valid label selector operator')
            requirements.append(new_requirement(expr.get("key", ""), op,
                                                list(expr.get("values") or [])))
        return _selector(requirements)
    return _selector(new_requirement(str(k), EQUALS, [str(v)]) for k, v in data.items())


def validate_label_selector(sel: Any | None, path: str) -> list[errors.FieldError]:
    """ValidateLabelSelector: field errors for a LabelSelector message at `path`."""
    if sel is None:
        return []
    problems = validate_labels(sel.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(sel.match_expressions):
        expr_path = f"{path}.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                problems.append(errors.required(
                    f"{expr_path}.values",
                    "must be specified when `operator` is 'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                problems.append(errors.forbidden(
                    f"{expr_path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            problems.append(errors.invalid(f"{expr_path}.operator", expr.operator,
                                           "not a valid selector operator"))
        problems.extend(errors.invalid(f"{expr_path}.key", expr.key, m)
                        for m in is_qualified_name(expr.key))
        for j, value in enumerate(expr.values):
            problems.extend(errors.invalid(f"{expr_path}.values[{j}]", value, m)
                            for m in is_valid_label_value(value))
    return problems
