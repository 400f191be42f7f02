"""The one table from what an upstream said to the gateway's error classes.

Every upstream failure the protocols can report -- an HTTP status on the REST call or
on the websocket upgrade, a ChatHub `result.value`, a Copilot `errorCode` -- is
turned into a BingoError here and nowhere else, so one cause always gets one status,
one `error.code` and one piece of advice whichever leg it came from. The messages
say what the operator should do; the upstream's own words are kept.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from ..errors import (
    BingoError,
    CaptchaRequired,
    InvalidRequest,
    UpstreamBlocked,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamUnavailable,
)

# Upstream names as the messages say them, and the variables that hold their credentials.
CREDENTIALS = {"chathub": "BING_COOKIE", "copilot": "COPILOT_COOKIE or COPILOT_ACCESS_TOKEN"}
BROWSER_FIX = {
    "chathub": "open bing.com/chat in a browser with this account, solve it, and refresh BING_COOKIE.",
    "copilot": (
        "open copilot.microsoft.com in a browser on this network, chat once, then set COPILOT_COOKIE "
        "and COPILOT_USER_AGENT from that browser (Cloudflare binds its clearance to the exact "
        "User-Agent), or leave COPILOT_COOKIE unset to use the Android app's presentation."
    ),
}
DEFAULT_RETRY_AFTER = 60  # seconds, when the upstream says it throttles but not for how long


def for_status(upstream: str, status: int, what: str, retry_after: str | None = None) -> BingoError:
    """The error for an HTTP status from a REST call or a websocket upgrade."""
    if status == 429:
        seconds = _seconds(retry_after)
        return UpstreamThrottled(
            f"{what} answered HTTP 429: this account or IP address is rate limited. Wait and retry later.",
            retry_after=seconds or DEFAULT_RETRY_AFTER, guessed=seconds is None,
        )
    if status == 200:  # a web page where a websocket was asked for
        return UpstreamBlocked(
            f"{what} answered a web page instead of a websocket: the service does not serve chat "
            "to this IP address or region. Use a proxy in a supported region (HTTPS_PROXY)."
        )
    if status >= 500:
        return UpstreamUnavailable(f"{what} answered HTTP {status}.")
    if upstream == "chathub":  # Bing refused the cookie, or this IP: its 4xx all meant that
        return UpstreamRejected(
            f"{what} was refused with HTTP {status}: the cookie or the signature was not accepted. "
            "Refresh BING_COOKIE from a signed-in browser session, and check that this server's IP may use Bing Chat."
        )
    if status == 401:
        return UpstreamRejected(f"{what} refused the credentials (HTTP 401): refresh {CREDENTIALS[upstream]}.")
    if status == 403:  # Copilot's REST and upgrade sit behind Cloudflare
        return CaptchaRequired(f"{what} was refused with HTTP 403, a browser check (Cloudflare) this server cannot pass: {BROWSER_FIX[upstream]}")
    return UpstreamError(f"{what} answered HTTP {status}: check BINGO_COPILOT_URL.")


def for_sign_in(status: int, what: str, retry_after: str | None = None) -> BingoError:
    """A 429 or 5xx from the Microsoft identity platform (a token refresh): the sign-in
    service's trouble, not Copilot's. A 429 rests the account only as long as the
    service asked (else DEFAULT_RETRY_AFTER), never BINGO_COOLDOWN_SECONDS; a 5xx
    fails this request and says nothing about the account."""
    if status == 429:
        seconds = _seconds(retry_after) or DEFAULT_RETRY_AFTER
        return UpstreamThrottled(
            f"{what}: the Microsoft sign-in service (BINGO_LOGIN_URL) answered HTTP 429, too many sign-in "
            f"requests; the account rests {seconds} s and requests go to the other accounts meanwhile.",
            retry_after=seconds,
        )
    return UpstreamUnavailable(
        f"{what}: the Microsoft sign-in service (BINGO_LOGIN_URL) answered HTTP {status}; retry later "
        "(Copilot and the account are not at fault)."
    )


# Copilot's image upload (`/c/api/attachments`): what it says about the image itself.
ATTACHMENT_STATUSES = (413, 415)


def for_attachment(status: int, what: str, param: str) -> BingoError:
    """A refused image upload (ATTACHMENT_STATUSES): the client's 400, naming its image part."""
    if status == 413:
        return InvalidRequest(
            f"{what} refused '{param}' as too large (HTTP 413). Send a smaller image.", param=param, code="image_too_large",
        )
    return InvalidRequest(
        f"{what} refused '{param}' as a type it does not take (HTTP {status}). Send it as PNG or JPEG.",
        param=param, code="invalid_image_format",
    )


def for_redirect(what: str, location: str) -> BingoError:
    """Redirects are never followed: credentials must not travel to another origin."""
    return UpstreamError(f"{what} redirected to {location or 'nowhere'}; redirects are not followed. Check the upstream URL settings.")


# ChatHub `result.value` (type-2 finals and conversation create).
def for_result(value: str, said: str) -> BingoError:
    """The error for a ChatHub result value other than Success, keeping Bing's words."""
    said = f" (Bing said: {said})" if said else ""
    if value == "Throttled":
        return UpstreamThrottled(f"Bing throttled this account: it hit its rate or daily limit. Wait and retry later, or use another account's BING_COOKIE.{said}")
    if value == "CaptchaChallenge":
        return CaptchaRequired(f"Bing asks for a CAPTCHA: {BROWSER_FIX['chathub']}{said}")
    if value in ("UnauthorizedRequest", "Forbidden"):
        return UpstreamRejected(f"Bing refused the account ({value}): refresh BING_COOKIE from a signed-in browser session.{said}")
    if value == "InvalidRequest":
        return UpstreamProtocolError(f"Bing rejected the request as invalid (InvalidRequest).{said}")
    return UpstreamError(f"Bing ended the turn with {value}.{said}")


# Copilot `errorCode` (the `error` and `chatMessageError` events).
def for_code(frame: dict) -> BingoError:
    """The error for a Copilot error event, keeping Copilot's code and words."""
    code = str(frame.get("errorCode") or frame.get("code") or "unknown")[:80]
    message = frame.get("message") or frame.get("text")
    said = f" (Copilot said: {str(message)[:300]})" if isinstance(message, str) and message else ""
    for matches, build in _CODES:
        if matches(code.lower()):
            return build(code, frame, said)
    return UpstreamError(f"Copilot ended the turn with error {code!r}.{said}")


def _too_long(code: str, frame: dict, said: str) -> BingoError:
    return InvalidRequest(
        f"Copilot refused the message as too long ({code}). Shorten the conversation or lower "
        f"BINGO_COPILOT_MAX_CHARS.{said}",
        param="messages", code="context_length_exceeded",
    )


def _blocked(code: str, frame: dict, said: str) -> BingoError:
    return UpstreamBlocked(
        f"Copilot does not serve chat to this server's IP address or region ({code}). Use a proxy in a "
        f"region where copilot.microsoft.com works (HTTPS_PROXY), or a signed-in account.{said}"
    )


def _throttled(code: str, frame: dict, said: str) -> BingoError:
    return UpstreamThrottled(
        f"Copilot throttled this account ({code}). Wait and retry later.{said}", retry_after=DEFAULT_RETRY_AFTER, guessed=True,
    )


def _quota(code: str, frame: dict, said: str) -> BingoError:
    detail = frame.get("errorDetail")
    when = detail.get("nextAvailableAt") if isinstance(detail, dict) else None
    seconds = _seconds_until(when)
    return UpstreamThrottled(
        f"Copilot's quota for this mode is used up ({code}); it is available again at {when or 'a later time'}.{said}",
        retry_after=seconds or DEFAULT_RETRY_AFTER, guessed=seconds is None,
    )


def _unauthorized(code: str, frame: dict, said: str) -> BingoError:
    return UpstreamRejected(f"Copilot refused the credentials ({code}): refresh {CREDENTIALS['copilot']}.{said}")


def _invalid_event(code: str, frame: dict, said: str) -> BingoError:
    # What a frame before `connected`, or a second `send` on a live turn, gets back.
    return UpstreamProtocolError(f"Copilot rejected a frame the gateway sent (invalid-event).{said}")


_CODES: tuple[tuple[Callable[[str], bool], Callable[[str, dict, str], BingoError]], ...] = (
    (lambda c: c == "text-too-long", _too_long),
    (lambda c: c == "chat-service-unavailable", _blocked),
    (lambda c: c == "over-research-quota", _quota),
    (lambda c: c == "too-many-messages" or "throttl" in c or "rate-limit" in c, _throttled),
    (lambda c: c in ("unauthorized", "unauthenticated", "invalid-token"), _unauthorized),
    (lambda c: c == "invalid-event", _invalid_event),
)


def _seconds(retry_after: str | None) -> int | None:
    """A Retry-After header as whole seconds (delta-seconds only), else None."""
    if retry_after and retry_after.strip().isdigit():
        return max(1, min(int(retry_after.strip()), 86_400))
    return None


def _seconds_until(when: object) -> int | None:
    """Whole seconds from now until an ISO-8601 time, at least 1; None if unreadable."""
    if not isinstance(when, str):
        return None
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(1, min(int(moment.timestamp() - time.time()) + 1, 31 * 86_400))
