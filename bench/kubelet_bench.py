"""Pod start-up latency and node agent memory.

    .venv/bin/python bench/kubelet_bench.py [--pods 100] [--nodes 3] [--concurrency 20] [--fast]

Starts etcd, the apiserver and `nodes` nodes (runtime + kubelet each) through
the supervisor in a temporary KUBEMU_HOME, then:
1. watches the benchmark's namespace and creates `pods` busybox pods at once
   (`concurrency` creates in flight), bound round-robin to the nodes
   (spec.nodeName: no scheduler in the path);
2. latency = first watch event showing the pod Running (its container
   running) - the moment its create was sent; prints p50/p99/max, and when
   the last one was Running;
3. per node: RSS of the kubelet and of the runtime, idle and with the pods;
4. deletes the pods (grace 1 s) and reports when the last one was gone.
Kubelet timings are Kubernetes' defaults (PLEG relist 1 s), or the tests'
fast ones with --fast (PLEG relist 0.1 s). Figures are printed; nothing is
asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time

import psutil

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client

NAMESPACE = "bench"
FAST_KUBELET_FLAGS = ["--pleg-relist-s", "0.1", "--sync-frequency-s", "2"]
WAIT_S = 300.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def pod(i: int, node: str):
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"p{i:04d}", "namespace": NAMESPACE},
                "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "main", "image": "busybox",
                                         "imagePullPolicy": "IfNotPresent",
                                         "command": ["sleep", "3600"]}]}})


def agent_rss(cluster: Cluster) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in cluster.status():
        if s.node and s.pid:
            with contextlib.suppress(psutil.Error):
                out.setdefault(s.node, {})[s.component] = psutil.Process(s.pid).memory_info().rss
    return out


def print_rss(label: str, rss: dict[str, dict[str, int]]) -> None:
    mib = 1 << 20
    for node in sorted(rss):
        parts = rss[node]
        kubelet, runtime = parts.get(comp.KUBELET, 0), parts.get(comp.RUNTIME, 0)
        print(f"  {label:>9} {node}: kubelet {kubelet / mib:.1f} MiB + runtime "
              f"{runtime / mib:.1f} MiB = {(kubelet + runtime) / mib:.1f} MiB")


async def run(args: argparse.Namespace) -> None:
    flags = FAST_KUBELET_FLAGS if args.fast else []
    with tempfile.TemporaryDirectory(prefix="kubemu-bench-") as home:
        cluster = Cluster(home, nodes=args.nodes, kinds=(comp.ETCD_KIND, comp.APISERVER_KIND),
                          node_kinds=comp.node_components(kubelet_flags=flags),
                          progress=lambda line: None)
        began = time.perf_counter()
        await cluster.start(120)
        print(f"cluster with {args.nodes} nodes ready in {time.perf_counter() - began:.1f} s "
              f"(kubelet timings: {'fast' if args.fast else 'Kubernetes defaults'})")
        try:
            async with Client(cluster.address(comp.APISERVER), timeout_s=30) as api:
                await measure(api, cluster, args)
        finally:
            await cluster.shutdown()


async def start_pods(api: Client, pods: list, concurrency: int
                     ) -> tuple[dict[str, float], dict[str, float], float]:
    """Creates `pods` (all in NAMESPACE, `concurrency` creates in flight) while
    watching the namespace. Returns (sent, running, began): when each create
    was sent, when each pod was first seen Running with its container running
    (perf_counter times), and when the first create was sent."""
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    listed = await api.list("pods", NAMESPACE)
    everything_running = asyncio.Event()

    async def watch() -> None:
        async for event in api.watch("pods", NAMESPACE, resource_version=listed.resource_version,
                                     timeout_s=WAIT_S):
            p = event.object
            if p is None or event.type == "BOOKMARK":
                continue
            name = p.metadata.name
            if name not in running and p.status.phase == "Running" and any(
                    s.state.HasField("running") for s in p.status.container_statuses):
                running[name] = time.perf_counter()
                if len(running) == len(pods):
                    everything_running.set()
                    return

    watcher = asyncio.create_task(watch())
    queue = list(pods)
    began = time.perf_counter()

    async def creator() -> None:
        while queue:
            p = queue.pop(0)
            sent[p.metadata.name] = time.perf_counter()
            await api.create(p)

    await asyncio.gather(*(creator() for _ in range(concurrency)))
    try:
        await asyncio.wait_for(everything_running.wait(), WAIT_S)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return sent, running, began


async def delete_pods(api: Client, names: list[str]) -> float:
    """Deletes the pods (grace 1 s); returns the seconds until the list was empty."""
    began = time.perf_counter()
    for name in names:
        with contextlib.suppress(errors.NotFound):
            await api.delete("pods", name, NAMESPACE, grace_period_s=1)
    while (await api.list("pods", NAMESPACE, limit=1)).items:
        if time.perf_counter() - began > WAIT_S:
            print("pods still there after the wait", file=sys.stderr)
            break
        await asyncio.sleep(0.1)  # polling a bounded wait
    return time.perf_counter() - began


async def measure(api: Client, cluster: Cluster, args: argparse.Namespace) -> None:
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": NAMESPACE}}))
    idle = agent_rss(cluster)
    nodes = [f"node-{i}" for i in range(1, args.nodes + 1)]
    pods = [pod(i, nodes[i % len(nodes)]) for i in range(args.pods)]
    sent, running, began = await start_pods(api, pods, args.concurrency)
    created_s = max(sent.values()) - began
    latencies = [running[n] - sent[n] for n in running]
    last_s = max(running.values()) - began
    print(f"{args.pods} pods over {args.nodes} nodes, {args.concurrency} creates in flight: "
          f"created in {created_s:.2f} s, all Running after {last_s:.2f} s "
          f"({args.pods / last_s:.1f} pods/s)")
    print(f"create -> Running (watch): p50 {percentile(latencies, 0.5):.3f} s, "
          f"p99 {percentile(latencies, 0.99):.3f} s, max {max(latencies):.3f} s, "
          f"mean {statistics.mean(latencies):.3f} s")
    loaded = agent_rss(cluster)
    print("agent memory (RSS):")
    print_rss("idle", idle)
    print_rss(f"{args.pods // args.nodes} pods", loaded)
    deleted_s = await delete_pods(api, list(sent))
    print(f"deleted (grace 1 s) and confirmed by the kubelets in {deleted_s:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--fast", action="store_true", help="the tests' fast kubelet timings")
    args = p.parse_args()
    if args.pods < 1 or args.nodes < 1 or args.concurrency < 1:
        p.error("--pods, --nodes and --concurrency must be >= 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
