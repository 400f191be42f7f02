"""Where stored Responses API responses live between requests.

A record is plain JSON-able data (the response body as returned, and the
conversation it ends, as role/content pairs), so a shared store can serialise it
as it is. This process keeps them in memory, oldest evicted past a bound; the
shared-state issue backs the same interface with Redis so that every gunicorn
worker sees every response. Until then a response is found only by the worker
process that stored it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol

from .config import Settings

Record = dict[str, Any]  # {"response": {...}, "history": [{"role": ..., "content": ...}, ...]}


class ResponseStore(Protocol):
    def put(self, response_id: str, record: Record) -> None:
        """Keep `record` under `response_id`, replacing any earlier one."""

    def get(self, response_id: str) -> Record | None:
        """The record, or None when it was never stored, deleted or evicted."""

    def delete(self, response_id: str) -> bool:
        """Forget the record; False when there was none."""


class MemoryStore:
    """A bounded in-process store: past `capacity` records, the oldest stored goes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._lock = threading.Lock()  # gthread serves requests from several threads

    def put(self, response_id: str, record: Record) -> None:
        with self._lock:
            self._records.pop(response_id, None)
            self._records[response_id] = record
            while len(self._records) > self.capacity:
                self._records.popitem(last=False)

    def get(self, response_id: str) -> Record | None:
        with self._lock:
            return self._records.get(response_id)

    def delete(self, response_id: str) -> bool:
        with self._lock:
            return self._records.pop(response_id, None) is not None

    def __len__(self) -> int:
        return len(self._records)


def make_store(settings: Settings) -> ResponseStore:
    """The store for one app: in memory, BINGO_RESPONSES_KEPT records at most."""
    return MemoryStore(settings.responses_kept)
