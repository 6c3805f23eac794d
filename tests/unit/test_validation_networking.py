"""Validation and defaults for Services (the rules beyond tests/unit/test_validation.py),
EndpointSlices, Ingresses and IngressClasses: each case a change to a small
valid manifest and the exact messages Kubernetes reports, with their field paths."""
from __future__ import annotations

import pytest

from kubemu.api import codec
from tests.unit.test_validation import build, drop, problems, put


def messages(doc: dict, old: dict | None = None) -> list[str]:
    return [str(p) for p in problems(doc, old)]


def service() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.ports[0].protocol", "SCTP"), []),
    (lambda d: put(d, "spec.ports", [{"port": 80, "name": "Web"}]),
     ['spec.ports[0].name: Invalid value: "Web": a lowercase RFC 1123 label must consist of '
      "lower case alphanumeric characters or '-', and must start and end with an alphanumeric "
      "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    (lambda d: put(d, "spec.ports[0].targetPort", 0), []),  # defaulted to port
    (lambda d: put(d, "spec.sessionAffinity", "ClientIP"), []),  # timeout defaulted
    (lambda d: (put(d, "spec.sessionAffinity", "ClientIP"),
                put(d, "spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 0}})),
     ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater "
      "than 0 and less than 86400"]),
    (lambda d: (put(d, "spec.sessionAffinity", "ClientIP"),
                put(d, "spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 86401}})),
     ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be "
      "greater than 0 and less than 86400"]),
    (lambda d: put(d, "spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 60}}),
     ["spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"]),
    (lambda d: put(d, "spec.externalTrafficPolicy", "Local"),
     ['spec.externalTrafficPolicy: Invalid value: "Local": may only be set for '
      "externally-accessible services"]),
    (lambda d: (put(d, "spec.type", "NodePort"), put(d, "spec.externalTrafficPolicy", "Far")),
     ['spec.externalTrafficPolicy: Unsupported value: "Far": supported values: "Cluster", '
      '"Local"']),
    (lambda d: (put(d, "spec.type", "NodePort"), put(d, "spec.clusterIP", "None")),
     ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort "
      "services"]),
    (lambda d: put(d, "spec", {"type": "ExternalName", "externalName": "example.com",
                               "clusterIP": "127.1.0.5"}),
     ["spec.clusterIPs: Forbidden: may not be set for ExternalName services"]),
    (lambda d: put(d, "spec", {"type": "ExternalName", "externalName": "Not_A_Host"}),
     ['spec.externalName: Invalid value: "Not_A_Host": a lowercase RFC 1123 subdomain must '
      "consist of lower case alphanumeric characters, '-' or '.', and must start and end with "
      "an alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
    (lambda d: put(d, "spec", {"type": "ExternalName", "externalName": "example.com."}), []),
    (lambda d: (put(d, "spec.clusterIP", "127.1.0.5"),
                put(d, "spec.clusterIPs", ["127.1.0.6"])),
     ['spec.clusterIPs: Invalid value: []string{"127.1.0.6"}: first value must match '
      "`clusterIP`"]),
    (lambda d: put(d, "spec.ipFamilies", ["IPv6"]),
     ['spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster']),
    (lambda d: put(d, "spec.ipFamilyPolicy", "RequireDualStack"),
     ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
      "configured for dual-stack services"]),
    (lambda d: put(d, "spec.healthCheckNodePort", 30100),
     ["spec.healthCheckNodePort: Invalid value: 30100: may only be set when `type` is "
      "'LoadBalancer' and `externalTrafficPolicy` is 'Local'"]),
    (lambda d: put(d, "spec.ports", [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]),
     ['spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
      'AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, '
      'StrVal:""}, NodePort:0}']),
    (lambda d: put(d, "spec.ports", [{"port": 53, "name": "a", "protocol": "UDP"},
                                     {"port": 53, "name": "b", "protocol": "TCP"}]), []),
    (lambda d: put(d, "spec.loadBalancerSourceRanges", ["10.0.0.0/8"]),
     ["spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is "
      "'LoadBalancer'"]),
    (lambda d: (put(d, "spec.type", "LoadBalancer"),
                put(d, "spec.loadBalancerSourceRanges", [" 10.0.0.0/8", "10.1.2.3"])),
     ['spec.LoadBalancerSourceRanges[1]: Invalid value: "10.1.2.3": must be a valid CIDR '
      "value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]),
], ids=["sctp", "port-name-dns-label", "target-port-defaults", "client-ip-default-timeout",
        "affinity-timeout-zero", "affinity-timeout-too-big", "affinity-config-without-client-ip",
        "etp-on-cluster-ip", "etp-unsupported", "headless-node-port", "external-name-with-ip",
        "external-name-not-dns", "external-name-trailing-dot", "cluster-ips-mismatch",
        "ipv6-family", "dual-stack-required", "health-check-port-on-cluster-ip",
        "duplicate-port", "same-port-tcp-and-udp", "source-ranges-not-lb", "source-range-not-cidr"])
def test_service_rules(mutate, expected):
    doc = service()
    mutate(doc)
    assert messages(doc) == expected


@pytest.mark.parametrize("type_,expected", [
    ("ClusterIP", ""), ("NodePort", "Cluster"), ("LoadBalancer", "Cluster")])
def test_service_defaults(type_, expected):
    doc = put(service(), "spec.type", type_)
    put(doc, "spec.sessionAffinity", "ClientIP")
    _, svc = build(doc)
    assert svc.spec.external_traffic_policy == expected
    assert svc.spec.session_affinity_config.client_ip.timeout_seconds == 10800
    assert list(svc.spec.ip_families) == ["IPv4"] and svc.spec.ip_family_policy == "SingleStack"
    assert svc.spec.internal_traffic_policy == "Cluster"


# ---------------------------------------------------------------- EndpointSlice

def endpoint_slice() -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.2.1.5"], "conditions": {"ready": True},
                           "nodeName": "node-1"}],
            "ports": [{"name": "http", "port": 8080}]}


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: None, []),
    (lambda d: drop(d, "addressType"), ["addressType: Required value"]),
    (lambda d: put(d, "addressType", "IP"),
     ['addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"']),
    (lambda d: put(d, "endpoints[0].addresses", []),
     ["endpoints[0].addresses: Required value: must contain at least 1 address"]),
    (lambda d: put(d, "endpoints[0].addresses", [f"127.2.1.{i % 250 + 1}" for i in range(101)]),
     ["endpoints[0].addresses: Too many: 101: must have at most 100 items"]),
    (lambda d: put(d, "endpoints", [{"addresses": ["127.2.1.1"]}] * 1001),
     ["endpoints: Too many: 1001: must have at most 1000 items"]),
    (lambda d: put(d, "endpoints[0].addresses", ["fd00::1"]),
     ['endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address']),
    (lambda d: put(d, "endpoints[0].addresses", ["0.0.0.0"]),
     ['endpoints[0].addresses[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)']),
    (lambda d: (put(d, "addressType", "FQDN"), put(d, "endpoints[0].addresses", ["web"])),
     ['endpoints[0].addresses[0]: Invalid value: "web": should be a domain with at least two '
      "segments separated by dots"]),
    (lambda d: put(d, "endpoints[0].hostname", "web.0"),
     ['endpoints[0].hostname: Invalid value: "web.0": a lowercase RFC 1123 label must consist '
      "of lower case alphanumeric characters or '-', and must start and end with an "
      "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    (lambda d: put(d, "ports", [{"name": "http", "port": 80}, {"name": "http", "port": 81}]),
     ['ports[1].name: Duplicate value: "http"']),
    (lambda d: put(d, "ports", [{"port": 80}, {"port": 81}]),
     ['ports[1].name: Duplicate value: ""']),
    (lambda d: put(d, "ports[0].protocol", "ICMP"),
     ['ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"']),
    (lambda d: put(d, "ports", [{"name": f"p{i}", "port": 80 + i} for i in range(101)]),
     ["ports: Too many: 101: must have at most 100 items"]),
], ids=["valid", "no-address-type", "address-type-ip", "no-addresses", "too-many-addresses",
        "too-many-endpoints", "ipv6-in-ipv4-slice", "unspecified", "fqdn-one-segment",
        "hostname-not-label", "duplicate-port-names", "two-unnamed-ports", "bad-protocol",
        "too-many-ports"])
def test_endpoint_slice(mutate, expected):
    doc = endpoint_slice()
    mutate(doc)
    assert messages(doc) == expected


def test_endpoint_slice_defaults_and_immutable_address_type():
    _, eps = build(endpoint_slice())
    assert eps.ports[0].protocol == "TCP"
    _, unnamed = build(put(endpoint_slice(), "ports", [{"port": 80}]))
    assert unnamed.ports[0].HasField("name") and unnamed.ports[0].name == ""
    assert messages(put(endpoint_slice(), "addressType", "IPv6") | {
        "endpoints": [{"addresses": ["fd00::1"]}]}, endpoint_slice()) == [
        'addressType: Invalid value: "IPv6": field is immutable']


# ---------------------------------------------------------------- Ingress

def ingress() -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ingressClassName": "nginx", "rules": [{
                "host": "web.example.com", "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


PATH0 = "spec.rules[0].http.paths[0]"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: None, []),
    (lambda d: put(d, "spec", {"defaultBackend": {"service": {"name": "web",
                                                              "port": {"name": "http"}}}}), []),
    (lambda d: put(d, "spec", {}),
     ["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` "
      "must be specified"]),
    (lambda d: drop(d, f"{PATH0}.pathType"),
     [f"{PATH0}.pathType: Required value: pathType must be specified"]),
    (lambda d: put(d, f"{PATH0}.pathType", "Regex"),
     [f'{PATH0}.pathType: Unsupported value: "Regex": supported values: "Exact", '
      '"ImplementationSpecific", "Prefix"']),
    (lambda d: put(d, f"{PATH0}.path", "api"),
     [f'{PATH0}.path: Invalid value: "api": must be an absolute path']),
    (lambda d: (put(d, f"{PATH0}.path", "api"),
                put(d, f"{PATH0}.pathType", "ImplementationSpecific")),
     [f'{PATH0}.path: Invalid value: "api": must be an absolute path']),
    (lambda d: (put(d, f"{PATH0}.path", ""),
                put(d, f"{PATH0}.pathType", "ImplementationSpecific")), []),
    (lambda d: put(d, f"{PATH0}.path", "/a//b"),
     [f"{PATH0}.path: Invalid value: \"/a//b\": must not contain '//'"]),
    (lambda d: put(d, f"{PATH0}.path", "/a/.."),
     [f"{PATH0}.path: Invalid value: \"/a/..\": cannot end with '/..'"]),
    (lambda d: put(d, f"{PATH0}.backend", {}),
     [f'{PATH0}.backend: Invalid value: "": resource or service backend is required']),
    (lambda d: put(d, f"{PATH0}.backend.resource", {"kind": "Bucket", "name": "b"}),
     [f'{PATH0}.backend: Invalid value: "": cannot set both resource and service backends']),
    (lambda d: put(d, f"{PATH0}.backend", {"resource": {"apiGroup": "k8s.example.com",
                                                        "kind": "Bucket", "name": "b"}}), []),
    (lambda d: put(d, f"{PATH0}.backend.service.port", {"name": "http", "number": 80}),
     [f'{PATH0}.backend: Invalid value: "": cannot set both port name & port number']),
    (lambda d: put(d, f"{PATH0}.backend.service.port", {}),
     [f"{PATH0}.backend: Required value: port name or number is required"]),
    (lambda d: put(d, f"{PATH0}.backend.service.port", {"number": 70000}),
     [f"{PATH0}.backend.service.port.number: Invalid value: 70000: must be between 1 and "
      "65535, inclusive"]),
    (lambda d: put(d, f"{PATH0}.backend.service.name", ""),
     [f"{PATH0}.backend.service.name: Required value"]),
    (lambda d: put(d, "spec.rules[0].host", "*.example.com"), []),
    (lambda d: put(d, "spec.rules[0].host", "web.*.example.com"),
     ['spec.rules[0].host: Invalid value: "web.*.example.com": a wildcard DNS-1123 subdomain '
      "must start with '*.', followed by a valid DNS subdomain, which must consist of lower "
      "case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. "
      "'*.example.com', regex used for validation is "
      "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
    (lambda d: put(d, "spec.rules[0].host", "127.0.0.1"),
     ['spec.rules[0].host: Invalid value: "127.0.0.1": must be a DNS name, not an IP address']),
    (lambda d: put(d, "spec.rules[0].http.paths", []),
     ["spec.rules[0].http.paths: Required value"]),
    (lambda d: put(d, "spec.tls", [{"hosts": ["Web.example.com"], "secretName": "tls"}]),
     ['spec.tls[0].hosts[0]: Invalid value: "Web.example.com": a lowercase RFC 1123 subdomain '
      "must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
      "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
], ids=["valid", "default-backend-only", "neither", "no-path-type", "bad-path-type",
        "relative-prefix", "relative-implementation-specific", "empty-implementation-specific",
        "double-slash", "dot-dot-suffix", "no-backend", "both-backends", "resource-backend",
        "port-name-and-number", "no-port", "port-out-of-range", "no-service-name",
        "wildcard-host", "wildcard-not-first", "ip-host", "no-paths", "tls-host"])
def test_ingress(mutate, expected):
    doc = ingress()
    mutate(doc)
    assert messages(doc) == expected


# ---------------------------------------------------------------- IngressClass

def ingress_class() -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx"},
            "spec": {"controller": "k8s.io/ingress-nginx"}}


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: None, []),
    (lambda d: drop(d, "spec.controller"), ["spec.controller: Required value"]),
    (lambda d: put(d, "spec.controller", "nginx"),
     ['spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as '
      '"acme.io/foo")']),
    (lambda d: put(d, "spec.controller", "k8s.io/in gress"),
     ['spec.controller: Invalid value: "in gress": Invalid path (regex used for validation is '
      "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"]),
    (lambda d: put(d, "spec.parameters", {"kind": "Config", "name": "c"}), []),  # Cluster
    (lambda d: put(d, "spec.parameters", {"kind": "Config", "name": "c", "scope": "Namespace"}),
     ["spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"]),
    (lambda d: put(d, "spec.parameters", {"kind": "Config", "name": "c", "namespace": "x"}),
     ["spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"]),
    (lambda d: put(d, "spec.parameters", {"name": "c"}),
     ["spec.parameters.kind: Required value: kind is required"]),
], ids=["valid", "no-controller", "no-domain", "bad-path", "parameters-cluster",
        "namespace-scope-without-namespace", "cluster-scope-with-namespace", "no-kind"])
def test_ingress_class(mutate, expected):
    doc = ingress_class()
    mutate(doc)
    assert messages(doc) == expected


def test_ingress_class_controller_is_immutable():
    new = put(ingress_class(), "spec.controller", "example.com/other")
    assert messages(new, ingress_class()) == [
        'spec.controller: Invalid value: "example.com/other": field is immutable']


def test_ingress_class_parameters_scope_defaults_to_cluster():
    _, cls = build(put(ingress_class(), "spec.parameters", {"kind": "Config", "name": "c"}))
    assert cls.spec.parameters.scope == "Cluster"
    assert codec.to_dict(cls)["spec"]["parameters"]["scope"] == "Cluster"
