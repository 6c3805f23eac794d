"""ClusterIP and NodePort allocation: the pure picks and the registry's
transactions on the in-memory store (apiserver.servicealloc)."""
from __future__ import annotations

import asyncio
import random

import pytest

from apiserver import servicealloc
from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from apiserver.servicealloc import Ranges
from apiserver.strategy import strategies
from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2

SERVICES = REGISTRY.by_resource("services")
NAMESPACES = REGISTRY.by_resource("namespaces")
SMALL = "127.1.0.0/28"  # 14 usable addresses: a full range is quick to reach


# ---------------------------------------------------------------- pure parts

@pytest.mark.parametrize("text,error", [
    ("127.1.0.0/24", None),
    ("127.5.0.0/16", None),
    ("10.96.0.0/12", "must lie inside 127.0.0.0/8"),
    ("127.1.0.1/24", "has host bits set"),
    ("127.0.0.0/8", "between /16 and /30"),
    ("127.1.0.0/31", "between /16 and /30"),
    ("fd00::/112", "must lie inside 127.0.0.0/8"),
    ("nonsense", "does not appear to be"),
], ids=["default", "slash16", "outside-loopback", "host-bits", "too-big", "too-small",
        "ipv6", "garbage"])
def test_service_cidr_flag(text, error):
    if error is None:
        assert str(servicealloc.parse_service_cidr(text)) == text
    else:
        with pytest.raises(ValueError, match=error):
            servicealloc.parse_service_cidr(text)


@pytest.mark.parametrize("text,expected", [
    ("30000-32767", (30000, 32767)), ("30000+9", (30000, 30009)), ("31000", (31000, 31000)),
    ("5-2", None), ("0-10", None), ("a-b", None), ("30000-70000", None),
], ids=["range", "plus", "single", "reversed", "zero", "garbage", "too-high"])
def test_node_port_range_flag(text, expected):
    if expected is None:
        with pytest.raises(ValueError):
            servicealloc.parse_port_range(text)
    else:
        assert servicealloc.parse_port_range(text) == expected


@pytest.mark.parametrize("size,band", [(8, 0), (16, 16), (256, 16), (1024, 64),
                                       (65536, 256), (2768, 173)])
def test_static_band_is_kubernetes_range_offset(size, band):
    assert servicealloc.static_band(size) == band


def test_dynamic_ips_come_from_the_upper_band_until_it_is_full():
    ranges = Ranges.parse("127.1.0.0/24")
    rng = random.Random(1)
    low = {f"127.1.0.{i}" for i in range(1, 17)}
    taken: set[str] = set()
    for _ in range(254 - 16):
        ip = servicealloc.pick_ip(ranges, taken, rng)
        assert ip not in low and ip not in taken
        taken.add(ip)
    rest = {servicealloc.pick_ip(ranges, taken | {ip}, rng) for ip in []} or set()
    while (ip := servicealloc.pick_ip(ranges, taken | rest, rng)) is not None:
        assert ip in low
        rest.add(ip)
    assert rest == low


def test_dynamic_ports_cover_the_range_then_stop():
    ranges = Ranges.parse(node_ports="30000-30020")
    rng = random.Random(2)
    taken: set[int] = set()
    while (port := servicealloc.pick_port(ranges, taken, rng)) is not None:
        taken.add(port)
    assert taken == set(range(30000, 30021))


# ---------------------------------------------------------------- through the registry

def service(name: str, *, type_: str = "ClusterIP", cluster_ip: str = "",
            ports=None, **spec) -> core_pb2.Service:
    body = {"type": type_, "ports": ports or [{"port": 80}], **spec}
    if cluster_ip:
        body["clusterIP"] = cluster_ip
    return codec.from_dict(core_pb2.Service, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"}, "spec": body})


async def make_registry(store=None, *, cidr: str = "127.1.0.0/24",
                        node_ports: str = "30000-32767") -> ObjectRegistry:
    registry = ObjectRegistry(
        store or MemoryStore(), {}, rng=random.Random(3),
        kind_strategies=strategies(REGISTRY, service_ranges=Ranges.parse(cidr, node_ports)))
    await registry.create(NAMESPACES, "", core_pb2.Namespace(metadata={"name": "default"}))
    return registry


async def allocated(store, prefix: bytes) -> dict[str, str]:
    page = await store.range(prefix, prefix[:-1] + b"0", limit=0)
    return {kv.key[len(prefix):].decode(): kv.value.decode() for kv in page.kvs}


async def test_create_allocates_a_cluster_ip_with_kubernetes_defaults():
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("web"))
    ip = svc.spec.cluster_ip
    assert Ranges.parse().contains_ip(ip)
    assert list(svc.spec.cluster_ips) == [ip]
    assert list(svc.spec.ip_families) == ["IPv4"]
    assert svc.spec.ip_family_policy == "SingleStack"
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {
        ip: "/registry/services/default/web"}


@pytest.mark.parametrize("spec", [
    {"type_": "ClusterIP", "cluster_ip": "None"},
    {"type_": "ExternalName", "externalName": "example.com", "ports": []},
], ids=["headless", "external-name"])
async def test_no_cluster_ip_for_headless_and_external_name(spec):
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("x", **spec))
    assert svc.spec.cluster_ip in ("", "None")
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {}


async def test_explicit_cluster_ip_is_honoured_then_refused_to_a_second_service():
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("dns", cluster_ip="127.1.0.10"))
    assert svc.spec.cluster_ip == "127.1.0.10" and list(svc.spec.cluster_ips) == ["127.1.0.10"]
    with pytest.raises(errors.Invalid) as err:
        await reg.create(SERVICES, "default", service("other", cluster_ip="127.1.0.10"))
    assert str(err.value) == (
        'Service "other" is invalid: spec.clusterIPs: Invalid value: []string{"127.1.0.10"}: '
        "failed to allocate IP 127.1.0.10: provided IP is already allocated")
    assert await reg.store.get(b"/registry/services/default/other") is None


@pytest.mark.parametrize("ip", ["127.2.0.5", "127.1.0.0", "127.1.0.255", "10.0.0.1"],
                         ids=["other-block", "network", "broadcast", "elsewhere"])
async def test_explicit_cluster_ip_out_of_range_is_refused(ip):
    reg = await make_registry()
    with pytest.raises(errors.Invalid) as err:
        await reg.create(SERVICES, "default", service("web", cluster_ip=ip))
    assert str(err.value) == (
        f'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: '
        f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
        "The range of valid IPs is 127.1.0.0/24")


async def test_delete_releases_and_the_address_can_be_reused():
    reg = await make_registry()
    await reg.create(SERVICES, "default", service("a", cluster_ip="127.1.0.20"))
    await reg.delete(SERVICES, "default", "a", grace_period_s=None, propagation_policy="")
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {}
    again = await reg.create(SERVICES, "default", service("b", cluster_ip="127.1.0.20"))
    assert again.spec.cluster_ip == "127.1.0.20"


async def test_a_full_range_is_an_internal_error_and_leaves_nothing():
    reg = await make_registry(cidr=SMALL)
    ips = {(await reg.create(SERVICES, "default", service(f"s{i}"))).spec.cluster_ip
           for i in range(14)}
    assert len(ips) == 14
    with pytest.raises(errors.Internal, match="range is full"):
        await reg.create(SERVICES, "default", service("s14"))
    assert await reg.store.get(b"/registry/services/default/s14") is None


async def test_update_without_cluster_ip_keeps_it_and_change_is_immutable():
    reg = await make_registry()
    first = await reg.create(SERVICES, "default", service("web"))
    again = await reg.update(SERVICES, service("web", ports=[{"port": 81}]))
    assert again.spec.cluster_ip == first.spec.cluster_ip
    with pytest.raises(errors.Invalid) as err:
        await reg.update(SERVICES, service("web", cluster_ip="127.1.0.99"))
    assert str(err.value) == ('Service "web" is invalid: spec.clusterIPs[0]: Invalid value: '
                              '[]string{"127.1.0.99"}: may not change once set')


async def test_type_change_to_external_name_releases_and_back_allocates():
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("web", type_="NodePort"))
    assert svc.spec.ports[0].node_port
    ext = service("web", type_="ExternalName", externalName="example.com")
    ext.spec.ClearField("cluster_ip")
    out = await reg.update(SERVICES, ext)
    assert not out.spec.cluster_ip and not out.spec.ports[0].node_port
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {}
    assert await allocated(reg.store, servicealloc.PORT_KEY_PREFIX) == {}
    back = await reg.update(SERVICES, service("web"))
    assert back.spec.cluster_ip
    assert list(await allocated(reg.store, servicealloc.IP_KEY_PREFIX)) == [back.spec.cluster_ip]


async def test_node_ports_allocated_kept_and_released():
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("web", type_="NodePort", ports=[
        {"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30443}]))
    ports = [p.node_port for p in svc.spec.ports]
    assert 30000 <= ports[0] <= 32767 and ports[1] == 30443
    # kubectl apply of the original file: the allocated port stays.
    again = await reg.update(SERVICES, service("web", type_="NodePort", ports=[
        {"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30443}]))
    assert [p.node_port for p in again.spec.ports] == ports
    back = await reg.update(SERVICES, service("web", ports=[
        {"name": "http", "port": 80}, {"name": "https", "port": 443}]))
    assert [p.node_port for p in back.spec.ports] == [0, 0]
    assert await allocated(reg.store, servicealloc.PORT_KEY_PREFIX) == {}


async def test_node_port_taken_or_out_of_range_is_refused():
    reg = await make_registry(node_ports="30000-30100")
    await reg.create(SERVICES, "default", service(
        "a", type_="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    with pytest.raises(errors.Invalid) as err:
        await reg.create(SERVICES, "default", service(
            "b", type_="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert str(err.value) == ('Service "b" is invalid: spec.ports[0].nodePort: Invalid value: '
                              "30080: provided port is already allocated")
    with pytest.raises(errors.Invalid) as err:
        await reg.create(SERVICES, "default", service(
            "c", type_="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert str(err.value) == (
        'Service "c" is invalid: spec.ports[0].nodePort: Invalid value: 31000: provided port '
        "is not in the valid range. The range of valid ports is 30000-30100")
    assert await reg.store.get(b"/registry/services/default/b") is None
    assert list(await allocated(reg.store, servicealloc.IP_KEY_PREFIX)) == [
        (await reg.get(SERVICES, "default", "a")).spec.cluster_ip]


async def test_one_node_port_for_tcp_and_udp_of_one_service():
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("dns", type_="NodePort", ports=[
        {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053}]))
    assert [p.node_port for p in svc.spec.ports] == [30053, 30053]
    assert list(await allocated(reg.store, servicealloc.PORT_KEY_PREFIX)) == ["30053"]


@pytest.mark.parametrize("allocate,expect_port", [(True, True), (False, False)],
                         ids=["default", "allocateLoadBalancerNodePorts-false"])
async def test_load_balancer_node_ports(allocate, expect_port):
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service(
        "lb", type_="LoadBalancer", allocateLoadBalancerNodePorts=allocate))
    assert bool(svc.spec.ports[0].node_port) == expect_port
    assert svc.spec.cluster_ip


class RivalStore(MemoryStore):
    """Before each of our next `races` transactions, a rival takes the first
    key we are about to create (another apiserver picked the same value)."""

    def __init__(self) -> None:
        super().__init__()
        self.races = 0

    async def txn(self, compares, puts, deletes, *, lease=0):
        if self.races and len(puts) > 1:
            self.races -= 1
            rival_key = puts[1][0]
            await super().put_if(rival_key, b"/registry/services/default/rival", 0)
        return await super().txn(compares, puts, deletes, lease=lease)


async def test_a_value_lost_to_a_rival_is_picked_again_not_doubled():
    store = RivalStore()
    reg = await make_registry(store, cidr=SMALL)
    store.races = 3
    svc = await reg.create(SERVICES, "default", service("web"))
    taken = await allocated(store, servicealloc.IP_KEY_PREFIX)
    assert taken[svc.spec.cluster_ip] == "/registry/services/default/web"
    assert sorted(taken.values()).count("/registry/services/default/rival") == 3


async def test_an_explicit_value_lost_to_a_rival_is_refused():
    store = RivalStore()
    reg = await make_registry(store)
    store.races = 1
    with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
        await reg.create(SERVICES, "default", service("web", cluster_ip="127.1.0.30"))
    assert await store.get(b"/registry/services/default/web") is None


async def test_many_concurrent_creates_get_distinct_addresses():
    reg = await make_registry(cidr="127.1.0.0/26")
    created = await asyncio.gather(*(reg.create(SERVICES, "default", service(
        f"s{i}", type_="NodePort")) for i in range(40)))
    ips = [s.spec.cluster_ip for s in created]
    ports = [s.spec.ports[0].node_port for s in created]
    assert len(set(ips)) == 40 and len(set(ports)) == 40
    assert len(await allocated(reg.store, servicealloc.IP_KEY_PREFIX)) == 40


async def test_dry_run_allocates_nothing():
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("web"), dry_run=True)
    assert svc.spec.cluster_ip
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {}


def test_the_supervisor_gives_the_apiserver_its_clusters_service_range(tmp_path):
    from deploy import components as comp

    launch = comp.Launch(home=tmp_path, name="apiserver", node="", host="127.0.0.1",
                         ports={"grpc": 1234}, peers={"etcd": "127.0.0.1:2379"}, binaries={},
                         network_block=7)
    argv = comp.apiserver_argv(launch)
    flag = argv.index("--service-cluster-ip-range")
    assert argv[flag + 1] == "127.7.0.0/24"
    assert Ranges.parse(argv[flag + 1]).first_ip == "127.7.0.1"


# ---------------------------------------------------------------- repair

async def test_repair_releases_leaks_and_records_unkeyed_services():
    reg = await make_registry()
    await reg.create(SERVICES, "default", service("kept", cluster_ip="127.1.0.40"))
    # A leak (its Service went without releasing it) and a Service stored
    # before allocations were kept (no key for its address and node port).
    await reg.store.put_if(servicealloc.ip_key("127.1.0.41"),
                           b"/registry/services/default/gone", 0)
    old = service("old", type_="NodePort", cluster_ip="127.1.0.42",
                  ports=[{"port": 80, "nodePort": 30042}])
    old.metadata.uid = "u"
    await reg.store.put_if(b"/registry/services/default/old", old.SerializeToString(), 0)
    report = await servicealloc.repair(reg.store, Ranges.parse(), core_pb2.Service)
    assert report.released == ["/registry/ranges/serviceips/127.1.0.41"]
    assert sorted(report.recorded) == ["/registry/ranges/serviceips/127.1.0.42",
                                       "/registry/ranges/servicenodeports/30042"]
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {
        "127.1.0.40": "/registry/services/default/kept",
        "127.1.0.42": "/registry/services/default/old"}
    again = await servicealloc.repair(reg.store, Ranges.parse(), core_pb2.Service)
    assert again == servicealloc.RepairReport()
    with pytest.raises(errors.Invalid, match="provided port is already allocated"):
        await reg.create(SERVICES, "default", service(
            "new", type_="NodePort", ports=[{"port": 80, "nodePort": 30042}]))


async def test_a_headless_service_updated_without_cluster_ip_stays_headless():
    reg = await make_registry()
    await reg.create(SERVICES, "default", service("db", cluster_ip="None"))
    again = await reg.update(SERVICES, service("db", ports=[{"port": 5432}]))
    assert again.spec.cluster_ip == "None" and list(again.spec.cluster_ips) == ["None"]
    with pytest.raises(errors.Invalid, match=r'spec.clusterIPs\[0\]: Invalid value: '
                                             r'\[\]string\{"127.1.0.9"\}: may not change once set'):
        await reg.update(SERVICES, service("db", cluster_ip="127.1.0.9"))
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {}


async def test_to_external_name_with_the_old_cluster_ip_still_sent_releases_it():
    """An old client (clusterIP without clusterIPs) switching to ExternalName:
    normalized to the stored pair, then dropped with the type (Kubernetes' order)."""
    reg = await make_registry()
    svc = await reg.create(SERVICES, "default", service("web"))
    ext = service("web", type_="ExternalName", cluster_ip=svc.spec.cluster_ip,
                  externalName="example.com")
    out = await reg.update(SERVICES, ext)
    assert not out.spec.cluster_ip and not out.spec.cluster_ips and not out.spec.ip_families
    assert await allocated(reg.store, servicealloc.IP_KEY_PREFIX) == {}
