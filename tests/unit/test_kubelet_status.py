"""The kubelet's pod status, from container states: phase, conditions, containerStatuses."""
from __future__ import annotations

import pytest

from kubelet import status
from kubemu.api import codec
from kubemu.runtime.v1 import runtime_pb2 as rpb
from tests.builders import obj

NOW_S = 1_700_000_000.0
NOW = status.rfc3339(NOW_S)
T0_NS = int((NOW_S - 60) * 1e9)


def pod(restart_policy: str = "Always", containers=("main",), inits=(), **status_doc):
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default",
                                                           "uid": "u1"},
           "spec": {"restartPolicy": restart_policy, "nodeName": "n1",
                    "containers": [{"name": c, "image": "busybox"} for c in containers],
                    "initContainers": [{"name": c, "image": "busybox"} for c in inits]}}
    if status_doc:
        doc["status"] = status_doc
    return obj(doc)


def instance(state: str, exit_code: int = 0, attempt: int = 0, cid: str = "c0",
             reason: str = "") -> rpb.ContainerStatus:
    s = rpb.ContainerStatus(id=cid, metadata=rpb.ContainerMetadata(name="main", attempt=attempt),
                            state=getattr(rpb, f"CONTAINER_{state}"), created_at=T0_NS,
                            started_at=T0_NS, image_ref="docker.io/library/busybox@sha256:ab")
    if state == "EXITED":
        s.exit_code = exit_code
        s.finished_at = T0_NS + 10**9
        s.reason = reason or ("Completed" if exit_code == 0 else "Error")
    return s


def view(name="main", current=None, previous=None, waiting=("", ""), ready=False, started=False):
    return status.ContainerView(name=name, image="busybox", current=current, previous=previous,
                                waiting_reason=waiting[0], waiting_message=waiting[1],
                                ready=ready, started=started)


def build(p, app, init=(), **kw) -> dict:
    v = status.PodView(init=list(init), app=list(app), pod_ip="127.9.1.2", host_ip="127.0.9.1",
                       sandbox_ready=True, **kw)
    return codec.to_dict(status.build(p, v, NOW_S))


@pytest.mark.parametrize("policy,states,terminal,expected", [
    ("Always", [("running",)], False, "Running"),
    ("Always", [("waiting",)], False, "Pending"),
    ("Always", [("terminated", 1)], False, "Running"),      # about to be restarted
    ("Always", [("crashloop", 1)], False, "Running"),
    ("OnFailure", [("terminated", 0)], False, "Succeeded"),
    ("OnFailure", [("terminated", 1)], False, "Running"),
    ("Never", [("terminated", 0)], False, "Succeeded"),
    ("Never", [("terminated", 3)], False, "Failed"),
    ("Never", [("terminated", 0), ("running",)], False, "Running"),
    ("Never", [("terminated", 0), ("terminated", 1)], False, "Failed"),
    ("Always", [("terminated", 0)], True, "Succeeded"),      # deleted: a terminal phase
    ("Always", [("terminated", 143)], True, "Failed"),
    ("Always", [("waiting",)], True, "Failed"),
], ids=lambda v: str(v))
def test_phase(policy, states, terminal, expected):
    from kubemu.api.v1 import core_pb2

    statuses = []
    for i, state in enumerate(states):
        s = core_pb2.ContainerStatus(name=f"c{i}")
        kind = state[0]
        if kind == "running":
            s.state.running.started_at = NOW
        elif kind == "waiting":
            s.state.waiting.reason = "ContainerCreating"
        elif kind == "terminated":
            s.state.terminated.exit_code = state[1]
        elif kind == "crashloop":
            s.state.waiting.reason = "CrashLoopBackOff"
            s.last_state.terminated.exit_code = state[1]
        statuses.append(s)
    p = pod(policy, containers=[f"c{i}" for i in range(len(states))])
    assert status.phase(p.spec, [], statuses, terminal) == expected


def test_running_container_is_reported_like_kubernetes():
    got = build(pod(), [view(current=instance("RUNNING"), ready=True, started=True)])
    assert got["phase"] == "Running"
    assert [(c["type"], c["status"]) for c in got["conditions"]] == [
        ("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", "True"),
        ("ContainersReady", "True"), ("PodScheduled", "True")]
    assert all(c["lastTransitionTime"] == NOW for c in got["conditions"])
    cs = got["containerStatuses"][0]
    assert cs == {"name": "main", "state": {"running": {"startedAt": status.rfc3339(NOW_S - 60)}},
                  "lastState": {}, "ready": True, "restartCount": 0, "image": "busybox",
                  "imageID": "docker.io/library/busybox@sha256:ab",
                  "containerID": "kubemu://c0", "started": True}
    assert got["podIP"] == "127.9.1.2" and got["podIPs"] == [{"ip": "127.9.1.2"}]
    assert got["hostIP"] == "127.0.9.1" and got["startTime"] == NOW


def test_crash_loop_shows_waiting_with_the_last_termination():
    message = "back-off 20s restarting failed container=main pod=p_default(u1)"
    got = build(pod(), [view(current=instance("EXITED", 2, attempt=3, cid="c3"),
                             previous=instance("EXITED", 2, attempt=2, cid="c2"),
                             waiting=("CrashLoopBackOff", message))])
    cs = got["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["lastState"]["terminated"]["containerID"] == "kubemu://c3"
    assert cs["restartCount"] == 3 and cs["ready"] is False
    ready = next(c for c in got["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ContainersNotReady", "containers with unready status: [main]")
    assert got["phase"] == "Running"


def test_completed_pod_conditions_say_pod_completed():
    got = build(pod("Never"), [view(current=instance("EXITED", 0))])
    assert got["phase"] == "Succeeded"
    by_type = {c["type"]: c for c in got["conditions"]}
    assert (by_type["Initialized"]["status"], by_type["Initialized"]["reason"]) == (
        "True", "PodCompleted")
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "PodCompleted")
    assert got["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_init_containers_pending():
    p = pod(inits=("setup",))
    got = build(p, [view()], init=[view("setup", current=instance("RUNNING"))])
    assert got["phase"] == "Pending"
    init = next(c for c in got["conditions"] if c["type"] == "Initialized")
    assert (init["status"], init["reason"], init["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [setup]")
    assert got["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"


def test_failed_init_container_with_restart_policy_never_fails_the_pod():
    p = pod("Never", inits=("setup",))
    got = build(p, [view()], init=[view("setup", current=instance("EXITED", 1))])
    assert got["phase"] == "Failed"


def test_terminal_phase_is_final_and_transition_times_are_kept():
    p = pod("Never")
    first = build(p, [view(current=instance("EXITED", 0))])
    again = pod("Never", **first)
    v = status.PodView(init=[], app=[view(current=instance("EXITED", 0))], sandbox_ready=True)
    later = codec.to_dict(status.build(again, v, NOW_S + 100))
    assert later["phase"] == "Succeeded"
    assert later["conditions"] == first["conditions"]
    assert later["startTime"] == first["startTime"]


def test_conditions_owned_by_others_and_readiness_gates():
    p = pod(**{"conditions": [{"type": "PodScheduled", "status": "True",
                               "lastTransitionTime": "2020-01-01T00:00:00Z"},
                              {"type": "example.com/gate", "status": "False"}]})
    p.spec.readiness_gates.add(condition_type="example.com/gate")
    got = build(p, [view(current=instance("RUNNING"), ready=True, started=True)])
    by_type = {c["type"]: c for c in got["conditions"]}
    assert by_type["PodScheduled"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert by_type["example.com/gate"]["status"] == "False"
    assert by_type["ContainersReady"]["status"] == "True"
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == (
        "False", "ReadinessGatesNotReady")


def test_same_status_is_same():
    p = pod()
    v = status.PodView(init=[], app=[view(current=instance("RUNNING"))], sandbox_ready=True)
    assert status.same(status.build(p, v, NOW_S), status.build(p, v, NOW_S))


@pytest.mark.parametrize("current,expected_image", [
    (None, "busybox"),                                   # nothing made yet: the spec's
    ("busybox:1.36", "busybox:1.36"),                    # the instance's, whatever the spec
    ("", "busybox"),                                     # a runtime that names no image
], ids=["no-instance", "instance", "instance-without-image"])
def test_status_image_is_the_running_instances(current, expected_image):
    cur = None
    if current is not None:
        cur = instance("RUNNING")
        cur.image.image = current
    got = build(pod(), [view(current=cur, ready=True, started=True)])
    cs = got["containerStatuses"][0]
    assert cs["image"] == expected_image
    assert ("imageID" in cs) is (cur is not None)
