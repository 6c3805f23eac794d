"""Ports below net.ipv4.ip_unprivileged_port_start for containers of the
namespaces mode.

kubemu's pods share the host's network namespace (a pod IP is a 127.x
address on the host's loopback), so a container's root, unprivileged on the
host, cannot bind port 80 of its pod IP, which nginx and most tutorials
expect. The runtime (root) does it for them, as a seccomp supervisor:

- nsinit.py installs in each container's PID 1, before its command starts, a
  seccomp filter whose only rule is "bind(2) -> ask the supervisor"
  (SECCOMP_RET_USER_NOTIF; x86_64 only), and hands the filter's listener to
  the runtime with the launch report.
- The runtime (`Supervisor`) answers each bind: one of an AF_INET socket to a
  port below 1024 on the container's own pod IP is done by the runtime on a
  copy of the container's socket (pidfd_getfd), with its own privilege, and
  the result returned as the syscall's; every other bind goes on as asked
  (SECCOMP_USER_NOTIF_FLAG_CONTINUE), with the container's own rights.

Limits, stated in the README: the pod IP only (not 0.0.0.0, which would be
the host's port); processes started by exec are not covered; when the
runtime restarts, the listener is lost and a running container's later
bind(2) calls fail with ENOSYS (restart the container).
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import platform
import socket
import struct
from typing import Callable

from kubelet.runtime import nsinit

# struct seccomp_notif (80 bytes) and seccomp_notif_resp (24 bytes).
NOTIF_FORMAT = "=QIIiIQ6Q"
RESP_FORMAT = "=QqiI"
NOTIF_SIZE = struct.calcsize(NOTIF_FORMAT)
RESP_SIZE = struct.calcsize(RESP_FORMAT)
IOCTL_NOTIF_RECV = (3 << 30) | (NOTIF_SIZE << 16) | (ord("!") << 8) | 0
IOCTL_NOTIF_SEND = (3 << 30) | (RESP_SIZE << 16) | (ord("!") << 8) | 1
IOCTL_NOTIF_ID_VALID = (1 << 30) | (8 << 16) | (ord("!") << 8) | 2
USER_NOTIF_FLAG_CONTINUE = 1
PIDFD_GETFD_SYSCALL = 438
PRIVILEGED_PORT_END = 1024
SOCKADDR_BYTES_MAX = 128

SUPPORTED_MACHINES = tuple(nsinit.SECCOMP_SYSCALL)


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in SUPPORTED_MACHINES


def parse_inet(raw: bytes) -> tuple[str, int] | None:
    """(address, port) of a sockaddr_in; None for anything else."""
    if len(raw) < 8 or struct.unpack_from("=H", raw)[0] != socket.AF_INET:
        return None
    return socket.inet_ntoa(raw[4:8]), struct.unpack_from("!H", raw, 2)[0]


class Supervisor:
    """Answers the bind(2) calls of one container (see the module doc). Register
    `on_ready` as the listener's reader (on the event loop); `close()` when the
    container ended.

    `on_ready` only takes the notification off the listener (it is there: the
    listener polled readable, and a notification withdrawn meanwhile makes the
    ioctl fail at once with ENOENT). The answer runs in a thread: it reads the
    caller's memory and copies its socket, which wait on the caller's mm and
    exec locks (116 ms on a loaded machine while a pod was torn down). The
    listener stays open until the last answer in flight is sent."""

    def __init__(self, listener: int, pod_ip: str,
                 on_close: Callable[[], None] | None = None):
        self.fd = listener
        self.pod_ip = pod_ip
        self.on_close = on_close
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.done = 0   # binds done for the container
        self._in_flight = 0
        self._closing = False

    def close(self) -> None:
        if self.fd < 0 or self._closing:
            return
        self._closing = True
        if self.on_close is not None:
            self.on_close()
        if self._in_flight == 0:
            self._close_fd()

    def _close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def on_ready(self) -> None:
        """One notification (the listener is readable); the listener is closed
        when it hangs up (the container's processes are gone)."""
        import fcntl
        if self._closing:
            return
        buf = bytearray(NOTIF_SIZE)
        try:
            fcntl.ioctl(self.fd, IOCTL_NOTIF_RECV, buf, True)
        except OSError as err:
            if err.errno != errno.EINTR:  # ENOENT: the caller died meanwhile; else hung up
                if err.errno != errno.ENOENT:
                    self.close()
            return
        notif_id, pid, _flags, _nr, _arch, _ip, sockfd, addr, addrlen, *_ = \
            struct.unpack(NOTIF_FORMAT, buf)
        self._in_flight += 1
        answer = asyncio.get_running_loop().run_in_executor(
            None, self.answer, notif_id, pid, sockfd, addr, addrlen)
        answer.add_done_callback(self._answered)

    def _answered(self, answer: asyncio.Future) -> None:
        self._in_flight -= 1
        if self._closing and self._in_flight == 0:
            self._close_fd()

    def answer(self, notif_id: int, pid: int, sockfd: int, addr: int, addrlen: int) -> None:
        """Do or pass on one bind and send the answer (blocking: a thread)."""
        import fcntl
        error = self._bind_for(notif_id, pid, sockfd, addr, addrlen)
        if error is None:
            response = struct.pack(RESP_FORMAT, notif_id, 0, 0, USER_NOTIF_FLAG_CONTINUE)
        else:
            response = struct.pack(RESP_FORMAT, notif_id, 0, -error if error else 0, 0)
        try:
            fcntl.ioctl(self.fd, IOCTL_NOTIF_SEND, bytearray(response), True)
        except OSError:
            pass  # the caller is gone

    def _bind_for(self, notif_id: int, pid: int, sockfd: int, addr: int,
                  addrlen: int) -> int | None:
        """None: let the call go on; else the errno of doing it here (0: done)."""
        import fcntl
        try:
            with open(f"/proc/{pid}/mem", "rb") as mem:
                mem.seek(addr)
                raw = mem.read(min(addrlen, SOCKADDR_BYTES_MAX))
        except (OSError, OverflowError, ValueError):
            return None
        target = parse_inet(raw)
        if target is None or not 0 < target[1] < PRIVILEGED_PORT_END or target[0] != self.pod_ip:
            return None
        try:  # the memory read belongs to that very call (not a recycled pid)
            fcntl.ioctl(self.fd, IOCTL_NOTIF_ID_VALID, bytearray(struct.pack("=Q", notif_id)),
                        True)
        except OSError:
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        try:
            copy = self.libc.syscall(ctypes.c_long(PIDFD_GETFD_SYSCALL), ctypes.c_int(pidfd),
                                     ctypes.c_int(sockfd), ctypes.c_uint(0))
            if copy < 0:
                return ctypes.get_errno() or errno.EBADF
        finally:
            os.close(pidfd)
        try:
            sock = socket.socket(fileno=copy)
        except OSError as err:
            os.close(copy)
            return err.errno or errno.ENOTSOCK
        try:
            if sock.family != socket.AF_INET:
                return None
            sock.bind(target)
            self.done += 1
            return 0
        except OSError as err:
            return err.errno or errno.EINVAL
        finally:
            sock.close()  # our copy; the container's socket is bound
