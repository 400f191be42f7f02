"""Accounts: the Copilot identities one gateway serves from.

An `Account` is a plain value: its name (the only thing logs, errors and store keys
ever show), its kind, and its credentials. `roster.py` reads them from the settings
and COPILOT_ACCOUNTS_FILE, `tokens.py` turns a refresh token into an access token;
the pool that chooses between accounts lives elsewhere. No Flask imports here.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

KINDS = ("anonymous", "cookie", "token", "refresh")
SIGNED_IN_KINDS = ("token", "refresh")
FINGERPRINT_CHARS = 16


@dataclass(frozen=True, slots=True)
class Account:
    """One Copilot identity.

    kind is "anonymous" (the app presentation, with its own anonymous session),
    "cookie" (a browser's Cookie header), "token" (a static COPILOT_ACCESS_TOKEN) or
    "refresh" (a refresh token exchanged for access tokens).
    """

    name: str
    kind: str
    cookie: str = field(default="", repr=False)
    user_agent: str = ""
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"account {self.name!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def signed_in(self) -> bool:
        """Has (or can get) a Bearer token: what image input needs."""
        return self.kind in SIGNED_IN_KINDS

    @property
    def fingerprint(self) -> str:
        """A short hash of the whole entry, secrets included, that changes when the
        operator edits it (a "needs attention" state is cleared then). One-way and
        truncated, so it identifies a version of an entry without revealing it."""
        entry = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(entry.encode()).hexdigest()[:FINGERPRINT_CHARS]


def store_key(account: Account) -> str:
    """Where this version of the account's entry keeps its tokens and its anonymous
    session in the state store (`name#fingerprint`): never a secret."""
    return f"{account.name}#{account.fingerprint}"
