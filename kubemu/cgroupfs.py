"""Cgroup directories as files: who is in them, kill everything in them,
remove them. Shared by the node runtime (kubelet/runtime/cgroups.py, which
makes the directories) and `kubemu down` / the supervisor
(kubemu/cluster_home.py, which must find and stop what a dead runtime left).

Works on cgroup v1 and v2 directories alike: a directory's processes are in
its `cgroup.procs` and, recursively, in its child directories'. A process that
has exited is not listed (a zombie is not a member). v2's `cgroup.kill`
(Linux 5.14) kills a whole subtree at once; elsewhere `kill_all` reads and
SIGKILLs in rounds until the subtree is empty, bounded by `rounds_max` (a
process forking as fast as it is killed can outlast it; the caller reports).

All calls are blocking (they read and write cgroupfs): from a coroutine, run
them in a thread.
"""
from __future__ import annotations

import os
import pathlib
import signal
import time
from typing import Callable, Iterable

PROCS_FILE = "cgroup.procs"
KILL_FILE = "cgroup.kill"
DEPTH_MAX = 8            # kubemu makes <parent>/<container>; anything deeper is a container's own
DIRS_MAX = 10_000
KILL_ROUNDS_MAX = 50
KILL_ROUND_WAIT_S = 0.02
RMDIR_TRIES_MAX = 50


def subtree(top: pathlib.Path) -> list[pathlib.Path]:
    """`top` and its descendant directories, deepest first (the order rmdir
    needs); bounded by DEPTH_MAX and DIRS_MAX. Empty when `top` is missing."""
    found: list[tuple[int, pathlib.Path]] = []
    pending = [(0, pathlib.Path(top))]
    while pending and len(found) < DIRS_MAX:
        depth, directory = pending.pop()
        if not directory.is_dir():
            continue
        found.append((depth, directory))
        if depth >= DEPTH_MAX:
            continue
        try:
            children = [e for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        pending.extend((depth + 1, pathlib.Path(e.path)) for e in children)
    found.sort(key=lambda item: -item[0])
    return [d for _, d in found]


def read_procs(directory: pathlib.Path) -> set[int]:
    """The pids listed in one directory's cgroup.procs (not its children's)."""
    try:
        with open(pathlib.Path(directory) / PROCS_FILE) as f:
            return {int(line) for line in f.read().split() if line.isdigit()}
    except OSError:
        return set()


def members(tops: Iterable[pathlib.Path]) -> set[int]:
    """Every pid in the subtrees of `tops`."""
    pids: set[int] = set()
    for top in tops:
        for directory in subtree(top):
            pids |= read_procs(directory)
    return pids


def kill_all(tops: Iterable[pathlib.Path], *, rounds_max: int = KILL_ROUNDS_MAX,
             round_wait_s: float = KILL_ROUND_WAIT_S) -> set[int]:
    """SIGKILL every process in the subtrees of `tops` until none is left or
    `rounds_max` rounds have passed; the pids still there (empty: all gone)."""
    tops = [pathlib.Path(t) for t in tops]
    for top in tops:
        kill_file = top / KILL_FILE
        if kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass  # read and kill below
    left: set[int] = set()
    for round_ in range(rounds_max):
        left = members(tops)
        if not left:
            return left
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if round_:
            time.sleep(round_wait_s)  # a killed process leaves its cgroup when it has exited
    return members(tops)


def remove(tops: Iterable[pathlib.Path], *, tries_max: int = RMDIR_TRIES_MAX,
           wait_s: float = KILL_ROUND_WAIT_S,
           rmdir: Callable[[pathlib.Path], None] = os.rmdir) -> list[pathlib.Path]:
    """rmdir each subtree, deepest first (a cgroup with members or children is
    busy: retried a bounded number of times). The directories left. (`rmdir`
    is replaceable for tests on a fake tree, where control files are files.)"""
    left: list[pathlib.Path] = []
    for top in tops:
        for directory in subtree(pathlib.Path(top)):
            for attempt in range(tries_max):
                try:
                    rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if attempt + 1 == tries_max:
                        left.append(directory)
                    else:
                        time.sleep(wait_s)
    return left
