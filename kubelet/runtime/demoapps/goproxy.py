"""A stand-in for registry.k8s.io/goproxy:0.1 (kubernetes test/images/goproxy:
elazarl/goproxy's NewProxyHttpServer with Verbose on, `:8080`), the image of
the Kubernetes docs' TCP readiness and liveness probe example.

An HTTP forward proxy on $POD_IP:8080 (`--port` to change it, kubemu's):
requests with an absolute URL (`GET http://host/path`) are forwarded and the
answer copied back; CONNECT host:port opens a tunnel ("HTTP/1.0 200 OK");
any other request gets goproxy's 500 "This is a proxy server. Does not
respond to non-proxy requests.". An upstream that cannot be reached gives
500 with Go's dial error. Verbose log lines as goproxy's ("[001] INFO: Got
request ...") on stderr with Go's log timestamp. No signal handler (a Go
program's default): SIGTERM ends it with status 143.
"""
from __future__ import annotations

import argparse
import http.client
import http.server
import itertools
import select
import signal
import socket
import sys
import threading
import time
import urllib.parse

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

DEFAULT_PORT = 8080
UPSTREAM_TIMEOUT_S = 30.0
TUNNEL_IDLE_S_MAX = 3600.0
BODY_BYTES_MAX = 64 << 20
COPY_CHUNK_BYTES = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
NON_PROXY = "This is a proxy server. Does not respond to non-proxy requests.\n"


class Sessions:
    """goproxy numbers every request it handles."""

    def __init__(self):
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._ids)


SESSIONS = Sessions()


def logf(session: int, message: str) -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    sys.stderr.write(f"{stamp} [{session:03d}] INFO: {message}\n")
    sys.stderr.flush()


def dial_error(host: str, port: int, err: OSError) -> str:
    """Go's net.OpError text."""
    if isinstance(err, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    if isinstance(err, TimeoutError):
        return f"dial tcp {host}:{port}: i/o timeout"
    reason = (err.strerror or str(err)).lower()
    return f"dial tcp {host}:{port}: connect: {reason}"


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "goproxy"

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass

    def plain_error(self, status: int, text: str) -> None:
        """net/http's http.Error."""
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_one_request(self):
        # Every method: the stdlib dispatches on do_<METHOD>.
        super().handle_one_request()

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

    def do_CONNECT(self):  # noqa: N802 - http.server's naming
        session = SESSIONS.next()
        logf(session, "Running 0 CONNECT handlers")
        logf(session, f"Accepting CONNECT to {self.path}")
        host, _, port_text = self.path.rpartition(":")
        try:
            port = int(port_text)
            upstream = socket.create_connection((host.strip("[]"), port), UPSTREAM_TIMEOUT_S)
        except (OSError, ValueError) as err:
            message = dial_error(host, 0, err) if isinstance(err, OSError) else str(err)
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            logf(session, f"WARN: Error dialing to {self.path}: {message}")
            self.close_connection = True
            return
        self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\n")
        self.wfile.flush()
        self.tunnel(self.connection, upstream)
        self.close_connection = True

    @staticmethod
    def tunnel(client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        try:
            while sockets:
                readable, _, _ = select.select(sockets, [], [], TUNNEL_IDLE_S_MAX)
                if not readable:
                    return
                for source in readable:
                    target = upstream if source is client else client
                    data = source.recv(COPY_CHUNK_BYTES)
                    if not data:
                        sockets.remove(source)
                        try:
                            target.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    target.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()

    def forward(self) -> None:
        session = SESSIONS.next()
        url = urllib.parse.urlsplit(self.path)
        logf(session, f"Got request {url.path} {url.netloc or self.headers.get('Host', '')} "
                      f"{self.command} {self.path}")
        if url.scheme not in ("http", "https") or not url.netloc:
            self.plain_error(500, NON_PROXY)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, BODY_BYTES_MAX)) if length > 0 else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        logf(session, f"Sending request {self.command} {self.path}")
        connection_class = (http.client.HTTPSConnection if url.scheme == "https"
                            else http.client.HTTPConnection)
        upstream = connection_class(url.hostname, url.port, timeout=UPSTREAM_TIMEOUT_S)
        try:
            upstream.request(self.command, target, body=body, headers=headers)
            response = upstream.getresponse()
        except OSError as err:
            port = url.port or (443 if url.scheme == "https" else 80)
            message = dial_error(url.hostname or "", port, err)
            logf(session, f"error read response {url.netloc} {message}:")
            self.plain_error(500, message + "\n")
            upstream.close()
            return
        status = f"{response.status} {response.reason}"
        logf(session, f"Received response {status}")
        logf(session, f"Copying response to client {status} [{response.status}]")
        copied, error = 0, "<nil>"
        try:
            self.send_response_only(response.status, response.reason)
            chunked = response.getheader("Content-Length") is None and self.command != "HEAD"
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                data = response.read(COPY_CHUNK_BYTES)
                if not data:
                    break
                copied += len(data)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError as err:
            error = str(err)
            self.close_connection = True
        finally:
            upstream.close()
        logf(session, f"Copied {copied} bytes to client error={error}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="goproxy")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("-v", action="store_true", help="accepted: the image is always verbose")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Go's default: a signal ends the program
    host = _base.pod_ip()
    try:
        server = _base.ThreadingServer((host, args.port), ProxyHandler)
    except OSError as err:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        sys.stderr.write(f"{stamp} listen tcp {host}:{args.port}: bind: "
                         f"{(err.strerror or str(err)).lower()}\n")
        return 1
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
