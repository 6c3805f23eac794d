"""Workload controllers at scale: a Deployment 0 -> N replicas, and a rolling update.

    .venv/bin/python bench/controller_bench.py [--replicas 300] [--nodes 3]
                                               [--rollout-replicas 100] [--fast]

Starts the whole cluster (etcd, apiserver, scheduler, controller-manager and
`nodes` nodes) through the supervisor in a temporary KUBEMU_HOME, then:
1. the apiserver's own pod create rate in this run: `replicas` pods created
   directly (64 in flight, bound to a node that does not exist, so nothing
   runs them), then deleted;
2. a Deployment of `registry.k8s.io/pause` pods scaled 0 -> `replicas`:
   the ReplicaSet controller's create rate (pods seen by a watch, from the
   scale call to the last pod created) and its ratio to (1); the time until
   every pod is Running and Ready;
3. scaled to `rollout_replicas`, then a rolling update (Kubernetes' default
   25% / 25%): the time until the Deployment reports every replica updated and
   available and no old pod is left.
Component timings are Kubernetes' defaults; --fast uses the test profile's
kubelet timings. Figures are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.informer import Informer

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from apiserver_bench import bounded  # noqa: E402
from kubelet_bench import FAST_KUBELET_FLAGS, obj  # noqa: E402

NAMESPACE = "bench"
RAW_NAMESPACE = "bench-raw"
WAIT_S = 900.0
RAW_CONCURRENCY = 64


def namespace(name: str):
    return obj({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def deployment(replicas: int):
    return obj({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "bench", "namespace": NAMESPACE},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                         "template": {"metadata": {"labels": {"app": "bench"}},
                                      "spec": {"terminationGracePeriodSeconds": 1,
                                               "containers": [{
                                                   "name": "main",
                                                   "image": "registry.k8s.io/pause:3.9"}]}}}})


def raw_pod(i: int):
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"raw-{i:05d}", "namespace": RAW_NAMESPACE},
                "spec": {"nodeName": "bench-nowhere",
                         "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}})


async def apiserver_pod_creates(api: Client, n: int) -> float:
    async def create(i: int) -> None:
        await api.create(raw_pod(i))
    rate = n / await bounded(n, RAW_CONCURRENCY, create)

    async def delete(i: int) -> None:
        try:
            await api.delete("pods", f"raw-{i:05d}", RAW_NAMESPACE, grace_period_s=0)
        except errors.NotFound:
            pass
    await bounded(n, RAW_CONCURRENCY, delete)
    return rate


class Pods:
    """When each pod of the benchmark was first seen, and first seen Running and Ready."""

    def __init__(self, api: Client):
        self.informer = Informer(api, "pods", NAMESPACE)
        self.added: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.informer.add_handler(self._seen, lambda _old, new: self._seen(new), self._gone)

    def _seen(self, pod) -> None:
        now = time.perf_counter()
        uid = pod.metadata.uid
        self.added.setdefault(uid, now)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        if ready and pod.status.phase == "Running":
            self.ready.setdefault(uid, now)
        self.changed.set()

    def _gone(self, _pod) -> None:
        self.changed.set()

    def live(self, template_hash: str = "") -> list:
        return [p for p in self.informer.list() if not p.metadata.deletion_timestamp
                and (not template_hash
                     or p.metadata.labels.get("pod-template-hash") == template_hash)]

    async def until(self, predicate, timeout_s: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def until(predicate, timeout_s: float = WAIT_S, interval_s: float = 0.2):
    async with asyncio.timeout(timeout_s):
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(interval_s)


async def measure(api: Client, args: argparse.Namespace) -> None:
    for name in (NAMESPACE, RAW_NAMESPACE):
        await api.create(namespace(name))
    raw_rate = await apiserver_pod_creates(api, args.replicas)
    print(f"apiserver: {args.replicas} pods created directly ({RAW_CONCURRENCY} in flight): "
          f"{raw_rate:.0f} pods/s")

    pods = Pods(api)
    pods.informer.start()
    await pods.informer.wait_synced(30)
    try:
        await api.create(deployment(0))
        began = time.perf_counter()
        await api.patch("deployments", "bench", NAMESPACE,
                        patch={"spec": {"replicas": args.replicas}})
        await pods.until(lambda: len(pods.added) >= args.replicas)
        created = sorted(pods.added.values())[:args.replicas]
        rs_rate = args.replicas / (created[-1] - began)
        print(f"deployment 0 -> {args.replicas} on {args.nodes} nodes: pods created in "
              f"{created[-1] - began:.1f} s = {rs_rate:.0f} pods/s by the ReplicaSet controller "
              f"= {rs_rate / raw_rate:.2f} x the apiserver's own create rate")
        await pods.until(lambda: len(pods.ready) >= args.replicas)
        print(f"  all {args.replicas} Running and Ready after "
              f"{max(pods.ready.values()) - began:.1f} s")

        await api.patch("deployments", "bench", NAMESPACE,
                        patch={"spec": {"replicas": args.rollout_replicas}})
        await pods.until(lambda: len(pods.live()) == args.rollout_replicas)
        await until(lambda: _complete(api, args.rollout_replicas))
        began = time.perf_counter()
        patched = await api.patch("deployments", "bench", NAMESPACE, patch={"spec": {"template": {
            "metadata": {"annotations": {"bench/rollout": "2"}}}}})
        await until(lambda: _complete(api, args.rollout_replicas, patched.metadata.generation))
        print(f"rolling update of {args.rollout_replicas} replicas (25% surge, 25% unavailable): "
              f"complete after {time.perf_counter() - began:.1f} s")
    finally:
        await pods.informer.stop()


async def _complete(api: Client, replicas: int, generation: int = 0) -> bool:
    """The Deployment's status says: every replica updated and available, no
    other pod left, at `generation` (or later) when given."""
    d = await api.get("deployments", "bench", NAMESPACE)
    s = d.status
    return (s.observed_generation == d.metadata.generation >= generation
            and s.updated_replicas == replicas and s.available_replicas == replicas
            and s.replicas == replicas)


async def run(args: argparse.Namespace) -> None:
    node_kinds = comp.node_components(kubelet_flags=FAST_KUBELET_FLAGS if args.fast else ())
    with tempfile.TemporaryDirectory(prefix="kubemu-bench-") as home:
        cluster = Cluster(home, nodes=args.nodes, node_kinds=node_kinds,
                          progress=lambda line: None)
        began = time.perf_counter()
        await cluster.start(120)
        print(f"cluster with {args.nodes} nodes ready in {time.perf_counter() - began:.1f} s")
        try:
            async with Client(cluster.address(comp.APISERVER), timeout_s=30) as api:
                await measure(api, args)
        finally:
            await cluster.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replicas", type=int, default=300)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rollout-replicas", type=int, default=100)
    p.add_argument("--fast", action="store_true", help="the tests' kubelet timings")
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
