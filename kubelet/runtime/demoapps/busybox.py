"""Busybox applets that a host often lacks, for the busybox-like images:
`busybox.py [--kubemu-style=STYLE] APPLET [ARGS...]`, a multi-call program
as busybox is (an applet it does not have runs the host's program of that
name). Messages, exit statuses and flags are busybox's; STYLE picks the
output of an older release or another image's tool: `busybox` (1.36, the
default), `busybox-1.28` (busybox:1.28, the image the Kubernetes DNS docs
use), `bind` (bind-tools' nslookup, in agnhost and the dnsutils images).

- nslookup [-type=a|aaaa] HOST [SERVER]: with no SERVER, names resolve
  through the system resolver (getaddrinfo: /etc/hosts, /etc/resolv.conf's
  nameservers and search list), and the Server line shows the resolver's
  first nameserver; with a SERVER, A and AAAA queries go to it over UDP
  port 53 (`SERVER:PORT` to change the port) and the name is asked as given.
  Exit 1 when the name does not resolve.
- wget [-q] [-O FILE|-] [--spider] [-T SEC] [-S] [-U AGENT] [--header H]
  [--post-data DATA] [-P DIR] [-c] URL...: HTTP and HTTPS (certificates not
  checked, as busybox's), redirects followed, $http_proxy honoured;
  "Connecting to ..." and progress lines on stderr unless -q; an HTTP error
  is "wget: server returned error: HTTP/1.1 404 Not Found" and exit 1.
- nc [-l] [-k] [-p PORT] [-s ADDR] [-w SEC] [-z] [-u] [-v] [-n] [-e PROG]
  [HOST] [PORT]: connects (or listens) and copies stdin to the peer and the
  peer to stdout; stdin's end shuts the sending side down and nc exits when
  the peer closes; -z only checks the port (exit 0 open, 1 closed); -e runs
  PROG on the connection. Listening binds $POD_IP when no -s is given (each
  pod has its own address; busybox binds every address).
- ping [-c N] [-i SEC] [-W SEC] [-w SEC] [-s SIZE] [-q] HOST: ICMP echo
  through an unprivileged ICMP socket where net.ipv4.ping_group_range allows
  it, else a raw socket where the process may open one. Where neither is
  allowed it says so on stderr and falls back to a TCP round trip: a connect
  to port 7 of the host, answered by a SYN-ACK or a RST, timed as the reply
  (ttl shown as 64); on loopback that proves what ping does, that the
  address answers. Busybox's lines and statistics; exit 0 when a reply came.
Paths given to the applets are the container's (`_base.argument_path`).
"""
from __future__ import annotations

import http.client
import os
import random
import select
import shutil
import signal
import socket
import ssl
import struct
import sys
import time
import urllib.parse

try:
    from . import _base
except ImportError:  # run as a script: this directory is on sys.path
    import _base

VERSION = "1.36.1"
STYLES = ("busybox", "busybox-1.28", "bind")
RESOLV_CONF = "/etc/resolv.conf"   # the system resolver's, as libc reads it
DNS_TIMEOUT_S = 5.0
DNS_TRIES = 2
REVERSE_LOOKUP_TIMEOUT_S = 2.0
WGET_REDIRECTS_MAX = 20
WGET_CHUNK_BYTES = 64 * 1024
NC_CHUNK_BYTES = 64 * 1024
NC_CONNECT_TIMEOUT_S_MAX = 120.0
PING_WAIT_S = 10.0
PING_TCP_PORT = 7
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
IP_RECVTTL = 12
IP_TTL_CMSG = 2


class AppletError(Exception):
    """`applet: message` on stderr and exit 1, as bb_error_msg_and_die."""


def fail(applet: str, message: str) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"{applet}: {message}\n")
    sys.stderr.flush()
    return 1


def strerror(err: OSError) -> str:
    return err.strerror or str(err)


def resolve(host: str, family: int = socket.AF_UNSPEC) -> str:
    """The first address of a name, numeric hosts as they are; AppletError
    "bad address" as busybox's xhost2sockaddr."""
    try:
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AppletError(f"bad address '{host}'") from None
    return infos[0][4][0]


# ---------------------------------------------------------------- nslookup

def system_nameserver() -> str:
    try:
        for line in open(RESOLV_CONF, encoding="utf-8", errors="replace"):
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                return fields[1]
    except OSError:
        pass
    return "127.0.0.1"


def reverse_name(address: str) -> str:
    """The PTR name of an address, bounded in time (a dead resolver must not
    hang the command); '' when there is none."""
    import threading

    found: list[str] = []

    def lookup():
        try:
            found.append(socket.getnameinfo((address, 0), socket.NI_NAMEREQD)[0])
        except (OSError, UnicodeError):
            pass
    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(REVERSE_LOOKUP_TIMEOUT_S)
    return found[0] if found else ""


def dns_query(server: str, port: int, name: str, qtype: int) -> tuple[int, list, bool]:
    """One query to a server: (rcode, [(type, name, value)], authoritative)."""
    query_id = random.randrange(1 << 16)
    labels = b"".join(bytes([len(p)]) + p.encode("idna") for p in name.rstrip(".").split(".")
                      if p)
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack(">HH", qtype, 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    last_error: OSError | None = None
    for _ in range(DNS_TRIES):
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(DNS_TIMEOUT_S)
            try:
                sock.sendto(packet, (server, port))
                while True:
                    data, _ = sock.recvfrom(4096)
                    if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == query_id:
                        return parse_dns_answer(data)
            except OSError as err:
                last_error = err
    raise last_error or TimeoutError()


def read_dns_name(data: bytes, offset: int) -> tuple[str, int]:
    labels, end, jumps = [], None, 0
    while True:
        length = data[offset]
        if length >= 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("DNS name loops")
            continue
        if length == 0:
            return ".".join(labels), (end if end is not None else offset + 1)
        labels.append(data[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def parse_dns_answer(data: bytes) -> tuple[int, list, bool]:
    _id, flags, qdcount, ancount = struct.unpack(">HHHH", data[:8])
    offset = 12
    for _ in range(qdcount):
        _name, offset = read_dns_name(data, offset)
        offset += 4
    records = []
    for _ in range(ancount):
        name, offset = read_dns_name(data, offset)
        rtype, _cls, _ttl, length = struct.unpack(">HHIH", data[offset:offset + 10])
        offset += 10
        rdata = data[offset:offset + length]
        if rtype == 1 and length == 4:
            records.append(("A", name, socket.inet_ntop(socket.AF_INET, rdata)))
        elif rtype == 28 and length == 16:
            records.append(("AAAA", name, socket.inet_ntop(socket.AF_INET6, rdata)))
        elif rtype == 5:
            records.append(("CNAME", name, read_dns_name(data, offset)[0]))
        offset += length
    return flags & 0xF, records, bool(flags & 0x0400)


RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def nslookup(args: list[str], style: str) -> int:
    qtypes = ["A", "AAAA"]
    positional = []
    for arg in args:
        if arg.startswith("-type=") or arg.startswith("-query=") or arg.startswith("-q="):
            qtypes = [arg.split("=", 1)[1].upper()]
        elif arg.startswith("-") and len(arg) > 1:
            continue  # -debug, -port=... and other options: accepted
        else:
            positional.append(arg)
    if not positional or len(positional) > 2:
        sys.stderr.write("Usage: nslookup [-type=QUERY_TYPE] [-debug] HOST [DNS_SERVER]\n\n"
                         "Query DNS about HOST\n")
        return 1
    name = positional[0]
    server_arg = positional[1] if len(positional) == 2 else ""
    server, port = system_nameserver(), 53
    if server_arg:
        host, sep, port_text = server_arg.rpartition(":")
        if sep and port_text.isdigit() and server_arg.count(":") == 1:
            server_arg, port = host, int(port_text)
        try:
            server = resolve(server_arg)
        except AppletError:
            return fail("nslookup", f"can't resolve '{server_arg}'")

    if style == "busybox-1.28":
        return nslookup_legacy(name, server, bool(server_arg), port)

    sep = "#" if style == "bind" else ":"
    print(f"Server:\t\t{server}\nAddress:\t{server}{sep}{port}\n")
    if server_arg:
        answers, failures = {}, {}
        for qtype in qtypes:
            code = {"A": 1, "AAAA": 28}.get(qtype)
            if code is None:
                continue
            try:
                rcode, records, authoritative = dns_query(server, port, name, code)
            except (OSError, ValueError):
                print(";; connection timed out; no servers could be reached\n", flush=True)
                return 1
            if rcode:
                failures[qtype] = RCODES.get(rcode, str(rcode))
            answers[qtype] = (records, authoritative)
    else:
        answers, failures = system_answers(name, qtypes)
    found = False
    for qtype in qtypes:
        if qtype in failures:
            print(f"** server can't find {name}: {failures[qtype]}\n")
            continue
        records, authoritative = answers.get(qtype, ([], True))
        addresses = [r for r in records if r[0] in ("A", "AAAA")]
        if not addresses:
            if style == "bind" and qtype == qtypes[0] and len(qtypes) == 1:
                print(f"*** Can't find {name}: No answer\n")
            continue
        found = True
        if not authoritative:
            print("Non-authoritative answer:")
        for record in records:
            if record[0] == "CNAME":
                print(f"{record[1]}\tcanonical name = {record[2]}")
        for record in addresses:
            print(f"Name:\t{record[1]}\nAddress: {record[2]}")
        print()
    sys.stdout.flush()
    return 0 if found else 1


def system_answers(name: str, qtypes: list[str]) -> tuple[dict, dict]:
    answers: dict = {}
    failures: dict = {}
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_CANONNAME)
    except socket.gaierror as err:
        reason = "SERVFAIL" if err.errno == socket.EAI_AGAIN else "NXDOMAIN"
        return answers, {qtype: reason for qtype in qtypes}
    except UnicodeError:
        return answers, {qtype: "NXDOMAIN" for qtype in qtypes}
    canonical = next((info[3] for info in infos if info[3]), name)
    for qtype, family in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)):
        records = []
        for info in infos:
            if info[0] == family and info[4][0] not in [r[2] for r in records]:
                records.append((qtype, canonical, info[4][0]))
        answers[qtype] = (records, True)  # the resolver does not say: shown as an answer
    if not any(answers[q][0] for q in qtypes if q in answers):
        failures = {qtype: "NXDOMAIN" for qtype in qtypes}
    return answers, failures


def nslookup_legacy(name: str, server: str, direct: bool, port: int) -> int:
    """busybox 1.28's nslookup: getaddrinfo and reverse names, `%-10s` headers."""
    server_name = reverse_name(server)
    print(f"{'Server:':<10} {server}")
    print(f"Address 1: {server}" + (f" {server_name}" if server_name else "") + "\n")
    addresses: list[str] = []
    if direct:
        for code in (1, 28):
            try:
                _rcode, records, _auth = dns_query(server, port, name, code)
            except (OSError, ValueError):
                break
            addresses += [r[2] for r in records if r[0] in ("A", "AAAA")]
    else:
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(info[4][0] for info in infos))
        except (socket.gaierror, UnicodeError):
            addresses = []
    if not addresses:
        return fail("nslookup", f"can't resolve '{name}'")
    print(f"{'Name:':<10} {name}")
    for number, address in enumerate(addresses, 1):
        reverse = reverse_name(address)
        print(f"Address {number}: {address}" + (f" {reverse}" if reverse else ""))
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------- wget

def take_options(args: list[str], with_value: set[str], flags: set[str],
                 applet: str) -> tuple[dict, list[str]]:
    """getopt_long as busybox uses it: -abc bundles, -Ovalue, --name=value."""
    options: dict[str, object] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i + 1:]
            break
        if arg.startswith("--") and len(arg) > 2:
            name, has_value, value = arg[2:].partition("=")
            key = "--" + name
            if key in with_value:
                if not has_value:
                    i += 1
                    if i == len(args):
                        raise AppletError(f"option '{key}' requires an argument")
                    value = args[i]
                options[key] = value
                if key == "--header":
                    options.setdefault("headers", []).append(value)  # type: ignore[union-attr]
            elif key in flags:
                options[key] = True
            else:
                raise AppletError(f"unrecognized option '{arg}'")
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                key = "-" + arg[j]
                if key in with_value:
                    value = arg[j + 1:]
                    if not value:
                        i += 1
                        if i == len(args):
                            raise AppletError(f"option requires an argument -- '{arg[j]}'")
                        value = args[i]
                    options[key] = value
                    break
                if key in flags:
                    options[key] = True
                    j += 1
                    continue
                raise AppletError(f"invalid option -- '{arg[j]}'")
        else:
            rest.append(arg)
        i += 1
    return options, rest


def progress_line(name: str, size: int, total: int | None) -> str:
    percent = 100 if not total else min(100, size * 100 // total)
    bar = "*" * (32 * percent // 100)
    shown = size if size < 100_000 else f"{size // 1024}k"
    return f"{name[:20]:<20} {percent:3d}% |{bar:<32}| {shown:>5}  0:00:00 ETA"


def wget(args: list[str], style: str) -> int:
    legacy = style == "busybox-1.28"
    try:
        options, urls = take_options(
            args, {"-O", "-o", "-T", "-U", "-P", "-Y", "--header", "--post-data",
                   "--post-file", "--user-agent", "--output-document", "--timeout"},
            {"-q", "-S", "-c", "--spider", "--quiet", "--no-check-certificate",
             "--server-response", "--continue", "-s"}, "wget")
    except AppletError as err:
        return fail("wget", str(err))
    if not urls:
        sys.stderr.write("Usage: wget [-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR]\n"
                         "\t[--post-data STR | --post-file FILE] [-Y on/off]\n"
                         "\t[-P DIR] [-U AGENT] [-T SEC] URL...\n")
        return 1
    quiet = bool(options.get("-q") or options.get("--quiet"))
    spider = bool(options.get("--spider") or options.get("-s"))
    output = options.get("-O") or options.get("--output-document")
    timeout_s = float(options.get("-T") or options.get("--timeout") or 900)
    agent = options.get("-U") or options.get("--user-agent") or "Wget"
    show_headers = bool(options.get("-S") or options.get("--server-response"))
    post = options.get("--post-data")
    if options.get("--post-file"):
        try:
            post = _base.argument_path(str(options["--post-file"])).read_bytes()
        except OSError as err:
            return fail("wget", f"can't open '{options['--post-file']}': {strerror(err)}")
    use_proxy = str(options.get("-Y", "on")).lower() != "off"
    for url in urls:
        try:
            status = wget_one(url, output=str(output) if output else None, quiet=quiet,
                              spider=spider, timeout_s=timeout_s, agent=str(agent),
                              headers=list(options.get("headers", [])),  # type: ignore[arg-type]
                              post=post, directory=str(options.get("-P") or ""),
                              show_headers=show_headers, use_proxy=use_proxy, legacy=legacy,
                              keep=bool(options.get("-c") or options.get("--continue")))
        except AppletError as err:
            return fail("wget", str(err))
        if status:
            return status
    return 0


def wget_one(url: str, *, output: str | None, quiet: bool, spider: bool, timeout_s: float,
             agent: str, headers: list[str], post, directory: str, show_headers: bool,
             use_proxy: bool, legacy: bool, keep: bool) -> int:
    if "://" not in url:
        url = "http://" + url
    for _ in range(WGET_REDIRECTS_MAX):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise AppletError(f"not an http or ftp url: {url}")
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        proxy = os.environ.get("http_proxy") if parts.scheme == "http" and use_proxy else None
        target_host, target_port = host, port
        if proxy:
            proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
            target_host, target_port = proxy_parts.hostname or "", proxy_parts.port or 80
        address = resolve(target_host)
        if not quiet:
            shown_host = parts.netloc.rpartition("@")[2] if not proxy else \
                f"{target_host}:{target_port}"
            address_text = f"[{address}]" if ":" in address else address
            sys.stderr.write(f"Connecting to {shown_host} ({address_text}:{target_port})\n")
            if parts.scheme == "https":
                sys.stderr.write("wget: note: TLS certificate validation not implemented\n")
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(address, target_port, timeout=timeout_s,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(address, target_port, timeout=timeout_s)
        path = url if proxy else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request_headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": agent,
                           "Connection": "close"}
        for header in headers:
            key, _, value = header.partition(":")
            request_headers[key.strip()] = value.strip()
        body = post.encode() if isinstance(post, str) else post
        if body is not None:
            request_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            conn.request("POST" if body is not None else ("HEAD" if spider else "GET"),
                         path, body=body, headers=request_headers)
            response = conn.getresponse()
        except TimeoutError:
            raise AppletError("download timed out") from None
        except ConnectionRefusedError as err:
            raise AppletError(f"can't connect to remote host ({address}): "
                              f"{strerror(err)}") from None
        except OSError as err:
            raise AppletError(f"can't connect to remote host ({address}): "
                              f"{strerror(err)}") from None
        if show_headers:
            sys.stderr.write(f"  HTTP/1.1 {response.status} {response.reason}\n")
            for key, value in response.getheaders():
                sys.stderr.write(f"  {key}: {value}\n")
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            url = urllib.parse.urljoin(url, response.getheader("Location"))
            conn.close()
            continue
        if response.status >= 300:
            conn.close()
            raise AppletError(f"server returned error: HTTP/1.1 {response.status} "
                              f"{response.reason}")
        if spider:
            conn.close()
            if not quiet and not legacy:
                sys.stderr.write("remote file exists\n")
            return 0
        return wget_save(response, conn, parts, output=output, quiet=quiet,
                         directory=directory, legacy=legacy, keep=keep)
    raise AppletError("too many redirections")


def wget_save(response, conn, parts, *, output: str | None, quiet: bool, directory: str,
              legacy: bool, keep: bool) -> int:
    to_stdout = output == "-"
    name = output or (parts.path.rstrip("/").rsplit("/", 1)[-1] if
                      parts.path.rstrip("/") else "") or "index.html"
    if not output and directory:
        name = f"{directory.rstrip('/')}/{name}"
    if to_stdout:
        sink = sys.stdout.buffer
        if not quiet and not legacy:
            sys.stderr.write("writing to stdout\n")
    else:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        if not output and not keep:
            flags |= os.O_EXCL   # busybox does not overwrite the file it names itself
        try:
            sink = os.fdopen(os.open(_base.argument_path(name), flags, 0o666), "wb")
        except OSError as err:
            conn.close()
            raise AppletError(f"can't open '{name}': {strerror(err)}") from None
        if not quiet and not legacy:
            sys.stderr.write(f"saving to '{name}'\n")
    total = response.getheader("Content-Length")
    size = 0
    try:
        while True:
            data = response.read(WGET_CHUNK_BYTES)
            if not data:
                break
            sink.write(data)
            size += len(data)
        sink.flush()
    except TimeoutError:
        raise AppletError("download timed out") from None
    finally:
        conn.close()
        if not to_stdout:
            sink.close()
    if not quiet:
        shown = "-" if to_stdout else os.path.basename(name)
        sys.stderr.write(progress_line(shown, size, int(total) if total else None) + "\n")
        if not legacy:
            sys.stderr.write("written to stdout\n" if to_stdout else f"'{name}' saved\n")
    return 0


# ---------------------------------------------------------------- nc

def nc(args: list[str], style: str) -> int:
    program: list[str] = []
    if "-e" in args:  # -e PROG [ARGS]: the rest of the line, busybox's "must be last"
        index = args.index("-e")
        args, program = args[:index], args[index + 1:]
        if not program:
            return fail("nc", "option requires an argument -- 'e'")
    try:
        options, rest = take_options(args, {"-p", "-s", "-w", "-i", "-o"},
                                     {"-l", "-k", "-z", "-u", "-v", "-n", "-b", "-t", "-4",
                                      "-6"}, "nc")
    except AppletError as err:
        return fail("nc", str(err))
    if program:
        options["-e"] = program
    verbose = bool(options.get("-v"))
    udp = bool(options.get("-u"))
    wait_s = float(options["-w"]) if "-w" in options else None
    try:
        if options.get("-l"):
            return nc_listen(options, rest, udp, verbose, wait_s)
        if len(rest) != 2:
            sys.stderr.write("Usage: nc [OPTIONS] HOST PORT  - connect\n"
                             "nc [OPTIONS] -l -p PORT [HOST] [PORT]  - listen\n")
            return 1
        return nc_connect(options, rest[0], rest[1], udp, verbose, wait_s)
    except AppletError as err:
        return fail("nc", str(err))


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        try:
            return socket.getservbyname(text)
        except OSError:
            raise AppletError(f"bad port spec '{text}'") from None
    if not 0 <= port <= 65535:
        raise AppletError(f"bad port spec '{text}'")
    return port


def nc_connect(options: dict, host: str, port_text: str, udp: bool, verbose: bool,
               wait_s: float | None) -> int:
    address = resolve(host)
    port = port_number(port_text)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    if "-s" in options or "-p" in options:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((str(options.get("-s") or ""), port_number(str(options.get("-p", "0")))))
    sock.settimeout(wait_s if wait_s else NC_CONNECT_TIMEOUT_S_MAX)
    try:
        sock.connect((address, port))
    except TimeoutError:
        raise AppletError("timed out") from None
    except OSError as err:
        if verbose:
            raise AppletError(f"{host} ({address}:{port}): {strerror(err)}") from None
        raise AppletError(f"can't connect to remote host ({address}): {strerror(err)}") from None
    sock.settimeout(None)
    if verbose:
        sys.stderr.write(f"{host} ({address}:{port}) open\n")
    if options.get("-z"):
        sock.close()
        return 0
    if options.get("-e"):
        return nc_exec(sock, options["-e"])
    return nc_pump(sock, udp, wait_s)


def nc_listen(options: dict, rest: list[str], udp: bool, verbose: bool,
              wait_s: float | None) -> int:
    port_text = options.get("-p") or (rest[1] if len(rest) > 1 else None)
    if port_text is None and rest and rest[0].isdigit():
        port_text = rest[0]
    port = port_number(str(port_text or "0"))
    host = str(options.get("-s") or os.environ.get("POD_IP") or "0.0.0.0")
    address = resolve(host)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as err:
        raise AppletError(f"bind: {strerror(err)}") from None
    if verbose:
        bound = sock.getsockname()
        sys.stderr.write(f"listening on {bound[0]}:{bound[1]} ...\n")
    if udp:
        return nc_pump(sock, True, wait_s, listening=True)
    sock.listen(5)
    keep = bool(options.get("-k"))
    while True:
        if wait_s:
            sock.settimeout(wait_s)
        try:
            conn, peer = sock.accept()
        except TimeoutError:
            raise AppletError("timed out") from None
        if verbose:
            local = conn.getsockname()
            sys.stderr.write(f"connect to {local[0]}:{local[1]} from {peer[0]}:{peer[1]} "
                             f"({peer[0]}:{peer[1]})\n")
        if options.get("-e"):
            if keep:
                if os.fork() == 0:
                    sock.close()
                    os._exit(nc_exec(conn, options["-e"]))
                conn.close()
                continue
            return nc_exec(conn, options["-e"])
        status = nc_pump(conn, False, wait_s)
        if not keep:
            return status


def nc_exec(conn: socket.socket, command: list[str]) -> int:
    fd = conn.fileno()
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    try:
        os.execvp(command[0], command)
    except OSError as err:
        raise AppletError(f"can't execute '{command[0]}': {strerror(err)}") from None
    return 1


def nc_pump(sock: socket.socket, udp: bool, wait_s: float | None,
            listening: bool = False) -> int:
    """stdin -> peer, peer -> stdout; stdin's end shuts down our sending side;
    the peer's end (or -w seconds of silence after stdin ended) ends nc."""
    stdin_open = True
    peer = None
    out = sys.stdout.buffer
    while True:
        watched = [sock] + ([sys.stdin] if stdin_open else [])
        timeout = wait_s if (wait_s and not stdin_open) else None
        readable, _, _ = select.select(watched, [], [], timeout)
        if not readable:
            return 0
        if sock in readable:
            if udp:
                data, source = sock.recvfrom(NC_CHUNK_BYTES)
                if listening and peer is None:
                    peer = source
            else:
                data = sock.recv(NC_CHUNK_BYTES)
                if not data:
                    return 0
            out.write(data)
            out.flush()
        if stdin_open and sys.stdin in readable:
            data = os.read(sys.stdin.fileno(), NC_CHUNK_BYTES)
            if not data:
                stdin_open = False
                if not udp:
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                elif not wait_s:
                    return 0
                continue
            try:
                if udp and listening:
                    if peer is not None:
                        sock.sendto(data, peer)
                else:
                    sock.sendall(data)
            except OSError:
                return 1


# ---------------------------------------------------------------- ping

def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Pinger:
    """Echo requests one at a time, by the strongest means allowed."""

    def __init__(self, address: str, size: int, ttl: int | None):
        self.address = address
        self.size = size
        self.ident = os.getpid() & 0xFFFF
        self.mode = "tcp"
        self.sock = None
        for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
            try:
                self.sock = socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP)
            except OSError:
                continue
            self.mode = "dgram" if kind == socket.SOCK_DGRAM else "raw"
            if ttl:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            if self.mode == "dgram":
                self.sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            break
        if self.mode == "tcp":
            sys.stderr.write("ping: no ICMP socket allowed (net.ipv4.ping_group_range, "
                             "CAP_NET_RAW): timing TCP connects to port 7 instead\n")

    def once(self, seq: int, timeout_s: float) -> tuple[float, int] | None:
        """(rtt in ms, ttl) of one echo, or None when none came in time."""
        if self.mode == "tcp":
            return self._tcp(timeout_s)
        payload = struct.pack(">d", time.time()) + bytes(max(self.size - 8, 0))
        header = struct.pack(">BBHHH", ICMP_ECHO_REQUEST, 0, 0, self.ident, seq)
        packet = header[:2] + struct.pack(">H", checksum(header + payload)) + header[4:] + payload
        started = time.monotonic()
        self.sock.sendto(packet, (self.address, 0))
        deadline = started + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([self.sock], [], [], left)
            if not readable:
                return None
            data, ancillary, _flags, _addr = self.sock.recvmsg(65535, 64)
            ttl = 64
            if self.mode == "raw":
                ttl = data[8]
                data = data[(data[0] & 0x0F) * 4:]
            else:
                for level, kind, value in ancillary:
                    if level == socket.IPPROTO_IP and kind == IP_TTL_CMSG and len(value) >= 4:
                        ttl = struct.unpack("i", value[:4])[0]
            if len(data) < 8:
                continue
            kind, _code, _sum, ident, reply_seq = struct.unpack(">BBHHH", data[:8])
            if kind != ICMP_ECHO_REPLY or reply_seq != seq:
                continue
            if self.mode == "raw" and ident != self.ident:
                continue
            return (time.monotonic() - started) * 1000, ttl

    def _tcp(self, timeout_s: float) -> tuple[float, int] | None:
        started = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            try:
                sock.connect((self.address, PING_TCP_PORT))
            except (ConnectionRefusedError, ConnectionResetError):
                pass   # a RST: the address answered
            except OSError:
                return None
        return (time.monotonic() - started) * 1000, 64


def ping(args: list[str], style: str) -> int:
    try:
        options, rest = take_options(args, {"-c", "-i", "-W", "-w", "-s", "-t", "-I", "-p"},
                                     {"-q", "-4", "-6", "-n", "-A", "-D", "-O"}, "ping")
        if len(rest) != 1:
            sys.stderr.write("Usage: ping [OPTIONS] HOST\n")
            return 1
        count = int(options.get("-c", 0))
        interval_s = float(options.get("-i", 1))
        reply_wait_s = float(options.get("-W", PING_WAIT_S))
        deadline_s = float(options["-w"]) if "-w" in options else None
        size = int(options.get("-s", 56))
        ttl = int(options["-t"]) if "-t" in options else None
    except ValueError as err:
        return fail("ping", f"invalid number '{str(err).rsplit(' ', 1)[-1]}'")
    except AppletError as err:
        return fail("ping", str(err))
    host = rest[0]
    try:
        address = resolve(host, socket.AF_INET)
    except AppletError as err:
        return fail("ping", str(err))
    quiet = bool(options.get("-q"))
    pinger = Pinger(address, size, ttl)
    print(f"PING {host} ({address}): {size} data bytes", flush=True)
    sent, times = 0, []
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    started = time.monotonic()
    while not stop:
        if count and sent >= count:
            break
        if deadline_s is not None and time.monotonic() - started >= deadline_s:
            break
        last = bool(count) and sent == count - 1
        wait_s = reply_wait_s if last else interval_s
        if deadline_s is not None:
            wait_s = max(0.0, min(wait_s, deadline_s - (time.monotonic() - started)))
        begun = time.monotonic()
        reply = pinger.once(sent, wait_s)
        sent += 1
        if reply is not None:
            rtt_ms, reply_ttl = reply
            times.append(rtt_ms)
            if not quiet:
                print(f"{size + 8} bytes from {address}: seq={sent - 1} ttl={reply_ttl} "
                      f"time={rtt_ms:.3f} ms", flush=True)
        if not last and not stop:
            time.sleep(max(0.0, interval_s - (time.monotonic() - begun)))
    received = len(times)
    loss = (sent - received) * 100 // sent if sent else 0
    print(f"\n--- {host} ping statistics ---")
    print(f"{sent} packets transmitted, {received} packets received, {loss}% packet loss")
    if times:
        print(f"round-trip min/avg/max = {min(times):.3f}/{sum(times) / received:.3f}/"
              f"{max(times):.3f} ms")
    sys.stdout.flush()
    return 0 if received else 1


# ---------------------------------------------------------------- main

APPLETS = {"nslookup": nslookup, "wget": wget, "nc": nc, "ping": ping}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    style = "busybox"
    if args and args[0].startswith("--kubemu-style="):
        style = args.pop(0).split("=", 1)[1]
        if style not in STYLES:
            return fail("busybox", f"unknown style {style!r} (known: {', '.join(STYLES)})")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `nc ... | head` ends quietly, as in C
    if not args or args[0] in ("--help", "--list"):
        sys.stdout.write(f"BusyBox v{VERSION} multi-call binary.\n\n"
                         "Usage: busybox [function [arguments]...]\n\n"
                         "Currently defined functions:\n\t" + ", ".join(sorted(APPLETS)) + "\n")
        return 0
    applet = os.path.basename(args[0])
    if applet == "busybox":
        return main([f"--kubemu-style={style}", *args[1:]])
    if applet not in APPLETS:
        program = shutil.which(applet)
        if program is None:
            return fail(applet, "applet not found")
        os.execv(program, [applet, *args[1:]])
    return APPLETS[applet](args[1:], style)


if __name__ == "__main__":
    sys.exit(main())
