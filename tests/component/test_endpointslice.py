"""The EndpointSlice, Endpoints and LoadBalancer controllers in the real
controller-manager process on a real apiserver, no nodes: the test plays the
kubelet by writing pod status (an IP, Ready or not) with update_status. A
watch on the Service's slices checks at every event that there is never
more than one slice for three pods (no duplicate from a lagging cache) and
that no endpoint is ready without serving; the slice and the Endpoints
follow each pod's readiness and deletion."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from kubemu import timefmt
from kubemu.client.wait import wait_for
from tests.builders import make_pod, obj
from tests.e2e.test_kubelet import Seen
from tests.support import ControllerManagerProc

WAIT_S = 20.0
NS = "default"
SELECTOR = "kubernetes.io/service-name=web"


@pytest.fixture
async def cm(tmp_path, apiserver):
    proc = await ControllerManagerProc(tmp_path, apiserver.address, "--controllers",
                                       "endpointslice,endpoint,service-lb").astart()
    try:
        yield proc
    finally:
        await proc.astop()


def service(type_: str = "ClusterIP"):
    return obj({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"selector": {"app": "web"}, "type": type_, "clusterIP": "127.1.0.50",
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                    "protocol": "TCP"}]}})


async def set_pod(client, name: str, ip: str, ready: bool) -> None:
    """Play the kubelet: the pod runs with `ip`, Ready or not."""
    pod = await client.get("pods", name, NS)
    pod.status.phase = "Running"
    pod.status.pod_ip = ip
    del pod.status.pod_ips[:]
    pod.status.pod_ips.add().ip = ip
    del pod.status.conditions[:]
    cond = pod.status.conditions.add()
    cond.type, cond.status = "Ready", "True" if ready else "False"
    cond.last_transition_time = timefmt.rfc3339()
    await client.update_status(pod)


class SliceWatch:
    """Every event of the Service's slices, checked as it arrives."""

    def __init__(self, client):
        self.client = client
        self.slices: dict[str, object] = {}
        self.violations: list[str] = []
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "SliceWatch":
        listed = await self.client.list("endpointslices", NS, label_selector=SELECTOR)
        self.slices = {s.metadata.name: s for s in listed.items}
        self.task = asyncio.create_task(self._run(listed.resource_version))
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self, rv: str) -> None:
        async with contextlib.aclosing(self.client.watch(
                "endpointslices", NS, resource_version=rv, label_selector=SELECTOR)) as events:
            async for ev in events:
                if ev.type == "DELETED":
                    self.slices.pop(ev.object.metadata.name, None)
                elif ev.type in ("ADDED", "MODIFIED"):
                    self.slices[ev.object.metadata.name] = ev.object
                if len(self.slices) > 1:
                    self.violations.append(f"{len(self.slices)} slices: {sorted(self.slices)}")
                for s in self.slices.values():
                    for ep in s.endpoints:
                        if ep.conditions.ready and not ep.conditions.serving:
                            self.violations.append(f"{ep.target_ref.name} ready, not serving")

    def ready(self) -> dict[str, bool]:
        """pod name -> ready, from the slices seen last."""
        if self.task.done():
            self.task.result()  # the watch failed: say why
        return {ep.target_ref.name: ep.conditions.ready
                for s in self.slices.values() for ep in s.endpoints}


async def wait_ready(watch: SliceWatch, expected: dict[str, bool]) -> None:
    await wait_for(lambda: True if watch.ready() == expected else Seen(watch.ready()),
                   WAIT_S, interval_s=0.02, message=f"slice endpoints {expected}")


async def endpoints_summary(client) -> tuple[list[str], list[str]]:
    ep = await client.get("endpoints", "web", NS)
    return (sorted(a.ip for s in ep.subsets for a in s.addresses),
            sorted(a.ip for s in ep.subsets for a in s.not_ready_addresses))


async def test_slice_and_endpoints_follow_pod_readiness(cm, client):
    async with SliceWatch(client) as watch:
        await client.create(service())
        for i in range(3):
            await client.create(make_pod(f"web-{i}").labels(app="web").build())
            await set_pod(client, f"web-{i}", f"127.2.1.{i + 1}", ready=True)
        await wait_ready(watch, {"web-0": True, "web-1": True, "web-2": True})
        (s,) = watch.slices.values()
        assert [(p.name, p.port) for p in s.ports] == [("http", 8080)]
        assert s.metadata.owner_references[0].kind == "Service"
        await set_pod(client, "web-1", "127.2.1.2", ready=False)
        await wait_ready(watch, {"web-0": True, "web-1": False, "web-2": True})
        want = (["127.2.1.1", "127.2.1.3"], ["127.2.1.2"])
        await wait_for(lambda: _is(endpoints_summary(client), want), WAIT_S,
                       message="Endpoints with web-1 not ready")
        await set_pod(client, "web-1", "127.2.1.2", ready=True)
        await wait_ready(watch, {"web-0": True, "web-1": True, "web-2": True})
        await client.delete("pods", "web-2", NS, grace_period_s=0)
        await wait_ready(watch, {"web-0": True, "web-1": True})
        want = (["127.2.1.1", "127.2.1.2"], [])
        await wait_for(lambda: _is(endpoints_summary(client), want), WAIT_S,
                       message="Endpoints without web-2")
    assert watch.violations == []


async def _is(awaitable, want):
    got = await awaitable
    return True if got == want else Seen(got)


async def test_load_balancer_gets_an_address_and_gives_it_back(cm, client):
    await client.create(service("LoadBalancer"))

    async def ingress():
        svc = await client.get("services", "web", NS)
        got = [(i.ip, i.ip_mode) for i in svc.status.load_balancer.ingress]
        return got or Seen(got)

    assert await wait_for(ingress, WAIT_S, message="an LB address") == [("127.1.1.1", "VIP")]
    svc = await client.get("services", "web", NS)
    svc.spec.type = "ClusterIP"
    await client.update(svc)

    async def cleared():
        got = (await client.get("services", "web", NS)).status.load_balancer.ingress
        return True if not got else Seen(list(got))

    await wait_for(cleared, WAIT_S, message="the LB address released")
