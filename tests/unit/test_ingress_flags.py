"""The ingress controller's command line (ingress-nginx's flags, as its manifests
pass them), its in-cluster apiserver address, round robin and status addresses."""
from __future__ import annotations

import pytest

from addons.ingress import __main__ as cli
from addons.ingress.app import Options, status_addresses
from addons.ingress.proxy import RoundRobin
from addons.ingress.routing import Backend
from tests.ingress_builders import service

MANIFEST_ARGV = ["--", "/nginx-ingress-controller",
                 "--publish-service=ingress-nginx/ingress-nginx-controller",
                 "--election-id=ingress-nginx-leader", "--controller-class=k8s.io/ingress-nginx",
                 "--ingress-class=nginx", "--configmap=ingress-nginx/ingress-nginx-controller",
                 "--validating-webhook=:8443", "--enable-metrics=false", "--some-future-flag=1"]


def test_ingress_nginx_manifest_args_parse_and_unknown_ones_are_reported():
    args, ignored = cli.parse_args(cli.strip_launcher(MANIFEST_ARGV))
    options = cli.options_from(args, "127.0.0.1:6443")
    assert options.publish_service == "ingress-nginx/ingress-nginx-controller"
    assert (options.classes.ingress_class, options.classes.controller) == \
        ("nginx", "k8s.io/ingress-nginx")
    assert (options.http_port, options.healthz_port) == (80, 10254)
    assert ignored == ["--election-id", "--configmap", "--validating-webhook",
                       "--enable-metrics", "--some-future-flag=1"]


@pytest.mark.parametrize("argv", [
    ["--publish-service=no-slash"], ["--http-port=70000"], ["--upstream-tries=0"],
    ["--watch-ingress-without-class=maybe"],
], ids=lambda a: a[0])
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2


def test_round_robin_takes_turns_per_backend():
    rr = RoundRobin()
    eps = [("a", 1), ("b", 1), ("c", 1)]
    one, two = Backend("ns", "one", 80), Backend("ns", "two", 80)
    assert [rr.order(one, eps)[0][0] for _ in range(4)] == ["a", "b", "c", "a"]
    assert rr.order(two, eps) == eps                  # its own turn
    assert rr.order(one, eps) == [("b", 1), ("c", 1), ("a", 1)]  # the rest follow, for retries
    assert rr.order(one, []) == []


def test_round_robin_is_bounded():
    rr = RoundRobin(keys_max=2)
    for i in range(5):
        rr.order(Backend("ns", f"s{i}", 80), [("a", 1)])
    assert len(rr._next) <= 2


def test_status_addresses_from_the_published_service_or_the_flag():
    svc = service("ingress-nginx-controller", "ingress-nginx", ("http", 80, "http"),
                  type="LoadBalancer")
    svc.status.load_balancer.ingress.add(ip="127.1.2.1")
    svc.status.load_balancer.ingress.add(hostname="lb.example.com")
    got = status_addresses(Options(apiserver="x", publish_service="ingress-nginx/x"), svc)
    assert [(a.ip, a.hostname) for a in got] == [("", "lb.example.com"), ("127.1.2.1", "")]
    got = status_addresses(Options(apiserver="x", publish_status_address="127.9.9.9, a.b"), svc)
    assert [(a.ip, a.hostname) for a in got] == [("", "a.b"), ("127.9.9.9", "")]
    assert status_addresses(Options(apiserver="x"), None) == []


def test_addon_manifest_decodes_validates_and_runs_the_controller():
    import pathlib

    import yaml

    from kubelet.runtime.images import Catalog, builtin_entries
    from kubemu.api import codec, defaults, validation
    from kubemu.api.kinds import REGISTRY

    text = (pathlib.Path(cli.__file__).resolve().parents[2] / "deploy" / "addons"
            / "ingress-nginx.yaml").read_text()
    kinds = []
    for doc in yaml.safe_load_all(text):
        kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
        obj = codec.from_dict(kind.message, doc)
        defaults.apply_defaults(kind, obj)
        assert [str(p) for p in validation.validate(kind, obj)] == [], doc["kind"]
        kinds.append(doc["kind"])
        if doc["kind"] == "Deployment":
            container = obj.spec.template.spec.containers[0]
            resolved = Catalog(builtin_entries()).resolve(container.image)
            args, ignored = cli.parse_args(cli.strip_launcher(list(container.args)))
            assert resolved.entry.name == "ingress-nginx-controller"
            assert args.publish_service == "$(POD_NAMESPACE)/ingress-nginx-controller"
            assert ignored == ["--election-id"]
    assert kinds == ["Namespace", "IngressClass", "Service", "Deployment"]


def test_the_ingress_addon_is_known_and_not_applied_by_default():
    from deploy import addon_manager

    assert addon_manager.INGRESS_NGINX not in addon_manager.DEFAULT_ADDONS
    assert addon_manager.chosen([]) == ("coredns",)
    assert addon_manager.chosen(["ingress-nginx"]) == ("coredns", "ingress-nginx")
    assert addon_manager.chosen(["ingress-nginx"], none=True) == ("ingress-nginx",)
    assert addon_manager.chosen([], none=True) == ()
    with pytest.raises(ValueError, match="unknown add-on 'traefik'; known: coredns, ingress-nginx"):
        addon_manager.chosen(["traefik"])
    kinds = [m.kind.kind for m in addon_manager.load(["ingress-nginx"],
                                                     addon_manager.AddonValues(dns_ip="127.9.0.10"))]
    assert kinds == ["Namespace", "IngressClass", "Service", "Deployment"]
