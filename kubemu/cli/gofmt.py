"""Go's formatting of decoded-JSON values, as kubectl's printers produce it.

kubectl prints objects it decoded from JSON into Go's `map[string]interface{}`
with Go's own machinery, and users compare that output byte for byte. The
Python values here are what json.loads gives (dict, list, str, int, float,
bool, None), standing for Go's map[string]interface{}, []interface{}, string,
int64, float64, bool and nil. This module reproduces:
- `sprint(v)`: fmt's %v (`map[a:1 b:[x y]]`, `<nil>`, floats as %g shortest);
- `sharp_v(v)`: fmt's %#v (`map[string]interface {}{"a":1}`);
- `quote(s)`: strconv.Quote;
- `marshal(v, indent)`: encoding/json (sorted keys, `<>&` escaped as \\u003c...,
  floats as Go writes them);
- `sprintf(fmt, *args)`: the fmt verbs templates use (%v %s %d %q %f %g %e %x %t),
  with Go's `%!d(string=x)` / `%!s(MISSING)` / `%!(EXTRA ...)` markers.
Pure functions of the standard library only.
"""
from __future__ import annotations

import decimal
import json
import math
from typing import Any

GO_TYPE_MAP = "map[string]interface {}"
GO_TYPE_SLICE = "[]interface {}"


class GoInt(int):
    """An integer constant written in a template: Go's `int`, where JSON numbers are int64."""


def type_name(v: Any) -> str:
    """The Go type of a decoded-JSON value, as %T prints it."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, GoInt):
        return "int"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return GO_TYPE_MAP
    if isinstance(v, list):
        return GO_TYPE_SLICE
    return "<nil>"


# ---------------------------------------------------------------- floats

def _digits(f: float) -> tuple[str, int]:
    """(shortest round-trip digits, decimal point position) of abs(f) > 0: 0.0125 -> ("125", -1)."""
    d = decimal.Decimal(repr(abs(f)))
    sign, digits, exp = d.normalize().as_tuple()
    text = "".join(str(x) for x in digits)
    return text, len(text) + int(exp)


def _fmt_e(neg: bool, digits: str, dp: int, prec: int, upper: bool = False) -> str:
    mantissa = digits[0] + ("." + digits[1:prec + 1].ljust(prec, "0") if prec > 0 else "")
    exp = dp - 1 if digits != "0" else 0
    sign = "-" if exp < 0 else "+"
    return (("-" if neg else "") + mantissa + ("E" if upper else "e") + sign
            + str(abs(exp)).rjust(2, "0"))


def _fmt_f(neg: bool, digits: str, dp: int, prec: int) -> str:
    if dp > 0:
        whole = digits[:dp].ljust(dp, "0")
        frac = digits[dp:]
    else:
        whole = "0"
        frac = "0" * -dp + digits
    frac = frac[:prec].ljust(prec, "0") if prec >= 0 else frac
    return ("-" if neg else "") + whole + ("." + frac if frac else "")


def format_float_g(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64): what %v prints for a float64."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    digits, dp = _digits(f)
    exp = dp - 1
    neg = f < 0
    # With the shortest precision strconv switches to %e at exponent 6 (so 1e6 is
    # "1e+06"), as fmt's %v shows float64 values.
    eprec = 6
    if exp < -4 or exp >= eprec:
        return _fmt_e(neg, digits, dp, len(digits) - 1)
    return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))


def _json_float(f: float) -> str:
    """encoding/json's float64: %f shortest, %e outside [1e-6, 1e21)."""
    if f == 0:
        return "0"
    digits, dp = _digits(f)
    neg = f < 0
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        text = _fmt_e(neg, digits, dp, len(digits) - 1)
        mant, _, exp = text.partition("e")
        sign, num = exp[0], exp[1:].lstrip("0") or "0"
        return f"{mant}e{sign}{num}"
    return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))


# ---------------------------------------------------------------- %v, %#v, Quote

def sprint(v: Any) -> str:
    """fmt.Sprint of one decoded-JSON value (%v)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float_g(v)
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{sprint(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(sprint(x) for x in v) + "]"
    return str(v)


def sharp_v(v: Any, *, top: bool = True) -> str:
    """fmt's %#v of a decoded-JSON value."""
    if v is None:
        return "interface {}(nil)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float_g(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, dict):
        inner = ", ".join(f"{quote(k)}:{sharp_v(v[k], top=False)}" for k in sorted(v))
        return GO_TYPE_MAP + "{" + inner + "}"
    if isinstance(v, (list, tuple)):
        return GO_TYPE_SLICE + "{" + ", ".join(sharp_v(x, top=False) for x in v) + "}"
    return repr(v)


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def quote(s: str) -> str:
    """strconv.Quote: Go-escaped, printable Unicode kept as it is."""
    out = ['"']
    for ch in s:
        if ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------- encoding/json

_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                       "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).translate(_HTML)


def marshal(v: Any, indent: str | None = None, *, sort_keys: bool = True,
            _level: int = 0) -> str:
    """encoding/json.Marshal (indent None) or MarshalIndent(v, "", indent).

    Go sorts map keys; `sort_keys=False` keeps the dict's order, for objects that
    kubectl prints from Go structs (field order) rather than from maps.
    """
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_string(v)
    if isinstance(v, dict):
        if not v:
            return "{}"
        keys = sorted(v) if sort_keys else list(v)
        if indent is None:
            return "{" + ",".join(
                f"{_json_string(str(k))}:{marshal(v[k], None, sort_keys=sort_keys)}"
                for k in keys) + "}"
        pad = "\n" + indent * (_level + 1)
        items = [f"{pad}{_json_string(str(k))}: "
                 f"{marshal(v[k], indent, sort_keys=sort_keys, _level=_level + 1)}" for k in keys]
        return "{" + ",".join(items) + "\n" + indent * _level + "}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        if indent is None:
            return "[" + ",".join(marshal(x, None, sort_keys=sort_keys) for x in v) + "]"
        pad = "\n" + indent * (_level + 1)
        items = [pad + marshal(x, indent, sort_keys=sort_keys, _level=_level + 1) for x in v]
        return "[" + ",".join(items) + "\n" + indent * _level + "]"
    raise TypeError(f"cannot marshal {type(v).__name__}")


# ---------------------------------------------------------------- fmt.Sprintf

class _Missing:
    """A template value that is not there (Go's invalid reflect.Value)."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def sprint_args(args: list[Any]) -> str:
    """fmt.Sprint(args...): a space between operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_v(a))
    return "".join(out)


def _v(a: Any) -> str:
    return "<no value>" if a is MISSING else sprint(a)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use; bad verbs/arguments marked as Go does."""
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        i += 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width: int | None = None
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and _is_int(args[argi]):
                width = args[argi]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            width = int(fmt[start:i]) if i > start else None
        prec: int | None = None
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and _is_int(args[argi]):
                    prec = args[argi]
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                prec = int(fmt[start:i]) if i > start else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_pad(_format_one(verb, arg, flags, prec), width, flags))
    if argi < len(args):
        extra = ", ".join(f"{type_name(a) if a is not MISSING else '<nil>'}={_v(a)}"
                          for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(text: str, width: int | None, flags: str) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and text[:1] in "+-" and text[1:2].isdigit():
        return text[0] + text[1:].rjust(width - 1, "0")
    if "0" in flags and (text[:1].isdigit()):
        return text.rjust(width, "0")
    return text.rjust(width)


def _bad(verb: str, arg: Any) -> str:
    if arg is MISSING or arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={sprint(arg)})"


def _format_one(verb: str, arg: Any, flags: str, prec: int | None) -> str:
    is_int = isinstance(arg, int) and not isinstance(arg, bool)
    if verb == "v":
        if arg is MISSING:
            return "<no value>"
        if "#" in flags:
            return sharp_v(arg)
        if isinstance(arg, float) and prec is not None:
            return _format_one("g", arg, flags, prec)
        text = sprint(arg)
        return ("+" + text) if "+" in flags and is_int and arg >= 0 else text
    if verb == "T":
        return type_name(arg) if arg is not MISSING else "<nil>"
    if verb == "s":
        if isinstance(arg, str):
            return arg[:prec] if prec is not None else arg
        if isinstance(arg, (dict, list)):
            return _container(verb, arg)
        return _bad(verb, arg)
    if verb == "q":
        if isinstance(arg, str):
            return quote(arg)
        if is_int:
            return "'" + chr(arg) + "'" if 0 <= arg < 0x110000 else _bad(verb, arg)
        if isinstance(arg, (dict, list)):
            return _container(verb, arg)
        return _bad(verb, arg)
    if verb == "t":
        return ("true" if arg else "false") if isinstance(arg, bool) else _bad(verb, arg)
    if verb in "dboxXc":
        if is_int:
            if verb == "d":
                text = str(abs(arg))
            elif verb == "b":
                text = format(abs(arg), "b")
            elif verb == "o":
                text = ("0" if "#" in flags else "") + format(abs(arg), "o")
            elif verb == "c":
                return chr(arg)
            else:
                text = format(abs(arg), "x" if verb == "x" else "X")
                if "#" in flags:
                    text = ("0x" if verb == "x" else "0X") + text
            sign = "-" if arg < 0 else ("+" if "+" in flags else (" " if " " in flags else ""))
            return sign + text
        if isinstance(arg, str) and verb in "xX":
            text = arg.encode().hex()
            return text.upper() if verb == "X" else text
        if isinstance(arg, float) and verb in "xX":
            return _bad(verb, arg)
        if isinstance(arg, (dict, list)):
            return _container(verb, arg)
        return _bad(verb, arg)
    if verb in "eEfFgG":
        if isinstance(arg, float):
            return _float_verb(verb, float(arg), flags, prec)
        if isinstance(arg, (dict, list)):
            return _container(verb, arg)
        return _bad(verb, arg)
    return _bad(verb, arg)


def _container(verb: str, arg: Any) -> str:
    """A verb applied element-wise, as fmt does for maps and slices."""
    if isinstance(arg, dict):
        return "map[" + " ".join(
            f"{_format_one(verb, k, '', None)}:{_format_one(verb, arg[k], '', None)}"
            for k in sorted(arg)) + "]"
    return "[" + " ".join(_format_one(verb, x, "", None) for x in arg) + "]"


def _float_verb(verb: str, f: float, flags: str, prec: int | None) -> str:
    sign = "+" if "+" in flags and f >= 0 else (" " if " " in flags and f >= 0 else "")
    if math.isnan(f) or math.isinf(f):
        return sign + format_float_g(f)
    lower = verb.lower()
    if lower == "g" and prec is None:
        return sign + format_float_g(f)
    if prec is None:
        prec = 6
    if lower == "f":
        text = f"{f:.{prec}f}"
    elif lower == "e":
        text = f"{f:.{prec}e}"
    else:
        text = f"{f:.{prec}g}"
    if verb.isupper():
        text = text.upper()
    return sign + text
