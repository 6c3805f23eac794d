"""The horizontal pod autoscaler (kubernetes/pkg/controller/podautoscaler).

Every `--horizontal-pod-autoscaler-sync-period` each HorizontalPodAutoscaler
(autoscaling/v2) is reconciled, as Kubernetes' HorizontalController does:

- the target (Deployment, ReplicaSet or StatefulSet; spec.replicas is its
  scale, spec.selector its pods) is read; AbleToScale tells whether it could be;
- each metric proposes a replica count (the replica calculator below, a port
  of replica_calculator.go: utilization of requests or an average value, the
  tolerance, missing metrics counted as 0% on a scale up and 100% on a scale
  down, unready pods left out of a scale up, pods in their CPU
  initialization period judged by readiness); the largest proposal wins;
  metrics from the metrics API (metrics.k8s.io PodMetrics). Object, Pods and
  External metrics need a custom or external metrics API, which kubemu does
  not serve: they fail as they do in a cluster without one;
- the proposal is stabilized and rate-limited: without spec.behavior by the
  downscale stabilization window and the 2x / 4 pods scale-up limit
  (normalizeDesiredReplicas), with it by its stabilization windows and
  policies (normalizeDesiredReplicasWithBehaviors), then clamped to
  [minReplicas, maxReplicas] (ScalingLimited says why);
- a change is written to the target's spec.replicas (a merge patch, as
  `kubemu scale` does) with the SuccessfulRescale event, and the status
  (currentReplicas, desiredReplicas, lastScaleTime, currentMetrics,
  conditions) written when it changed.

The recommendations and scale events of the stabilization windows live in
memory per HPA (as in Kubernetes: a restarted controller starts afresh). Time
is the Context's clock, so tests drive the windows with a fake one.
"""
from __future__ import annotations

import dataclasses
import math
from copy import deepcopy
from typing import Any, Callable, Iterable

from google.protobuf.message import Message

from controller_manager import controllerutil as cu
from controller_manager.base import Context, Controller, split_key
from kubemu import timefmt
from kubemu.api import errors, labels, quantity
from kubemu.api.v1 import autoscaling_pb2
from kubemu.client.informer import DeletedFinalStateUnknown, meta_namespace_key, object_of

# The scale-up limit without behavior (horizontal.go's scaleUpLimitFactor, -Minimum).
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
# Kinds with a scale subresource kubemu serves: kind -> (group, resource).
SCALABLE = {"Deployment": ("apps", "deployments"), "ReplicaSet": ("apps", "replicasets"),
            "StatefulSet": ("apps", "statefulsets")}
# Samples kept per HPA at most (recommendations, scale events): one per sync
# within the longest window; bounded all the same.
SAMPLES_MAX = 10_000
INT32_MAX, INT32_MIN = 2**31 - 1, -(2**31)


class MetricError(Exception):
    """A metric could not be computed (the message is Kubernetes')."""


# ---------------------------------------------------------------- the replica calculator

@dataclasses.dataclass(frozen=True)
class PodMetric:
    value: int          # milli-units (millicores, milli-bytes)
    timestamp_s: float
    window_s: float


PodMetricsInfo = dict[str, PodMetric]


def _pod_ready_condition(pod: Message) -> Any | None:
    return cu.get_condition(pod.status, "Ready")


def group_pods(pods: Iterable[Message], metrics: PodMetricsInfo, resource: str,
               cpu_initialization_period_s: float, delay_of_initial_readiness_s: float,
               now_s: float) -> tuple[int, set[str], set[str], set[str]]:
    """(ready count, unready, missing, ignored) pods: groupPods."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = pod.metadata.name
        if pod.metadata.deletion_timestamp or pod.status.phase == "Failed":
            ignored.add(name)
            continue
        if pod.status.phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            condition = _pod_ready_condition(pod)
            start_s = cu.time_s(pod.status.start_time)
            if condition is None or start_s is None:
                is_unready = True
            else:
                transition_s = cu.time_s(condition.last_transition_time) or 0.0
                if start_s + cpu_initialization_period_s > now_s:
                    # Within the initialization period: a sample must cover a
                    # whole window since the last readiness change.
                    is_unready = (condition.status == "False"
                                  or metric.timestamp_s < transition_s + metric.window_s)
                else:
                    # Unready and never ready since the start.
                    is_unready = (condition.status == "False"
                                  and start_s + delay_of_initial_readiness_s > transition_s)
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def calculate_pod_requests(pods: Iterable[Message], container: str, resource: str
                           ) -> dict[str, int]:
    """Each pod's request of `resource` in milli-units (one container's, or all)."""
    requests: dict[str, int] = {}
    for pod in pods:
        total = 0
        for c in pod.spec.containers:
            if container and c.name != container:
                continue
            value = c.resources.requests.get(resource)
            if value is None:
                raise MetricError(f"missing request for {resource} in container {c.name} "
                                  f"of Pod {pod.metadata.name}")
            total += quantity.to_milli(value)
        requests[pod.metadata.name] = total
    return requests


def resource_utilization_ratio(metrics: PodMetricsInfo, requests: dict[str, int],
                               target_utilization: int) -> tuple[float, int, int]:
    """(usage ratio, utilization %, raw average milli-value): GetResourceUtilizationRatio."""
    metrics_total = requests_total = entries = 0
    for name, metric in metrics.items():
        request = requests.get(name)
        if request is None:
            continue
        metrics_total += metric.value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = int(metrics_total * 100 / requests_total)  # Go's int64 division
    return utilization / target_utilization, utilization, metrics_total // entries


def metric_usage_ratio(metrics: PodMetricsInfo, target_usage: int) -> tuple[float, int]:
    """(usage ratio, average milli-value): GetMetricUsageRatio."""
    total = sum(m.value for m in metrics.values())
    usage = total // len(metrics)
    return usage / target_usage, usage


def _ceil(value: float) -> int:
    return int(math.ceil(value))


@dataclasses.dataclass
class ReplicaCalculator:
    tolerance: float
    cpu_initialization_period_s: float
    delay_of_initial_readiness_s: float
    clock: Callable[[], float]

    def resource_replicas(self, current: int, target_utilization: int, resource: str,
                          container: str, pods: list[Message], metrics: PodMetricsInfo
                          ) -> tuple[int, int, int]:
        """(replicas, utilization %, raw average milli-value): GetResourceReplicas."""
        metrics, ready, unready, missing = self._grouped(pods, metrics, resource)
        requests = calculate_pod_requests(pods, container, resource)
        if not metrics:
            raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
        ratio, utilization, raw = resource_utilization_ratio(metrics, requests,
                                                             target_utilization)
        scale_up_with_unready = bool(unready) and ratio > 1.0
        if not scale_up_with_unready and not missing:
            if abs(1.0 - ratio) <= self.tolerance:
                return current, utilization, raw
            return _ceil(ratio * ready), utilization, raw
        if missing:
            if ratio < 1.0:
                # On a scale down, missing pods use 100% of their request (or
                # the target, when above 100%).
                fallback = max(100, target_utilization)
                for name in missing:
                    metrics[name] = PodMetric(requests[name] * fallback // 100, 0.0, 0.0)
            elif ratio > 1.0:
                for name in missing:
                    metrics[name] = PodMetric(0, 0.0, 0.0)
        if scale_up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, 0.0, 0.0)
        new_ratio, _, _ = resource_utilization_ratio(metrics, requests, target_utilization)
        return self._rebalanced(current, ratio, new_ratio, len(metrics)), utilization, raw

    def plain_metric_replicas(self, current: int, target_usage: int, resource: str,
                              pods: list[Message], metrics: PodMetricsInfo) -> tuple[int, int]:
        """(replicas, average milli-value): calcPlainMetricReplicas (AverageValue)."""
        metrics, ready, unready, missing = self._grouped(pods, metrics, resource)
        if not metrics:
            raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
        ratio, usage = metric_usage_ratio(metrics, target_usage)
        scale_up_with_unready = bool(unready) and ratio > 1.0
        if not scale_up_with_unready and not missing:
            if abs(1.0 - ratio) <= self.tolerance:
                return current, usage
            return _ceil(ratio * ready), usage
        if missing:
            for name in missing:
                metrics[name] = PodMetric(target_usage if ratio < 1.0 else 0, 0.0, 0.0)
        if scale_up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, 0.0, 0.0)
        new_ratio, _ = metric_usage_ratio(metrics, target_usage)
        return self._rebalanced(current, ratio, new_ratio, len(metrics)), usage

    def _grouped(self, pods: list[Message], metrics: PodMetricsInfo, resource: str
                 ) -> tuple[PodMetricsInfo, int, set[str], set[str]]:
        """groupPods, then the metrics of ignored and unready pods removed:
        (a copy of the metrics, ready count, unready, missing)."""
        if not pods:
            raise MetricError("no pods returned by selector while calculating replica count")
        metrics = dict(metrics)
        ready, unready, missing, ignored = group_pods(
            pods, metrics, resource, self.cpu_initialization_period_s,
            self.delay_of_initial_readiness_s, self.clock())
        for name in ignored | unready:
            metrics.pop(name, None)
        return metrics, ready, unready, missing

    def _rebalanced(self, current: int, ratio: float, new_ratio: float, count: int) -> int:
        """The replicas once missing and unready pods are filled in: unchanged
        when within tolerance, when the fill-in flips the direction, or when
        the result would move against it."""
        if (abs(1.0 - new_ratio) <= self.tolerance or (ratio < 1.0 < new_ratio)
                or (ratio > 1.0 > new_ratio)):
            return current
        new_replicas = _ceil(new_ratio * count)
        if (new_ratio < 1.0 and new_replicas > current) or \
                (new_ratio > 1.0 and new_replicas < current):
            return current
        return new_replicas


def pod_metrics_info(items: Iterable[Message], resource: str, container: str = ""
                     ) -> PodMetricsInfo:
    """The metrics API's PodMetrics as the resource metrics client reads them: a
    pod's usage is the sum of its containers' (only `container`'s when given);
    a pod with a container lacking the resource is left out."""
    out: PodMetricsInfo = {}
    for m in items:
        total, complete = 0, True
        for c in m.containers:
            if container and c.name != container:
                continue
            value = c.usage.get(resource)
            if value is None:
                complete = False
                break
            total += quantity.to_milli(value)
        if not complete or (container and not any(c.name == container for c in m.containers)):
            continue
        out[m.metadata.name] = PodMetric(total, cu.time_s(m.timestamp) or 0.0,
                                         _window_s(m.window))
    return out


def _window_s(text: str) -> float:
    try:
        return float(text.removesuffix("s")) if text.endswith("s") else 0.0
    except ValueError:
        return 0.0


# ---------------------------------------------------------------- normalization

@dataclasses.dataclass
class Recommendation:
    replicas: int
    at_s: float


@dataclasses.dataclass
class ScaleEvent:
    change: int
    at_s: float
    outdated: bool = False


def convert_desired_replicas_with_rules(current: int, desired: int, min_replicas: int,
                                        max_replicas: int) -> tuple[int, str, str]:
    """Clamp without behavior: convertDesiredReplicasWithRules."""
    scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > scale_up_limit:
        maximum = scale_up_limit
        reason, message = ("ScaleUpLimit", "the desired replica count is increasing faster "
                                           "than the maximum scale rate")
    else:
        maximum = max_replicas
        reason, message = ("TooManyReplicas", "the desired replica count is more than the "
                                              "maximum replica count")
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas", ("the desired replica count is less than the "
                                                "minimum replica count")
    if desired > maximum:
        return maximum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def replicas_change_per_period(period_s: int, events: list[ScaleEvent], now_s: float) -> int:
    cutoff = now_s - period_s
    return sum(e.change for e in events if e.at_s > cutoff)


def scale_up_limit_with_rules(current: int, up_events: list[ScaleEvent],
                              down_events: list[ScaleEvent], rules: Message, now_s: float) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    if rules.select_policy == "Disabled":
        return current
    pick, result = (min, INT32_MAX) if rules.select_policy == "Min" else (max, INT32_MIN)
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_seconds, up_events, now_s)
        deleted = replicas_change_per_period(policy.period_seconds, down_events, now_s)
        start = current - added + deleted
        if policy.type == "Pods":
            proposed = start + policy.value
        else:
            proposed = _ceil(start * (1 + policy.value / 100))
        result = pick(result, proposed)
    return result


def scale_down_limit_with_rules(current: int, up_events: list[ScaleEvent],
                                down_events: list[ScaleEvent], rules: Message,
                                now_s: float) -> int:
    """calculateScaleDownLimitWithBehaviors."""
    if rules.select_policy == "Disabled":
        return current
    pick, result = (max, INT32_MIN) if rules.select_policy == "Min" else (min, INT32_MAX)
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_seconds, up_events, now_s)
        deleted = replicas_change_per_period(policy.period_seconds, down_events, now_s)
        start = current - added + deleted
        if policy.type == "Pods":
            proposed = start - policy.value
        else:
            proposed = int(start * (1 - policy.value / 100))
        result = pick(result, proposed)
    return result


class Normalizer:
    """The stabilization windows and scaling policies of every HPA (the
    controller's recommendations / scaleUpEvents / scaleDownEvents), on a clock."""

    def __init__(self, downscale_stabilization_s: float, clock: Callable[[], float]):
        self.downscale_stabilization_s = downscale_stabilization_s
        self.clock = clock
        self.recommendations: dict[str, list[Recommendation]] = {}
        self.up_events: dict[str, list[ScaleEvent]] = {}
        self.down_events: dict[str, list[ScaleEvent]] = {}

    def forget(self, key: str) -> None:
        for table in (self.recommendations, self.up_events, self.down_events):
            table.pop(key, None)

    def _record(self, key: str, replicas: int, old_index: int | None, now_s: float) -> None:
        recs = self.recommendations.setdefault(key, [])
        if old_index is not None:
            recs[old_index] = Recommendation(replicas, now_s)
        elif len(recs) < SAMPLES_MAX:
            recs.append(Recommendation(replicas, now_s))

    def stabilize(self, key: str, desired: int) -> int:
        """stabilizeRecommendation (no behavior): the highest recommendation
        within the downscale stabilization window."""
        now_s = self.clock()
        best = desired
        old_index = None
        cutoff = now_s - self.downscale_stabilization_s
        for i, rec in enumerate(self.recommendations.get(key, [])):
            if rec.at_s < cutoff:
                old_index = i
            elif rec.replicas > best:
                best = rec.replicas
        self._record(key, desired, old_index, now_s)
        return best

    def stabilize_with_behaviors(self, key: str, current: int, desired: int, up: Message,
                                 down: Message) -> tuple[int, str, str]:
        """stabilizeRecommendationWithBehaviors."""
        now_s = self.clock()
        up_cutoff = now_s - up.stabilization_window_seconds
        down_cutoff = now_s - down.stabilization_window_seconds
        up_rec = down_rec = desired
        old_index = None
        for i, rec in enumerate(self.recommendations.get(key, [])):
            if rec.at_s > up_cutoff:
                up_rec = min(rec.replicas, up_rec)
            if rec.at_s > down_cutoff:
                down_rec = max(rec.replicas, down_rec)
            if rec.at_s < up_cutoff and rec.at_s < down_cutoff:
                old_index = i
        recommendation = current
        if recommendation < up_rec:
            recommendation = up_rec
        if recommendation > down_rec:
            recommendation = down_rec
        self._record(key, desired, old_index, now_s)
        if desired >= current:
            return recommendation, "ScaleUpStabilized", (
                "recent recommendations were lower than current one, applying the lowest "
                "recent recommendation")
        return recommendation, "ScaleDownStabilized", (
            "recent recommendations were higher than current one, applying the highest recent "
            "recommendation")

    def rate_limit_with_behaviors(self, key: str, current: int, desired: int,
                                  min_replicas: int, max_replicas: int, up: Message,
                                  down: Message) -> tuple[int, str, str]:
        """convertDesiredReplicasWithBehaviorRate."""
        now_s = self.clock()
        ups, downs = self.up_events.get(key, []), self.down_events.get(key, [])
        if desired > current:
            limit = max(scale_up_limit_with_rules(current, ups, downs, up, now_s), current)
            if max_replicas > limit:
                maximum, reason, message = limit, "ScaleUpLimit", (
                    "the desired replica count is increasing faster than the maximum scale rate")
            else:
                maximum, reason, message = max_replicas, "TooManyReplicas", (
                    "the desired replica count is more than the maximum replica count")
            if desired > maximum:
                return maximum, reason, message
        elif desired < current:
            limit = min(scale_down_limit_with_rules(current, ups, downs, down, now_s), current)
            if min_replicas < limit:
                minimum, reason, message = limit, "ScaleDownLimit", (
                    "the desired replica count is decreasing faster than the maximum scale rate")
            else:
                minimum, reason, message = min_replicas, "TooFewReplicas", (
                    "the desired replica count is less than the minimum replica count")
            if desired < minimum:
                return minimum, reason, message
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    def store_scale_event(self, behavior: Message | None, key: str, previous: int,
                          new: int) -> None:
        """storeScaleEvent: the change, for the policies' periods (with behavior only)."""
        if behavior is None:
            return
        now_s = self.clock()
        if new > previous:
            table, rules, change = self.up_events, behavior.scale_up, new - previous
        else:
            table, rules, change = self.down_events, behavior.scale_down, previous - new
        longest_s = max((p.period_seconds for p in rules.policies), default=0)
        events = table.setdefault(key, [])
        for e in events:
            if e.at_s <= now_s - longest_s:
                e.outdated = True
        for i, e in enumerate(events):
            if e.outdated:
                events[i] = ScaleEvent(change, now_s)
                return
        if len(events) < SAMPLES_MAX:
            events.append(ScaleEvent(change, now_s))


# ---------------------------------------------------------------- the controller

def _set_condition(hpa: Message, type_: str, status: str, reason: str, message: str,
                   now_s: float) -> None:
    cu.set_condition(hpa.status, type_, status, reason, message, now_s)


def metric_name(spec: Message) -> str:
    """The metric's name in events and conditions (horizontal.go)."""
    if spec.type == "Resource":
        if spec.resource.target.type == "Utilization" or \
                spec.resource.target.HasField("average_utilization"):
            return f"{spec.resource.name} resource utilization (percentage of request)"
        return f"{spec.resource.name} resource"
    if spec.type == "ContainerResource":
        r = spec.container_resource
        if r.target.HasField("average_utilization"):
            return (f"{r.name} container resource utilization (percentage of request)")
        return f"{r.name} container resource"
    if spec.type == "Pods":
        return f"pods metric {spec.pods.metric.name}"
    if spec.type == "Object":
        return f"{spec.object.metric.name} metric"
    if spec.type == "External":
        return f"external metric {spec.external.metric.name}"
    return spec.type


def milli_quantity(milli: int) -> str:
    """resource.NewMilliQuantity(v, DecimalSI).String()."""
    from fractions import Fraction

    return quantity.canonical(Fraction(milli, 1000), quantity.DECIMAL_SI)


def _outer_error(spec: Message, detail: str) -> str:
    """computeReplicasForMetric's wrapping of a resource metric's error, which
    the FailedComputeMetricsReplicas event shows (the condition and the
    per-metric event carry `detail` alone)."""
    if spec.type == "Resource":
        return f"failed to get {spec.resource.name} resource metric value: {detail}"
    if spec.type == "ContainerResource":
        return f"failed to get {spec.container_resource.name} container metric value: {detail}"
    return detail


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler-controller"
    event_source = "horizontal-pod-autoscaler"  # its events' source in Kubernetes
    aliases = ("horizontalpodautoscaling",)
    resources = ("horizontalpodautoscalers", "pods")
    default_workers = 5  # --concurrent-horizontal-pod-autoscaler-syncs

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        opts = ctx.options
        self.sync_period_s = opts.hpa_sync_period_s
        self.calculator = ReplicaCalculator(
            tolerance=opts.hpa_tolerance,
            cpu_initialization_period_s=opts.hpa_cpu_initialization_period_s,
            delay_of_initial_readiness_s=opts.hpa_initial_readiness_delay_s,
            clock=ctx.clock)
        self.normalizer = Normalizer(opts.hpa_downscale_stabilization_s, ctx.clock)
        self.hpas = self.informer("horizontalpodautoscalers")
        self.pods = self.informer("pods")
        self.hpas.add_handler(self.enqueue, self._updated, self._deleted)

    def _updated(self, old: Message, new: Message) -> None:
        # Our own status writes are not a reason to look again before the period.
        if old.metadata.generation != new.metadata.generation:
            self.enqueue(new)

    def _deleted(self, obj: Message | DeletedFinalStateUnknown) -> None:
        self.normalizer.forget(meta_namespace_key(object_of(obj)))

    async def sync(self, key: str) -> None:
        hpa = self.hpas.get(key)
        if hpa is None:
            self.normalizer.forget(key)
            return
        try:
            await self.reconcile(key, deepcopy(hpa))
        finally:
            # Every HPA is looked at once per sync period (the resync queue).
            self.enqueue_after(key, self.sync_period_s)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str, hpa: Message) -> None:
        """reconcileAutoscaler."""
        original = deepcopy(hpa.status)
        now_s = self.ctx.clock()
        namespace, _ = split_key(key)
        ref = hpa.spec.scale_target_ref
        min_replicas = hpa.spec.min_replicas if hpa.spec.HasField("min_replicas") else 1
        try:
            resource = self._target_resource(ref)
            target = await self.client.get(resource, ref.name, namespace)
        except errors.ApiError as err:
            self.recorder.record(hpa, "Warning", "FailedGetScale", err.message)
            _set_condition(hpa, "AbleToScale", "False", "FailedGetScale",
                           f"the HPA controller was unable to get the target's current scale: "
                           f"{err.message}", now_s)
            await self._write_status(hpa, original)
            return
        _set_condition(hpa, "AbleToScale", "True", "SucceededGetScale",
                       "the HPA controller was able to get the target's current scale", now_s)
        current = target.spec.replicas
        status_replicas = target.status.replicas
        statuses: list[Message] = []
        rescale_reason = ""
        desired = 0
        rescale = True
        if current == 0 and min_replicas != 0:
            desired, rescale = 0, False
            _set_condition(hpa, "ScalingActive", "False", "ScalingDisabled",
                           "scaling is disabled since the replica count of the target is zero",
                           now_s)
        elif current > hpa.spec.max_replicas:
            rescale_reason = "Current number of replicas above Spec.MaxReplicas"
            desired = hpa.spec.max_replicas
        elif current < min_replicas:
            rescale_reason = "Current number of replicas below Spec.MinReplicas"
            desired = min_replicas
        else:
            selector = self._selector(hpa, target, now_s)
            if selector is None:
                self._set_status(hpa, current, current, [], False, now_s)
                await self._write_status(hpa, original)
                return
            proposal, name, statuses, failure = await self.compute_replicas_for_metrics(
                hpa, namespace, selector, current, status_replicas, now_s)
            if proposal == -1:
                self._set_status(hpa, current, hpa.status.desired_replicas, statuses, False,
                                 now_s, keep_desired=True)
                await self._write_status(hpa, original)
                self.recorder.record(hpa, "Warning", "FailedComputeMetricsReplicas",
                                     str(failure))
                return
            rescale_metric = ""
            if proposal > desired:
                desired, rescale_metric = proposal, name
            if desired > current:
                rescale_reason = f"{rescale_metric} above target"
            if desired < current:
                rescale_reason = "All metrics below target"
            if hpa.spec.HasField("behavior"):
                desired = self._normalize_with_behaviors(hpa, key, current, desired,
                                                         min_replicas, now_s)
            else:
                desired = self._normalize(hpa, key, current, desired, min_replicas, now_s)
            rescale = desired != current
        if rescale:
            try:
                # Conditioned on the scale read above, as the scale subresource's
                # update is: a concurrent `scale` is not overwritten by a size
                # computed from stale replicas (a Conflict; the next sync redoes it).
                await self.client.patch(resource, ref.name, namespace, patch={
                    "metadata": {"resourceVersion": target.metadata.resource_version},
                    "spec": {"replicas": desired}})
            except errors.ApiError as err:
                self.recorder.record(hpa, "Warning", "FailedRescale",
                                     f"New size: {desired}; reason: {rescale_reason}; "
                                     f"error: {err.message}")
                _set_condition(hpa, "AbleToScale", "False", "FailedUpdateScale",
                               f"the HPA controller was unable to update the target scale: "
                               f"{err.message}", now_s)
                self._set_status(hpa, current, hpa.status.desired_replicas, statuses, False,
                                 now_s, keep_desired=True)
                await self._write_status(hpa, original)
                return
            _set_condition(hpa, "AbleToScale", "True", "SucceededRescale",
                           f"the HPA controller was able to update the target scale to {desired}",
                           now_s)
            self.recorder.record(hpa, "Normal", "SuccessfulRescale",
                                 f"New size: {desired}; reason: {rescale_reason}")
            self.normalizer.store_scale_event(
                hpa.spec.behavior if hpa.spec.HasField("behavior") else None, key, current,
                desired)
            self.log.info("rescaled", hpa=key, current=current, desired=desired,
                          reason=rescale_reason)
        else:
            desired = current
        self._set_status(hpa, current, desired, statuses, rescale, now_s)
        await self._write_status(hpa, original)

    def _target_resource(self, ref: Message) -> str:
        group = ref.api_version.rpartition("/")[0] if "/" in ref.api_version else ""
        found = SCALABLE.get(ref.kind)
        # An empty apiVersion (autoscaling/v1 manifests often leave it out) is
        # read as the kind's own group.
        if found is None or (ref.api_version and group != found[0]):
            raise errors.NotFound(f'no matches for kind "{ref.kind}" in group "{group}"')
        return found[1]

    def _selector(self, hpa: Message, target: Message, now_s: float) -> labels.Selector | None:
        if not target.spec.HasField("selector"):
            self.recorder.record(hpa, "Warning", "SelectorRequired", "selector is required")
            _set_condition(hpa, "ScalingActive", "False", "InvalidSelector",
                           "the HPA target's scale is missing a selector", now_s)
            return None
        selector = labels.from_label_selector(target.spec.selector)
        return selector

    async def compute_replicas_for_metrics(self, hpa: Message, namespace: str,
                                           selector: labels.Selector, current: int,
                                           status_replicas: int, now_s: float
                                           ) -> tuple[int, str, list[Message], str]:
        """(replicas or -1, metric name, statuses, first error): computeReplicasForMetrics."""
        specs = list(hpa.spec.metrics)
        statuses = [autoscaling_pb2.MetricStatus() for _ in specs]
        replicas, name = 0, ""
        invalid = 0
        first_condition: tuple[str, str, str, str] | None = None
        first_error = ""
        pods = [p for p in self.pods.list()
                if p.metadata.namespace == namespace and selector.matches(p.metadata.labels)]
        for i, spec in enumerate(specs):
            try:
                proposal = await self._replicas_for_metric(
                    hpa, spec, namespace, selector, pods, current, status_replicas,
                    statuses[i])
            except _ConditionError as err:
                self.recorder.record(hpa, "Warning", err.reason, err.detail)
                if invalid == 0:
                    first_condition = ("ScalingActive", "False", err.reason,
                                       f"the HPA was unable to compute the replica count: "
                                       f"{err.detail}")
                    first_error = _outer_error(spec, err.detail)
                invalid += 1
                continue
            if replicas == 0 or proposal > replicas:
                replicas, name = proposal, metric_name(spec)
        failure = ""
        if first_error:
            failure = (f"invalid metrics ({invalid} invalid out of {len(specs)}), first error "
                       f"is: {first_error}")
        if invalid >= len(specs) or (invalid > 0 and replicas < current):
            assert first_condition is not None
            _set_condition(hpa, *first_condition, now_s)
            return -1, "", statuses, failure
        _set_condition(hpa, "ScalingActive", "True", "ValidMetricFound",
                       f"the HPA was able to successfully calculate a replica count from "
                       f"{name}", now_s)
        return replicas, name, statuses, failure

    async def _pod_metrics(self, namespace: str, selector: labels.Selector, resource: str,
                           container: str) -> PodMetricsInfo:
        """GetResourceMetric: the metrics API's PodMetrics of the selected pods."""
        try:
            found = await self.client.list("podmetrics", namespace,
                                           label_selector=str(selector))
        except errors.ApiError as err:
            raise MetricError(f"unable to get metrics for resource {resource}: unable to fetch "
                              f"metrics from resource metrics API: {err.message}") from None
        if not found.items:
            raise MetricError(f"unable to get metrics for resource {resource}: no metrics "
                              f"returned from resource metrics API")
        return pod_metrics_info(found.items, resource, container)

    async def _replicas_for_metric(self, hpa: Message, spec: Message, namespace: str,
                                   selector: labels.Selector, pods: list[Message], current: int,
                                   status_replicas: int, status: Message) -> int:
        if spec.type in ("Resource", "ContainerResource"):
            source = spec.resource if spec.type == "Resource" else spec.container_resource
            container = "" if spec.type == "Resource" else source.container
            reason = ("FailedGetResourceMetric" if spec.type == "Resource"
                      else "FailedGetContainerResourceMetric")
            what = source.name if spec.type == "Resource" else f"{source.name} container"
            target = source.target
            try:
                metrics = await self._pod_metrics(namespace, selector, source.name, container)
                if target.HasField("average_utilization"):
                    replicas, utilization, raw = self.calculator.resource_replicas(
                        current, target.average_utilization, source.name, container, pods,
                        metrics)
                else:
                    if not target.average_value:
                        raise MetricError("invalid resource metric source: neither a "
                                          "utilization target nor a value target was set")
                    replicas, raw = self.calculator.plain_metric_replicas(
                        current, quantity.to_milli(target.average_value), source.name, pods,
                        metrics)
                    utilization = None
            except MetricError as err:
                raise _ConditionError(reason, f"failed to get {what} utilization: {err}"
                                      if target.HasField("average_utilization")
                                      else f"failed to get {what} usage: {err}") from None
            status.type = spec.type
            if spec.type == "Resource":
                current_status = status.resource
            else:
                current_status = status.container_resource
                current_status.container = container
            current_status.name = source.name
            current_status.current.average_value = milli_quantity(raw)
            if utilization is not None:
                current_status.current.average_utilization = utilization
            return replicas
        if spec.type == "Pods":
            raise _ConditionError("FailedGetPodsMetric", (
                f"failed to get pods metric value: unable to get metric {spec.pods.metric.name}: "
                "unable to fetch metrics from custom metrics API: no custom metrics API "
                "(custom.metrics.k8s.io) registered"))
        if spec.type == "Object":
            raise _ConditionError("FailedGetObjectMetric", (
                f"failed to get object metric value: unable to get metric "
                f"{spec.object.metric.name}: unable to fetch metrics from custom metrics API: "
                "no custom metrics API (custom.metrics.k8s.io) registered"))
        if spec.type == "External":
            raise _ConditionError("FailedGetExternalMetric", (
                f"failed to get external metric value: unable to get external metric "
                f"{namespace}/{spec.external.metric.name}: unable to fetch metrics from external "
                "metrics API: no external metrics API (external.metrics.k8s.io) registered"))
        raise _ConditionError("InvalidMetricSourceType",
                              f'unknown metric source type "{spec.type}"')

    # ------------------------------------------------------------ normalization

    def _normalize(self, hpa: Message, key: str, current: int, desired: int, min_replicas: int,
                   now_s: float) -> int:
        """normalizeDesiredReplicas (no behavior)."""
        stabilized = self.normalizer.stabilize(key, desired)
        if stabilized != desired:
            _set_condition(hpa, "AbleToScale", "True", "ScaleDownStabilized",
                           "recent recommendations were higher than current one, applying the "
                           "highest recent recommendation", now_s)
        else:
            _set_condition(hpa, "AbleToScale", "True", "ReadyForNewScale",
                           "recommended size matches current size", now_s)
        out, reason, message = convert_desired_replicas_with_rules(
            current, stabilized, min_replicas, hpa.spec.max_replicas)
        _set_condition(hpa, "ScalingLimited", "False" if out == stabilized else "True", reason,
                       message, now_s)
        return out

    def _normalize_with_behaviors(self, hpa: Message, key: str, current: int, desired: int,
                                  min_replicas: int, now_s: float) -> int:
        """normalizeDesiredReplicasWithBehaviors."""
        behavior = hpa.spec.behavior
        up, down = deepcopy(behavior.scale_up), deepcopy(behavior.scale_down)
        if not down.HasField("stabilization_window_seconds"):
            # maybeInitScaleDownStabilizationWindow: the controller's flag.
            down.stabilization_window_seconds = int(self.normalizer.downscale_stabilization_s)
        stabilized, reason, message = self.normalizer.stabilize_with_behaviors(
            key, current, desired, up, down)
        if stabilized != desired:
            _set_condition(hpa, "AbleToScale", "True", reason, message, now_s)
        else:
            _set_condition(hpa, "AbleToScale", "True", "ReadyForNewScale",
                           "recommended size matches current size", now_s)
        out, reason, message = self.normalizer.rate_limit_with_behaviors(
            key, current, stabilized, min_replicas, hpa.spec.max_replicas, up, down)
        _set_condition(hpa, "ScalingLimited", "False" if out == stabilized else "True", reason,
                       message, now_s)
        return out

    # ------------------------------------------------------------ status

    def _set_status(self, hpa: Message, current: int, desired: int, statuses: list[Message],
                    rescale: bool, now_s: float, *, keep_desired: bool = False) -> None:
        status = hpa.status
        status.current_replicas = current
        if not keep_desired:
            status.desired_replicas = desired
        del status.current_metrics[:]
        status.current_metrics.extend(statuses)
        # setStatus rebuilds the status: observedGeneration is never kept.
        status.ClearField("observed_generation")
        if rescale:
            status.last_scale_time = timefmt.rfc3339(now_s)

    async def _write_status(self, hpa: Message, original: Message) -> None:
        if hpa.status == original:
            return
        try:
            await self.client.update_status(hpa)
        except errors.NotFound:
            return


class _ConditionError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail
