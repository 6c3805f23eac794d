"""Cron schedules as Kubernetes reads them (robfig/cron v3's ParseStandard and Next).

`parse(spec)` accepts the five standard fields (minute, hour, day of month,
month, day of week) with lists, ranges, steps, `*`/`?`, month and weekday names
(jan..dec, sun..sat), the descriptors `@yearly` `@annually` `@monthly`
`@weekly` `@daily` `@midnight` `@hourly` and `@every <duration>`, and a
leading `TZ=<zone>` / `CRON_TZ=<zone>` (the CronJob controller builds that
from spec.timeZone; a user's schedule may not carry it: validation refuses it).
Bad input raises `CronError` with robfig's message; `error(spec)` returns that
message or "".

`Schedule.next(after_s, zone)` is the first activation strictly after
`after_s` (unix seconds), computed as robfig does in the schedule's location
(an explicit TZ=, else `zone`, else the process's local time): months and days
step by the wall clock, hours and minutes by absolute time, so a time skipped
by a DST jump never runs and one repeated runs twice. Day of month and day of
week combine as cron does: both restricted (neither a bare `*`) means either
may match. Searches at most five years ahead (None after that: "59 23 31 2 *").
Pure; the zone database is Python's zoneinfo.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import zoneinfo
from typing import Mapping

MONTH_NAMES = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
DOW_NAMES = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}

# (min, max, names) of minute, hour, day of month, month, day of week.
FIELDS: tuple[tuple[int, int, Mapping[str, int]], ...] = (
    (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTH_NAMES), (0, 6, DOW_NAMES))

DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")

# robfig gives up after this many years of searching.
SEARCH_YEARS = 5

_DURATION_RE = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class CronError(ValueError):
    """An unparseable schedule; str() is robfig/cron's message."""


@dataclasses.dataclass(frozen=True)
class Field:
    values: frozenset[int]
    # robfig's starBit: the field was `*` or `?` (a step > 1 clears it).
    star: bool = False


@dataclasses.dataclass(frozen=True)
class Schedule:
    minute: Field
    hour: Field
    dom: Field
    month: Field
    dow: Field
    # An explicit TZ=/CRON_TZ= location ("" = the caller's zone).
    location: str = ""
    # @every: a constant delay in whole seconds (0 = a field schedule).
    every_s: int = 0

    def next(self, after_s: float, zone: dt.tzinfo | None = None) -> float | None:
        """The first activation time > after_s (unix seconds), or None within 5 years."""
        if self.location:
            zone = load_zone(self.location)
        if self.every_s:
            # ConstantDelaySchedule: after + delay, rounded down to the second.
            return float(math.floor(after_s) + self.every_s)
        return _next(self, after_s, zone)

    def day_matches(self, day: dt.date) -> bool:
        dom_match = day.day in self.dom.values
        dow_match = (day.weekday() + 1) % 7 in self.dow.values
        if self.dom.star or self.dow.star:
            return dom_match and dow_match
        return dom_match or dow_match


def load_zone(name: str) -> dt.tzinfo:
    """An IANA zone (time.LoadLocation); CronError("unknown time zone X") if unknown."""
    if name == "UTC" or name == "":
        return dt.timezone.utc
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name}") from None


def error(spec: str) -> str:
    """Why `spec` is not a valid schedule, or "" when it is."""
    try:
        parse(spec)
    except CronError as exc:
        return str(exc)
    return ""


def parse(spec: str) -> Schedule:
    text = spec.strip()
    if not text:
        raise CronError("empty spec string")
    location = ""
    if text.startswith("TZ=") or text.startswith("CRON_TZ="):
        head, _, text = text.partition(" ")
        location = head.split("=", 1)[1]
        load_zone(location)
        text = text.strip()
    if text.startswith("@"):
        return _descriptor(text, location)
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: [{' '.join(parts)}]")
    fields = [_field(part, low, high, names) for part, (low, high, names) in zip(parts, FIELDS)]
    return Schedule(*fields, location=location)


def _all(low: int, high: int) -> Field:
    return Field(frozenset(range(low, high + 1)), star=True)


def _one(value: int) -> Field:
    return Field(frozenset({value}))


def _descriptor(text: str, location: str) -> Schedule:
    minutes, hours, doms, months, dows = (_all(lo, hi) for lo, hi, _ in FIELDS)
    if text in ("@yearly", "@annually"):
        return Schedule(_one(0), _one(0), _one(1), _one(1), dows, location)
    if text == "@monthly":
        return Schedule(_one(0), _one(0), _one(1), months, dows, location)
    if text == "@weekly":
        return Schedule(_one(0), _one(0), doms, months, _one(0), location)
    if text in ("@daily", "@midnight"):
        return Schedule(_one(0), _one(0), doms, months, dows, location)
    if text == "@hourly":
        return Schedule(_one(0), hours, doms, months, dows, location)
    if text.startswith("@every "):
        duration = text[len("@every "):].strip()
        if duration and duration != "0" and _DURATION_RE.fullmatch(duration):
            seconds = sum(float(num or 0) * _UNIT_S[unit]
                          for num, unit in _DURATION_PART_RE.findall(duration))
            # robfig: at least a second, whole seconds.
            every_s = max(1, int(seconds))
            return Schedule(minutes, hours, doms, months, dows, location, every_s=every_s)
        raise CronError(f"failed to parse duration {text}: time: invalid duration \"{duration}\"")
    raise CronError(f"unrecognized descriptor: {text}")


def _number(text: str, names: Mapping[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise CronError(f"failed to parse int from {text}: strconv.Atoi: parsing "
                        f"\"{text}\": invalid syntax")
    value = int(text)
    if value < 0:
        raise CronError(f"negative number ({value}) not allowed: {text}")
    return value


def _field(part: str, low: int, high: int, names: Mapping[str, int]) -> Field:
    values: set[int] = set()
    star = False
    for expr in part.split(","):
        got, got_star = _range(expr, low, high, names)
        values |= got
        star = star or got_star
    return Field(frozenset(values), star)


def _range(expr: str, low: int, high: int, names: Mapping[str, int]) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    star = False
    if low_and_high[0] in ("*", "?"):
        start, end, star = low, high, True
    else:
        start = _number(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _number(low_and_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _number(range_and_step[1], {})
        if single:
            end = high  # "N/step" means "N-max/step"
        if step > 1:
            star = False
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < low:
        raise CronError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


# ---------------------------------------------------------------- next activation

def _local(ts: int, zone: dt.tzinfo | None) -> dt.datetime:
    # Naive local time when zone is None (fold set by fromtimestamp).
    return dt.datetime.fromtimestamp(ts, zone)


def _at(day: dt.date, hour: int, zone: dt.tzinfo | None) -> int:
    """time.Date(y, m, d, hour, 0, 0, 0, loc) as unix seconds."""
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=zone).timestamp())


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _next(s: Schedule, after_s: float, zone: dt.tzinfo | None) -> float | None:
    # Round up to the next whole second (robfig: t.Add(1s - nanos)).
    ts = math.floor(after_s) + 1
    added = False
    year_limit = _local(ts, zone).year + SEARCH_YEARS
    # Each pass moves forward at least a unit; five years of minutes is the bound.
    for _ in range(SEARCH_YEARS * 366 * 24 * 60):
        t = _local(ts, zone)
        if t.year > year_limit:
            return None
        if t.month not in s.month.values:
            if not added:
                added = True
            ts = _at(_next_month(t.date().replace(day=1)), 0, zone)
            continue  # robfig wraps back to the month check
        if not s.day_matches(t.date()):
            if not added:
                added = True
            # AddDate(0, 0, 1) from midnight; back to midnight if DST moved the hour.
            ts = _at(t.date() + dt.timedelta(days=1), 0, zone)
            continue
        if t.hour not in s.hour.values:
            if not added:
                added = True
                ts = _at(t.date(), t.hour, zone)
            ts += 3600
            continue
        if t.minute not in s.minute.values:
            if not added:
                added = True
                ts -= t.second
            ts += 60
            continue
        if t.second != 0:
            # The standard schedule runs at second 0 of a matching minute.
            ts += 60 - t.second
            added = True
            continue
        return float(ts)
    return None
