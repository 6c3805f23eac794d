"""The time a HorizontalPodAutoscaler takes to reach its target size under a fixed load.

    .venv/bin/python bench/hpa_bench.py [--max 3] [--loops 2] [--rounds 1] [--down]

Starts a one-node cluster (the whole control plane with the fast profile:
the metrics API samples a node every 2 s, the HPA syncs every 2 s) in a
temporary KUBEMU_HOME, then the HPA walkthrough: php-apache
(registry.k8s.io/hpa-example, cpu request 200m, limit 500m) behind a
Service, an HPA (cpu 50%, min 1, max --max) and, once the HPA has read the
idle pod, the busybox load generator: --loops copies of the walkthrough's
wget loop at once (the fixed load). Measures, from the load generator
Running: the first rescale (spec.replicas > 1), the target size
(spec.replicas == --max) and all its pods Ready; with --down, from the load
generator deleted to spec.replicas == 1 (the fast profile's 10 s downscale
stabilization included). Prints each round and the medians. Nothing is
asserted; the times depend on the machine's load: each request costs the
server ~70 ms of CPU and busybox's wget stand-in (a Python process per
request) about as much, so on a busy 2-core machine one loop keeps only one
or two 200m pods above the 50% target; --max must be a size the load
reaches, or the run ends with a timeout naming the size it stayed at.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for

NAMESPACE = "default"
WAIT_S = 300.0
POLL_S = 0.25
KUBELET_FLAGS = ["--pleg-relist-s", "0.1", "--sync-frequency-s", "2",
                 "--node-status-update-s", "1", "--node-lease-renew-s", "1"]
RUNTIME_FLAGS = ["--monitor-period-s", "0.1"]


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


def manifests(max_replicas: int) -> list:
    labels = {"run": "php-apache"}
    return [
        obj({"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "php-apache", "namespace": NAMESPACE},
             "spec": {"selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                          "name": "php-apache", "image": "registry.k8s.io/hpa-example",
                          "ports": [{"containerPort": 80}],
                          "resources": {"limits": {"cpu": "500m"},
                                        "requests": {"cpu": "200m"}}}]}}}}),
        obj({"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "php-apache", "namespace": NAMESPACE, "labels": labels},
             "spec": {"ports": [{"port": 80}], "selector": labels}}),
        obj({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
             "metadata": {"name": "php-apache", "namespace": NAMESPACE},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": "php-apache"},
                      "minReplicas": 1, "maxReplicas": max_replicas,
                      "metrics": [{"type": "Resource", "resource": {
                          "name": "cpu", "target": {"type": "Utilization",
                                                    "averageUtilization": 50}}}]}}),
    ]


LOAD_LOOP = "while sleep 0.01; do wget -q -O- http://$PHP_APACHE_SERVICE_HOST; done"


def load_generator(loops: int) -> dict:
    """The walkthrough's load generator, `loops` loops at once (in the background
    of one shell, which then waits for them)."""
    script = " ".join(f"({LOAD_LOOP}) &" for _ in range(loops)) + " wait"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "load-generator", "namespace": NAMESPACE},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "load-generator", "image": "busybox:1.28",
                "command": ["/bin/sh", "-c", script]}]}}


async def replicas(api: Client) -> int:
    return (await api.get("deployments", "php-apache", NAMESPACE)).spec.replicas


async def ready_pods(api: Client) -> int:
    pods = (await api.list("pods", NAMESPACE, label_selector="run=php-apache")).items
    return sum(1 for p in pods if not p.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions))


async def one_round(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kubemu-bench-hpa-") as home:
        cluster = Cluster(home, nodes=1, kinds=comp.control_plane("fast"),
                          node_kinds=comp.node_components(runtime_flags=RUNTIME_FLAGS,
                                                          kubelet_flags=KUBELET_FLAGS),
                          progress=lambda line: None)
        await cluster.start(120)
        try:
            async with Client(cluster.address(comp.APISERVER), timeout_s=30) as api:
                return await measure(api, args)
        finally:
            await cluster.shutdown()


async def measure(api: Client, args: argparse.Namespace) -> dict[str, float]:
    for item in manifests(args.max):
        await api.create(item)

    async def idle_read():
        hpa = await api.get("horizontalpodautoscalers", "php-apache", NAMESPACE)
        return any(m.resource.current.HasField("average_utilization")
                   for m in hpa.status.current_metrics)
    await wait_for(idle_read, WAIT_S, interval_s=POLL_S, message="the HPA reads the idle pod")
    await api.create(obj(load_generator(args.loops)))

    async def load_running():
        pod = await api.get("pods", "load-generator", NAMESPACE)
        return pod.status.phase == "Running"
    await wait_for(load_running, WAIT_S, interval_s=POLL_S, message="load generator Running")
    start = time.monotonic()
    out: dict[str, float] = {}

    async def first_rescale():
        return await replicas(api) > 1
    await wait_for(first_rescale, WAIT_S, interval_s=POLL_S, message="first rescale")
    out["first rescale"] = time.monotonic() - start

    async def at_target():
        return await replicas(api) >= args.max
    await wait_for(at_target, WAIT_S, interval_s=POLL_S,
                   message=f"{args.max} replicas (the load may hold fewer: see --loops)")
    out["target size"] = time.monotonic() - start

    async def all_ready():
        return await ready_pods(api) >= args.max
    await wait_for(all_ready, WAIT_S, interval_s=POLL_S, message=f"{args.max} pods Ready")
    out["target pods Ready"] = time.monotonic() - start
    if args.down:
        await api.delete("pods", "load-generator", NAMESPACE, grace_period_s=1)
        stop = time.monotonic()

        async def back_to_one():
            return await replicas(api) == 1
        await wait_for(back_to_one, WAIT_S, interval_s=POLL_S, message="back to 1 replica")
        out["scale down to 1"] = time.monotonic() - stop
    return out


async def run(args: argparse.Namespace) -> None:
    rounds = []
    for i in range(args.rounds):
        got = await one_round(args)
        rounds.append(got)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in got.items()))
    for key in rounds[0]:
        print(f"{key:>18}: median {statistics.median(r[key] for r in rounds):.1f} s "
              f"over {len(rounds)} round(s) (max {args.max} replicas, {args.loops} wget "
              f"loop(s), one node)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max", type=int, default=3, help="the HPA's maxReplicas, its target size")
    p.add_argument("--loops", type=int, default=2, help="wget loops of the load generator")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--down", action="store_true", help="also time the scale down")
    args = p.parse_args()
    if args.max < 2 or args.rounds < 1 or not 1 <= args.loops <= 16:
        p.error("--max must be >= 2, --rounds >= 1 and --loops in 1..16")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
