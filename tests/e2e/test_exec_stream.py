"""Interactive exec, attach and cp end to end: the CLI -> apiserver -> kubelet
-> runtime on a real one-node cluster (tests/e2e/test_kubelet.py's harness,
a cluster of this module's own).

An interactive session is driven the way a user's terminal drives it: the
CLI runs on a pseudo-terminal this test holds the other side of, reads what
the test types, and the test reads what the remote shell prints. Remote
paths are relative (the container's working directory is its root in every
mode), except where a test needs an absolute one.
"""
from __future__ import annotations

import asyncio
import fcntl
import filecmp
import os
import pathlib
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import psutil
import pytest

from kubemu.client.wait import wait_for
from kubemu.api import errors
from tests.e2e.test_kubelet import (serving, NODE, REPO, WAIT_S, ClusterThread, Seen, busybox,
                                    cli, container_status, create_pod, pod_doc, pod_json,
                                    running, wait_pod)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("exec-home")))


SESSION_S = 30.0
PROMPT = re.compile(rb"[$#] $")


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubemu.cli.main", *args]


def cli_env(cluster: ClusterThread) -> dict[str, str]:
    return dict(os.environ, KUBEMU_HOME=str(cluster.home))


def run_bytes(cluster: ClusterThread, *args: str, stdin: bytes | None = None,
              timeout_s: float = SESSION_S) -> subprocess.CompletedProcess:
    """The CLI with binary stdin/stdout (blocking: call it in a thread)."""
    return subprocess.run(cli_argv(*args), input=stdin, capture_output=True,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          env=cli_env(cluster), cwd=REPO, timeout=timeout_s)


async def kubemu_bytes(cluster: ClusterThread, *args: str, stdin: bytes | None = None
                       ) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(run_bytes, cluster, *args, stdin=stdin)


def set_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class Terminal:
    """The CLI on a pseudo-terminal: what a user's terminal emulator does (the
    test types into the master and reads the screen from it)."""

    def __init__(self, cluster: ClusterThread, *args: str, columns: int = 80, rows: int = 24):
        self.master, self.slave = os.openpty()
        set_size(self.slave, columns, rows)
        self.cooked = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(cli_argv(*args), stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, env=cli_env(cluster), cwd=REPO,
                                     start_new_session=True)
        self.screen = bytearray()

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return False
        try:
            self.screen += os.read(self.master, 65536)
        except OSError:
            return False
        return True

    def expect(self, pattern: re.Pattern | bytes, timeout_s: float = SESSION_S,
               since: int = 0) -> re.Match | int:
        """Wait (blocking) until the screen after `since` shows `pattern`."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = pattern.search(self.screen, since) if isinstance(pattern, re.Pattern) \
                else self.screen.find(pattern, since)
            if found is not None and found != -1:
                return found
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not self._read(0):
                raise AssertionError(f"{pattern!r} not seen; screen: {bytes(self.screen)!r}")
            self._read(min(left, 0.5))

    def wait(self, timeout_s: float = SESSION_S) -> int:
        """The CLI's exit status, once it has ended (what it printed last is read)."""
        code = self.proc.wait(timeout_s)
        while self._read(0.05):
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for fd in (self.master, self.slave):
            os.close(fd)


async def running_pod(api, namespace: str, doc: dict) -> dict:
    await create_pod(api, doc)
    return await wait_pod(api, namespace, doc["metadata"]["name"], running)


def processes_running(argv: list[str]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["cmdline"] == argv and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


async def wait_process(argv: list[str], present: bool) -> list[psutil.Process]:
    async def seen():
        found = await asyncio.to_thread(processes_running, argv)
        return (found or Seen("none")) if present else (not found or Seen(str(found)))
    return await wait_for(seen, WAIT_S, interval_s=0.1, message=f"{argv} present={present}")


# ---------------------------------------------------------------- exec

async def test_exec_it_runs_a_shell_on_a_terminal(cluster, api, ns):
    await running_pod(api, ns, pod_doc("shell", ns, [busybox("exec sleep 3600")]))
    term = Terminal(cluster, "exec", "-n", ns, "-it", "shell", "--", "sh")
    try:
        await asyncio.to_thread(term.expect, PROMPT)
        # A resize reaches the remote terminal (the CLI's SIGWINCH: the test's
        # terminal is not the CLI's controlling one, so it is sent here).
        set_size(term.slave, 101, 31)
        term.proc.send_signal(signal.SIGWINCH)

        async def resized():
            mark = len(term.screen)
            term.type(b"stty size\n")
            try:
                await asyncio.to_thread(term.expect, b"31 101", 1.0, mark)
                return True
            except AssertionError:
                return Seen(bytes(term.screen[mark:]).decode(errors="replace"))
        await wait_for(resized, SESSION_S, interval_s=0.1, message="remote terminal resized")

        mark = len(term.screen)
        term.type(b"tty; echo hi$((1+1)); exit 3\n")
        code = await asyncio.to_thread(term.wait)
        screen = bytes(term.screen[mark:])
        assert code == 3, screen
        assert b"tty; echo hi$((1+1)); exit 3" in screen  # the remote terminal's echo
        assert re.search(rb"/dev/pts/\d+\r\n", screen), screen  # stdin is a terminal there
        assert b"hi2\r\n" in screen, screen
        assert screen.endswith(b"command terminated with exit code 3\r\n"), screen
        # The local terminal is as it was before the session (cooked again).
        assert termios.tcgetattr(term.slave) == term.cooked
    finally:
        term.close()


async def test_exec_i_pipes_stdin_and_returns_the_exit_code(cluster, api, ns):
    await running_pod(api, ns, pod_doc("box", ns, [busybox("exec sleep 3600")]))
    data = os.urandom(3 << 20)  # many chunks on every hop
    out = await kubemu_bytes(cluster, "exec", "-i", "-n", ns, "box", "--", "cat", stdin=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout == data and out.stderr == b""

    out = await kubemu_bytes(cluster, "exec", "-i", "-n", ns, "box", "--", "sh", "-c",
                             'read line; echo "got $line"; echo err >&2; exit 4',
                             stdin=b"hello\n")
    assert (out.returncode, out.stdout, out.stderr) == (
        4, b"got hello\n", b"err\ncommand terminated with exit code 4\n")

    # Without -i, stdin is not read: the command's stdin is empty.
    out = await kubemu_bytes(cluster, "exec", "-n", ns, "box", "--", "cat", stdin=b"unread")
    assert (out.returncode, out.stdout) == (0, b""), out.stderr

    # -t needs a terminal on stdin: said, and the session goes on without one.
    out = await kubemu_bytes(cluster, "exec", "-it", "-n", ns, "box", "--", "sh", "-c",
                             "tty; code=$?; cat; exit $code", stdin=b"piped\n")
    assert out.returncode == 1
    assert out.stdout == b"not a tty\npiped\n"
    assert out.stderr == (b"Unable to use a TTY - input is not a terminal or the right kind "
                          b"of file\ncommand terminated with exit code 1\n")


async def test_exec_output_streams_and_a_slow_reader_holds_the_command_back(cluster, api, ns):
    await running_pod(api, ns, pod_doc("chatty", ns, [busybox("exec sleep 3600")]))
    # Output comes as it is written, not at the end.
    proc = await asyncio.to_thread(subprocess.Popen, cli_argv(
        "exec", "-n", ns, "chatty", "--", "sh", "-c", "echo first; exec sleep 4343"),
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli_env(cluster), cwd=REPO)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), SESSION_S)
        assert line == b"first\n"
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait)
    await wait_process(["sleep", "4343"], present=False)

    # A reader that does not read: every hop holds one chunk, the pipes fill,
    # and the command blocks writing (it does not run on into memory).
    proc = await asyncio.to_thread(subprocess.Popen, cli_argv(
        "exec", "-n", ns, "chatty", "--", "yes", "flow-control"),
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli_env(cluster), cwd=REPO)
    try:
        [yes] = await wait_process(["yes", "flow-control"], present=True)

        def blocked():
            try:
                with open(f"/proc/{yes.pid}/wchan") as f:
                    wchan = f.read()
            except OSError as err:
                return Seen(str(err))
            return "pipe" in wchan or Seen(wchan)
        await wait_for(blocked, SESSION_S, interval_s=0.1, message="yes blocked on its pipe")
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait)
        proc.stdout.close()
    await wait_process(["yes", "flow-control"], present=False)


@pytest.mark.parametrize("flags, signum, status", [
    ([], signal.SIGKILL, -signal.SIGKILL),
    (["-i"], signal.SIGINT, 130),          # Ctrl-C without a terminal
    (["-it"], signal.SIGKILL, -signal.SIGKILL),
    (["-it"], signal.SIGTERM, 128 + signal.SIGTERM),
], ids=["plain-killed", "stdin-interrupted", "tty-killed", "tty-terminated"])
async def test_a_cli_that_goes_leaves_no_exec_process(cluster, api, ns, flags, signum, status):
    name = f"victim-{signum}-{len(flags)}"
    await running_pod(api, ns, pod_doc(name, ns, [busybox("exec sleep 3600")]))
    term = Terminal(cluster, "exec", "-n", ns, *flags, name, "--", "sleep", "4242")
    try:
        await wait_process(["sleep", "4242"], present=True)
        term.proc.send_signal(signum)
        assert await asyncio.to_thread(term.wait) == status
        await wait_process(["sleep", "4242"], present=False)
        if signum != signal.SIGKILL:  # the terminal is given back as it was
            assert termios.tcgetattr(term.slave) == term.cooked
    finally:
        term.close()


async def test_exec_errors_are_kubernetes_ones(cluster, api, ns):
    await create_pod(api, pod_doc("done", ns, [busybox("true")], restartPolicy="Never"))
    await wait_pod(api, ns, "done", lambda p: p["status"].get("phase") == "Succeeded")
    out = await cli(cluster, "exec", "-n", ns, "done", "--", "true")
    assert (out.returncode, out.stderr) == (
        1, "error: cannot exec into a container in a completed pod; current phase is "
           "Succeeded\n")
    out = await cli(cluster, "exec", "-n", ns, "nowhere", "--", "true")
    assert (out.returncode, out.stderr) == (
        1, 'Error from server (NotFound): pods "nowhere" not found\n')
    out = await cli(cluster, "exec", "-n", ns, "done", "true")
    assert out.returncode == 1
    assert out.stderr == ("error: exec [POD] [COMMAND] is not supported anymore. Use exec "
                          "[POD] -- [COMMAND] instead\nSee 'kubemu exec -h' for help and "
                          "examples\n")
    await running_pod(api, ns, pod_doc("up", ns, [busybox("exec sleep 3600")]))
    out = await cli(cluster, "exec", "-n", ns, "up", "--", "no-such-program")
    assert out.returncode == 126
    assert out.stderr == ('exec: "no-such-program": executable file not found in $PATH\n'
                          "command terminated with exit code 126\n")
    out = await cli(cluster, "exec", "-n", ns, "--timeout", "0.5", "up", "--", "sleep", "4141")
    assert out.returncode == 1
    assert out.stderr.startswith("Error from server (Timeout): timeout 0.5s exceeded"), out.stderr
    await wait_process(["sleep", "4141"], present=False)


# ---------------------------------------------------------------- cp

def make_tree(root: pathlib.Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    (root / "sub" / "deeper" / ".hidden").write_bytes(b"\x00\x01\x02")


def same_tree(left: pathlib.Path, right: pathlib.Path) -> bool:
    def listing(root: pathlib.Path) -> list[tuple[str, bool]]:
        return sorted((str(p.relative_to(root)), p.is_dir()) for p in root.rglob("*"))
    if listing(left) != listing(right):
        return False
    return all(filecmp.cmp(p, right / p.relative_to(left), shallow=False)
               for p in left.rglob("*") if p.is_file())


async def test_cp_copies_files_and_directories_both_ways(cluster, api, ns, tmp_path):
    volume = {"name": "data", "emptyDir": {}}
    await running_pod(api, ns, pod_doc("store", ns, [busybox(
        "exec sleep 3600", volumeMounts=[{"name": "data", "mountPath": "/data"}])],
        volumes=[volume]))
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(300_000))
    tree = tmp_path / "tree"
    make_tree(tree)

    # Into the pod: a file to a new name, a directory to a new name, a file into a directory.
    out = await kubemu_bytes(cluster, "cp", str(blob), f"{ns}/store:data/copy.bin")
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")
    out = await kubemu_bytes(cluster, "cp", "-n", ns, str(tree), "store:data/tree")
    assert (out.returncode, out.stderr) == (0, b"")
    out = await kubemu_bytes(cluster, "cp", "-n", ns, str(blob), "store:data")
    assert (out.returncode, out.stderr) == (0, b"")
    inside = await kubemu_bytes(cluster, "exec", "-n", ns, "store", "--", "cat", "data/copy.bin")
    assert inside.stdout == blob.read_bytes()
    listing = await kubemu_bytes(cluster, "exec", "-n", ns, "store", "--", "sh", "-c",
                                 "cd data && find . | sort")
    assert listing.stdout.decode().split() == [
        ".", "./blob.bin", "./copy.bin", "./tree", "./tree/a.txt", "./tree/empty",
        "./tree/sub", "./tree/sub/b.bin", "./tree/sub/deeper", "./tree/sub/deeper/.hidden"]

    # And back, byte for byte.
    back = tmp_path / "back"
    back.mkdir()
    out = await kubemu_bytes(cluster, "cp", f"{ns}/store:data/copy.bin", str(back / "blob.bin"))
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")
    assert (back / "blob.bin").read_bytes() == blob.read_bytes()
    out = await kubemu_bytes(cluster, "cp", "-n", ns, "store:data/tree", str(back / "tree"))
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")
    assert same_tree(tree, back / "tree")

    # An absolute path in the pod (the container's own, which is not the host's
    # in the namespaces mode): tar's own message, on stdout as kubectl prints it.
    where = await kubemu_bytes(cluster, "exec", "-n", ns, "store", "--", "sh", "-c",
                               "cd data && pwd")
    absolute = where.stdout.decode().strip() + "/copy.bin"
    out = await kubemu_bytes(cluster, "cp", "-n", ns, f"store:{absolute}", str(back / "abs.bin"))
    assert (out.returncode, out.stderr) == (0, b"")
    assert out.stdout == b"tar: Removing leading `/' from member names\n"
    assert (back / "abs.bin").read_bytes() == blob.read_bytes()


async def test_cp_errors_are_kubectl_ones(cluster, api, ns, tmp_path):
    await running_pod(api, ns, pod_doc("cpbox", ns, [busybox("exec sleep 3600")]))
    cases = [
        (["cp", "a"], "error: source and destination are required\n"),
        (["cp", "a", "b"], "error: one of src or dest must be a remote file specification\n"),
        (["cp", "p:a", "q:b"], "error: one of src or dest must be a local file specification\n"),
        (["cp", ":a", "b"],
         "error: filespec must match the canonical format: [[namespace/]pod:]file/path\n"),
        (["cp", "a/b/c:x", "b"],
         "error: filespec must match the canonical format: [[namespace/]pod:]file/path\n"),
        (["cp", "p:", "b"], "error: filepath can not be empty\n"),
        (["cp", str(tmp_path / "nope"), "cpbox:x"],
         f"error: {tmp_path / 'nope'} doesn't exist in local filesystem\n"),
    ]
    for argv, stderr in cases:
        out = await cli(cluster, argv[0], "-n", ns, *argv[1:])
        assert (out.returncode, out.stderr) == (1, stderr), argv
    out = await cli(cluster, "cp", "-n", ns, "cpbox:no/such/file", str(tmp_path / "x"))
    assert out.returncode == 2
    assert "tar: no/such/file: Cannot stat: No such file or directory\n" in out.stdout
    assert out.stderr == "command terminated with exit code 2\n"


# ---------------------------------------------------------------- attach

async def test_attach_it_to_a_tty_container(cluster, api, ns):
    ctr = {"name": "main", "image": "busybox", "command": ["sh"], "stdin": True, "tty": True}
    await running_pod(api, ns, pod_doc("console", ns, [ctr], restartPolicy="Never"))
    term = Terminal(cluster, "attach", "-n", ns, "-it", "console")
    try:
        await asyncio.to_thread(term.expect, b"If you don't see a command prompt, try pressing "
                                             b"enter.")
        mark = len(term.screen)
        term.type(b"\n")
        await asyncio.to_thread(term.expect, PROMPT, SESSION_S, mark)
        term.type(b"echo attached-$((6*7))\n")
        await asyncio.to_thread(term.expect, b"attached-42\r\n", SESSION_S, mark)
        term.type(b"exit 0\n")  # the container's shell ends, and with it the session
        code = await asyncio.to_thread(term.wait)
        assert code == 0, bytes(term.screen)
        assert term.screen.endswith(b"Session ended, resume using 'kubemu attach console -c "
                                    b"main -i -t' command when the pod is running\r\n")
        assert termios.tcgetattr(term.slave) == term.cooked
    finally:
        term.close()
    pod = await wait_pod(api, ns, "console", lambda p: p["status"].get("phase") == "Succeeded")
    assert container_status(pod)["state"]["terminated"]["exitCode"] == 0
    logs = await cli(cluster, "logs", "-n", ns, "console")
    assert "attached-42" in logs.stdout  # a tty's output is in the container's log


async def test_attach_i_feeds_a_stdin_container(cluster, api, ns):
    ctr = busybox('while read line; do echo "got $line"; done; echo "stdin closed"',
                  stdin=True, stdinOnce=True)
    await running_pod(api, ns, pod_doc("reader", ns, [ctr], restartPolicy="Never"))
    out = await kubemu_bytes(cluster, "attach", "-n", ns, "-i", "reader", stdin=b"one\ntwo\n")
    # The output from the moment of attaching; stdinOnce: the end of this
    # client's stdin is the container's end of input; the session ends with it.
    assert (out.returncode, out.stdout, out.stderr) == (
        0, b"got one\ngot two\nstdin closed\n",
        b"If you don't see a command prompt, try pressing enter.\n")
    await wait_pod(api, ns, "reader", lambda p: p["status"].get("phase") == "Succeeded")

    # -t to a container without a terminal: said, and attached without one.
    await running_pod(api, ns, pod_doc("plain", ns, [busybox("exec sleep 3600")]))
    proc = await asyncio.to_thread(subprocess.Popen, cli_argv(
        "attach", "-n", ns, "-t", "plain"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=cli_env(cluster), cwd=REPO)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), SESSION_S)
        assert line == b"error: Unable to use a TTY - container main did not allocate one\n"
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait)
        proc.stdout.close()
        proc.stderr.close()


# ---------------------------------------------------------------- run -i

async def bind_when_created(api, namespace: str, name: str) -> None:
    """This module's cluster runs no scheduler: bind the pod `run` creates to
    the node, as the scheduler would."""
    pod = await wait_for(lambda: pod_json(api, namespace, name), WAIT_S, interval_s=0.05,
                         message=f"pod {name} created")
    await api.bind(namespace, name, NODE, uid=pod["metadata"]["uid"])


async def gone(api, namespace: str, name: str) -> None:
    async def deleted():
        try:
            return Seen((await pod_json(api, namespace, name)).get("status"))
        except errors.NotFound:
            return True
    await wait_for(deleted, WAIT_S, interval_s=0.1, message=f"pod {name} deleted")


async def run_attached(cluster, api, namespace: str, name: str, *args: str,
                       stdin: bytes) -> subprocess.CompletedProcess:
    binder = asyncio.ensure_future(bind_when_created(api, namespace, name))
    try:
        return await kubemu_bytes(cluster, "run", "-n", namespace, name, *args, stdin=stdin)
    finally:
        await binder


async def test_run_i_rm_attaches_feeds_stdin_and_deletes_the_pod(cluster, api, ns):
    """`kubectl run -i --rm NAME --image=busybox --restart=Never -- CMD`: the pod
    gets stdin (stdinOnce), the CLI attaches once it runs, this process's stdin
    is the container's, the exit code is the container's, and the pod is
    deleted afterwards."""
    script = 'while read line; do echo "got $line"; done; echo "stdin closed"'
    out = await run_attached(cluster, api, ns, "reader", "-i", "--rm", "--image=busybox",
                             "--restart=Never", "--", "sh", "-c", script,
                             stdin=b"one\ntwo\n")
    assert (out.returncode, out.stdout, out.stderr) == (
        0, b'got one\ngot two\nstdin closed\npod "reader" deleted\n',
        b"If you don't see a command prompt, try pressing enter.\n")
    await gone(api, ns, "reader")


async def test_run_i_returns_the_containers_exit_code_and_keeps_the_pod_without_rm(
        cluster, api, ns):
    out = await run_attached(cluster, api, ns, "failing", "-i", "-q", "--image=busybox",
                             "--restart=Never", "--", "sh", "-c",
                             'read line; echo "got $line"; exit 3', stdin=b"x\n")
    # -q: no prompt hint; kubectl's CodeExitError text, then the container's status.
    assert (out.returncode, out.stdout, out.stderr) == (
        3, b"got x\n", f"pod {ns}/failing terminated (Error)\n".encode())
    pod = await pod_json(api, ns, "failing")
    assert pod["status"]["phase"] == "Failed"
    spec = pod["spec"]["containers"][0]
    assert (spec.get("stdin"), spec.get("stdinOnce"), spec.get("tty")) == (True, True, None)


async def test_run_it_rm_gives_a_shell_on_a_terminal_then_deletes_the_pod(cluster, api, ns):
    """`kubectl run -it --rm tmp --image=busybox --restart=Never -- sh`: a throwaway
    shell on the local terminal."""
    binder = asyncio.ensure_future(bind_when_created(api, ns, "tmp"))
    term = Terminal(cluster, "run", "-n", ns, "-it", "--rm", "tmp", "--image=busybox",
                    "--restart=Never", "--", "sh")
    try:
        await binder
        await asyncio.to_thread(term.expect, b"If you don't see a command prompt, try pressing "
                                             b"enter.")
        mark = len(term.screen)
        term.type(b"\n")
        await asyncio.to_thread(term.expect, PROMPT, SESSION_S, mark)
        term.type(b"echo in-run-$((6*7))\n")
        await asyncio.to_thread(term.expect, b"in-run-42\r\n", SESSION_S, mark)
        term.type(b"exit 0\n")
        code = await asyncio.to_thread(term.wait)
        assert code == 0, bytes(term.screen)
        assert term.screen.endswith(b'pod "tmp" deleted\r\n'), bytes(term.screen)
        assert termios.tcgetattr(term.slave) == term.cooked
    finally:
        binder.cancel()
        term.close()
    await gone(api, ns, "tmp")
