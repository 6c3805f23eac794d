"""`kubemu expose` against kubectl 1.32.5's own output.

Every expected value was printed by real kubectl (v1.32.5) pointed at a fake
API server serving the objects of OBJECTS below (the comment above each case
is its command line, stdout then stderr); here the same objects are served by
the in-memory registry (tests/unit/cli_memclient.py).
"""
from __future__ import annotations

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli

OBJECTS = [
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "kuard", "labels": {"app": "kuard", "tier": "web"}},
     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "kuard"}},
              "template": {"metadata": {"labels": {"app": "kuard"}}, "spec": {"containers": [
                  {"name": "kuard", "image": "kuard", "ports": [
                      {"containerPort": 8080, "name": "http", "protocol": "TCP"},
                      {"containerPort": 9090, "protocol": "UDP"},
                      {"containerPort": 9090, "protocol": "TCP"}]}]}}}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ex"},
     "spec": {"replicas": 1, "selector": {
         "matchLabels": {"x": "y"},
         "matchExpressions": [{"key": "a", "operator": "In", "values": ["b", "c"]}]},
         "template": {"metadata": {"labels": {"a": "b", "x": "y"}}, "spec": {"containers": [
             {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"run": "web"}},
     "spec": {"containers": [{"name": "a", "image": "nginx"}]}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
     "spec": {"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]}]}},
    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs1"},
     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rs1"}},
              "template": {"metadata": {"labels": {"app": "rs1"}}, "spec": {"containers": [
                  {"name": "a", "image": "nginx",
                   "ports": [{"containerPort": 80}, {"containerPort": 443}]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front", "labels": {"app": "front"}},
     "spec": {"selector": {"app": "front"}, "ports": [
         {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
         {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}]}},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
     "spec": {"template": {"spec": {"restartPolicy": "Never",
                                    "containers": [{"name": "a", "image": "x"}]}}}},
]

KUARD_YAML = """apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: kuard
    tier: web
  name: kuard
spec:
"""


@pytest.fixture
async def mem(monkeypatch):
    client = install(monkeypatch, await MemClient.new())
    for doc in OBJECTS:
        await client.put(doc)
    return client


CASES = [
    # kubectl expose deployment kuard --dry-run=client -o yaml
    pytest.param("deployment kuard", KUARD_YAML + """  ports:
  - name: port-1
    port: 8080
    protocol: TCP
    targetPort: 8080
  - name: port-2-udp
    port: 9090
    protocol: UDP
    targetPort: 9090
  - name: port-2-tcp
    port: 9090
    protocol: TCP
    targetPort: 9090
  selector:
    app: kuard
status:
  loadBalancer: {}
""", "", id="ports-and-protocols-from-the-containers"),
    # kubectl expose deployment kuard --port 80 --target-port 8080 --dry-run=client -o yaml
    pytest.param("deployment kuard --port 80 --target-port 8080", KUARD_YAML + """  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: kuard
status:
  loadBalancer: {}
""", "", id="port-and-target-port"),
    # kubectl expose deploy/kuard --port 80 --target-port http --type NodePort --name x
    #   --protocol UDP --labels a=b,c=d --selector q=r --external-ip 1.2.3.4
    #   --load-balancer-ip 5.6.7.8 --session-affinity ClientIP --cluster-ip None
    #   --dry-run=client -o yaml
    pytest.param("deploy/kuard --port 80 --target-port http --type NodePort --name x "
                 "--protocol UDP --labels a=b,c=d --selector q=r --external-ip 1.2.3.4 "
                 "--load-balancer-ip 5.6.7.8 --session-affinity ClientIP --cluster-ip None",
                 """apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    a: b
    c: d
  name: x
spec:
  clusterIP: None
  externalIPs:
  - 1.2.3.4
  ports:
  - port: 80
    protocol: UDP
    targetPort: http
  selector:
    q: r
  sessionAffinity: ClientIP
  type: NodePort
status:
  loadBalancer: {}
""", "", id="every-flag"),
    # kubectl expose deploy kuard --port 80 --type LoadBalancer --load-balancer-ip 5.6.7.8 ...
    pytest.param("deploy kuard --port 80 --type LoadBalancer --load-balancer-ip 5.6.7.8",
                 KUARD_YAML + """  loadBalancerIP: 5.6.7.8
  ports:
  - port: 80
    protocol: TCP
    targetPort: 80
  selector:
    app: kuard
  type: LoadBalancer
status:
  loadBalancer: {}
""", "", id="load-balancer-ip"),
    # kubectl expose pod web --dry-run=client -o yaml
    pytest.param("pod web", "", "error: couldn't find port via --port flag or introspection\n",
                 id="no-port"),
    # kubectl expose pod web --cluster-ip None --dry-run=client -o yaml
    pytest.param("pod web --cluster-ip None", """apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    run: web
  name: web
spec:
  clusterIP: None
  selector:
    run: web
status:
  loadBalancer: {}
""", "", id="headless-needs-no-port"),
    # kubectl expose pod bare --port 80 --dry-run=client -o yaml
    pytest.param("pod bare --port 80", "",
                 "error: couldn't retrieve selectors via --selector flag or introspection: "
                 "the pod has no labels and cannot be exposed\n", id="pod-without-labels"),
    # kubectl expose rs rs1 --dry-run=client -o yaml
    pytest.param("rs rs1", """apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  name: rs1
spec:
  ports:
  - name: port-1
    port: 80
    protocol: TCP
    targetPort: 80
  - name: port-2
    port: 443
    protocol: TCP
    targetPort: 443
  selector:
    app: rs1
status:
  loadBalancer: {}
""", "", id="replicaset"),
    # kubectl expose svc front --dry-run=client -o yaml
    pytest.param("svc front", """apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: front
  name: front
spec:
  ports:
  - name: port-1
    port: 80
    protocol: TCP
    targetPort: 80
  - name: port-2
    port: 53
    protocol: UDP
    targetPort: 53
  selector:
    app: front
status:
  loadBalancer: {}
""", "", id="service"),
    # kubectl expose deployment ex --port 80 --dry-run=client -o yaml
    pytest.param("deployment ex --port 80", "",
                 "error: couldn't retrieve selectors via --selector flag or introspection: "
                 "couldn't convert expressions - \"[{Key:a Operator:In Values:[b c]}]\" to "
                 "map-based selector format\n", id="match-expressions-refused"),
    # kubectl expose job j --port 80 --dry-run=client -o yaml
    pytest.param("job j --port 80", "", "error: cannot expose a Job.batch\n", id="job"),
    # kubectl expose deploy kuard --port 80 --session-affinity Foo --dry-run=client -o yaml
    pytest.param("deploy kuard --port 80 --session-affinity Foo", "",
                 "error: unknown session affinity: Foo\n", id="bad-affinity"),
    # kubectl expose deploy kuard --port abc --dry-run=client -o yaml
    pytest.param("deploy kuard --port abc", "",
                 "error: strconv.Atoi: parsing \"abc\": invalid syntax\n", id="bad-port"),
    # kubectl expose deploy kuard --port 80 --target-port 0 --session-affinity None
    #   --cluster-ip 10.0.0.9 --dry-run=client -o yaml
    pytest.param("deploy kuard --port 80 --target-port 0 --session-affinity None "
                 "--cluster-ip 10.0.0.9", KUARD_YAML + """  clusterIP: 10.0.0.9
  ports:
  - port: 80
    protocol: TCP
    targetPort: 0
  selector:
    app: kuard
  sessionAffinity: None
status:
  loadBalancer: {}
""", "", id="cluster-ip-and-affinity"),
]


@pytest.mark.parametrize("line, out, err", CASES)
async def test_expose_dry_run_client_prints_what_kubectl_prints(mem, capsys, line, out, err):
    code = await run_cli("expose", *line.split(), "--dry-run=client", "-o", "yaml")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (out, err)
    assert code == (1 if err else 0)


@pytest.mark.parametrize("argv, out, err", [
    # kubectl expose deploy/kuard deploy/kuard --port 80 --dry-run=client
    pytest.param(["deploy/kuard", "deploy/kuard", "--port", "80", "--dry-run=client"],
                 "service/kuard exposed (dry run)\nservice/kuard exposed (dry run)\n", "",
                 id="two-objects"),
    # kubectl expose deploy kuard --port 80 --dry-run=server
    pytest.param(["deploy", "kuard", "--port", "80", "--dry-run=server"],
                 "service/kuard exposed (server dry run)\n", "", id="server-dry-run"),
    # kubectl expose deploy kuard --port 80 --name kuard-svc -o name --dry-run=client
    pytest.param(["deploy", "kuard", "--port", "80", "--name", "kuard-svc", "-o", "name",
                  "--dry-run=client"], "service/kuard-svc\n", "", id="output-name"),
    # kubectl expose deploy nope --port 80 (the message is a real apiserver's)
    pytest.param(["deploy", "nope", "--port", "80"], "",
                 'Error from server (NotFound): deployments.apps "nope" not found\n',
                 id="not-found"),
    # kubectl expose deploy
    pytest.param(["deploy"], "",
                 "error: resource(s) were provided, but no name was specified\n", id="no-name"),
    # kubectl expose --port 80
    pytest.param(["--port", "80"], "",
                 "error: You must provide one or more resources by argument or filename.\n"
                 "Example resource specifications include:\n   '-f rsrc.yaml'\n"
                 "   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'\n",
                 id="nothing"),
])
async def test_expose_lines(mem, capsys, argv, out, err):
    code = await run_cli("expose", *argv)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (out, err)
    assert code == (1 if err else 0)


async def test_expose_creates_the_service_with_the_objects_selector(mem, capsys):
    assert await run_cli("expose", "deployment", "kuard", "--port", "80", "--target-port",
                         "8080") == 0
    assert capsys.readouterr().out == "service/kuard exposed\n"
    svc = await mem.get("services", "kuard", "default")
    assert dict(svc.spec.selector) == {"app": "kuard"}
    assert [(p.port, p.target_port.int_val, p.protocol) for p in svc.spec.ports] == \
        [(80, 8080, "TCP")]
    assert dict(svc.metadata.labels) == {"app": "kuard", "tier": "web"}


async def test_expose_from_a_file_reads_the_object_there(mem, capsys, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: filed\n  labels:\n"
                    "    app: filed\nspec:\n  containers:\n  - name: a\n    image: nginx\n"
                    "    ports:\n    - containerPort: 8080\n")
    assert await run_cli("expose", "-f", str(path), "--dry-run=client", "-o",
                         "jsonpath={.spec.selector.app} {.spec.ports[0].port}") == 0
    assert capsys.readouterr().out == "filed 8080"
