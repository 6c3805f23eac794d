"""The cluster DNS add-on through the supervisor: `addons=("coredns",)` applies
kubeadm's objects once the node is up (again: unchanged), the kubelet writes
pods' resolv.conf for ClusterFirst with the kube-dns address, and the DNS pods
run the catalog's coredns image, become Ready through their probes and answer
the cluster zone on their pod IPs, port 53 (the kube-dns ClusterIP itself is
kube-proxy's to serve).

The DNS pods reach the apiserver as in-cluster clients (KUBERNETES_SERVICE_HOST
and _PORT from the `kubernetes` Service). Where the apiserver does not make
that Service (before ClusterIP allocation and kube-proxy), the test stands in
for it: a `kubernetes` Service whose address is the apiserver's own.

Run by a user who cannot bind port 53 (`python -m tests.nonroot
tests/e2e/test_dns_addon.py`), the same cluster has no DNS add-on and its
pods get the host's resolver with a MissingClusterDNS event, as the README
says."""
from __future__ import annotations

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from deploy import addon_manager as am
from deploy import components as comp
from kubemu.api import errors
from kubemu.client.wait import wait_for
from tests.dns_builders import endpoint, endpoint_slice, service
from tests.e2e.test_kubelet import (ClusterThread, Seen, as_dict, busybox, cli, create_pod,
                                    is_ready, pod_doc, serving, wait_event,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e

DNS_WAIT_S = 90.0
QUERY_TIMEOUT_S = 2.0
# Why this machine's cluster cannot serve port 53 (rootless), or None.
PORT_53_PROBLEM = comp.low_port_problem(comp.DNS_PORT)
needs_port_53 = pytest.mark.skipif(PORT_53_PROBLEM is not None,
                                   reason=f"the DNS add-on is skipped: {PORT_53_PROBLEM}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("dns-home"), nodes=1,
                                     kinds=workload_control_plane(), addons=("coredns",)))


def dns_ip(cluster: ClusterThread) -> str:
    return comp.dns_service_ip(cluster.cluster._network_block)


async def ensure_kubernetes_service(api, cluster: ClusterThread) -> None:
    try:
        await api.get("services", "kubernetes", "default")
        return
    except errors.NotFound:
        pass
    host, port = cluster.apiserver.rsplit(":", 1)
    svc = service("kubernetes", cluster_ip=host, ports=[("https", int(port), "TCP")])
    try:
        await api.create(svc)
    except errors.AlreadyExists:
        pass


@needs_port_53
async def test_addon_objects_are_kubeadms_and_reapplying_changes_nothing(cluster, api):
    svc = await api.get("services", "kube-dns", "kube-system")
    assert svc.spec.cluster_ip == dns_ip(cluster)
    deployment = await api.get("deployments", "coredns", "kube-system")
    assert deployment.spec.replicas == 2
    await api.get("configmaps", "coredns", "kube-system")
    manifests = am.load(am.DEFAULT_ADDONS, am.AddonValues(dns_ip=dns_ip(cluster)))
    lines = await am.apply(api, manifests, timeout_s=30.0)
    assert lines == ["configmap/coredns unchanged", "deployment.apps/coredns unchanged",
                     "service/kube-dns unchanged"]


async def resolv_conf_of(cluster, ns: str, pod: str) -> str:
    async def printed():
        out = await cli(cluster, "logs", "-n", ns, pod)
        return out.stdout if out.returncode == 0 and "\n" in out.stdout \
            else Seen([out.stdout, out.stderr])
    return await wait_for(printed, 60.0, interval_s=0.2)


@pytest.mark.skipif(PORT_53_PROBLEM is None, reason="needs a cluster that cannot bind port 53")
async def test_a_rootless_cluster_has_no_dns_and_pods_say_so(cluster, api, ns):
    with pytest.raises(errors.NotFound):
        await api.get("services", "kube-dns", "kube-system")
    await create_pod(api, pod_doc("resolv", ns, [busybox("cat /etc/resolv.conf; sleep 3600")]))
    text = await resolv_conf_of(cluster, ns, "resolv")
    assert f"nameserver {dns_ip(cluster)}" not in text
    assert f"{ns}.svc.cluster.local" not in text
    event = await wait_event(api, ns, "resolv", "MissingClusterDNS")
    assert event["type"] == "Warning"
    assert 'kubelet does not have ClusterDNS IP configured and cannot create Pod using ' \
        '"ClusterFirst" policy. Falling back to "Default" policy.' in event["message"]


@needs_port_53
async def test_cluster_first_pods_get_the_cluster_dns(cluster, api, ns):
    await create_pod(api, pod_doc("resolv", ns, [busybox("cat /etc/resolv.conf; sleep 3600")]))

    text = await resolv_conf_of(cluster, ns, "resolv")
    lines = text.splitlines()
    assert lines[0] == f"nameserver {dns_ip(cluster)}"
    assert lines[1].startswith(f"search {ns}.svc.cluster.local svc.cluster.local cluster.local")
    assert lines[-1] == "options ndots:5"


async def ask(ip: str, name: str, rdtype: str = "A", *, tcp: bool = False):
    query = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, ip, port=53, timeout=QUERY_TIMEOUT_S)


@needs_port_53
async def test_dns_pods_become_ready_and_answer_on_their_pod_ips(cluster, api, ns):
    await ensure_kubernetes_service(api, cluster)

    async def ready_dns_pods():
        pods = (await api.list("pods", "kube-system", label_selector="k8s-app=kube-dns")).items
        ready = [p for p in pods if is_ready(as_dict(p))]
        return ready if len(ready) == 2 else Seen([(p.metadata.name, p.status.phase,
                                                    [c.ready for c in p.status.container_statuses])
                                                   for p in pods])
    pods = await wait_for(ready_dns_pods, DNS_WAIT_S, interval_s=0.5,
                          message="two Ready coredns pods (see their logs if not)")
    # They use the host's resolver themselves, never the cluster DNS they serve.
    assert {p.spec.dns_policy for p in pods} == {"Default"}
    await api.create(service("web", ns, cluster_ip="None", ports=[("http", 80, "TCP")]))
    await api.create(endpoint_slice("web", ns, ports=[("http", 80, "TCP")], endpoints=[
        endpoint("127.250.1.5", hostname="web-0")]))
    for pod in pods:
        ip = pod.status.pod_ip
        for tcp in (False, True):
            r = await ask(ip, "kube-dns.kube-system.svc.cluster.local", tcp=tcp)
            assert [rd.to_text() for rr in r.answer for rd in rr] == [dns_ip(cluster)]

            async def web_0():
                r = await ask(ip, f"web-0.web.{ns}.svc.cluster.local", tcp=tcp)
                got = [rd.to_text() for rr in r.answer for rd in rr]
                return got == ["127.250.1.5"] or Seen(got)
            await wait_for(web_0, 20.0)
            r = await ask(ip, f"nope.{ns}.svc.cluster.local", tcp=tcp)
            assert r.rcode() == dns.rcode.NXDOMAIN
