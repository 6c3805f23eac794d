"""Objects that kubectl 1.32 was pointed at (a fake API server serving exactly
these, on 2026-11-30 at 16:30:00 UTC) to capture the ResourceQuota, LimitRange
and Namespace descriptions in kubectl_describe/."""

from __future__ import annotations

T = "2026-11-30T09:00:00Z"


def meta(name, ns="team-a", **kw):
    m = {"name": name, "creationTimestamp": T, "uid": "uid-" + name, "resourceVersion": "5"}
    if ns:
        m["namespace"] = ns
    m.update(kw)
    return m


QUOTAS = [
    {"apiVersion": "v1", "kind": "ResourceQuota",
     "metadata": meta("compute", labels={"team": "a"}),
     "spec": {"hard": {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2",
                       "limits.memory": "2Gi", "pods": "3"}},
     "status": {"hard": {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2",
                         "limits.memory": "2Gi", "pods": "3"},
                "used": {"requests.cpu": "500m", "requests.memory": "256Mi",
                         "limits.cpu": "1", "limits.memory": "512Mi", "pods": "2"}}},
    {"apiVersion": "v1", "kind": "ResourceQuota",
     "metadata": meta("best-effort"),
     "spec": {"hard": {"pods": "10"}, "scopes": ["NotTerminating", "BestEffort"]},
     "status": {"hard": {"pods": "10"}, "used": {"pods": "0"}}},
    {"apiVersion": "v1", "kind": "ResourceQuota",
     "metadata": meta("objects"),
     "spec": {"hard": {"configmaps": "10", "count/deployments.apps": "2", "services": "5",
                       "requests.storage": "10Gi"}},
     "status": {"hard": {"configmaps": "10", "count/deployments.apps": "2", "services": "5",
                         "requests.storage": "10Gi"},
                "used": {"configmaps": "1", "count/deployments.apps": "0", "services": "0"}}},
]

LIMIT_RANGES = [
    {"apiVersion": "v1", "kind": "LimitRange",
     "metadata": meta("limits"),
     "spec": {"limits": [
         {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"},
          "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"},
          "maxLimitRequestRatio": {"cpu": "4"}},
         {"type": "Pod", "max": {"cpu": "2"}},
         {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"},
          "min": {"storage": "1Gi"}}]}},
]

NAMESPACES = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("team-a", ns=""),
     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("empty", ns=""),
     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
]

ALL = QUOTAS + LIMIT_RANGES + NAMESPACES
