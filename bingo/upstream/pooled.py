"""A Copilot turn on a pooled account: it waits for a slot, moves to another account
when one fails before anything was handed on, and gives its slot back exactly once.

The turn opens at once when an account has room. Otherwise `next(wake_at)` waits in
the pool's queue and returns None at `wake_at`, exactly as a quiet upstream does, so
the relay's one keep-alive clock covers the wait too. A failure before the first
event the client would see (in the REST leg, the upgrade, an error event before any
text; a progress note shows nothing) is blamed on the account (`AccountPool.blame`);
a refused access token is refreshed and tried once more on the same account;
throttles, Cloudflare and refused credentials move the request to another account,
at most MAX_MOVES times. After the first event nothing moves: the client has seen
part of an answer.

An anonymous account's turn carries the account's kept Copilot session
(`accounts/sessions.py`) and keeps the one its start set; a refusal (401, 403,
`isBlocked`) drops it. A kept session may have gone stale: when Copilot calls it
invalid (401) or blocked (`isBlocked`), the turn tries once more on the same
account with a new one before the account is blamed. A 403 is Cloudflare, which a
new session does not pass: no retry.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence

from ..accounts import Account
from ..accounts.pool import AccountPool, Lease
from ..config import Settings
from ..errors import BingoError, UpstreamBlocked, UpstreamRejected
from ..images import Image, ImageRef
from .copilot import CopilotAdapter, Identity, attachments
from .engine import WebsocketTurn, open_turn
from .events import Event, Progress, TurnRequest, until_finish

log = logging.getLogger(__name__)

MAX_MOVES = 2


class PooledTurn:
    """One Copilot turn on a leased account; `close()` releases the lease once."""

    def __init__(self, settings: Settings, pool: AccountPool, request: TurnRequest, adapter: CopilotAdapter) -> None:
        self._settings = settings
        self._pool = pool
        self._adapter = adapter  # built first: a message over the limit is a 400 before any slot
        self._watch = request.watch
        self._candidates = candidates(pool, request.images)
        self._tried: list[str] = []
        self._lease: Lease | None = None
        self._turn: WebsocketTurn | None = None
        self._handed_on = False
        self._last_token = ""  # the access token the open turn carries, if any
        self._sent_session = ""  # the kept anonymous session the open turn sent back, if any
        self._kept_session = ""  # the new one its start set, once kept
        self._attempt: CopilotAdapter | None = None  # the adapter of the open (or failed) turn
        self._refused_token = ""  # set once a token was refused: the retry refreshes it
        self._retried = False
        self._opened_on = ""
        self._deadline = time.monotonic() + settings.queue_seconds
        try:
            self._open(time.monotonic())  # now, when an account has room; else next() waits
        except BaseException:
            self.close()
            raise

    @property
    def account(self) -> str:
        """The name of the account the turn opened on ("" while queued), kept after close()."""
        return self._opened_on

    def next(self, wake_at: float) -> Event | None:
        """The next event; None at `wake_at`, also while still queued for an account."""
        while True:
            if self._turn is None and not self._open(wake_at):
                return None
            assert self._turn is not None
            try:
                event = self._turn.next(wake_at)
            except BingoError as exc:
                self._recover(exc)
                continue
            if event is not None and not isinstance(event, Progress):  # progress shows the client nothing
                self._handed_on = True
            return event

    def ready(self) -> bool:
        """True when an event can be had without waiting (never while queued)."""
        turn = self._turn
        return turn is not None and turn.ready()

    def events(self, tick: float = math.inf) -> Iterator[Event | None]:
        """Every event up to the Finish, with None after each `tick` seconds of quiet."""
        return until_finish(self, tick)

    def close(self) -> None:
        """Close the turn and give the slot back, once, whichever path gets here first.

        No lock: like _open and _recover, it runs on the request's own thread (the
        watchdog only shuts sockets down), so taking the fields first is enough.
        """
        turn, self._turn = self._turn, None
        lease, self._lease = self._lease, None
        try:
            if turn is not None:
                turn.close()
        finally:
            if lease is not None:
                self._pool.release(lease)

    def _open(self, until: float) -> bool:
        """Lease an account and open the turn on it; False when `until` came first."""
        while self._turn is None:
            if self._lease is None:
                remaining = [a for a in self._candidates if a.name not in self._tried]
                self._lease = self._pool.acquire(remaining, until, self._deadline, self._watch)
                if self._lease is None:
                    return False
            account = self._lease.account
            try:
                self._attempt = self._adapter.speaking_as(self._identity(account))
                self._turn = open_turn(self._settings, self._attempt, self._watch)
                self._opened_on = account.name
            except BingoError as exc:
                self._recover(exc)
            else:
                self._settle_session(account, None)
        return True

    def _identity(self, account: Account) -> Identity:
        force = bool(self._refused_token)
        token = self._pool.tokens.access_token(account, force, rejected=self._refused_token)
        self._last_token = token
        self._sent_session, self._kept_session = self._pool.sessions.current(account), ""
        user_agent = account.user_agent or self._settings.copilot_user_agent
        return Identity(account.cookie, user_agent, token, self._sent_session)

    def _settle_session(self, account: Account, exc: BingoError | None) -> None:
        """Keep the session the start set (once), or drop the sessions Copilot refused."""
        given = self._attempt.anon_cookie if self._attempt is not None else ""
        if isinstance(exc, UpstreamRejected):
            for value in {self._sent_session, given} - {""}:
                self._pool.sessions.drop(account, value)
            return
        if given and given not in (self._sent_session, self._kept_session):
            self._pool.sessions.keep(account, given)
            self._kept_session = given

    def _recover(self, exc: BingoError) -> None:
        """Retry once after a token refresh, or move to another account; raises `exc`
        (with the pool's Retry-After and names) when neither can help."""
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.close()
        lease = self._lease
        if lease is None:
            raise exc
        account = lease.account
        self._settle_session(account, exc)
        if self._handed_on:
            self._pool.blame(account, exc)  # the next requests avoid it; this one has begun
            raise exc
        if type(exc) is UpstreamRejected and account.kind == "refresh" and not self._retried:
            log.info("account %r: access token refused; refreshing it and trying once more", account.name)
            self._retried, self._refused_token = True, self._last_token
            return
        if type(exc) in (UpstreamRejected, UpstreamBlocked) and self._sent_session and not self._retried:
            log.info("account %r: Copilot refused its anonymous session (%s); trying once more with a new one",
                     account.name, exc.code)
            self._retried = True
            return
        moves = self._pool.blame(account, exc)
        self._lease = None
        self._pool.release(lease)
        self._tried.append(account.name)
        self._retried, self._refused_token = False, ""
        if not moves:
            raise exc
        if len(self._tried) > MAX_MOVES or all(a.name in self._tried for a in self._candidates):
            raise self._pool.unserved(exc, self._candidates)
        log.info("account %r failed (%s); the request moves to another account", account.name, exc.code)
        self._deadline = time.monotonic() + self._settings.queue_seconds


def candidates(pool: AccountPool, images: Sequence[Image | ImageRef]) -> list[Account]:
    """The accounts that may serve a request: signed-in ones only for image input.

    Raises the 400 of image input without a signed-in account. The relay asks with
    the images as the client named them, before any is read (an http(s) image is
    fetched only for a request some account can serve); the turn asks again with
    the images read, before any slot is taken.
    """
    accounts = list(pool.roster.accounts())
    if not images:
        return accounts
    signed_in = [a for a in accounts if a.signed_in]
    if not signed_in:
        attachments.require_sign_in(images, "")
    return signed_in
