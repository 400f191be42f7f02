"""Read websocket messages under the turn's bounds, whatever the upstream sends.

Every bound is checked on every frame, not only when the socket falls quiet: an
upstream that pings without end must still meet the total deadline, and a client
that leaves must still be noticed. The socket is polled only when a read would
block (bytes already buffered are read straight away).
"""
from __future__ import annotations

import select
import socket
import time

import websocket

from ..errors import ClientDisconnected, UpstreamTimeout, UpstreamUnavailable
from .events import ClientWatch
from .sockets import BufferedSocket

WATCH_EVERY = 0.05  # seconds between client checks while frames keep arriving


class FrameReader:
    """Text messages from a websocket, with idle and total deadlines and a client watch."""

    def __init__(self, ws: websocket.WebSocket, idle: float, total_at: float, watch: ClientWatch | None, what: str) -> None:
        self._ws = ws
        self._idle = idle
        self._idle_at = time.monotonic() + idle
        self.total_at = total_at
        self._watch = watch
        self._what = what
        self._watched_at = time.monotonic()
        self._timeout = 0.0  # the socket timeout last set
        self._poll = select.poll()
        assert ws.sock is not None, "FrameReader needs a connected websocket"
        self._poll.register(ws.sock.fileno(), select.POLLIN)
        if watch is not None:
            self._poll.register(watch.fileno(), select.POLLIN)

    def next(self, wake_at: float) -> str | None:
        """The next message ("" for a control frame), or None once `wake_at` passes.

        Raises UpstreamTimeout (idle or total deadline), UpstreamUnavailable (socket
        closed or dropped) and ClientDisconnected (the HTTP client went away).
        """
        while True:
            now = time.monotonic()
            self._check_deadlines(now)
            if self._buffered():
                if now - self._watched_at >= WATCH_EVERY:
                    self._wait(0.0)  # the client check, with no wait
                return self._receive()
            if self._wait(min(wake_at, self._idle_at, self.total_at) - now):
                return self._receive()
            if time.monotonic() >= wake_at:
                return None

    def _set_timeout(self) -> None:
        """Bound a read that blocks mid-frame by what is left of the idle or total time.

        The idle deadline moves with every frame, so the timeout is set again only
        when it would change by more than a tenth: a setsockopt-like call per frame
        is two system calls the common case does not need.
        """
        wanted = max(0.01, min(self._idle_at, self.total_at) - time.monotonic())
        if abs(wanted - self._timeout) > 0.1 * self._timeout:
            self._ws.settimeout(wanted)
            self._timeout = wanted

    def _check_deadlines(self, now: float) -> None:
        if now >= self.total_at:
            raise UpstreamTimeout(f"{self._what} did not finish within BINGO_TOTAL_TIMEOUT.")
        if now >= self._idle_at:
            raise UpstreamTimeout(f"{self._what} sent nothing for {self._idle:g} s (BINGO_IDLE_TIMEOUT).")

    def _buffered(self) -> bool:
        sock = self._ws.sock
        return isinstance(sock, BufferedSocket) and sock.pending()

    def _wait(self, seconds: float) -> bool:
        """Block until the upstream is readable (True) or the time is up (False)."""
        self._watched_at = time.monotonic()
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

    def _receive(self) -> str:
        self._set_timeout()
        try:
            opcode, data = self._ws.recv_data(control_frame=True)
        except (OSError, websocket.WebSocketException) as exc:
            if time.monotonic() >= self.total_at - 0.01:  # the watchdog cut it
                raise UpstreamTimeout(f"{self._what} did not finish within BINGO_TOTAL_TIMEOUT.") from exc
            if isinstance(exc, (socket.timeout, websocket.WebSocketTimeoutException)):
                raise UpstreamTimeout(f"{self._what} stalled in the middle of a frame.") from exc
            raise UpstreamUnavailable(f"{self._what} dropped the connection mid-answer.") from exc
        self._idle_at = time.monotonic() + self._idle
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise UpstreamUnavailable(f"{self._what} closed the websocket before the answer was complete.")
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        return ""  # a control frame (ping, pong): alive, but nothing to hand on
