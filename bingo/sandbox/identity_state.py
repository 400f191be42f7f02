"""The fake identity platform's knowledge and rules, without the HTTP (`identity.py`
serves them): refresh tokens and their rotation, access tokens that name their account,
device codes, and the Azure AD error bodies each refusal gets.

Refresh tokens have a kind, as Azure AD's do: those `issue_refresh_token` gives stand
for the Copilot web app's (SPA-issued: redeemed only with its Origin), those a
device-code sign-in yields are not SPA-issued (refused when an Origin comes with
them); rotation keeps the kind.

Tokens name their account: an access token is `sandbox-at.<family>.<serial>.<random>`
where the family is the name given to `issue_refresh_token` (kept through rotation),
so a sandboxed Copilot can tell accounts apart (`family_of`) and ask whether the
token is still good (`account_of`, which `expire` turns off for a 401).
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# What Azure AD expects of the Copilot web app's tokens (protocol note 3.2), written
# out here rather than imported, so a typo on the gateway's side fails the tests.
CLIENT_ID = "14638111-3389-403d-b206-a6a71d9f8f16"
SCOPE = "140e65af-45d1-4427-bf08-3e7295db6836/ChatAI.ReadWrite openid profile offline_access"
COPILOT_ORIGIN = "https://copilot.microsoft.com"

ACCESS_PREFIX, REFRESH_PREFIX = "sandbox-at", "sandbox-rt"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFUSED_TOKEN = "AADSTS70000: The provided value for the 'refresh_token' is not valid."
SPA_ORIGIN = (
    "AADSTS9002327: Tokens issued for the 'Single-Page Application' client-type may only be "
    "redeemed via cross-origin requests."
)
NOT_SPA_ORIGIN = (
    "AADSTS9002326: Cross-origin token redemption is permitted only for the 'Single-Page Application' "
    "client-type. Request origin: '{origin}'."
)
TRANSIENT = "AADSTS90033: A transient error has occurred. Please try again."
Answer = tuple[int, dict[str, Any]]


def family_of(access_token: str) -> str | None:
    """The account (refresh-token family) a sandbox access token was minted for."""
    parts = access_token.split(".")
    return parts[1] if len(parts) == 4 and parts[0] == ACCESS_PREFIX else None


@dataclass(frozen=True)
class Received:
    """One request the server answered: path, headers (lower-case names), form fields."""

    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class _Minted:
    family: str
    expires_at: float  # time.time()
    expired: bool = False


@dataclass
class _Device:
    expires_at: float  # time.monotonic()
    answered: bool = False


@dataclass
class IdentityState:
    """What the server knows and what tests steer; every method holds `lock`."""

    expires_in: int = 3600  # access-token lifetime handed out, in seconds
    single_use: bool = False  # a rotated-away refresh token is refused (Azure AD keeps it valid)
    refresh_delay: float = 0.0  # seconds a refresh takes, so concurrent callers overlap
    device_interval: float = 1.0  # `interval` of a device code
    device_expires_in: float = 900.0  # `expires_in` of a device code
    device_plan: list[str] = field(default_factory=list)  # answers to successive polls, then pending
    device_family: str = "device-user"  # whose refresh token a device sign-in yields
    slow_down_interval: float | None = None  # sent with slow_down (as GitHub's server does)
    refreshes: int = 0  # refresh grants served successfully
    token_faults: list[tuple[int, str | None]] = field(default_factory=list)  # (status, Retry-After) for the next token calls
    received: list[Received] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)  # time.monotonic() of each device poll
    lock: threading.RLock = field(default_factory=threading.RLock)
    _refresh: dict[str, str] = field(default_factory=dict)  # live refresh token -> family
    _device_issued: set[str] = field(default_factory=set)  # refresh tokens not SPA-issued
    _revoked: set[str] = field(default_factory=set)  # families whose refresh tokens are refused
    _access: dict[str, _Minted] = field(default_factory=dict)
    _devices: dict[str, _Device] = field(default_factory=dict)
    _serial: int = 0

    def issue_refresh_token(self, family: str, *, device: bool = False) -> str:
        """A new refresh token for `family` (an account name: letters, digits, '-', '_'):
        SPA-issued, or with `device` as a device-code sign-in issues it."""
        if not family.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"family must be letters, digits, '-' or '_', not {family!r}")
        with self.lock:
            self._serial += 1
            token = f"{REFRESH_PREFIX}.{family}.{self._serial}.{secrets.token_hex(8)}"
            self._refresh[token] = family
            if device:
                self._device_issued.add(token)
            return token

    def token_fault(self) -> tuple[Answer, dict[str, str]] | None:
        """The next queued failure of the token endpoint (a 429 or 5xx), with its headers."""
        with self.lock:
            if not self.token_faults:
                return None
            status, retry_after = self.token_faults.pop(0)
        error = "temporarily_unavailable"
        return (status, {"error": error, "error_description": TRANSIENT, "error_codes": [90033]}), (
            {"Retry-After": retry_after} if retry_after is not None else {})

    def live_refresh_tokens(self, family: str) -> list[str]:
        """The refresh tokens of `family` the server would still redeem, oldest first."""
        with self.lock:
            return [token for token, owner in self._refresh.items() if owner == family and family not in self._revoked]

    def revoke(self, family: str) -> None:
        """Refuse every refresh token of `family` from now on (invalid_grant)."""
        with self.lock:
            self._revoked.add(family)

    def expire(self, family: str) -> None:
        """Make every access token minted so far for `family` expired (`account_of` says None)."""
        with self.lock:
            for minted in self._access.values():
                if minted.family == family:
                    minted.expired = True

    def account_of(self, access_token: str) -> str | None:
        """The family of a token minted here and still valid, else None (answer 401)."""
        with self.lock:
            minted = self._access.get(access_token)
            if minted is None or minted.expired or minted.expires_at <= time.time():
                return None
            return minted.family

    def token(self, form: dict[str, str], headers: dict[str, str]) -> Answer:
        """The token endpoint."""
        refused = _client_refused(form)
        if refused:
            return refused
        grant = form.get("grant_type")
        if grant == "refresh_token":
            return self._refresh_grant(form, headers)
        if grant == DEVICE_GRANT:
            return self._device_grant(form)
        return _oauth_error("unsupported_grant_type", f"AADSTS70003: grant type {grant!r} is not supported.")

    def devicecode(self, form: dict[str, str], base_url: str) -> Answer:
        """The device-code endpoint: a new code to show the user."""
        refused = _client_refused(form)
        if refused:
            return refused
        device_code, user_code = secrets.token_urlsafe(24), secrets.token_hex(4).upper()
        with self.lock:
            self._devices[device_code] = _Device(time.monotonic() + self.device_expires_in)
            interval, expires_in = self.device_interval, self.device_expires_in
        uri = f"{base_url}/devicelogin"
        return 200, {
            "user_code": user_code, "device_code": device_code, "verification_uri": uri,
            "expires_in": expires_in, "interval": interval,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate.",
        }

    def _refresh_grant(self, form: dict[str, str], headers: dict[str, str]) -> Answer:
        origin, presented = headers.get("origin"), form.get("refresh_token", "")
        with self.lock:
            device_issued = presented in self._device_issued
        if device_issued and origin is not None:
            return _oauth_error("invalid_request", NOT_SPA_ORIGIN.format(origin=origin))
        if not device_issued and origin != COPILOT_ORIGIN:
            return _oauth_error("invalid_request", SPA_ORIGIN)
        time.sleep(self.refresh_delay)
        with self.lock:
            family = self._refresh.get(presented)
            if family is None or family in self._revoked:
                return _oauth_error("invalid_grant", REFUSED_TOKEN)
            if self.single_use:
                del self._refresh[form["refresh_token"]]
            self.refreshes += 1
            return 200, self._mint(family, device=device_issued)

    def _device_grant(self, form: dict[str, str]) -> Answer:
        with self.lock:
            self.polls.append(time.monotonic())
            device = self._devices.get(form.get("device_code", ""))
            if device is None or device.answered:
                return _oauth_error("invalid_grant", "AADSTS70000: The provided device code is not valid.")
            if time.monotonic() >= device.expires_at:
                return _oauth_error("expired_token", "AADSTS70020: The provided value for the input parameter 'device_code' is expired.")
            outcome = self.device_plan.pop(0) if self.device_plan else "authorization_pending"
            if outcome != "success":
                return self._poll_refused(outcome)
            device.answered = True
            return 200, self._mint(self.device_family, device=True)

    def _poll_refused(self, outcome: str) -> Answer:
        status, body = _oauth_error(outcome, f"AADSTS70016: {outcome}.")
        if outcome == "slow_down" and self.slow_down_interval is not None:
            body["interval"] = self.slow_down_interval
        return status, body

    def _mint(self, family: str, *, device: bool) -> dict[str, Any]:
        self._serial += 1
        access = f"{ACCESS_PREFIX}.{family}.{self._serial}.{secrets.token_hex(8)}"
        self._access[access] = _Minted(family, time.time() + self.expires_in)
        return {
            "token_type": "Bearer", "scope": SCOPE.split(" ", 1)[0], "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in, "access_token": access,
            "refresh_token": self.issue_refresh_token(family, device=device),
        }


def _client_refused(form: dict[str, str]) -> Answer | None:
    if form.get("client_id") != CLIENT_ID:
        return _oauth_error("unauthorized_client", "AADSTS700016: Application not found in the directory.")
    if form.get("grant_type") != DEVICE_GRANT and form.get("scope") != SCOPE:
        return _oauth_error("invalid_scope", "AADSTS70011: The provided request must include a valid 'scope'.")
    return None


def _oauth_error(error: str, description: str) -> Answer:
    return 400, {"error": error, "error_description": description, "error_codes": [int(description[6:].split(":")[0])]}
