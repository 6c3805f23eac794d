"""A cluster started by the supervisor gives its apiserver the cluster's own
service range (127.B.0.0/24): the `kubernetes` Service is 127.B.0.1 and
ClusterIPs come from that block."""
from __future__ import annotations

import asyncio
import json

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.builders import obj
from tests.e2e.test_supervisor import cleanup_home

START_TIMEOUT_S = 60.0


async def _kubernetes_service(client):
    try:
        return await client.get("services", "kubernetes", "default")
    except errors.NotFound:
        return None


async def test_the_cluster_service_range_is_its_network_block(tmp_path):
    cluster = Cluster(tmp_path / "home", kinds=(comp.ETCD_KIND, comp.APISERVER_KIND))
    try:
        await cluster.start(START_TIMEOUT_S)
        text = await asyncio.to_thread((cluster.home / comp.NETWORK_FILE).read_text)
        block = json.loads(text)["block"]
        client = Client(cluster.address(comp.APISERVER), timeout_s=10.0)
        try:
            svc = await wait_for(lambda: _kubernetes_service(client), 15.0)
            assert svc.spec.cluster_ip == f"127.{block}.0.1"
            web = await client.create(obj({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
            assert web.spec.cluster_ip.startswith(f"127.{block}.0.")
        finally:
            await client.close()
    finally:
        assert await cluster.shutdown(30.0) == []
        await asyncio.to_thread(cleanup_home, cluster.home)
