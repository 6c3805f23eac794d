"""The scheduling framework: kube-scheduler's model of one scheduling cycle.

- `NodeInfo`: a node plus the pods bound or assumed on it, with their summed
  requests (cpu millis, bytes, pod count, scalar resources), non-zero requests
  (for scoring) and used host ports. `PodInfo` precomputes what plugins read
  of a pod (requests, ports, parsed inter-pod affinity terms) once.
- `Snapshot`: an immutable view of all NodeInfos for one cycle, with lookups by
  topology domain. Treat every object reachable from it as read-only.
- `Status`: a plugin's answer (code + reasons). Filter plugins return one per
  node; the first failing plugin decides a node's status, as in Kubernetes.
- Plugins (see `plugins/`): `NAME`, `EVENTS` (the cluster events that can make
  a rejected pod schedulable), and any of `pre_filter(pod, snapshot, state)`,
  `filter(pod, node_info, snapshot, state=None) -> Status`,
  `pre_score(pod, snapshot, nodes, state)`,
  `score(pod, node_info, snapshot, state=None) -> int` and
  `normalize(pod, scores, snapshot, state) -> scores` (0..100 afterwards).
  `state` is the cycle's CycleState; plugins must work without it too.
  A pre_filter / pre_score may return `Status.skip()` (kube's Skip): the
  plugin has nothing to say about this pod, and its filter / score is not run
  this cycle (a skipped score counts as the same score on every node).
- `Framework`: the plugins of one profile, built from a config dict through a
  registry (name -> constructor taking the plugin's args).
- `schedule_one(framework, pod, snapshot, rng)`: filter nodes (all, or
  percentageOfNodesToScore of them), score the feasible ones, weighted sum,
  ties broken by the seeded `rng`. On failure the Diagnosis renders the
  FailedScheduling message exactly as Kubernetes' FitError does; a PostFilter
  (preemption) message is appended through `Diagnosis.message(post_filter_msg)`.
"""
from __future__ import annotations

import copy
import dataclasses
import enum
import random
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from kubemu.api import errors, labels
from kubemu.api.fields import field_value

from scheduler import podutil
from scheduler.podutil import PodKey, Resources

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0
DEFAULT_SCHEDULER_NAME = "default-scheduler"
NO_NODES_AVAILABLE_MSG = "no nodes available to schedule pods"
NO_NODE_AVAILABLE_FMT = "0/{} nodes are available"
# numFeasibleNodesToFind's constants (kube-scheduler schedule_one.go).
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
MAX_TOTAL_SCORE_WEIGHT = 2**31 - 1  # keeps weight * 100 * plugins far from overflow anywhere

# ---------------------------------------------------------------- cluster events
# What changed in the cluster; the queue moves a rejected pod back only on an
# event one of the plugins that rejected it registered for.
NODE_ADD = "Node/Add"
NODE_DELETE = "Node/Delete"
NODE_LABEL_CHANGE = "Node/UpdateNodeLabel"
NODE_TAINT_CHANGE = "Node/UpdateNodeTaint"
NODE_ALLOCATABLE_CHANGE = "Node/UpdateNodeAllocatable"
NODE_SPEC_UNSCHEDULABLE_CHANGE = "Node/UpdateNodeSpecUnschedulable"
ASSIGNED_POD_ADD = "AssignedPod/Add"
ASSIGNED_POD_UPDATE = "AssignedPod/Update"  # labels changed (affinity, spreading)
ASSIGNED_POD_DELETE = "AssignedPod/Delete"
UNSCHEDULABLE_TIMEOUT = "UnschedulableTimeout"
WILDCARD_EVENT = "*"
ALL_EVENTS = frozenset({
    NODE_ADD, NODE_DELETE, NODE_LABEL_CHANGE, NODE_TAINT_CHANGE, NODE_ALLOCATABLE_CHANGE,
    NODE_SPEC_UNSCHEDULABLE_CHANGE, ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE,
    ASSIGNED_POD_DELETE, UNSCHEDULABLE_TIMEOUT, WILDCARD_EVENT})


# ---------------------------------------------------------------- status

class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1  # a plugin failed (a bug or bad config): the cycle aborts
    UNSCHEDULABLE = 2  # preemption might help
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3  # preemption cannot help on this node
    # PreFilter/PreScore only: the plugin has nothing to check or score for this
    # pod (kube's Skip), so its Filter/Score is not run this cycle.
    SKIP = 4


@dataclasses.dataclass(frozen=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, tuple(reasons))

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, tuple(reasons))

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, (message,))

    @classmethod
    def skip(cls) -> Status:
        return SKIP

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, name: str) -> Status:
        return dataclasses.replace(self, plugin=name)


SUCCESS = Status()
SKIP = Status(Code.SKIP)
FilterResult = Status


class SchedulingError(Exception):
    """A plugin returned Error: the cycle cannot decide (retry with backoff)."""


# ---------------------------------------------------------------- pods

@dataclasses.dataclass(frozen=True)
class AffinityTerm:
    """A PodAffinityTerm resolved against the pod that owns it."""

    selector: labels.Selector
    namespaces: frozenset[str]
    namespace_selector: labels.Selector  # NOTHING when the term has none
    topology_key: str

    def matches(self, pod: Any, namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        """Whether `pod` is one of the pods this term selects."""
        namespace = pod.metadata.namespace
        if namespace not in self.namespaces and not self.namespace_selector.matches(
                namespace_labels.get(namespace, {})):
            return False
        return self.selector.matches(pod.metadata.labels)


def _selector(msg: Any | None) -> labels.Selector:
    try:
        return labels.from_label_selector(msg)
    except errors.ApiError:
        # The apiserver validates selectors; one that slips through selects nothing.
        return labels.NOTHING


def affinity_term(owner: Any, term: Any) -> AffinityTerm:
    namespaces = frozenset(term.namespaces)
    ns_selector_msg = field_value(term, "namespace_selector")
    if not namespaces and ns_selector_msg is None:
        namespaces = frozenset({owner.metadata.namespace})  # defaults to the owner's
    ns_selector = labels.NOTHING if ns_selector_msg is None else _selector(ns_selector_msg)
    return AffinityTerm(_selector(field_value(term, "label_selector")), namespaces,
                        ns_selector, term.topology_key)


def _required_terms(owner: Any, section: Any | None) -> tuple[AffinityTerm, ...]:
    terms = field_value(section, "required_during_scheduling_ignored_during_execution", ())
    return tuple(affinity_term(owner, t) for t in terms or ())


def _preferred_terms(owner: Any, section: Any | None) -> tuple[tuple[int, AffinityTerm], ...]:
    terms = field_value(section, "preferred_during_scheduling_ignored_during_execution", ())
    return tuple((t.weight, affinity_term(owner, t.pod_affinity_term)) for t in terms or ()
                 if t.weight)


class PodInfo:
    """A pod plus what the plugins read of it, computed once (kube's PodInfo)."""

    def __init__(self, pod: Any):
        self.pod = pod
        self.key: PodKey = podutil.pod_key(pod)
        self.priority = podutil.priority(pod)
        self.requests: Resources = podutil.pod_requests(pod)
        self.non_zero_cpu, self.non_zero_memory = podutil.non_zero_requests(pod)
        self.host_ports = podutil.host_ports(pod)
        affinity = field_value(pod.spec, "affinity")
        pod_affinity = field_value(affinity, "pod_affinity")
        pod_anti_affinity = field_value(affinity, "pod_anti_affinity")
        self.has_affinity = pod_affinity is not None or pod_anti_affinity is not None
        self.required_affinity_terms = _required_terms(pod, pod_affinity)
        self.required_anti_affinity_terms = _required_terms(pod, pod_anti_affinity)
        self.preferred_affinity_terms = _preferred_terms(pod, pod_affinity)
        self.preferred_anti_affinity_terms = _preferred_terms(pod, pod_anti_affinity)

    @property
    def has_required_anti_affinity(self) -> bool:
        return bool(self.required_anti_affinity_terms)

    def with_pod(self, pod: Any) -> PodInfo:
        """This PodInfo for another version of the same pod (its nodeName or status
        changed). What it precomputed comes from the spec's requests, ports and
        affinity, which do not change; labels are always read from `pod`."""
        other = copy.copy(self)
        other.pod = pod
        return other

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


# ---------------------------------------------------------------- nodes

class NodeInfo:
    """A node and the pods on it (bound or assumed), with running totals.

    Mutated only by its owner (the cache, or preemption on its own clone);
    a Snapshot holds clones that nobody mutates.
    """

    def __init__(self, node: Any | None = None):
        self.node: Any | None = None
        # name, labels and taints are read for every node in every cycle:
        # plain attributes, kept in step with `node` by set_node/clear_node.
        self.name = ""
        self.labels: Mapping[str, str] = {}
        self.taints: Sequence[Any] = ()
        self.unschedulable = False  # spec.unschedulable (cordoned)
        self.allocatable: Resources = {}
        self.pods: list[PodInfo] = []
        self.pods_with_affinity: list[PodInfo] = []
        self.pods_with_required_anti_affinity: list[PodInfo] = []
        self.requested: Resources = {}
        self.non_zero_requested: Resources = {podutil.CPU: 0, podutil.MEMORY: 0}
        self.used_ports: Counter[podutil.HostPort] = Counter()
        self.generation = 0  # set by the cache: which snapshots are stale
        if node is not None:
            self.set_node(node)

    @property
    def allowed_pod_number(self) -> int:
        return self.allocatable.get(podutil.PODS, 0)

    def set_node(self, node: Any) -> None:
        self.node = node
        self.name = node.metadata.name
        self.labels = node.metadata.labels
        self.taints = tuple(field_value(node.spec, "taints", ()) or ())
        self.unschedulable = bool(node.spec.unschedulable)
        self.allocatable = podutil.node_allocatable(node)

    def clear_node(self) -> None:
        """The Node is gone (its pods may still be here)."""
        self.node = None
        self.name = ""
        self.labels = {}
        self.taints = ()
        self.unschedulable = False
        self.allocatable = {}

    def add_pod(self, pod: Any | PodInfo) -> PodInfo:
        info = pod if isinstance(pod, PodInfo) else PodInfo(pod)
        self.pods.append(info)
        if info.has_affinity:
            self.pods_with_affinity.append(info)
        if info.has_required_anti_affinity:
            self.pods_with_required_anti_affinity.append(info)
        self._account(info, 1)
        return info

    def remove_pod(self, key: PodKey) -> PodInfo | None:
        """Remove the pod with this key; None when it is not here."""
        for i, info in enumerate(self.pods):
            if info.key == key:
                del self.pods[i]
                break
        else:
            return None
        if info.has_affinity:
            self.pods_with_affinity = [p for p in self.pods_with_affinity if p.key != key]
        if info.has_required_anti_affinity:
            self.pods_with_required_anti_affinity = [
                p for p in self.pods_with_required_anti_affinity if p.key != key]
        self._account(info, -1)
        return info

    def _account(self, info: PodInfo, sign: int) -> None:
        for name, value in info.requests.items():
            total = self.requested.get(name, 0) + sign * value
            if total:
                self.requested[name] = total
            else:
                self.requested.pop(name, None)
        self.non_zero_requested[podutil.CPU] += sign * info.non_zero_cpu
        self.non_zero_requested[podutil.MEMORY] += sign * info.non_zero_memory
        for port in info.host_ports:
            self.used_ports[port] += sign
            if self.used_ports[port] <= 0:
                del self.used_ports[port]

    def get_pod(self, key: PodKey) -> PodInfo | None:
        for info in self.pods:
            if info.key == key:
                return info
        return None

    def clone(self) -> NodeInfo:
        """A copy whose pod lists and totals can change without touching this one."""
        other = NodeInfo.__new__(NodeInfo)
        other.node = self.node
        other.name = self.name
        other.labels = self.labels
        other.taints = self.taints
        other.unschedulable = self.unschedulable
        other.allocatable = self.allocatable  # replaced, never mutated, by set_node
        other.pods = list(self.pods)
        other.pods_with_affinity = list(self.pods_with_affinity)
        other.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        other.requested = dict(self.requested)
        other.non_zero_requested = dict(self.non_zero_requested)
        other.used_ports = Counter(self.used_ports)
        other.generation = self.generation
        return other

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={[str(p.key) for p in self.pods]})"


class Snapshot:
    """All schedulable nodes for one cycle, sorted by name, with topology lookups."""

    def __init__(self, node_infos: Iterable[NodeInfo] = (), *,
                 namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
                 generation: int = 0, presorted: bool = False):
        # presorted: the caller (the cache) hands nodes with a Node, sorted by name.
        infos = (list(node_infos) if presorted else
                 sorted((ni for ni in node_infos if ni.node is not None), key=lambda ni: ni.name))
        self._list: tuple[NodeInfo, ...] = tuple(infos)
        self._by_name = {ni.name: ni for ni in infos}
        self.namespace_labels: Mapping[str, Mapping[str, str]] = dict(namespace_labels or {})
        self.generation = generation
        self._domains: dict[str, dict[str, tuple[NodeInfo, ...]]] = {}
        self._with_affinity: tuple[NodeInfo, ...] | None = None
        self._with_required_anti: tuple[NodeInfo, ...] | None = None

    @property
    def node_infos(self) -> tuple[NodeInfo, ...]:
        return self._list

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self._list)

    def get(self, name: str) -> NodeInfo | None:
        return self._by_name.get(name)

    def pods(self) -> Iterator[tuple[NodeInfo, PodInfo]]:
        for ni in self._list:
            for info in ni.pods:
                yield ni, info

    @property
    def have_pods_with_affinity(self) -> tuple[NodeInfo, ...]:
        if self._with_affinity is None:
            self._with_affinity = tuple(ni for ni in self._list if ni.pods_with_affinity)
        return self._with_affinity

    @property
    def have_pods_with_required_anti_affinity(self) -> tuple[NodeInfo, ...]:
        if self._with_required_anti is None:
            self._with_required_anti = tuple(
                ni for ni in self._list if ni.pods_with_required_anti_affinity)
        return self._with_required_anti

    def domains(self, topology_key: str) -> Mapping[str, tuple[NodeInfo, ...]]:
        """Topology value -> the nodes labelled with it (nodes without the key are left out)."""
        found = self._domains.get(topology_key)
        if found is None:
            groups: dict[str, list[NodeInfo]] = {}
            for ni in self._list:
                value = ni.labels.get(topology_key)
                if value is not None:
                    groups.setdefault(value, []).append(ni)
            found = {value: tuple(nodes) for value, nodes in groups.items()}
            self._domains[topology_key] = found
        return found

    def nodes_in_domain(self, topology_key: str, value: str) -> tuple[NodeInfo, ...]:
        return self.domains(topology_key).get(value, ())

    def pods_in_domain(self, topology_key: str, value: str) -> list[PodInfo]:
        return [info for ni in self.nodes_in_domain(topology_key, value) for info in ni.pods]

    def with_node_info(self, node_info: NodeInfo) -> Snapshot:
        """A snapshot where `node_info` replaces the NodeInfo of the same name."""
        infos = [node_info if ni.name == node_info.name else ni for ni in self._list]
        return Snapshot(infos, namespace_labels=self.namespace_labels,
                        generation=self.generation)


def snapshot_of(nodes: Iterable[Any], pods: Iterable[Any] = (), *,
                namespace_labels: Mapping[str, Mapping[str, str]] | None = None) -> Snapshot:
    """A Snapshot from Node messages and Pods (each placed by its spec.nodeName)."""
    infos = {node.metadata.name: NodeInfo(node) for node in nodes}
    for pod in pods:
        ni = infos.get(pod.spec.node_name)
        if ni is not None:
            ni.add_pod(pod)
    return Snapshot(infos.values(), namespace_labels=namespace_labels)


class CycleState:
    """Scratch space shared by the plugins during one cycle for one pod."""

    def __init__(self, pod_info: PodInfo | None = None):
        self.pod_info = pod_info
        self._data: dict[str, Any] = {}
        # The filter plugins PreFilter did not skip; None before PreFilter ran.
        self.filters: tuple[Any, ...] | None = None

    def read(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value


def pod_info_of(pod: Any, state: CycleState | None) -> PodInfo:
    """The incoming pod's PodInfo: the cycle's, or a fresh one outside a cycle."""
    if state is not None and state.pod_info is not None and state.pod_info.pod is pod:
        return state.pod_info
    return PodInfo(pod)


def default_normalize(scores: Mapping[str, int], reverse: bool = False) -> dict[str, int]:
    """DefaultNormalizeScore: scale to 0..100 by the maximum (reversed: 100 - that)."""
    max_count = max(scores.values(), default=0)
    if max_count <= 0:
        return {name: (MAX_NODE_SCORE if reverse else score) for name, score in scores.items()}
    out = {}
    for name, score in scores.items():
        scaled = MAX_NODE_SCORE * score // max_count
        out[name] = MAX_NODE_SCORE - scaled if reverse else scaled
    return out


# ---------------------------------------------------------------- plugins

class Plugin(Protocol):
    NAME: str
    EVENTS: frozenset[str]


class FilterPlugin(Plugin, Protocol):
    def filter(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot,
               state: CycleState | None = None) -> Status: ...


class ScorePlugin(Plugin, Protocol):
    def score(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot,
              state: CycleState | None = None) -> int: ...


PluginFactory = Callable[[Mapping[str, Any]], Any]


class ConfigError(ValueError):
    """A scheduler profile names an unknown plugin or has a bad value."""


class Framework:
    """The filter and score plugins of one scheduler profile."""

    def __init__(self, filter_plugins: Sequence[Any], score_plugins: Sequence[tuple[Any, int]],
                 *, scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                 percentage_of_nodes_to_score: int = 100):
        if not 0 <= percentage_of_nodes_to_score <= 100:
            raise ConfigError(f"percentageOfNodesToScore: Invalid value: "
                              f"{percentage_of_nodes_to_score}: not in valid range [0-100]")
        for plugin in filter_plugins:
            if not callable(getattr(plugin, "filter", None)):
                raise ConfigError(f'plugin "{plugin.NAME}" does not extend filter plugin')
        total_weight = 0
        for plugin, weight in score_plugins:
            if not callable(getattr(plugin, "score", None)):
                raise ConfigError(f'plugin "{plugin.NAME}" does not extend score plugin')
            if weight <= 0:
                raise ConfigError(f'plugin "{plugin.NAME}": weight must be positive, got {weight}')
            total_weight += weight * MAX_NODE_SCORE
        if total_weight > MAX_TOTAL_SCORE_WEIGHT:
            raise ConfigError("total score of Score plugins could overflow")
        self.filter_plugins = tuple(filter_plugins)
        self.score_plugins = tuple(score_plugins)
        self.scheduler_name = scheduler_name
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        events: dict[str, set[str]] = {}
        for plugin in (*self.filter_plugins, *(p for p, _ in self.score_plugins)):
            for event in getattr(plugin, "EVENTS", ()):
                events.setdefault(event, set()).add(plugin.NAME)
        self._events_to_plugins = {e: frozenset(names) for e, names in events.items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any],
                    registry: Mapping[str, PluginFactory]) -> Framework:
        """Build from a profile (KubeSchedulerProfile-shaped dict)::

            {"schedulerName": "default-scheduler", "percentageOfNodesToScore": 100,
             "plugins": {"filter": {"enabled": [{"name": "NodeName"}, ...]},
                         "score": {"enabled": [{"name": "TaintToleration", "weight": 3}]}},
             "pluginConfig": [{"name": "NodeResourcesFit", "args": {...}}]}

        A plugin enabled at both points is one instance. A score weight of 0 or
        none means 1, as in Kubernetes.
        """
        known = {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"scheduler profile: unknown field {unknown[0]!r}")
        def name_of(entry: Any, where: str) -> str:
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: every entry needs a name, got {entry!r}")
            return name

        plugin_args: dict[str, Mapping[str, Any]] = {}
        for entry in config.get("pluginConfig") or ():
            plugin_args[name_of(entry, "pluginConfig")] = entry.get("args") or {}
        instances: dict[str, Any] = {}

        def instance(name: str) -> Any:
            if name not in instances:
                factory = registry.get(name)
                if factory is None:
                    raise ConfigError(f'plugin "{name}" does not exist')
                try:
                    instances[name] = factory(plugin_args.get(name, {}))
                except (ValueError, TypeError, KeyError) as err:
                    raise ConfigError(f'plugin "{name}": invalid args: {err}') from None
            return instances[name]

        points = config.get("plugins") or {}
        unknown_points = sorted(set(points) - {"filter", "score"})
        if unknown_points:
            raise ConfigError(f"scheduler profile: unsupported extension point "
                              f"{unknown_points[0]!r} (only filter and score)")
        filters = [instance(name_of(e, "plugins.filter.enabled"))
                   for e in (points.get("filter") or {}).get("enabled", ())]
        scores = []
        for entry in (points.get("score") or {}).get("enabled", ()):
            weight = int(entry.get("weight") or 1)
            scores.append((instance(name_of(entry, "plugins.score.enabled")), weight))
        percentage = config.get("percentageOfNodesToScore")
        return cls(filters, scores,
                   scheduler_name=config.get("schedulerName") or DEFAULT_SCHEDULER_NAME,
                   percentage_of_nodes_to_score=100 if percentage is None else int(percentage))

    # ------------------------------------------------------------ events

    @property
    def events_to_plugins(self) -> Mapping[str, frozenset[str]]:
        """Cluster event -> names of the plugins whose rejections it may resolve."""
        return self._events_to_plugins

    # ------------------------------------------------------------ extension points

    def run_pre_filter(self, pod: Any, snapshot: Snapshot, state: CycleState) -> Status:
        """Every PreFilter; the first rejection is returned. A plugin answering
        SKIP is left out of this cycle's filters (state.filters)."""
        skipped = set()
        for plugin in self.filter_plugins:
            pre_filter = getattr(plugin, "pre_filter", None)
            if pre_filter is None:
                continue
            status = pre_filter(pod, snapshot, state)
            if status is None or status.code == Code.SUCCESS:
                continue
            if status.code == Code.SKIP:
                skipped.add(plugin.NAME)
                continue
            return status.with_plugin(plugin.NAME)
        state.filters = tuple(p for p in self.filter_plugins if p.NAME not in skipped)
        return SUCCESS

    def run_filters(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot,
                    state: CycleState) -> Status:
        """The first failing filter's status (with its plugin), or SUCCESS."""
        plugins = state.filters if state.filters is not None else self.filter_plugins
        for plugin in plugins:
            status = plugin.filter(pod, node_info, snapshot, state)
            if status.code:  # Code.SUCCESS is 0
                return status.with_plugin(plugin.NAME)
        return SUCCESS

    def check_node(self, pod: Any, node_info: NodeInfo, snapshot: Snapshot) -> Status:
        """Pre-filter and filters on one node of `snapshot`, in a fresh cycle state."""
        state = CycleState(PodInfo(pod))
        status = self.run_pre_filter(pod, snapshot, state)
        if not status.is_success():
            return status
        return self.run_filters(pod, node_info, snapshot, state)

    def run_scores(self, pod: Any, snapshot: Snapshot, nodes: Sequence[NodeInfo],
                   state: CycleState) -> dict[str, int]:
        """Weighted sum of normalized plugin scores per node name."""
        totals = {ni.name: 0 for ni in nodes}
        for plugin, weight in self.score_plugins:
            pre_score = getattr(plugin, "pre_score", None)
            if pre_score is not None:
                status = pre_score(pod, snapshot, nodes, state)
                if status is not None and status.code == Code.SKIP:
                    continue  # it would score every node the same: adds nothing
            score = plugin.score
            scores = {ni.name: int(score(pod, ni, snapshot, state)) for ni in nodes}
            normalize = getattr(plugin, "normalize", None)
            if normalize is not None:
                scores = normalize(pod, scores, snapshot, state)
            for name, score in scores.items():
                if not MIN_NODE_SCORE <= score <= MAX_NODE_SCORE:
                    raise SchedulingError(
                        f"plugin {plugin.NAME!r} returns an invalid score {score} for node "
                        f"{name!r}, it should be in the range [{MIN_NODE_SCORE}, "
                        f"{MAX_NODE_SCORE}] after normalizing")
                totals[name] += score * weight
        return totals

    def num_feasible_nodes_to_find(self, num_all_nodes: int) -> int:
        """numFeasibleNodesToFind: stop filtering after this many feasible nodes."""
        if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND or self.percentage_of_nodes_to_score >= 100:
            return num_all_nodes
        percentage = self.percentage_of_nodes_to_score
        if percentage == 0:  # adaptive, as kube-scheduler's default
            percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


# ---------------------------------------------------------------- one cycle

@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """Why a pod fits nowhere: each rejecting node's status (FitError)."""

    num_all_nodes: int
    node_to_status: Mapping[str, Status] = dataclasses.field(default_factory=dict)
    unschedulable_plugins: frozenset[str] = frozenset()
    pre_filter_msg: str = ""

    def reason_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.node_to_status.values():
            for reason in status.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        return counts

    def message(self, post_filter_msg: str = "") -> str:
        """The FailedScheduling message, e.g.
        `0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.`
        followed by ` <post_filter_msg>` (preemption's) when given."""
        if self.num_all_nodes == 0:
            return NO_NODES_AVAILABLE_MSG
        msg = NO_NODE_AVAILABLE_FMT.format(self.num_all_nodes) + ":"
        if self.pre_filter_msg:
            msg += f" {self.pre_filter_msg}."
        else:
            # Kubernetes sorts "<count> <reason>" strings, count included.
            histogram = sorted(f"{n} {reason}" for reason, n in self.reason_counts().items())
            if histogram:
                msg += f" {', '.join(histogram)}."
        if post_filter_msg:
            msg += f" {post_filter_msg}"
        return msg


@dataclasses.dataclass(frozen=True)
class ScheduleResult:
    node_name: str | None
    diagnosis: Diagnosis
    evaluated_nodes: int = 0
    feasible_nodes: int = 0
    next_start_index: int = 0  # pass back as start_index next cycle (fairness)
    scores: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.diagnosis.message()


def schedule_one(framework: Framework, pod: Any, snapshot: Snapshot, rng: random.Random,
                 *, start_index: int = 0, pod_info: PodInfo | None = None) -> ScheduleResult:
    """Pick a node for `pod` (node_name None when none fits; see `diagnosis`).

    `pod_info`: the pod's PodInfo when the caller has one (it is reused).
    Raises SchedulingError when a plugin errs (not a verdict on the pod).
    """
    nodes = snapshot.node_infos
    n = len(nodes)
    if n == 0:
        return ScheduleResult(None, Diagnosis(0))
    state = CycleState(pod_info if pod_info is not None and pod_info.pod is pod
                       else PodInfo(pod))
    status = framework.run_pre_filter(pod, snapshot, state)
    if status.code == Code.ERROR:
        raise SchedulingError(f"running PreFilter plugin {status.plugin!r}: {status.message()}")
    if not status.is_success():
        # Every node gets the pre-filter's verdict; the message carries it once.
        return ScheduleResult(None, Diagnosis(
            n, {ni.name: status for ni in nodes}, frozenset({status.plugin}),
            pre_filter_msg=status.message()), evaluated_nodes=n,
            next_start_index=start_index % n)
    to_find = framework.num_feasible_nodes_to_find(n)
    feasible: list[NodeInfo] = []
    statuses: dict[str, Status] = {}
    rejecting: set[str] = set()
    processed = 0
    start = start_index % n
    run_filters = framework.run_filters
    for i in range(n):
        ni = nodes[(start + i) % n]
        processed += 1
        status = run_filters(pod, ni, snapshot, state)
        if not status.code:  # Code.SUCCESS
            feasible.append(ni)
            if len(feasible) >= to_find:
                break
        elif status.code == Code.ERROR:
            raise SchedulingError(
                f"running filter plugin {status.plugin!r} on node {ni.name!r}: "
                f"{status.message()}")
        else:
            statuses[ni.name] = status
            rejecting.add(status.plugin)
    next_start = (start + processed) % n
    diagnosis = Diagnosis(n, statuses, frozenset(rejecting))
    if not feasible:
        return ScheduleResult(None, diagnosis, evaluated_nodes=processed,
                              next_start_index=next_start)
    if len(feasible) == 1:
        return ScheduleResult(feasible[0].name, diagnosis, evaluated_nodes=processed,
                              feasible_nodes=1, next_start_index=next_start)
    scores = framework.run_scores(pod, snapshot, feasible, state)
    best = max(scores.values())
    # Feasible order is deterministic (sorted names from start_index), so a
    # seeded rng makes the tie-break reproducible.
    tied = [ni.name for ni in feasible if scores[ni.name] == best]
    chosen = tied[0] if len(tied) == 1 else rng.choice(tied)
    return ScheduleResult(chosen, diagnosis, evaluated_nodes=processed,
                          feasible_nodes=len(feasible), next_start_index=next_start,
                          scores=scores)
