"""The horizontal pod autoscaler (controller_manager.hpa): Kubernetes' replica
calculator, the stabilization windows and scaling policies on a fake clock,
and reconcile against the apiserver's registry with fake metrics."""
from __future__ import annotations

import copy
import math

import pytest

from controller_manager import hpa as hpa_mod
from controller_manager.base import Options
from kubemu import timefmt
from kubemu.api import codec, conversion, defaults, validation
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import autoscaling_pb2
from tests.builders import obj
from tests.unit.cli_memclient import NOW_S, MemClient
from tests.unit.controller_harness import ControllerHarness

START_S = NOW_S - 3600  # pods started long ago: out of the CPU initialization period


def pod(name: str, cpu_request: str | None = "1", *, phase: str = "Running",
        ready: str = "True", start_s: float = START_S, ready_since_s: float | None = None,
        deleting: bool = False, labels: dict | None = None, memory_request: str = "") -> object:
    requests = {}
    if cpu_request is not None:
        requests["cpu"] = cpu_request
    if memory_request:
        requests["memory"] = memory_request
    doc = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
           "spec": {"containers": [{"name": "app", "image": "x",
                                    "resources": {"requests": requests}}]},
           "status": {"phase": phase, "startTime": timefmt.rfc3339(start_s),
                      "conditions": [{"type": "Ready", "status": ready,
                                      "lastTransitionTime": timefmt.rfc3339(
                                          ready_since_s if ready_since_s is not None
                                          else start_s + 1)}]}}
    if deleting:
        doc["metadata"]["deletionTimestamp"] = timefmt.rfc3339(NOW_S)
    return obj(doc)


def metrics(**values: int) -> hpa_mod.PodMetricsInfo:
    return {name.replace("_", "-"): hpa_mod.PodMetric(v, NOW_S - 5, 15.0)
            for name, v in values.items()}


def calculator(**kw) -> hpa_mod.ReplicaCalculator:
    args = dict(tolerance=0.1, cpu_initialization_period_s=300.0,
                delay_of_initial_readiness_s=30.0, clock=lambda: NOW_S)
    args.update(kw)
    return hpa_mod.ReplicaCalculator(**args)


# ---------------------------------------------------------------- replica calculator

# (current, target %, pods, metrics, expected replicas, expected utilization %)
UTILIZATION_CASES = {
    # TestReplicaCalcScaleUp: (300+500+700)/3000 = 50% of a 30% target.
    "scale-up": (3, 30, [pod("a"), pod("b"), pod("c")], metrics(a=300, b=500, c=700), 5, 50),
    # TestReplicaCalcScaleDown: 1400/5000 = 28% of 50%.
    "scale-down": (5, 50, [pod(n) for n in "abcde"],
                   metrics(a=100, b=300, c=500, d=250, e=250), 3, 28),
    # TestReplicaCalcTolerance: 102% of 100% is within 0.1.
    "within-tolerance": (3, 100, [pod("a", "0.9"), pod("b", "1.0"), pod("c", "1.1")],
                         metrics(a=1010, b=1030, c=1020), 3, 102),
    # TestReplicaCalcScaleUpUnreadyLessScale: the unready pod (never ready, in
    # its initialization period) counts as 0% on a scale up: 1200/3000 = 40%.
    "unready-counted-as-zero-on-scale-up": (
        3, 30, [pod("a", ready="False", start_s=NOW_S - 60, ready_since_s=NOW_S - 60),
                pod("b"), pod("c")], metrics(a=300, b=500, c=700), 4, 60),
    # A pending pod is unready; a deleted one is ignored.
    "pending-and-deleted-pods": (
        2, 50, [pod("a"), pod("b"), pod("p", phase="Pending"), pod("d", deleting=True)],
        metrics(a=1000, b=1000, d=5000), 4, 100),
    # Missing metrics on a scale up count as 0%: (1900 + 0) / 2000 = 95%, no change.
    "missing-on-scale-up-no-change": (2, 100, [pod("a"), pod("b")], metrics(a=1900), 2, 190),
    # Missing metrics on a scale down count as 100%: (300 + 1000) / 4000 = 32% of 50%.
    "missing-on-scale-down-as-full-request": (
        4, 50, [pod(n) for n in "abcd"], metrics(a=100, b=100, c=100), 3, 10),
    # A missing pod's 100% would turn a scale down into a scale up: no change.
    "missing-would-reverse-direction": (
        2, 60, [pod("a"), pod("b")], metrics(a=300), 2, 30),
}


@pytest.mark.parametrize("current, target, pods, found, expected, utilization",
                         UTILIZATION_CASES.values(), ids=UTILIZATION_CASES.keys())
def test_resource_utilization_replicas(current, target, pods, found, expected, utilization):
    replicas, got_utilization, _raw = calculator().resource_replicas(
        current, target, "cpu", "", pods, found)
    assert (replicas, got_utilization) == (expected, utilization)


def hot(name: str, **kw):
    """A pod in its CPU initialization period whose sample does not yet cover a
    window since it became ready (replica_calculator_test's hotCPUCreationTime)."""
    return pod(name, start_s=NOW_S - 10, ready_since_s=NOW_S - 9, **kw)


def n_pods(count: int, **kw) -> list:
    return [pod(f"p{i}", **kw) for i in range(count)]


def metric_levels(*levels: int) -> hpa_mod.PodMetricsInfo:
    return {f"p{i}": hpa_mod.PodMetric(v, NOW_S - 5, 15.0) for i, v in enumerate(levels)}


# kubernetes/pkg/controller/podautoscaler/replica_calculator_test.go, by test
# name; one container per pod here (Kubernetes' have two: their raw values
# are twice ours). (current, target %, pods, levels, replicas, utilization, raw)
KUBERNETES_CASES = {
    "ScaleUpHotCpuLessScale": (3, 30, [hot("p0"), pod("p1"), pod("p2")],
                               metric_levels(300, 500, 700), 4, 60, 600),
    "ScaleUpUnreadyNoScale": (3, 30, [pod("p0"), pod("p1", ready="False"),
                                      pod("p2", ready="False")],
                              metric_levels(400, 500, 700), 3, 40, 400),
    "ScaleDownIncludeUnreadyPods": (5, 50, n_pods(3) + [pod("p3", ready="False"),
                                                        pod("p4", ready="False")],
                                    metric_levels(100, 300, 500, 250, 250), 2, 30, 300),
    "ScaleDownExcludeUnscheduledPods": (
        5, 50, [pod("p0")] + [pod(f"p{i}", phase="Pending", ready="False") for i in (1, 2, 3, 4)],
        metric_levels(100), 1, 10, 100),
    "ScaleDownIgnoreHotCpuPods": (5, 50, n_pods(3) + [hot("p3"), hot("p4")],
                                  metric_levels(100, 300, 500, 250, 250), 2, 30, 300),
    "ScaleDownIgnoresFailedPods": (
        5, 50, n_pods(5) + [pod(f"p{i}", phase="Failed", ready="False") for i in (5, 6)],
        metric_levels(100, 300, 500, 250, 250), 3, 28, 280),
    "ScaleDownIgnoresDeletionPods": (
        5, 50, n_pods(5) + [pod(f"p{i}", ready="False", deleting=True) for i in (5, 6)],
        metric_levels(100, 300, 500, 250, 250), 3, 28, 280),
    "SuperfluousMetrics": (4, 100, n_pods(4), metric_levels(4000, 9500, 3000, 7000, 3200, 2000),
                           24, 587, 5875),
    "MissingMetricsNoChangeEq": (2, 100, n_pods(2), metric_levels(1000), 2, 100, 1000),
    "MissingMetricsNoChangeLt": (2, 100, n_pods(2), metric_levels(600), 2, 60, 600),
    "MissingMetricsUnreadyChange": (3, 50, [pod("p0", ready="False"), pod("p1"), pod("p2")],
                                    metric_levels(100, 450), 3, 45, 450),
    "MissingMetricsHotCpuNoChange": (3, 50, [hot("p0"), pod("p1"), pod("p2")],
                                     metric_levels(100, 450), 3, 45, 450),
    "MissingMetricsUnreadyScaleUp": (3, 50, [pod("p0", ready="False"), pod("p1"), pod("p2")],
                                     metric_levels(100, 2000), 4, 200, 2000),
    "MissingMetricsHotCpuScaleUp": (3, 50, [hot("p0", ready="False"), pod("p1"), pod("p2")],
                                    metric_levels(100, 2000), 4, 200, 2000),
    "MissingMetricsUnreadyScaleDown": (4, 50, [pod("p0", ready="False")] + [
        pod(f"p{i}") for i in (1, 2, 3)], metric_levels(100, 100, 100), 3, 10, 100),
    "DuringRollingUpdateWithMaxSurge": (2, 50, n_pods(3), metric_levels(100, 100), 2, 10, 100),
}


@pytest.mark.parametrize("current, target, pods, found, replicas, utilization, raw",
                         KUBERNETES_CASES.values(), ids=KUBERNETES_CASES.keys())
def test_kubernetes_replica_calculator_cases(current, target, pods, found, replicas,
                                             utilization, raw):
    assert calculator().resource_replicas(current, target, "cpu", "", pods, found) == (
        replicas, utilization, raw)


def test_disjoint_metrics_match_no_known_pod():
    # TestReplicaCalcDisjointResourcesMetrics: a metric only for a pod that is gone.
    with pytest.raises(hpa_mod.MetricError, match="no metrics returned matched known pods"):
        calculator().resource_replicas(1, 100, "cpu", "", [pod("p0")],
                                       metrics(an_older_pod_name=100))


def test_computed_tolerance():
    # TestReplicaCalcComputedToleranceAlgImplementation: 10 pods using 150m of
    # ~300m requests; a target just past the tolerance scales down, one just
    # inside it does not.
    per_pod = 300
    requests = [per_pod + 100, per_pod - 100, per_pod + 10, per_pod - 10, per_pod + 2,
                per_pod - 2, per_pod + 1, per_pod - 1, per_pod, per_pod]
    pods = [pod(f"p{i}", f"{r}m") for i, r in enumerate(requests)]
    found = metric_levels(*[150] * 10)
    target = int((abs(1 / (2.0 * (1 - 0.1))) + 0.01) * 100)         # 56
    final = math.ceil(1500 / (3000 * target / 100) * 10)            # 9
    assert calculator().resource_replicas(10, target, "cpu", "", pods, found)[:2] == (final, 50)
    target = int((abs(1 / (2.0 * (1 - 0.1))) + 0.004) * 100)        # 55: within tolerance
    assert calculator().resource_replicas(10, target, "cpu", "", pods, found)[0] == 10


def test_raw_average_is_the_ready_pods_mean():
    _, _, raw = calculator().resource_replicas(3, 30, "cpu", "", [pod("a"), pod("b"), pod("c")],
                                               metrics(a=300, b=500, c=700))
    assert raw == 500
    assert hpa_mod.milli_quantity(raw) == "500m"


@pytest.mark.parametrize("pods, found, message", [
    ([pod("a", cpu_request=None)], metrics(a=100),
     "missing request for cpu in container app of Pod a"),
    ([pod("a", phase="Pending")], metrics(a=100),
     "did not receive metrics for targeted pods (pods might be unready)"),
    ([], metrics(a=100), "no pods returned by selector while calculating replica count"),
], ids=["missing-request", "only-unready-pods", "no-pods"])
def test_resource_replicas_errors(pods, found, message):
    with pytest.raises(hpa_mod.MetricError, match=message.replace("(", r"\(").replace(")", r"\)")):
        calculator().resource_replicas(1, 50, "cpu", "", pods, found)


@pytest.mark.parametrize("current, target, found, expected, usage", [
    (3, 100_000, metrics(a=100_000, b=200_000, c=300_000), 6, 200_000),
    (3, 200_000, metrics(a=190_000, b=200_000, c=210_000), 3, 200_000),
    (4, 400_000, metrics(a=100_000, b=100_000, c=100_000, d=100_000), 1, 100_000),
], ids=["scale-up", "within-tolerance", "scale-down"])
def test_average_value_replicas(current, target, found, expected, usage):
    pods = [pod(n, memory_request="64Mi") for n in found]
    assert calculator().plain_metric_replicas(current, target, "memory", pods, found) == (
        expected, usage)


def test_cpu_samples_taken_before_a_window_since_readiness_are_unready():
    # In its initialization period a pod whose sample does not cover a whole
    # window since it became ready is left out (groupPods).
    young = pod("a", start_s=NOW_S - 20, ready_since_s=NOW_S - 10)
    ready, unready, missing, ignored = hpa_mod.group_pods(
        [young, pod("b")], metrics(a=1, b=1), "cpu", 300.0, 30.0, NOW_S)
    assert (ready, unready, missing, ignored) == (1, {"a"}, set(), set())
    # Memory is never judged by readiness.
    assert hpa_mod.group_pods([young], metrics(a=1), "memory", 300.0, 30.0, NOW_S)[0] == 1


def test_pod_metrics_info_sums_containers_and_skips_incomplete_pods():
    def pm(name, *usages):
        m = REGISTRY.by_resource("podmetrics").message(timestamp="2027-01-15T08:00:00Z",
                                                       window="15s")
        m.metadata.name = name
        for i, usage in enumerate(usages):
            m.containers.add(name=f"c{i}", usage=usage)
        return m
    info = hpa_mod.pod_metrics_info([pm("a", {"cpu": "250000000n"}, {"cpu": "100m"}),
                                     pm("b", {"cpu": "1"}, {"memory": "1Mi"})], "cpu")
    assert {k: v.value for k, v in info.items()} == {"a": 350}
    assert info["a"].window_s == 15.0


# ---------------------------------------------------------------- normalization

@pytest.mark.parametrize("current, desired, lo, hi, expected", [
    (1, 10, 1, 10, (4, "ScaleUpLimit")),
    (3, 10, 1, 5, (5, "TooManyReplicas")),
    (3, 0, 2, 10, (2, "TooFewReplicas")),
    (3, 4, 1, 10, (4, "DesiredWithinRange")),
], ids=["scale-up-limit", "too-many", "too-few", "within-range"])
def test_convert_desired_replicas_with_rules(current, desired, lo, hi, expected):
    assert hpa_mod.convert_desired_replicas_with_rules(current, desired, lo, hi)[:2] == expected


class Clock:
    def __init__(self):
        self.now = NOW_S

    def __call__(self):
        return self.now


def rules(window_s: int, select: str, *policies: tuple[str, int, int]):
    r = autoscaling_pb2.HPAScalingRules(select_policy=select,
                                        stabilization_window_seconds=window_s)
    for kind, value, period in policies:
        r.policies.add(type=kind, value=value, period_seconds=period)
    return r


DEFAULT_UP = rules(0, "Max", ("Pods", 4, 15), ("Percent", 100, 15))
DEFAULT_DOWN = rules(300, "Max", ("Percent", 100, 15))


def test_downscale_stabilization_keeps_the_highest_recent_recommendation():
    clock = Clock()
    n = hpa_mod.Normalizer(300.0, clock)
    assert n.stabilize("k", 5) == 5
    clock.now += 60
    assert n.stabilize("k", 2) == 5
    clock.now += 241   # the first sample is now older than the window
    assert n.stabilize("k", 1) == 2
    clock.now += 301
    assert n.stabilize("k", 1) == 1


def test_scale_up_policies_limit_each_period():
    clock = Clock()
    n = hpa_mod.Normalizer(300.0, clock)
    behavior = autoscaling_pb2.HorizontalPodAutoscalerBehavior(scale_up=DEFAULT_UP,
                                                               scale_down=DEFAULT_DOWN)
    # max(1 + 4 pods, 1 * 200%) = 5
    assert n.rate_limit_with_behaviors("k", 1, 10, 1, 10, DEFAULT_UP, DEFAULT_DOWN) == (
        5, "ScaleUpLimit",
        "the desired replica count is increasing faster than the maximum scale rate")
    n.store_scale_event(behavior, "k", 1, 5)
    clock.now += 5   # the same period: it started at 1 replica
    assert n.rate_limit_with_behaviors("k", 5, 10, 1, 10, DEFAULT_UP, DEFAULT_DOWN)[0] == 5
    clock.now += 11  # a new period
    assert n.rate_limit_with_behaviors("k", 5, 10, 1, 10, DEFAULT_UP, DEFAULT_DOWN) == (
        10, "DesiredWithinRange", "the desired count is within the acceptable range")


@pytest.mark.parametrize("down, current, desired, expected", [
    (rules(0, "Max", ("Pods", 1, 60)), 5, 1, (4, "ScaleDownLimit")),
    (rules(0, "Max", ("Pods", 1, 60), ("Percent", 50, 60)), 6, 1, (3, "ScaleDownLimit")),
    (rules(0, "Min", ("Pods", 1, 60), ("Percent", 50, 60)), 6, 1, (5, "ScaleDownLimit")),
    (rules(0, "Disabled", ("Pods", 1, 60)), 6, 1, (6, "ScaleDownLimit")),
    (rules(0, "Max", ("Percent", 100, 15)), 6, 1, (2, "TooFewReplicas")),
], ids=["pods-policy", "max-picks-biggest-change", "min-picks-smallest-change", "disabled",
        "min-replicas"])
def test_scale_down_policies(down, current, desired, expected):
    n = hpa_mod.Normalizer(300.0, Clock())
    assert n.rate_limit_with_behaviors("k", current, desired, 2, 10, DEFAULT_UP,
                                       down)[:2] == expected


def test_behavior_stabilization_windows():
    clock = Clock()
    n = hpa_mod.Normalizer(300.0, clock)
    up, down = rules(30, "Max", ("Pods", 4, 15)), rules(60, "Max", ("Percent", 100, 15))
    assert n.stabilize_with_behaviors("k", 3, 3, up, down)[0] == 3
    clock.now += 10
    # Up: the lowest recommendation within 30 s (3) holds the scale up back.
    assert n.stabilize_with_behaviors("k", 3, 8, up, down)[:2] == (3, "ScaleUpStabilized")
    clock.now += 40
    assert n.stabilize_with_behaviors("k", 3, 8, up, down)[0] == 8
    clock.now += 10
    # Down: the highest within 60 s (8) holds the scale down back.
    assert n.stabilize_with_behaviors("k", 8, 1, up, down)[:2] == (8, "ScaleDownStabilized")


# ---------------------------------------------------------------- the controller

class Recorder:
    def __init__(self):
        self.events: list[tuple[str, str, str]] = []

    def record(self, obj, type_, reason, message, **kw):
        self.events.append((type_, reason, message))


def deployment(replicas: int):
    return obj({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "app",
                                                               "image": "x"}]}}}})


def autoscaler(extra_spec: dict | None = None, **ref):
    doc = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "name": "web", **ref},
                    "minReplicas": 1, "maxReplicas": 10,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization",
                                                  "averageUtilization": 50}}}],
                    **(extra_spec or {})}}
    return obj(doc)


class Setup:
    def __init__(self, h, recorder, found):
        self.h, self.recorder, self.found = h, recorder, found

    async def hpa(self):
        return await self.h.client.get("horizontalpodautoscalers", "web", "default")

    async def replicas(self):
        return (await self.h.client.get("deployments", "web", "default")).spec.replicas

    async def sync(self):
        self.h.cache("horizontalpodautoscalers",
                     (await self.h.client.list("horizontalpodautoscalers")).items)
        await self.h.controller.sync("default/web")


async def setup(replicas: int, usage_milli: list[int], hpa=None, clock=None) -> Setup:
    client = await MemClient.new()
    await client.create(deployment(replicas))
    await client.create(hpa or autoscaler())
    options = Options(apiserver="-", hpa_downscale_stabilization_s=300.0)
    h = ControllerHarness(hpa_mod.HorizontalPodAutoscalerController, client, options)
    if clock is not None:
        h.ctx.clock = clock
        h.controller.normalizer.clock = clock
        h.controller.calculator.clock = clock
    recorder = Recorder()
    h.controller.recorder = recorder
    names = [f"web-{i}" for i in range(len(usage_milli))]
    h.cache("pods", [pod(n, "200m") for n in names])
    found = dict(zip(names, usage_milli))

    async def pod_metrics(namespace, selector, resource, container):
        if not found:
            raise hpa_mod.MetricError(f"unable to get metrics for resource {resource}: no "
                                      "metrics returned from resource metrics API")
        return {n: hpa_mod.PodMetric(v, NOW_S - 5, 15.0) for n, v in found.items()}
    h.controller._pod_metrics = pod_metrics
    return Setup(h, recorder, found)


def conditions(hpa) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in hpa.status.conditions}


async def test_a_busy_deployment_is_scaled_up_with_kubernetes_event_and_status():
    s = await setup(1, [600])  # 600m of a 200m request: 300% of a 50% target: 6, at most 4
    await s.sync()
    assert await s.replicas() == 4
    assert s.recorder.events == [("Normal", "SuccessfulRescale",
                                  "New size: 4; reason: cpu resource utilization (percentage "
                                  "of request) above target")]
    hpa = await s.hpa()
    assert (hpa.status.current_replicas, hpa.status.desired_replicas) == (1, 4)
    assert hpa.status.last_scale_time == timefmt.rfc3339(NOW_S)
    assert codec.to_dict(hpa.status.current_metrics[0]) == {
        "type": "Resource", "resource": {"name": "cpu", "current": {
            "averageValue": "600m", "averageUtilization": 300}}}
    assert conditions(hpa) == {
        "AbleToScale": ("True", "SucceededRescale",
                        "the HPA controller was able to update the target scale to 4"),
        "ScalingActive": ("True", "ValidMetricFound",
                          "the HPA was able to successfully calculate a replica count from cpu "
                          "resource utilization (percentage of request)"),
        "ScalingLimited": ("True", "ScaleUpLimit",
                           "the desired replica count is increasing faster than the maximum "
                           "scale rate")}


async def test_scale_down_waits_for_the_stabilization_window():
    clock = Clock()
    s = await setup(4, [100, 100, 100, 100], clock=clock)  # 50%: at target
    await s.sync()
    assert await s.replicas() == 4 and s.recorder.events == []
    s.found.update({n: 10 for n in s.found})                # 5% of request
    clock.now += 60
    await s.sync()
    assert await s.replicas() == 4
    assert conditions(await s.hpa())["AbleToScale"][1] == "ScaleDownStabilized"
    clock.now += 300
    await s.sync()
    assert await s.replicas() == 1
    assert s.recorder.events[-1] == ("Normal", "SuccessfulRescale",
                                     "New size: 1; reason: All metrics below target")


async def test_behavior_scale_down_policy_applies():
    clock = Clock()
    behavior = {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0,
                                           "policies": [{"type": "Pods", "value": 1,
                                                         "periodSeconds": 60}]}}}
    hpa = autoscaler(behavior)
    defaults.apply_defaults(REGISTRY.by_resource("horizontalpodautoscalers"), hpa)
    s = await setup(4, [10, 10, 10, 10], hpa=hpa, clock=clock)
    await s.sync()
    assert await s.replicas() == 3
    assert conditions(await s.hpa())["ScalingLimited"][1] == "ScaleDownLimit"


async def test_missing_metrics_set_scaling_active_false():
    s = await setup(2, [])
    await s.sync()
    hpa = await s.hpa()
    message = ("failed to get cpu utilization: unable to get metrics for resource cpu: no "
               "metrics returned from resource metrics API")
    assert conditions(hpa)["ScalingActive"] == (
        "False", "FailedGetResourceMetric", f"the HPA was unable to compute the replica count: "
                                            f"{message}")
    assert ("Warning", "FailedGetResourceMetric", message) in s.recorder.events
    assert ("Warning", "FailedComputeMetricsReplicas",
            f"invalid metrics (1 invalid out of 1), first error is: failed to get cpu "
            f"resource metric value: {message}") in \
        s.recorder.events
    assert await s.replicas() == 2


async def test_unsupported_metric_types_are_reported_as_kubernetes_does_without_the_api():
    hpa = autoscaler({"metrics": [{"type": "Pods", "pods": {
        "metric": {"name": "packets-per-second"},
        "target": {"type": "AverageValue", "averageValue": "1k"}}}]})
    s = await setup(2, [100, 100], hpa=hpa)
    await s.sync()
    status, reason, message = conditions(await s.hpa())["ScalingActive"]
    assert (status, reason) == ("False", "FailedGetPodsMetric")
    assert "no custom metrics API (custom.metrics.k8s.io) registered" in message


@pytest.mark.parametrize("replicas, expected, reason", [
    (12, 10, "Current number of replicas above Spec.MaxReplicas"),
    (0, 0, None),
], ids=["above-max", "scaling-disabled-at-zero"])
async def test_replicas_outside_the_range(replicas, expected, reason):
    s = await setup(replicas, [100])
    await s.sync()
    assert await s.replicas() == expected
    if reason:
        assert s.recorder.events == [("Normal", "SuccessfulRescale",
                                      f"New size: {expected}; reason: {reason}")]
    else:
        assert conditions(await s.hpa())["ScalingActive"] == (
            "False", "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero")


async def test_a_missing_target_is_failed_get_scale():
    s = await setup(1, [100], hpa=autoscaler(name="nope"))
    await s.sync()
    assert conditions(await s.hpa())["AbleToScale"] == (
        "False", "FailedGetScale", "the HPA controller was unable to get the target's current "
                                   'scale: deployments.apps "nope" not found')


# ---------------------------------------------------------------- API: v1, defaults, validation

SEED_V1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "frontend-scaler"},
           "spec": {"scaleTargetRef": {"kind": "ReplicaSet", "name": "frontend"},
                    "minReplicas": 3, "maxReplicas": 10,
                    "targetCPUUtilizationPercentage": 50}}


def test_the_seeds_autoscaling_v1_manifest_converts_to_v2():
    doc = conversion.to_served(copy.deepcopy(SEED_V1))
    hpa = obj(doc)
    hpa.metadata.namespace = "default"
    kind = REGISTRY.by_resource("horizontalpodautoscalers")
    defaults.apply_defaults(kind, hpa)
    assert validation.validate(kind, hpa) == []
    assert codec.to_dict(hpa)["spec"] == {
        "scaleTargetRef": {"kind": "ReplicaSet", "name": "frontend"},
        "minReplicas": 3, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 50}}}]}
    assert hpa_mod.HorizontalPodAutoscalerController._target_resource(
        None, hpa.spec.scale_target_ref) == "replicasets"


def test_defaults_fill_min_replicas_cpu_and_behavior_rules():
    hpa = obj({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "x"},
               "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"},
                        "maxReplicas": 3, "behavior": {"scaleDown": {"selectPolicy": "Min"}}}})
    defaults.apply_defaults(REGISTRY.by_resource("horizontalpodautoscalers"), hpa)
    spec = codec.to_dict(hpa)["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization",
                                                        "averageUtilization": 80}
    assert spec["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"selectPolicy": "Min", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]}}


@pytest.mark.parametrize("spec, expected", [
    ({"minReplicas": 0}, 'spec.minReplicas: Invalid value: 0: must be greater than or equal '
                         'to 1'),
    ({"maxReplicas": 0}, "spec.maxReplicas: Invalid value: 0: must be greater than 0"),
    ({"minReplicas": 5, "maxReplicas": 2},
     "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"),
    ({"scaleTargetRef": {"name": "x"}}, "spec.scaleTargetRef.kind: Required value"),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization"}}}]},
     "spec.metrics[0].resource.target.averageUtilization: Required value: must set either a "
     "target raw value or a target utilization"),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 0}}}]},
     "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater "
     "than 0"),
    ({"metrics": [{"type": "Bogus"}]},
     'spec.metrics[0].type: Unsupported value: "Bogus": supported values: "Object", "Pods", '
     '"Resource", "External", "ContainerResource"'),
    ({"behavior": {"scaleUp": {"selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 0, "periodSeconds": 15}]}}},
     "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero"),
    ({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 3601, "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 15}]}}},
     "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 3601: must be less "
     "than or equal to 3600"),
], ids=["min-zero", "max-zero", "max-below-min", "kind-required", "target-required",
        "utilization-zero", "unknown-source-type", "policy-value", "window-too-long"])
def test_validation(spec, expected):
    doc = codec.to_dict(autoscaler())
    doc["spec"].update(spec)
    hpa = obj(doc)
    problems = [str(p) for p in validation.validate(
        REGISTRY.by_resource("horizontalpodautoscalers"), hpa)]
    assert expected in problems, problems


# ---------------------------------------------------------------- flags

def test_kube_controller_manager_flags_reach_the_options():
    from controller_manager.__main__ import options_from, parse_args

    args = parse_args(["--apiserver", "127.0.0.1:1",
                       "--horizontal-pod-autoscaler-sync-period", "2s",
                       "--horizontal-pod-autoscaler-tolerance", "0.2",
                       "--horizontal-pod-autoscaler-downscale-stabilization", "1m30s",
                       "--horizontal-pod-autoscaler-cpu-initialization-period", "10s",
                       "--horizontal-pod-autoscaler-initial-readiness-delay", "3s",
                       "--concurrent-horizontal-pod-autoscaler-syncs", "2"])
    options = options_from(args, "127.0.0.1:1")
    assert (options.hpa_sync_period_s, options.hpa_tolerance,
            options.hpa_downscale_stabilization_s, options.hpa_cpu_initialization_period_s,
            options.hpa_initial_readiness_delay_s) == (2.0, 0.2, 90.0, 10.0, 3.0)
    assert options.workers("horizontal-pod-autoscaler-controller", 5) == 2
    defaults_ = options_from(parse_args(["--apiserver", "127.0.0.1:1"]), "127.0.0.1:1")
    assert (defaults_.hpa_sync_period_s, defaults_.hpa_tolerance,
            defaults_.hpa_downscale_stabilization_s, defaults_.hpa_cpu_initialization_period_s,
            defaults_.hpa_initial_readiness_delay_s) == (15.0, 0.1, 300.0, 300.0, 30.0)


@pytest.mark.parametrize("flag, value", [
    ("--horizontal-pod-autoscaler-sync-period", "0s"),
    ("--horizontal-pod-autoscaler-tolerance", "-0.1"),
    ("--horizontal-pod-autoscaler-downscale-stabilization", "5x"),
])
def test_bad_flags_are_refused(flag, value):
    from controller_manager.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--apiserver", "127.0.0.1:1", flag, value])


def test_the_apiservers_metric_resolution_flag():
    from apiserver.__main__ import parse_args as apiserver_args

    assert apiserver_args([]).metric_resolution == 15.0
    assert apiserver_args(["--metric-resolution", "2s"]).metric_resolution == 2.0
    with pytest.raises(SystemExit):
        apiserver_args(["--metric-resolution", "2"])  # a duration needs its unit


@pytest.mark.parametrize("controller, source", [
    ("horizontal-pod-autoscaler-controller", "horizontal-pod-autoscaler"),
    ("disruption-controller", "controllermanager"),
    ("node-lifecycle-controller", "node-controller"),
], ids=["hpa", "disruption", "node-lifecycle"])
def test_events_come_from_kubernetes_own_sources(controller, source):
    """`describe`'s From column shows what Kubernetes' recorders are named."""
    from controller_manager.registry import CONTROLLERS

    cls = next(c for c in CONTROLLERS if c.name == controller)
    assert (cls.event_source or cls.name) == source
