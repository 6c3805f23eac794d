"""`kubemu up`, `kubemu down` and `kubemu status`: the cluster's lifecycle commands.

The supervisor is `python -m deploy up` (a separate process: kubemu code never
imports deploy). These commands talk to it only through files in the home:
`supervisor.pid`, `state.json` (processes, pids, addresses, restarts, state,
progress lines; replaced atomically) and `logs/supervisor.log`. The names
below repeat deploy/supervisor.py's; change both together.

- up: starts the supervisor; with --detach in a new session (output to
  logs/supervisor.log) and returns once state.json says ready, printing its
  progress lines; without it in the foreground, forwarding Ctrl-C. A cluster
  already running in the home is not an error.
- down: SIGTERM to the supervisor, bounded wait, then kills anything of the
  cluster still alive, and says "no process left" only after checking.
- status: one row per process, with a liveness check of each pid.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Iterable, TextIO

if TYPE_CHECKING:
    import psutil

# psutil and kubemu.client (which loads grpc) are imported where used: the CLI
# starts fast for commands that do not need them.

STATE_FILE = "state.json"
PID_FILE = "supervisor.pid"
LOGS_DIR = "logs"
SUPERVISOR_LOG = "supervisor.log"
SUPERVISED_ENV = "KUBEMU_SUPERVISED_HOME"
SUPERVISOR_EXIT_ALREADY_RUNNING = 3

UP_TIMEOUT_S = 120.0
DOWN_TIMEOUT_S = 90.0
POLL_S = 0.1
KILL_GRACE_S = 5.0
STATE_BYTES_MAX = 4 << 20
LOG_TAIL_LINES = 20
LIVE_STATES = ("starting", "running", "stopping")


def register(subparsers: Any) -> None:
    """Add up, down and status to the top-level parser's subcommands."""
    up = subparsers.add_parser(
        "up", help="start a cluster in KUBEMU_HOME",
        description="Start etcd, the apiserver and the other components of a cluster.")
    _home_option(up)
    up.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    up.add_argument("--schedulers", type=int, default=1,
                    help="scheduler processes: one leads, the others are standbys (default 1)")
    up.add_argument("-d", "--detach", action="store_true",
                    help="run the supervisor in the background; return once the cluster is ready")
    up.add_argument("--no-restart", action="store_true",
                    help="do not restart components that die")
    up.add_argument("--timeout", type=float, default=UP_TIMEOUT_S, dest="timeout_s",
                    metavar="SECONDS", help=f"give up when not ready by then (default {UP_TIMEOUT_S:g})")
    up.set_defaults(func=cmd_up)

    down = subparsers.add_parser(
        "down", help="stop the cluster in KUBEMU_HOME",
        description="Stop every process of the cluster and check that none is left.")
    _home_option(down)
    down.add_argument("--timeout", type=float, default=DOWN_TIMEOUT_S, dest="timeout_s",
                      metavar="SECONDS",
                      help=f"wait this long for the supervisor (default {DOWN_TIMEOUT_S:g})")
    down.set_defaults(func=cmd_down)

    status = subparsers.add_parser(
        "status", help="list the cluster's processes",
        description="One row per process: component, node, pid, state, restarts, address.")
    _home_option(status)
    status.set_defaults(func=cmd_status)


def _home_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: when not given here, the top-level --home (args.home) stands.
    parser.add_argument("--home", default=argparse.SUPPRESS,
                        help="the cluster's home (default: $KUBEMU_HOME, else ~/.kubemu)")


def _home(args: argparse.Namespace) -> pathlib.Path:
    from kubemu.client.config import home_dir

    # Resolved the way the supervisor resolves it: paths are compared.
    return home_dir(getattr(args, "home", None)).resolve()


# --- reading the home ---------------------------------------------------

def read_state(home: pathlib.Path) -> dict[str, Any] | None:
    """state.json, or None when there is none (or it is not one)."""
    try:
        with open(home / STATE_FILE, "rb") as f:
            raw = f.read(STATE_BYTES_MAX + 1)
        doc = json.loads(raw) if len(raw) <= STATE_BYTES_MAX else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _same_process(proc: psutil.Process, create_time: Any) -> bool:
    import psutil

    if not isinstance(create_time, (int, float)):
        return True  # nothing to compare with
    try:
        return abs(proc.create_time() - create_time) <= 0.05
    except psutil.Error:
        return False


def _alive(pid: Any, create_time: Any = None) -> psutil.Process | None:
    """The process with that pid (and start time, when known), if it runs."""
    import psutil

    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or not _same_process(proc, create_time):
            return None
        return proc
    except psutil.Error:
        return None


def running_supervisor(home: pathlib.Path) -> psutil.Process | None:
    """The live supervisor of `home`, found by its pid file."""
    import psutil

    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    state = read_state(home) or {}
    recorded = state.get("supervisor") or {}
    if recorded.get("pid") == pid:
        return _alive(pid, recorded.get("create_time"))
    # The pid file is written before the first state: check it is a supervisor.
    proc = _alive(pid)
    try:
        cmdline = proc.cmdline() if proc else []
    except psutil.Error:
        return None
    return proc if "deploy" in cmdline and "up" in cmdline else None


def _recorded(state: dict[str, Any] | None) -> list[tuple[int, Any]]:
    if not state:
        return []
    return [(e["pid"], e.get("create_time")) for e in state.get("processes", [])
            if isinstance(e, dict) and isinstance(e.get("pid"), int)]


def home_processes(home: pathlib.Path, recorded: Iterable[tuple[int, Any]] = (), *,
                   by_cmdline: bool = True) -> list[psutil.Process]:
    from kubemu import cluster_home

    return cluster_home.find_home_processes(home, recorded, by_cmdline=by_cmdline)


def _describe(procs: Iterable[psutil.Process]) -> str:
    from kubemu import cluster_home

    return cluster_home.describe(procs, width=100)


def _terminate(procs: list[psutil.Process], grace_s: float) -> None:
    """SIGTERM (the process group when a process leads one), wait, SIGKILL."""
    own_pgid = os.getpgid(0)

    def send(proc: psutil.Process, sig: int) -> None:
        import psutil

        with contextlib.suppress(psutil.Error, OSError):
            pgid = os.getpgid(proc.pid)
            if pgid == proc.pid and pgid != own_pgid:
                os.killpg(pgid, sig)
            else:
                proc.send_signal(sig)

    for proc in procs:
        send(proc, signal.SIGTERM)
    alive = _wait_gone(procs, grace_s)
    for proc in alive:
        send(proc, signal.SIGKILL)
    _wait_gone(alive, KILL_GRACE_S)


def _running(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """The processes still running after waiting up to timeout_s for them to end.

    Not psutil.wait_procs: it waits for a zombie to be reaped, and an orphan's
    zombie may never be when pid 1 does not reap (as in some containers).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in procs if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))  # poll interval


def _log_tail(path: pathlib.Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- up -----------------------------------------------------------------

def cmd_up(args: argparse.Namespace) -> int:
    home = _home(args)
    if args.nodes < 0:
        print(f"error: --nodes: must be >= 0, got {args.nodes}", file=sys.stderr)
        return 2
    if args.schedulers < 0:
        print(f"error: --schedulers: must be >= 0, got {args.schedulers}", file=sys.stderr)
        return 2
    supervisor = running_supervisor(home)
    if supervisor is not None:
        return _already_running(home, supervisor, args)
    argv = [sys.executable, "-m", "deploy", "up", "--home", str(home),
            "--nodes", str(args.nodes), "--start-timeout-s", str(args.timeout_s),
            "--schedulers", str(args.schedulers)]
    if args.no_restart:
        argv.append("--no-restart")
    if args.detach:
        return _up_detached(home, argv, args.timeout_s)
    return _up_foreground(argv)


def _already_running(home: pathlib.Path, supervisor: psutil.Process,
                     args: argparse.Namespace) -> int:
    state = read_state(home) or {}
    print(f"cluster already running in {home} (supervisor pid {supervisor.pid}, "
          f"state {state.get('state', 'unknown')})")
    if state.get("state") == "starting" and args.detach:
        return _wait_ready(home, supervisor.pid, args.timeout_s, child=None, printed=None)
    return 0


def _up_detached(home: pathlib.Path, argv: list[str], timeout_s: float) -> int:
    log_path = home / LOGS_DIR / SUPERVISOR_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        # A new session: the supervisor outlives this command and the terminal.
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 close_fds=True)
    return _wait_ready(home, child.pid, timeout_s, child=child, printed=0)


def _wait_ready(home: pathlib.Path, pid: int, timeout_s: float,
                child: subprocess.Popen | None, printed: int | None,
                out: TextIO = sys.stdout) -> int:
    """Print the supervisor's progress lines until state.json says ready (0) or failed (1).

    printed=None: skip the lines already there (someone else's start).
    """
    deadline = time.monotonic() + timeout_s
    log_path = home / LOGS_DIR / SUPERVISOR_LOG
    while True:
        state = read_state(home)
        if state and (state.get("supervisor") or {}).get("pid") == pid:
            lines = [str(x) for x in state.get("progress", [])]
            if printed is None:
                printed = len(lines)
            for line in lines[printed:]:
                print(line, file=out, flush=True)
            printed = max(printed, len(lines))
            phase = state.get("state")
            if phase == "ready":
                return 0
            if phase in ("failed", "stopped"):
                reason = state.get("reason") or phase
                print(f"error: cluster failed to start: {reason}", file=sys.stderr)
                if child is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(DOWN_TIMEOUT_S)
                return 1
        code = child.poll() if child is not None else (None if _alive(pid) else "gone")
        if code is not None:
            if code == SUPERVISOR_EXIT_ALREADY_RUNNING:
                other = running_supervisor(home)
                if other is not None:
                    print(f"cluster already running in {home} (supervisor pid {other.pid})")
                    return _wait_ready(home, other.pid, max(0.0, deadline - time.monotonic()),
                                       child=None, printed=None, out=out)
            print(f"error: the supervisor (pid {pid}) exited ({code}) before the cluster was "
                  f"ready; last lines of {log_path}:\n{_log_tail(log_path)}", file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            print(f"error: cluster not ready after {timeout_s:g} s; stopping it "
                  f"(logs: {home / LOGS_DIR})", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(DOWN_TIMEOUT_S)
            return 1
        time.sleep(POLL_S)  # poll interval of a bounded wait


def _up_foreground(argv: list[str]) -> int:
    # Its own session, so a Ctrl-C reaches it once: from us, not also from the terminal.
    child = subprocess.Popen(argv, start_new_session=True)

    def forward(signum: int, _frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code


# --- down ---------------------------------------------------------------

def cmd_down(args: argparse.Namespace) -> int:
    import psutil

    home = _home(args)
    supervisor = running_supervisor(home)
    did_something = False
    if supervisor is not None:
        did_something = True
        print(f"stopping cluster in {home} (supervisor pid {supervisor.pid})")
        with contextlib.suppress(psutil.Error):
            supervisor.send_signal(signal.SIGTERM)
        alive = _wait_gone([supervisor], args.timeout_s)
        if alive:
            print(f"warning: the supervisor did not stop within {args.timeout_s:g} s; killing it",
                  file=sys.stderr)
            _terminate(alive, grace_s=0.0)
    state = read_state(home)
    recorded = _recorded(state)
    # Only what is certainly ours is killed: recorded pids and the marker variable.
    leftovers = home_processes(home, recorded, by_cmdline=False)
    if leftovers:
        did_something = True
        print(f"killing {len(leftovers)} process(es) left behind: {_describe(leftovers)}")
        _terminate(leftovers, grace_s=KILL_GRACE_S)
    left = home_processes(home, recorded)
    if left:
        print(f"error: {len(left)} process(es) of {home} still running: {_describe(left)}",
              file=sys.stderr)
        return 1
    if not did_something:
        print(f"no cluster running in {home}; no process left")
        return 0
    print("cluster stopped; no process left")
    return 0


# --- status -------------------------------------------------------------

def cmd_status(args: argparse.Namespace) -> int:
    home = _home(args)
    state = read_state(home)
    supervisor = running_supervisor(home)
    if state is None:
        print(f"error: no cluster in {home}: run 'kubemu up' first (or set KUBEMU_HOME)",
              file=sys.stderr)
        return 1
    rows = [("COMPONENT", "NODE", "PID", "STATE", "RESTARTS", "ADDRESS")]
    sup = state.get("supervisor") or {}
    sup_state = state.get("state", "unknown") if supervisor else "dead"
    rows.append(("supervisor", "-", str(sup.get("pid", "-")), sup_state, "0", "-"))
    any_alive = supervisor is not None
    for entry in state.get("processes", []):
        if not isinstance(entry, dict):
            continue
        pid = entry.get("pid")
        recorded = str(entry.get("state", "unknown"))
        alive = _alive(pid, entry.get("create_time")) is not None
        any_alive = any_alive or alive
        shown = recorded
        if recorded in LIVE_STATES and not alive:
            shown = "dead"
        elif not supervisor and alive:
            shown = "orphaned"
        rows.append((str(entry.get("component", "?")), entry.get("node") or "-",
                     str(pid) if pid else "-", shown, str(entry.get("restarts", 0)),
                     str(entry.get("address") or "-")))
    if not any_alive:
        print(f"error: no cluster running in {home} (last state: {state.get('state', 'unknown')})",
              file=sys.stderr)
        return 1
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if supervisor is None:
        print(f"warning: the supervisor is not running; run 'kubemu down' to clean up",
              file=sys.stderr)
    return 0
