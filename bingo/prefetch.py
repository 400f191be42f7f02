"""A request read ahead by the worker's event loop, before a pool thread serves it.

RequestScan tells, from the bytes one connection has sent so far, whether they hold
a whole HTTP/1.1 request (head, then a Content-Length or chunked body), incrementally,
so a request trickled a byte at a time costs no rescans. Prefetched is the source
gunicorn's parser reads from: those bytes first, then the socket under the same
deadline. No gunicorn here; worker.py wires them into the event loop, and
read_budget.py bounds what all requests being read hold together.
"""
from __future__ import annotations

import enum
import math
import select
import socket
import string
import time

MAX_CHUNK_LINE = 4096  # a chunk-size line (with extensions) longer than this is not HTTP
MAX_TRAILERS = 8192  # trailer fields after the last chunk
_HEX = frozenset(string.hexdigits.encode())


class Verdict(enum.Enum):
    MORE = "more"  # the request is not complete yet: keep reading
    WHOLE = "whole"  # the head and the whole body are buffered
    PARTIAL = "partial"  # hand it over now: over a limit, or framed in a way gunicorn rejects from what it has


class RequestScan:
    """Where one request ends in the bytes read so far.

    PARTIAL is the verdict whenever gunicorn's parser or the app can answer from the
    buffered bytes alone without waiting for the socket: a head over gunicorn's own
    limits, a bare LF, a framing gunicorn refuses, a body over BINGO_MAX_BODY_BYTES
    (its first `body_limit` + 1 bytes are buffered, or its Content-Length says so).
    """

    def __init__(self, head_limit: int, body_limit: int) -> None:
        self.buffer = bytearray()
        self.expects_continue = False  # HTTP/1.1 `Expect: 100-continue` with a body to come
        self._head_limit = head_limit
        self._body_limit = body_limit
        self._scanned = 0  # bytes of the head already searched for its end and bare LFs
        self._body_at = -1  # where the body starts, once the head is complete
        self._end = -1  # where a Content-Length body ends
        self._chunk_at = -1  # chunked: where the next chunk-size line starts
        self._decoded = 0  # chunked: body bytes in the complete chunks so far

    def feed(self, data: bytes) -> Verdict:
        self.buffer += data
        if self._body_at < 0:
            verdict = self._scan_head()
            if verdict is not Verdict.MORE or self._body_at < 0:
                return verdict
        if self._chunk_at >= 0:
            return self._scan_chunks()
        return Verdict.WHOLE if len(self.buffer) >= self._end else Verdict.MORE

    def _scan_head(self) -> Verdict:
        buffer, start = self.buffer, self._scanned
        end = buffer.find(b"\r\n\r\n", max(0, start - 3))
        lf = buffer.find(b"\n", start, end + 4 if end >= 0 else len(buffer))
        while lf >= 0:
            if lf == 0 or buffer[lf - 1] != 0x0D:
                return Verdict.PARTIAL  # gunicorn rejects a bare LF at once (400)
            lf = buffer.find(b"\n", lf + 1, end + 4 if end >= 0 else len(buffer))
        if end < 0:
            self._scanned = len(buffer)
            return Verdict.PARTIAL if len(buffer) > self._head_limit else Verdict.MORE
        self._body_at = end + 4
        return self._frame(bytes(buffer[:end]))

    def _frame(self, head: bytes) -> Verdict:
        """The body's framing from the head, as gunicorn reads it (RFC 9112 section 6)."""
        request_line, *lines = head.lstrip(b"\r\n").split(b"\r\n")
        fields = [(name.strip().lower(), value.strip(b" \t")) for name, _, value in (line.partition(b":") for line in lines)]
        lengths = [value for name, value in fields if name == b"content-length"]
        codings = [c.strip(b" \t").lower() for name, value in fields if name == b"transfer-encoding" for c in value.split(b",")]
        if codings:
            if codings[-1] != b"chunked" or lengths:
                return Verdict.PARTIAL  # gunicorn answers 400 or 501 from the head alone
            self._chunk_at = self._body_at
        elif not lengths:
            return Verdict.WHOLE
        elif len(lengths) > 1 or not lengths[0].isdigit():
            return Verdict.PARTIAL
        elif int(lengths[0]) > self._body_limit:
            return Verdict.PARTIAL  # 413 from the Content-Length alone
        else:
            self._end = self._body_at + int(lengths[0])
            if self._end == self._body_at:
                return Verdict.WHOLE
        self.expects_continue = request_line.endswith(b"HTTP/1.1") and (b"expect", b"100-continue") in (
            (name, value.lower()) for name, value in fields
        )
        return Verdict.MORE

    def _scan_chunks(self) -> Verdict:
        buffer = self.buffer
        while True:
            line_end = buffer.find(b"\r\n", self._chunk_at)
            if line_end < 0:
                return Verdict.PARTIAL if len(buffer) - self._chunk_at > MAX_CHUNK_LINE else Verdict.MORE
            size_field = bytes(buffer[self._chunk_at:line_end]).split(b";", 1)[0].rstrip(b" \t")
            if not size_field or not _HEX.issuperset(size_field):
                return Verdict.PARTIAL  # gunicorn's chunked reader raises on it: 400
            size = int(size_field, 16)
            if size == 0:
                return self._scan_trailers(line_end)
            data_end = line_end + 2 + size
            if self._decoded + min(size, len(buffer) - line_end - 2) > self._body_limit:
                return Verdict.PARTIAL  # over the cap, and the app can see it from the buffer: 413
            if len(buffer) < data_end + 2:
                return Verdict.MORE
            if buffer[data_end:data_end + 2] != b"\r\n":
                return Verdict.PARTIAL
            self._decoded += size
            self._chunk_at = data_end + 2

    def _scan_trailers(self, line_end: int) -> Verdict:
        """After the last chunk: trailer fields, then an empty line."""
        if self.buffer.find(b"\r\n\r\n", line_end) >= 0:
            return Verdict.WHOLE
        return Verdict.PARTIAL if len(self.buffer) - line_end > MAX_TRAILERS else Verdict.MORE


class Prefetched:
    """The client socket as gunicorn's parser reads it: the loop's bytes, then the socket.

    A request handed over whole never reaches the socket. One handed over early
    (PARTIAL) may, for bytes the scan could not judge; then each read waits at most
    until the request's deadline and, past it, reads as the end of input, which
    gunicorn treats as a client that left. `expired` and `partial` tell the worker
    not to keep such a connection alive.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = math.inf
        self.partial = False
        self.expired = False
        self.continued = False  # the loop already answered `Expect: 100-continue`
        self._data = memoryview(b"")

    def load(self, data: bytes, deadline: float, *, partial: bool, continued: bool) -> None:
        self._data = memoryview(data)
        self.deadline, self.partial, self.continued = deadline, partial, continued

    def take(self) -> bytes:
        """The bytes not read yet (the start of a pipelined request), emptied."""
        rest, self._data = bytes(self._data), memoryview(b"")
        return rest

    def recv(self, size: int) -> bytes:
        if self._data:
            piece, self._data = self._data[:size], self._data[size:]
            if not self._data:  # an empty slice still holds the whole request's bytes
                self._data = memoryview(b"")
            return bytes(piece)
        remaining = self.deadline - time.monotonic()
        if remaining > 0:
            poll = select.poll()
            poll.register(self.sock, select.POLLIN)
            if poll.poll(remaining * 1000):
                return self.sock.recv(size)
        self.expired = True
        return b""
