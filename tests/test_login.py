"""`python -m bingo login`, run as a subprocess against the fake identity server:
the device-code grant polled as RFC 8628 says, one JSON line out, exit codes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bingo.accounts import Account
from bingo.accounts.login import LoginFailed, poll, request_code
from bingo.accounts.roster import parse_line
from bingo.accounts.tokens import Tokens
from bingo.config import Settings
from bingo.sandbox.identity import IdentityServer
from bingo.state.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "14638111-3389-403d-b206-a6a71d9f8f16"
SCOPE = "140e65af-45d1-4427-bf08-3e7295db6836/ChatAI.ReadWrite openid profile offline_access"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture()
def identity():
    with IdentityServer(device_interval=0.1) as server:
        yield server


def login(*args: str, login_url: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "BINGO_LOGIN_URL": login_url}
    return subprocess.run(
        [sys.executable, "-m", "bingo", "login", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False,
    )


def test_login_pending_then_slow_down_then_success_prints_one_line(identity):
    identity.device_plan = ["authorization_pending", "slow_down", "success"]
    identity.slow_down_interval = 0.4
    identity.device_family = "alice"
    done = login("--name", "alice", login_url=identity.url)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert done.stdout == line + "\n"
    entry = json.loads(line)
    assert list(entry) == ["name", "refresh_token"] and entry["name"] == "alice"
    assert entry["refresh_token"].startswith("sandbox-rt.alice.")
    assert re.fullmatch(
        r"To sign in, open http://127\.0\.0\.1:\d+/devicelogin in a browser and enter the code [0-9A-F]{8} "
        r"\(it expires in 15 min\)\.\nWaiting for the sign-in to finish\.\.\.\n"
        r"Signed in\. Add the line above to COPILOT_ACCOUNTS_FILE as account 'alice' \(or set "
        r"COPILOT_REFRESH_TOKEN to its refresh_token\)\. It is a secret: keep it like a password\.\n",
        done.stderr,
    )
    code_request, *polls = identity.received
    assert (code_request.path, code_request.form) == ("/consumers/oauth2/v2.0/devicecode", {"client_id": CLIENT_ID, "scope": SCOPE})
    assert [p.path for p in polls] == ["/consumers/oauth2/v2.0/token"] * 3
    assert {p.form["device_code"] for p in polls} and all(
        p.form == {"client_id": CLIENT_ID, "grant_type": DEVICE_GRANT, "device_code": p.form["device_code"]} for p in polls
    )
    gaps = [later - earlier for earlier, later in zip(identity.polls, identity.polls[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.4  # the interval, then slow_down's new one


def test_login_line_is_a_working_accounts_file_entry(identity):
    identity.device_plan = ["success"]
    identity.device_family = "bob"
    done = login("--name", "bob", login_url=identity.url)
    account = parse_line(done.stdout.strip(), "stdout:1")
    assert account == Account("bob", "refresh", refresh_token=json.loads(done.stdout)["refresh_token"])
    token = Tokens(Settings(login_url=identity.url), MemoryStore()).access_token(account)
    assert identity.account_of(token) == "bob"


def test_login_default_name(identity):
    identity.device_plan = ["success"]
    done = login(login_url=identity.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "default"


@pytest.mark.parametrize(
    ("plan", "code", "message"),
    [
        (["authorization_pending", "authorization_declined"], 4, "the sign-in was declined in the browser; nothing was saved."),
        (["expired_token"], 3, "the code expired before the sign-in finished; run `python -m bingo login` again."),
        (["bad_verification_code"], 1, "the identity service refused the sign-in (bad_verification_code, AADSTS70016)."),
    ],
    ids=["declined", "expired", "refused"],
)
def test_login_failures_exit_with_their_code(identity, plan, code, message):
    identity.device_plan = plan
    done = login(login_url=identity.url)
    assert (done.returncode, done.stdout) == (code, "")
    assert done.stderr.splitlines()[-1] == f"bingo login: {message}"


def test_login_gives_up_when_the_code_expires(identity):
    identity.device_expires_in = 0.5  # and every poll answers authorization_pending
    done = login(login_url=identity.url)
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr.splitlines()[-1] == "bingo login: the code expired before the sign-in finished; run `python -m bingo login` again."
    assert 1 <= len(identity.polls) <= 5


def test_login_unreachable_identity_service(identity):
    identity.stop()
    done = login(login_url=identity.url)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "bingo login: Asking for a sign-in code failed: cannot reach 127.0.0.1 (ConnectionError). "
        "Check BINGO_LOGIN_URL and the network (HTTPS_PROXY).\n"
    )


def test_login_bad_login_url_is_a_usage_error():
    done = login(login_url="ftp://login.example")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "bingo login: BINGO_LOGIN_URL must be a http:// or https:// URL with a host, not 'ftp://login.example'\n"


def test_login_bad_name_is_a_usage_error(identity):
    done = login("--name", "not a name", login_url=identity.url)
    assert done.returncode == 2
    assert "argument --name: a name is 1-64 letters, digits, '.', '_' or '-'" in done.stderr
    assert identity.received == []


def test_login_slow_down_without_interval_adds_five_seconds(identity):
    """RFC 8628 3.5, in process with the waits recorded instead of slept."""
    identity.device_plan = ["slow_down", "slow_down", "success"]
    settings = Settings(login_url=identity.url, connect_timeout=3.0)
    code = request_code(settings)
    assert (code.interval, code.expires_in) == (0.1, 900.0)
    waits: list[float] = []
    token = poll(settings, code, sleep=waits.append, clock=lambda: 0.0)
    assert token.startswith("sandbox-rt.device-user.")
    assert waits == [0.1, 5.1, 10.1]


def test_login_poll_stops_at_the_deadline(identity):
    """Polls never outlast expires_in, counted on a clock the waits move."""
    identity.device_interval, identity.device_expires_in = 5, 30
    settings = Settings(login_url=identity.url, connect_timeout=3.0)
    now = [0.0]

    def wait(seconds: float) -> None:
        now[0] += seconds

    code = request_code(settings)
    with pytest.raises(LoginFailed) as info:
        poll(settings, code, sleep=wait, clock=lambda: now[0])
    assert info.value.exit_code == 3
    assert len(identity.polls) == 5 and now[0] == 25.0  # at 5, 10, ... 25 s; a poll at 30 s would be too late
