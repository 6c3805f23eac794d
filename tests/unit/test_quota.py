"""ResourceQuota and LimitRange: validation, the quota evaluators, LimitRanger,
and both admission plug-ins through the registry on the in-memory store."""
from __future__ import annotations

import asyncio
import random

import pytest

from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from apiserver.strategy import limitranger
from kubemu.api import errors, validation
from kubemu.api import quota as q
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from tests.builders import configmap, make_pod, obj

PODS = REGISTRY.by_resource("pods")
SERVICES = REGISTRY.by_resource("services")
CONFIGMAPS = REGISTRY.by_resource("configmaps")
PVCS = REGISTRY.by_resource("persistentvolumeclaims")
DEPLOYMENTS = REGISTRY.by_resource("deployments")
QUOTAS = REGISTRY.by_resource("resourcequotas")
LIMIT_RANGES = REGISTRY.by_resource("limitranges")
NAMESPACES = REGISTRY.by_resource("namespaces")


def quota(name="q", hard=None, used=None, scopes=(), status_hard=None, namespace="default"):
    hard = hard or {}
    doc = {"apiVersion": "v1", "kind": "ResourceQuota",
           "metadata": {"name": name, "namespace": namespace, "resourceVersion": "5"},
           "spec": {"hard": hard, "scopes": list(scopes)},
           "status": {"hard": hard if status_hard is None else status_hard,
                      "used": used if used is not None else {k: "0" for k in hard}}}
    return obj(doc)


def limit_range(*items, name="limits", namespace="default"):
    return obj({"apiVersion": "v1", "kind": "LimitRange",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"limits": list(items)}})


def pod(name="x", containers=None, **spec):
    doc = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": containers or [{"name": "c", "image": "busybox"}], **spec}}
    return obj(doc)


def ctr(name="c", requests=None, limits=None):
    out = {"name": name, "image": "busybox"}
    resources = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    if resources:
        out["resources"] = resources
    return out


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("doc, expected", [
    ({"spec": {"hard": {"pods": "3", "requests.cpu": "1"}}}, []),
    ({"spec": {"hard": {"count/deployments.apps": "2"}}}, []),
    ({"spec": {"hard": {"bogus": "1"}}},
     ['spec.hard[bogus]: Invalid value: "bogus": must be a standard resource for quota']),
    ({"spec": {"hard": {"pods": "-1"}}},
     ['spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0']),
    ({"spec": {"hard": {"pods": "1500m"}}},
     ['spec.hard[pods]: Invalid value: "1500m": must be an integer']),
    ({"spec": {"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]}},
     ['spec.scopes: Invalid value: []core.ResourceQuotaScope{"Terminating", "NotTerminating"}: '
      'conflicting scopes']),
    ({"spec": {"hard": {"services": "1"}, "scopes": ["BestEffort"]}},
     ['spec.hard: Invalid value: "services": unsupported scope applied to resource']),
    ({"spec": {"hard": {"pods": "1"}, "scopes": ["Sometimes"]}},
     ['spec.scopes[0]: Invalid value: "Sometimes": unsupported scope']),
], ids=["ok", "count-ok", "unknown-resource", "negative", "fraction-of-pods",
        "conflicting-scopes", "scope-for-services", "unknown-scope"])
def test_resource_quota_validation(doc, expected):
    msg = obj({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q",
                                                                           "namespace": "d"},
               **doc})
    problems = validation.validate(QUOTAS, msg)
    assert [str(p) for p in problems] == expected


@pytest.mark.parametrize("item, expected", [
    ({"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"}}, []),
    ({"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2"}},
     ['spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1',
      'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than '
      'default request value 1',
      'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than '
      'default value 1']),
    ({"type": "Container", "default": {"cpu": "2"}, "max": {"cpu": "1"}},
     ['spec.limits[0].defaultRequest[cpu]: Invalid value: "2": default request value 2 is '
      'greater than max value 1',
      'spec.limits[0].default[cpu]: Invalid value: "1": default value 2 is greater than '
      'max value 1']),
    ({"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}},
     ['spec.limits[0].defaultRequest[cpu]: Invalid value: "2": default request value 2 is '
      'greater than default limit value 1']),
    ({"type": "Pod", "default": {"cpu": "1"}},
     ["spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"]),
    ({"type": "PersistentVolumeClaim"},
     ["spec.limits[0].limits: Required value: either minimum or maximum storage value is "
      "required, but neither was provided"]),
    ({"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}},
     ['spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less '
      'than 1']),
    ({"type": "Thing", "max": {"cpu": "1"}},
     ['spec.limits[0].type: Invalid value: "Thing": must be a standard limit type or fully '
      'qualified']),
], ids=["ok", "min-over-max", "default-over-max", "request-over-default", "pod-default",
        "claim-without-storage", "ratio-below-one", "unknown-type"])
def test_limit_range_validation(item, expected):
    msg = limit_range(item)
    validation_kind = LIMIT_RANGES
    from kubemu.api import defaults
    defaults.apply_defaults(validation_kind, msg)
    assert [str(p) for p in validation.validate(validation_kind, msg)] == expected


def test_limit_range_defaults_follow_kubernetes():
    msg = limit_range({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}},
                      {"type": "Pod", "max": {"cpu": "2"}})
    from kubemu.api import defaults
    defaults.apply_defaults(LIMIT_RANGES, msg)
    container, pod_item = msg.spec.limits
    assert dict(container.default) == {"cpu": "1"}
    assert dict(container.default_request) == {"cpu": "1", "memory": "64Mi"}
    assert not pod_item.default and not pod_item.default_request


# ---------------------------------------------------------------- evaluators

@pytest.mark.parametrize("containers, init, expected", [
    ([ctr()], [], {"count/pods": "1", "pods": "1"}),
    ([ctr(requests={"cpu": "250m", "memory": "64Mi"}, limits={"cpu": "1"})], [],
     {"count/pods": "1", "pods": "1", "cpu": "250m", "requests.cpu": "250m",
      "memory": "64Mi", "requests.memory": "64Mi", "limits.cpu": "1"}),
    ([ctr("a", requests={"cpu": "100m"}), ctr("b", requests={"cpu": "200m"})],
     [ctr("i", requests={"cpu": "1"})],
     {"count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1"}),
], ids=["best-effort", "requests-and-limits", "init-container-max"])
def test_pod_usage(containers, init, expected):
    p = pod(containers=containers, initContainers=init)
    assert q.format_list(q.pod_usage(p)) == expected


def test_finished_pods_count_only_as_objects():
    p = pod(containers=[ctr(requests={"cpu": "1"})])
    p.status.phase = "Succeeded"
    assert q.format_list(q.pod_usage(p)) == {"count/pods": "1"}


@pytest.mark.parametrize("now_s, counted", [
    (1_800_000_000.0, True), (1_800_000_060.0, True), (1_800_000_061.0, False)],
    ids=["before-deadline", "at-deadline-plus-grace", "past-deadline-plus-grace"])
def test_a_pod_stuck_deleting_past_its_grace_stops_counting(now_s, counted):
    p = pod(containers=[ctr(requests={"cpu": "1"})])
    p.metadata.deletion_timestamp = "2027-01-15T08:00:30Z"  # 1_800_000_030
    p.metadata.deletion_grace_period_seconds = 30
    assert ("requests.cpu" in q.pod_usage(p, now_s)) is counted


@pytest.mark.parametrize("spec, expected", [
    ({"type": "ClusterIP", "ports": [{"port": 80}]}, {"services": "1", "count/services": "1"}),
    ({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "name": "b"}]},
     {"services": "1", "count/services": "1", "services.nodeports": "2"}),
    ({"type": "LoadBalancer", "ports": [{"port": 80}]},
     {"services": "1", "count/services": "1", "services.nodeports": "1",
      "services.loadbalancers": "1"}),
], ids=["clusterip", "nodeport", "loadbalancer"])
def test_service_usage(spec, expected):
    svc = obj({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "s", "namespace": "default"}, "spec": spec})
    assert q.format_list(q.service_usage(svc)) == expected


def test_object_counts_use_count_names_and_legacy_names():
    assert q.format_list(q.object_usage(CONFIGMAPS, configmap("c"))) == {
        "count/configmaps": "1", "configmaps": "1"}
    assert q.format_list(q.object_usage(DEPLOYMENTS, obj({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"}}))) == {
        "count/deployments.apps": "1"}


@pytest.mark.parametrize("scopes, spec, matched", [
    (["BestEffort"], {}, True),
    (["BestEffort"], {"containers": [ctr(requests={"cpu": "1"})]}, False),
    (["NotBestEffort"], {"containers": [ctr(requests={"cpu": "1"})]}, True),
    (["Terminating"], {"activeDeadlineSeconds": 30}, True),
    (["Terminating"], {}, False),
    (["NotTerminating"], {}, True),
], ids=["best-effort", "best-effort-not", "not-best-effort", "terminating",
        "terminating-not", "not-terminating"])
def test_scopes_select_pods(scopes, spec, matched):
    qu = quota(hard={"pods": "5"}, scopes=scopes)
    assert q.matches(PODS, qu, pod(**spec), dict(qu.status.hard)) is matched


@pytest.mark.parametrize("operator, values, class_name, matched", [
    ("In", ["high"], "high", True),
    ("In", ["high"], "low", False),
    ("NotIn", ["high"], "low", True),
    ("NotIn", ["high"], "", True),
    ("Exists", [], "low", True),
    ("Exists", [], "", False),
    ("DoesNotExist", [], "", True),
    ("DoesNotExist", [], "low", False),
], ids=["in", "in-not", "not-in", "not-in-no-class", "exists", "exists-no-class",
        "does-not-exist-no-class", "does-not-exist-with-class"])
def test_priority_class_scope_selector(operator, values, class_name, matched):
    qu = quota(hard={"pods": "5"})
    qu.spec.scope_selector.match_expressions.add(scope_name="PriorityClass",
                                                 operator=operator, values=values)
    p = pod(priorityClassName=class_name) if class_name else pod()
    assert q.matches(PODS, qu, p, dict(qu.status.hard)) is matched


@pytest.mark.parametrize("name, kind", [("quota", "ResourceQuota"),
                                        ("resourcequotas", "ResourceQuota"),
                                        ("limits", "LimitRange"), ("limitrange", "LimitRange")])
def test_kubectl_names_resolve(name, kind):
    assert REGISTRY.resolve(name).kind == kind


def test_scoped_quota_does_not_govern_other_kinds():
    qu = quota(hard={"pods": "5", "count/configmaps": "1"}, scopes=["BestEffort"])
    assert not q.matches(CONFIGMAPS, qu, configmap("c"), dict(qu.status.hard))


# ---------------------------------------------------------------- admission decision

@pytest.mark.parametrize("quotas, p, message", [
    ([quota(hard={"pods": "3"}, used={"pods": "3"})], pod(),
     "exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3"),
    ([quota(hard={"requests.cpu": "1"}, used={"requests.cpu": "750m"})],
     pod(containers=[ctr(requests={"cpu": "500m"})]),
     "exceeded quota: q, requested: requests.cpu=500m, used: requests.cpu=750m, "
     "limited: requests.cpu=1"),
    ([quota(hard={"limits.cpu": "2", "limits.memory": "1Gi"})], pod(),
     "failed quota: q: must specify limits.cpu for: c; limits.memory for: c"),
    ([quota(hard={"requests.cpu": "2"})],
     pod(containers=[ctr("a", requests={"cpu": "1"}), ctr("b")]),
     "failed quota: q: must specify requests.cpu for: b"),
    ([quota(hard={"pods": "3"}, used={})], pod(),
     "status unknown for quota: q, resources: pods"),
], ids=["pods-exceeded", "cpu-exceeded", "must-specify", "must-specify-one-container",
        "status-unknown"])
def test_check_refuses_with_kubernetes_messages(quotas, p, message):
    with pytest.raises(q.Refused) as refused:
        q.check(PODS, p, None, quotas)
    assert str(refused.value) == message


def test_check_charges_every_matching_quota():
    quotas = [quota("a", hard={"pods": "3"}, used={"pods": "1"}),
              quota("b", hard={"requests.memory": "1Gi"}, used={"requests.memory": "256Mi"}),
              quota("c", hard={"count/configmaps": "1"})]
    charges = q.check(PODS, pod(containers=[ctr(requests={"memory": "128Mi"})]), None, quotas)
    assert {name: q.format_list(used)
            for name, used in charges.items()} == {
        "a": {"pods": "2"}, "b": {"requests.memory": "384Mi"}}


def test_quota_without_status_limits_nothing():
    # The controller has not filled status.hard yet: Kubernetes admits.
    assert q.check(PODS, pod(), None, [quota(hard={"pods": "0"}, status_hard={})]) == {}


def test_service_update_is_charged_by_its_difference():
    def svc(kind):
        return obj({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "s", "namespace": "default", "resourceVersion": "3"},
                    "spec": {"type": kind, "ports": [{"port": 80}]}})
    quotas = [quota(hard={"services": "1", "services.loadbalancers": "1"},
                    used={"services": "1", "services.loadbalancers": "1"})]
    with pytest.raises(q.Refused, match="requested: services.loadbalancers=1"):
        q.check(SERVICES, svc("LoadBalancer"), svc("ClusterIP"), quotas)
    assert q.check(SERVICES, svc("ClusterIP"), svc("ClusterIP"), quotas) == {}


def test_compute_used_counts_what_exists():
    qu = quota(hard={"pods": "10", "requests.cpu": "4", "count/configmaps": "5"})
    pods = [pod("a", containers=[ctr(requests={"cpu": "500m"})]),
            pod("b", containers=[ctr(requests={"cpu": "1"})]), pod("done")]
    pods[2].status.phase = "Failed"
    objects = {PODS: pods, CONFIGMAPS: [configmap("c")]}
    used = q.compute_used(qu, lambda kind: objects.get(kind, []), REGISTRY.kinds)
    assert q.format_list(used) == {"pods": "2", "requests.cpu": "1500m",
                                   "count/configmaps": "1"}


# ---------------------------------------------------------------- LimitRanger

CONTAINER_DEFAULTS = {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                      "defaultRequest": {"cpu": "250m", "memory": "128Mi"},
                      "max": {"cpu": "1"}}


@pytest.mark.parametrize("containers, annotation, resources", [
    ([ctr("x")],
     "LimitRanger plugin set: cpu, memory request for container x; cpu, memory limit for "
     "container x",
     [({"cpu": "250m", "memory": "128Mi"}, {"cpu": "500m", "memory": "256Mi"})]),
    ([ctr("x", requests={"cpu": "100m"}, limits={"cpu": "200m"})],
     "LimitRanger plugin set: memory request for container x; memory limit for container x",
     [({"cpu": "100m", "memory": "128Mi"}, {"cpu": "200m", "memory": "256Mi"})]),
    ([ctr("x", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})],
     None, [({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})]),
], ids=["all-defaults", "some-defaults", "nothing-to-default"])
def test_limit_ranger_defaults(containers, annotation, resources):
    p = pod(containers=containers)
    limitranger.admit_pod(p, [limit_range(CONTAINER_DEFAULTS)])
    assert p.metadata.annotations.get(limitranger.ANNOTATION) == annotation
    assert [(dict(c.resources.requests), dict(c.resources.limits))
            for c in p.spec.containers] == resources


def test_limit_ranger_reads_only_its_namespace():
    p = pod(containers=[ctr("x")])
    limitranger.admit_pod(p, [limit_range(CONTAINER_DEFAULTS, namespace="other")])
    assert not p.spec.containers[0].resources.limits


@pytest.mark.parametrize("item, containers, message", [
    (CONTAINER_DEFAULTS, [ctr("x", limits={"cpu": "2"})],
     'pods "x" is forbidden: maximum cpu usage per Container is 1, but limit is 2'),
    ({"type": "Container", "min": {"memory": "64Mi"}},
     [ctr("x", requests={"memory": "32Mi"})],
     'pods "x" is forbidden: minimum memory usage per Container is 64Mi, but request is 32Mi'),
    ({"type": "Container", "max": {"cpu": "1"}}, [ctr("x")],
     'pods "x" is forbidden: maximum cpu usage per Container is 1.  No limit is specified'),
    ({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
     [ctr("x", requests={"cpu": "100m"}, limits={"cpu": "500m"})],
     'pods "x" is forbidden: cpu max limit to request ratio per Container is 2, but '
     'provided ratio is 5.000000'),
    ({"type": "Pod", "max": {"cpu": "1"}},
     [ctr("a", limits={"cpu": "600m"}), ctr("b", limits={"cpu": "600m"})],
     'pods "x" is forbidden: maximum cpu usage per Pod is 1, but limit is 1200m'),
    ({"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}},
     [ctr("x", limits={"cpu": "2", "memory": "2Gi"})],
     'pods "x" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, '
     'maximum memory usage per Container is 1Gi, but limit is 2Gi]'),
], ids=["container-max", "container-min", "no-limit", "ratio", "pod-max", "two-violations"])
def test_limit_ranger_refuses(item, containers, message):
    p = pod(containers=containers)
    with pytest.raises(errors.Forbidden) as refused:
        limitranger.admit_pod(p, [limit_range(item)])
    assert refused.value.message == message


@pytest.mark.parametrize("storage, message", [
    ("1Gi", None),
    ("5Gi", 'persistentvolumeclaims "data" is forbidden: maximum storage usage per '
            'PersistentVolumeClaim is 2Gi, but request is 5Gi'),
    ("100Mi", 'persistentvolumeclaims "data" is forbidden: minimum storage usage per '
              'PersistentVolumeClaim is 500Mi, but request is 100Mi'),
], ids=["within", "over-max", "under-min"])
def test_limit_ranger_checks_claims(storage, message):
    claim = obj({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "data", "namespace": "default"},
                 "spec": {"accessModes": ["ReadWriteOnce"],
                          "resources": {"requests": {"storage": storage}}}})
    ranges = [limit_range({"type": "PersistentVolumeClaim", "min": {"storage": "500Mi"},
                           "max": {"storage": "2Gi"}})]
    if message is None:
        limitranger.admit_claim(claim, ranges)
        return
    with pytest.raises(errors.Forbidden) as refused:
        limitranger.admit_claim(claim, ranges)
    assert refused.value.message == message


# ---------------------------------------------------------------- through the registry

@pytest.fixture
async def reg():
    registry = ObjectRegistry(MemoryStore(), {}, rng=random.Random(7),
                              clock=lambda: 1_800_000_000.0)
    await registry.create(NAMESPACES, "", core_pb2.Namespace(metadata={"name": "default"}))
    return registry


async def _quota_with_status(reg, hard):
    fresh = quota(hard=hard)
    fresh.metadata.resource_version = ""
    created = await reg.create(QUOTAS, "default", fresh)
    # What the controller does first: status.hard from spec, used from what exists.
    created.status.hard.update(hard)
    created.status.used.update({k: "0" for k in hard})
    return await reg.update(QUOTAS, created, status=True)


async def test_fourth_pod_is_refused_and_used_follows(reg):
    await _quota_with_status(reg, {"pods": "3"})
    for i in range(3):
        await reg.create(PODS, "default", make_pod(f"p{i}").build())
    with pytest.raises(errors.Forbidden) as refused:
        await reg.create(PODS, "default", make_pod("p3").build())
    assert refused.value.message == ('pods "p3" is forbidden: exceeded quota: q, requested: '
                                     "pods=1, used: pods=3, limited: pods=3")
    stored = await reg.get(QUOTAS, "default", "q")
    assert dict(stored.status.used) == {"pods": "3"}


async def test_concurrent_creates_do_not_overshoot(reg):
    await _quota_with_status(reg, {"pods": "3"})
    results = await asyncio.gather(
        *(reg.create(PODS, "default", make_pod(f"p{i}").build()) for i in range(8)),
        return_exceptions=True)
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, errors.Forbidden)]
    assert (len(created), len(refused)) == (3, 5), results
    assert dict((await reg.get(QUOTAS, "default", "q")).status.used) == {"pods": "3"}


async def test_limit_range_defaults_come_before_quota(reg):
    await reg.create(LIMIT_RANGES, "default", limit_range(CONTAINER_DEFAULTS))
    await _quota_with_status(reg, {"requests.cpu": "1", "limits.cpu": "2"})
    created = await reg.create(PODS, "default", make_pod("x").build())
    assert dict(created.spec.containers[0].resources.requests) == {"cpu": "250m",
                                                                  "memory": "128Mi"}
    assert created.status.qos_class == "Burstable"
    used = dict((await reg.get(QUOTAS, "default", "q")).status.used)
    assert used == {"requests.cpu": "250m", "limits.cpu": "500m"}


async def test_pod_without_requests_is_refused_when_quota_needs_them(reg):
    await _quota_with_status(reg, {"requests.cpu": "1"})
    with pytest.raises(errors.Forbidden) as refused:
        await reg.create(PODS, "default", make_pod("x").build())
    assert refused.value.message == ('pods "x" is forbidden: failed quota: q: must specify '
                                     "requests.cpu for: main")


async def test_dry_run_checks_without_charging(reg):
    await _quota_with_status(reg, {"count/configmaps": "1"})
    await reg.create(CONFIGMAPS, "default", configmap("a"), dry_run=True)
    assert dict((await reg.get(QUOTAS, "default", "q")).status.used) == {
        "count/configmaps": "0"}


# ---------------------------------------------------------------- the controller

async def test_controller_recomputes_used_and_releases_finished_pods():
    from controller_manager.resource_quota import WATCHED, ResourceQuotaController
    from tests.unit.cli_memclient import MemClient
    from tests.unit.controller_harness import ControllerHarness

    client = await MemClient.new()
    fresh = quota(hard={"pods": "3", "requests.cpu": "2", "count/deployments.apps": "2"})
    fresh.metadata.resource_version = ""
    await client.create(fresh)
    await client.create(obj({"apiVersion": "apps/v1", "kind": "Deployment",
                             "metadata": {"name": "d", "namespace": "default"},
                             "spec": {"selector": {"matchLabels": {"a": "b"}},
                                      "template": {"metadata": {"labels": {"a": "b"}},
                                                   "spec": {"containers": [
                                                       {"name": "c", "image": "x"}]}}}}))
    h = ControllerHarness(ResourceQuotaController, client)
    try:
        async def sync():
            h.cache("resourcequotas", (await client.list("resourcequotas")).items)
            for resource in WATCHED:
                h.cache(resource, (await client.list(resource)).items)
            await h.controller.sync("default/q")
            return dict((await client.get("resourcequotas", "q", "default")).status.used)

        assert await sync() == {"pods": "0", "requests.cpu": "0",
                                "count/deployments.apps": "1"}
        # The quota now has a status: admission charges it.
        await client.create(make_pod("a").requests(cpu="500m").build())
        done = await client.create(make_pod("b").requests(cpu="1").build())
        assert dict((await client.get("resourcequotas", "q", "default")).status.used)[
            "requests.cpu"] == "1500m"
        done.status.phase = "Succeeded"
        await client.update_status(done)
        assert await sync() == {"pods": "1", "requests.cpu": "500m",
                                "count/deployments.apps": "1"}
        quota_now = await client.get("resourcequotas", "q", "default")
        assert dict(quota_now.status.hard) == dict(quota_now.spec.hard)
    finally:
        await h.stop()


async def test_admission_reads_the_store_only_for_kinds_a_cached_quota_limits(reg, monkeypatch):
    import types

    stored = await _quota_with_status(reg, {"pods": "1"})
    ready = asyncio.Event()
    ready.set()
    reg.caches["resourcequotas"] = types.SimpleNamespace(
        ready=ready, objects={"default/q": stored})
    plugin = reg.validating_admission[0]
    reads = []
    real = plugin._quotas

    async def counted(namespace):
        reads.append(namespace)
        return await real(namespace)
    monkeypatch.setattr(plugin, "_quotas", counted)
    await reg.create(CONFIGMAPS, "default", configmap("a"))
    assert reads == []
    await reg.create(PODS, "default", make_pod("x").build())
    assert reads == ["default"]
    with pytest.raises(errors.Forbidden, match="exceeded quota: q"):
        await reg.create(PODS, "default", make_pod("y").build())


# seed 003, line 719 (indentation restored): the notes' LimitRange.
SEED_LIMIT_RANGE = """
apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-resource-constraint
spec:
  limits:
  - default: # this section defines default limits
      cpu: 500m
    defaultRequest: # this section defines default requests
      cpu: 500m
    max: # max and min define the limit range
      cpu: "1"
    min:
      cpu: 100m
    type: Container
"""


def test_the_seed_limit_range_loads_validates_and_defaults_a_pod():
    import yaml

    doc = yaml.safe_load(SEED_LIMIT_RANGE)
    doc["metadata"]["namespace"] = "default"
    lr = obj(doc)
    assert validation.validate(LIMIT_RANGES, lr) == []
    p = pod(containers=[ctr("web")])
    limitranger.admit_pod(p, [lr])
    assert dict(p.spec.containers[0].resources.requests) == {"cpu": "500m"}
    assert dict(p.spec.containers[0].resources.limits) == {"cpu": "500m"}
    # "If you specify a limit less than your request, it will let you fail": the
    # pod's own validation refuses it, not the LimitRange.
    low = pod(containers=[ctr("web", requests={"cpu": "200m"}, limits={"cpu": "150m"})])
    limitranger.admit_pod(low, [lr])
    assert validation.validate(PODS, low) != []
