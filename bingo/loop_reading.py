"""Reading requests in the worker's event loop (worker.py): each connection's request
is read without blocking, scanned (prefetch.RequestScan) and handed to the pool only
once it can be served; the bytes all of them hold stay within the read budget
(read_budget.py), pausing large uploads or closing stalled ones.

A mixin of BoundedThreadWorker: it uses gthread's poller, connection count and
`enqueue_req`, and the limits the worker reads at start-up.
"""
from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn

from . import memory
from .prefetch import Prefetched, RequestScan, Verdict
from .read_budget import SMALL_REQUEST, STALL_SECONDS, ReadBudget, Reading, stalled

RECV_BYTES = 65536
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class LoopReading:
    """The event loop's side of request reading; gthread's worker supplies the rest."""

    # From gthread's ThreadWorker and BoundedThreadWorker.init_process:
    poller: selectors.BaseSelector
    nr_conns: int
    log: Any
    enqueue_req: Callable[[TConn], None]
    reading: dict[TConn, Reading]  # in deadline order: every deadline is start + read_timeout
    budget: ReadBudget[Reading]
    head_limit: int
    body_limit: int
    read_timeout: float

    def read_request(self, conn: TConn, pending: bytes, *, readable: bool) -> None:
        """Start reading one request; `pending` is what the last one left (pipelining)."""
        conn.sock.setblocking(False)
        now = time.monotonic()
        state = Reading(conn, RequestScan(self.head_limit, self.body_limit), now + self.read_timeout, now)
        self.reading[conn] = state
        if pending and self._advance(state, pending):
            return
        if readable:
            self._on_readable(state)
        if conn in self.reading and not state.paused:
            self._listen(state)

    def _listen(self, state: Reading) -> None:
        state.registered = True
        self.poller.register(state.conn.sock, selectors.EVENT_READ, partial(self._on_readable, state))

    def _on_readable(self, state: Reading, sock: socket.socket | None = None) -> None:
        try:
            data = state.conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client left (or reset) before its request was complete
            self._drop(state)
            return
        self._advance(state, data)

    def _advance(self, state: Reading, data: bytes) -> bool:
        """Feed the scan; hand the request to the pool once it can be served. True if handed over."""
        verdict = state.scan.feed(data)
        self.budget.held += len(data)
        state.last_read = time.monotonic()
        if verdict is Verdict.MORE:
            if state.scan.expects_continue and not state.continued:
                state.continued = True
                try:  # 25 bytes into an empty send buffer: never partial in practice
                    state.conn.sock.send(CONTINUE)
                except OSError:
                    pass
            if self.budget.short(len(state.scan.buffer)):
                self._make_room(state)
            if self.budget.must_pause(state, len(state.scan.buffer)):
                self._pause(state)
            return False
        self._forget(state)
        source = prefetched(state.conn)
        assert source is not None
        source.load(bytes(state.scan.buffer), state.deadline, partial=verdict is Verdict.PARTIAL, continued=state.continued)
        self.enqueue_req(state.conn)
        return True

    def _forget(self, state: Reading, heir: Reading | None = None) -> None:
        del self.reading[state.conn]
        if state.registered:
            self.poller.unregister(state.conn.sock)
        for resumed in self.budget.release(state, len(state.scan.buffer), heir):
            resumed.paused, resumed.last_read = False, time.monotonic()  # its silence was ours
            self._listen(resumed)

    def _make_room(self, asking: Reading) -> None:
        """Close stalled uploads (read_budget.stalled) until `asking` fits the budget."""
        closed = 0
        for victim in stalled(self.reading.values(), asking, time.monotonic()):
            if not self.budget.short(len(asking.scan.buffer)):
                break
            if victim.conn in self.reading:
                self._drop(victim, heir=asking)
                closed += 1
        if closed:
            self.log.info("closed %d stalled upload(s) to make room in the read budget (silent %gs or more)",
                          closed, STALL_SECONDS)

    def revisit_paused(self) -> None:
        """While uploads wait for budget, the favoured reader must progress: silent for
        STALL_SECONDS, it is closed and the newest paused reader reads on in its place.

        Paused readers are off the poller and cannot ask for room again; without this
        they would wait for the favoured one's read deadline.
        """
        asking, favoured = self.budget.newest_paused(), self.budget.favoured
        if asking is None or favoured is None or time.monotonic() - favoured.last_read < STALL_SECONDS:
            return
        self._drop(favoured, heir=asking)
        if asking.paused and asking.conn in self.reading and not self.budget.is_paused(asking):
            asking.paused, asking.last_read = False, time.monotonic()  # its silence was ours
            self._listen(asking)
        self.log.info("closed 1 stalled upload(s) to make room in the read budget (silent %gs or more)", STALL_SECONDS)

    def _pause(self, state: Reading) -> None:
        if state.registered:
            self.poller.unregister(state.conn.sock)
            state.registered = False
        state.paused = True

    def _drop(self, state: Reading, heir: Reading | None = None) -> None:
        self._forget(state, heir)
        self.nr_conns -= 1
        state.conn.close()
        if len(state.scan.buffer) > SMALL_REQUEST:
            memory.went_idle()  # what an abandoned upload held goes back to the OS


def prefetched(conn: TConn) -> Prefetched | None:
    """The connection's read-ahead source; None on gthread's own path (TLS, HTTP/2)."""
    source = getattr(getattr(conn.parser, "unreader", None), "sock", None)
    return source if isinstance(source, Prefetched) else None
