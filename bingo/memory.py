"""Giving a burst's memory back to the OS once the process goes idle (glibc's malloc_trim).

glibc keeps freed heap in its arenas (one per thread that allocated, up to 8 per
core), so after 200 concurrent answers a worker stayed at its peak RSS for good
(issue #11). malloc_trim(0) releases the free pages of every arena. It runs on a
thread of its own, half a second after the last answer in flight ended, never on a
request's path. Fewer arenas (limit_arenas, from the worker before its threads start)
leave less memory stranded between bursts; the threads share the GIL anyway. Without
glibc (musl, macOS) this does nothing. No Flask here.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

QUIET_SECONDS = 0.5  # idle this long after a burst before trimming
ARENAS = 2  # glibc malloc arenas per process, unless MALLOC_ARENA_MAX says otherwise
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()
_wake = threading.Event()
_started = threading.Lock()
_thread: threading.Thread | None = None


def limit_arenas() -> None:
    """Cap glibc's malloc arenas at ARENAS; the operator's MALLOC_ARENA_MAX wins."""
    if _TRIM is None or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, ARENAS)
    except (OSError, AttributeError):
        log.debug("mallopt is not available; malloc arenas are left as they are")


def went_idle() -> None:
    """No answer is in flight, or an abandoned upload was dropped: trim after a quiet moment."""
    global _thread
    if _TRIM is None:
        return
    with _started:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_trim_when_woken, name="bingo-malloc-trim", daemon=True)
            _thread.start()
    _wake.set()


def _trim_when_woken() -> None:
    assert _TRIM is not None
    while True:
        _wake.wait()
        _wake.clear()
        if _wake.wait(QUIET_SECONDS):  # another burst ended meanwhile: wait for quiet again
            continue
        _TRIM(0)
