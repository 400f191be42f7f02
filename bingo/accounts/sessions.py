"""Anonymous accounts' Copilot sessions: one `__Host-copilot-anon` cookie per account.

The app presentation's `POST /c/api/start` hands an anonymous client this cookie
(protocol note 3.1-3.3); a client that sends it back on its next start, and on each
websocket upgrade, stays the same anonymous user, as the Go proxy's cookie jar and
gpt4free's CopilotApp do. Without it every turn would be a new anonymous user, and
pacing an "account" would pace nothing Copilot sees.

The cookie lives in the state store, so every process uses one session per account,
under `name#fingerprint` (as tokens.py keys its tokens): never the cookie itself in
a key or a log line. A start that sets a new cookie replaces it; a refusal (HTTP
401/403, `isBlocked`) drops it, so the next turn starts afresh. No Flask here.
"""
from __future__ import annotations

from ..state import StateStore
from . import Account, store_key

# Copilot does not say how long an anonymous session lives; one is kept for a day after
# Copilot set it, not forever (a stale one is refused, dropped and replaced anyway).
SESSION_SECONDS = 24 * 3600.0


class AnonSessions:
    """The kept anonymous session of each anonymous account; one per process."""

    def __init__(self, store: StateStore, ttl: float = SESSION_SECONDS) -> None:
        self._store = store
        self._ttl = ttl

    def current(self, account: Account) -> str:
        """The cookie value to send for `account` ("" to start a new session: none kept,
        or not an anonymous account)."""
        if account.kind != "anonymous":
            return ""
        return self._store.anon_session(store_key(account)) or ""

    def keep(self, account: Account, value: str) -> None:
        """Remember the session a start gave `account` (its first, or a rotated one)."""
        if account.kind == "anonymous" and value:
            self._store.put_anon_session(store_key(account), value, self._ttl)

    def drop(self, account: Account, value: str) -> None:
        """Forget `value` after Copilot refused it, unless another turn replaced it already."""
        if account.kind == "anonymous" and value:
            self._store.drop_anon_session(store_key(account), value)
