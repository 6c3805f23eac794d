"""Kubernetes resource quantities ("500m", "1.5", "128Mi", "1G", "1e3"), exactly.

The model is apimachinery's resource.Quantity: a signed decimal number and a
suffix (binary Ki..Ei, decimal n..E, or an exponent e<N>/E<N>). Values are kept
as Fractions, never floats; like Kubernetes, parsing rounds a non-zero value
up (away from zero) to nano precision. A Quantity remembers its format (from
its suffix) so `str()` gives Kubernetes' canonical form: "1.5" -> "1500m",
"0.5Gi" -> "512Mi", "2000m" -> "2", "1536" stays "1536". `to_milli` and
`to_int` round up as Kubernetes' MilliValue()/Value() do. Bad input raises
ValueError with the regular expression Kubernetes quotes.
"""
from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

FORMAT_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_ERROR = f"quantities must match the regular expression '{FORMAT_PATTERN}'"
SUFFIX_ERROR = "unable to parse quantity's suffix"
MAX_TEXT_LENGTH = 128  # far beyond any real quantity; bounds the arithmetic
MAX_EXPONENT = 64  # |exponent| beyond this is no resource amount

_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL.items()}
_BINARY_BY_POWER = {v // 10: k for k, v in _BINARY.items()}
_NANO = Fraction(1, 10**9)


@dataclasses.dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str = DECIMAL_SI

    def __str__(self) -> str:
        return canonical(self.value, self.format)

    def milli(self) -> int:
        return _ceil_away(self.value * 1000)

    def int_value(self) -> int:
        return _ceil_away(self.value)

    # Comparisons are by value only ("1Gi" == "1073741824").
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self.value == other.value
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _ceil_away(x: Fraction) -> int:
    """Round away from zero, as Kubernetes' RoundUp does."""
    return math.ceil(x) if x >= 0 else -math.ceil(-x)


def parse(text: str) -> Quantity:
    """ParseQuantity. Raises ValueError naming the text and what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"quantity must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError("quantity is empty: " + FORMAT_ERROR)
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"quantity {text[:20]!r}... is too long "
                         f"(at most {MAX_TEXT_LENGTH} characters)")
    if not re.fullmatch(FORMAT_PATTERN, text):
        raise ValueError(f'invalid quantity "{text}": {FORMAT_ERROR}')
    number = _NUMBER_RE.match(text)
    if number is None:
        raise ValueError(f'invalid quantity "{text}": {FORMAT_ERROR}')
    num_text, suffix = number.group(0), text[number.end():]
    if suffix[:1] in (".", *"0123456789"):
        raise ValueError(f'invalid quantity "{text}": unable to parse numeric part of quantity')
    if suffix in _BINARY:
        fmt, value = BINARY_SI, Fraction(2) ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        fmt, value = DECIMAL_SI, Fraction(10) ** _DECIMAL[suffix]
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?[0-9]+", suffix[1:]):
        exponent = int(suffix[1:])
        if abs(exponent) > MAX_EXPONENT:
            raise ValueError(f'invalid quantity "{text}": exponent {exponent} is out of range')
        fmt, value = DECIMAL_EXPONENT, Fraction(10) ** exponent
    else:
        raise ValueError(f'invalid quantity "{text}": {SUFFIX_ERROR}')
    amount = Fraction(num_text.lstrip("+") or "0") * value
    if amount and amount.denominator != 1 and (amount / _NANO).denominator != 1:
        # Kubernetes rounds up to the smallest representable amount: a request
        # for a tiny amount still gets something.
        amount = _ceil_away(amount / _NANO) * _NANO
    return Quantity(amount, fmt)


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _as(value: str | Quantity | Fraction | int) -> Fraction:
    if isinstance(value, Quantity):
        return value.value
    if isinstance(value, str):
        return parse(value).value
    return Fraction(value)


def to_milli(value: str | Quantity | Fraction | int) -> int:
    """Millis (cpu millicores), rounded up: "500m" -> 500, "0.1m" -> 1, "2" -> 2000."""
    return _ceil_away(_as(value) * 1000)


def to_int(value: str | Quantity | Fraction | int) -> int:
    """The integer value (bytes for memory), rounded up: "128Mi" -> 134217728."""
    return _ceil_away(_as(value))


def compare(a: str | Quantity, b: str | Quantity) -> int:
    """-1, 0 or 1, as Quantity.Cmp."""
    x, y = _as(a), _as(b)
    return (x > y) - (x < y)


def less_or_equal(a: str | Quantity, b: str | Quantity) -> bool:
    """Whether a <= b (a request within its limit)."""
    return compare(a, b) <= 0


# ---------------------------------------------------------------- formatting

def canonical(value: Fraction, fmt: str = DECIMAL_SI) -> str:
    """Kubernetes' canonical string of a value in a format (CanonicalizeBytes)."""
    if value == 0:
        return "0"
    if fmt == BINARY_SI and (-1024 < value < 1024 or value.denominator != 1):
        fmt = DECIMAL_SI  # binary suffixes only for whole amounts of at least 1Ki
    if fmt == BINARY_SI:
        mantissa, power = int(value), 0
        while mantissa % 1024 == 0 and power < max(_BINARY_BY_POWER):
            mantissa //= 1024
            power += 1
        return f"{mantissa}{_BINARY_BY_POWER.get(power, '')}"
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    if exponent > 18:  # beyond "E": print the whole number with no suffix
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{mantissa}{_DECIMAL_BY_EXP[exponent]}"


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent): value = mantissa * 10**exponent, exponent a multiple of 3,
    as large as possible (AsCanonicalBytes). Values are at most nano-precise."""
    exponent = 0
    scaled = value
    while scaled.denominator != 1:
        scaled *= 10
        exponent -= 1
        if exponent < -9:  # parse() guarantees nano precision; stay bounded anyway
            scaled = Fraction(_ceil_away(scaled))
            break
    mantissa = int(scaled)
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    return mantissa, exponent


def format_cpu(millis: int) -> str:
    """Millicores as Kubernetes prints cpu: 500 -> "500m", 2000 -> "2"."""
    return canonical(Fraction(millis, 1000), DECIMAL_SI)


def format_bytes(count: int) -> str:
    """Bytes as Kubernetes prints memory: 134217728 -> "128Mi", 1536 -> "1536", 1000 -> "1k"."""
    return canonical(Fraction(count), BINARY_SI)
