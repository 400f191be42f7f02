"""The refresh-token exchange at the Microsoft identity platform (protocol note 3.2):
the grant the Copilot web app's MSAL sends, whether to send its Origin, and what the
service's answer means. No caching here (`tokens.py` caches and stores).

Origin: refresh tokens the Copilot web app issued (SPA tokens, taken from a browser)
are redeemed only cross-origin, with `Origin: https://copilot.microsoft.com`
(AADSTS9002327 without it); tokens from `python -m bingo login` (the device-code flow,
not SPA-issued) can be refused when an Origin comes with them (AADSTS9002326:
cross-origin redemption is for SPA tokens only). A token does not say which it is, so
the exchange sends the Origin first and, when the service names one of these two
codes, tries once the other way; which way worked is remembered per account entry for
the life of the process (a rotated token keeps its kind), so it costs one extra call
per entry and process.
"""
from __future__ import annotations

import logging
import re

from ..config import Settings
from ..upstream import failures, transport
from . import Account

log = logging.getLogger(__name__)

CLIENT_ID = "14638111-3389-403d-b206-a6a71d9f8f16"  # Copilot's consumer web app (public client)
SCOPE = "140e65af-45d1-4427-bf08-3e7295db6836/ChatAI.ReadWrite openid profile offline_access"
ORIGIN = "https://copilot.microsoft.com"
TOKEN_PATH = "/oauth2/v2.0/token"
# Every 4xx but 429 is the identity service refusing this refresh token (invalid_grant
# for revoked, expired or rotated-away tokens; interaction_required; ...): only a new
# sign-in helps. A 429 or 5xx is the sign-in service's own trouble (failures.for_sign_in).
REFUSALS = tuple(status for status in range(400, 500) if status != 429)
SIGN_IN_TROUBLE = (429, *range(500, 600))
ORIGIN_REFUSED = "AADSTS9002326"  # an Origin came with a token that is not SPA-issued
ORIGIN_REQUIRED = "AADSTS9002327"  # an SPA-issued token came without an Origin
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")
_AADSTS = re.compile(r"\bAADSTS\d{4,7}\b")  # 9002326 has seven digits


class Exchange:
    """Redeems refresh tokens; one per process, shared by its threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.login_url + TOKEN_PATH
        self._without_origin: set[str] = set()  # store keys whose tokens are redeemed without Origin

    def redeem(self, account: Account, key: str, refresh_token: str) -> transport.Reply:
        """The service's answer: a 2xx with the tokens, or a 4xx refusal (REFUSALS) for
        the caller to judge. Raises the failure table's error for a 429 or 5xx, and
        UpstreamUnavailable/UpstreamTimeout when the service cannot be reached."""
        with_origin = key not in self._without_origin
        reply = self._post(account, refresh_token, with_origin)
        code = aadsts_of(reply.body)
        if code == (ORIGIN_REFUSED if with_origin else ORIGIN_REQUIRED):
            with_origin = not with_origin
            log.info("account %r: the identity service wants its refresh token redeemed %s an Origin (%s); "
                     "trying that", account.name, "with" if with_origin else "without", code)
            reply = self._post(account, refresh_token, with_origin)
        if reply.status < 400:
            if with_origin:
                self._without_origin.discard(key)
            else:
                self._without_origin.add(key)
        return reply

    def _post(self, account: Account, refresh_token: str, with_origin: bool) -> transport.Reply:
        what = f"Token refresh for account {account.name!r}"
        headers = {"Origin": ORIGIN, "Accept": "application/json"} if with_origin else {"Accept": "application/json"}
        reply = transport.http_json(
            self._settings, "copilot", "POST", self._url, headers, what,
            form=refresh_form(refresh_token), accept=REFUSALS + SIGN_IN_TROUBLE,
        )
        if reply.status in SIGN_IN_TROUBLE:
            raise failures.for_sign_in(reply.status, what, reply.headers.get("Retry-After"))
        return reply


def refresh_form(refresh_token: str) -> dict[str, str]:
    """The refresh-token grant as the Copilot web app's MSAL sends it."""
    return {
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": SCOPE,
        "client_info": "1",
    }


def aadsts_of(body: object) -> str | None:
    """The AADSTS number in an OAuth error body's description, if any."""
    description = body.get("error_description") if isinstance(body, dict) else None
    found = _AADSTS.search(description) if isinstance(description, str) else None
    return found.group() if found else None


def refusal_reason(status: int, body: dict) -> str:
    """The OAuth error code (and AADSTS number) of a refusal; nothing else of the body."""
    error = body.get("error")
    code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else f"HTTP {status}"
    found = aadsts_of(body)
    return f"{code}, {found}" if found else code
