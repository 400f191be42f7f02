"""ChatHub framing: SignalR JSON-hub records terminated by the record separator.

Pure code, no sockets. One websocket message may carry several records and a record
may arrive split across messages, so records are reassembled from a buffer.
"""
from __future__ import annotations

import json
from collections.abc import Mapping

from .errors import UpstreamProtocolError

RS = "\x1e"
HANDSHAKE = '{"protocol":"json","version":1}' + RS
PING = '{"type":6}' + RS

# SignalR message types as ChatHub uses them.
INVOCATION = 1  # "update": cumulative answer and progress
STREAM_ITEM = 2  # the turn's final result
COMPLETION = 3  # end of the invocation
STREAM_INVOCATION = 4  # the client's "chat" call
PING_TYPE = 6
CLOSE = 7


def encode_record(record: Mapping[str, object]) -> str:
    """One record as ChatHub expects it: compact JSON followed by RS."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + RS


class RecordBuffer:
    """Reassembles RS-terminated records from websocket messages."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, message: str) -> list[dict]:
        """Return the complete records this message finishes, in order.

        Raises UpstreamProtocolError when a complete record is not a JSON object.
        """
        pieces = (self._partial + message).split(RS)
        self._partial = pieces.pop()
        return [_decode(piece) for piece in pieces if piece]

    @property
    def pending(self) -> bool:
        """True while a record has started but its RS has not arrived."""
        return bool(self._partial)


def _decode(piece: str) -> dict:
    try:
        record = json.loads(piece)
    except ValueError:
        raise UpstreamProtocolError("Bing's ChatHub sent a record that is not JSON.") from None
    if not isinstance(record, dict):
        raise UpstreamProtocolError("Bing's ChatHub sent a record that is not a JSON object.")
    return record
