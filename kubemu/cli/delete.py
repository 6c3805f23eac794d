"""`kubemu delete`: delete objects by type and name, from manifests, by selector, or all.

Prints kubectl's `pod "nginx" deleted` as soon as the apiserver accepts each
deletion; then, with --wait (the default), waits until every object whose
deletion is still pending (a graceful pod, finalizers) is gone, up to
--timeout. NotFound is an error unless --ignore-not-found (implied by --all
and by -l).

Grace periods follow kubectl: --now is --grace-period=1; --grace-period=0
without --force becomes 1 (an immediate deletion must be asked for); --force
alone means 0, warns on stderr that the resource may keep running, and the
line reads `pod "x" force deleted`.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

# The wait for pending deletions polls the object; the interval doubles up to this.
_POLL_S_MAX = 1.0
_POLL_S_FIRST = 0.05
# Without --timeout: the grace period plus this margin, so a wait always ends.
_WAIT_MARGIN_S = 60.0
_DEFAULT_GRACE_S = 30


async def _targets_from_args(client: Any, args: argparse.Namespace,
                             namespace: str) -> list[tuple[Any, str, str]]:
    """(kind, namespace, name) for every object the arguments name."""
    out: list[tuple[Any, str, str]] = []
    if args.filename:
        if args.resources:
            raise CliError("cannot specify both resource arguments and -f")
        from kubemu.cli import manifests

        docs = manifests.load_documents(args.filename, recursive=args.recursive)
        decoded, problems = manifests.decode(docs, namespace=args.namespace)
        if problems:
            raise CliError("\n".join(problems))  # one line per problem
        return [(m.kind, m.namespace, m.name) for m in decoded]
    targets = common.parse_targets(args.resources)
    for target in targets:
        ns = namespace if target.kind.namespaced else ""
        if target.names:
            if args.selector or args.all:
                raise CliError("name cannot be provided when a selector or --all is specified")
            out.extend((target.kind, ns, name) for name in target.names)
        elif args.selector or args.all:
            result = await client.list_all(target.kind.resource, ns,
                                           label_selector=args.selector or "",
                                           field_selector=args.field_selector or "")
            out.extend((target.kind, o.metadata.namespace if target.kind.namespaced else "",
                        o.metadata.name) for o in result.items)
        else:
            raise CliError("resource(s) were provided, but no name was specified")
    return out


async def run_delete(args: argparse.Namespace) -> int:
    from kubemu.api import errors

    if not args.resources and not args.filename:
        raise CliError("You must provide one or more resources by argument or filename.")
    if args.output and args.output != "name":
        raise CliError(f"unexpected -o output mode: {args.output}. We only support '-o name'")
    if args.all and args.selector:
        raise CliError("cannot set --all and --selector at the same time")
    if args.all and args.field_selector:
        raise CliError("cannot set --all and --field-selector at the same time")
    grace_s = -1 if args.grace_period is None else args.grace_period
    if args.now:
        if grace_s != -1:
            raise CliError("--now and --grace-period cannot be specified together")
        grace_s = 1
    if grace_s == 0 and not args.force:
        grace_s = 1  # kubectl: an immediate deletion needs --force
    if args.force and grace_s < 0:
        grace_s = 0
    if args.force and grace_s == 0:
        common.warn("Immediate deletion does not wait for confirmation that the running "
                    "resource has been terminated. The resource may continue to run on the "
                    "cluster indefinitely.")
    elif args.force and grace_s > 0:
        raise CliError("--force and --grace-period greater than 0 cannot be specified together")
    operation = "force deleted" if grace_s == 0 else "deleted"
    operation += {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    grace: int | None = None if grace_s < 0 else grace_s  # -1: the object's own period
    namespace = "" if args.all_namespaces else common.namespace_of(args)
    ignore_missing = args.ignore_not_found or args.all or bool(args.selector)
    failed = False
    pending: list[tuple[Any, str, str, str]] = []
    async with common.client_for(args) as client:
        targets = await _targets_from_args(client, args, namespace)
        if not targets and (args.selector or args.all):
            print("No resources found", file=sys.stderr)
        for kind, ns, name in targets:
            if args.dry_run == "client":
                _print_deleted(args, kind, name, operation)
                continue
            try:
                result = await client.delete(
                    kind.resource, name, ns, grace_period_s=grace,
                    propagation_policy=args.cascade_policy,
                    dry_run=args.dry_run == "server")
            except errors.NotFound as exc:
                if not ignore_missing:
                    common.print_error(exc)
                    failed = True
                continue
            except errors.ApiError as exc:
                common.print_error(exc)
                failed = True
                continue
            _print_deleted(args, kind, name, operation)
            if not result.deleted and args.wait and args.dry_run != "server":
                uid = result.object.metadata.uid if result.object is not None else ""
                pending.append((kind, ns, name, uid))
        if pending:
            timeout_s = args.timeout or (grace if grace is not None
                                         else _DEFAULT_GRACE_S) + _WAIT_MARGIN_S
            failed |= not await _wait_gone(client, pending, timeout_s)
    return 1 if failed else 0


def _print_deleted(args: argparse.Namespace, kind: Any, name: str, operation: str) -> None:
    """kubectl's line for one deletion: `pod "x" deleted`, or `pod/x` with -o name."""
    if args.output == "name":
        print(f"{common.kind_label(kind)}/{name}", flush=True)
    else:
        print(f'{common.kind_label(kind)} "{name}" {operation}', flush=True)


async def _wait_gone(client: Any, pending: list[tuple[Any, str, str, str]],
                     timeout_s: float) -> bool:
    """True when every pending object is gone (or replaced by a new uid) in time."""
    from kubemu.api import errors

    deadline = time.monotonic() + timeout_s
    delay_s = _POLL_S_FIRST
    left = list(pending)
    while left:
        still = []
        for kind, ns, name, uid in left:
            try:
                obj = await client.get(kind.resource, name, ns)
            except errors.NotFound:
                continue
            if uid and obj.metadata.uid != uid:
                continue  # deleted and created again: ours is gone
            still.append((kind, ns, name, uid))
        left = still
        if not left:
            return True
        if time.monotonic() >= deadline:
            for kind, ns, name, _ in left:
                common.print_error(CliError(
                    f'timed out waiting for the condition on {kind.resource}/{name}'))
            return False
        await asyncio.sleep(min(delay_s, max(0.0, deadline - time.monotonic())))
        delay_s = min(delay_s * 2, _POLL_S_MAX)
    return True


def _cascade(text: str) -> str:
    """kubectl's --cascade values (and the old true/false) as a propagation policy."""
    return {"true": "Background", "false": "Orphan"}.get(text.lower(), text.capitalize())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("delete", help="delete objects by name, file, selector or --all",
                              description="Delete objects the way kubectl delete does.")
    p.add_argument("resources", nargs="*", metavar="TYPE [NAME...] | TYPE/NAME...")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    common.add_namespace_arg(p, all_namespaces=True)
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--field-selector", default="")
    p.add_argument("--all", action="store_true", help="every object of the type(s)")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--grace-period", type=int, default=None,
                   help="seconds to let the object stop (-1: its own default; 0 needs --force)")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--force", action="store_true",
                   help="delete at once (grace period 0), without waiting for the node to "
                        "confirm that the pod stopped")
    p.add_argument("-o", "--output", default="", metavar="name",
                   help="name: print kind/name for each deleted object")
    # kubectl always sends a policy, Background unless told: without one a
    # Job's own default (Orphan, for batch/v1) would leave its pods behind.
    p.add_argument("--cascade", dest="cascade_policy", default="Background",
                   metavar="background|foreground|orphan",
                   choices=("", "Background", "Foreground", "Orphan"), type=_cascade)
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait until the objects are gone (default: yes)")
    p.add_argument("--timeout", type=float, default=0.0, metavar="SECONDS",
                   help="how long --wait waits (0: the grace period plus a minute)")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   nargs="?", const="client")
    p.set_defaults(func=run_delete)
