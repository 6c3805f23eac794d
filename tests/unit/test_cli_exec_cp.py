"""`kubemu exec`, `attach` and `cp` before they reach a cluster: argument
handling and kubectl's messages, the terminal decisions, cp's file specs and
path rules, and its tar streams (local files only)."""
from __future__ import annotations

import io
import os
import pathlib

import pytest

from kubemu.cli import cp, main, streaming
from kubemu.cli.common import CliError


def parse(*argv: str):
    return main.build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv, expected", [
    (["exec", "-it", "web"], {"pod": "web", "stdin": True, "tty": True, "quiet": False}),
    (["exec", "web", "-ti", "-c", "app"], {"stdin": True, "tty": True, "container": "app"}),
    (["exec", "-i", "-n", "dev", "web"], {"stdin": True, "tty": False, "namespace": "dev"}),
    (["exec", "--stdin", "--tty=false", "-q", "web"], {"stdin": True, "tty": False,
                                                       "quiet": True}),
    (["attach", "web", "-it"], {"pod": ["web"], "stdin": True, "tty": True}),
    (["attach", "pod", "web", "-c", "x"], {"pod": ["pod", "web"], "container": "x"}),
    (["cp", "a", "web:/b", "--no-preserve", "-c", "x"],
     {"specs": ["a", "web:/b"], "no_preserve": True, "container": "x"}),
], ids=["exec-it", "exec-ti-after-pod", "exec-i", "exec-long-flags", "attach-it",
        "attach-type-name", "cp-flags"])
def test_session_flags(argv, expected):
    args = parse(*argv)
    assert {key: getattr(args, key) for key in expected} == expected


def run(tmp_path: pathlib.Path, capsys, *argv: str) -> tuple[int, str, str]:
    code = main.main(["--home", str(tmp_path), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, stderr", [
    (["exec", "web"], "error: you must specify at least one command for the container\n"),
    (["exec", "web", "ls"], "error: exec [POD] [COMMAND] is not supported anymore. Use exec "
                            "[POD] -- [COMMAND] instead\nSee 'kubemu exec -h' for help and "
                            "examples\n"),
    (["attach"], "error: at least 1 argument is required for attach\n"),
    (["attach", "a", "b", "c"], "error: expected POD, TYPE/NAME, or TYPE NAME, (at most 2 "
                                "arguments) saw 3: [a b c]\n"),
    (["cp", "a"], "error: source and destination are required\n"),
    (["cp", "a", "b", "c"], "error: source and destination are required\n"),
    (["cp", "a", "b"], "error: one of src or dest must be a remote file specification\n"),
    (["cp", "p:a", "ns/q:b"], "error: one of src or dest must be a local file specification\n"),
    (["cp", ":a", "b"], f"error: {cp.FORMAT_ERROR}\n"),
    (["cp", "x/y/z:a", "b"], f"error: {cp.FORMAT_ERROR}\n"),
    (["cp", "p:", "b"], "error: filepath can not be empty\n"),
    (["cp", "p:/x", ""], "error: filepath can not be empty\n"),
], ids=["exec-no-command", "exec-command-without-dashes", "attach-nothing", "attach-three",
        "cp-one", "cp-three", "cp-both-local", "cp-both-remote", "cp-leading-colon",
        "cp-two-slashes", "cp-empty-remote", "cp-empty-local"])
def test_usage_errors_before_any_call(tmp_path, capsys, argv, stderr):
    """Said as kubectl says it, with no cluster to talk to (none is needed)."""
    assert run(tmp_path, capsys, *argv) == (1, "", stderr)


@pytest.mark.parametrize("stdin, tty, terminal, quiet, expected", [
    (False, False, True, False, (False, "")),
    (False, True, True, False, (False, "")),            # -t without -i: no terminal, silently
    (True, False, True, False, (False, "")),
    (True, True, True, False, (True, "")),
    (True, True, False, False, (False, streaming.NOT_A_TERMINAL)),
    (True, True, False, True, (False, "")),
], ids=["neither", "t-only", "i-only", "it-on-terminal", "it-piped", "it-piped-quiet"])
def test_plan_tty(stdin, tty, terminal, quiet, expected):
    assert streaming.plan_tty(stdin=stdin, tty=tty, stdin_is_terminal=terminal,
                              quiet=quiet) == expected


@pytest.mark.parametrize("tty, container_tty, quiet, expected", [
    (True, True, False, (True, "")),
    (False, True, False, (True, "")),  # a container's terminal must be used
    (True, False, False, (False, "error: Unable to use a TTY - container app did not allocate "
                                 "one")),
    (True, False, True, (False, "")),
    (False, False, False, (False, "")),
], ids=["both", "container-only", "client-only", "client-only-quiet", "neither"])
def test_plan_attach_tty(tty, container_tty, quiet, expected):
    assert streaming.plan_attach_tty(tty=tty, container_tty=container_tty, container="app",
                                     quiet=quiet) == expected


# ---------------------------------------------------------------- cp: specs and paths

@pytest.mark.parametrize("arg, expected", [
    ("/tmp/foo", cp.FileSpec("/tmp/foo")),
    ("dir/", cp.FileSpec("dir")),
    ("/", cp.FileSpec("/")),
    ("web:/tmp/foo", cp.FileSpec("/tmp/foo", pod="web")),
    ("dev/web:tmp/foo/", cp.FileSpec("tmp/foo", pod="web", namespace="dev")),
    ("web:a:b", cp.FileSpec("a:b", pod="web")),
], ids=["local", "local-trailing-slash", "root", "pod", "namespace-pod-relative",
        "colon-in-path"])
def test_parse_file_spec(arg, expected):
    assert cp.parse_file_spec(arg) == expected


@pytest.mark.parametrize("fn, args, expected", [
    (cp.go_join, ("/tmp", "bar"), "/tmp/bar"),
    (cp.go_join, ("/tmp", "/abs"), "/tmp/abs"),
    (cp.go_join, ("", "x"), "x"),
    (cp.go_join, ("", ""), ""),
    (cp.go_join, ("a/../..", "b"), "../b"),
    (cp.go_clean, ("//a//b/./c/",), "/a/b/c"),
    (cp.go_clean, ("",), "."),
    (cp.go_dir, ("/tmp/bar",), "/tmp"),
    (cp.go_dir, ("bar",), "."),
    (cp.go_dir, ("/bar",), "/"),
    (cp.go_base, ("/tmp/bar",), "bar"),
    (cp.go_base, ("/",), "/"),
    (cp.strip_path_shortcuts, ("../../a/b",), "a/b"),
    (cp.strip_path_shortcuts, ("..",), ""),
    (cp.strip_path_shortcuts, ("/a",), "a"),
    (cp.remote_prefix, ("/tmp/foo",), "tmp/foo"),
    (cp.remote_prefix, ("../../etc/x",), "etc/x"),
    (cp.remote_prefix, (".",), ""),
    (cp.is_inside, ("/out", "/out/a/b"), True),
    (cp.is_inside, ("/out", "/out"), True),
    (cp.is_inside, ("/out", "/elsewhere"), False),
], ids=lambda v: repr(v) if not callable(v) else v.__name__)
def test_path_rules(fn, args, expected):
    assert fn(*args) == expected


@pytest.mark.parametrize("dest_dir, no_preserve, expected", [
    ("/tmp", False, ["tar", "-xmf", "-", "-C", "/tmp"]),
    (".", True, ["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "."]),
], ids=["preserve", "no-preserve"])
def test_extract_command(dest_dir, no_preserve, expected):
    assert cp.extract_command(dest_dir, no_preserve=no_preserve) == expected


def test_symlink_warning_names_the_command_to_use():
    assert cp.symlink_warning("out/l", "target", "dev", "web", "/d") == (
        'warning: skipping symlink: "out/l" -> "target" (consider using "kubemu exec -n '
        '"dev" "web" -- tar cf - "/d" | tar xf -")')


# ---------------------------------------------------------------- cp: tar streams

def make_tree(root: pathlib.Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "sub" / ".hidden").write_bytes(os.urandom(5000))
    (root / "link").symlink_to("a.txt")


def test_make_tar_names_members_after_the_destination(tmp_path):
    import tarfile

    make_tree(tmp_path / "src")
    out = io.BytesIO()
    cp.make_tar(str(tmp_path / "src"), "/remote/dest", out)
    out.seek(0)
    with tarfile.open(fileobj=out) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert sorted(members) == ["dest/a.txt", "dest/empty", "dest/link", "dest/sub/.hidden"]
    assert members["dest/empty"].isdir() and members["dest/link"].linkname == "a.txt"


def test_untar_all_puts_the_source_content_under_the_destination(tmp_path):
    """What `tar cf - /remote/src` gives (members named remote/src/...) lands in
    dest with the source's own path cut off; a symlink is skipped with a hint."""
    import tarfile

    make_tree(tmp_path / "src")
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        tar.add(tmp_path / "src", arcname="remote/src")
    stream.seek(0)
    out = tmp_path / "out"
    warnings: list[str] = []
    cp.untar_all(stream, cp.remote_prefix("/remote/src"), str(out), warnings.append,
                 lambda name, link: f"hint {name} -> {link}")
    assert (out / "a.txt").read_bytes() == b"alpha\n"
    assert (out / "sub" / ".hidden").read_bytes() == (tmp_path / "src" / "sub" /
                                                     ".hidden").read_bytes()
    assert (out / "empty").is_dir() and not (out / "link").exists()
    assert warnings == [f"hint {out}/link -> a.txt"]


def test_untar_all_refuses_a_foreign_stream_and_skips_escapes(tmp_path):
    import tarfile

    def archive(*names: str) -> io.BytesIO:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = 2
                tar.addfile(info, io.BytesIO(b"hi"))
        out.seek(0)
        return out

    with pytest.raises(CliError, match="tar contents corrupted"):
        cp.untar_all(archive("elsewhere/x"), "tmp/src", str(tmp_path / "o"), print,
                     lambda n, l: "")
    warnings: list[str] = []
    cp.untar_all(archive("tmp/src/ok", "tmp/src/../../../escape"), "tmp/src",
                 str(tmp_path / "o"), warnings.append, lambda n, l: "")
    assert (tmp_path / "o" / "ok").read_bytes() == b"hi"
    assert len(warnings) == 1 and "is outside target destination, skipping" in warnings[0]
    assert not (tmp_path / "escape").exists()
