"""The add-on manifests (deploy/addons) and their templating (deploy.addon_manager)."""
from __future__ import annotations

import pytest

from deploy import addon_manager as am
from deploy import components as comp


def test_coredns_is_what_kubeadm_installs():
    manifests = am.load(am.DEFAULT_ADDONS, am.AddonValues(dns_ip=comp.dns_service_ip(7)))
    by_label = {m.label: m for m in manifests}
    assert list(by_label) == ["configmap/coredns", "deployment.apps/coredns", "service/kube-dns"]
    assert {m.namespace for m in manifests} == {"kube-system"}
    corefile = by_label["configmap/coredns"].obj.data["Corefile"]
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in corefile
    deployment = by_label["deployment.apps/coredns"].obj
    assert deployment.spec.replicas == 2
    assert dict(deployment.spec.selector.match_labels) == {"k8s-app": "kube-dns"}
    pod = deployment.spec.template.spec
    assert pod.dns_policy == "Default"  # the DNS pods use the host's resolver, as kubeadm's
    (ctr,) = pod.containers
    assert ctr.image.startswith("registry.k8s.io/coredns/coredns:")
    assert list(ctr.args) == ["-conf", "/etc/coredns/Corefile"]
    assert (ctr.liveness_probe.http_get.path, ctr.liveness_probe.http_get.port.int_val) == \
        ("/health", 8080)
    assert (ctr.readiness_probe.http_get.path, ctr.readiness_probe.http_get.port.int_val) == \
        ("/ready", 8181)
    svc = by_label["service/kube-dns"].obj
    assert (svc.spec.cluster_ip, list(svc.spec.cluster_ips)) == ("127.7.0.10", ["127.7.0.10"])
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    assert dict(svc.spec.selector) == {"k8s-app": "kube-dns"}


def test_the_corefile_is_read_by_the_dns_server():
    from addons.dns import corefile

    (cm, *_) = am.load(["coredns"], am.AddonValues(dns_ip="127.7.0.10", dns_domain="corp.local"))
    cfg = corefile.parse(cm.obj.data["Corefile"])
    assert (cfg.port, cfg.cluster_domain, cfg.health, cfg.ready) == \
        (53, "corp.local", ":8080", ":8181")


@pytest.mark.parametrize("text,message", [
    ("a: {{ .Nope }}\n", "x.yaml: unknown placeholder '{{ .Nope }}' (known: DNSDomain, DNSIP)"),
], ids=["unknown-placeholder"])
def test_render_refuses_unknown_placeholders(text, message):
    with pytest.raises(am.AddonError) as exc:
        am.render(text, am.AddonValues(dns_ip="1.2.3.4").as_template(), source="x.yaml")
    assert str(exc.value) == message


def test_bad_manifests_name_the_add_on(tmp_path):
    with pytest.raises(am.AddonError, match=r"^add-on 'nope': .*nope.yaml: No such file"):
        am.load(["nope"], am.AddonValues(dns_ip="1.2.3.4"), tmp_path)
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Nonsense\nmetadata: {name: x}\n")
    with pytest.raises(am.AddonError, match="resource mapping not found"):
        am.load(["bad"], am.AddonValues(dns_ip="1.2.3.4"), tmp_path)


def test_kubelets_get_cluster_dns_only_with_the_add_on(tmp_path):
    def argv(cluster_dns: str) -> list[str]:
        launch = comp.Launch(home=tmp_path, name="node-1/kubelet", node="node-1",
                             host="127.0.0.1", ports={"grpc": 1}, peers={"apiserver": "a:1"},
                             binaries={}, network_block=7, cluster_dns=cluster_dns)
        return comp.kubelet_argv(launch)
    with_dns = argv("127.7.0.10")
    i = with_dns.index("--cluster-dns")
    assert with_dns[i:i + 4] == ["--cluster-dns", "127.7.0.10", "--cluster-domain",
                                 "cluster.local"]
    assert "--cluster-dns" not in argv("")


@pytest.mark.parametrize("euid,start,expected", [
    (0, "1024", None),
    (1000, "1024", "a cluster run by uid 1000 cannot serve port 53 "
                   "(net.ipv4.ip_unprivileged_port_start=1024)"),
    (1000, "0", None),
    (1000, "53", None),
], ids=["root", "rootless", "sysctl-lowered", "sysctl-at-53"])
def test_port_53_needs_root_or_a_lowered_sysctl(tmp_path, euid, start, expected):
    sysctl = tmp_path / "ip_unprivileged_port_start"
    sysctl.write_text(start + "\n")
    assert comp.low_port_problem(53, euid=euid, path=str(sysctl)) == expected


@pytest.mark.parametrize("addons,problem,expected", [
    (("coredns",), None, "127.7.0.10"),
    (("coredns",), "a cluster run by uid 1000 cannot serve port 53", ""),
    ((), None, ""),
], ids=["with-dns", "rootless", "no-addons"])
def test_kubelets_cluster_dns_follows_the_add_on(tmp_path, addons, problem, expected):
    from deploy.supervisor import Cluster

    cluster = Cluster(tmp_path, nodes=1, addons=addons)
    cluster._network_block, cluster._dns_problem = 7, problem
    assert cluster._cluster_dns() == expected


def test_an_unknown_add_on_is_refused(tmp_path):
    from deploy.supervisor import Cluster

    with pytest.raises(ValueError, match="addons: no add-on 'nope' in"):
        Cluster(tmp_path, addons=("nope",))
