"""`kubemu etcd ...`: the cluster's etcd (snapshots: kubemu.cli.etcd_snapshot).

A minimal group so that `snapshot` has a parent; the HA work adds
`members` and `status` here.
"""
from __future__ import annotations

import argparse
import sys

from kubemu.cli import etcd_snapshot


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("etcd", help="the cluster's etcd: snapshots",
                              description="Work with the cluster's etcd.")
    subs = p.add_subparsers(dest="etcd_command", metavar="COMMAND")
    etcd_snapshot.register(subs)

    def usage(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 1
    p.set_defaults(func=usage)
