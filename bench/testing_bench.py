"""kubemu.testing: how long a test waits for its cluster, and what a namespace per test costs.

    .venv/bin/python bench/testing_bench.py [--starts 10] [--namespaces 50] [--tests 50]

- start-up, `--starts` times each, one cluster at a time, each in a new home:
  - `Cluster(components=API_ONLY).up()` — etcd + apiserver, envtest's case;
  - `Cluster(nodes=1).up()` — the control plane (etcd, apiserver, scheduler,
    controller-manager) and one node (runtime, kubelet, kube-proxy), then
    until its Node is Ready (`wait_for_nodes(1)`);
  from the call until it returns (every process ready: the supervisor's
  readiness), and `down()` after it (every process stopped and checked gone).
- the fixture `kubemu_namespace` on one shared control-plane cluster: its own
  work (create the namespace, ask for its deletion), `--namespaces` times, in
  one event loop, as pytest-asyncio runs it;
- a real pytest session (`pytest -p kubemu.testing`) of `--tests` tests that
  each take `kubemu_client` and `kubemu_namespace`, against the same tests
  taking only `kubemu_cluster`: the difference per test, session start-up
  excluded (both share one cluster per session).

Prints p50 / p99 (p99 of 10 samples is interpolated between the two largest)
and the machine's load. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

from kubemu.testing import API_ONLY, Cluster
from kubemu.testing.plugin import create_namespace, delete_namespace


def quantiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) == 1:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


def show(label: str, samples: list[float], unit: str = "s", scale: float = 1.0) -> None:
    p50, p99 = quantiles(samples)
    print(f"  {label:<44} p50 {p50 * scale:8.3f} {unit}   p99 {p99 * scale:8.3f} {unit}   "
          f"(n={len(samples)}, min {min(samples) * scale:.3f}, max {max(samples) * scale:.3f})",
          flush=True)


async def starts(shape: dict, count: int, nodes: int) -> tuple[list[float], list[float]]:
    up_s: list[float] = []
    down_s: list[float] = []
    for _ in range(count):
        cluster = Cluster(**shape)
        t0 = time.perf_counter()
        await cluster.aup()
        if nodes:
            await cluster.wait_for_nodes(nodes, timeout_s=60)
        up_s.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        await cluster.adown()
        down_s.append(time.perf_counter() - t1)
    return up_s, down_s


async def namespaces(count: int) -> list[float]:
    costs: list[float] = []
    async with Cluster() as cluster:
        async with cluster.new_client() as client:
            for i in range(count):
                t0 = time.perf_counter()
                name = await create_namespace(client, f"test_bench_{i}")
                await delete_namespace(client, name)
                costs.append(time.perf_counter() - t0)
    return costs


TESTS = """
import pytest

@pytest.mark.parametrize("i", range({count}))
async def test_with_namespace(i, kubemu_client, kubemu_namespace):
    assert kubemu_namespace

@pytest.mark.parametrize("i", range({count}))
async def test_cluster_only(i, kubemu_cluster):
    assert kubemu_cluster.address
"""


def session_cost(count: int) -> tuple[float, float, str]:
    """Per-test wall time of the two kinds of tests, from pytest's --durations table."""
    with tempfile.TemporaryDirectory(prefix="kubemu-bench-") as tmp:
        root = pathlib.Path(tmp)
        (root / "test_bench.py").write_text(TESTS.format(count=count))
        (root / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n"
                                         "asyncio_default_fixture_loop_scope = function\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "kubemu.testing", "-p", "no:cacheprovider",
             "-q", "--durations=0", "--durations-min=0", "-vv"],
            cwd=root, env=env, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the pytest session failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    per: dict[str, list[float]] = {}
    pattern = re.compile(r"\s*([\d.]+)s (setup|call|teardown)\s+test_bench.py::test_(\w+?)\[(\d+)\]")
    for line in done.stdout.splitlines():
        match = pattern.match(line)
        if match:
            per.setdefault(f"{match[3]}[{match[4]}]", []).append(float(match[1]))
    # The first test's setup starts the session's cluster, the last one's teardown
    # stops it: both left out.
    first, last = "with_namespace[0]", f"cluster_only[{count - 1}]"
    with_ns = [sum(v) for k, v in per.items() if k.startswith("with_namespace[") and k != first]
    only = [sum(v) for k, v in per.items() if k.startswith("cluster_only[") and k != last]
    if not with_ns or not only:
        raise SystemExit(f"no --durations table in pytest's output:\n{done.stdout[-3000:]}")
    return statistics.mean(with_ns), statistics.mean(only), f"{wall:.1f} s"


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--tests", type=int, default=50)
    args = parser.parse_args()
    print(f"kubemu.testing bench — {load()}", flush=True)

    print(f"start-up, {args.starts} starts each:", flush=True)
    up_s, down_s = await starts({"components": API_ONLY}, args.starts, nodes=0)
    show("etcd + apiserver: up()", up_s)
    show("etcd + apiserver: down()", down_s)
    up_s, down_s = await starts({"nodes": 1}, args.starts, nodes=1)
    show("1-node full cluster: up() + Node Ready", up_s)
    show("1-node full cluster: down()", down_s)

    print(f"kubemu_namespace's work on a shared cluster, {args.namespaces} times:", flush=True)
    show("create + delete a namespace", await namespaces(args.namespaces), "ms", 1000.0)

    print(f"a pytest session of 2 x {args.tests} tests on one shared cluster:", flush=True)
    with_ns, only, wall = await asyncio.to_thread(session_cost, args.tests)
    print(f"  per test with kubemu_client + kubemu_namespace  {with_ns * 1000:8.1f} ms "
          f"(setup + call + teardown)", flush=True)
    print(f"  per test with kubemu_cluster only              {only * 1000:8.1f} ms", flush=True)
    print(f"  => kubemu_namespace + kubemu_client cost        {(with_ns - only) * 1000:8.1f} ms "
          f"per test; the whole session took {wall}", flush=True)
    print(f"done — {load()}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
