"""InterPodAffinity: podAffinity / podAntiAffinity between pods, per topology domain.

A term selects pods (labelSelector, in `namespaces`, or namespaces matching
`namespaceSelector`; neither given = the term owner's namespace). Its domain
is the value of topologyKey on a node.
Filter, in Kubernetes' order:
1. required affinity: every term needs, in the node's domain, a pod matching
   all the pod's affinity terms, unless no such pod exists anywhere and the pod
   matches its own terms (the first of a group); a node missing a topology key
   fails. UnschedulableAndUnresolvable: "node(s) didn't match pod affinity rules".
2. required anti-affinity: no pod matching a term in the node's domain.
   "node(s) didn't match pod anti-affinity rules".
3. existing pods' required anti-affinity terms that select the incoming pod
   forbid their domains. "node(s) didn't satisfy existing pods anti-affinity rules".
Score: per domain, + weight of the pod's preferred affinity terms matched by
existing pods, - weight for preferred anti-affinity, plus the existing pods'
preferred (anti-)affinity and required affinity (hardPodAffinityWeight, 1)
towards the incoming pod; min-max normalized to 0..100.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Mapping, Sequence

from scheduler.framework import (ASSIGNED_POD_ADD, ASSIGNED_POD_DELETE, ASSIGNED_POD_UPDATE,
                                 MAX_NODE_SCORE, NODE_ADD, NODE_LABEL_CHANGE, SKIP, SUCCESS,
                                 AffinityTerm, CycleState, NodeInfo, PodInfo, Snapshot, Status,
                                 pod_info_of)

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
EVENTS = frozenset({ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE, NODE_ADD,
                    NODE_LABEL_CHANGE})
DEFAULT_HARD_POD_AFFINITY_WEIGHT = 1
_FILTER_KEY = "InterPodAffinity/filter"
_SCORE_KEY = "InterPodAffinity/score"
_NO_NAMESPACE_LABELS: Mapping[str, Mapping[str, str]] = {}

Pair = tuple[str, str]  # (topology key, value)


def matches_all(terms: Sequence[AffinityTerm], pod: Any,
                namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
    return bool(terms) and all(t.matches(pod, namespace_labels) for t in terms)


@dataclasses.dataclass(frozen=True)
class FilterState:
    pod_info: PodInfo
    existing_anti: Mapping[Pair, int]  # domains forbidden by existing pods' anti-affinity
    affinity: Mapping[Pair, int]  # domains with pods matching all affinity terms
    anti: Mapping[Pair, int]  # domains with pods matching an anti-affinity term


def filter_state(pod_info: PodInfo, snapshot: Snapshot) -> FilterState:
    pod = pod_info.pod
    ns_labels = snapshot.namespace_labels
    existing_anti: Counter[Pair] = Counter()
    for ni in snapshot.have_pods_with_required_anti_affinity:
        node_labels = ni.labels
        for existing in ni.pods_with_required_anti_affinity:
            for term in existing.required_anti_affinity_terms:
                value = node_labels.get(term.topology_key)
                if value is not None and term.matches(pod, ns_labels):
                    existing_anti[(term.topology_key, value)] += 1
    affinity: Counter[Pair] = Counter()
    anti: Counter[Pair] = Counter()
    aff_terms = pod_info.required_affinity_terms
    anti_terms = pod_info.required_anti_affinity_terms
    if aff_terms or anti_terms:
        for ni in snapshot:
            node_labels = ni.labels
            for existing in ni.pods:
                if matches_all(aff_terms, existing.pod, ns_labels):
                    for term in aff_terms:
                        value = node_labels.get(term.topology_key)
                        if value is not None:
                            affinity[(term.topology_key, value)] += 1
                for term in anti_terms:
                    value = node_labels.get(term.topology_key)
                    if value is not None and term.matches(existing.pod, ns_labels):
                        anti[(term.topology_key, value)] += 1
    return FilterState(pod_info, existing_anti, affinity, anti)


def satisfies_affinity(fs: FilterState, node_info: NodeInfo) -> bool:
    terms = fs.pod_info.required_affinity_terms
    node_labels = node_info.labels
    pods_exist = True
    for term in terms:
        value = node_labels.get(term.topology_key)
        if value is None:
            return False  # every topology key must be on the node
        if fs.affinity.get((term.topology_key, value), 0) <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # The first pod of a group with affinity to itself: no pod anywhere matches,
    # but the pod matches its own terms -> allowed (else it would pend forever).
    return not fs.affinity and matches_all(terms, fs.pod_info.pod, _NO_NAMESPACE_LABELS)


def satisfies_anti_affinity(fs: FilterState, node_info: NodeInfo) -> bool:
    node_labels = node_info.labels
    for term in fs.pod_info.required_anti_affinity_terms:
        value = node_labels.get(term.topology_key)
        if value is not None and fs.anti.get((term.topology_key, value), 0) > 0:
            return False
    return True


def satisfies_existing_anti_affinity(fs: FilterState, node_info: NodeInfo) -> bool:
    if not fs.existing_anti:
        return True
    return not any(fs.existing_anti.get(pair, 0) > 0 for pair in node_info.labels.items())


def check(fs: FilterState, node_info: NodeInfo) -> Status:
    if not satisfies_affinity(fs, node_info):
        return Status.unresolvable(REASON_AFFINITY)
    if not satisfies_anti_affinity(fs, node_info):
        return Status.unschedulable(REASON_ANTI_AFFINITY)
    if not satisfies_existing_anti_affinity(fs, node_info):
        return Status.unschedulable(REASON_EXISTING_ANTI_AFFINITY)
    return SUCCESS


def reasons(pod: Any, node_info: NodeInfo, snapshot: Snapshot) -> list[str]:
    """Why `pod` may not go to `node_info` (empty when it may)."""
    return list(check(filter_state(pod_info_of(pod, None), snapshot), node_info).reasons)


def fits(pod: Any, node_info: NodeInfo, snapshot: Snapshot) -> bool:
    return not reasons(pod, node_info, snapshot)


# ---------------------------------------------------------------- scoring

def topology_scores(pod_info: PodInfo, snapshot: Snapshot,
                    hard_weight: int = DEFAULT_HARD_POD_AFFINITY_WEIGHT
                    ) -> dict[str, dict[str, int]]:
    """topology key -> value -> summed weight."""
    pod = pod_info.pod
    ns_labels = snapshot.namespace_labels
    scores: dict[str, dict[str, int]] = {}

    def add(term: AffinityTerm, node_labels: Mapping[str, str], weight: int) -> None:
        value = node_labels.get(term.topology_key)
        if value is not None and weight:
            by_value = scores.setdefault(term.topology_key, {})
            by_value[value] = by_value.get(value, 0) + weight

    has_constraints = bool(pod_info.preferred_affinity_terms
                           or pod_info.preferred_anti_affinity_terms)
    node_infos = snapshot.node_infos if has_constraints else snapshot.have_pods_with_affinity
    for ni in node_infos:
        node_labels = ni.labels
        if not node_labels:
            continue
        for existing in (ni.pods if has_constraints else ni.pods_with_affinity):
            for weight, term in pod_info.preferred_affinity_terms:
                if term.matches(existing.pod, ns_labels):
                    add(term, node_labels, weight)
            for weight, term in pod_info.preferred_anti_affinity_terms:
                if term.matches(existing.pod, ns_labels):
                    add(term, node_labels, -weight)
            if hard_weight > 0:
                for term in existing.required_affinity_terms:
                    if term.matches(pod, ns_labels):
                        add(term, node_labels, hard_weight)
            for weight, term in existing.preferred_affinity_terms:
                if term.matches(pod, ns_labels):
                    add(term, node_labels, weight)
            for weight, term in existing.preferred_anti_affinity_terms:
                if term.matches(pod, ns_labels):
                    add(term, node_labels, -weight)
    return scores


def raw_score(node_info: NodeInfo, scores: Mapping[str, Mapping[str, int]]) -> int:
    node_labels = node_info.labels
    return sum(by_value.get(node_labels[key], 0)
               for key, by_value in scores.items() if key in node_labels)


def normalize_scores(scores: Mapping[str, int]) -> dict[str, int]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    spread = high - low
    if spread <= 0:
        return {name: 0 for name in scores}
    return {name: int(MAX_NODE_SCORE * (s - low) / spread) for name, s in scores.items()}


class InterPodAffinity:
    NAME = NAME
    EVENTS = EVENTS

    def __init__(self, hard_pod_affinity_weight: int = DEFAULT_HARD_POD_AFFINITY_WEIGHT):
        self.hard_pod_affinity_weight = hard_pod_affinity_weight

    def pre_filter(self, pod: Any, snapshot: Snapshot, state: CycleState) -> Status | None:
        fs = filter_state(pod_info_of(pod, state), snapshot)
        state.write(_FILTER_KEY, fs)
        if (not fs.pod_info.required_affinity_terms
                and not fs.pod_info.required_anti_affinity_terms and not fs.existing_anti):
            return SKIP  # nothing constrains this pod anywhere
        return None

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot,
               state: CycleState | None = None) -> Status:
        fs = state.read(_FILTER_KEY) if state is not None else None
        if fs is None:
            fs = filter_state(pod_info_of(pod, state), snapshot)
        return check(fs, node_info)

    def pre_score(self, pod: Any, snapshot: Snapshot, nodes: Sequence[NodeInfo],
                  state: CycleState) -> Status | None:
        scores = topology_scores(pod_info_of(pod, state), snapshot,
                                 self.hard_pod_affinity_weight)
        state.write(_SCORE_KEY, scores)
        return None if scores else SKIP  # every node would score 0

    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot,
              state: CycleState | None = None) -> int:
        scores = state.read(_SCORE_KEY) if state is not None else None
        if scores is None:
            scores = topology_scores(pod_info_of(pod, state), snapshot,
                                     self.hard_pod_affinity_weight)
        return raw_score(node_info, scores)

    def normalize(self, pod: Any, scores: Mapping[str, int], snapshot: Snapshot | None = None,
                  state: CycleState | None = None) -> dict[str, int]:
        return normalize_scores(scores)


def new(args: Mapping[str, Any]) -> InterPodAffinity:
    weight = int(args.get("hardPodAffinityWeight", DEFAULT_HARD_POD_AFFINITY_WEIGHT))
    if not 0 <= weight <= 100:
        raise ValueError(f"hardPodAffinityWeight: Invalid value: {weight}: "
                         f"not in valid range [0-100]")
    return InterPodAffinity(weight)
