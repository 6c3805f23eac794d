"""Partitions and the apiserver front through the supervisor's links (deploy/links.py).

- `kubemu partition node-1/kubelet node-1/kube-proxy`: the node's Lease stops
  being renewed while they are cut (they are not health-restarted, and status
  says partitioned), and is renewed again after `kubemu heal`;
- with three etcd members, a partitioned leader is replaced by one of the
  others, writes through the API keep succeeding, and after heal every member
  has the same revision;
- with two apiservers, apiserver-0 paused through the control API: a client of
  the kubeconfig address (the shared front) keeps writing, through apiserver-1.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from deploy import components as comp
from deploy.supervisor import Cluster, find_home_processes, kill_processes
from kubemu import etcdinfo
from kubemu.client.clientset import Client
from kubemu.client.config import load_cluster_config
from kubemu.client.wait import WaitTimeout, wait_for
from tests.e2e.test_kubelet import REPO, as_dict, control_plane, fast_node_kinds, obj

pytestmark = pytest.mark.e2e

NODE = "node-1"
START_TIMEOUT_S = 90.0
CLI_TIMEOUT_S = 30.0
WAIT_S = 20.0
# The fast kubelet renews its Lease every second: five periods without one is a stop.
LEASE_STILL_S = 5.0


def kubemu(home, *args: str) -> str:
    env = dict(os.environ, KUBEMU_HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, f"kubemu {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def states(home) -> dict[str, str]:
    doc = json.loads(kubemu(home, "status", "-o", "json"))
    return {p["name"]: p["state"] for p in doc["processes"]}


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}}


async def started(cluster: Cluster):
    await cluster.start(START_TIMEOUT_S)
    return cluster


async def stopped(cluster: Cluster) -> None:
    left = await cluster.shutdown()
    strays = await asyncio.to_thread(find_home_processes, cluster.home, by_cmdline=False)
    if strays:
        await asyncio.to_thread(kill_processes, strays)
    assert not left and not strays, f"left after shutdown: {left} {strays}"


def etcd_and_apiserver() -> list[comp.ComponentKind]:
    return [k for k in comp.control_plane("fast") if k.name in (comp.ETCD, comp.APISERVER)]


async def create_soon(api: Client, name: str, timeout_s: float = WAIT_S) -> None:
    """Create a ConfigMap, retrying while the API fails over (an already-exists
    after a retry whose first try landed counts as done)."""
    async def attempt():
        try:
            await api.create(obj(configmap(name)))
        except Exception as exc:  # noqa: BLE001 - the last error is what wait_for reports
            if "already exists" in str(exc):
                return True
            raise
        return True
    await wait_for(attempt, timeout_s, interval_s=0.2, message=f"configmap {name} created")


async def test_a_partitioned_node_stops_renewing_its_lease_until_healed(tmp_path):
    cluster = await started(Cluster(tmp_path / "home", nodes=1, kinds=control_plane(),
                                    node_kinds=fast_node_kinds(), progress=lambda line: None))
    try:
        async with Client(cluster.address(comp.APISERVER), timeout_s=10.0) as api:
            async def renew_time() -> str:
                lease = as_dict(await api.get("leases", NODE, "kube-node-lease"))
                return lease["spec"]["renewTime"]
            first = await wait_for(renew_time, WAIT_S, message="the node's lease")
            await wait_for(lambda: _later(renew_time, first), WAIT_S, message="lease renewed")
            cut = [f"{NODE}/kubelet", f"{NODE}/kube-proxy"]
            pids = {s.name: s.pid for s in cluster.status() if s.name in cut}
            await asyncio.to_thread(kubemu, cluster.home, "partition", *cut)
            seen = await asyncio.to_thread(states, cluster.home)
            assert {n: seen[n] for n in cut} == {n: "partitioned" for n in cut}, seen
            still = await renew_time()
            # Bounded look for a renewal that must not come while cut.
            with pytest.raises(WaitTimeout):
                await wait_for(lambda: _later(renew_time, still), LEASE_STILL_S, interval_s=0.5,
                               message="no renewal while partitioned")
            # Not taken for dead: the same processes, still partitioned.
            assert {s.name: s.pid for s in cluster.status() if s.name in cut} == pids
            await asyncio.to_thread(kubemu, cluster.home, "heal")
            await wait_for(lambda: _later(renew_time, still), WAIT_S, message="renewed after heal")
            seen = await asyncio.to_thread(states, cluster.home)
            assert {n: seen[n] for n in cut} == {n: "running" for n in cut}, seen
    finally:
        await stopped(cluster)


async def _later(renew_time, than: str) -> str | None:
    now = await renew_time()
    return now if now > than else None


async def statuses(addresses: list[str]) -> list[etcdinfo.EndpointStatus | None]:
    async def one(address):
        try:
            return await etcdinfo.status(address, 2.0)
        except etcdinfo.EtcdQueryError:
            return None
    return list(await asyncio.gather(*(one(a) for a in addresses)))


async def test_a_partitioned_etcd_leader_is_replaced_and_writes_go_on(tmp_path):
    cluster = await started(Cluster(tmp_path / "home", etcd=3, apiservers=1,
                                    kinds=etcd_and_apiserver(), progress=lambda line: None))
    try:
        old = await wait_for(cluster.etcd_leader, WAIT_S, message="an etcd leader")
        others = [n for n in ("etcd-0", "etcd-1", "etcd-2") if n != old]
        other_addresses = [cluster.process_address(n) for n in others]
        async with Client(cluster.address(comp.APISERVER), timeout_s=5.0) as api:
            await create_soon(api, "before")
            await cluster.partition([old], for_s=None)

            async def new_leader():
                seen = await statuses(other_addresses)
                names = {s.leader_name for s in seen if s is not None}
                return names.pop() if len(names) == 1 and "" not in names and old not in names \
                    and None not in seen else None
            leader = await wait_for(new_leader, WAIT_S, interval_s=0.2,
                                    message=f"a leader among {others}")
            assert leader in others
            for i in range(3):
                await create_soon(api, f"during-{i}")
            assert [s.pid for s in cluster.status() if s.name == old][0] is not None
            await cluster.heal([old])
            addresses = cluster.addresses(comp.ETCD)

            async def agreed():
                seen = await statuses(addresses)
                if None in seen or len({s.revision for s in seen}) != 1:
                    return None
                return seen
            seen = await wait_for(agreed, WAIT_S, interval_s=0.2, message="members agree")
            assert len({s.leader_name for s in seen}) == 1
            names = {cm.metadata.name for cm in (await api.list("configmaps", "default")).items}
            assert {"before", "during-0", "during-1", "during-2"} <= names
    finally:
        await stopped(cluster)


async def test_a_paused_apiserver_does_not_hold_the_kubeconfig_clients(tmp_path):
    cluster = await started(Cluster(tmp_path / "home", etcd=1, apiservers=2,
                                    kinds=etcd_and_apiserver(), progress=lambda line: None))
    try:
        config = await asyncio.to_thread(load_cluster_config, cluster.home)
        assert config.apiserver == cluster.address(comp.APISERVER)
        assert config.apiserver not in config.apiservers and len(config.apiservers) == 2
        async with Client(config.apiserver, timeout_s=3.0) as api:
            await create_soon(api, "before")
            await cluster.pause(["apiserver-0"])
            try:
                # The front reset apiserver-0's links; the client lands on apiserver-1.
                await create_soon(api, "while-paused", timeout_s=10.0)
                names = {cm.metadata.name
                         for cm in (await api.list("configmaps", "default")).items}
                assert {"before", "while-paused"} <= names
            finally:
                await cluster.resume(["apiserver-0"])
            await create_soon(api, "after")
    finally:
        await stopped(cluster)


async def test_an_ha_etcd_started_again_on_its_home_meets_through_the_same_peer_fronts(tmp_path):
    home = tmp_path / "home"
    kinds = etcd_and_apiserver()
    cluster = await started(Cluster(home, etcd=3, apiservers=1, kinds=kinds,
                                    progress=lambda line: None))
    try:
        async with Client(cluster.address(comp.APISERVER), timeout_s=5.0) as api:
            await create_soon(api, "kept")
    finally:
        await stopped(cluster)
    recorded = json.loads(await asyncio.to_thread((home / "etcd" / comp.ETCD_MEMBERS_FILE).read_text))
    assert all("peer_front" in ports for ports in recorded.values()), recorded
    # The members' data holds the peer fronts' URLs: they must meet there again.
    cluster = await started(Cluster(home, etcd=3, apiservers=1, kinds=kinds,
                                    progress=lambda line: None))
    try:
        again = json.loads(await asyncio.to_thread((home / "etcd" / comp.ETCD_MEMBERS_FILE).read_text))
        assert again == recorded
        members = await etcdinfo.members(cluster.process_address("etcd-0"), 5.0)
        assert sorted(m.peer_urls for m in members) == sorted(
            (f"http://127.0.0.1:{p['peer_front']}",) for p in recorded.values())
        async with Client(cluster.address(comp.APISERVER), timeout_s=5.0) as api:
            await create_soon(api, "after")
            names = {cm.metadata.name for cm in (await api.list("configmaps", "default")).items}
            assert {"kept", "after"} <= names
    finally:
        await stopped(cluster)
