"""The ingress controller add-on as a pod on a real node: the image
registry.k8s.io/ingress-nginx/controller with ingress-nginx's args runs
`python -m addons.ingress` in the container, binds port 80 of its pod IP, turns
Ready through its /healthz probe, and routes two hosts to two Services whose
endpoints are pods on the node (nginx, agnhost serve-hostname); an unknown host
gets the default backend.

The Services' EndpointSlices are written by the test and the controller is
given the apiserver's address (--apiserver-host): the EndpointSlice controller,
the `kubernetes` Service and kube-proxy come with their own branches of issue
10, and the whole-cluster test goes through them.
"""
from __future__ import annotations

import pytest

import aiohttp

from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (WAIT_S, ClusterThread, is_ready, obj, pod_doc, serving,
                                    wait_pod)
from tests.ingress_builders import endpoint_slice, ingress_class, make_ingress, prefix, service

pytestmark = pytest.mark.e2e

IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.10.1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("ingress-home")))


def probe(path: str, port: int) -> dict:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": 1, "failureThreshold": 3}


async def ready_pod(api, ns: str, name: str, containers: list[dict]) -> str:
    await api.create(obj(pod_doc(name, ns, containers)))
    pod = await wait_pod(api, ns, name, is_ready, timeout_s=60, what=f"pod {name} Ready")
    return pod["status"]["podIP"]


async def test_controller_pod_routes_hosts_to_pods(cluster, api, ns):
    nginx_ip = await ready_pod(api, ns, "web", [
        {"name": "main", "image": "nginx:1.25", "readinessProbe": probe("/", 80)}])
    echo_ip = await ready_pod(api, ns, "echo", [
        {"name": "main", "image": "registry.k8s.io/e2e-test-images/agnhost:2.40",
         "args": ["serve-hostname", "--http=true", "--port=9376"],
         "readinessProbe": probe("/", 9376)}])
    for name, port, ip in (("web", 80, nginx_ip), ("echo", 9376, echo_ip)):
        await api.create(service(name, ns, ("http", 80, port)))
        await api.create(endpoint_slice(f"{name}-abcde", ns, name, [("http", port)],
                                        [(ip, True)]))
    await api.create(ingress_class(f"nginx-{ns}", default=False))
    await api.create(make_ingress("hosts", ns).class_name(f"nginx-{ns}")
                     .host("web.example.com", prefix("/", "web", 80))
                     .host("echo.example.com", prefix("/", "echo", "http")).build())

    controller = {
        "name": "main", "image": IMAGE,
        "args": ["/nginx-ingress-controller", "--election-id=ingress-nginx-leader",
                 "--controller-class=k8s.io/ingress-nginx", "--ingress-class=nginx",
                 f"--apiserver-host={cluster.apiserver}", "--watch-namespace=$(POD_NAMESPACE)",
                 "--publish-status-address=$(POD_IP)"],
        "env": [{"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": probe("/healthz", 10254)}
    ingress_ip = await ready_pod(api, ns, "ingress-nginx-controller", [controller])

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async def get(host: str) -> tuple[int, str]:
            async with session.get(f"http://{ingress_ip}/", headers={"Host": host}) as resp:
                return resp.status, await resp.text()

        status, body = await get("web.example.com")
        assert status == 200 and "Welcome to nginx!" in body, (status, body[:300])
        assert await get("echo.example.com") == (200, "echo")
        assert await get("other.example.com") == (404, "default backend - 404")

    async def status_written():
        ing = await api.get("ingresses", "hosts", ns)
        return [a.ip for a in ing.status.load_balancer.ingress]
    assert await wait_for(status_written, WAIT_S) == [ingress_ip]
