"""The in-process state store: one process needs nothing else.

One mutex guards everything (gthread serves requests from many threads). Leases,
windows and locks run on the monotonic clock, so a wall-clock step neither frees nor
holds a slot; the values the contract hands in and out (cool-downs, token expiry)
are epoch seconds. Each process has its own copy: with several processes
(WEB_CONCURRENCY, several machines) set REDIS_URL instead.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager

from . import WINDOW_SECONDS, Health, Record, Slot, Token, Usage

# API keys come from clients; past this many windows the empty ones are dropped.
_KEYS_BEFORE_PRUNE = 10_000


class MemoryStore:
    """The StateStore of a single process; `window` is 60 s except in tests."""

    def __init__(self, responses_kept: int = 1_000, window: float = WINDOW_SECONDS) -> None:
        self.calls = 0
        self.window = window
        self.responses_kept = responses_kept
        self._mutex = threading.Lock()
        self._lock_freed = threading.Condition(self._mutex)
        self._leases: defaultdict[str, dict[str, float]] = defaultdict(dict)  # lease -> expiry
        self._turns: defaultdict[str, deque[float]] = defaultdict(deque)  # start times
        self._health: dict[str, Health] = {}
        self._errors: dict[str, str] = {}
        self._tokens: dict[str, Token] = {}
        self._refresh: dict[str, str] = {}
        self._anon: dict[str, tuple[str, float]] = {}  # key -> (cookie value, monotonic expiry)
        self._locks: dict[str, tuple[str, float]] = {}  # name -> (holder, expiry)
        self._keys: dict[str, deque[float]] = {}
        self._responses: OrderedDict[str, Record] = OrderedDict()

    @contextmanager
    def _op(self) -> Iterator[float]:
        """Hold the mutex, count the call, give the monotonic now."""
        with self._mutex:
            self.calls += 1
            yield time.monotonic()

    # -- pacing ---------------------------------------------------------------
    def take_slot(self, account: str, concurrency: int, rpm: int, lease_seconds: float) -> Slot:
        with self._op() as now:
            leases = self._live_leases(account, now)
            turns = self._window(self._turns[account], now)
            waits = [self._cooling_left(account)]
            if len(leases) >= concurrency:
                waits.append(sorted(leases.values())[len(leases) - concurrency] - now)
            if len(turns) >= rpm:
                waits.append(turns[len(turns) - rpm] + self.window - now)
            wait = max(waits)
            if wait > 0:
                return Slot(None, wait)
            lease = secrets.token_hex(8)
            leases[lease] = now + lease_seconds
            turns.append(now)
            return Slot(lease)

    def release(self, account: str, lease: str) -> None:
        with self._op():
            self._leases[account].pop(lease, None)

    def usage(self, account: str) -> Usage:
        with self._op() as now:
            leases = self._live_leases(account, now)
            return Usage(in_flight=len(leases), last_minute=len(self._window(self._turns[account], now)))

    def _live_leases(self, account: str, now: float) -> dict[str, float]:
        leases = self._leases[account]
        for lease in [lease for lease, expiry in leases.items() if expiry <= now]:
            del leases[lease]
        return leases

    def _window(self, starts: deque[float], now: float) -> deque[float]:
        while starts and starts[0] <= now - self.window:
            starts.popleft()
        return starts

    def _cooling_left(self, account: str) -> float:
        health = self._current_health(account)
        return health.until - time.time() if health and health.state == "cooling" else 0.0

    # -- health ---------------------------------------------------------------
    def set_health(self, account: str, health: Health | None) -> None:
        with self._op():
            if health is None:
                self._health.pop(account, None)
            else:
                self._health[account] = health

    def health(self, account: str) -> Health | None:
        with self._op():
            return self._current_health(account)

    def _current_health(self, account: str) -> Health | None:
        health = self._health.get(account)
        if health and health.state == "cooling" and health.until <= time.time():
            del self._health[account]
            return None
        return health

    def note_error(self, account: str, text: str) -> None:
        with self._op():
            self._errors[account] = text

    def last_error(self, account: str) -> str:
        with self._op():
            return self._errors.get(account, "")

    # -- tokens ---------------------------------------------------------------
    def token(self, account: str) -> Token | None:
        with self._op():
            token = self._tokens.get(account)
            return token if token and token.expires_at > time.time() else None

    def put_token(self, account: str, token: Token) -> None:
        with self._op():
            self._tokens[account] = token

    def refresh_token(self, account: str) -> str | None:
        with self._op():
            return self._refresh.get(account)

    def put_refresh_token(self, account: str, value: str) -> None:
        with self._op():
            self._refresh[account] = value

    # -- anonymous sessions ---------------------------------------------------
    def anon_session(self, account: str) -> str | None:
        with self._op() as now:
            value, expiry = self._anon.get(account, ("", 0.0))
            if expiry <= now:
                self._anon.pop(account, None)
                return None
            return value

    def put_anon_session(self, account: str, value: str, ttl: float) -> None:
        with self._op() as now:
            self._anon[account] = (value, now + ttl)

    def drop_anon_session(self, account: str, value: str) -> None:
        with self._op():
            if self._anon.get(account, ("", 0.0))[0] == value:
                del self._anon[account]

    @contextmanager
    def lock(self, name: str, timeout: float) -> Iterator[None]:
        holder = self._acquire(name, timeout)
        try:
            yield
        finally:
            with self._op():
                if self._locks.get(name, ("", 0.0))[0] == holder:
                    del self._locks[name]
                    self._lock_freed.notify_all()

    def _acquire(self, name: str, timeout: float) -> str:
        holder = secrets.token_hex(8)
        with self._op() as start:
            deadline = start + timeout
            while True:
                now = time.monotonic()
                held = self._locks.get(name)
                if held is None or held[1] <= now:
                    self._locks[name] = (holder, now + timeout)
                    return holder
                if now >= deadline:
                    raise TimeoutError(f"lock {name!r} still held after {timeout:g} s")
                self._lock_freed.wait(min(deadline, held[1]) - now)

    # -- API keys ---------------------------------------------------------------
    def hit_key(self, key_id: str, rpm: int) -> float:
        with self._op() as now:
            if len(self._keys) > _KEYS_BEFORE_PRUNE:
                self._prune_keys(now)
            starts = self._window(self._keys.setdefault(key_id, deque()), now)
            if len(starts) >= rpm:
                return starts[len(starts) - rpm] + self.window - now
            starts.append(now)
            return 0.0

    def _prune_keys(self, now: float) -> None:
        for key_id in [k for k, starts in self._keys.items() if not self._window(starts, now)]:
            del self._keys[key_id]

    # -- Responses API ------------------------------------------------------------
    def put_response(self, response_id: str, record: Record) -> None:
        with self._op():
            self._responses.pop(response_id, None)
            self._responses[response_id] = record
            while len(self._responses) > self.responses_kept:
                self._responses.popitem(last=False)

    def get_response(self, response_id: str) -> Record | None:
        with self._op():
            return self._responses.get(response_id)

    def delete_response(self, response_id: str) -> bool:
        with self._op():
            return self._responses.pop(response_id, None) is not None

    # -- life -------------------------------------------------------------------
    def ping(self) -> None:
        with self._op():
            pass
