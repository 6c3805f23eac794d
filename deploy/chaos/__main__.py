"""python -m deploy.chaos run SCENARIO.yaml [--seed N] [--report FILE] [--home DIR]
[--allow-affected-etcd]: a chaos experiment and its verdict (`kubemu chaos run`).

Exit status: 0 every invariant passed; 1 an invariant failed or the run broke;
2 usage or a bad scenario; 3 refused (an etcd with the 3.5.0-3.5.2 bug would be
killed, paused or stopped).
"""
from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubemu chaos", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a chaos scenario and check the invariants")
    run.add_argument("scenario", help="the scenario file (YAML; see deploy/scenarios/)")
    run.add_argument("--seed", type=int, default=1,
                     help="drives every random choice: the same seed gives the same fault "
                          "timeline on the same cluster shape (default 1)")
    run.add_argument("--report", default=None, metavar="FILE",
                     help="also write the report as JSON to FILE")
    run.add_argument("--home", default=None,
                     help="run against the cluster in this home (left running); default: "
                          "start the scenario's cluster in a fresh home and take it down")
    run.add_argument("--allow-affected-etcd", action="store_true",
                     help="kill/pause/stop etcd members even of an etcd 3.5.0-3.5.2")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from deploy.chaos import runner
    from deploy.chaos.scenario import ScenarioError, parse

    path = pathlib.Path(args.scenario)
    try:
        scenario = parse(path.read_text(), str(path))
    except OSError as err:
        print(f"error: {path}: {err.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        from kubemu.control import SupervisorClient
    except ImportError:
        print("error: kubemu.control (the supervisor's control API) is not available in "
              "this kubemu: the chaos runner needs it to strike faults", file=sys.stderr)
        return EXIT_FAILED
    options = runner.Options(scenario=scenario, seed=args.seed,
                             home=pathlib.Path(args.home) if args.home else None,
                             allow_affected_etcd=args.allow_affected_etcd)
    r = runner.Runner(options, lambda home: SupervisorClient(home,
                                                             timeout_s=runner.CONTROL_TIMEOUT_S))
    try:
        report = asyncio.run(r.run())
    except runner.ChaosRefused as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_REFUSED
    print(report.text())
    if args.report:
        runner.write_report(report, pathlib.Path(args.report))
    return EXIT_OK if report.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
