"""`kubemu patch`: update fields of objects with a patch, as `kubectl patch`.

`kubemu patch (-f FILE | TYPE NAME | TYPE/NAME) (-p PATCH | --patch-file FILE)
[--type strategic|merge|json] [--subresource status|scale] [--dry-run[=server|client]]
[-o FORMAT]`. The patch is JSON or YAML; `--type` is strategic by default,
as in kubectl (kubemu.api.strategicpatch: the built-in kinds' merge keys),
merge (RFC 7386) or json (RFC 6902). Each object is read, then patched on
the server, and printed `deployment.apps/web patched`, or `patched (no
change)` when the server's answer equals the object read before (kubectl's
DeepEqual). `--dry-run=client` applies the patch here and sends nothing.
`--subresource=scale` patches the object itself: a scale patch
(`{"spec":{"replicas":N}}`) has the same shape there.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

PATCH_TYPES = ("json", "merge", "strategic")
PATCH_FILE_BYTES_MAX = 4 * 1024 * 1024


def parse_patch(text: str) -> Any:
    """kubectl's yaml.ToJSON of -p: JSON, or YAML."""
    import yaml

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"unable to parse {json.dumps(text)}: yaml: {exc}") from None


def operation(changed: bool) -> str:
    return "patched" if changed else "patched (no change)"


async def run_patch(args: argparse.Namespace) -> int:
    from kubemu.api import errors, jsonpatch
    from kubemu.cli import output

    if args.patch and args.patch_file:
        raise CliError("cannot specify --patch and --patch-file together")
    if not args.patch and not args.patch_file:
        raise CliError("must specify --patch or --patch-file containing the contents of the "
                       "patch")
    patch_type = args.type.lower()
    if patch_type not in PATCH_TYPES:
        raise CliError(f"--type must be one of [{' '.join(PATCH_TYPES)}], not "
                       f"{json.dumps(args.type)}")
    text = args.patch
    if args.patch_file:
        try:
            with open(args.patch_file, "rb") as f:
                text = f.read(PATCH_FILE_BYTES_MAX + 1).decode()
        except OSError as exc:
            raise CliError(f"unable to read patch file: {exc}") from None
        if len(text) > PATCH_FILE_BYTES_MAX:
            raise CliError(f"unable to read patch file: larger than {PATCH_FILE_BYTES_MAX} bytes")
    patch = parse_patch(text)
    if not args.resources and not args.filename:
        raise CliError(common.NO_RESOURCES, verbatim=True)
    if args.subresource not in ("", "status", "scale"):
        raise CliError(f'invalid subresource value: "{args.subresource}". Must be one of '
                       "[status scale]")
    namespace = common.namespace_of(args)
    cause = common.change_cause(args)
    count = 0
    async with common.client_for(args) as client:
        for kind, ns, name in await common.object_refs(client, args, namespace):
            count += 1
            before = common.to_json(await client.get(kind.resource, name, ns), kind)
            if args.dry_run == "client":
                try:
                    after = jsonpatch.apply_patch(before, patch, patch_type, kind=kind.kind)
                except ValueError as exc:
                    raise CliError(str(exc)) from None
            else:
                if patch_type == "json" and not isinstance(patch, list):
                    raise errors.BadRequest("a JSON patch must be a list of operations")
                if patch_type != "json" and not isinstance(patch, dict):
                    raise errors.BadRequest(f"a {patch_type} patch must be a JSON object")
                result = await client.patch(kind.resource, name, ns, patch=patch,
                                            patch_type=patch_type,
                                            status=args.subresource == "status",
                                            dry_run=args.dry_run == "server")
                after = common.to_json(result, kind)
                if cause is not None and _annotation(after) != cause:
                    # kubectl's recorder: a second, merge patch with the command line
                    result = await client.patch(
                        kind.resource, name, ns, patch={"metadata": {"annotations": {
                            common.CHANGE_CAUSE: cause}}}, dry_run=args.dry_run == "server")
                    after = common.to_json(result, kind)
            changed = _canonical(before) != _canonical(after)
            printer = output.make_printer(
                args.output, allowed=output.OBJECT_FORMATS,
                name_suffix=_suffix(operation(changed), args.dry_run))
            if printer is None:
                print(common.name_line(kind, name, operation(changed), args.dry_run), flush=True)
            else:
                sys.stdout.write(printer.render(after))
    if count == 0:
        raise CliError("no objects passed to patch")
    return 0


def _annotation(doc: dict[str, Any]) -> str | None:
    return ((doc.get("metadata") or {}).get("annotations") or {}).get(common.CHANGE_CAUSE)


def _canonical(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


def _suffix(text: str, dry_run: str) -> str:
    return text + {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "patch", help="update fields of a resource",
        description="Update fields of objects with a strategic merge, JSON merge or JSON "
                    "patch, like kubectl patch.")
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-p", "--patch", default="", help="the patch (JSON or YAML)")
    p.add_argument("--patch-file", default="", help="a file holding the patch")
    p.add_argument("--type", default="strategic", metavar="strategic|merge|json",
                   help="the patch's type (default strategic)")
    p.add_argument("--subresource", default="", metavar="status",
                   help="patch this subresource (status)")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-o", "--output", default="")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   nargs="?", const="client")
    common.add_namespace_arg(p)
    common.add_record_arg(p)
    p.set_defaults(func=run_patch)
