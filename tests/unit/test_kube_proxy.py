"""kube-proxy's pure parts: what is served (servicemap) and who gets a connection (balancer)."""
from __future__ import annotations

import dataclasses
import errno
import os
import random

import pytest

from kube_proxy import servicemap as sm
from kube_proxy.balancer import RANDOM, Balancer
from kube_proxy.proxier import Proxier, failure_message
from kube_proxy.proxy import Limits
from kube_proxy.servicemap import EXTERNAL, INTERNAL, Endpoint, ListenerKey, RouteKey
from tests.net_builders import endpoint, endpoint_slice, service

NODE = "node-1"
NODE_IP = "127.0.9.1"
CIP = "127.9.0.20"


def ips(endpoints) -> list[str]:
    return [e.ip for e in endpoints]


# ------------------------------------------------------------ endpoint filtering

@dataclasses.dataclass
class FilterCase:
    id: str
    endpoints: list[dict]
    want: list[str]
    local_only: bool = False


FILTER_CASES = [
    FilterCase("ready-only", [endpoint("10.0.0.1"), endpoint("10.0.0.2", ready=False)],
               ["10.0.0.1"]),
    FilterCase("ready-unset-counts-as-ready", [endpoint("10.0.0.1", ready=None)], ["10.0.0.1"]),
    FilterCase("none-ready-falls-back-to-serving-terminating",
               [endpoint("10.0.0.1", ready=False, serving=True, terminating=True),
                endpoint("10.0.0.2", ready=False, serving=False, terminating=True),
                endpoint("10.0.0.3", ready=False)],
               ["10.0.0.1"]),
    FilterCase("ready-wins-over-serving-terminating",
               [endpoint("10.0.0.1", ready=False, serving=True, terminating=True),
                endpoint("10.0.0.2")],
               ["10.0.0.2"]),
    FilterCase("not-ready-not-terminating-gets-nothing", [endpoint("10.0.0.1", ready=False)], []),
    FilterCase("local-keeps-this-node",
               [endpoint("10.0.0.1", node=NODE), endpoint("10.0.0.2", node="node-2")],
               ["10.0.0.1"], local_only=True),
    FilterCase("local-without-local-endpoints-gets-nothing",
               [endpoint("10.0.0.2", node="node-2")], [], local_only=True),
    FilterCase("local-fallback-is-local-too",
               [endpoint("10.0.0.1", ready=False, serving=True, terminating=True, node=NODE),
                endpoint("10.0.0.2", node="node-2")],
               ["10.0.0.1"], local_only=True),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: c.id)
def test_usable_endpoints(case: FilterCase):
    eps = sm.slice_endpoints([endpoint_slice("s", "web", case.endpoints)], "http", "TCP")
    assert ips(sm.usable(eps, local_only=case.local_only, node_name=NODE)) == case.want


def test_slice_ports_match_by_name_and_protocol_and_dedupe():
    a = endpoint_slice("a", "web", [endpoint("10.0.0.1"), endpoint("10.0.0.2")],
                       ports=[{"name": "http", "port": 8080, "protocol": "TCP"},
                              {"name": "dns", "port": 53, "protocol": "UDP"}])
    b = endpoint_slice("b", "web", [endpoint("10.0.0.2"), endpoint("10.0.0.3")],
                       ports=[{"name": "http", "port": 8080, "protocol": "TCP"}])
    http = sm.slice_endpoints([a, b], "http", "TCP")
    assert [e.address for e in http] == ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
    assert [e.address for e in sm.slice_endpoints([a, b], "dns", "UDP")] == \
        ["10.0.0.1:53", "10.0.0.2:53"]
    assert sm.slice_endpoints([a, b], "dns", "TCP") == ()


# ------------------------------------------------------------ listeners and routes

def _desired(services, slices=()):
    by = {}
    for sl in slices:
        for key in sm.index_slice(sl):
            by.setdefault(key, []).append(sl)
    return sm.desired(services, by, node_name=NODE, node_ip=NODE_IP)


def test_cluster_ip_listener_and_route():
    d = _desired([service("web", CIP)], [endpoint_slice("web-1", "web", [endpoint("10.0.0.1")])])
    key = ListenerKey("TCP", CIP, 80)
    assert d.listeners == {key: RouteKey("default/web:http", INTERNAL)}
    assert ips(d.routes[d.listeners[key]].endpoints) == ["10.0.0.1"]


@pytest.mark.parametrize("svc, want", [
    pytest.param(service("h", "None"), {}, id="headless-none"),
    pytest.param(service("x", "", type_="ExternalName", externalName="example.com"), {},
                 id="external-name-none"),
    pytest.param(service("np", CIP, [{"name": "http", "port": 80, "nodePort": 30080}],
                         type_="NodePort"),
                 {ListenerKey("TCP", CIP, 80): INTERNAL,
                  ListenerKey("TCP", NODE_IP, 30080): EXTERNAL}, id="nodeport-on-node-ip"),
    pytest.param(service("lb", CIP, [{"name": "http", "port": 80, "nodePort": 30081}],
                         type_="LoadBalancer", status_lb=["127.1.9.5"]),
                 {ListenerKey("TCP", CIP, 80): INTERNAL,
                  ListenerKey("TCP", "127.1.9.5", 80): EXTERNAL,
                  ListenerKey("TCP", NODE_IP, 30081): EXTERNAL}, id="loadbalancer-ingress-ip"),
    pytest.param(service("cl", CIP, [{"name": "http", "port": 80, "nodePort": 30082}]),
                 {ListenerKey("TCP", CIP, 80): INTERNAL}, id="clusterip-ignores-nodeport"),
    pytest.param(service("u", CIP, [{"name": "dns", "port": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                                    {"name": "s", "port": 9, "protocol": "SCTP"}]),
                 {ListenerKey("UDP", CIP, 53): INTERNAL, ListenerKey("TCP", CIP, 53): INTERNAL},
                 id="udp-and-tcp-same-port-no-sctp"),
])
def test_listeners(svc, want):
    d = _desired([svc])
    assert {k: r.scope for k, r in d.listeners.items()} == want


@pytest.mark.parametrize("policy_field, scope, want", [
    ("externalTrafficPolicy", EXTERNAL, ["10.0.0.1"]),
    ("externalTrafficPolicy", INTERNAL, ["10.0.0.1", "10.0.0.2"]),
    ("internalTrafficPolicy", INTERNAL, ["10.0.0.1"]),
    ("internalTrafficPolicy", EXTERNAL, ["10.0.0.1", "10.0.0.2"]),
], ids=["etp-local-external", "etp-local-leaves-clusterip", "itp-local-clusterip",
        "itp-local-leaves-nodeport"])
def test_traffic_policy_local(policy_field, scope, want):
    svc = service("np", CIP, [{"name": "http", "port": 80, "nodePort": 30080}],
                  type_="NodePort", **{policy_field: "Local"})
    sl = endpoint_slice("np-1", "np", [endpoint("10.0.0.1", node=NODE),
                                       endpoint("10.0.0.2", node="node-2")])
    d = _desired([svc], [sl])
    assert ips(d.routes[RouteKey("default/np:http", scope)].endpoints) == want


def test_slices_of_other_services_and_namespaces_are_ignored():
    d = _desired([service("web", CIP)],
                 [endpoint_slice("a", "other", [endpoint("10.0.0.1")]),
                  endpoint_slice("b", "web", [endpoint("10.0.0.2")], namespace="prod")])
    assert d.routes[RouteKey("default/web:http", INTERNAL)].endpoints == ()


def test_affinity_timeout_from_spec():
    plain = sm.service_ports(service("a", CIP))[0]
    default = sm.service_ports(service("b", CIP, sessionAffinity="ClientIP"))[0]
    custom = sm.service_ports(service("c", CIP, sessionAffinity="ClientIP",
                                      sessionAffinityConfig={"clientIP": {"timeoutSeconds": 7}}))[0]
    assert (plain.affinity_timeout_s, default.affinity_timeout_s, custom.affinity_timeout_s) == \
        (0, sm.DEFAULT_AFFINITY_TIMEOUT_S, 7)


def test_conflicting_listener_goes_to_first_service():
    d = _desired([service("b", CIP), service("a", CIP)])
    assert d.listeners[ListenerKey("TCP", CIP, 80)].service_port == "default/a:http"
    assert len(d.conflicts) == 1 and "default/b:http" in d.conflicts[0]


# ------------------------------------------------------------ balancer

EPS = tuple(Endpoint(f"10.0.0.{i}", 80) for i in (1, 2, 3))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_round_robin_cycles_and_skips_excluded():
    b = Balancer(EPS)
    assert ips(b.pick("c") for _ in range(4)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
    assert b.pick("c", exclude={"10.0.0.2:80"}).ip == "10.0.0.3"
    assert b.pick("c", exclude={e.address for e in EPS}) is None


def test_random_is_seeded_and_covers_all():
    picks = [Balancer(EPS, mode=RANDOM, rng=random.Random(7)).pick("c").ip for _ in range(3)]
    assert len(set(picks)) == 1  # same seed, same first choice
    b = Balancer(EPS, mode=RANDOM, rng=random.Random(1))
    assert {b.pick("c").ip for _ in range(100)} == set(ips(EPS))


def test_empty_table_picks_nothing():
    assert Balancer(()).pick("c") is None


def test_affinity_sticks_until_timeout_after_last_use():
    clock = Clock()
    b = Balancer(EPS, affinity_timeout_s=10, clock=clock)
    first = b.pick("1.1.1.1")
    other = b.pick("2.2.2.2")
    assert other != first
    for _ in range(3):
        clock.now += 9  # each use refreshes the timer
        assert b.pick("1.1.1.1") == first
    clock.now += 11
    assert b.pick("1.1.1.1") != first  # expired: round robin moves on


def test_affinity_moves_when_endpoint_fails_or_leaves():
    b = Balancer(EPS, affinity_timeout_s=100, clock=Clock())
    first = b.pick("1.1.1.1")
    moved = b.pick("1.1.1.1", exclude={first.address})
    assert moved != first
    assert b.pick("1.1.1.1") == moved  # re-pinned
    b.set_endpoints(tuple(e for e in EPS if e != moved))
    assert b.pick("1.1.1.1") not in (moved, None)


def test_update_keeps_affinity_to_remaining_endpoints():
    b = Balancer(EPS, affinity_timeout_s=100, clock=Clock())
    pinned = {c: b.pick(c) for c in ("a", "b", "c")}
    b.set_endpoints(EPS + (Endpoint("10.0.0.4", 80),))
    assert {c: b.pick(c) for c in pinned} == pinned


def test_affinity_table_is_bounded():
    b = Balancer(EPS, affinity_timeout_s=100, clock=Clock(), affinity_clients_max=2)
    for client in ("a", "b", "c"):
        b.pick(client)
    assert b.affinity_clients == 2


# ------------------------------------------------------------ proxier (listeners faked)

class FakeListener:
    """Binds nothing; fails for ports in `refuse` with that errno."""

    refuse: dict[int, int] = {}

    def __init__(self, key, route, routes, limits):
        self.key, self.route, self.closed, self.active = key, route, False, 0

    async def start(self):
        if self.key.port in self.refuse:
            err = self.refuse[self.key.port]
            raise OSError(err, os.strerror(err))

    def close(self):
        self.closed = True

    def abort_all(self):
        pass


@pytest.fixture
def proxier(monkeypatch):
    monkeypatch.setattr(FakeListener, "refuse", {53: errno.EACCES, 99: errno.EADDRINUSE})
    return Proxier(Limits(), listener_factory=FakeListener)


DNS_PORTS = [{"name": "dns", "port": 53, "protocol": "UDP"},
             {"name": "metrics", "port": 9153, "protocol": "TCP"}]


async def test_privileged_listener_is_skipped_and_reported_once(proxier):
    d = _desired([service("kube-dns", CIP, DNS_PORTS)])
    failures = await proxier.apply(d)
    assert [(str(f.key), f.service, f.permission) for f in failures] == \
        [(f"{CIP}:53/UDP", "default/kube-dns", True)]
    assert list(proxier.listeners) == [ListenerKey("TCP", CIP, 9153)]
    assert failure_message(failures[0], NODE, 1024) == (
        f"cannot serve {CIP}:53/UDP: permission denied (ports below "
        "net.ipv4.ip_unprivileged_port_start=1024 need root or CAP_NET_BIND_SERVICE); "
        "kube-proxy on node-1 serves the Service's other ports")
    assert await proxier.apply(d) == []  # tried again, not reported again
    assert proxier.snapshot()[-1] == {"listener": f"{CIP}:53/UDP", "error": "permission denied"}


async def test_address_in_use_is_not_a_permission_failure(proxier):
    failures = await proxier.apply(_desired([service("a", CIP, [tcp(99)])]))
    assert [(f.error, f.permission) for f in failures] == [("address already in use", False)]


def tcp(port: int, name: str = "p") -> dict:
    return {"name": name, "port": port, "protocol": "TCP"}


async def test_update_keeps_listeners_and_balancers_and_closes_removed_ones(proxier):
    sl = endpoint_slice("web-1", "web", [endpoint("10.0.0.1")], [tcp(8080)])
    await proxier.apply(_desired([service("web", CIP, [tcp(80), tcp(81, "q")])], [sl]))
    kept = proxier.listeners[ListenerKey("TCP", CIP, 80)]
    removed = proxier.listeners[ListenerKey("TCP", CIP, 81)]
    balancer = proxier.routes.balancers[RouteKey("default/web:p", INTERNAL)]
    sl2 = endpoint_slice("web-1", "web", [endpoint("10.0.0.1"), endpoint("10.0.0.2")],
                         [tcp(8080)])
    await proxier.apply(_desired([service("web", CIP, [tcp(80)])], [sl2]))
    assert proxier.listeners == {ListenerKey("TCP", CIP, 80): kept}
    assert removed.closed and not kept.closed
    assert proxier.routes.balancers[RouteKey("default/web:p", INTERNAL)] is balancer
    assert ips(balancer.endpoints) == ["10.0.0.1", "10.0.0.2"]
    await proxier.apply(_desired([]))
    assert kept.closed and proxier.routes.balancers == {} and proxier.metrics.services == {}


@pytest.mark.parametrize("policy_field, local_here, want", [
    ("externalTrafficPolicy", True,
     {ListenerKey("TCP", CIP, 80), ListenerKey("TCP", "127.1.9.5", 80),
      ListenerKey("TCP", NODE_IP, 30080)}),
    ("externalTrafficPolicy", False,
     {ListenerKey("TCP", CIP, 80), ListenerKey("TCP", NODE_IP, 30080)}),
    ("internalTrafficPolicy", True,
     {ListenerKey("TCP", CIP, 80), ListenerKey("TCP", "127.1.9.5", 80),
      ListenerKey("TCP", NODE_IP, 30080)}),
    ("internalTrafficPolicy", False,
     {ListenerKey("TCP", "127.1.9.5", 80), ListenerKey("TCP", NODE_IP, 30080)}),
], ids=["etp-local-here", "etp-none-here-drops-lb-ip-keeps-nodeport", "itp-local-here",
        "itp-none-here-drops-cluster-ip"])
def test_local_policy_holds_shared_addresses_only_with_local_endpoints(policy_field, local_here,
                                                                       want):
    svc = service("lb", CIP, [{"name": "http", "port": 80, "nodePort": 30080}],
                  type_="LoadBalancer", status_lb=["127.1.9.5"], **{policy_field: "Local"})
    sl = endpoint_slice("lb-1", "lb", [endpoint("10.0.0.1", node=NODE if local_here else "n2")])
    assert set(_desired([svc], [sl]).listeners) == want
