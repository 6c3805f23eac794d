"""kube-proxy through the supervisor: one per node, killed and restarted.

A two-node cluster (etcd, apiserver, and per node runtime + kubelet +
kube-proxy); the Service and its EndpointSlice are made by hand and point at
backends this test runs (tests.net_support), so nothing but kube-proxy is
under test: the ClusterIP answers through either proxy, the NodePort on
every node's address, `kill -9` of one node's proxy leaves the Service
answering, and the supervisor's restarted proxy serves again.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal

import psutil
import pytest

from deploy import components as comp
from deploy.supervisor import Cluster, ProcState
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import control_plane, fast_node_kinds
from tests.net_builders import endpoint, endpoint_slice, service
from tests.net_support import Backends, ask, ask_many, read_metrics

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 90.0
WAIT_S = 30.0


def dead(pid: int) -> bool:
    """Reaped, not merely a zombie: a killed multi-threaded process's leader
    shows as a zombie while its other threads still exit, and its sockets
    (the shared file table) close only with the last of them; the supervisor
    reaps it after that."""
    return not psutil.pid_exists(pid)


def proxies(cluster: Cluster) -> dict[str, object]:
    return {s.node: s for s in cluster.status() if s.component == comp.KUBE_PROXY}


async def test_kube_proxy_per_node_survives_a_kill(tmp_path):
    rng = random.Random()
    cluster = Cluster(tmp_path / "home", nodes=2, kinds=control_plane(),
                      node_kinds=fast_node_kinds(), progress=lambda line: None)
    backends = Backends(rng)
    try:
        await cluster.start(START_TIMEOUT_S)
        assert sorted(proxies(cluster)) == ["node-1", "node-2"]
        node_ips = [cluster.address(comp.KUBELET, n).rpartition(":")[0] for n in ("node-1", "node-2")]
        block = int(node_ips[0].split(".")[2])
        cip, port = f"127.{block}.0.{rng.randint(100, 250)}", 80
        node_port = rng.randint(30000, 32767)
        ips = await backends.start_tcp(2)
        async with Client(cluster.address(comp.APISERVER), timeout_s=10.0) as client:
            await client.create(service(
                "web", cip, [{"name": "http", "port": port, "nodePort": node_port,
                              "protocol": "TCP"}], type_="NodePort"))
            await client.create(endpoint_slice(
                "web-1", "web", [endpoint(ip) for ip in ips],
                [{"name": "http", "port": backends.port, "protocol": "TCP"}]))

        assert await wait_for(lambda: ask(cip, port), WAIT_S) in ips
        for ip in node_ips:
            assert await wait_for(lambda ip=ip: ask(ip, node_port), WAIT_S) in ips

        victim = proxies(cluster)["node-1"]
        os.kill(victim.pid, signal.SIGKILL)
        # Connections the kernel queued on the dying process's socket are reset
        # with it; from its exit on, the other proxy's socket takes them all.
        await wait_for(lambda: asyncio.to_thread(dead, victim.pid), WAIT_S)
        seen = await ask_many(cip, port, 10)
        assert "" not in seen and set(seen) == set(ips), seen

        def restarted():
            p = proxies(cluster)["node-1"]
            return p.restarts == 1 and p.state == ProcState.RUNNING and p
        p = await wait_for(restarted, WAIT_S)

        async def serves_again():
            m = await read_metrics(p.address)
            return any(row["listener"] == f"{cip}:{port}/TCP" and row.get("endpoints")
                       for row in m["listeners"])
        await wait_for(serves_again, WAIT_S)
        assert await ask(node_ips[0], node_port) in ips
    finally:
        backends.close()
        assert await cluster.shutdown(60.0) == []
