"""Container instances: which attempt comes next (never lower than any known),
and what garbage collection removes (all but the current instance and the
newest dead one before it; sandboxes left empty)."""
from __future__ import annotations

import pytest

from kubelet import containers, cri
from kubelet.containers import Instance
from kubemu.api import codec
from kubemu.api.v1 import core_pb2
from kubemu.runtime.v1 import runtime_pb2 as rpb

STATES = {"R": rpb.CONTAINER_RUNNING, "X": rpb.CONTAINER_EXITED, "C": rpb.CONTAINER_CREATED,
          "U": rpb.CONTAINER_UNKNOWN}


def inst(attempt: int, state: str = "X", name: str = "main", sandbox: str = "s1") -> Instance:
    cid = f"{name}-{attempt}"
    return Instance(
        rpb.Container(id=cid, pod_sandbox_id=sandbox, state=STATES[state], created_at=attempt,
                      metadata=rpb.ContainerMetadata(name=name, attempt=attempt)),
        rpb.ContainerStatus(id=cid, state=STATES[state],
                            metadata=rpb.ContainerMetadata(name=name, attempt=attempt)))


def parse(spec: str) -> list[Instance]:
    """"3R 2X 1X" -> instances, newest first."""
    return [inst(int(word[:-1]), word[-1]) for word in spec.split()]


@pytest.mark.parametrize("spec,removed", [
    ("", []),
    ("0R", []),
    ("1R 0X", []),
    ("2R 1X 0X", [0]),
    ("2X 1X 0X", [0]),               # waiting in back-off: it and the one before stay
    ("5R 4X 3X 2U 1X 0C", [3, 2, 1, 0]),
    ("3R 2R 1X 0X", [0]),            # two running (never in practice): the newest dead stays
    ("2C 1X 0X", [0]),
], ids=lambda v: repr(v))
def test_evictable_keeps_the_current_and_the_newest_dead_instance(spec, removed):
    grouped = containers.by_name(parse(spec)) if spec else {}
    assert [i.attempt for i in containers.removable(grouped)] == removed


def test_by_name_orders_newest_first_across_sandboxes():
    found = [inst(0, sandbox="old"), inst(2, "R", sandbox="new"), inst(1, sandbox="old"),
             inst(0, "R", name="side", sandbox="new")]
    grouped = containers.by_name(found)
    assert [i.attempt for i in grouped["main"]] == [2, 1, 0]
    assert [i.attempt for i in grouped["side"]] == [0]


def status_doc(**cs) -> core_pb2.PodStatus:
    return codec.from_dict(core_pb2.PodStatus, {"containerStatuses": [
        {"name": "main", "image": "busybox", "ready": False, **cs}]})


@pytest.mark.parametrize("doc,expected", [
    ({"restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}, -1),
    ({"restartCount": 0, "containerID": "kubemu://a", "state": {"running": {}}}, 0),
    ({"restartCount": 4, "containerID": "kubemu://a",
      "state": {"waiting": {"reason": "CrashLoopBackOff"}},
      "lastState": {"terminated": {"exitCode": 1}}}, 4),
    ({"restartCount": 3, "state": {"waiting": {"reason": "ContainerCreating"}}}, 3),
], ids=["never-ran", "running", "back-off", "count-kept-without-instance"])
def test_api_attempt(doc, expected):
    assert containers.api_attempt(status_doc(**doc).container_statuses, "main") == expected
    assert containers.api_attempt(status_doc(**doc).container_statuses, "other") == -1


@pytest.mark.parametrize("spec,known,expected", [
    ("", [], 0),
    ("", [-1], 0),
    ("2X 1X", [], 3),
    ("", [4], 5),                     # the runtime lost its records: the API's count goes on
    ("0X", [4, 2], 5),                # a new sandbox after a cluster restart
    ("6R", [4], 7),
], ids=lambda v: repr(v))
def test_next_attempt_is_above_every_attempt_known(spec, known, expected):
    assert containers.next_attempt(parse(spec) if spec else [], known) == expected


def sandbox(sid: str, attempt: int, ready: bool) -> rpb.PodSandbox:
    return rpb.PodSandbox(id=sid, metadata=rpb.PodSandboxMetadata(attempt=attempt),
                          state=rpb.SANDBOX_READY if ready else rpb.SANDBOX_NOTREADY,
                          created_at=attempt)


def test_empty_old_sandboxes_are_removed():
    boxes = [sandbox("a", 0, False), sandbox("b", 1, False), sandbox("c", 2, True)]
    assert containers.sandboxes_to_remove(boxes, [inst(3, "R", sandbox="c")]) == ["a", "b"]
    assert containers.sandboxes_to_remove(boxes, [inst(2, sandbox="b")]) == ["a"]
    # The newest one stays even when it is empty and stopped (a completed pod's).
    assert containers.sandboxes_to_remove([sandbox("a", 0, False)], []) == []
    assert containers.sandboxes_to_remove(
        [sandbox("a", 0, False), sandbox("b", 1, False)], []) == ["a"]


# ---------------------------------------------------------------- spec changes

def ctr(image: str = "nginx:1.25", name: str = "main", **fields) -> core_pb2.Container:
    return codec.from_dict(core_pb2.Container, {"name": name, "image": image, **fields})


def made_from(spec: core_pb2.Container, *, annotate: bool = True, state: str = "R") -> Instance:
    """A running instance created from `spec` (with the hash annotation, as the
    kubelet writes it, or without: made before hashes were recorded)."""
    i = inst(0, state, name=spec.name)
    i.status.image.image = i.summary.image.image = spec.image
    if annotate:
        i.status.annotations[cri.CONTAINER_HASH_ANNOTATION] = containers.hash_container(spec)
    return i


def test_hash_is_fnv1a_32_of_the_name_and_image_json_in_hex():
    # FNV-1a 32 of '{"image":"nginx:1.25","name":"main"}', worked out by hand.
    h = 0x811C9DC5
    for byte in b'{"image":"nginx:1.25","name":"main"}':
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    assert containers.hash_container(ctr()) == format(h, "x")


@pytest.mark.parametrize("other,same", [
    (ctr(), True),
    (ctr("nginx:1.27"), False),
    (ctr(name="side"), False),
    # Fields a pod update may not change are not hashed (the apiserver refuses them).
    (ctr(env=[{"name": "A", "value": "1"}]), True),
    (ctr(resources={"limits": {"cpu": "1"}}), True),
    (ctr(command=["sleep", "1"]), True),
], ids=["same", "image", "name", "env", "resources", "command"])
def test_hash_covers_the_name_and_image_only(other, same):
    assert (containers.hash_container(other) == containers.hash_container(ctr())) is same


RUNNING_CASES = [
    # spec now, instance made from, annotated, policy, failed probe -> (message, restart now, probe)
    ("nginx:1.25", "nginx:1.25", True, "Always", None, None),
    ("nginx:1.27", "nginx:1.25", True, "Always", None,
     ("Container main definition changed, will be restarted", True, "")),
    ("nginx:1.27", "nginx:1.25", True, "Never", None,       # whatever the policy
     ("Container main definition changed, will be restarted", True, "")),
    ("nginx:1.27", "nginx:1.25", True, "Always", "Liveness",  # the change comes first
     ("Container main definition changed, will be restarted", True, "")),
    ("nginx:1.25", "nginx:1.25", False, "Always", None, None),  # made before hashes: its image
    ("nginx:1.27", "nginx:1.25", False, "Always", None,
     ("Container main definition changed, will be restarted", True, "")),
    ("nginx:1.25", "nginx:1.25", True, "Always", "Liveness",
     ("Container main failed liveness probe, will be restarted", False, "Liveness")),
    ("nginx:1.25", "nginx:1.25", True, "OnFailure", "Startup",
     ("Container main failed startup probe, will be restarted", False, "Startup")),
    ("nginx:1.25", "nginx:1.25", True, "Never", "Liveness",
     ("Container main failed liveness probe", False, "Liveness")),
]


@pytest.mark.parametrize("image,made,annotated,policy,probe,expected", RUNNING_CASES,
                         ids=["same-spec", "image-changed", "image-changed-never",
                              "change-before-probe", "unannotated-same", "unannotated-changed",
                              "liveness", "startup", "liveness-never"])
def test_running_action(image, made, annotated, policy, probe, expected):
    cur = made_from(ctr(made), annotate=annotated)
    action = containers.running_action(ctr(image), cur, policy, probe)
    got = None if action is None else (action.message, action.restart_now, action.probe)
    assert got == expected


def test_an_env_change_alone_restarts_nothing():
    # Were one to get past the apiserver, it would not restart the container either:
    # the kubelet acts on the hashed fields only (as Kubernetes does).
    cur = made_from(ctr())
    assert containers.running_action(ctr(env=[{"name": "A", "value": "1"}]), cur,
                                     "Always", None) is None
