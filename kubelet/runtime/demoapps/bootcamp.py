"""A stand-in for the Kubernetes Basics tutorial's app
(gcr.io/google-samples/kubernetes-bootcamp, jocatalin/kubernetes-bootcamp): a
Node.js `server.js` that answers every request, whatever its method and path,
with one line:

    Hello Kubernetes bootcamp! | Running on: <hostname> | v=<version>

on port 8080 (here $POD_IP:8080, or $BOOTCAMP_PORT). The version is the
image tag's number ($BOOTCAMP_VERSION, set by the catalog from `{tag}`: v1 ->
1, v2 -> 2). Its log is server.js's console.log lines: one when it starts,

    Kubernetes Bootcamp App Started At: 2026-11-30T11:00:00.000Z | Running On:  <hostname>

(and an empty line), one per request,

    Running On: <hostname> | Total Requests: 1 | App Uptime: 12.345 seconds | Log Time: <date>

Run as `node server.js` (the image's CMD); other node invocations are not
emulated. Node installs no SIGTERM handler: the signal ends the process
(status 143), and a container's PID 1 ignores it until the kubelet's SIGKILL,
as the real image does.
"""
from __future__ import annotations

import datetime
import os
import re
import sys
import threading
import time

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

DEFAULT_PORT = 8080


def version() -> str:
    """`v2` -> `2`; a tag without a number (latest) is the first release's 1."""
    match = re.search(r"\d+", os.environ.get("BOOTCAMP_VERSION") or "")
    return match.group(0) if match else "1"


def js_date(when: float | None = None) -> str:
    """A Date as node's console.log prints it: ISO 8601 in UTC, milliseconds."""
    stamp = datetime.datetime.fromtimestamp(time.time() if when is None else when,
                                            datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.started_s = time.time()

    def next(self) -> int:
        with self.lock:
            self.requests += 1
            return self.requests


COUNTER = Counter()


class Handler(_base.QuietHandler):
    def answer(self) -> None:
        host = _base.hostname()
        self.body()  # node reads and drops a request body
        self.reply(200, f"Hello Kubernetes bootcamp! | Running on: {host} | v={version()}\n")
        count = COUNTER.next()
        uptime_s = round(time.time() - COUNTER.started_s, 3)
        print(f"Running On: {host} | Total Requests: {count} | App Uptime: {uptime_s:g} "
              f"seconds | Log Time: {js_date()}", flush=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = answer  # noqa: N815


def main(argv: list[str] | None = None) -> int:
    # `node server.js`: the script is the image's own; anything else is not emulated.
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in ("server.js", "/server.js", "./server.js"):
        print(f"node: the kubernetes-bootcamp stand-in runs only server.js, not {args[0]!r}",
              file=sys.stderr)
        return 9  # node's exit status for an invalid argument
    host = _base.hostname()
    COUNTER.started_s = time.time()
    print(f"Kubernetes Bootcamp App Started At: {js_date(COUNTER.started_s)} | Running On:  "
          f"{host} \n", flush=True)
    port = int(os.environ.get("BOOTCAMP_PORT") or DEFAULT_PORT)
    _base.serve(Handler, _base.pod_ip(), port, name="node", announce=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
