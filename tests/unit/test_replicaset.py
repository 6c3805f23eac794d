"""The ReplicaSet controller's sync against the apiserver's registry on the
memory store (tests/unit/cli_memclient.py), with the informer fed by hand:
a refused create sets ReplicaFailure and lowers the expectations, and a sync
while earlier creates are still unobserved creates nothing more; then the
claim every workload controller shares (an owner found terminating, an
owner being deleted), ReplicaFailure's reasons, and which pods a
scale-down takes (tests/unit/controller_harness.py)."""
from __future__ import annotations

import pytest

from controller_manager import controllerutil as cu
from controller_manager.base import Context, Options
from controller_manager.replicaset import ReplicaSetController
from kubemu import timefmt
from kubemu.api import errors, labels
from kubemu.loops import Loops
from tests.builders import make_pod, obj
from tests.unit.cli_memclient import NOW_S, MemClient
from tests.unit.controller_harness import ControllerHarness


class RefusingClient(MemClient):
    """Refuses pod creates while `refuse` is set, as a quota would."""

    refuse = False
    terminating = False  # as NamespaceLifecycle refuses a namespace being deleted

    async def create(self, o, *, dry_run: bool = False):
        if self.terminating and o.kind != "Namespace":
            raise errors.namespace_terminating(o.metadata.namespace)
        if self.refuse and o.kind == "Pod":
            raise errors.Forbidden('pods "web-x" is forbidden: exceeded quota: compute, '
                                   'requested: pods=1, used: pods=1, limited: pods=1')
        return await super().create(o, dry_run=dry_run)


class Harness:
    def __init__(self, client: MemClient):
        self.client = client
        self.ctx = Context(client, Options(apiserver="-"), Loops(), clock=lambda: NOW_S)
        self.rsc = ReplicaSetController(self.ctx)

    async def relist(self, *resources: str) -> None:
        """What the informers (or only those of `resources`) would deliver."""
        for informer in self.ctx.informers:
            if resources and informer.resource not in resources:
                continue
            informer._replace((await self.client.list_all(informer.resource)).items)
            informer.has_synced.set()

    async def sync(self, key: str = "default/web") -> BaseException | None:
        """One sync as a worker runs it; the error it raised, if any."""
        try:
            await self.rsc.sync(key)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            return exc
        return None

    async def pods(self) -> list:
        return (await self.client.list("pods", "default")).items

    async def rs(self):
        return await self.client.get("replicasets", "web", "default")


@pytest.fixture
async def h():
    harness = Harness(await RefusingClient.new())
    try:
        yield harness
    finally:
        await harness.ctx.stop()


def rs(replicas: int):
    return obj({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c",
                                                               "image": "busybox"}]}}}})


async def test_a_refused_create_sets_replica_failure_until_creates_succeed(h):
    await h.client.create(rs(2))
    h.client.refuse = True
    await h.relist()
    err = await h.sync()
    assert isinstance(err, errors.Forbidden)
    # The refused create lowered the expectation: the next sync may try again.
    assert h.rsc.expectations.pending("default/web") == (0, 0)
    got = await h.rs()
    cond = {c.type: c for c in got.status.conditions}["ReplicaFailure"]
    assert (cond.status, cond.reason) == ("True", "FailedCreate")
    assert "exceeded quota" in cond.message
    assert got.status.replicas == 0

    h.client.refuse = False
    await h.relist()
    assert await h.sync() is None
    await h.relist()
    assert await h.sync() is None
    got = await h.rs()
    assert [c.type for c in got.status.conditions] == []
    assert got.status.replicas == 2
    assert len(await h.pods()) == 2


async def test_a_sync_before_the_creates_are_observed_creates_nothing_more(h):
    await h.client.create(rs(3))
    await h.relist()
    assert await h.sync() is None
    assert len(await h.pods()) == 3
    # The informer has not delivered the pods yet (no relist): the cache says
    # 0 pods, but the expectations say 3 creations are still to be seen.
    assert h.rsc.expectations.pending("default/web") == (3, 0)
    await h.relist("replicasets")  # its status write is seen; the pods are not
    assert await h.sync() is None
    assert len(await h.pods()) == 3
    await h.relist()  # the pods arrive: creations observed
    assert h.rsc.expectations.pending("default/web") == (0, 0)
    assert await h.sync() is None
    assert len(await h.pods()) == 3


# ---------------------------------------------------------------- claim, status, ranking

def replicaset(name: str, replicas: int = 2, app: str = "web"):
    return obj({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                         "template": {"metadata": {"labels": {"app": app}},
                                      "spec": {"containers": [{"name": "c",
                                                               "image": "busybox"}]}}}})


@pytest.fixture
async def hc():
    harness = ControllerHarness(ReplicaSetController, await MemClient.new())
    try:
        yield harness
    finally:
        await harness.stop()


def pod(name: str, owner=None, app: str = "web"):
    msg = make_pod(name).labels(app=app).build()
    if owner is not None:
        msg.metadata.owner_references.append(cu.controller_ref(owner))
    return msg


async def terminating(hc: ControllerHarness, rs):
    """Delete `rs` in the store while a finalizer keeps it there (terminating)."""
    rs = await hc.client.get("replicasets", rs.metadata.name, "default")
    rs.metadata.finalizers.append("example.com/hold")
    rs = await hc.client.update(rs)
    await hc.client.delete("replicasets", rs.metadata.name, "default")
    return await hc.client.get("replicasets", rs.metadata.name, "default")


# ---------------------------------------------------------------- claim

async def test_an_owner_found_terminating_at_adoption_does_not_shorten_the_claim(hc):
    """RecheckDeletionTimestamp failing is an error of the whole claim (ClaimPods
    returns it and syncReplicaSet stops): returning the pods seen so far would
    have the sync count too few and create more."""
    rs = await hc.client.create(replicaset("web", replicas=2))
    owned_a = await hc.client.create(pod("web-a", rs))
    orphan = await hc.client.create(pod("stray"))
    owned_b = await hc.client.create(pod("web-b", rs))
    cached_rs = rs  # the cache has not seen the deletion yet
    await terminating(hc, rs)
    hc.cache("replicasets", [cached_rs])
    hc.cache("pods", [owned_a, orphan, owned_b])
    with pytest.raises(errors.Conflict):
        await hc.controller.sync("default/web")
    assert await hc.names("pods") == ["stray", "web-a", "web-b"]
    assert not cu.controller_of(await hc.client.get("pods", "stray", "default"))


async def test_an_owner_being_deleted_releases_nothing(hc):
    """ClaimObject: a pod we own that stopped matching is released, unless we
    are being deleted (the garbage collector deals with our dependents then)."""
    rs = await terminating(hc, await hc.client.create(replicaset("web", replicas=1)))
    relabeled = await hc.client.create(pod("web-a", rs, app="other"))
    claimed = await cu.claim(hc.client, rs, labels.from_label_selector(rs.spec.selector),
                             [relabeled])
    assert claimed.objects == [] and claimed.released == 0
    assert cu.controller_of(await hc.client.get("pods", "web-a", "default")).uid == rs.metadata.uid


# ---------------------------------------------------------------- status

@pytest.mark.parametrize("replicas, pods, refused, reason", [
    (2, 1, "create", "FailedCreate"),
    (0, 1, "delete", "FailedDelete"),
], ids=["create-refused", "delete-refused"])
async def test_a_refused_write_sets_replica_failure_with_its_reason(hc, monkeypatch, replicas,
                                                                   pods, refused, reason):
    rs = await hc.client.create(replicaset("web", replicas=replicas))
    existing = [await hc.client.create(pod(f"web-{i}", rs)) for i in range(pods)]

    async def refuse(*_args, **_kwargs):
        raise errors.Forbidden('pods "web" is forbidden: exceeded quota')
    monkeypatch.setattr(hc.client, refused, refuse)
    hc.cache("replicasets", [rs])
    hc.cache("pods", existing)
    await hc.controller.process("default/web")
    status = (await hc.client.get("replicasets", "web", "default")).status
    cond = cu.get_condition(status, "ReplicaFailure")
    assert (cond.status, cond.reason) == ("True", reason)
    assert "exceeded quota" in cond.message


# ---------------------------------------------------------------- scale-down ranking

def running(msg, node: str, age_s: float):
    """The cached copy of a stored pod, Running and Ready on `node`, created `age_s` ago."""
    created_s = NOW_S - age_s
    out = type(msg)()
    out.CopyFrom(msg)
    out.spec.node_name = node
    out.metadata.creation_timestamp = timefmt.rfc3339(created_s)
    out.status.phase = "Running"
    out.status.conditions.add(type="Ready", status="True",
                              last_transition_time=timefmt.rfc3339(created_s))
    return out


async def test_a_standalone_replicaset_ranks_no_pod_as_doubled_up(hc):
    """getIndirectlyRelatedPods finds nothing for a ReplicaSet without a
    controller: the newest pod goes, not one of the two sharing n1."""
    rs = await hc.client.create(replicaset("web", replicas=2))
    pods = [running(await hc.client.create(pod(name, rs)), node, age_s)
            for name, node, age_s in (("p1", "n1", 1000.0), ("p2", "n1", 990.0),
                                      ("p3", "n2", 5.0))]
    hc.cache("replicasets", [rs])
    hc.cache("pods", pods)
    await hc.controller.sync("default/web")
    assert await hc.names("pods") == ["p1", "p2"]


async def test_a_deployments_old_replicaset_scales_down_on_the_node_crowded_with_its_pods(hc):
    """The related pods are those of every ReplicaSet of the same Deployment:
    old-b shares n2 with both new pods, so it goes though old-a is newer."""
    old, new = replicaset("web-old", replicas=1, app="v1"), replicaset("web-new", replicas=2,
                                                                       app="v2")
    for rs in (old, new):
        rs.metadata.owner_references.add(api_version="apps/v1", kind="Deployment", name="web",
                                         uid="d-uid", controller=True)
    old, new = await hc.client.create(old), await hc.client.create(new)
    pods = [running(await hc.client.create(pod(name, owner, app=app)), node, age_s)
            for name, owner, app, node, age_s in (
                ("old-a", old, "v1", "n1", 5.0), ("old-b", old, "v1", "n2", 1000.0),
                ("new-a", new, "v2", "n2", 3.0), ("new-b", new, "v2", "n2", 2.0))]
    hc.cache("replicasets", [old, new])
    hc.cache("pods", pods)
    await hc.controller.sync("default/web-old")
    assert await hc.names("pods") == ["new-a", "new-b", "old-a"]


async def test_a_terminating_namespace_is_not_retried_nor_reported(h):
    """Kubernetes' ReplicaSet controller gives up quietly on the
    NamespaceTerminating refusal: no error to retry, no FailedCreate event."""
    await h.client.create(rs(2))
    h.client.terminating = True
    recorded: list[tuple] = []
    h.rsc.pod_control.recorder.record = lambda *a, **kw: recorded.append(a)
    await h.relist()
    assert await h.sync() is None
    assert await h.pods() == []
    assert [a for a in recorded if "FailedCreate" in a] == []
