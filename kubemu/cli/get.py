"""`kubemu get`: list or fetch objects and print them like kubectl.

Model: resolve the resource arguments to (kind, names) groups; fetch each
group (get by name, or list with selectors); then print as kubectl does:
- the human-readable table (no -o, or -o wide): one table per run of objects
  of one kind (blank line between kinds, `kind/name` in NAME when several kinds
  are asked for), with -L label columns, --show-labels, --no-headers;
- any other -o (output.py): one document, the object itself when exactly one
  was asked for by name, else a `v1 List` of everything.
--sort-by orders the objects first (output.sort_objects). With -w, after the
listing, watch from the list's resourceVersion and print each event's object
as it arrives (each object on its own, as kubectl does), until Ctrl-C or
--watch-timeout. Objects that are not found are reported after the output;
the exit status is then 1.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError


class Output:
    """Prints objects of one or more kinds in the chosen format, as they come."""

    def __init__(self, args: argparse.Namespace, *, several_kinds: bool):
        from kubemu.cli import output, printers

        self.printers = printers
        self.format = args.output or ""
        self.printer = output.make_printer(
            args.output, no_headers=args.no_headers, template=args.template,
            allow_missing_keys=args.allow_missing_template_keys)
        if args.show_labels and self.printer is not None:
            raise CliError(f"--show-labels option cannot be used with {args.output} printer")
        self.all_namespaces = bool(getattr(args, "all_namespaces", False))
        self.show_labels = bool(getattr(args, "show_labels", False))
        self.label_columns = tuple(key for value in args.label_columns
                                   for key in value.split(",") if key)
        self.no_headers = bool(args.no_headers)
        self.several_kinds = several_kinds
        self.writer: Any = None
        self.writer_kind = ""
        self.tables_printed = 0
        self.written = 0

    @property
    def human(self) -> bool:
        return self.printer is None

    def options(self, kind: Any) -> Any:
        return self.printers.TableOptions(
            wide=self.format == "wide", all_namespaces=self.all_namespaces and kind.namespaced,
            show_labels=self.show_labels, label_columns=self.label_columns,
            kind_prefix=common.kind_label(kind) if self.several_kinds else "")

    def write(self, text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.written += len(text)

    def table(self, kind: Any, objs: list[dict[str, Any]]) -> None:
        """Rows for `objs` (one kind); a new kind starts a new table with its header."""
        opts = self.options(kind)
        rows = [self.printers.row(kind.resource, o, opts) for o in objs]
        if self.writer is None or self.writer_kind != kind.resource:
            if self.tables_printed and not self.no_headers and self.written:
                self.write("\n")
            self.writer = self.printers.TabWriter()
            self.writer_kind = kind.resource
            self.tables_printed += 1
            if not self.no_headers:
                rows.insert(0, self.printers.headers(kind.resource, opts))
        self.write(self.writer.render(rows))

    def document(self, doc: dict[str, Any]) -> None:
        self.write(self.printer.render(doc))

    def one(self, kind: Any, obj: dict[str, Any]) -> None:
        """One object on its own (the objects of a watch)."""
        if self.human:
            self.table(kind, [obj])
        else:
            self.document(obj)


def _add_output_args(p: argparse.ArgumentParser) -> None:
    from kubemu.cli import output

    p.add_argument("-o", "--output", default="", metavar="FORMAT",
                   help=f"one of {', '.join(output.GET_FORMATS)}; the template formats take "
                        "=TEMPLATE (jsonpath={.items[*].metadata.name}, "
                        "custom-columns=NAME:.metadata.name,IP:.status.podIP)")
    p.add_argument("--template", default="",
                   help="template for -o go-template|jsonpath (the part after = otherwise)")
    p.add_argument("--allow-missing-template-keys", action=argparse.BooleanOptionalAction,
                   default=True, help="a missing field in a template prints nothing "
                                      "(default: yes)")
    p.add_argument("--no-headers", action="store_true",
                   help="print tables (and custom columns) without their header")


async def run_get(args: argparse.Namespace) -> int:
    targets = common.parse_targets(args.resources, allow_all=True)
    by_name = any(t.names for t in targets)
    if by_name and (args.selector or args.field_selector):
        raise CliError("name cannot be provided when a selector is specified")
    if by_name and args.all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    if (args.watch or args.watch_only) and len(targets) != 1:
        raise CliError("you may only specify a single resource type")
    namespace = "" if args.all_namespaces else common.namespace_of(args)
    out = Output(args, several_kinds=len(targets) > 1)
    if args.sort_by and (args.watch or args.watch_only):
        print(f"warning: --{'watch' if args.watch else 'watch-only'} requested, --sort-by will "
              "be ignored" + (" for watch events received" if args.watch else ""),
              file=sys.stderr)

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

        watching = args.watch or args.watch_only
        if watching:
            if args.watch:
                for kind, objs, _ in fetched:
                    for obj in objs:
                        out.one(kind, obj)
        else:
            _print_fetched(args, out, fetched, single=len(targets) == 1 and
                           sum(len(t.names) for t in targets) == 1)
        empty = not by_name and not any(objs for _, objs, _ in fetched)
        # As kubectl: only the table says so; -o json|name|... print an empty List.
        if empty and not args.watch_only and out.human:
            # kubectl: "No resources found" once any kind is cluster-scoped or with -A
            if args.all_namespaces or not all(t.kind.namespaced for t in targets):
                print("No resources found", file=sys.stderr)
            else:
                print(f"No resources found in {namespace} namespace.", file=sys.stderr)
        for exc in missing:
            common.print_error(exc)
        if watching:
            kind, _, resource_version = fetched[0]
            await _watch(client, args, out, kind, namespace if kind.namespaced else "",
                         resource_version, names=set(targets[0].names))
    return 1 if missing else 0


def _print_fetched(args: argparse.Namespace, out: Output,
                   fetched: list[tuple[Any, list[dict[str, Any]], str]], *, single: bool) -> None:
    from kubemu.cli import output

    every = [(kind, o) for kind, objs, _ in fetched for o in objs]
    if not out.human:
        if single and len(every) == 1:
            doc = every[0][1]
        elif single and not every:
            return  # the one object asked for is missing: only the error is printed
        else:
            items = [o for _, o in every]
            if args.sort_by:
                items = output.sort_objects(items, args.sort_by)
            doc = output.as_list(items)
        out.document(doc)
        return
    if args.sort_by:
        every = output.sort_objects(every, args.sort_by, key=lambda ko: ko[1], min_count=2)
    # one table per run of one kind, as kubectl prints them
    run: list[dict[str, Any]] = []
    run_kind: Any = None
    for kind, obj in every:
        if run and kind.resource != run_kind.resource:
            out.table(run_kind, run)
            run = []
        run_kind = kind
        run.append(obj)
    if run:
        out.table(run_kind, run)


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
    _add_output_args(p)
    p.add_argument("--sort-by", default="", metavar="JSONPATH",
                   help="sort by a field, e.g. .metadata.name or '{.status.podIP}'")
    p.add_argument("-L", "--label-columns", action="append", default=[], metavar="KEY[,KEY...]",
                   help="a column with the value of each of these labels")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, watch for changes")
    p.add_argument("--watch-only", action="store_true",
                   help="watch for changes without listing first")
    p.add_argument("--watch-timeout", type=float, default=None, metavar="SECONDS",
                   help="stop watching after this many seconds (default: until Ctrl-C)")
    p.set_defaults(func=run_get)
