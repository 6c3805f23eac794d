"""Nodes added and removed at run time on a real cluster (etcd, the apiserver,
one node of runtime, kubelet and kube-proxy), through the supervisor's control
API (kubemu.control.SupervisorClient), as an operator adds and decommissions
machines: an added node's processes run and its Node object is Ready; a
removed node's processes and its pods' processes are gone, status no longer
lists them and its Node object is deleted; add-ons a cluster started without
nodes skipped are applied once it has one. The tests of the shared cluster run
in file order (node-2 is added, then node-1 removed)."""
from __future__ import annotations

import asyncio
import secrets

import psutil
import pytest

from deploy import addon_manager
from deploy import components as comp
from kubemu import cluster_home
from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.config import load_cluster_config
from kubemu.client.wait import wait_for
from kubemu.control import ControlError, SupervisorClient
from tests.e2e.test_kubelet import (ClusterThread, busybox, container_pid, container_status,
                                    create_pod, obj, pod_doc, running, serving, wait_pod)

pytestmark = pytest.mark.e2e

NODE_PROCESSES = (comp.RUNTIME, comp.KUBELET, comp.KUBE_PROXY)
CHANGE_TIMEOUT_S = 60.0
WAIT_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("node-add-remove-home"), nodes=1))


@pytest.fixture
async def control(cluster):
    async with SupervisorClient(cluster.home, timeout_s=10.0) as client:
        yield client


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def node_ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def state_nodes(cluster: ClusterThread) -> list[str]:
    state = await asyncio.to_thread(cluster_home.read_state, cluster.home)
    return state.nodes if state else []


async def test_an_added_node_runs_its_processes_and_is_ready(cluster, api, control):
    name = await control.add_node(timeout_s=CHANGE_TIMEOUT_S)
    assert name == "node-2"
    infos = {p.name: p for p in await control.status() if p.node == name}
    assert sorted(infos) == sorted(f"{name}/{kind}" for kind in NODE_PROCESSES)
    for p in infos.values():
        assert p.state == "running" and p.pid and await asyncio.to_thread(alive, p.pid), p
    # Ready when add_node answers, not some time later.
    assert node_ready(await api.get("nodes", name))
    config = await asyncio.to_thread(load_cluster_config, cluster.home)
    assert {p for p in config.components if p.startswith(f"{name}/")} == set(infos)

    async def recorded():
        return await state_nodes(cluster) == ["node-1", name]
    await wait_for(recorded, WAIT_S, message="state.json's nodes")


async def test_a_removed_node_leaves_no_process_and_no_node_object(cluster, api, control):
    ns = f"t-{secrets.token_hex(4)}"
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    await create_pod(api, pod_doc("on-node-1", ns, [busybox("exec sleep 3600")]))
    pod = await wait_pod(api, ns, "on-node-1", running, what="on-node-1 Running")
    container = await container_pid(cluster.runtime_socket("node-1"),
                                    container_status(pod)["containerID"])
    assert container and await asyncio.to_thread(alive, container), container
    before = {p.name: p.pid for p in await control.status() if p.node == "node-1"}
    assert len(before) == len(NODE_PROCESSES) and all(before.values()), before
    others = [n for n in await state_nodes(cluster) if n != "node-1"]

    await control.remove_node("node-1", timeout_s=CHANGE_TIMEOUT_S)

    assert not [p.name for p in await control.status() if p.node == "node-1"]
    for pid in [*before.values(), container]:
        assert not await asyncio.to_thread(alive, pid), pid
    with pytest.raises(errors.NotFound):
        await api.get("nodes", "node-1")

    async def recorded():
        return await state_nodes(cluster) == others
    await wait_for(recorded, WAIT_S, message="state.json's nodes")


async def test_removing_an_unknown_node_names_the_nodes(cluster, control):
    known = ", ".join(await state_nodes(cluster))
    before = [(p.name, p.pid) for p in await control.status()]
    with pytest.raises(ControlError) as caught:
        await control.remove_node("node-99", timeout_s=CHANGE_TIMEOUT_S)
    assert str(caught.value) == f"remove node: no node named 'node-99' (nodes: {known})"
    assert [(p.name, p.pid) for p in await control.status()] == before


async def test_the_first_node_added_applies_the_add_ons_start_skipped(tmp_path):
    """Started without nodes, the cluster had none to run its add-ons on."""
    running = ClusterThread(tmp_path / "home", nodes=0, addons=(addon_manager.INGRESS_NGINX,))
    await running.astart()
    try:
        async with Client(running.apiserver, timeout_s=10.0) as api, \
                SupervisorClient(running.home, timeout_s=10.0) as control:
            with pytest.raises(errors.NotFound):
                await api.get("namespaces", "ingress-nginx")
            assert await control.add_node(timeout_s=CHANGE_TIMEOUT_S) == "node-1"
            applied = await api.get("deployments", "ingress-nginx-controller", "ingress-nginx")
            assert applied.metadata.name == "ingress-nginx-controller"
    finally:
        left = await running.astop()
        assert not left, f"processes left after shutdown: {left}"
        await asyncio.to_thread(running.cluster.assert_no_processes)
