"""batch/v1 validation: jobs and cron jobs, with cron schedule parsing
(Kubernetes' pkg/apis/batch/validation)."""
from __future__ import annotations

import re

from google.protobuf.message import Message

from kubemu.api import cron, errors, labels
from kubemu.api.validation.meta import (
    IMMUTABLE,
    Problems,
    _copy,
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
        problems.extend(_completions_update(spec, old_spec))
        problems.extend(_selector_immutable(spec, old_spec))
        problems.extend(_template_update(spec, old))
        problems.extend(immutable(_str(spec, "completion_mode"), _str(old_spec, "completion_mode"),
                                  "spec.completionMode"))
        policy, old_policy = _sub(spec, "pod_failure_policy"), _sub(old_spec, "pod_failure_policy")
        if policy != old_policy:
            problems.append(errors.invalid("spec.podFailurePolicy", _json_text(policy),
                                           IMMUTABLE))
        per_index = _opt(spec, "backoff_limit_per_index")
        problems.extend(immutable(per_index, _opt(old_spec, "backoff_limit_per_index"),
                                  "spec.backoffLimitPerIndex",
                                  _Shown(str(per_index).replace("None", "nil"))))
    return problems


def _completions_update(spec: Message, old_spec: Message) -> Problems:
    """validateCompletions (ElasticIndexedJob, on by default): immutable, but
    an Indexed Job may change it together with parallelism (kept equal)."""
    new, old = _opt(spec, "completions"), _opt(old_spec, "completions")
    if _str(spec, "completion_mode") != "Indexed":
        return immutable(new, old, "spec.completions", _Shown(str(new).replace("None", "nil")))
    if new == old or new is None:  # a missing count is reported by validate_job_spec
        return []
    if new != _opt(spec, "parallelism"):
        return [errors.invalid("spec.completions", new,
                               "can only be modified in tandem with spec.parallelism")]
    return []


def _template_update(spec: Message, old: Message) -> Problems:
    """validatePodTemplateUpdate: the template is immutable, except that a Job
    suspended before it ever started may change where its pods run (node
    affinity, nodeSelector, tolerations, scheduling gates) and the template's
    labels and annotations."""
    template, old_template = _sub(spec, "template"), _sub(old.spec, "template")
    if template is not None and old_template is not None \
            and _opt(old.spec, "suspend") and not old.status.start_time:
        old_template = _copy(old_template)
        _take_scheduling_directives(old_template, template)
    if template != old_template:
        return [errors.invalid("spec.template", _json_text(template), IMMUTABLE)]
    return []


def _take_scheduling_directives(target: Message, source: Message) -> None:
    """Copy what a suspended, never started Job may change from `source`'s
    template into `target` (in place)."""
    for field in ("labels", "annotations"):
        getattr(target.metadata, field).clear()
        getattr(target.metadata, field).update(getattr(source.metadata, field))
    spec, new_spec = target.spec, source.spec
    spec.node_selector.clear()
    spec.node_selector.update(new_spec.node_selector)
    del spec.tolerations[:]
    spec.tolerations.extend(new_spec.tolerations)
    if "scheduling_gates" in spec.DESCRIPTOR.fields_by_name:
        del spec.scheduling_gates[:]
        spec.scheduling_gates.extend(new_spec.scheduling_gates)
    new_affinity = _sub(new_spec, "affinity")
    if new_affinity is None:
        if spec.HasField("affinity"):
            # Cleared: fine if node affinity was all the old one had.
            spec.affinity.ClearField("node_affinity")
            if spec.affinity.ByteSize() == 0:
                spec.ClearField("affinity")
    elif new_affinity.HasField("node_affinity"):
        spec.affinity.node_affinity.CopyFrom(new_affinity.node_affinity)
    else:
        spec.affinity.SetInParent()
        spec.affinity.ClearField("node_affinity")


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
    time_zone = _opt(spec, "time_zone")
    if old is None or time_zone != _opt(old.spec, "time_zone"):
        problems.extend(_time_zone_problems(time_zone, "spec.timeZone"))
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


def validate_job_status(obj: Message, old: Message | None) -> Problems:
    """ValidateJobStatus's counters (the rules that need the job-status
    options of newer Kubernetes are left to the controller)."""
    status = obj.status
    problems: Problems = []
    for field, json_name in (("active", "active"), ("succeeded", "succeeded"),
                             ("failed", "failed"), ("ready", "ready"),
                             ("terminating", "terminating")):
        problems.extend(nonnegative(_opt(status, field), f"status.{json_name}"))
    return problems
