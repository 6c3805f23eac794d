"""Finding a cluster's processes from its home (shared by the supervisor and
the `kubemu` command, which may not import the supervisor).

A process belongs to the cluster in `home` when it was recorded (pid plus
start time, so a reused pid is not mistaken for it), when its environment
carries SUPERVISED_ENV=home (every process the supervisor starts, pod
processes included), or — when asked — when its command line names a path in
the home. The caller, its ancestors and `kubemu` commands never count.
"""
from __future__ import annotations

import os
import pathlib
import re
from typing import Any, Iterable

import psutil

SUPERVISED_ENV = "KUBEMU_SUPERVISED_HOME"
CREATE_TIME_SLACK_S = 0.05


def alive(pid: Any, create_time: Any = None) -> psutil.Process | None:
    """The process with that pid (and start time, when known), if it runs."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if isinstance(create_time, (int, float)) and \
                abs(proc.create_time() - create_time) > CREATE_TIME_SLACK_S:
            return None  # the pid was reused by an unrelated process
        return proc
    except psutil.Error:
        return None


def is_cli(cmdline: Iterable[str]) -> bool:
    """A `kubemu ...` command (someone asking about the cluster), not part of it."""
    cmdline = list(cmdline)
    head = [os.path.basename(a) for a in cmdline[:2]]
    return "kubemu" in head or "kubemu.cli.main" in cmdline


def find_home_processes(home: pathlib.Path, recorded: Iterable[tuple[int, Any]] = (),
                        *, by_cmdline: bool = True) -> list[psutil.Process]:
    """Live processes of the cluster in `home` (see the module docstring)."""
    home_text = str(home)
    names_home = re.compile(re.escape(home_text) + r"(?=$|[/\s:,;\"'])")
    me = psutil.Process()
    skip = {me.pid} | {p.pid for p in me.parents()}
    found: dict[int, psutil.Process] = {}
    for pid, create_time in recorded:
        proc = alive(pid, create_time)
        if proc is not None and pid not in skip:
            found[pid] = proc
    for proc in psutil.process_iter(["cmdline", "environ", "status"]):
        if proc.pid in skip or proc.pid in found:
            continue
        if proc.info["status"] in (psutil.STATUS_ZOMBIE, None):
            continue
        environ = proc.info["environ"] or {}
        cmdline = proc.info["cmdline"] or []
        if environ.get(SUPERVISED_ENV) == home_text:
            found[proc.pid] = proc
        elif by_cmdline and not is_cli(cmdline) and any(names_home.search(a) for a in cmdline):
            found[proc.pid] = proc
    return sorted(found.values(), key=lambda p: p.pid)


def describe(procs: Iterable[psutil.Process], width: int = 120) -> str:
    parts = []
    for proc in procs:
        try:
            cmd = " ".join(proc.cmdline())[:width]
        except psutil.Error:
            cmd = "?"
        parts.append(f"pid {proc.pid} ({cmd})")
    return ", ".join(parts)
