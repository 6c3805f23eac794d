"""A stand-in for agnhost (registry.k8s.io/e2e-test-images/agnhost), the
Kubernetes test image of the docs and the e2e suite, and for the older
single-purpose images it replaced (k8s.gcr.io/liveness's `/server`,
test-webserver): `agnhost.py <subcommand> [flags]`, flags as cobra/pflag
takes them (`--name=value`, `--name value`, `--bool`, `--bool=false`).

Servers bind the pod IP ($POD_IP) where agnhost binds every address; log
lines are Go's (`2006/01/02 15:04:05 msg`, on stderr). As agnhost, no
subcommand but pause and serve-hostname handles SIGTERM: it ends them with
status 143 (a container's PID 1 ignores it until the SIGKILL). No
subcommand: the usage, exit 0; an unknown one: cobra's error, exit 1.

- liveness: HTTP :8080 (`--port`, kubemu's). /healthz is 200 "ok" for 10 s
  after start, then 500 "error: <seconds>" (`KUBEMU_LIVENESS_HEALTHY_S`
  changes the 10 s for fast test profiles); /started answers the time since
  start as a Go duration; /redirect?loc=X is a 302.
- netexec: HTTP on --http-port (8080), a UDP server on --udp-port (8081; -1:
  none) answering `hostname`, `echo <msg>`, `clientip`. Endpoints: / ("NOW:
  <time>"), /clientip, /echo?msg=&code=, /exit?code=&timeout=&wait= (timeout
  0: exit at once, no answer), /healthz (200 while the UDP server runs, else
  412), /hostname and /hostName, /redirect?location=&code=, /shell?cmd= (or
  shellCommand; `/bin/sh -c`, JSON {"output", "error"} of the combined
  output), /shutdown, /dial?host=&port=&request=&protocol=&tries=, /upload
  (multipart "file" into /uploads), /serverport. --http-override,
  --tls-cert-file / --tls-private-key-file, --udp-listen-addresses.
- serve-hostname: the hostname over HTTP (default), or raw --tcp / --udp, on
  --port (9376); --close adds `Connection: close`. On SIGTERM it logs and
  keeps serving for 60 s ("Awaiting pod deletion."), then exits 0.
- test-webserver: a file server for the container's `/` on --port (80).
- pause: prints "Paused" and waits; SIGINT exits 1, SIGTERM exits 2.
- entrypoint-tester: prints its argv as Go's %v ("[/agnhost entrypoint-tester a b]").
- mounttest: --fs_type, --file_mode, --file_perm, --file_owner,
  --new_file_0644/0666/0660/0777, --file_content, --file_content_in_loop
  (--retry_time, --break_on_expected_content), with the real lines
  ("mode of file \"/x\": -rw-r--r--") and exit status 1 on any error.
- dns-suffix, dns-server-list, etc-hosts: from /etc/resolv.conf and /etc/hosts.
- connect host:port [--timeout D] [--protocol tcp|udp]: exit 0, or 1 with
  UNKNOWN/DNS/TIMEOUT/REFUSED/OTHER on stderr.
- porter: one HTTP server per SERVE_PORT_N / SERVE_TCP_PORT_N env var (UDP
  for SERVE_UDP_PORT_N) answering the variable's value; --json-response.
Paths are the container's (`_base.container_path`).
"""
from __future__ import annotations

import datetime
import email.parser
import email.policy
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

ROOT_COMMAND = "app"     # agnhost's cobra root command is named "app"
DEFAULT_ARGV0 = "/agnhost"
LIVENESS_PORT = 8080
LIVENESS_HEALTHY_S = 10.0
SHELL_TIMEOUT_S = 300.0
DIAL_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S_MAX = 120.0
SERVE_HOSTNAME_DRAIN_S = 60.0
UDP_PACKET_BYTES = 2048
UPLOAD_BYTES_MAX = 64 << 20
TMPFS_MAGIC = 0x01021994


class UsageError(Exception):
    """A flag or argument error: cobra prints `Error: ...` and exits 1."""


# ---------------------------------------------------------------- Go-isms

def go_log(message: str) -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    sys.stderr.write(f"{stamp} {message}\n")
    sys.stderr.flush()


def go_fatal(message: str) -> None:
    go_log(message)
    os._exit(1)


def go_duration(ns: int) -> str:
    """time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)

    def frac(whole: int, rest: int, digits: int) -> str:
        text = f"{whole}.{rest:0{digits}d}".rstrip("0").rstrip(".")
        return text

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns // 1_000, ns % 1_000, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{frac(ns // 1_000_000, ns % 1_000_000, 6)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = frac(rest // 1_000_000_000, rest % 1_000_000_000, 9) + "s"
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return sign + text + seconds


def parse_go_duration(text: str) -> float:
    """time.ParseDuration -> seconds; ValueError when it does not parse."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    total, i = 0.0, 0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    while i < len(body):
        j = i
        while j < len(body) and (body[j].isdigit() or body[j] == "."):
            j += 1
        k = j
        while k < len(body) and not (body[k].isdigit() or body[k] == "."):
            k += 1
        number, unit = body[i:j], body[j:k]
        if not number or unit not in units:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(number) * units[unit]
        i = k
    return sign * total


STARTED_MONOTONIC_S = time.monotonic()


def go_now() -> str:
    """time.Now().String(), with the monotonic reading (since the start)."""
    now = datetime.datetime.now().astimezone()
    offset = now.strftime("%z")
    zone = now.strftime("%Z") or offset
    since_start_s = time.monotonic() - STARTED_MONOTONIC_S
    return (f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond:06d}000 {offset} {zone} "
            f"m=+{since_start_s:.9f}")


def go_json(value) -> str:
    """encoding/json.Marshal: compact, sorted map keys, HTML-safe."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def go_file_mode(mode: int) -> str:
    """os.FileMode.String() of a stat result's st_mode."""
    letters = ""
    if stat.S_ISDIR(mode):
        letters += "d"
    if stat.S_ISLNK(mode):
        letters += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        letters += "D"
    if stat.S_ISFIFO(mode):
        letters += "p"
    if stat.S_ISSOCK(mode):
        letters += "S"
    if mode & stat.S_ISUID:
        letters += "u"
    if mode & stat.S_ISGID:
        letters += "g"
    if stat.S_ISCHR(mode):
        letters += "c"
    if mode & stat.S_ISVTX:
        letters += "t"
    return (letters or "-") + _rwx(mode)


def go_perm(mode: int) -> str:
    """os.FileMode.Perm().String(): the permission bits alone, `-rw-r--r--`."""
    return "-" + _rwx(mode)


def _rwx(mode: int) -> str:
    return "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))


def go_errno(err: OSError) -> str:
    return (err.strerror or str(err)).lower() if err.strerror else str(err)


def parse_flags(argv: list[str], spec: dict[str, tuple[str, object]]) -> tuple[dict, list[str]]:
    """pflag: `--name=value`, `--name value`, bools as `--name` or
    `--name=false`; other words are positional arguments."""
    values = {name: default for name, (_kind, default) in spec.items()}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i + 1:])
            break
        if not arg.startswith("--") or arg == "--":
            if arg.startswith("-") and len(arg) > 1:
                raise UsageError(f"unknown shorthand flag: {arg[1]!r} in {arg}")
            rest.append(arg)
            i += 1
            continue
        name, has_value, value = arg[2:].partition("=")
        if name not in spec:
            raise UsageError(f"unknown flag: --{name}")
        kind, _default = spec[name]
        if kind == "bool":
            if has_value and value.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise UsageError(f'invalid argument "{value}" for "--{name}" flag: '
                                 f'strconv.ParseBool: parsing "{value}": invalid syntax')
            values[name] = not has_value or value.lower() in ("true", "1", "t")
            i += 1
            continue
        if not has_value:
            i += 1
            if i == len(argv):
                raise UsageError(f"flag needs an argument: --{name}")
            value = argv[i]
        try:
            values[name] = {"int": int, "str": str, "duration": parse_go_duration}[kind](value)
        except ValueError:
            raise UsageError(f'invalid argument "{value}" for "--{name}" flag: '
                             f'parse error') from None
        i += 1
    return values, rest


class GoHandler(_base.QuietHandler):
    """net/http's defaults: text/plain for written text, 404 page not found."""

    server_version = "Go-http-client"

    def text(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8",
             headers: dict[str, str] | None = None) -> None:
        self.reply(status, body, content_type, headers)

    def not_found(self) -> None:
        self.text(404, "404 page not found\n", headers={"X-Content-Type-Options": "nosniff"})

    def form(self) -> dict[str, list[str]]:
        """r.FormValue's sources: the query, then a urlencoded POST body."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query,
                                      keep_blank_values=True)
        if self.command in ("POST", "PUT", "PATCH") and self.headers.get(
                "Content-Type", "").startswith("application/x-www-form-urlencoded"):
            body = urllib.parse.parse_qs(self.body().decode(errors="replace"),
                                         keep_blank_values=True)
            for key, values in body.items():
                query.setdefault(key, []).extend(values)
        return query


def first(form: dict[str, list[str]], key: str) -> str:
    return form.get(key, [""])[0]


def listen(handler: type, port: int, *, name: str, host: str | None = None,
           tls: tuple[str, str] | None = None) -> _base.ThreadingServer:
    host = host or _base.pod_ip()
    try:
        server = _base.ThreadingServer((host, port), handler)
    except OSError as err:
        go_fatal(f"listen tcp {host}:{port}: bind: {go_errno(err)}")
        raise  # not reached
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(str(_base.argument_path(tls[0])),
                                    str(_base.argument_path(tls[1])))
        except (OSError, ssl.SSLError) as err:
            go_fatal(f"{name}: tls: {err}")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def serve_in_thread(server: _base.ThreadingServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                              daemon=True)
    thread.start()
    return thread


def wait_forever() -> None:
    while True:
        signal.pause()


# ---------------------------------------------------------------- liveness

def liveness(argv: list[str]) -> int:
    flags, _ = parse_flags(argv, {"port": ("int", LIVENESS_PORT)})
    started = time.monotonic()
    healthy_s = float(os.environ.get("KUBEMU_LIVENESS_HEALTHY_S") or LIVENESS_HEALTHY_S)

    class Handler(GoHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            url = urllib.parse.urlsplit(self.path)
            elapsed_s = time.monotonic() - started
            if url.path == "/healthz":
                if elapsed_s > healthy_s:
                    self.text(500, f"error: {elapsed_s!r}")
                else:
                    self.text(200, "ok")
            elif url.path == "/started":
                self.text(200, go_duration(int(elapsed_s * 1e9)))
            elif url.path == "/redirect":
                loc = urllib.parse.parse_qs(url.query).get("loc", [""])[0]
                self.text(302, f'<a href="{loc}">Found</a>.\n\n', "text/html; charset=utf-8",
                          headers={"Location": loc})
            else:
                self.not_found()

    listen(Handler, flags["port"], name="liveness").serve_forever(poll_interval=0.5)
    return 0


# ---------------------------------------------------------------- netexec

def udp_server(address: str, port: int, ready: threading.Event) -> None:
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                             socket.SOCK_DGRAM)
        sock.bind((address, port))
    except OSError as err:
        go_fatal(f"Error occurred: failed to create listener for UDP address "
                 f"{address}:{port}:{go_errno(err)}")
        return
    go_log(f"Started UDP server on port {address} {port}")
    ready.set()
    try:
        while True:
            data, client = sock.recvfrom(UDP_PACKET_BYTES)
            text = data.decode(errors="replace").strip().lower()
            client_text = f"{client[0]}:{client[1]}"
            if text == "hostname":
                go_log("Sending udp hostName response")
                sock.sendto(_base.hostname().encode(), client)
            elif text.startswith("echo "):
                reply = text.split(" ", 1)[1]
                go_log(f"Echoing {reply} to UDP client {client_text}")
                sock.sendto(reply.encode(), client)
            elif text == "clientip":
                go_log(f"Sending clientip back to UDP client {client_text}")
                sock.sendto(client_text.encode(), client)
            elif text:
                go_log(f"Unknown UDP command received from {client_text}: {text}")
    finally:
        go_log("UDP server exited")
        ready.clear()
        sock.close()


def shell(command: str) -> dict[str, str]:
    try:
        done = subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=SHELL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": "signal: killed"}
    except OSError as err:
        return {"error": f"fork/exec /bin/sh: {go_errno(err)}"}
    out: dict[str, str] = {}
    if done.stdout:
        out["output"] = done.stdout.decode(errors="replace")
    if done.returncode > 0:
        out["error"] = f"exit status {done.returncode}"
    elif done.returncode < 0:
        out["error"] = f"signal: {signal.Signals(-done.returncode).name.lower()[3:]}"
    return out


def dial(protocol: str, host: str, port: str, request: str) -> tuple[str | None, str | None]:
    """One /dial try: (response, None) or (None, error)."""
    if protocol in ("", "http"):
        url = f"http://{host}:{port}/{request}"
        try:
            with urllib.request.urlopen(url, timeout=DIAL_TIMEOUT_S) as resp:
                return resp.read().decode(errors="replace"), None
        except urllib.error.HTTPError as err:
            return err.read().decode(errors="replace"), None
        except (OSError, urllib.error.URLError) as err:
            return None, f'Get "{url}": {getattr(err, "reason", err)}'
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(DIAL_TIMEOUT_S)
            sock.connect((host, int(port)))
            sock.send(request.encode())
            data = sock.recv(UDP_PACKET_BYTES)
    except OSError as err:
        return None, f"reading from udp connection failed. err:'{err}'"
    return data.decode(errors="replace"), None


def save_upload(handler: GoHandler) -> tuple[int, dict[str, str]]:
    length = int(handler.headers.get("Content-Length") or 0)
    if length <= 0 or length > UPLOAD_BYTES_MAX:
        return 200, {"error": "Unable to upload file."}
    body = handler.rfile.read(length)
    header = f"Content-Type: {handler.headers.get('Content-Type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    data = None
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                data = part.get_payload(decode=True)
    if data is None:
        return 200, {"error": "Unable to upload file."}
    uploads = _base.container_path("/uploads")
    try:
        fd, path = tempfile.mkstemp(prefix="upload", dir=uploads)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o700)
    except OSError:
        return 200, {"error": "Unable to open file for write"}
    return 201, {"output": "/uploads/" + os.path.basename(path)}


def netexec(argv: list[str]) -> int:
    flags, _ = parse_flags(argv, {
        "http-port": ("int", 8080), "udp-port": ("int", 8081), "sctp-port": ("int", -1),
        "tls-cert-file": ("str", ""), "tls-private-key-file": ("str", ""),
        "http-override": ("str", ""), "udp-listen-addresses": ("str", "")})
    udp_ready = threading.Event()
    http_port = flags["http-port"]
    server_box: list[_base.ThreadingServer] = []

    class Handler(GoHandler):
        routes = {"/clientip": "clientip", "/serverport": "serverport", "/hostname": "hostname",
                  "/hostName": "hostname", "/echo": "echo", "/exit": "exit",
                  "/healthz": "healthz", "/redirect": "redirect", "/shell": "shell",
                  "/shutdown": "shutdown", "/dial": "dial", "/upload": "upload"}

        def do_GET(self):  # noqa: N802 - http.server's naming
            if flags["http-override"]:
                self.path = flags["http-override"]
            route = self.routes.get(urllib.parse.urlsplit(self.path).path)
            if route is None:  # the mux sends everything else to the root handler
                go_log("GET /")
                self.text(200, f"NOW: {go_now()}")
                return
            getattr(self, "route_" + route)(self.form())

        do_POST = do_PUT = do_DELETE = do_GET

        def route_clientip(self, form):
            go_log("GET /clientip")
            self.text(200, f"{self.client_address[0]}:{self.client_address[1]}")

        def route_serverport(self, form):
            go_log("GET /serverport")
            self.text(200, str(http_port))

        def route_hostname(self, form):
            go_log(f"GET {urllib.parse.urlsplit(self.path).path}")
            self.text(200, _base.hostname())

        def route_echo(self, form):
            msg, code = first(form, "msg"), first(form, "code")
            go_log(f"GET /echo?msg={msg}&code={code}")
            status = 200
            if code:
                try:
                    status = int(code)
                except ValueError:
                    return self.text(200, f"argument 'code' must be an integer or empty, "
                                          f"got {json.dumps(code)}\n")
            self.text(status, msg)

        def route_exit(self, form):
            code_text, timeout_text = first(form, "code"), first(form, "timeout")
            wait_text = first(form, "wait")
            go_log(f"GET /exit?code={code_text}&timeout={timeout_text}&wait={wait_text}")
            try:
                timeout_s = parse_go_duration(timeout_text) if timeout_text else 0.0
                wait_s = parse_go_duration(wait_text) if wait_text else 0.0
                code = int(code_text) if code_text else 0
            except ValueError:
                return self.text(200, "argument must be a valid golang duration or "
                                      "integer, or empty\n")
            go_log(f"Will begin shutdown in {go_duration(int(wait_s * 1e9))}, allowing "
                   f"{go_duration(int(timeout_s * 1e9))} for connections to close, then "
                   f"will exit with {code}")
            time.sleep(max(wait_s, 0.0))
            if timeout_s <= 0:
                os._exit(code)  # as os.Exit in the handler: no answer is written
            self.text(200, "")
            self.wfile.flush()

            def shut_down():
                server_box[0].shutdown()
                go_log("Graceful shutdown completed with: <nil>")
                os._exit(code)
            threading.Thread(target=shut_down, daemon=True).start()

        def route_healthz(self, form):
            go_log("GET /healthz")
            self.text(200 if udp_ready.is_set() else 412, "")

        def route_redirect(self, form):
            location, code = first(form, "location"), first(form, "code")
            go_log(f"{self.command} /redirect?msg={location}&code={code}")
            try:
                status = int(code) if code else 302
            except ValueError:
                return self.text(200, f"argument 'code' must be an integer or empty, "
                                      f"got {json.dumps(code)}\n")
            self.text(status, f'<a href="{location}">Found</a>.\n\n', "text/html; charset=utf-8",
                      headers={"Location": location})

        def route_shell(self, form):
            command = first(form, "shellCommand") or first(form, "cmd")
            go_log(f"GET /shell?cmd={command}")
            output = shell(command)
            go_log("Output: map[" + " ".join(f"{k}:{v}" for k, v in sorted(output.items()))
                   + "]")
            self.text(200, go_json(output))

        def route_shutdown(self, form):
            go_log("GET /shutdown")
            os._exit(0)

        def route_dial(self, form):
            host, port = first(form, "host"), first(form, "port")
            request, protocol = first(form, "request"), first(form, "protocol").lower()
            tries_text = first(form, "tries")
            go_log(f"GET /dial?host={host}&protocol={protocol}&port={port}"
                   f"&request={request}&tries={tries_text}")
            try:
                tries = int(tries_text) if tries_text else 1
            except ValueError:
                return self.text(400, f"tries parameter is invalid. strconv.Atoi: parsing "
                                      f"{json.dumps(tries_text)}: invalid syntax\n")
            if not request:
                return self.text(400, "request parameter not specified. <nil>\n")
            if protocol not in ("", "http", "udp"):
                return self.text(400, f"unsupported protocol. {protocol}\n")
            responses, errors = [], []
            for _ in range(max(tries, 0)):
                response, error = dial(protocol, host, port, request)
                if error is None:
                    responses.append(response)
                else:
                    errors.append(error)
            output = {}
            if responses:
                output["responses"] = responses
            if errors:
                output["errors"] = errors
            self.text(200, go_json(output))

        def route_upload(self, form):
            go_log("GET /upload")
            status, result = save_upload(self)
            self.text(status, go_json(result))

    if flags["udp-port"] != -1:
        addresses = [a for a in flags["udp-listen-addresses"].split(",") if a] or [
            _base.pod_ip()]
        for address in sorted(set(addresses)):
            threading.Thread(target=udp_server, args=(address, flags["udp-port"], udp_ready),
                             daemon=True).start()
    tls = None
    if flags["tls-cert-file"]:
        tls = (flags["tls-cert-file"], flags["tls-private-key-file"])
    server = listen(Handler, http_port, name="netexec", tls=tls)
    server_box.append(server)
    go_log(f"Started HTTP server on port {http_port}")
    server.serve_forever(poll_interval=0.5)
    wait_forever()  # /exit with a timeout: the shutdown thread ends the process
    return 0


# ---------------------------------------------------------------- serve-hostname

def serve_hostname(argv: list[str]) -> int:
    flags, _ = parse_flags(argv, {"tcp": ("bool", False), "udp": ("bool", False),
                                  "http": ("bool", True), "close": ("bool", False),
                                  "port": ("int", 9376)})
    if flags["http"] and (flags["tcp"] or flags["udp"]):
        go_fatal("Can't server TCP/UDP mode and HTTP mode at the same time")
    name = _base.hostname()
    host, port = _base.pod_ip(), flags["port"]
    # SIGTERM is waited for (sigwait below), blocked in every thread until then.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    if flags["tcp"]:
        try:
            listener = socket.create_server((host, port), reuse_port=False)
        except OSError as err:
            go_fatal(f"Error from net.Listen(): listen tcp {host}:{port}: bind: {go_errno(err)}")

        def serve_tcp():
            while True:
                conn, client = listener.accept()
                go_log(f"TCP request from {client[0]}:{client[1]}")
                with conn:
                    conn.sendall(name.encode())
        threading.Thread(target=serve_tcp, daemon=True).start()
    if flags["udp"]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as err:
            go_fatal(f"Error from ListenUDP(): listen udp {host}:{port}: bind: {go_errno(err)}")

        def serve_udp():
            while True:
                _data, client = sock.recvfrom(16)
                go_log(f"UDP request from {client[0]}:{client[1]}")
                sock.sendto(name.encode(), client)
        threading.Thread(target=serve_udp, daemon=True).start()
    if flags["http"]:
        close = flags["close"]

        class Handler(GoHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                go_log(f"HTTP request from {self.client_address[0]}:{self.client_address[1]}")
                if close:
                    self.close_connection = True
                self.text(200, name, headers={"Connection": "close"} if close else None)

            do_POST = do_GET

        serve_in_thread(listen(Handler, port, name="serve-hostname"))
    go_log(f"Serving on port {port}.")
    signal.sigwait({signal.SIGTERM})
    go_log("Shutting down after receiving signal: terminated.")
    go_log("Awaiting pod deletion.")
    time.sleep(SERVE_HOSTNAME_DRAIN_S)
    return 0


# ---------------------------------------------------------------- test-webserver

def test_webserver(argv: list[str]) -> int:
    flags, _ = parse_flags(argv, {"port": ("int", 80)})
    cors = {"Cache-Control": "private", "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "DNT,X-Mx-ReqToken,Keep-Alive,User-Agent,"
                                            "X-Requested-With,Cache-Control,Content-Type"}

    class Handler(GoHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path) or "/"
            target = _base.container_path(path)
            if path.endswith("/index.html"):
                return self.text(301, "", headers={**cors, "Location": "./"})
            if target.is_dir():
                if not path.endswith("/"):
                    return self.text(301, "", headers={**cors, "Location":
                                                       path.rsplit("/", 1)[-1] + "/"})
                if (target / "index.html").is_file():
                    target = target / "index.html"
                else:
                    try:
                        names = sorted(p.name + ("/" if p.is_dir() else "")
                                       for p in target.iterdir())
                    except OSError:
                        return self.text(500, "Error reading directory\n", headers=cors)
                    links = "".join(f'<a href="{urllib.parse.quote(n)}">{_html(n)}</a>\n'
                                    for n in names)
                    return self.text(200, "<!doctype html>\n<meta name=\"viewport\" "
                                          "content=\"width=device-width\">\n"
                                          f"<pre>\n{links}</pre>\n", "text/html; charset=utf-8",
                                     headers=cors)
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                return self.text(404, "404 page not found\n", headers=cors)
            except OSError:
                return self.text(403, "403 Forbidden\n", headers=cors)
            kind = "text/html; charset=utf-8" if target.suffix in (".html", ".htm") else (
                "text/plain; charset=utf-8" if data[:512].isascii() else
                "application/octet-stream")
            self.reply(200, data, kind, headers=cors)

        do_HEAD = do_GET

    listen(Handler, flags["port"], name="test-webserver").serve_forever(poll_interval=0.5)
    return 0


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&#34;").replace("'", "&#39;")


# ---------------------------------------------------------------- small commands

def pause(argv: list[str]) -> int:
    print("Paused", flush=True)
    codes = {signal.SIGINT: 1, signal.SIGTERM: 2}

    def stop(signum, _frame):
        os._exit(codes[signum])
    for sig in codes:
        signal.signal(sig, stop)
    wait_forever()
    return 0


def entrypoint_tester(argv: list[str], argv0: str) -> int:
    print("[" + " ".join([argv0, "entrypoint-tester", *argv]) + "]", flush=True)
    return 0


def mounttest(argv: list[str]) -> int:
    names = ("fs_type", "file_mode", "file_perm", "file_owner", "new_file_0644",
             "new_file_0666", "new_file_0660", "new_file_0777", "file_content",
             "file_content_in_loop")
    spec = {name: ("str", "") for name in names}
    spec.update({"retry_time": ("int", 180), "break_on_expected_content": ("bool", True)})
    flags, _ = parse_flags(argv, spec)
    os.umask(0)
    initial = "mount-tester new file\n"
    errors = 0

    def where(path: str):
        return _base.argument_path(path)

    def read_content(path: str) -> bool:
        try:
            content = where(path).read_text(errors="replace")
        except OSError as err:
            print(f'error reading file content for "{path}": open {path}: {go_errno(err)}')
            return False
        print(f'content of file "{path}": {content}')
        return True

    if flags["fs_type"]:
        try:
            print(f'mount type of "{flags["fs_type"]}": {fs_type(where(flags["fs_type"]))}')
        except OSError as err:
            print(f'error from statfs("{flags["fs_type"]}"): {go_errno(err)}')
            errors += 1
    for perm in (0o644, 0o666, 0o660, 0o777):
        path = flags[f"new_file_0{perm:o}"]
        if not path:
            continue
        try:
            fd = os.open(where(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, perm)
            with os.fdopen(fd, "w") as f:
                f.write(initial)
        except OSError as err:
            print(f'error writing new file "{path}": open {path}: {go_errno(err)}')
            errors += 1
            continue
        errors += not read_content(path)
    for flag, show in (("file_mode", lambda st: go_file_mode(st.st_mode)),
                       ("file_perm", lambda st: go_perm(st.st_mode))):
        path = flags[flag]
        if not path:
            continue
        try:
            st = os.stat(where(path))
        except OSError as err:
            print(f'error from Stat("{path}"): stat {path}: {go_errno(err)}')
            errors += 1
            continue
        label = "mode of file" if flag == "file_mode" else "perms of file"
        print(f'{label} "{path}": {show(st)}')
    if flags["file_owner"]:
        path = flags["file_owner"]
        try:
            st = os.stat(where(path))
            print(f'owner UID of "{path}": {st.st_uid}')
            print(f'owner GID of "{path}": {st.st_gid}')
        except OSError as err:
            print(f'error from stat("{path}"): {go_errno(err)}')
            errors += 1
    if flags["file_content"]:
        errors += not read_content(flags["file_content"])
    if flags["file_content_in_loop"]:
        path = flags["file_content_in_loop"]
        deadline = time.monotonic() + flags["retry_time"]
        ok = False
        while time.monotonic() < deadline:
            try:
                content = where(path).read_text(errors="replace")
            except OSError as err:
                print(f"Error reading file {path}: open {path}: {go_errno(err)}, retrying",
                      flush=True)
                ok = False
                time.sleep(2)
                continue
            ok = True
            print(f'content of file "{path}": {content}', flush=True)
            if not flags["break_on_expected_content"]:
                time.sleep(2)
                continue
            if content == initial:
                break
            print(f"Unexpected content. Expected: {initial}. Retrying", end="", flush=True)
            time.sleep(2)
        errors += not ok
    sys.stdout.flush()
    return 1 if errors else 0


def fs_type(path) -> str:
    """statfs(2)'s f_type: "tmpfs" or the magic number in decimal."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on x86_64
    if libc.statfs(os.fsencode(str(path)), buf) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    magic = int.from_bytes(buf.raw[:ctypes.sizeof(ctypes.c_long)], sys.byteorder)
    return "tmpfs" if magic == TMPFS_MAGIC else str(magic)


def resolv_conf_field(field: str) -> list[str] | None:
    try:
        lines = _base.container_path("/etc/resolv.conf").read_text().split("\n")
    except OSError:
        return None
    for line in lines:
        if line.startswith(field):
            return line.split(" ")[1:]
    return None


def dns_list(field: str) -> int:
    values = resolv_conf_field(field)
    if values is None:
        sys.stderr.write("panic: Could not find DNS search list!\n\ngoroutine 1 [running]:\n")
        return 2
    print(",".join(values))
    return 0


def etc_hosts(argv: list[str]) -> int:
    try:
        print(_base.container_path("/etc/hosts").read_text())
    except OSError as err:
        sys.stderr.write(f"panic: open /etc/hosts: {go_errno(err)}\n\ngoroutine 1 [running]:\n")
        return 2
    return 0


def connect(argv: list[str]) -> int:
    flags, rest = parse_flags(argv, {"timeout": ("duration", 0.0), "protocol": ("str", "tcp"),
                                     "udp-data": ("str", "hostname"),
                                     "sctp-data": ("str", "hostname")})
    if len(rest) != 1:
        raise UsageError(f"accepts 1 arg(s), received {len(rest)}")
    dest = rest[0]
    host, sep, port = dest.rpartition(":")
    if not sep or not port:
        sys.stderr.write(f"UNKNOWN: address {dest}: missing port in address\n")
        return 1
    host = host.strip("[]")
    protocol = flags["protocol"]
    if protocol not in ("", "tcp", "udp"):
        sys.stderr.write("Unsupported protocol\n")
        return 1
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    try:
        infos = socket.getaddrinfo(host, int(port), type=kind)
    except (socket.gaierror, ValueError) as err:
        sys.stderr.write(f"DNS: lookup {host}: {err}\n")
        return 1
    timeout_s = flags["timeout"] if flags["timeout"] > 0 else CONNECT_TIMEOUT_S_MAX
    family, _, _, _, address = infos[0]
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(address)
            if kind == socket.SOCK_DGRAM:
                sock.send((flags["udp-data"] + "\n").encode())
                if not sock.recv(1024):
                    sys.stderr.write("OTHER: No data received from the server.\n")
                    return 1
        except TimeoutError:
            sys.stderr.write("TIMEOUT\n")
            return 1
        except ConnectionRefusedError:
            sys.stderr.write("REFUSED\n")
            return 1
        except OSError as err:
            sys.stderr.write(f"OTHER: dial {protocol or 'tcp'} {dest}: {go_errno(err)}\n")
            return 1
    return 0


def porter(argv: list[str]) -> int:
    flags, _ = parse_flags(argv, {"json-response": ("bool", False)})
    started = 0
    for key, value in os.environ.items():
        for prefix, kind in (("SERVE_PORT_", "tcp"), ("SERVE_TCP_PORT_", "tcp"),
                             ("SERVE_UDP_PORT_", "udp"), ("SERVE_TLS_PORT_", "tls")):
            if not key.startswith(prefix):
                continue
            port = key[len(prefix):]
            if kind == "tls":
                go_log(f'tls server on port "{port}" with certFile="localhost.crt", '
                       f'keyFile="localhost.key" failed: open localhost.crt: '
                       f'no such file or directory')
                continue
            try:
                port_number = int(port)
            except ValueError:
                go_log(f'server on port "{port}" failed: listen tcp: address {port}: '
                       f'invalid port')
                continue
            started += 1
            if kind == "udp":
                threading.Thread(target=porter_udp, args=(port_number, value),
                                 daemon=True).start()
                continue
            serve_in_thread(listen(porter_handler(value, flags["json-response"]), port_number,
                                   name="porter"))
    wait_forever()
    return 0


def porter_handler(value: str, json_response: bool) -> type:
    class Handler(GoHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            if json_response:
                self.text(200, go_json({"Body": value, "Method": self.command}),
                          "application/json")
            else:
                self.text(200, value)

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET
    return Handler


def porter_udp(port: int, value: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((_base.pod_ip(), port))
    except OSError as err:
        go_fatal(f"UDP: failed to listen on port {port}: {go_errno(err)}")
    go_log(f"Started UDP server on port {port}")
    while True:
        _data, client = sock.recvfrom(16)
        sock.sendto(value.encode(), client)


# ---------------------------------------------------------------- main

COMMANDS = {
    "liveness": liveness, "netexec": netexec, "serve-hostname": serve_hostname,
    "test-webserver": test_webserver, "pause": pause, "mounttest": mounttest,
    "dns-suffix": lambda argv: dns_list("search"),
    "dns-server-list": lambda argv: dns_list("nameserver"),
    "etc-hosts": etc_hosts, "connect": connect, "porter": porter,
}


def usage() -> str:
    names = sorted([*COMMANDS, "entrypoint-tester", "help"])
    lines = "\n".join(f"  {name}" for name in names)
    return (f"Usage:\n  {ROOT_COMMAND} [command]\n\nAvailable Commands:\n{lines}\n\n"
            f"Flags:\n  -h, --help   help for {ROOT_COMMAND}\n\n"
            f'Use "{ROOT_COMMAND} [command] --help" for more information about a command.\n')


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Go program dies of signals it ignores
    argv0 = DEFAULT_ARGV0
    if args and args[0].startswith("--kubemu-argv0="):
        argv0 = args.pop(0).split("=", 1)[1]
    if not args or args[0] in ("help", "-h", "--help"):
        sys.stdout.write(usage())
        return 0
    command, rest = args[0], args[1:]
    try:
        if command == "entrypoint-tester":
            return entrypoint_tester(rest, argv0)
        if command not in COMMANDS:
            raise UsageError(f'unknown command "{command}" for "{ROOT_COMMAND}"\n'
                             f"Run '{ROOT_COMMAND} --help' for usage.")
        return COMMANDS[command](rest)
    except UsageError as err:
        sys.stderr.write(f"Error: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
