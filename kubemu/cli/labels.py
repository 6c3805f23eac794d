"""`kubemu label` and `kubemu annotate`: change metadata.labels / annotations by merge patch.

Arguments follow kubectl: `TYPE NAME... k=v k2-` (or `TYPE/NAME`, or `TYPE -l
SEL`, or `TYPE --all`). Without --overwrite, giving a key that already has a
value is an error (`'k' already has a value (v), and --overwrite is false`),
checked against the live object before anything is sent. The patch carries
the object's resourceVersion so a concurrent change makes it fail (Conflict)
rather than be silently overwritten.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError


def parse_changes(words: list[str], what: str) -> tuple[list[str], dict[str, str], list[str]]:
    """(resource words, keys to set, keys to remove) from kubectl-style arguments.

    The resource words come first; from the first `k=v` or `k-` on, every word is a change.
    """
    resources: list[str] = []
    sets: dict[str, str] = {}
    removes: list[str] = []
    for word in words:
        changing = bool(sets or removes)
        if "=" in word:
            key, _, value = word.partition("=")
            if not key:
                raise CliError(f"invalid {what} spec: {word}")
            if key in sets and sets[key] != value:
                raise CliError(f"{what} {key!r} is given two values: {sets[key]!r} and {value!r}")
            sets[key] = value
        elif word.endswith("-") and (resources or changing):
            if len(word) == 1:
                raise CliError(f"invalid {what} spec: {word}")
            removes.append(word[:-1])
        elif changing:
            raise CliError(f"invalid {what} spec: {word}: expected KEY=VALUE or KEY-")
        else:
            resources.append(word)
    both = sorted(set(sets) & set(removes))
    if both:
        raise CliError(f"can not both modify and remove the following {what}(s) in the same "
                       f"command: {', '.join(both)}")
    if not sets and not removes:
        raise CliError(f"at least one {what} update is required")
    return resources, sets, removes


async def _run(args: argparse.Namespace, field: str, what: str) -> int:
    """Label or annotate: `field` is "labels" or "annotations", `what` "label"/"annotation"."""
    from kubemu.api import errors

    resources, sets, removes = parse_changes(args.args, what)
    targets = common.parse_targets(resources)
    namespace = "" if args.all_namespaces else common.namespace_of(args)
    failed = False
    async with common.client_for(args) as client:
        objs: list[tuple[Any, Any]] = []
        for target in targets:
            ns = namespace if target.kind.namespaced else ""
            if target.names:
                for name in target.names:
                    try:
                        objs.append((target.kind, await client.get(target.kind.resource,
                                                                   name, ns)))
                    except errors.NotFound as exc:
                        common.print_error(exc)
                        failed = True
            elif args.selector or args.all:
                result = await client.list_all(target.kind.resource, ns,
                                               label_selector=args.selector or "")
                objs.extend((target.kind, o) for o in result.items)
            else:
                raise CliError("resource(s) were provided, but no name was specified")
        # Every object is checked before any is changed: a refused key changes nothing.
        planned = []
        for kind, obj in objs:
            current = dict(getattr(obj.metadata, field))
            if not args.overwrite:
                for key in sets:
                    if key in current:
                        raise CliError(f"'{key}' already has a value ({current[key]}), "
                                       "and --overwrite is false")
            planned.append((kind, obj, current))
        for kind, obj, current in planned:
            wanted = {**current, **sets}
            for key in removes:
                if key not in wanted:
                    print(f'{what} "{key}" not found.', file=sys.stderr)
                wanted.pop(key, None)
            label = f"{common.kind_label(kind)}/{obj.metadata.name}"
            if wanted == current:
                print(f"{label} not labeled" if what == "label" else f"{label} annotated")
                continue
            changes: dict[str, Any] = {k: v for k, v in sets.items() if current.get(k) != v}
            changes.update({k: None for k in removes if k in current})
            patch = {"metadata": {field: changes,
                                  "resourceVersion": obj.metadata.resource_version}}
            try:
                await client.patch(kind.resource, obj.metadata.name, obj.metadata.namespace,
                                   patch=patch, dry_run=args.dry_run == "server")
            except errors.ApiError as exc:
                common.print_error(exc)
                failed = True
                continue
            if what == "label":
                # kubectl's updateDataChangeMsg: fewer labels without --overwrite = unlabeled.
                verb = ("unlabeled" if not args.overwrite and len(wanted) < len(current)
                        else "labeled")
            else:
                verb = "annotated"
            print(f"{label} {verb}", flush=True)
    return 1 if failed else 0


async def run_label(args: argparse.Namespace) -> int:
    return await _run(args, "labels", "label")


async def run_annotate(args: argparse.Namespace) -> int:
    return await _run(args, "annotations", "annotation")


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, func, what in (("label", run_label, "labels"),
                             ("annotate", run_annotate, "annotations")):
        p = subparsers.add_parser(
            name, help=f"update the {what} on objects",
            description=f"Set (KEY=VALUE) or remove (KEY-) {what} on objects, like kubectl "
                        f"{name}.")
        p.add_argument("args", nargs="+", metavar="TYPE NAME|TYPE/NAME KEY=VALUE... KEY-...")
        common.add_namespace_arg(p, all_namespaces=True)
        p.add_argument("-l", "--selector", default="")
        p.add_argument("--all", action="store_true", help="every object of the type")
        p.add_argument("--overwrite", action="store_true",
                       help=f"allow changing {what} that already have a value")
        p.add_argument("--dry-run", choices=("none", "server"), default="none")
        p.set_defaults(func=func)
