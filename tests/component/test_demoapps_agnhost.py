"""agnhost's subcommands as the docs and the e2e suite use them, run as
processes: their flags, HTTP answers, output lines and exit statuses."""
from __future__ import annotations

import json
import re
import signal
import socket

import pytest

from kubemu.client.wait import wait_for_sync
from tests.component import demoapp_process
from tests.component.demoapp_process import START_TIMEOUT_S, answering, free_port, http_get

apps = demoapp_process.apps   # the fixture


def udp_ask(host: str, port: int, text: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.sendto(text.encode(), (host, port))
        return sock.recv(2048).decode()


@pytest.fixture
def netexec(apps):
    http_port, udp_port = free_port(apps.ip), free_port(apps.ip, socket.SOCK_DGRAM)
    app = apps.start("agnhost", "netexec", f"--http-port={http_port}", "--udp-port",
                     str(udp_port))
    base = f"http://{apps.ip}:{http_port}"
    wait_for_sync(answering(base + "/healthz"), START_TIMEOUT_S)
    return app, base, udp_port


def test_netexec_endpoints_answer_as_agnhost(apps, netexec):
    app, base, udp_port = netexec
    status, body = http_get(base + "/")
    assert status == 200 and re.match(r"NOW: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} ", body)
    assert http_get(base + "/hostname") == (200, "demo-pod")
    assert http_get(base + "/hostName") == (200, "demo-pod")
    assert http_get(base + "/echo?msg=echoed_msg") == (200, "echoed_msg")
    assert http_get(base + "/echo?msg=teapot&code=418") == (418, "teapot")
    status, body = http_get(base + "/clientip")
    assert status == 200 and re.fullmatch(r"127\.\d+\.\d+\.\d+:\d+", body)
    assert http_get(base + "/healthz") == (200, "")
    assert udp_ask(apps.ip, udp_port, "hostname") == "demo-pod"
    assert udp_ask(apps.ip, udp_port, "echo hello") == "hello"

    status, body = http_get(base + "/shell?cmd=echo%20out;%20echo%20err%20%3E%262;%20exit%203")
    assert status == 200
    assert json.loads(body) == {"output": "out\nerr\n", "error": "exit status 3"}
    assert "\\u0026" in http_get(base + "/shell?shellCommand=echo%20%27a%26b%27")[1]

    host, port = base.removeprefix("http://").split(":")
    status, body = http_get(f"{base}/dial?host={host}&port={port}&request=hostname&tries=2")
    assert (status, json.loads(body)) == (200, {"responses": ["demo-pod", "demo-pod"]})
    status, body = http_get(f"{base}/dial?host={host}&port={udp_port}&request=hostname"
                            f"&protocol=udp")
    assert json.loads(body) == {"responses": ["demo-pod"]}
    assert http_get(f"{base}/dial?host={host}&port={port}")[0] == 400   # no request
    assert "GET /hostname" in app.stderr()


def test_netexec_exit_ends_the_process_with_the_code(netexec):
    app, base, _ = netexec
    with pytest.raises(OSError):   # os.Exit in the handler: no answer at all
        http_get(base + "/exit?code=7")
    assert app.wait() == 7


def test_netexec_without_udp_server_is_not_healthy(apps):
    port = free_port(apps.ip)
    apps.start("agnhost", "netexec", f"--http-port={port}", "--udp-port=-1")
    url = f"http://{apps.ip}:{port}/healthz"
    assert wait_for_sync(answering(url), START_TIMEOUT_S) == (412, "")


def test_netexec_dies_of_sigterm_as_a_go_program_does(netexec):
    app, _, _ = netexec
    app.signal(signal.SIGTERM)
    assert app.wait() == -signal.SIGTERM


def test_serve_hostname_over_http_and_raw_tcp(apps):
    port = free_port(apps.ip)
    http_app = apps.start("agnhost", "serve-hostname", "--port", str(port))
    assert wait_for_sync(answering(f"http://{apps.ip}:{port}/any"),
                         START_TIMEOUT_S) == (200, "demo-pod")
    http_app.wait_for_output(f"Serving on port {port}.")

    tcp_port = free_port(apps.ip)
    apps.start("agnhost", "serve-hostname", "--tcp", "--http=false", f"--port={tcp_port}")

    def read_tcp():
        try:
            with socket.create_connection((apps.ip, tcp_port), timeout=2) as conn:
                return conn.recv(100).decode()
        except OSError:
            return None
    assert wait_for_sync(read_tcp, START_TIMEOUT_S) == "demo-pod"

    http_app.signal(signal.SIGTERM)   # it logs and keeps serving until the pod is gone
    http_app.wait_for_output("Shutting down after receiving signal: terminated.")
    http_app.wait_for_output("Awaiting pod deletion.")
    assert http_get(f"http://{apps.ip}:{port}/") == (200, "demo-pod")


def test_serve_hostname_refuses_tcp_and_http_together(apps):
    done = apps.run("agnhost", "serve-hostname", "--tcp")
    assert done.returncode == 1
    assert b"Can't server TCP/UDP mode and HTTP mode at the same time" in done.stderr


def test_liveness_is_healthy_then_fails(apps):
    port = free_port(apps.ip)
    apps.start("agnhost", "liveness", f"--port={port}",
               env=apps.env(KUBEMU_LIVENESS_HEALTHY_S="0.5"))
    url = f"http://{apps.ip}:{port}/healthz"
    assert wait_for_sync(answering(url), START_TIMEOUT_S) == (200, "ok")
    status, body = wait_for_sync(lambda: (r := http_get(url))[0] == 500 and r, START_TIMEOUT_S)
    assert re.fullmatch(r"error: \d+\.\d+", body)
    assert re.fullmatch(r"[\d.]+(ms|s)", http_get(f"http://{apps.ip}:{port}/started")[1])


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 2), (signal.SIGINT, 1)],
                         ids=["sigterm-exits-2", "sigint-exits-1"])
def test_pause_prints_paused_and_exits_as_agnhost(apps, signum, status):
    app = apps.start("agnhost", "pause")
    app.wait_for_output("Paused\n", stream="stdout")
    app.signal(signum)
    assert app.wait() == status


def test_entrypoint_tester_prints_its_arguments(apps):
    done = apps.run("agnhost", "entrypoint-tester", "override", "arguments")
    assert (done.returncode, done.stdout) == (0, b"[/agnhost entrypoint-tester override "
                                                 b"arguments]\n")


def test_mounttest_writes_and_describes_files_at_container_paths(apps):
    (apps.rootfs / "test-volume").mkdir(mode=0o777)
    (apps.rootfs / "test-volume").chmod(0o1777)
    done = apps.run("agnhost", "mounttest", "--new_file_0644=/test-volume/test-file",
                    "--file_perm=/test-volume/test-file", "--file_mode=/test-volume",
                    "--file_owner=/test-volume/test-file", "--fs_type=/test-volume")
    out = done.stdout.decode()
    assert done.returncode == 0, done
    assert 'content of file "/test-volume/test-file": mount-tester new file\n' in out
    assert 'perms of file "/test-volume/test-file": -rw-r--r--\n' in out
    assert 'mode of file "/test-volume": dtrwxrwxrwx\n' in out
    assert re.search(r'owner UID of "/test-volume/test-file": \d+\n', out)
    assert re.search(r'mount type of "/test-volume": (tmpfs|\d+)\n', out)
    assert (apps.rootfs / "test-volume" / "test-file").read_text() == "mount-tester new file\n"

    missing = apps.run("agnhost", "mounttest", "--file_content=/no/such/file")
    assert missing.returncode == 1
    assert (b'error reading file content for "/no/such/file": open /no/such/file: '
            b'no such file or directory') in missing.stdout


def test_test_webserver_serves_the_containers_files(apps):
    (apps.rootfs / "cache").mkdir()
    (apps.rootfs / "cache" / "note.txt").write_text("cached\n")
    port = free_port(apps.ip)
    apps.start("agnhost", "test-webserver", "--port", str(port))
    base = f"http://{apps.ip}:{port}"
    assert wait_for_sync(answering(base + "/cache/note.txt"), START_TIMEOUT_S) == (200,
                                                                                   "cached\n")
    status, body = http_get(base + "/cache/")
    assert status == 200 and '<a href="note.txt">note.txt</a>' in body
    assert http_get(base + "/cache/absent") == (404, "404 page not found\n")


def test_connect_reports_open_and_refused_ports(apps):
    port = free_port(apps.ip)
    with socket.create_server((apps.ip, port)):
        assert apps.run("agnhost", "connect", f"{apps.ip}:{port}",
                        "--timeout=5s").returncode == 0
    refused = apps.run("agnhost", "connect", f"{apps.ip}:{port}")
    assert (refused.returncode, refused.stderr) == (1, b"REFUSED\n")
    no_port = apps.run("agnhost", "connect", apps.ip)
    assert no_port.returncode == 1 and no_port.stderr.startswith(b"UNKNOWN: ")


def test_porter_serves_each_variables_value_on_its_port(apps):
    port = free_port(apps.ip)
    apps.start("agnhost", "porter", env=apps.env(**{f"SERVE_PORT_{port}": "foo"}))
    assert wait_for_sync(answering(f"http://{apps.ip}:{port}/"), START_TIMEOUT_S) == (200,
                                                                                      "foo")


def test_dns_commands_read_the_containers_resolver_files(apps):
    (apps.rootfs / "etc").mkdir()
    (apps.rootfs / "etc" / "resolv.conf").write_text(
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n")
    (apps.rootfs / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n")
    assert apps.run("agnhost", "dns-suffix").stdout == (
        b"default.svc.cluster.local,svc.cluster.local,cluster.local\n")
    assert apps.run("agnhost", "dns-server-list").stdout == b"10.96.0.10\n"
    assert apps.run("agnhost", "etc-hosts").stdout == b"127.0.0.1\tlocalhost\n\n"


def test_unknown_subcommand_is_cobras_error(apps):
    done = apps.run("agnhost", "no-such-thing")
    assert done.returncode == 1
    assert done.stderr == (b'Error: unknown command "no-such-thing" for "app"\n'
                           b"Run 'app --help' for usage.\n")
    flag = apps.run("agnhost", "netexec", "--no-such-flag")
    assert (flag.returncode, flag.stderr) == (1, b"Error: unknown flag: --no-such-flag\n")
