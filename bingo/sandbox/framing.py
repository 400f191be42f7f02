"""SignalR JSON-hub framing as the sandbox speaks it: records end with RS (0x1E).

Outgoing records may be batched into one websocket message or cut across several;
incoming text is buffered until RS because clients may split records too.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

RS = "\x1e"
MAX_PENDING = 4 * 1024 * 1024  # an unterminated record larger than this is garbage

Record = Mapping[str, Any] | str  # a str is sent verbatim (the "garbage" fault)


def encode_record(record: Record) -> str:
    """One record plus RS; non-ASCII stays raw, as the real hub sent it."""
    if isinstance(record, str):
        return record + RS
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + RS


def encode_message(records: Sequence[Record]) -> str:
    """Several records in one websocket message, as the hub batches them."""
    return "".join(encode_record(record) for record in records)


def split_message(records: Sequence[Record], rng: random.Random) -> list[str]:
    """Cut a batch so that every record is spread over 2-3 websocket messages.

    Cuts fall strictly inside records (between code points, so each piece is
    valid UTF-8), which also leaves the tail of one record and the head of the
    next in the same piece.
    """
    text, cuts, start = "", [], 0
    for record in records:
        encoded = encode_record(record)
        inner = range(start + 1, start + len(encoded))
        cuts.extend(rng.sample(inner, k=min(len(inner), rng.choice((1, 2)))))
        text += encoded
        start += len(encoded)
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if a < b]


class RecordBuffer:
    """Reassembles RS-terminated records from arbitrarily cut websocket messages."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        """Add one message; return the complete records it finished (without RS).

        Raises ValueError when an unterminated record grows past MAX_PENDING.
        """
        *complete, self._pending = (self._pending + text).split(RS)
        if len(self._pending) > MAX_PENDING:
            raise ValueError("unterminated SignalR record is too large")
        return [record for record in complete if record.strip()]
