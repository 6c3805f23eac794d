"""`kubemu autoscale (deployment|replicaset|statefulset) NAME --max=N [--min=N]
[--cpu-percent=N] [--name=NAME]`, as kubectl autoscale: a HorizontalPodAutoscaler
for the object, built as kubectl builds it (an autoscaling/v1 object, which the
kinds layer converts to the served autoscaling/v2: --cpu-percent becomes a cpu
Utilization metric; without it the apiserver's default, 80%, applies). Prints
`horizontalpodautoscaler.autoscaling/NAME autoscaled`, or the object with -o;
--dry-run as kubectl's.
"""
from __future__ import annotations

import argparse
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

# The kinds kubectl autoscale accepts that kubemu serves (kubectl's
# CanBeAutoscaled also names ReplicationController).
AUTOSCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")


def build_autoscaler(obj: dict[str, Any], *, name: str, min_replicas: int, max_replicas: int,
                     cpu_percent: int) -> dict[str, Any]:
    """kubectl's autoscale generator, converted to autoscaling/v2."""
    from kubemu.api import conversion

    meta = obj.get("metadata") or {}
    spec: dict[str, Any] = {"scaleTargetRef": {"apiVersion": obj.get("apiVersion", ""),
                                               "kind": obj.get("kind", ""),
                                               "name": meta.get("name", "")},
                            "maxReplicas": max_replicas}
    if min_replicas > -1:
        spec["minReplicas"] = min_replicas
    if cpu_percent > -1:
        spec["targetCPUUtilizationPercentage"] = cpu_percent
    return conversion.to_served({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name or meta.get("name", "")}, "spec": spec})


def check_flags(min_replicas: int, max_replicas: int) -> None:
    """kubectl's AutoscaleOptions.Validate."""
    if max_replicas < 1:
        raise CliError(f"--max=MAXPODS is required and must be at least 1, max: {max_replicas}")
    if max_replicas < min_replicas:
        raise CliError(f"--max=MAXPODS must be larger or equal to --min=MINPODS, max: "
                       f"{max_replicas}, min: {min_replicas}")


async def run_autoscale(args: argparse.Namespace) -> int:
    from kubemu.cli.apply import create_generated

    check_flags(args.min, args.max)
    words = list(args.words)
    if len(words) == 1 and "/" in words[0]:
        words = words[0].split("/", 1)
    if len(words) != 2:
        raise CliError("You must provide the type and name of the resource to autoscale "
                       "(TYPE NAME or TYPE/NAME)")
    kind = common.resolve_kind(words[0])
    namespace = common.namespace_of(args)
    async with common.client_for(args) as client:
        target = common.to_json(await client.get(kind.resource, words[1], namespace), kind)
        if kind.kind not in AUTOSCALABLE:
            group_kind = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
            raise CliError(f"cannot autoscale a {group_kind}")
        doc = build_autoscaler(target, name=args.name, min_replicas=args.min,
                               max_replicas=args.max, cpu_percent=args.cpu_percent)
        await create_generated(args, doc, verb="autoscaled", client=client)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from kubemu.cli.apply import add_dry_run_arg, add_object_output_arg

    p = subparsers.add_parser(
        "autoscale", help="auto-scale a deployment, replica set or stateful set",
        description="Creates an autoscaler that automatically chooses and sets the number of "
                    "pods that run in a Kubernetes cluster (as kubectl autoscale).")
    p.add_argument("words", nargs="+", metavar="(TYPE NAME | TYPE/NAME)")
    common.add_namespace_arg(p)
    p.add_argument("--min", type=int, default=-1,
                   help="the lower limit of pods (default: the server's, 1)")
    p.add_argument("--max", type=int, default=-1, help="the upper limit of pods (required)")
    p.add_argument("--cpu-percent", type=int, default=-1,
                   help="the target average CPU utilization over all the pods, as a "
                        "percentage of their request (default: the server's, 80)")
    p.add_argument("--name", default="", help="the autoscaler's name (default: the object's)")
    add_dry_run_arg(p)
    add_object_output_arg(p)
    p.set_defaults(func=run_autoscale)
