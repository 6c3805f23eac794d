"""kube-proxy: HTTP through a ClusterIP vs straight to a pod IP, slice-update-to-routing
time, and the memory of one proxy serving 100 Services x 10 endpoints.

    .venv/bin/python bench/net_bench.py [--requests 3000] [--concurrency 16]
                                        [--flips 40] [--services 100] [--endpoints 10]

Starts etcd + apiserver (through the supervisor) in a temporary KUBEMU_HOME,
one `python -m kube_proxy` process, and a backends process (10 tiny asyncio
HTTP servers on 127.255.<b>.1..10, one port; they stand in for pods). The
objects are made by hand: Services (the apiserver's ClusterIP when it
allocates one, else an explicit one in the cluster's 127.B.0.0/24) and
EndpointSlices. Measured in one run, from this process:
1. HTTP requests/s and p50/p99 latency, a new connection per request
   (`Connection: close`, as repeated curls) and then on keep-alive
   connections, `concurrency` clients at once: straight to one backend's
   address, and through the ClusterIP of a Service over all ten; the ratio
   ClusterIP / direct.
2. EndpointSlice update -> routing: the slice flips which of two endpoints
   is ready; the time from just before the update call to the first request
   answered by the newly ready endpoint (p50/p99 over `flips`).
3. RSS of the kube-proxy process with no Service, then once it serves
   `services` Services with `endpoints` endpoints each (listeners up and
   every route filled, read from its metrics method).
4. Pod readiness change -> routing, the whole chain (probe -> kubelet ->
   pod status -> EndpointSlice controller -> kube-proxy) on a second, real
   cluster (fast control plane, one node with its kube-proxy): two kuard
   pods behind a Service, readiness probe every 1 s with failureThreshold 1.
   One pod's /ready is switched off until no request reaches it, then on;
   measured to the first request through the ClusterIP that it answers:
   from the pod's Ready=True status (seen by polling the apiserver every
   10 ms), and from the switch in the app (this adds up to one probe period).
   p50/p99 over `readiness_flips`; compared with the issue's bound, the probe
   period x failureThreshold + 1 s.
Figures are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import psutil

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client

REPO = pathlib.Path(__file__).resolve().parent.parent
METRICS_METHOD = "/kubemu.kubeproxy.v1.KubeProxy/Metrics"  # kube_proxy.app's
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
RESPONSE = "HTTP/1.1 200 OK\r\nX-Backend: {}\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
REQUEST_CLOSE = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
REQUEST_KEEP = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
IO_TIMEOUT_S = 10.0
WAIT_S = 60.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def obj(doc: dict):
    return codec.from_dict(REGISTRY.by_gvk(doc["apiVersion"], doc["kind"]).message, doc)


# ------------------------------------------------------------ backends (a child process)

async def serve_backends(block: int, count: int) -> None:
    """HTTP/1.1 'ok' servers on 127.255.<block>.1..count, one port; prints the port."""
    port = 0
    servers = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        response = RESPONSE.format(writer.get_extra_info("sockname")[0]).encode()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
                if b"connection: close" in head.lower():
                    await writer.drain()
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    for i in range(1, count + 1):
        server = await asyncio.start_server(handle, f"127.255.{block}.{i}", port, backlog=1024)
        port = port or server.sockets[0].getsockname()[1]
        servers.append(server)
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# ------------------------------------------------------------ HTTP client

async def one_request(ip: str, port: int) -> float:
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection(ip, port)
    try:
        writer.write(REQUEST_CLOSE)
        data = await reader.read()
    finally:
        writer.close()
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad answer from {ip}:{port}: {data[:60]!r}")
    return time.perf_counter() - began


async def load(ip: str, port: int, requests: int, concurrency: int, keep_alive: bool
               ) -> tuple[float, list[float]]:
    """(requests/s, latencies in s) for `requests` requests, `concurrency` at once."""
    latencies: list[float] = []
    left = requests

    async def client() -> None:
        nonlocal left
        reader = writer = None
        try:
            while left > 0:
                left -= 1
                if not keep_alive:
                    latencies.append(await asyncio.wait_for(one_request(ip, port), IO_TIMEOUT_S))
                    continue
                if writer is None:
                    reader, writer = await asyncio.open_connection(ip, port)
                began = time.perf_counter()
                writer.write(REQUEST_KEEP)
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), IO_TIMEOUT_S)
                latencies.append(time.perf_counter() - began)
        finally:
            if writer is not None:
                writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - began), latencies


async def backend_of(ip: str, port: int) -> str:
    """Which backend answered one request (its X-Backend header)."""
    reader, writer = await asyncio.open_connection(ip, port)
    try:
        writer.write(REQUEST_CLOSE)
        data = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
    finally:
        writer.close()
    for line in data.split(b"\r\n"):
        if line.startswith(b"X-Backend: "):
            return line[len(b"X-Backend: "):].decode()
    return ""


# ------------------------------------------------------------ objects

def service_doc(name: str, port: int, cluster_ip: str = "") -> dict:
    spec: dict = {"type": "ClusterIP", "ports": [{"name": "http", "port": port,
                                                  "protocol": "TCP"}]}
    if cluster_ip:
        spec.update(clusterIP=cluster_ip, clusterIPs=[cluster_ip])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def slice_doc(name: str, service: str, ips: list[str], port: int,
              ready: list[bool] | None = None) -> dict:
    ready = ready or [True] * len(ips)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": r}}
                          for ip, r in zip(ips, ready)],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


class Services:
    """Creates Services: the apiserver's ClusterIP when it allocates one, else 127.B.0.i."""

    def __init__(self, api: Client, block: int):
        self.api = api
        self.block = block
        self.next_ip = 2
        self.allocates: bool | None = None

    async def create(self, name: str, port: int) -> str:
        if self.allocates is not False:
            svc = await self.api.create(obj(service_doc(name, port)))
            self.allocates = bool(svc.spec.cluster_ip)
            if self.allocates:
                return svc.spec.cluster_ip
            await self.api.delete("services", name, "default")
        ip = f"127.{self.block}.0.{self.next_ip}"
        self.next_ip += 1
        await self.api.create(obj(service_doc(name, port, ip)))
        return ip


async def metrics(address: str) -> dict:
    async with grpc.aio.insecure_channel(address) as channel:
        return json.loads(await channel.unary_unary(METRICS_METHOD)(b"", timeout=10.0))


async def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s} s")
        await asyncio.sleep(0.01)  # a bench's poll, bounded by the deadline


async def routed(address: str, listener: str, endpoints: int) -> bool:
    for row in (await metrics(address))["listeners"]:
        if row["listener"] == listener:
            return len(row.get("endpoints", ())) == endpoints
    return False


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / (1 << 20)


# ------------------------------------------------------------ the run

async def measure(api: Client, block: int, proxy_health: str, proxy_pid: int,
                  backend_block: int, backend_port: int, args: argparse.Namespace) -> None:
    services = Services(api, block)
    ips = [f"127.255.{backend_block}.{i}" for i in range(1, args.endpoints + 1)]
    port = 80
    rss_empty = await asyncio.to_thread(rss_mib, proxy_pid)

    # 1. HTTP through the ClusterIP vs straight to a backend.
    cip = await services.create("bench-http", port)
    await api.create(obj(slice_doc("bench-http-1", "bench-http", ips, backend_port)))
    await wait_until(lambda: routed(proxy_health, f"{cip}:{port}/TCP", len(ips)), WAIT_S,
                     "bench-http routed")
    print(f"HTTP, {args.requests} requests, {args.concurrency} clients at once; "
          f"ClusterIP {cip}:{port} over {len(ips)} endpoints vs one endpoint {ips[0]}:{backend_port}")
    for keep_alive in (False, True):
        mode = "keep-alive      " if keep_alive else "new connection  "
        await load(ips[0], backend_port, args.requests // 10, args.concurrency, keep_alive)  # warm
        direct_rate, direct = await load(ips[0], backend_port, args.requests, args.concurrency,
                                         keep_alive)
        proxied_rate, proxied = await load(cip, port, args.requests, args.concurrency, keep_alive)
        ms = 1000
        print(f"  {mode} direct    {direct_rate:8.0f} req/s  p50 {percentile(direct, .5) * ms:6.2f} ms"
              f"  p99 {percentile(direct, .99) * ms:6.2f} ms")
        print(f"  {mode} ClusterIP {proxied_rate:8.0f} req/s  p50 {percentile(proxied, .5) * ms:6.2f} ms"
              f"  p99 {percentile(proxied, .99) * ms:6.2f} ms")
        print(f"  {mode} ratio ClusterIP/direct: {proxied_rate / direct_rate:.2f} x req/s, "
              f"p50 {percentile(proxied, .5) / percentile(direct, .5):.2f} x, "
              f"p99 {percentile(proxied, .99) / percentile(direct, .99):.2f} x")

    # 2. EndpointSlice update -> the first request answered by the endpoint
    # the update made the only ready one (requests back to back until then).
    flip_ips = ips[:2]
    fcip = await services.create("bench-flip", port)
    sl = await api.create(obj(slice_doc("bench-flip-1", "bench-flip", flip_ips, backend_port,
                                        ready=[True, False])))
    await wait_until(lambda: routed(proxy_health, f"{fcip}:{port}/TCP", 1), WAIT_S,
                     "bench-flip routed")
    samples = []
    for i in range(args.flips):
        now_ready = (i + 1) % 2   # index of the endpoint made ready by this flip
        for j, ep in enumerate(sl.endpoints):
            ep.conditions.ready = j == now_ready
        began = time.perf_counter()
        sl = await api.update(sl)

        async def flipped(target=flip_ips[now_ready]) -> bool:
            try:
                return await backend_of(fcip, port) == target
            except (OSError, asyncio.IncompleteReadError):
                return False
        await wait_until(flipped, WAIT_S, "flip routed")
        samples.append(time.perf_counter() - began)
    print(f"EndpointSlice update -> routing ({args.flips} flips; from the update call to the "
          f"first request answered by the newly ready endpoint): "
          f"p50 {percentile(samples, .5) * 1000:.1f} ms  p99 {percentile(samples, .99) * 1000:.1f} ms")

    # 3. Memory with N Services x M endpoints (addresses need not answer).
    made = 2
    for i in range(made, args.services):
        name = f"bench-mem-{i}"
        await services.create(name, port)
        eps = [f"127.254.{i % 250}.{k}" for k in range(1, args.endpoints + 1)]
        await api.create(obj(slice_doc(f"{name}-1", name, eps, 8080)))

    async def all_routed() -> bool:
        m = await metrics(proxy_health)
        full = [r for r in m["listeners"] if len(r.get("endpoints", ())) == args.endpoints]
        return len(full) >= args.services - 1  # bench-flip has 1 endpoint
    await wait_until(all_routed, WAIT_S, "every Service routed")
    rss_full = await asyncio.to_thread(rss_mib, proxy_pid)
    print(f"kube-proxy RSS: {rss_empty:.1f} MiB with no Service, {rss_full:.1f} MiB serving "
          f"{args.services} Services x {args.endpoints} endpoints "
          f"(+{(rss_full - rss_empty) * 1024 / args.services:.0f} KiB per Service)")


async def run(args: argparse.Namespace) -> None:
    rng = random.Random()
    with tempfile.TemporaryDirectory(prefix="kubemu-netbench-") as home:
        cluster = Cluster(home, nodes=0, kinds=(comp.ETCD_KIND, comp.APISERVER_KIND),
                          progress=lambda line: None)
        await cluster.start(120)
        backends = proxy = None
        try:
            block = await asyncio.to_thread(comp.network_block, pathlib.Path(home).resolve())
            backend_block = rng.randint(1, 254)
            env = dict(os.environ, PYTHONPATH=str(REPO))
            backends = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--serve-backends", str(backend_block),
                "--endpoints", str(args.endpoints), stdout=subprocess.PIPE, env=env)
            backend_port = int((await backends.stdout.readline()).decode())
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                health = f"127.0.0.1:{s.getsockname()[1]}"
            proxy = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kube_proxy", "--apiserver", cluster.address(comp.APISERVER),
                "--node-name", "node-1", "--node-ip", f"127.0.{block}.1",
                "--health-listen", health, "--connections-max", "4096",
                "--log-file", str(pathlib.Path(home) / "kube-proxy.log"), "--log-level", "warning",
                env=env, cwd=str(REPO))

            async def up() -> bool:
                try:
                    await metrics(health)
                    return True
                except grpc.aio.AioRpcError:
                    return False
            await wait_until(up, WAIT_S, "kube-proxy up")
            async with Client(cluster.address(comp.APISERVER), timeout_s=30) as api:
                await measure(api, block, health, proxy.pid, backend_block, backend_port, args)
        finally:
            for child in (proxy, backends):
                if child is not None and child.returncode is None:
                    child.terminate()
                    await child.wait()
            await cluster.shutdown()


# ------------------------------------------------------------ 4. the readiness chain

KUARD_HOSTNAME = re.compile(rb'id="hostname">([^<]+)<')
PROBE_PERIOD_S = 1


def kuard_docs() -> list[dict]:
    container = {"name": "kuard", "image": "gcr.io/kuar-demo/kuard-amd64:blue",
                 "ports": [{"containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080},
                                    "periodSeconds": PROBE_PERIOD_S, "failureThreshold": 1}}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "kuard", "namespace": "default"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "kuard"}},
                  "template": {"metadata": {"labels": {"app": "kuard"}},
                               "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kuard", "namespace": "default"},
         "spec": {"selector": {"app": "kuard"},
                  "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}]


async def http_get(ip: str, port: int, path: str = "/") -> bytes:
    reader, writer = await asyncio.open_connection(ip, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        return await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
    finally:
        writer.close()


async def kuard_host(ip: str, port: int) -> str:
    try:
        match = KUARD_HOSTNAME.search(await http_get(ip, port))
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        return ""
    return match.group(1).decode() if match else ""


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def readiness_chain(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="kubemu-netbench-") as home:
        cluster = Cluster(home, nodes=1, kinds=comp.control_plane("fast"),
                          node_kinds=comp.NODE_COMPONENTS, progress=lambda line: None)
        await cluster.start(180)
        try:
            async with Client(cluster.address(comp.APISERVER), timeout_s=30) as api:
                for doc in kuard_docs():
                    await api.create(obj(doc))

                async def pods_ready():
                    pods = (await api.list("pods", "default")).items
                    return pods if len(pods) == 2 and all(map(is_ready, pods)) else None
                pods = await wait_until(pods_ready, 120, "two kuard pods Ready")
                cip = (await api.get("services", "kuard", "default")).spec.cluster_ip
                victim = pods[0]
                name, pod_ip = victim.metadata.name, victim.status.pod_ip

                async def answers(want: str, tries: int) -> bool:
                    return any([await kuard_host(cip, 80) == want for _ in range(tries)])
                await wait_until(lambda: answers(name, 4), WAIT_S, "the ClusterIP reaches it")
                from_status, from_switch = [], []
                for _ in range(args.readiness_flips):
                    await http_get(pod_ip, 8080, "/ready?fail=1")

                    async def out() -> bool:
                        pod = await api.get("pods", name, "default")
                        return not is_ready(pod) and not await answers(name, 6)
                    await wait_until(out, WAIT_S, "out of rotation")
                    switched = time.perf_counter()
                    await http_get(pod_ip, 8080, "/ready?ok=1")
                    ready_at: list[float] = []

                    async def watch_status() -> None:
                        while not is_ready(await api.get("pods", name, "default")):
                            await asyncio.sleep(0.01)  # the bench's poll
                        ready_at.append(time.perf_counter())
                    watcher = asyncio.create_task(watch_status())
                    await wait_until(lambda: answers(name, 1), WAIT_S, "back in rotation")
                    routed_at = time.perf_counter()
                    await asyncio.wait_for(watcher, WAIT_S)
                    from_status.append(routed_at - ready_at[0])
                    from_switch.append(routed_at - switched)
            bound_s = PROBE_PERIOD_S * 1 + 1
            print(f"pod readiness change -> routing, whole chain ({args.readiness_flips} flips, "
                  f"probe period {PROBE_PERIOD_S} s, failureThreshold 1):")
            print(f"  from Ready=True in the apiserver to the first request it answers: "
                  f"p50 {percentile(from_status, .5) * 1000:.0f} ms  "
                  f"p99 {percentile(from_status, .99) * 1000:.0f} ms")
            print(f"  from the switch in the app (adds up to one probe period): "
                  f"p50 {percentile(from_switch, .5) * 1000:.0f} ms  "
                  f"p99 {percentile(from_switch, .99) * 1000:.0f} ms; the issue's bound "
                  f"(period x failureThreshold + 1 s) {bound_s} s: "
                  f"{'met' if percentile(from_switch, .99) <= bound_s else 'NOT met'} at p99")
        finally:
            await cluster.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--flips", type=int, default=40)
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--readiness-flips", type=int, default=20)
    p.add_argument("--serve-backends", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_backends is not None:
        asyncio.run(serve_backends(args.serve_backends, args.endpoints))
        return
    if args.endpoints < 2 or args.services < 3:
        p.error("need --endpoints >= 2 and --services >= 3")
    asyncio.run(run(args))
    asyncio.run(readiness_chain(args))


if __name__ == "__main__":
    main()
