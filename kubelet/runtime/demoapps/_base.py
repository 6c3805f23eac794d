"""What every demo app shares: where to listen, the container's root view,
SIGTERM handling and a threaded HTTP server.

Demo apps are plain stdlib scripts that the runtime runs with this machine's
Python (`python -S -E -u demoapps/<app>.py`), so they start in well under
0.3 s and import nothing from kubemu. Each exits 0 on SIGTERM or SIGINT.
"""
from __future__ import annotations

import http.server
import os
import pathlib
import posixpath
import signal
import socket
import sys
import tempfile
import time

DEFAULT_HOST = "127.0.0.1"


def pod_ip() -> str:
    """The address the pod binds: $POD_IP, else loopback."""
    return os.environ.get("POD_IP") or DEFAULT_HOST


def rootfs() -> pathlib.Path:
    """The container's root view ($KUBEMU_ROOTFS). Run by hand (no
    $KUBEMU_ROOTFS): a private directory of this user's in the temporary
    directory, the same for every run, so that `nginx -s stop` finds the
    server's pid file, and nothing is written into the working directory."""
    given = os.environ.get("KUBEMU_ROOTFS")
    if given:
        return pathlib.Path(given)
    fallback = pathlib.Path(tempfile.gettempdir()) / f"kubemu-demoapps-{os.getuid()}"
    try:
        fallback.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        pass  # a write there fails and says so; reading finds nothing
    return fallback


def in_rootfs(container_path: str) -> pathlib.Path:
    """A container path (absolute, as the pod sees it) inside the root view;
    `..` cannot climb above the root."""
    clean = posixpath.normpath("/" + container_path.lstrip("/")).lstrip("/")
    return rootfs() / clean if clean and clean != "." else rootfs()


def hostname() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `:port` or `host` -> (host, port); an empty host is the pod IP."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, ""
    return host or pod_ip(), int(port) if port else default_port


def exit_on_signals(*extra: int) -> None:
    """Exit 0 on SIGTERM/SIGINT (and `extra`), as a well-behaved server does."""
    def stop(signum, _frame):
        log(f"received {signal.Signals(signum).name}, exiting")
        sys.exit(0)
    for sig in (signal.SIGTERM, signal.SIGINT, *extra):
        signal.signal(sig, stop)


def log(message: str, stream=None) -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    print(f"{stamp} {message}", file=stream or sys.stdout, flush=True)


class ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """No per-request stderr noise; helpers to reply."""

    server_version = "kubemu-demo"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass

    def reply(self, status: int, body: bytes | str = b"", content_type: str = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body(self, limit_bytes: int = 1 << 20) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, limit_bytes)) if length > 0 else b""


def serve(handler: type[http.server.BaseHTTPRequestHandler], host: str, port: int,
          *, name: str) -> None:
    """Serve until a signal ends the process; a bind error exits 1 with the reason."""
    try:
        server = ThreadingServer((host, port), handler)
    except OSError as err:
        log(f"{name}: cannot listen on {host}:{port}: {err.strerror or err}", sys.stderr)
        sys.exit(1)
    log(f"{name}: serving on {host}:{port}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
