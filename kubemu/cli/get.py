"""`kubemu get`: list or fetch objects and print them like kubectl.

Model: resolve the resource arguments to (kind, names) groups; fetch each
group (get by name, or list with selectors); print one table per kind (blank
line between kinds, `kind/name` in NAME when several kinds are asked for) or
one JSON/YAML document (a v1 List unless exactly one object was asked for by
name). With -w, after the listing, watch from the list's resourceVersion and
print each event's object as it arrives, until Ctrl-C or --watch-timeout.
Objects that are not found are reported after the output; the exit status is
then 1.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

OUTPUTS = ("json", "yaml", "wide", "name")


class Output:
    """Prints objects of one or more kinds in the chosen format, as they come."""

    def __init__(self, args: argparse.Namespace, *, several_kinds: bool):
        from kubemu.cli import printers

        self.printers = printers
        self.format = args.output or ""
        self.all_namespaces = bool(getattr(args, "all_namespaces", False))
        self.show_labels = bool(getattr(args, "show_labels", False))
        self.several_kinds = several_kinds
        self.writers: dict[str, Any] = {}
        self.tables_printed = 0
        self.documents_printed = 0

    def options(self, kind: Any) -> Any:
        return self.printers.TableOptions(
            wide=self.format == "wide", all_namespaces=self.all_namespaces,
            show_labels=self.show_labels,
            kind_prefix=common.kind_label(kind) if self.several_kinds else "")

    def table(self, kind: Any, objs: list[dict[str, Any]], *, header: bool = True) -> None:
        """Rows for `objs` (one kind); the first call for a kind prints the header."""
        opts = self.options(kind)
        rows = [self.printers.row(kind.resource, o, opts) for o in objs]
        writer = self.writers.get(kind.resource)
        if writer is None:
            if self.tables_printed:
                sys.stdout.write("\n")
            writer = self.writers[kind.resource] = self.printers.TabWriter()
            self.tables_printed += 1
            if header:
                rows.insert(0, self.printers.headers(kind.resource, opts))
        sys.stdout.write(writer.render(rows))
        sys.stdout.flush()

    def one(self, kind: Any, obj: dict[str, Any]) -> None:
        """One object on its own (watch events, or a single get -o json)."""
        if self.format == "json":
            sys.stdout.write(self.printers.format_json(obj))
        elif self.format == "yaml":
            if self.documents_printed:
                sys.stdout.write("---\n")
            sys.stdout.write(self.printers.format_yaml(obj))
        elif self.format == "name":
            name = (obj.get("metadata") or {}).get("name", "")
            sys.stdout.write(f"{common.kind_label(kind)}/{name}\n")
        else:
            self.table(kind, [obj])
        self.documents_printed += 1
        sys.stdout.flush()


async def run_get(args: argparse.Namespace) -> int:
    if args.output and args.output not in OUTPUTS:
        raise CliError(f'unable to match a printer suitable for the output format '
                       f'"{args.output}", allowed formats are: {",".join(OUTPUTS)}')
    targets = common.parse_targets(args.resources, allow_all=True)
    by_name = any(t.names for t in targets)
    if by_name and (args.selector or args.field_selector):
        raise CliError("name cannot be provided when a selector is specified")
    if by_name and args.all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    if args.watch and len(targets) != 1:
        raise CliError("you may only specify a single resource type")
    namespace = "" if args.all_namespaces else common.namespace_of(args)
    out = Output(args, several_kinds=len(targets) > 1)

    from kubemu.api import errors

    async with common.client_for(args) as client:
        fetched: list[tuple[Any, list[dict[str, Any]], str]] = []
        missing: list[errors.ApiError] = []
        for target in targets:
            ns = namespace if target.kind.namespaced else ""
            objs: list[dict[str, Any]] = []
            resource_version = ""
            if target.names:
                if args.watch or args.watch_only:
                    # A watch needs a list's resourceVersion; taking it before the gets
                    # means a change in between is printed twice, never missed.
                    resource_version = (await client.list(target.kind.resource, ns,
                                                          limit=1)).resource_version
                for name in target.names:
                    try:
                        objs.append(common.to_json(
                            await client.get(target.kind.resource, name, ns), target.kind))
                    except errors.NotFound as exc:
                        missing.append(exc)
            else:
                result = await client.list_all(target.kind.resource, ns,
                                               label_selector=args.selector or "",
                                               field_selector=args.field_selector or "")
                objs = [common.to_json(o, target.kind) for o in result.items]
                resource_version = result.resource_version
            fetched.append((target.kind, objs, resource_version))

        if not args.watch_only:
            _print_fetched(args, out, fetched, single=len(targets) == 1 and
                           sum(len(t.names) for t in targets) == 1)
        empty = not by_name and not any(objs for _, objs, _ in fetched)
        # As kubectl: -o json|yaml print an empty List instead of the message.
        if empty and not args.watch_only and args.output not in ("json", "yaml"):
            where = ("" if args.all_namespaces or not any(t.kind.namespaced for t in targets)
                     else f" in {namespace} namespace")
            print(f"No resources found{where}.", file=sys.stderr)
        for exc in missing:
            common.print_error(exc)
        if args.watch or args.watch_only:
            kind, _, resource_version = fetched[0]
            await _watch(client, args, out, kind, namespace if kind.namespaced else "",
                         resource_version, names=set(targets[0].names))
    return 1 if missing else 0


def _print_fetched(args: argparse.Namespace, out: Output,
                   fetched: list[tuple[Any, list[dict[str, Any]], str]], *, single: bool) -> None:
    printers = out.printers
    every = [o for _, objs, _ in fetched for o in objs]
    if args.output in ("json", "yaml"):
        if single and len(every) == 1:
            doc = every[0]
        elif single and not every:
            return  # the one object asked for is missing: only the error is printed
        else:
            doc = printers.as_list(every)
        text = printers.format_json(doc) if args.output == "json" else printers.format_yaml(doc)
        sys.stdout.write(text)
        out.documents_printed += 1
    elif args.output == "name":
        for kind, objs, _ in fetched:
            for o in objs:
                print(f"{common.kind_label(kind)}/{(o.get('metadata') or {}).get('name', '')}")
    else:
        for kind, objs, _ in fetched:
            if objs:
                out.table(kind, objs)
    sys.stdout.flush()


async def _watch(client: Any, args: argparse.Namespace, out: Output, kind: Any, namespace: str,
                 resource_version: str, *, names: set[str]) -> None:
    """Print every change after `resource_version` until the timeout or Ctrl-C."""
    import asyncio

    stream = client.watch(kind.resource, namespace, resource_version=resource_version,
                          label_selector=args.selector or "",
                          field_selector=args.field_selector or "",
                          timeout_s=args.watch_timeout)
    try:
        async with contextlib.aclosing(stream):
            async with asyncio.timeout(args.watch_timeout):
                async for event in stream:
                    if event.type == "BOOKMARK" or event.object is None:
                        continue
                    obj = common.to_json(event.object, kind)
                    if names and (obj.get("metadata") or {}).get("name") not in names:
                        continue
                    out.one(kind, obj)
    except TimeoutError:
        pass  # --watch-timeout reached: the normal end of a bounded watch


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "get", help="display one or many objects",
        description="List objects, or get them by name, and print them like kubectl get.")
    p.add_argument("resources", nargs="+", metavar="TYPE[,TYPE...] [NAME...] | TYPE/NAME...")
    common.add_namespace_arg(p, all_namespaces=True)
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", help="field selector, e.g. spec.nodeName=n1")
    p.add_argument("-o", "--output", default="", metavar="json|yaml|wide|name")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, watch for changes")
    p.add_argument("--watch-only", action="store_true",
                   help="watch for changes without listing first")
    p.add_argument("--watch-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop watching after this many seconds (default: until Ctrl-C)")
    p.set_defaults(func=run_get)
