"""The `kubemu` command line: `kubemu [--home HOME] <command> ...`.

Each command module has `register(subparsers)`, which adds its subcommands
with `func(args) -> int` (or a coroutine function, run here with
asyncio.run). Errors end as kubectl ends them: an ApiError prints
`Error from server (<Reason>): <message>` (an Invalid one `The <Kind> "<name>"
is invalid: ...`), a user error `error: <message>`, both on stderr with exit
status 1. Anything else is a bug and shows its traceback.
Start-up stays fast: command modules import only the standard library at
module level and load the client, codec and protobuf modules when they run.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys

from kubemu.cli import apply, cluster, delete, describe, discovery, get, labels, nodes, pods
from kubemu.cli.common import format_error

HOME_ENV = "KUBEMU_HOME"
DEFAULT_HOME = "~/.kubemu"

# In the order `kubemu --help` lists them.
COMMAND_MODULES = (cluster, apply, get, describe, delete, labels, nodes, pods, discovery)


def default_home() -> str:
    return os.path.expanduser(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubemu", description="A Kubernetes cluster emulator: cluster lifecycle and "
                                   "kubectl-like object commands.")
    parser.add_argument("--home", default=default_home(),
                        help=f"the cluster's home (default: ${HOME_ENV}, else {DEFAULT_HOME})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    for sub in set(subparsers.choices.values()):
        # `kubemu get po --home H` as well as `kubemu --home H get po`; SUPPRESS
        # keeps the top-level value when the option is not repeated here.
        try:
            sub.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        except argparse.ArgumentError:
            pass  # the command has its own --home (cluster.py's)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `create deployment web --image=x -- sleep 10`: words after `--` are handed to
    # the command as args.trailing (argparse mishandles `--` inside subcommands).
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.trailing = trailing
    if trailing and not getattr(args, "accepts_trailing", False):
        parser.error(f"unexpected arguments after --: {' '.join(trailing)}")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 1
    args.home = os.path.expanduser(str(args.home))
    try:
        result = func(args)
        if inspect.isawaitable(result):
            import asyncio  # here: ~50 ms that --help and `version --client` need not pay

            result = asyncio.run(result)
        return int(result or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kubemu get ... | head`: the reader left; say nothing more.
        _silence_stdout()
        return 1
    except Exception as exc:  # noqa: BLE001 - ours are printed, bugs re-raised
        message = format_error(exc)
        if message is None:
            raise
        sys.stdout.flush()
        print(message, file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
