"""python -m deploy up [--nodes N] [--home H] [--etcd N] [--apiservers N] [--no-restart]: a cluster's supervisor, in the foreground.

With --watch-stdin it also stops the cluster when its stdin reaches end of
file: kubemu.testing starts it with a pipe there, so the cluster of a test
run that is killed (even with SIGKILL) stops with it.

Starts the cluster (deploy.supervisor.Cluster), keeps it running, restarting
processes that die, until SIGTERM or SIGINT; then stops everything and checks
that no process is left. Structured logs (JSON lines) go to
`<home>/logs/supervisor.log`; progress lines go to stdout, unless stdout is that
log already (a detached `kubemu up`). The state for `kubemu status` is
`<home>/state.json`.

Exit status: 0 stopped cleanly; 1 start failed, or processes were left;
2 usage; 3 a supervisor already runs for this home (nothing was touched).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import signal
import sys
from typing import Callable

from deploy import addon_manager
from deploy import components as comp
from deploy.supervisor import Cluster, ClusterAlreadyRunning, ClusterStartError
from kubemu import aio, cluster_home, fileutil
from kubemu import log as kubemu_log
from kubemu.client.config import home_dir

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ALREADY_RUNNING = cluster_home.SUPERVISOR_EXIT_ALREADY_RUNNING
NODE_KINDS = (comp.RUNTIME, comp.KUBELET, comp.KUBE_PROXY)
STDIN_READ_BYTES = 4096


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run a cluster's supervisor in the foreground")
    up.add_argument("--home", default=None, help="the cluster's home (default: $KUBEMU_HOME, "
                    "else ~/.kubemu)")
    up.add_argument("--nodes", type=int, default=0, help="number of nodes")
    up.add_argument("--etcd", type=int, default=1,
                    help="etcd members, one cluster (default 1)")
    up.add_argument("--apiservers", type=int, default=1,
                    help="apiserver processes, each given every etcd member (default 1)")
    up.add_argument("--schedulers", type=int, default=1,
                    help="scheduler processes: one leads, the others are standbys (default 1)")
    up.add_argument("--controller-managers", type=int, default=1,
                    help="controller-manager processes: one leads, the others are standbys "
                         "(default 1)")
    up.add_argument("--profile", choices=("default", "fast"), default="default",
                    help="component timings: Kubernetes' defaults, or scaled down for tests")
    up.add_argument("--no-restart", action="store_true",
                    help="do not restart processes that die")
    up.add_argument("--no-addons", action="store_true",
                    help="do not apply the add-ons (deploy/addons: cluster DNS) once the "
                         "nodes are up")
    up.add_argument("--addons", action="append", default=[], metavar="NAME[,NAME]",
                    help="add-ons to apply besides the default ones (known: "
                         f"{', '.join(addon_manager.KNOWN_ADDONS)})")
    up.add_argument("--start-timeout-s", type=float, default=120.0,
                    help="give up when the cluster is not healthy after this long")
    up.add_argument("--stop-timeout-s", type=float, default=60.0,
                    help="bound on the whole shutdown")
    up.add_argument("--log-level", default="info")
    up.add_argument("--isolation", choices=("auto", "namespaces", "plain"), default=None,
                    help="every node runtime's isolation mode (default: theirs: "
                         "$KUBEMU_ISOLATION, else auto)")
    up.add_argument("--node-components", default=",".join(NODE_KINDS), metavar="NAME[,NAME]",
                    help="the processes of each node (default: all of "
                         f"{', '.join(NODE_KINDS)}; the kubelet needs the runtime)")
    up.add_argument("--watch-stdin", action="store_true",
                    help="stop the cluster when stdin reaches end of file: the process "
                         "holding its other end (a test run) is gone")
    args = parser.parse_args(argv)
    if args.nodes < 0:
        parser.error(f"--nodes: must be >= 0, got {args.nodes}")
    for flag, least in (("etcd", 1), ("apiservers", 1), ("schedulers", 0)):
        if getattr(args, flag) < least:
            parser.error(f"--{flag}: must be >= {least}, got {getattr(args, flag)}")
    if args.controller_managers < 0:
        parser.error(f"--controller-managers: must be >= 0, got {args.controller_managers}")
    chosen = [n for n in args.node_components.split(",") if n]
    unknown = sorted(set(chosen) - set(NODE_KINDS))
    if unknown:
        parser.error(f"--node-components: unknown {', '.join(unknown)} "
                     f"(known: {', '.join(NODE_KINDS)})")
    if comp.KUBELET in chosen and comp.RUNTIME not in chosen:
        parser.error("--node-components: the kubelet needs the runtime")
    if args.nodes and not chosen:
        parser.error("--node-components: a node needs at least the runtime")
    args.node_components = [k for k in NODE_KINDS if k in chosen]
    try:
        args.addons = addon_manager.chosen(
            [n for item in args.addons for n in item.split(",") if n], none=args.no_addons)
    except ValueError as err:
        parser.error(f"--addons: {err}")
    return args


def _stop_at_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event,
                       progress: Callable[[str], None]) -> None:
    """Set `stop` when stdin, a pipe whose other end the parent holds, is closed.

    Nothing is ever written into it: end of file means the parent is gone, even
    when it was SIGKILLed (the kernel closes its descriptors). Bytes are read
    and dropped, at most STDIN_READ_BYTES a time.
    """
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, STDIN_READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            if not stop.is_set():
                progress("stdin closed: the parent is gone; stopping the cluster")
                stop.set()

    loop.add_reader(fd, readable)


def _same_file(fd: int, path: pathlib.Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


async def run_up(args: argparse.Namespace, home: pathlib.Path,
                 progress: Callable[[str], None]) -> int:
    kubelet_flags = comp.KUBELET_FAST_FLAGS if args.profile == "fast" else ()
    node_kinds = comp.node_components(
        runtime_flags=("--isolation", args.isolation) if args.isolation else (),
        kubelet_flags=kubelet_flags) if args.isolation or kubelet_flags else comp.NODE_COMPONENTS
    node_kinds = tuple(k for k in node_kinds if k.name in args.node_components)
    cluster = Cluster(home, nodes=args.nodes, restart=not args.no_restart, progress=progress,
                      schedulers=args.schedulers, controller_managers=args.controller_managers,
                      etcd=args.etcd, apiservers=args.apiservers,
                      kinds=comp.control_plane(args.profile), node_kinds=node_kinds,
                      addons=args.addons)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.watch_stdin:
        _stop_at_stdin_eof(loop, stop, progress)
    starting = asyncio.create_task(cluster.start(args.start_timeout_s), name="start")
    asked = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({starting, asked}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            # Stopped while starting: start() stops what it started when cancelled.
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClusterStartError):
                await starting
            return EXIT_OK
        try:
            starting.result()
        except ClusterAlreadyRunning as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ALREADY_RUNNING
        except ClusterStartError as exc:
            print(f"error: cluster failed to start: {exc}", file=sys.stderr)
            return EXIT_FAILED
        await asked
        progress("stopping cluster")
        left = await cluster.shutdown(args.stop_timeout_s)
        return EXIT_FAILED if left else EXIT_OK
    finally:
        asked.cancel()
        # Whatever went wrong above, leave no process behind.
        await cluster.shutdown(args.stop_timeout_s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = home_dir(args.home).resolve()
    cluster_home.make_private_home(home)
    log_path = fileutil.private_file(cluster_home.supervisor_log(home))
    kubemu_log.configure("supervisor", log_file=str(log_path), level=args.log_level)
    if _same_file(sys.stdout.fileno(), log_path):
        # Detached: the JSON log already has every progress line.
        def progress(line: str) -> None:
            pass
    else:
        def progress(line: str) -> None:
            print(line, flush=True)
    return aio.run(run_up(args, home, progress))


if __name__ == "__main__":
    sys.exit(main())
