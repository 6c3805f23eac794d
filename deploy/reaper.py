"""python -m deploy.reaper: stops a cluster's processes when its supervisor dies.

The supervisor starts one reaper (Cluster._start_reaper) with a pipe on its
stdin and keeps the write end. A supervisor that stops the cluster itself
writes "done" first; a supervisor that dies (kill -9, a crash) just closes
the pipe, as the kernel closes its fds. On that bare end of input the reaper
terminates every process of the home — those carrying the marker variable
(every component, etcd included, whatever its language, and their children),
the pids state.json records, and the pods the node runtimes recorded — SIGTERM,
a grace period, SIGKILL. So no process outlives its supervisor by more than the
grace, and nothing needs a parent-death signal (children are spawned from a
thread pool: PR_SET_PDEATHSIG would fire when that thread ends).

The home comes in KUBEMU_REAPER_HOME, not the marker variable: the reaper is
not one of the processes it kills, nor one `kubemu down` looks for.
"""
from __future__ import annotations

import os
import pathlib
import sys

from kubemu import cluster_home

REAPER_HOME_ENV = "KUBEMU_REAPER_HOME"
DONE = b"done"
GRACE_S = 5.0
READ_BYTES_MAX = 64


def main() -> int:
    home = pathlib.Path(os.environ[REAPER_HOME_ENV])
    said = b""
    while True:   # until end of input; the supervisor writes at most "done"
        chunk = os.read(sys.stdin.fileno(), READ_BYTES_MAX)
        if not chunk:
            break
        said = (said + chunk)[-READ_BYTES_MAX:]
    if said.strip() == DONE:
        return 0
    state = cluster_home.read_state(home)
    recorded = state.recorded() if state else []
    me = os.getpid()
    procs = [p for p in cluster_home.find_home_processes(home, recorded, by_cmdline=False)
             if p.pid != me]
    if procs:
        print(f"reaper: the supervisor of {home} is gone; stopping {len(procs)} process(es): "
              f"{cluster_home.describe(procs)}", file=sys.stderr, flush=True)
        cluster_home.terminate(procs, grace_s=GRACE_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
