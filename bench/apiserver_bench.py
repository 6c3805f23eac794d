"""Apiserver write throughput against raw etcd, and watch delivery latency.

    .venv/bin/python bench/apiserver_bench.py [--objects 5000] [--concurrency 64] [--watchers 100]

Starts its own etcd + apiserver (through the supervisor) in a temporary
KUBEMU_HOME, then measures in the same run, from one client process:
1. raw etcd puts/s: the apiserver's create transaction (put if absent) of a
   ~1 KB value, `concurrency` in flight;
2. apiserver creates/s: ConfigMaps of the same size through the clientset,
   same concurrency; and the ratio of the two (target >= 0.5);
3. the same number of unary calls to a no-op Python gRPC server (a separate
   process), the ceiling that grpc.aio alone sets for the apiserver;
4. the same creates through the same client to a pass-through Python gRPC
   server (a separate process) whose Create does only the etcd transaction
   (bench/passthrough_grpc_server.py): the ceiling of a Python apiserver that
   stores objects, and the apiserver's rate as a ratio of it (target >= 0.9),
   measured in `--rounds` interleaved rounds (median printed);
5. watch delivery latency: `watchers` concurrent watches on one namespace,
   creates paced at `--watch-rate` per second; latency = event received -
   create sent, p50/p99 over every (watcher, event).
Figures are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


from apiserver.storage import EtcdStore
from deploy.supervisor import Cluster
from kubemu.api.v1 import core_pb2
from kubemu.client.clientset import Client
from kubemu.client.config import load_cluster_config

PAYLOAD = "x" * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def bounded(n: int, concurrency: int, fn) -> float:
    """Run fn(i) for i in range(n), `concurrency` at a time; return elapsed seconds."""
    next_i = 0

    async def worker():
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            await fn(i)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def etcd_puts(endpoint: str, n: int, concurrency: int) -> float:
    store = EtcdStore(endpoint, timeout_s=30)
    await store.connect()
    value = core_pb2.ConfigMap(metadata={"name": "x"}, data={"payload": PAYLOAD}).SerializeToString()
    try:
        async def put(i):
            rev = await store.put_if(f"/bench/raw/{i:06d}".encode(), value, 0)
            assert rev is not None
        elapsed = await bounded(n, concurrency, put)
    finally:
        await store.close()
    return n / elapsed


async def apiserver_creates(client: Client, n: int, concurrency: int,
                            prefix: str = "bench") -> float:
    async def create(i):
        await client.create(core_pb2.ConfigMap(
            metadata={"name": f"{prefix}-{i:06d}", "namespace": "default"},
            data={"payload": PAYLOAD}))
    return n / await bounded(n, concurrency, create)


@contextlib.contextmanager
def helper_server(script: str, *args: str):
    """Run one of bench/'s servers in its own process; yield its address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), script),
                               address, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        yield address
    finally:
        server.kill()
        server.wait(10)


async def noop_calls(n: int, concurrency: int) -> float:
    """Unary calls/s to a do-nothing Python gRPC server: the ceiling of any such server."""
    import grpc

    from kubemu.api.v1 import resources_pb2 as pb
    from kubemu.api.v1 import resources_pb2_grpc as pb_grpc

    with helper_server("noop_grpc_server.py") as address:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.ResourcesStub(channel)

            async def call(i):
                await stub.Discovery(pb.DiscoveryRequest(), timeout=30)
            return n / await bounded(n, concurrency, call)


async def against_passthrough(api: Client, etcd_endpoint: str, n: int, concurrency: int,
                              rounds: int) -> list[tuple[float, float]]:
    """(apiserver creates/s, pass-through creates/s) per round, the two measured
    one after the other (order alternating) so that both see the same machine:
    on a shared machine the rate of either drifts by tens of percent over a
    minute, and a ratio of two separate measurements mostly measures that."""
    results = []
    with helper_server("passthrough_grpc_server.py", etcd_endpoint) as address:
        passthrough = Client(address, timeout_s=30)
        try:
            for r in range(rounds):
                order = [("api", api), ("pass", passthrough)]
                if r % 2:
                    order.reverse()
                rates = {name: await apiserver_creates(client, n, concurrency, f"r{r}-{name}")
                         for name, client in order}
                results.append((rates["api"], rates["pass"]))
        finally:
            await passthrough.close()
    return results


async def watch_latency(client: Client, watchers: int, events: int, rate_per_s: float
                        ) -> list[float]:
    await client.create(core_pb2.Namespace(metadata={"name": "bench-watch"}))
    sent: dict[str, float] = {}
    latencies_ms: list[float] = []
    ready = 0
    all_ready = asyncio.Event()

    async def watcher():
        nonlocal ready
        start = await client.list("configmaps", "bench-watch", limit=1)
        got = 0
        stream = client.watch("configmaps", "bench-watch",
                              resource_version=start.resource_version)
        ready += 1
        if ready == watchers:
            all_ready.set()
        async for event in stream:
            if event.type != "ADDED":
                continue
            latencies_ms.append((time.perf_counter() - sent[event.object.metadata.name]) * 1000)
            got += 1
            if got == events:
                return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    await asyncio.wait_for(all_ready.wait(), 60)
    await asyncio.sleep(0.5)  # let every stream reach the server before the first event
    for i in range(events):
        name = f"w-{i:05d}"
        sent[name] = time.perf_counter()
        await client.create(core_pb2.ConfigMap(metadata={"name": name, "namespace": "bench-watch"}))
        await asyncio.sleep(1 / rate_per_s)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return latencies_ms


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved apiserver / pass-through rounds (objects split among them)")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--watch-events", type=int, default=200)
    parser.add_argument("--watch-rate", type=float, default=50.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kubemu-bench-") as home:
        cluster = Cluster(home, nodes=0)
        await cluster.start(timeout_s=60)
        try:
            config = load_cluster_config(home)
            client = Client(config.apiserver, timeout_s=30)
            etcd_rate = await etcd_puts(config.etcd[0], args.objects, args.concurrency)
            api_rate = await apiserver_creates(client, args.objects, args.concurrency)
            noop_rate = await noop_calls(args.objects, args.concurrency)
            rounds = await against_passthrough(client, config.etcd[0],
                                               args.objects // args.rounds, args.concurrency,
                                               args.rounds)
            latencies = await watch_latency(client, args.watchers, args.watch_events,
                                            args.watch_rate)
            await client.close()
        finally:
            await cluster.shutdown(timeout_s=30)

    print(f"objects={args.objects} concurrency={args.concurrency} cpus={os.cpu_count()}")
    print(f"raw etcd puts/s:        {etcd_rate:8.0f}")
    print(f"apiserver creates/s:    {api_rate:8.0f}")
    print(f"ratio (target >= 0.5):  {api_rate / etcd_rate:8.2f}")
    print(f"no-op Python gRPC server calls/s (ceiling for any Python gRPC server): "
          f"{noop_rate:.0f} (ratio to etcd {noop_rate / etcd_rate:.2f})")
    ratios = [a / p for a, p in rounds]
    print(f"pass-through server creates/s (etcd transaction only), per round: "
          f"{', '.join(f'{p:.0f}' for _, p in rounds)}; apiserver in the same rounds: "
          f"{', '.join(f'{a:.0f}' for a, _ in rounds)}")
    print(f"apiserver / pass-through (target >= 0.9): median {statistics.median(ratios):.2f} "
          f"of {len(ratios)} interleaved rounds ({', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"watch delivery to {args.watchers} watchers, {args.watch_events} events at "
          f"{args.watch_rate:.0f}/s: p50 {percentile(latencies, 0.5):.1f} ms, "
          f"p99 {percentile(latencies, 0.99):.1f} ms, mean {statistics.mean(latencies):.1f} ms "
          f"({len(latencies)} deliveries)")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
