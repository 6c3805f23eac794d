"""ResourceQuota and LimitRange on a real cluster (one node, the whole control
plane with the fast profile, so the resource quota controller recounts every
2 s besides reacting to pods): quota admission refuses what would exceed a
quota with Kubernetes' message and status.used follows the pods, LimitRanger
fills in default requests and limits and refuses a pod over its max, and a
pod without the requests a quota limits is refused as Kubernetes refuses it."""
from __future__ import annotations

import asyncio

import pytest

from kubemu.api import errors
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (WAIT_S, ClusterThread, Seen, busybox, cli, create_pod,
                                    obj, pod_doc, running, serving, wait_event, wait_pod,
                                    workload_control_plane)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("quota-home"), nodes=1,
                                     kinds=workload_control_plane()))


def sleeper(name: str, ns: str, **resources: dict) -> dict:
    extra = {"resources": resources} if resources else {}
    return pod_doc(name, ns, [busybox("exec sleep 3600", **extra)])


async def wait_used(api, ns: str, name: str, expected: dict[str, str]) -> None:
    """Until the quota's status.used is `expected` (the controller's count)."""
    async def used():
        quota = await api.get("resourcequotas", name, ns)
        seen = dict(quota.status.used)
        return seen == expected or Seen(seen)
    await wait_for(used, WAIT_S, interval_s=0.1, message=f"quota {name} used {expected}")


async def test_a_quota_of_three_pods_refuses_the_fourth(cluster, api, ns):
    out = await cli(cluster, "create", "quota", "q", "--hard=pods=3", "-n", ns)
    assert out.returncode == 0, out.stderr
    await wait_used(api, ns, "q", {"pods": "0"})
    for i in range(3):
        await create_pod(api, sleeper(f"p{i}", ns))
    with pytest.raises(errors.Forbidden) as refused:
        await create_pod(api, sleeper("p3", ns))
    assert refused.value.message == ('pods "p3" is forbidden: exceeded quota: q, requested: '
                                     "pods=1, used: pods=3, limited: pods=3")
    await wait_used(api, ns, "q", {"pods": "3"})
    out = await cli(cluster, "get", "quota", "-n", ns)
    assert out.stdout.splitlines()[1].split()[2:] == ["pods:", "3/3"], out.stdout

    # A pod that goes away is released by the controller; then the fourth fits.
    await api.delete("pods", "p0", ns, grace_period_s=0)
    await wait_used(api, ns, "q", {"pods": "2"})
    await create_pod(api, sleeper("p3", ns))
    await wait_pod(api, ns, "p3", running)
    await wait_used(api, ns, "q", {"pods": "3"})


async def test_a_limit_range_fills_in_defaults_and_refuses_a_pod_over_its_max(cluster, api, ns):
    await api.create(obj({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits", "namespace": ns},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"},
                             "default": {"cpu": "500m", "memory": "128Mi"},
                             "defaultRequest": {"cpu": "250m", "memory": "64Mi"}}]}}))
    created = await create_pod(api, sleeper("plain", ns))
    resources = created.spec.containers[0].resources
    assert dict(resources.requests) == {"cpu": "250m", "memory": "64Mi"}
    assert dict(resources.limits) == {"cpu": "500m", "memory": "128Mi"}
    assert created.metadata.annotations["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container main; cpu, memory limit "
        "for container main")
    assert created.status.qos_class == "Burstable"
    await wait_pod(api, ns, "plain", running)

    with pytest.raises(errors.Forbidden) as refused:
        await create_pod(api, sleeper("big", ns, limits={"cpu": "2"}))
    assert refused.value.message == ('pods "big" is forbidden: maximum cpu usage per Container '
                                     "is 1, but limit is 2")
    out = await cli(cluster, "describe", "limits", "limits", "-n", ns)
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["Container", "cpu", "-", "1", "250m", "500m", "-"] in rows, out.stdout
    assert ["Container", "memory", "-", "-", "64Mi", "128Mi", "-"] in rows, out.stdout


async def test_a_pod_without_requests_is_refused_where_a_quota_limits_them(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "ResourceQuota",
                          "metadata": {"name": "compute", "namespace": ns},
                          "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi"}}}))
    await wait_used(api, ns, "compute", {"requests.cpu": "0", "limits.memory": "0"})
    with pytest.raises(errors.Forbidden) as refused:
        await create_pod(api, sleeper("bare", ns))
    assert refused.value.message == ('pods "bare" is forbidden: failed quota: compute: must '
                                     "specify limits.memory for: main; requests.cpu for: main")

    await create_pod(api, sleeper("sized", ns, requests={"cpu": "600m"},
                                  limits={"memory": "256Mi"}))
    await wait_used(api, ns, "compute", {"requests.cpu": "600m", "limits.memory": "256Mi"})
    with pytest.raises(errors.Forbidden) as refused:
        await create_pod(api, sleeper("more", ns, requests={"cpu": "500m"},
                                      limits={"memory": "256Mi"}))
    assert refused.value.message == (
        'pods "more" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, '
        "used: requests.cpu=600m, limited: requests.cpu=1")
    # A pod that finishes stops using compute: the controller releases it.
    done = pod_doc("done", ns, [busybox("exit 0", resources={"requests": {"cpu": "300m"},
                                                            "limits": {"memory": "64Mi"}})],
                   restartPolicy="Never")
    await create_pod(api, done)
    await wait_pod(api, ns, "done", lambda p: p["status"].get("phase") == "Succeeded")
    await wait_used(api, ns, "compute", {"requests.cpu": "600m", "limits.memory": "256Mi"})
    out = await cli(cluster, "describe", "quota", "compute", "-n", ns)
    assert [line.split() for line in out.stdout.splitlines()] == [
        ["Name:", "compute"], ["Namespace:", ns], ["Resource", "Used", "Hard"],
        ["--------", "----", "----"], ["limits.memory", "256Mi", "1Gi"],
        ["requests.cpu", "600m", "1"]], out.stdout


async def test_concurrent_creates_cannot_overshoot_a_quota(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "ResourceQuota",
                          "metadata": {"name": "few", "namespace": ns},
                          "spec": {"hard": {"count/configmaps": "3"}}}))
    await wait_used(api, ns, "few", {"count/configmaps": "0"})
    results = await asyncio.gather(*(api.create(obj({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": ns},
        "data": {"i": str(i)}})) for i in range(10)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, errors.Forbidden)]
    created = [r for r in results if not isinstance(r, BaseException)]
    assert (len(created), len(refused)) == (3, 7), results
    assert all("exceeded quota: few, requested: count/configmaps=1, used: "
               "count/configmaps=3, limited: count/configmaps=3" in r.message for r in refused)
    await wait_used(api, ns, "few", {"count/configmaps": "3"})


async def test_a_deployment_under_a_quota_stops_at_it_and_says_why(cluster, api, ns):
    await api.create(obj({"apiVersion": "v1", "kind": "ResourceQuota",
                          "metadata": {"name": "two", "namespace": ns},
                          "spec": {"hard": {"pods": "2"}}}))
    await wait_used(api, ns, "two", {"pods": "0"})
    await api.create(obj({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [busybox("exec sleep 3600")]}}}}))

    async def refused_replica_set():
        for rs in (await api.list("replicasets", ns)).items:
            for cond in rs.status.conditions:
                if cond.type == "ReplicaFailure" and cond.reason == "FailedCreate":
                    return rs, cond
        return Seen([rs.metadata.name for rs in (await api.list("replicasets", ns)).items])
    rs, cond = await wait_for(refused_replica_set, WAIT_S, interval_s=0.1)
    assert "is forbidden: exceeded quota: two, requested: pods=1, used: pods=2, limited: pods=2" \
        in cond.message, cond.message
    events = await wait_event(api, ns, rs.metadata.name, "FailedCreate", "exceeded quota: two")
    assert events["message"].startswith(f'Error creating: pods "{rs.metadata.name}-'), events
    assert len((await api.list("pods", ns)).items) == 2
    await wait_used(api, ns, "two", {"pods": "2"})
    await api.delete("deployments", "web", ns, propagation_policy="Foreground")
