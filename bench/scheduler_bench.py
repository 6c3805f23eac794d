"""Scheduler throughput from a cold queue, and create -> bound latency.

    .venv/bin/python bench/scheduler_bench.py [--nodes 100] [--pods 2000] [--latency-pods 1000]

Starts etcd + apiserver (the supervisor, no scheduler) in a temporary home,
creates `--nodes` Nodes through the API (no kubelets: pods are bound, never
started, so pod start is excluded by construction), then:
1. throughput, cold queue: `--pods` pods are created while no scheduler runs;
   then `python -m scheduler` is started. A watch on pods records when each one
   is first seen bound; throughput = bound pods / (last bind - first bind).
   The time from starting the process to the first bind (informer list,
   leader election) is printed separately.
2. latency, warm: with the scheduler running, `--latency-pods` more pods are
   created at `--latency-rate` per second; latency = bound seen by the watch -
   the create call returning, p50/p99 over all of them (one clock, this process).
Also printed: the CPU seconds the scheduler, apiserver and etcd used in phase 1,
and how many Scheduled events were written. Target: >= 500 pods/s (five times
kube-scheduler's 100 pods/s scalability figure). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import statistics
import sys
import tempfile
import time

import psutil

from deploy.supervisor import Cluster
from kubemu.api import codec
from kubemu.api.v1 import core_pb2
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for

TARGET_PODS_PER_S = 500.0
KUBE_SCHEDULER_PODS_PER_S = 100.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def node(name: str) -> core_pb2.Node:
    return codec.from_dict(core_pb2.Node, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}})


def pod(name: str, namespace: str) -> core_pb2.Pod:
    return codec.from_dict(core_pb2.Pod, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause",
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})


async def bounded(items: list, concurrency: int, fn) -> None:
    queue = list(reversed(items))

    async def worker():
        while queue:
            await fn(queue.pop())
    await asyncio.gather(*(worker() for _ in range(concurrency)))


class BindWatch:
    """Records, per pod name, when a watch first showed it with spec.nodeName."""

    def __init__(self, client: Client, namespace: str, resource_version: str):
        self.bound_at: dict[str, float] = {}
        self._task = asyncio.get_running_loop().create_task(
            self._run(client, namespace, resource_version))

    async def _run(self, client: Client, namespace: str, resource_version: str) -> None:
        events = client.watch("pods", namespace, resource_version=resource_version)
        async with contextlib.aclosing(events):
            async for event in events:
                obj = event.object
                if obj is not None and obj.spec.node_name and obj.metadata.name not in \
                        self.bound_at:
                    self.bound_at[obj.metadata.name] = time.monotonic()

    async def wait_count(self, names: set[str], timeout_s: float) -> None:
        await wait_for(lambda: names <= self.bound_at.keys(), timeout_s, interval_s=0.02,
                       message=f"{len(names)} pods bound "
                               f"({len(names & self.bound_at.keys())} so far)")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except psutil.Error:
        return float("nan")


async def start_scheduler(home: pathlib.Path, apiserver: str, log_dir: pathlib.Path,
                          profile: str = "") -> asyncio.subprocess.Process:
    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    out = open(log_dir / "scheduler.out", "ab")
    python = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
    try:
        return await asyncio.create_subprocess_exec(
            *python, "-m", "scheduler", "--apiserver", apiserver, "--seed", "1",
            "--health-listen", "127.0.0.1:0", "--log-file", str(log_dir / "scheduler.log"),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            env=env, cwd=root)
    finally:
        out.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--latency-pods", type=int, default=1000)
    parser.add_argument("--latency-rate", type=float, default=100.0,
                        help="pods created per second in the latency phase")
    parser.add_argument("--concurrency", type=int, default=32, help="creates in flight")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--profile-scheduler", default="", metavar="FILE",
                        help="run the scheduler under cProfile, stats to FILE")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kubemu-sched-bench-") as tmp:
        home = pathlib.Path(tmp) / "home"
        cluster = Cluster(home, schedulers=0, progress=lambda line: None)
        await cluster.start(timeout_s=60)
        scheduler = None
        client = Client(cluster.address("apiserver"), timeout_s=30)
        try:
            pids = {s.component: s.pid for s in cluster.status()}
            await bounded([f"node-{i:03d}" for i in range(args.nodes)], args.concurrency,
                          lambda name: client.create(node(name)))
            ns = "bench"
            await client.create(codec.from_dict(core_pb2.Namespace, {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))

            # Phase 1: a cold queue.
            cold = [f"cold-{i:05d}" for i in range(args.pods)]
            began = time.monotonic()
            await bounded(cold, args.concurrency, lambda name: client.create(pod(name, ns)))
            create_s = time.monotonic() - began
            listed = await client.list("pods", ns, limit=1)
            watch = BindWatch(client, ns, listed.resource_version)
            cpu_before = {c: cpu_s(p) for c, p in pids.items()}
            started = time.monotonic()
            scheduler = await start_scheduler(home, cluster.address("apiserver"), home / "logs",
                                              args.profile_scheduler)
            sched_cpu_start = cpu_s(scheduler.pid)
            await watch.wait_count(set(cold), args.timeout_s)
            times = sorted(watch.bound_at[n] for n in cold)
            first, last = times[0], times[-1]
            cpu_used = {c: cpu_s(p) - cpu_before[c] for c, p in pids.items()}
            cpu_used["scheduler"] = cpu_s(scheduler.pid) - sched_cpu_start
            throughput = (len(times) - 1) / (last - first) if last > first else float("inf")

            # Phase 2: latency with the scheduler running, creates paced.
            warm = [f"warm-{i:05d}" for i in range(args.latency_pods)]
            created_at: dict[str, float] = {}
            interval_s = 1.0 / args.latency_rate
            tasks = []

            async def create_one(name: str) -> None:
                await client.create(pod(name, ns))
                created_at[name] = time.monotonic()
            phase2 = time.monotonic()
            for i, name in enumerate(warm):
                tasks.append(asyncio.get_running_loop().create_task(create_one(name)))
                # Paced against a schedule, not a sleep per pod: no drift.
                await asyncio.sleep(max(0.0, phase2 + (i + 1) * interval_s - time.monotonic()))
            await asyncio.gather(*tasks)
            await watch.wait_count(set(warm), args.timeout_s)
            latencies_ms = [max(0.0, watch.bound_at[n] - created_at[n]) * 1000 for n in warm]
            await watch.stop()
        finally:
            if scheduler is not None and scheduler.returncode is None:
                scheduler.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(scheduler.wait(), 15)
                if scheduler.returncode is None:
                    scheduler.kill()
                    await scheduler.wait()
            events = None
            with contextlib.suppress(Exception):
                events = sum(1 for e in (await client.list_all("events", "bench")).items
                             if e.reason == "Scheduled")
            await client.close()
            await cluster.shutdown(timeout_s=30)

    print(f"nodes={args.nodes} pods={args.pods} cpus={os.cpu_count()} "
          f"(pods created at {args.pods / create_s:.0f}/s with no scheduler running)")
    print(f"cold queue: {len(times)} pods bound in {last - first:.2f} s from first to last "
          f"bind: {throughput:.0f} pods/s (target {TARGET_PODS_PER_S:.0f}: "
          f"{throughput / TARGET_PODS_PER_S:.2f}x; kube-scheduler's "
          f"{KUBE_SCHEDULER_PODS_PER_S:.0f} pods/s: {throughput / KUBE_SCHEDULER_PODS_PER_S:.1f}x)")
    print(f"  process start -> first bind: {first - started:.2f} s (list, sync, lease)")
    print("  CPU seconds during the cold phase: " + ", ".join(
        f"{c} {v:.1f}" for c, v in cpu_used.items()))
    print(f"create -> bound at {args.latency_rate:.0f} pods/s ({len(latencies_ms)} pods): "
          f"p50 {percentile(latencies_ms, 0.5):.1f} ms, p99 {percentile(latencies_ms, 0.99):.1f} ms, "
          f"max {max(latencies_ms):.1f} ms, mean {statistics.mean(latencies_ms):.1f} ms")
    print(f"Scheduled events written: {events} of {args.pods + args.latency_pods} "
          f"(best effort: the recorder drops when its queue is full)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
