"""Pod volumes as directories on the node, and how a container sees them.

Where each volume lives on the host (the runtime links the container's
$KUBEMU_ROOTFS/<mountPath> to it, so a process in the pod reads
`$KUBEMU_ROOTFS/<mountPath>/<file>`; relative paths from its working
directory, which is $KUBEMU_ROOTFS unless workingDir is set, work too):

  emptyDir               <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>
                         survives container restarts, removed with the pod
  configMap, secret,     <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>
  downwardAPI, projected one file per key (or per item path), updated in place
                         when the object (or the pod's labels/annotations)
                         changes; removed with the pod
  hostPath               the host path itself (DirectoryOrCreate/FileOrCreate
                         create it; Directory/File/Socket... are checked)
  persistentVolumeClaim  the bound PersistentVolume's hostPath/local path if
                         it has one, else <volumes dir>/<namespace>/<claim>;
                         it outlives the pod (and, with a shared volumes dir,
                         the node)

Files of configMap/secret/downwardAPI/projected volumes are written like
Kubernetes' AtomicWriter: the payload goes into a fresh `..<timestamp>`
directory, `..data` is switched to it with one rename, and each top-level
name is a symlink `<name> -> ..data/<name>`; a reader sees the old or the new
content, never a mix. A subPath mount is `<volume dir>/<subPath>`.

Modes: every directory the kubelet makes here (the pods directory, each
pod's, each volume's and the payload directories) is 0700 and set
explicitly, so no other local user reaches a volume, whatever the umask.
The files of configMap/secret/downwardAPI/projected volumes have the mode
Kubernetes gives them (defaultMode, an item's mode; 0644 by default): that
is what a container sees; the 0700 directories around them keep them
private. A claim's default directory (under the kubelet's private roots)
is 0700 too; hostPaths and a PersistentVolume's own path are the user's and
made as Kubernetes makes them (0755).

`setup` computes the payloads on the event loop (they read the informers'
caches) and does all the file work in one thread; `teardown` and
`known_pods` are blocking, for a thread.

Errors are VolumeError with Kubernetes' message (event FailedMount).
"""
from __future__ import annotations

import asyncio
import datetime
import os
import pathlib
import shutil
import stat
from typing import Awaitable, Callable, Iterable, Mapping

from google.protobuf.message import Message

from kubelet import envvars
from kubemu.fileutil import private_dir

DEFAULT_MODE = 0o644
EMPTY_DIR = "kubernetes.io~empty-dir"
PLUGIN_DIRS = {"config_map": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
               "downward_api": "kubernetes.io~downward-api",
               "projected": "kubernetes.io~projected"}
DATA_LINK = "..data"
PLACEHOLDER_TOKEN = b"kubemu-service-account-token"

# (namespace, claim name) -> host directory of the claim's volume.
ClaimPath = Callable[[str, str], Awaitable[str]]
Payload = dict[str, tuple[bytes, int]]   # relative path -> (content, mode)


class VolumeError(Exception):
    """A volume cannot be set up (yet): MountVolume.SetUp failed."""


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _check_relative(path: str, volume: str) -> str:
    parts = pathlib.PurePosixPath(path).parts
    if not path or path.startswith("/") or ".." in parts:
        raise VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : invalid path '
                          f'"{path}": must be relative and may not contain ".."')
    return path


# ---------------------------------------------------------------- atomic writer

def _write_file(path: pathlib.Path, content: bytes, mode: int) -> None:
    """A new file with `mode` from its first byte (not the umask's)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(content)


def write_atomically(target: pathlib.Path, payload: Payload) -> bool:
    """Make `target` hold exactly `payload`; False when it already did (blocking)."""
    private_dir(target)
    data_link = target / DATA_LINK
    current = None
    if data_link.is_symlink():
        current = target / os.readlink(data_link)
        if _holds(current, payload):
            return False
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y_%m_%d_%H_%M_%S.%f")
    fresh = target / f"..{stamp}"
    suffix = 0
    while fresh.exists():
        suffix += 1
        fresh = target / f"..{stamp}.{suffix}"
    private_dir(fresh)
    for rel, (content, mode) in payload.items():
        path = fresh / rel
        private_dir(path.parent)
        _write_file(path, content, mode)
    tmp_link = target / "..data_tmp"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(fresh.name, tmp_link)
    os.replace(tmp_link, data_link)
    wanted = {pathlib.PurePosixPath(rel).parts[0] for rel in payload}
    for name in wanted:
        link = target / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"{DATA_LINK}/{name}", link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            if entry.name not in (DATA_LINK, fresh.name) and entry.is_dir() \
                    and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_symlink() and entry.name not in wanted:
            entry.unlink()
    return True


def _holds(directory: pathlib.Path, payload: Payload) -> bool:
    if not directory.is_dir():
        return False
    found = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    if found != set(payload):
        return False
    for rel, (content, mode) in payload.items():
        path = directory / rel
        if path.read_bytes() != content or stat.S_IMODE(path.stat().st_mode) != mode:
            return False
    return True


# ---------------------------------------------------------------- payloads

Lookup = envvars.Lookup


def _items_payload(volume: str, kind: str, source: str, obj: Message | None,
                   items, default_mode: int, optional: bool) -> Payload:
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : '
                          f'{kind.lower()} "{source}" not found')
    data = _configmap_data(obj) if kind == "ConfigMap" else dict(obj.data)
    payload: Payload = {}
    if not items:
        for key, value in data.items():
            payload[_check_relative(key, volume)] = (value, default_mode)
        return payload
    for item in items:
        if item.key not in data:
            if optional:
                continue
            what = "config key" if kind == "ConfigMap" else "secret key"
            noun = "configmap" if kind == "ConfigMap" else "secret"
            raise VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : '
                              f'{noun} references non-existent {what}: {item.key}')
        mode = item.mode if item.HasField("mode") else default_mode
        payload[_check_relative(item.path, volume)] = (data[item.key], mode)
    return payload


def _configmap_data(obj: Message) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in obj.data.items()}
    data.update(dict(obj.binary_data))
    return data


def _downward_payload(volume: str, pod: Message, items, default_mode: int, host_ip: str,
                      pod_ip: str, allocatable: Mapping[str, str]) -> Payload:
    payload: Payload = {}
    for item in items:
        try:
            if item.HasField("field_ref"):
                text = envvars.field_value(pod, item.field_ref.field_path, host_ip, pod_ip)
            elif item.HasField("resource_field_ref"):
                ref = item.resource_field_ref
                container = ref.container_name or (pod.spec.containers[0].name
                                                   if pod.spec.containers else "")
                text = envvars.resource_value(pod, container, ref.resource, ref.divisor,
                                              allocatable)
            else:
                continue
        except envvars.ConfigError as err:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : {err}') from None
        mode = item.mode if item.HasField("mode") else default_mode
        payload[_check_relative(item.path, volume)] = (text.encode(), mode)
    return payload


def _mode(source: Message, name: str = "default_mode") -> int:
    return getattr(source, name) if source.HasField(name) else DEFAULT_MODE


def volume_payload(volume: Message, pod: Message, lookup: Lookup, *, host_ip: str,
                   pod_ip: str, allocatable: Mapping[str, str]) -> Payload:
    """The files of a configMap/secret/downwardAPI/projected volume."""
    ns = pod.metadata.namespace
    name = volume.name
    if volume.HasField("config_map"):
        src = volume.config_map
        return _items_payload(name, "ConfigMap", src.name, lookup("ConfigMap", ns, src.name),
                              src.items, _mode(src), src.HasField("optional") and src.optional)
    if volume.HasField("secret"):
        src = volume.secret
        return _items_payload(name, "Secret", src.secret_name,
                              lookup("Secret", ns, src.secret_name), src.items, _mode(src),
                              src.HasField("optional") and src.optional)
    if volume.HasField("downward_api"):
        src = volume.downward_api
        return _downward_payload(name, pod, src.items, _mode(src), host_ip, pod_ip, allocatable)
    if volume.HasField("projected"):
        src = volume.projected
        mode = _mode(src)
        payload: Payload = {}
        for proj in src.sources:
            if proj.HasField("config_map"):
                p = proj.config_map
                payload.update(_items_payload(name, "ConfigMap", p.name,
                                              lookup("ConfigMap", ns, p.name), p.items, mode,
                                              p.HasField("optional") and p.optional))
            elif proj.HasField("secret"):
                p = proj.secret
                payload.update(_items_payload(name, "Secret", p.name,
                                              lookup("Secret", ns, p.name), p.items, mode,
                                              p.HasField("optional") and p.optional))
            elif proj.HasField("downward_api"):
                payload.update(_downward_payload(name, pod, proj.downward_api.items, mode,
                                                 host_ip, pod_ip, allocatable))
            elif proj.HasField("service_account_token"):
                # No token issuer here: a placeholder where the token would be.
                path = proj.service_account_token.path or "token"
                payload[_check_relative(path, name)] = (PLACEHOLDER_TOKEN, mode)
        return payload
    raise AssertionError(f"volume {name} has no file payload")


# ---------------------------------------------------------------- host paths

_HOST_PATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "is not a directory"),
    "File": (stat.S_ISREG, "is not a file"),
    "Socket": (stat.S_ISSOCK, "is not a socket file"),
    "CharDevice": (stat.S_ISCHR, "is not a character device"),
    "BlockDevice": (stat.S_ISBLK, "is not a block device"),
}


def host_path(volume: Message) -> str:
    src = volume.host_path
    path = src.path
    kind = src.type if src.HasField("type") else ""
    if kind == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif kind == "FileOrCreate":
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        if not os.path.exists(path):
            with open(path, "a"):
                pass
    elif kind in _HOST_PATH_CHECKS:
        check, what = _HOST_PATH_CHECKS[kind]
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.name}" : '
                              f'hostPath type check failed: {path} {what}') from None
        if not check(mode):
            raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.name}" : '
                              f'hostPath type check failed: {path} {what}')
    return path


# ---------------------------------------------------------------- the manager

class VolumeManager:
    """Sets up and tears down the volumes of the pods of one node.

    `private_roots`: directories whose insides are the cluster's own (the
    kubelet's root, the shared claims directory): what is made below them
    is private."""

    def __init__(self, root: pathlib.Path, private_roots: Iterable[pathlib.Path] = ()):
        self.pods_dir = root / "pods"
        self.private_roots = [pathlib.Path(os.path.abspath(r)) for r in (root, *private_roots)]

    def pod_dir(self, uid: str) -> pathlib.Path:
        return self.pods_dir / uid

    def _is_private(self, path: str) -> bool:
        absolute = pathlib.Path(os.path.abspath(path))
        return any(absolute.is_relative_to(r) for r in self.private_roots)

    async def setup(self, pod: Message, lookup: Lookup, claim_path: ClaimPath, *,
                    host_ip: str, pod_ip: str,
                    allocatable: Mapping[str, str]) -> dict[str, str]:
        """Every volume of the pod, ready: volume name -> host path. Idempotent;
        file volumes are rewritten only when their content changed."""
        base = self.pod_dir(pod.metadata.uid) / "volumes"
        work: list[tuple[str, str, object]] = []   # (volume, what to do, its argument)
        for volume in pod.spec.volumes:
            if volume.HasField("empty_dir"):
                work.append((volume.name, "dir", base / EMPTY_DIR / volume.name))
            elif volume.HasField("host_path"):
                work.append((volume.name, "host", volume))
            elif volume.HasField("persistent_volume_claim"):
                path = await claim_path(pod.metadata.namespace,
                                        volume.persistent_volume_claim.claim_name)
                work.append((volume.name, "dir" if self._is_private(path) else "user-dir",
                             pathlib.Path(path)))
            else:
                plugin = next((PLUGIN_DIRS[f] for f in PLUGIN_DIRS if volume.HasField(f)), None)
                if plugin is None:
                    # Kinds with no meaning here (nfs, csi, ...): an empty directory.
                    work.append((volume.name, "dir", base / EMPTY_DIR / volume.name))
                    continue
                payload = volume_payload(volume, pod, lookup, host_ip=host_ip, pod_ip=pod_ip,
                                         allocatable=allocatable)
                work.append((volume.name, "files", (base / plugin / volume.name, payload)))
        return await asyncio.to_thread(self._make, base, work)

    def _make(self, base: pathlib.Path, work: list[tuple[str, str, object]]) -> dict[str, str]:
        """The file work of `setup` (blocking)."""
        private_dir(base)
        paths: dict[str, str] = {}
        for name, what, arg in work:
            if what == "dir":
                paths[name] = str(private_dir(arg))
            elif what == "user-dir":
                os.makedirs(arg, exist_ok=True)
                paths[name] = str(arg)
            elif what == "host":
                paths[name] = host_path(arg)
            else:
                target, payload = arg
                write_atomically(target, payload)
                paths[name] = str(target)
        return paths

    def teardown(self, uid: str) -> None:
        """Remove the pod's directory (emptyDir and file volumes); claims and
        hostPaths live elsewhere and stay (blocking)."""
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)

    def known_pods(self) -> list[str]:
        """The uids with a pod directory (blocking)."""
        try:
            return [p.name for p in self.pods_dir.iterdir() if p.is_dir()]
        except FileNotFoundError:
            return []


def mount_host_path(volume_paths: Mapping[str, str], mount: Message) -> str:
    base = volume_paths.get(mount.name)
    if base is None:
        raise VolumeError(f'volume "{mount.name}" not found in the pod\'s volumes')
    sub = mount.sub_path
    if sub:
        _check_relative(sub, mount.name)
        return os.path.join(base, sub)
    return base
