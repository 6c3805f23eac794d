"""PodTopologySpread: spread matching pods evenly over topology domains.

For a constraint (topologyKey, maxSkew, labelSelector) the domains are the
values of topologyKey on the eligible nodes: nodes carrying every constraint's
key and, per nodeAffinityPolicy (default Honor) / nodeTaintsPolicy (default
Ignore), passing the pod's node affinity / tolerating the node's taints. A
domain's count is the number of pods in the pod's namespace, not terminating,
that the selector matches (matchLabelKeys add the pod's own values).

- DoNotSchedule (filter): placing the pod on a node must keep
  count(domain of node) + (1 if the pod matches itself) - min(count over domains)
  <= maxSkew; min is 0 while there are fewer domains than minDomains. A node
  without the key is UnschedulableAndUnresolvable ("(missing required label)").
- ScheduleAnyway (score): fewer matching pods in the node's domains is better:
  raw = sum(count * log(#domains + 2) + maxSkew - 1), then reversed and scaled
  to 0..100 (100 * (max + min - raw) / max); nodes lacking a key score 0.
Kubernetes' cluster-level default constraints (derived from Services and
ReplicaSets) are not applied: a pod without constraints is not spread.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping, Sequence

from kubemu.api import errors, labels
from kubemu.api.fields import field_value

from scheduler import podutil
from scheduler.framework import (ASSIGNED_POD_ADD, ASSIGNED_POD_DELETE, ASSIGNED_POD_UPDATE,
                                 MAX_NODE_SCORE, NODE_ADD, NODE_DELETE, NODE_LABEL_CHANGE,
                                 NODE_TAINT_CHANGE, SKIP, SUCCESS, CycleState, NodeInfo,
                                 PodInfo, Snapshot, Status)
from scheduler.plugins import node_affinity, taint_toleration

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = REASON + " (missing required label)"
EVENTS = frozenset({ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE, NODE_ADD,
                    NODE_DELETE, NODE_LABEL_CHANGE, NODE_TAINT_CHANGE})
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HONOR = "Honor"
IGNORE = "Ignore"
HOSTNAME_LABEL = "kubernetes.io/hostname"
_NO_DOMAINS_MIN = 2**31 - 1  # no eligible domain: any placement is within skew
_FILTER_KEY = "PodTopologySpread/filter"
_SCORE_KEY = "PodTopologySpread/score"


@dataclasses.dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: labels.Selector
    min_domains: int = 1
    node_affinity_policy: str = HONOR
    node_taints_policy: str = IGNORE


def constraints(pod: Any, action: str) -> tuple[Constraint, ...]:
    """The pod's constraints with whenUnsatisfiable == action, selectors parsed."""
    out = []
    pod_labels = pod.metadata.labels
    for c in field_value(pod.spec, "topology_spread_constraints", ()) or ():
        if c.when_unsatisfiable != action:
            continue
        try:
            selector = labels.from_label_selector(field_value(c, "label_selector"))
            keys = [k for k in field_value(c, "match_label_keys", ()) or () if k in pod_labels]
            if keys and not selector.nothing:
                extra = [labels.new_requirement(k, labels.IN, [pod_labels[k]]) for k in keys]
                selector = labels.Selector(selector.requirements + tuple(extra))
        except errors.ApiError:
            selector = labels.NOTHING
        out.append(Constraint(
            max_skew=c.max_skew, topology_key=c.topology_key, selector=selector,
            min_domains=field_value(c, "min_domains", 1) or 1,
            node_affinity_policy=field_value(c, "node_affinity_policy", HONOR) or HONOR,
            node_taints_policy=field_value(c, "node_taints_policy", IGNORE) or IGNORE))
    return tuple(out)


def has_all_keys(node_info: NodeInfo, cs: Iterable[Constraint]) -> bool:
    node_labels = node_info.labels
    return all(c.topology_key in node_labels for c in cs)


def eligible(pod: Any, node_info: NodeInfo, c: Constraint,
             affinity: node_affinity.NodeAffinityOf) -> bool:
    """matchNodeInclusionPolicies: does this node's domain count for the pod?"""
    if c.node_affinity_policy == HONOR and not affinity.required_matches(node_info.node):
        return False
    if c.node_taints_policy == HONOR and not taint_toleration.fits(pod, node_info):
        return False
    return True


def count_matching(pods: Iterable[PodInfo], selector: labels.Selector, namespace: str) -> int:
    return sum(1 for p in pods
               if p.pod.metadata.namespace == namespace and not podutil.is_terminating(p.pod)
               and selector.matches(p.pod.metadata.labels))


@dataclasses.dataclass(frozen=True)
class FilterState:
    constraints: tuple[Constraint, ...]
    counts: tuple[Mapping[str, int], ...]  # per constraint: domain value -> matching pods

    def min_match(self, i: int) -> int:
        counts = self.counts[i]
        if not counts:
            return _NO_DOMAINS_MIN
        if len(counts) < self.constraints[i].min_domains:
            return 0
        return min(counts.values())


def filter_state(pod: Any, snapshot: Snapshot) -> FilterState:
    cs = constraints(pod, DO_NOT_SCHEDULE)
    counts: list[dict[str, int]] = [{} for _ in cs]
    if cs:
        affinity = node_affinity.parse(pod)
        namespace = pod.metadata.namespace
        for ni in snapshot:
            if not has_all_keys(ni, cs):
                continue
            for i, c in enumerate(cs):
                if not eligible(pod, ni, c, affinity):
                    continue
                value = ni.labels[c.topology_key]
                counts[i][value] = counts[i].get(value, 0) + count_matching(
                    ni.pods, c.selector, namespace)
    return FilterState(cs, tuple(counts))


def check(pod: Any, node_info: NodeInfo, fs: FilterState) -> Status:
    node_labels = node_info.labels
    pod_labels = pod.metadata.labels
    for i, c in enumerate(fs.constraints):
        value = node_labels.get(c.topology_key)
        if value is None:
            return Status.unresolvable(REASON_MISSING_LABEL)
        self_match = 1 if c.selector.matches(pod_labels) else 0
        skew = fs.counts[i].get(value, 0) + self_match - fs.min_match(i)
        if skew > c.max_skew:
            return Status.unschedulable(REASON)
    return SUCCESS


def fits(pod: Any, node_info: NodeInfo, snapshot: Snapshot) -> bool:
    return check(pod, node_info, filter_state(pod, snapshot)).is_success()


# ---------------------------------------------------------------- scoring

@dataclasses.dataclass(frozen=True)
class ScoreState:
    constraints: tuple[Constraint, ...]
    counts: tuple[Mapping[str, int], ...]  # per constraint (hostname ones counted per node)
    weights: tuple[float, ...]  # log(#domains + 2) per constraint
    ignored: frozenset[str]  # feasible nodes lacking a key: score 0


def score_state(pod: Any, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> ScoreState:
    cs = constraints(pod, SCHEDULE_ANYWAY)
    if not cs:
        return ScoreState((), (), (), frozenset())
    ignored = set()
    counts: list[dict[str, int]] = [{} for _ in cs]
    for ni in nodes:
        if not has_all_keys(ni, cs):
            ignored.add(ni.name)
            continue
        for i, c in enumerate(cs):
            if c.topology_key != HOSTNAME_LABEL:
                counts[i].setdefault(ni.labels[c.topology_key], 0)
    weights = []
    for i, c in enumerate(cs):
        size = len(nodes) - len(ignored) if c.topology_key == HOSTNAME_LABEL else len(counts[i])
        weights.append(math.log(size + 2))
    affinity = node_affinity.parse(pod)
    namespace = pod.metadata.namespace
    for ni in snapshot:  # all nodes count towards a domain, not only feasible ones
        if not has_all_keys(ni, cs):
            continue
        for i, c in enumerate(cs):
            value = ni.labels[c.topology_key]
            if value not in counts[i] or not eligible(pod, ni, c, affinity):
                continue
            counts[i][value] += count_matching(ni.pods, c.selector, namespace)
    return ScoreState(cs, tuple(counts), tuple(weights), frozenset(ignored))


def raw_score(pod: Any, node_info: NodeInfo, ss: ScoreState) -> int:
    if node_info.name in ss.ignored:
        return 0
    total = 0.0
    for i, c in enumerate(ss.constraints):
        value = node_info.labels.get(c.topology_key)
        if value is None:
            continue
        if c.topology_key == HOSTNAME_LABEL:
            count = count_matching(node_info.pods, c.selector, pod.metadata.namespace)
        else:
            count = ss.counts[i].get(value, 0)
        total += count * ss.weights[i] + (c.max_skew - 1)
    return math.floor(total + 0.5)  # Go's math.Round for non-negative values


def normalize_scores(scores: Mapping[str, int], ss: ScoreState) -> dict[str, int]:
    if not ss.constraints:
        return dict(scores)
    counted = [s for name, s in scores.items() if name not in ss.ignored]
    min_score = min(counted, default=0)
    max_score = max(counted, default=0)
    out = {}
    for name, s in scores.items():
        if name in ss.ignored:
            out[name] = 0
        elif max_score == 0:
            out[name] = MAX_NODE_SCORE
        else:
            out[name] = MAX_NODE_SCORE * (max_score + min_score - s) // max_score
    return out


class PodTopologySpread:
    NAME = NAME
    EVENTS = EVENTS

    def pre_filter(self, pod: Any, snapshot: Snapshot, state: CycleState) -> Status | None:
        fs = filter_state(pod, snapshot)
        state.write(_FILTER_KEY, fs)
        return None if fs.constraints else SKIP  # no DoNotSchedule constraint

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot,
               state: CycleState | None = None) -> Status:
        fs = state.read(_FILTER_KEY) if state is not None else None
        if fs is None:
            fs = filter_state(pod, snapshot)
        return check(pod, node_info, fs)

    def pre_score(self, pod: Any, snapshot: Snapshot, nodes: Sequence[NodeInfo],
                  state: CycleState) -> Status | None:
        ss = score_state(pod, snapshot, nodes)
        state.write(_SCORE_KEY, ss)
        return None if ss.constraints else SKIP  # no ScheduleAnyway constraint

    def _score_state(self, pod, snapshot, state) -> ScoreState:
        ss = state.read(_SCORE_KEY) if state is not None else None
        return ss if ss is not None else score_state(pod, snapshot, snapshot.node_infos)

    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot,
              state: CycleState | None = None) -> int:
        return raw_score(pod, node_info, self._score_state(pod, snapshot, state))

    def normalize(self, pod: Any, scores: Mapping[str, int], snapshot: Snapshot,
                  state: CycleState | None = None) -> dict[str, int]:
        return normalize_scores(scores, self._score_state(pod, snapshot, state))


def new(args: Mapping[str, Any]) -> PodTopologySpread:
    if args.get("defaultConstraints") or args.get("defaultingType") == "System":
        raise ValueError("PodTopologySpread: defaultConstraints are not supported by kubemu")
    return PodTopologySpread()
