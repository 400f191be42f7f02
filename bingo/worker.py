"""bingo's gunicorn worker: gthread, except that a request is read whole before a thread serves it.

gunicorn's gthread gives every new or kept-alive connection to a pool thread, which
then blocks reading the request: 256 clients that send one byte and stop hold all
256 threads, /healthz included (issue #11). Here the worker's event loop reads each
request's head and body without blocking, bounded by BINGO_REQUEST_READ_TIMEOUT and
BINGO_MAX_BODY_BYTES, and only a complete request goes to the pool; a connection
whose request does not arrive in time is closed. TLS connections (gunicorn's own
certfile) and HTTP/2 keep gthread's path. gunicorn's HTML error pages for requests it
cannot parse become OpenAI-shaped JSON with the gateway's CORS headers (error_page.py).
"""
from __future__ import annotations

import errno
import math
import os
import resource
import selectors
import socket
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn.http import get_parser, message
from gunicorn.http2 import negotiation
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import TConn, ThreadWorker

from . import memory
from .config import Settings
from .error_page import PageCapture, build_error_page
from .linger import Lingering
from .prefetch import SMALL_REQUEST, Prefetched, ReadBudget, RequestScan, Verdict

RECV_BYTES = 65536
# The requests one process is reading hold about this many bodies' worth of bytes at most
# (prefetch.ReadBudget): 64 MiB with the default BINGO_MAX_BODY_BYTES.
BUDGET_BODIES = 16
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(eq=False)
class Reading:
    """One connection whose request the event loop is reading."""

    conn: TConn
    scan: RequestScan
    deadline: float
    registered: bool = False  # on the poller
    paused: bool = False  # off the poller for the memory budget
    continued: bool = False  # `100 Continue` sent


class BoundedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with bounded request reading and JSON error pages."""

    def init_process(self) -> None:
        settings = Settings.from_env(os.environ)
        self.read_timeout = settings.request_read_timeout
        self.body_limit = settings.max_body_bytes
        self.write_timeout = settings.write_timeout
        self.cors_origin = settings.cors_origin
        self.head_limit = head_limit(self.cfg)
        self.reading: dict[TConn, Reading] = {}  # in deadline order: every deadline is start + read_timeout
        self.timed_out, self.timed_out_logged_at = 0, 0.0  # connections closed for time, not logged yet
        self.budget: ReadBudget[Reading] = ReadBudget(BUDGET_BODIES * self.body_limit)
        raise_fd_limit(self.cfg.worker_connections + 64)
        memory.limit_arenas()  # before the pool's threads allocate
        super().init_process()

    def run(self) -> None:
        self.lingering = Lingering(self.poller, self._lingering_closed)  # the poller exists from here
        super().run()

    def _lingering_closed(self) -> None:
        self.nr_conns -= 1

    # -- reading requests in the event loop ------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        if self.cfg.is_ssl:
            return super().accept(listener)
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return None
        self.nr_conns += 1
        conn = TConn(self.cfg, sock, client, listener.getsockname())  # non-blocking
        if negotiation.prior_knowledge_allowed(self.cfg, client):
            return self.enqueue_req(conn)  # HTTP/2 prior knowledge: gthread's own path
        conn.parser = get_parser(self.cfg, Prefetched(sock), client)
        conn.initialized = True  # the parser exists; gthread's handle() must not make its own
        self.read_request(conn, b"", readable=False)
        return None

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection sends its next request: read it the same bounded way."""
        if prefetched(conn) is None:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.read_request(conn, b"", readable=True)
        return None

    def read_request(self, conn: TConn, pending: bytes, *, readable: bool) -> None:
        """Start reading one request; `pending` is what the last one left (pipelining)."""
        conn.sock.setblocking(False)
        state = Reading(conn, RequestScan(self.head_limit, self.body_limit), time.monotonic() + self.read_timeout)
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
        if verdict is Verdict.MORE:
            if state.scan.expects_continue and not state.continued:
                state.continued = True
                try:  # 25 bytes into an empty send buffer: never partial in practice
                    state.conn.sock.send(CONTINUE)
                except OSError:
                    pass
            if self.budget.must_pause(state, len(state.scan.buffer)):
                self._pause(state)
            return False
        self._forget(state)
        source = prefetched(state.conn)
        assert source is not None
        source.load(bytes(state.scan.buffer), state.deadline, partial=verdict is Verdict.PARTIAL, continued=state.continued)
        self.enqueue_req(state.conn)
        return True

    def _forget(self, state: Reading) -> None:
        del self.reading[state.conn]
        if state.registered:
            self.poller.unregister(state.conn.sock)
        for resumed in self.budget.release(state, len(state.scan.buffer)):
            resumed.paused = False
            self._listen(resumed)

    def _pause(self, state: Reading) -> None:
        if state.registered:
            self.poller.unregister(state.conn.sock)
            state.registered = False
        state.paused = True

    def _drop(self, state: Reading) -> None:
        self._forget(state)
        self.nr_conns -= 1
        state.conn.close()
        if len(state.scan.buffer) > SMALL_REQUEST:
            memory.went_idle()  # what an abandoned upload held goes back to the OS

    def murder_pending(self) -> None:
        """Besides gthread's own: close connections whose request did not arrive in time."""
        super().murder_pending()
        now = time.monotonic()
        self.lingering.expire(now)
        while self.reading:
            state = next(iter(self.reading.values()))
            if state.deadline > now:
                break
            self._drop(state)
            self.timed_out += 1
        # One line a second at most: a thousand stalled clients are one event, not a thousand.
        if self.timed_out and now - self.timed_out_logged_at >= 1.0:
            self.log.info("closed %d connection(s) whose request did not arrive within %gs (BINGO_REQUEST_READ_TIMEOUT)",
                          self.timed_out, self.read_timeout)
            self.timed_out, self.timed_out_logged_at = 0, now

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """Wake up by the first reading or lingering deadline, not a second later."""
        first = min(next(iter(self.reading.values())).deadline if self.reading else math.inf,
                    self.lingering.first_deadline() or math.inf)
        if first < math.inf:
            timeout = max(0.0, min(timeout, first - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    # -- after a request ------------------------------------------------------------

    def handle_request(self, req: Any, conn: TConn) -> bool:
        """Every answer's writes are bounded by BINGO_WRITE_TIMEOUT, not only a completion's
        (routes.client_watch): a client that pipelines requests and reads nothing holds a thread
        in a blocked write for that long at most."""
        conn.sock.settimeout(self.write_timeout)
        source = prefetched(conn)
        if source is not None and source.continued:
            req._expected_100_continue = False  # the loop sent it already; once is enough
        try:
            return bool(super().handle_request(req, conn))
        except TimeoutError:  # the request was read already: only a write can time out
            self.log.info("a client stopped reading; its answer was cut after %gs (BINGO_WRITE_TIMEOUT)", self.write_timeout)
            return False

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """A request handed over early, or one whose bytes ran past the deadline, ends its connection."""
        source = prefetched(conn)
        if source is not None and (source.partial or source.expired):
            return False
        return bool(super()._keepalive_after(conn, keepalive))

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """A kept-alive connection with pipelined bytes reads its next request in the loop too;
        one that ends lingers without blocking the loop (linger.py), unless it is TLS."""
        done = not fs.cancelled() and fs.exception() is None
        if done and not fs.result() and not self.cfg.is_ssl:
            self.lingering.add(conn.sock)
            return None
        source = prefetched(conn)
        if source is None or not done or fs.result() is not True:
            return super().finish_request(conn, fs)
        pending = conn.parser.unreader.take_buffered() + source.take()
        if not pending:
            return super().finish_request(conn, fs)
        self.read_request(conn, pending, readable=False)
        return None

    # -- gunicorn's error pages -------------------------------------------------------

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's choice of status and its (redacted) log lines; bingo's JSON page (error_page.py)."""
        page = PageCapture(client)
        super().handle_error(req, page, addr, exc)
        try:
            write_nonblock(client, build_error_page(page.status(), self.cors_origin))
        except OSError:
            self.log.debug("Failed to send error message.")


def prefetched(conn: TConn) -> Prefetched | None:
    """The connection's read-ahead source; None on gthread's own path (TLS, HTTP/2)."""
    source = getattr(getattr(conn.parser, "unreader", None), "sock", None)
    return source if isinstance(source, Prefetched) else None


def head_limit(cfg: Any) -> int:
    """The most head bytes gunicorn's parser reads before it refuses the request itself."""
    fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= message.MAX_HEADERS else message.MAX_HEADERS
    field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else message.DEFAULT_MAX_HEADERFIELD_SIZE
    line = cfg.limit_request_line if cfg.limit_request_line > 0 else 1024 * 1024
    return fields * (field_size + 2) + 4 + min(line, 1024 * 1024) + 4


def raise_fd_limit(wanted: int) -> None:
    """Let the process hold as many sockets as gunicorn may accept (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
