"""A check for blocking calls on an event loop (the test suite's debug mode).

asyncio's own slow-callback warning (debug mode) measures wall time, so on a
loaded machine it fires whenever the process is merely descheduled. This
check measures each callback the loop runs (every `Handle._run`, which is how
tasks step and timers fire) and reports one that took longer than the
threshold *and* either spent at least half of the threshold blocked in the
kernel (a sleep, a lock, disk or socket I/O: what this check is for) or used
CPU_FACTOR times the threshold of CPU itself (a CPU hog; the margin keeps a
big but legitimate decode from failing a test on a machine whose caches are
shared with a load). Linux's
per-thread schedstat splits a callback's wall time into CPU time, time
waiting for a CPU (preempted by other processes: not the callback's fault,
not reported) and the rest, time blocked. Where schedstat is missing, a
voluntary context switch during the callback counts as blocking. A thread
waiting for the GIL sleeps in the kernel, too, so the CPU the process's other
threads used meanwhile is taken off the blocked time: that wait is their
work, not this callback's (a process with two loops, as the suite's cluster
thread beside pytest's, or a gen-2 garbage collection in another thread,
would otherwise blame whichever callback was waiting; a loop's own slow
callback is judged on its own). A thread holding the GIL can also be
preempted by a loaded machine, and how long it then waited for a CPU cannot
be read cheaply (Python code cannot look while another thread holds the
GIL, and reading every thread's schedstat per callback costs too much): a
blocked time during which another thread of the process was preempted
(involuntary context switches, from getrusage) is not judged. A GIL held
across a blocking call without CPU, on a machine not preempting, still
counts. A callback during which the process was stopped (SIGSTOP or
SIGTSTP, as chaos tests pause components) is not reported: a SIGCONT handler
marks when the process went on, and a callback that saw one is not judged
(how long it was stopped is not known, so it cannot be told from blocking).

`install(threshold_ms, report)` patches asyncio for the whole process and
returns a function that undoes it. A watchdog thread looks at the running
callback every few milliseconds and, once one has run past the threshold,
takes the loop thread's stack, so the report says which line blocked. Components call `from_environment(...)`
at start-up (kubemu.log.configure does): with `KUBEMU_SLOW_CALLBACK_MS` set,
each slow callback is logged as an error and, with
`KUBEMU_SLOW_CALLBACK_REPORT` naming a file, appended to it as one JSON line,
where the test suite finds it and fails the test that was running.
"""
from __future__ import annotations

import asyncio.events
import dataclasses
import itertools
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from typing import Callable

THRESHOLD_ENV = "KUBEMU_SLOW_CALLBACK_MS"
REPORT_ENV = "KUBEMU_SLOW_CALLBACK_REPORT"
REPORT_LINE_CHARS_MAX = 2000
CPU_FACTOR = 3
STACK_FRAMES_MAX = 12


@dataclasses.dataclass(frozen=True)
class SlowCallback:
    callback: str
    wall_ms: float
    cpu_ms: float
    blocked: bool  # the callback waited in the kernel (voluntary context switch)
    pid: int
    process: str
    stack: str = ""  # where the loop thread was once the threshold had passed

    def __str__(self) -> str:
        why = "blocked" if self.blocked else "busy"
        text = (f"{self.process} (pid {self.pid}): a callback {why} the event loop for "
                f"{self.wall_ms:.0f} ms ({self.cpu_ms:.0f} ms CPU): {self.callback}")
        if self.stack:
            text += "\n    at:\n" + self.stack
        else:
            text += ("\n    (no stack: the callback ended before the watchdog looked again,"
                     " or the loop thread held the GIL in a blocking C call throughout)")
        return text


class _Watchdog(threading.Thread):
    """Takes the stack of a loop thread whose callback runs past the threshold."""

    def __init__(self, threshold_s: float):
        super().__init__(name="kubemu-aiodebug", daemon=True)
        self._here = os.path.abspath(__file__)
        self.threshold_s = threshold_s
        # thread id -> (callback run number, start); numbers never repeat, ids may
        self.running: dict[int, tuple[int, float]] = {}
        self.stacks: dict[int, tuple[int, str]] = {}     # thread id -> (run number, stack)
        self.runs = itertools.count()
        self.stopped = threading.Event()
        # This thread's own involuntary context switches, as of its last look:
        # its preemptions are not a sign that a GIL holder waited for a CPU
        # (it holds the GIL only for its looks).
        self.preempted = 0

    def run(self) -> None:
        while not self.stopped.wait(self.threshold_s / 4):
            try:
                self._look()
            finally:
                self.preempted = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw

    def _look(self) -> None:
        now = time.monotonic()
        for thread_id, (callback_id, started) in list(self.running.items()):
            if now - started < self.threshold_s:
                continue
            if self.stacks.get(thread_id, (None,))[0] == callback_id:
                continue  # taken already
            frame = sys._current_frames().get(thread_id)
            if frame is None:
                continue
            frames = traceback.extract_stack(frame)
            # Only what runs inside the callback: the frames after our _run.
            ours = [i for i, f in enumerate(frames) if os.path.abspath(f.filename) == self._here]
            if ours:
                frames = frames[ours[-1] + 1:]
            lines = traceback.format_list(frames[-STACK_FRAMES_MAX:])
            self.stacks[thread_id] = (callback_id, "".join(
                "      " + line.strip().replace("\n", "\n      ") + "\n" for line in lines))


def _voluntary_switches() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


class _SchedStat:
    """(CPU ns, run-queue wait ns) of the calling thread, from one pread."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}

    def read(self) -> tuple[int, int] | None:
        thread_id = threading.get_native_id()
        for _ in range(2):  # a descriptor of an ended thread whose id was reused: reopen
            fd = self._fds.get(thread_id)
            try:
                if fd is None:
                    fd = self._fds[thread_id] = os.open(
                        f"/proc/self/task/{thread_id}/schedstat", os.O_RDONLY)
                cpu_ns, wait_ns, _ = os.pread(fd, 128, 0).split()
                return int(cpu_ns), int(wait_ns)
            except (OSError, ValueError):
                stale = self._fds.pop(thread_id, None)
                if stale is not None:
                    os.close(stale)
        return None


# How long the slow path waits for a SIGCONT still on its way (see below).
SIGNAL_WAIT_S = 0.002


def _was_stopped(continued: list[float], since: float) -> bool:
    """Whether the process was continued after a stop since `since`. A thread
    woken by SIGCONT runs on before the signal's handler has (the kernel
    hands the signal over at a later entry): a short sleep is such an entry,
    and an interrupted sleep runs the Python handler at once (PEP 475). A
    Python call alone missed one stop in ten, mid-callback, in a loop of
    asyncio tasks; with the sleep, none in hundreds. Only slow callbacks
    pay for it."""
    _let_handlers_run()
    return continued[0] >= since


def _let_handlers_run() -> None:
    time.sleep(SIGNAL_WAIT_S)


def _judge(wall_s: float, threshold_s: float, start: tuple | None, end: tuple | None,
           cpu_s: float, blocked_hint: bool, process_cpu_s: float = 0.0,
           others_preempted: bool = False) -> tuple[bool, float, bool]:
    """(slow?, cpu seconds, blocked?) for a callback that ran wall_s;
    process_cpu_s: the CPU every thread of the process used meanwhile;
    others_preempted: whether another thread of it was preempted meanwhile."""
    if start is not None and end is not None:
        cpu_s = (end[0] - start[0]) / 1e9
        waited_s = (end[1] - start[1]) / 1e9
        others_s = max(0.0, process_cpu_s - cpu_s)
        blocked_s = wall_s - cpu_s - waited_s - others_s
        blocked = blocked_s > threshold_s / 2 and not others_preempted
        return cpu_s > CPU_FACTOR * threshold_s or blocked, cpu_s, blocked
    return (cpu_s > CPU_FACTOR * threshold_s
            or (blocked_hint and wall_s - cpu_s > threshold_s / 2)), cpu_s, blocked_hint


def install(threshold_ms: float, report: Callable[[SlowCallback], None], *,
            process: str = "") -> Callable[[], None]:
    """Report every callback that blocks the loop for more than threshold_ms."""
    handle_cls = asyncio.events.Handle
    original = handle_cls._run
    threshold_s = threshold_ms / 1000
    name = process or os.path.basename(os.environ.get("_", "")) or "python"
    watchdog = _Watchdog(threshold_s)
    watchdog.start()
    schedstat = _SchedStat()
    precise = schedstat.read() is not None
    continued = [0.0]  # monotonic time of the last SIGCONT

    def on_continue(signum, frame) -> None:
        continued[0] = time.monotonic()
    try:
        previous = signal.signal(signal.SIGCONT, on_continue)
    except ValueError:  # not the main thread: stops are not told apart
        previous = None

    def _run(self) -> None:
        thread_id = threading.get_ident()
        if precise:
            start, cpu0, switches0 = schedstat.read(), 0.0, 0
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            own0 = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
            watchdog0 = watchdog.preempted
        else:
            start, cpu0, switches0 = None, time.thread_time(), _voluntary_switches()
        wall0 = time.monotonic()
        run = next(watchdog.runs)
        watchdog.running[thread_id] = (run, wall0)
        try:
            original(self)
        finally:
            watchdog.running.pop(thread_id, None)
            wall_s = time.monotonic() - wall0
            if wall_s > threshold_s and not _was_stopped(continued, wall0):
                end = schedstat.read() if precise else None
                process_cpu_s, others_preempted = 0.0, False
                if precise:
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    own = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
                    process_cpu_s = (usage.ru_utime + usage.ru_stime
                                     - usage0.ru_utime - usage0.ru_stime)
                    others_preempted = (usage.ru_nivcsw - usage0.ru_nivcsw
                                        > own - own0 + watchdog.preempted - watchdog0)
                slow, cpu_s, blocked = _judge(
                    wall_s, threshold_s, start, end,
                    0.0 if precise else time.thread_time() - cpu0,
                    False if precise else _voluntary_switches() > switches0,
                    process_cpu_s, others_preempted)
                if slow:
                    try:
                        text = repr(self)[:REPORT_LINE_CHARS_MAX]
                    except Exception:  # noqa: BLE001 - a repr must not break the loop
                        text = "<unprintable callback>"
                    taken = watchdog.stacks.pop(thread_id, None)
                    stack = taken[1] if taken is not None and taken[0] == run else ""
                    report(SlowCallback(text, wall_s * 1000, cpu_s * 1000, blocked,
                                        os.getpid(), name, stack))

    handle_cls._run = _run

    def uninstall() -> None:
        handle_cls._run = original
        watchdog.stopped.set()
        if previous is not None:
            try:
                signal.signal(signal.SIGCONT, previous)
            except ValueError:
                pass
    return uninstall


def append_report(path: str, slow: SlowCallback) -> None:
    line = json.dumps(dataclasses.asdict(slow)) + "\n"
    with open(path, "a", encoding="utf-8") as f:  # one short O_APPEND write: atomic
        f.write(line)


def from_environment(process: str, log: Callable[..., object] | None = None) -> bool:
    """Install the check when KUBEMU_SLOW_CALLBACK_MS is set; True if installed."""
    text = os.environ.get(THRESHOLD_ENV, "")
    if not text:
        return False
    threshold_ms = float(text)
    report_path = os.environ.get(REPORT_ENV, "")

    def report(slow: SlowCallback) -> None:
        if log is not None:
            log("slow callback", callback=slow.callback, wall_ms=round(slow.wall_ms, 1),
                cpu_ms=round(slow.cpu_ms, 1), blocked=slow.blocked)
        if report_path:
            append_report(report_path, slow)

    install(threshold_ms, report, process=process)
    return True
