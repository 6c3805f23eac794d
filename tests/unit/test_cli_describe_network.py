"""describe and get of Services, Endpoints, EndpointSlices, Ingresses and
IngressClasses (issue 10), compared with kubectl 1.32.5.

Each kubectl_describe/<Kind>-<name>.txt here is what real kubectl printed for
`kubectl describe KIND NAME` against a fake API server serving exactly the
objects of cli_network_objects.py (at CAPTURED). The objects go through
kubemu's codec first (the JSON a kubemu server sends). The `get` columns follow
kubernetes/kubernetes pkg/printers/internalversion/printers.go (the server-side
table printer kubectl shows), case by case below.
"""
from __future__ import annotations

import asyncio
import datetime
import pathlib

import pytest

from kubemu.api import errors, labels
from kubemu.api.kinds import REGISTRY
from kubemu.cli import common, describe, printers
from tests.builders import obj as message
from tests.unit import cli_network_objects as objects

CAPTURED = datetime.datetime(2026, 11, 30, 13, 24, 27, tzinfo=datetime.timezone.utc)
GOLDEN = pathlib.Path(__file__).parent / "kubectl_describe"
DESCRIBED = [o for o in objects.NETWORK if o["kind"] != "Event"]


def served(doc: dict) -> dict:
    return common.to_json(message(doc))


class ObjectsClient:
    """The list/get calls describe makes, answered from cli_network_objects."""

    def __init__(self, docs: list[dict]):
        self.docs = docs

    def _of(self, resource: str, namespace: str) -> list[dict]:
        kind = REGISTRY.by_resource(resource).kind
        return [d for d in self.docs if d["kind"] == kind
                and d["metadata"].get("namespace", "") == namespace]

    async def get(self, resource: str, name: str, namespace: str = ""):
        for d in self._of(resource, namespace):
            if d["metadata"]["name"] == name:
                return message(d)
        raise errors.NotFound(f'{resource} "{name}" not found')

    async def list_all(self, resource: str, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = ""):
        match = labels.parse(label_selector) if label_selector else labels.EVERYTHING

        class Result:
            items = [message(d) for d in self._of(resource, namespace)
                     if match.matches(d["metadata"].get("labels") or {})]
        return Result()


def events_for(doc: dict) -> list[dict]:
    return [e for e in objects.NETWORK if e["kind"] == "Event"
            and e["involvedObject"]["name"] == doc["metadata"]["name"]
            and e["involvedObject"]["kind"] == doc["kind"]]


@pytest.mark.parametrize("doc", DESCRIBED,
                         ids=[f"{o['kind']}-{o['metadata']['name']}" for o in DESCRIBED])
def test_describe_matches_kubectl(doc):
    expected = (GOLDEN / f"{doc['kind']}-{doc['metadata']['name']}.txt").read_text()
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    obj = served(doc)
    extra = asyncio.run(describe._extra_for(ObjectsClient(objects.NETWORK), kind, obj))
    text = describe.describe(kind, obj, events_for(doc), CAPTURED, extra=extra)
    assert text == expected


# ---------------------------------------------------------------- get's columns

def row(resource: str, doc: dict, wide: bool = False) -> list[str]:
    return printers.row(resource, served(doc), printers.TableOptions(wide=wide), CAPTURED)


def by_name(kind: str, name: str) -> dict:
    return next(o for o in objects.NETWORK if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("name, wide, cells", [
    ("kuard", False, ["kuard", "ClusterIP", "127.2.0.20", "<none>", "80/TCP", "4h24m"]),
    ("kuard", True, ["kuard", "ClusterIP", "127.2.0.20", "<none>", "80/TCP", "4h24m",
                     "app=kuard"]),
    # node ports as port:nodePort/protocol; externalIPs shown for a NodePort Service
    ("np", False, ["np", "NodePort", "127.2.0.21", "127.9.9.9", "80:30080/TCP,53:30053/UDP",
                   "4h24m"]),
    ("lb", False, ["lb", "LoadBalancer", "127.2.0.22", "127.1.2.1", "80:31000/TCP", "4h24m"]),
    ("ext", False, ["ext", "ExternalName", "<none>", "example.com", "<none>", "4h24m"]),
    ("headless", True, ["headless", "ClusterIP", "None", "<none>", "<none>", "4h24m",
                        "app=h"]),
], ids=["clusterip", "wide-selector", "nodeport", "loadbalancer", "externalname", "headless"])
def test_service_columns(name, wide, cells):
    assert printers.headers("services", printers.TableOptions(wide=wide)) == \
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + \
        (["SELECTOR"] if wide else [])
    assert row("services", by_name("Service", name), wide) == cells


@pytest.mark.parametrize("ingress, external, wide, shown", [
    ([], [], False, "<pending>"),
    ([{"hostname": "lb.example.com"}, {"ip": "127.1.2.1"}], [], False, "127.1.2.1,lb...."),
    ([{"hostname": "lb.example.com"}, {"ip": "127.1.2.1"}], [], True,
     "127.1.2.1,lb.example.com"),
    ([{"ip": "127.1.2.1"}], ["127.9.9.9"], False, "127.1.2.1,127.9.9.9"),
], ids=["pending", "sorted-and-clipped", "wide-not-clipped", "with-external-ips"])
def test_load_balancer_external_ip(ingress, external, wide, shown):
    svc = {"spec": {"type": "LoadBalancer", "externalIPs": external},
           "status": {"loadBalancer": {"ingress": ingress}}}
    assert printers.service_external_ip(svc, wide) == shown


def subset(ips: list[str], ports: list[int], not_ready: list[str] = ()) -> dict:
    return {"addresses": [{"ip": ip} for ip in ips],
            "notReadyAddresses": [{"ip": ip} for ip in not_ready],
            "ports": [{"port": p} for p in ports]}


@pytest.mark.parametrize("subsets, shown", [
    ([], "<none>"),
    ([subset(["127.2.1.5", "127.2.1.6"], [8080])], "127.2.1.5:8080,127.2.1.6:8080"),
    ([subset(["127.2.1.5", "127.2.1.6"], [8080, 9090])],
     "127.2.1.5:8080,127.2.1.6:8080,127.2.1.5:9090 + 1 more..."),
    ([subset(["a", "b"], [80]), subset(["c", "d", "e"], [81])], "a:80,b:80,c:81 + 2 more..."),
    # no ports (a headless Service without them): the addresses alone
    ([subset(["127.2.1.5"], [])], "127.2.1.5"),
    # only not-ready addresses: an empty cell, not <none>
    ([subset([], [8080], ["127.2.1.7"])], ""),
], ids=["none", "two", "two-ports-truncated", "two-subsets", "portless", "not-ready-only"])
def test_endpoints_column(subsets, shown):
    assert printers.format_endpoints({"subsets": subsets}) == shown


def test_endpoints_row():
    assert printers.headers("endpoints", printers.TableOptions()) == ["NAME", "ENDPOINTS", "AGE"]
    assert row("endpoints", by_name("Endpoints", "kuard")) == \
        ["kuard", "127.2.1.5:8080,127.2.1.6:8080", "4h24m"]


@pytest.mark.parametrize("name, cells", [
    # every address, ready or not (the printer does not look at conditions)
    ("kuard-abc12", ["kuard-abc12", "IPv4", "8080",
                     "127.2.1.5,127.2.1.6,127.2.1.7 + 2 more...", "4h24m"]),
    ("np-xyz", ["np-xyz", "IPv4", "8081,53", "127.2.1.10", "4h24m"]),
    ("headless-q", ["headless-q", "IPv4", "<unset>", "127.2.1.11,127.2.1.12", "4h24m"]),
])
def test_endpointslice_columns(name, cells):
    assert printers.headers("endpointslices", printers.TableOptions()) == \
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert row("endpointslices", by_name("EndpointSlice", name)) == cells


def test_endpointslice_without_endpoints_or_port_numbers():
    eps = {"metadata": {"name": "e"}, "addressType": "IPv4",
           "ports": [{"name": "http"}, {}, {"port": 1}, {"port": 2}], "endpoints": []}
    cells = printers.row("endpointslices", eps, printers.TableOptions(), CAPTURED)
    assert cells[2:4] == ["http,*,1 + 1 more...", "<unset>"]


@pytest.mark.parametrize("name, cells", [
    ("web", ["web", "nginx", "a.example.com,b.example.com", "127.1.2.1", "80, 443", "4h24m"]),
    ("bare", ["bare", "<none>", "c.example.com", "", "80", "4h24m"]),
])
def test_ingress_columns(name, cells):
    assert printers.headers("ingresses", printers.TableOptions()) == \
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert row("ingresses", by_name("Ingress", name)) == cells


@pytest.mark.parametrize("hosts, shown", [
    ([], "*"),
    ([""], "*"),
    (["a", "", "b"], "a,b"),
    (["a", "b", "c", "d", "e"], "a,b,c + 2 more..."),
])
def test_ingress_hosts(hosts, shown):
    assert printers.ingress_hosts([{"host": h} for h in hosts]) == shown


@pytest.mark.parametrize("name, cells", [
    ("nginx", ["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb",
               "4h24m"]),
    ("plain", ["plain", "example.com/ingress", "<none>", "4h24m"]),
])
def test_ingressclass_columns(name, cells):
    assert printers.headers("ingressclasses", printers.TableOptions()) == \
        ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert row("ingressclasses", by_name("IngressClass", name)) == cells


# ---------------------------------------------------------------- describe's parts

def test_service_endpoints_line_counts_only_ready_endpoints_of_the_port():
    slices = [served(by_name("EndpointSlice", "kuard-abc12"))]
    # five endpoints, one not ready: three shown, one more
    assert describe.format_endpoint_slices(slices, {"http"}) == \
        "127.2.1.5:8080,127.2.1.6:8080,127.2.2.8:8080 + 1 more..."
    assert describe.format_endpoint_slices(slices, {"other"}) == ""
    assert describe.format_endpoint_slices([], {"http"}) == "<none>"


def test_ingress_backend_of_a_missing_service_shows_the_error():
    backend = {"service": {"name": "gone", "port": {"number": 80}}}
    assert describe.ingress_backend(backend, {"gone": 'services "gone" not found'}) == \
        'gone:80 (<error: services "gone" not found>)'
