"""The shared-state contract: the same tests run against every StateStore backend.

Short TTLs and a short sliding window (the stores take `window`; production's is
60 s) keep the expiry tests real but fast: they sleep past a deadline and look.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bench.child import ROOT
from bench.services import procfile_command
from bingo import create_app
from bingo.config import ConfigError, Settings
from bingo.errors import StateStoreUnavailable, error_response
from bingo.state import Health, StateStore, Token, Usage, open_store
from bingo.state.memory import MemoryStore
from bingo.state import redis_scripts as lua
from bingo.state.redis_store import RedisStore, connect
from tests.redis_server import BINARY, MISSING, RedisServer, running_redis

WINDOW = 1.0  # seconds: the sliding window the tests run with (wide enough for a loaded CI)
StoreFactory = Callable[..., StateStore]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """A factory of stores on one backend: make_store(window=..., responses_kept=...).

    Redis stores made in one test share one emptied server, as two processes would."""
    if request.param == "memory":
        yield lambda window=WINDOW, responses_kept=1_000: MemoryStore(responses_kept, window)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.client().flushall()
    made: list[RedisStore] = []

    def make(window: float = WINDOW, responses_kept: int = 1_000) -> StateStore:
        made.append(connect(server.url, responses_kept=responses_kept, window=window))
        return made[-1]

    yield make
    for store in made:
        store.client.close()


@pytest.fixture()
def store(make_store: StoreFactory) -> StateStore:
    return make_store()


# -- pacing -------------------------------------------------------------------
def test_take_slot_grants_up_to_concurrency_then_waits_for_the_soonest_lease(store: StateStore) -> None:
    leases = [store.take_slot("a", 2, 100, 5.0).lease for _ in range(2)]
    refused = store.take_slot("a", 2, 100, 5.0)
    assert all(leases) and len(set(leases)) == 2
    assert refused.lease is None
    assert 4.0 < refused.retry_after <= 5.0
    assert store.usage("a") == Usage(in_flight=2, last_minute=2)


def test_take_slot_is_per_account(store: StateStore) -> None:
    assert store.take_slot("a", 1, 100, 5.0).lease
    assert store.take_slot("b", 1, 100, 5.0).lease
    assert store.take_slot("a", 1, 100, 5.0).lease is None


def test_release_frees_the_slot_and_is_idempotent(store: StateStore) -> None:
    lease = store.take_slot("a", 1, 100, 5.0).lease
    assert lease
    store.release("a", lease)
    store.release("a", lease)
    store.release("a", "no-such-lease")
    assert store.usage("a") == Usage(in_flight=0, last_minute=1)
    assert store.take_slot("a", 1, 100, 5.0).lease


def test_lease_expires_so_a_crashed_holder_frees_its_slot(store: StateStore) -> None:
    assert store.take_slot("a", 1, 100, 0.3).lease  # never released
    assert store.take_slot("a", 1, 100, 0.3).lease is None
    time.sleep(0.4)
    assert store.usage("a").in_flight == 0
    assert store.take_slot("a", 1, 100, 0.3).lease


@pytest.mark.slow  # waits out the sliding window or a cool-down (1 s)
def test_sliding_window_counts_turns_and_says_when_one_leaves(store: StateStore) -> None:
    for _ in range(2):
        lease = store.take_slot("a", 10, 2, 5.0).lease
        assert lease
        store.release("a", lease)
    refused = store.take_slot("a", 10, 2, 5.0)
    assert refused.lease is None
    assert WINDOW - 0.3 < refused.retry_after <= WINDOW
    assert store.usage("a") == Usage(in_flight=0, last_minute=2)
    time.sleep(refused.retry_after + 0.05)
    assert store.usage("a").last_minute == 0
    assert store.take_slot("a", 10, 2, 5.0).lease


@pytest.mark.slow  # waits out the sliding window or a cool-down (1 s)
def test_sliding_window_slides_one_turn_at_a_time(store: StateStore) -> None:
    assert store.take_slot("a", 10, 2, 5.0).lease
    time.sleep(WINDOW / 2)
    assert store.take_slot("a", 10, 2, 5.0).lease
    refused = store.take_slot("a", 10, 2, 5.0)
    assert refused.lease is None and refused.retry_after <= WINDOW / 2 + 0.05
    time.sleep(refused.retry_after + 0.05)  # the first turn left, the second has not
    assert store.usage("a").last_minute == 1
    assert store.take_slot("a", 10, 2, 5.0).lease
    assert store.take_slot("a", 10, 2, 5.0).lease is None


def test_a_refused_take_counts_nothing(store: StateStore) -> None:
    assert store.take_slot("a", 1, 100, 5.0).lease
    for _ in range(3):
        assert store.take_slot("a", 1, 100, 5.0).lease is None
    assert store.usage("a") == Usage(in_flight=1, last_minute=1)


def test_concurrency_cap_holds_across_threads(store: StateStore) -> None:
    granted: list[str] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait(timeout=5)
        lease = store.take_slot("a", 3, 100, 5.0).lease
        if lease:
            granted.append(lease)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(granted) == 3
    assert store.usage("a").in_flight == 3


# -- health -------------------------------------------------------------------
def test_healthy_account_has_no_entry(store: StateStore) -> None:
    assert store.health("a") is None
    assert store.last_error("a") == ""


@pytest.mark.slow  # waits out the sliding window or a cool-down (1 s)
def test_cooling_blocks_take_slot_until_it_expires(store: StateStore) -> None:
    cooling = Health("cooling", until=time.time() + 1.0, reason="429 throttled")
    store.set_health("a", cooling)
    assert store.health("a") == cooling
    refused = store.take_slot("a", 4, 100, 5.0)
    assert refused.lease is None and 0.7 < refused.retry_after <= 1.01  # Redis rounds to ms
    assert store.usage("a").last_minute == 0
    time.sleep(refused.retry_after + 0.05)
    assert store.health("a") is None
    assert store.take_slot("a", 4, 100, 5.0).lease


def test_attention_stays_until_cleared_and_leaves_pacing_to_the_pool(store: StateStore) -> None:
    attention = Health("attention", reason="CAPTCHA", fingerprint="f1")
    store.set_health("a", attention)
    assert store.health("a") == attention
    assert store.take_slot("a", 4, 100, 5.0).lease
    store.set_health("a", None)
    assert store.health("a") is None


def test_health_is_replaced_not_merged(store: StateStore) -> None:
    store.set_health("a", Health("attention", reason="CAPTCHA", fingerprint="f1"))
    later = Health("cooling", until=time.time() + 30, reason="throttled")
    store.set_health("a", later)
    assert store.health("a") == later


def test_note_error_keeps_the_last_one(store: StateStore) -> None:
    store.note_error("a", "first")
    store.note_error("a", "502 from upstream")
    assert store.last_error("a") == "502 from upstream"
    assert store.last_error("b") == ""


# -- tokens -------------------------------------------------------------------
def test_token_is_cached_until_it_expires(store: StateStore) -> None:
    assert store.token("a") is None
    token = Token("secret-access-token", expires_at=time.time() + 0.4)
    store.put_token("a", token)
    assert store.token("a") == token
    assert store.token("b") is None
    time.sleep(0.5)
    assert store.token("a") is None


def test_token_repr_hides_the_value() -> None:
    assert "secret" not in repr(Token("secret-access-token", expires_at=1.0))


def test_refresh_token_keeps_the_newest(store: StateStore) -> None:
    assert store.refresh_token("a") is None
    store.put_refresh_token("a", "rt-1")
    store.put_refresh_token("a", "rt-2")
    assert store.refresh_token("a") == "rt-2"
    assert store.refresh_token("b") is None


# -- anonymous sessions -----------------------------------------------------------
def test_anon_session_is_kept_per_account_until_it_expires(store: StateStore) -> None:
    assert store.anon_session("anon-1#f1") is None
    store.put_anon_session("anon-1#f1", "cookie-1", ttl=0.4)
    store.put_anon_session("anon-2#f2", "cookie-2", ttl=60)
    assert (store.anon_session("anon-1#f1"), store.anon_session("anon-2#f2")) == ("cookie-1", "cookie-2")
    store.put_anon_session("anon-1#f1", "cookie-1b", ttl=0.4)  # a rotated cookie replaces it
    assert store.anon_session("anon-1#f1") == "cookie-1b"
    time.sleep(0.5)
    assert (store.anon_session("anon-1#f1"), store.anon_session("anon-2#f2")) == (None, "cookie-2")


def test_anon_session_is_dropped_only_while_it_is_the_refused_one(store: StateStore) -> None:
    store.put_anon_session("a#f", "refused", ttl=60)
    store.drop_anon_session("a#f", "refused")
    assert store.anon_session("a#f") is None
    store.drop_anon_session("a#f", "refused")  # nothing kept: nothing happens
    store.put_anon_session("a#f", "newer", ttl=60)  # another process started afresh meanwhile
    store.drop_anon_session("a#f", "refused")
    assert store.anon_session("a#f") == "newer"


def test_lock_excludes_other_threads(store: StateStore) -> None:
    holders, most, total = [0], [0], [0]

    def work() -> None:
        for _ in range(5):
            with store.lock("refresh:a", timeout=5.0):
                holders[0] += 1
                most[0] = max(most[0], holders[0])
                seen = total[0]
                time.sleep(0.002)
                total[0] = seen + 1
                holders[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert (most[0], total[0]) == (1, 20)


def test_lock_wait_is_bounded(store: StateStore) -> None:
    with store.lock("refresh:a", timeout=5.0):
        started = time.monotonic()
        with pytest.raises(TimeoutError), store.lock("refresh:a", timeout=0.3):
            pass
        assert 0.25 < time.monotonic() - started < 2.0
    with store.lock("refresh:a", timeout=0.3):
        pass


def test_lock_expires_so_a_crashed_holder_frees_it(store: StateStore) -> None:
    crashed = store.lock("refresh:a", timeout=0.3)
    crashed.__enter__()  # never exited (kept referenced, so never collected either)
    started = time.monotonic()
    with store.lock("refresh:a", timeout=2.0):
        waited = time.monotonic() - started
    assert 0.1 < waited < 1.0
    del crashed


def test_locks_with_different_names_are_independent(store: StateStore) -> None:
    with store.lock("refresh:a", timeout=5.0), store.lock("refresh:b", timeout=0.2):
        pass


# -- API keys -----------------------------------------------------------------
@pytest.mark.slow  # waits out the sliding window or a cool-down (1 s)
def test_hit_key_allows_rpm_then_says_when(store: StateStore) -> None:
    assert [store.hit_key("k1", 2) for _ in range(2)] == [0.0, 0.0]
    wait = store.hit_key("k1", 2)
    assert WINDOW - 0.3 < wait <= WINDOW
    assert store.hit_key("k2", 2) == 0.0
    time.sleep(wait + 0.05)
    assert store.hit_key("k1", 2) == 0.0


@pytest.mark.slow  # waits out the sliding window or a cool-down (1 s)
def test_hit_key_refusals_do_not_extend_the_wait(store: StateStore) -> None:
    assert store.hit_key("k1", 1) == 0.0
    first = store.hit_key("k1", 1)
    time.sleep(0.1)
    assert store.hit_key("k1", 1) <= first - 0.05
    time.sleep(first)
    assert store.hit_key("k1", 1) == 0.0


# -- Responses API ------------------------------------------------------------
RECORD = {"response": {"id": "resp_1", "output": [{"type": "message"}]}, "history": [["user", "hi"]]}


def test_responses_round_trip(store: StateStore) -> None:
    assert store.get_response("resp_1") is None
    store.put_response("resp_1", RECORD)
    assert store.get_response("resp_1") == RECORD
    assert store.delete_response("resp_1") is True
    assert store.delete_response("resp_1") is False
    assert store.get_response("resp_1") is None


def test_responses_past_the_bound_evict_the_oldest(make_store: StoreFactory) -> None:
    store = make_store(responses_kept=2)
    for n in range(1, 4):
        store.put_response(f"resp_{n}", {"n": n})
    assert [store.get_response(f"resp_{n}") for n in range(1, 4)] == [None, {"n": 2}, {"n": 3}]


def test_responses_put_again_is_newest(make_store: StoreFactory) -> None:
    store = make_store(responses_kept=2)
    store.put_response("resp_1", {"n": 1})
    store.put_response("resp_2", {"n": 2})
    store.put_response("resp_1", {"n": 11})
    store.put_response("resp_3", {"n": 3})
    assert [store.get_response(f"resp_{n}") for n in range(1, 4)] == [{"n": 11}, None, {"n": 3}]


# -- life ---------------------------------------------------------------------
def test_calls_counts_store_operations(store: StateStore) -> None:
    before = store.calls
    store.ping()
    lease = store.take_slot("a", 1, 1, 5.0).lease
    assert lease
    store.release("a", lease)
    assert store.calls - before == 3


def test_open_store_is_in_memory_without_redis_url() -> None:
    store = open_store(Settings(responses_kept=7))
    assert isinstance(store, MemoryStore) and store.responses_kept == 7


def test_state_store_unavailable_is_a_retryable_503() -> None:
    response = error_response(StateStoreUnavailable())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "x-should-retry" not in response.headers
    error = response.get_json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("server_error", "state_store_unavailable", None)
    assert "REDIS_URL" in error["message"]


@pytest.mark.parametrize(
    "url",
    ["http://localhost:6379", "redis://", "redis://host:notaport", "redis://host/notadb", "localhost:6379"],
    ids=["scheme", "no-host", "port", "db", "bare"],
)
def test_redis_url_bad_values_stop_start_up(url: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env({"REDIS_URL": url})


def test_redis_url_password_stays_out_of_settings_repr() -> None:
    settings = Settings.from_env({"REDIS_URL": "rediss://:hunter2@cache.example:6380/2"})
    assert settings.redis_url == "rediss://:hunter2@cache.example:6380/2"
    assert "hunter2" not in repr(settings) and "cache.example:6380" in repr(settings)


# -- Redis only: what several processes see, and what happens when Redis goes --
@pytest.fixture()
def redis_stores(redis_server: RedisServer) -> Iterator[Callable[..., RedisStore]]:
    """connect() to the emptied session server, as each gunicorn process does."""
    redis_server.client().flushall()
    made: list[RedisStore] = []

    def make(**options: float) -> RedisStore:
        made.append(connect(redis_server.url, window=WINDOW, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for store in made:
        store.client.close()


def test_redis_concurrency_cap_holds_across_two_processes_views(redis_stores: Callable[..., RedisStore]) -> None:
    first, second = redis_stores(), redis_stores()
    assert first.take_slot("a", 2, 100, 5.0).lease
    assert second.take_slot("a", 2, 100, 5.0).lease
    assert first.take_slot("a", 2, 100, 5.0).lease is None
    assert second.take_slot("a", 2, 100, 5.0).lease is None
    assert first.usage("a") == second.usage("a") == Usage(in_flight=2, last_minute=2)


def test_redis_take_slot_run_twice_with_one_lease_id_holds_one_slot(redis_stores: Callable[..., RedisStore]) -> None:
    """redis-py re-runs a script whose reply timed out with the same arguments: the
    second run must find its lease, not answer "full" and strand it for its TTL."""
    store = redis_stores()
    keys = ["bingo:account:a:leases", "bingo:account:a:turns", "bingo:account:a:health"]
    args = [1, 100, 5000, round(WINDOW * 1000), "lease-1"]
    assert store.client.eval(lua.TAKE_SLOT, 3, *keys, *args) == 0
    assert store.client.eval(lua.TAKE_SLOT, 3, *keys, *args) == 0
    assert store.usage("a") == Usage(in_flight=1, last_minute=1)
    store.release("a", "lease-1")
    assert store.take_slot("a", 1, 100, 5.0).lease


def test_redis_cooldown_set_in_one_process_blocks_the_other(redis_stores: Callable[..., RedisStore]) -> None:
    first, second = redis_stores(), redis_stores()
    first.set_health("a", Health("cooling", until=time.time() + 30, reason="throttled"))
    refused = second.take_slot("a", 4, 100, 5.0)
    assert refused.lease is None and 29 < refused.retry_after <= 30.01  # Redis rounds to ms


def test_redis_lease_ttl_frees_a_crashed_process_slot(redis_stores: Callable[..., RedisStore]) -> None:
    crashed, survivor = redis_stores(), redis_stores()
    assert crashed.take_slot("a", 1, 100, 0.3).lease
    crashed.client.close()  # the process died holding its lease
    assert survivor.take_slot("a", 1, 100, 0.3).lease is None
    time.sleep(0.4)
    assert survivor.take_slot("a", 1, 100, 0.3).lease


def test_redis_request_path_is_one_round_trip_per_operation(
    redis_server: RedisServer, redis_stores: Callable[..., RedisStore]
) -> None:
    store = redis_stores()
    store.release("a", store.take_slot("a", 4, 100, 5.0).lease or "")
    store.hit_key("k", 10)  # a script's first use loads it: EVALSHA, SCRIPT LOAD, EVALSHA
    leases: list[str] = []

    def request() -> None:
        store.health("a")
        leases.append(store.take_slot("a", 4, 100, 5.0).lease or "")
        store.release("a", leases[0])
        store.hit_key("k", 10)

    assert redis_server.commands_during(request) == ["GET", "EVALSHA", "ZREM", "EVALSHA"]
    assert leases[0]


def test_redis_key_names_hold_no_secret(redis_server: RedisServer, redis_stores: Callable[..., RedisStore]) -> None:
    store = redis_stores()
    secrets_used = ["eyJ-access-token-secret", "M.C5-refresh-token-secret"]
    store.release("alice", store.take_slot("alice", 4, 100, 5.0).lease or "")
    store.set_health("alice", Health("attention", reason="CAPTCHA", fingerprint="f"))
    store.note_error("alice", "upstream said 403")
    store.put_token("alice", Token(secrets_used[0], expires_at=time.time() + 60))
    store.put_refresh_token("alice", secrets_used[1])
    store.put_anon_session("anon-1#0123456789abcdef", "anon-cookie-secret", ttl=60)
    with store.lock("refresh:alice", timeout=5.0):
        assert redis_server.client().exists("bingo:lock:refresh:alice")
    store.hit_key("9f86d081884c7d659a2feaa0c55ad015", 10)
    store.put_response("resp_1", RECORD)
    assert sorted(redis_server.client().keys("*")) == [
        "bingo:account:alice:error",
        "bingo:account:alice:health",
        "bingo:account:alice:refresh",
        "bingo:account:alice:token",
        "bingo:account:alice:turns",
        "bingo:account:anon-1#0123456789abcdef:anon",
        "bingo:key:9f86d081884c7d659a2feaa0c55ad015:hits",
        "bingo:response:resp_1",
        "bingo:responses",
        "bingo:responses:seq",
    ]


def test_redis_keys_expire_with_what_they_hold(redis_server: RedisServer, redis_stores: Callable[..., RedisStore]) -> None:
    store, observer = redis_stores(), redis_server.client()
    store.take_slot("a", 4, 100, 5.0)
    store.set_health("a", Health("cooling", until=time.time() + 30))
    store.put_token("a", Token("t", expires_at=time.time() + 60))
    store.put_anon_session("a#f", "c", ttl=86_400)
    store.hit_key("k", 10)
    assert 4_000 < observer.pttl("bingo:account:a:leases") <= 5_000
    assert 0 < observer.pttl("bingo:account:a:turns") <= WINDOW * 1000
    assert 29_000 < observer.pttl("bingo:account:a:health") <= 30_001
    assert 59_000 < observer.pttl("bingo:account:a:token") <= 60_001
    assert 86_399_000 < observer.pttl("bingo:account:a#f:anon") <= 86_400_000
    assert 0 < observer.pttl("bingo:key:k:hits") <= WINDOW * 1000


def test_redis_outage_fails_fast_then_recovers() -> None:
    if BINARY is None:
        pytest.skip(MISSING)
    with running_redis() as server:
        store = connect(server.url, window=WINDOW)
        assert store.take_slot("a", 4, 100, 5.0).lease
        server.stop()
        started = time.monotonic()
        for operation in (lambda: store.take_slot("a", 4, 100, 5.0), lambda: store.health("a"),
                          lambda: store.hit_key("k", 10), lambda: store.get_response("resp_1")):
            with pytest.raises(StateStoreUnavailable):
                operation()
        assert time.monotonic() - started < 3.0
        server.start()
        assert store.take_slot("a", 4, 100, 5.0).lease  # the same store, the same pooled client
        store.client.close()


def test_redis_password_from_the_url() -> None:
    if BINARY is None:
        pytest.skip(MISSING)
    with running_redis(password="s3cret-pass") as server:
        store = connect(server.url)
        store.put_refresh_token("a", "rt")
        assert store.refresh_token("a") == "rt"
        store.client.close()
        wrong = server.url.replace("s3cret-pass", "wrong-pass")
        with pytest.raises(ConfigError, match="REDIS_URL: Redis at redis://127.0.0.1:") as info:
            connect(wrong)
        assert "wrong-pass" not in str(info.value)
        with pytest.raises(ConfigError, match="REDIS_URL"):
            connect(server.url.replace(":s3cret-pass@", ""))


def test_redis_over_tls_with_a_password_from_the_environment() -> None:
    if BINARY is None:
        pytest.skip(MISSING)
    with running_redis(password="tls-pass", tls=True) as server:
        assert server.url.startswith("rediss://:tls-pass@127.0.0.1:")
        settings = Settings.from_env({"REDIS_URL": server.url})
        store = open_store(settings)
        assert store.take_slot("a", 1, 10, 5.0).lease
        assert store.take_slot("a", 1, 10, 5.0).lease is None
        assert "tls-pass" not in repr(settings)
        assert isinstance(store, RedisStore)
        store.client.close()
        plain = server.url.replace("rediss://", "redis://").split("?")[0]
        with pytest.raises(ConfigError, match="REDIS_URL"):
            connect(plain)  # a TLS-only port does not answer plain text


def test_open_store_fails_start_up_naming_redis_url_when_nothing_answers() -> None:
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"REDIS_URL: Redis at redis://127.0.0.1:{port} does not answer"):
        create_app(Settings(redis_url=f"redis://:pw@127.0.0.1:{port}"))
    assert time.monotonic() - started < 5.0


@pytest.mark.e2e
def test_gunicorn_does_not_start_without_the_redis_it_was_given() -> None:
    port, gateway_port = _closed_port(), _closed_port()
    env = {**os.environ, "REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0",
           "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{gateway_port}"}
    done = subprocess.run(procfile_command(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode != 0
    assert f"REDIS_URL: Redis at redis://127.0.0.1:{port} does not answer" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_open_store_uses_redis_with_redis_url(redis_server: RedisServer) -> None:
    store = open_store(Settings(redis_url=redis_server.url, responses_kept=3))
    assert isinstance(store, RedisStore) and store.responses_kept == 3
    store.client.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the Responses API on the shared state -------------------------------------
def create_response(client: FlaskClient, **body: object) -> TestResponse:
    return client.post("/v1/responses", json={"model": "copilot", "input": "Hello", **body})


def test_responses_stored_by_one_process_are_found_by_another(redis_server: RedisServer, settings: Settings) -> None:
    redis_server.client().flushall()
    shared = dataclasses.replace(settings, redis_url=redis_server.url)
    first, second = create_app(shared).test_client(), create_app(shared).test_client()
    body = create_response(first).get_json()
    assert second.get(f"/v1/responses/{body['id']}").get_json() == body
    follow = create_response(second, input="And then?", previous_response_id=body["id"])
    assert (follow.status_code, follow.get_json()["previous_response_id"]) == (200, body["id"])
    assert second.delete(f"/v1/responses/{body['id']}").status_code == 200
    assert first.get(f"/v1/responses/{body['id']}").status_code == 404


def test_responses_in_redis_keep_the_bound(redis_server: RedisServer, settings: Settings) -> None:
    redis_server.client().flushall()
    client = create_app(dataclasses.replace(settings, redis_url=redis_server.url, responses_kept=2)).test_client()
    ids = [create_response(client, input=f"n{n}").get_json()["id"] for n in range(3)]
    assert [client.get(f"/v1/responses/{i}").status_code for i in ids] == [404, 200, 200]
    assert redis_server.client().zcard("bingo:responses") == 2


def test_redis_down_is_a_503_on_the_wire(settings: Settings) -> None:
    if BINARY is None:
        pytest.skip(MISSING)
    with running_redis() as server:
        client = create_app(dataclasses.replace(settings, redis_url=server.url)).test_client()
        body = create_response(client).get_json()
        server.stop()
        response = client.get(f"/v1/responses/{body['id']}")
        assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
        assert response.get_json() == {"error": {
            "message": StateStoreUnavailable().message, "type": "server_error", "param": None,
            "code": "state_store_unavailable"}}
        server.start()  # empty again: nothing persists, but requests are served
        assert client.get(f"/v1/responses/{body['id']}").status_code == 404
        assert create_response(client).status_code == 200
