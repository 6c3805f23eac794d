"""The container's init: builds a container's view with Linux namespaces and
starts its first process in it; or enters a running container to run a
command there (exec). Standard library only: the runtime runs it as a script
(`python -I -S -B nsinit.py run|exec --spec-fd N [--report-fd M]`), one
short-lived process per container start or exec, and imports it for its
constants and pure helpers.

The spec is JSON read from `--spec-fd` (a memfd the caller wrote; see
`SPEC_*` keys below). Everything goes through syscalls with ctypes: Python
3.11 has no os.unshare/os.setns, and glibc has no pivot_root wrapper
(`PIVOT_ROOT_SYSCALL`: x86_64 155, aarch64 and riscv64 41; the new mount API
calls open_tree 428, move_mount 429, mount_setattr 442 are the same on every
architecture).

`run` (one container start):

  L (this process, the runtime's child; host root, or the runtime's user when
  rootless) makes a private mount namespace and forks C.
  C: unshare(user)             -> L writes C's uid/gid maps
  L (root):   builds the view under `root` (with host-root rights: private
              volume directories are readable), idmapping volume mounts
              through C's user namespace
  C (rootless: builds the view itself, as root of its user namespace)
  C: unshare(mount, UTS, IPC, PID): its
     mount namespace is a copy of the view, owned by the new user namespace,
     so the container cannot unmount or remount what the view is made of;
     sets the hostname; forks P
  P: PID 1 of the new PID namespace: binds the root onto itself, mounts
     /proc, pivot_root, takes the container's user (groups, gid, uid),
     no_new_privs if asked, its working directory, and execs the command
     with the container's environment.
  L reports `{"pid": <P's host pid>, "pid_ns": "pid:[...]"}` on --report-fd
  once P has exec'd (a close-on-exec pipe tells), or `{"error": ...}`; then
  C and L exit. P is re-parented to the nearest child subreaper: the
  runtime, which reaps it and so collects its exit status.

  Cgroups: `enter_cgroup(spec)` is where L joins a container's cgroup
  before forking C, so everything the container starts is in it: spec
  keys "cgroup" (a directory, or a list of directories / cgroup.procs
  files) and "cgroup_procs" (a list of cgroup.procs files); see its
  docstring. Nothing is joined when neither is given.

  Low ports: with spec["low_ports"], P installs a seccomp filter sending
  bind(2) to the runtime (kubelet/runtime/lowports.py) and passes its
  listener to L, which passes it on with the report (SCM_RIGHTS on the
  report socket; the report then says "bind_listener": true).

  Shared PID namespace (shareProcessNamespace): with spec["join"] =
  {"pid": N, "start_ticks": T} (the pod's pause process), C joins that
  process's user namespace instead of making one, and P is forked into its
  PID and IPC namespaces (P is then not PID 1: the pause process is).

`exec`: enters the namespaces of a running container's PID 1 (`pid`, checked
against `start_ticks`) -- user, mount, UTS, IPC, PID -- forks the command's
process (it is in the container's PID namespace; it dies with this process:
PR_SET_PDEATHSIG) which takes the container's user, working directory and
environment and execs; this process waits and exits with the command's
status (128+N for a signal N). A command that cannot start: its reason on
stderr, exit 126. With `tty`, the command gets a session of its own and
stdin as its controlling terminal.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import signal
import socket
import stat
import struct
import sys
from typing import Any, Iterable

# ---------------------------------------------------------------- kernel ABI

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

# statvfs f_flag bits a remount must keep (locked on mounts a user namespace inherited)
ST_LOCKED_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC))

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_IDMAP = 0x100000
TIOCSCTTY = 0x540E

# pivot_root has no glibc wrapper; its number differs per architecture.
PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41,
                      "armv7l": 218, "ppc64le": 203, "s390x": 217}
# The new mount API: one number on every architecture (asm-generic).
OPEN_TREE_SYSCALL = 428
MOVE_MOUNT_SYSCALL = 429
MOUNT_SETATTR_SYSCALL = 442

SYMLINKS_MAX = 40
NEW_DIR_MODE = 0o755

# ---------------------------------------------------------------- the spec

SPEC_VERSION = 1
# Where the image's bare-named programs appear in a container (first on PATH).
IMAGE_BIN_DIR = "/.kubemu/bin"
# Top-level directories the view makes itself rather than from the host's.
SPECIAL_TOP = ("proc", "sys", "dev", "tmp", "run", "root")
# Directories of the host's tree that a container's root may create files in
# (in its own writable layer): made its own when they exist.
WRITABLE_DIRS = ("/etc", "/var", "/var/log", "/var/cache", "/var/lib", "/var/spool",
                 "/usr/local", "/usr/local/bin", "/usr/local/lib", "/usr/share", "/opt",
                 "/srv", "/home", "/mnt", "/media")
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))

EXEC_CANNOT_RUN_EXIT_CODE = 126
INIT_FAILED_EXIT_CODE = 127


class InitError(Exception):
    """The view could not be made; the message says what and where."""


def start_error_message(argv0: str, err: OSError) -> str:
    """Worded like runc's, which is what users search for."""
    if isinstance(err, FileNotFoundError):
        if "/" in argv0:
            return f'exec: "{argv0}": stat {argv0}: no such file or directory'
        return f'exec: "{argv0}": executable file not found in $PATH'
    if isinstance(err, PermissionError):
        return f'exec: "{argv0}": permission denied'
    return f'exec: "{argv0}": {err.strerror or err}'


def overlay_escape(path: str) -> str:
    """A path as an overlayfs option value: `\\`, `,` and `:` escaped."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def unescape_mountinfo(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 4].isdigit() and len(text[i + 1:i + 4]) == 3:
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str) -> list[str]:
    """The mount points listed in a /proc/<pid>/mountinfo text."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(unescape_mountinfo(fields[4]))
    return points


def has_submounts(top: str, points: Iterable[str]) -> bool:
    """Is anything mounted strictly below the directory `top`?"""
    prefix = top.rstrip("/") + "/"
    return any(p.startswith(prefix) for p in points)


def hidden(path: str, masks: Iterable[str]) -> bool:
    """Would a host path be missing from the container's view without a bind:
    under a mask, or under a top-level directory the container gets its own of
    (/tmp, /run, /root, ...)? Paths elsewhere show through the overlays (a
    bind there would hide the writable layer: a system interpreter's /usr
    bound read-only made /usr/share/nginx impossible to create)."""
    top = path.lstrip("/").split("/", 1)[0]
    return top in SPECIAL_TOP or any(under(path, m) for m in masks)


def under(path: str, parent: str) -> bool:
    parent = parent.rstrip("/")
    return path == parent or path.startswith(parent + "/")


def hosts_file(hostname: str, pod_ip: str, domain: str = "",
               aliases: Iterable[tuple[str, Iterable[str]]] = ()) -> str:
    """/etc/hosts as the kubelet writes it (managedHostsFileContent)."""
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
             "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    if pod_ip:
        lines.append(f"{pod_ip}\t{hostname}.{domain}\t{hostname}" if domain
                     else f"{pod_ip}\t{hostname}")
    aliases = list(aliases)
    if aliases:
        lines += ["", "# Entries added by HostAliases."]
        lines += ["\t".join([ip, *names]) for ip, names in aliases]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- syscalls

class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class Kernel:
    """The syscalls this module needs, raising OSError with what was asked."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.pivot_root_nr = PIVOT_ROOT_SYSCALL.get(platform.machine())

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"{what}: {os.strerror(code)}")
        return result

    @staticmethod
    def _b(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    def unshare(self, flags: int) -> None:
        self._check(self.libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")

    def setns(self, fd: int, flags: int) -> None:
        self._check(self.libc.setns(ctypes.c_int(fd), ctypes.c_int(flags)),
                    f"setns({flags:#x})")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        self._check(self.libc.mount(self._b(source), self._b(target), self._b(fstype),
                                    ctypes.c_ulong(flags), self._b(data)),
                    f"mount {fstype or 'bind'} {source or ''} on {target}")

    def umount(self, target: str, flags: int = 0) -> None:
        self._check(self.libc.umount2(self._b(target), ctypes.c_int(flags)), f"umount {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        if self.pivot_root_nr is None:
            raise OSError(errno.ENOSYS, f"pivot_root: no syscall number for {platform.machine()}")
        self._check(self.libc.syscall(ctypes.c_long(self.pivot_root_nr), self._b(new_root),
                                      self._b(put_old)), "pivot_root")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self._check(self.libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")

    def prctl(self, option: int, arg: int) -> None:
        self._check(self.libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                                    ctypes.c_ulong(0), ctypes.c_ulong(0)), f"prctl({option})")

    def open_tree(self, path: str, flags: int) -> int:
        return self._check(self.libc.syscall(ctypes.c_long(OPEN_TREE_SYSCALL), ctypes.c_int(AT_FDCWD),
                                             self._b(path), ctypes.c_uint(flags)),
                           f"open_tree {path}")

    def mount_setattr(self, fd: int, flags: int, attr: MountAttr) -> None:
        self._check(self.libc.syscall(ctypes.c_long(MOUNT_SETATTR_SYSCALL), ctypes.c_int(fd), b"",
                                      ctypes.c_uint(flags), ctypes.byref(attr),
                                      ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")

    def move_mount(self, fd: int, target: str) -> None:
        self._check(self.libc.syscall(ctypes.c_long(MOVE_MOUNT_SYSCALL), ctypes.c_int(fd), b"",
                                      ctypes.c_int(AT_FDCWD), self._b(target),
                                      ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)),
                        f"move_mount to {target}")


# ---------------------------------------------------------------- paths

def safe_join(root: str, path: str) -> str:
    """`path` (absolute, as the container sees it) as a host path under `root`,
    following symlinks as the container would (an absolute target is relative
    to `root`), never outside `root`. Missing components are kept as named."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    followed = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except FileNotFoundError:
            is_link = False
        if not is_link:
            resolved.append(part)
            continue
        followed += 1
        if followed > SYMLINKS_MAX:
            raise InitError(f"too many levels of symbolic links in {path}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return os.path.join(root, *resolved)


# ---------------------------------------------------------------- the view

class View:
    """Builds the container's view under spec["root"]; run by a process with the
    rights the mounts need (host root, or root of the container's user
    namespace when rootless)."""

    def __init__(self, kernel: Kernel, spec: dict[str, Any], userns_fd: int | None):
        self.k = kernel
        self.spec = spec
        self.root = spec["root"]
        self.layer = spec["layer"]
        self.owner = (spec["root_uid"], spec["root_gid"])
        self.chown = spec.get("chown", True)
        self.userns_fd = userns_fd
        self.readonly = spec.get("readonly_rootfs", False)
        # The top-level directories given a writable layer (an overlay).
        self.overlays: list[str] = []

    # -- helpers

    def _own(self, path: str) -> None:
        if self.chown:
            os.lchown(path, *self.owner)

    def makedirs(self, path: str, mode: int = NEW_DIR_MODE) -> None:
        """Directories under the root, made (and owned by the container's root) as needed."""
        missing = []
        probe = path
        while not os.path.lexists(probe) and probe != self.root:
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):
            os.mkdir(directory, mode)
            os.chmod(directory, mode)
            self._own(directory)

    def in_view(self, container_path: str) -> str:
        return safe_join(self.root, container_path)

    def mountpoint(self, target: str, source_is_dir: bool) -> None:
        if source_is_dir:
            if os.path.islink(target):
                os.unlink(target)
            self.makedirs(target)
            return
        self.makedirs(os.path.dirname(target))
        if os.path.islink(target):
            os.unlink(target)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            self._own(target)

    def bind(self, source: str, target: str, *, readonly: bool, recursive: bool = True,
             idmap: bool = False, flags: int = 0) -> None:
        if idmap and self.userns_fd is not None:
            self._bind_idmapped(source, target, readonly=readonly)
            return
        self.k.mount(source, target, None, MS_BIND | (MS_REC if recursive else 0) | flags)
        if readonly:
            self.make_readonly(target, recursive=recursive)

    def _bind_idmapped(self, source: str, target: str, *, readonly: bool) -> None:
        fd = self.k.open_tree(source, OPEN_TREE_CLONE)
        try:
            attr = MountAttr(attr_set=MOUNT_ATTR_IDMAP | (MOUNT_ATTR_RDONLY if readonly else 0),
                             userns_fd=self.userns_fd)
            self.k.mount_setattr(fd, AT_EMPTY_PATH, attr)
            self.k.move_mount(fd, target)
        finally:
            os.close(fd)

    def make_readonly(self, target: str, *, recursive: bool) -> None:
        if recursive:
            fd = os.open(target, os.O_PATH | os.O_CLOEXEC)
            try:
                self.k.mount_setattr(fd, AT_EMPTY_PATH | AT_RECURSIVE,
                                     MountAttr(attr_set=MOUNT_ATTR_RDONLY))
                return
            except OSError as err:
                if err.errno not in (errno.ENOSYS, errno.EINVAL):
                    raise
            finally:
                os.close(fd)
        locked = 0
        flags = os.statvfs(target).f_flag
        for st_flag, ms_flag in ST_LOCKED_FLAGS:
            if flags & st_flag:
                locked |= ms_flag
        self.k.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)

    def tmpfs(self, target: str, options: str, flags: int = MS_NOSUID | MS_NODEV) -> None:
        owner = f",uid={self.owner[0]},gid={self.owner[1]}" if self.chown else ""
        self.k.mount("tmpfs", target, "tmpfs", flags, options + owner)

    # -- the steps

    def build(self) -> None:
        spec = self.spec
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.layer, exist_ok=True)
        self.tmpfs(self.root, "mode=0755")
        self.k.mount("tmpfs", self.layer, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
        with open("/proc/self/mountinfo") as f:
            points = mount_points(f.read())
        self.top_level(points)
        self.special_dirs()
        self.binds_and_masks()
        self.etc_files()
        self.volumes()
        if spec.get("bin_dir"):
            target = self.in_view(IMAGE_BIN_DIR)
            self.mountpoint(target, True)
            self.bind(spec["bin_dir"], target, readonly=True)
        self.workdir()
        if self.readonly:
            # As runc: the root is writable while the view is built (volumes'
            # mount points, such as /etc/coredns, are made in it), then
            # read-only; the volumes mounted on it keep their own mode.
            for target in self.overlays:
                self.make_readonly(target, recursive=False)
            self.make_readonly(self.root, recursive=False)

    def top_level(self, points: list[str]) -> None:
        for entry in sorted(os.scandir("/"), key=lambda e: e.name):
            name, host = entry.name, "/" + entry.name
            target = os.path.join(self.root, name)
            if entry.is_symlink():
                os.symlink(os.readlink(host), target)
                self._own(target)
                continue
            if not entry.is_dir(follow_symlinks=False) or name in SPECIAL_TOP:
                continue
            os.mkdir(target, NEW_DIR_MODE)
            self._own(target)
            if has_submounts(host, points) or any(c in name for c in "\\,:"):
                self.bind(host, target, readonly=True)
                continue
            try:
                self.overlay(host, target, name)
                self.overlays.append(target)
            except OSError:
                self.bind(host, target, readonly=True)  # the host's, read-only: a stated fallback

    def overlay(self, host: str, target: str, name: str) -> None:
        upper = os.path.join(self.layer, name, "upper")
        work = os.path.join(self.layer, name, "work")
        os.makedirs(upper)
        os.makedirs(work)
        mode = stat.S_IMODE(os.stat(host).st_mode)
        os.chmod(upper, mode)
        self._own(upper)
        self._own(work)
        options = f"lowerdir={overlay_escape(host)},upperdir={overlay_escape(upper)}," \
                  f"workdir={overlay_escape(work)}"
        if self.spec.get("rootless"):
            options += ",userxattr"
            self.upper_dirs(host, upper)
        self.k.mount("overlay", target, "overlay", 0, options)
        # Directories a container's root may write in: its own (copied up on chown).
        for directory in WRITABLE_DIRS:
            if under(directory, host) and directory != host and self.chown:
                inside = os.path.join(self.root, directory.lstrip("/"))
                try:
                    if stat.S_ISDIR(os.lstat(inside).st_mode):
                        os.lchown(inside, *self.owner)
                except OSError:
                    pass

    def upper_dirs(self, host: str, upper: str) -> None:
        """Rootless, the container's root cannot chown the host's directories
        (their owners are not mapped) nor create entries in them: directories
        it must own (WRITABLE_DIRS, the parents of its mount points and its
        working directory) are made in the writable layer before the overlay
        is mounted, so the merged directory is its own (as a chown's copy-up
        makes it when the runtime is root)."""
        wanted = [d for d in WRITABLE_DIRS if under(d, host) and d != host]
        for m in self.spec.get("mounts", ()):
            path = os.path.normpath("/" + m["container_path"])
            wanted.append(path if os.path.isdir(m["host_path"]) else os.path.dirname(path))
        wanted.append(os.path.normpath("/" + (self.spec["process"].get("cwd") or "/")))
        for path in sorted(set(wanted)):
            if not under(path, host) or path == host:
                continue
            probe, inside = host, upper
            for part in os.path.relpath(path, host).split("/"):
                probe, inside = os.path.join(probe, part), os.path.join(inside, part)
                try:
                    mode = os.lstat(probe).st_mode
                except OSError:
                    mode = stat.S_IFDIR | NEW_DIR_MODE
                if not stat.S_ISDIR(mode):
                    break  # a file or symlink of the host's: left as it is
                if not os.path.isdir(inside):
                    os.mkdir(inside)
                    os.chmod(inside, stat.S_IMODE(mode))

    def special_dirs(self) -> None:
        root = self.root
        for name, mode in (("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777),
                           ("run", 0o755), ("root", 0o700)):
            path = os.path.join(root, name)
            os.mkdir(path, mode)
            os.chmod(path, mode)
            self._own(path)
        try:
            self.bind("/sys", os.path.join(root, "sys"), readonly=True)
        except OSError:
            pass  # no /sys: stated in the runtime's gaps
        dev = os.path.join(root, "dev")
        self.tmpfs(dev, "mode=0755,size=65536k", MS_NOSUID | MS_NOEXEC)
        for node in DEV_NODES:
            target = os.path.join(dev, node)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
            self.k.mount(f"/dev/{node}", target, None, MS_BIND)
        pts = os.path.join(dev, "pts")
        os.mkdir(pts, 0o755)
        # The host's devpts: the terminals the runtime opens for `tty` containers
        # and `exec -t` keep their names in there (`tty`, ttyname); only their
        # owners (host users, never a container's) may open them.
        try:
            self.k.mount("/dev/pts", pts, None, MS_BIND)
        except OSError:
            try:
                self.k.mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC,
                             "newinstance,ptmxmode=0666,mode=0620")
            except OSError:
                pass  # no pseudo-terminals in the container
        for name, link in DEV_LINKS:
            os.symlink(link, os.path.join(dev, name))
        shm = os.path.join(dev, "shm")
        os.mkdir(shm, 0o1777)
        if self.spec.get("shm"):
            self.bind(self.spec["shm"], shm, readonly=False, recursive=False,
                      idmap=self.spec.get("idmap_mounts", False))
        else:
            self.tmpfs(shm, "mode=1777,size=65536k", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    def binds_and_masks(self) -> None:
        """Host paths the image stand-ins need, read-only at their own paths,
        then masks (empty, read-only) over what the container must not see;
        a needed path under a mask is bound again on top of it."""
        masks = [m for m in self.spec.get("masks", ()) if m != "/"]
        needed = [p for p in self.spec.get("binds", ()) if hidden(p, masks)]
        for path in needed:
            if not any(under(path, m) for m in masks):
                self._bind_needed(path)
        for mask in masks:
            target = self.in_view(mask)
            if not os.path.isdir(target) or os.path.islink(target):
                continue
            inside = [p for p in needed if under(p, mask) and p != mask]
            self.tmpfs(target, "mode=0755,size=16k", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            for path in inside:
                self._bind_needed(path)
            self.k.mount(None, target, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV |
                         MS_NOEXEC, "size=16k")

    def _bind_needed(self, path: str) -> None:
        if not os.path.exists(path):
            return
        target = self.in_view(path)
        is_dir = os.path.isdir(path)
        if under(path, "/root"):
            os.chmod(os.path.join(self.root, "root"), 0o711)  # traversable to what is bound there
        try:
            self.mountpoint(target, is_dir)
        except OSError:
            if not os.path.exists(target):
                raise
        self.bind(path, target, readonly=True)

    def etc_files(self) -> None:
        """/etc/hostname, /etc/hosts, /etc/resolv.conf: the container's own
        copies (0644, its root's), bound over the host's."""
        files = self.spec.get("etc_files", {})
        if not files:
            return
        staging = os.path.join(self.layer, "etc-files")
        os.mkdir(staging, 0o755)
        for name, content in sorted(files.items()):
            source = os.path.join(staging, name)
            with open(source, "w") as f:
                f.write(content)
            os.chmod(source, 0o644)
            self._own(source)
            target = self.in_view(f"/etc/{name}")
            try:
                self.mountpoint(target, False)
            except OSError:
                if not os.path.isfile(target):
                    continue  # a read-only /etc without the file: stated in the gaps
            self.bind(source, target, readonly=False, recursive=False)

    def volumes(self) -> None:
        mounts = sorted(self.spec.get("mounts", ()),
                        key=lambda m: m["container_path"].rstrip("/").count("/"))
        idmap = self.spec.get("idmap_mounts", False)
        for m in mounts:
            source = m["host_path"]
            try:
                is_dir = stat.S_ISDIR(os.stat(source).st_mode)
            except FileNotFoundError:
                os.makedirs(source, exist_ok=True)  # as containerd does for a bind source
                is_dir = True
            target = self.in_view(m["container_path"])
            if target == self.root:
                raise InitError(f"mount {source!r}: a volume cannot be mounted at /")
            try:
                self.mountpoint(target, is_dir)
                self.bind(source, target, readonly=m.get("readonly", False),
                          recursive=not idmap, idmap=idmap)
            except OSError as err:
                raise InitError(f'error mounting "{source}" to rootfs at '
                                f'"{m["container_path"]}": {err.strerror or err}') from None

    def workdir(self) -> None:
        cwd = self.spec["process"].get("cwd") or "/"
        target = self.in_view(cwd)
        if not os.path.isdir(target):
            try:
                self.makedirs(target)
            except OSError:
                pass  # reported when P cannot chdir there


# ---------------------------------------------------------------- the process

def enter_cgroup(spec: dict[str, Any]) -> None:
    """Hook for resource limits: join the container's cgroup(s) before anything of
    the container is forked, so that all of it is accounted there. L calls it
    first thing in `run`; C, P and everything the container starts inherit it.

    The contract (the cgroups work fills these in the spec; absent: nothing):
    - spec["cgroup"]: a cgroup directory (its cgroup.procs gets this pid), or a
      list of such directories or of cgroup.procs files (cgroups v1: one per
      hierarchy);
    - spec["cgroup_procs"]: a list of cgroup.procs file paths to write this pid to.
    A write that fails raises InitError naming the file (the container does
    not start outside its limits)."""
    targets: list[str] = []
    given = spec.get("cgroup")
    if isinstance(given, str) and given:
        targets.append(given)
    elif isinstance(given, list):
        targets += [str(g) for g in given if g]
    targets += [str(p) for p in spec.get("cgroup_procs", ()) if p]
    pid = str(os.getpid()).encode()
    for target in targets:
        procs = target if os.path.basename(target) == "cgroup.procs" else \
            os.path.join(target, "cgroup.procs")
        try:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        except OSError as err:
            raise InitError(f"error during container init: joining cgroup {procs}: "
                            f"{err.strerror or err}") from None


def reset_signals() -> None:
    """What exec inherits from Python: ignored SIGPIPE/SIGXFSZ and masks are reset."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT,
                signal.SIGHUP, signal.SIGCHLD):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def take_user(kernel: Kernel, process: dict[str, Any], groups_allowed: bool) -> None:
    uid, gid = process.get("uid", 0), process.get("gid", 0)
    if groups_allowed:
        os.setgroups(process.get("groups", []))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if process.get("no_new_privs"):
        kernel.prctl(PR_SET_NO_NEW_PRIVS, 1)


def home_of(uid: int) -> str:
    """HOME as Docker sets it: the user's entry in the container's /etc/passwd, else /."""
    try:
        import pwd
        return pwd.getpwuid(uid).pw_dir or "/"
    except (KeyError, ImportError):
        return "/root" if uid == 0 else "/"


def exec_process(kernel: Kernel, process: dict[str, Any], status_w: int, *,
                 groups_allowed: bool, keep_fds: tuple[int, ...] = (0, 1, 2)) -> None:
    """Become the container's process and exec; on failure write the reason
    to `status_w` (close-on-exec: nothing arrives when exec succeeds)."""
    argv = process["argv"]
    try:
        take_user(kernel, process, groups_allowed)
        env = dict(process["env"])
        env.setdefault("HOME", home_of(process.get("uid", 0)))
        cwd = process.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as err:
            raise InitError(f"chdir to cwd (\"{cwd}\") set in config.json failed: "
                            f"{err.strerror}") from None
        if process.get("tty") and os.isatty(0):
            if os.getsid(0) != os.getpid():  # a container's PID 1 has its session already
                os.setsid()
            import fcntl
            fcntl.ioctl(0, TIOCSCTTY, 0)
        reset_signals()
        os.closerange(max(keep_fds) + 1, status_w)
        os.closerange(status_w + 1, 1 << 16)
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as err:
            report = {"error": start_error_message(argv[0], err), "stage": "exec",
                      "errno": err.errno}
    except InitError as err:
        report = {"error": str(err), "stage": "init"}
    except OSError as err:
        report = {"error": f"error during container init: {err.strerror or err}",
                  "stage": "init"}
    except Exception as err:  # a bug: say so rather than hang the caller
        report = {"error": f"error during container init: {type(err).__name__}: {err}",
                  "stage": "init"}
    try:
        os.write(status_w, json.dumps(report).encode())
    finally:
        os._exit(INIT_FAILED_EXIT_CODE)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def write_maps(pid: int, spec: dict[str, Any]) -> None:
    if spec.get("setgroups") == "deny":
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, key in (("uid_map", "uid_map"), ("gid_map", "gid_map")):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("".join(f"{a} {b} {c}\n" for a, b, c in spec[key]))


def run(kernel: Kernel, spec: dict[str, Any], report_fd: int) -> int:
    """The `run` action, in L; the report says how it went."""
    rootless = spec.get("rootless", False)
    namespaces = spec.get("namespaces", {})
    flags = CLONE_NEWNS | CLONE_NEWUTS
    if namespaces.get("ipc", True):
        flags |= CLONE_NEWIPC
    if namespaces.get("pid", True):
        flags |= CLONE_NEWPID
    try:
        enter_cgroup(spec)
        join = _open_join(spec.get("join"))
    except InitError as err:
        send_report(report_fd, {"error": str(err), "stage": "init"}, [])
        return 1
    if join:
        flags &= ~(CLONE_NEWPID | CLONE_NEWIPC)
    if not rootless:
        kernel.unshare(CLONE_NEWNS)
        kernel.mount(None, "/", None, MS_REC | MS_PRIVATE)
    to_l_r, to_l_w = os.pipe()       # C -> L: "unshared", then P's pid
    to_c_r, to_c_w = os.pipe()       # L -> C: "maps written", "view built"
    status_r, status_w = os.pipe()   # P -> L: why exec failed (EOF: it did not)
    # P -> L: the low-ports filter's listener (kubelet/runtime/lowports.py)
    fds_l, fds_p = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    child = os.fork()
    if child == 0:  # C
        os.close(to_l_r)
        os.close(to_c_w)
        os.close(status_r)
        try:
            if join:  # the pod's user namespace (its maps are written already)
                kernel.setns(join["user"], CLONE_NEWUSER)
                if rootless:
                    kernel.unshare(CLONE_NEWNS)
            else:
                kernel.unshare(CLONE_NEWUSER | (CLONE_NEWNS if rootless else 0))
            os.write(to_l_w, b"u")
            if os.read(to_c_r, 1) != b"m":
                os._exit(1)
            # C and P keep their host identity (as root: the owner of the runtime's
            # private directories, so the paths to the view resolve) until P takes
            # the container's user, just before exec.
            if rootless:
                kernel.mount(None, "/", None, MS_REC | MS_PRIVATE)
                View(kernel, spec, None).build()
            elif os.read(to_c_r, 1) != b"v":
                os._exit(1)
            kernel.unshare(flags)
            if join:  # the pod's IPC and PID namespaces: P is a process of the pod's
                kernel.setns(join["ipc"], CLONE_NEWIPC)
                kernel.setns(join["pid"], CLONE_NEWPID)
            kernel.sethostname(spec.get("hostname") or "localhost")
            pid = os.fork()
            if pid == 0:  # P
                os.close(to_l_w)
                os.close(to_c_r)
                fds_l.close()
                container_init(kernel, spec, status_w, fds_p)
            os.write(to_l_w, f"p{pid}".encode())
            os._exit(0)
        except BaseException as err:  # noqa: BLE001 - everything must reach L
            message = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            try:
                os.write(status_w, json.dumps({"error": f"error during container init: "
                                                        f"{message}", "stage": "init"}).encode())
            finally:
                os._exit(INIT_FAILED_EXIT_CODE)
    os.close(to_l_w)
    os.close(to_c_r)
    os.close(status_w)
    fds_p.close()
    passed: list[int] = []
    report: dict[str, Any]
    try:
        if os.read(to_l_r, 1) != b"u":
            raise InitError("error during container init: the namespaces could not be made")
        if not join:
            write_maps(child, spec)
        if rootless:
            os.write(to_c_w, b"m")
        else:
            userns_fd = os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC) \
                if spec.get("idmap_mounts") else None
            os.write(to_c_w, b"m")
            try:
                View(kernel, spec, userns_fd).build()
            finally:
                if userns_fd is not None:
                    os.close(userns_fd)
            os.write(to_c_w, b"v")
        said = _read_all(to_l_r).decode()
        failure = _read_all(status_r)
        if failure:
            report = json.loads(failure)
        elif said.startswith("p"):
            pid = int(said[1:])
            report = {"pid": pid}
            fds_l.setblocking(False)  # P sent it before exec, or never will
            try:
                _, passed, _, _ = socket.recv_fds(fds_l, 16, 1)
            except OSError:
                passed = []  # no filter: P could not install it (stated in the README)
            if passed:
                report["bind_listener"] = True
            try:
                report["pid_ns"] = os.readlink(f"/proc/{pid}/ns/pid")
            except OSError:
                pass  # already gone: the runtime reaps it and sees how it ended
        else:
            report = {"error": "error during container init: the container's process "
                               "was not started", "stage": "init"}
    except InitError as err:
        report = {"error": str(err), "stage": "init"}
    except OSError as err:
        report = {"error": f"error during container init: {err}", "stage": "init"}
    finally:
        os.close(to_c_w)  # a C still waiting for the view ends on EOF
        os.waitpid(child, 0)
        fds_l.close()
    send_report(report_fd, report, passed)
    return 0 if "pid" in report else 1


def _open_join(join: dict[str, Any] | None) -> dict[str, int]:
    """The namespaces (user, PID, IPC) of the pod's first process to join
    (shareProcessNamespace): fds by name, {} when none is asked. InitError
    when that process is gone (a recycled pid is told by its start time)."""
    if not join:
        return {}
    pid = join["pid"]
    try:
        if _start_ticks(pid) != join["start_ticks"]:
            raise FileNotFoundError
        return {name: os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
                for name in ("user", "pid", "ipc")}
    except (FileNotFoundError, ProcessLookupError):
        raise InitError("error during container init: the pod's shared PID namespace is "
                        "gone (its first process ended)") from None


def send_report(report_fd: int, report: dict[str, Any], fds: list[int]) -> None:
    """The launch report, with the fds it names when the report fd is a unix socket."""
    data = json.dumps(report).encode()
    if fds:
        sock = socket.socket(fileno=report_fd)
        try:
            socket.send_fds(sock, [data], fds)
        finally:
            sock.detach()
            for fd in fds:
                os.close(fd)
        return
    os.write(report_fd, data)


def container_init(kernel: Kernel, spec: dict[str, Any], status_w: int,
                   fds_p: socket.socket | None = None) -> None:
    """P: PID 1 of the container (when it has a PID namespace). Never returns."""
    if spec.get("low_ports") and fds_p is not None:
        try:
            listener = install_bind_filter(kernel.libc)
            socket.send_fds(fds_p, [b"l"], [listener])
            os.close(listener)
        except OSError:
            pass  # the kernel refuses: ports below 1024 stay the host's to give (README)
    if fds_p is not None:
        fds_p.close()
    try:
        root = spec["root"]
        os.setsid()
        # A mount of our own to pivot to (the view's mounts were copied from a
        # more privileged namespace, locked as they are).
        kernel.mount(root, root, None, MS_BIND | MS_REC)
        if spec.get("namespaces", {}).get("pid", True):
            kernel.mount("proc", os.path.join(root, "proc"), "proc",
                         MS_NOSUID | MS_NODEV | MS_NOEXEC)
        else:
            kernel.mount("/proc", os.path.join(root, "proc"), None, MS_BIND | MS_REC)
        os.chdir(root)
        kernel.pivot_root(".", ".")
        kernel.umount(".", MNT_DETACH)
        os.chdir("/")
    except OSError as err:
        os.write(status_w, json.dumps({"error": f"error during container init: {err}",
                                       "stage": "init"}).encode())
        os._exit(INIT_FAILED_EXIT_CODE)
    exec_process(kernel, spec["process"], status_w,
                 groups_allowed=spec.get("setgroups") != "deny")


# ---------------------------------------------------------------- low ports

# The low-ports filter (kubelet/runtime/lowports.py): x86_64's bind(2) (49) goes to the supervisor; anything else is allowed.
SECCOMP_SYSCALL = {"x86_64": 317}
BIND_SYSCALL = {"x86_64": 49}
AUDIT_ARCH = {"x86_64": 0xC000003E}
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
RET_ALLOW = 0x7FFF0000
RET_USER_NOTIF = 0x7FC00000


def bind_filter_program(machine: str) -> bytes:
    """The BPF program (struct sock_filter[]) of the filter."""
    ld_abs, jeq, ret = 0x20, 0x15, 0x06
    rules = [(ld_abs, 0, 0, 4),                        # arch
             (jeq, 0, 3, AUDIT_ARCH[machine]),         # other arch: allow
             (ld_abs, 0, 0, 0),                        # syscall number
             (jeq, 0, 1, BIND_SYSCALL[machine]),
             (ret, 0, 0, RET_USER_NOTIF),
             (ret, 0, 0, RET_ALLOW)]
    return b"".join(struct.pack("=HBBI", *rule) for rule in rules)


def install_bind_filter(libc: ctypes.CDLL) -> int:
    """Install the filter in this process (inherited by its children and kept
    across exec); the listener's fd. Needs no_new_privs or CAP_SYS_ADMIN in the
    process's user namespace. OSError when the kernel refuses."""
    machine = platform.machine()
    program = bind_filter_program(machine)
    buffer = ctypes.create_string_buffer(program, len(program))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Fprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    fd = libc.syscall(ctypes.c_long(SECCOMP_SYSCALL[machine]),
                      ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                      ctypes.c_uint(SECCOMP_FILTER_FLAG_NEW_LISTENER), ctypes.byref(prog))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"seccomp: {os.strerror(code)}")
    return fd



# ---------------------------------------------------------------- exec

def _start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode(errors="replace")
    return int(data[data.rfind(")") + 2:].split()[19])


def enter(kernel: Kernel, spec: dict[str, Any]) -> int:
    """The `exec` action: run spec["process"] inside the running container."""
    pid = spec["pid"]
    process = spec["process"]
    try:
        pidfd = os.pidfd_open(pid)
        if _start_ticks(pid) != spec["start_ticks"]:
            raise ProcessLookupError
    except (ProcessLookupError, FileNotFoundError):
        sys.stderr.write("the container is not running\n")
        return EXEC_CANNOT_RUN_EXIT_CODE
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS
    namespaces = spec.get("namespaces", {})
    if namespaces.get("ipc", True):
        flags |= CLONE_NEWIPC
    if namespaces.get("pid", True):
        flags |= CLONE_NEWPID
    try:
        kernel.setns(pidfd, flags)
    except OSError:
        _setns_by_path(kernel, pid, flags)
    finally:
        os.close(pidfd)
    status_r, status_w = os.pipe()
    me = os.getpid()
    child = os.fork()
    if child == 0:
        os.close(status_r)
        kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() not in (0, me):  # our parent is gone already
            os._exit(EXEC_CANNOT_RUN_EXIT_CODE)
        exec_process(kernel, process, status_w, groups_allowed=spec.get("setgroups") != "deny")
    os.close(status_w)
    failure = _read_all(status_r)
    os.close(status_r)
    # Signals meant for the command (a runtime's SIGTERM) are passed on.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if failure:
        sys.stderr.write(json.loads(failure)["error"] + "\n")
        return EXEC_CANNOT_RUN_EXIT_CODE
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _setns_by_path(kernel: Kernel, pid: int, flags: int) -> None:
    """Kernels before 5.8 cannot setns a pidfd: the namespace files, user first."""
    order = [(CLONE_NEWUSER, "user"), (CLONE_NEWIPC, "ipc"), (CLONE_NEWUTS, "uts"),
             (CLONE_NEWPID, "pid"), (CLONE_NEWNS, "mnt")]
    fds = [(flag, os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
           for flag, name in order if flags & flag]
    try:
        for flag, fd in fds:
            kernel.setns(fd, flag)
    finally:
        for _, fd in fds:
            os.close(fd)


# ---------------------------------------------------------------- main

def read_spec(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    spec = json.loads(_read_all(fd))
    os.close(fd)
    if spec.get("version") != SPEC_VERSION:
        raise InitError(f"spec version {spec.get('version')!r}, expected {SPEC_VERSION}")
    return spec


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("run", "exec") or argv[1] != "--spec-fd":
        sys.stderr.write("usage: nsinit.py run|exec --spec-fd N [--report-fd M]\n")
        return 2
    kernel = Kernel()
    spec = read_spec(int(argv[2]))
    if argv[0] == "exec":
        return enter(kernel, spec)
    report_fd = int(argv[4]) if len(argv) > 4 and argv[3] == "--report-fd" else 1
    try:
        return run(kernel, spec, report_fd)
    except Exception as err:  # a bug or an unexpected failure: it must reach the runtime
        os.write(report_fd, json.dumps({"error": f"error during container init: "
                                                 f"{type(err).__name__}: {err}",
                                        "stage": "init"}).encode())
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
