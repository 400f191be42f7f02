"""The connection front: TLS, HTTP/1.1 keep-alive, and websocket upgrades that
arrive after their request head has already been read.

A plain connection is routed by peeking at its request line (`server.py`), but a
TLS connection cannot be peeked: decrypting consumes the bytes. Such connections
start in the HTTP handler, and a websocket upgrade found there is handed to
websockets through a socket pair fed with the head the handler already read, then
relayed both ways until either side closes. The same hand-over serves an upgrade
sent on a kept-alive HTTP connection (aiohttp reuses pooled connections) and an
upgrade whose `Connection` header lacks the `Upgrade` token (aiohttp lets a
caller's `Connection: keep-alive` replace it; real servers accept it anyway).
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from .rest import SandboxHandler, handler_for
from .state import State
from .upgrade import WEBSOCKET_PATHS

log = logging.getLogger(__name__)

RELAY_BYTES = 65536
PEEK_SECONDS = 10.0  # a client that sends no request head by then is dropped
PEEK_BYTES = 8192
PEEK_NAP = 0.005

ServeSocket = Callable[[socket.socket], None]


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS server context from a PEM certificate chain (and key, if separate)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def is_upgrade(path: str, headers: dict[str, str]) -> bool:
    """A websocket upgrade to one of our websocket paths, whatever `Connection` says."""
    return (
        urlsplit(path).path in WEBSOCKET_PATHS
        and headers.get("upgrade", "").lower() == "websocket"
    )


def lacks_upgrade_token(headers: dict[str, str]) -> bool:
    """`Connection` lacks `Upgrade`: websockets alone would refuse the request."""
    return "upgrade" not in headers.get("connection", "").lower()


def upgrade_head(request_line: str, items: list[tuple[str, str]]) -> bytes:
    """The request head again, with `Upgrade` added to `Connection` if it is missing."""
    if lacks_upgrade_token({n.lower(): v for n, v in items}):
        kept = [v for n, v in items if n.lower() == "connection"]
        items = [(n, v) for n, v in items if n.lower() != "connection"]
        items.append(("Connection", ", ".join([*kept, "Upgrade"])))
    lines = [request_line, *(f"{name}: {value}" for name, value in items)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def peek_head(sock: socket.socket, stopping: threading.Event) -> str | None:
    """The request head, peeked (MSG_PEEK): the socket stays untouched for websockets."""
    sock.settimeout(PEEK_SECONDS)
    deadline = time.monotonic() + PEEK_SECONDS
    try:
        while time.monotonic() < deadline and not stopping.is_set():
            data = sock.recv(PEEK_BYTES, socket.MSG_PEEK)
            if not data:
                return None
            if b"\r\n\r\n" in data or len(data) >= PEEK_BYTES:
                return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            stopping.wait(PEEK_NAP)  # MSG_PEEK returns at once while data is pending
    except OSError:
        return None
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass
    return None


def is_plain_upgrade(head: str) -> bool:
    """An upgrade websockets accepts as it stands; others go through the front."""
    request_line, *lines = head.split("\r\n")
    parts = request_line.split()
    if len(parts) < 2 or parts[0] != "GET":
        return False
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    return urlsplit(parts[1]).path in WEBSOCKET_PATHS and not lacks_upgrade_token(
        headers
    )


def hand_over(
    client: socket.socket,
    head: bytes,
    serve_websocket: ServeSocket,
    spawn: Callable[[Callable[[], None], str], None],
) -> None:
    """Serve `client` as a websocket whose request head was already read from it.

    websockets gets one end of a socket pair, primed with `head`; this thread relays
    between `client` and the other end until either closes.
    """
    inner, outer = socket.socketpair()

    def serve() -> None:
        try:
            serve_websocket(inner)
        finally:
            inner.close()

    spawn(serve, "sandbox-ws")
    try:
        outer.sendall(head)
        client.settimeout(None)
        relay(client, outer)
    finally:
        outer.close()


def relay(client: socket.socket, inner: socket.socket) -> None:
    """Copy bytes both ways until one side closes or fails; then shut both down."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, inner)
        selector.register(inner, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select():
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    if not _copy(source, key.data):
                        return
        except OSError as exc:
            log.debug("relay ended: %s", exc)
        finally:
            for sock in (client, inner):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _copy(source: socket.socket, target: socket.socket) -> bool:
    """Move what `source` has now to `target`; False at end of stream."""
    data = source.recv(RELAY_BYTES)
    if not data:
        return False
    # OpenSSL may hold decrypted bytes the kernel no longer shows as readable.
    while isinstance(source, ssl.SSLSocket) and source.pending():
        data += source.recv(RELAY_BYTES)
    target.sendall(data)
    return True


def front_handler_for(
    state: State,
    serve_websocket: ServeSocket,
    spawn: Callable[[Callable[[], None], str], None],
) -> type[SandboxHandler]:
    """rest.py's handler, plus keep-alive and the websocket hand-over."""
    base = handler_for(state)

    class FrontHandler(base):  # type: ignore[valid-type, misc]
        _keep = False
        _handed_over = False

        def handle_one_request(self) -> None:
            self._keep = False
            super().handle_one_request()
            if self._keep and not self._handed_over:
                # rest.py answers `Connection: close`; we keep the socket when the
                # client asked to (HTTP/1.1 default) and the body was fully read.
                self.close_connection = False

        def parse_request(self) -> bool:
            ok: bool = super().parse_request()
            self._keep = ok and not self.close_connection
            if "transfer-encoding" in {k.lower() for k in self.headers.keys()}:
                self._keep = False  # rest.py reads Content-Length bodies only
            return ok

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "connection" and self._keep:
                value = "keep-alive"
            super().send_header(keyword, value)

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not is_upgrade(self.path, headers):
                super().do_GET()
                return
            self._handed_over = True
            self.close_connection = True
            self.wfile.flush()
            # A websocket client sends nothing after its head until the 101, so
            # nothing is left in rfile's buffer.
            head = upgrade_head(self.requestline, list(self.headers.items()))
            hand_over(self.connection, head, serve_websocket, spawn)

    return FrontHandler
