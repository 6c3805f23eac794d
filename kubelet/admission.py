"""Pod admission, as the kubelet's resource-fit admit handler does it.

A pod that reaches the kubelet but does not fit next to the pods it already
runs (its `pods` count, or cpu/memory requests against the node's
allocatable) is rejected: phase Failed, reason OutOfpods / OutOfcpu /
OutOfmemory, and Kubernetes' message. This also bounds how many pod workers
one kubelet runs. A pod's request is the larger of the sum of its app
containers' requests and its largest init container's (Kubernetes'
effective request). Pure functions.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from google.protobuf.message import Message

from kubemu.api import quantity


def _request(ctr: Message, name: str) -> int:
    text = ctr.resources.requests.get(name)
    if text is None:
        return 0
    try:
        return quantity.to_milli(text) if name == "cpu" else quantity.to_int(text)
    except ValueError:
        return 0


def pod_request(pod: Message, name: str) -> int:
    """cpu in millicores, memory in bytes."""
    app = sum(_request(c, name) for c in pod.spec.containers)
    init = max((_request(c, name) for c in pod.spec.init_containers), default=0)
    return max(app, init)


def admit(pod: Message, admitted: Iterable[Message], allocatable: Mapping[str, str]
          ) -> tuple[str, str] | None:
    """None when the pod fits; else (reason, message) for its Failed status."""
    running = list(admitted)
    pods_max = int(allocatable.get("pods", "110") or 0)
    if len(running) + 1 > pods_max:
        return "OutOfpods", (f"Pod was rejected: Node didn't have enough resource: pods, "
                             f"requested: 1, used: {len(running)}, capacity: {pods_max}")
    for name in ("cpu", "memory"):
        wanted = pod_request(pod, name)
        if not wanted:
            continue
        text = allocatable.get(name, "0")
        capacity = quantity.to_milli(text) if name == "cpu" else quantity.to_int(text)
        used = sum(pod_request(p, name) for p in running)
        if used + wanted > capacity:
            return f"OutOf{name}", (f"Pod was rejected: Node didn't have enough resource: "
                                    f"{name}, requested: {wanted}, used: {used}, "
                                    f"capacity: {capacity}")
    return None
