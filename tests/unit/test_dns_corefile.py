"""Reading kubeadm's Corefile (addons.dns.corefile) and the server's options from it."""
from __future__ import annotations

import pytest

from addons.dns import corefile
from addons.dns.__main__ import options_from, parse_args, upstreams_of

KUBEADM = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""


def test_kubeadm_corefile():
    cfg = corefile.parse(KUBEADM)
    assert (cfg.port, cfg.cluster_domain, cfg.ttl_s) == (53, "cluster.local", 30)
    assert (cfg.health, cfg.ready, cfg.prometheus) == (":8080", ":8181", ":9153")
    assert cfg.forward == ["/etc/resolv.conf"]
    assert cfg.ignored == ["errors", "cache", "loop", "reload", "loadbalance"]


@pytest.mark.parametrize("text,expected", [
    ("example.org:1053 {\n kubernetes example.org { ttl 5 }\n}\n", (1053, "example.org", 5)),
    (". {\n  kubernetes in-addr.arpa corp.internal.\n}\n", (53, "corp.internal", 30)),
    ("dns://.:5353 {\n  # a comment { not a block\n  health :9999\n}\n", (5353, "cluster.local", 30)),
], ids=["zone-port-ttl", "reverse-zone-first", "scheme-and-comment"])
def test_variants(text, expected):
    cfg = corefile.parse(text)
    assert (cfg.port, cfg.cluster_domain, cfg.ttl_s) == expected


@pytest.mark.parametrize("text,message", [
    ("", "Corefile: no server block"),
    (".:53 {\n errors\n", "Corefile: unexpected end of file: a '{' is not closed"),
    ("}\n", "Corefile:1: unexpected '}'"),
    (".:99999 {\n}\n", "Corefile:1: invalid port in server block '.:99999'"),
    (".:53 {\n kubernetes cluster.local {\n  ttl soon\n }\n}\n", "Corefile:3: ttl: expected seconds"),
    (".:53 {\n forward .\n}\n", "Corefile:2: forward: expected FROM TO..."),
], ids=["empty", "unclosed", "stray-brace", "bad-port", "bad-ttl", "forward-without-to"])
def test_errors_name_the_line(text, message):
    with pytest.raises(corefile.CorefileError) as exc:
        corefile.parse(text)
    assert str(exc.value) == message


def test_upstreams_from_a_resolv_conf(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# host\nnameserver 10.0.0.2\nnameserver 127.3.1.4\nsearch x\n"
                      "nameserver not-an-ip\nnameserver 10.0.0.2\n")
    assert upstreams_of([str(resolv), "dns://9.9.9.9"], own={"127.3.1.4"}) == \
        ["10.0.0.2", "9.9.9.9"]
    assert upstreams_of([str(tmp_path / "missing")], own=set()) == []


def test_options_from_corefile_and_flags(tmp_path, monkeypatch):
    conf = tmp_path / "Corefile"
    conf.write_text(KUBEADM.replace("cluster.local", "corp.local"))
    monkeypatch.setenv("POD_IP", "127.3.1.4")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.3.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    o = options_from(parse_args(["-conf", str(conf), "--upstream", "10.1.1.1"]))
    assert (o.apiserver, o.listen_host, o.port) == ("127.3.0.1:443", "127.3.1.4", 53)
    assert (o.cluster_domain, o.health, o.ready, o.metrics) == \
        ("corp.local", ":8080", ":8181", ":9153")
    assert o.upstreams == ["10.1.1.1"]
    o = options_from(parse_args(["--conf", str(conf), "--listen", "127.0.0.9:1053",
                                 "--cluster-domain", "x.test", "--apiserver", "127.0.0.1:1"]))
    assert (o.listen_host, o.port, o.cluster_domain, o.apiserver) == \
        ("127.0.0.9", 1053, "x.test", "127.0.0.1:1")


def test_outside_a_cluster_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(SystemExit) as exc:
        options_from(parse_args([]))
    assert str(exc.value) == ("error: unable to load in-cluster configuration, "
                              "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined")


@pytest.mark.parametrize("env,expected", [
    ({"KUBERNETES_SERVICE_HOST": "127.3.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "127.3.0.1:443"),
    ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, "[fd00::1]:443"),
    ({"KUBERNETES_SERVICE_HOST": "127.3.0.1"}, None),
    ({"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": "443"}, None),
], ids=["ipv4", "ipv6", "port-missing", "host-empty"])
def test_in_cluster_config(env, expected):
    from kubemu.client.config import ClusterNotFound, in_cluster_config

    if expected is None:
        with pytest.raises(ClusterNotFound, match="^unable to load in-cluster configuration, "
                           "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined$"):
            in_cluster_config(env)
    else:
        assert in_cluster_config(env).apiserver == expected
