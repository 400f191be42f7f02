"""The websocket's connection, opened here rather than inside websocket-client.

Owning the TCP, proxy and TLS steps buys three things on the answer path:
- the socket reads through a buffer from its first byte, so the 101 reply (which
  websocket-client reads one byte per call) costs one read, not two hundred;
- TLS uses the process's one SSLContext and resumes the last session with the same
  upstream, so a new answer's handshake skips the certificate exchange;
- every step is under the caller's wall-clock guard (the socket is published in
  `holder` as soon as it exists, for the watchdog to cut).
"""
from __future__ import annotations

import base64
import socket
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

from ..config import Settings
from . import tls

# The last TLS session per upstream, with the context it belongs to (a session only
# resumes under the context that made it).
_SESSIONS: dict[tuple[str, int], tuple[ssl.SSLContext, ssl.SSLSession]] = {}


READ_SIZE = 16 * 1024


class ProxyRefused(OSError):
    """The proxy did not open the tunnel."""


class BufferedSocket:
    """A socket whose reads fill a buffer, so one recv serves several small reads.

    websocket-client reads the upgrade reply a byte at a time and each frame in 2-4
    exact-size reads; reading up to READ_SIZE at once turns them into one system call,
    and `pending()` tells the frame reader it need not poll before the next frame.
    """

    def __init__(self, sock: socket.socket, key: tuple[str, int] | None = None) -> None:
        self.raw = sock
        self.key = key  # (host, port) of a TLS upstream, for session resumption
        self._buffer = b""

    def recv(self, size: int) -> bytes:
        if not self._buffer:
            # One TLS record holds at most 16 KiB; asking for more only makes Python
            # allocate (and then shrink) a bigger buffer on every read.
            data = self.raw.recv(max(size, READ_SIZE))
            if len(data) <= size:
                return data
            self._buffer = data
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    def pending(self) -> bool:
        """True when bytes are already read (here, or inside the TLS layer)."""
        pending = getattr(self.raw, "pending", None)
        return bool(self._buffer) or (pending is not None and pending() > 0)

    def remember_session(self) -> None:
        """Keep the TLS session for the next connection to the same upstream."""
        if self.key is None or not isinstance(self.raw, ssl.SSLSocket):
            return
        session = self.raw.session  # a copy, made by serialising it: read it once
        if session is not None:
            _SESSIONS[self.key] = (self.raw.context, session)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


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
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
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
