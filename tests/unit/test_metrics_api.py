"""The metrics API (apiserver.metrics): metrics-server's NodeMetrics / PodMetrics
from the kubelets' Stats, cached per node for the metric resolution, with a
node that does not answer left out."""
from __future__ import annotations

import asyncio

import pytest

from apiserver import metrics
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import resources_pb2 as pb

NODE_METRICS = REGISTRY.by_resource("nodemetrics")
POD_METRICS = REGISTRY.by_resource("podmetrics")


def node(name: str, **labels: str):
    return codec.from_dict(REGISTRY.by_resource("nodes").message,
                           {"metadata": {"name": name, "labels": labels}})


def pod(name: str, node_name: str, uid: str, ns: str = "default", phase: str = "Running",
        **labels: str):
    return codec.from_dict(REGISTRY.by_resource("pods").message, {
        "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": labels},
        "spec": {"nodeName": node_name, "containers": [{"name": "app", "image": "x"}]},
        "status": {"phase": phase}})


def stats(node_name: str, cpu: int, *pods: tuple[str, str, int]):
    return pb.NodeStatsResponse(
        node=node_name, timestamp="2026-11-30T16:00:00Z", cpu_nano_cores=cpu,
        memory_working_set_bytes=1 << 30,
        pods=[pb.PodUsage(namespace="default", name=n, uid=u, containers=[
            pb.ContainerUsage(name="app", cpu_nano_cores=c, memory_working_set_bytes=64 << 20)])
            for n, u, c in pods])


class Fake:
    def __init__(self):
        self.now = 100.0
        self.objects = {"nodes": [node("node-1", zone="a"), node("node-2", zone="b")],
                        "pods": [pod("web", "node-1", "u1", app="web"),
                                 pod("db", "node-2", "u2", app="db"),
                                 pod("pending", "", "u3")]}
        self.stats = {"node-1": stats("node-1", 500_000_000, ("web", "u1", 250_000_000)),
                      "node-2": stats("node-2", 100_000_000, ("db", "u2", 5_000_000))}
        self.calls: list[str] = []
        self.hang: set[str] = set()

    async def list_objects(self, kind, namespace):
        return [o for o in self.objects[kind.resource]
                if not namespace or o.metadata.namespace == namespace]

    async def stats_of(self, name, timeout_s):
        self.calls.append(name)
        if name in self.hang:
            await asyncio.sleep(60)
        if name not in self.stats:
            raise errors.Internal(f"error talking to the kubelet of {name}")
        return self.stats[name]

    def api(self, **kw):
        return metrics.MetricsAPI(REGISTRY, self.list_objects, self.stats_of,
                                  clock=lambda: self.now, **kw)


async def test_node_metrics_are_the_kubelets_usage_with_the_nodes_labels():
    fake = Fake()
    found = await fake.api().list(NODE_METRICS, "")
    assert [(m.metadata.name, dict(m.usage), m.window, dict(m.metadata.labels))
            for m in found] == [
        ("node-1", {"cpu": "500m", "memory": "1Gi"}, "15s", {"zone": "a"}),
        ("node-2", {"cpu": "100m", "memory": "1Gi"}, "15s", {"zone": "b"})]
    assert [m.metadata.name for m in await fake.api().list(NODE_METRICS, "", "zone=b")] == [
        "node-2"]


async def test_pod_metrics_by_namespace_selector_and_name():
    fake = Fake()
    api = fake.api()
    found = await api.list(POD_METRICS, "default", "app=web")
    assert [(m.metadata.namespace, m.metadata.name, [dict(c.usage) for c in m.containers])
            for m in found] == [("default", "web", [{"cpu": "250m", "memory": "64Mi"}])]
    assert (await api.get(POD_METRICS, "default", "db")).metadata.name == "db"
    with pytest.raises(errors.NotFound, match=r'podmetrics.metrics.k8s.io "default/pending" '
                                              r'not found'):
        await api.get(POD_METRICS, "default", "pending")
    with pytest.raises(errors.NotFound, match=r'nodemetrics.metrics.k8s.io "node-9" not found'):
        await api.get(NODE_METRICS, "", "node-9")


async def test_a_sample_is_served_for_the_resolution_then_taken_again():
    fake = Fake()
    api = fake.api(resolution_s=15.0)
    await api.list(NODE_METRICS, "")
    fake.stats["node-1"] = stats("node-1", 900_000_000, ("web", "u1", 1))
    fake.now += 14.0
    assert dict((await api.get(NODE_METRICS, "", "node-1")).usage)["cpu"] == "500m"
    fake.now += 1.0
    assert dict((await api.get(NODE_METRICS, "", "node-1")).usage)["cpu"] == "900m"
    assert fake.calls == ["node-1", "node-2", "node-1"]


async def test_a_pod_the_sample_does_not_know_yet_samples_its_node_again():
    fake = Fake()
    api = fake.api(resolution_s=15.0, refresh_min_s=1.0)
    await api.list(NODE_METRICS, "")
    fake.objects["pods"].append(pod("new", "node-1", "u4"))
    fake.stats["node-1"] = stats("node-1", 1, ("web", "u1", 1), ("new", "u4", 7))
    with pytest.raises(errors.NotFound):  # within refresh_min_s: the cached sample
        await api.get(POD_METRICS, "default", "new")
    fake.now += 1.0
    assert (await api.get(POD_METRICS, "default", "new")).containers[0].usage["cpu"] == "7n"


@pytest.mark.parametrize("failure", ["error", "timeout"])
async def test_a_node_that_does_not_answer_is_left_out(failure):
    fake = Fake()
    if failure == "error":
        del fake.stats["node-2"]
    else:
        fake.hang.add("node-2")
    api = fake.api(timeout_s=0.05)
    assert [m.metadata.name for m in await api.list(NODE_METRICS, "")] == ["node-1"]
    assert [m.metadata.name for m in await api.list(POD_METRICS, "")] == ["web"]


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        Fake().api(resolution_s=0)


@pytest.mark.parametrize("seconds,text", [(15.0, "15s"), (1.5, "1.5s"), (0.25, "0.25s")])
def test_window_text(seconds, text):
    assert metrics.format_window(seconds) == text


@pytest.mark.parametrize("nano_cores,text", [(0, "0"), (7, "7n"), (250_000_000, "250m"),
                                             (123_456_789, "123456789n"), (2_000_000_000, "2")])
def test_cpu_as_metrics_server_prints_it(nano_cores, text):
    assert metrics.cpu_quantity(nano_cores) == text


@pytest.mark.parametrize("count,text", [(0, "0"), (64 << 20, "64Mi"), (9_441_280, "9220Ki"),
                                        (9_441_281, "9441281")])
def test_memory_as_metrics_server_prints_it(count, text):
    assert metrics.memory_quantity(count) == text


@pytest.mark.parametrize("verb", ["Create", "Update", "UpdateStatus", "Patch", "Delete"])
async def test_the_service_refuses_writes_to_the_metrics_api(verb):
    from apiserver.service import ResourcesService

    service = ResourcesService(None, {}, REGISTRY)
    request = {"Create": pb.CreateRequest(resource="podmetrics"),
               "Update": pb.UpdateRequest(resource="podmetrics"),
               "UpdateStatus": pb.UpdateRequest(resource="podmetrics"),
               "Patch": pb.PatchRequest(resource="podmetrics"),
               "Delete": pb.DeleteRequest(resource="podmetrics")}[verb]
    if verb.startswith("Update"):
        request.object.CopyFrom(REGISTRY.pack(POD_METRICS.message()))

    class Context:
        async def abort(self, code, details, trailing_metadata=()):
            raise RuntimeError(code, details)

        def set_trailing_metadata(self, md):
            pass

        def time_remaining(self):
            return None

    with pytest.raises(RuntimeError) as info:
        await getattr(service, verb)(request, Context())
    assert "is not supported on resources of kind \"podmetrics.metrics.k8s.io\"" in str(
        info.value)


async def test_the_window_is_the_span_the_runtime_measured_cpu_over():
    """metrics-server's window is the time between the two samples a rate
    comes from: here the runtime's span (up to its --cpu-window-s), which the
    HPA compares with a pod's readiness to leave out start-up CPU."""
    fake = Fake()
    fake.stats["node-1"].cpu_window_seconds = 9.5
    fake.stats["node-1"].pods[0].containers[0].cpu_window_seconds = 9.5
    node_1 = (await fake.api(resolution_s=2.0).list(NODE_METRICS, "", "zone=a"))[0]
    web = (await fake.api(resolution_s=2.0).list(POD_METRICS, "default", "app=web"))[0]
    assert (node_1.window, web.window) == ("9.5s", "9.5s")
