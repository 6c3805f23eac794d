"""A stand-in for agnhost (registry.k8s.io/e2e-test-images/agnhost) and for
k8s.gcr.io/liveness's `/server`: `agnhost.py <subcommand> [flags]`.

- liveness: HTTP on $POD_IP:8080. /healthz answers 200 "ok" for the first
  10 s after start, then 500 "error: <seconds>" (the Kubernetes docs' liveness
  example). `KUBEMU_LIVENESS_HEALTHY_S` changes the 10 s (fast test profiles).
  /started answers 200 with the seconds since start; /redirect?loc=X is a 302.
- pause: sleep until SIGTERM/SIGINT.
- netexec: HTTP on --http-port (8080): /, /hostname, /echo?msg=, /healthz,
  /clientip, /exit?code=N, /shell?cmd= (runs `sh -c`, JSON output/error).
- serve-hostname: HTTP on --port (9376) answering the hostname.
Every server exits 0 on SIGTERM.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

LIVENESS_PORT = 8080
LIVENESS_HEALTHY_S = 10.0
NETEXEC_PORT = 8080
SERVE_HOSTNAME_PORT = 9376
SHELL_TIMEOUT_S = 30.0


def liveness(args: argparse.Namespace) -> None:
    started = time.monotonic()
    healthy_s = float(os.environ.get("KUBEMU_LIVENESS_HEALTHY_S") or LIVENESS_HEALTHY_S)

    class Handler(_base.QuietHandler):
        def do_GET(self):  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            elapsed_s = time.monotonic() - started
            if url.path == "/healthz":
                if elapsed_s > healthy_s:
                    self.reply(500, f"error: {elapsed_s:.6f}")
                else:
                    self.reply(200, "ok")
            elif url.path == "/started":
                self.reply(200, f"{elapsed_s:.6f}")
            elif url.path == "/redirect":
                loc = urllib.parse.parse_qs(url.query).get("loc", ["/"])[0]
                self.reply(302, "", headers={"Location": loc})
            else:
                self.reply(404, "404 page not found\n")

    _base.serve(Handler, _base.pod_ip(), args.port, name="liveness")


def netexec(args: argparse.Namespace) -> None:
    class Handler(_base.QuietHandler):
        def do_GET(self):  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path in ("/", "/hostname"):
                self.reply(200, _base.hostname())
            elif url.path == "/echo":
                self.reply(200, query.get("msg", [""])[0])
            elif url.path == "/healthz":
                self.reply(200, "ok")
            elif url.path == "/clientip":
                self.reply(200, f"{self.client_address[0]}:{self.client_address[1]}")
            elif url.path == "/exit":
                code = int(query.get("code", ["0"])[0])
                self.reply(200, "")
                _base.log(f"exiting with code {code}")
                os._exit(code)  # the request asked the whole process to end now
            elif url.path == "/shell":
                cmd = query.get("cmd", [""])[0]
                try:
                    done = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True,
                                          timeout=SHELL_TIMEOUT_S)
                    out = {"output": done.stdout.decode(errors="replace")}
                    if done.returncode:
                        out["error"] = (f"exit status {done.returncode}: "
                                        f"{done.stderr.decode(errors='replace')}")
                except subprocess.TimeoutExpired:
                    out = {"error": f"timed out after {SHELL_TIMEOUT_S:g}s"}
                self.reply(200, json.dumps(out), "application/json")
            else:
                self.reply(404, "404 page not found\n")

        do_POST = do_GET

    _base.serve(Handler, _base.pod_ip(), args.http_port, name="netexec")


def serve_hostname(args: argparse.Namespace) -> None:
    class Handler(_base.QuietHandler):
        def do_GET(self):  # noqa: N802
            self.reply(200, _base.hostname())

    _base.serve(Handler, _base.pod_ip(), args.port, name="serve-hostname")


def pause(_args: argparse.Namespace) -> None:
    while True:
        signal.pause()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="agnhost")
    sub = p.add_subparsers(dest="command", required=True)
    live = sub.add_parser("liveness")
    live.add_argument("--port", type=int, default=LIVENESS_PORT)
    live.set_defaults(run=liveness)
    sub.add_parser("pause").set_defaults(run=pause)
    net = sub.add_parser("netexec")
    net.add_argument("--http-port", type=int, default=NETEXEC_PORT)
    net.add_argument("--udp-port", type=int, default=-1)
    net.add_argument("--sctp-port", type=int, default=-1)
    net.set_defaults(run=netexec)
    host = sub.add_parser("serve-hostname")
    host.add_argument("--port", type=int, default=SERVE_HOSTNAME_PORT)
    host.add_argument("--http", action="store_true", default=True)
    host.set_defaults(run=serve_hostname)
    args = p.parse_args(argv)
    _base.exit_on_signals()
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
