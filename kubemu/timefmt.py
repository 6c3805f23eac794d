"""Kubernetes' time formats, in one place.

- `rfc3339(t)`: metav1.Time, whole seconds in UTC (`2026-11-30T03:49:54Z`);
  creation/deletion timestamps, conditions, event first/lastTimestamp.
- `rfc3339_micro(t)`: metav1.MicroTime (`...54.123456Z`); eventTime, lease
  renewTime.
- `rfc3339_nano(t_ns)`: nanoseconds, as CRI log lines carry them.
- `parse_rfc3339(text)`: any of the above (and offsets) back to unix seconds.
- `go_duration(s)`: Go's time.Duration String() (`250ms`, `1.532s`, `1m20s`,
  `5m0s`), the form Kubernetes messages print durations in.

`t` is unix seconds; None means now.
"""
from __future__ import annotations

import datetime
import time

_UTC = datetime.timezone.utc


def _moment(t: float | None) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, _UTC)


def rfc3339(t: float | None = None) -> str:
    return _moment(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float | None = None) -> str:
    return _moment(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(t_ns: int | None = None) -> str:
    t_ns = time.time_ns() if t_ns is None else t_ns
    seconds, nanos = divmod(t_ns, 1_000_000_000)
    return _moment(seconds).strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Unix seconds of an RFC 3339 time (`Z` or an offset; up to nanoseconds).

    ValueError when `text` is not one.
    """
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    nanos = 0
    if dot:  # fromisoformat takes at most microseconds: read the fraction here
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        if not digits:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        nanos = int((digits + "000000000")[:9])
        text = head + rest
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"not an RFC 3339 time (no zone): {text!r}")
    return moment.timestamp() + nanos / 1e9


def _fraction(value: int, digits: int) -> str:
    """Go's fmtFrac: the fractional digits without trailing zeros, or nothing."""
    return "." + f"{value:0{digits}d}".rstrip("0") if value else ""


def go_duration(seconds: float) -> str:
    """Go's time.Duration String(): 250ms, 1.5ms, 10s, 1.532s, 1m20s, 5m0s, 1h0m0s."""
    ns = round(seconds * 1e9)
    if ns < 0:
        return "-" + go_duration(-seconds)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:  # below a second: the largest unit that is not zero
        if ns < 1_000:
            return f"{ns}ns"
        unit, digits = ("µs", 3) if ns < 1_000_000 else ("ms", 6)
        whole, fraction = divmod(ns, 10 ** digits)
        return f"{whole}{_fraction(fraction, digits)}{unit}"
    whole_s, fraction = divmod(ns, 1_000_000_000)
    text = f"{whole_s % 60}{_fraction(fraction, 9)}s"
    minutes = whole_s // 60
    if minutes:
        hours, minutes = divmod(minutes, 60)
        text = f"{minutes}m{text}"
        if hours:
            text = f"{hours}h{text}"
    return text
