"""Fault commands on a running cluster, through the supervisor's control API
(kubemu/control.py): kill, stop, start, restart, pause, resume, partition,
heal; and `kubemu logs --component NAME` (a process's own log file).

Names are the exact process names `kubemu status` shows (etcd-0, apiserver-0,
node-1/kubelet, ...). Durations are kubectl's (`20s`, `1m30s`). A name the
supervisor does not know is an error listing the processes; nothing is done
then. Exit status 1 on any error, with the supervisor's reason.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from kubemu.cli import common

LOG_FOLLOW_POLL_S = 0.2
LOG_TAIL_BYTES_MAX = 8 << 20


def _signal(text: str) -> int:
    """KILL, SIGKILL, 9, term, ... -> the signal number (an argparse type)."""
    word = text.strip().upper()
    if word.isdigit():
        try:
            return int(signal.Signals(int(word)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"unknown signal {text!r}") from None
    name = word if word.startswith("SIG") else f"SIG{word}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown signal {text!r}") from None


def _duration(text: str) -> float:
    seconds = common.parse_duration_s(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return seconds


def register(subparsers: Any) -> None:
    def command(name: str, help_text: str, *, names: str = "+") -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("names", nargs=names, metavar="NAME",
                            help="process names, as `kubemu status` shows them")
        parser.set_defaults(func=run_fault, fault=name)
        return parser

    kill = command("kill", "send a signal to cluster processes (default SIGKILL); the "
                           "supervisor restarts them unless --keep-down")
    kill.add_argument("-s", "--signal", type=_signal, default=int(signal.SIGKILL),
                      metavar="SIG", help="KILL (default), TERM, INT, 9, ...")
    kill.add_argument("--keep-down", action="store_true",
                      help="leave it stopped until `kubemu start`")
    command("stop", "stop cluster processes; they stay down until `kubemu start`")
    command("start", "start stopped cluster processes again")
    command("restart", "stop cluster processes and start them again at once")
    pause = command("pause", "freeze cluster processes (SIGSTOP); the supervisor does not "
                             "take them for dead")
    pause.add_argument("--for", type=_duration, default=None, dest="for_s", metavar="DURATION",
                       help="resume by itself after this long (20s, 1m)")
    command("resume", "continue paused cluster processes (SIGCONT)")
    partition = command("partition", "cut every network link of cluster processes")
    partition.add_argument("--for", type=_duration, default=None, dest="for_s",
                           metavar="DURATION", help="heal by itself after this long (20s, 1m)")
    command("heal", "restore the links cut by partition (every one when no name is given)",
            names="*")


async def run_fault(args: argparse.Namespace) -> int:
    from kubemu.client.config import home_dir
    from kubemu.control import ControlError, SupervisorClient

    home = home_dir(args.home).resolve()
    names = list(args.names)
    async with SupervisorClient(home) as client:
        try:
            if args.fault == "kill":
                await client.kill(names, signal=args.signal, keep_down=args.keep_down)
            elif args.fault in ("pause", "partition"):
                await getattr(client, args.fault)(names, for_s=args.for_s)
            elif args.fault == "heal":
                await client.heal(names or None)
            else:
                await getattr(client, args.fault)(names)
        except ControlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    past = {"kill": "killed", "stop": "stopped", "start": "started", "restart": "restarted",
            "pause": "paused", "resume": "resumed", "partition": "partitioned",
            "heal": "healed"}[args.fault]
    for name in names or ["every partition"]:
        print(f"{name} {past}")
    return 0


# --- logs --component ------------------------------------------------------

def log_path(home: os.PathLike[str] | str, name: str) -> str:
    """<home>/logs/<name with "/" -> "-">.log"""
    return os.path.join(os.fspath(home), "logs", name.replace("/", "-") + ".log")


def _tail_lines(data: bytes, lines: int | None) -> bytes:
    if lines is None or lines < 0:
        return data
    if lines == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


async def run_component_logs(args: argparse.Namespace) -> int:
    """`kubemu logs --component NAME [-f] [--tail N]`: a process's log file.
    The CLI's own loop runs nothing else: reading the file on it is fine."""
    import asyncio

    from kubemu.client.config import home_dir

    home = home_dir(args.home).resolve()
    path = log_path(home, args.component)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        logs = sorted(n.removesuffix(".log") for n in os.listdir(os.path.join(home, "logs"))
                      if n.endswith(".log")) if os.path.isdir(os.path.join(home, "logs")) else []
        print(f"error: no log for component {args.component!r} in {home} "
              f"(logs: {', '.join(logs) or 'none'})", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    with f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - LOG_TAIL_BYTES_MAX))
        out.write(_tail_lines(f.read(), args.tail))
        out.flush()
        while args.follow:  # until Ctrl-C, as kubectl logs -f
            chunk = f.read(1 << 16)
            if chunk:
                out.write(chunk)
                out.flush()
                continue
            await asyncio.sleep(LOG_FOLLOW_POLL_S)  # the poll for appended output
    return 0
