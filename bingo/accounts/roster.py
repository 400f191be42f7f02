"""The roster: which accounts exist, from COPILOT_ACCOUNTS_FILE and the single-account
variables, kept current while the file changes.

How the two sources combine: the single-account variables (COPILOT_REFRESH_TOKEN,
COPILOT_ACCESS_TOKEN, COPILOT_COOKIE with COPILOT_USER_AGENT) make one account named
"default", listed after the file's accounts, unless the file defines "default" itself
(the file wins, and the log says so). With neither there is one anonymous account,
"default". A bad file stops start-up (ConfigError naming file:line); a bad re-read
keeps the last good set and logs why. Names, never credentials, reach the log.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable

from ..config import ConfigError, Settings, _cookie
from . import Account

log = logging.getLogger(__name__)

DEFAULT_NAME = "default"
CHECK_SECONDS = 1.0  # the file is stat()ed at most this often
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# One object a line takes exactly one of these, naming the account's kind.
CREDENTIALS = {"refresh_token": "refresh", "cookie": "cookie", "anonymous": "anonymous"}
OPTIONAL = {"user_agent"}  # cookie accounts: the browser that earned the cookie
UNSAFE = ("\r", "\n", "\x00")  # values travel in HTTP headers

Signature = tuple[int, int, int]  # mtime_ns, size, inode


class Roster:
    """The current accounts; `accounts()` is cheap enough for every request.

    Raises ConfigError at construction when COPILOT_ACCOUNTS_FILE is bad.
    """

    def __init__(
        self, settings: Settings, *, check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = settings.copilot_accounts_file
        self._env = env_account(settings)
        self._check_seconds = check_seconds
        self._clock = clock
        self._checking = threading.Lock()
        self._checked_at = clock()
        self._signature: Signature | None = None
        self._failed: Signature | None = None  # the bad version already logged
        self._accounts = self._load()
        log.info("accounts: %s", describe(self._accounts))

    def accounts(self) -> tuple[Account, ...]:
        """The accounts now, re-reading the file first if it changed (checked at most
        once a second, by one thread; the others keep going with the current set)."""
        due = self._path and self._clock() - self._checked_at >= self._check_seconds
        if due and self._checking.acquire(blocking=False):
            try:
                self._checked_at = self._clock()
                self._reread()
            finally:
                self._checking.release()
        return self._accounts

    def _load(self) -> tuple[Account, ...]:
        if not self._path:
            return (self._env or Account(DEFAULT_NAME, "anonymous"),)
        self._signature = _stat(self._path)
        return self._combine(read_file(self._path))

    def _reread(self) -> None:
        try:
            signature = _stat(self._path)
            if signature in (self._signature, self._failed):
                return
            accounts = self._combine(read_file(self._path))
        except (ConfigError, OSError) as exc:
            self._keep_last_good(exc)
            return
        self._signature, self._failed, self._accounts = signature, None, accounts
        log.info("COPILOT_ACCOUNTS_FILE changed; accounts now: %s", describe(accounts))

    def _keep_last_good(self, exc: Exception) -> None:
        try:
            signature: Signature | None = _stat(self._path)
        except OSError:
            signature = (-1, -1, -1)
        if signature == self._failed:
            return  # this version was reported already
        self._failed = signature
        why = exc if isinstance(exc, ConfigError) else f"{self._path}: cannot read it ({type(exc).__name__})"
        log.warning("COPILOT_ACCOUNTS_FILE not reloaded, keeping the %d accounts read before: %s", len(self._accounts), why)

    def _combine(self, listed: tuple[Account, ...]) -> tuple[Account, ...]:
        if self._env is None:
            return listed
        if any(account.name == DEFAULT_NAME for account in listed):
            log.warning("COPILOT_ACCOUNTS_FILE defines %r: the single-account variables (COPILOT_*) are not used", DEFAULT_NAME)
            return listed
        return (*listed, self._env)


def env_account(settings: Settings) -> Account | None:
    """The account the single-account variables describe, or None when none is set.

    A refresh token makes it a "refresh" account, else an access token a "token"
    account, else a cookie a "cookie" one; the cookie still travels with a token
    (the web presentation signed in).
    """
    kind = (
        "refresh" if settings.copilot_refresh_token
        else "token" if settings.copilot_access_token
        else "cookie" if settings.copilot_cookie
        else ""
    )
    if not kind:
        return None
    return Account(
        DEFAULT_NAME, kind, cookie=settings.copilot_cookie, user_agent=settings.copilot_user_agent,
        access_token=settings.copilot_access_token, refresh_token=settings.copilot_refresh_token,
    )


def read_file(path: str) -> tuple[Account, ...]:
    """Parse an accounts file; raises ConfigError naming `path:line` (never a value)."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        lines = data.decode("utf-8-sig").splitlines()  # -sig: Windows editors start with a BOM
    except UnicodeDecodeError as exc:
        number = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{number}: not UTF-8 text") from None
    accounts: list[Account] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        account = parse_line(text, f"{path}:{number}")
        if account.name in first_line:
            raise ConfigError(f"{path}:{number}: account name {account.name!r} is already used on line {first_line[account.name]}")
        first_line[account.name] = number
        accounts.append(account)
    if not accounts:
        raise ConfigError(f"{path}: no account is defined; add one JSON object a line, or unset COPILOT_ACCOUNTS_FILE")
    return tuple(accounts)


def parse_line(text: str, where: str) -> Account:
    """One line of the file as an Account; raises ConfigError starting with `where`."""
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ConfigError(f"{where}: not an account (nested too deeply)") from None
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each line must be a JSON object")
    name = _name(entry, where)
    kinds = [key for key in CREDENTIALS if key in entry]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: account {name!r} needs exactly one of refresh_token, cookie, anonymous")
    unknown = sorted(set(entry) - {"name", *kinds} - (OPTIONAL if kinds == ["cookie"] else set()))
    if unknown:
        raise ConfigError(f"{where}: account {name!r} has an unknown field {unknown[0]!r}")
    if kinds == ["anonymous"]:
        if entry["anonymous"] is not True:
            raise ConfigError(f"{where}: account {name!r}: anonymous must be true")
        return Account(name, "anonymous")
    values = {key: _value(entry, key, name, where) for key in (*kinds, *OPTIONAL) if key in entry}
    if kinds == ["cookie"]:
        return Account(name, "cookie", cookie=_cookie(values["cookie"]), user_agent=values.get("user_agent", ""))
    return Account(name, "refresh", refresh_token=values["refresh_token"])


def _name(entry: dict, where: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: each account needs a \"name\" of 1-64 letters, digits, '.', '_' or '-' "
            "(it appears in logs and errors)"
        )
    return name


def _value(entry: dict, key: str, name: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip() or any(c in value for c in UNSAFE):
        raise ConfigError(f"{where}: account {name!r}: {key} must be a non-empty string on one line")
    return value.strip()


def _stat(path: str) -> Signature:
    found = os.stat(path)
    return (found.st_mtime_ns, found.st_size, found.st_ino)


def describe(accounts: tuple[Account, ...]) -> str:
    """Names and kinds, for the log: `alice (refresh), default (anonymous)`."""
    return ", ".join(f"{account.name} ({account.kind})" for account in accounts)
