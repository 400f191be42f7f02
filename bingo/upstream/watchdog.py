"""Wall-clock bounds on blocking socket phases, enforced from one thread per process.

A socket timeout bounds each read, not a phase: an upstream that trickles one byte
of its 101 reply every few seconds, or one byte of a frame, never trips it. The
watchdog holds a deadline for each guarded socket and, once it passes, shuts the
socket down, which wakes the blocked read with an error that the caller reports as
the timeout it was. One daemon thread serves the whole process, started on first use.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable

SocketSource = Callable[[], "socket.socket | None"]

# Held while a guard is cancelled and while one is checked and cut: once cancel()
# returns, the socket either was cut already (`fired`) or never will be. A socket
# source that stops naming a socket under it (tls.py, before a REST connection goes
# back to its pool) is likewise never cut afterwards.
CUTTING = threading.Lock()


class Guard:
    """One armed deadline; `fired` tells the caller the socket was cut for time."""

    __slots__ = ("at", "source", "cancelled", "fired")

    def __init__(self, at: float, source: SocketSource) -> None:
        self.at = at
        self.source = source
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        with CUTTING:
            self.cancelled = True


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Guard]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, at: float, source: SocketSource) -> Guard:
        """Cut the socket `source()` returns once the monotonic clock reaches `at`.

        The thread is woken only when this deadline comes before every other one:
        on the answer path, arming costs a heap push, not a thread switch.
        """
        guard = Guard(at, source)
        with self._wake:
            order = next(self._order)
            if order % 256 == 255:  # cancelled guards would otherwise wait for their time
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
            earliest = not self._heap or at < self._heap[0][0]
            heapq.heappush(self._heap, (at, order, guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bingo-watchdog", daemon=True)
                self._thread.start()
            elif earliest:
                self._wake.notify()
        return guard

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)  # cancelled guards leave as they reach the top
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._wake.wait(wait)
                    continue
                _, _, guard = heapq.heappop(self._heap)
            self._fire(guard)

    @staticmethod
    def _fire(guard: Guard) -> None:
        with CUTTING:
            if guard.cancelled:
                return
            guard.fired = True
            sock = guard.source()
            if sock is None:
                return
            try:
                # The plain socket's shutdown, even for an SSLSocket: it must not touch
                # the TLS state another thread is reading through.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


WATCHDOG = Watchdog()
