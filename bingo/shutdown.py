"""When this process stops: the cut-off that SIGTERM sets, read by every request.

gunicorn.conf.py records it from the worker's SIGTERM; the relay reads it on every
keep-alive tick and event. No Flask and no gunicorn here.
"""
from __future__ import annotations

import math
import time

# Unfinished requests are cut this long before the grace period runs out (half of
# it when it is shorter), so their error event and upstream close frame still leave.
MARGIN_SECONDS = 3.0

_cut_at = math.inf


def begin(grace_seconds: float) -> None:
    """Record that the process must be done within `grace_seconds` from now."""
    global _cut_at
    margin = min(MARGIN_SECONDS, grace_seconds / 2)
    _cut_at = min(_cut_at, time.monotonic() + grace_seconds - margin)


def stopping() -> bool:
    """True once SIGTERM has arrived: new requests are refused."""
    return _cut_at < math.inf


def cut_at() -> float:
    """The monotonic time at which unfinished requests end (inf while serving)."""
    return _cut_at
