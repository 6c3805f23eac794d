"""Recovery after a kill: how long until the cluster serves again, per kind of process.

    .venv/bin/python bench/recovery_bench.py [--kills 10] [--kinds etcd-leader,apiserver,...]

Brings up an HA cluster the way a user does (`kubemu up -d --profile fast
--etcd 3 --apiservers 2 --schedulers 2 --controller-managers 2 --nodes 2
--no-addons` in a temporary home), then, for each kind of process, `--kills`
times: SIGKILL through the supervisor's control API (`kubemu.control`), and
the time from the kill until what that process serves answers again,
polled every 20 ms:

- etcd-leader, etcd-follower, apiserver: a ConfigMap write through the
  kubeconfig's apiserver address succeeds;
- scheduler (the Lease holder): a new pod is bound to a node;
- controller-manager (the Lease holder): a new ReplicaSet's pod exists;
- kubelet, runtime (node-1's): a new pod placed on node-1 is Running;
- kube-proxy (node-1's): a NodePort Service answers on node-1's address.

Between kills it waits until the killed process is running again and the
kill's effect has passed, so each kill starts from a healthy cluster. Prints
p50 / p90 / max per kind, and the time until the killed process itself was
back (restarted by the supervisor). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client
from kubemu.client.config import load_cluster_config
from kubemu.control import SupervisorClient

KINDS = ("etcd-leader", "etcd-follower", "apiserver", "scheduler", "controller-manager",
         "kubelet", "runtime", "kube-proxy")
NAMESPACE = "bench"
NODE = "node-1"
POLL_S = 0.02
CALL_TIMEOUT_S = 1.0
RECOVERY_WAIT_S = 120.0
UP_TIMEOUT_S = 300.0
BACKEND_REPLY = b"recovery-bench\n"


def obj(doc: dict):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    return codec.from_dict(kind.message, doc)


def kubemu(home: pathlib.Path, *args: str, timeout_s: float = UP_TIMEOUT_S) -> str:
    done = subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args],
                          env=dict(os.environ, KUBEMU_HOME=str(home)), capture_output=True,
                          text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"kubemu {' '.join(args)}: {done.stderr.strip() or done.stdout}")
    return done.stdout


async def until(what: str, check, began: float, wait_s: float = RECOVERY_WAIT_S) -> float:
    """Seconds since `began` until check() is truthy (exceptions count as not yet)."""
    deadline = time.perf_counter() + wait_s
    last: object = None
    while time.perf_counter() < deadline:
        try:
            if await check():
                return time.perf_counter() - began
        except Exception as exc:  # noqa: BLE001 - a failed probe is "not yet"
            last = exc
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{what}: not within {wait_s:g} s (last: {last!r})")


class Bench:
    def __init__(self, home: pathlib.Path, api: Client, control: SupervisorClient):
        self.home = home
        self.api = api
        self.control = control
        self.rng = random.Random(1)
        self.counter = 0
        self.node_port = 0
        self.node_ip = ""

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    async def write(self) -> bool:
        await self.api.create(obj({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": self.name("cm"), "namespace": NAMESPACE},
                                   "data": {"k": "v"}}))
        return True

    async def lease_holder(self, lease: str) -> str:
        got = await self.api.get("leases", lease, "kube-system")
        return got.spec.holder_identity.split("_")[0]

    async def victim(self, kind: str) -> str:
        names = [p.name for p in await self.control.status()]
        if kind in ("etcd-leader", "etcd-follower"):
            leader = await self.control.etcd_leader()
            if kind == "etcd-leader":
                return leader
            return self.rng.choice([n for n in names if n.startswith("etcd-") and n != leader])
        if kind == "apiserver":
            return self.rng.choice([n for n in names if n.startswith("apiserver-")])
        if kind == "scheduler":
            return await self.lease_holder("kube-scheduler")
        if kind == "controller-manager":
            return await self.lease_holder("kube-controller-manager")
        return f"{NODE}/{kind}"

    async def probe(self, kind: str, began: float) -> float:
        """Seconds from `began` (the kill) until what `kind` serves answers."""
        if kind in ("etcd-leader", "etcd-follower", "apiserver"):
            return await until(f"{kind}: a write", self.write, began)
        if kind == "scheduler":
            pod = await self.create_pod(node="")
            return await until("scheduler: pod bound", lambda: self.bound(pod), began)
        if kind == "controller-manager":
            rs = self.name("rs")
            await self.retry(lambda: self.api.create(obj({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": NAMESPACE},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"rs": rs}},
                         "template": self.template({"rs": rs})}})))
            return await until("controller-manager: ReplicaSet's pod", lambda: self.has_pod(rs),
                               began)
        if kind in ("kubelet", "runtime"):
            pod = await self.create_pod(node=NODE)
            return await until(f"{kind}: pod Running on {NODE}", lambda: self.running(pod), began)
        if kind == "kube-proxy":
            return await until("kube-proxy: NodePort answers", self.node_port_answers, began)
        raise ValueError(kind)

    @staticmethod
    def template(labels: dict) -> dict:
        return {"metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}}

    async def retry(self, call) -> object:
        """A create, tried until it lands (AlreadyExists: an earlier try did)."""
        async def once():
            try:
                return await call()
            except errors.AlreadyExists:
                return True
        return await until("create", once, time.perf_counter())

    async def create_pod(self, node: str) -> str:
        name = self.name("pod")
        spec = self.template({})["spec"]
        doc = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "probe"}},
               "spec": dict(spec, **({"nodeName": node} if node else {}))}
        await self.retry(lambda: self.api.create(obj(doc)))
        return name

    async def bound(self, pod: str) -> bool:
        return bool((await self.api.get("pods", pod, NAMESPACE)).spec.node_name)

    async def running(self, pod: str) -> bool:
        return (await self.api.get("pods", pod, NAMESPACE)).status.phase == "Running"

    async def has_pod(self, rs: str) -> bool:
        return bool((await self.api.list("pods", NAMESPACE, label_selector=f"rs={rs}")).items)

    async def node_port_answers(self) -> bool:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.node_ip, self.node_port), CALL_TIMEOUT_S)
        try:
            return await asyncio.wait_for(reader.read(64), CALL_TIMEOUT_S) == BACKEND_REPLY
        finally:
            writer.close()

    async def serve_a_node_port(self, backend_port: int, block: int) -> None:
        self.node_port = self.rng.randint(30000, 32767)
        await self.api.create(obj({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "probe", "namespace": NAMESPACE},
            "spec": {"type": "NodePort", "clusterIP": f"127.{block}.0.{self.rng.randint(100, 250)}",
                     "ports": [{"name": "tcp", "port": 80, "nodePort": self.node_port,
                                "protocol": "TCP"}]}}))
        await self.api.create(obj({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "probe-1", "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": "probe"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "tcp", "port": backend_port, "protocol": "TCP"}]}))
        await until("the NodePort answers before any kill", self.node_port_answers,
                    time.perf_counter())

    async def back(self, name: str, pid: int | None) -> bool:
        p = next(p for p in await self.control.status() if p.name == name)
        return p.state == "running" and p.pid != pid

    async def cleanup(self) -> None:
        with contextlib.suppress(errors.ApiError):
            for rs in (await self.api.list("replicasets", NAMESPACE)).items:
                await self.api.delete("replicasets", rs.metadata.name, NAMESPACE)
            for pod in (await self.api.list("pods", NAMESPACE, label_selector="bench=probe")).items:
                await self.api.delete("pods", pod.metadata.name, NAMESPACE)

    async def all_running(self) -> bool:
        return all(p.state == "running" for p in await self.control.status())

    async def one(self, kind: str) -> tuple[float, float]:
        # Each kill from a whole cluster: a member killed before may still be
        # in its restart back-off (or restarted by health watching since).
        await until("every process running before the kill", self.all_running,
                    time.perf_counter())
        name = await self.victim(kind)
        before = next(p for p in await self.control.status() if p.name == name)
        began = time.perf_counter()
        await self.control.kill([name])
        back = asyncio.ensure_future(
            until(f"{name} running again", lambda: self.back(name, before.pid), began))
        try:
            served_s = await self.probe(kind, began)
            back_s = await back
        finally:
            back.cancel()
        await self.cleanup()
        return served_s, back_s


async def backend() -> tuple[asyncio.AbstractServer, int]:
    async def reply(reader, writer):
        writer.write(BACKEND_REPLY)
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def measure(home: pathlib.Path, args: argparse.Namespace) -> None:
    config = load_cluster_config(home)
    server, port = await backend()
    # One try per call, each within CALL_TIMEOUT_S: the probes poll.
    async with Client(config.apiserver, timeout_s=CALL_TIMEOUT_S, retry_attempts=1) as api, \
            SupervisorClient(home) as control:
        bench = Bench(home, api, control)
        await api.create(obj({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": NAMESPACE}}))
        network = json.loads((home / "network.json").read_text())
        status = {p.name: p for p in await control.status()}
        bench.node_ip = status[f"{NODE}/kubelet"].address.rpartition(":")[0]
        await bench.serve_a_node_port(port, int(network["block"]))
        print(f"{'KIND':<20}{'KILLS':>6}{'P50 S':>8}{'P90 S':>8}{'MAX S':>8}"
              f"{'  PROCESS BACK P50 S':>21}   WHAT ANSWERS AGAIN")
        what = {"etcd-leader": "a write through the API", "etcd-follower": "a write through the API",
                "apiserver": "a write through the API", "scheduler": "a new pod bound",
                "controller-manager": "a ReplicaSet's pod created",
                "kubelet": f"a pod on {NODE} Running", "runtime": f"a pod on {NODE} Running",
                "kube-proxy": f"the NodePort on {NODE}"}
        for kind in args.kinds:
            served, back = [], []
            for _ in range(args.kills):
                s, b = await bench.one(kind)
                served.append(s)
                back.append(b)
            print(f"{kind:<20}{len(served):>6}{statistics.median(served):>8.2f}"
                  f"{pct(served, 0.9):>8.2f}{max(served):>8.2f}{statistics.median(back):>21.2f}"
                  f"   {what[kind]}", flush=True)
    server.close()
    await server.wait_closed()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated, of: {', '.join(KINDS)}")
    args = parser.parse_args()
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"--kinds: unknown {sorted(unknown)}")
    home = pathlib.Path(tempfile.mkdtemp(prefix="kubemu-recovery-"))
    try:
        began = time.perf_counter()
        kubemu(home, "up", "-d", "--profile", "fast", "--nodes", "2", "--etcd", "3",
               "--apiservers", "2", "--schedulers", "2", "--controller-managers", "2",
               "--no-addons")
        print(f"cluster up in {time.perf_counter() - began:.1f} s (etcd "
              f"{json.loads((home / 'state.json').read_text()).get('etcd_version', '?')}); "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        asyncio.run(measure(home, args))
        print(f"load at the end {os.getloadavg()[0]:.1f}")
    finally:
        with contextlib.suppress(Exception):
            kubemu(home, "down", timeout_s=120.0)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
