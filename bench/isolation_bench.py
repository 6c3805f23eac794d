"""Pod start-up latency and runtime memory, namespaces mode vs plain mode.

    .venv/bin/python bench/isolation_bench.py [--pods 100] [--concurrency 20] [--rounds 1]

For each isolation mode in turn (namespaces, then plain; --rounds N
alternates them N times), starts etcd, the apiserver and one node (runtime
+ kubelet, the tests' fast kubelet timings) through the supervisor in a
temporary KUBEMU_HOME with the runtime's --isolation flag, then creates
`pods` busybox pods (`sleep 3600`, bound to the node) and measures, as
bench/kubelet_bench.py does, create -> Running (first watch event showing
the container running) per pod; and the runtime's RSS idle and with the
pods running, per 100 containers. Prints p50/p99 per mode and the ratio
namespaces / plain of this run (medians over the rounds). Nothing is
asserted. The machine must allow the namespaces mode (the runtime is
started with --isolation namespaces: it fails otherwise).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile

import psutil

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client

# The same directory: run as `python bench/isolation_bench.py`.
from kubelet_bench import NAMESPACE, delete_pods, percentile, start_pods  # noqa: E402
NODE = "node-1"
KUBELET_FLAGS = ["--pleg-relist-s", "0.1", "--sync-frequency-s", "2"]
MODES = ("namespaces", "plain")
MIB = 1 << 20


def pod(i: int):
    doc = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"p{i:04d}", "namespace": NAMESPACE},
           "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": "busybox",
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["sleep", "3600"]}]}}
    return codec.from_dict(REGISTRY.by_gvk("v1", "Pod").message, doc)


def runtime_rss(cluster: Cluster) -> int:
    for s in cluster.status():
        if s.node == NODE and s.component == comp.RUNTIME and s.pid:
            with contextlib.suppress(psutil.Error):
                return psutil.Process(s.pid).memory_info().rss
    return 0


async def one_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"kubemu-bench-{mode}-") as home:
        cluster = Cluster(home, nodes=1, kinds=(comp.ETCD_KIND, comp.APISERVER_KIND),
                          node_kinds=comp.node_components(
                              runtime_flags=["--isolation", mode], kubelet_flags=KUBELET_FLAGS),
                          progress=lambda line: None)
        await cluster.start(120)
        try:
            async with Client(cluster.address(comp.APISERVER), timeout_s=30) as api:
                return await measure(api, cluster, args)
        finally:
            await cluster.shutdown()


async def measure(api: Client, cluster: Cluster, args: argparse.Namespace) -> dict[str, float]:
    await api.create(codec.from_dict(REGISTRY.by_gvk("v1", "Namespace").message, {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    idle = await asyncio.to_thread(runtime_rss, cluster)
    sent, running, _ = await start_pods(api, [pod(i) for i in range(args.pods)],
                                        args.concurrency)
    loaded = await asyncio.to_thread(runtime_rss, cluster)
    latencies = [running[n] - sent[n] for n in running]
    await delete_pods(api, list(sent))
    return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "idle": idle, "per100": (loaded - idle) * 100 / args.pods}


async def run(args: argparse.Namespace) -> None:
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            results[mode].append(await one_mode(mode, args))
    summary = {}
    for mode in MODES:
        got = {k: statistics.median(r[k] for r in results[mode]) for k in results[mode][0]}
        summary[mode] = got
        print(f"{mode:>10}: {args.pods} pods, create -> Running p50 {got['p50']:.3f} s, "
              f"p99 {got['p99']:.3f} s; runtime RSS idle {got['idle'] / MIB:.1f} MiB, "
              f"+{got['per100'] / MIB:.1f} MiB per 100 running containers")
    ns, plain = summary["namespaces"], summary["plain"]
    print(f"namespaces / plain: p50 x{ns['p50'] / plain['p50']:.2f}, "
          f"p99 x{ns['p99'] / plain['p99']:.2f} ({args.rounds} round(s), one run)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    if args.pods < 1 or args.concurrency < 1 or args.rounds < 1:
        p.error("--pods, --concurrency and --rounds must be >= 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
