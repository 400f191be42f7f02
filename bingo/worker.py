"""bingo's gunicorn worker: gthread, except that a request is read whole before a thread serves it.

gunicorn's gthread gives every new or kept-alive connection to a pool thread, which
then blocks reading the request: 256 clients that send one byte and stop hold all
256 threads, /healthz included (issue #11). Here the worker's event loop reads each
request's head and body without blocking, bounded by BINGO_REQUEST_READ_TIMEOUT and
BINGO_MAX_BODY_BYTES, and only a complete request goes to the pool; a connection
whose request does not arrive in time is closed (loop_reading.py). TLS connections (gunicorn's own
certfile) and HTTP/2 keep gthread's path. gunicorn's HTML error pages for requests it
cannot parse become OpenAI-shaped JSON with the gateway's CORS headers (error_page.py).
"""
from __future__ import annotations

import errno
import math
import os
import resource
import socket
import struct
import time
from typing import Any

from gunicorn.http import get_parser, message
from gunicorn.http2 import negotiation
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import TConn, ThreadWorker

from . import memory
from .config import Settings
from .error_page import PageCapture, build_error_page
from .linger import Lingering
from .loop_reading import LoopReading, prefetched
from .prefetch import Prefetched
from .read_budget import BUDGET_BODIES, ReadBudget, Reading

# While an upload waits for read budget, the loop looks this often for silent ones to
# close for it (read_budget.py); otherwise it sleeps up to gthread's second.
PAUSED_TICK = 0.1


class BoundedThreadWorker(LoopReading, ThreadWorker):  # type: ignore[misc]
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
        self.budget: ReadBudget[Reading] = ReadBudget(BUDGET_BODIES * self.body_limit)  # read_budget.py
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

    def murder_pending(self) -> None:
        """Besides gthread's own: close connections whose request did not arrive in time."""
        super().murder_pending()
        now = time.monotonic()
        self.lingering.expire(now)
        self.revisit_paused()
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
        if self.budget.newest_paused() is not None:
            first = min(first, time.monotonic() + PAUSED_TICK)
        if first < math.inf:
            timeout = max(0.0, min(timeout, first - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    # -- after a request ------------------------------------------------------------

    def handle_request(self, req: Any, conn: TConn) -> bool:
        """Every answer's writes are bounded by BINGO_WRITE_TIMEOUT, not only a completion's
        (routes.client_watch): a client that pipelines requests and reads nothing holds a thread
        in a blocked write for that long at most."""
        bound_writes(conn.sock, self.write_timeout)
        source = prefetched(conn)
        if source is not None and source.continued:
            req._expected_100_continue = False  # the loop sent it already; once is enough
        try:
            return bool(super().handle_request(req, conn))
        except (TimeoutError, BlockingIOError):  # a blocked write (a stalled TLS body is routes.read_body's)
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


def bound_writes(sock: socket.socket, seconds: float) -> None:
    """Bound every blocking write of an answer to `seconds`, at one system call per write.

    A Python timeout makes each `sendall` poll before it sends; the kernel's send
    timeout (SO_SNDTIMEO) on a blocking socket bounds a client that stops reading the
    same way (the blocked send fails with EAGAIN, BlockingIOError) without that poll.
    An SSLSocket (gunicorn's own TLS) keeps the Python timeout: CPython retries a
    blocking SSL write that the kernel timed out, so only a Python timeout ends it.
    """
    if type(sock) is not socket.socket:
        sock.settimeout(seconds)
        return
    sock.settimeout(None)
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1_000_000)))


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
