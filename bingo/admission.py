"""Admission: how many answers this process has in flight, and shedding past the limit.

One gunicorn thread holds one answer for as long as it streams. Past
BINGO_MAX_INFLIGHT a new answer is refused at once with 503 server_overloaded
instead of waiting for a thread, and the threads above the limit stay free for
health checks and other short requests. No Flask here: routes.py takes a slot
when a completion arrives and gives it back when its response closes.
"""
from __future__ import annotations

import threading
from types import TracebackType

from . import memory
from .errors import ServerOverloaded


class Admission:
    """A counter of answers in flight, shared by every thread of one process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._inflight = 0

    @property
    def inflight(self) -> int:
        return self._inflight

    def admit(self) -> Slot:
        """Take a slot for one answer.

        Raises ServerOverloaded when all BINGO_MAX_INFLIGHT slots are taken.
        """
        with self._lock:
            if self._inflight >= self.limit:
                raise ServerOverloaded(self.limit)
            self._inflight += 1
        return Slot(self)

    def _give_back(self) -> None:
        with self._lock:
            self._inflight -= 1
            idle = self._inflight == 0
        if idle:
            memory.went_idle()  # a burst's freed heap goes back to the OS (memory.py)


class Slot:
    """One admitted answer; release() may run on several paths, it counts once."""

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            admission, self._admission = self._admission, None
        if admission is not None:
            admission._give_back()

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
