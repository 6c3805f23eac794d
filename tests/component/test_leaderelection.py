"""Leader election on a real Lease in a real apiserver: one leader at a time,
a released lease is taken over at once, an abandoned one after it expires.
Each test's Lease is in a namespace of its own on the worker's shared
etcd + apiserver (kubemu.testing)."""
from __future__ import annotations

import asyncio

from kubemu.client.leaderelection import LeaderElector
from kubemu.client.wait import wait_for

TIMING = dict(lease_duration_s=1.5, renew_deadline_s=1.0, retry_period_s=0.2)


def candidate(api, ns, identity, leading: dict):
    elector = LeaderElector(api, ns, "test-lock", identity, **TIMING)

    async def lead():
        leading[identity] = True
        await asyncio.Event().wait()  # lead until cancelled

    def stop():
        leading[identity] = False

    return elector, asyncio.create_task(elector.run(lead, stop))


async def test_one_leader_then_handover(api, ns):
    leading: dict[str, bool] = {}
    a, task_a = candidate(api, ns, "a", leading)
    await wait_for(lambda: leading.get("a"), 10)
    b, task_b = candidate(api, ns, "b", leading)
    try:
        lease = await api.get("leases", "test-lock", ns)
        assert lease.spec.holder_identity == "a"
        # b keeps observing a valid lease held by a and never leads meanwhile.
        await wait_for(lambda: b.leader == "a", 5)
        assert not leading.get("b")

        task_a.cancel()  # a graceful stop releases the lease
        await asyncio.gather(task_a, return_exceptions=True)
        assert leading["a"] is False
        await wait_for(lambda: leading.get("b"), 5)
        lease = await api.get("leases", "test-lock", ns)
        assert lease.spec.holder_identity == "b"
        assert lease.spec.lease_transitions >= 1
    finally:
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)


async def test_an_abandoned_lease_is_taken_over_after_it_expires(api, ns):
    leading: dict[str, bool] = {}
    dead = LeaderElector(api, ns, "test-lock", "dead", **TIMING)
    assert await dead.try_acquire_or_renew()  # holds it once, then never renews
    b, task_b = candidate(api, ns, "b", leading)
    try:
        await wait_for(lambda: b.leader == "dead", 5)
        assert not leading.get("b")
        await wait_for(lambda: leading.get("b"), 10)
        lease = await api.get("leases", "test-lock", ns)
        assert lease.spec.holder_identity == "b"
    finally:
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
