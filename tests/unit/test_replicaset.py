"""The ReplicaSet controller and the claim it shares with every workload
controller, on the apiserver's registry over the in-memory store (a fake
client, tests/unit/apistore.py)."""
from __future__ import annotations

import pytest

from controller_manager import controllerutil as cu
from controller_manager.replicaset import ReplicaSetController
from kubemu import timefmt
from kubemu.api import errors, labels
from tests.builders import make_pod, obj
from tests.unit.apistore import NOW_S, ControllerHarness


def replicaset(name: str, replicas: int = 2, app: str = "web"):
    return obj({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                         "template": {"metadata": {"labels": {"app": app}},
                                      "spec": {"containers": [{"name": "c",
                                                               "image": "busybox"}]}}}})


class Harness(ControllerHarness):
    def __init__(self):
        super().__init__(ReplicaSetController)
        self.rsc = self.controller

    async def pods(self) -> list:
        return await self.client.list_all("pods")


@pytest.fixture
async def h():
    harness = Harness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def pod(name: str, owner=None, app: str = "web"):
    msg = make_pod(name).labels(app=app).build()
    if owner is not None:
        msg.metadata.owner_references.append(cu.controller_ref(owner))
    return msg


async def terminating(h: Harness, rs):
    """Delete `rs` in the store while a finalizer keeps it there (terminating)."""
    rs = await h.client.get("replicasets", rs.metadata.name, "default")
    rs.metadata.finalizers.append("example.com/hold")
    rs = await h.client.update(rs)
    await h.client.delete("replicasets", rs.metadata.name, "default")
    return await h.client.get("replicasets", rs.metadata.name, "default")


# ---------------------------------------------------------------- claim

async def test_an_owner_found_terminating_at_adoption_does_not_shorten_the_claim(h):
    """RecheckDeletionTimestamp failing is an error of the whole claim (ClaimPods
    returns it and syncReplicaSet stops): returning the pods seen so far would
    have the sync count too few and create more."""
    rs = await h.client.create(replicaset("web", replicas=2))
    owned_a = await h.client.create(pod("web-a", rs))
    orphan = await h.client.create(pod("stray"))
    owned_b = await h.client.create(pod("web-b", rs))
    cached_rs = rs  # the cache has not seen the deletion yet
    await terminating(h, rs)
    h.cache("replicasets", [cached_rs])
    h.cache("pods", [owned_a, orphan, owned_b])
    with pytest.raises(errors.Conflict):
        await h.rsc.sync("default/web")
    assert sorted(p.metadata.name for p in await h.pods()) == ["stray", "web-a", "web-b"]
    assert not cu.controller_of(await h.client.get("pods", "stray", "default"))


async def test_an_owner_being_deleted_releases_nothing(h):
    """ClaimObject: a pod we own that stopped matching is released, unless we
    are being deleted (the garbage collector deals with our dependents then)."""
    rs = await terminating(h, await h.client.create(replicaset("web", replicas=1)))
    relabeled = await h.client.create(pod("web-a", rs, app="other"))
    claimed = await cu.claim(h.client, rs, labels.from_label_selector(rs.spec.selector),
                             [relabeled])
    assert claimed.objects == [] and claimed.released == 0
    assert cu.controller_of(await h.client.get("pods", "web-a", "default")).uid == rs.metadata.uid


# ---------------------------------------------------------------- status

@pytest.mark.parametrize("replicas, pods, refused, reason", [
    (2, 1, "create", "FailedCreate"),
    (0, 1, "delete", "FailedDelete"),
], ids=["create-refused", "delete-refused"])
async def test_a_refused_write_sets_replica_failure_with_its_reason(h, monkeypatch, replicas,
                                                                   pods, refused, reason):
    rs = await h.client.create(replicaset("web", replicas=replicas))
    existing = [await h.client.create(pod(f"web-{i}", rs)) for i in range(pods)]

    async def refuse(*_args, **_kwargs):
        raise errors.Forbidden('pods "web" is forbidden: exceeded quota')
    monkeypatch.setattr(h.client, refused, refuse)
    h.cache("replicasets", [rs])
    h.cache("pods", existing)
    await h.rsc.process("default/web")
    status = (await h.client.get("replicasets", "web", "default")).status
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


async def test_a_standalone_replicaset_ranks_no_pod_as_doubled_up(h):
    """getIndirectlyRelatedPods finds nothing for a ReplicaSet without a
    controller: the newest pod goes, not one of the two sharing n1."""
    rs = await h.client.create(replicaset("web", replicas=2))
    pods = [running(await h.client.create(pod(name, rs)), node, age_s)
            for name, node, age_s in (("p1", "n1", 1000.0), ("p2", "n1", 990.0),
                                      ("p3", "n2", 5.0))]
    h.cache("replicasets", [rs])
    h.cache("pods", pods)
    await h.rsc.sync("default/web")
    assert sorted(p.metadata.name for p in await h.pods()) == ["p1", "p2"]


async def test_a_deployments_old_replicaset_scales_down_on_the_node_crowded_with_its_pods(h):
    """The related pods are those of every ReplicaSet of the same Deployment:
    old-b shares n2 with both new pods, so it goes though old-a is newer."""
    old, new = replicaset("web-old", replicas=1, app="v1"), replicaset("web-new", replicas=2,
                                                                       app="v2")
    for rs in (old, new):
        rs.metadata.owner_references.add(api_version="apps/v1", kind="Deployment", name="web",
                                         uid="d-uid", controller=True)
    old, new = await h.client.create(old), await h.client.create(new)
    pods = [running(await h.client.create(pod(name, owner, app=app)), node, age_s)
            for name, owner, app, node, age_s in (
                ("old-a", old, "v1", "n1", 5.0), ("old-b", old, "v1", "n2", 1000.0),
                ("new-a", new, "v2", "n2", 3.0), ("new-b", new, "v2", "n2", 2.0))]
    h.cache("replicasets", [old, new])
    h.cache("pods", pods)
    await h.rsc.sync("default/web-old")
    assert sorted(p.metadata.name for p in await h.pods()) == ["new-a", "new-b", "old-a"]
