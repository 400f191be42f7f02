"""Shared state: what every gunicorn process (and every machine) must see alike.

Account pacing (concurrency leases and a sliding one-minute window), account health
(cool-downs and "needs attention"), cached access tokens and rotated refresh tokens,
a cross-process lock for token refresh, per-API-key rate limits, and the Responses
API's stored responses. `memory.py` keeps them in this process (one process needs
nothing else); `redis_store.py` keeps them in Redis when REDIS_URL is set.

This module is the contract; callers never import a backend directly (`open_store`).

Keys are account *names* and hashed API keys, never a secret. Every method raises
`bingo.errors.StateStoreUnavailable` (503 `state_store_unavailable`) when the store
cannot be reached, so a request is never served unpaced.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Record = dict[str, Any]  # a stored Responses API record: plain JSON-able data


@dataclass(frozen=True)
class Slot:
    """The answer to take_slot: a lease to release, or how long until one may be free."""

    lease: str | None  # None: no room now
    retry_after: float = 0.0  # seconds until the soonest slot frees (0 when leased)


@dataclass(frozen=True)
class Health:
    """An account's standing; `healthy` accounts have no entry at all."""

    state: str  # "cooling" (until `until`) or "attention" (until its entry changes)
    until: float = 0.0  # epoch seconds; cooling only
    reason: str = ""  # what the upstream said, redacted, for the admin view and errors
    fingerprint: str = ""  # attention only: a hash of the account entry it applies to


@dataclass(frozen=True)
class Usage:
    in_flight: int  # leases held now (expired leases not counted)
    last_minute: int  # turns started in the sliding last 60 s


@dataclass(frozen=True)
class Token:
    value: str  # the access token: never logged
    expires_at: float  # epoch seconds

    def __repr__(self) -> str:
        return f"Token(expires_at={self.expires_at!r})"


class StateStore(Protocol):
    # -- pacing ---------------------------------------------------------------
    def take_slot(self, account: str, concurrency: int, rpm: int, lease_seconds: float) -> Slot:
        """Atomically: if `account` is not cooling, holds fewer than `concurrency`
        unexpired leases and started fewer than `rpm` turns in the last 60 s, add a
        lease (expiring after `lease_seconds`, so a crashed process never holds a
        slot) and count a turn. One round trip in Redis (a Lua script)."""

    def release(self, account: str, lease: str) -> None:
        """Give the slot back (idempotent)."""

    def usage(self, account: str) -> Usage: ...

    # -- health ---------------------------------------------------------------
    def set_health(self, account: str, health: Health | None) -> None:
        """Record a cool-down or a needs-attention state; None makes it healthy."""

    def health(self, account: str) -> Health | None:
        """The account's standing; an expired cool-down reads as None."""

    def note_error(self, account: str, text: str) -> None:
        """Remember the last error (redacted text) for the admin view."""

    def last_error(self, account: str) -> str: ...

    # -- tokens ---------------------------------------------------------------
    def token(self, account: str) -> Token | None: ...

    def put_token(self, account: str, token: Token) -> None: ...

    def refresh_token(self, account: str) -> str | None:
        """The newest rotated refresh token, if one was stored."""

    def put_refresh_token(self, account: str, value: str) -> None: ...

    def lock(self, name: str, timeout: float) -> AbstractContextManager[None]:
        """Hold a lock shared by every process for at most `timeout` seconds
        (expires by itself); waits up to `timeout` to get it."""

    # -- API keys ---------------------------------------------------------------
    def hit_key(self, key_id: str, rpm: int) -> float:
        """Count a request for an API key (hashed id); 0 if allowed, else the
        seconds until the sliding window lets one more through."""

    # -- Responses API ------------------------------------------------------------
    def put_response(self, response_id: str, record: Record) -> None: ...

    def get_response(self, response_id: str) -> Record | None: ...

    def delete_response(self, response_id: str) -> bool: ...

    # -- life -------------------------------------------------------------------
    def ping(self) -> None:
        """Raise StateStoreUnavailable unless the store answers."""

    def round_trips(self) -> Iterator[int]:
        """(optional, for bench) a counter of store calls made so far."""
