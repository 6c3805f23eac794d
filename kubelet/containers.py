"""A pod's container instances as the runtime reports them, and their garbage
collection (the kubelet's kuberuntime_gc, per pod).

- Instances of one container are told apart by their attempt, which only
  grows: a new instance gets one more than the highest attempt the runtime
  knows for that container in any of the pod's sandboxes, than the API's
  restartCount (when the API says it ran) and than the attempts in the log
  directory's file names, so restartCount never decreases across kubelet or
  runtime restarts, sandbox changes or a whole cluster down/up. The current
  instance is the one with the highest attempt; status, logs and exec
  follow it.
- Garbage collection: per container, the current instance (whatever its
  state) and the newest dead instance before it (lastState, `logs
  --previous`) are kept; every older dead instance is removed, with its log
  files. So a container keeps at most two instances, and exactly one dead
  one while it runs. A sandbox that is not the pod's newest, not ready and
  holds no container any more is removed too.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

from google.protobuf.message import Message

from kubemu.runtime.v1 import runtime_pb2 as rpb


@dataclasses.dataclass
class Instance:
    """One container instance: the runtime's summary and status of it."""

    summary: rpb.Container
    status: rpb.ContainerStatus

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def name(self) -> str:
        return self.summary.metadata.name

    @property
    def attempt(self) -> int:
        return self.summary.metadata.attempt

    @property
    def sandbox_id(self) -> str:
        return self.summary.pod_sandbox_id

    @property
    def running(self) -> bool:
        return self.status.state == rpb.CONTAINER_RUNNING

    @property
    def exited(self) -> bool:
        return self.status.state in (rpb.CONTAINER_EXITED, rpb.CONTAINER_UNKNOWN)


def by_name(instances: Iterable[Instance]) -> dict[str, list[Instance]]:
    """Container name -> its instances, newest (highest attempt) first."""
    grouped: dict[str, list[Instance]] = {}
    for inst in instances:
        grouped.setdefault(inst.name, []).append(inst)
    for items in grouped.values():
        items.sort(key=lambda i: (i.attempt, i.summary.created_at), reverse=True)
    return grouped


def api_attempt(statuses: Iterable[Message], name: str) -> int:
    """The attempt of the newest instance the pod's status reports for a
    container: its restartCount, once it has run at all; -1 when it never has."""
    for s in statuses:
        if s.name != name:
            continue
        ran = bool(s.container_id) or s.restart_count > 0 \
            or s.last_state.HasField("terminated") or s.state.HasField("running") \
            or s.state.HasField("terminated")
        return s.restart_count if ran else -1
    return -1


def next_attempt(instances: Sequence[Instance], known: Iterable[int]) -> int:
    """The attempt for a new instance: one more than any attempt known."""
    return max([-1, *(i.attempt for i in instances), *known]) + 1


def evictable(instances: Sequence[Instance]) -> list[Instance]:
    """Of one container's instances (newest first), those garbage collection
    removes: every instance that does not run, but the current one and the
    newest one before it."""
    older_not_running = [i for i in instances[1:] if not i.running]
    return older_not_running[1:]


def sandboxes_to_remove(sandboxes: Sequence[rpb.PodSandbox],
                        containers: Iterable[Instance]) -> list[str]:
    """A pod's sandboxes that are neither its newest nor ready and hold no container."""
    if len(sandboxes) <= 1:
        return []
    newest = max(sandboxes, key=lambda s: (s.metadata.attempt, s.created_at))
    used = {c.sandbox_id for c in containers}
    return [s.id for s in sandboxes if s.id != newest.id and s.state != rpb.SANDBOX_READY
            and s.id not in used]


def removable(grouped: Mapping[str, Sequence[Instance]]) -> list[Instance]:
    return [i for items in grouped.values() for i in evictable(items)]
