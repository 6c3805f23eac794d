"""The pod garbage collector: which pods go and in what order (pure, table-
driven), the orphans' quarantine on a fake clock, then whole passes of the
controller on the memory-backed registry with its informers filled by hand
(so the cache can be made to lag behind the store on purpose)."""
from __future__ import annotations

import pytest

from controller_manager import podgc, registry
from controller_manager.base import Options
from kubemu import timefmt
from kubemu.api import errors
from tests.builders import obj
from tests.unit.cli_memclient import NOW_S, MemClient
from tests.unit.controller_harness import ControllerHarness

HOLD = "example.com/hold"   # a finalizer: a deleted pod stays to be looked at
QUARANTINE_S = 40.0


def pod_doc(name: str, node: str = "", phase: str = "", created_off_s: float = 0.0,
            reason: str = "", finalizers: tuple[str, ...] = (),
            deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}",
            "creationTimestamp": timefmt.rfc3339(NOW_S + created_off_s)}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = timefmt.rfc3339(NOW_S)
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}, "status": {}}
    if node:
        doc["spec"]["nodeName"] = node
    if phase:
        doc["status"]["phase"] = phase
    if reason:
        doc["status"]["reason"] = reason
    return doc


def pods(*docs: dict) -> list:
    return [obj(d) for d in docs]


def names(items) -> list[str]:
    return [p.metadata.name for p in items]


# ---------------------------------------------------------------- the decisions

@pytest.mark.parametrize("docs, threshold, expected", [
    pytest.param([pod_doc("a", phase="Succeeded"), pod_doc("b", phase="Failed")], 0, [],
                 id="threshold-0-keeps-all"),
    pytest.param([pod_doc("a", phase="Succeeded"), pod_doc("b", phase="Failed")], 2, [],
                 id="at-threshold-keeps-all"),
    pytest.param([pod_doc("new", phase="Succeeded", created_off_s=10),
                  pod_doc("old", phase="Failed", created_off_s=-10),
                  pod_doc("mid", phase="Succeeded")], 1, ["old", "mid"],
                 id="oldest-first"),
    pytest.param([pod_doc("b", phase="Succeeded"), pod_doc("a", phase="Succeeded"),
                  pod_doc("c", phase="Succeeded")], 1, ["a", "b"],
                 id="same-age-by-name"),
    pytest.param([pod_doc("old", phase="Succeeded", created_off_s=-100),
                  pod_doc("evicted", phase="Failed", reason="Evicted", created_off_s=50),
                  pod_doc("young", phase="Failed", created_off_s=60)], 2, ["evicted"],
                 id="evicted-first"),
    pytest.param([pod_doc("run", phase="Running", created_off_s=-100),
                  pod_doc("pend", phase="Pending", created_off_s=-100),
                  pod_doc("unk", phase="Unknown", created_off_s=-100),
                  pod_doc("new", created_off_s=-100),
                  pod_doc("done", phase="Succeeded"), pod_doc("done2", phase="Succeeded")],
                 1, ["done"], id="only-terminated-count"),
])
def test_terminated_to_delete(docs, threshold, expected):
    assert names(podgc.terminated_to_delete(pods(*docs), threshold)) == expected


OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


def node_obj(name: str, ready: str = "True", *taint_keys: str):
    return obj({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {"taints": [{"key": k, "effect": "NoExecute"} for k in taint_keys]},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}})


@pytest.mark.parametrize("node, expected", [
    pytest.param(node_obj("n", "False", OUT_OF_SERVICE), ["evicted", "old", "young"],
                 id="not-ready-out-of-service"),
    pytest.param(node_obj("n", "Unknown", OUT_OF_SERVICE), ["evicted", "old", "young"],
                 id="unknown-is-not-ready"),
    pytest.param(node_obj("n", "True", OUT_OF_SERVICE), [], id="ready-keeps-them"),
    pytest.param(node_obj("n", "False", "node.kubernetes.io/unreachable"), [],
                 id="no-out-of-service-taint"),
    pytest.param(node_obj("elsewhere", "False", OUT_OF_SERVICE), [], id="other-node"),
])
def test_terminating_out_of_service(node, expected):
    found = podgc.terminating_out_of_service(pods(
        pod_doc("young", node="n", phase="Running", deleting=True, created_off_s=5),
        pod_doc("old", node="n", phase="Running", deleting=True, created_off_s=-5),
        pod_doc("evicted", node="n", phase="Failed", reason="Evicted", deleting=True,
                created_off_s=50),
        pod_doc("staying", node="n", phase="Running")), {node.metadata.name: node})
    assert names(found) == expected


def test_unscheduled_terminating_is_deleting_and_unbound():
    found = podgc.unscheduled_terminating(pods(
        pod_doc("z-going", deleting=True, finalizers=(HOLD,)),
        pod_doc("a-going", deleting=True, finalizers=(HOLD,)),
        pod_doc("bound-going", node="n1", deleting=True, finalizers=(HOLD,)),
        pod_doc("pending")))
    assert names(found) == ["a-going", "z-going"]


def test_missing_nodes_are_the_bound_pods_unknown_nodes():
    found = podgc.missing_nodes(pods(pod_doc("a", node="n1"), pod_doc("b", node="gone"),
                                     pod_doc("c"), pod_doc("d", node="gone-2")), {"n1", "n2"})
    assert found == {"gone", "gone-2"}


# Steps: (seconds since start, missing nodes) -> the nodes due.
@pytest.mark.parametrize("steps", [
    pytest.param([(0, {"a"}, []), (39.9, {"a"}, []), (40, {"a"}, ["a"]), (41, {"a"}, ["a"])],
                 id="due-after-the-quarantine"),
    pytest.param([(0, {"a"}, []), (20, {"a", "b"}, []), (40, {"a", "b"}, ["a"]),
                  (60, {"a", "b"}, ["a", "b"])], id="each-from-its-own-start"),
    pytest.param([(0, {"a"}, []), (30, set(), []), (45, {"a"}, []), (84.9, {"a"}, []),
                  (85, {"a"}, ["a"])], id="seen-again-starts-over"),
])
def test_quarantine(steps):
    quarantine = podgc.Quarantine(QUARANTINE_S)
    for at_s, missing, due in steps:
        assert quarantine.observe(missing, NOW_S + at_s) == due, at_s
    assert set(quarantine.since_s) == steps[-1][1], "holds only the nodes missing now"


# ---------------------------------------------------------------- the controller

class Clock:
    def __init__(self) -> None:
        self.now_s = NOW_S

    def __call__(self) -> float:
        return self.now_s


def node_doc(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def make_harness(client: MemClient, **options) -> ControllerHarness:
    harness = ControllerHarness(podgc.PodGCController, client,
                                Options(apiserver="-", **options))
    harness.clock = Clock()
    harness.ctx.clock = harness.ctx.monotonic = harness.clock
    return harness


@pytest.fixture
async def h():
    harness = make_harness(await MemClient.new(), pod_gc_quarantine_s=QUARANTINE_S)
    try:
        yield harness
    finally:
        await harness.stop()


async def put_pod(client: MemClient, doc: dict):
    """Create the pod, then give it the status (and deletion) the doc says."""
    doc = {**doc, "metadata": dict(doc["metadata"])}
    deleting = doc["metadata"].pop("deletionTimestamp", None)
    status = doc.pop("status", {})
    await client.put(doc)
    if status:
        await client.set_status("pods", doc["metadata"]["name"], status)
    if deleting:
        await client.delete("pods", doc["metadata"]["name"], "default")
    return await client.get("pods", doc["metadata"]["name"], "default")


async def setup(h, nodes: list[str], docs: list[dict], *, cached_nodes: list[str] | None = None):
    node_objs = [await h.client.put(node_doc(n)) for n in nodes]
    cached = node_objs if cached_nodes is None else [obj(node_doc(n)) for n in cached_nodes]
    h.cache("nodes", cached)
    h.cache("pods", [await put_pod(h.client, d) for d in docs])


async def refresh(h) -> None:
    """The informers catch up with the store."""
    h.cache("pods", (await h.client.list("pods", "default")).items)
    h.cache("nodes", (await h.client.list("nodes")).items)


async def gc_pass(h, at_s: float) -> podgc.PassResult:
    h.clock.now_s = NOW_S + at_s
    await h.controller.sync(podgc.PASS_KEY)
    assert h.controller.last_pass is not None
    return h.controller.last_pass


async def get_pod(h, name: str):
    return await h.client.get("pods", name, "default")


async def test_orphans_go_after_the_quarantine_failed_with_the_disruption_condition(h):
    await setup(h, ["n1"], [
        pod_doc("on-n1", node="n1", phase="Running"),
        pod_doc("orphan", node="gone", phase="Running", finalizers=(HOLD,)),
        pod_doc("orphan-done", node="gone", phase="Succeeded"),
        pod_doc("unbound", phase="Pending")])
    assert (await gc_pass(h, 0)).deleted == []
    assert (await gc_pass(h, QUARANTINE_S - 0.1)).deleted == []
    assert not (await get_pod(h, "orphan")).metadata.deletion_timestamp

    done = await gc_pass(h, QUARANTINE_S)

    assert sorted(done.deleted) == ["default/orphan", "default/orphan-done"]
    assert await h.names("pods") == ["on-n1", "orphan", "unbound"]
    orphan = await get_pod(h, "orphan")    # held by its finalizer: deleted with grace 0
    assert orphan.metadata.deletion_timestamp
    assert orphan.metadata.deletion_grace_period_seconds == 0
    assert orphan.status.phase == "Failed"
    assert [(c.type, c.status, c.reason, c.message, c.last_transition_time)
            for c in orphan.status.conditions] == [
        ("DisruptionTarget", "True", "DeletionByPodGC", "PodGC: node no longer exists",
         timefmt.rfc3339(NOW_S + QUARANTINE_S))]
    assert ("delete", "pods", "on-n1") not in h.client.calls


async def test_a_node_the_cache_has_not_seen_yet_is_asked_for_before_its_pods_go(h):
    # The Node exists; the informer has not caught up with it.
    await setup(h, ["late"], [pod_doc("p", node="late", phase="Running")], cached_nodes=[])
    await gc_pass(h, 0)
    result = await gc_pass(h, QUARANTINE_S + 1)
    assert result.deleted == [] and result.failed == []
    assert ("get", "nodes", "late") in h.client.calls
    assert await h.names("pods") == ["p"]
    assert (await get_pod(h, "p")).status.phase == "Running"


async def test_a_node_back_within_the_quarantine_starts_it_over(h):
    await setup(h, [], [pod_doc("p", node="flaky", phase="Running")])
    await gc_pass(h, 0)
    h.cache("nodes", [obj(node_doc("flaky"))])
    await gc_pass(h, 30)
    h.cache("nodes", [])
    assert (await gc_pass(h, 50)).deleted == []
    assert (await gc_pass(h, 50 + QUARANTINE_S - 1)).deleted == []
    assert (await gc_pass(h, 50 + QUARANTINE_S)).deleted == ["default/p"]


async def test_unscheduled_terminating_pods_are_failed_and_force_deleted(h):
    await setup(h, ["n1"], [
        pod_doc("going", phase="Pending", finalizers=(HOLD,), deleting=True),
        pod_doc("bound-going", node="n1", phase="Running", finalizers=(HOLD,),
                deleting=True),
        pod_doc("waiting", phase="Pending")])
    going = await get_pod(h, "going")
    assert going.metadata.deletion_timestamp and not going.spec.node_name

    result = await gc_pass(h, 0)

    assert result.deleted == ["default/going"]
    going = await get_pod(h, "going")
    assert going.status.phase == "Failed"
    assert list(going.status.conditions) == [], "only an orphan gets the condition"
    assert going.metadata.deletion_grace_period_seconds == 0
    assert (await get_pod(h, "bound-going")).status.phase == "Running"
    assert (await get_pod(h, "waiting")).status.phase == "Pending"


async def test_terminating_pods_on_an_out_of_service_node_are_force_deleted(h):
    await setup(h, ["down"], [
        pod_doc("going", node="down", phase="Running", finalizers=(HOLD,), deleting=True),
        pod_doc("staying", node="down", phase="Running")])
    h.cache("nodes", [node_obj("down", "False", OUT_OF_SERVICE)])

    assert (await gc_pass(h, 0)).deleted == ["default/going"]

    going = await get_pod(h, "going")
    assert going.status.phase == "Failed" and list(going.status.conditions) == []
    assert going.metadata.deletion_grace_period_seconds == 0
    assert not (await get_pod(h, "staying")).metadata.deletion_timestamp


async def test_terminated_pods_beyond_the_threshold_go_oldest_first():
    h = make_harness(await MemClient.new(), terminated_pod_gc_threshold=2)
    try:
        # The store stamps every pod NOW_S: the cache's creationTimestamps order them.
        await setup(h, ["n1"], [pod_doc(n, node="n1", phase=p) for n, p in (
            ("a", "Succeeded"), ("b", "Failed"), ("c", "Succeeded"), ("d", "Succeeded"),
            ("live", "Running"))])
        ages = {"a": 30, "b": 10, "c": 0, "d": 20, "live": 99}
        cached = []
        for pod in (await h.client.list("pods", "default")).items:
            pod.metadata.creation_timestamp = timefmt.rfc3339(NOW_S - ages[pod.metadata.name])
            cached.append(pod)
        h.cache("pods", cached)

        result = await gc_pass(h, 0)

        assert sorted(result.deleted) == ["default/a", "default/d"]
        assert await h.names("pods") == ["b", "c", "live"]
    finally:
        await h.stop()


async def test_a_pass_deletes_at_most_its_bound_and_the_rest_next_pass():
    h = make_harness(await MemClient.new(), pod_gc_quarantine_s=0.0,
                     pod_gc_deletes_per_pass_max=2)
    try:
        await setup(h, [], [pod_doc(f"p{i}", node="gone", phase="Running") for i in range(3)])
        first = await gc_pass(h, 0)
        assert (first.deleted, first.deferred) == (["default/p0", "default/p1"], 1)
        await refresh(h)
        second = await gc_pass(h, 1)
        assert (second.deleted, second.deferred) == (["default/p2"], 0)
        assert await h.names("pods") == []
    finally:
        await h.stop()


async def test_a_failed_delete_is_logged_and_tried_again_next_pass(h, monkeypatch):
    await setup(h, [], [pod_doc("p", node="gone", phase="Running")])
    await gc_pass(h, 0)
    real_delete = h.client.delete

    async def timing_out(*args, **kwargs):
        raise errors.Timeout("the server was unable to return a response in the time allotted")

    monkeypatch.setattr(h.client, "delete", timing_out)
    assert (await gc_pass(h, QUARANTINE_S)).failed == ["default/p"]
    assert await h.names("pods") == ["p"]
    monkeypatch.setattr(h.client, "delete", real_delete)
    await refresh(h)
    assert (await gc_pass(h, QUARANTINE_S + 1)).deleted == ["default/p"]
    assert await h.names("pods") == []


async def test_a_node_lookup_that_fails_keeps_its_pods_until_a_later_pass(h, monkeypatch):
    await setup(h, [], [pod_doc("p", node="gone", phase="Running")])
    await gc_pass(h, 0)
    real_get = h.client.get

    async def unavailable(resource, name, namespace=""):
        if resource == "nodes":
            raise errors.Unavailable("etcdserver: leader changed")
        return await real_get(resource, name, namespace)

    monkeypatch.setattr(h.client, "get", unavailable)
    result = await gc_pass(h, QUARANTINE_S)
    assert (result.deleted, result.failed) == ([], [])
    assert (await get_pod(h, "p")).status.phase == "Running"
    monkeypatch.setattr(h.client, "get", real_get)
    assert (await gc_pass(h, QUARANTINE_S + 1)).deleted == ["default/p"]


async def test_a_pod_recreated_under_the_same_name_is_not_the_one_deleted(h):
    await setup(h, [], [pod_doc("p", node="gone", phase="Running")])
    stale = h.ctx.informers.get("pods").list()
    await h.client.delete("pods", "p", "default", grace_period_s=0)
    new = pod_doc("p", node="gone", phase="Running")
    new["metadata"]["uid"] = "uid-second"
    await put_pod(h.client, new)
    h.cache("pods", stale)
    await gc_pass(h, 0)

    await gc_pass(h, QUARANTINE_S)

    fresh = await get_pod(h, "p")
    assert fresh.status.phase == "Running" and not fresh.metadata.deletion_timestamp


async def test_the_first_pass_is_queued_at_start():
    h = make_harness(await MemClient.new())
    try:
        assert len(h.controller.queue) == 1
    finally:
        await h.stop()


# ---------------------------------------------------------------- registry and flags

def test_on_by_default_under_its_kubernetes_names():
    assert podgc.PodGCController in registry.select(["*"])
    assert registry.select(["podgc"]) == registry.select(["pod-garbage-collector-controller"]) \
        == [podgc.PodGCController]
    assert podgc.PodGCController not in registry.select(["*", "-podgc"])


def test_flags_reach_the_options():
    from controller_manager.__main__ import options_from, parse_args

    options = options_from(parse_args([
        "--apiserver", "127.0.0.1:1", "--pod-gc-period", "1s", "--pod-gc-quarantine", "5s",
        "--terminated-pod-gc-threshold", "0"]), "127.0.0.1:1")
    assert (options.pod_gc_period_s, options.pod_gc_quarantine_s,
            options.terminated_pod_gc_threshold) == (1.0, 5.0, 0)
    defaults = options_from(parse_args(["--apiserver", "127.0.0.1:1"]), "127.0.0.1:1")
    assert (defaults.pod_gc_period_s, defaults.pod_gc_quarantine_s,
            defaults.terminated_pod_gc_threshold) == (20.0, 40.0, 12500)


@pytest.mark.parametrize("flag, value", [
    ("--pod-gc-period", "0s"),
    ("--pod-gc-quarantine", "-1s"),
    ("--terminated-pod-gc-threshold", "-1"),
])
def test_bad_flags_are_refused(flag, value):
    from controller_manager.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--apiserver", "127.0.0.1:1", flag, value])
