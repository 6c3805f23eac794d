"""Older API versions accepted on input and converted to the served one.

kubemu serves one version per kind. A manifest in an older version Kubernetes
still serves is converted here, as a dict, before it is decoded (the CLI's
manifest decoding calls `to_served`), so the rest of kubemu only ever sees the
served version. A conversion is one function in `CONVERSIONS`, keyed by the
(apiVersion, kind) it reads; it returns the document in the served version.

- autoscaling/v1 HorizontalPodAutoscaler -> autoscaling/v2, as Kubernetes'
  Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler:
  targetCPUUtilizationPercentage becomes a Resource metric (cpu, Utilization),
  status.currentCPUUtilizationPercentage a Resource metric status; everything
  else keeps its name.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

Doc = dict[str, Any]


def _hpa_v1_to_v2(doc: Doc) -> Doc:
    out = copy.deepcopy(doc)
    out["apiVersion"] = "autoscaling/v2"
    spec = out.get("spec")
    if isinstance(spec, dict) and "targetCPUUtilizationPercentage" in spec:
        target = spec.pop("targetCPUUtilizationPercentage")
        if target is not None:
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}]
    status = out.get("status")
    if isinstance(status, dict) and "currentCPUUtilizationPercentage" in status:
        current = status.pop("currentCPUUtilizationPercentage")
        if current is not None:
            status["currentMetrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": current}}}]
    return out


CONVERSIONS: dict[tuple[str, str], Callable[[Doc], Doc]] = {
    ("autoscaling/v1", "HorizontalPodAutoscaler"): _hpa_v1_to_v2,
}


def to_served(doc: Doc) -> Doc:
    """`doc` in the version kubemu serves (itself when no conversion applies)."""
    convert = CONVERSIONS.get((str(doc.get("apiVersion", "")), str(doc.get("kind", ""))))
    return convert(doc) if convert is not None else doc
