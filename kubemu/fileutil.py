"""Files a cluster writes, private to the cluster's user and written whole.

Everything under a cluster's home is private (DESIGN.md §3): directories
0700, files and sockets 0600, set explicitly with chmod rather than left to
the process umask, which a user's shell may set to 022 (and which a process
started by someone else's tool may not share).

- `private_dir(path)`: make a directory (and missing parents up to the first
  existing one) 0700, and make the directory itself 0700 if it already exists.
- `atomic_write(path, data, mode=0o600)`: write to a temporary file in the same
  directory, fsync it, chmod it, then rename it over `path`: a reader sees the
  old content or the new, never half of it, and a crash leaves no partial file.
  `fsync=False` skips the flush to disk where losing the file in a power cut
  is acceptable (state that is rebuilt on start), not where it is a record.
- `private_file(path)`: create (or open for append) a file with mode 0600, for
  logs: `open(private_file(p), "ab")`.

These are blocking calls: from a coroutine, run them with asyncio.to_thread
(the runtime and the kubelet do) unless they are on a start-up path.
"""
from __future__ import annotations

import os
import pathlib
import tempfile

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> pathlib.Path:
    path = pathlib.Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by someone else
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    if not missing:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: str | os.PathLike[str], mode: int = FILE_MODE) -> pathlib.Path:
    path = pathlib.Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = FILE_MODE,
                 fsync: bool = True) -> None:
    path = pathlib.Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def tail(path: str | os.PathLike[str], lines: int, bytes_max: int = 256 * 1024) -> str:
    """The last `lines` lines of a file, read from at most its last `bytes_max` bytes
    (a debug log grows to megabytes); "" when it cannot be read. Blocking."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - bytes_max))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
