"""Closing a connection after its last answer without blocking the worker's event loop.

gunicorn's gthread closes a connection it does not keep alive "gracefully" (RFC 9112
section 9.6): it shuts down its sending side, then reads what the client still sends
until the client closes, for up to 2 s, so that unread request bytes do not make the
kernel reset the connection and cut the answer's tail. It does that read blocking, on
the event loop's thread: ten clients that sent `Connection: close` and then neither
read nor closed stalled every other connection, /healthz included, for 20 s. Here the
same linger runs on the event loop without blocking it. No gunicorn here; worker.py
hands it each connection to close.
"""
from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

LINGER_SECONDS = 2.0  # as gunicorn's close_graceful
MAX_DRAIN = 65536  # bytes read from a lingering client before it is closed anyway
RECV_BYTES = 16384


class Lingering:
    """Connections whose sending side is shut, read until the peer closes or time runs out."""

    def __init__(self, poller: selectors.BaseSelector, closed: Callable[[], None], seconds: float = LINGER_SECONDS) -> None:
        self._poller = poller
        self._closed = closed  # called once per connection, when it is closed
        self._seconds = seconds
        self._open: dict[socket.socket, list[float]] = {}  # sock -> [deadline, bytes drained], in deadline order

    def __len__(self) -> int:
        return len(self._open)

    def add(self, sock: socket.socket) -> None:
        """Shut down the sending side (the answer is all out) and drain until the peer closes."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self._poller.register(sock, selectors.EVENT_READ, self._on_readable)
        except (OSError, ValueError):  # reset already, or closed
            sock.close()
            self._closed()
            return
        self._open[sock] = [time.monotonic() + self._seconds, 0.0]

    def first_deadline(self) -> float | None:
        return next(iter(self._open.values()))[0] if self._open else None

    def expire(self, now: float) -> None:
        """Close the connections whose linger ran out."""
        while self._open:
            sock, (deadline, _) = next(iter(self._open.items()))
            if deadline > now:
                return
            self._close(sock)

    def _on_readable(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry = self._open[sock]
        entry[1] += len(data)
        if not data or entry[1] >= MAX_DRAIN:
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        del self._open[sock]
        try:
            self._poller.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
        self._closed()
