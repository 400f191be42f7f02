"""The account pool: which Copilot account serves a turn, and how fast each may go.

Per account at most BINGO_ACCOUNT_CONCURRENCY turns at once and BINGO_ACCOUNT_RPM
turns in a sliding minute, counted in the shared state store (a lease with a TTL per
turn, so a crashed process never holds a slot). A request takes the least-loaded
healthy account as this process sees it (its own leases; ties go round-robin), and
the store's atomic take-a-slot makes the limits hold across every process whatever
each one picks. With no room anywhere the request waits, up to BINGO_QUEUE_SECONDS,
woken by a release in this process or by polling with backoff (another process's).

Accounts that rest or wait for the operator (`standing.py`) are skipped, and when
no account can serve, the errors here say which and until when. Names, never
credentials, reach the store, the log and the errors. No Flask here.
"""
from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..config import Settings
from ..errors import (
    AccountsBusy,
    AccountsNeedAttention,
    BingoError,
    ClientDisconnected,
    StateStoreUnavailable,
    UpstreamThrottled,
)
from ..state import StateStore
from . import Account, standing
from .sessions import AnonSessions

if TYPE_CHECKING:
    from ..upstream.events import ClientWatch

log = logging.getLogger(__name__)

FIRST_NAP = 0.05  # seconds; a queued request's first wait between polls, doubled each time
LONGEST_NAP = 0.5  # the backoff's cap: how late a queued request may notice another process's release
LEASE_MARGIN = 30.0  # seconds a lease outlives the longest turn (connect legs, a 401 retry)


class AccountSource(Protocol):
    def accounts(self) -> Sequence[Account]: ...


class TokenSource(Protocol):
    def access_token(self, account: Account, force: bool = False, *, rejected: str = "") -> str: ...

    def expires_at(self, account: Account) -> float | None: ...


@dataclass(frozen=True)
class Lease:
    """One turn's slot on one account; the pool's `release` gives it back."""

    account: Account
    lease: str = field(repr=False)


@dataclass
class _Survey:
    """Why no account took a request: what each candidate said, names only."""

    full: dict[str, float] = field(default_factory=dict)  # name -> seconds until a slot may free
    cooling: dict[str, float] = field(default_factory=dict)  # name -> epoch seconds it rests until
    attention: list[str] = field(default_factory=list)

    def soonest(self, now: float) -> float:
        """Seconds until some account may take a turn again (inf: none ever will)."""
        waits = [*self.full.values(), *(until - now for until in self.cooling.values())]
        return max(0.0, min(waits)) if waits else math.inf


class AccountPool:
    """The accounts of one process, paced through the shared store."""

    def __init__(
        self, settings: Settings, store: StateStore, roster: AccountSource, tokens: TokenSource,
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.roster = roster
        self.tokens = tokens
        self.sessions = AnonSessions(store)  # anonymous accounts' Copilot sessions
        self._clock = clock
        self._lease_seconds = settings.total_timeout + 3 * settings.connect_timeout + LEASE_MARGIN
        self._freed = threading.Condition()
        self._in_flight: dict[str, int] = {}  # this process's leases per account name
        self._turns = 0  # round-robin among equally loaded accounts

    # -- taking and giving back slots --------------------------------------------------

    def acquire(
        self, candidates: Sequence[Account], until: float, deadline: float, watch: ClientWatch | None = None,
    ) -> Lease | None:
        """A lease on the least-loaded healthy candidate; None once `until` (monotonic)
        passes without one, so a stream can write a keep-alive and come back.

        Raises AccountsNeedAttention when every candidate needs the operator,
        AccountsBusy when no candidate frees up by `deadline` (at once when none can),
        ClientDisconnected when the client left while waiting.
        """
        nap = FIRST_NAP
        while True:
            survey = _Survey()
            lease = self._take(candidates, survey)
            if lease is not None:
                return lease
            now = time.monotonic()
            if not survey.full and not survey.cooling:
                raise self.attention_error(survey.attention)
            soonest = survey.soonest(self._clock())
            if now >= deadline or (not survey.full and now + soonest > deadline):
                raise self.busy_error(survey)
            if now >= until:
                return None
            self._nap(min(nap, until - now, deadline - now), watch)
            nap = min(nap * 2, LONGEST_NAP)

    def release(self, lease: Lease) -> None:
        """Give a slot back (callers make sure this happens once per lease).

        Never raises: it runs where a turn ends, in `finally` blocks and after the last
        byte. A store that cannot be reached keeps the lease until its TTL frees it.
        """
        name = lease.account.name
        try:
            self.store.release(name, lease.lease)
        except StateStoreUnavailable:
            log.warning("account %r: the state store is unreachable; its slot frees when the lease expires", name)
        finally:
            with self._freed:
                self._in_flight[name] = max(0, self._in_flight.get(name, 0) - 1)
                self._freed.notify_all()

    def _take(self, candidates: Sequence[Account], survey: _Survey) -> Lease | None:
        for account in self._ordered(candidates):
            if not self._usable(account, survey):
                continue
            slot = self.store.take_slot(
                account.name, self.settings.account_concurrency, self.settings.account_rpm, self._lease_seconds,
            )
            if slot.lease is not None:
                with self._freed:
                    self._in_flight[account.name] = self._in_flight.get(account.name, 0) + 1
                return Lease(account, slot.lease)
            survey.full[account.name] = slot.retry_after
        return None

    def _ordered(self, candidates: Sequence[Account]) -> list[Account]:
        """Least loaded first (this process's leases); ties round-robin, turn by turn."""
        with self._freed:
            self._turns += 1
            start, loads = self._turns, dict(self._in_flight)
        count = len(candidates)
        ranked = sorted(range(count), key=lambda i: (loads.get(candidates[i].name, 0), (i - start) % count))
        return [candidates[i] for i in ranked]

    def _usable(self, account: Account, survey: _Survey) -> bool:
        """Not resting and not waiting for the operator (noted in `survey` if it is)."""
        health = standing.current(self.store, account)
        if health is None:
            return True
        if health.state == "cooling":
            survey.cooling[account.name] = health.until
        else:
            survey.attention.append(account.name)
        return False

    def _nap(self, seconds: float, watch: ClientWatch | None) -> None:
        """Wait for a release in this process (or `seconds`); raise if the client left."""
        with self._freed:
            self._freed.wait(max(0.0, seconds))
        if watch is not None and _left(watch):
            raise ClientDisconnected("The client closed the connection while its request waited for an account.")

    def blame(self, account: Account, exc: BingoError) -> bool:
        """Record what `exc` says about `account` (standing.py); True when another may do better."""
        return standing.blame(self.store, account, exc, self.settings.cooldown_seconds, self._clock)

    # -- errors when no account can serve ----------------------------------------------------

    def attention_error(self, names: Sequence[str]) -> BingoError:
        return AccountsNeedAttention(
            f"No Copilot account can serve: {_listed(names)} need attention (GET /v1/accounts says why). "
            "Give each a new cookie or refresh token (`python -m bingo login`) in COPILOT_ACCOUNTS_FILE "
            "or the COPILOT_* variables, or add accounts."
        )

    def busy_error(self, survey: _Survey) -> AccountsBusy:
        """429 with the soonest Retry-After. The store knows exactly when a minute's
        window frees a turn, but a slot held by a running turn frees when that turn
        ends, which nobody knows (its lease's expiry is only the worst case): for an
        account at its concurrency limit the estimate is BINGO_QUEUE_SECONDS."""
        for name, wait in survey.full.items():
            if self.store.usage(name).in_flight >= self.settings.account_concurrency:
                survey.full[name] = min(wait, max(1.0, self.settings.queue_seconds))
        retry_after = max(1, math.ceil(survey.soonest(self._clock())))
        parts = []
        if survey.full:
            parts.append(
                f"{_listed(survey.full)} at the pacing limits (BINGO_ACCOUNT_CONCURRENCY="
                f"{self.settings.account_concurrency} at once, BINGO_ACCOUNT_RPM={self.settings.account_rpm} a minute)"
            )
        if survey.cooling:
            parts.append(f"{_listed(survey.cooling)} cooling down after Copilot throttled them")
        if survey.attention:
            parts.append(f"{_listed(survey.attention)} needing attention")
        return AccountsBusy(
            f"No Copilot account could take this request within BINGO_QUEUE_SECONDS "
            f"({self.settings.queue_seconds:g} s): {'; '.join(parts)}. Retry after {retry_after} s, or add accounts.",
            retry_after=retry_after,
        )

    def unserved(self, exc: BingoError, candidates: Sequence[Account]) -> BingoError:
        """The error a client gets when the accounts it was moved across all failed:
        the last upstream error, with the soonest Retry-After of every candidate and
        the names of those needing attention (a survey that takes no slot)."""
        survey = _Survey()
        for account in candidates:
            if self._usable(account, survey):
                survey.full[account.name] = 0.0
        if isinstance(exc, UpstreamThrottled):
            soonest = survey.soonest(self._clock())
            exc.retry_after = max(1, math.ceil(soonest)) if soonest < math.inf else exc.retry_after
        if survey.attention:
            exc.message += f" Accounts needing attention: {_listed(survey.attention)}."
        return exc


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _left(watch: ClientWatch) -> bool:
    """Whether the client closed its socket by now (never waits)."""
    poll = select.poll()
    poll.register(watch.fileno(), select.POLLIN)
    return bool(poll.poll(0)) and watch.gone()
