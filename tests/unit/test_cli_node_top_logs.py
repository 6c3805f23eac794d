"""describe node, top and logs: kubectl's layouts, compared with kubectl 1.32.5's output.

The describe and top expectations were printed by real kubectl (v1.32.5) against a fake
API server (with a metrics.k8s.io API) serving NODE, the pods of cli_kubectl_objects.py
and the usage figures below; the comment above each names the command.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import io

import pytest

from kubemu.api.kinds import REGISTRY
from kubemu.cli import describe, pods
from tests.unit.cli_kubectl_objects import PODS

CAPTURED = datetime.datetime(2026, 11, 30, 4, 22, 16, tzinfo=datetime.timezone.utc)

NODE = {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'node-1', 'uid': 'n1', 'creationTimestamp': '2024-05-01T10:00:00Z', 'labels': {'kubernetes.io/hostname': 'node-1', 'node-role.kubernetes.io/worker': ''}}, 'spec': {'podCIDR': '10.244.1.0/24', 'taints': [{'key': 'dedicated', 'value': 'db', 'effect': 'NoSchedule'}]}, 'status': {'capacity': {'cpu': '4', 'memory': '8Gi', 'pods': '110', 'ephemeral-storage': '100Gi'}, 'allocatable': {'cpu': '3500m', 'memory': '7Gi', 'pods': '110', 'ephemeral-storage': '90Gi'}, 'addresses': [{'type': 'InternalIP', 'address': '127.1.0.1'}, {'type': 'Hostname', 'address': 'node-1'}], 'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady', 'message': 'kubelet is posting ready status', 'lastHeartbeatTime': '2024-05-01T11:59:00Z', 'lastTransitionTime': '2024-05-01T10:00:05Z'}], 'nodeInfo': {'machineID': 'm1', 'systemUUID': 's1', 'bootID': 'b1', 'kernelVersion': '6.1.0', 'osImage': 'kubemu', 'containerRuntimeVersion': 'kubemu://0.1', 'kubeletVersion': 'v1.32.0-kubemu', 'kubeProxyVersion': 'v1.32.0-kubemu', 'operatingSystem': 'linux', 'architecture': 'amd64'}}}

# kubectl describe node node-1   (the lease was missing: the fake server had none)
DESCRIBE_NODE = 'Name:               node-1\nRoles:              worker\nLabels:             kubernetes.io/hostname=node-1\n                    node-role.kubernetes.io/worker=\nAnnotations:        <none>\nCreationTimestamp:  Wed, 01 May 2024 10:00:00 +0000\nTaints:             dedicated=db:NoSchedule\nUnschedulable:      false\nLease:              Failed to get lease: not found\nConditions:\n  Type    Status  LastHeartbeatTime                 LastTransitionTime                Reason         Message\n  ----    ------  -----------------                 ------------------                ------         -------\n  Ready   True    Wed, 01 May 2024 11:59:00 +0000   Wed, 01 May 2024 10:00:05 +0000   KubeletReady   kubelet is posting ready status\nAddresses:\n  InternalIP:  127.1.0.1\n  Hostname:    node-1\nCapacity:\n  cpu:                4\n  ephemeral-storage:  100Gi\n  memory:             8Gi\n  pods:               110\nAllocatable:\n  cpu:                3500m\n  ephemeral-storage:  90Gi\n  memory:             7Gi\n  pods:               110\nSystem Info:\n  Machine ID:                 m1\n  System UUID:                s1\n  Boot ID:                    b1\n  Kernel Version:             6.1.0\n  OS Image:                   kubemu\n  Operating System:           linux\n  Architecture:               amd64\n  Container Runtime Version:  kubemu://0.1\n  Kubelet Version:            v1.32.0-kubemu\n  Kube-Proxy Version:         v1.32.0-kubemu\nPodCIDR:                      10.244.1.0/24\nNon-terminated Pods:          (3 in total)\n  Namespace                   Name     CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age\n  ---------                   ----     ------------  ----------  ---------------  -------------  ---\n  default                     kuard    250m (7%)     0 (0%)      128Mi (1%)       0 (0%)         2y212d\n  default                     nginx    1 (28%)       0 (0%)      1Gi (14%)        0 (0%)         2y212d\n  default                     two      0 (0%)        0 (0%)      0 (0%)           0 (0%)         2y212d\nAllocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n  Resource           Requests      Limits\n  --------           --------      ------\n  cpu                1250m (35%)   0 (0%)\n  memory             1152Mi (16%)  0 (0%)\n  ephemeral-storage  0 (0%)        0 (0%)\nEvents:              <none>\n'


def test_describe_node_matches_kubectl():
    text = describe.describe(REGISTRY.by_resource("nodes"), NODE, [], CAPTURED,
                             extra={"pods": PODS, "lease": None, "lease_error": "not found"})
    assert text == DESCRIBE_NODE


def test_describe_node_shows_its_lease():
    lease = {"spec": {"holderIdentity": "node-1", "renewTime": "2024-05-01T12:00:00.000000Z"}}
    text = describe.describe(REGISTRY.by_resource("nodes"), NODE, None, CAPTURED,
                             extra={"pods": [], "lease": lease})
    assert ("Lease:\n  HolderIdentity:  node-1\n  AcquireTime:     <unset>\n"
            "  RenewTime:       Wed, 01 May 2024 12:00:00 +0000\n") in text
    assert "Non-terminated Pods:          (0 in total)" in text


def _pod(containers=(), init=(), overhead=None):
    spec = {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)],
            "initContainers": [{"name": f"i{i}", **c} for i, c in enumerate(init)]}
    if overhead:
        spec["overhead"] = overhead
    return {"spec": spec}


@pytest.mark.parametrize("obj, requests, limits", [
    (_pod([{"requests": {"cpu": "100m", "memory": "64Mi"}},
           {"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1Gi"}}]),
     {"cpu": "1100m", "memory": "64Mi"}, {"cpu": "2", "memory": "1Gi"}),
    (_pod([{"requests": {"cpu": "100m"}}], init=[{"resources": {"requests": {"cpu": "500m"}}}]),
     {"cpu": "500m"}, {}),
    (_pod([{"requests": {"cpu": "100m"}}],
          init=[{"restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                {"resources": {"requests": {"cpu": "250m"}}}]),
     {"cpu": "450m"}, {}),
    (_pod([{"requests": {"memory": "1Gi"}}], overhead={"memory": "128Mi"}),
     {"memory": "1152Mi"}, {}),
], ids=["containers-summed", "init-max", "sidecar-added", "overhead"])
def test_pod_requests_and_limits(obj, requests, limits):
    reqs, lims = describe.pod_requests_and_limits(obj)
    assert ({k: str(v) for k, v in reqs.items()}, {k: str(v) for k, v in lims.items()}) == (
        requests, limits)


# ---------------------------------------------------------------- top

# The metrics API's figures the kubectl runs below were given (nanocores, bytes).
USAGE = [
    pods.PodTop("default", "kuard", [("web", 12_345_678, 20480 * 1024)]),
    pods.PodTop("default", "nginx", [("web", 250_000_000, 10 << 20)]),
    pods.PodTop("default", "two", [("a", 1_000_001, 104_857_600), ("b", 300_000_000, 1 << 20)]),
    pods.PodTop("demo", "kuard", [("web", 0, 0)]),
]
DEFAULT = [p for p in USAGE if p.namespace == "default"]


def top(pods_: list, *, containers=False, all_namespaces=False, sort_by="", headers=True):
    rows = [pods.pod_header(containers=containers, all_namespaces=all_namespaces)] \
        if headers else []
    rows += pods.pod_rows(pods_, containers=containers, all_namespaces=all_namespaces,
                          sort_by=sort_by)
    return pods.top_table(rows)


@pytest.mark.parametrize("got, expected", [
    # kubectl top pod
    (lambda: top(DEFAULT),
     "NAME    CPU(cores)   MEMORY(bytes)   \nkuard   13m          20Mi            \n"
     "nginx   250m         10Mi            \ntwo     302m         101Mi           \n"),
    # kubectl top pod --containers
    (lambda: top(DEFAULT, containers=True),
     "POD     NAME   CPU(cores)   MEMORY(bytes)   \nkuard   web    13m          20Mi            \n"
     "nginx   web    250m         10Mi            \ntwo     a      2m           100Mi           \n"
     "two     b      300m         1Mi             \n"),
    # kubectl top pod --sort-by=cpu
    (lambda: top(DEFAULT, sort_by="cpu"),
     "NAME    CPU(cores)   MEMORY(bytes)   \ntwo     302m         101Mi           \n"
     "nginx   250m         10Mi            \nkuard   13m          20Mi            \n"),
    # kubectl top pod --sort-by=memory --containers
    (lambda: top(DEFAULT, sort_by="memory", containers=True),
     "POD     NAME   CPU(cores)   MEMORY(bytes)   \ntwo     a      2m           100Mi           \n"
     "two     b      300m         1Mi             \nkuard   web    13m          20Mi            \n"
     "nginx   web    250m         10Mi            \n"),
    # kubectl top pod -A
    (lambda: top(USAGE, all_namespaces=True),
     "NAMESPACE   NAME    CPU(cores)   MEMORY(bytes)   \n"
     "default     kuard   13m          20Mi            \n"
     "default     nginx   250m         10Mi            \n"
     "default     two     302m         101Mi           \n"
     "demo        kuard   0m           0Mi             \n"),
    # kubectl top pod -A --containers --sort-by=cpu
    (lambda: top(USAGE, all_namespaces=True, containers=True, sort_by="cpu"),
     "NAMESPACE   POD     NAME   CPU(cores)   MEMORY(bytes)   \n"
     "default     two     b      300m         1Mi             \n"
     "default     two     a      2m           100Mi           \n"
     "default     nginx   web    250m         10Mi            \n"
     "default     kuard   web    13m          20Mi            \n"
     "demo        kuard   web    0m           0Mi             \n"),
    # kubectl top pod --no-headers
    (lambda: top(DEFAULT, headers=False),
     "kuard   13m    20Mi    \nnginx   250m   10Mi    \ntwo     302m   101Mi   \n"),
    # kubectl top node   (usage 563456789n cpu, 1536Mi memory; allocatable 4 cpu, 8Gi)
    (lambda: pods.top_table([list(pods.NODE_COLUMNS)] + pods.node_rows(
        {"node-1": {"cpu": "4", "memory": "8Gi"}}, {"node-1": (563_456_789, 1536 << 20)},
        sort_by="")),
     "NAME     CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)   \n"
     "node-1   564m         14%      1536Mi          18%         \n"),
], ids=["pods", "containers", "sort-cpu", "sort-memory-containers", "all-namespaces",
        "all-containers-sorted", "no-headers", "nodes"])
def test_top_matches_kubectl(got, expected):
    assert got() == expected


def test_top_nodes_without_metrics_are_unknown():
    rows = pods.node_rows({"a": {"cpu": "1"}, "b": {"cpu": "1"}}, {"a": (0, 0)}, sort_by="")
    assert rows[1] == ["b", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]


# ---------------------------------------------------------------- logs

@dataclasses.dataclass
class Chunk:
    data: bytes


class Stream:
    def __init__(self, *chunks: bytes):
        self.chunks = chunks

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for c in self.chunks:
            yield Chunk(c)


@pytest.mark.parametrize("chunks, prefix, expected", [
    ((b"a\nb", b"c\n", b"d"), b"[pod/x/c] ", b"[pod/x/c] a\n[pod/x/c] bc\n[pod/x/c] d"),
    ((b"one\ntwo\n",), b"", b"one\ntwo\n"),
    ((b"",), b"[pod/x/c] ", b""),
], ids=["prefix-per-line", "no-prefix", "empty"])
def test_log_lines_get_kubectls_prefix(chunks, prefix, expected):
    out = io.BytesIO()
    asyncio.run(pods._consume(Stream(*chunks), prefix, out))
    assert out.getvalue() == expected


# ---------------------------------------------------------------- the commands, on fakes

class FakeCall:
    def __init__(self, data: bytes):
        self.data = data
        self.cancelled = False

    def __aiter__(self):
        return Stream(*self.data.split(b"|"))._gen()

    def cancel(self):
        self.cancelled = True


class FakeStub:
    def __init__(self, logs: dict, stats: list):
        self.logs, self.stats, self.requests = logs, stats, []

    def PodLogs(self, request, timeout=None):  # noqa: N802 - gRPC method name
        self.requests.append(request)
        return FakeCall(self.logs[(request.name, request.container)])

    async def NodeStats(self, request, timeout=None):  # noqa: N802 - gRPC method name
        return next(s for s in self.stats if s.node == request.node)


class FakeProxy:
    def __init__(self, stub):
        self.stub = stub

    async def close(self):
        return None


class FakeCluster:
    def __init__(self, objects: list[dict]):
        from kubemu.api import codec

        self.objects = [codec.from_dict(REGISTRY.by_gvk(o["apiVersion"], o["kind"]).message, o)
                        for o in objects]

    def _of(self, resource, namespace=""):
        kind = REGISTRY.resolve(resource).kind
        return [o for o in self.objects if type(o).__name__ == kind
                and namespace in ("", o.metadata.namespace)]

    async def get(self, resource, name, namespace=""):
        from kubemu.api import errors

        for o in self._of(resource, namespace):
            if o.metadata.name == name:
                return o
        kind = REGISTRY.resolve(resource)
        if not kind.stored:  # the metrics API names a pod by namespace/name
            name = f"{namespace}/{name}" if kind.namespaced else name
            raise errors.not_found(kind.qualified_resource, name)
        raise errors.not_found(kind.resource, name)

    async def list_all(self, resource, namespace="", *, label_selector="", field_selector=""):
        from kubemu.api import labels

        selector = labels.parse(label_selector) if label_selector else None
        return dataclasses.make_dataclass("L", ["items"])(
            [o for o in self._of(resource, namespace)
             if selector is None or selector.matches(dict(o.metadata.labels))])

    list = list_all

    async def close(self):
        return None


def metrics_of(stats: list, known: set[str]) -> list:
    """What the apiserver's metrics API serves for these kubelet Stats
    (PodMetrics only for pods that exist, as metrics-server)."""
    from apiserver import metrics
    from kubemu.api.v1 import metrics_pb2

    out = []
    for s in stats:
        node = metrics_pb2.NodeMetrics(usage={"cpu": metrics.cpu_quantity(s.cpu_nano_cores),
                                              "memory": metrics.memory_quantity(
                                                  s.memory_working_set_bytes)})
        node.metadata.name = s.node
        out.append(node)
        for p in s.pods:
            if p.name not in known:
                continue
            pod = metrics_pb2.PodMetrics()
            pod.metadata.name, pod.metadata.namespace = p.name, p.namespace
            for c in p.containers:
                pod.containers.add(name=c.name, usage={
                    "cpu": metrics.cpu_quantity(c.cpu_nano_cores),
                    "memory": metrics.memory_quantity(c.memory_working_set_bytes)})
            out.append(pod)
    return out


def _two_container_pod(name: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                     "containers": [{"name": "app", "image": "busybox"},
                                    {"name": "side", "image": "busybox"}]}}


@pytest.fixture
def cluster(monkeypatch, tmp_path, capsys):
    from kubemu.api.v1 import resources_pb2
    from kubemu.cli import main

    objects = [_two_container_pod("a", {"app": "x"}), _two_container_pod("b", {"app": "x"}),
               {**NODE, "metadata": {"name": "node-1"}}]
    logs = {(p, c): f"{p}-{c} one\n|{p}-{c} two\n".encode()
            for p in "ab" for c in ("init", "app", "side")}
    stats = [resources_pb2.NodeStatsResponse(
        node="node-1", cpu_nano_cores=563_456_789, memory_working_set_bytes=1536 << 20,
        pods=[resources_pb2.PodUsage(namespace="default", name=p, containers=[
            resources_pb2.ContainerUsage(name="app", cpu_nano_cores=cpu,
                                         memory_working_set_bytes=64 << 20)])
            for p, cpu in (("a", 5_000_000), ("b", 90_000_000), ("gone", 1))])]
    stub = FakeStub(logs, stats)
    fake = FakeCluster(objects)
    fake.objects += metrics_of(stats, {o.metadata.name for o in fake.objects})

    async def proxy_for(args):
        return fake, FakeProxy(stub)

    monkeypatch.setattr(pods, "_proxy_for", proxy_for)
    monkeypatch.setattr(pods.common, "client_for", lambda args: fake)

    def run(*argv):
        code = main.main(["--home", str(tmp_path), *argv])
        return (code, *capsys.readouterr())
    run.stub = stub
    return run


def test_logs_by_selector_with_prefix(cluster):
    # kubectl logs -l app=x --prefix: each pod's default container, the last 10 lines,
    # "Defaulted container" said once per pod with a choice
    code, out, err = cluster("logs", "-l", "app=x", "--prefix")
    assert code == 0
    assert out == ("[pod/a/app] a-app one\n[pod/a/app] a-app two\n"
                   "[pod/b/app] b-app one\n[pod/b/app] b-app two\n")
    assert err == ('Defaulted container "app" out of: app, side, init (init)\n' * 2)
    assert {r.tail_lines for r in cluster.stub.requests} == {10}


def test_logs_all_containers_in_order(cluster):
    code, out, err = cluster("logs", "a", "--all-containers", "--prefix", "--tail=1")
    assert (code, err) == (0, "")
    assert [line.split("]")[0] for line in out.splitlines()][::2] == [
        "[pod/a/init", "[pod/a/app", "[pod/a/side"]
    assert {r.tail_lines for r in cluster.stub.requests} == {1}


def test_logs_follow_is_bounded_by_max_log_requests(cluster):
    # kubectl logs -l app=x -f --all-containers (6 streams > 5)
    assert cluster("logs", "-l", "app=x", "-f", "--all-containers") == (
        1, "", "error: you are attempting to follow 6 log streams, but maximum allowed "
               "concurrency is 5, use --max-log-requests to increase the limit\n")
    code, out, _ = cluster("logs", "-l", "app=x", "-f", "--all-containers",
                           "--max-log-requests=6")
    assert code == 0 and sorted(out.splitlines()) == sorted(
        f"{p}-{c} {n}" for p in "ab" for c in ("init", "app", "side") for n in ("one", "two"))


def test_logs_container_as_second_word(cluster):
    assert cluster("logs", "b", "side") == (0, "b-side one\nb-side two\n", "")
    assert cluster("logs", "b", "side", "-c", "app")[2] == (
        "error: only one of -c or an inline [CONTAINER] arg is allowed\n")
    assert cluster("logs", "nope")[2] == (
        'error: error from server (NotFound): pods "nope" not found in namespace "default"\n')


def test_top_commands(cluster):
    assert cluster("top", "pod", "--sort-by=cpu") == (
        0, "NAME   CPU(cores)   MEMORY(bytes)   \nb      90m          64Mi            \n"
           "a      5m           64Mi            \n", "")
    assert cluster("top", "pod", "a", "--containers") == (
        0, "POD   NAME   CPU(cores)   MEMORY(bytes)   \na     app    5m           64Mi"
           "            \n", "")
    assert cluster("top", "pod", "nope")[2] == (
        'Error from server (NotFound): podmetrics.metrics.k8s.io "default/nope" not found\n')
    assert cluster("top", "pod", "--sort-by=name")[2] == (
        "error: --sort-by accepts only cpu or memory\n")
    code, out, _ = cluster("top", "node")
    assert (code, out.splitlines()[1].split()) == (0, ["node-1", "564m", "16%", "1536Mi", "21%"])
