"""`kubemu chaos run SCENARIO.yaml [--seed N] [--report FILE] [--home DIR]`.

The runner is deploy.chaos (kubemu never imports deploy): this command runs
`python -m deploy.chaos run ...` in the foreground, as `kubemu up` runs
`python -m deploy up`, and returns its exit status. Without `--home` given to
`chaos run` itself, the runner starts the scenario's cluster in a fresh home
and takes it down afterwards; the top-level --home is not used for this, so
that a chaos run never strikes the default cluster by accident.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any


def register(subparsers: Any) -> None:
    chaos = subparsers.add_parser(
        "chaos", help="run chaos experiments",
        description="Chaos experiments: faults on a schedule, then invariants with evidence.")
    commands = chaos.add_subparsers(dest="chaos_command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run", help="run a scenario (deploy/scenarios/*.yaml) and check the invariants",
        description="Run a chaos scenario: workloads, a seeded fault timeline, a bounded "
                    "settle, then the invariants; exit 0 only when every one holds.")
    run.add_argument("scenario", help="the scenario file (YAML)")
    run.add_argument("--seed", type=int, default=1,
                     help="the same seed gives the same fault timeline (default 1)")
    run.add_argument("--report", default=None, metavar="FILE",
                     help="also write the report as JSON to FILE")
    run.add_argument("--home", dest="chaos_home", default=None, metavar="DIR",
                     help="run against the cluster in this home (left running); default: a "
                          "fresh cluster of the scenario's shape, taken down afterwards")
    run.add_argument("--allow-affected-etcd", action="store_true",
                     help="strike etcd members even of an etcd 3.5.0-3.5.2 (data loss bug)")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "deploy.chaos", "run", args.scenario, "--seed", str(args.seed)]
    if args.report:
        argv += ["--report", args.report]
    if args.chaos_home:
        argv += ["--home", args.chaos_home]
    if args.allow_affected_etcd:
        argv.append("--allow-affected-etcd")
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode
    except KeyboardInterrupt:
        return 130
