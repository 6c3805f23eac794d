"""The v1 Endpoints controller: subsets (ready / not ready, ports per pod,
repacking), labels, the trigger-time and over-capacity annotations, and
syncs on the memory-backed registry (tests/unit/controller_harness.py)."""
from __future__ import annotations

import asyncio

import pytest

from controller_manager import controllerutil as cu
from controller_manager import endpoints as epc
from kubemu.api import errors
from tests.unit.cli_memclient import MemClient
from tests.unit.controller_harness import ControllerHarness
from tests.unit.svc_builders import pod, svc


def summary(subsets):
    return [([a.ip for a in s.addresses], [a.ip for a in s.not_ready_addresses],
             [(p.name, p.port) for p in s.ports]) for s in subsets]


SUBSET_CASES = [
    ("ready-and-not",
     {}, [pod("a", "127.2.1.1"), pod("b", "127.2.1.2", ready=False)],
     [(["127.2.1.1"], ["127.2.1.2"], [("http", 8080)])]),
    ("terminating-left-out",
     {}, [pod("a", "127.2.1.1"), pod("b", "127.2.1.2", terminating=True)],
     [(["127.2.1.1"], [], [("http", 8080)])]),
    ("publish-not-ready-keeps-terminating-as-ready",
     {"publish_not_ready": True},
     [pod("a", "127.2.1.1", ready=False), pod("b", "127.2.1.2", terminating=True)],
     [(["127.2.1.1", "127.2.1.2"], [], [("http", 8080)])]),
    ("no-ip-and-terminal-left-out",
     {}, [pod("a", None), pod("b", "127.2.1.2", phase="Succeeded")], []),
    ("named-port-per-pod",
     {"ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]},
     [pod("a", "127.2.1.1", container_ports=[{"name": "web", "containerPort": 8080}]),
      pod("b", "127.2.1.2", container_ports=[{"name": "web", "containerPort": 9090}]),
      pod("c", "127.2.1.3", container_ports=[])],
     [(["127.2.1.1"], [], [("http", 8080)]), (["127.2.1.2"], [], [("http", 9090)])]),
    ("two-ports-one-subset",
     {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}]},
     [pod("a", "127.2.1.1"), pod("b", "127.2.1.2")],
     [(["127.2.1.1", "127.2.1.2"], [], [("http", 8080), ("metrics", 9100)])]),
    ("headless-without-ports",
     {"ports": [], "cluster_ip": "None"}, [pod("a", "127.2.1.1")],
     [(["127.2.1.1"], [], [])]),
]


@pytest.mark.parametrize("svc_kw,pods,expected", [c[1:] for c in SUBSET_CASES],
                         ids=[c[0] for c in SUBSET_CASES])
def test_desired_subsets(svc_kw, pods, expected):
    assert summary(epc.desired_subsets(svc(**svc_kw), pods)) == expected


def test_address_fields_and_hostname():
    (subset,) = epc.desired_subsets(svc(cluster_ip="None"),
                                    [pod("web-0", hostname="web-0", subdomain="web")])
    (addr,) = subset.addresses
    assert (addr.hostname, addr.node_name, addr.target_ref.kind, addr.target_ref.name,
            addr.target_ref.uid) == ("web-0", "node-1", "Pod", "web-0", "uid-web-0")


@pytest.mark.parametrize("ready,not_ready,kept", [
    (900, 300, (900, 100)), (1200, 10, (1000, 0)), (1000, 0, (1000, 0))],
    ids=["not-ready-cut", "ready-cut", "at-capacity"])
def test_truncation(ready, not_ready, kept):
    pods = ([pod(f"r{i}", f"127.3.{i // 250}.{i % 250 + 1}") for i in range(ready)]
            + [pod(f"n{i}", f"127.4.{i // 250}.{i % 250 + 1}", ready=False)
               for i in range(not_ready)])
    from kubemu.api.v1 import core_pb2
    ep = core_pb2.Endpoints(subsets=epc.desired_subsets(svc(), pods))
    assert epc.truncate(ep) is (ready + not_ready > 1000)
    assert (sum(len(s.addresses) for s in ep.subsets),
            sum(len(s.not_ready_addresses) for s in ep.subsets)) == kept


def test_trigger_time_tracker():
    tracker = cu.TriggerTimeTracker()
    s = svc()
    a = pod("a", ready_since="2027-01-15T08:05:00Z")
    # First sight of the Service: its creation time.
    assert tracker.compute("default/web", s, [a]) == "2027-01-15T08:00:00Z"
    assert tracker.compute("default/web", s, [a]) is None  # nothing changed since
    b = pod("b", ready_since="2027-01-15T08:07:00Z")
    a2 = pod("a", ready=False, ready_since="2027-01-15T08:06:00Z")
    assert tracker.compute("default/web", s, [a2, b]) == "2027-01-15T08:06:00Z"  # the earliest


@pytest.fixture
async def h():
    harness = ControllerHarness(epc.EndpointsController, await MemClient.new())
    harness.cache("services", [svc(labels={"team": "a"})])
    harness.cache("endpoints", [])
    try:
        yield harness
    finally:
        await harness.stop()


async def relist(h):
    h.cache("endpoints", (await h.client.list("endpoints", "default")).items)


async def test_sync_creates_then_updates_only_on_change(h):
    h.cache("pods", [pod("a", "127.2.1.1")])
    await h.controller.sync("default/web")
    ep = await h.client.get("endpoints", "web", "default")
    assert dict(ep.metadata.labels) == {"team": "a"}
    assert ep.metadata.annotations[cu.ANNOTATION_TRIGGER_TIME] == "2027-01-15T08:00:00Z"
    assert summary(ep.subsets) == [(["127.2.1.1"], [], [("http", 8080)])]
    await relist(h)
    rv = ep.metadata.resource_version
    await h.controller.sync("default/web")
    assert (await h.client.get("endpoints", "web", "default")).metadata.resource_version == rv
    h.cache("pods", [pod("a", "127.2.1.1", ready=False, ready_since="2027-01-15T08:09:00Z")])
    await h.controller.sync("default/web")
    ep = await h.client.get("endpoints", "web", "default")
    assert summary(ep.subsets) == [([], ["127.2.1.1"], [("http", 8080)])]
    assert ep.metadata.annotations[cu.ANNOTATION_TRIGGER_TIME] == "2027-01-15T08:09:00Z"
    # The cache still shows the version we replaced: retry, do not write from it.
    h.cache("pods", [pod("a", "127.2.1.1")])
    with pytest.raises(errors.Conflict):
        await h.controller.sync("default/web")


async def test_headless_label_and_deleted_service(h):
    h.cache("services", [svc(cluster_ip="None")])
    h.cache("pods", [pod("a", "127.2.1.1")])
    await h.controller.sync("default/web")
    ep = await h.client.get("endpoints", "web", "default")
    assert dict(ep.metadata.labels) == {cu.LABEL_HEADLESS: ""}
    h.cache("services", [])
    await h.controller.sync("default/web")
    with pytest.raises(errors.NotFound):
        await h.client.get("endpoints", "web", "default")


async def test_over_capacity_annotation(h):
    # Built off the loop: a thousand pods take tens of milliseconds.
    h.cache("pods", await asyncio.to_thread(
        lambda: [pod(f"r{i}", f"127.3.{i // 250}.{i % 250 + 1}") for i in range(1001)]))
    await h.controller.sync("default/web")
    ep = await h.client.get("endpoints", "web", "default")
    assert ep.metadata.annotations[epc.ANNOTATION_OVER_CAPACITY] == "truncated"
    assert sum(len(s.addresses) for s in ep.subsets) == 1000


async def test_service_without_selector_is_left_alone(h):
    h.cache("services", [svc(selector={})])
    h.cache("pods", [pod("a", "127.2.1.1")])
    await h.controller.sync("default/web")
    with pytest.raises(errors.NotFound):
        await h.client.get("endpoints", "web", "default")
