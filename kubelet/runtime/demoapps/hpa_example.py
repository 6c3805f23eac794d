"""A stand-in for registry.k8s.io/hpa-example (the Kubernetes HorizontalPodAutoscaler
walkthrough's php-apache): an HTTP server whose every request burns CPU.

Listens on $POD_IP (else 127.0.0.1), port 80 (or $HPA_EXAMPLE_PORT). Every GET
runs the image's index.php loop (a million square roots; about 0.1 s of one
core here, a little less in PHP) and answers "OK!". Each request is served in
its own thread, so concurrent load uses more CPU, as Apache's workers do.
SIGTERM exits 0 (as apache2 -DFOREGROUND under the image's entrypoint does).
"""
from __future__ import annotations

import math
import os
import sys

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

DEFAULT_PORT = 80
ITERATIONS = 1_000_000


def burn(iterations: int = ITERATIONS) -> float:
    """index.php: `$x = 0.0001; for ($i = 0; $i <= 1000000; $i++) { $x += sqrt($x); }`."""
    x = 0.0001
    sqrt = math.sqrt
    for _ in range(iterations + 1):
        x += sqrt(x)
    return x


class Handler(_base.QuietHandler):
    server_version = "Apache/2.4.10 (Debian)"

    def do_GET(self):  # noqa: N802 - http.server's naming
        burn()
        self.reply(200, "OK!", "text/html; charset=UTF-8")


def main(argv: list[str] | None = None) -> int:
    _base.exit_on_signals()
    port = int(os.environ.get("HPA_EXAMPLE_PORT") or DEFAULT_PORT)
    _base.serve(Handler, _base.pod_ip(), port, name="apache2")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
