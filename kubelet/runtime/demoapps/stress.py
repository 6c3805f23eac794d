"""A stand-in for `stress` 1.0.4 (Amos Waterland's), the program of the
polinux/stress image that the Kubernetes docs use to go over a memory limit
(`stress --vm 1 --vm-bytes 150M --vm-hang 1`) and to load CPUs.

It does what stress does, with real resources, so limits act on it as on
the real program:
- the parent parses stress's flags (same names, `s/m/h/d/y` time suffixes
  and `b/k/m/g` size suffixes in powers of 1024, same error lines and exit
  status 1), prints `stress: info: [PID] dispatching hogs: C cpu, I io, V vm,
  D hdd`, forks one worker process per hog (round robin, with stress's
  backoff) and waits for them;
- a cpu worker spins on sqrt(random()) (one full core each);
- an io worker calls sync() in a loop;
- a vm worker maps --vm-bytes of anonymous memory and writes a byte every
  --vm-stride bytes (default 4096: every page becomes resident), checks them,
  sleeps --vm-hang seconds if given (0: forever), unmaps and starts again
  (--vm-keep: keeps the mapping and rewrites it);
- an hdd worker writes --hdd-bytes to an unlinked ./stress.XXXXXX file again
  and again;
- --timeout N: each worker gets alarm(N); workers that end by SIGALRM count
  as a success and the parent prints `successful run completed in Ns`;
- a worker killed by any other signal (the OOM killer's SIGKILL) makes the
  parent print stress's FAIL/WARN lines, SIGUSR1 its process group to reap
  the other workers, print `failed run completed in Ns` and exit with the
  number of failed workers (1 for one), as stress does.
Messages go where stress puts them: info and debug (-v) lines on stdout,
WARN and FAIL lines on stderr, with stress's source line numbers.
Workers die with the parent (PR_SET_PDEATHSIG) so none outlives it.
"""
from __future__ import annotations

import ctypes
import math
import mmap
import os
import random
import signal
import sys
import tempfile
import time

PROGNAME = "stress"
VERSION = "1.0.4"
PR_SET_PDEATHSIG = 1
HDD_CHUNK_BYTES = (1024 * 1024) - 1
DEFAULTS = {"backoff": 3000, "timeout": 0, "cpu": 0, "io": 0, "vm": 0,
            "vm_bytes": 256 * 1024 * 1024, "vm_stride": 4096, "vm_hang": -1,
            "vm_keep": False, "hdd": 0, "hdd_bytes": 1024 * 1024 * 1024}
# The line in stress.c 1.0.4 of each message (stress prints them).
LINE_UNRECOGNIZED = 244
LINE_WORKER_ERROR = 394
LINE_WORKER_SIGNAL = 415
LINE_REAPING_AFTER_ERROR = 396
LINE_REAPING_AFTER_SIGNAL = 417
LINE_KILL_ERROR_AFTER_ERROR = 400
LINE_KILL_ERROR_AFTER_SIGNAL = 421
LINE_FAILED_RUN = 451
LINE_MALLOC_FAILED = 494
LINE_USED_UP_TIME = 320
USAGE = """`{0}' imposes certain types of compute stress on your system

Usage: {0} [OPTION [ARG]] ...
 -?, --help         show this help statement
     --version      show version statement
 -v, --verbose      be verbose
 -q, --quiet        be quiet
 -n, --dry-run      show what would have been done
 -t, --timeout N    timeout after N seconds
     --backoff N    wait factor of N microseconds before work starts
 -c, --cpu N        spawn N workers spinning on sqrt()
 -i, --io N         spawn N workers spinning on sync()
 -m, --vm N         spawn N workers spinning on malloc()/free()
     --vm-bytes B   malloc B bytes per vm worker (default is 256MB)
     --vm-stride B  touch a byte every B bytes (default is 4096)
     --vm-hang N    sleep N secs before free (default none, 0 is inf)
     --vm-keep      redirty memory instead of freeing and reallocating
 -d, --hdd N        spawn N workers spinning on write()/unlink()
     --hdd-bytes B  write B bytes per hdd worker (default is 1GB)

Example: {0} --cpu 8 --io 4 --vm 2 --vm-bytes 128M --timeout 10s

Note: Numbers may be suffixed with s,m,h,d,y (time) or B,K,M,G (size).
"""


class Exit(Exception):
    """Leave with this status (stress calls exit() where it finds the error)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class Log:
    """stress's dbg/out/wrn/err macros: a level and the pid of the writer."""

    def __init__(self, level: int = 2):
        self.level = level

    def _write(self, stream, tag: str, message: str, line: int | None = None) -> None:
        where = f" ({line})" if line is not None else ""
        stream.write(f"{PROGNAME}: {tag}: [{os.getpid()}]{where} {message}\n")
        stream.flush()

    def dbg(self, message: str) -> None:
        if self.level >= 3:
            self._write(sys.stdout, "dbug", message)

    def out(self, message: str) -> None:
        if self.level >= 2:
            self._write(sys.stdout, "info", message)

    def wrn(self, message: str, line: int) -> None:
        if self.level >= 1:
            self._write(sys.stderr, "WARN", message, line)

    def err(self, message: str, line: int) -> None:
        if self.level >= 0:
            self._write(sys.stderr, "FAIL", message, line)


def parse_number(text: str, log: Log, line: int) -> int:
    """C's sscanf("%lli"): decimal, 0x hex or 0 octal, with an optional sign;
    trailing characters are ignored."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    base, digits = 10, "0123456789"
    if body[:2].lower() == "0x":
        base, digits, body = 16, "0123456789abcdefABCDEF", body[2:]
    elif body.startswith("0") and len(body) > 1:
        base, digits = 8, "01234567"
    end = 0
    while end < len(body) and body[end] in digits:
        end += 1
    if end == 0:
        log.err(f"invalid number: {text}", line)
        raise Exit(1)
    return sign * int(body[:end] or "0", base)


def atoll_b(text: str, log: Log, line: int) -> int:
    """A size: B, K, M, G suffixes are powers of 1024 (stress's atoll_b)."""
    if not text:
        log.err("invalid string", line)
        raise Exit(1)
    shifts = {"b": 0, "k": 10, "m": 20, "g": 30}
    suffix = text[-1]
    if suffix.lower() not in shifts and not suffix.isdigit():
        log.err(f"unrecognized suffix: {suffix}", line)
        raise Exit(1)
    return parse_number(text, log, line) << shifts.get(suffix.lower(), 0)


def atoll_s(text: str, log: Log, line: int) -> int:
    """A duration in seconds: s, m, h, d, y suffixes (stress's atoll_s)."""
    if not text:
        log.err("invalid string", line)
        raise Exit(1)
    factors = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 31536000}
    suffix = text[-1]
    if suffix.lower() not in factors and not suffix.isdigit():
        log.err(f"unrecognized suffix: {suffix}", line)
        raise Exit(1)
    return parse_number(text, log, line) * factors.get(suffix.lower(), 1)


# option -> (setting, kind, minimum, message for a bad value, line of the
# missing-argument check, line of the bad-value check)
OPTIONS = {
    "--backoff": ("backoff", "n", 0, "invalid backoff factor: {}", 133, 142),
    "--timeout": ("timeout", "s", 1, "invalid timeout value: {}s", 150, 154),
    "--cpu": ("cpu", "b", 1, "invalid number of cpu hogs: {}", 160, 164),
    "--io": ("io", "b", 1, "invalid number of io hogs: {}", 170, 174),
    "--vm": ("vm", "b", 1, "invalid number of vm hogs: {}", 180, 184),
    "--vm-bytes": ("vm_bytes", "b", 1, "invalid vm byte value: {}", 190, 194),
    "--vm-stride": ("vm_stride", "b", 1, "invalid stride value: {}", 200, 204),
    "--vm-hang": ("vm_hang", "b", 0, "invalid value: {}", 210, 214),
    "--hdd": ("hdd", "b", 1, "invalid number of hdd hogs: {}", 224, 228),
    "--hdd-bytes": ("hdd_bytes", "b", 1, "invalid hdd byte value: {}", 234, 238),
}
SHORT = {"-t": "--timeout", "-c": "--cpu", "-i": "--io", "-m": "--vm", "-d": "--hdd"}


def parse_args(argv: list[str], log: Log) -> dict:
    """stress's own loop over argv (no getopt): an option's argument is the
    next word unless it starts with '-' and a non-digit."""
    settings = dict(DEFAULTS)
    settings["dry_run"] = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--help", "-?"):
            sys.stdout.write(USAGE.format(PROGNAME))
            raise Exit(0)
        if arg == "--version":
            sys.stdout.write(f"{PROGNAME} {VERSION}\n")
            raise Exit(0)
        if arg in ("--verbose", "-v"):
            log.level = 3
        elif arg in ("--quiet", "-q"):
            log.level = 0
        elif arg in ("--dry-run", "-n"):
            settings["dry_run"] = True
        elif arg == "--vm-keep":
            settings["vm_keep"] = True
        elif SHORT.get(arg, arg) in OPTIONS:
            name = SHORT.get(arg, arg)
            key, kind, minimum, bad, missing_line, bad_line = OPTIONS[name]
            i += 1
            if i == len(argv) or (argv[i].startswith("-") and not argv[i][1:2].isdigit()):
                log.err(f"missing argument to option '{name}'", missing_line)
                raise Exit(1)
            parse = {"n": parse_number, "s": atoll_s, "b": atoll_b}[kind]
            value = parse(argv[i], log, bad_line)
            if value < minimum:
                log.err(bad.format(value), bad_line)
                raise Exit(1)
            settings[key] = value
            if name == "--backoff":
                log.dbg(f"setting backoff coeffient to {value}us")
        else:
            log.err(f"unrecognized option: {arg}", LINE_UNRECOGNIZED)
            raise Exit(1)
        i += 1
    return settings


# ---------------------------------------------------------------- workers

def die_with_parent() -> None:
    """No worker outlives the parent, whatever ends it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # then only the process group's end stops the workers


def hog_cpu() -> int:
    while True:
        math.sqrt(random.random())


def hog_io() -> int:
    while True:
        os.sync()


def hog_vm(size: int, stride: int, hang: int, keep: bool, log: Log) -> int:
    """Map, dirty every stride-th byte (so the pages are really resident),
    check, hang, unmap; as stress's hogvm with malloc/free."""
    count = (size + stride - 1) // stride
    pattern = b"Z" * count
    block = None
    while True:
        if block is None:
            log.dbg(f"allocating {size} bytes ...")
            try:
                block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            except (OSError, ValueError) as err:
                log.err(f"hogvm malloc failed: {os.strerror(getattr(err, 'errno', 0) or 12)}",
                        LINE_MALLOC_FAILED)
                return 1
        log.dbg(f"touching bytes in strides of {stride} bytes ...")
        block[::stride] = pattern
        if hang == 0:
            log.dbg("sleeping forever with allocated memory")
            while True:
                time.sleep(1024)
        elif hang > 0:
            log.dbg(f"sleeping for {hang}s with allocated memory")
            time.sleep(hang)
        if block[::stride] != pattern:
            log.err("memory corruption", 516)
            return 1
        if not keep:
            block.close()
            block = None
            log.dbg(f"freed {size} bytes")


def hog_hdd(size: int, log: Log) -> int:
    printable = bytes(32 + b % 95 for b in range(256))
    chunk = os.urandom(HDD_CHUNK_BYTES - 1).translate(printable) + b"\n"
    while True:
        try:
            fd, name = tempfile.mkstemp(prefix="stress.", dir=".")
        except OSError as err:
            log.err(f"mkstemp failed: {err.strerror}", 541)
            return 1
        name = "./" + os.path.basename(name)
        log.dbg(f"opened {name} for writing {size} bytes")
        log.dbg(f"unlinking {name}")
        os.unlink(name)
        written = 0
        try:
            log.dbg(f"fast writing to {name}")
            while written + len(chunk) < size:
                written += os.write(fd, chunk)
            log.dbg(f"slow writing to {name}")
            rest = size - written - 1
            if rest > 0:
                written += os.write(fd, chunk[:rest])
            written += os.write(fd, b"\n")
        except OSError as err:
            log.err(f"write failed: {err.strerror}", 560)
            os.close(fd)
            return 1
        log.dbg(f"closing {name} after {written} bytes")
        os.close(fd)


def run_worker(kind: str, settings: dict, timeout_s: int, backoff_us: int, log: Log) -> int:
    die_with_parent()
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    if timeout_s:
        signal.alarm(timeout_s)
    time.sleep(backoff_us / 1e6)
    if settings["dry_run"]:
        return 0
    if kind == "cpu":
        return hog_cpu()
    if kind == "io":
        return hog_io()
    if kind == "vm":
        return hog_vm(settings["vm_bytes"], settings["vm_stride"], settings["vm_hang"],
                      settings["vm_keep"], log)
    return hog_hdd(settings["hdd_bytes"], log)


def fork_worker(kind: str, settings: dict, timeout_s: int, backoff_us: int, log: Log) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = run_worker(kind, settings, timeout_s, backoff_us, log)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    return pid


# ---------------------------------------------------------------- parent

def reap(log: Log, line: int) -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        os.killpg(os.getpid(), signal.SIGUSR1)
    except OSError as err:
        log.err(f"kill error: {err.strerror}", line)


def dispatch(settings: dict, log: Log) -> int:
    started = int(time.time())
    left = {kind: settings[kind] for kind in ("cpu", "io", "vm", "hdd")}
    children = 0
    while sum(left.values()):
        forks = sum(left.values())
        backoff_us = settings["backoff"] * forks
        log.dbg(f"using backoff sleep of {backoff_us}us")
        timeout_s = 0
        if settings["timeout"]:
            timeout_s = settings["timeout"] - (int(time.time()) - started)
            if timeout_s <= 0:
                log.wrn("used up time before all workers dispatched", LINE_USED_UP_TIME)
                break
            log.dbg(f"setting timeout to {timeout_s}s")
        for kind in ("cpu", "io", "vm", "hdd"):
            if not left[kind]:
                continue
            try:
                pid = fork_worker(kind, settings, timeout_s, backoff_us, log)
            except OSError as err:
                log.err(f"fork failed: {err.strerror}", 336)
            else:
                log.dbg(f"--> hog{kind} worker {left[kind]} [{pid}] forked")
                children += 1
            left[kind] -= 1

    failed = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError as err:
            log.err(f"error waiting for worker: {err.strerror}", 436)
            failed += 1
            break
        children -= 1
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            if code == 0:
                log.dbg(f"<-- worker {pid} returned normally")
            else:
                log.err(f"<-- worker {pid} returned error {code}", LINE_WORKER_ERROR)
                failed += 1
                log.wrn("now reaping child worker processes", LINE_REAPING_AFTER_ERROR)
                reap(log, LINE_KILL_ERROR_AFTER_ERROR)
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGALRM:
                log.dbg(f"<-- worker {pid} signalled normally")
            elif sig == signal.SIGUSR1:
                log.dbg(f"<-- worker {pid} reaped")
            else:
                log.err(f"<-- worker {pid} got signal {sig}", LINE_WORKER_SIGNAL)
                failed += 1
                log.wrn("now reaping child worker processes", LINE_REAPING_AFTER_SIGNAL)
                reap(log, LINE_KILL_ERROR_AFTER_SIGNAL)
    runtime_s = int(time.time()) - started
    if failed:
        log.err(f"failed run completed in {runtime_s}s", LINE_FAILED_RUN)
    else:
        log.out(f"successful run completed in {runtime_s}s")
    return failed


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # stress has no handlers: a signal ends it
    log = Log()
    try:
        settings = parse_args(sys.argv[1:] if argv is None else argv, log)
        if not any(settings[kind] for kind in ("cpu", "io", "vm", "hdd")):
            sys.stdout.write(USAGE.format(PROGNAME))
            return 0
        log.out(f"dispatching hogs: {settings['cpu']} cpu, {settings['io']} io, "
                f"{settings['vm']} vm, {settings['hdd']} hdd")
        return dispatch(settings, log)
    except Exit as done:
        return done.status


if __name__ == "__main__":
    sys.exit(main())
