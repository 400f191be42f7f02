"""What the requests a worker is reading may hold together, and who gives way past it.

The worker's event loop (worker.py) reads each request whole before a pool thread
serves it, so the bytes of every request still arriving sit in the process: about
BUDGET_BODIES bodies' worth at most. Past that, two rules keep honest clients moving:

- An upload that has sent nothing for STALL_SECONDS while the process is short of
  budget is closed to make room (`stalled`): it holds bytes and does not progress, and
  left alone it would make the uploads behind it wait until its read deadline
  (BINGO_REQUEST_READ_TIMEOUT). A client on a slow link keeps sending and stays.
- Otherwise a connection holding more than SMALL_REQUEST pauses (the kernel's flow
  control then slows its sender), except one, the favoured, which reads on so that
  some request always completes and frees its bytes. The paused resume in order once
  bytes are freed; a paused upload is never "stalled", since its stall is ours, and
  a stalled favoured one that is closed hands its place to the reader that asked for
  room, not to the longest paused (which may be stalled too). A paused reader is off
  the poller and cannot ask again, so the loop's tick checks the favoured reader
  (`LoopReading.revisit_paused`): silent STALL_SECONDS while others wait, it is closed
  and the newest paused reader takes its place.

No gunicorn here.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .prefetch import RequestScan

SMALL_REQUEST = 65536  # a connection holding less reads whatever the budget: health checks, most chats
BUDGET_BODIES = 16  # 64 MiB with the default BINGO_MAX_BODY_BYTES
STALL_SECONDS = 1.0  # an upload silent this long while the budget is short is closed
Reader = TypeVar("Reader")


@dataclass(eq=False)
class Reading:
    """One connection whose request the event loop is reading."""

    conn: Any  # gunicorn's TConn
    scan: RequestScan
    deadline: float
    last_read: float  # time.monotonic() of the last bytes received
    registered: bool = False  # on the poller
    paused: bool = False  # off the poller for the memory budget
    continued: bool = False  # `100 Continue` sent


def stalled(readings: Iterable[Reading], asking: Reading, now: float) -> list[Reading]:
    """The uploads to close so that `asking` need not pause, longest silent first:
    holding more than SMALL_REQUEST, not paused by the budget, silent STALL_SECONDS."""
    silent = [
        r for r in readings
        if r is not asking and not r.paused and len(r.scan.buffer) > SMALL_REQUEST and now - r.last_read >= STALL_SECONDS
    ]
    return sorted(silent, key=lambda r: r.last_read)


class ReadBudget(Generic[Reader]):
    """The bytes all requests being read hold (`held`) against `limit`, and who pauses."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._favoured: Reader | None = None
        self._paused: deque[Reader] = deque()

    def short(self, holding: int) -> bool:
        """Whether a reader holding `holding` bytes is past the budget."""
        return self.held > self.limit and holding > SMALL_REQUEST

    def must_pause(self, reader: Reader, holding: int) -> bool:
        """Whether `reader`, now holding `holding` bytes of a request not complete yet, pauses."""
        if not self.short(holding) or reader is self._favoured:
            return False
        if self._favoured is None:
            self._favoured = reader
            return False
        self._paused.append(reader)
        return True

    @property
    def favoured(self) -> Reader | None:
        return self._favoured

    def newest_paused(self) -> Reader | None:
        """The reader paused last, if any: the one a stalled favoured reader gives way to
        (uploads paused long ago are likelier to be the stalled ones)."""
        return self._paused[-1] if self._paused else None

    def is_paused(self, reader: Reader) -> bool:
        return reader in self._paused

    def release(self, reader: Reader, holding: int, heir: Reader | None = None) -> list[Reader]:
        """`reader` stopped reading (served or closed); the paused readers that may read again.
        `heir` (a reader that is reading) takes the favoured place if `reader` held it."""
        self.held -= holding
        if reader is self._favoured:
            self._favoured = heir
            if heir is not None and heir in self._paused:
                self._paused.remove(heir)
        if reader in self._paused:
            self._paused.remove(reader)
        resumed = []
        while self._paused and (self.held <= self.limit or self._favoured is None):
            resumed.append(self._paused.popleft())
            if self.held > self.limit:
                self._favoured = resumed[-1]
        return resumed
