"""The tutorial apps the seed notes run: kubernetes-bootcamp (Kubernetes
Basics), the guestbook's gb-frontend, and nginx-slim (the StatefulSet
tutorial), each run as the runtime runs it and asked over HTTP."""
from __future__ import annotations

import re
import signal

import pytest

from kubelet.runtime import images
from kubemu.client.wait import wait_for_sync
from tests.component import demoapp_process
from tests.component.demoapp_process import START_TIMEOUT_S, answering, free_port, http_get

apps = demoapp_process.apps   # the fixture

JS_DATE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.mark.parametrize("tag, line", [
    ("v1", "Hello Kubernetes bootcamp! | Running on: bootcamp-5c69669756-8drbm | v=1\n"),
    ("v2", "Hello Kubernetes bootcamp! | Running on: bootcamp-5c69669756-8drbm | v=2\n"),
    ("latest", "Hello Kubernetes bootcamp! | Running on: bootcamp-5c69669756-8drbm | v=1\n"),
])
def test_bootcamp_answers_every_request_with_its_hostname_and_version(apps, tag, line):
    port = free_port(apps.ip)
    env = apps.env(HOSTNAME="bootcamp-5c69669756-8drbm", BOOTCAMP_PORT=str(port),
                   BOOTCAMP_VERSION=tag)
    app = apps.start("bootcamp", "server.js", env=env)
    url = f"http://{apps.ip}:{port}"
    assert wait_for_sync(answering(url + "/"), START_TIMEOUT_S) == (200, line)
    assert http_get(url + "/any/path?x=1") == (200, line)
    assert http_get(url + "/", method="POST") == (200, line)

    log = app.wait_for_output("Total Requests: 3", stream="stdout")
    lines = log.splitlines()
    assert re.fullmatch(rf"Kubernetes Bootcamp App Started At: {JS_DATE} \| Running On:  "
                        r"bootcamp-5c69669756-8drbm ", lines[0]), lines
    assert lines[1] == ""
    assert re.fullmatch(rf"Running On: bootcamp-5c69669756-8drbm \| Total Requests: 1 \| "
                        rf"App Uptime: [\d.]+ seconds \| Log Time: {JS_DATE}", lines[2]), lines
    app.signal(signal.SIGTERM)   # node has no handler: the signal ends it
    assert app.wait() == -signal.SIGTERM


def test_bootcamp_runs_only_server_js(apps):
    done = apps.run("bootcamp", "other.js")
    assert done.returncode == 9
    assert b"runs only server.js" in done.stderr


def test_gb_frontend_serves_the_guestbook_page_and_nothing_else(apps):
    port = free_port(apps.ip)
    app = apps.start("gb_frontend", env=apps.env(GB_FRONTEND_PORT=str(port)))
    url = f"http://{apps.ip}:{port}"
    status, body = wait_for_sync(answering(url + "/"), START_TIMEOUT_S)
    assert status == 200 and "<title>Guestbook</title>" in body
    assert http_get(url + "/index.html") == (status, body)
    status, body = http_get(url + "/missing.php")
    assert status == 404 and "The requested URL /missing.php was not found" in body
    assert http_get(url + "/guestbook.php?cmd=get&key=messages")[0] == 500  # no Redis

    app.wait_for_output('"GET /missing.php HTTP/1.1" 404', stream="stdout")
    assert "AH00163: Apache/2.4.10 (Debian) configured" in app.stderr()
    app.signal(signal.SIGWINCH)  # the php:apache images' graceful stop
    assert app.wait() == 0


def test_nginx_slim_is_the_nginx_stand_in(apps):
    """The StatefulSet tutorial: each pod's /usr/share/nginx/html is a volume
    the tutorial writes the hostname into."""
    resolved = images.Catalog(images.builtin_entries()).resolve("registry.k8s.io/nginx-slim:0.8")
    argv = images.container_argv(resolved, [], [])
    assert argv == ["nginx", "-g", "daemon off;"]
    assert resolved.programs["nginx"] == images.demoapp_argv("nginx")
    docroot = apps.rootfs / "usr/share/nginx/html"
    docroot.mkdir(parents=True)
    (docroot / "index.html").write_text("web-0\n")
    port = free_port(apps.ip)
    nginx = apps.start("nginx", *argv[1:], env=apps.env(NGINX_PORT=str(port)))
    assert wait_for_sync(answering(f"http://{apps.ip}:{port}/"), START_TIMEOUT_S) == \
        (200, "web-0\n")
    nginx.signal(signal.SIGTERM)
    assert nginx.wait() == 0
