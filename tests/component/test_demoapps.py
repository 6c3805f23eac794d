"""Demo apps run by hand (no runtime, no $KUBEMU_ROOTFS) and as the runtime runs
them leave nothing in the working directory or the source tree."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

from kubelet.runtime import images
from kubemu.client.wait import wait_for_sync

DEMOAPPS = pathlib.Path(images.DEMOAPPS_DIR)
START_TIMEOUT_S = 20.0


def test_nginx_run_by_hand_keeps_its_pid_file_out_of_the_working_directory(tmp_path):
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KUBEMU_ROOTFS"}
    env.update(TMPDIR=str(tmp), POD_IP="127.0.0.1", NGINX_PORT="0")
    argv = [sys.executable, "-B", str(DEMOAPPS / "nginx.py")]
    server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        pid_file = tmp / f"kubemu-demoapps-{os.getuid()}" / "run" / "nginx.pid"
        wait_for_sync(lambda: pid_file.is_file() and pid_file.read_text().strip(),
                      START_TIMEOUT_S, message=f"{pid_file} written")
        assert pid_file.read_text().strip() == str(server.pid)
        assert list(cwd.iterdir()) == []
        # `nginx -s stop`, run by hand too, finds the server through the same place.
        stop = subprocess.run([*argv, "-s", "stop"], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=START_TIMEOUT_S)
        assert stop.returncode == 0, stop.stderr
        assert server.wait(START_TIMEOUT_S) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_demo_apps_as_the_runtime_runs_them_write_no_bytecode(tmp_path):
    copy = tmp_path / "demoapps"
    shutil.copytree(DEMOAPPS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    argv = list(images.demoapp_argv("nginx", "-v"))
    script = argv.index(str(DEMOAPPS / "nginx.py"))
    argv[script] = str(copy / "nginx.py")
    # nginx -v imports the shared module (_base) and exits.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert done.returncode == 0 and "nginx version" in done.stderr, done
    assert sorted(p.name for p in copy.rglob("__pycache__")) == []
