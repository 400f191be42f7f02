"""Read websocket messages under the turn's bounds, whatever the upstream sends.

Every bound is checked on every frame, not only when the socket falls quiet: an
upstream that pings without end must still meet the total deadline, and a client
that leaves must still be noticed. The socket is polled only when a read would
block (bytes already buffered are read straight away). Frames come off the
connection's own buffer (`BufferedSocket.read_frame`); websocket-client still writes.
"""
from __future__ import annotations

import select
import socket
import time

import websocket

from ..errors import (
    ClientDisconnected,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .events import ClientWatch
from .sockets import MAX_FRAME, BufferedSocket, WireError

TEXT, BINARY, CONTINUATION, CLOSE, PING = 1, 2, 0, 8, 9

WATCH_EVERY = 0.05  # seconds between client checks while frames keep arriving


class FrameReader:
    """Text messages from a websocket, with idle and total deadlines and a client watch."""

    def __init__(self, ws: websocket.WebSocket, idle: float, total_at: float, watch: ClientWatch | None, what: str) -> None:
        sock: object = ws.sock
        assert isinstance(sock, BufferedSocket), "FrameReader reads a connection sockets.py opened"
        self._ws = ws
        self._sock = sock
        self._fragments: list[bytes] = []  # a message split over several frames, so far
        self._idle = idle
        self._idle_at = time.monotonic() + idle
        self.total_at = total_at
        self._deadline = min(self._idle_at, total_at)  # whichever bound comes first
        self._watch = watch
        self._what = what
        self._watched_at = time.monotonic()
        self._timeout = 0.0  # the socket timeout last set
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        if watch is not None:
            self._poll.register(watch.fileno(), select.POLLIN)

    def next(self, wake_at: float) -> str | None:
        """The next message ("" for a control frame), or None once `wake_at` passes.

        With `wake_at` already past it never waits: it reads a frame only if it is
        already buffered whole.

        Raises UpstreamTimeout (idle or total deadline), UpstreamUnavailable (socket
        closed or dropped) and ClientDisconnected (the HTTP client went away).
        """
        while True:
            now = time.monotonic()
            if now >= self._deadline:
                self._expired(now)
            # Once `wake_at` has passed, only a frame that is already whole: no waiting.
            if self._sock.pending() if now < wake_at else self._sock.holds_frame():
                if now - self._watched_at >= WATCH_EVERY:
                    self._wait(0.0, now)  # the client check, with no wait
                return self._receive(now)
            if now >= wake_at:
                return None
            if self._wait(min(wake_at, self._deadline) - now, now):
                return self._receive(time.monotonic())
            if time.monotonic() >= wake_at:
                return None

    def holds_message(self) -> bool:
        """True when the next frame is already read whole: `next` will not wait for it."""
        return self._sock.holds_frame()

    def _expired(self, now: float) -> None:
        if now >= self.total_at:
            raise UpstreamTimeout(f"{self._what} did not finish within BINGO_TOTAL_TIMEOUT.")
        raise UpstreamTimeout(f"{self._what} sent nothing for {self._idle:g} s (BINGO_IDLE_TIMEOUT).")

    def _wait(self, seconds: float, now: float) -> bool:
        """Block until the upstream is readable (True) or the time is up (False)."""
        self._watched_at = now
        readable = False
        for fd, _ in self._poll.poll(max(0.0, seconds) * 1000):
            if self._watch is not None and fd == self._watch.fileno():
                if self._watch.gone():
                    raise ClientDisconnected("The client closed the connection.")
                # Pipelined bytes or a half-close: from now on only a reset wakes us.
                self._poll.modify(fd, 0)
            else:
                readable = True
        return readable

    def _receive(self, now: float) -> str:
        # Bound a read that blocks mid-frame by what is left of the idle or total time.
        # The idle deadline moves with every frame, so the timeout is set again only
        # when it would change by more than a tenth: two system calls per frame saved.
        wanted = max(0.01, self._deadline - now)
        if abs(wanted - self._timeout) > 0.1 * self._timeout:
            self._sock.settimeout(wanted)
            self._timeout = wanted
        try:
            opcode, fin, payload = self._sock.read_frame()
        except WireError as exc:
            raise UpstreamProtocolError(f"{self._what} sent {exc}.") from exc
        except OSError as exc:
            if time.monotonic() >= self.total_at - 0.01:  # the watchdog cut it
                raise UpstreamTimeout(f"{self._what} did not finish within BINGO_TOTAL_TIMEOUT.") from exc
            if isinstance(exc, socket.timeout):
                raise UpstreamTimeout(f"{self._what} stalled in the middle of a frame.") from exc
            raise UpstreamUnavailable(f"{self._what} dropped the connection mid-answer.") from exc
        self._idle_at = time.monotonic() + self._idle
        self._deadline = min(self._idle_at, self.total_at)
        if opcode == TEXT or opcode == BINARY or opcode == CONTINUATION:
            return self._message(opcode, fin, payload)
        if opcode == CLOSE:
            raise UpstreamUnavailable(f"{self._what} closed the websocket before the answer was complete.")
        if opcode == PING:
            self._pong(payload)
        elif opcode != 10:  # a pong: alive, nothing to hand on; anything else is not RFC 6455
            raise UpstreamProtocolError(f"{self._what} sent a websocket frame of unknown opcode {opcode}.")
        return ""  # a control frame: alive, but nothing to hand on

    def _message(self, opcode: int, fin: bool, payload: bytes) -> str:
        """The text of a whole message, or "" while its frames are still coming."""
        if (opcode == CONTINUATION) != bool(self._fragments):
            raise UpstreamProtocolError(f"{self._what} sent a websocket continuation frame out of order.")
        if not fin or self._fragments:
            self._fragments.append(payload)
            if sum(map(len, self._fragments)) > MAX_FRAME:
                raise UpstreamProtocolError(f"{self._what} sent a websocket message over {MAX_FRAME} bytes.")
            if not fin:
                return ""
            payload, self._fragments = b"".join(self._fragments), []
        return payload.decode("utf-8", errors="replace")

    def _pong(self, payload: bytes) -> None:
        try:
            self._ws.pong(payload)
        except (OSError, websocket.WebSocketException) as exc:
            raise UpstreamUnavailable(f"{self._what} dropped the connection mid-answer.") from exc
