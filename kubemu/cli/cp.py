"""`kubemu cp SRC DEST`: files and directories to and from a container, the way
kubectl cp does it: a tar stream through exec, with kubectl's paths and messages.

- A file spec is `[[NAMESPACE/]POD:]PATH`; exactly one side names a pod.
- Into a pod: `test -d DEST` in the container says whether DEST is a
  directory (then the source goes inside it, under its own name). The local
  source (a file, a directory, or a glob) goes as a tar stream whose members
  are named after DEST's last element into `tar -xmf - -C <DEST's parent>`
  (with --no-preserve: `tar --no-same-permissions --no-same-owner -xmf -`).
  The container's tar messages are on stderr.
- Out of a pod: `tar cf - SRC` in the container; each member lands under
  DEST with SRC's own path cut off (`cp pod:/d out` puts d's content in
  out), one outside DEST is skipped with a warning, symlinks are skipped with
  kubectl's warning, files are written with the local umask (modes are not
  kept, as with kubectl). The container's tar messages ("tar: Removing
  leading `/' from member names") come out on stdout, where kubectl prints them.
- The exit status is the remote tar's ("command terminated with exit code N").
- Memory stays bounded: a tar stream is kept in a temporary file that spills
  to disk past SPOOL_BYTES_MAX. (kubectl's --retries, which resumes a broken
  copy from a pod, is not offered.)
The path rules (Go's path.Join/Clean, kubectl's leading-slash and `../`
stripping) are pure functions, tested on their own.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import glob
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
from typing import IO, Any, AsyncIterator, Callable

from kubemu.cli import common
from kubemu.cli.common import CliError

SPOOL_BYTES_MAX = 8 << 20
CHUNK_BYTES = 32 * 1024
FORMAT_ERROR = "filespec must match the canonical format: [[namespace/]pod:]file/path"


# ---------------------------------------------------------------- paths (pure)

@dataclasses.dataclass(frozen=True)
class FileSpec:
    path: str
    pod: str = ""
    namespace: str = ""


def strip_trailing_slash(path: str) -> str:
    return path[:-1] if path not in ("", "/") and path.endswith("/") else path


def go_clean(path: str) -> str:
    """Go's path.Clean (posixpath.normpath keeps a leading `//`; Go does not)."""
    clean = posixpath.normpath(path) if path else "."
    return "/" + clean.lstrip("/") if clean.startswith("//") else clean


def go_join(*parts: str) -> str:
    """Go's path.Join: the non-empty parts joined by `/` and cleaned ("" if none);
    an absolute later part does not replace the earlier ones."""
    kept = [p for p in parts if p]
    return go_clean("/".join(kept)) if kept else ""


def go_dir(path: str) -> str:
    """Go's path.Dir: everything but the last element, cleaned ("." if none)."""
    return go_clean(path[:path.rfind("/") + 1]) if "/" in path else "."


def go_base(path: str) -> str:
    """Go's path.Base: the last element ("." for "", "/" for all slashes)."""
    if not path:
        return "."
    path = path.rstrip("/")
    return path[path.rfind("/") + 1:] if path else "/"


def strip_path_shortcuts(path: str) -> str:
    """kubectl's stripPathShortcuts: no leading `../`, no lone `.`/`..`, no leading `/`."""
    while path.startswith("../"):
        path = path[3:]
    if path in (".", ".."):
        path = ""
    return path[1:] if path.startswith("/") else path


def parse_file_spec(arg: str) -> FileSpec:
    """kubectl's extractFileSpec: `PATH`, `POD:PATH` or `NAMESPACE/POD:PATH`."""
    cut = arg.find(":")
    if cut == 0:
        raise CliError(FORMAT_ERROR)
    if cut < 0:
        return FileSpec(strip_trailing_slash(arg))
    pod, path = arg[:cut], strip_trailing_slash(arg[cut + 1:])
    pieces = pod.split("/")
    if len(pieces) == 1:
        return FileSpec(path, pod=pieces[0])
    if len(pieces) == 2:
        return FileSpec(path, pod=pieces[1], namespace=pieces[0])
    raise CliError(FORMAT_ERROR)


def remote_prefix(src: str) -> str:
    """What every member of `tar cf - SRC` starts with (tar drops leading slashes)."""
    return strip_path_shortcuts(go_clean(src.lstrip("/\\")))


def is_inside(base: str, target: str) -> bool:
    """kubectl's isRelative: `target` is `base` or below it."""
    relative = os.path.relpath(target, base)
    return relative == "." or relative == strip_path_shortcuts(relative)


def extract_command(dest_dir: str, *, no_preserve: bool) -> list[str]:
    command = ["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-"] if no_preserve \
        else ["tar", "-xmf", "-"]
    return command + (["-C", dest_dir] if dest_dir else [])


def symlink_warning(dest_name: str, linkname: str, namespace: str, pod: str, src: str) -> str:
    q = _go_quote
    return (f"warning: skipping symlink: {q(dest_name)} -> {q(linkname)} (consider using "
            f"\"kubemu exec -n {q(namespace)} {q(pod)} -- tar cf - {q(src)} | tar xf -\")")


def _go_quote(text: str) -> str:
    """Go's %q for the plain strings paths are."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- tar (blocking: run in a thread)

def make_tar(src: str, dest: str, out: IO[bytes]) -> None:
    """The local `src` (file, directory or glob) as a tar stream whose members
    are named after `dest`'s last element (kubectl's makeTar)."""
    src_path = os.path.normpath(src)
    dest_path = go_clean(dest)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        _add(archive, os.path.dirname(src_path), os.path.basename(src_path),
             go_base(dest_path))


def _add(archive: tarfile.TarFile, src_dir: str, src_file: str, dest_file: str) -> None:
    for path in sorted(glob.glob(os.path.join(src_dir, src_file), include_hidden=True)):
        info = archive.gettarinfo(path, arcname=dest_file)
        if info is None:  # a socket: tar has no member type for it
            continue
        if info.isdir():
            names = sorted(os.listdir(path))
            if not names:
                archive.addfile(info)
            for name in names:
                _add(archive, src_dir, os.path.join(src_file, name), go_join(dest_file, name))
            return  # as kubectl: the first directory a glob matches ends it
        if info.isreg():
            with open(path, "rb") as f:
                archive.addfile(info, f)
        else:
            archive.addfile(info)


def untar_all(stream: IO[bytes], prefix: str, dest: str, warn: Callable[[str], None],
              symlink_hint: Callable[[str, str], str]) -> None:
    """Extract a `tar cf - SRC` stream under `dest` (kubectl's untarAll)."""
    hinted = False
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not member.name.startswith(prefix):
                raise CliError("tar contents corrupted")
            rest = strip_trailing_slash(member.name[len(prefix):].replace("\\", "/"))
            dest_name = os.path.normpath(go_join(dest, rest)) if rest else dest
            if not is_inside(dest, dest_name):
                warn(f"warning: file {_go_quote(dest_name)} is outside target destination, "
                     f"skipping")
                continue
            os.makedirs(os.path.dirname(dest_name) or ".", 0o755, exist_ok=True)
            if member.isdir():
                os.makedirs(dest_name, 0o755, exist_ok=True)
                continue
            if member.issym():
                if not hinted:
                    warn(symlink_hint(dest_name, member.linkname))
                    hinted = True
                else:
                    warn(f"warning: skipping symlink: {_go_quote(dest_name)} -> "
                         f"{_go_quote(member.linkname)}")
                continue
            with open(dest_name, "wb") as out:
                data = archive.extractfile(member) if member.isreg() else None
                if data is not None:
                    shutil.copyfileobj(data, out, CHUNK_BYTES)


# ---------------------------------------------------------------- the command

async def _spool_chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    await asyncio.to_thread(spool.seek, 0)
    while chunk := await asyncio.to_thread(spool.read, CHUNK_BYTES):
        yield chunk


def _spool_writer(spool: IO[bytes]):
    async def write(data: bytes) -> None:
        await asyncio.to_thread(spool.write, data)
    return write


async def _discard(data: bytes) -> None:
    return None


class _Copy:
    """One `kubemu cp`: the pod, its container and the sessions (exec) it runs."""

    def __init__(self, args: argparse.Namespace, remote: FileSpec, client: Any, proxy: Any):
        self.args = args
        self.namespace = remote.namespace or common.namespace_of(args)
        self.pod_name = remote.pod
        self.client = client
        self.proxy = proxy
        self.container = ""

    async def resolve(self, out: Any) -> None:
        from kubemu.cli import pods

        pod = await pods._runnable_pod(self.client, self.namespace, self.pod_name, "exec")
        self.container = self.args.container or pods.default_container(pod, out=out)

    async def exec(self, command: list[str], *, stdin: AsyncIterator[bytes] | None,
                   stdout, stderr) -> Any:
        from kubemu.api.v1 import resources_pb2
        from kubemu.cli import streaming

        target = resources_pb2.PodStreamTarget(
            namespace=self.namespace, name=self.pod_name, container=self.container,
            command=command, stdin=stdin is not None)
        return await streaming.run_session(self.proxy.stub.PodExecStream, target, stdin=stdin,
                                           stdout=stdout, stderr=stderr)


def _finish(ended: Any) -> int:
    if ended.exit_code:
        print(ended.message or f"command terminated with exit code {ended.exit_code}",
              file=sys.stderr)
    return ended.exit_code


async def _to_pod(copy: _Copy, src: FileSpec, dest: FileSpec) -> int:
    from kubemu.cli import streaming

    if not os.path.exists(src.path):
        raise CliError(f"{src.path} doesn't exist in local filesystem")
    await copy.resolve(sys.stderr)
    dest_file = dest.path
    is_dir = await copy.exec(["test", "-d", dest_file], stdin=None, stdout=_discard,
                             stderr=_discard)
    if is_dir.exit_code == 0:
        dest_file = go_join(dest_file, os.path.basename(os.path.normpath(src.path)))
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES_MAX) as spool:
        await asyncio.to_thread(make_tar, src.path, dest_file, spool)
        ended = await copy.exec(
            extract_command(go_dir(go_clean(dest_file)), no_preserve=copy.args.no_preserve),
            stdin=_spool_chunks(spool), stdout=streaming.output_writer(sys.stdout),
            stderr=streaming.output_writer(sys.stderr))
    return _finish(ended)


async def _from_pod(copy: _Copy, src: FileSpec, dest: FileSpec) -> int:
    from kubemu.cli import streaming

    await copy.resolve(sys.stdout)
    out = streaming.output_writer(sys.stdout)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES_MAX) as spool:
        ended = await copy.exec(["tar", "cf", "-", src.path], stdin=None,
                                stdout=_spool_writer(spool), stderr=out)

        def extract() -> None:
            spool.seek(0)
            try:
                untar_all(spool, remote_prefix(src.path), dest.path,
                          lambda line: print(line, file=sys.stderr),
                          lambda name, link: symlink_warning(name, link, copy.namespace,
                                                             copy.pod_name, src.path))
            except (tarfile.TarError, EOFError):
                if not ended.exit_code:  # a failed tar explains itself
                    raise CliError("tar contents corrupted") from None
        sys.stdout.flush()
        await asyncio.to_thread(extract)
    return _finish(ended)


async def run_cp(args: argparse.Namespace) -> int:
    from kubemu.cli import pods

    if len(args.specs) != 2:
        raise CliError("source and destination are required")
    src, dest = (parse_file_spec(arg) for arg in args.specs)
    if src.pod and dest.pod:
        raise CliError("one of src or dest must be a local file specification")
    if not src.path or not dest.path:
        raise CliError("filepath can not be empty")
    if not src.pod and not dest.pod:
        raise CliError("one of src or dest must be a remote file specification")
    client, proxy = await pods._proxy_for(args)
    try:
        copy = _Copy(args, src if src.pod else dest, client, proxy)
        if src.pod:
            return await _from_pod(copy, src, dest)
        return await _to_pod(copy, src, dest)
    finally:
        await client.close()
        await proxy.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cp", help="copy files and directories to and from containers",
                              description="Copy files and directories to and from containers "
                                          "(needs tar in the container): kubemu cp "
                                          "<file-spec-src> <file-spec-dest>, a file spec being "
                                          "[[NAMESPACE/]POD:]PATH.")
    p.add_argument("specs", nargs="*", metavar="SRC DEST")
    common.add_namespace_arg(p)
    p.add_argument("-c", "--container", default="",
                   help="the container (default: the kubectl.kubernetes.io/default-container "
                        "annotation, else the first)")
    p.add_argument("--no-preserve", action="store_true",
                   help="the copied files' ownership and permissions are not kept in the "
                        "container")
    p.set_defaults(func=run_cp)
