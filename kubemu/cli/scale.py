"""`kubemu scale`: set the replicas of deployments, replica sets and stateful sets, as
`kubectl scale` does.

`kubemu scale [--current-replicas=N] [--resource-version=RV] --replicas=COUNT
(-f FILE | TYPE NAME... | TYPE/NAME... | TYPE -l SEL | TYPE --all)` sends each
object the merge patch `{"spec":{"replicas":COUNT}}` (kubectl's scale
subresource patch) and prints `deployment.apps/web scaled`. With a
precondition the object is read first: `--current-replicas` that does not
match is kubectl's `Expected replicas to be 2, was 3`, a stale
`--resource-version` `Expected resource version to be 9, was 12`; the
patch then carries the resourceVersion read, so a concurrent change is a
Conflict, retried (re-checking the precondition) for up to a bounded number
of tries, as kubectl's scaler retries Conflicts. `--timeout` waits until
status.replicas equals the new count. Objects are scaled in the order
given; the first failure stops the command, as in kubectl.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

# Kinds with a scale subresource (spec.replicas) that kubemu serves.
SCALABLE = ("deployments", "replicasets", "statefulsets", "replicationcontrollers")
CONFLICT_RETRIES_MAX = 10
CONFLICT_DELAY_S = 0.2
POLL_S = 1.0   # kubectl's waitForReplicas interval


class PreconditionError(CliError):
    """kubectl's scale.PreconditionError."""

    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(f"Expected {what} to be {expected}, was {actual}")


def check_preconditions(doc: dict[str, Any], current_replicas: int, resource_version: str
                        ) -> None:
    """Raise PreconditionError when the object is not as the flags require."""
    replicas = int((doc.get("spec") or {}).get("replicas") or 0)
    if current_replicas != -1 and replicas != current_replicas:
        raise PreconditionError("replicas", str(current_replicas), str(replicas))
    rv = (doc.get("metadata") or {}).get("resourceVersion", "")
    if resource_version and rv != resource_version:
        raise PreconditionError("resource version", resource_version, rv)


async def scale_one(client: Any, kind: Any, namespace: str, name: str, replicas: int, *,
                    current_replicas: int = -1, resource_version: str = "",
                    dry_run: bool = False, cause: str | None = None) -> Any:
    """Scale one object; returns it as the server left it."""
    from kubemu.api import errors

    if kind.resource not in SCALABLE:
        raise errors.NotFound("the server could not find the requested resource")
    guarded = current_replicas != -1 or bool(resource_version)
    for _ in range(CONFLICT_RETRIES_MAX):
        patch: dict[str, Any] = {"spec": {"replicas": replicas}}
        if cause is not None:   # kubectl records in a second patch; one is enough here
            patch["metadata"] = {"annotations": {common.CHANGE_CAUSE: cause}}
        if guarded:
            live = common.to_json(await client.get(kind.resource, name, namespace), kind)
            check_preconditions(live, current_replicas, resource_version)
            patch.setdefault("metadata", {})["resourceVersion"] = \
                live["metadata"]["resourceVersion"]
        try:
            return await client.patch(kind.resource, name, namespace, patch=patch,
                                      dry_run=dry_run)
        except errors.Conflict:
            if not guarded or resource_version:
                raise
            await asyncio.sleep(CONFLICT_DELAY_S)
    raise CliError(f"{common.kind_label(kind)}/{name}: the object kept changing; gave up "
                   f"after {CONFLICT_RETRIES_MAX} tries")


async def wait_for_replicas(client: Any, kind: Any, namespace: str, name: str, replicas: int,
                            timeout_s: float) -> None:
    """kubectl's WaitForScaleHasDesiredReplicas: until status.replicas catches up."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = common.to_json(await client.get(kind.resource, name, namespace), kind)
        spec_n = int((doc.get("spec") or {}).get("replicas") or 0)
        status_n = int((doc.get("status") or {}).get("replicas") or 0)
        if spec_n != replicas or status_n == replicas:
            return   # someone else scaled it meanwhile, or done
        if time.monotonic() >= deadline:
            raise CliError(f'timed out waiting for "{name}" to be synced')
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


async def run_scale(args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater than "
                       "or equal to 0")
    if args.current_replicas < -1:
        raise CliError("The --current-replicas must specify an integer of -1 or greater")
    if not args.resources and not args.filename:
        raise CliError(common.NO_RESOURCES, verbatim=True)
    from kubemu.cli import output

    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    printer = output.make_printer(args.output, allowed=output.OBJECT_FORMATS,
                                  name_suffix="") if args.output else None
    namespace = common.namespace_of(args)
    cause = common.change_cause(args)
    async with common.client_for(args) as client:
        refs = await common.object_refs(client, args, namespace)
        if args.resource_version and len(refs) > 1:
            raise CliError("cannot use --resource-version with multiple resources")
        if not refs:
            raise CliError("no objects passed to scale")
        for kind, ns, name in refs:
            if args.dry_run == "client":
                result = None
                if printer is not None:   # kubectl prints the object it read, replicas set
                    doc = common.to_json(await client.get(kind.resource, name, ns), kind)
                    doc.setdefault("spec", {})["replicas"] = args.replicas
            else:
                result = await scale_one(client, kind, ns, name, args.replicas,
                                         current_replicas=args.current_replicas,
                                         resource_version=args.resource_version,
                                         dry_run=args.dry_run == "server", cause=cause)
                if args.timeout_s and args.dry_run == "none":
                    await wait_for_replicas(client, kind, ns, name, args.replicas,
                                            args.timeout_s)
            if printer is None:
                print(common.name_line(kind, name, "scaled", args.dry_run), flush=True)
            else:
                if result is not None:
                    doc = common.to_json(result, kind)
                sys.stdout.write(printer.render(doc) if args.output != "name"
                                 else f"{common.kind_label(kind)}/{name}{suffix}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scale", help="set a new size for a deployment, replica set or stateful set",
        description="Set a new size for a deployment, replica set or stateful set, like "
                    "kubectl scale: --replicas=COUNT (-f FILE | TYPE NAME).")
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--replicas", type=int, required=True,
                   help="the new desired number of replicas")
    p.add_argument("--current-replicas", type=int, default=-1,
                   help="precondition: the current size must be this (-1: no condition)")
    p.add_argument("--resource-version", default="",
                   help="precondition: the current resource version must be this")
    p.add_argument("--timeout", type=common.parse_duration_s, default=0.0, dest="timeout_s",
                   help="wait this long for the new size (0: do not wait)")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--all", action="store_true",
                   help="every object of the type(s) in the namespace")
    p.add_argument("-o", "--output", default="", metavar="name")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   nargs="?", const="client")
    common.add_namespace_arg(p)
    common.add_record_arg(p)
    p.set_defaults(func=run_scale)
