"""Where stored Responses API responses live between requests: the shared state.

A record is plain JSON-able data (the response body as returned, and the
conversation it ends, as role/content pairs), so Redis keeps it as JSON. With
REDIS_URL every gunicorn process (and machine) sees every stored response; without
it they live in this process. Either way past BINGO_RESPONSES_KEPT records the
oldest stored goes (Redis: a capped index, see state/redis_scripts.py).
"""
from __future__ import annotations

from typing import Protocol

from .state import (  # Record: {"response": {...}, "history": [{"role", "content"}, ...]}
    Record,
    StateStore,
)


class ResponseStore(Protocol):
    def put(self, response_id: str, record: Record) -> None:
        """Keep `record` under `response_id`, replacing any earlier one."""

    def get(self, response_id: str) -> Record | None:
        """The record, or None when it was never stored, deleted or evicted."""

    def delete(self, response_id: str) -> bool:
        """Forget the record; False when there was none."""


class StateResponses:
    """The Responses API's view of the process's StateStore."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def put(self, response_id: str, record: Record) -> None:
        self.state.put_response(response_id, record)

    def get(self, response_id: str) -> Record | None:
        return self.state.get_response(response_id)

    def delete(self, response_id: str) -> bool:
        return self.state.delete_response(response_id)


def make_store(state: StateStore) -> ResponseStore:
    """The app's response store, kept where its StateStore keeps everything else."""
    return StateResponses(state)
