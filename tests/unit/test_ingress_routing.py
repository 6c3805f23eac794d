"""The ingress controller's routing table (addons/ingress/routing.py): hosts,
wildcards, Exact vs Prefix, longest match, default backends, class selection,
endpoints from EndpointSlices."""
from __future__ import annotations

import pytest

from addons.ingress.routing import (Backend, ClassConfig, RoutingTable, is_ours, normalize_host,
                                    path_matches, ready_endpoints, wildcard_matches)
from tests.ingress_builders import (endpoint_slice, exact, ingress_class, make_ingress, path,
                                    prefix, service)


def be(service: str, port: int | str = 80, namespace: str = "default") -> Backend:
    return Backend(namespace, service, port if isinstance(port, int) else 0,
                   port if isinstance(port, str) else "")


# ---------------------------------------------------------------- path matching

# Kubernetes' own table (concepts/services-networking/ingress, "Examples").
@pytest.mark.parametrize("path_type,rule,request_path,matches", [
    ("Prefix", "/", "/", True),
    ("Prefix", "/", "/anything/at/all", True),
    ("Exact", "/foo", "/foo", True),
    ("Exact", "/foo", "/bar", False),
    ("Exact", "/foo", "/foo/", False),
    ("Exact", "/foo/", "/foo", False),
    ("Prefix", "/foo", "/foo", True),
    ("Prefix", "/foo", "/foo/", True),
    ("Prefix", "/foo/", "/foo", True),
    ("Prefix", "/foo/", "/foo/", True),
    ("Prefix", "/foo", "/foo/bar", True),
    ("Prefix", "/foo", "/foobar", False),
    ("Prefix", "/aaa/bb", "/aaa/bbb", False),
    ("Prefix", "/aaa/bbb", "/aaa/bbb", True),
    ("Prefix", "/aaa/bbb/", "/aaa/bbb", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbb/", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbb/ccc", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbbxyz", False),
    ("ImplementationSpecific", "/foo", "/foo/bar", True),
    ("ImplementationSpecific", "/foo", "/foobar", False),
], ids=lambda v: str(v))
def test_path_matches_as_kubernetes_defines(path_type, rule, request_path, matches):
    assert path_matches(path_type, rule, request_path) is matches


def test_longest_match_wins_and_exact_beats_prefix_at_equal_length():
    table = RoutingTable([make_ingress("a").host(
        "foo.com", prefix("/", "root", 80), prefix("/api", "api", 80),
        prefix("/api/v2", "v2", 80), exact("/api", "api-exact", 80),
        prefix("/static/", "static", 80)).build()])
    cases = {"/": "root", "/other": "root", "/api": "api-exact", "/api/": "api",
             "/api/v1": "api", "/api/v2": "v2", "/api/v2/x": "v2", "/apix": "root",
             "/static": "static", "/static/a.css": "static"}
    got = {p: table.route("foo.com", p).backend.service for p in cases}
    assert got == cases


# ---------------------------------------------------------------- hosts

@pytest.mark.parametrize("pattern,host,matches", [
    ("*.foo.com", "bar.foo.com", True),
    ("*.foo.com", "baz.bar.foo.com", False),
    ("*.foo.com", "foo.com", False),
    ("*.foo.com", ".foo.com", False),
    ("foo.com", "foo.com", False),  # not a wildcard
], ids=lambda v: str(v))
def test_wildcard_matches_exactly_one_label(pattern, host, matches):
    assert wildcard_matches(pattern, host) is matches


@pytest.mark.parametrize("header,host", [
    ("Foo.COM", "foo.com"), ("foo.com:8080", "foo.com"), ("foo.com.", "foo.com"),
    ("127.0.0.1:80", "127.0.0.1"), ("[::1]:80", "::1"), ("", ""),
], ids=lambda v: str(v) or "empty")
def test_normalize_host(header, host):
    assert normalize_host(header) == host


def two_hosts_table() -> RoutingTable:
    return RoutingTable([
        make_ingress("hosts").host("foo.com", prefix("/", "foo", 80))
        .host("*.bar.com", prefix("/", "wild", 80))
        .host("exact.bar.com", prefix("/", "exact", 80))
        .host("", prefix("/hostless", "anyhost", 80)).build()])


@pytest.mark.parametrize("host,path,service", [
    ("foo.com", "/x", "foo"),
    ("FOO.com:80", "/x", "foo"),
    ("a.bar.com", "/", "wild"),
    ("exact.bar.com", "/", "exact"),          # an exact name beats a wildcard
    ("a.b.bar.com", "/hostless", "anyhost"),   # two labels: not the wildcard's
    ("bar.com", "/hostless", "anyhost"),
    ("unknown.org", "/hostless", "anyhost"),   # rules without a host: the default server
    ("unknown.org", "/", None),                # nothing: the controller's default backend
    ("foo.com", "/hostless", "foo"),           # a host's server does not fall back to hostless rules
], ids=lambda v: str(v))
def test_host_selection(host, path, service):
    route = two_hosts_table().route(host, path)
    assert (route.backend.service if route.backend else None) == service


# ---------------------------------------------------------------- default backends

def test_ingress_default_backend_answers_its_hosts_when_no_path_matches():
    table = RoutingTable([
        make_ingress("a").default_backend("fallback", 8080)
        .host("foo.com", prefix("/api", "api", 80)).build()])
    assert table.route("foo.com", "/api/x").backend == be("api")
    route = table.route("foo.com", "/elsewhere")
    assert (route.backend, route.ingress, route.path) == (be("fallback", 8080), "default/a", "")
    # Its rules have hosts, so it is not the catch-all: other hosts get the controller's.
    assert table.route("other.com", "/").backend is None


def test_ingress_with_only_a_default_backend_is_the_catch_all():
    table = RoutingTable([
        make_ingress("rules").host("foo.com", prefix("/", "foo", 80)).build(),
        make_ingress("catchall").default_backend("everything", "http").build()])
    assert table.route("foo.com", "/").backend == be("foo")
    assert table.route("other.com", "/x").backend == be("everything", "http")


def test_oldest_ingress_wins_a_host_and_a_path():
    newer = (make_ingress("newer").created("2026-02-01T00:00:00Z")
             .default_backend("newer-default", 80)
             .host("foo.com", prefix("/", "newer", 80), prefix("/only-newer", "n2", 80)).build())
    older = (make_ingress("older").created("2026-01-01T00:00:00Z")
             .host("foo.com", prefix("/", "older", 80), exact("/x", "older-x", 80)).build())
    table = RoutingTable([newer, older])
    assert table.route("foo.com", "/").backend == be("older")
    assert table.route("foo.com", "/only-newer/a").backend == be("n2")  # merged into the host
    assert table.route("foo.com", "/x").backend == be("older-x")
    # The older Ingress made the server: its (absent) defaultBackend is the root.
    assert table.backends() >= {be("older"), be("n2"), be("older-x")}


def test_paths_without_a_service_backend_or_type_are_handled():
    doc = make_ingress("a").host("foo.com", path("/p", None, "implspec", 80))
    doc.doc["spec"]["rules"][0]["http"]["paths"].append(
        {"path": "/res", "pathType": "Prefix",
         "backend": {"resource": {"kind": "StorageBucket", "name": "b"}}})
    table = RoutingTable([doc.build()])
    assert table.route("foo.com", "/p/q").backend == be("implspec")  # no pathType: as Prefix
    assert table.route("foo.com", "/res").backend is None            # a resource backend: skipped


# ---------------------------------------------------------------- class

NGINX = ingress_class("nginx")
NGINX_DEFAULT = ingress_class("nginx", default=True)
OTHER = ingress_class("other", controller="example.com/other")
CONFIG = ClassConfig()


@pytest.mark.parametrize("ingress,classes,config,ours", [
    (make_ingress("a").class_name("nginx"), [NGINX], CONFIG, True),
    (make_ingress("a").class_name("nginx"), [], CONFIG, False),           # class not there (yet)
    (make_ingress("a").class_name("other"), [NGINX, OTHER], CONFIG, False),
    (make_ingress("a").class_annotation("nginx"), [], CONFIG, True),
    (make_ingress("a").class_annotation("other"), [NGINX_DEFAULT], CONFIG, False),
    (make_ingress("a"), [NGINX], CONFIG, False),                          # no class, no default
    (make_ingress("a"), [NGINX_DEFAULT], CONFIG, True),                   # our class is the default
    (make_ingress("a"), [NGINX, ingress_class("x", "example.com/x", default=True)], CONFIG, False),
    (make_ingress("a"), [], ClassConfig(watch_without_class=True), True),
    (make_ingress("a").class_name("nginx-internal"),
     [ingress_class("nginx-internal")], CONFIG, True),                     # any class of our controller
    (make_ingress("a").class_name("nginx"), [NGINX],
     ClassConfig(controller="k8s.io/other"), False),
], ids=["className-ours", "className-missing", "className-other", "annotation-ours",
        "annotation-other", "no-class", "no-class-default-ours", "no-class-default-theirs",
        "watch-without-class", "second-class-of-ours", "other-controller-flag"])
def test_class_selection(ingress, classes, config, ours):
    assert is_ours(ingress.build(), classes, config) is ours


# ---------------------------------------------------------------- endpoints

WEB = service("web", "default", ("http", 80, "http-alt"), ("metrics", 9090, 9090))


@pytest.mark.parametrize("backend,slices,want", [
    (be("web", 80), [endpoint_slice("web-1", "default", "web", [("http", 8080)],
                                    [("127.2.1.5", True), ("127.2.1.6", None),
                                     ("127.2.1.7", False)])],
     [("127.2.1.5", 8080), ("127.2.1.6", 8080)]),
    (be("web", "metrics"), [endpoint_slice("web-1", "default", "web",
                                           [("http", 8080), ("metrics", 9090)],
                                           [("127.2.1.5", True)])],
     [("127.2.1.5", 9090)]),
    (be("web", 81), [endpoint_slice("web-1", "default", "web", [("http", 8080)],
                                    [("127.2.1.5", True)])], []),       # no such Service port
    (be("web", 80), [endpoint_slice("web-1", "default", "web", [("http", 8080)],
                                    [("127.2.1.5", True)]),
                     endpoint_slice("web-2", "default", "web", [("http", 8080)],
                                    [("127.2.2.5", True), ("127.2.1.5", True)])],
     [("127.2.1.5", 8080), ("127.2.2.5", 8080)]),                       # two slices, merged
    (be("web", 80), [], []),
], ids=["ready-or-unset", "by-port-name", "unknown-port", "two-slices", "no-slices"])
def test_ready_endpoints(backend, slices, want):
    assert ready_endpoints(backend, WEB, slices) == want


def test_ready_endpoints_without_service_and_for_external_name():
    assert ready_endpoints(be("web"), None, []) == []
    ext = service("ext", "default", ("http", 80, 80), type="ExternalName",
                  external_name="example.com")
    assert ready_endpoints(be("ext"), ext, []) == [("example.com", 80)]
