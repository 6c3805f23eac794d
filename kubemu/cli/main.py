"""The `kubemu` command line: `kubemu [--home HOME] <command> ...`.

Each command module has `register(subparsers)`, which adds its subcommands
with `func(args) -> int` (or a coroutine function, run here with
asyncio.run). Errors end as kubectl ends them: an ApiError prints
`Error from server (<Reason>): <message>` (an Invalid one `The <Kind> "<name>"
is invalid: ...`), a user error `error: <message>`, both on stderr with exit
status 1. Anything else is a bug and shows its traceback.
Start-up stays fast: command modules import only the standard library at
module level and load the client, codec and protobuf modules when they run.

Parsing follows kubectl (cobra/pflag), once for every command (`Parser`):
options may stand anywhere among the arguments (`get pods -n demo kuard`);
a boolean flag also takes `=true`/`=false` (`--wait=false`); everything after
`--` is handed over untouched as args.trailing (`exec POD -- ls -l`,
`run NAME --image=I -- ARGS`) to commands that accept it; a usage error is
`error: <message>` plus `See '<command> --help' for usage.` with exit status 1.
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import sys

from kubemu.cli import (apply, autoscale, cluster, delete, describe, discovery, drain, edit,
                        etcd, expose, get, labels, nodes, patch, pods, portforward, rollout, run,
                        scale, set_image, wait)
from kubemu.cli.common import format_error, write_error

# pflag's strconv.ParseBool spellings.
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class UsageError(Exception):
    """A command line that does not parse; main prints it kubectl's way (exit 1)."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse with kubectl's conventions (see the module docstring).

    A parser without subcommands parses intermixed (optionals first, then the
    positionals that remain), so options may follow or precede positionals;
    subcommand dispatch stays ordinary. Subparsers inherit this class.
    """

    _intermixing = False

    def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003 - argparse API
        # pflag has no abbreviations: `scale --replica=3` is an unknown flag, not --replicas.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse API
        args = list(sys.argv[1:] if args is None else args)
        args, bool_values = self._split_bool_values(args)
        if self._subparsers is not None or self._intermixing:
            namespace, extras = super().parse_known_args(args, namespace)
        else:
            self._intermixing = True
            try:
                namespace, extras = self.parse_known_intermixed_args(args, namespace)
            except TypeError:  # a REMAINDER positional: no intermixing possible
                namespace, extras = super().parse_known_args(args, namespace)
            except UsageError as exc:
                # pflag rejects an unknown flag while parsing, before cobra checks
                # the required ones (`scale deploy x --replicaa=10`).
                unknown = self._first_unknown_flag(args)
                if unknown is None or not str(exc).startswith("the following arguments"):
                    raise
                self.error(f"unrecognized arguments: {unknown}")
            finally:
                self._intermixing = False
        for dest, value in bool_values:
            setattr(namespace, dest, value)
        if extras and self._subparsers is None and not self._intermixing:
            # a leaf command names itself in the error (not the top-level parser)
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def _first_unknown_flag(self, args: list[str]) -> str | None:
        for arg in args:
            if arg == "--":
                return None
            if arg.startswith("--") and arg.partition("=")[0] not in self._option_string_actions:
                return arg
        return None

    def _split_bool_values(self, args: list[str]) -> tuple[list[str], list[tuple[str, bool]]]:
        """`--flag=true|false` for this parser's boolean flags, as pflag takes them."""
        if self._intermixing:
            return args, []
        bools = {opt: action for action in self._actions
                 if action.nargs == 0 and isinstance(action.const, bool)
                 or isinstance(action, argparse.BooleanOptionalAction)
                 for opt in action.option_strings if opt.startswith("--")}
        out: list[str] = []
        values: list[tuple[str, bool]] = []
        for i, arg in enumerate(args):
            if arg == "--":
                out.extend(args[i:])
                break
            flag, sep, text = arg.partition("=")
            action = bools.get(flag) if sep else None
            if action is None:
                out.append(arg)
                continue
            if text not in _TRUE + _FALSE:
                raise UsageError(f'invalid argument "{text}" for "{flag}" flag: '
                                 f'strconv.ParseBool: parsing "{text}": invalid syntax',
                                 self.prog)
            value = text in _TRUE
            if isinstance(action, argparse.BooleanOptionalAction):
                value = value if not flag.startswith("--no-") else not value
            elif action.const is False:
                value = not value
            values.append((action.dest, value))
        return out, values

    def error(self, message: str):  # noqa: ANN201 - argparse API
        raise UsageError(message, self.prog)

HOME_ENV = "KUBEMU_HOME"
DEFAULT_HOME = "~/.kubemu"

# In the order `kubemu --help` lists them.
COMMAND_MODULES = (cluster, apply, run, expose, get, describe, delete, labels, set_image, scale,
                   rollout, wait, patch, edit, nodes, pods, portforward, discovery, drain,
                   autoscale, etcd)


def default_home() -> str:
    return os.path.expanduser(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    try:
        args = parser.parse_args(argv)
        args.trailing = trailing
        if trailing and not getattr(args, "accepts_trailing", False):
            parser.error(f"unexpected arguments after --: {' '.join(trailing)}")
    except UsageError as exc:
        write_error(_unknown_command(parser, exc) or
                    f"error: {_pflag_words(str(exc))}\nSee '{exc.prog} --help' for usage.")
        return 1
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
        write_error(message)
        return 1


# Command groups whose kubectl Run is DefaultSubCommandRun: an unknown word is a usage error.
_COMMAND_GROUPS = ("kubemu rollout", "kubemu set")
_INVALID_COMMAND = re.compile(r"^argument COMMAND: invalid choice: '([^']*)'")


def _unknown_command(parser: argparse.ArgumentParser, exc: UsageError) -> str | None:
    """cobra's words for a command that does not exist (`kubemu certificate ...`): at the top,
    `unknown command "X" for "kubemu"` and its suggestions, as kubectl's CheckErr prints
    them; in a command group, kubectl's RequireNoArguments usage error."""
    match = _INVALID_COMMAND.match(str(exc))
    if match is None:
        return None
    word = match.group(1)
    if exc.prog in _COMMAND_GROUPS:
        return f'error: unknown command "{word}"\nSee \'{exc.prog} -h\' for help and examples'
    if exc.prog != parser.prog:
        return None
    names = [name for action in parser._subparsers._group_actions
             for name in action.choices] if parser._subparsers else []
    near = [name for name in sorted(set(names))   # cobra sorts its commands
            if _levenshtein(word.lower(), name.lower()) <= 2
            or name.lower().startswith(word.lower())]
    text = f'error: unknown command "{word}" for "{parser.prog}"'
    if near:
        text += "\n\nDid you mean this?\n" + "".join(f"\t{name}\n" for name in near)
    return text.rstrip("\n")


def _levenshtein(a: str, b: str) -> int:
    """cobra's ld: edits (insert, delete, substitute) from a to b."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[len(b)]


def _pflag_words(message: str) -> str:
    """argparse's wording of the common mistakes, in pflag's."""
    if message.startswith("unrecognized arguments: "):
        first = message.removeprefix("unrecognized arguments: ").split()[0]
        if first.startswith("-"):
            return f"unknown flag: {first.split('=')[0]}" if first.startswith("--") else \
                f"unknown shorthand flag: {first[1:2]!r} in {first}"
        return f"unexpected argument: {first}"
    if message.startswith("the following arguments are required: --"):
        flags = message.removeprefix("the following arguments are required: ").split(", ")
        return "required flag(s) " + ", ".join(f'"{f.lstrip("-")}"' for f in flags) + " not set"
    if message.startswith("argument ") and ": expected one argument" in message:
        flag = message.removeprefix("argument ").split(":")[0].split("/")[-1]
        return f"flag needs an argument: {flag}"
    return message


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
