"""An anonymous account keeps its own Copilot session (`__Host-copilot-anon`).

Through the app and its account pool against the local upstream, which knows an
anonymous user by the cookie its `/c/api/start` set (`bingo/sandbox/anon.py`): the
tests read the start requests and the websocket upgrades the upstream received, and
which anonymous user each one was. Everything is on loopback.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests

from bingo.accounts import Account
from bingo.sandbox import Sandbox
from bingo.sandbox import create as sandbox_create
from tests import redis_server as redis_binary
from tests.test_copilot import copilot_expected as expected
from tests.test_pool import admin, ask, gateway

ANON = "__Host-copilot-anon"
ONE, TWO = {"name": "anon-a", "anonymous": True}, {"name": "anon-b", "anonymous": True}


@pytest.fixture()
def cookies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The values the upstream's starts set, in order: recognisable, and secret."""
    issued: list[str] = []

    def issue() -> str:
        issued.append(f"anon-SECRET-session-{len(issued) + 1}")
        return f"{ANON}={issued[-1]}; Path=/; Secure; HttpOnly; SameSite=None"

    monkeypatch.setattr(sandbox_create, "anon_cookie", issue)
    return issued


@pytest.fixture()
def accounts_file(tmp_path: Path) -> Path:
    return tmp_path / "accounts.jsonl"


class Seen:
    """What the upstream saw from here on: start Cookie headers, upgrade Cookie headers, users."""

    def __init__(self, upstream: Sandbox) -> None:
        self.upstream = upstream
        self.requests = len(upstream.requests)
        self.upgrades = len(upstream.upgrades)
        users = upstream.anon_users()
        self.starts_at, self.upgrades_at = len(users["starts"]), len(users["upgrades"])

    def start_cookies(self) -> list[str | None]:
        starts = [r for r in self.upstream.requests[self.requests:] if r["path"] == "/c/api/start"]
        return [r["headers"].get("Cookie") for r in starts]

    def upgrade_cookies(self) -> list[str | None]:
        return [u["headers"].get("Cookie") for u in self.upstream.upgrades[self.upgrades:]]

    def users(self) -> tuple[list[str], list[str]]:
        users = self.upstream.anon_users()
        return users["starts"][self.starts_at:], users["upgrades"][self.upgrades_at:]


def served(app, prompt: str) -> None:
    response = ask(app, prompt)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["choices"][0]["message"]["content"] == expected(prompt)


def test_two_turns_of_one_anonymous_account_are_one_copilot_session(settings, accounts_file, upstream, cookies):
    app = gateway(settings, accounts_file, ONE)
    seen = Seen(upstream)
    served(app, "one")
    served(app, "two")
    assert seen.start_cookies() == [None, f"{ANON}={cookies[0]}"]  # the first start gets it, the next sends it
    assert seen.upgrade_cookies() == [f"{ANON}={cookies[0]}"] * 2
    starts, upgrades = seen.users()
    assert len(set(starts)) == 1 and starts == upgrades == [starts[0]] * 2
    assert len(cookies) == 1, "one session was set up"


def test_two_anonymous_accounts_are_two_copilot_sessions(settings, accounts_file, upstream, cookies):
    app = gateway(settings, accounts_file, ONE, TWO)
    seen = Seen(upstream)
    for prompt in ("one", "two", "three", "four"):  # equally loaded accounts take turns
        served(app, prompt)
    assert seen.start_cookies() == [None, None, f"{ANON}={cookies[0]}", f"{ANON}={cookies[1]}"]
    assert seen.upgrade_cookies() == [f"{ANON}={cookies[n]}" for n in (0, 1, 0, 1)]
    starts, upgrades = seen.users()
    assert starts == upgrades and starts[0] != starts[1] and starts == [starts[0], starts[1]] * 2


def test_a_rotated_session_cookie_replaces_the_kept_one(settings, accounts_file, upstream, cookies):
    app = gateway(settings, accounts_file, ONE)
    seen = Seen(upstream)
    served(app, "one")
    upstream.queue_fault("anon-rotate")  # the next start sets a new value for the same user
    served(app, "two")
    served(app, "three")
    assert seen.start_cookies() == [None, f"{ANON}={cookies[0]}", f"{ANON}={cookies[1]}"]
    assert seen.upgrade_cookies() == [f"{ANON}={cookies[0]}", f"{ANON}={cookies[1]}", f"{ANON}={cookies[1]}"]
    starts, upgrades = seen.users()
    assert starts == upgrades == [starts[0]] * 3


@pytest.mark.parametrize("fault", ["create-401", "start-blocked", "ws-401"])
def test_a_refused_session_is_dropped_and_the_turn_starts_a_new_one(settings, accounts_file, upstream, cookies, fault):
    """401 on the start or the upgrade, or `isBlocked`: the kept session goes, the
    same turn tries once more with a new one, and the account stays healthy."""
    app = gateway(settings, accounts_file, ONE)
    seen = Seen(upstream)
    served(app, "one")
    upstream.queue_fault(fault)
    served(app, "two")
    served(app, "three")
    assert seen.start_cookies() == [None, f"{ANON}={cookies[0]}", None, f"{ANON}={cookies[1]}"]
    first, second = f"{ANON}={cookies[0]}", f"{ANON}={cookies[1]}"
    # A refused upgrade comes after a start that took the kept cookie.
    refused = [first] if fault == "ws-401" else []
    assert seen.upgrade_cookies() == [first, *refused, second, second]
    starts, upgrades = seen.users()
    # A 401 or 403 start is refused before it knows the user; isBlocked tells the user so.
    blocked = [starts[0]] if fault in ("start-blocked", "ws-401") else []
    assert starts[0] != starts[-1] and starts == [starts[0], *blocked, starts[-1], starts[-1]]
    assert upgrades == [starts[0], *[starts[0]] * len(refused), starts[-1], starts[-1]]
    account = admin(app).get_json()["data"][0]
    assert (account["name"], account["state"]) == ("anon-a", "healthy")


def test_a_new_session_refused_too_is_the_error_and_the_next_turn_starts_afresh(settings, accounts_file, upstream, cookies):
    app = gateway(settings, accounts_file, ONE)
    seen = Seen(upstream)
    served(app, "one")
    upstream.queue_fault("start-blocked")
    upstream.queue_fault("start-blocked")  # the kept session's start, then the new one's
    blocked = ask(app, "two")
    assert blocked.status_code == 502, blocked.get_data(as_text=True)
    assert blocked.get_json()["error"]["code"] == "upstream_region_blocked"
    served(app, "three")
    assert seen.start_cookies() == [None, f"{ANON}={cookies[0]}", None, None]
    assert seen.upgrade_cookies() == [f"{ANON}={cookies[0]}", f"{ANON}={cookies[2]}"]


def test_a_session_is_never_logged_or_shown(settings, accounts_file, upstream, cookies, caplog):
    app = gateway(settings, accounts_file, ONE)
    with caplog.at_level(logging.DEBUG):
        served(app, "one")
        upstream.queue_fault("create-401")
        served(app, "two")
    body = admin(app).get_data(as_text=True)
    assert len(cookies) == 2
    for value in cookies:
        assert value not in caplog.text and value not in body
    assert "Copilot refused its anonymous session" in caplog.text


@pytest.mark.skipif(redis_binary.BINARY is None, reason=redis_binary.MISSING)
def test_every_process_uses_the_accounts_one_session_through_redis(settings, accounts_file, upstream, cookies, redis_server):
    redis_server.client().flushall()
    first, second = (gateway(settings, accounts_file, ONE, redis_url=redis_server.url) for _ in range(2))
    seen = Seen(upstream)
    served(first, "one")
    served(second, "two")
    assert seen.start_cookies() == [None, f"{ANON}={cookies[0]}"]
    assert seen.upgrade_cookies() == [f"{ANON}={cookies[0]}"] * 2
    assert [key for key in redis_server.client().keys("*") if key.endswith(":anon")] == [
        f"bingo:account:anon-a#{Account('anon-a', 'anonymous').fingerprint}:anon"
    ]


def test_a_turn_of_a_cookie_account_sends_no_anonymous_session(settings, accounts_file, upstream, cookies):
    """Only anonymous accounts keep one: a browser cookie account is the web presentation."""
    app = gateway(settings, accounts_file, {"name": "desk", "cookie": "acct=desk; _U=DESK-secret"})
    seen = Seen(upstream)
    served(app, "one")
    served(app, "two")
    assert seen.start_cookies() == [] and seen.upgrade_cookies() == ["acct=desk; _U=DESK-secret"] * 2


def test_the_upstream_knows_an_anonymous_user_by_the_cookie_its_start_set(upstream, cookies):
    """The sandbox as the service: the same cookie is the same user; no cookie, a new one."""
    url = f"{upstream.copilot_url}/c/api/start"
    first = requests.post(url, json={}, timeout=5)
    again = requests.post(url, json={}, headers={"Cookie": f"{ANON}={cookies[0]}"}, timeout=5)
    other = requests.post(url, json={}, headers={"Cookie": f"{ANON}=not-one-it-set"}, timeout=5)
    assert first.headers["Set-Cookie"] == f"{ANON}={cookies[0]}; Path=/; Secure; HttpOnly; SameSite=None"
    assert "Set-Cookie" not in again.headers
    assert other.headers["Set-Cookie"].startswith(f"{ANON}={cookies[1]};")
    users = [reply.json()["userId"] for reply in (first, again, other)]
    assert users[0] == users[1] != users[2] and all(user.startswith("anon-") for user in users)


def test_a_session_refused_in_the_turn_that_got_it_is_dropped_without_a_retry(settings, accounts_file, upstream, cookies):
    """Only a kept session may be stale; a new one refused mid-turn is the account's failure."""
    app = gateway(settings, accounts_file, ONE, cooldown_seconds=0.01)
    seen = Seen(upstream)
    upstream.queue_fault("cloudflare")  # a Cloudflare challenge event on the socket
    refused = ask(app, "one")
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "captcha_required"
    served(app, "two")
    assert seen.start_cookies() == [None, None]
    assert seen.upgrade_cookies() == [f"{ANON}={cookies[0]}", f"{ANON}={cookies[1]}"]


@pytest.mark.parametrize("fault", ["create-403", "ws-403"])
def test_cloudflare_drops_the_kept_session_without_a_retry(settings, accounts_file, upstream, cookies, fault):
    """A 403 is Cloudflare's browser check, which a new session would not pass either."""
    app = gateway(settings, accounts_file, ONE, cooldown_seconds=0.01)
    seen = Seen(upstream)
    served(app, "one")
    upstream.queue_fault(fault)
    refused = ask(app, "two")
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "captcha_required"
    served(app, "three")
    assert seen.start_cookies() == [None, f"{ANON}={cookies[0]}", None]
    refused_upgrade = [f"{ANON}={cookies[0]}"] if fault == "ws-403" else []
    assert seen.upgrade_cookies() == [f"{ANON}={cookies[0]}", *refused_upgrade, f"{ANON}={cookies[1]}"]
