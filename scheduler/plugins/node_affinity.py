"""NodeAffinity: spec.nodeSelector and spec.affinity.nodeAffinity.

Required: every nodeSelector label must be on the node with the same value,
and, when requiredDuringSchedulingIgnoredDuringExecution is set, at least one
of its nodeSelectorTerms must match (terms are OR'ed; within a term the
matchExpressions and matchFields are AND'ed; an empty term matches nothing).
Operators In, NotIn, Exists, DoesNotExist, Gt, Lt over node labels (through
kubemu.api.labels); matchFields supports metadata.name with In/NotIn. A term
that does not parse matches nothing.
Preferred: the score is the sum of the weights of the matching preferred terms,
normalized so the best node gets 100.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from kubemu.api import errors, labels
from kubemu.api.fields import field_value

from scheduler.framework import (NODE_ADD, NODE_LABEL_CHANGE, SKIP, SUCCESS, CycleState,
                                 NodeInfo, Snapshot, Status, default_normalize)

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
EVENTS = frozenset({NODE_ADD, NODE_LABEL_CHANGE})
NODE_NAME_FIELD = "metadata.name"
_OPERATORS = {"In": labels.IN, "NotIn": labels.NOT_IN, "Exists": labels.EXISTS,
              "DoesNotExist": labels.DOES_NOT_EXIST, "Gt": labels.GREATER_THAN,
              "Lt": labels.LESS_THAN}
_STATE_KEY = "NodeAffinity/parsed"


@dataclasses.dataclass(frozen=True)
class NodeSelectorTerm:
    selector: labels.Selector | None  # over labels; None when the term has no expressions
    fields: tuple[tuple[str, frozenset[str]], ...]  # (operator, node names)
    valid: bool = True

    def matches(self, node: Any) -> bool:
        if not self.valid or (self.selector is None and not self.fields):
            return False
        if self.selector is not None and not self.selector.matches(node.metadata.labels):
            return False
        name = node.metadata.name
        return all((name in names) == (op == "In") for op, names in self.fields)


def parse_term(term: Any) -> NodeSelectorTerm:
    requirements = []
    try:
        for expr in term.match_expressions:
            op = _OPERATORS.get(expr.operator)
            if op is None:
                raise errors.BadRequest(f'"{expr.operator}" is not a valid node selector operator')
            requirements.append(labels.new_requirement(expr.key, op, list(expr.values)))
        fields = []
        for expr in term.match_fields:
            if expr.key != NODE_NAME_FIELD or expr.operator not in ("In", "NotIn"):
                raise errors.BadRequest(f"unsupported field selector {expr.key} {expr.operator}")
            fields.append((expr.operator, frozenset(expr.values)))
    except errors.ApiError:
        return NodeSelectorTerm(None, (), valid=False)
    selector = labels.Selector(tuple(requirements)) if requirements else None
    return NodeSelectorTerm(selector, tuple(fields))


@dataclasses.dataclass(frozen=True)
class NodeAffinityOf:
    """A pod's node selector and node affinity, parsed once."""

    node_selector: Mapping[str, str]
    required_terms: tuple[NodeSelectorTerm, ...] | None  # None: no required affinity
    preferred_terms: tuple[tuple[int, NodeSelectorTerm], ...]

    def required_matches(self, node: Any) -> bool:
        node_labels = node.metadata.labels
        if any(node_labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        if self.required_terms is None:
            return True
        return any(term.matches(node) for term in self.required_terms)

    def preferred_score(self, node: Any) -> int:
        return sum(weight for weight, term in self.preferred_terms if term.matches(node))


def parse(pod: Any) -> NodeAffinityOf:
    node_affinity = field_value(field_value(pod.spec, "affinity"), "node_affinity")
    required = field_value(node_affinity,
                           "required_during_scheduling_ignored_during_execution")
    preferred = field_value(node_affinity,
                            "preferred_during_scheduling_ignored_during_execution", ()) or ()
    return NodeAffinityOf(
        dict(pod.spec.node_selector),
        None if required is None else tuple(parse_term(t) for t in required.node_selector_terms),
        tuple((p.weight, parse_term(p.preference)) for p in preferred if p.weight))


def _parsed(pod: Any, state: CycleState | None) -> NodeAffinityOf:
    if state is None:
        return parse(pod)
    found = state.read(_STATE_KEY)
    if found is None:
        found = parse(pod)
        state.write(_STATE_KEY, found)
    return found


def fits(pod: Any, node_info: NodeInfo, state: CycleState | None = None) -> bool:
    """RequiredNodeAffinity: nodeSelector and required terms."""
    return node_info.node is not None and _parsed(pod, state).required_matches(node_info.node)


def preferred_score(pod: Any, node_info: NodeInfo, state: CycleState | None = None) -> int:
    return _parsed(pod, state).preferred_score(node_info.node)


class NodeAffinity:
    NAME = NAME
    EVENTS = EVENTS

    def pre_filter(self, pod: Any, snapshot: Snapshot, state: CycleState) -> Status | None:
        parsed = _parsed(pod, state)
        if not parsed.node_selector and parsed.required_terms is None:
            return SKIP  # every node passes
        return None

    def pre_score(self, pod: Any, snapshot: Snapshot, nodes: Any,
                  state: CycleState) -> Status | None:
        return None if _parsed(pod, state).preferred_terms else SKIP

    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
               state: CycleState | None = None) -> Status:
        return SUCCESS if fits(pod, node_info, state) else Status.unresolvable(REASON)

    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot | None = None,
              state: CycleState | None = None) -> int:
        return preferred_score(pod, node_info, state)

    def normalize(self, pod: Any, scores: Mapping[str, int], snapshot: Snapshot | None = None,
                  state: CycleState | None = None) -> dict[str, int]:
        return default_normalize(scores)


def new(args: Mapping[str, Any]) -> NodeAffinity:
    return NodeAffinity()
