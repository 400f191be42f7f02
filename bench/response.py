"""Parse one streamed HTTP response as it arrived: status, chunked body, SSE events.

Fed (time, bytes) pieces, either live or replayed after a run, it keeps for every
event the time of the read that completed it. Pure: no sockets here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MAX_HEAD = 65536


@dataclass
class StreamResult:
    """What one client saw of one streamed completion."""

    prompt: str
    started: float = 0.0  # before connect
    ended: float = 0.0  # the last read
    status: int | None = None
    headers_at: float | None = None
    role_at: float | None = None  # the role chunk (first byte of the stream)
    content_times: list[float] = field(default_factory=list)
    content: str = ""
    finish_reason: str | None = None
    done: bool = False  # data: [DONE] arrived
    stopped: bool = False  # the client hung up on purpose (e.g. at the first token)
    keepalives: int = 0
    error: str | None = None

    @property
    def first_content_at(self) -> float | None:
        return self.content_times[0] if self.content_times else None


class ResponseParser:
    """HTTP/1.1 response head, then a chunked (or close-delimited) SSE body."""

    def __init__(self, result: StreamResult) -> None:
        self.result = result
        self._head = b""
        self._chunked: bool | None = None  # None while the head is incomplete
        self._raw = b""  # chunked framing not yet decoded
        self._body = b""  # decoded body not yet split into events

    def feed(self, at: float, data: bytes) -> None:
        """Account for the bytes of one read that completed at `at`."""
        if self._chunked is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > MAX_HEAD:
                    raise ValueError("response head too large")
                return
            data = self._head[end + 4 :]
            self._start(at, self._head[:end].decode("latin-1"))
        if self._chunked:
            self._raw += data
            self._dechunk()
        else:
            self._body += data
        self._events(at)

    def _start(self, at: float, head: str) -> None:
        lines = head.split("\r\n")
        self.result.status = int(lines[0].split()[1])
        self.result.headers_at = at
        names = {
            line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
            for line in lines[1:]
            if ":" in line
        }
        self._chunked = names.get("transfer-encoding", "").lower() == "chunked"

    def _dechunk(self) -> None:
        while True:
            line_end = self._raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self._raw[:line_end].split(b";")[0], 16)
            if len(self._raw) < line_end + 2 + size + 2:
                return
            self._body += self._raw[line_end + 2 : line_end + 2 + size]
            self._raw = self._raw[line_end + 2 + size + 2 :]

    def _events(self, at: float) -> None:
        *blocks, self._body = self._body.split(b"\n\n")
        for block in blocks:
            self._event(at, block.decode("utf-8"))

    def _event(self, at: float, block: str) -> None:
        result = self.result
        data = "\n".join(
            line[6:] for line in block.split("\n") if line.startswith("data: ")
        )
        if not data:
            result.keepalives += block.startswith(":")
            return
        if data == "[DONE]":
            result.done = True
            return
        event = json.loads(data)
        if "error" in event:
            result.error = str(event["error"].get("message"))
            return
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            if "role" in delta and result.role_at is None:
                result.role_at = at
            if delta.get("content"):
                result.content += delta["content"]
                result.content_times.append(at)
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]

    def finish(self) -> None:
        """The connection closed: judge a non-200 body or a cut stream."""
        result = self.result
        if result.status is None:
            result.error = result.error or "no response head"
        elif result.status != 200:
            result.error = result.error or f"HTTP {result.status}: {self._body[:200]!r}"
        elif not (result.done or result.stopped) and result.error is None:
            result.error = "stream ended without [DONE]"
