"""JSON and Server-Sent-Events framing, shared by every response the gateway writes.

Pure functions, no Flask: the relay and the error handlers both render through here,
so an error body in a stream is byte-for-byte the body of an HTTP error.
"""
from __future__ import annotations

import json

# json.dumps leaves these raw; line-splitting readers (str.splitlines, some SSE
# parsers) would cut an event at them, so they always travel escaped.
_LINE_BREAKERS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})

DONE = "data: [DONE]\n\n"
KEEPALIVE = ": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def dumps(value: object) -> str:
    """Compact JSON with Unicode kept readable but every line breaker escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_LINE_BREAKERS)


def event(value: object) -> str:
    """One `data:` event; json.dumps escapes newlines, so it is always one line."""
    return f"data: {dumps(value)}\n\n"
