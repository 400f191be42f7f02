"""The websocket's connection, opened here rather than inside websocket-client.

Owning the TCP, proxy and TLS steps buys three things on the answer path:
- the socket reads through a buffer from its first byte, so the 101 reply (which
  websocket-client reads one byte per call) costs one read, not two hundred;
- TLS uses the process's one SSLContext and resumes the last session with the same
  upstream, so a new answer's handshake skips the certificate exchange;
- every step is under the caller's wall-clock guard (the socket is published in
  `holder` as soon as it exists, for the watchdog to cut);
- frames are cut out of that buffer here (`read_frame`): websocket-client spends some
  sixty Python calls on each frame it reads, this a handful.
"""
from __future__ import annotations

import base64
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from ..config import Settings
from . import tls

# The last TLS session per upstream, with the context it belongs to (a session only
# resumes under the context that made it).
_SESSIONS: dict[tuple[str, int], tuple[ssl.SSLContext, ssl.SSLSession]] = {}


# 2**14 bytes: the most plaintext one TLS record may carry (RFC 8446 5.1), so a read
# of this size drains the record it reads. Reading more buys nothing, since the TLS
# layer returns one record per read, and makes Python allocate (then shrink) a bigger
# buffer every time.
READ_SIZE = 16 * 1024
MAX_FRAME = 16 * 1024 * 1024  # an answer frame is tens of KB at most


class ConnectionEnded(ConnectionError):
    """The upstream closed the TCP connection (possibly in the middle of a frame)."""


class WireError(ValueError):
    """Bytes a websocket server may not send (RFC 6455): a bad frame, an endless HTTP head."""


class ProxyRefused(OSError):
    """The proxy did not open the tunnel."""


class BufferedSocket:
    """A socket whose reads fill a buffer, so one recv serves several small reads.

    Every read asks for READ_SIZE, TLS's largest record: the TLS layer hands over a
    whole record per read and keeps nothing decrypted behind, so bytes that are not
    in this buffer are still in the kernel's, where a poll sees them.
    """

    def __init__(self, sock: socket.socket, key: tuple[str, int] | None = None) -> None:
        self.raw = sock
        self.key = key  # (host, port) of a TLS upstream, for session resumption
        self._buffer = b""

    def read_frame(self) -> tuple[int, bool, bytes]:
        """The next frame off the wire: (opcode, fin, payload), unmasked.

        Raises ConnectionEnded at end of stream, WireError for reserved bits, an
        over-long or fragmented control frame, or a payload over MAX_FRAME; socket
        errors and timeouts propagate as they are.
        """
        data = self._fill(2)
        first, second = data[0], data[1]
        if first & 0x70:
            raise WireError("a frame with reserved bits set (no extension was negotiated)")
        size, start = second & 0x7F, 2
        if size >= 126:
            start = 4 if size == 126 else 10
            data = self._fill(start)
            size = int.from_bytes(data[2:start], "big")
        opcode = first & 0x0F
        if opcode >= 8 and (size > 125 or not first & 0x80):
            raise WireError("a control frame that is fragmented or over 125 bytes")
        if size > MAX_FRAME:
            raise WireError(f"a frame of {size} bytes (over {MAX_FRAME})")
        mask = b""
        if second & 0x80:  # servers must not mask; undo it anyway, as websocket-client did
            mask, start = self._fill(start + 4)[start : start + 4], start + 4
        data = self._fill(start + size)
        payload, self._buffer = data[start : start + size], data[start + size :]
        if mask:
            payload = _unmask(payload, mask)
        return opcode, bool(first & 0x80), payload

    def read_head(self, limit: int) -> bytes:
        """An HTTP head, up to its blank line (left out); what follows stays buffered.

        Raises ConnectionEnded at end of stream, WireError past `limit` bytes.
        """
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > limit:
                raise WireError(f"an HTTP head over {limit} bytes")
            data = self.raw.recv(READ_SIZE)
            if not data:
                raise ConnectionEnded("the upstream closed the connection")
            self._buffer += data
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        return head

    def holds_frame(self) -> bool:
        """True when a whole frame is already read: `read_frame` will not wait for it."""
        data = self._buffer
        if len(data) < 2:
            return False
        size, start = data[1] & 0x7F, 2
        if size >= 126:
            start = 4 if size == 126 else 10
            if len(data) < start:
                return False
            size = int.from_bytes(data[2:start], "big")
        return len(data) >= start + (4 if data[1] & 0x80 else 0) + size

    def _fill(self, size: int) -> bytes:
        """The buffer, after reading until it holds at least `size` bytes."""
        if len(self._buffer) >= size:
            return self._buffer
        pieces, have = [self._buffer], len(self._buffer)
        while have < size:
            data = self.raw.recv(READ_SIZE)
            if not data:
                raise ConnectionEnded("the upstream closed the connection")
            pieces.append(data)
            have += len(data)
        self._buffer = b"".join(pieces)
        return self._buffer

    def pending(self) -> bool:
        """True when bytes are already read: the next frame starts without a poll."""
        return bool(self._buffer)

    def remember_session(self) -> None:
        """Keep the TLS session for the next connection to the same upstream.

        A connection that resumed the kept session leaves it kept: reading a session
        copies it (serialised and parsed again, certificates included), which cost
        more than the rest of closing the websocket. When the server stops accepting
        it, the next connection is a full handshake, and its session is kept instead.
        """
        if self.key is None or not isinstance(self.raw, ssl.SSLSocket):
            return
        if self.raw.session_reused and self.key in _SESSIONS:
            return
        session = self.raw.session  # a copy, made by serialising it: read it once
        if session is not None:
            _SESSIONS[self.key] = (self.raw.context, session)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(len(payload), "little")


def connect(settings: Settings, url: str, proxy: str, holder: list[socket.socket | None]) -> BufferedSocket:
    """A connected (tunnelled, TLS-wrapped) socket for a ws:// or wss:// URL."""
    target = urlsplit(url)
    secure = target.scheme == "wss"
    host, port = target.hostname or "", target.port or (443 if secure else 80)
    if proxy:
        sock = _through_proxy(settings, proxy, host, port, holder)
    else:
        sock = holder[0] = socket.create_connection((host, port), settings.connect_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not secure:
        return BufferedSocket(sock)
    context = tls.client_context(settings.ca_bundle)
    made_by, session = _SESSIONS.get((host, port), (None, None))
    resume = session if made_by is context else None
    wrapped = holder[0] = context.wrap_socket(sock, server_hostname=host, session=resume)
    return BufferedSocket(wrapped, (host, port))


def _through_proxy(settings: Settings, proxy: str, host: str, port: int, holder: list[socket.socket | None]) -> socket.socket:
    """A CONNECT tunnel through an HTTP proxy (Basic credentials from its URL)."""
    parts = urlsplit(proxy)
    sock = holder[0] = socket.create_connection((parts.hostname or "", parts.port or 80), settings.connect_timeout)
    request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if parts.username:
        credentials = tls.proxy_credentials(parts).encode()
        request += f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}\r\n"
    sock.sendall(f"{request}\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:  # the proxy says nothing more until the client speaks
        data = sock.recv(4096)
        if not data or len(reply) > 65536:
            raise ProxyRefused("the proxy closed the connection instead of answering CONNECT")
        reply += data
    status_line = reply.split(b"\r\n", 1)[0]
    if status_line.split(b" ", 2)[1:2] != [b"200"]:
        raise ProxyRefused(f"the proxy answered CONNECT with {status_line[:80]!r}")
    return sock
