"""A chaos scenario: the YAML a user writes, parsed and checked (pure).

Contract: `parse(text, source)` returns a frozen Scenario or raises
ScenarioError whose message names the file, the field path
(`faults[1].every`) and the reason; nothing else is raised for bad input.
Durations are Go durations (`2s`, `1m30s`, `500ms`) or plain numbers of
seconds. Unknown keys are errors (a typo must not silently drop a fault).
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import yaml

from kubemu.cli.common import parse_duration_s

ACTIONS = ("kill", "pause", "stop", "partition")
# Actions that take the target down for a while: they need `for`.
TIMED_ACTIONS = ("pause", "stop", "partition")
CLASSES = ("any", "control-plane", "node", "etcd-leader")
WORKLOAD_KINDS = ("configmap-writer", "deployment-churner", "job-churner")
PROFILES = ("default", "fast")

# Bounds (TigerStyle): a scenario is an experiment of minutes, not a soak test.
DURATION_S_MAX = 3600.0
FAULTS_MAX = 64
TIMELINE_MAX = 10_000
NODES_MAX = 16
MEMBERS_MAX = 7


class ScenarioError(ValueError):
    """A scenario that does not parse or validate; the message names the field."""


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    nodes: int = 1
    etcd: int = 1
    apiservers: int = 1
    schedulers: int = 1
    controller_managers: int = 1
    profile: str = "fast"


@dataclasses.dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    rate_per_s: float = 5.0           # configmap-writer: writes per second
    keys: int = 10                    # configmap-writer: ConfigMaps written round-robin
    replicas_min: int = 1             # deployment-churner
    replicas_max: int = 3
    rollouts: int = 2                 # deployment-churner: image/template changes over the run
    every_s: float = 5.0              # churners: one action this often
    parallelism: int = 1              # job-churner
    completions: int = 1


@dataclasses.dataclass(frozen=True)
class Fault:
    """A repeating fault (`every`) between `start` and `stop` (offsets from the start)."""

    action: str
    target: str                       # a process name or a class (CLASSES)
    every_s: float
    for_s: float = 0.0
    start_s: float = 0.0
    stop_s: float | None = None       # None: the end of the fault window
    jitter_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Step:
    """One scripted fault of a timeline."""

    at_s: float
    action: str
    target: str
    for_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    duration_s: float
    settle_s: float
    cluster: ClusterSpec
    workloads: tuple[Workload, ...]
    faults: tuple[Fault, ...]
    timeline: tuple[Step, ...]
    namespace: str = "chaos"


def _duration(value: Any, field: str, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool):
        raise ScenarioError(f"{field}: must be a duration (e.g. 2s), got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration_s(value)
        except argparse.ArgumentTypeError as err:
            raise ScenarioError(f"{field}: {err}") from None
    else:
        raise ScenarioError(f"{field}: must be a duration (e.g. 2s), got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ScenarioError(f"{field}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    if seconds > DURATION_S_MAX:
        raise ScenarioError(f"{field}: at most {DURATION_S_MAX:g}s, got {value!r}")
    return seconds


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{field}: must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ScenarioError(f"{field}: must be in [{low}, {high}], got {value}")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ScenarioError(f"{field}: must be a number > 0, got {value!r}")
    return float(value)


def _mapping(value: Any, field: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{field}: must be a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ScenarioError(f"{field}: unknown field {unknown[0]!r} (known: {', '.join(known)})")
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ScenarioError(f"{field}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def _target(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{field}: must be a process name (etcd-0, node-1/kubelet) or a "
                            f"class ({', '.join(CLASSES)}), got {value!r}")
    return value.strip()


def _cluster(data: Any) -> ClusterSpec:
    if data is None:
        return ClusterSpec()
    known = ("nodes", "etcd", "apiservers", "schedulers", "controllerManagers", "profile")
    data = _mapping(data, "cluster", known)
    return ClusterSpec(
        nodes=_int(data.get("nodes", 1), "cluster.nodes", 0, NODES_MAX),
        etcd=_int(data.get("etcd", 1), "cluster.etcd", 1, MEMBERS_MAX),
        apiservers=_int(data.get("apiservers", 1), "cluster.apiservers", 1, MEMBERS_MAX),
        schedulers=_int(data.get("schedulers", 1), "cluster.schedulers", 0, MEMBERS_MAX),
        controller_managers=_int(data.get("controllerManagers", 1),
                                 "cluster.controllerManagers", 0, MEMBERS_MAX),
        profile=_choice(data.get("profile", "fast"), "cluster.profile", PROFILES))


def _workload(data: Any, i: int) -> Workload:
    field = f"workloads[{i}]"
    known = ("kind", "name", "rate", "keys", "replicas", "rollouts", "every", "parallelism",
             "completions")
    data = _mapping(data, field, known)
    kind = _choice(data.get("kind"), f"{field}.kind", WORKLOAD_KINDS)
    name = data.get("name", f"{kind}-{i}")
    if not isinstance(name, str) or not name or len(name) > 40 or not all(
            c.isalnum() and c.lower() == c or c == "-" for c in name):
        raise ScenarioError(f"{field}.name: must be a lowercase DNS label of at most 40 "
                            f"characters, got {name!r}")
    allowed = {"configmap-writer": ("kind", "name", "rate", "keys"),
               "deployment-churner": ("kind", "name", "replicas", "rollouts", "every"),
               "job-churner": ("kind", "name", "every", "parallelism", "completions")}[kind]
    extra = sorted(k for k in data if k not in allowed)
    if extra:
        raise ScenarioError(f"{field}.{extra[0]}: not a field of a {kind} workload "
                            f"(its fields: {', '.join(allowed)})")
    kwargs: dict[str, Any] = {"kind": kind, "name": name}
    if "rate" in data:
        kwargs["rate_per_s"] = _number(data["rate"], f"{field}.rate")
        if kwargs["rate_per_s"] > 200:
            raise ScenarioError(f"{field}.rate: at most 200 writes per second, got {data['rate']}")
    if "keys" in data:
        kwargs["keys"] = _int(data["keys"], f"{field}.keys", 1, 1000)
    if "replicas" in data:
        replicas = data["replicas"]
        if isinstance(replicas, int) and not isinstance(replicas, bool):
            replicas = [replicas, replicas]
        if not (isinstance(replicas, list) and len(replicas) == 2):
            raise ScenarioError(f"{field}.replicas: must be [min, max] or a number, "
                                f"got {data['replicas']!r}")
        low = _int(replicas[0], f"{field}.replicas[0]", 0, 50)
        high = _int(replicas[1], f"{field}.replicas[1]", 0, 50)
        if low > high:
            raise ScenarioError(f"{field}.replicas: min {low} is more than max {high}")
        kwargs["replicas_min"], kwargs["replicas_max"] = low, high
    if "rollouts" in data:
        kwargs["rollouts"] = _int(data["rollouts"], f"{field}.rollouts", 0, 100)
    if "every" in data:
        kwargs["every_s"] = _duration(data["every"], f"{field}.every", allow_zero=False)
    if "parallelism" in data:
        kwargs["parallelism"] = _int(data["parallelism"], f"{field}.parallelism", 1, 20)
    if "completions" in data:
        kwargs["completions"] = _int(data["completions"], f"{field}.completions", 1, 50)
    return Workload(**kwargs)


def _fault(data: Any, i: int, duration_s: float) -> Fault:
    field = f"faults[{i}]"
    data = _mapping(data, field, ("action", "target", "every", "for", "start", "stop", "jitter"))
    action = _choice(data.get("action"), f"{field}.action", ACTIONS)
    if "every" not in data:
        raise ScenarioError(f"{field}.every: required (how often the fault strikes, e.g. 2s)")
    every_s = _duration(data["every"], f"{field}.every", allow_zero=False)
    for_s = _duration(data.get("for", 0), f"{field}.for")
    if action in TIMED_ACTIONS and for_s == 0:
        raise ScenarioError(f"{field}.for: required for {action} (how long the target stays "
                            f"{action}{'d' if action != 'stop' else 'ped'}, e.g. 5s)")
    if action == "kill" and for_s:
        raise ScenarioError(f"{field}.for: a kill has no duration (the supervisor restarts "
                            f"the process); use stop for a process kept down")
    start_s = _duration(data.get("start", 0), f"{field}.start")
    stop_s = _duration(data["stop"], f"{field}.stop") if "stop" in data else None
    if start_s > duration_s:
        raise ScenarioError(f"{field}.start: {start_s:g}s is after the end of the run "
                            f"(duration {duration_s:g}s)")
    if stop_s is not None and stop_s < start_s:
        raise ScenarioError(f"{field}.stop: {stop_s:g}s is before start {start_s:g}s")
    jitter_s = _duration(data.get("jitter", 0), f"{field}.jitter")
    if jitter_s >= every_s:
        raise ScenarioError(f"{field}.jitter: must be less than every ({every_s:g}s), "
                            f"got {jitter_s:g}s")
    return Fault(action=action, target=_target(data.get("target"), f"{field}.target"),
                 every_s=every_s, for_s=for_s, start_s=start_s, stop_s=stop_s, jitter_s=jitter_s)


def _step(data: Any, i: int, duration_s: float) -> Step:
    field = f"timeline[{i}]"
    data = _mapping(data, field, ("at", "action", "target", "for"))
    if "at" not in data:
        raise ScenarioError(f"{field}.at: required (offset from the start, e.g. 10s)")
    at_s = _duration(data["at"], f"{field}.at")
    if at_s > duration_s:
        raise ScenarioError(f"{field}.at: {at_s:g}s is after the end of the run "
                            f"(duration {duration_s:g}s)")
    action = _choice(data.get("action"), f"{field}.action", ACTIONS)
    for_s = _duration(data.get("for", 0), f"{field}.for")
    if action in TIMED_ACTIONS and for_s == 0:
        raise ScenarioError(f"{field}.for: required for {action}")
    if action == "kill" and for_s:
        raise ScenarioError(f"{field}.for: a kill has no duration; use stop for a process "
                            f"kept down")
    return Step(at_s=at_s, action=action, target=_target(data.get("target"), f"{field}.target"),
                for_s=for_s)


def from_dict(data: Any, source: str = "scenario") -> Scenario:
    try:
        known = ("name", "duration", "settle", "namespace", "cluster", "workloads", "faults",
                 "timeline")
        data = _mapping(data, "(top level)", known)
        if "duration" not in data:
            raise ScenarioError("duration: required (the fault window, e.g. 60s)")
        duration_s = _duration(data["duration"], "duration", allow_zero=False)
        settle_s = _duration(data.get("settle", "120s"), "settle", allow_zero=False)
        workloads_data = data.get("workloads") or []
        if not isinstance(workloads_data, list):
            raise ScenarioError("workloads: must be a list")
        workloads = tuple(_workload(w, i) for i, w in enumerate(workloads_data))
        names = [w.name for w in workloads]
        for name in names:
            if names.count(name) > 1:
                raise ScenarioError(f"workloads: two workloads are named {name!r}")
        faults_data = data.get("faults") or []
        timeline_data = data.get("timeline") or []
        if not isinstance(faults_data, list):
            raise ScenarioError("faults: must be a list")
        if not isinstance(timeline_data, list):
            raise ScenarioError("timeline: must be a list")
        if len(faults_data) > FAULTS_MAX:
            raise ScenarioError(f"faults: at most {FAULTS_MAX}, got {len(faults_data)}")
        if len(timeline_data) > TIMELINE_MAX:
            raise ScenarioError(f"timeline: at most {TIMELINE_MAX} steps, got {len(timeline_data)}")
        faults = tuple(_fault(f, i, duration_s) for i, f in enumerate(faults_data))
        timeline = tuple(_step(s, i, duration_s) for i, s in enumerate(timeline_data))
        namespace = data.get("namespace", "chaos")
        if not isinstance(namespace, str) or not namespace:
            raise ScenarioError(f"namespace: must be a namespace name, got {namespace!r}")
        name = data.get("name", source)
        return Scenario(name=str(name), duration_s=duration_s, settle_s=settle_s,
                        cluster=_cluster(data.get("cluster")), workloads=workloads,
                        faults=faults, timeline=timeline, namespace=namespace)
    except ScenarioError as err:
        raise ScenarioError(f"{source}: {err}") from None


def parse(text: str, source: str = "scenario") -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(f"{source}: not YAML: {err}") from None
    return from_dict(data, source)
