"""What every demo app shares: where to listen, where a container path is
(`container_path`), SIGTERM handling and a threaded HTTP server.

Demo apps are plain stdlib scripts that the runtime runs with this machine's
Python (`python -S -E -u demoapps/<app>.py`), so they start in well under
0.3 s and import nothing from kubemu. Each treats signals as the program it
stands in for: servers that handle SIGTERM (nginx, kuard, pause) exit 0 on
it; Go and C programs that do not (agnhost, goproxy, stress) die of it
(status 143), or, as a container's PID 1, ignore it until the kubelet's
SIGKILL, as the real ones do.
"""
from __future__ import annotations

import errno
import http.server
import os
import pathlib
import posixpath
import signal
import socket
import sys
import time

DEFAULT_HOST = "127.0.0.1"


def pod_ip() -> str:
    """The address the pod binds: $POD_IP, else loopback."""
    return os.environ.get("POD_IP") or DEFAULT_HOST


def container_path(path: str) -> pathlib.Path:
    """Where a path as the container sees it (absolute, as in the pod spec:
    `/usr/share/nginx/html`, `/etc/config/x`) is for this process.

    In kubemu's plain mode the runtime gives each container a root view,
    $KUBEMU_ROOTFS, with every volume linked at its mountPath inside it: the
    path is $KUBEMU_ROOTFS/<path>. With namespaces (and when run by hand) the
    process sees the container's own filesystem and $KUBEMU_ROOTFS is unset:
    the path is itself. `..` never climbs above the root, and a relative path
    is taken from the root, as the kernel would from a container's `/`."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    given = os.environ.get("KUBEMU_ROOTFS")
    if not given:
        return pathlib.Path(clean)
    relative = clean.lstrip("/")
    return pathlib.Path(given) / relative if relative else pathlib.Path(given)


def argument_path(path: str) -> pathlib.Path:
    """A path given on a command line (`wget -O /work-dir/index.html`): an
    absolute one is a container path; a relative one is taken from the
    working directory, which the runtime already set inside the container's
    view."""
    return container_path(path) if path.startswith("/") else pathlib.Path(path)


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


def unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def serve(handler: type[http.server.BaseHTTPRequestHandler], host: str, port: int,
          *, name: str, announce: bool = True) -> None:
    """Serve until a signal ends the process; a bind error exits 1 with the reason.
    `announce`: log where it listens (off for a program whose log says nothing of it)."""
    try:
        server = ThreadingServer((host, port), handler)
    except OSError as err:
        hint = ""
        if err.errno == errno.EACCES and port < unprivileged_port_start():
            # kubemu's pods share the host's network: on a node run by a
            # non-root user (rootless), nothing binds a privileged port for them.
            hint = (f" (port {port} is below net.ipv4.ip_unprivileged_port_start, "
                    f"{unprivileged_port_start()}: a node run by a non-root user cannot "
                    f"bind it; run the cluster as root, or listen on a higher port)")
        log(f"{name}: cannot listen on {host}:{port}: {err.strerror or err}{hint}", sys.stderr)
        sys.exit(1)
    if announce:
        log(f"{name}: serving on {host}:{port}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
