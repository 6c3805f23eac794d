"""Regenerate the protobuf/gRPC Python modules from proto/.

    python proto/generate.py            # writes next to the hand-written code
    python proto/generate.py --out DIR  # writes into DIR (the staleness test)

Every .proto under proto/ is compiled with grpc_tools (pinned in pyproject's
dev extra, so the output is byte-stable). Generated files are never edited by
hand; tests/unit/test_generated_code.py fails when they are stale.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

PROTO_ROOT = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def proto_files() -> list[pathlib.Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: pathlib.Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    argv = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    code = protoc.main(argv)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO_ROOT)
    args = parser.parse_args()
    generate(args.out)


if __name__ == "__main__":
    sys.exit(main())
