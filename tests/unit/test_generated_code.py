"""The committed protobuf/gRPC modules are exactly what proto/generate.py makes.

Generated code is never edited by hand (DESIGN.md §1): this regenerates every
.proto into a temporary directory and compares it, file by file, with the
modules committed under kubemu/. A stale, missing or left-over module fails
with the command that fixes it.
"""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
FIX = "run `python proto/generate.py` and commit the result"


def _load_generate_module():
    # proto/ is not a package; load the script by path, as CI would run it.
    spec = importlib.util.spec_from_file_location(
        "kubemu_proto_generate", REPO_ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _generated_files(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
            and ".venv" not in p.parts}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, bytes]:
    out_dir = tmp_path_factory.mktemp("generated")
    _load_generate_module().generate(out_dir)
    files = _generated_files(out_dir)
    assert files, "proto/generate.py generated nothing"
    return files


@pytest.fixture(scope="module")
def committed() -> dict[str, bytes]:
    return _generated_files(REPO_ROOT / "kubemu")


def test_every_proto_has_its_generated_modules(fresh, committed):
    missing = sorted(set(fresh) - {f"kubemu/{p}" for p in committed})
    assert not missing, f"generated modules missing from the repo: {missing}; {FIX}"


def test_no_generated_module_without_a_proto(fresh, committed):
    extra = sorted({f"kubemu/{p}" for p in committed} - set(fresh))
    assert not extra, f"generated modules with no .proto behind them: {extra}; {FIX}"


def test_generated_modules_are_up_to_date(fresh):
    stale = sorted(path for path, text in fresh.items()
                   if (REPO_ROOT / path).exists() and (REPO_ROOT / path).read_bytes() != text)
    assert not stale, f"generated modules are stale: {stale}; {FIX}"
