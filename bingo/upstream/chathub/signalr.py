"""ChatHub framing: SignalR JSON-hub records terminated by the record separator.

Pure code, no sockets. One websocket message may carry several records and a record
may arrive split across messages, so records are reassembled from a buffer.
"""
from __future__ import annotations

import json
from collections.abc import Mapping

from ...errors import UpstreamProtocolError

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


MAX_RECORD_CHARS = 16 * 1024 * 1024  # an answer record is a few hundred KB at most


class RecordBuffer:
    """Reassembles RS-terminated records from websocket messages.

    The pieces of an unfinished record are kept in a list and joined once, when its
    RS arrives: re-joining on every message would be quadratic in the record's size.
    """

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._size = 0

    def feed(self, message: str) -> list[dict]:
        """Return the complete records this message finishes, in order.

        Raises UpstreamProtocolError when a complete record is not a JSON object, or
        when a record grows past MAX_RECORD_CHARS without its separator.
        """
        if not self._pieces and message.find(RS) == len(message) - 1:
            return [_decode(message[:-1])] if len(message) > 1 else []  # one whole record: the usual frame
        if RS not in message:
            self._hold(message)
            return []
        pieces = message.split(RS)
        if self._pieces:
            pieces[0] = "".join(self._pieces) + pieces[0]
            self._pieces, self._size = [], 0
        self._hold(pieces.pop())
        return [_decode(piece) for piece in pieces if piece]

    def _hold(self, piece: str) -> None:
        if not piece:
            return
        self._size += len(piece)
        if self._size > MAX_RECORD_CHARS:
            raise UpstreamProtocolError(f"Bing's ChatHub sent a record over {MAX_RECORD_CHARS} characters without its separator.")
        self._pieces.append(piece)

    @property
    def pending(self) -> bool:
        """True while a record has started but its RS has not arrived."""
        return bool(self._pieces)


# One call per record instead of json.loads' three layers and two regex matches; a
# record that is not one bare JSON value goes through json.loads, which takes (or
# refuses) it exactly as before.
_raw_decode = json.JSONDecoder().raw_decode


def _decode(piece: str) -> dict:
    try:
        record, end = _raw_decode(piece)
    except ValueError:
        end = -1
    try:
        if end != len(piece):
            record = json.loads(piece)
    except ValueError:
        raise UpstreamProtocolError("Bing's ChatHub sent a record that is not JSON.") from None
    if not isinstance(record, dict):
        raise UpstreamProtocolError("Bing's ChatHub sent a record that is not a JSON object.")
    return record
