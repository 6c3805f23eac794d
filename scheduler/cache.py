"""The scheduler's cache: nodes and the pods on them, including assumed pods.

Model (kube-scheduler's internal cache):
- Nodes and assigned pods (spec.nodeName set) come from the informers:
  add_node/update_node/remove_node, add_pod/update_pod/remove_pod.
- `assume(pod, node)`: right after choosing a node, before binding, the pod
  counts on that node, so a burst of scheduling decisions never overcommits.
  `finish_binding(key)` starts the assumed pod's TTL; `forget(key)` undoes the
  assumption when binding failed. When the informer reports the pod bound
  (add_pod), the assumption is confirmed (on the node the informer says, should
  that differ). Assumed pods whose binding finished but which the informer has
  not confirmed within `assumed_pod_ttl_s` are dropped by `cleanup_expired()`
  (0 = never expire).
- A node removed while pods still point at it is kept, without its Node, until
  those pods go: its pods stay counted and it is left out of snapshots.
- `snapshot()`: a Snapshot for one cycle. Incremental: every change stamps the
  NodeInfo with a new generation; only NodeInfos changed since the last
  snapshot are cloned, the rest are shared (nobody mutates a snapshot's
  NodeInfos). Unchanged cache -> the same Snapshot object.
Namespace labels (for affinity namespaceSelector) can be fed in too. Keys are
PodKey (namespace, name, uid). Bounded: CacheFull beyond max_nodes / max_pods.
The clock is injectable; one event loop, no threads.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

from scheduler import podutil
from scheduler.framework import NodeInfo, PodInfo, Snapshot
from scheduler.podutil import PodKey

DEFAULT_ASSUMED_POD_TTL_S = 30.0
DEFAULT_MAX_NODES = 100_000
DEFAULT_MAX_PODS = 1_000_000


class CacheFull(Exception):
    """Adding would exceed the cache's bound."""


class CacheError(ValueError):
    """A call that contradicts the cache's state (assuming a pod twice, ...)."""


@dataclasses.dataclass
class _PodState:
    info: PodInfo  # as counted on its node
    node_name: str
    assumed: bool
    binding_finished: bool = False
    deadline: float | None = None


class SchedulerCache:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 assumed_pod_ttl_s: float = DEFAULT_ASSUMED_POD_TTL_S,
                 max_nodes: int = DEFAULT_MAX_NODES, max_pods: int = DEFAULT_MAX_PODS):
        if assumed_pod_ttl_s < 0:
            raise ValueError(f"SchedulerCache: assumed_pod_ttl_s must be >= 0, "
                             f"got {assumed_pod_ttl_s}")
        self._clock = clock
        self.assumed_pod_ttl_s = assumed_pod_ttl_s
        self.max_nodes = max_nodes
        self.max_pods = max_pods
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[PodKey, _PodState] = {}
        self._namespace_labels: dict[str, dict[str, str]] = {}
        self._generation = 0
        self._snapshot: Snapshot | None = None
        self._snapshot_infos: dict[str, NodeInfo] = {}
        # Names of the nodes with a Node, sorted; None when the set changed.
        self._sorted_names: list[str] | None = None

    # ------------------------------------------------------------ nodes

    def add_node(self, node: Any) -> None:
        name = node.metadata.name
        ni = self._nodes.get(name)
        if ni is None:
            if len(self._nodes) >= self.max_nodes:
                raise CacheFull(f"scheduler cache: {self.max_nodes} nodes already; "
                                f"cannot add {name}")
            ni = self._nodes[name] = NodeInfo()
        if ni.node is None:
            self._sorted_names = None
        ni.set_node(node)
        self._touch(ni)

    def update_node(self, old: Any | None, new: Any) -> None:
        self.add_node(new)

    def remove_node(self, node: Any) -> None:
        name = node if isinstance(node, str) else node.metadata.name
        ni = self._nodes.get(name)
        if ni is None:
            return
        self._sorted_names = None
        if ni.pods:
            # Pods still point here; their own delete events will follow.
            ni.clear_node()
            self._touch(ni)
        else:
            del self._nodes[name]
            self._generation += 1

    # ------------------------------------------------------------ pods (informer)

    def add_pod(self, pod: Any) -> None:
        """An assigned pod (spec.nodeName set) appeared; confirms an assumed pod."""
        node_name = pod.spec.node_name
        if not node_name:
            raise CacheError(f"pod {podutil.pod_key(pod)} has no spec.nodeName: "
                             f"only assigned pods belong in the cache")
        key = podutil.pod_key(pod)
        state = self._pods.get(key)
        if state is not None:
            self._remove(key)
        elif len(self._pods) >= self.max_pods:
            raise CacheFull(f"scheduler cache: {self.max_pods} pods already; cannot add {key}")
        # Confirming an assumed pod: what its PodInfo computed has not changed.
        self._add(state.info.with_pod(pod) if state is not None and state.assumed else pod,
                  node_name, assumed=False)

    def update_pod(self, old: Any | None, new: Any) -> None:
        """An assigned pod changed (or an assumed one got bound: confirmed)."""
        if not new.spec.node_name:
            self.remove_pod(new)  # cannot happen in Kubernetes; stay consistent anyway
            return
        self.add_pod(new)

    def remove_pod(self, pod: Any) -> None:
        key = podutil.pod_key(pod)
        if key in self._pods:
            self._remove(key)

    # ------------------------------------------------------------ pods (scheduler)

    def assume(self, pod: Any, node_name: str, pod_info: PodInfo | None = None) -> Any:
        """Count `pod` on `node_name` now; returns the assumed copy (nodeName set).

        `pod_info`: the cycle's PodInfo of `pod`, reused instead of recomputed."""
        key = podutil.pod_key(pod)
        if key in self._pods:
            raise CacheError(f"pod {key} is already in the scheduler cache "
                             f"(on node {self._pods[key].node_name!r}); cannot assume it")
        if len(self._pods) >= self.max_pods:
            raise CacheFull(f"scheduler cache: {self.max_pods} pods already; cannot assume {key}")
        assumed = type(pod)()
        assumed.CopyFrom(pod)
        assumed.spec.node_name = node_name
        reuse = pod_info is not None and pod_info.key == key
        self._add(pod_info.with_pod(assumed) if reuse else assumed, node_name, assumed=True)
        return assumed

    def finish_binding(self, key: PodKey) -> None:
        """The bind call went out: the assumed pod expires after the TTL unless confirmed."""
        state = self._pods.get(key)
        if state is None or not state.assumed:
            return
        state.binding_finished = True
        if self.assumed_pod_ttl_s > 0:
            state.deadline = self._clock() + self.assumed_pod_ttl_s

    def forget(self, key: PodKey) -> bool:
        """Undo an assumption (binding failed). False when the pod is not assumed."""
        state = self._pods.get(key)
        if state is None or not state.assumed:
            return False
        self._remove(key)
        return True

    def is_assumed(self, key: PodKey) -> bool:
        state = self._pods.get(key)
        return state is not None and state.assumed

    def cleanup_expired(self) -> list[PodKey]:
        """Drop assumed pods whose TTL passed without confirmation; returns their keys."""
        now = self._clock()
        expired = [key for key, s in self._pods.items()
                   if s.assumed and s.binding_finished and s.deadline is not None
                   and s.deadline <= now]
        for key in expired:
            self._remove(key)
        return expired

    # ------------------------------------------------------------ namespaces

    def set_namespace_labels(self, name: str, labels: Mapping[str, str]) -> None:
        if self._namespace_labels.get(name) != dict(labels):
            self._namespace_labels[name] = dict(labels)
            self._generation += 1

    def remove_namespace(self, name: str) -> None:
        if self._namespace_labels.pop(name, None) is not None:
            self._generation += 1

    # ------------------------------------------------------------ reading

    def snapshot(self) -> Snapshot:
        if self._snapshot is not None and self._snapshot.generation == self._generation:
            return self._snapshot
        if self._sorted_names is None:
            self._sorted_names = sorted(name for name, ni in self._nodes.items()
                                        if ni.node is not None)
        infos: dict[str, NodeInfo] = {}
        for name in self._sorted_names:
            ni = self._nodes[name]
            previous = self._snapshot_infos.get(name)
            infos[name] = (previous if previous is not None
                           and previous.generation == ni.generation else ni.clone())
        self._snapshot_infos = infos
        self._snapshot = Snapshot(infos.values(), namespace_labels=self._namespace_labels,
                                  generation=self._generation, presorted=True)
        return self._snapshot

    def get_pod(self, key: PodKey) -> Any | None:
        state = self._pods.get(key)
        return state.info.pod if state is not None else None

    def node_of(self, key: PodKey) -> str | None:
        state = self._pods.get(key)
        return state.node_name if state is not None else None

    def node_names(self) -> list[str]:
        return sorted(name for name, ni in self._nodes.items() if ni.node is not None)

    def pod_count(self) -> int:
        return len(self._pods)

    def dump(self) -> dict[str, list[str]]:
        """Node name -> pod keys on it (assumed ones marked), for debugging."""
        return {name: [str(p.key) + (" (assumed)" if self.is_assumed(p.key) else "")
                       for p in ni.pods]
                for name, ni in sorted(self._nodes.items())}

    # ------------------------------------------------------------ internals

    def _touch(self, ni: NodeInfo) -> None:
        self._generation += 1
        ni.generation = self._generation

    def _add(self, pod: Any | PodInfo, node_name: str, *, assumed: bool) -> None:
        ni = self._nodes.get(node_name)
        if ni is None:
            # The pod's node is not known yet (events race): hold its pods.
            ni = self._nodes[node_name] = NodeInfo()
        info = ni.add_pod(pod)
        self._pods[info.key] = _PodState(info, node_name, assumed)
        self._touch(ni)

    def _remove(self, key: PodKey) -> None:
        state = self._pods.pop(key)
        ni = self._nodes.get(state.node_name)
        if ni is None:
            return
        ni.remove_pod(key)
        if ni.node is None and not ni.pods:
            del self._nodes[state.node_name]
            self._generation += 1
        else:
            self._touch(ni)
