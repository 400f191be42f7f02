"""The account pool through the app: pacing, queueing, cool-down, failover, token
refresh, the accounts file read again, and GET /v1/accounts.

The gateway (Flask's test client, or gunicorn where a real client socket matters)
talks to the local upstream, which knows each account by a marker in its cookie or
its access token (`bingo/sandbox/accounts.py`) and tells which account each
conversation was created for. Everything is on loopback; every wait is bounded.
"""
from __future__ import annotations

import calendar
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bingo import create_app
from bingo.config import ConfigError, Settings
from bingo.sandbox import Sandbox
from bingo.sandbox.identity import IdentityServer
from tests import redis_server
from tests.conftest import with_settings
from tests.helpers import read_sse
from tests.test_copilot import copilot_expected as expected
from tests.test_images import ONE_PNG

ADMIN_KEY = "adm-POOL-admin-key-5Jx8Qe"
# Recognisable credentials: the marker (the account's name) is what the sandbox
# matches; the rest is secret and must never leave the gateway.
SECRETS = {
    "alpha": "acct=alpha; _U=ALPHA-secret-cookie-Zq81",
    "bravo": "acct=bravo; _U=BRAVO-secret-cookie-Wm27",
    "charlie": "acct=charlie; _U=CHARLIE-secret-cookie-Kp64",
}


@pytest.fixture()
def accounts_file(tmp_path: Path) -> Path:
    return tmp_path / "accounts.jsonl"


def cookie_entry(name: str) -> dict[str, str]:
    return {"name": name, "cookie": SECRETS[name]}


def write_accounts(path: Path, *entries: dict[str, object]) -> None:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries), encoding="utf-8")


def gateway(settings: Settings, path: Path, *entries: dict[str, object], **changes: object):
    """An app whose accounts are `entries` (written to the accounts file)."""
    write_accounts(path, *entries)
    return create_app(with_settings(settings, copilot_accounts_file=str(path), admin_key=ADMIN_KEY, **changes))


def ask(app, prompt: str = "Hello", stream: bool = False):
    body = {"model": "copilot", "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    return app.test_client().post("/v1/chat/completions", json=body)


def answer_of(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["choices"][0]["message"]["content"]


def served(upstream: Sandbox, before: int = 0) -> list[str]:
    """Which account each conversation since `before` was created for."""
    return upstream.served(SECRETS)[before:]


def admin(app, key: str | None = ADMIN_KEY):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return app.test_client().get("/v1/accounts", headers=headers)


def states(app) -> dict[str, str]:
    return {a["name"]: a["state"] for a in admin(app).get_json()["data"]}


def in_flight(app) -> dict[str, int]:
    return {a["name"]: a["in_flight"] for a in admin(app).get_json()["data"]}




# -- configuration ----------------------------------------------------------------------


def test_pool_settings_defaults():
    settings = Settings.from_env({})
    assert (settings.account_concurrency, settings.account_rpm, settings.queue_seconds, settings.cooldown_seconds) == (
        4, 12, 20.0, 1500.0,
    )
    assert settings.admin_key == ""


def test_pool_settings_parsed():
    settings = Settings.from_env({
        "BINGO_ACCOUNT_CONCURRENCY": "2", "BINGO_ACCOUNT_RPM": "30", "BINGO_QUEUE_SECONDS": "0",
        "BINGO_COOLDOWN_SECONDS": "90", "BINGO_ADMIN_KEY": " k-1 ",
    })
    assert (settings.account_concurrency, settings.account_rpm, settings.queue_seconds, settings.cooldown_seconds) == (
        2, 30, 0.0, 90.0,
    )
    assert settings.admin_key == "k-1"
    assert "k-1" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("BINGO_ACCOUNT_CONCURRENCY", "0"), ("BINGO_ACCOUNT_RPM", "many"), ("BINGO_QUEUE_SECONDS", "-1"),
     ("BINGO_COOLDOWN_SECONDS", "0"), ("BINGO_ADMIN_KEY", "a\nb")],
)
def test_pool_bad_setting_names_the_variable(name, raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: raw})
    assert name in str(info.value)


# -- pacing and queueing ------------------------------------------------------------------


def test_pool_fifth_concurrent_turn_waits_for_a_slot(settings, upstream, accounts_file):
    """Concurrency 4 (the default) on one account: four turns open at once, the fifth
    waits in the queue and opens once one of them has ended; all five get their answers."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), queue_seconds=15.0)
    before = len(served(upstream))
    prompts = [f"held {n} [sandbox:slow-first=1.5]" for n in range(5)]
    most_open, stop = [0], threading.Event()

    def watch_sockets() -> None:
        while not stop.wait(0.01):
            most_open[0] = max(most_open[0], upstream.stats()["open"])

    watcher = threading.Thread(target=watch_sockets, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(5) as workers:
        started = time.monotonic()
        replies = list(workers.map(lambda p: (ask(app, p), time.monotonic() - started), prompts))
    stop.set()
    watcher.join(2)
    assert [answer_of(r) for r, _ in replies] == [expected(p) for p in prompts]
    assert most_open[0] == 4
    assert served(upstream, before) == ["alpha"] * 5
    assert max(seconds for _, seconds in replies) >= 3.0  # the fifth waited for a first one to end
    assert in_flight(app) == {"alpha": 0}


def test_pool_concurrent_turns_spread_over_accounts(settings, upstream, accounts_file):
    """Two accounts of concurrency 1: two turns at once go one to each, none waits."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"),
                  account_concurrency=1, queue_seconds=0.0)
    before = len(served(upstream))
    prompts = ["spread one [sandbox:slow-first=0.5]", "spread two [sandbox:slow-first=0.5]"]
    with ThreadPoolExecutor(2) as workers:
        replies = list(workers.map(lambda p: ask(app, p), prompts))
    assert [answer_of(r) for r in replies] == [expected(p) for p in prompts]
    assert sorted(served(upstream, before)) == ["alpha", "bravo"]


def test_pool_queue_then_429_with_retry_after(settings, upstream, accounts_file):
    """BINGO_ACCOUNT_RPM=1: the second turn of the minute waits BINGO_QUEUE_SECONDS,
    then gets 429 with the time until the sliding window lets a turn through."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), account_rpm=1, queue_seconds=0.3)
    before = len(served(upstream))
    assert answer_of(ask(app, "first of the minute")) == expected("first of the minute")
    started = time.monotonic()
    response = ask(app, "second of the minute")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"
    assert "x-should-retry" not in response.headers
    assert response.get_json() == {"error": {
        "message": "No Copilot account could take this request within BINGO_QUEUE_SECONDS (0.3 s): alpha at the "
                   "pacing limits (BINGO_ACCOUNT_CONCURRENCY=4 at once, BINGO_ACCOUNT_RPM=1 a minute). "
                   "Retry after 60 s, or add accounts.",
        "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded",
    }}
    assert served(upstream, before) == ["alpha"]  # the second opened nothing upstream


def test_pool_concurrency_429_retry_after_is_the_queue_time(settings, upstream, accounts_file):
    """A slot held by a running turn frees when it ends: Retry-After says BINGO_QUEUE_SECONDS."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), account_concurrency=1, queue_seconds=0.3)
    with ThreadPoolExecutor(1) as workers:
        held = workers.submit(ask, app, "holding [sandbox:slow-first=1.5]")
        assert _wait_for(lambda: in_flight(app) == {"alpha": 1})
        response = ask(app, "refused")
        assert answer_of(held.result()) == expected("holding [sandbox:slow-first=1.5]")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    assert "BINGO_ACCOUNT_CONCURRENCY=1 at once" in response.get_json()["error"]["message"]


def test_pool_queued_stream_gets_keepalives_then_its_answer(settings, upstream, accounts_file):
    """While a stream waits for an account it gets `: keep-alive` comments (the relay's
    one clock); then the answer, as if the upstream had been slow."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), account_concurrency=1,
                  queue_seconds=10.0, keepalive_seconds=0.2)
    with ThreadPoolExecutor(1) as workers:
        held = workers.submit(ask, app, "held [sandbox:slow-first=1.2]")
        assert _wait_for(lambda: in_flight(app) == {"alpha": 1})
        response = ask(app, "queued stream", stream=True)
        body = response.get_data(as_text=True)
        assert answer_of(held.result())
    assert response.status_code == 200
    # The role chunk first (headers and a first byte at once), then comments while queued.
    blocks = body.split("\n\n")
    first_content = next(i for i, b in enumerate(blocks) if '"content":"' in b and '"content":""' not in b)
    assert blocks[1:first_content].count(": keep-alive") >= 3, body[:600]
    events = read_sse(body)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"]) == expected(
        "queued stream")
    assert events[-1] == "[DONE]"


def test_pool_queued_stream_past_the_queue_time_is_an_in_band_429(settings, upstream, accounts_file):
    """After the first keep-alive the status is sent: the 429 is one error event."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), account_concurrency=1,
                  queue_seconds=0.6, keepalive_seconds=0.2)
    with ThreadPoolExecutor(1) as workers:
        held = workers.submit(ask, app, "held [sandbox:slow-first=1.5]")
        assert _wait_for(lambda: in_flight(app) == {"alpha": 1})
        response = ask(app, "queued too long", stream=True)
        events = read_sse(response.get_data(as_text=True))
        assert answer_of(held.result())
    assert response.status_code == 200
    assert [e["error"]["code"] for e in events if isinstance(e, dict) and "error" in e] == ["rate_limit_exceeded"]
    assert in_flight(app) == {"alpha": 0}


# -- cool-down ------------------------------------------------------------------------------


def test_pool_throttled_account_cools_down_then_serves_again(settings, upstream, accounts_file):
    """Copilot throttles without saying for how long: the account rests
    BINGO_COOLDOWN_SECONDS, requests get 429 at once meanwhile, then it serves again."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cooldown_seconds=1.0, queue_seconds=0.0)
    upstream.queue_fault("error=too-many-messages")
    throttled = ask(app, "throttled")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert states(app)["alpha"].startswith("cooling down until 20")
    before = len(served(upstream))
    resting = ask(app, "while resting")
    assert (resting.status_code, resting.get_json()["error"]["code"]) == (429, "rate_limit_exceeded")
    assert (resting.headers["Retry-After"], "x-should-retry" in resting.headers) == ("1", False)
    assert "alpha cooling down after Copilot throttled them" in resting.get_json()["error"]["message"]
    assert served(upstream, before) == []  # nothing was sent to a resting account
    time.sleep(1.1)
    assert answer_of(ask(app, "rested")) == expected("rested")
    assert states(app) == {"alpha": "healthy"}


def test_pool_a_request_waits_out_a_short_cool_down(settings, upstream, accounts_file):
    """A cool-down that ends within BINGO_QUEUE_SECONDS is waited for, not refused."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cooldown_seconds=0.8, queue_seconds=5.0)
    upstream.queue_fault("error=too-many-messages")
    assert ask(app, "throttled").status_code == 429
    started = time.monotonic()
    assert answer_of(ask(app, "after the rest")) == expected("after the rest")
    assert time.monotonic() - started >= 0.5


def test_pool_cool_down_follows_copilots_retry_after(settings, upstream, accounts_file):
    app = gateway(settings, accounts_file, cookie_entry("alpha"), queue_seconds=0.0)
    upstream.account_rule("acct=alpha", "throttle=40")
    response = ask(app, "throttled with a time")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "40")
    resting = ask(app, "while it rests")  # the pool's own 429, nothing sent upstream
    assert (resting.headers["Retry-After"], resting.headers.get("x-should-retry")) in (("40", None), ("39", None))
    until = states(app)["alpha"].removeprefix("cooling down until ")
    assert 38 <= calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ")) - time.time() <= 41


def test_pool_long_rest_tells_clients_not_to_retry_soon(settings, upstream, accounts_file):
    """openai-python waits out a Retry-After of up to 60 s and retries sooner past it:
    a 25-minute rest says x-should-retry: false."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), queue_seconds=0.0)
    upstream.queue_fault("error=too-many-messages")
    assert ask(app, "throttled, no time said").headers["Retry-After"] == "1500"
    resting = ask(app, "while resting long")
    assert resting.status_code == 429
    assert resting.headers["Retry-After"] in ("1500", "1499")
    assert resting.headers["x-should-retry"] == "false"


# -- failover --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "state"),
    [("throttle=30", "cooling down until "), ("throttle-event", "cooling down until "),
     ("captcha", "needs attention: captcha_required: "), ("unauthorized", "needs attention: upstream_auth_failed: ")],
    ids=["http-429", "error-event", "cloudflare", "http-401"],
)
def test_pool_failed_account_is_skipped_and_the_client_gets_the_answer(settings, upstream, accounts_file, rule, state,
                                                                      caplog):
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"))
    upstream.account_rule("acct=alpha", rule)
    before = len(served(upstream))
    answers = [answer_of(ask(app, f"failover {n}")) for n in range(3)]
    assert answers == [expected(f"failover {n}") for n in range(3)]
    assert states(app)["alpha"].startswith(state) and states(app)["bravo"] == "healthy"
    # alpha was tried once (only a throttle event gets as far as a conversation); bravo served all three.
    since = served(upstream, before)
    assert (since.count("alpha"), since.count("bravo")) == (1 if rule == "throttle-event" else 0, 3)
    turns = [r.getMessage() for r in caplog.records if " turn model=" in r.getMessage()]
    assert [re.search(r"account=(\S+)", t).group(1) for t in turns] == ["bravo"] * 3  # the log names who served
    assert in_flight(app) == {"alpha": 0, "bravo": 0}


def test_pool_at_most_two_moves(settings, upstream, accounts_file):
    """Four accounts, all throttled: the request tries three (two moves), then the client
    gets the last 429, with Retry-After 1 since the fourth, never tried, looks healthy."""
    app = gateway(settings, accounts_file, *(cookie_entry(n) for n in ("alpha", "bravo", "charlie")),
                  {"name": "delta", "cookie": "acct=delta-spare"}, queue_seconds=0.0)
    for name in ("alpha", "bravo", "charlie", "delta"):
        upstream.account_rule(f"acct={name}", "throttle=50")
    response = ask(app, "four throttles")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    assert response.get_json()["error"]["message"] == (
        "Copilot's conversation create answered HTTP 429: this account or IP address is rate limited. "
        "Wait and retry later."
    )
    assert sorted(s.split(" until ")[0] for s in states(app).values()) == ["cooling down"] * 3 + ["healthy"]


def test_pool_every_account_bad_names_those_that_need_attention(settings, upstream, accounts_file):
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"), cookie_entry("charlie"),
                  queue_seconds=0.0)
    upstream.account_rule("acct=alpha", "captcha")
    upstream.account_rule("acct=bravo", "unauthorized")
    upstream.account_rule("acct=charlie", "throttle=45")
    first = ask(app, "all bad")
    # All three were tried, in the pool's order; the client gets the last one's error.
    body = first.get_json()["error"]["message"]
    assert body.endswith(" Accounts needing attention: alpha, bravo."), body
    assert first.status_code in (429, 502, 503)
    if first.status_code == 429:
        assert first.headers["Retry-After"] == "45"
    # Now nothing is tried upstream: alpha and bravo wait for the operator, charlie rests.
    before = len(served(upstream))
    again = ask(app, "all bad again")
    assert (again.status_code, again.headers["Retry-After"]) == (429, "45")
    assert again.get_json()["error"] == {
        "message": "No Copilot account could take this request within BINGO_QUEUE_SECONDS (0 s): charlie cooling "
                   "down after Copilot throttled them; alpha, bravo needing attention. Retry after 45 s, or add accounts.",
        "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded",
    }
    assert served(upstream, before) == []
    for secret in SECRETS.values():
        assert secret.split("_U=")[1] not in body + json.dumps(again.get_json())


def test_pool_all_accounts_need_attention_is_503_naming_them(settings, upstream, accounts_file):
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"))
    upstream.account_rule("acct=alpha", "captcha")
    upstream.account_rule("acct=bravo", "captcha")
    first = ask(app, "both captcha")
    assert (first.status_code, first.get_json()["error"]["code"]) == (503, "captcha_required")
    assert first.get_json()["error"]["message"].endswith(" Accounts needing attention: alpha, bravo.")
    again = ask(app, "both still flagged")
    assert again.status_code == 503
    assert again.headers["x-should-retry"] == "false"
    assert again.get_json()["error"] == {
        "message": "No Copilot account can serve: alpha, bravo need attention (GET /v1/accounts says why). Give each "
                   "a new cookie or refresh token (`python -m bingo login`) in COPILOT_ACCOUNTS_FILE or the COPILOT_* "
                   "variables, or add accounts.",
        "type": "upstream_error", "param": None, "code": "accounts_need_attention",
    }


def test_pool_an_error_after_the_answer_began_is_not_moved(settings, upstream, accounts_file):
    """Once text went to the client the request stays put: one in-band error, and the
    account is still blamed so the next request avoids it."""
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"))
    upstream.queue_fault("chat-message-error=too-many-messages")
    response = ask(app, "mid-answer throttle", stream=True)
    events = read_sse(response.get_data(as_text=True))
    assert [e["error"]["code"] for e in events if isinstance(e, dict) and "error" in e] == ["rate_limit_exceeded"]
    cooling = [n for n, s in states(app).items() if s.startswith("cooling")]
    assert len(cooling) == 1
    assert in_flight(app) == {"alpha": 0, "bravo": 0}


# -- the accounts file -------------------------------------------------------------------------


def test_pool_attention_is_cleared_when_the_entry_changes(settings, upstream, accounts_file):
    app = gateway(settings, accounts_file, cookie_entry("alpha"))
    upstream.account_rule("acct=alpha", "captcha")
    assert ask(app, "flagged").status_code == 503
    upstream.clear_account_rules()
    assert ask(app, "still flagged").get_json()["error"]["code"] == "accounts_need_attention"
    write_accounts(accounts_file, {"name": "alpha", "cookie": SECRETS["alpha"] + "; cf_clearance=new"})
    assert _wait_for(lambda: states(app) == {"alpha": "healthy"}, seconds=5.0)
    assert answer_of(ask(app, "fixed")) == expected("fixed")


def test_pool_file_read_again_adds_an_account(settings, upstream, accounts_file):
    app = gateway(settings, accounts_file, cookie_entry("alpha"), queue_seconds=0.0)
    upstream.account_rule("acct=alpha", "throttle=60")
    assert ask(app, "alone").status_code == 429
    write_accounts(accounts_file, cookie_entry("alpha"), cookie_entry("bravo"))
    assert _wait_for(lambda: "bravo" in states(app), seconds=5.0)
    before = len(served(upstream))
    assert answer_of(ask(app, "with bravo")) == expected("with bravo")
    assert served(upstream, before) == ["bravo"]


# -- signed-in accounts ------------------------------------------------------------------------


@pytest.fixture()
def identity(upstream: Sandbox):
    with IdentityServer() as server:
        upstream.check_tokens(lambda token: server.account_of(token) is not None)
        yield server


def test_pool_refused_token_is_refreshed_once_and_the_turn_retried(settings, upstream, accounts_file, identity):
    refresh = identity.issue_refresh_token("echo")
    app = gateway(settings, accounts_file, {"name": "echo", "refresh_token": refresh}, login_url=identity.url)
    assert answer_of(ask(app, "signed in")) == expected("signed in")
    assert identity.refreshes == 1
    identity.expire("echo")  # Copilot now refuses the cached token with 401
    before = len(upstream.served(["echo"]))
    assert answer_of(ask(app, "after expiry")) == expected("after expiry")
    assert identity.refreshes == 2
    assert upstream.served(["echo"])[before:] == ["echo"]  # the retry; the refused create made none
    assert states(app) == {"echo": "healthy"}


def test_pool_token_refused_after_the_refresh_needs_attention(settings, upstream, accounts_file, identity):
    refresh = identity.issue_refresh_token("foxtrot")
    app = gateway(settings, accounts_file, {"name": "foxtrot", "refresh_token": refresh}, login_url=identity.url)
    upstream.account_rule("foxtrot", "unauthorized")  # every token of foxtrot, fresh ones too
    response = ask(app, "refused twice")
    assert (response.status_code, response.get_json()["error"]["code"]) == (502, "upstream_auth_failed")
    assert identity.refreshes == 2  # the first token, then one forced refresh
    assert states(app)["foxtrot"].startswith("needs attention: upstream_auth_failed: ")


def test_pool_image_input_goes_to_a_signed_in_account_only(settings, upstream, accounts_file, identity):
    """Cookie accounts first in the file, least loaded: an image still goes to the signed-in one."""
    refresh = identity.issue_refresh_token("kilo")
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"),
                  {"name": "kilo", "refresh_token": refresh}, login_url=identity.url)
    before = len(upstream.served([*SECRETS, "kilo"]))
    for n in range(2):
        response = app.test_client().post("/v1/chat/completions", json={"model": "copilot", "messages": [
            {"role": "user", "content": [{"type": "text", "text": f"look {n}"}, {"type": "image_url", "image_url": {"url": ONE_PNG}}]}]})
        assert response.status_code == 200, response.get_data(as_text=True)
    assert upstream.served([*SECRETS, "kilo"])[before:] == ["kilo", "kilo"]


def test_pool_image_input_without_a_signed_in_account_takes_no_slot(settings, upstream, accounts_file):
    app = gateway(settings, accounts_file, cookie_entry("alpha"))
    before = len(upstream.requests)
    response = app.test_client().post("/v1/chat/completions", json={"model": "copilot", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": ONE_PNG}}]}]})
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith(
        "'messages[0].content[1]' is an image, and Copilot takes images only from a signed-in account")
    assert upstream.requests[before:] == []
    assert [(a["in_flight"], a["last_minute"]) for a in admin(app).get_json()["data"]] == [(0, 0)]


# -- the state store ----------------------------------------------------------------------------


@pytest.mark.skipif(redis_server.BINARY is None, reason=redis_server.MISSING)
def test_pool_state_store_lost_mid_answer_ends_it_cleanly(settings, upstream, accounts_file, caplog):
    """Redis goes away while an answer streams: the answer ends as usual (its slot's
    release cannot reach Redis and is left to the lease's expiry), a new request is a
    503 state_store_unavailable, and once Redis is back requests are served."""
    prompt = "outlives redis [sandbox:delay=0.1]"
    with redis_server.running_redis() as redis:
        app = gateway(settings, accounts_file, cookie_entry("alpha"), redis_url=redis.url)
        body = {"model": "copilot", "stream": True, "messages": [{"role": "user", "content": prompt}]}
        response = app.test_client().post("/v1/chat/completions", json=body, buffered=False)
        chunks = iter(response.response)
        first = next(chunks)
        redis.stop()
        text = (first + b"".join(chunks)).decode()
        response.close()
        events = read_sse(text)
        assert events[-1] == "[DONE]"
        assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"]) == expected(
            prompt)
        assert "account 'alpha': the state store is unreachable; its slot frees when the lease expires" in caplog.text
        down = ask(app, "while redis is down")
        assert (down.status_code, down.get_json()["error"]["code"]) == (503, "state_store_unavailable")
        redis.start()
        assert answer_of(ask(app, "redis is back")) == expected("redis is back")


# -- GET /v1/accounts ----------------------------------------------------------------------------


def test_admin_view_exact_body(settings, upstream, accounts_file, identity):
    refresh = identity.issue_refresh_token("golf")
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"),
                  {"name": "golf", "refresh_token": refresh}, {"name": "hotel", "anonymous": True},
                  login_url=identity.url)
    upstream.account_rule("acct=bravo", "captcha")
    # Four requests: with equal loads each account comes first once, so bravo is tried.
    for n in range(4):
        answer_of(ask(app, f"admin {n}"))
    answer_of(app.test_client().post("/v1/chat/completions", json={"model": "copilot", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "admin image"},
                                     {"type": "image_url", "image_url": {"url": ONE_PNG}}]}]}))  # golf's, signed in
    body = admin(app).get_json()
    assert admin(app).headers["Content-Type"] == "application/json"
    by_name = {a["name"]: a for a in body["data"]}
    assert body["object"] == "list" and [a["name"] for a in body["data"]] == ["alpha", "bravo", "golf", "hotel"]
    assert by_name["bravo"] == {
        "name": "bravo", "kind": "cookie",
        "state": "needs attention: captcha_required: Copilot's conversation create was refused with HTTP 403, a "
                 "browser check (Cloudflare) this server cannot pass: open copilot.microsoft.com in a browser on this "
                 "network, chat once, then set COPILOT_COOKIE and COPILOT_USER_AGENT from that browser (Cloudflare "
                 "binds its clearance to the exact User-Agent), or leave COPILOT_COOKIE unset to use the Android "
                 "app's presentation.",
        "in_flight": 0, "last_minute": 1,
        "last_error": by_name["bravo"]["state"].removeprefix("needs attention: captcha_required: "),
        "token_expires_at": None,
    }
    assert sum(a["last_minute"] for a in body["data"]) == 6  # five answers and bravo's refused try
    assert {a["state"] for n, a in by_name.items() if n != "bravo"} == {"healthy"}
    assert [a["kind"] for a in body["data"]] == ["cookie", "cookie", "refresh", "anonymous"]
    assert by_name["golf"]["last_minute"] >= 1 and by_name["golf"]["last_error"] is None
    expires = calendar.timegm(time.strptime(by_name["golf"]["token_expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert 3590 <= expires - time.time() <= 3601  # the identity server's tokens last an hour
    assert by_name["alpha"]["token_expires_at"] is None and by_name["hotel"]["token_expires_at"] is None
    text = json.dumps(body)
    assert refresh not in text and not any(secret in text for secret in SECRETS.values())
    assert "sandbox-at" not in text


@pytest.mark.parametrize("key", [None, "wrong-key", f"{ADMIN_KEY}x"], ids=["missing", "wrong", "longer"])
def test_admin_view_wrong_key_is_401(settings, upstream, accounts_file, key):
    app = gateway(settings, accounts_file, cookie_entry("alpha"), api_keys=frozenset({"sk-api-key"}))
    response = admin(app, key)
    assert response.status_code == 401
    assert response.get_json() == {"error": {
        "message": "Missing or incorrect admin key. Send 'Authorization: Bearer <key>' with the key in BINGO_ADMIN_KEY.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key",
    }}
    assert admin(app, "sk-api-key").status_code == 401  # an API key is not the admin key


def test_admin_view_is_404_without_an_admin_key(settings, upstream):
    app = create_app(settings)
    for key in (None, "anything", ""):
        response = admin(app, key)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


# -- secrets -------------------------------------------------------------------------------------


def test_pool_no_secret_in_logs_errors_or_admin_view(settings, upstream, accounts_file, identity, caplog):
    refresh = identity.issue_refresh_token("india")
    app = gateway(settings, accounts_file, cookie_entry("alpha"), cookie_entry("bravo"),
                  {"name": "india", "refresh_token": refresh}, login_url=identity.url, queue_seconds=0.0)
    caplog.set_level(logging.DEBUG)
    upstream.account_rule("acct=alpha", "captcha")
    upstream.account_rule("acct=bravo", "throttle=30")
    bodies = [ask(app, f"secret scan {n}").get_data(as_text=True) for n in range(2)]
    identity.expire("india")
    bodies.append(ask(app, "after expiry").get_data(as_text=True))
    upstream.account_rule("india", "unauthorized")
    bodies += [ask(app, "all bad").get_data(as_text=True), admin(app).get_data(as_text=True)]
    tokens = [t for t in re.findall(r"sandbox-at\.[\w.-]+", json.dumps(upstream.upgrades))]
    assert tokens, "the signed-in account was used"
    seen = "\n".join(bodies) + "\n" + "\n".join(r.getMessage() for r in caplog.records)
    pieces = [*SECRETS.values(), *(s.split("_U=")[1] for s in SECRETS.values()), refresh, *tokens, ADMIN_KEY]
    assert [p for p in pieces if p in seen] == []


def _wait_for(condition, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# -- a real client socket ------------------------------------------------------------------------


@pytest.mark.e2e
def test_pool_client_that_leaves_while_queued_opens_nothing(sandbox_server, upstream, tmp_path):
    """gunicorn, one account of concurrency 1: a request queued behind a held turn
    whose client hangs up never creates a conversation, and its slot is never taken;
    a stream whose client hangs up mid-answer gives its slot back."""
    from tests.test_e2e import Gateway

    path = tmp_path / "accounts.jsonl"
    write_accounts(path, cookie_entry("alpha"))
    gw = Gateway(sandbox_server, tmp_path / "gunicorn.log", COPILOT_ACCOUNTS_FILE=str(path),
                 BINGO_ACCOUNT_CONCURRENCY="1", BINGO_QUEUE_SECONDS="10", BINGO_ADMIN_KEY=ADMIN_KEY)
    try:
        before = len(served(upstream))
        held = threading.Thread(target=_raw_chat, args=(gw.port, "held [sandbox:slow-first=2]"), daemon=True)
        held.start()
        assert _wait_for(lambda: len(served(upstream)) > before, seconds=10.0)
        body = json.dumps({"model": "copilot", "messages": [{"role": "user", "content": "leaves"}]}).encode()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as leaving:
            leaving.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                            + b"sk-e2e-SECRET-KEY-0123456789\r\nContent-Type: application/json\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.5)  # queued behind the held turn by now
        held.join(15)
        time.sleep(0.5)
        assert served(upstream, before) == ["alpha"]
        # It was in the pool's queue when it left (not turned away before it got there).
        assert "The client closed the connection while its request waited for an account." in gw.log()
        accounts = _raw_get(gw.port, "/v1/accounts", ADMIN_KEY)
        assert [(a["in_flight"], a["last_minute"]) for a in accounts["data"]] == [(0, 1)]
        body = json.dumps({"model": "copilot", "stream": True,
                           "messages": [{"role": "user", "content": "left mid-answer [sandbox:delay=0.3]"}]}).encode()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as leaving:
            leaving.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                            + b"sk-e2e-SECRET-KEY-0123456789\r\nContent-Type: application/json\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
            assert b'"content":"' in _read_until(leaving, b'"content":"E')  # the answer has begun
        assert _wait_for(lambda: _raw_get(gw.port, "/v1/accounts", ADMIN_KEY)["data"][0]["in_flight"] == 0)
        assert upstream.wait_idle(5.0)
    finally:
        gw.stop()


def _read_until(sock: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    """Bytes from `sock` until `marker` shows (at most `limit` bytes, the socket's timeout each read)."""
    seen = b""
    while marker not in seen and len(seen) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        seen += chunk
    return seen


def _raw_chat(port: int, prompt: str) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    body = json.dumps({"model": "copilot", "messages": [{"role": "user", "content": prompt}]})
    connection.request("POST", "/v1/chat/completions", body,
                       {"Authorization": "Bearer sk-e2e-SECRET-KEY-0123456789", "Content-Type": "application/json"})
    connection.getresponse().read()
    connection.close()


def _raw_get(port: int, path: str, key: str) -> dict:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    body = json.loads(connection.getresponse().read())
    connection.close()
    return body
