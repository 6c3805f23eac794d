"""`kubemu etcd members` and `kubemu etcd status`: the cluster's etcd, as etcdctl shows it.

The endpoints are the `etcd` list of the home's kubeconfig.json (every member's
client address, as the supervisor wrote it). The tables are etcdctl's
`member list -w table` and `endpoint status -w table` (its table writer:
headers centred, cells right-aligned, sizes in SI units), with an IS LEADER
column in the member list and the store's REVISION in the status.

- members: the member list from the first endpoint that answers.
- status: one row per endpoint; an endpoint that does not answer is reported
  on stderr (etcdctl's wording) and makes the exit status 1.

The `etcd` sub-parser is this module's; other `kubemu etcd` commands
(`snapshot`, kubemu/cli/etcd_snapshot.py) hang under it through their module's
`register(etcd_subparsers)`, called here when the module exists.
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
from typing import Any, Sequence, TextIO

from kubemu import etcdinfo

EXIT_FAILED = 1
# Modules that add subcommands under `kubemu etcd` (when present).
EXTENSIONS = ("kubemu.cli.etcd_snapshot",)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `etcd` to the top-level parser's subcommands; returns its parser."""
    etcd = subparsers.add_parser(
        "etcd", help="the cluster's etcd: members, status",
        description="Inspect the cluster's etcd members (the endpoints in kubeconfig.json).")
    commands = etcd.add_subparsers(dest="etcd_command", metavar="COMMAND")
    members = commands.add_parser(
        "members", help="list the etcd members and which one leads",
        description="The etcd cluster's members (etcdctl member list), with the leader.")
    members.set_defaults(func=cmd_members)
    status = commands.add_parser(
        "status", help="every etcd member's status",
        description="Per member: endpoint, version, db size, leader, raft term and index, "
                    "revision (etcdctl endpoint status).")
    status.set_defaults(func=cmd_status)
    for parser in (members, status):
        parser.add_argument("--timeout", type=float, default=etcdinfo.QUERY_TIMEOUT_S,
                            dest="timeout_s", metavar="SECONDS",
                            help="per-endpoint deadline (default %(default)g)")
    etcd.set_defaults(func=lambda args: _usage(etcd))
    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(commands)
    for sub in commands.choices.values():
        sub.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return etcd


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_FAILED


def _endpoints(args: argparse.Namespace) -> list[str]:
    from kubemu.client.config import load_cluster_config

    return list(load_cluster_config(getattr(args, "home", None)).etcd)


def _url(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"http://{endpoint}"


async def cmd_members(args: argparse.Namespace, out: TextIO = sys.stdout,
                      err: TextIO = sys.stderr) -> int:
    endpoints = _endpoints(args)
    problems = [] if endpoints else ["no etcd endpoint in the cluster config"]
    for endpoint in endpoints:
        try:
            listed = await etcdinfo.members(endpoint, args.timeout_s)
            status = await etcdinfo.status(endpoint, args.timeout_s)
        except etcdinfo.EtcdQueryError as exc:
            problems.append(str(exc))
            continue
        rows = [(f"{m.id:x}", "started" if m.name else "unstarted", m.name,
                 ",".join(m.peer_urls), ",".join(m.client_urls),
                 str(m.id == status.leader_id).lower())
                for m in listed]
        out.write(table(("ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEADER"),
                        rows))
        return 0
    for problem in problems:
        print(f"Error: {problem}", file=err)
    return EXIT_FAILED


async def cmd_status(args: argparse.Namespace, out: TextIO = sys.stdout,
                     err: TextIO = sys.stderr) -> int:
    rows = []
    endpoints = _endpoints(args)
    failed = not endpoints
    if not endpoints:
        print("Error: no etcd endpoint in the cluster config", file=err)
    for endpoint in endpoints:
        try:
            s = await etcdinfo.status(endpoint, args.timeout_s)
        except etcdinfo.EtcdQueryError as exc:
            # etcdctl: {"level":"warn",...,"msg":"failed to get the status of endpoint"}
            print(f"Failed to get the status of endpoint {_url(endpoint)} ({exc})", file=err)
            failed = True
            continue
        rows.append((_url(endpoint), f"{s.id:x}", s.version, humanize_bytes(s.db_size_bytes),
                     str(s.id == s.leader_id).lower(), str(s.raft_term), str(s.raft_index),
                     str(s.revision)))
    if rows:
        out.write(table(("ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "RAFT TERM",
                         "RAFT INDEX", "REVISION"), rows))
    return EXIT_FAILED if failed else 0


def humanize_bytes(size: int) -> str:
    """go-humanize's Bytes (etcdctl's DB SIZE): SI units, "25 kB", "1.2 MB"."""
    if size < 10:
        return f"{size} B"
    suffixes = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    exponent = min(int(math.floor(math.log(size, 1000))), len(suffixes) - 1)
    value = math.floor(size / 1000 ** exponent * 10 + 0.5) / 10
    return f"{value:.1f} {suffixes[exponent]}" if value < 10 else \
        f"{value:.0f} {suffixes[exponent]}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """olekukonko/tablewriter as etcdctl sets it up: a border, headers centred,
    cells right-aligned, one space of padding."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"

    def centred(text: str, width: int) -> str:
        left = (width - len(text)) // 2
        return " " * left + text + " " * (width - len(text) - left)

    head = "|" + "|".join(f" {centred(h, w)} " for h, w in zip(header, widths)) + "|\n"
    body = "".join("|" + "|".join(f" {c.rjust(w)} " for c, w in zip(row, widths)) + "|\n"
                   for row in rows)
    return line + head + line + body + line
