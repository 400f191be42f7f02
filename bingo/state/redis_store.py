"""The Redis state store: one view for every process and machine (REDIS_URL).

Pacing runs as Lua scripts on Redis's clock (one round trip to take a slot, one to
give it back); everything else is a plain key with a TTL. Key names are
`bingo:` + an account name, a lock name, a hashed API key or a response id: never a
secret. Every Redis failure becomes StateStoreUnavailable, after short socket
timeouts, so a request fails fast instead of hanging or running unpaced.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import ConfigError
from ..errors import StateStoreUnavailable
from . import WINDOW_SECONDS, Health, Record, Slot, Token, Usage
from . import redis_scripts as lua

log = logging.getLogger(__name__)

PREFIX = "bingo:"
SOCKET_TIMEOUT = 2.0  # seconds per connect and per reply: a lost Redis fails a request fast
LOCK_POLL = 0.02  # seconds between tries for a held lock
ERROR_TTL = 7 * 24 * 3600  # seconds a noted error stays for the admin view


class RedisStore:
    """The StateStore over one Redis client (a connection pool shared by threads)."""

    def __init__(self, client: redis.Redis, responses_kept: int = 1_000, window: float = WINDOW_SECONDS) -> None:
        self.client = client
        self.responses_kept = responses_kept
        self.window_ms = round(window * 1000)
        self.calls = 0
        self._counter = threading.Lock()
        self._take = client.register_script(lua.TAKE_SLOT)
        self._usage = client.register_script(lua.USAGE)
        self._hit = client.register_script(lua.HIT_KEY)
        self._unlock = client.register_script(lua.UNLOCK)
        self._put_response = client.register_script(lua.PUT_RESPONSE)
        self._delete_response = client.register_script(lua.DELETE_RESPONSE)

    @contextmanager
    def _call(self) -> Iterator[None]:
        """Count one store operation; any Redis failure becomes StateStoreUnavailable."""
        with self._counter:
            self.calls += 1
        try:
            yield
        except redis.RedisError as exc:
            raise StateStoreUnavailable() from exc

    # -- pacing ---------------------------------------------------------------
    def take_slot(self, account: str, concurrency: int, rpm: int, lease_seconds: float) -> Slot:
        lease = secrets.token_hex(8)
        keys = [_account(account, "leases"), _account(account, "turns"), _account(account, "health")]
        with self._call():
            wait = self._take(keys, [concurrency, rpm, round(lease_seconds * 1000), self.window_ms, lease])
        return Slot(None, int(wait) / 1000) if int(wait) > 0 else Slot(lease)

    def release(self, account: str, lease: str) -> None:
        with self._call():
            self.client.zrem(_account(account, "leases"), lease)

    def usage(self, account: str) -> Usage:
        with self._call():
            in_flight, last_minute = self._usage([_account(account, "leases"), _account(account, "turns")],
                                                 [self.window_ms])
        return Usage(in_flight=int(in_flight), last_minute=int(last_minute))

    # -- health ---------------------------------------------------------------
    def set_health(self, account: str, health: Health | None) -> None:
        key = _account(account, "health")
        with self._call():
            if health is None:
                self.client.delete(key)
            elif health.state == "cooling":
                # PXAT: Redis expires the cool-down at the epoch moment itself.
                self.client.set(key, json.dumps(health.__dict__), pxat=max(1, round(health.until * 1000)))
            else:
                self.client.set(key, json.dumps(health.__dict__))

    def health(self, account: str) -> Health | None:
        with self._call():
            raw = self.client.get(_account(account, "health"))
        if raw is None:
            return None
        health = Health(**json.loads(raw))
        return None if health.state == "cooling" and health.until <= time.time() else health

    def note_error(self, account: str, text: str) -> None:
        with self._call():
            self.client.set(_account(account, "error"), text, ex=ERROR_TTL)

    def last_error(self, account: str) -> str:
        with self._call():
            return str(self.client.get(_account(account, "error")) or "")

    # -- tokens ---------------------------------------------------------------
    def token(self, account: str) -> Token | None:
        with self._call():
            raw = self.client.get(_account(account, "token"))
        if raw is None:
            return None
        token = Token(**json.loads(raw))
        return token if token.expires_at > time.time() else None

    def put_token(self, account: str, token: Token) -> None:
        value = json.dumps({"value": token.value, "expires_at": token.expires_at})
        with self._call():
            self.client.set(_account(account, "token"), value, pxat=max(1, round(token.expires_at * 1000)))

    def refresh_token(self, account: str) -> str | None:
        with self._call():
            value = self.client.get(_account(account, "refresh"))
        return None if value is None else str(value)

    def put_refresh_token(self, account: str, value: str) -> None:
        # No TTL: the rotated token is the only valid one; the file's may be spent.
        with self._call():
            self.client.set(_account(account, "refresh"), value)

    # -- anonymous sessions ---------------------------------------------------
    def anon_session(self, account: str) -> str | None:
        with self._call():
            value = self.client.get(_account(account, "anon"))
        return None if value is None else str(value)

    def put_anon_session(self, account: str, value: str, ttl: float) -> None:
        with self._call():
            self.client.set(_account(account, "anon"), value, px=max(1, round(ttl * 1000)))

    def drop_anon_session(self, account: str, value: str) -> None:
        with self._call():
            self._unlock([_account(account, "anon")], [value])  # compare and delete, atomically

    @contextmanager
    def lock(self, name: str, timeout: float) -> Iterator[None]:
        key, holder = f"{PREFIX}lock:{name}", secrets.token_hex(8)
        self._acquire(key, holder, timeout)
        try:
            yield
        finally:
            try:
                with self._call():
                    self._unlock([key], [holder])
            except StateStoreUnavailable:
                log.warning("could not release lock %r; it expires by itself in %g s", name, timeout)

    def _acquire(self, key: str, holder: str, timeout: float) -> None:
        # Poll past `timeout` by one interval: an equal-timeout holder has expired by then.
        deadline = time.monotonic() + timeout + LOCK_POLL
        while True:
            with self._call():
                if self.client.set(key, holder, nx=True, px=max(1, round(timeout * 1000))):
                    return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"lock {key[len(PREFIX):]!r} still held after {timeout:g} s")
            time.sleep(LOCK_POLL)

    # -- API keys ---------------------------------------------------------------
    def hit_key(self, key_id: str, rpm: int) -> float:
        with self._call():
            wait = self._hit([f"{PREFIX}key:{key_id}:hits"], [rpm, self.window_ms, secrets.token_hex(8)])
        return int(wait) / 1000

    # -- Responses API ------------------------------------------------------------
    def put_response(self, response_id: str, record: Record) -> None:
        keys = [_response(response_id), f"{PREFIX}responses", f"{PREFIX}responses:seq"]
        with self._call():
            self._put_response(keys, [response_id, json.dumps(record), self.responses_kept, _response("")])

    def get_response(self, response_id: str) -> Record | None:
        with self._call():
            raw = self.client.get(_response(response_id))
        return None if raw is None else json.loads(raw)

    def delete_response(self, response_id: str) -> bool:
        with self._call():
            return bool(self._delete_response([_response(response_id), f"{PREFIX}responses"], [response_id]))

    # -- life -------------------------------------------------------------------
    def ping(self) -> None:
        with self._call():
            self.client.ping()


def _account(name: str, kind: str) -> str:
    return f"{PREFIX}account:{name}:{kind}"


def _response(response_id: str) -> str:
    return f"{PREFIX}response:{response_id}"


def client_for(url: str) -> redis.Redis:
    """A client with short timeouts and one immediate retry (a pooled connection
    that Redis closed, after a restart say, reconnects once instead of failing)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )


def connect(url: str, *, responses_kept: int = 1_000, window: float = WINDOW_SECONDS) -> RedisStore:
    """The store at REDIS_URL, checked to answer now.

    Raises ConfigError naming REDIS_URL (and where it points, without the password)."""
    store = RedisStore(client_for(url), responses_kept=responses_kept, window=window)
    try:
        store.client.ping()
    except redis.RedisError as exc:
        parts = urlsplit(url)
        raise ConfigError(
            f"REDIS_URL: Redis at {parts.scheme}://{parts.hostname}:{parts.port or 6379} does not answer "
            f"({type(exc).__name__}: {exc}); start it, fix REDIS_URL, or unset it to keep state in this process"
        ) from exc
    return store
