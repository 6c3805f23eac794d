"""A pod's status, as the kubelet reports it (generateAPIPodStatus), from what
the runtime says about its containers. Pure functions: no I/O, time passed in.

- containerStatuses / initContainerStatuses follow the spec's order. A
  container's state is running, terminated (exit code, reason, times,
  containerID `kubemu://<id>`) or waiting (ContainerCreating,
  PodInitializing, CrashLoopBackOff, ErrImagePull, ...); lastState is the
  previous instance's termination; restartCount is the instance's attempt;
  image and imageID are those of the latest instance (the spec's image only
  while there is none), so a changed image shows once its instance runs.
- phase follows the kubelet's getPhase; a pod that reached Succeeded or
  Failed stays there.
- conditions: PodReadyToStartContainers, Initialized, Ready, ContainersReady,
  PodScheduled (in Kubernetes' order), with Kubernetes' reasons and messages;
  conditions the kubelet does not own (DisruptionTarget, readiness gates) are
  kept as they are. lastTransitionTime changes only when the status does.
  Ready also requires every condition named in spec.readinessGates to be True.

`merge(fresh, ours)` is what the status manager writes over the pod it has
just read: the kubelet's fields and the four conditions it owns
(OWNED_CONDITIONS) from `ours`; PodScheduled as found (the kubelet adds it
only when missing); every other condition from `fresh`, whose writers own
them; Ready re-evaluated against the readiness gates as `fresh` has them; and
`never_backwards`: a terminal phase stays terminal, restartCount never
decreases, and a container that may not restart stays terminated.
"""
from __future__ import annotations

import dataclasses

from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api.v1 import core_pb2
from kubemu.runtime.v1 import runtime_pb2 as rpb

CONTAINER_ID_PREFIX = "kubemu://"
TERMINAL_PHASES = ("Succeeded", "Failed")
# Written by the kubelet, always from its own view.
OWNED_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
# The conditions the kubelet reports (PodScheduled: as the scheduler left it).
KUBELET_CONDITIONS = (*OWNED_CONDITIONS, "PodScheduled")


rfc3339 = timefmt.rfc3339


def ns_to_rfc3339(ns: int) -> str:
    return rfc3339(ns / 1e9) if ns else ""


@dataclasses.dataclass
class ContainerView:
    """What the kubelet knows about one container of the spec."""

    name: str
    image: str
    current: rpb.ContainerStatus | None = None    # the latest instance
    previous: rpb.ContainerStatus | None = None   # the one before it
    waiting_reason: str = ""                      # why it is not running (overrides)
    waiting_message: str = ""
    ready: bool = False
    started: bool = False


@dataclasses.dataclass
class PodView:
    init: list[ContainerView]
    app: list[ContainerView]
    pod_ip: str = ""
    host_ip: str = ""
    sandbox_ready: bool = False
    terminal: bool = False        # the pod is being deleted, or past its deadline
    reason: str = ""              # status.reason / message (e.g. DeadlineExceeded)
    message: str = ""


def _terminated(c: rpb.ContainerStatus) -> core_pb2.ContainerStateTerminated:
    t = core_pb2.ContainerStateTerminated(
        exit_code=c.exit_code, reason=c.reason or ("Completed" if c.exit_code == 0 else "Error"),
        message=c.message, started_at=ns_to_rfc3339(c.started_at),
        finished_at=ns_to_rfc3339(c.finished_at), container_id=CONTAINER_ID_PREFIX + c.id)
    return t


def _is_running(c: rpb.ContainerStatus | None) -> bool:
    return c is not None and c.state == rpb.CONTAINER_RUNNING


def _is_exited(c: rpb.ContainerStatus | None) -> bool:
    return c is not None and c.state in (rpb.CONTAINER_EXITED, rpb.CONTAINER_UNKNOWN)


def container_status(view: ContainerView, default_waiting: str,
                     is_init: bool = False) -> core_pb2.ContainerStatus:
    s = core_pb2.ContainerStatus(name=view.name, image=view.image, restart_count=0,
                                 ready=False, started=False)
    s.last_state.SetInParent()
    cur = view.current
    if cur is not None:
        s.restart_count = cur.metadata.attempt
        # The image the instance was made from, not the spec's: after an image
        # change the old one shows until the new instance exists.
        s.image = cur.image.image or view.image
        s.image_id = cur.image_ref
        s.container_id = CONTAINER_ID_PREFIX + cur.id
    if _is_running(cur):
        s.state.running.started_at = ns_to_rfc3339(cur.started_at)
        s.ready = view.ready
        s.started = view.started
        if _is_exited(view.previous):
            s.last_state.terminated.CopyFrom(_terminated(view.previous))
    elif _is_exited(cur):
        if view.waiting_reason:  # it will be started again
            s.state.waiting.reason = view.waiting_reason
            s.state.waiting.message = view.waiting_message
            s.last_state.terminated.CopyFrom(_terminated(cur))
        else:
            s.state.terminated.CopyFrom(_terminated(cur))
            if _is_exited(view.previous):
                s.last_state.terminated.CopyFrom(_terminated(view.previous))
            s.ready = is_init and cur.exit_code == 0
    else:
        s.state.waiting.reason = view.waiting_reason or default_waiting
        s.state.waiting.message = view.waiting_message if view.waiting_reason else ""
        if cur is None:
            s.ClearField("image_id")
            s.ClearField("container_id")
        if _is_exited(view.previous):
            s.last_state.terminated.CopyFrom(_terminated(view.previous))
    return s


def phase(spec: Message, init: list[core_pb2.ContainerStatus],
          app: list[core_pb2.ContainerStatus], terminal: bool) -> str:
    """The kubelet's getPhase."""
    pending_init = failed_init = 0
    for s in init:
        if s.state.HasField("running"):
            pending_init += 1
        elif s.state.HasField("terminated"):
            if s.state.terminated.exit_code != 0:
                failed_init += 1
        elif s.state.HasField("waiting"):
            if s.last_state.HasField("terminated"):
                if s.last_state.terminated.exit_code != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = 0
    for s in app:
        if s.state.HasField("running"):
            running += 1
        elif s.state.HasField("terminated"):
            stopped += 1
            if s.state.terminated.exit_code == 0:
                succeeded += 1
        elif s.last_state.HasField("terminated"):
            stopped += 1
        else:
            waiting += 1
    policy = spec.restart_policy or "Always"
    if failed_init and policy == "Never":
        return "Failed"
    init_running = any(s.state.HasField("running") for s in init)
    if terminal and not running and not init_running:
        # Nothing runs and nothing will: the pod is over (a deleted pod gets a terminal phase).
        return "Succeeded" if app and stopped == succeeded == len(app) else "Failed"
    if pending_init or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = ""
               ) -> core_pb2.PodCondition:
    return core_pb2.PodCondition(type=kind, status="True" if ok else "False",
                                 reason=reason, message=message)


def build(pod: Message, view: PodView, now_s: float,
          previous: Message | None = None) -> core_pb2.PodStatus:
    """The pod's new status. `previous` is the last status the kubelet wrote (its
    conditions' transition times are kept); the pod's own status supplies the
    rest (startTime, PodScheduled, conditions of others)."""
    old = pod.status
    mine = previous if previous is not None else old
    now = rfc3339(now_s)
    status = core_pb2.PodStatus()
    init_default = "PodInitializing"
    init_statuses = [container_status(v, init_default, is_init=True) for v in view.init]
    initialized = all(s.state.HasField("terminated") and s.state.terminated.exit_code == 0
                      for s in init_statuses)
    app_default = "ContainerCreating" if initialized else "PodInitializing"
    app_statuses = [container_status(v, app_default) for v in view.app]
    status.init_container_statuses.extend(init_statuses)
    status.container_statuses.extend(app_statuses)

    new_phase = phase(pod.spec, init_statuses, app_statuses, view.terminal)
    if old.phase in TERMINAL_PHASES:
        new_phase = old.phase  # terminal phases are final
    status.phase = new_phase
    status.reason = view.reason or (old.reason if old.phase in TERMINAL_PHASES else "")
    status.message = view.message or (old.message if old.phase in TERMINAL_PHASES else "")
    status.qos_class = old.qos_class
    status.nominated_node_name = old.nominated_node_name
    status.start_time = old.start_time or (mine.start_time if mine is not None else "") or now
    if view.host_ip:
        status.host_ip = view.host_ip
        status.host_ips.add(ip=view.host_ip)
    if view.pod_ip:
        status.pod_ip = view.pod_ip
        status.pod_ips.add(ip=view.pod_ip)

    completed = new_phase == "Succeeded"
    conditions: list[core_pb2.PodCondition] = [
        _condition("PodReadyToStartContainers", view.sandbox_ready)]
    incomplete = [v.name for v, s in zip(view.init, init_statuses)
                  if not (s.state.HasField("terminated") and s.state.terminated.exit_code == 0)]
    if completed and not incomplete:
        conditions.append(_condition("Initialized", True, "PodCompleted"))
    elif incomplete:
        names = " ".join(incomplete)
        conditions.append(_condition("Initialized", False, "ContainersNotInitialized",
                                     f"containers with incomplete status: [{names}]"))
    else:
        conditions.append(_condition("Initialized", True))
    unready = [s.name for s in app_statuses if not s.ready]
    if completed:
        containers_ready = _condition("ContainersReady", False, "PodCompleted")
    elif unready or not initialized:
        names = unready if initialized else [s.name for s in app_statuses]
        containers_ready = _condition("ContainersReady", False, "ContainersNotReady",
                                      f"containers with unready status: [{' '.join(names)}]")
    else:
        containers_ready = _condition("ContainersReady", True)
    ready = ready_condition(containers_ready, pod.spec, old.conditions)
    conditions += [ready, containers_ready]
    scheduled = next((c for c in old.conditions if c.type == "PodScheduled"), None)
    if scheduled is not None:
        conditions.append(scheduled)
    else:
        conditions.append(_condition("PodScheduled", True))
    previous_conditions = {c.type: c for c in (mine.conditions if mine is not None else ())}
    for c in conditions:
        before = previous_conditions.get(c.type) or next(
            (o for o in old.conditions if o.type == c.type), None)
        if c.last_transition_time:
            continue  # carried over whole (PodScheduled)
        if before is not None and before.status == c.status and before.last_transition_time:
            c.last_transition_time = before.last_transition_time
        else:
            c.last_transition_time = now
    others = [c for c in old.conditions if c.type not in KUBELET_CONDITIONS]
    status.conditions.extend(conditions + others)
    return status


def ready_condition(containers_ready: core_pb2.PodCondition, spec: Message,
                    conditions) -> core_pb2.PodCondition:
    """Ready: ContainersReady, and every readiness gate's condition True
    (GeneratePodReadyCondition), without a transition time."""
    ready = core_pb2.PodCondition()
    ready.CopyFrom(containers_ready)
    ready.type = "Ready"
    ready.last_transition_time = ""
    if ready.status == "True":
        gates_problem = _readiness_gates(spec, conditions)
        if gates_problem:
            ready.status, ready.reason, ready.message = "False", "ReadinessGatesNotReady", \
                gates_problem
    return ready


def _readiness_gates(spec: Message, conditions) -> str:
    by_type = {c.type: c for c in conditions}
    for gate in spec.readiness_gates:
        cond = by_type.get(gate.condition_type)
        if cond is None:
            return (f'corresponding condition of pod readiness gate "{gate.condition_type}" '
                    f'does not exist.')
        if cond.status != "True":
            return (f'the status of pod readiness gate "{gate.condition_type}" is not '
                    f'"True", but {cond.status}')
    return ""


def same(a: Message | None, b: Message | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def _find(conditions, kind: str) -> core_pb2.PodCondition | None:
    return next((c for c in conditions if c.type == kind), None)


def _restart_forbidden(policy: str, terminated: Message) -> bool:
    """A container that ended so may not run again (checkContainerStateTransition)."""
    return policy == "Never" or (policy == "OnFailure" and terminated.exit_code == 0)


def never_backwards(old: Message, new: core_pb2.PodStatus, spec: Message) -> None:
    """Change `new` (in place) so that it does not undo `old`, the status the pod
    already had: a terminal phase (and its reason and message) stays, no
    restartCount decreases, a container terminated for good stays terminated."""
    if old.phase in TERMINAL_PHASES and new.phase != old.phase:
        new.phase, new.reason, new.message = old.phase, old.reason, old.message
    policy = spec.restart_policy or "Always"
    for field in ("container_statuses", "init_container_statuses"):
        before = {s.name: s for s in getattr(old, field)}
        for s in getattr(new, field):
            was = before.get(s.name)
            if was is None:
                continue
            if was.restart_count > s.restart_count:
                s.restart_count = was.restart_count
            if field == "container_statuses" and was.state.HasField("terminated") \
                    and not s.state.HasField("terminated") \
                    and _restart_forbidden(policy, was.state.terminated):
                s.state.CopyFrom(was.state)
                s.ready = False


def merge(fresh: Message, ours: core_pb2.PodStatus, now_s: float) -> core_pb2.PodStatus:
    """The status to write over `fresh`, the pod as just read (see the module doc)."""
    old = fresh.status
    new = core_pb2.PodStatus()
    new.CopyFrom(ours)
    if old.qos_class:
        new.qos_class = old.qos_class
    new.nominated_node_name = old.nominated_node_name
    if old.start_time:
        new.start_time = old.start_time
    mine = {c.type: c for c in ours.conditions if c.type in OWNED_CONDITIONS}
    containers_ready = mine.get("ContainersReady")
    if containers_ready is not None:
        ready = ready_condition(containers_ready, fresh.spec, old.conditions)
        before = mine.get("Ready")
        if before is not None and before.status == ready.status:
            ready.last_transition_time = before.last_transition_time
        else:
            found = _find(old.conditions, "Ready")
            ready.last_transition_time = (found.last_transition_time
                                          if found is not None and found.status == ready.status
                                          and found.last_transition_time else rfc3339(now_s))
        mine["Ready"] = ready
    scheduled = _find(old.conditions, "PodScheduled") or _find(ours.conditions, "PodScheduled")
    del new.conditions[:]
    new.conditions.extend(mine[kind] for kind in OWNED_CONDITIONS if kind in mine)
    if scheduled is not None:
        new.conditions.append(scheduled)
    new.conditions.extend(c for c in old.conditions if c.type not in KUBELET_CONDITIONS)
    never_backwards(old, new, fresh.spec)
    return new
