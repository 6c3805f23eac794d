"""A kuard-like demo app (gcr.io/kuar-demo/kuard-amd64), from "Kubernetes: Up
and Running".

HTTP on --address (default $POD_IP:8080):
  /                     a small page: version, color, hostname, pod IP
  /healthy, /ready      200 "ok"; `?fail=1` (GET or POST) or POST .../fail makes
                        it answer 500 from then on, `?ok=1` or POST .../ok heals
  /env, /env/api        JSON {"commandLine": [...], "env": {...}}
  /fs/<path>            the container's view (_base.container_path): a directory as a
                        JSON listing, a file as its bytes
  /memory/alloc?size=N  allocate (and touch) N more bytes; /memory/free frees
  /memq/server/...      an in-memory queue server: PUT queues/<q> creates,
                        DELETE removes, POST queues/<q>/enqueue (body = message),
                        POST queues/<q>/dequeue (204 when empty),
                        POST queues/<q>/drain, GET stats
Keygen workload (flags or env KEYGEN_<FLAG> / KUARD_KEYGEN_<FLAG>):
  --keygen-enable --keygen-num-to-gen N [--keygen-exit-on-complete]
  [--keygen-exit-code C] [--keygen-memq-server URL --keygen-memq-queue Q]
  generates N keys (0 = forever), or one per message dequeued from the queue
  until it is empty, logging each; with exit-on-complete the process then
  exits with C (default 0). The HTTP server runs meanwhile.
The version is the image tag ($KUARD_VERSION, set by the catalog); the color
is the tag's (blue/green/purple; 1/2/3 map to those). SIGTERM exits 0.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

DEFAULT_PORT = 8080
KEY_HASH_ROUNDS = 50_000        # one "key" costs a few tens of ms of CPU
MEMQ_MESSAGE_BYTES_MAX = 1 << 20
MEMQ_DEPTH_MAX = 100_000
MEMQ_TIMEOUT_S = 5.0
ALLOC_BYTES_MAX = 1 << 34
COLORS = {"1": "blue", "2": "green", "3": "purple"}


def version() -> str:
    return os.environ.get("KUARD_VERSION") or "dev"


def color(tag: str) -> str:
    for name in ("blue", "green", "purple"):
        if name in tag:
            return name
    return COLORS.get(tag, "gray")


class State:
    """Everything the handlers share, behind one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.healthy = True
        self.ready = True
        self.allocations: list[bytes] = []
        self.queues: dict[str, dict] = {}
        self.message_ids = itertools.count(1)

    def allocated_bytes(self) -> int:
        return sum(len(a) for a in self.allocations)


STATE = State()


def truthy(query: dict, key: str) -> bool:
    return query.get(key, ["0"])[-1] not in ("", "0", "false")


def queue_stats(name: str, q: dict) -> dict:
    return {"name": name, "depth": len(q["messages"]), "enqueued": q["enqueued"],
            "dequeued": q["dequeued"], "drained": q["drained"]}


class Handler(_base.QuietHandler):
    server_version = "kuard"

    def do_GET(self):  # noqa: N802
        self.route("GET")

    def do_POST(self):  # noqa: N802
        self.route("POST")

    def do_PUT(self):  # noqa: N802
        self.route("PUT")

    def do_DELETE(self):  # noqa: N802
        self.route("DELETE")

    def json(self, status: int, value) -> None:
        self.reply(status, json.dumps(value, indent=1) + "\n", "application/json")

    def route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        path = url.path.rstrip("/") or "/"
        if path == "/":
            return self.index()
        for probe in ("healthy", "ready"):
            if path in (f"/{probe}", f"/{probe}/fail", f"/{probe}/ok"):
                return self.probe(probe, method, path, query)
        if path in ("/env", "/env/api"):
            return self.json(200, {"commandLine": sys.argv, "env": dict(os.environ)})
        if path == "/fs" or path.startswith("/fs/"):
            return self.fs(path[len("/fs"):])
        if path.startswith("/memory"):
            return self.memory(path, query)
        if path.startswith("/memq/server"):
            return self.memq(method, path[len("/memq/server"):])
        self.reply(404, "404 page not found\n")

    def index(self) -> None:
        tag = version()
        page = (f"<!doctype html><html><head><title>KUAR Demo</title></head>"
                f"<body style=\"border-top: 8px solid {color(tag)}\">"
                f"<h1>KUAR Demo</h1><dl>"
                f"<dt>Version</dt><dd id=\"version\">{tag}</dd>"
                f"<dt>Color</dt><dd id=\"color\">{color(tag)}</dd>"
                f"<dt>Hostname</dt><dd id=\"hostname\">{_base.hostname()}</dd>"
                f"<dt>Pod IP</dt><dd id=\"pod-ip\">{_base.pod_ip()}</dd>"
                f"<dt>Request from</dt><dd>{self.client_address[0]}</dd>"
                f"</dl></body></html>\n")
        self.reply(200, page, "text/html")

    def probe(self, probe: str, method: str, path: str, query: dict) -> None:
        switch = None
        if (path.endswith("/fail") and method == "POST") or truthy(query, "fail"):
            switch = False
        elif (path.endswith("/ok") and method == "POST") or truthy(query, "ok"):
            switch = True
        with STATE.lock:
            if switch is not None:
                setattr(STATE, probe, switch)
                _base.log(f"{probe} set to {'ok' if switch else 'failing'}")
            ok = getattr(STATE, probe)
        self.reply(200 if ok else 500, "ok" if ok else f"{probe} check failing (as requested)")

    def fs(self, container_path: str) -> None:
        target = _base.container_path(urllib.parse.unquote(container_path) or "/")
        if target.is_dir():
            entries = []
            for child in sorted(target.iterdir()):
                try:
                    size = child.stat().st_size
                except OSError:
                    size = 0
                entries.append({"name": child.name, "dir": child.is_dir(), "size": size})
            return self.json(200, {"path": container_path or "/", "entries": entries})
        try:
            self.reply(200, target.read_bytes(), "application/octet-stream")
        except OSError as err:
            self.reply(404, f"{container_path}: {err.strerror or err}\n")

    def memory(self, path: str, query: dict) -> None:
        if path in ("/memory/alloc", "/memory/api/alloc"):
            try:
                size = int(query.get("size", ["0"])[0])
            except ValueError:
                return self.reply(400, "size must be an integer number of bytes\n")
            if not 0 <= size <= ALLOC_BYTES_MAX:
                return self.reply(400, f"size must be between 0 and {ALLOC_BYTES_MAX}\n")
            block = b"\x01" * size  # bytes of a repeated value are written: resident at once
            with STATE.lock:
                STATE.allocations.append(block)
                total = STATE.allocated_bytes()
            _base.log(f"allocated {size} bytes (total {total})")
            return self.json(200, {"allocated_bytes": total})
        if path in ("/memory/free", "/memory/api/free"):
            with STATE.lock:
                STATE.allocations.clear()
            return self.json(200, {"allocated_bytes": 0})
        if path in ("/memory", "/memory/api"):
            with STATE.lock:
                return self.json(200, {"allocated_bytes": STATE.allocated_bytes()})
        self.reply(404, "404 page not found\n")

    def memq(self, method: str, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        if parts == ["stats"] and method == "GET":
            with STATE.lock:
                stats = [queue_stats(n, q) for n, q in sorted(STATE.queues.items())]
            return self.json(200, {"kind": "stats", "queues": stats})
        if len(parts) < 2 or parts[0] != "queues":
            return self.reply(404, "404 page not found\n")
        name = parts[1]
        action = parts[2] if len(parts) > 2 else ""
        with STATE.lock:
            q = STATE.queues.get(name)
            if not action and method == "PUT":
                if q is None:
                    q = STATE.queues[name] = {"messages": [], "enqueued": 0, "dequeued": 0,
                                              "drained": 0}
                return self.json(200, queue_stats(name, q))
            if q is None:
                return self.reply(404, f"queue {name!r} not found\n")
            if not action and method == "DELETE":
                del STATE.queues[name]
                return self.json(200, {})
            if not action and method == "GET":
                return self.json(200, queue_stats(name, q))
            if action == "enqueue" and method == "POST":
                if len(q["messages"]) >= MEMQ_DEPTH_MAX:
                    return self.reply(507, f"queue {name!r} is full ({MEMQ_DEPTH_MAX})\n")
                message = {"kind": "message", "id": str(next(STATE.message_ids)),
                           "body": self.body(MEMQ_MESSAGE_BYTES_MAX).decode(errors="replace"),
                           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                q["messages"].append(message)
                q["enqueued"] += 1
                return self.json(200, message)
            if action == "dequeue" and method == "POST":
                if not q["messages"]:
                    return self.reply(204)
                q["dequeued"] += 1
                return self.json(200, q["messages"].pop(0))
            if action == "drain" and method == "POST":
                q["drained"] += len(q["messages"])
                q["messages"].clear()
                return self.json(200, queue_stats(name, q))
        self.reply(405, "method not allowed\n")


# ---------------------------------------------------------------- keygen

def make_key(seed: bytes) -> str:
    digest = hashlib.sha256(seed).digest()
    for _ in range(KEY_HASH_ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def memq_dequeue(server: str, queue: str) -> dict | None:
    url = f"{server.rstrip('/')}/queues/{urllib.parse.quote(queue)}/dequeue"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"),
                                timeout=MEMQ_TIMEOUT_S) as resp:
        if resp.status == 204:
            return None
        return json.loads(resp.read())


def keygen(args: argparse.Namespace) -> None:
    _base.log("(ID 0) Workload starting")
    count = 0
    if args.keygen_memq_server:
        while True:
            try:
                message = memq_dequeue(args.keygen_memq_server, args.keygen_memq_queue)
            except (OSError, urllib.error.URLError, ValueError) as err:
                _base.log(f"(ID 0) Error dequeuing from {args.keygen_memq_server}: {err}")
                break
            if message is None:
                break
            count += 1
            key = make_key(message.get("body", "").encode())
            _base.log(f"(ID 0 {count}) Item done: {key} (message {message.get('id')})")
    else:
        for count in itertools.count(1):
            if args.keygen_num_to_gen and count > args.keygen_num_to_gen:
                break
            key = make_key(f"{os.getpid()}-{count}-{time.time_ns()}".encode())
            total = args.keygen_num_to_gen or "inf"
            _base.log(f"(ID 0 {count}/{total}) Item done: {key}")
    _base.log("(ID 0) Workload exiting")
    if args.keygen_exit_on_complete:
        sys.stdout.flush()
        os._exit(args.keygen_exit_code)  # the server thread must not keep the process alive


def env_default(name: str, default):
    for key in (f"KEYGEN_{name}", f"KUARD_KEYGEN_{name}"):
        if key in os.environ:
            value = os.environ[key]
            if isinstance(default, bool):
                return value.lower() in ("1", "true", "yes", "on")
            return type(default)(value)
    return default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kuard")
    p.add_argument("--address", default=os.environ.get("KUARD_ADDRESS", f":{DEFAULT_PORT}"))
    p.add_argument("--keygen-enable", action="store_true", default=env_default("ENABLE", False))
    p.add_argument("--keygen-num-to-gen", type=int, default=env_default("NUM_TO_GEN", 0))
    p.add_argument("--keygen-exit-on-complete", action="store_true",
                   default=env_default("EXIT_ON_COMPLETE", False))
    p.add_argument("--keygen-exit-code", type=int, default=env_default("EXIT_CODE", 0))
    p.add_argument("--keygen-memq-server", default=env_default("MEMQ_SERVER", ""))
    p.add_argument("--keygen-memq-queue", default=env_default("MEMQ_QUEUE", ""))
    args = p.parse_args(argv)
    if args.keygen_memq_server and not args.keygen_memq_queue:
        p.error("--keygen-memq-queue is required with --keygen-memq-server")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _base.exit_on_signals()
    _base.log(f"Starting kuard version: {version()}")
    if args.keygen_enable:
        threading.Thread(target=keygen, args=(args,), name="keygen", daemon=True).start()
    host, port = _base.split_address(args.address, DEFAULT_PORT)
    _base.serve(Handler, host, port, name="kuard")
    return 0


if __name__ == "__main__":
    sys.exit(main())
