"""Taint-based eviction: when a pod on a NoExecute-tainted node goes
(table-driven, pure), then the controller's syncs on the memory-backed
registry with a fake clock."""
from __future__ import annotations

import math

import pytest

from controller_manager import taint_eviction as te
from controller_manager.base import Options
from kubemu import timefmt
from tests.builders import obj
from tests.unit.cli_memclient import NOW_S, MemClient
from tests.unit.controller_harness import ControllerHarness

T0 = timefmt.rfc3339(NOW_S)
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def taints(*items: tuple) -> list:
    """(key, time added) NoExecute taints."""
    doc = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
           "spec": {"taints": [{"key": key, "effect": "NoExecute",
                                **({"timeAdded": added} if added else {})}
                               for key, added in items]}}
    return list(obj(doc).spec.taints)


def tolerations(*items: dict) -> list:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}],
                    "tolerations": list(items)}}
    return list(obj(doc).spec.tolerations)


def tol(key: str = "", seconds: int | None = None, effect: str = "NoExecute",
        operator: str = "Exists") -> dict:
    out = {"key": key, "operator": operator, "effect": effect}
    if seconds is not None:
        out["tolerationSeconds"] = seconds
    return out


def at(offset_s: float) -> str:
    return timefmt.rfc3339(NOW_S + offset_s)


@pytest.mark.parametrize("node_taints, pod_tolerations, expected", [
    pytest.param([(UNREACHABLE, T0)], [], None, id="untolerated"),
    pytest.param([(UNREACHABLE, T0)], [tol(NOT_READY, 300)], None, id="other-key-untolerated"),
    pytest.param([(UNREACHABLE, T0)], [tol(UNREACHABLE)], math.inf, id="forever"),
    pytest.param([(UNREACHABLE, T0)], [tol()], math.inf, id="wildcard-forever"),
    pytest.param([(UNREACHABLE, T0)], [tol(UNREACHABLE, 300)], 300, id="seconds"),
    pytest.param([(UNREACHABLE, T0)], [tol(UNREACHABLE, -5)], 0, id="negative-is-zero"),
    pytest.param([(UNREACHABLE, T0), (NOT_READY, T0)],
                 [tol(UNREACHABLE, 300), tol(NOT_READY, 30)], 30, id="smallest-of-used"),
    pytest.param([(UNREACHABLE, T0)], [tol(UNREACHABLE, 300), tol(UNREACHABLE, 5)], 300,
                 id="first-matching-toleration-is-the-one-used"),
    pytest.param([(UNREACHABLE, T0)], [tol(UNREACHABLE, 5, effect="NoSchedule")], None,
                 id="noschedule-toleration-does-not-count"),
])
def test_min_toleration_s(node_taints, pod_tolerations, expected):
    assert te.min_toleration_s(taints(*node_taints), tolerations(*pod_tolerations)) == expected


@pytest.mark.parametrize("node_taints, pod_tolerations, now_off, seen_off, due_off", [
    pytest.param([], [], 10, None, None, id="no-taints-never"),
    pytest.param([(UNREACHABLE, at(0))], [], 10, None, 10, id="untolerated-at-once"),
    pytest.param([(UNREACHABLE, at(0))], [tol(UNREACHABLE)], 10, None, None,
                 id="tolerated-forever-never"),
    pytest.param([(UNREACHABLE, at(0))], [tol(UNREACHABLE, 5)], 2, None, 5,
                 id="counts-from-time-added"),
    pytest.param([(UNREACHABLE, at(0)), (NOT_READY, at(-20))], [tol()], 2, None, None,
                 id="wildcard"),
    pytest.param([(UNREACHABLE, at(3)), (NOT_READY, at(1))],
                 [tol(UNREACHABLE, 10), tol(NOT_READY, 10)], 2, None, 11,
                 id="earliest-time-added"),
    pytest.param([(UNREACHABLE, "")], [tol(UNREACHABLE, 5)], 8, 4, 9,
                 id="no-time-added-counts-from-first-seen"),
    pytest.param([(UNREACHABLE, at(0))], [tol(UNREACHABLE, 5)], 2, 0.7, 5.7,
                 id="seen-as-added-counts-from-seen"),
    pytest.param([(UNREACHABLE, at(0))], [tol(UNREACHABLE, 5)], 40, 30, 5,
                 id="seen-later-by-a-new-leader-counts-from-time-added"),
])
def test_eviction_at_s(node_taints, pod_tolerations, now_off, seen_off, due_off):
    due = te.eviction_at_s(taints(*node_taints), tolerations(*pod_tolerations), NOW_S + now_off,
                           None if seen_off is None else NOW_S + seen_off)
    assert due == (None if due_off is None else NOW_S + due_off)


# ---------------------------------------------------------------- the controller

class Clock:
    def __init__(self) -> None:
        self.now_s = NOW_S

    def __call__(self) -> float:
        return self.now_s


def node_doc(name: str, *items: tuple) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"taints": [{"key": key, "effect": "NoExecute", "timeAdded": added}
                                for key, added in items]}}


def pod_doc(name: str, node_name: str, *pod_tolerations: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "main", "image": "busybox"}],
                     "tolerations": list(pod_tolerations)}}


@pytest.fixture
async def h():
    client = await MemClient.new()
    harness = ControllerHarness(te.TaintEvictionController, client, Options(apiserver="-"))
    harness.clock = Clock()
    harness.ctx.clock = harness.clock
    try:
        yield harness
    finally:
        await harness.stop()


async def setup(h, nodes: list[dict], pods: list[dict]) -> None:
    h.cache("nodes", [await h.client.put(doc) for doc in nodes])
    h.cache("pods", [await h.client.put(doc) for doc in pods])


async def events(h) -> list[tuple[str, str, str]]:
    await h.ctx.recorder(te.TaintEvictionController.name).flush(5.0)
    found = (await h.client.list("events", "default")).items
    return sorted((e.involved_object.name, e.reason, e.message) for e in found)


async def pod(h, name: str):
    return await h.client.get("pods", name, "default")


async def test_untolerated_pod_goes_at_once_tolerated_after_its_seconds(h):
    # (Admission gives every pod the 300 s not-ready/unreachable tolerations.)
    broken = "example.com/broken"
    await setup(h, [node_doc("n1", (broken, T0))],
                [pod_doc("bare", "n1"), pod_doc("short", "n1", tol(broken, 5)),
                 pod_doc("forever", "n1", tol(broken))])
    h.clock.now_s = NOW_S + 1
    for name in ("bare", "short", "forever"):
        await h.controller.sync(f"default/{name}")
    bare = await pod(h, "bare")
    assert bare.metadata.deletion_timestamp, "deleted at once (gracefully: its node is gone)"
    assert [(c.type, c.status, c.reason, c.message) for c in bare.status.conditions] == [
        ("DisruptionTarget", "True", "DeletionByTaintManager",
         "Taint manager: deleting due to NoExecute taint")]
    assert not (await pod(h, "short")).metadata.deletion_timestamp
    assert list(h.controller.scheduled) == ["default/short"]
    # Seen 1 s after its whole-second timeAdded: counted from the sighting.
    assert h.controller.scheduled["default/short"][2] == NOW_S + 6

    h.clock.now_s = NOW_S + 5.9
    await h.controller.sync("default/short")
    assert not (await pod(h, "short")).metadata.deletion_timestamp
    h.clock.now_s = NOW_S + 6
    await h.controller.sync("default/short")
    assert (await pod(h, "short")).metadata.deletion_timestamp
    assert not (await pod(h, "forever")).metadata.deletion_timestamp
    assert h.controller.scheduled == {}
    assert await events(h) == [
        ("bare", "TaintManagerEviction", "Marking for deletion Pod default/bare"),
        ("short", "TaintManagerEviction", "Marking for deletion Pod default/short")]


async def test_taint_removed_cancels_the_scheduled_deletion(h):
    await setup(h, [node_doc("n1", (UNREACHABLE, T0))],
                [pod_doc("p", "n1", tol(UNREACHABLE, 300))])
    await h.controller.sync("default/p")
    assert "default/p" in h.controller.scheduled
    h.cache("nodes", [obj(node_doc("n1"))])
    await h.controller.sync("default/p")
    h.clock.now_s = NOW_S + 400
    await h.controller.sync("default/p")
    assert not (await pod(h, "p")).metadata.deletion_timestamp
    assert h.controller.scheduled == {}
    assert await events(h) == [
        ("p", "TaintManagerEviction", "Cancelling deletion of Pod default/p")]


async def test_pods_elsewhere_or_already_terminating_are_left_alone(h):
    await setup(h, [node_doc("n1", ("example.com/broken", T0)), node_doc("n2")],
                [pod_doc("other", "n2"), pod_doc("going", "n1")])
    await h.client.delete("pods", "going", "default")
    h.cache("pods", (await h.client.list("pods", "default")).items)
    version = (await pod(h, "going")).metadata.resource_version
    for name in ("other", "going"):
        await h.controller.sync(f"default/{name}")
    assert not (await pod(h, "other")).metadata.deletion_timestamp
    assert (await pod(h, "going")).metadata.resource_version == version
    assert await events(h) == []


@pytest.mark.parametrize("not_ready_s, unreachable_s", [(300, 300), (5, 7)])
def test_admission_adds_the_default_tolerations_with_their_own_seconds(not_ready_s,
                                                                         unreachable_s):
    from apiserver.strategy import strategies
    from kubemu.api.kinds import REGISTRY

    kind = REGISTRY.by_resource("pods")
    strategy = strategies(REGISTRY, default_toleration_s=not_ready_s,
                          default_unreachable_toleration_s=unreachable_s)[kind]
    pod = obj(pod_doc("p", ""))
    strategy.prepare_for_create(pod)
    assert [(t.key, t.operator, t.effect, t.toleration_seconds) for t in pod.spec.tolerations] \
        == [(NOT_READY, "Exists", "NoExecute", not_ready_s),
            (UNREACHABLE, "Exists", "NoExecute", unreachable_s)]
