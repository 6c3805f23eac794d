"""One relayed TCP connection: an accepted client and the upstream opened for it.

kube-proxy's Service proxies and the supervisor's links (fronts, partitions)
both relay bytes this way; the two may not import each other, so the relay
lives here. A subclass of `Relay` decides, in its own `connection_made`,
whether to take the client (else `reset` it), calls `hold()` and opens the
upstream with `RelayUpstream(self)` as its protocol, then `attach`es it.

- Bytes the client sends before the upstream is attached are kept, in order,
  and written first on attach. `hold()` pauses reading, but before Python
  3.12 asyncio adds the transport's reader only after `connection_made`
  returns and so undoes that pause; whatever arrives in between is kept, and
  reading pauses for real once more than `pending_bytes_max` is waiting.
- Flow control: a write buffer above its high mark pauses reading on the
  other side, and resumes it when drained.
- Half-close: an EOF is passed on to the other side (a client's EOF before
  attach, on attach); the second EOF closes both.
"""
from __future__ import annotations

import asyncio
import socket
import struct

_LINGER_RST = struct.pack("ii", 1, 0)
PENDING_BYTES_MAX = 256 * 1024


def reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with RST (SO_LINGER 0): the other end sees ECONNRESET at once."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
    transport.abort()


class Relay(asyncio.Protocol):
    """The client side; `upstream` is None until `attach`."""

    pending_bytes_max = PENDING_BYTES_MAX
    upstream_buffer_high_bytes: int | None = None  # None: asyncio's default

    def __init__(self) -> None:
        self.client: asyncio.Transport = None  # type: ignore[assignment]
        self.upstream: asyncio.Transport | None = None
        self.closed = False
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._eofs: set[bool] = set()  # True: the upstream's, False: the client's

    def hold(self) -> None:
        """Stop reading the client until `attach` (see the module's note)."""
        self.client.pause_reading()

    def attach(self, upstream: asyncio.Transport) -> None:
        self.upstream = upstream
        if self._pending:
            upstream.write(b"".join(self._pending))
            self._pending.clear()
            self._pending_bytes = 0
        if False in self._eofs and upstream.can_write_eof():
            upstream.write_eof()
        if not self.client.is_closing():
            self.client.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > self.pending_bytes_max:
            self.client.pause_reading()

    def from_upstream(self, data: bytes) -> None:
        self.client.write(data)

    def eof_received(self) -> bool:
        self.eof(upstream=False)
        return True

    def eof(self, *, upstream: bool) -> None:
        self._eofs.add(upstream)
        if len(self._eofs) == 2:
            self.client.close()
            if self.upstream is not None:
                self.upstream.close()
            return
        other = self.client if upstream else self.upstream
        if other is not None and not other.is_closing() and other.can_write_eof():
            other.write_eof()

    def upstream_lost(self) -> None:
        if not self.client.is_closing():
            self.client.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pending.clear()
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.close()

    def abort(self) -> None:
        """Reset both sides."""
        self.closed = True
        reset(self.client)
        reset(self.upstream)


class RelayUpstream(asyncio.Protocol):
    """The upstream side of a `Relay`."""

    def __init__(self, relay: Relay):
        self.relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        high = self.relay.upstream_buffer_high_bytes
        if high is not None:
            transport.set_write_buffer_limits(high=high)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.relay.from_upstream(data)

    def eof_received(self) -> bool:
        self.relay.eof(upstream=True)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.upstream_lost()

    def pause_writing(self) -> None:
        self.relay.client.pause_reading()

    def resume_writing(self) -> None:
        if not self.relay.client.is_closing():
            self.relay.client.resume_reading()
