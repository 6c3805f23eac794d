"""The metrics API on a real apiserver process: read-only (Kubernetes'
MethodNotSupported for every write and for watch), discovery lists get and list
only, and a node whose kubelet does not answer is left out of a list (not an
error)."""
from __future__ import annotations

import pytest

from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from tests.builders import obj


@pytest.mark.parametrize("resource, kind", [("nodemetrics", "NodeMetrics"),
                                            ("podmetrics", "PodMetrics")])
async def test_writes_are_refused(api, resource, kind):
    doc = {"apiVersion": "metrics.k8s.io/v1beta1", "kind": kind,
           "metadata": {"name": "x", **({"namespace": "default"}
                                        if kind == "PodMetrics" else {})}}
    with pytest.raises(errors.MethodNotAllowed,
                       match=f'create is not supported on resources of kind '
                             f'"{resource}.metrics.k8s.io"'):
        await api.create(obj(doc))
    with pytest.raises(errors.MethodNotAllowed, match="delete is not supported"):
        await api.delete(resource, "x", "default" if kind == "PodMetrics" else "")


async def test_discovery_offers_get_and_list(api):
    found = {r.name: list(r.verbs) for r in (await api.discovery()).resources}
    assert found["nodemetrics"] == ["get", "list"]
    assert found["podmetrics"] == ["get", "list"]
    assert "watch" in found["pods"]


async def test_a_node_without_a_kubelet_is_left_out(api):
    node = obj({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gone"},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}})
    await api.create(node)
    try:
        assert (await api.list("nodemetrics")).items == []
        with pytest.raises(errors.NotFound, match='nodemetrics.metrics.k8s.io "gone" not found'):
            await api.get("nodemetrics", "gone")
    finally:
        await api.delete("nodes", "gone")
    assert REGISTRY.by_resource("podmetrics").stored is False
