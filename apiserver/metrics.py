"""The metrics API (metrics.k8s.io/v1beta1 NodeMetrics, PodMetrics), served as
metrics-server serves it, from the kubelets' Stats.

Contract:
- Read-only: get and list (namespace, label and field selectors); the
  service refuses every other verb (errors.method_not_supported).
- CPU is the kubelet's rate over a real window (the runtime's cumulative CPU
  time between samples, over its --cpu-window-s), and `window` is the span
  those samples cover (the resolution before any is known, as for a pod
  sampled once); memory is the working set.
- One sample per node is kept for `resolution_s` (metrics-server's
  --metric-resolution): reads within that time are answered from it. A pod
  the node's sample does not know yet (just started) gets its node sampled
  again, at most once per `refresh_min_s`.
- Nodes are asked at most `fanout_max` at a time, each within `timeout_s`; a
  node that does not answer in time (or at all) is left out, not an error, as
  metrics-server leaves out a node it cannot scrape.
- Labels come from the Node / Pod objects (as metrics-server copies them),
  so label selectors select the objects the metrics are about.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from fractions import Fraction
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from apiserver import filters
from kubemu.api import errors, quantity
from kubemu.api.kinds import Kind, Registry
from kubemu.api.v1 import metrics_pb2
from kubemu.api.v1 import resources_pb2 as pb

log = structlog.get_logger()

DEFAULT_RESOLUTION_S = 15.0
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_FANOUT_MAX = 16
REFRESH_MIN_S = 1.0
# Nodes whose sample is kept at most (a node gone from the cluster is dropped
# at the next list anyway).
CACHE_NODES_MAX = 4096

StatsFn = Callable[[str, float], Awaitable[pb.NodeStatsResponse]]


@dataclasses.dataclass
class _Sample:
    taken_s: float  # monotonic
    stats: pb.NodeStatsResponse


def format_window(seconds: float) -> str:
    """A Go time.Duration's String for whole and fractional seconds ("15s", "1.5s")."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def cpu_quantity(nano_cores: int) -> str:
    """metrics-server's CPU: resource.NewScaledQuantity(n, -9).String() ("250m",
    "123456789n", "0")."""
    return quantity.canonical(Fraction(nano_cores, 1_000_000_000), quantity.DECIMAL_SI)


def memory_quantity(count: int) -> str:
    """metrics-server's memory: resource.NewQuantity(n, BinarySI).String() ("64Mi",
    "9220Ki", or bytes)."""
    return quantity.canonical(Fraction(count), quantity.BINARY_SI)


class MetricsAPI:
    def __init__(self, registry: Registry, list_objects: Callable[..., Awaitable[list[Any]]],
                 stats_of: StatsFn, *, resolution_s: float = DEFAULT_RESOLUTION_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S, fanout_max: int = DEFAULT_FANOUT_MAX,
                 refresh_min_s: float = REFRESH_MIN_S,
                 clock: Callable[[], float] = time.monotonic):
        """list_objects(kind, namespace) -> objects (the registry's list);
        stats_of(node, timeout_s) -> the node's kubelet Stats."""
        if resolution_s <= 0 or timeout_s <= 0 or fanout_max < 1:
            raise ValueError("resolution_s and timeout_s must be > 0, fanout_max >= 1")
        self.registry = registry
        self.list_objects = list_objects
        self.stats_of = stats_of
        self.resolution_s = resolution_s
        self.timeout_s = timeout_s
        self.refresh_min_s = refresh_min_s
        self.clock = clock
        self._fanout = asyncio.Semaphore(fanout_max)
        self._samples: dict[str, _Sample] = {}
        self._inflight: dict[str, asyncio.Future] = {}

    # ------------------------------------------------------------ sampling

    async def _scrape(self, node: str) -> pb.NodeStatsResponse | None:
        async with self._fanout:
            try:
                stats = await asyncio.wait_for(self.stats_of(node, self.timeout_s),
                                               self.timeout_s)
            except (errors.ApiError, asyncio.TimeoutError, OSError) as err:
                log.debug("node left out of the metrics", node=node, error=str(err))
                return None
        self._samples[node] = _Sample(self.clock(), stats)
        while len(self._samples) > CACHE_NODES_MAX:
            self._samples.pop(next(iter(self._samples)))
        return stats

    async def _sample(self, node: str, refresh: bool = False) -> pb.NodeStatsResponse | None:
        """The node's sample: the cached one while fresh, else a new scrape
        (concurrent readers share one scrape)."""
        now = self.clock()
        cached = self._samples.get(node)
        if cached is not None:
            age = now - cached.taken_s
            if age < self.resolution_s and not (refresh and age >= self.refresh_min_s):
                return cached.stats
        pending = self._inflight.get(node)
        if pending is None:
            pending = asyncio.ensure_future(self._scrape(node))
            self._inflight[node] = pending
            pending.add_done_callback(lambda _f, n=node: self._inflight.pop(n, None))
        try:
            return await asyncio.shield(pending)
        except Exception as err:  # noqa: BLE001 - a failed scrape leaves the node out
            log.debug("node scrape failed", node=node, error=str(err))
            return None

    async def _samples_of(self, nodes: list[str]) -> dict[str, pb.NodeStatsResponse]:
        results = await asyncio.gather(*(self._sample(n) for n in nodes))
        known = set(nodes)
        for gone in [n for n in self._samples if n not in known]:
            del self._samples[gone]
        return {n: s for n, s in zip(nodes, results, strict=True) if s is not None}

    # ------------------------------------------------------------ objects

    def _window(self, *measured_s: float) -> str:
        """The span the CPU rate covers, as metrics-server's window: the
        runtime's (its samples over --cpu-window-s), else the resolution."""
        return format_window(max(measured_s, default=0.0) or self.resolution_s)

    def _node_metrics(self, node: Any, stats: pb.NodeStatsResponse) -> metrics_pb2.NodeMetrics:
        out = metrics_pb2.NodeMetrics(api_version="metrics.k8s.io/v1beta1", kind="NodeMetrics",
                                      timestamp=stats.timestamp,
                                      window=self._window(stats.cpu_window_seconds))
        out.metadata.name = node.metadata.name
        out.metadata.labels.update(node.metadata.labels)
        out.metadata.creation_timestamp = stats.timestamp
        out.usage["cpu"] = cpu_quantity(stats.cpu_nano_cores)
        out.usage["memory"] = memory_quantity(stats.memory_working_set_bytes)
        return out

    def _pod_metrics(self, pod: Any, usage: pb.PodUsage, stats: pb.NodeStatsResponse
                     ) -> metrics_pb2.PodMetrics:
        out = metrics_pb2.PodMetrics(api_version="metrics.k8s.io/v1beta1", kind="PodMetrics",
                                     timestamp=stats.timestamp,
                                     window=self._window(*(c.cpu_window_seconds
                                                           for c in usage.containers)))
        out.metadata.name = pod.metadata.name
        out.metadata.namespace = pod.metadata.namespace
        out.metadata.labels.update(pod.metadata.labels)
        out.metadata.creation_timestamp = stats.timestamp
        for c in usage.containers:
            container = out.containers.add(name=c.name)
            container.usage["cpu"] = cpu_quantity(c.cpu_nano_cores)
            container.usage["memory"] = memory_quantity(c.memory_working_set_bytes)
        return out

    async def list(self, kind: Kind, namespace: str, label_selector: str = "",
                   field_selector: str = "") -> list[Any]:
        predicate = filters.predicate(kind, label_selector, field_selector)
        if kind.kind == "NodeMetrics":
            nodes = await self.list_objects(self.registry.by_resource("nodes"), "")
            samples = await self._samples_of([n.metadata.name for n in nodes])
            out = [self._node_metrics(n, samples[n.metadata.name]) for n in nodes
                   if n.metadata.name in samples]
        elif kind.kind == "PodMetrics":
            out = await self._pods(namespace)
        else:
            raise errors.NotFound(f'the server doesn\'t have a resource type "{kind.resource}"')
        return [m for m in out if predicate is None or predicate(m)]

    async def _pods(self, namespace: str, name: str = "") -> list[metrics_pb2.PodMetrics]:
        pods = [p for p in await self.list_objects(self.registry.by_resource("pods"), namespace)
                if p.spec.node_name and p.status.phase == "Running"
                and (not name or p.metadata.name == name)]
        nodes = sorted({p.spec.node_name for p in pods})
        samples = await self._samples_of_known(nodes)
        missing = {p.spec.node_name for p in pods
                   if p.spec.node_name in samples
                   and not _usage_of(samples[p.spec.node_name], p.metadata.uid)}
        if missing:
            refreshed = await asyncio.gather(*(self._sample(n, refresh=True) for n in missing))
            samples.update({n: s for n, s in zip(missing, refreshed, strict=True)
                            if s is not None})
        out = []
        for pod in pods:
            stats = samples.get(pod.spec.node_name)
            usage = _usage_of(stats, pod.metadata.uid) if stats is not None else None
            if usage is not None:
                out.append(self._pod_metrics(pod, usage, stats))
        return out

    async def _samples_of_known(self, nodes: list[str]) -> dict[str, pb.NodeStatsResponse]:
        results = await asyncio.gather(*(self._sample(n) for n in nodes))
        return {n: s for n, s in zip(nodes, results, strict=True) if s is not None}

    async def get(self, kind: Kind, namespace: str, name: str) -> Any:
        if kind.kind == "NodeMetrics":
            node = None
            for n in await self.list_objects(self.registry.by_resource("nodes"), ""):
                if n.metadata.name == name:
                    node = n
            stats = await self._sample(name) if node is not None else None
            if stats is None:
                raise errors.not_found(kind.qualified_resource, name)
            return self._node_metrics(node, stats)
        found = await self._pods(namespace, name)
        if not found:
            raise errors.not_found(kind.qualified_resource, f"{namespace}/{name}")
        return found[0]


def _usage_of(stats: pb.NodeStatsResponse, uid: str) -> pb.PodUsage | None:
    return next((p for p in stats.pods if p.uid == uid and p.containers), None)

