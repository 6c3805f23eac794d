"""The fixtures every e2e module shares on its own module-scoped `cluster`
(a ClusterThread; see tests.e2e.test_kubelet.serving)."""
from __future__ import annotations

import secrets

import pytest

from kubemu.client.clientset import Client
from tests.e2e.test_kubelet import delete_pods, obj


@pytest.fixture
async def api(cluster):
    async with Client(cluster.apiserver, timeout_s=10.0) as client:
        yield client


@pytest.fixture
async def ns(api):
    """A namespace of the test's own; its pods are deleted (and their processes
    gone, as the kubelet confirms) when the test ends."""
    name = f"t-{secrets.token_hex(4)}"
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    try:
        yield name
    finally:
        await delete_pods(api, name)
