"""kubemu's scheduler: kube-scheduler's model in small, pure pieces.

- `framework`: NodeInfo / Snapshot / Status, the plugin protocol, `Framework`
  (built from a profile config and a registry) and `schedule_one`.
- `plugins`: one module per plugin (NodeName, NodeUnschedulable, TaintToleration,
  NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread, InterPodAffinity,
  NodeResourcesBalancedAllocation, ...), plus the registry and the default profile.
- `queue`: the scheduling queue (activeQ / backoffQ / unschedulable pods).
- `cache`: nodes and pods as the informers report them, plus assumed pods.
- `preemption`: victim selection for a pod that fits nowhere.
- `config`: the profile from --config (a KubeSchedulerConfiguration) or the default.
- `events`: Events through the API (bounded, de-duplicated, best effort).
- `app`: the process: informers, leader election, the scheduling loop, async binds.

Everything but `app`, `events` and `__main__` is pure or in-memory; those wire
it to the apiserver. Decisions take an injected clock and a seeded random generator.
"""
