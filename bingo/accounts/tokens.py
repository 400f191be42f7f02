"""Access tokens for signed-in accounts: a refresh token exchanged at the Microsoft
identity platform, cached until shortly before it expires, refreshed once for every
thread and process (the state store's lock), with rotated refresh tokens kept.

Store keys are `name#fingerprint`: an account's name plus a hash of its entry, so an
operator who signs an account in again (a new refresh token in its entry) starts
afresh instead of reusing the old entry's rotated token. No secret reaches a key, a
log line or an error. The exchange itself (protocol note 3.2, the Origin) is
`exchange.py`.

A rotated refresh token that cannot be stored (the store did not answer) may be the
only one still valid, so the process keeps it, uses it for its next refresh, and
stores it at the account's next use.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

from ..config import Settings
from ..errors import (
    SignInRequired,
    StateStoreUnavailable,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from ..state import StateStore, Token
from . import Account, store_key
from .exchange import Exchange, refusal_reason

log = logging.getLogger(__name__)

REFRESH_EARLY = 300.0  # seconds before expiry that a cached token counts as stale
LOCK_MARGIN = 5.0  # the refresh lock outlives two exchanges (BINGO_CONNECT_TIMEOUT each: one retry
# with or without Origin, exchange.py) by this


class Tokens:
    """Bearer tokens for accounts; one per process, shared by its threads."""

    def __init__(
        self, settings: Settings, store: StateStore, *, early: float = REFRESH_EARLY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._early = early
        self._clock = clock
        self._exchange = Exchange(settings)
        self._local: dict[str, Token] = {}  # saves a store round trip per request
        self._unsaved: dict[str, tuple[str, str]] = {}  # store key -> (redeemed, rotated) not stored yet
        self._refused: dict[str, str] = {}  # store key -> why: no second try until the entry changes
        self._lock_seconds = 2 * settings.connect_timeout + LOCK_MARGIN
        self._mutex = threading.Lock()

    def access_token(self, account: Account, force: bool = False, *, rejected: str = "") -> str:
        """The Bearer token for `account`: "" for anonymous and cookie accounts, the
        static token for "token" ones, and for "refresh" ones a cached or fresh one.

        `force=True` (after a 401) refreshes even a token that looks valid; pass the
        refused token as `rejected` so that of several threads refused at once only
        the first refreshes and the rest take its token. Raises SignInRequired when
        the refresh token is refused, UpstreamUnavailable/UpstreamTimeout when the
        identity service cannot be reached.
        """
        if account.kind == "token":
            return account.access_token
        if account.kind != "refresh":
            return ""
        key = store_key(account)
        if key in self._unsaved:  # under the lock, so no other process's newer token is overwritten
            with ExitStack() as held:
                self._take_lock(held, account, key)
                self._store_rotation(account, key)
        cached = None if force else self._cached(key)
        if cached is not None:
            return cached.value
        self._raise_if_refused(account, key)
        with ExitStack() as held:
            self._take_lock(held, account, key)
            # Another thread or process may have refreshed while this one waited.
            cached = self._store.token(key)
            if cached is not None and self._fresh(cached) and (not force or (rejected and cached.value != rejected)):
                self._local[key] = cached
                return cached.value
            self._raise_if_refused(account, key)
            return self._refresh(account, key).value

    def expires_at(self, account: Account) -> float | None:
        """When the account's cached access token expires (epoch seconds), if it has one."""
        if account.kind != "refresh":
            return None
        cached = self._store.token(store_key(account))
        return cached.expires_at if cached is not None else None

    def _cached(self, key: str) -> Token | None:
        """A fresh token from this process's copy, else from the store."""
        local = self._local.get(key)
        if local is not None and self._fresh(local):
            return local
        stored = self._store.token(key)
        if stored is not None and self._fresh(stored):
            self._local[key] = stored
            return stored
        return None

    def _take_lock(self, held: ExitStack, account: Account, key: str) -> None:
        try:
            held.enter_context(self._store.lock(f"refresh:{key}", self._lock_seconds))
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"Token refresh for account {account.name!r} waited {self._lock_seconds:g} s for another "
                "process's refresh; retry."
            ) from exc

    def _fresh(self, token: Token) -> bool:
        return token.expires_at - self._early > self._clock()

    def _refresh(self, account: Account, key: str) -> Token:
        unsaved = self._unsaved.get(key)
        refresh_token = unsaved[1] if unsaved else self._store.refresh_token(key) or account.refresh_token
        self._local.pop(key, None)
        reply = self._exchange.redeem(account, key, refresh_token)
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.status >= 400:
            raise self._refuse(account, key, reply.status, body)
        token = self._token_from(account, body)
        self._local[key] = token
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            # What the store still holds: with an earlier rotation unsaved, that one's base.
            self._unsaved[key] = (unsaved[0] if unsaved else refresh_token, rotated)
            self._store_rotation(account, key)
        self._store.put_token(key, token)
        log.info("account %r: access token refreshed, valid for %d s", account.name, token.expires_at - self._clock())
        return token

    def _store_rotation(self, account: Account, key: str) -> None:
        """Store the rotated refresh token this process holds, unless another process
        stored a newer one meanwhile; a store that does not answer keeps it here."""
        unsaved = self._unsaved.get(key)  # another thread may have stored it meanwhile
        if unsaved is None:
            return
        redeemed, rotated = unsaved
        try:
            if self._store.refresh_token(key) in (None, redeemed):
                self._store.put_refresh_token(key, rotated)
        except StateStoreUnavailable:
            log.warning("account %r: its rotated refresh token could not be stored; this process keeps it "
                        "and stores it at the account's next use", account.name)
            return
        self._unsaved.pop(key, None)

    def _token_from(self, account: Account, body: dict) -> Token:
        value, lifetime = body.get("access_token"), body.get("expires_in")
        if isinstance(lifetime, str) and lifetime.isdigit():
            lifetime = int(lifetime)
        if not isinstance(value, str) or not value or not isinstance(lifetime, int) or lifetime <= 0:
            raise UpstreamProtocolError(
                f"The identity service answered account {account.name!r}'s token refresh without an "
                "access token and its lifetime; check BINGO_LOGIN_URL."
            )
        return Token(value, self._clock() + lifetime)

    def _refuse(self, account: Account, key: str, status: int, body: dict) -> SignInRequired:
        why = refusal_reason(status, body)
        with self._mutex:
            first = key not in self._refused
            self._refused[key] = why
        if first:
            log.warning(
                "account %r: the identity service refused its refresh token (%s); sign in again with "
                "`python -m bingo login --name %s` and replace the account's refresh token", account.name, why, account.name,
            )
        return _sign_in_required(account, why)

    def _raise_if_refused(self, account: Account, key: str) -> None:
        why = self._refused.get(key)
        if why is not None:
            raise _sign_in_required(account, why)


def _sign_in_required(account: Account, why: str) -> SignInRequired:
    return SignInRequired(
        f"Account {account.name!r} must sign in again: the identity service refused its refresh token ({why}). "
        f"Run `python -m bingo login --name {account.name}` and put the refresh token it prints into "
        "COPILOT_ACCOUNTS_FILE (or COPILOT_REFRESH_TOKEN)."
    )
