"""The built-in PriorityClasses on real etcd: two apiservers started together
on one etcd both come up healthy with the classes present once, and a pod
naming one right after start gets its priority (Priority admission reads
the classes from the watch cache)."""
from __future__ import annotations

import asyncio

from kubemu.client.clientset import Client
from tests.builders import make_pod
from tests.support import APIServerProc


async def test_two_apiservers_bootstrap_the_system_classes_once(tmp_path, etcd):
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    servers = [APIServerProc(d, etcd.endpoint) for d in dirs]
    await asyncio.gather(*(s.astart() for s in servers))
    clients = [Client(s.address, timeout_s=10.0) for s in servers]
    try:
        for client in clients:
            classes = {pc.metadata.name: (pc.value, pc.global_default, pc.preemption_policy)
                       for pc in (await client.list("priorityclasses")).items}
            assert classes == {
                "system-cluster-critical": (2000000000, False, "PreemptLowerPriority"),
                "system-node-critical": (2000001000, False, "PreemptLowerPriority")}
        builder = make_pod("critical")
        builder.doc["spec"]["priorityClassName"] = "system-node-critical"
        made = await clients[1].create(builder.build())
        assert (made.spec.priority, made.spec.preemption_policy) == \
            (2000001000, "PreemptLowerPriority")
    finally:
        for client in clients:
            await client.close()
        await asyncio.gather(*(s.astop() for s in servers))
