"""Accounts: the Account value, and the roster read from settings and COPILOT_ACCOUNTS_FILE."""
from __future__ import annotations

import logging
import os

import pytest

from bingo.accounts import Account
from bingo.accounts.roster import Roster
from bingo.config import ConfigError, Settings


def test_account_repr_shows_no_secret():
    account = Account("alice", "refresh", cookie="c-secret", access_token="a-secret", refresh_token="r-secret")
    assert repr(account) == "Account(name='alice', kind='refresh', user_agent='')"


@pytest.mark.parametrize(
    ("kind", "signed_in"),
    [("anonymous", False), ("cookie", False), ("token", True), ("refresh", True)],
    ids=["anonymous", "cookie", "token", "refresh"],
)
def test_account_signed_in_by_kind(kind, signed_in):
    assert Account("a", kind).signed_in is signed_in


def test_account_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of anonymous, cookie, token, refresh, not 'bearer'"):
        Account("a", "bearer")


def test_account_fingerprint_changes_with_the_secret_and_hides_it():
    before = Account("alice", "refresh", refresh_token="r-one")
    after = Account("alice", "refresh", refresh_token="r-two")
    assert before.fingerprint == Account("alice", "refresh", refresh_token="r-one").fingerprint
    assert before.fingerprint != after.fingerprint
    assert len(before.fingerprint) == 16 and int(before.fingerprint, 16) >= 0
    assert "r-one" not in before.fingerprint


# -- the roster ----------------------------------------------------------------------

ALICE = '{"name": "alice", "refresh_token": "M.C-alice-secret"}'
BOB = '{"name": "bob", "cookie": "_U=bob-secret; cf_clearance=x", "user_agent": "Mozilla/5.0 Test"}'
CAROL = '{"name": "carol", "anonymous": true}'


class Clock:
    """A monotonic clock the test moves by hand, so "at most once a second" is exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path, *lines: str) -> str:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def roster_for(path: str = "", clock: Clock | None = None, **env: str) -> Roster:
    settings = Settings.from_env({"COPILOT_ACCOUNTS_FILE": path, **env})
    return Roster(settings, clock=clock or Clock())


def test_roster_nothing_configured_is_one_anonymous_account():
    assert roster_for().accounts() == (Account("default", "anonymous"),)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"COPILOT_COOKIE": "bare-u"}, Account("default", "cookie", cookie="_U=bare-u")),
        ({"COPILOT_ACCESS_TOKEN": "at", "COPILOT_COOKIE": "a=b"}, Account("default", "token", cookie="a=b", access_token="at")),
        (
            {"COPILOT_REFRESH_TOKEN": "rt", "COPILOT_ACCESS_TOKEN": "at", "COPILOT_USER_AGENT": "UA/1"},
            Account("default", "refresh", user_agent="UA/1", access_token="at", refresh_token="rt"),
        ),
    ],
    ids=["cookie", "token", "refresh"],
)
def test_roster_single_account_variables_make_default(env, expected):
    assert roster_for(**env).accounts() == (expected,)


def test_roster_reads_every_kind_skipping_blanks_and_comments(tmp_path):
    path = write(tmp_path / "accounts.jsonl", "# the team", ALICE, "", "   ", BOB, "  # spare", CAROL)
    assert roster_for(path).accounts() == (
        Account("alice", "refresh", refresh_token="M.C-alice-secret"),
        Account("bob", "cookie", cookie="_U=bob-secret; cf_clearance=x", user_agent="Mozilla/5.0 Test"),
        Account("carol", "anonymous"),
    )


def test_roster_env_account_follows_the_file(tmp_path):
    path = write(tmp_path / "accounts.jsonl", ALICE)
    names = [a.name for a in roster_for(path, COPILOT_REFRESH_TOKEN="rt").accounts()]
    assert names == ["alice", "default"]


def test_roster_file_default_wins_over_variables(tmp_path, caplog):
    path = write(tmp_path / "accounts.jsonl", '{"name": "default", "anonymous": true}')
    assert roster_for(path, COPILOT_COOKIE="a=b").accounts() == (Account("default", "anonymous"),)
    assert "COPILOT_ACCOUNTS_FILE defines 'default': the single-account variables (COPILOT_*) are not used" in caplog.text


BAD_LINES = [
    ("{oops", "2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ('["alice"]', "2: each line must be a JSON object"),
    ("[" * 100_000, "2: not an account (nested too deeply)"),
    ('{"refresh_token": "sec"}', "2: each account needs a \"name\" of 1-64 letters, digits, '.', '_' or '-' (it appears in logs and errors)"),
    ('{"name": "a b", "anonymous": true}', "2: each account needs a \"name\" of 1-64 letters, digits, '.', '_' or '-' (it appears in logs and errors)"),
    ('{"name": "dave"}', "2: account 'dave' needs exactly one of refresh_token, cookie, anonymous"),
    ('{"name": "dave", "cookie": "sec", "refresh_token": "sec"}', "2: account 'dave' needs exactly one of refresh_token, cookie, anonymous"),
    ('{"name": "dave", "refresh-token": "sec", "anonymous": true}', "2: account 'dave' has an unknown field 'refresh-token'"),
    ('{"name": "dave", "refresh_token": "sec", "user_agent": "UA"}', "2: account 'dave' has an unknown field 'user_agent'"),
    ('{"name": "dave", "anonymous": 1}', "2: account 'dave': anonymous must be true"),
    ('{"name": "dave", "refresh_token": ""}', "2: account 'dave': refresh_token must be a non-empty string on one line"),
    ('{"name": "dave", "cookie": "sec\\r\\nX-Evil: 1"}', "2: account 'dave': cookie must be a non-empty string on one line"),
    ('{"name": "alice", "anonymous": true}', "2: account name 'alice' is already used on line 1"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES, ids=[
    "not-json", "not-object", "deep", "no-name", "unsafe-name", "no-kind", "two-kinds", "unknown-field",
    "agent-without-cookie", "anonymous-not-true", "empty-secret", "header-injection", "duplicate",
])
def test_roster_bad_file_stops_start_naming_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "accounts.jsonl", ALICE, line)
    with pytest.raises(ConfigError) as info:
        roster_for(path)
    assert str(info.value) == f"{path}:{message}"
    assert "sec" not in str(info.value) and "M.C" not in str(info.value)


def test_roster_file_without_accounts_stops_start(tmp_path):
    path = write(tmp_path / "accounts.jsonl", "# nobody yet", "")
    with pytest.raises(ConfigError) as info:
        roster_for(path)
    assert str(info.value) == f"{path}: no account is defined; add one JSON object a line, or unset COPILOT_ACCOUNTS_FILE"


def test_roster_file_with_a_bom_is_read(tmp_path):
    path = tmp_path / "accounts.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + CAROL.encode() + b"\r\n")
    assert roster_for(str(path)).accounts() == (Account("carol", "anonymous"),)


def test_roster_file_not_utf8_stops_start(tmp_path):
    path = tmp_path / "accounts.jsonl"
    path.write_bytes(CAROL.encode() + b"\n\xff\n")
    with pytest.raises(ConfigError) as info:
        roster_for(str(path))
    assert str(info.value) == f"{path}:2: not UTF-8 text"


def test_roster_missing_file_stops_start_naming_the_variable(tmp_path):
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"COPILOT_ACCOUNTS_FILE": missing})
    assert str(info.value) == f"COPILOT_ACCOUNTS_FILE must name a readable file, not {missing!r}"


def test_roster_rereads_a_changed_file_at_most_once_a_second(tmp_path, caplog):
    clock = Clock()
    path = write(tmp_path / "accounts.jsonl", ALICE)
    roster = roster_for(path, clock)
    write(tmp_path / "accounts.jsonl", ALICE, CAROL)
    clock.now += 0.9
    assert [a.name for a in roster.accounts()] == ["alice"]
    clock.now += 0.1
    with caplog.at_level(logging.INFO, logger="bingo.accounts.roster"):
        assert [a.name for a in roster.accounts()] == ["alice", "carol"]
    assert caplog.messages == ["COPILOT_ACCOUNTS_FILE changed; accounts now: alice (refresh), carol (anonymous)"]


def test_roster_rereads_a_file_replaced_by_rename(tmp_path):
    clock = Clock()
    path = write(tmp_path / "accounts.jsonl", ALICE)
    roster = roster_for(path, clock)
    os.replace(write(tmp_path / "next.jsonl", BOB), path)
    clock.now += 1
    assert [a.name for a in roster.accounts()] == ["bob"]


def test_roster_bad_reread_keeps_last_good_and_logs_once(tmp_path, caplog):
    clock = Clock()
    path = write(tmp_path / "accounts.jsonl", ALICE, BOB)
    roster = roster_for(path, clock)
    before = roster.accounts()
    write(tmp_path / "accounts.jsonl", ALICE, '{"name": "bob", "cookie": "_U=new-secret", "oops": 1}')
    with caplog.at_level(logging.INFO, logger="bingo.accounts.roster"):
        for _ in range(3):
            clock.now += 1
            assert roster.accounts() == before
    assert caplog.messages == [
        f"COPILOT_ACCOUNTS_FILE not reloaded, keeping the 2 accounts read before: {path}:2: account 'bob' has an unknown field 'oops'"
    ]
    write(tmp_path / "accounts.jsonl", CAROL)
    clock.now += 1
    assert roster.accounts() == (Account("carol", "anonymous"),)


def test_roster_deleted_file_keeps_last_good(tmp_path, caplog):
    clock = Clock()
    path = write(tmp_path / "accounts.jsonl", ALICE)
    roster = roster_for(path, clock)
    os.remove(path)
    clock.now += 1
    with caplog.at_level(logging.WARNING, logger="bingo.accounts.roster"):
        assert [a.name for a in roster.accounts()] == ["alice"]
    assert caplog.messages == [
        f"COPILOT_ACCOUNTS_FILE not reloaded, keeping the 1 accounts read before: {path}: cannot read it (FileNotFoundError)"
    ]


def test_roster_logs_names_never_secrets(tmp_path, caplog):
    path = write(tmp_path / "accounts.jsonl", ALICE, BOB)
    with caplog.at_level(logging.DEBUG):
        roster_for(path, COPILOT_ACCESS_TOKEN="at-secret")
    assert caplog.messages == ["accounts: alice (refresh), bob (cookie), default (token)"]
