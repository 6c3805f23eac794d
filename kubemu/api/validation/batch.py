"""batch/v1 validation: jobs and cron jobs, with cron schedule parsing
(Kubernetes' pkg/apis/batch/validation)."""
from __future__ import annotations

import re

from google.protobuf.message import Message

from kubemu.api import cron, errors, labels
from kubemu.api.validation.meta import (
    IMMUTABLE,
    Problems,
    _Shown,
    _json_text,
    _opt,
    _selector_immutable,
    _str,
    _sub,
    immutable,
    label_selector_text,
    nonnegative,
)
from kubemu.api.validation.core import _selector_matches_template, validate_pod_template


CRONJOB_NAME_MAX_LENGTH = 52


CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")


COMPLETION_MODES = ("NonIndexed", "Indexed")


def validate_job_spec(spec: Message | None, path: str) -> Problems:
    """validateJobSpec (no selector rules): counts, completion mode, template."""
    problems: Problems = []
    for field, json_name in (("parallelism", "parallelism"), ("completions", "completions"),
                             ("active_deadline_seconds", "activeDeadlineSeconds"),
                             ("backoff_limit", "backoffLimit"),
                             ("ttl_seconds_after_finished", "ttlSecondsAfterFinished")):
        problems.extend(nonnegative(_opt(spec, field), f"{path}.{json_name}"))
    mode = _str(spec, "completion_mode")
    if mode and mode not in COMPLETION_MODES:
        problems.append(errors.unsupported(f"{path}.completionMode", mode, COMPLETION_MODES))
    if mode == "Indexed" and _opt(spec, "completions") is None:
        problems.append(errors.required(f"{path}.completions",
                                        "when completion mode is Indexed"))
    template = _sub(spec, "template")
    problems.extend(validate_pod_template(template, f"{path}.template"))
    policy = _str(_sub(template, "spec"), "restart_policy") or "Always"
    if policy not in ("OnFailure", "Never"):
        problems.append(errors.unsupported(f"{path}.template.spec.restartPolicy", policy,
                                           ("OnFailure", "Never")))
    return problems


def validate_job(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems = validate_job_spec(spec, "spec")
    selector = _sub(spec, "selector")
    if selector is None:
        problems.append(errors.required("spec.selector"))
    else:
        problems.extend(labels.validate_label_selector(selector, "spec.selector"))
        problems.extend(_selector_matches_template(selector, _sub(spec, "template"),
                                                   "spec.template"))
    if old is not None:
        old_spec = old.spec
        problems.extend(immutable(_opt(spec, "completions"), _opt(old_spec, "completions"),
                                  "spec.completions",
                                  _Shown(str(_opt(spec, "completions")).replace("None", "nil"))))
        problems.extend(_selector_immutable(spec, old_spec))
        if _sub(spec, "template") != _sub(old_spec, "template"):
            problems.append(errors.invalid("spec.template", _json_text(_sub(spec, "template")),
                                           IMMUTABLE))
        problems.extend(immutable(_str(spec, "completion_mode"), _str(old_spec, "completion_mode"),
                                  "spec.completionMode"))
    return problems


def validate_cron_job(obj: Message, old: Message | None) -> Problems:
    spec = obj.spec
    problems: Problems = []
    if len(obj.metadata.name) > CRONJOB_NAME_MAX_LENGTH:
        problems.append(errors.invalid("metadata.name", obj.metadata.name,
                                       f"must be no more than {CRONJOB_NAME_MAX_LENGTH} "
                                       "characters"))
    schedule = _str(spec, "schedule")
    if not schedule:
        problems.append(errors.required("spec.schedule"))
    else:
        if "TZ" in schedule:
            problems.append(errors.invalid("spec.schedule", schedule,
                                           "cannot use TZ or CRON_TZ in schedule, use timeZone "
                                           "field instead"))
        else:
            error = cron_error(schedule)
            if error:
                problems.append(errors.invalid("spec.schedule", schedule, error))
    problems.extend(_time_zone_problems(_opt(spec, "time_zone"), "spec.timeZone"))
    problems.extend(nonnegative(_opt(spec, "starting_deadline_seconds"),
                                "spec.startingDeadlineSeconds"))
    policy = _str(spec, "concurrency_policy") or "Allow"
    if policy not in CONCURRENCY_POLICIES:
        problems.append(errors.unsupported("spec.concurrencyPolicy", policy,
                                           CONCURRENCY_POLICIES))
    job_template = _sub(spec, "job_template")
    job_spec = job_template.spec if job_template is not None else None
    problems.extend(validate_job_spec(job_spec, "spec.jobTemplate.spec"))
    selector = _sub(job_spec, "selector")
    if selector is not None:
        problems.append(errors.invalid("spec.jobTemplate.spec.selector",
                                       label_selector_text(selector),
                                       "`selector` will be auto-generated"))
    if _opt(job_spec, "manual_selector"):
        problems.append(errors.unsupported("spec.jobTemplate.spec.manualSelector", True,
                                           ("nil", "false")))
    problems.extend(nonnegative(_opt(spec, "successful_jobs_history_limit"),
                                "spec.successfulJobsHistoryLimit"))
    problems.extend(nonnegative(_opt(spec, "failed_jobs_history_limit"),
                                "spec.failedJobsHistoryLimit"))
    return problems


_TIME_ZONE_PART_RE = re.compile(r"^[A-Za-z\.\-_0-9+]{1,14}$")


def _time_zone_problems(time_zone: str | None, path: str) -> Problems:
    """validateTimeZone: nil or an explicit IANA zone name."""
    if time_zone is None:
        return []
    if not time_zone:
        return [errors.invalid(path, time_zone, "timeZone must be nil or non-empty string")]
    for part in time_zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART_RE.match(part):
            return [errors.invalid(path, time_zone, f"unknown time zone {time_zone}")]
    if time_zone.lower() == "local":
        return [errors.invalid(path, time_zone, "timeZone must be an explicit time zone as "
                               "defined in https://www.iana.org/time-zones")]
    try:
        cron.load_zone(time_zone)
    except cron.CronError as exc:
        return [errors.invalid(path, time_zone, str(exc))]
    return []


def cron_error(schedule: str) -> str:
    """Why a schedule is not a valid cron expression, or "" when it is (robfig/cron's
    ParseStandard, whose parser kubemu.api.cron is)."""
    return cron.error(schedule)
