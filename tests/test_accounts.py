"""Accounts: the Account value, and the roster read from settings and COPILOT_ACCOUNTS_FILE."""
from __future__ import annotations

import pytest

from bingo.accounts import Account


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
