"""Service address allocation and the `kubernetes` Service, on real apiserver
processes over a real etcd: ClusterIPs and NodePorts allocated, honoured or
refused with Kubernetes' messages, released on delete, never doubled by
concurrent creates (on one apiserver or two), kept across a restart."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from kubemu.api import errors
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.builders import obj
from tests.support import APIServerProc

WAIT_S = 15.0


def service(name: str, *, type_: str = "ClusterIP", cluster_ip: str = "", ports=None):
    spec = {"type": type_, "selector": {"app": name}, "ports": ports or [{"port": 80}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return obj({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default"}, "spec": spec})


async def cluster_ips(client) -> dict[str, str]:
    items = (await client.list_all("services", "default")).items
    return {s.metadata.name: s.spec.cluster_ip for s in items}


async def test_allocate_honour_refuse_release_reuse(client):
    web = await client.create(service("web"))
    assert web.spec.cluster_ip.startswith("127.1.0.")
    assert list(web.spec.cluster_ips) == [web.spec.cluster_ip]
    assert web.spec.ip_family_policy == "SingleStack" and list(web.spec.ip_families) == ["IPv4"]

    dns = await client.create(service("dns", cluster_ip="127.1.0.10"))
    assert dns.spec.cluster_ip == "127.1.0.10"
    with pytest.raises(errors.Invalid) as taken:
        await client.create(service("dns2", cluster_ip="127.1.0.10"))
    assert str(taken.value) == (
        'Service "dns2" is invalid: spec.clusterIPs: Invalid value: []string{"127.1.0.10"}: '
        "failed to allocate IP 127.1.0.10: provided IP is already allocated")
    with pytest.raises(errors.Invalid) as outside:
        await client.create(service("far", cluster_ip="127.9.0.10"))
    assert str(outside.value) == (
        'Service "far" is invalid: spec.clusterIPs: Invalid value: []string{"127.9.0.10"}: '
        "failed to allocate IP 127.9.0.10: the provided IP (127.9.0.10) is not in the valid "
        "range. The range of valid IPs is 127.1.0.0/24")
    assert set(await cluster_ips(client)) == {"kubernetes", "web", "dns"}

    assert (await client.delete("services", "dns", "default")).deleted
    again = await client.create(service("dns2", cluster_ip="127.1.0.10"))
    assert again.spec.cluster_ip == "127.1.0.10"


async def test_node_ports_allocated_refused_and_released(client):
    np = await client.create(service("np", type_="NodePort", ports=[
        {"name": "http", "port": 80}, {"name": "fixed", "port": 81, "nodePort": 30080}]))
    assert 30000 <= np.spec.ports[0].node_port <= 32767
    assert np.spec.ports[1].node_port == 30080
    with pytest.raises(errors.Invalid) as taken:
        await client.create(service("np2", type_="NodePort",
                                    ports=[{"port": 80, "nodePort": 30080}]))
    assert str(taken.value) == ('Service "np2" is invalid: spec.ports[0].nodePort: Invalid '
                                "value: 30080: provided port is already allocated")
    with pytest.raises(errors.Invalid, match="The range of valid ports is 30000-32767"):
        await client.create(service("np3", type_="NodePort",
                                    ports=[{"port": 80, "nodePort": 8080}]))
    # A type change away from NodePort releases its ports (kubectl apply's merge).
    patched = await client.patch("services", "np", "default",
                                 patch={"spec": {"type": "ClusterIP"}})
    assert [p.node_port for p in patched.spec.ports] == [0, 0]
    np2 = await client.create(service("np2", type_="NodePort",
                                      ports=[{"port": 80, "nodePort": 30080}]))
    assert np2.spec.ports[0].node_port == 30080
    external = await client.patch("services", "np2", "default", patch={"spec": {
        "type": "ExternalName", "externalName": "example.com", "selector": None}})
    assert not external.spec.cluster_ip and not external.spec.cluster_ips
    assert (await client.create(service("reuse", cluster_ip=np2.spec.cluster_ip))).spec.cluster_ip


async def test_concurrent_creates_on_two_apiservers_never_double(tmp_path, etcd, apiserver):
    second = APIServerProc(tmp_path / "second", etcd.endpoint)
    (tmp_path / "second").mkdir()
    await second.astart()
    clients = [Client(apiserver.address, timeout_s=20.0), Client(second.address, timeout_s=20.0)]
    try:
        created = await asyncio.gather(*(
            clients[i % 2].create(service(f"s{i}", type_="NodePort")) for i in range(60)))
        ips = [s.spec.cluster_ip for s in created]
        ports = [s.spec.ports[0].node_port for s in created]
        assert len(set(ips)) == 60 and len(set(ports)) == 60
        stored = await cluster_ips(clients[0])
        assert len(set(stored.values())) == len(stored) == 61  # and `kubernetes`
    finally:
        for c in clients:
            await c.close()
        await second.astop()


async def test_allocations_survive_a_restart(tmp_path, etcd):
    first = await APIServerProc(tmp_path, etcd.endpoint).astart()
    client = Client(first.address, timeout_s=10.0)
    try:
        await client.create(service("kept", cluster_ip="127.1.0.50"))
        before = await client.create(service("auto"))
    finally:
        await client.close()
        await first.astop()
    restarted = await APIServerProc(tmp_path, etcd.endpoint).astart()
    client = Client(restarted.address, timeout_s=10.0)
    try:
        with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
            await client.create(service("other", cluster_ip="127.1.0.50"))
        with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
            await client.create(service("other", cluster_ip=before.spec.cluster_ip))
        more = await asyncio.gather(*(client.create(service(f"m{i}")) for i in range(30)))
        assert not {s.spec.cluster_ip for s in more} & {"127.1.0.50", before.spec.cluster_ip}
    finally:
        await client.close()
        await restarted.astop()


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


async def _kubernetes_endpoints(client) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(address, port) pairs in the Endpoints and in the EndpointSlices."""
    try:
        ep = await client.get("endpoints", "kubernetes", "default")
    except errors.NotFound:
        return set(), set()
    in_ep = {(a.ip, p.port) for s in ep.subsets for a in s.addresses for p in s.ports}
    slices = (await client.list_all("endpointslices", "default",
                                    label_selector="kubernetes.io/service-name=kubernetes")).items
    in_slices = {(a, p.port) for s in slices for e in s.endpoints for a in e.addresses
                 for p in s.ports}
    return in_ep, in_slices


async def test_the_kubernetes_service_points_at_every_apiserver(tmp_path, etcd, apiserver,
                                                               client):
    svc = await wait_for(lambda: _get_or_none(client, "services", "kubernetes"), WAIT_S)
    assert svc.spec.cluster_ip == "127.1.0.1" and not svc.spec.selector
    assert [(p.name, p.port, p.protocol, p.target_port.int_val) for p in svc.spec.ports] == [
        ("https", 443, "TCP", _port(apiserver.address))]
    assert dict(svc.metadata.labels) == {"component": "apiserver", "provider": "kubernetes"}
    one = {("127.0.0.1", _port(apiserver.address))}
    await wait_for(lambda: _endpoints_are(client, one), WAIT_S)
    ep = await client.get("endpoints", "kubernetes", "default")
    assert dict(ep.metadata.labels) == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    eps = await client.get("endpointslices", "kubernetes", "default")
    assert eps.address_type == "IPv4" and eps.endpoints[0].conditions.ready
    assert (eps.ports[0].name, eps.ports[0].protocol) == ("https", "TCP")

    (tmp_path / "second").mkdir()
    second = await APIServerProc(tmp_path / "second", etcd.endpoint).astart()
    both = one | {("127.0.0.1", _port(second.address))}
    try:
        await wait_for(lambda: _endpoints_are(client, both), WAIT_S)
    finally:
        await second.astop()  # graceful: takes its own address out
    await wait_for(lambda: _endpoints_are(client, one), WAIT_S)


async def _get_or_none(client, resource, name):
    try:
        return await client.get(resource, name, "default")
    except errors.NotFound:
        return None


async def _endpoints_are(client, wanted):
    in_ep, in_slices = await _kubernetes_endpoints(client)
    return in_ep == wanted and in_slices == wanted


def test_a_service_range_outside_loopback_is_refused_at_start_up():
    done = subprocess.run(
        [sys.executable, "-m", "apiserver", "--etcd-endpoints", "127.0.0.1:1",
         "--service-cluster-ip-range", "10.96.0.0/12"],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "--service-cluster-ip-range '10.96.0.0/12' must lie inside 127.0.0.0/8" \
        in done.stderr
