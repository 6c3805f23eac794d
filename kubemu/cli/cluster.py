"""`kubemu up`, `kubemu down` and `kubemu status`: the cluster's lifecycle commands.

The supervisor is `python -m deploy up` (a separate process: kubemu code never
imports deploy). These commands talk to it only through files in the home:
`supervisor.pid`, `state.json` (processes, pids, addresses, restarts, state,
progress lines; replaced atomically) and `logs/supervisor.log`, whose names,
format and process checks are kubemu.cluster_home's (the supervisor's too).
The supervisor is started with a umask of 0o077; the home, its logs
directory and supervisor.log are made private here first.

- up: starts the supervisor; with --detach in a new session (output to
  logs/supervisor.log) and returns once state.json says ready, printing its
  progress lines; without it in the foreground, forwarding Ctrl-C. A cluster
  already running in the home is not an error.
- down: SIGTERM to the supervisor, bounded wait, then kills anything of the
  cluster still alive (pods included, found from the node runtimes' records
  and cgroups), removes the runtimes' cgroups, and says "no process left"
  only after checking.
- status: one row per process (NAME STATE PID RESTARTS LAST-EXIT UPTIME
  ADDRESS, or -o json): asked of the supervisor's control API
  (kubemu.control) when it answers, else from state.json with a liveness check
  of each pid. Exit 1 when the supervisor is dead.

`down` and `status` find the supervisor by its pid file, else as the holder of
the home's lock (so a lost supervisor.pid does not leave `down` killing what
the supervisor restarts).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from kubemu import cluster_home, fileutil
from kubemu.cluster_home import LOGS_DIR, ClusterState, read_state

if TYPE_CHECKING:
    import psutil

# psutil (through kubemu.cluster_home's process checks) and kubemu.client
# (which loads grpc) are imported where used: the CLI starts fast for commands
# that do not need them.

UP_TIMEOUT_S = 120.0
DOWN_TIMEOUT_S = 90.0
POLL_S = 0.1
KILL_GRACE_S = 5.0
STATUS_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 20
# Started with it: what the supervisor (and every process it starts) creates
# without a mode is private to the cluster's user.
CHILD_UMASK = 0o077


def register(subparsers: Any) -> None:
    """Add up, down and status to the top-level parser's subcommands."""
    up = subparsers.add_parser(
        "up", help="start a cluster in KUBEMU_HOME",
        description="Start etcd, the apiserver and the other components of a cluster.")
    _home_option(up)
    up.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    up.add_argument("--etcd", type=int, default=1,
                    help="etcd members, started as one cluster (default 1; 3 survives the "
                         "loss of any one)")
    up.add_argument("--apiservers", type=int, default=1,
                    help="apiserver processes, each given every etcd member (default 1)")
    up.add_argument("--schedulers", type=int, default=1,
                    help="scheduler processes: one leads, the others are standbys (default 1)")
    up.add_argument("--controller-managers", type=int, default=1,
                    help="controller-manager processes: one leads, the others are standbys "
                         "(default 1)")
    up.add_argument("--profile", choices=("default", "fast"), default="default",
                    help="component timings: Kubernetes' defaults, or scaled down so that "
                         "backoffs and take-overs take seconds (tests, chaos experiments)")
    up.add_argument("-d", "--detach", action="store_true",
                    help="run the supervisor in the background; return once the cluster is ready")
    up.add_argument("--no-restart", action="store_true",
                    help="do not restart components that die")
    up.add_argument("--no-addons", action="store_true",
                    help="a bare cluster: do not install the add-ons (cluster DNS) that "
                         "kubeadm installs; pods with dnsPolicy ClusterFirst then use the "
                         "host's resolver")
    up.add_argument("--addons", action="append", default=[], metavar="NAME[,NAME]",
                    help="add-ons to install besides cluster DNS: ingress-nginx (an "
                         "ingress controller behind a LoadBalancer Service, IngressClass "
                         "nginx)")
    up.add_argument("--timeout", type=float, default=UP_TIMEOUT_S, dest="timeout_s",
                    metavar="SECONDS", help=f"give up when not ready by then (default {UP_TIMEOUT_S:g})")
    up.add_argument("--isolation", choices=("auto", "namespaces", "plain"), default=None,
                    help="how every node isolates its containers: namespaces, plain (host "
                         "processes, as before), or auto: namespaces where the machine allows "
                         "(default: $KUBEMU_ISOLATION, else auto)")
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
        description="One row per process: name, state, pid, restarts, last exit, uptime, "
                    "address. Exits 1 when the supervisor is not running.")
    _home_option(status)
    status.add_argument("-o", "--output", default="", choices=("", "json"),
                        help="json: the same, as one JSON document")
    status.set_defaults(func=cmd_status)


def _home_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: when not given here, the top-level --home (args.home) stands.
    parser.add_argument("--home", default=argparse.SUPPRESS,
                        help="the cluster's home (default: $KUBEMU_HOME, else ~/.kubemu)")


def _home(args: argparse.Namespace) -> pathlib.Path:
    from kubemu.client.config import home_dir

    # Resolved the way the supervisor resolves it: paths are compared.
    return home_dir(getattr(args, "home", None)).resolve()


def _log_tail(path: pathlib.Path, lines: int = LOG_TAIL_LINES) -> str:
    return fileutil.tail(path, lines, 16384)


# --- up -----------------------------------------------------------------

def cmd_up(args: argparse.Namespace) -> int:
    home = _home(args)
    if args.nodes < 0:
        print(f"error: --nodes: must be >= 0, got {args.nodes}", file=sys.stderr)
        return 2
    for flag, least in (("etcd", 1), ("apiservers", 1), ("schedulers", 0)):
        if getattr(args, flag) < least:
            print(f"error: --{flag}: must be >= {least}, got {getattr(args, flag)}",
                  file=sys.stderr)
            return 2
    if args.controller_managers < 0:
        print(f"error: --controller-managers: must be >= 0, got {args.controller_managers}",
              file=sys.stderr)
        return 2
    supervisor = cluster_home.running_supervisor(home)
    if supervisor is not None:
        return _already_running(home, supervisor, args)
    argv = [sys.executable, "-m", "deploy", "up", "--home", str(home),
            "--nodes", str(args.nodes), "--start-timeout-s", str(args.timeout_s),
            "--schedulers", str(args.schedulers), "--etcd", str(args.etcd),
            "--apiservers", str(args.apiservers),
            "--controller-managers", str(args.controller_managers), "--profile", args.profile]
    if args.no_restart:
        argv.append("--no-restart")
    if args.no_addons:
        argv.append("--no-addons")
    for item in args.addons:
        argv += ["--addons", item]
    if args.isolation:
        argv += ["--isolation", args.isolation]
    if args.detach:
        return _up_detached(home, argv, args.timeout_s)
    return _up_foreground(home, argv)


def _already_running(home: pathlib.Path, supervisor: psutil.Process,
                     args: argparse.Namespace) -> int:
    state = read_state(home)
    phase = state.state if state else "unknown"
    print(f"cluster already running in {home} (supervisor pid {supervisor.pid}, state {phase})")
    if phase == ClusterState.STARTING and args.detach:
        return _wait_ready(home, supervisor.pid, args.timeout_s, child=None, printed=None)
    return 0


def _up_detached(home: pathlib.Path, argv: list[str], timeout_s: float) -> int:
    cluster_home.make_private_home(home)
    log_path = fileutil.private_file(cluster_home.supervisor_log(home))
    with open(log_path, "ab") as out:
        # A new session: the supervisor outlives this command and the terminal.
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 close_fds=True, umask=CHILD_UMASK)
    return _wait_ready(home, child.pid, timeout_s, child=child, printed=0)


def _wait_ready(home: pathlib.Path, pid: int, timeout_s: float,
                child: subprocess.Popen | None, printed: int | None,
                out: TextIO = sys.stdout) -> int:
    """Print the supervisor's progress lines until state.json says ready (0) or failed (1).

    printed=None: skip the lines already there (someone else's start).
    """
    deadline = time.monotonic() + timeout_s
    log_path = cluster_home.supervisor_log(home)
    while True:
        state = read_state(home)
        if state and state.supervisor is not None and state.supervisor.pid == pid:
            lines = state.progress
            if printed is None:
                printed = len(lines)
            for line in lines[printed:]:
                print(line, file=out, flush=True)
            printed = max(printed, len(lines))
            phase = state.state
            if phase == ClusterState.READY:
                return 0
            if phase in (ClusterState.FAILED, ClusterState.STOPPED):
                reason = state.reason or phase
                print(f"error: cluster failed to start: {reason}", file=sys.stderr)
                if child is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(DOWN_TIMEOUT_S)
                return 1
        code = child.poll() if child is not None else (
            None if cluster_home.alive(pid) else "gone")
        if code is not None:
            if code == cluster_home.SUPERVISOR_EXIT_ALREADY_RUNNING:
                other = cluster_home.running_supervisor(home)
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


def _up_foreground(home: pathlib.Path, argv: list[str]) -> int:
    # Its own session, so a Ctrl-C reaches it once: from us, not also from the terminal.
    cluster_home.make_private_home(home)
    child = subprocess.Popen(argv, start_new_session=True, umask=CHILD_UMASK)

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
    supervisor = cluster_home.running_supervisor(home)
    did_something = False
    if supervisor is not None:
        did_something = True
        print(f"stopping cluster in {home} (supervisor pid {supervisor.pid})")
        with contextlib.suppress(psutil.Error):
            supervisor.send_signal(signal.SIGTERM)
        alive = cluster_home.wait_gone([supervisor], args.timeout_s)
        if alive:
            print(f"warning: the supervisor did not stop within {args.timeout_s:g} s; killing it",
                  file=sys.stderr)
            cluster_home.kill_processes(alive)
    state = read_state(home)
    recorded = state.recorded() if state else []
    # Only what is certainly ours is killed: recorded pids, the marker variable,
    # the containers the node runtimes recorded and what is in their cgroups.
    leftovers = cluster_home.find_home_processes(home, recorded, by_cmdline=False)
    if leftovers:
        did_something = True
        print(f"killing {len(leftovers)} process(es) left behind: "
              f"{cluster_home.describe(leftovers, width=100)}")
        cluster_home.terminate(leftovers, grace_s=KILL_GRACE_S)
    left = cluster_home.find_home_processes(home, recorded)
    if not left:
        # Every process is gone: the node runtimes' cgroups go too (a restarted
        # cluster makes its own again).
        stuck = cluster_home.remove_cgroups(home)
        if stuck:
            print(f"warning: could not remove cgroup(s) of {home}: "
                  f"{', '.join(str(p) for p in stuck)}", file=sys.stderr)
    if left:
        print(f"error: {len(left)} process(es) of {home} still running: "
              f"{cluster_home.describe(left, width=100)}", file=sys.stderr)
        return 1
    if not did_something:
        print(f"no cluster running in {home}; no process left")
        return 0
    print("cluster stopped; no process left")
    return 0


# --- status -------------------------------------------------------------

def _isolation(home: pathlib.Path, node: str) -> str:
    """The node runtime's isolation mode as it wrote it at start (state/isolation.json),
    with the reason for a weaker mode; "" when unknown."""
    path = cluster_home.runtime_root(home, node) / "state" / "isolation.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    mode, reason = str(data.get("mode", "")), str(data.get("reason", ""))
    return f"{mode} ({reason})" if mode and reason else mode


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from kubemu.cli.printers import human_duration

    return human_duration(seconds)


def _live_status(home: pathlib.Path) -> list[Any] | None:
    """The supervisor's own answer (kubemu.control), or None when it does not answer."""
    import asyncio

    from kubemu.control import ControlError, SupervisorClient

    async def ask() -> list[Any]:
        async with SupervisorClient(home, timeout_s=STATUS_TIMEOUT_S) as client:
            return await client.status()
    try:
        return asyncio.run(ask())
    except ControlError:
        return None


def cmd_status(args: argparse.Namespace) -> int:
    """One row per process. From the supervisor when it answers (live: paused,
    partitioned, uptime), else from state.json and the process table. Exit 1
    when the supervisor is dead (the rows still say what is left)."""
    from kubemu.control import ProcessInfo

    home = _home(args)
    state = read_state(home)
    supervisor = cluster_home.running_supervisor(home)
    live = _live_status(home) if supervisor is not None else None
    if state is None and supervisor is None:
        leftovers = cluster_home.find_home_processes(home, by_cmdline=False)
        if leftovers:
            print(f"error: no supervisor and no state in {home}; {len(leftovers)} process(es) "
                  f"left: {cluster_home.describe(leftovers, width=100)}; run 'kubemu down'",
                  file=sys.stderr)
        else:
            print(f"error: no cluster in {home}: run 'kubemu up' first (or set KUBEMU_HOME)",
                  file=sys.stderr)
        return 1
    infos: list[ProcessInfo] = []
    if live is not None:
        infos = live
    elif state is not None:
        now = time.time()
        for entry in state.processes:
            proc = cluster_home.alive(entry.pid, entry.create_time)
            shown = entry.state
            if entry.state in cluster_home.LIVE_STATES and proc is None:
                shown = "dead"
            elif supervisor is None and proc is not None:
                shown = "orphaned"
            last_exit = ""
            if entry.exit_code is not None:
                last_exit = (f"code {entry.exit_code}" if entry.exit_code >= 0
                             else f"signal {_signame(-entry.exit_code)}")
            uptime = (now - entry.create_time) if proc is not None and entry.create_time else None
            infos.append(ProcessInfo(
                name=entry.name, component=entry.component, node=entry.node,
                pid=entry.pid if proc is not None else None, state=shown,
                restarts=entry.restarts, last_exit=last_exit, uptime_s=uptime,
                address=entry.address, partitioned=False, paused=False))
    sup_state = "dead"
    if supervisor is not None:
        sup_state = state.state if state else "running"
    sup_pid = supervisor.pid if supervisor is not None else (
        state.supervisor.pid if state and state.supervisor else None)
    if getattr(args, "output", "") == "json":
        doc = {"home": str(home), "supervisor": {"pid": sup_pid, "state": sup_state},
               "state": state.state if state else "", "live": live is not None,
               "processes": [dataclasses.asdict(i) for i in infos]}
        print(json.dumps(doc, indent=2))
    else:
        rows = [("NAME", "STATE", "PID", "RESTARTS", "LAST-EXIT", "UPTIME", "ADDRESS")]
        rows.append(("supervisor", sup_state, str(sup_pid or "-"), "0", "-", "-", "-"))
        for i in infos:
            rows.append((i.name, i.state, str(i.pid) if i.pid else "-", str(i.restarts),
                         i.last_exit.replace(" ", "-") if i.last_exit else "-",
                         _uptime(i.uptime_s), i.address or "-"))
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        for row in rows:
            print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        for node in sorted({i.node for i in infos if i.node}):
            mode = _isolation(home, node)
            if mode:
                print(f"node {node}: isolation {mode}")
    if supervisor is None:
        if any(i.pid for i in infos):
            print("error: the supervisor is not running; run 'kubemu down' to clean up",
                  file=sys.stderr)
        else:
            print(f"error: no cluster running in {home} (last state: "
                  f"{state.state if state else 'unknown'})", file=sys.stderr)
        return 1
    if live is None and state is not None and state.state == ClusterState.READY:
        # (While starting, the control API is not served yet: state.json is it.)
        print("warning: the supervisor does not answer on its control socket; "
              "showing its last recorded state", file=sys.stderr)
    return 0


def _signame(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)
