"""kubemu's scheduler: kube-scheduler's model in small, pure pieces.

- `framework`: NodeInfo / Snapshot / Status, the plugin protocol, `Framework`
  (built from a profile config and a registry) and `schedule_one`.
- `plugins`: one module per plugin (NodeName, NodeUnschedulable, TaintToleration,
  NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread, InterPodAffinity,
  NodeResourcesBalancedAllocation, ...), plus the registry and the default profile.
- `queue`: the scheduling queue (activeQ / backoffQ / unschedulable pods).
- `cache`: nodes and pods as the informers report them, plus assumed pods.
- `preemption`: victim selection for a pod that fits nowhere.

Everything here is pure or in-memory; `app.py` / `__main__.py` wire it to the
apiserver. Decisions take an injected clock and a seeded random generator.
"""
