"""Cron schedules (kubemu.api.cron: robfig/cron's parser and Next) and the
CronJob controller's schedule arithmetic (most recent unmet time, missed
starts, requeue, Job names), on fixed instants: no clock is read."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from controller_manager import cronjob
from kubemu.api import cron
from kubemu.api.validation import cron_error

UTC = dt.timezone.utc
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def iso(t: float | None, zone: dt.tzinfo = UTC) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, zone).isoformat()


@pytest.mark.parametrize("schedule, after, want", [
    ("*/15 * * * *", "2026-01-01T00:07:00+00:00", "2026-01-01T00:15:00+00:00"),
    ("*/15 * * * *", "2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00"),
    ("* * * * *", "2026-01-01T00:15:30.5+00:00", "2026-01-01T00:16:00+00:00"),
    ("5-10/2 * * * *", "2026-01-01T00:07:00+00:00", "2026-01-01T00:09:00+00:00"),
    ("7/20 * * * *", "2026-01-01T00:28:00+00:00", "2026-01-01T00:47:00+00:00"),
    ("0 9 * * mon-fri", "2026-01-02T10:00:00+00:00", "2026-01-05T09:00:00+00:00"),
    ("0 9 * * SAT,sun", "2026-01-01T10:00:00+00:00", "2026-01-03T09:00:00+00:00"),
    ("0 12 * jan,JUL *", "2026-02-01T00:00:00+00:00", "2026-07-01T12:00:00+00:00"),
    ("0 0 1,15 * *", "2026-01-02T00:00:00+00:00", "2026-01-15T00:00:00+00:00"),
    # Day of month and day of week both restricted: either matches (Fri Jan 2).
    ("0 0 13 * fri", "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"),
    # A stepped weekday is not a star: day of month "*" makes it AND (Sat Jan 3).
    ("0 0 * * */2", "2026-01-01T00:00:00+00:00", "2026-01-03T00:00:00+00:00"),
    ("0 0 ? * 1", "2026-01-01T00:00:00+00:00", "2026-01-05T00:00:00+00:00"),
    ("@hourly", "2026-01-01T10:30:00+00:00", "2026-01-01T11:00:00+00:00"),
    ("@daily", "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"),
    ("@midnight", "2026-01-01T23:59:59+00:00", "2026-01-02T00:00:00+00:00"),
    ("@weekly", "2026-01-01T00:00:00+00:00", "2026-01-04T00:00:00+00:00"),
    ("@monthly", "2026-01-15T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
    ("@yearly", "2026-01-15T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("@annually", "2026-12-31T23:59:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("@every 90s", "2026-01-01T00:00:00.7+00:00", "2026-01-01T00:01:30+00:00"),
    ("0 0 29 2 *", "2026-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("59 23 31 2 *", "2026-01-01T00:00:00+00:00", None),
], ids=lambda v: str(v))
def test_next_activation_utc(schedule, after, want):
    assert iso(cron.parse(schedule).next(ts(after), UTC)) == want


@pytest.mark.parametrize("schedule, zone, after, want", [
    ("0 9 * * *", "America/New_York", "2026-01-01T00:00:00+00:00", "2026-01-01T14:00:00+00:00"),
    ("0 9 * * *", "America/New_York", "2026-07-01T00:00:00+00:00", "2026-07-01T13:00:00+00:00"),
    ("0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00+00:00", "2026-01-01T03:30:00+00:00"),
    # 02:30 does not exist on 2026-03-08 in New York: robfig skips to the next day.
    ("30 2 * * *", "America/New_York", "2026-03-08T05:00:00+00:00",
     "2026-03-09T06:30:00+00:00"),
    # 01:30 happens twice on 2026-11-01: both run.
    ("30 1 * * *", "America/New_York", "2026-11-01T04:00:00+00:00",
     "2026-11-01T05:30:00+00:00"),
    ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00+00:00",
     "2026-11-01T06:30:00+00:00"),
    ("TZ=Europe/Paris 0 0 * * *", "UTC", "2026-01-01T00:00:00+00:00",
     "2026-01-01T23:00:00+00:00"),
], ids=lambda v: str(v))
def test_next_activation_in_a_time_zone(schedule, zone, after, want):
    assert iso(cron.parse(schedule).next(ts(after), cron.load_zone(zone))) == want


@pytest.mark.parametrize("schedule, error", [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("* * * foo *", 'failed to parse int from foo: strconv.Atoi: parsing "foo": invalid syntax'),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("TZ=Nowhere/Land * * * * *", "unknown time zone Nowhere/Land"),
], ids=lambda v: str(v))
def test_parse_errors_are_robfigs(schedule, error):
    with pytest.raises(cron.CronError) as exc:
        cron.parse(schedule)
    assert str(exc.value) == error
    assert cron.error(schedule) == error == (cron_error(schedule) if "TZ" not in schedule
                                             else error)


EVERY_MINUTE = cron.parse("* * * * *")


@pytest.mark.parametrize("earliest, now, want, missed", [
    ("10:00:30", "10:00:50", None, "none"),
    ("10:00:30", "10:01:20", "10:01:00", "none"),
    ("10:00:30", "10:05:10", "10:05:00", "few"),
    ("10:00:00", "11:40:59", "11:40:00", "few"),  # 100 missed: still "few"
    ("10:00:00", "11:41:00", "11:41:00", "many"),  # 101 missed
], ids=lambda v: str(v))
def test_most_recent_schedule_and_the_missed_starts_rule(earliest, now, want, missed):
    day = "2026-01-01T"
    got, state = cronjob.most_recent_schedule(EVERY_MINUTE, UTC, ts(f"{day}{earliest}+00:00"),
                                              ts(f"{day}{now}+00:00"))
    assert (iso(got), state) == (want and f"{day}{want}+00:00", missed)


def test_most_recent_schedule_of_an_irregular_schedule():
    sched = cron.parse("30 6-16/4 * * 1-5")  # 06:30, 10:30, 14:30 on weekdays
    got, state = cronjob.most_recent_schedule(sched, UTC, ts("2026-01-02T07:00:00+00:00"),
                                              ts("2026-01-06T12:00:00+00:00"))
    assert (iso(got), state) == ("2026-01-06T10:30:00+00:00", "few")


@pytest.mark.parametrize("created, last, deadline, now, want", [
    (100.0, None, None, 1000.0, 100.0),
    (100.0, 500.0, None, 1000.0, 500.0),
    (100.0, 500.0, 200, 1000.0, 800.0),
    (100.0, 900.0, 200, 1000.0, 900.0),
], ids=["creation", "last-schedule", "deadline-later", "last-later"])
def test_earliest_time(created, last, deadline, now, want):
    assert cronjob.earliest_time_s(created, last, deadline, now) == want


def test_requeue_is_just_after_the_next_schedule_time():
    created = ts("2026-01-01T10:00:30+00:00")
    now = ts("2026-01-01T10:03:20+00:00")
    last = ts("2026-01-01T10:03:00+00:00")
    assert cronjob.next_requeue_s(EVERY_MINUTE, UTC, created, last, now) == pytest.approx(40.1)
    # Nothing started since creation: still the next minute from now.
    assert cronjob.next_requeue_s(EVERY_MINUTE, UTC, created, None, now) == pytest.approx(40.1)


def test_job_name_is_the_scheduled_time_in_unix_minutes():
    scheduled = ts("2026-01-01T10:03:00+00:00")
    assert cronjob.job_name("hello", scheduled) == f"hello-{int(scheduled) // 60}"
    assert cronjob.job_name("hello", scheduled) == "hello-29454363"


def test_scheduled_timestamp_annotation_is_rfc3339_in_the_zone():
    scheduled = ts("2026-01-01T10:03:00+00:00")
    assert cronjob.rfc3339_in(scheduled, UTC) == "2026-01-01T10:03:00Z"
    assert cronjob.rfc3339_in(scheduled, NEW_YORK) == "2026-01-01T05:03:00-05:00"
    assert cronjob.rfc1123z_utc(scheduled) == "Thu, 01 Jan 2026 10:03:00 +0000"
