"""Node loss: the time from a node's loss to all its pods Running elsewhere.

    .venv/bin/python bench/node_loss_bench.py [--nodes 3] [--replicas 30]
        [--grace 20s] [--toleration-s 10] [--fast]

Starts the whole cluster (the fast profile's control plane with
--node-monitor-grace-period `grace`) with `nodes` nodes through the
supervisor in a temporary KUBEMU_HOME, runs a Deployment of `replicas`
`registry.k8s.io/pause` pods whose template tolerates not-ready/unreachable
for `toleration_s` seconds, waits until all are Running and Ready, then takes
away the node holding the most of them (paused, SIGSTOP through the supervisor, its kubelet, runtime and
kube-proxy; the pod processes keep running). Polling the apiserver every
0.1 s, it prints, in seconds since the loss: the node's Ready condition
Unknown, its NoExecute taint, the first and the last of its pods deleted,
and every replica Running and Ready on the other nodes; then the floor
Kubernetes' design sets (grace + tolerationSeconds), what the emulator adds
on top of it, and their ratio (the grace period runs from the node's last
lease renewal, up to a renewal interval before the loss, so the floor is
counted from there). Finally resuming brings the node back and the
time until it is Ready without taints is printed.

Kubelet timings are Kubernetes' defaults (lease renewed every 10 s, so the
grace must stay above that), or the tests' with --fast (1 s; a grace of a
few seconds is then fine). Figures are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time


from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu import timefmt
from kubemu.api import codec
from kubemu.api.kinds import REGISTRY
from kubemu.cli.common import parse_duration_s
from kubemu.client.clientset import Client

NAMESPACE = "bench"
WAIT_S = 900.0
POLL_S = 0.1
FAST_KUBELET_FLAGS = ["--pleg-relist-s", "0.1", "--sync-frequency-s", "2",
                      "--node-status-update-s", "1", "--node-lease-renew-s", "1"]
NODE_PROCESSES = (comp.KUBELET, comp.RUNTIME, comp.KUBE_PROXY)
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def obj(doc: dict):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    return codec.from_dict(kind.message, doc)


def deployment(replicas: int, toleration_s: int):
    tolerations = [{"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": toleration_s} for key in (NOT_READY, UNREACHABLE)]
    return obj({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "bench", "namespace": NAMESPACE},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                         "template": {"metadata": {"labels": {"app": "bench"}},
                                      "spec": {"terminationGracePeriodSeconds": 1,
                                               "tolerations": tolerations,
                                               "containers": [{
                                                   "name": "main",
                                                   "image": "registry.k8s.io/pause:3.9"}]}}}})


def ready(obj_) -> str:
    return next((c.status for c in obj_.status.conditions if c.type == "Ready"), "")


def running_ready(pod) -> bool:
    return pod.status.phase == "Running" and ready(pod) == "True" \
        and not pod.metadata.deletion_timestamp


async def pods(api: Client) -> list:
    return list((await api.list("pods", NAMESPACE, label_selector="app=bench")).items)


async def poll_until(what: str, check, began: float) -> float:
    """Seconds (since `began`) until check() is truthy, polled every POLL_S."""
    deadline = time.perf_counter() + WAIT_S
    while time.perf_counter() < deadline:
        if await check():
            return time.perf_counter() - began
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{what}: not within {WAIT_S:g} s")


def node_processes(cluster: Cluster, node: str) -> list:
    found = [s for s in cluster.status()
             if s.node == node and s.component in NODE_PROCESSES and s.pid]
    if len(found) != len(NODE_PROCESSES):
        raise RuntimeError(f"{node}: expected {NODE_PROCESSES} running, found {found}")
    return found


async def measure(api: Client, cluster: Cluster, args: argparse.Namespace) -> None:
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": NAMESPACE}}))
    began = time.perf_counter()
    await api.create(deployment(args.replicas, args.toleration_s))

    async def all_running(avoid: str = "") -> bool:
        live = [p for p in await pods(api) if running_ready(p)]
        return len(live) == args.replicas and not any(p.spec.node_name == avoid for p in live)
    await poll_until("replicas Running", all_running, began)
    print(f"{args.replicas} replicas Running and Ready in {time.perf_counter() - began:.1f} s")
    placed: dict[str, list[str]] = {}
    for pod in await pods(api):
        placed.setdefault(pod.spec.node_name, []).append(pod.metadata.name)
    victim = max(sorted(placed), key=lambda n: len(placed[n]))
    lost = set(placed[victim])
    print("pods per node: " + ", ".join(f"{n} {len(placed[n])}" for n in sorted(placed))
          + f"; taking {victim} away")

    names = [p.name for p in await asyncio.to_thread(node_processes, cluster, victim)]
    try:
        loss = time.perf_counter()
        loss_wall_s = time.time()
        # Paused through the supervisor (SIGSTOP): stopped behind its back, they
        # would fail their health checks and be restarted.
        await cluster.pause(names)
        # The grace period runs from the last renewal the controller saw, not the loss.
        lease = await api.get("leases", victim, "kube-node-lease")
        renewed_before_s = max(0.0, loss_wall_s - timefmt.parse_rfc3339(lease.spec.renew_time))

        async def unknown() -> bool:
            return ready(await api.get("nodes", victim)) == "Unknown"

        async def tainted() -> bool:
            node = await api.get("nodes", victim)
            return any(t.key == UNREACHABLE and t.effect == "NoExecute" for t in node.spec.taints)

        async def deleted(count: int):
            async def check() -> bool:
                going = [p for p in await pods(api)
                         if p.metadata.name in lost and p.metadata.deletion_timestamp]
                return len(going) >= count
            return check

        figures = [("Ready Unknown", await poll_until("Unknown", unknown, loss)),
                   ("NoExecute taint", await poll_until("taint", tainted, loss)),
                   ("first pod deleted", await poll_until("first", await deleted(1), loss)),
                   ("last pod deleted",
                    await poll_until("last", await deleted(len(lost)), loss))]
        recovered = await poll_until("replaced", lambda: all_running(avoid=victim), loss)
        figures.append((f"all {args.replicas} Running (its {len(lost)} elsewhere)", recovered))
        for label, seconds in figures:
            print(f"  {label:<40} {seconds:7.2f} s after the loss")
        floor = parse_duration_s(args.grace) + args.toleration_s - renewed_before_s
        print(f"node loss -> its pods Running elsewhere: {recovered:.2f} s; floor (grace "
              f"{args.grace} + tolerationSeconds {args.toleration_s} - the last lease renewal "
              f"{renewed_before_s:.2f} s before the loss) {floor:.2f} s; "
              f"overhead {recovered - floor:.2f} s; ratio {recovered / floor:.2f}")
    finally:
        await cluster.resume(names)
    back = time.perf_counter()

    async def node_back() -> bool:
        node = await api.get("nodes", victim)
        return ready(node) == "True" and not node.spec.taints
    print(f"{victim} back: Ready without taints {await poll_until('back', node_back, back):.2f} s "
          f"after the resume")


async def run(args: argparse.Namespace) -> None:
    flags = (*comp.CONTROLLER_MANAGER_FAST_FLAGS, "--node-monitor-grace-period", args.grace,
             "--node-monitor-period", args.monitor_period)
    kinds = (comp.ETCD_KIND, comp.APISERVER_KIND, comp.SCHEDULER_KIND,
             comp.controller_manager_kind(flags))
    node_kinds = comp.node_components(kubelet_flags=FAST_KUBELET_FLAGS if args.fast else ())
    with tempfile.TemporaryDirectory(prefix="kubemu-bench-") as home:
        cluster = Cluster(home, nodes=args.nodes, kinds=kinds, node_kinds=node_kinds,
                          progress=lambda line: None)
        began = time.perf_counter()
        await cluster.start(120)
        print(f"cluster with {args.nodes} nodes ready in {time.perf_counter() - began:.1f} s "
              f"(kubelet timings: {'fast' if args.fast else 'Kubernetes defaults'}; "
              f"node-monitor-grace-period {args.grace}, period {args.monitor_period})")
        try:
            async with Client(cluster.address(comp.APISERVER), timeout_s=30) as api:
                await measure(api, cluster, args)
        finally:
            await cluster.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--replicas", type=int, default=30)
    p.add_argument("--grace", default="20s", help="--node-monitor-grace-period (default 20s)")
    p.add_argument("--monitor-period", default="1s", help="--node-monitor-period (default 1s)")
    p.add_argument("--toleration-s", type=int, default=10,
                   help="the template's not-ready/unreachable tolerationSeconds (default 10)")
    p.add_argument("--fast", action="store_true", help="the tests' kubelet timings")
    args = p.parse_args()
    if args.nodes < 2:
        p.error("--nodes: at least 2 (the pods need somewhere to go)")
    try:
        parse_duration_s(args.grace)
        parse_duration_s(args.monitor_period)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
