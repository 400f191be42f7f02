"""Shared state: what every gunicorn process (and every machine) must see alike.

Account pacing (concurrency leases and a sliding one-minute window), account health
(cool-downs and "needs attention"), cached access tokens and rotated refresh tokens,
anonymous accounts' Copilot sessions, a cross-process lock for token refresh,
per-API-key rate limits, and the Responses API's stored responses. `memory.py` keeps them in this process (one process needs
nothing else); `redis_store.py` keeps them in Redis when REDIS_URL is set.

This module is the contract; callers never import a backend directly: `create_app`
opens one store per process (`open_store`) and keeps it in
`app.extensions[EXTENSION]`.

Keys are account *names* and hashed API keys, never a secret. Every method raises
`bingo.errors.StateStoreUnavailable` (503 `state_store_unavailable`) when the store
cannot be reached, so a request is never served unpaced. Times handed in and out
(`Health.until`, `Token.expires_at`) are epoch seconds; durations are seconds.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import Settings

Record = dict[str, Any]  # a stored Responses API record: plain JSON-able data
EXTENSION = "bingo.state"  # app.extensions key of the process's store
WINDOW_SECONDS = 60.0  # the sliding window of `rpm` and `hit_key`


@dataclass(frozen=True)
class Slot:
    """The answer to take_slot: a lease to release, or how long until one may be free."""

    lease: str | None  # None: no room now
    retry_after: float = 0.0  # seconds until the soonest slot frees (> 0 when not leased)


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
    calls: int  # store operations so far (Redis: round trips), for the benchmark

    # -- pacing ---------------------------------------------------------------
    def take_slot(self, account: str, concurrency: int, rpm: int, lease_seconds: float) -> Slot:
        """Atomically: if `account` is not cooling, holds fewer than `concurrency`
        unexpired leases and started fewer than `rpm` turns in the last 60 s, add a
        lease (expiring after `lease_seconds`, so a crashed process never holds a
        slot) and count a turn. One round trip in Redis (a Lua script).

        "attention" is not checked here: whether it still applies depends on the
        account entry (its fingerprint), which only the pool knows."""

    def release(self, account: str, lease: str) -> None:
        """Give the slot back (idempotent); the turn stays counted in the window."""

    def usage(self, account: str) -> Usage: ...

    # -- health ---------------------------------------------------------------
    def set_health(self, account: str, health: Health | None) -> None:
        """Record a cool-down or a needs-attention state; None makes it healthy."""

    def health(self, account: str) -> Health | None:
        """The account's standing; an expired cool-down reads as None."""

    def note_error(self, account: str, text: str) -> None:
        """Remember the last error (redacted text) for the admin view."""

    def last_error(self, account: str) -> str:
        """The last noted error, "" when none."""

    # -- tokens ---------------------------------------------------------------
    def token(self, account: str) -> Token | None:
        """The cached access token; None when none was put or it has expired."""

    def put_token(self, account: str, token: Token) -> None: ...

    def refresh_token(self, account: str) -> str | None:
        """The newest rotated refresh token, if one was stored."""

    def put_refresh_token(self, account: str, value: str) -> None: ...

    # -- anonymous sessions ---------------------------------------------------
    def anon_session(self, account: str) -> str | None:
        """The `__Host-copilot-anon` cookie value kept for an anonymous account (keyed
        by name and entry fingerprint); None when none is kept or it has expired."""

    def put_anon_session(self, account: str, value: str, ttl: float) -> None:
        """Keep the account's session (replacing any) for `ttl` seconds."""

    def drop_anon_session(self, account: str, value: str) -> None:
        """Forget the account's session if it is still `value`: one that another
        process has put since (a fresh or rotated cookie) stays."""

    def lock(self, name: str, timeout: float) -> AbstractContextManager[None]:
        """Hold a lock shared by every process for at most `timeout` seconds
        (it expires by itself, so a crashed holder frees it); waits up to `timeout`
        to get it. Not re-entrant.

        Raises TimeoutError when not got in time: with equal timeouts the holder's
        lock has expired by then, so this means a holder used a longer timeout."""

    # -- API keys ---------------------------------------------------------------
    def hit_key(self, key_id: str, rpm: int) -> float:
        """Count a request for an API key (hashed id); 0 if allowed, else the
        seconds until the sliding window lets one more through (not counted)."""

    # -- Responses API ------------------------------------------------------------
    def put_response(self, response_id: str, record: Record) -> None:
        """Keep `record`; past BINGO_RESPONSES_KEPT records the oldest put goes."""

    def get_response(self, response_id: str) -> Record | None: ...

    def delete_response(self, response_id: str) -> bool:
        """Forget a record; False when there was none."""

    # -- life -------------------------------------------------------------------
    def ping(self) -> None:
        """Raise StateStoreUnavailable unless the store answers."""


def open_store(settings: Settings) -> StateStore:
    """The process's store: Redis when REDIS_URL is set, else in memory.

    Raises ConfigError naming REDIS_URL when Redis cannot be reached now, so a
    deployment that expects shared state never starts without it."""
    if not settings.redis_url:
        from .memory import MemoryStore

        return MemoryStore(responses_kept=settings.responses_kept)
    from .redis_store import connect

    return connect(settings.redis_url, responses_kept=settings.responses_kept)
