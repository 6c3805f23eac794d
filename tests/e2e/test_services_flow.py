"""Services end to end (issue 10's "Done means"): the seed notes' flow on a
real cluster — a kuard Deployment exposed and curled through its ClusterIP
from the host and from another pod, a NodePort on every node's address, a
LoadBalancer address; readiness taking a pod out of rotation and back; a
node's kube-proxy killed while the Service keeps answering.

The cluster (two nodes, the whole control plane with the fast profile, each
node with its kube-proxy, and the add-ons: cluster DNS and the ingress
controller) is this module's own; the commands run through `kubemu` as a
reader would type them. kuard's page names the pod that answered (its
hostname), which is how a test sees where a request went. Cluster DNS: from a
busybox pod, names resolve through the pod's /etc/resolv.conf (the kube-dns
ClusterIP, the namespace's search list) as in Kubernetes; an Ingress routes
two hosts and a default backend through the controller's LoadBalancer address.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from kubemu.client.wait import wait_for_sync
from tests.e2e.test_kubelet import (ClusterThread, Seen, kubemu, ok,
                                    serving, workload_control_plane)

pytestmark = pytest.mark.e2e

WAIT_S = 90.0
HTTP_TIMEOUT_S = 3.0
KUARD = "gcr.io/kuar-demo/kuard-amd64:blue"
PROBE_PERIOD_S = 1
PROBE_FAILURES = 2
HOSTNAME = re.compile(r'id="hostname">([^<]+)<')

KUARD_DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kuard
spec:
  replicas: 3
  selector:
    matchLabels:
      app: kuard
  template:
    metadata:
      labels:
        app: kuard
    spec:
      containers:
      - name: kuard
        image: {KUARD}
        ports:
        - containerPort: 8080
          name: http
        readinessProbe:
          httpGet:
            path: /ready
            port: 8080
          periodSeconds: {PROBE_PERIOD_S}
          failureThreshold: {PROBE_FAILURES}
"""

CLIENT_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
  - name: busybox
    image: busybox
    command: ["sleep", "3600"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("services-home")
    yield from serving(ClusterThread(home, nodes=2, kinds=workload_control_plane(),
                                     addons=("coredns", "ingress-nginx")))


def jsonpath(cluster, what: str, template: str) -> str:
    return ok(cluster, "get", *what.split(), "-o", f"jsonpath={template}")


def get(url: str, host: str | None = None) -> tuple[int, str]:
    """(status, body) of a GET (with that Host header); (0, reason) when the
    connection fails."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError as err:
        return 0, repr(err)


def answered_by(body: str) -> str:
    match = HOSTNAME.search(body)
    assert match, body[:300]
    return match.group(1)


def hostnames_until(fetch, want: set[str], tries: int = 60) -> set[str]:
    """Ask through `fetch` (-> page) until every pod in `want` has answered."""
    def seen_all():
        seen: set[str] = set()
        last = ""
        for _ in range(tries):
            status, body = fetch()
            last = f"{status} {body[:200]}"
            if status == 200:
                seen.add(answered_by(body))
            if seen >= want:
                return seen
        return Seen([sorted(seen), last])
    return wait_for_sync(seen_all, WAIT_S, interval_s=0.2, message=f"answers from {sorted(want)}")


@pytest.fixture(scope="module")
def kuard(cluster):
    """The kuard Deployment, Ready, exposed as the notes do; pod names by IP."""
    ok(cluster, "apply", "-f", "-", stdin=KUARD_DEPLOYMENT)
    ok(cluster, "rollout", "status", "deployment/kuard", "--timeout=80s")
    assert ok(cluster, "expose", "deployment", "kuard", "--port", "80",
              "--target-port", "8080") == "service/kuard exposed\n"
    pods = json.loads(ok(cluster, "get", "pods", "-l", "app=kuard", "-o", "json"))["items"]
    assert len(pods) == 3
    return {p["status"]["podIP"]: p["metadata"]["name"] for p in pods}


@pytest.fixture(scope="module")
def client_pod(cluster):
    ok(cluster, "apply", "-f", "-", stdin=CLIENT_POD)
    ok(cluster, "wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
    return "client"


def test_the_cluster_ip_reaches_every_pod_from_the_host_and_from_a_pod(cluster, kuard,
                                                                       client_pod):
    ip = jsonpath(cluster, "service kuard", "{.spec.clusterIP}")
    rows = ok(cluster, "get", "service", "kuard").splitlines()
    assert rows[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows[1].split()[:5] == ["kuard", "ClusterIP", ip, "<none>", "80/TCP"]
    pods = set(kuard.values())
    assert hostnames_until(lambda: get(f"http://{ip}/"), pods) == pods

    def from_the_pod():
        got = kubemu(cluster, "exec", client_pod, "--", "wget", "-q", "-O", "-", "-T", "3",
                     f"http://{ip}/")
        return (200, got.stdout) if got.returncode == 0 else (0, got.stderr)
    assert hostnames_until(from_the_pod, pods) == pods


def test_a_node_port_answers_on_every_node_and_a_load_balancer_gets_an_address(cluster, kuard):
    assert ok(cluster, "expose", "deployment", "kuard", "--name", "kuard-np", "--port", "80",
              "--target-port", "8080", "--type", "NodePort") == "service/kuard-np exposed\n"
    port = int(jsonpath(cluster, "service kuard-np", "{.spec.ports[0].nodePort}"))
    assert 30000 <= port <= 32767
    nodes = jsonpath(cluster, "nodes", "{.items[*].status.addresses[0].address}").split()
    assert len(nodes) == 2
    for node_ip in nodes:
        status, body = wait_for_sync(
            lambda: (r := get(f"http://{node_ip}:{port}/"))[0] == 200 and r or Seen(r),
            WAIT_S, interval_s=0.2, message=f"NodePort {node_ip}:{port}")
        assert answered_by(body) in kuard.values()

    assert ok(cluster, "expose", "deployment", "kuard", "--name", "kuard-lb", "--port", "80",
              "--target-port", "8080", "--type", "LoadBalancer") == "service/kuard-lb exposed\n"

    def external_ip():
        got = jsonpath(cluster, "service kuard-lb", "{.status.loadBalancer.ingress[0].ip}")
        return got or Seen(got)
    lb_ip = wait_for_sync(external_ip, WAIT_S, interval_s=0.2, message="an external address")
    assert lb_ip.startswith("127.")
    row = ok(cluster, "get", "service", "kuard-lb").splitlines()[1].split()
    assert row[1] == "LoadBalancer" and row[3] == lb_ip and re.fullmatch(r"80:3\d{4}/TCP", row[4])
    status, body = wait_for_sync(
        lambda: (r := get(f"http://{lb_ip}/"))[0] == 200 and r or Seen(r),
        WAIT_S, interval_s=0.2, message=f"LoadBalancer {lb_ip}")
    assert answered_by(body) in kuard.values()
    for name in ("kuard-np", "kuard-lb"):
        ok(cluster, "delete", "service", name)


def ready_addresses(cluster, service: str) -> set[str]:
    slices = json.loads(ok(cluster, "get", "endpointslices", "-l",
                           f"kubernetes.io/service-name={service}", "-o", "json"))["items"]
    return {a for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready", True) for a in e["addresses"]}


def test_a_pod_that_fails_readiness_leaves_the_rotation_and_comes_back(cluster, kuard):
    ip = jsonpath(cluster, "service kuard", "{.spec.clusterIP}")
    victim_ip, victim = sorted(kuard.items())[0]
    assert get(f"http://{victim_ip}:8080/ready?fail=1")[0] == 500

    def left():
        ready = ready_addresses(cluster, "kuard")
        return True if victim_ip not in ready and len(ready) == 2 else Seen(sorted(ready))
    wait_for_sync(left, WAIT_S, interval_s=0.1, message=f"{victim} out of the endpoints")
    # The proxies follow the slices: no new request reaches it.
    others = set(kuard.values()) - {victim}
    answers = [get(f"http://{ip}/") for _ in range(30)]
    assert all(status == 200 for status, _ in answers), answers[:3]
    seen = {answered_by(body) for _, body in answers}
    assert victim not in seen and seen <= others

    assert get(f"http://{victim_ip}:8080/ready?ok=1")[0] == 200
    wait_for_sync(lambda: victim_ip in ready_addresses(cluster, "kuard") or Seen(None), WAIT_S,
                  interval_s=0.1, message=f"{victim} back in the endpoints")
    assert victim in hostnames_until(lambda: get(f"http://{ip}/"), {victim})


def test_killing_a_nodes_kube_proxy_leaves_the_service_answering(cluster, kuard):
    ip = jsonpath(cluster, "service kuard", "{.spec.clusterIP}")
    ok(cluster, "expose", "deployment", "kuard", "--name", "kuard-np1", "--port", "80",
       "--target-port", "8080", "--type", "NodePort")
    port = jsonpath(cluster, "service kuard-np1", "{.spec.ports[0].nodePort}")
    node_ip = jsonpath(cluster, "node node-1", "{.status.addresses[0].address}")
    wait_for_sync(lambda: get(f"http://{node_ip}:{port}/")[0] == 200 or Seen(None), WAIT_S,
                  interval_s=0.2, message="node-1's NodePort")

    def proxy():
        return next(s for s in cluster.cluster.status()
                    if s.component == "kube-proxy" and s.node == "node-1")
    before = proxy()
    os.kill(before.pid, signal.SIGKILL)

    def dead():   # reaped: its listeners are gone from the kernel
        try:
            os.kill(before.pid, 0)
        except ProcessLookupError:
            return True
        return Seen(before.pid)
    wait_for_sync(dead, WAIT_S, interval_s=0.05, message="node-1's kube-proxy gone")
    # node-2's proxy holds the ClusterIP too: every request is answered meanwhile.
    answers = [get(f"http://{ip}/")[0] for _ in range(20)]
    assert answers == [200] * 20

    def restarted():
        now = proxy()
        return now if now.pid != before.pid and now.state == "running" else Seen(now)
    wait_for_sync(restarted, WAIT_S, interval_s=0.1, message="node-1's kube-proxy restarted")
    # Only node-1's proxy serves node-1's NodePort: it answers again.
    wait_for_sync(lambda: get(f"http://{node_ip}:{port}/")[0] == 200 or Seen(None), WAIT_S,
                  interval_s=0.2, message="node-1's NodePort after the restart")
    ok(cluster, "delete", "service", "kuard-np1")


# ---------------------------------------------------------------- cluster DNS

STATEFUL_WEB = """\
apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  selector:
    app: nginx
  ports:
  - name: web
    port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 1
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.8
        ports:
        - containerPort: 80
          name: web
"""

PYTHON_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: fetch
spec:
  restartPolicy: Never
  containers:
  - name: python
    image: python:3.12
    command: ["python3", "-c"]
    args:
    - |
      import urllib.request
      with urllib.request.urlopen("http://kuard/", timeout=5) as reply:
          print(reply.status, reply.read().decode())
"""


def nslookup(cluster, pod: str, name: str) -> subprocess.CompletedProcess:
    return kubemu(cluster, "exec", pod, "--", "nslookup", name)


def test_names_resolve_through_cluster_dns_from_a_pod(cluster, kuard, client_pod):
    ip = jsonpath(cluster, "service kuard", "{.spec.clusterIP}")

    def resolves(name: str, address: str):
        def seen():
            got = nslookup(cluster, client_pod, name)
            return got.stdout if got.returncode == 0 and address in got.stdout \
                else Seen([got.returncode, got.stdout, got.stderr])
        return wait_for_sync(seen, WAIT_S, interval_s=0.5, message=f"{name} -> {address}")
    resolves("kuard.default.svc.cluster.local", ip)
    resolves("kuard", ip)   # the namespace's search list

    ok(cluster, "apply", "-f", "-", stdin=STATEFUL_WEB)
    ok(cluster, "rollout", "status", "statefulset/web", "--timeout=80s")
    web0 = jsonpath(cluster, "pod web-0", "{.status.podIP}")
    resolves("web-0.nginx", web0)
    resolves("web-0.nginx.default.svc.cluster.local", web0)

    unknown = nslookup(cluster, client_pod, "no-such-service.default.svc.cluster.local")
    assert unknown.returncode == 1, unknown
    assert "** server can't find no-such-service.default.svc.cluster.local: NXDOMAIN" \
        in unknown.stdout, unknown
    ok(cluster, "delete", "-f", "-", stdin=STATEFUL_WEB)


def test_a_python_pod_fetches_a_service_by_its_short_name(cluster, kuard):
    ok(cluster, "apply", "-f", "-", stdin=PYTHON_POD)

    def done():
        phase = jsonpath(cluster, "pod fetch", "{.status.phase}")
        return phase if phase in ("Succeeded", "Failed") else Seen(phase)
    phase = wait_for_sync(done, WAIT_S, interval_s=0.3, message="the fetch pod ends")
    logs = ok(cluster, "logs", "fetch")
    assert phase == "Succeeded", logs
    assert logs.startswith("200 ") and answered_by(logs) in kuard.values()
    ok(cluster, "delete", "pod", "fetch")


def test_service_env_vars_are_set_in_a_pod_started_after_the_service(cluster, kuard,
                                                                     client_pod):
    ip = jsonpath(cluster, "service kuard", "{.spec.clusterIP}")
    api_ip = jsonpath(cluster, "service kubernetes", "{.spec.clusterIP}")
    env = dict(line.partition("=")[::2] for line in
               ok(cluster, "exec", client_pod, "--", "env").splitlines())
    assert env["KUARD_SERVICE_HOST"] == ip and env["KUARD_SERVICE_PORT"] == "80"
    assert env["KUARD_PORT"] == f"tcp://{ip}:80"
    assert env["KUARD_PORT_80_TCP_ADDR"] == ip and env["KUARD_PORT_80_TCP_PROTO"] == "tcp"
    assert env["KUBERNETES_SERVICE_HOST"] == api_ip and env["KUBERNETES_SERVICE_PORT"] == "443"


# ---------------------------------------------------------------- ingress

def backend_deployment(name: str) -> str:
    return KUARD_DEPLOYMENT.replace("name: kuard\n", f"name: {name}\n", 1) \
        .replace("app: kuard", f"app: {name}").replace("replicas: 3", "replicas: 1")


# Seed 004's simple-ingress (a backend and no rule: ingress-nginx makes it the
# catch-all) and host-ingress (a rule per host).
SIMPLE_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: simple-ingress
spec:
  defaultBackend:
    service:
      name: be-default
      port:
        number: 8080
"""

HOST_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: host-ingress
spec:
  rules:
  - host: alpaca.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: alpaca
            port:
              number: 8080
  - host: bandicoot.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: bandicoot
            port:
              number: 8080
"""


def test_an_ingress_routes_two_hosts_and_a_default_backend(cluster):
    for name in ("alpaca", "bandicoot", "be-default"):
        ok(cluster, "apply", "-f", "-", stdin=backend_deployment(name))
    for name in ("alpaca", "bandicoot", "be-default"):
        ok(cluster, "rollout", "status", f"deployment/{name}", "--timeout=80s")
        assert ok(cluster, "expose", "deployment", name) == f"service/{name} exposed\n"
    ok(cluster, "apply", "-f", "-", stdin=SIMPLE_INGRESS)
    ok(cluster, "apply", "-f", "-", stdin=HOST_INGRESS)

    def address():   # the controller's LoadBalancer address, written to the Ingress
        got = jsonpath(cluster, "ingress host-ingress", "{.status.loadBalancer.ingress[0].ip}")
        return got or Seen(got)
    lb_ip = wait_for_sync(address, WAIT_S, interval_s=0.3, message="the Ingress's address")
    assert lb_ip == jsonpath(cluster, "service ingress-nginx-controller -n ingress-nginx",
                             "{.status.loadBalancer.ingress[0].ip}")
    rows = ok(cluster, "get", "ingress", "host-ingress").splitlines()
    assert rows[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert rows[1].split()[:5] == ["host-ingress", "nginx",
                                   "alpaca.example.com,bandicoot.example.com", lb_ip, "80"]
    for host, prefix in (("alpaca.example.com", "alpaca-"),
                         ("bandicoot.example.com", "bandicoot-"),
                         ("unknown.example.com", "be-default-")):
        def routed():
            status, body = get(f"http://{lb_ip}/", host)
            return body if status == 200 and answered_by(body).startswith(prefix) \
                else Seen([status, body[:200]])
        wait_for_sync(routed, WAIT_S, interval_s=0.3, message=f"{host} -> {prefix}*")
    # Without the catch-all, an unknown host gets the controller's own default backend.
    ok(cluster, "delete", "ingress", "simple-ingress")

    def controller_default():
        got = get(f"http://{lb_ip}/", "unknown.example.com")
        return True if got == (404, "default backend - 404") else Seen(got)
    wait_for_sync(controller_default, WAIT_S, interval_s=0.3, message="the 404 default backend")
    ok(cluster, "delete", "ingress", "host-ingress")
    for name in ("alpaca", "bandicoot", "be-default"):
        ok(cluster, "delete", "deployment,service", name)
