"""The ReplicaSet controller's sync against the apiserver's registry on the
memory store (tests/unit/cli_memclient.py), with the informer fed by hand:
a refused create sets ReplicaFailure and lowers the expectations, and a sync
while earlier creates are still unobserved creates nothing more."""
from __future__ import annotations

import pytest

from controller_manager.base import Context, Options
from controller_manager.replicaset import ReplicaSetController
from kubemu.api import errors
from kubemu.loops import Loops
from tests.builders import obj
from tests.unit.cli_memclient import NOW_S, MemClient


class RefusingClient(MemClient):
    """Refuses pod creates while `refuse` is set, as a quota would."""

    refuse = False

    async def create(self, o, *, dry_run: bool = False):
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
