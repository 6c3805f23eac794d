"""The garbage collector: the owner graph and the decisions (pure, table-driven),
then the whole controller on the apiserver's own registry over the in-memory
store (a fake client; the informers are fed by relisting that store after
every step), which gives the real finalizer and deletion semantics."""
from __future__ import annotations

import asyncio
import random

import pytest

from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from controller_manager.base import Context, Options
from controller_manager.garbagecollector import (
    BACKGROUND, DELETE, FOREGROUND, NOTHING, ORPHAN, REMOVE_REFS, AbsentOwners, Classified,
    Decision, GarbageCollector, Graph, Identity, Observed, Ref, decide, gc_resources)
from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from kubemu.client.clientset import DeleteResult
from kubemu.client.wait import wait_for
from kubemu.loops import Loops
from tests.builders import make_pod, obj

NOW_S = 1_800_000_000.0


# ---------------------------------------------------------------- graph


def ident(name: str, kind: str = "Pod", namespace: str = "default") -> Identity:
    api_version = {"Pod": "v1", "ConfigMap": "v1", "Node": "v1"}.get(kind, "apps/v1")
    return Identity(api_version, kind, namespace, name, f"uid-{name}")


def ref(name: str, kind: str = "ReplicaSet", block: bool = True) -> Ref:
    api_version = "v1" if kind in ("Pod", "ConfigMap", "Node") else "apps/v1"
    return Ref(api_version, kind, name, f"uid-{name}", controller=True, block_owner_deletion=block)


def seen(name: str, *owners: Ref, kind: str = "Pod", deleting: str = "",
         namespace: str = "default") -> Observed:
    """An object as an informer delivers it; `deleting` names the finalizer it
    is being deleted with ("-" for a plain deletionTimestamp)."""
    finalizers = (deleting,) if deleting and deleting != "-" else ()
    return Observed(ident(name, kind, namespace), owners, bool(deleting), finalizers)


RS = "ReplicaSet"


def run_steps(steps):
    """Apply steps to a fresh graph; the outcome of the last one, and the graph."""
    graph = Graph()
    out = None
    for step in steps:
        op, *args = step
        if op == "add":
            out = graph.observe(args[0])
        elif op == "update":
            out = graph.observe(args[1], args[0])
        elif op == "delete":
            out = graph.observe_delete(args[0])
        elif op == "virtual-delete":
            out = graph.virtual_delete(args[0])
        else:
            raise AssertionError(op)
    return out, graph


GRAPH_CASES = [
    pytest.param(
        [("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs")))],
        [], [], id="dependent-of-an-observed-owner-asks-nothing"),
    pytest.param(
        [("add", seen("p1", ref("rs")))],
        ["uid-rs"], [], id="unknown-owner-becomes-a-virtual-node-to-check"),
    pytest.param(
        [("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs"))),
         ("add", seen("p2", ref("rs"))), ("delete", seen("rs", kind=RS))],
        ["uid-p1", "uid-p2"], [], id="owner-deleted-its-dependents-are-attempted"),
    pytest.param(
        [("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs"))),
         ("update", seen("rs", kind=RS), seen("rs", kind=RS, deleting="foregroundDeletion"))],
        ["uid-p1", "uid-rs"], [], id="foreground-starts-attempts-dependents-and-owner"),
    pytest.param(
        [("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs"))),
         ("update", seen("rs", kind=RS), seen("rs", kind=RS, deleting="orphan"))],
        [], ["uid-rs"], id="orphan-starts-attempts-to-orphan"),
    pytest.param(
        [("add", seen("rs", kind=RS, deleting="orphan"))],
        [], ["uid-rs"], id="orphan-seen-first-in-a-list-still-starts"),
    pytest.param(
        [("add", seen("rs", kind=RS, deleting="orphan")),
         ("update", seen("rs", kind=RS, deleting="orphan"),
          seen("rs", kind=RS, deleting="orphan"))],
        [], [], id="orphan-already-started-is-no-new-transition"),
    pytest.param(
        [("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs"))),
         ("update", seen("rs", kind=RS), seen("rs", kind=RS, deleting="foregroundDeletion")),
         ("delete", seen("p1", ref("rs")))],
        ["uid-rs"], [], id="blocking-dependent-gone-owner-waiting-is-attempted"),
    pytest.param(
        [("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs"))),
         ("update", seen("rs", kind=RS), seen("rs", kind=RS, deleting="foregroundDeletion")),
         ("update", seen("p1", ref("rs")), seen("p1"))],
        ["uid-rs"], [], id="blocking-reference-removed-owner-is-attempted"),
    pytest.param(
        [("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs"))),
         ("update", seen("p1", ref("rs")), seen("p1", ref("rs", block=False)))],
        ["uid-rs"], [], id="reference-unblocked-owner-is-attempted"),
    pytest.param(
        [("add", seen("p1", ref("rs"))), ("virtual-delete", ident("rs", RS))],
        ["uid-p1"], [], id="virtual-owner-absent-its-dependents-are-attempted"),
    pytest.param(
        [("add", seen("rs", kind=RS, namespace="other")), ("add", seen("p1", ref("rs")))],
        ["uid-p1"], [], id="owner-in-another-namespace-dependent-is-attempted"),
    pytest.param(
        [("add", seen("p1", ref("n1", kind="Node"))),
         ("add", seen("n1", kind="Node", namespace=""))],
        [], [], id="cluster-scoped-virtual-owner-observed-as-named"),
]


@pytest.mark.parametrize("steps, deletes, orphans", GRAPH_CASES)
def test_graph_asks_for_the_right_work(steps, deletes, orphans):
    out, _ = run_steps(steps)
    assert (out.attempt_delete, out.attempt_orphan) == (deletes, orphans)


def test_graph_keeps_owners_and_dependents_consistent():
    _, graph = run_steps([
        ("add", seen("p1", ref("a"), ref("b"))),  # both owners virtual
        ("add", seen("a", kind=RS)),
        ("update", seen("p1", ref("a"), ref("b")), seen("p1", ref("a"))),
    ])
    assert graph.get("uid-a").observed and graph.get("uid-a").dependents == {"uid-p1"}
    assert not graph.get("uid-b").observed and graph.get("uid-b").dependents == set()
    out = graph.observe_delete(seen("a", kind=RS))
    assert out.attempt_delete == ["uid-p1"]
    assert graph.get("uid-a") is None and ident("a", RS) in graph.absent


def test_graph_reports_an_owner_in_another_namespace():
    out, _ = run_steps([("add", seen("rs", kind=RS, namespace="other")),
                        ("add", seen("p1", ref("rs")))])
    assert out.invalid_namespace == [(ident("p1"), ref("rs"))]


def test_graph_with_both_finalizers_orphans_first():
    # Two deletions asking for both (an apiserver that keeps both; Kubernetes
    # swaps one for the other): orphaning goes first, no dependent is attempted.
    both = Observed(ident("rs", RS), (), True, ("orphan", "foregroundDeletion"))
    out, graph = run_steps([("add", seen("rs", kind=RS)), ("add", seen("p1", ref("rs"))),
                            ("update", seen("rs", kind=RS), both)])
    assert (out.attempt_orphan, out.attempt_delete) == (["uid-rs"], [])
    assert graph.get("uid-rs").deleting_dependents


def test_graph_resync_finds_virtual_and_waiting_owners():
    _, graph = run_steps([
        ("add", seen("p1", ref("gone"))),
        ("add", seen("fg", kind=RS, deleting="foregroundDeletion")),
        ("add", seen("or", kind=RS, deleting="orphan")),
        ("add", seen("ok", kind=RS)),
    ])
    out = graph.resync()
    assert sorted(out.attempt_delete) == ["uid-fg", "uid-gone"]
    assert out.attempt_orphan == ["uid-or"]


def test_absent_owner_cache_is_bounded_lru():
    cache = AbsentOwners(max_len=2)
    a, b, c = ident("a"), ident("b"), ident("c")
    cache.add(a)
    cache.add(b)
    assert a in cache  # a is now the most recent
    cache.add(c)
    assert (a in cache, b in cache, c in cache, len(cache)) == (True, False, True, 2)


def test_gc_watches_every_kind_but_events_and_leases():
    resources = gc_resources()
    assert "events" not in resources and "leases" not in resources
    assert {"pods", "replicasets", "deployments", "statefulsets", "daemonsets", "jobs",
            "cronjobs", "persistentvolumeclaims", "configmaps", "secrets", "services",
            "endpoints"} <= set(resources)
    if "controllerrevisions" in {k.resource for k in REGISTRY.kinds}:
        assert "controllerrevisions" in resources


# ---------------------------------------------------------------- decisions

R1, R2 = ref("a"), ref("b")
DECIDE_CASES = [
    pytest.param(Classified(solid=(R1,)), False, False, (), Decision(NOTHING),
                 id="solid-owner-keeps-it"),
    pytest.param(Classified(solid=(R1,), dangling=(R2,)), False, False, (),
                 Decision(REMOVE_REFS, ("uid-b",)), id="solid-and-dangling-drops-the-reference"),
    pytest.param(Classified(solid=(R1,), waiting=(R2,)), True, False, (),
                 Decision(REMOVE_REFS, ("uid-b",)), id="solid-and-waiting-drops-the-reference"),
    pytest.param(Classified(dangling=(R1,)), False, False, (), Decision(DELETE, policy=BACKGROUND),
                 id="only-dangling-deletes-in-background"),
    pytest.param(Classified(dangling=(R1, R2)), False, False, ("orphan",),
                 Decision(DELETE, policy=ORPHAN), id="own-orphan-finalizer-is-honoured"),
    pytest.param(Classified(dangling=(R1,)), False, False, ("foregroundDeletion",),
                 Decision(DELETE, policy=FOREGROUND), id="own-foreground-finalizer-is-honoured"),
    pytest.param(Classified(waiting=(R1,)), True, False, (), Decision(DELETE, policy=FOREGROUND),
                 id="waiting-owner-with-dependents-deletes-in-foreground"),
    pytest.param(Classified(waiting=(R1,)), True, True, (),
                 Decision(DELETE, policy=FOREGROUND, unblock=True),
                 id="cycle-of-foreground-owners-unblocks-first"),
    pytest.param(Classified(waiting=(R1,)), False, False, (), Decision(DELETE, policy=BACKGROUND),
                 id="waiting-owner-leaf-deletes-in-background"),
]


@pytest.mark.parametrize("refs, has_deps, dep_deleting, finalizers, want", DECIDE_CASES)
def test_decide(refs, has_deps, dep_deleting, finalizers, want):
    assert decide(refs, has_dependents=has_deps, dependent_deleting_dependents=dep_deleting,
                  finalizers=finalizers) == want


# ---------------------------------------------------------------- the controller on a fake store


class StoreClient:
    """The Client calls the garbage collector makes, served by the apiserver's
    ObjectRegistry on a MemoryStore; every write is logged."""

    def __init__(self, registry: ObjectRegistry):
        self.registry = registry
        self.writes: list[tuple] = []

    async def get(self, resource, name, namespace=""):
        return await self.registry.get(REGISTRY.resolve(resource), namespace, name)

    async def create(self, obj):
        kind = REGISTRY.by_message(obj)
        return await self.registry.create(kind, obj.metadata.namespace, obj)

    async def update(self, obj):
        self.writes.append(("update", obj.metadata.name, obj.metadata.resource_version))
        return await self.registry.update(REGISTRY.by_message(obj), obj)

    async def patch(self, resource, name, namespace="", *, patch, status=False, dry_run=False):
        import json
        return await self.registry.patch(REGISTRY.resolve(resource), namespace, name,
                                         json.dumps(patch))

    async def delete(self, resource, name, namespace="", *, grace_period_s=None,
                     propagation_policy="", uid="", resource_version="", **_):
        self.writes.append(("delete", name, propagation_policy, bool(uid),
                            bool(resource_version)))
        out, deleted = await self.registry.delete(
            REGISTRY.resolve(resource), namespace, name, grace_period_s=grace_period_s,
            propagation_policy=propagation_policy, uid=uid, resource_version=resource_version)
        return DeleteResult(object=out, deleted=deleted)

    async def list_all(self, resource, namespace="", **_):
        kind = REGISTRY.resolve(resource)
        items, _, _, _ = await self.registry.list(kind, namespace, None, 0, "")
        return items


class Harness:
    def __init__(self):
        self.registry = ObjectRegistry(MemoryStore(), {}, rng=random.Random(7),
                                       clock=lambda: NOW_S)
        self.client = StoreClient(self.registry)
        self.ctx = Context(self.client, Options(apiserver="-"), Loops(), clock=lambda: NOW_S)
        self.gc = GarbageCollector(self.ctx)

    async def start(self):
        await self.registry.create(REGISTRY.by_resource("namespaces"), "",
                                   core_pb2.Namespace(metadata={"name": "default"}))
        await self.settle()

    async def relist(self) -> None:
        """What the informers would deliver: each one's store replaced by a list."""
        for informer in self.ctx.informers:
            items = await self.client.list_all(informer.resource)
            informer._replace(items)  # the informer's own diff -> add/update/delete handlers
            informer.has_synced.set()

    async def settle(self, rounds_max: int = 50) -> None:
        """Relist and work off the queue until nothing is left to do."""
        for _ in range(rounds_max):
            await self.relist()
            queue = self.gc.queue
            if len(queue) == 0:
                return
            while len(queue):
                key = queue.get_nowait()
                try:
                    await self.gc.process(key)
                finally:
                    queue.done(key)
        raise AssertionError(f"the garbage collector did not settle: {len(self.gc.queue)} keys")

    async def create(self, msg):
        return await self.client.create(msg)

    async def exists(self, resource, name) -> bool:
        try:
            await self.client.get(resource, name, "default")
        except errors.NotFound:
            return False
        return True

    async def stop(self):
        await self.ctx.stop()


@pytest.fixture
async def h():
    harness = Harness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def rs(name: str):
    return obj({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "c",
                                                               "image": "busybox"}]}}}})


def owned(msg, *owners, block: bool = True):
    for owner in owners:
        msg.metadata.owner_references.add(
            api_version="apps/v1", kind="ReplicaSet", name=owner.metadata.name,
            uid=owner.metadata.uid, controller=len(msg.metadata.owner_references) == 0,
            block_owner_deletion=block)
    return msg


def pod(name: str, *owners, finalizers: tuple[str, ...] = ()):
    msg = obj(make_pod(name).doc)
    msg.metadata.finalizers.extend(finalizers)
    return owned(msg, *owners)


async def test_background_deletion_removes_dependents(h):
    owner = await h.create(rs("web"))
    for name in ("p1", "p2"):
        await h.create(pod(name, owner))
    await h.settle()
    await h.client.delete("replicasets", "web", "default")
    await h.settle()
    assert not await h.exists("pods", "p1") and not await h.exists("pods", "p2")
    deletes = [w for w in h.client.writes if w[0] == "delete" and w[1] != "web"]
    # Background, with uid and resourceVersion preconditions.
    assert sorted(deletes) == [("delete", "p1", BACKGROUND, True, True),
                               ("delete", "p2", BACKGROUND, True, True)]


async def test_foreground_deletion_keeps_the_owner_until_blocking_dependents_are_gone(h):
    owner = await h.create(rs("web"))
    await h.create(pod("held", owner, finalizers=("example.com/hold",)))
    await h.create(pod("free", owner))
    await h.settle()
    await h.client.delete("replicasets", "web", "default", propagation_policy=FOREGROUND)
    await h.settle()
    kept = await h.client.get("replicasets", "web", "default")
    assert kept.metadata.deletion_timestamp and list(kept.metadata.finalizers) == \
        ["foregroundDeletion"]
    held = await h.client.get("pods", "held", "default")
    assert held.metadata.deletion_timestamp and not await h.exists("pods", "free")
    # The last blocking dependent goes: the owner's finalizer is removed, so it goes too.
    held.metadata.ClearField("finalizers")
    await h.client.update(held)
    await h.settle()
    assert not await h.exists("pods", "held") and not await h.exists("replicasets", "web")
    finalizer_writes = [w for w in h.client.writes if w[:2] == ("update", "web")]
    assert finalizer_writes and all(rv for _, _, rv in finalizer_writes), \
        "the finalizer removal is conditioned on a resourceVersion"


async def test_foreground_is_transitive(h):
    top = await h.create(obj({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "top", "namespace": "default"}}))
    mid = rs("mid")
    mid.metadata.owner_references.add(api_version="v1", kind="ConfigMap", name="top",
                                      uid=top.metadata.uid, block_owner_deletion=True)
    mid = await h.create(mid)
    await h.create(pod("leaf", mid, finalizers=("example.com/hold",)))
    await h.settle()
    await h.client.delete("configmaps", "top", "default", propagation_policy=FOREGROUND)
    await h.settle()
    # mid is deleted in the foreground in turn and waits for leaf; top waits for mid.
    got_mid = await h.client.get("replicasets", "mid", "default")
    assert list(got_mid.metadata.finalizers) == ["foregroundDeletion"]
    assert await h.exists("configmaps", "top")
    leaf = await h.client.get("pods", "leaf", "default")
    leaf.metadata.ClearField("finalizers")
    await h.client.update(leaf)
    await h.settle()
    assert not any([await h.exists("pods", "leaf"), await h.exists("replicasets", "mid"),
                    await h.exists("configmaps", "top")])


async def test_orphan_deletion_leaves_dependents_without_the_reference(h):
    owner = await h.create(rs("web"))
    other = await h.create(rs("other"))
    await h.create(pod("p1", owner))
    await h.create(pod("p2", owner, other))
    await h.settle()
    await h.client.delete("replicasets", "web", "default", propagation_policy=ORPHAN)
    await h.settle()
    assert not await h.exists("replicasets", "web")
    p1 = await h.client.get("pods", "p1", "default")
    p2 = await h.client.get("pods", "p2", "default")
    assert list(p1.metadata.owner_references) == []
    assert [r.name for r in p2.metadata.owner_references] == ["other"]


async def test_dangling_reference_from_the_start_is_cleaned_up(h):
    ghost = rs("ghost")
    ghost.metadata.uid = "uid-never-existed"
    await h.create(pod("lonely", ghost))
    await h.settle()
    assert not await h.exists("pods", "lonely")


async def test_dependent_with_two_owners_survives_one_of_them(h):
    a = await h.create(rs("a"))
    b = await h.create(rs("b"))
    await h.create(pod("shared", a, b))
    await h.settle()
    await h.client.delete("replicasets", "a", "default")
    await h.settle()
    shared = await h.client.get("pods", "shared", "default")
    assert [r.name for r in shared.metadata.owner_references] == ["b"]
    await h.client.delete("replicasets", "b", "default")
    await h.settle()
    assert not await h.exists("pods", "shared")


async def test_owner_replaced_by_a_new_uid_counts_as_gone(h):
    old = await h.create(rs("web"))
    await h.create(pod("p1", old))
    await h.settle()
    # Deleted and created again under the same name between two looks.
    await h.registry.delete(REGISTRY.by_resource("replicasets"), "default", "web",
                            grace_period_s=None, propagation_policy="Orphan")
    await h.settle()  # orphaned: p1 lost its reference
    p1 = await h.client.get("pods", "p1", "default")
    assert list(p1.metadata.owner_references) == []
    new = await h.create(rs("web"))
    stale = pod("p2", old)
    await h.create(stale)
    await h.settle()
    assert new.metadata.uid != old.metadata.uid
    assert not await h.exists("pods", "p2") and await h.exists("replicasets", "web")


async def test_finalizer_removal_retries_a_conflict_and_keeps_the_other_writer(h, monkeypatch):
    owner = await h.create(rs("web"))
    owner.metadata.finalizers.append("example.com/keep")
    owner = await h.client.update(owner)
    await h.create(pod("p1", owner))
    await h.settle()
    real_update = h.client.update
    raced = []

    async def racing_update(msg):
        if msg.metadata.name == "web" and not raced:
            # Another writer changes the owner between our read and our write.
            current = await h.client.get("replicasets", "web", "default")
            current.metadata.labels["touched"] = "yes"
            raced.append(await real_update(current))
        return await real_update(msg)
    monkeypatch.setattr(h.client, "update", racing_update)
    await h.client.delete("replicasets", "web", "default", propagation_policy=ORPHAN)
    await h.settle()
    got = await h.client.get("replicasets", "web", "default")
    assert raced and got.metadata.labels["touched"] == "yes"
    assert list(got.metadata.finalizers) == ["example.com/keep"]


@pytest.mark.parametrize("owner_exists", [True, False], ids=["owner-exists", "owner-never-did"])
async def test_cluster_scoped_dependent_of_a_namespaced_owner_is_reported_and_kept(
        h, owner_exists):
    owner = await h.create(rs("web")) if owner_exists else rs("web")
    if not owner_exists:
        owner.metadata.uid = "uid-never-existed"
    node = obj({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    owned(node, owner)
    await h.create(node)
    await h.settle()
    assert await h.exists("nodes", "n1")
    assert not [w for w in h.client.writes if w[0] == "delete"]

    async def reported():
        items, _, _, _ = await h.registry.list(REGISTRY.by_resource("events"), "default",
                                               None, 0, "")
        return [e for e in items if e.reason == "OwnerRefInvalidNamespace"]
    # The recorder writes from its own tasks.
    events = await wait_for(reported, 5.0, interval_s=0.01, message="OwnerRefInvalidNamespace")
    assert events[0].involved_object.name == "n1" and events[0].type == "Warning"


@pytest.mark.parametrize("api_version, kind, resource", [
    ("apps/v1", "ReplicaSet", "replicasets"), ("apps/v1beta2", "ReplicaSet", "replicasets"),
    ("v1", "Pod", "pods"), ("extensions/v1beta1", "ReplicaSet", None),
    ("apps/v1", "Nonesuch", None),
], ids=["served", "other-version", "core", "other-group", "unknown-kind"])
def test_a_reference_resolves_to_the_served_kind_of_its_group(api_version, kind, resource):
    from controller_manager.garbagecollector import _kind_of
    found = _kind_of(api_version, kind)
    assert (found.resource if found else None) == resource


async def test_a_sweep_that_fails_does_not_end_the_periodic_sweeps(h, monkeypatch):
    """The resync task runs beside the workers: an exception must not end it
    silently (nothing would look at its result until the term ends)."""
    calls = []
    real_resync = h.gc.graph.resync

    def resync():
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("a bug in one sweep")
        return real_resync()
    monkeypatch.setattr(h.gc.graph, "resync", resync)
    monkeypatch.setattr(h.gc.options, "gc_resync_s", 0.01)
    sweeps = asyncio.get_running_loop().create_task(h.gc._resync_loop())
    try:
        await wait_for(lambda: len(calls) >= 2, 5.0)
    finally:
        sweeps.cancel()
        await asyncio.gather(sweeps, return_exceptions=True)
