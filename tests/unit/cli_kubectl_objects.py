"""Objects that kubectl 1.32.5 was pointed at (a fake API server serving exactly
these) to capture the expected outputs pasted into the CLI printer tests.

`PODS` is what `kubectl get pods` listed in namespace default; `pod(name)` one
of them as `kubectl get pod NAME` got it; `CONFIGMAP` is `kubectl get cm tiny`.
"""
from __future__ import annotations

import copy


def _pod(name: str, *, labels: dict, node: str, ip: str, phase: str = "Running",
         containers: list, restarts: int = 0, cpu: str = "", memory: str = "") -> dict:
    for c in containers:
        if cpu:
            c["resources"] = {"requests": {"cpu": cpu, "memory": memory}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"annotations": {"note": "a<b>&c"}, "creationTimestamp": "2024-05-01T11:00:00Z",
                     "labels": labels, "name": name, "namespace": "default",
                     "resourceVersion": "12", "uid": f"uid-{name}"},
        "spec": {"containers": containers, "dnsPolicy": "ClusterFirst", "nodeName": node,
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30},
        "status": {
            "conditions": [{"lastTransitionTime": "2024-05-01T11:00:05Z", "status": "True",
                            "type": "Ready"}],
            "containerStatuses": [
                {"image": c["image"], "name": c["name"], "ready": True, "restartCount": restarts,
                 "started": True, "state": {"running": {"startedAt": "2024-05-01T11:00:03Z"}}}
                for c in containers],
            "hostIP": "127.1.0.1", "phase": phase, "podIP": ip, "qosClass": "Burstable"},
    }


PODS = [
    _pod("kuard", labels={"app": "kuard", "tier": "front"}, node="node-1", ip="10.244.1.7",
         containers=[{"image": "gcr.io/kuar-demo/kuard-amd64:blue", "name": "web",
                      "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
         cpu="250m", memory="128Mi"),
    _pod("nginx", labels={"app": "nginx"}, node="node-2", ip="10.244.2.3", restarts=3,
         containers=[{"image": "nginx:1.25", "name": "web",
                      "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
         cpu="1", memory="1Gi"),
    _pod("two", labels={"app": "two", "env": "dev"}, node="node-1", ip="10.244.1.9",
         phase="Pending",
         containers=[{"command": ["sh", "-c", "sleep 3600"], "env": [{"name": "X", "value": "1"}],
                      "image": "busybox", "name": "a"},
                     {"args": ["x", "y"], "image": "alpine:3.19", "name": "b"}]),
]
del PODS[2]["metadata"]["annotations"]
PODS[2]["status"]["containerStatuses"][1].update(
    ready=False, state={"waiting": {"reason": "ImagePullBackOff"}})

CONFIGMAP = {"apiVersion": "v1", "data": {"a": "1", "b": "two"}, "kind": "ConfigMap",
             "metadata": {"name": "tiny", "namespace": "default"}}


def pod(name: str) -> dict:
    return copy.deepcopy(next(p for p in PODS if p["metadata"]["name"] == name))


def pod_list() -> dict:
    """What kubectl get hands to its printers for `get pods`: a v1 List."""
    return {"apiVersion": "v1", "items": copy.deepcopy(PODS), "kind": "List",
            "metadata": {"resourceVersion": ""}}
