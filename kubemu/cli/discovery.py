"""`kubemu api-resources` and `kubemu version`, from the apiserver's Discovery call.

`version --client` answers without a cluster (the installed distribution's
version); otherwise the server's version comes from Discovery.
"""
from __future__ import annotations

import argparse
import sys

from kubemu.cli import common


def client_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kubemu")
    except metadata.PackageNotFoundError:
        return "unknown"


def resource_rows(resources: list, *, wide: bool = False) -> list[list[str]]:
    """kubectl api-resources' table: core group first, then by group, then by name."""
    def group_of(r) -> str:  # noqa: ANN001 - APIResource message
        return r.api_version.rpartition("/")[0]

    header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = [header + (["VERBS"] if wide else [])]
    for r in sorted(resources, key=lambda r: (group_of(r) != "", group_of(r), r.name)):
        row = [r.name, ",".join(r.short_names), r.api_version,
               "true" if r.namespaced else "false", r.kind]
        if wide:
            row.append("[" + " ".join(r.verbs) + "]")
        rows.append(row)
    return rows


async def run_api_resources(args: argparse.Namespace) -> int:
    from kubemu.cli import printers

    async with common.client_for(args) as client:
        found = (await client.discovery()).resources
    if args.namespaced is not None:
        found = [r for r in found if r.namespaced == (args.namespaced == "true")]
    if args.output == "name":
        for r in sorted(found, key=lambda r: r.name):
            group = r.api_version.rpartition("/")[0]
            print(f"{r.name}.{group}" if group else r.name)
        return 0
    sys.stdout.write(printers.render_table(resource_rows(found, wide=args.output == "wide")))
    return 0


async def _server_version(args: argparse.Namespace) -> str:
    async with common.client_for(args) as client:
        return (await client.discovery()).server_version


async def run_version(args: argparse.Namespace) -> int:
    versions = {"clientVersion": {"gitVersion": client_version()}}
    if not args.client:
        versions["serverVersion"] = {"gitVersion": await _server_version(args)}
    if args.output in ("json", "yaml"):
        from kubemu.cli import printers

        sys.stdout.write(printers.format_json(versions) if args.output == "json"
                         else printers.format_yaml(versions))
        return 0
    print(f"Client Version: {versions['clientVersion']['gitVersion']}")
    if "serverVersion" in versions:
        print(f"Server Version: {versions['serverVersion']['gitVersion']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("api-resources", help="print the resource types the server serves",
                              description="List the API resources the apiserver serves.")
    p.add_argument("--namespaced", choices=("true", "false"), default=None)
    p.add_argument("-o", "--output", choices=("wide", "name"), default="")
    p.set_defaults(func=run_api_resources)

    p = subparsers.add_parser("version", help="print the client and server versions",
                              description="Print the kubemu version, and the apiserver's.")
    p.add_argument("--client", action="store_true", help="the client version only (no cluster)")
    p.add_argument("-o", "--output", choices=("json", "yaml"), default="")
    p.set_defaults(func=run_version)
