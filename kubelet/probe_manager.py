"""Probe workers for the running containers of one kubelet's pods (Kubernetes'
prober.Manager with its readiness, liveness and startup results).

- `add(pod, instance)` when a container has just started; `sync(pod,
  running, busy)`: probe workers (kubelet/prober.py) exactly for
  the running container instances, one per probe the container declares.
  A container adopted from a previous kubelet starts from what the API says
  of it (ready, started), so a kubelet restart does not flap Ready. Workers
  of instances no longer running are stopped and their results forgotten,
  except for instances in `busy` (being killed): their failure is kept until
  they are gone, so they are not probed again meanwhile.
- Results by container id: `ready`, `started` (not before the startup probe
  succeeded), `failure` (a failed liveness or startup probe: the pod worker
  kills and restarts the container). A result that flips calls
  `on_change(pod uid)`, which wakes the pod's worker; each failed probe is an
  Unhealthy event.
- `stop_container(uid, id)` before an instance is killed; `remove_pod(uid)`
  when the pod is terminating. Everything runs on the event loop.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

from google.protobuf.message import Message

from kubelet import actions, cri, prober
from kubelet import status as pod_status
from kubemu.client.events import WARNING, EventRecorder


@dataclasses.dataclass(frozen=True)
class Running:
    """A running container instance, as the pod worker found it."""

    spec: Message          # the container in the pod's spec
    container_id: str
    started_at_s: float    # when it started (unix seconds)


@dataclasses.dataclass
class _Probed:
    workers: list[prober.ProbeWorker]
    ready: bool
    started: bool
    failure: tuple[str, str] | None = None   # (kind, message) of a failed liveness/startup


def target(ctr: Message, container_id: str, pod_ip: str) -> actions.Target:
    ports = {p.name: p.container_port for p in ctr.ports if p.name}
    return actions.Target(container_id=container_id, pod_ip=pod_ip, ports=ports)


def field_path(ctr_name: str, init: bool) -> str:
    return f"spec.{'initContainers' if init else 'containers'}{{{ctr_name}}}"


class ProbeManager:
    def __init__(self, runtime: cri.RuntimeClient, events: EventRecorder,
                 on_change: Callable[[str], None]):
        self.runtime = runtime
        self.events = events
        self.on_change = on_change
        self._pods: dict[str, dict[str, _Probed]] = {}   # uid -> container id -> results
        self._latest: dict[str, Message] = {}            # uid -> the pod, for events

    # ------------------------------------------------------------ results

    def _probed(self, uid: str, container_id: str) -> _Probed | None:
        return self._pods.get(uid, {}).get(container_id)

    def ready(self, uid: str, container_id: str) -> bool:
        probed = self._probed(uid, container_id)
        return probed is not None and probed.started and probed.ready

    def started(self, uid: str, container_id: str) -> bool:
        probed = self._probed(uid, container_id)
        return probed is not None and probed.started

    def failure(self, uid: str, container_id: str) -> tuple[str, str] | None:
        probed = self._probed(uid, container_id)
        return probed.failure if probed is not None else None

    # ------------------------------------------------------------ workers

    def sync(self, pod: Message, running: Mapping[str, Running], pod_ip: str,
             busy: frozenset[str] = frozenset()) -> None:
        uid = pod.metadata.uid
        self._latest[uid] = pod
        probed = self._pods.setdefault(uid, {})
        for container_id in [cid for cid in probed if cid not in running and cid not in busy]:
            self._stop(probed.pop(container_id))
        known = {s.container_id: s for s in pod.status.container_statuses}
        for container_id, inst in running.items():
            if container_id in probed or container_id in busy:
                continue
            # Adopted (a kubelet restart): keep what the API says of it.
            seen = known.get(pod_status.CONTAINER_ID_PREFIX + container_id)
            ready = seen.ready if seen is not None and seen.HasField("ready") else None
            started = seen.started if seen is not None and seen.HasField("started") else None
            probed[container_id] = self._start(pod, inst, pod_ip, ready, started)

    def add(self, pod: Message, inst: Running, pod_ip: str) -> None:
        """Probe a container instance that has just started."""
        uid = pod.metadata.uid
        self._latest[uid] = pod
        probed = self._pods.setdefault(uid, {})
        if inst.container_id not in probed:
            probed[inst.container_id] = self._start(pod, inst, pod_ip, None, None)

    def stop_container(self, uid: str, container_id: str) -> None:
        probed = self._probed(uid, container_id)
        if probed is not None:
            self._stop(probed)

    def remove_pod(self, uid: str) -> None:
        for probed in self._pods.pop(uid, {}).values():
            self._stop(probed)
        self._latest.pop(uid, None)

    def stop_all(self) -> None:
        for uid in list(self._pods):
            self.remove_pod(uid)

    @staticmethod
    def _stop(probed: _Probed) -> None:
        for worker in probed.workers:
            worker.stop()
        probed.workers = []

    def _start(self, pod: Message, inst: Running, pod_ip: str, ready: bool | None,
               started: bool | None) -> _Probed:
        ctr, container_id, uid = inst.spec, inst.container_id, pod.metadata.uid
        has_startup = ctr.HasField("startup_probe")
        probed = _Probed(workers=[],
                         ready=ready if ready is not None else not ctr.HasField("readiness_probe"),
                         started=started if started is not None else not has_startup)

        def on_result(kind: str, cid: str, ok: bool, message: str) -> None:
            if kind == prober.READINESS:
                probed.ready = ok
            elif kind == prober.STARTUP:
                probed.started = ok
                if not ok:
                    probed.failure = (kind, message)
            elif kind == prober.LIVENESS and not ok:
                probed.failure = (kind, message)
            self.on_change(uid)

        path = field_path(ctr.name, False)

        def on_failure(kind: str, cid: str, message: str) -> None:
            self.events.record(self._latest.get(uid, pod), WARNING, "Unhealthy",
                               f"{kind} probe failed: {message}", field_path=path)

        for kind, name in ((prober.STARTUP, "startup_probe"), (prober.LIVENESS, "liveness_probe"),
                           (prober.READINESS, "readiness_probe")):
            if not ctr.HasField(name) or (kind == prober.STARTUP and probed.started):
                continue
            initial = ready if kind == prober.READINESS and ready is not None else None
            worker = prober.ProbeWorker(
                kind, getattr(ctr, name), self.runtime, target(ctr, container_id, pod_ip),
                inst.started_at_s, on_result=on_result, on_failure=on_failure,
                startup_done=lambda: probed.started, initial=initial)
            worker.start()
            probed.workers.append(worker)
        return probed
