"""Access tokens for signed-in accounts: a refresh token exchanged at the Microsoft
identity platform, cached until shortly before it expires, refreshed once for every
thread and process (the state store's lock), with rotated refresh tokens kept.

Store keys are `name#fingerprint`: an account's name plus a hash of its entry, so an
operator who signs an account in again (a new refresh token in its entry) starts
afresh instead of reusing the old entry's rotated token. No secret reaches a key, a
log line or an error. The exchange is protocol note 3.2: the Copilot web app's
public client id, the ChatAI scope, and the Origin that SPA-issued tokens need.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

from ..config import Settings
from ..errors import SignInRequired, UpstreamProtocolError, UpstreamTimeout
from ..state import StateStore, Token
from ..upstream import transport
from . import Account

log = logging.getLogger(__name__)

CLIENT_ID = "14638111-3389-403d-b206-a6a71d9f8f16"  # Copilot's consumer web app (public client)
SCOPE = "140e65af-45d1-4427-bf08-3e7295db6836/ChatAI.ReadWrite openid profile offline_access"
ORIGIN = "https://copilot.microsoft.com"
TOKEN_PATH = "/oauth2/v2.0/token"
REFRESH_EARLY = 300.0  # seconds before expiry that a cached token counts as stale
LOCK_MARGIN = 5.0  # the refresh lock outlives one exchange (BINGO_CONNECT_TIMEOUT) by this
# Every 4xx but 429 is the identity service refusing this refresh token (invalid_grant
# for revoked, expired or rotated-away tokens; interaction_required; ...): only a new
# sign-in helps. 429 and 5xx stay the failure table's (throttled, unavailable).
REFUSALS = tuple(status for status in range(400, 500) if status != 429)
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")
_AADSTS = re.compile(r"\bAADSTS\d{4,6}\b")


def store_key(account: Account) -> str:
    """Where this version of the account's entry keeps its tokens: never a secret."""
    return f"{account.name}#{account.fingerprint}"


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
        self._url = settings.login_url + TOKEN_PATH
        self._local: dict[str, Token] = {}  # saves a store round trip per request
        self._refused: dict[str, str] = {}  # store key -> why: no second try until the entry changes
        self._lock_seconds = settings.connect_timeout + LOCK_MARGIN
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
        refresh_token = self._store.refresh_token(key) or account.refresh_token
        self._local.pop(key, None)
        reply = transport.http_json(
            self._settings, "copilot", "POST", self._url, {"Origin": ORIGIN, "Accept": "application/json"},
            f"Token refresh for account {account.name!r}", form=refresh_form(refresh_token), accept=REFUSALS,
        )
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.status >= 400:
            raise self._refuse(account, key, reply.status, body)
        token = self._token_from(account, body)
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            self._store.put_refresh_token(key, rotated)
        self._store.put_token(key, token)
        self._local[key] = token
        log.info("account %r: access token refreshed, valid for %d s", account.name, token.expires_at - self._clock())
        return token

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


def refresh_form(refresh_token: str) -> dict[str, str]:
    """The refresh-token grant as the Copilot web app's MSAL sends it."""
    return {
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": SCOPE,
        "client_info": "1",
    }


def refusal_reason(status: int, body: dict) -> str:
    """The OAuth error code (and AADSTS number) of a refusal; nothing else of the body."""
    error = body.get("error")
    code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else f"HTTP {status}"
    description = body.get("error_description")
    found = _AADSTS.search(description) if isinstance(description, str) else None
    return f"{code}, {found.group()}" if found else code


def _sign_in_required(account: Account, why: str) -> SignInRequired:
    return SignInRequired(
        f"Account {account.name!r} must sign in again: the identity service refused its refresh token ({why}). "
        f"Run `python -m bingo login --name {account.name}` and put the refresh token it prints into "
        "COPILOT_ACCOUNTS_FILE (or COPILOT_REFRESH_TOKEN)."
    )
