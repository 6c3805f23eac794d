"""A stand-in for vish/stress (github.com/vishh/stress), the program of the
Kubernetes docs' CPU limit example (`args: ["-cpus", "2"]`); its entrypoint
is `/stress -logtostderr`.

As the Go original: Go-style flags (`-cpus N`, `-mem-total Q`,
`-mem-alloc-size Q` (4Ki), `-mem-alloc-sleep D` (1ms); glog's flags such as
`-logtostderr` and `-v` are accepted), Kubernetes quantities; logs in glog's
format on stderr. It starts one CPU burner per `-cpus` (a process copying
/dev/zero, as the original's goroutines do, so each burns a full core), then
allocates `-mem-total` in `-mem-alloc-size` chunks that it writes (so they
are resident), sleeping `-mem-alloc-sleep` between chunks, logs `Allocated`
and runs until a signal ends it (SIGTERM: status 143, as a Go program that
does not handle it). A bad flag prints Go's message and usage and exits 2; a
bad quantity panics as resource.MustParse does (exit 2).
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
COPY_BUFFER_BYTES = 32 * 1024   # io.Copy's buffer
FLAGS = {"mem-total": "0", "mem-alloc-size": "4Ki", "mem-alloc-sleep": "1ms", "cpus": "0"}
GLOG_FLAGS = {"logtostderr": True, "alsologtostderr": True, "v": False, "vmodule": False,
              "log_dir": False, "log_backtrace_at": False, "stderrthreshold": False}
USAGE = """Usage of /stress:
  -cpus int
    \ttotal number of CPUs to utilize
  -mem-alloc-size string
    \tamount of memory to be consumed in each allocation (default "4Ki")
  -mem-alloc-sleep duration
    \tduration to sleep between allocations (default 1ms)
  -mem-total string
    \ttotal memory to be consumed. Memory will be consumed via multiple allocations. (default "0")
"""
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
           "Ei": 2 ** 60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "P": 1e15, "E": 1e18}
_DURATION = re.compile(r"([0-9.]+)(ns|us|µs|ms|s|m|h)")
_DURATION_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class UsageError(Exception):
    pass


def glog(line: int, message: str) -> None:
    """glog's header: Lmmdd hh:mm:ss.uuuuuu pid file:line] msg"""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now))
    micros = int((now % 1) * 1e6)
    sys.stderr.write(f"I{stamp}.{micros:06d} {os.getpid():7d} main.go:{line}] {message}\n")
    sys.stderr.flush()


def quantity_bytes(text: str) -> int:
    """resource.MustParse(text).Value(): rounded up to a whole number."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, suffix = float(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        value = number * _BINARY[suffix]
    elif suffix[:1] in ("e", "E"):
        value = number * 10 ** int(suffix[1:])
    else:
        value = number * _DECIMAL[suffix]
    return int(-(-value // 1))


def duration_s(text: str) -> float:
    """time.ParseDuration for the units Go has."""
    if text == "0":
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f'invalid value "{text}" for flag -mem-alloc-sleep: parse error')
    return sum(float(n) * _DURATION_S[u] for n, u in parts)


def parse_flags(argv: list[str]) -> dict[str, str]:
    """Go's flag package: -name=value, -name value, --name; bools take no value."""
    values = dict(FLAGS)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name, has_value, value = arg.lstrip("-").partition("=")
        if name in ("h", "help"):
            sys.stderr.write(USAGE)
            raise SystemExit(0)
        if name in GLOG_FLAGS:
            if GLOG_FLAGS[name] is False and not has_value:
                i += 1  # glog's valued flags (-v 2, -log_dir x)
        elif name in values:
            if not has_value:
                i += 1
                if i == len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[i]
            values[name] = value
        else:
            raise UsageError(f"flag provided but not defined: -{name}")
        i += 1
    return values


def burn_cpu() -> None:
    """One process per CPU, each copying /dev/zero to nothing."""
    pid = os.fork()
    if pid:
        return
    try:
        try:
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
        buffer = bytearray(COPY_BUFFER_BYTES)
        with open("/dev/zero", "rb", buffering=0) as zero:
            while True:
                zero.readinto(buffer)
    finally:
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Go program dies of an unhandled signal
    try:
        flags = parse_flags(sys.argv[1:] if argv is None else argv)
        cpus = int(flags["cpus"])
        sleep_s = duration_s(flags["mem-alloc-sleep"])
    except UsageError as err:
        sys.stderr.write(f"{err}\n{USAGE}")
        return 2
    except ValueError:
        sys.stderr.write(f'invalid value "{flags["cpus"]}" for flag -cpus: parse error\n{USAGE}')
        return 2
    try:
        total = quantity_bytes(flags["mem-total"])
        step = quantity_bytes(flags["mem-alloc-size"])
    except ValueError as err:
        sys.stderr.write(f"panic: {err}\n\ngoroutine 1 [running]:\nmain.main()\n")
        return 2
    glog(26, f'Allocating "{flags["mem-total"]}" memory, in "{flags["mem-alloc-size"]}" chunks, '
             f'with a {flags["mem-alloc-sleep"]} sleep between allocations')
    sys.stdout.flush()
    for _ in range(max(cpus, 0)):
        glog(39, "Spawning a thread to consume CPU")
        burn_cpu()
    held = []
    allocated = 0
    while step > 0 and allocated + step <= total:
        held.append(bytearray(step))  # zero-filled: every page written, so resident
        allocated += step
        time.sleep(sleep_s)
    glog(29, f'Allocated "{flags["mem-total"]}" memory')
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
