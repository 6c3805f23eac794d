"""The fault timeline of a scenario, computed up front (pure).

Contract: `timeline(scenario, seed, processes)` depends on nothing else, so
the same scenario, seed and process names give the same timeline, and the
report can show the plan before the first fault. Every random choice (jitter,
the pick among a class) comes from a random.Random seeded with the seed and
the fault's index, so one fault's picks do not shift when another is added.

A class target (`any`, `control-plane`, `node`) is resolved here to a
process name; `etcd-leader` cannot be known in advance and stays a class, to
be resolved by the runner through SupervisorClient.etcd_leader() when it
fires. A timed fault (pause, stop, partition) holds its target until
`at_s + for_s`; a class pick avoids held processes (it would strike nothing
new), and a fault with nothing left to pick is planned as skipped.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Iterable

from deploy.chaos.scenario import Scenario

ETCD_LEADER = "etcd-leader"
PICK_CLASSES = ("any", "control-plane", "node")
# Bound on the events of one run (a 1 h run at every 100 ms, and then some).
EVENTS_MAX = 100_000


@dataclasses.dataclass(frozen=True)
class Process:
    """What the planner knows of a process: its stable name and its node ("": control plane)."""

    name: str
    node: str = ""
    component: str = ""

    @property
    def is_etcd(self) -> bool:
        return self.component == "etcd"


@dataclasses.dataclass(frozen=True)
class FaultEvent:
    at_s: float
    action: str
    target: str               # a process name, ETCD_LEADER, or "" when skipped
    for_s: float
    source: str               # faults[i] or timeline[i]
    picked_from: str = ""     # the class the target was picked from ("" if named)
    skipped: str = ""         # why nothing was struck ("" if something was)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def members(target: str, processes: Iterable[Process]) -> list[str]:
    """The process names a class stands for, sorted; a name stands for itself."""
    processes = list(processes)
    if target == "any":
        picked = processes
    elif target == "control-plane":
        picked = [p for p in processes if not p.node]
    elif target == "node":
        picked = [p for p in processes if p.node]
    else:
        picked = [p for p in processes if p.name == target]
    return sorted(p.name for p in picked)


def _rng(seed: int, source: str) -> random.Random:
    return random.Random(f"{seed}/{source}")


def timeline(scenario: Scenario, seed: int, processes: Iterable[Process]) -> list[FaultEvent]:
    processes = sorted(processes, key=lambda p: p.name)
    names = {p.name for p in processes}
    for target in [f.target for f in scenario.faults] + [s.target for s in scenario.timeline]:
        if target not in names and target not in PICK_CLASSES and target != ETCD_LEADER:
            raise ValueError(f"target {target!r}: no such process and not a class "
                             f"(processes: {', '.join(sorted(names))}; classes: "
                             f"{', '.join(PICK_CLASSES + (ETCD_LEADER,))})")
    # (at, order, source, action, target, for) before picking.
    planned: list[tuple[float, int, str, str, str, float, random.Random]] = []
    for i, fault in enumerate(scenario.faults):
        source = f"faults[{i}]"
        rng = _rng(seed, source)
        stop_s = scenario.duration_s if fault.stop_s is None else min(fault.stop_s,
                                                                       scenario.duration_s)
        k = 1
        while True:
            at_s = fault.start_s + k * fault.every_s
            if fault.jitter_s:
                at_s += rng.uniform(0.0, fault.jitter_s)
            if at_s >= stop_s:
                break
            if len(planned) >= EVENTS_MAX:
                raise ValueError(f"{source}: more than {EVENTS_MAX} faults in one run")
            planned.append((round(at_s, 3), i, source, fault.action, fault.target, fault.for_s,
                            rng))
            k += 1
    for i, step in enumerate(scenario.timeline):
        source = f"timeline[{i}]"
        planned.append((step.at_s, len(scenario.faults) + i, source, step.action, step.target,
                        step.for_s, _rng(seed, source)))
    planned.sort(key=lambda p: (p[0], p[1]))
    held_until: dict[str, float] = {}
    events: list[FaultEvent] = []
    for at_s, _order, source, action, target, for_s, rng in planned:
        picked_from = ""
        skipped = ""
        if target in PICK_CLASSES:
            picked_from = target
            free = [n for n in members(target, processes) if held_until.get(n, -1.0) <= at_s]
            if free:
                target = rng.choice(free)
            else:
                target, skipped = "", f"every process of {picked_from!r} is held by a fault"
        elif target != ETCD_LEADER and held_until.get(target, -1.0) > at_s:
            skipped = f"{target} is still held by an earlier fault"
        if target and target != ETCD_LEADER and not skipped and for_s:
            held_until[target] = at_s + for_s
        events.append(FaultEvent(at_s=at_s, action=action, target=target, for_s=for_s,
                                 source=source, picked_from=picked_from, skipped=skipped))
    return events


def may_strike_etcd(events: Iterable[FaultEvent], processes: Iterable[Process]) -> list[FaultEvent]:
    """The events that kill, pause or stop an etcd member (a partition leaves it running)."""
    etcd = {p.name for p in processes if p.is_etcd}
    return [e for e in events if not e.skipped and e.action in ("kill", "pause", "stop")
            and (e.target in etcd or e.target == ETCD_LEADER)]
