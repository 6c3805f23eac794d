"""`kubemu cordon|uncordon NODE...` and `kubemu taint nodes NODE... KEY[=VALUE]:EFFECT[-]...`.

kubectl's semantics and messages:
- cordon / uncordon set / clear spec.unschedulable: `node/n1 cordoned`,
  `node/n1 already cordoned`, `node/n1 uncordoned`, `node/n1 already uncordoned`.
- taint: `key=value:Effect` (or `key:Effect`) adds a taint, `key:Effect-` removes
  the key's taint with that effect, `key-` every taint of that key. Output
  `node/n1 tainted`, `untainted`, or `modified` (adds and removes together, or
  --overwrite). Adding a (key, effect) the node already has needs --overwrite
  ("node n1 already has k taint(s) with same effect(s) and --overwrite is
  false"); removing an absent one fails with `taint "k:NoSchedule" not found`.
  Every argument is checked before anything is written.
Nodes are picked by name, `node/NAME`, `-l SELECTOR` or `--all`. Every write
is a merge patch carrying the node's resourceVersion: a concurrent change makes
it fail (Conflict) instead of being overwritten.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclasses.dataclass(frozen=True)
class TaintSpec:
    key: str
    value: str = ""
    effect: str = ""

    def __str__(self) -> str:
        """kubectl's Taint.ToString: key=value:effect, key:effect, key=value or key."""
        text = f"{self.key}={self.value}" if self.value else self.key
        return f"{text}:{self.effect}" if self.effect else text


def parse_taint(spec: str) -> TaintSpec:
    """One `key[=value][:effect]` as kubectl's parseTaint reads it."""
    from kubemu.api import labels

    parts = spec.split(":")
    value = effect = ""
    if len(parts) == 1:
        key = parts[0]
    elif len(parts) == 2:
        effect = parts[1]
        if effect not in EFFECTS:
            raise CliError(f"invalid taint effect: {effect}, unsupported taint effect")
        key_value = parts[0].split("=")
        if len(key_value) > 2:
            raise CliError(f"invalid taint spec: {spec}")
        key = key_value[0]
        if len(key_value) == 2:
            value = key_value[1]
            problems = labels.is_valid_label_value(value)
            if problems:
                raise CliError(f"invalid taint spec: {spec}, {'; '.join(problems)}")
    else:
        raise CliError(f"invalid taint spec: {spec}")
    problems = labels.is_qualified_name(key)
    if problems:
        raise CliError(f"invalid taint spec: {spec}, {'; '.join(problems)}")
    return TaintSpec(key, value, effect)


def parse_taint_args(words: list[str]) -> tuple[list[str], list[TaintSpec], list[TaintSpec]]:
    """(resource words, taints to add, taints to remove); resources come first."""
    resources: list[str] = []
    specs: list[str] = []
    for word in words:
        is_taint = "=" in word or ":" in word or word.endswith("-")
        if is_taint:
            specs.append(word)
        elif specs:
            raise CliError(f"all resources must be specified before taint changes: {word}")
        else:
            resources.append(word)
    if not resources:
        raise CliError("one or more resources must be specified as <resource> <name>")
    if not specs:
        raise CliError("at least one taint update is required")
    adds: list[TaintSpec] = []
    removes: list[TaintSpec] = []
    for spec in specs:
        if spec.endswith("-"):
            taint = parse_taint(spec[:-1])
            removes.append(TaintSpec(taint.key, "", taint.effect))
            continue
        taint = parse_taint(spec)
        if not taint.effect:
            raise CliError(f"invalid taint spec: {spec}")
        if any(t.key == taint.key and t.effect == taint.effect for t in adds):
            raise CliError(f"duplicated taints with the same key and effect: {taint}")
        adds.append(taint)
    return resources, adds, removes


def reorganize_taints(node_name: str, old: list[TaintSpec], adds: list[TaintSpec],
                      removes: list[TaintSpec], overwrite: bool) -> tuple[str, list[TaintSpec]]:
    """(operation, new taints) as kubectl's reorganizeTaints; CliError on a refused change."""
    if not overwrite:
        for taint in adds:
            if any(o.key == taint.key and o.effect == taint.effect for o in old):
                raise CliError(f"node {node_name} already has {taint.key} taint(s) with same "
                               f"effect(s) and --overwrite is false")
    new = list(adds)
    for taint in old:
        if not any(t.key == taint.key and t.effect == taint.effect for t in new):
            new.append(taint)
    added = len(old) != len(new)
    problems = []
    deleted = False
    for taint in removes:
        kept = [t for t in new if not (t.key == taint.key
                                       and (not taint.effect or t.effect == taint.effect))]
        deleted = len(kept) != len(new)
        if not deleted:
            problems.append(f'taint "{taint}" not found')
        new = kept
    if problems:
        raise CliError("\n".join(problems))
    if (added and deleted) or overwrite:
        return "modified", new
    return ("tainted" if added else "untainted"), new


# ---------------------------------------------------------------- commands

async def _nodes(client: Any, resources: list[str], args: argparse.Namespace,
                 require_type: bool) -> list[Any]:
    """The Node objects named by `resources` (`nodes n1 n2`, `node/n1`, or names alone
    for cordon), `-l` or `--all`. NotFound propagates: main prints it as kubectl does."""
    names: list[str] = []
    words = list(resources)
    if require_type or (words and "/" in words[0]):
        targets = common.parse_targets(words) if words else []
        for target in targets:
            if target.kind.resource != "nodes":
                raise CliError(f"invalid resource type {target.kind.resource}, only node types "
                               f"are supported")
            names.extend(target.names)
        if require_type and not targets:
            raise CliError("one or more resources must be specified as <resource> <name>")
    else:
        names = words
    if names and (args.selector or args.all):
        raise CliError("cannot specify both node names and a selector or --all")
    if names:
        return [await client.get("nodes", name) for name in names]
    if args.selector or args.all:
        return (await client.list_all("nodes", label_selector=args.selector or "")).items
    raise CliError("resource(s) were provided, but no name was specified")


async def run_cordon(args: argparse.Namespace) -> int:
    return await _set_unschedulable(args, True)


async def run_uncordon(args: argparse.Namespace) -> int:
    return await _set_unschedulable(args, False)


async def _set_unschedulable(args: argparse.Namespace, unschedulable: bool) -> int:
    verb = "cordoned" if unschedulable else "uncordoned"
    dry_run = args.dry_run == "server"
    suffix = " (server dry run)" if dry_run else ""
    async with common.client_for(args) as client:
        for node in await _nodes(client, args.nodes, args, require_type=False):
            label = f"node/{node.metadata.name}"
            if bool(node.spec.unschedulable) == unschedulable:
                print(f"{label} already {verb}{suffix}", flush=True)
                continue
            patch = {"spec": {"unschedulable": True if unschedulable else None},
                     "metadata": {"resourceVersion": node.metadata.resource_version}}
            await client.patch("nodes", node.metadata.name, patch=patch, dry_run=dry_run)
            print(f"{label} {verb}{suffix}", flush=True)
    return 0


async def run_taint(args: argparse.Namespace) -> int:
    from kubemu.api import codec

    resources, adds, removes = parse_taint_args(args.args)
    dry_run = args.dry_run == "server"
    suffix = " (server dry run)" if dry_run else ""
    async with common.client_for(args) as client:
        nodes = await _nodes(client, resources, args, require_type=True)
        planned = []
        for node in nodes:  # every node checked before any is changed
            old_msgs = list(node.spec.taints)
            old = [TaintSpec(t.key, t.value, t.effect) for t in old_msgs]
            operation, new = reorganize_taints(node.metadata.name, old, adds, removes,
                                               args.overwrite)
            by_spec = {TaintSpec(t.key, t.value, t.effect): t for t in old_msgs}
            taints = []
            for spec in new:
                kept = by_spec.get(spec)
                # Unchanged taints keep every field (timeAdded) as they are.
                taints.append(codec.to_dict(kept) if kept is not None else
                              {k: v for k, v in (("key", spec.key), ("value", spec.value),
                                                 ("effect", spec.effect)) if v})
            planned.append((node, operation, taints))
        for node, operation, taints in planned:
            patch = {"spec": {"taints": taints or None},
                     "metadata": {"resourceVersion": node.metadata.resource_version}}
            await client.patch("nodes", node.metadata.name, patch=patch, dry_run=dry_run)
            print(f"node/{node.metadata.name} {operation}{suffix}", flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, func, what in (("cordon", run_cordon, "unschedulable"),
                             ("uncordon", run_uncordon, "schedulable")):
        p = subparsers.add_parser(name, help=f"mark nodes as {what}",
                                  description=f"Mark nodes as {what}, like kubectl {name}.")
        p.add_argument("nodes", nargs="*", metavar="NODE")
        p.add_argument("-l", "--selector", default="")
        p.add_argument("--all", action="store_true", help=argparse.SUPPRESS)
        p.add_argument("--dry-run", choices=("none", "server"), default="none")
        p.set_defaults(func=func)
    p = subparsers.add_parser(
        "taint", help="update the taints on nodes",
        description="Add (KEY=VALUE:EFFECT) or remove (KEY:EFFECT- or KEY-) taints on nodes, "
                    "like kubectl taint. EFFECT is NoSchedule, PreferNoSchedule or NoExecute.")
    p.add_argument("args", nargs="+", metavar="nodes NODE... KEY[=VALUE]:EFFECT[-]...")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--all", action="store_true", help="every node")
    p.add_argument("--overwrite", action="store_true",
                   help="allow changing a taint whose key and effect the node already has")
    p.add_argument("--dry-run", choices=("none", "server"), default="none")
    p.set_defaults(func=run_taint)
