"""A stand-in for the guestbook example's PHP frontend
(gcr.io/google_samples/gb-frontend, us-docker.pkg.dev/google-samples/containers/gke/gb-frontend):
Apache with PHP on port 80 (here $POD_IP:80, or $GB_FRONTEND_PORT).

What it does: `/` and `/index.html` answer 200 with a small "Guestbook"
page; any other path is Apache's 404 page. Each request gets an access-log
line on stdout in Apache's combined format; the start-up notice goes to
stderr. SIGTERM and SIGWINCH (the php:apache images' stop signal, a graceful
stop) exit 0.

What it does not do: no PHP runs, and there is no Redis client: the real
page's script and `guestbook.php?cmd=get|set` (which read and write the
messages in the redis-leader / redis-follower Services) are not emulated;
guestbook.php answers 500, as the real one does when it cannot reach Redis.
The page says so.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import urllib.parse

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

DEFAULT_PORT = 80
SERVER = "Apache/2.4.10 (Debian)"

INDEX = """<html>
  <head>
    <title>Guestbook</title>
  </head>
  <body>
    <div style="width: 50%; margin-left: 20px">
      <h2>Guestbook</h2>
      <form>
        <input placeholder="Messages" type="text" name="input">
        <button type="button">Submit</button>
      </form>
      <p>(kubemu's gb-frontend stand-in: a static page; messages are not stored.)</p>
    </div>
  </body>
</html>
"""


def not_found(path: str, port: int) -> str:
    return ("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n"
            "<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n"
            f"<p>The requested URL {path} was not found on this server.</p>\n<hr>\n"
            f"<address>{SERVER} Server at {_base.pod_ip()} Port {port}</address>\n"
            "</body></html>\n")


class Handler(_base.QuietHandler):
    def version_string(self) -> str:
        return SERVER

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            status, body = 200, INDEX
        elif path == "/guestbook.php":
            status, body = 500, ""  # PHP's fatal error: Redis is not there
        else:
            status, body = 404, not_found(path, self.server.server_address[1])
        data = body.encode()
        self.reply(status, data, "text/html; charset=UTF-8" if status != 404
                   else "text/html; charset=iso-8859-1")
        self.access_log(status, len(data))

    do_HEAD = do_POST = do_GET

    def access_log(self, status: int, length: int) -> None:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        referer = self.headers.get("Referer", "-")
        agent = self.headers.get("User-Agent", "-")
        print(f'{self.client_address[0]} - - [{stamp}] "{self.requestline}" {status} '
              f'{length} "{referer}" "{agent}"', flush=True)


def main() -> int:
    _base.exit_on_signals(signal.SIGWINCH)
    port = int(os.environ.get("GB_FRONTEND_PORT") or DEFAULT_PORT)
    stamp = time.strftime("%a %b %d %H:%M:%S %Y")
    print(f"[{stamp}] [mpm_prefork:notice] [pid {os.getpid()}] AH00163: {SERVER} configured "
          f"-- resuming normal operations", file=sys.stderr, flush=True)
    _base.serve(Handler, _base.pod_ip(), port, name="apache2", announce=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
