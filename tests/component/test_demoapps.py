"""Demo apps find their files where the container sees them: at
$KUBEMU_ROOTFS/<path> in the plain mode, at the path itself when
$KUBEMU_ROOTFS is unset (namespaces, or run by hand); nginx serves its
docroot from /usr/share/nginx/html; nothing is written into the source tree."""
from __future__ import annotations

import pathlib
import shutil
import signal
import subprocess

from kubelet.runtime import images
from kubemu.client.wait import wait_for_sync
from tests.component import demoapp_process
from tests.component.demoapp_process import START_TIMEOUT_S, answering, free_port, http_get

apps = demoapp_process.apps   # the fixture

DEMOAPPS = pathlib.Path(images.DEMOAPPS_DIR)
DOCROOT = pathlib.PurePosixPath("usr/share/nginx/html")


def test_nginx_serves_the_docroot_at_its_real_path_in_the_root_view(apps, tmp_path):
    """The emptyDir example: a volume at /usr/share/nginx/html that another
    container of the pod writes index.html into."""
    port = free_port(apps.ip)
    nginx = apps.start("nginx", env=apps.env(NGINX_PORT=str(port)))
    url = f"http://{apps.ip}:{port}/"
    status, body = wait_for_sync(answering(url), START_TIMEOUT_S)
    assert status == 200 and "<title>Welcome to nginx!</title>" in body

    volume = tmp_path / "volumes" / "html"       # the emptyDir, as the runtime links it
    volume.mkdir(parents=True)
    (apps.rootfs / DOCROOT).parent.mkdir(parents=True)
    (apps.rootfs / DOCROOT).symlink_to(volume)
    status, body = http_get(url)
    assert status == 403 and "<title>403 Forbidden</title>" in body   # empty: nginx's 403

    (volume / "index.html").write_text("Hello from the debian container\n")
    assert http_get(url) == (200, "Hello from the debian container\n")
    assert http_get(url + "index.html")[1] == "Hello from the debian container\n"
    status, body = http_get(url + "missing.html")
    assert status == 404 and "<center>nginx/1.25.3</center>" in body
    assert http_get(url + "../../../../etc/passwd")[0] == 404  # never above the docroot

    nginx.signal(signal.SIGTERM)
    assert nginx.wait() == 0
    assert '"GET / HTTP/1.1" 200' in nginx.stdout()


def test_nginx_signals_the_server_through_its_pid_file_in_the_root_view(apps):
    port = free_port(apps.ip)
    env = apps.env(NGINX_PORT=str(port))
    nginx = apps.start("nginx", "-g", "daemon off;", env=env)
    pid_file = apps.rootfs / "run" / "nginx.pid"
    wait_for_sync(lambda: pid_file.is_file() and pid_file.read_text().strip(), START_TIMEOUT_S,
                  message=f"{pid_file} written")
    assert pid_file.read_text().strip() == str(nginx.pid)

    reload = apps.run("nginx", "-s", "reload", env=env)
    assert reload.returncode == 0, reload.stderr
    nginx.wait_for_output("signal 1 (SIGHUP) received, reconfiguring", stream="stderr")
    assert nginx.proc.poll() is None

    stop = apps.run("nginx", "-s", "stop", env=env)
    assert stop.returncode == 0, stop.stderr
    assert nginx.wait() == 0


def test_nginx_s_without_a_running_server_fails_as_nginx_does(apps):
    done = apps.run("nginx", "-s", "quit")
    assert done.returncode == 1
    assert b'nginx: [error] open() "/run/nginx.pid" failed' in done.stderr


def test_without_a_root_view_a_container_path_is_the_path_itself(apps, tmp_path):
    """With namespaces the runtime sets no $KUBEMU_ROOTFS: the container's
    filesystem is where the process looks, so /x means /x."""
    served = tmp_path / "outside" / "page.txt"
    served.parent.mkdir()
    served.write_text("read at its absolute path\n")
    port = free_port(apps.ip)
    apps.start("agnhost", "test-webserver", f"--port={port}",
               env=apps.env(KUBEMU_ROOTFS=None))
    url = f"http://{apps.ip}:{port}{served}"
    assert wait_for_sync(answering(url), START_TIMEOUT_S) == (200, "read at its absolute path\n")


def test_demo_apps_as_the_runtime_runs_them_write_no_bytecode(tmp_path):
    copy = tmp_path / "demoapps"
    shutil.copytree(DEMOAPPS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for module in ("nginx", "agnhost", "busybox", "stress", "goproxy", "vish_stress"):
        argv = list(images.demoapp_argv(module, "--help" if module != "nginx" else "-v"))
        script = argv.index(str(DEMOAPPS / f"{module}.py"))
        argv[script] = str(copy / f"{module}.py")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        assert done.returncode == 0, (module, done)
    assert sorted(p.name for p in copy.rglob("__pycache__")) == []
