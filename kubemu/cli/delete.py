"""`kubemu delete`: delete objects by type and name, from manifests, by selector, or all.

Prints kubectl's `pod "nginx" deleted` as soon as the apiserver accepts each
deletion; then, with --wait (the default), waits until every object whose
deletion is still pending (a graceful pod, finalizers) is gone, up to
--timeout (a Go duration; none is kubectl's "forever", a week). NotFound is
an error unless --ignore-not-found (implied by --all and by -l).

--cascade=background|foreground|orphan is the Delete call's
propagationPolicy (kubectl always sends one: Background by default); the
old --cascade=true|false still works with kubectl's deprecation warning.
With foreground the owner stays (finalizer foregroundDeletion) until the
garbage collector has removed its dependents, and --wait waits for that.

Grace periods follow kubectl: --now is --grace-period=1; --grace-period=0
without --force becomes 1 (an immediate deletion must be asked for); --force
alone means 0, warns on stderr that the resource may keep running, and the
line reads `pod "x" force deleted`.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

# The wait for pending deletions polls the object; the interval doubles up to this.
_POLL_S_MAX = 1.0
_POLL_S_FIRST = 0.05
# Without --timeout kubectl waits "forever", which it bounds at a week.
_WAIT_FOREVER_S = 168 * 3600.0


async def run_delete(args: argparse.Namespace) -> int:
    from kubemu.api import errors

    if not args.resources and not args.filename:
        raise CliError("You must provide one or more resources by argument or filename.")
    if args.output and args.output != "name":
        raise CliError(f"unexpected -o output mode: {args.output}. We only support '-o name'")
    propagation = cascade_policy(args.cascade)
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
        targets = await common.object_refs(client, args, namespace)
        if not targets and (args.selector or args.all):
            print("No resources found")  # on stdout, as kubectl
        for kind, ns, name in targets:
            if args.dry_run == "client":
                _print_deleted(args, kind, name, operation)
                continue
            try:
                result = await client.delete(
                    kind.resource, name, ns, grace_period_s=grace,
                    propagation_policy=propagation,
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
            timeout_s = args.timeout or _WAIT_FOREVER_S
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


_PARSE_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
               "0": False, "f": False, "F": False, "FALSE": False, "false": False,
               "False": False}


def cascade_policy(text: str) -> str:
    """kubectl's parseCascadingFlag: --cascade as a propagationPolicy. The old boolean
    values still work, with kubectl's deprecation warning on stderr."""
    policy = {"background": "Background", "foreground": "Foreground",
              "orphan": "Orphan"}.get(text)
    if policy is not None:
        return policy
    if text not in _PARSE_BOOL:
        raise CliError(f'invalid cascade value ({text}). Must be "background", "foreground", '
                       'or "orphan"')
    replacement = "background" if _PARSE_BOOL[text] else "orphan"
    common.write_error(f"warning: --cascade={text} is deprecated (boolean value) and can be "
                       f"replaced with --cascade={replacement}.")
    return replacement.capitalize()


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
    p.add_argument("--cascade", default="background", nargs="?", const="background",
                   metavar="background|foreground|orphan",
                   help="how dependents are deleted: background (default), foreground (before "
                        "the owner) or orphan (left, without their ownerReference)")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait until the objects are gone (default: yes)")
    p.add_argument("--timeout", type=common.parse_duration_s, default=0.0, metavar="DURATION",
                   help="how long --wait waits (0: a week, kubectl's forever)")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   nargs="?", const="client")
    p.set_defaults(func=run_delete)
