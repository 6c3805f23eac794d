"""A stand-in for the nginx image: a static HTTP server.

Listens on $POD_IP (else 127.0.0.1), port 80 or $NGINX_PORT. Serves the
docroot /usr/share/nginx/html as the container sees it (`_base.container_path`:
the real path with namespaces, $KUBEMU_ROOTFS/usr/share/nginx/html in the
plain mode), looked up on every request, so a volume mounted there, or files
another container of the pod writes into it, are served as they are: an
index.html is the page, a directory without one is nginx's 403, a missing
file its 404. While no docroot directory exists (nothing is mounted there:
the image's own docroot) the stock "Welcome to nginx!" page is served.
Access log lines go to stdout, notices to stderr, like the official image.
SIGTERM, SIGINT and SIGQUIT exit 0.

Command line as nginx: `-g ...`, `-c ...` are accepted and ignored; `-v`/`-V`
print the version; `-t` tests the (absent) config; `-s quit|stop|reload|reopen`
signals the running server through /run/nginx.pid of the container (so a
preStop `nginx -s quit` works).
"""
from __future__ import annotations

import argparse
import mimetypes
import os
import posixpath
import signal
import sys
import time
import urllib.parse

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

VERSION = "1.25.3"
DEFAULT_PORT = 80
DOCROOT = "/usr/share/nginx/html"
PID_FILE = "/run/nginx.pid"

WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""


def error_page(status: int, text: str) -> str:
    return (f"<html>\r\n<head><title>{status} {text}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {text}</h1></center>\r\n"
            f"<hr><center>nginx/{VERSION}</center>\r\n</body>\r\n</html>\r\n")


def notice(message: str) -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    print(f"{stamp} [notice] {os.getpid()}#{os.getpid()}: {message}", file=sys.stderr, flush=True)


class Handler(_base.QuietHandler):
    server_version = f"nginx/{VERSION}"

    def do_GET(self):  # noqa: N802 - http.server's naming
        status, length = self.serve()
        self.access_log(status, length)

    do_HEAD = do_GET

    def access_log(self, status: int, length: int) -> None:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        referer = self.headers.get("Referer", "-")
        agent = self.headers.get("User-Agent", "-")
        print(f'{self.client_address[0]} - - [{stamp}] "{self.requestline}" {status} {length} '
              f'"{referer}" "{agent}" "-"', flush=True)

    def send(self, status: int, body: bytes | str, content_type: str = "text/html") -> tuple:
        data = body.encode() if isinstance(body, str) else body
        self.reply(status, data, content_type)
        return status, len(data)

    def serve(self) -> tuple[int, int]:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        docroot = _base.container_path(DOCROOT)
        if not docroot.is_dir():
            if path in ("/", "/index.html"):
                return self.send(200, WELCOME)
            return self.send(404, error_page(404, "Not Found"))
        relative = posixpath.normpath("/" + path).lstrip("/")  # no climbing above the root
        target = docroot / relative if relative else docroot
        if target.is_dir():
            index = target / "index.html"
            if not index.is_file():
                return self.send(403, error_page(403, "Forbidden"))
            target = index
        if not target.is_file():
            return self.send(404, error_page(404, "Not Found"))
        try:
            data = target.read_bytes()
        except OSError:
            return self.send(403, error_page(403, "Forbidden"))
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return self.send(200, data, content_type)


def signal_running(action: str) -> int:
    signals = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT, "reload": signal.SIGHUP,
               "reopen": signal.SIGUSR1}
    if action not in signals:
        print(f'nginx: [emerg] invalid option: "-s {action}"', file=sys.stderr)
        return 1
    pid_file = _base.container_path(PID_FILE)
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signals[action])
    except (OSError, ValueError) as err:
        print(f'nginx: [error] open() "{PID_FILE}" failed ({err})', file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nginx", add_help=False)
    p.add_argument("-g", action="append", default=[])
    p.add_argument("-c", default="")
    p.add_argument("-s", dest="signal", default="")
    p.add_argument("-v", action="store_true")
    p.add_argument("-V", action="store_true")
    p.add_argument("-t", action="store_true")
    args = p.parse_args(argv)
    if args.v or args.V:
        print(f"nginx version: nginx/{VERSION}", file=sys.stderr)
        return 0
    if args.t:
        print("nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
              "nginx: configuration file /etc/nginx/nginx.conf test is successful",
              file=sys.stderr)
        return 0
    if args.signal:
        return signal_running(args.signal)

    _base.exit_on_signals(signal.SIGQUIT)
    signal.signal(signal.SIGHUP, lambda *_: notice("signal 1 (SIGHUP) received, reconfiguring"))
    pid_file = _base.container_path(PID_FILE)
    try:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
    except OSError:
        pass  # `nginx -s` will not work; serving does
    port = int(os.environ.get("NGINX_PORT") or DEFAULT_PORT)
    notice(f"nginx/{VERSION}")
    notice("start worker processes")
    _base.serve(Handler, _base.pod_ip(), port, name="nginx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
