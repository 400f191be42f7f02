"""An account's standing: what an upstream failure says about the account that met it,
and whether that still holds.

Throttled -> cooling down until Copilot's time, else BINGO_COOLDOWN_SECONDS.
Cloudflare or refused credentials -> needs attention, for the version of the entry
it was met with (its fingerprint): an operator who edits the entry (a new cookie or
refresh token) puts it back at once. Anonymous accounts have no entry to edit, so
they cool down instead. The standing lives in the state store under the account's
name; reasons are redacted upstream messages, never a credential. No Flask here.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ..errors import (
    BingoError,
    UpstreamBlocked,
    UpstreamError,
    UpstreamRejected,
    UpstreamThrottled,
)
from ..redact import redact
from ..state import Health, StateStore
from . import Account

log = logging.getLogger(__name__)

REASON_CHARS = 600  # an upstream message and its advice; failures.py bounds what Copilot said


def current(store: StateStore, account: Account) -> Health | None:
    """The account's standing now (None: healthy); a changed entry clears "attention"."""
    health = store.health(account.name)
    if health is not None and health.state == "attention" and health.fingerprint != account.fingerprint:
        log.info("account %r: its entry changed, no longer needs attention", account.name)
        store.set_health(account.name, None)
        return None
    return health


def describe(health: Health | None) -> str:
    """`healthy`, `cooling down until <UTC time>` or `needs attention: <why>`."""
    if health is None:
        return "healthy"
    if health.state == "cooling":
        return f"cooling down until {iso(health.until)}"
    return f"needs attention: {health.reason}"


def blame(
    store: StateStore, account: Account, exc: BingoError, cooldown_seconds: float, clock: Callable[[], float],
) -> bool:
    """Record what `exc` says about `account`; True when another account may do better.

    Anything but a throttle, Cloudflare or refused credentials is not the account's
    doing (an unreachable upstream, a region block, a bad request): no standing.
    """
    if not isinstance(exc, UpstreamError):
        return False
    store.note_error(account.name, redact(exc.message)[:REASON_CHARS])
    if isinstance(exc, UpstreamThrottled):
        _rest(store, account, exc, cooldown_seconds if exc.guessed else exc.retry_after, clock)
        return True
    if isinstance(exc, UpstreamBlocked) or not isinstance(exc, UpstreamRejected):
        return False
    if account.kind == "anonymous":
        _rest(store, account, exc, cooldown_seconds, clock)
        return True
    reason = f"{exc.code}: {redact(exc.message)}"[:REASON_CHARS]
    store.set_health(account.name, Health("attention", reason=reason, fingerprint=account.fingerprint))
    log.warning("account %r needs attention (%s); requests go to the other accounts", account.name, exc.code)
    return True


def _rest(store: StateStore, account: Account, exc: BingoError, seconds: float, clock: Callable[[], float]) -> None:
    until = clock() + seconds
    store.set_health(account.name, Health("cooling", until=until, reason=f"{exc.code}"))
    log.warning("account %r: %s; cooling down until %s", account.name, exc.code, iso(until))


def iso(epoch: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
