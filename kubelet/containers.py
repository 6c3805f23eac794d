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
- Spec changes (kuberuntime_manager.go computePodActions, containerChanged):
  each instance carries the hash of the spec it was made from
  (`hash_container`, in the `io.kubernetes.container.hash` annotation). A
  running container whose hash differs from its current spec's is killed
  ("Container <name> definition changed, will be restarted") and started
  again from the new spec in the same pass, whatever the restartPolicy.
  As in Kubernetes the hash covers only the fields a pod update may change
  in a container (its name and image: the apiserver refuses the rest), so
  changing the hashed fields is the one way to restart a container in place.
  Only app containers: an init container that already ran is not run again
  for a new image (Kubernetes re-runs init containers only with a new sandbox).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Iterable, Mapping, Sequence

from google.protobuf.message import Message

from kubelet import cri
from kubemu.runtime.v1 import runtime_pb2 as rpb

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


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


# ---------------------------------------------------------------- spec changes

def _fnv1a_32(data: bytes) -> int:
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def _hash_fields(name: str, image: str) -> str:
    # Kubernetes' pickFieldsToHash: the JSON of {"image", "name"}, keys sorted
    # (as Go's json.Marshal of a map), through FNV-1a 32, in hex as the
    # annotation holds it. The value need not equal a real kubelet's: only
    # this kubelet reads it back.
    text = json.dumps({"image": image, "name": name}, separators=(",", ":"), sort_keys=True)
    return format(_fnv1a_32(text.encode()), "x")


def hash_container(ctr: Message) -> str:
    """The hash of a container spec, as recorded on the instances made from it."""
    return _hash_fields(ctr.name, ctr.image)


def recorded_hash(inst: Instance) -> str:
    """The hash of the spec an instance was made from: its annotation; for an
    instance made before the kubelet recorded hashes, the hash of its name and
    the image the runtime says it runs (so an upgrade restarts nothing)."""
    recorded = inst.status.annotations.get(cri.CONTAINER_HASH_ANNOTATION) \
        or inst.summary.annotations.get(cri.CONTAINER_HASH_ANNOTATION)
    if recorded:
        return recorded
    image = inst.status.image.image or inst.summary.image.image
    return _hash_fields(inst.name, image)


def definition_changed(ctr: Message, inst: Instance) -> bool:
    """containerChanged: the instance was made from another spec than `ctr`."""
    return recorded_hash(inst) != hash_container(ctr)


@dataclasses.dataclass(frozen=True)
class Kill:
    """A running container to kill, and why (the Killing event's message)."""

    message: str
    restart_now: bool = False    # start the new instance in the same pass
    probe: str = ""              # the kind of the probe that failed (prober.LIVENESS, ...)


def running_action(ctr: Message, cur: Instance, restart_policy: str,
                   failed_probe: str | None) -> Kill | None:
    """What computePodActions does with a running app container (`failed_probe`:
    the kind of its probe that failed, "Liveness" or "Startup"): kill it
    when its definition changed (and restart it at once, whatever the
    policy), or when its liveness or startup probe failed (restarted later,
    through the back-off, if the policy allows); else keep it (None)."""
    if definition_changed(ctr, cur):
        return Kill(f"Container {ctr.name} definition changed, will be restarted",
                    restart_now=True)
    if failed_probe is None:
        return None
    message = f"Container {ctr.name} failed {failed_probe.lower()} probe"
    if (restart_policy or "Always") != "Never":
        message += ", will be restarted"
    return Kill(message, probe=failed_probe)
