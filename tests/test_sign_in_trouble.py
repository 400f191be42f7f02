"""The Microsoft sign-in service's own trouble seen through the account pool: a 429
from it rests the account only for its Retry-After, a 5xx fails the request (502) and
leaves the account healthy; never BINGO_COOLDOWN_SECONDS for a token refresh. The app
runs against the sandbox and the fake identity server on loopback."""
from __future__ import annotations

import calendar
import time

import pytest

from tests import test_pool
from tests.test_pool import ask, gateway, states

# test_pool's fixtures: the accounts file and the identity server (the sandbox without account
# rules, `upstream`, is conftest.py's).
accounts_file, identity = test_pool.accounts_file, test_pool.identity


def cooling_seconds(state: str) -> float:
    """Seconds from now until a `cooling down until <UTC time>` state ends."""
    until = state.removeprefix("cooling down until ")
    return calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ")) - time.time()


@pytest.mark.parametrize(("retry_after", "seconds"), [("30", 30), (None, 60)], ids=["said", "default"])
def test_sign_in_429_rests_the_account_for_its_retry_after_only(
    settings, upstream, accounts_file, identity, retry_after, seconds,
):
    refresh = identity.issue_refresh_token("hotel")
    app = gateway(settings, accounts_file, {"name": "hotel", "refresh_token": refresh}, login_url=identity.url)
    identity.token_faults = [(429, retry_after)]
    response = ask(app, "sign-in throttled")
    assert response.status_code == 429
    assert response.headers["Retry-After"] in (str(seconds - 1), str(seconds))
    assert response.get_json()["error"] == {
        "message": "Token refresh for account 'hotel': the Microsoft sign-in service (BINGO_LOGIN_URL) answered HTTP 429, "
                   f"too many sign-in requests; the account rests {seconds} s and requests go to the other accounts meanwhile.",
        "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded",
    }
    state = states(app)["hotel"]
    assert state.startswith("cooling down until ") and seconds - 2 <= cooling_seconds(state) <= seconds + 1, state  # not 1,500 s


def test_sign_in_5xx_fails_the_request_and_leaves_the_account_healthy(settings, upstream, accounts_file, identity):
    refresh = identity.issue_refresh_token("india")
    app = gateway(settings, accounts_file, {"name": "india", "refresh_token": refresh}, login_url=identity.url)
    identity.token_faults = [(503, None)]
    response = ask(app, "sign-in down")
    assert response.status_code == 502
    assert response.get_json()["error"] == {
        "message": "Token refresh for account 'india': the Microsoft sign-in service (BINGO_LOGIN_URL) answered HTTP 503; "
                   "retry later (Copilot and the account are not at fault).",
        "type": "upstream_error", "param": None, "code": "upstream_unavailable",
    }
    assert states(app) == {"india": "healthy"}
    assert ask(app, "sign-in back").status_code == 200
