"""Per-account behaviour on the Copilot side: one account refused or throttled while
the others are served, access tokens checked, and which account each turn was for.

The sandbox knows an account by a marker in what it sends: its cookie or its
Bearer token on `/c/api/*`, its cookie or `accessToken` on the upgrade. Tests give
each account a recognisable credential and set a rule for its marker with
`Sandbox.account_rule(marker, rule)` (or `POST /sandbox/accounts
{"rules": {marker: rule}}`). Unlike queued faults, which one stage consumes, a
rule holds until `clear_account_rules()`:

- throttle[=S]: conversation creates get 429 with `Retry-After: S` (default 30).
- throttle-event: creates succeed, and the turn's `send` gets
  `{"event":"error","errorCode":"too-many-messages"}` (no time given).
- captcha: creates get Cloudflare's 403 page (`cf-mitigated: challenge`).
- unauthorized: creates get 401 `{"message":"Invalid session"}`.

`Sandbox.check_tokens(check)` makes every Bearer token and `accessToken` pass
`check(token)` or get 401, as Copilot refuses an expired access token: with the
fake identity server's check, a refused token is what a refresh then fixes.

Every conversation created records the marker its create carried ("" for none),
in order: `Sandbox.served(markers)`. Pure bookkeeping: `account_create.py` serves
the creates, `upgrade.py` asks `refusal` too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

RULES = ("throttle", "throttle-event", "captcha", "unauthorized")
DEFAULT_THROTTLE_SECONDS = 30
_CLOUDFLARE_PAGE = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body></body></html>"

TokenCheck = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a refused create or upgrade answers instead."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _refused(status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()) -> Refusal:
    return Refusal(status, json.dumps(payload).encode("utf-8"), headers=headers)


class AccountRules:
    """Thread-safe rules by marker, the token check, and who each conversation was for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, tuple[str, int]] = {}  # marker -> (rule, seconds)
        self._check: TokenCheck | None = None
        self._creates: list[str] = []  # the credentials of each create, in order
        self._by_conversation: dict[str, str] = {}

    def set(self, marker: str, rule: str) -> None:
        """Give the account whose credentials contain `marker` a rule; ValueError if unknown."""
        name, _, value = rule.partition("=")
        if name not in RULES or (value and (name != "throttle" or not value.isdigit())):
            raise ValueError(f"unknown account rule {rule!r}; known: {', '.join(RULES)}")
        if not marker:
            raise ValueError("an account marker must not be empty")
        with self._lock:
            self._rules[marker] = (name, int(value or DEFAULT_THROTTLE_SECONDS))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._check = None

    def check_tokens(self, check: TokenCheck | None) -> None:
        with self._lock:
            self._check = check

    def refusal(self, credentials: str, token: str) -> Refusal | None:
        """The reply a create or upgrade with these credentials gets instead, if any."""
        with self._lock:
            check = self._check
            rule = next((r for m, r in self._rules.items() if m in credentials), None)
        if token and check is not None and not check(token):
            return _refused(401, {"message": "Invalid session"})
        if rule is None:
            return None
        name, seconds = rule
        if name == "throttle":
            return _refused(429, {"message": "Too many requests"}, (("Retry-After", str(seconds)),))
        if name == "captcha":
            cloudflare = (("Server", "cloudflare"), ("cf-mitigated", "challenge"))
            return Refusal(403, _CLOUDFLARE_PAGE, "text/html; charset=utf-8", cloudflare)
        if name == "unauthorized":
            return _refused(401, {"message": "Invalid session"})
        return None

    def created(self, conversation_id: str, credentials: str) -> None:
        with self._lock:
            self._creates.append(credentials)
            self._by_conversation[conversation_id] = credentials

    def throttles(self, conversation_id: object) -> bool:
        """Whether this conversation's `send` gets the throttle error (throttle-event)."""
        with self._lock:
            credentials = self._by_conversation.get(conversation_id) if isinstance(conversation_id, str) else None
            if credentials is None:
                return False
            return any(m in credentials and r[0] == "throttle-event" for m, r in self._rules.items())

    def served(self, markers: Iterable[str]) -> list[str]:
        """Per conversation created, in order: the first of `markers` its create carried, or ""."""
        markers = list(markers)
        with self._lock:
            creates = list(self._creates)
        return [next((m for m in markers if m in credentials), "") for credentials in creates]


def credentials(headers: Iterable[tuple[str, str]], query: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(everything that identifies the caller, its access token) of one request."""
    named = {name.lower(): value for name, value in headers}
    auth = named.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    token = token or (query or {}).get("accessToken", "")
    return f"{named.get('cookie', '')}\n{token}", token
