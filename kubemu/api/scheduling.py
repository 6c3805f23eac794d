"""Node selection as every component reads it (Kubernetes'
k8s.io/component-helpers/scheduling/corev1): taints against tolerations, and
node selector terms, nodeSelector and required node affinity against a Node.

- `tolerates(toleration, taint)` is ToleratesTaint: an empty effect matches
  every effect, an empty key (operator Exists) every key; Exists matches any
  value, Equal (or "") the same value.
- `untolerated_taint(taints, tolerations, effects)` is
  FindMatchingUntoleratedTaint over the taints with one of `effects`.
- `term_matches(term, node)`: one NodeSelectorTerm, its matchExpressions (In,
  NotIn, Exists, DoesNotExist, Gt, Lt over the node's labels) and matchFields
  (metadata.name with In / NotIn) AND'ed; an empty or unparsable term matches
  nothing (nodeaffinity's lazy-error semantics).
- `required_affinity_matches(spec, node)` is GetRequiredNodeAffinity(pod).Match:
  every nodeSelector label, and any one required term when there are some.

Pure functions over the generated messages. (The scheduler's plugins keep their
own cached parsing for the hot path.)
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from kubemu.api import errors, labels

NODE_NAME_FIELD = "metadata.name"
_NODE_OPERATORS = {"In": labels.IN, "NotIn": labels.NOT_IN, "Exists": labels.EXISTS,
                   "DoesNotExist": labels.DOES_NOT_EXIST, "Gt": labels.GREATER_THAN,
                   "Lt": labels.LESS_THAN}


def tolerates(toleration: Any, taint: Any) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return toleration.operator == "Exists"


def untolerated_taint(taints: Iterable[Any], tolerations: Sequence[Any],
                      effects: Iterable[str]) -> Any | None:
    wanted = tuple(effects)
    for taint in taints:
        if taint.effect in wanted and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def term_matches(term: Any, node: Any) -> bool:
    if not term.match_expressions and not term.match_fields:
        return False
    try:
        for expr in term.match_expressions:
            op = _NODE_OPERATORS.get(expr.operator)
            if op is None:
                return False
            if not labels.new_requirement(expr.key, op, list(expr.values)).matches(
                    node.metadata.labels):
                return False
    except errors.ApiError:
        return False
    for expr in term.match_fields:
        if expr.key != NODE_NAME_FIELD or expr.operator not in ("In", "NotIn"):
            return False
        if (node.metadata.name in expr.values) != (expr.operator == "In"):
            return False
    return True


def selector_matches(node_selector: Any, node: Any) -> bool:
    """A NodeSelector (its terms OR'ed)."""
    return any(term_matches(term, node) for term in node_selector.node_selector_terms)


def required_affinity_matches(spec: Any, node: Any) -> bool:
    node_labels = node.metadata.labels
    if any(node_labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    if not spec.HasField("affinity") or not spec.affinity.HasField("node_affinity"):
        return True
    affinity = spec.affinity.node_affinity
    if not affinity.HasField("required_during_scheduling_ignored_during_execution"):
        return True
    return selector_matches(affinity.required_during_scheduling_ignored_during_execution, node)
