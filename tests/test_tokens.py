"""Access tokens for signed-in accounts, against the fake identity server on loopback:
the exact grant sent, caching, one refresh for many threads, rotation, refusal, force."""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bingo.accounts import Account
from bingo.accounts.tokens import Tokens, store_key
from bingo.config import Settings
from bingo.errors import (
    SignInRequired,
    StateStoreUnavailable,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from bingo.sandbox.identity import IdentityServer, family_of
from bingo.state import StateStore
from bingo.state.memory import MemoryStore
from bingo.state.redis_store import RedisStore, connect
from tests.redis_server import BINARY, MISSING, RedisServer, running_redis

GRANT = {
    "client_id": "14638111-3389-403d-b206-a6a71d9f8f16",
    "grant_type": "refresh_token",
    "scope": "140e65af-45d1-4427-bf08-3e7295db6836/ChatAI.ReadWrite openid profile offline_access",
    "client_info": "1",
}
THREADS = 20


@pytest.fixture()
def identity():
    with IdentityServer() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], StateStore]]:
    """Stores on one backend; Redis stores made in one test share one emptied server,
    as two processes (or two machines) would."""
    if request.param == "memory":
        yield MemoryStore
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.client().flushall()
    made: list[RedisStore] = []

    def make() -> StateStore:
        made.append(connect(server.url))
        return made[-1]

    yield make
    for store in made:
        store.client.close()


@pytest.fixture()
def store(make_store: Callable[[], StateStore]) -> StateStore:
    return make_store()


@pytest.fixture()
def settings(identity: IdentityServer) -> Settings:
    return Settings(login_url=identity.url, connect_timeout=3.0)


@pytest.fixture()
def alice(identity: IdentityServer) -> Account:
    return Account("alice", "refresh", refresh_token=identity.issue_refresh_token("alice"))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_tokens_refresh_sends_the_copilot_web_app_grant(identity, settings, store, alice):
    token = Tokens(settings, store).access_token(alice)
    [received] = identity.received
    assert received.path == "/consumers/oauth2/v2.0/token"
    assert received.form == {**GRANT, "refresh_token": alice.refresh_token}
    assert received.headers["origin"] == "https://copilot.microsoft.com"
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in received.headers and "cookie" not in received.headers
    assert family_of(token) == "alice"
    assert identity.account_of(token) == "alice"


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (Account("a", "anonymous"), ""),
        (Account("c", "cookie", cookie="_U=x"), ""),
        (Account("t", "token", access_token="static-token"), "static-token"),
    ],
    ids=["anonymous", "cookie", "token"],
)
def test_tokens_other_kinds_never_call_the_identity_service(identity, settings, store, account, expected):
    assert Tokens(settings, store).access_token(account, force=True) == expected
    assert identity.received == []


def test_tokens_cached_until_shortly_before_expiry(identity, settings, store, alice):
    identity.expires_in = 3600
    clock = Clock()
    tokens = Tokens(settings, store, clock=clock)
    first = tokens.access_token(alice)
    clock.now += 3600 - 301
    assert tokens.access_token(alice) == first
    assert identity.refreshes == 1
    assert tokens.expires_at(alice) == pytest.approx(time.time() + 3600, abs=5)
    clock.now += 2  # 299 s left: inside the five minutes before expiry
    second = tokens.access_token(alice)
    assert second != first and identity.account_of(second) == "alice"
    assert identity.refreshes == 2


def test_tokens_cache_is_shared_through_the_store(identity, settings, store, alice):
    first = Tokens(settings, store).access_token(alice)
    assert Tokens(settings, store).access_token(alice) == first  # another process, same store
    assert identity.refreshes == 1
    assert store.token(store_key(alice)).value == first


def test_tokens_one_refresh_serves_twenty_threads(identity, settings, store, alice):
    identity.refresh_delay = 0.2  # every thread arrives while the refresh is under way
    tokens = Tokens(settings, store)
    start = threading.Barrier(THREADS)
    got: list[str] = []

    def fetch() -> None:
        start.wait(5)
        got.append(tokens.access_token(alice))

    threads = [threading.Thread(target=fetch) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(got) == THREADS and len(set(got)) == 1
    assert identity.refreshes == 1


def test_tokens_one_refresh_serves_two_processes_through_redis(identity, settings, redis_server, alice):
    """Two gateways, each with its own Redis connection, as two gunicorn workers have,
    share one refresh. (Two in-memory stores share nothing: each process would refresh
    for itself, which is why several processes want REDIS_URL.)"""
    redis_server.client().flushall()
    make_store = functools.partial(connect, redis_server.url)
    identity.refresh_delay = 0.2
    stores = [make_store(), make_store()]
    gateways = [Tokens(settings, stores[0]), Tokens(settings, stores[1])]
    start = threading.Barrier(THREADS)
    got: list[str] = []

    def fetch(tokens: Tokens) -> None:
        start.wait(5)
        got.append(tokens.access_token(alice))

    threads = [threading.Thread(target=fetch, args=(gateways[i % 2],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for gateway_store in stores:
        gateway_store.client.close()
    assert len(got) == THREADS and len(set(got)) == 1
    assert identity.refreshes == 1


def test_tokens_rotated_refresh_token_is_kept_and_used(identity, settings, store, alice):
    identity.single_use = True  # the first refresh token is refused once it has rotated
    Tokens(settings, store).access_token(alice)
    rotated = store.refresh_token(store_key(alice))
    assert rotated and rotated != alice.refresh_token and rotated.startswith("sandbox-rt.alice.")
    token = Tokens(settings, store).access_token(alice, force=True)  # a second process
    assert identity.received[-1].form["refresh_token"] == rotated
    assert identity.account_of(token) == "alice"
    assert store.refresh_token(store_key(alice)) not in (rotated, alice.refresh_token)


def test_tokens_new_entry_does_not_reuse_the_old_entry_rotation(identity, settings, store, alice):
    tokens = Tokens(settings, store)
    tokens.access_token(alice)
    signed_in_again = Account("alice", "refresh", refresh_token=identity.issue_refresh_token("alice"))
    tokens.access_token(signed_in_again)
    assert identity.received[-1].form["refresh_token"] == signed_in_again.refresh_token
    assert identity.refreshes == 2


def test_tokens_refused_refresh_token_names_the_account_and_logs_once(identity, settings, store, alice, caplog):
    identity.revoke("alice")
    tokens = Tokens(settings, store)
    with caplog.at_level(logging.INFO, logger="bingo"), pytest.raises(SignInRequired) as info:
        tokens.access_token(alice)
    assert info.value.message == (
        "Account 'alice' must sign in again: the identity service refused its refresh token "
        "(invalid_grant, AADSTS70000). Run `python -m bingo login --name alice` and put the refresh "
        "token it prints into COPILOT_ACCOUNTS_FILE (or COPILOT_REFRESH_TOKEN)."
    )
    assert (info.value.status, info.value.code) == (502, "upstream_auth_failed")
    assert caplog.messages == [(
        "account 'alice': the identity service refused its refresh token (invalid_grant, AADSTS70000); "
        "sign in again with `python -m bingo login --name alice` and replace the account's refresh token"
    )]
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    with caplog.at_level(logging.INFO, logger="bingo"), pytest.raises(SignInRequired):
        tokens.access_token(alice, force=True)
    assert len(identity.received) == 1 and len(caplog.records) == 1  # no second try, no second line
    assert alice.refresh_token not in caplog.text + info.value.message


def test_tokens_force_refreshes_a_token_that_looks_valid(identity, settings, store, alice):
    tokens = Tokens(settings, store)
    first = tokens.access_token(alice)
    identity.expire("alice")  # Copilot would answer 401 to it now
    second = tokens.access_token(alice, force=True, rejected=first)
    assert second != first and identity.account_of(second) == "alice"
    assert identity.account_of(first) is None
    assert tokens.access_token(alice) == second
    assert identity.refreshes == 2


def test_tokens_force_after_another_thread_refreshed_reuses_its_token(identity, settings, store, alice):
    tokens = Tokens(settings, store)
    stale = tokens.access_token(alice)
    fresh = tokens.access_token(alice, force=True, rejected=stale)
    assert tokens.access_token(alice, force=True, rejected=stale) == fresh  # a second thread refused `stale`
    assert identity.refreshes == 2


def test_tokens_unreachable_identity_service_is_upstream_unavailable(store, alice, identity):
    identity.stop()
    settings = Settings(login_url=identity.url, connect_timeout=3.0)
    with pytest.raises(UpstreamUnavailable) as info:
        Tokens(settings, store).access_token(alice)
    assert info.value.message == "Token refresh for account 'alice' failed: cannot reach 127.0.0.1 (ConnectionError)."


def test_tokens_redis_key_names_hold_no_secret(identity, settings, redis_server, alice):
    redis_server.client().flushall()
    store = connect(redis_server.url)
    try:
        tokens = Tokens(settings, store)
        token = tokens.access_token(alice)
        rotated = store.refresh_token(store_key(alice))
    finally:
        store.client.close()
    keys = redis_server.client().keys("*")
    assert any(f"alice#{alice.fingerprint}" in key for key in keys)
    for secret in (alice.refresh_token, rotated, token):
        assert secret and not any(secret in key or secret.split(".")[-1] in key for key in keys)


# -- the Origin: SPA-issued tokens need it, device-code tokens are refused with it --------------


def test_tokens_device_code_token_is_redeemed_without_origin_once_refused_with_it(identity, settings, store, caplog):
    dora = Account("dora", "refresh", refresh_token=identity.issue_refresh_token("dora", device=True))
    tokens = Tokens(settings, store)
    with caplog.at_level(logging.INFO, logger="bingo.accounts"):
        token = tokens.access_token(dora)
    assert identity.account_of(token) == "dora"
    assert [r.headers.get("origin") for r in identity.received] == ["https://copilot.microsoft.com", None]
    assert [r.form["refresh_token"] for r in identity.received] == [dora.refresh_token] * 2
    assert caplog.messages[0] == (
        "account 'dora': the identity service wants its refresh token redeemed without an Origin "
        "(AADSTS9002326); trying that"
    )
    tokens.access_token(dora, force=True)  # remembered: one call, no Origin, the rotated token
    assert [r.headers.get("origin") for r in identity.received[2:]] == [None]
    assert identity.refreshes == 2


def test_tokens_spa_token_after_a_device_code_token_keeps_its_origin(identity, settings, store, alice):
    tokens = Tokens(settings, store)
    dora = Account("dora", "refresh", refresh_token=identity.issue_refresh_token("dora", device=True))
    tokens.access_token(dora)
    tokens.access_token(alice)  # remembered per account: alice's exchange still carries the Origin
    assert [r.headers.get("origin") for r in identity.received] == [
        "https://copilot.microsoft.com", None, "https://copilot.microsoft.com"]


# -- the sign-in service's own trouble: 429 and 5xx ---------------------------------------------


@pytest.mark.parametrize(("retry_after", "seconds"), [("7", 7), (None, 60)], ids=["said", "default"])
def test_tokens_sign_in_service_429_rests_only_as_long_as_it_asked(identity, settings, store, alice, retry_after, seconds):
    identity.token_faults = [(429, retry_after)]
    with pytest.raises(UpstreamThrottled) as info:
        Tokens(settings, store).access_token(alice)
    assert (info.value.status, info.value.code, info.value.retry_after, info.value.guessed) == (
        429, "rate_limit_exceeded", seconds, False)
    assert info.value.message == (
        "Token refresh for account 'alice': the Microsoft sign-in service (BINGO_LOGIN_URL) answered HTTP 429, "
        f"too many sign-in requests; the account rests {seconds} s and requests go to the other accounts meanwhile."
    )


def test_tokens_sign_in_service_5xx_is_upstream_unavailable(identity, settings, store, alice):
    identity.token_faults = [(503, None)]
    tokens = Tokens(settings, store)
    with pytest.raises(UpstreamUnavailable) as info:
        tokens.access_token(alice)
    assert (info.value.status, info.value.code) == (502, "upstream_unavailable")
    assert info.value.message == (
        "Token refresh for account 'alice': the Microsoft sign-in service (BINGO_LOGIN_URL) answered HTTP 503; "
        "retry later (Copilot and the account are not at fault)."
    )
    assert identity.account_of(tokens.access_token(alice)) == "alice"  # not refused: the next try works


# -- a rotated refresh token the store could not keep -------------------------------------------


def test_tokens_rotation_survives_a_redis_outage_during_the_refresh(identity, settings, alice, caplog):
    """The old refresh token is void once rotated (single use): a rotated token lost to
    a Redis blip would lock the account out. The process keeps it and stores it at the
    account's next use, after Redis is back (empty: it restarted without persistence)."""
    if BINARY is None:
        pytest.skip(MISSING)
    identity.single_use, identity.refresh_delay = True, 0.5
    with running_redis() as server:
        store = connect(server.url)
        tokens = Tokens(settings, store)
        outage = threading.Timer(0.2, server.stop)  # while the identity service answers
        outage.start()
        with caplog.at_level(logging.WARNING, logger="bingo"), pytest.raises(StateStoreUnavailable):
            tokens.access_token(alice)
        outage.join()
        rotated = identity.live_refresh_tokens("alice")
        assert len(rotated) == 1 and rotated != [alice.refresh_token]
        assert caplog.messages[0] == (
            "account 'alice': its rotated refresh token could not be stored; this process keeps it "
            "and stores it at the account's next use"
        )
        server.start()
        identity.refresh_delay = 0.0
        token = tokens.access_token(alice)  # the access token it kept; the rotated token is stored now
        assert identity.account_of(token) == "alice" and identity.refreshes == 1
        assert [store.refresh_token(store_key(alice))] == rotated
        other_store = connect(server.url)
        other = Tokens(settings, other_store)  # another process: redeems the stored rotation
        assert identity.account_of(other.access_token(alice, force=True)) == "alice"
        assert identity.received[-1].form["refresh_token"] == rotated[0] and identity.refreshes == 2
        store.client.close()
        other_store.client.close()


class RefreshWritesFail(MemoryStore):
    """A store whose next `failures` writes of a refresh token fail (a blip at that command)."""

    failures = 0

    def put_refresh_token(self, account: str, value: str) -> None:
        if self.failures:
            self.failures -= 1
            raise StateStoreUnavailable()
        super().put_refresh_token(account, value)


def test_tokens_a_second_rotation_while_one_is_unsaved_is_stored(identity, settings, alice):
    """Two rotations in a row whose writes failed: the second still replaces what the store
    holds (the first rotation's base), so the live refresh token is the stored one."""
    identity.single_use = True
    store = RefreshWritesFail()
    tokens = Tokens(settings, store)
    tokens.access_token(alice)  # rotated and stored
    store.failures = 1
    tokens.access_token(alice, force=True)  # rotated again; this one is kept in the process
    store.failures = 1  # the next use cannot store it either, then rotates once more
    tokens.access_token(alice, force=True)
    assert identity.live_refresh_tokens("alice") == [store.refresh_token(store_key(alice))]
    other = Tokens(settings, store)  # another process redeems what the store holds
    assert identity.account_of(other.access_token(alice, force=True)) == "alice"
