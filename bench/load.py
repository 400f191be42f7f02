"""The HTTP load generator: N concurrent streams over raw sockets, one thread.

Requests go out on a schedule (all at once, or spread evenly over `spread` seconds),
then one selector loop reads whatever arrives and stamps each read with the
monotonic clock. Parsing happens after the run (or live, when a caller wants to hang
up at the first token), so the client stays cheap while the gateway is under load.
Bounded by a deadline; every socket is closed in `finally`.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Sequence

from .response import ResponseParser, StreamResult
from .traffic import request_bytes

READ_BYTES = 65536
CONNECT_SECONDS = 10.0

StopWhen = Callable[[StreamResult], bool]
Request = Callable[[str, int], bytes]  # (prompt, port) -> the whole HTTP request


class _Load:
    """The open sockets of one run and what each has read so far."""

    def __init__(
        self,
        port: int,
        prompts: Sequence[str],
        stop_when: StopWhen | None,
        request: Request = request_bytes,
    ) -> None:
        self.port = port
        self.request = request
        self.prompts = prompts
        self.stop_when = stop_when
        self.results = [StreamResult(prompt) for prompt in prompts]
        self.parsers = [ResponseParser(result) for result in self.results]
        self.reads: list[list[tuple[float, bytes]]] = [[] for _ in prompts]
        self.socks: dict[socket.socket, int] = {}
        self.selector = selectors.DefaultSelector()

    def open(self, index: int) -> None:
        result = self.results[index]
        result.started = time.monotonic()
        try:
            sock = socket.create_connection(
                ("127.0.0.1", self.port), timeout=CONNECT_SECONDS
            )
        except OSError as exc:
            result.error = f"connect failed: {exc}"
            return
        try:
            sock.sendall(self.request(self.prompts[index], self.port))
        except OSError as exc:
            result.error = f"send failed: {exc}"
            sock.close()
            return
        sock.setblocking(False)
        self.socks[sock] = index
        self.selector.register(sock, selectors.EVENT_READ, index)

    def read(self, sock: socket.socket, index: int) -> None:
        try:
            data = sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.results[index].error = f"read failed: {exc}"
            data = b""
        at = time.monotonic()
        if data:
            self.results[index].ended = at
            if self.stop_when is None:
                self.reads[index].append((at, data))
                return
            if not self._stop_now(index, at, data):
                return
        self.close(sock)

    def _stop_now(self, index: int, at: float, data: bytes) -> bool:
        assert self.stop_when is not None
        try:
            self.parsers[index].feed(at, data)
        except (ValueError, UnicodeDecodeError) as exc:
            self.results[index].error = f"unparsable response: {exc}"
            return True
        self.results[index].stopped = self.stop_when(self.results[index])
        return self.results[index].stopped

    def close(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        sock.close()
        del self.socks[sock]

    def shut(self) -> None:
        for sock in list(self.socks):
            self.close(sock)
        self.selector.close()


def run_streams(
    port: int,
    prompts: Sequence[str],
    seconds: float,
    stop_when: StopWhen | None = None,
    spread: float = 0.0,
    request: Request = request_bytes,
) -> list[StreamResult]:
    """One stream per prompt, started evenly over `spread` seconds, each read to its end.

    With `stop_when`, responses are parsed as they arrive and a stream is closed as
    soon as the predicate holds (e.g. the first token). Streams still open at the
    deadline fail. `request` builds each request (default: the bench's own).
    """
    load = _Load(port, prompts, stop_when, request)
    started = time.monotonic()
    due = [started + spread * i / len(prompts) for i in range(len(prompts))]
    deadline, opened = started + seconds, 0
    try:
        while (load.socks or opened < len(prompts)) and time.monotonic() < deadline:
            while opened < len(prompts) and due[opened] <= time.monotonic():
                load.open(opened)
                opened += 1
            now = time.monotonic()
            next_due = due[opened] if opened < len(prompts) else deadline
            for key, _ in load.selector.select(
                max(0.0, min(1.0, deadline - now, next_due - now))
            ):
                load.read(key.fileobj, key.data)  # type: ignore[arg-type]
        for index in load.socks.values():
            load.results[index].error = f"still open after {seconds:g} s"
    finally:
        load.shut()
    for parser, reads in zip(load.parsers, load.reads):
        _settle(parser, reads)
    return load.results


def _settle(parser: ResponseParser, reads: list[tuple[float, bytes]]) -> None:
    try:
        for at, data in reads:
            parser.feed(at, data)
    except (ValueError, UnicodeDecodeError) as exc:
        parser.result.error = parser.result.error or f"unparsable response: {exc}"
    parser.finish()


def peak_overlap(spans: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (how many streams were truly concurrent)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak
