"""Each pod's /etc/resolv.conf per dnsPolicy and dnsConfig (kubelet.dns, after the
kubelet's network/dns Configurer), and which Services' variables a pod gets."""
from __future__ import annotations

import pytest

from kubelet import dns as kdns
from kubelet import envvars
from kubelet.runtime import isolation as iso
from tests.builders import obj

HOST = kdns.parse_resolv_conf(
    "# the host's\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
    "search corp.example. lab.example\noptions edns0 timeout:2\n")
CLUSTER = kdns.Configurer(cluster_dns=("127.3.0.10",), cluster_domain="cluster.local",
                          host=HOST)
NO_CLUSTER_DNS = kdns.Configurer(host=HOST)


def pod(namespace: str = "shop", **spec):
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": namespace, "uid": "u-1"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}})


def resolv(configurer: kdns.Configurer, p) -> str:
    config, _ = configurer.pod_dns(p)
    return iso.resolv_conf(config.servers, config.searches, config.options)


def test_host_resolv_conf_is_parsed_as_the_kubelet_does():
    assert HOST == kdns.HostDNS(("10.0.0.2", "10.0.0.3"), ("corp.example", "lab.example"),
                                ("edns0", "timeout:2"))
    assert kdns.parse_resolv_conf("search a\nsearch b .\n").searches == ("b",)
    assert kdns.read_host("") == kdns.HostDNS()


@pytest.mark.parametrize("configurer,spec,expected", [
    (CLUSTER, {},
     "nameserver 127.3.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local "
     "corp.example lab.example\noptions ndots:5\n"),
    (CLUSTER, {"dnsPolicy": "ClusterFirst"},
     "nameserver 127.3.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local "
     "corp.example lab.example\noptions ndots:5\n"),
    (CLUSTER, {"dnsPolicy": "ClusterFirst", "hostNetwork": True},
     "nameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example lab.example\n"
     "options edns0 timeout:2\n"),
    (CLUSTER, {"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True},
     "nameserver 127.3.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local "
     "corp.example lab.example\noptions ndots:5\n"),
    (CLUSTER, {"dnsPolicy": "Default"},
     "nameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example lab.example\n"
     "options edns0 timeout:2\n"),
    (CLUSTER, {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}},
     "nameserver 1.1.1.1\n"),
    (CLUSTER, {"dnsConfig": {
        "nameservers": ["127.3.0.10", "9.9.9.9"], "searches": ["my.dns.search.suffix",
                                                              "svc.cluster.local"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}},
     "nameserver 127.3.0.10\nnameserver 9.9.9.9\nsearch shop.svc.cluster.local "
     "svc.cluster.local cluster.local corp.example lab.example my.dns.search.suffix\n"
     "options ndots:2 edns0\n"),
    (CLUSTER, {"dnsPolicy": "Default", "dnsConfig": {
        "options": [{"name": "timeout", "value": "5"}, {"name": "single-request"}]}},
     "nameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example lab.example\n"
     "options edns0 timeout:5 single-request\n"),
    (NO_CLUSTER_DNS, {},
     "nameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example lab.example\n"
     "options edns0 timeout:2\n"),
    (kdns.Configurer(resolv_conf="", host=HOST), {"dnsPolicy": "Default"},
     "nameserver 127.0.0.1\nsearch .\n"),
    (kdns.Configurer(cluster_dns=("127.3.0.10",), cluster_domain="", host=HOST), {},
     "nameserver 127.3.0.10\nsearch corp.example lab.example\noptions ndots:5\n"),
], ids=["cluster-first-default", "cluster-first", "cluster-first-host-network-is-default",
        "cluster-first-with-host-net", "default", "none-dns-config-only",
        "dns-config-merged", "options-merged-by-name", "no-cluster-dns-falls-back",
        "empty-resolv-conf", "no-cluster-domain"])
def test_resolv_conf_per_policy(configurer, spec, expected):
    assert resolv(configurer, pod(**spec)) == expected


def test_missing_cluster_dns_is_an_event():
    _, warnings = NO_CLUSTER_DNS.pod_dns(pod())
    assert warnings == [kdns.DnsWarning(
        "MissingClusterDNS",
        'pod: "web_shop(u-1)". kubelet does not have ClusterDNS IP configured and cannot '
        'create Pod using "ClusterFirst" policy. Falling back to "Default" policy.')]
    assert NO_CLUSTER_DNS.pod_dns(pod(dnsPolicy="Default"))[1] == []
    assert CLUSTER.pod_dns(pod())[1] == []


def test_limits_are_applied_with_an_event():
    spec = {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"],
        "searches": [f"s{i}.example" for i in range(40)] + ["x" * 254]}}
    config, warnings = CLUSTER.pod_dns(pod(**spec))
    assert list(config.servers) == ["1.1.1.1", "1.1.1.2", "1.1.1.3"]
    assert list(config.searches) == [f"s{i}.example" for i in range(32)]
    assert [w.message for w in warnings] == [
        "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
        "nameserver line is: 1.1.1.1 1.1.1.2 1.1.1.3",
        "Search Line limits were exceeded, some search paths have been omitted, the applied "
        "search line is: " + " ".join(f"s{i}.example" for i in range(32))]
    assert {w.reason for w in warnings} == {"DNSConfigForming"}


def test_search_line_is_cut_to_2048_characters():
    searches = ["a" * 200 + f".{i:02d}" for i in range(12)]  # 12 x 204 + 11 spaces
    kept, cut = kdns.fit_searches(searches)
    assert cut and kept == searches[:10] and len(" ".join(kept)) <= 2048


def _svc(name: str, namespace: str, ip: str):
    return obj({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"clusterIP": ip, "ports": [{"port": 443, "protocol": "TCP"}]}})


@pytest.mark.parametrize("namespace,links,expected", [
    ("shop", True, {"KUBERNETES_SERVICE_HOST": "127.3.0.1", "DB_SERVICE_HOST": "127.3.0.30"}),
    ("shop", False, {"KUBERNETES_SERVICE_HOST": "127.3.0.1"}),
    ("default", False, {"KUBERNETES_SERVICE_HOST": "127.3.0.1"}),
    ("default", True, {"KUBERNETES_SERVICE_HOST": "127.3.0.1", "WEB_SERVICE_HOST": "127.3.0.40"}),
], ids=["links", "no-links-keeps-kubernetes", "default-no-links", "default-links"])
def test_service_variables_per_enable_service_links(namespace, links, expected):
    services = [_svc("kubernetes", "default", "127.3.0.1"), _svc("db", "shop", "127.3.0.30"),
                _svc("web", "default", "127.3.0.40"), _svc("other", "elsewhere", "127.3.0.50")]
    p = pod(namespace, enableServiceLinks=links)
    env = dict(envvars.container_env(p, p.spec.containers[0], lambda *a: None, host_ip="",
                                     pod_ip="", allocatable={}, services=services))
    hosts = {k: v for k, v in env.items() if k.endswith("_SERVICE_HOST")}
    assert hosts == expected
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://127.3.0.1:443"


def test_a_namespace_service_named_kubernetes_wins():
    services = [_svc("kubernetes", "shop", "127.3.0.99"), _svc("kubernetes", "default",
                                                               "127.3.0.1")]
    chosen = envvars.linked_services(services, "shop", True)
    assert [s.spec.cluster_ip for s in chosen] == ["127.3.0.99"]
