"""Network stand-ins run as processes: goproxy (the docs' TCP probe example)
and the busybox applets a host lacks (nc, nslookup, ping, wget), with
busybox's flags, output lines and exit statuses. Everything stays on
127.0.0.0/8."""
from __future__ import annotations

import socket
import subprocess
import struct
import threading

import pytest

from kubemu.client.wait import wait_for_sync
from tests.component import demoapp_process
from tests.component.demoapp_process import START_TIMEOUT_S, answering, free_port

apps = demoapp_process.apps   # the fixture

ANSWER_TTL_S = 30


@pytest.fixture
def web(apps):
    """An HTTP server in the pod to fetch from: agnhost test-webserver over the root view."""
    (apps.rootfs / "site").mkdir()
    (apps.rootfs / "site" / "index.html").write_text("<h1>hello</h1>\n")
    (apps.rootfs / "site" / "data.txt").write_text("some data\n")
    port = free_port(apps.ip)
    apps.start("agnhost", "test-webserver", f"--port={port}")
    base = f"http://{apps.ip}:{port}"
    wait_for_sync(answering(base + "/site/data.txt"), START_TIMEOUT_S)
    return base


def busybox(apps, *args, style: str = "", input: bytes | None = None, timeout_s: float = 30):
    prefix = [f"--kubemu-style={style}"] if style else []
    return apps.run("busybox", *prefix, *args, input=input, timeout_s=timeout_s)


# ---------------------------------------------------------------- goproxy

def test_goproxy_accepts_tcp_and_proxies_http(apps, web):
    port = free_port(apps.ip)
    proxy = apps.start("goproxy", f"--port={port}")
    direct = f"http://{apps.ip}:{port}/"
    status, body = wait_for_sync(answering(direct), START_TIMEOUT_S)   # what a TCP probe sees
    assert (status, body) == (500, "This is a proxy server. Does not respond to non-proxy "
                                   "requests.\n")
    with socket.create_connection((apps.ip, port), timeout=5) as conn:
        conn.sendall(f"GET {web}/site/data.txt HTTP/1.1\r\nHost: {web[7:]}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\nsome data\n")

    with socket.create_connection((apps.ip, port), timeout=5) as conn:   # CONNECT tunnel
        conn.sendall(f"CONNECT {web[7:]} HTTP/1.1\r\n\r\n".encode())
        assert conn.recv(100) == b"HTTP/1.0 200 OK\r\n\r\n"
        conn.sendall(b"GET /site/data.txt HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.endswith(b"some data\n")
    err = proxy.wait_for_output("INFO: Accepting CONNECT to", stream="stderr")
    assert "] INFO: Got request /site/data.txt " in err and "INFO: Copied 10 bytes" in err


def test_goproxy_answers_500_with_the_dial_error_for_an_unreachable_upstream(apps):
    port, closed = free_port(apps.ip), free_port(apps.ip)
    apps.start("goproxy", f"--port={port}")
    wait_for_sync(answering(f"http://{apps.ip}:{port}/"), START_TIMEOUT_S)
    with socket.create_connection((apps.ip, port), timeout=5) as conn:
        conn.sendall(f"GET http://{apps.ip}:{closed}/ HTTP/1.1\r\nHost: x\r\n"
                     f"Connection: close\r\n\r\n".encode())
        reply = b""  # to the proxy's close: head and body may come apart
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 500 ")
    assert f"dial tcp {apps.ip}:{closed}: connect: connection refused".encode() in reply


# ---------------------------------------------------------------- wget

def test_wget_prints_a_page_to_stdout_quietly(apps, web):
    done = busybox(apps, "wget", "-qO-", web + "/site/data.txt")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"some data\n", b"")


def test_wget_saves_to_a_container_path_and_reports_progress(apps, web):
    """The init container example: `wget -O /work-dir/index.html URL`."""
    (apps.rootfs / "work-dir").mkdir()
    done = busybox(apps, "wget", "-O", "/work-dir/index.html", web + "/site/")
    assert done.returncode == 0, done
    assert (apps.rootfs / "work-dir" / "index.html").read_text() == "<h1>hello</h1>\n"
    err = done.stderr.decode()
    assert f"Connecting to {web[7:]} ({web[7:]})\n" in err
    assert "saving to '/work-dir/index.html'\n" in err and "'/work-dir/index.html' saved\n" in err
    assert "100% |********************************|" in err


def test_wget_names_the_file_itself_and_does_not_overwrite_it(apps, web):
    first = busybox(apps, "wget", web + "/site/data.txt")
    assert first.returncode == 0 and (apps.rootfs / "data.txt").read_text() == "some data\n"
    again = busybox(apps, "wget", "-q", web + "/site/data.txt")
    assert (again.returncode, again.stderr) == (1, b"wget: can't open 'data.txt': File exists\n")


@pytest.mark.parametrize("args, status, stderr", [
    (["-q", "--spider", "{web}/site/data.txt"], 0, ""),
    (["--spider", "{web}/site/data.txt"], 0, "remote file exists\n"),
    (["-q", "{web}/nothing-here"], 1, "wget: server returned error: HTTP/1.1 404 Not Found\n"),
    (["-q", "http://no-such-host.invalid/"], 1, "wget: bad address 'no-such-host.invalid'\n"),
], ids=["spider-quiet", "spider", "not-found", "bad-address"])
def test_wget_exit_status_and_messages_are_busyboxs(apps, web, args, status, stderr):
    done = busybox(apps, "wget", *[a.format(web=web) for a in args])
    assert done.returncode == status
    assert done.stderr.decode().endswith(stderr)


def test_wget_times_out_on_a_server_that_never_answers(apps):
    with socket.create_server((apps.ip, 0)) as silent:
        port = silent.getsockname()[1]
        done = busybox(apps, "wget", "-q", "-T", "1", f"http://{apps.ip}:{port}/")
    assert (done.returncode, done.stderr) == (1, b"wget: download timed out\n")


def test_wget_refused_connection(apps):
    port = free_port(apps.ip)
    done = busybox(apps, "wget", "-q", f"http://{apps.ip}:{port}/")
    assert done.returncode == 1
    assert done.stderr == (f"wget: can't connect to remote host ({apps.ip}): "
                           f"Connection refused\n").encode()


# ---------------------------------------------------------------- nc

def test_nc_z_checks_a_port(apps):
    with socket.create_server((apps.ip, 0)) as server:
        port = server.getsockname()[1]
        assert busybox(apps, "nc", "-z", apps.ip, str(port)).returncode == 0
        verbose = busybox(apps, "nc", "-zv", apps.ip, str(port))
        assert verbose.stderr == f"{apps.ip} ({apps.ip}:{port}) open\n".encode()
    closed = busybox(apps, "nc", "-z", apps.ip, str(port))
    assert closed.returncode == 1
    assert closed.stderr == (f"nc: can't connect to remote host ({apps.ip}): "
                             f"Connection refused\n").encode()


def test_nc_listens_and_connects_piping_stdin(apps):
    port = free_port(apps.ip)
    # The listener's stdin stays open: at its end, nc shuts its sending side
    # (as busybox's does), and a client that sees that before it has sent
    # its own stdin ends without sending it.
    listener = apps.start("busybox", "nc", "-l", "-p", str(port), stdin=subprocess.PIPE)
    def sent():
        done = busybox(apps, "nc", apps.ip, str(port), input=b"line one\nline two\n")
        return done if done.returncode == 0 else None
    wait_for_sync(sent, START_TIMEOUT_S, message="nc connects to the listening nc")
    assert listener.wait() == 0
    assert listener.stdout() == "line one\nline two\n"


def test_nc_e_runs_a_program_on_the_connection(apps):
    port = free_port(apps.ip)
    apps.start("busybox", "nc", "-lk", "-p", str(port), "-e", "cat")
    def echoed():
        done = busybox(apps, "nc", apps.ip, str(port), input=b"ping-pong\n")
        return done.stdout if done.returncode == 0 and done.stdout else None
    assert wait_for_sync(echoed, START_TIMEOUT_S) == b"ping-pong\n"
    assert busybox(apps, "nc", apps.ip, str(port), input=b"again\n").stdout == b"again\n"


# ---------------------------------------------------------------- ping

def test_ping_counts_replies_from_a_loopback_address(apps):
    done = busybox(apps, "ping", "-c", "2", "-i", "0.2", apps.ip)
    out = done.stdout.decode()
    assert done.returncode == 0, done
    assert out.startswith(f"PING {apps.ip} ({apps.ip}): 56 data bytes\n")
    assert f"64 bytes from {apps.ip}: seq=0 ttl=" in out and "seq=1 ttl=" in out
    assert f"--- {apps.ip} ping statistics ---\n" in out
    assert "2 packets transmitted, 2 packets received, 0% packet loss\n" in out
    assert "round-trip min/avg/max = " in out


def test_ping_of_an_unknown_host_fails(apps):
    done = busybox(apps, "ping", "-c", "1", "no-such-host.invalid")
    assert (done.returncode, done.stderr) == (1, b"ping: bad address 'no-such-host.invalid'\n")


# ---------------------------------------------------------------- nslookup

@pytest.mark.parametrize("style, expected", [
    ("", "Name:\tlocalhost\nAddress: 127.0.0.1\n"),
    ("bind", "Name:\tlocalhost\nAddress: 127.0.0.1\n"),
    ("busybox-1.28", "Name:      localhost\nAddress 1: 127.0.0.1"),
], ids=["busybox", "bind", "busybox-1.28"])
def test_nslookup_resolves_through_the_system_resolver(apps, style, expected):
    done = busybox(apps, "nslookup", "localhost", style=style)
    assert done.returncode == 0, done
    assert done.stdout.decode().startswith("Server:")
    assert expected in done.stdout.decode()


@pytest.mark.parametrize("style, stream, expected", [
    ("", "stdout", "** server can't find no-such-name.invalid: NXDOMAIN\n"),
    ("busybox-1.28", "stderr", "nslookup: can't resolve 'no-such-name.invalid'\n"),
], ids=["busybox", "busybox-1.28"])
def test_nslookup_of_an_unknown_name_fails(apps, style, stream, expected):
    done = busybox(apps, "nslookup", "no-such-name.invalid", style=style)
    assert done.returncode == 1
    assert expected in getattr(done, stream).decode()


class FakeDNS:
    """A UDP DNS server on loopback: A records from a table, NXDOMAIN otherwise."""

    def __init__(self, host: str, records: dict[str, str]):
        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                query, client = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            self.sock.sendto(self.answer(query), client)

    def answer(self, query: bytes) -> bytes:
        qid = query[:2]
        end, labels = 12, []
        while query[end]:
            labels.append(query[end + 1:end + 1 + query[end]].decode())
            end += 1 + query[end]
        question = query[12:end + 5]
        qtype = struct.unpack(">H", query[end + 1:end + 3])[0]
        address = self.records.get(".".join(labels))
        if address is None:
            return qid + struct.pack(">HHHHH", 0x8583, 1, 0, 0, 0) + question
        if qtype != 1:
            return qid + struct.pack(">HHHHH", 0x8580, 1, 0, 0, 0) + question
        record = struct.pack(">HHHIH", 0xC00C, 1, 1, ANSWER_TTL_S, 4) + socket.inet_aton(address)
        return qid + struct.pack(">HHHHH", 0x8580, 1, 1, 0, 0) + question + record

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def dns(apps):
    server = FakeDNS(apps.ip, {"web.demo.svc.cluster.local": "10.96.7.7"})
    yield server
    server.close()


@pytest.mark.parametrize("style, expected", [
    ("", "Server:\t\t{ip}\nAddress:\t{ip}:{port}\n\nName:\tweb.demo.svc.cluster.local\n"
         "Address: 10.96.7.7\n\n"),
    ("bind", "Server:\t\t{ip}\nAddress:\t{ip}#{port}\n\nName:\tweb.demo.svc.cluster.local\n"
             "Address: 10.96.7.7\n\n"),
], ids=["busybox", "bind"])
def test_nslookup_asks_the_server_it_is_given(apps, dns, style, expected):
    done = busybox(apps, "nslookup", "web.demo.svc.cluster.local", f"{apps.ip}:{dns.port}",
                   style=style)
    assert done.returncode == 0, done
    assert done.stdout.decode() == expected.format(ip=apps.ip, port=dns.port)
    missing = busybox(apps, "nslookup", "other.demo.svc.cluster.local",
                      f"{apps.ip}:{dns.port}", style=style)
    assert missing.returncode == 1
    assert "** server can't find other.demo.svc.cluster.local: NXDOMAIN" in missing.stdout.decode()


def test_busybox_multicall_runs_its_applets_and_the_hosts_programs(apps):
    assert busybox(apps, "busybox", "nslookup", "localhost").returncode == 0
    echoed = busybox(apps, "busybox", "echo", "from the host")
    assert (echoed.returncode, echoed.stdout) == (0, b"from the host\n")
    assert busybox(apps, "no-such-applet").stderr == b"no-such-applet: applet not found\n"
