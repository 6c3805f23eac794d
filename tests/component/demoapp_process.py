"""Run a demo app (kubelet/runtime/demoapps) as the runtime runs it, without a
cluster: `images.demoapp_argv`, its own session, a clean container-like
environment (PATH, HOSTNAME, POD_IP, KUBEMU_ROOTFS unless told otherwise),
output to files. The `apps` fixture of the test_demoapps* modules stops every
process group it started."""
from __future__ import annotations

import os
import pathlib
import random
import signal
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from kubelet.runtime import images
from kubemu.client.wait import wait_for_sync

START_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 30.0


def pod_ip() -> str:
    """A random loopback address, so parallel tests do not share ports."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_get(url: str, method: str = "GET", timeout_s: float = 5.0) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def answering(url: str):
    """A predicate for wait_for_sync: the (status, body) once the URL answers."""
    def check():
        try:
            return http_get(url, timeout_s=2.0)
        except OSError:
            return None
    return check


class App:
    """One demo app process (and whatever it forks, in its session)."""

    def __init__(self, module: str, args: list[str], env: dict[str, str], cwd: pathlib.Path,
                 out_dir: pathlib.Path, stdin=subprocess.DEVNULL):
        self.argv = list(images.demoapp_argv(module, *args))
        self.stdout_path = out_dir / f"{module}-{id(self)}.out"
        self.stderr_path = out_dir / f"{module}-{id(self)}.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, env=env, cwd=cwd, stdin=stdin, stdout=out,
                                         stderr=err, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        return self.proc.wait(timeout_s)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_for_output(self, text: str, timeout_s: float = START_TIMEOUT_S,
                        stream: str = "both") -> str:
        def seen():
            output = {"stdout": self.stdout, "stderr": self.stderr}.get(
                stream, lambda: self.stdout() + self.stderr())()
            return output if text in output else None
        return wait_for_sync(seen, timeout_s, message=f"{text!r} in the output of {self.argv}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(RUN_TIMEOUT_S)
        else:  # the group may outlive its leader (workers, shells)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Apps:
    """Starts demo apps for one test in a container-like setting and stops them all."""

    def __init__(self, tmp_path: pathlib.Path):
        self.tmp_path = tmp_path
        self.rootfs = tmp_path / "rootfs"
        self.rootfs.mkdir()
        self.ip = pod_ip()
        self.started: list[App] = []

    def env(self, **extra: str | None) -> dict[str, str]:
        env = {"PATH": images.DEFAULT_PATH, "HOSTNAME": "demo-pod", "POD_IP": self.ip,
               "KUBEMU_ROOTFS": str(self.rootfs), "HOME": str(self.rootfs / "root")}
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(self, module: str, *args: str, env: dict[str, str] | None = None,
              cwd: pathlib.Path | None = None, stdin=subprocess.DEVNULL) -> App:
        app = App(module, list(args), env or self.env(), cwd or self.rootfs, self.tmp_path,
                  stdin=stdin)
        self.started.append(app)
        return app

    def run(self, module: str, *args: str, env: dict[str, str] | None = None,
            input: bytes | None = None, timeout_s: float = RUN_TIMEOUT_S,
            cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
        """Run to completion (a client: wget, nc, stress --timeout ...)."""
        argv = list(images.demoapp_argv(module, *args))
        return subprocess.run(argv, env=env or self.env(), cwd=cwd or self.rootfs, input=input,
                              capture_output=True, timeout=timeout_s,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def stop_all(self) -> None:
        for app in self.started:
            app.stop()


@pytest.fixture
def apps(tmp_path):
    """Import into a test module to use: demo apps in a per-test root view."""
    started = Apps(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
