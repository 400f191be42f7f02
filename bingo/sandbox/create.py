"""The conversation-create endpoints of both protocols, with their failure modes.

Each function returns a Reply (status, body, headers) and knows nothing about
sockets; `rest.py` writes it out. Shapes follow section 1.4/1.5 and 6.2 of the notes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from .anon import ANON_COOKIE
from .directives import CHATHUB_CREATE, COPILOT_CREATE, COPILOT_START
from .state import State

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
LOGIN_FIRST = "Sorry, you need to login first to access this service."
NOT_ALLOWED = "Sorry, you are not allowed to access this service."
_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Bing</title></head><body>%s</body></html>"
)
# What Cloudflare puts in front of copilot.microsoft.com for a client without
# clearance (CG-2026-09: a 403 on /c/api/* means Cloudflare, not a bad cookie).
_CLOUDFLARE_PAGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head>'
    "<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>"
)
REDIRECT_TO = "http://127.0.0.2:1/elsewhere"  # loopback, and nothing listens there
RETRY_AFTER = "7"
# A few of the 503 flights of the captured start (model-dock-2025-10-start).
START_FEATURES = (
    "send-connected",
    "copilot-challenge",
    "challenge-all-anonymous",
    "smart-mode-gpt5",
    "think-deeper",
    "imagegenv3",
    "chainofthoughteventprocessor",
)


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response, ready to write."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(
    payload: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    return Reply(status, json.dumps(payload).encode("utf-8"), JSON, headers)


def page(status: int, text: str) -> Reply:
    return Reply(status, (_ERROR_PAGE % text).encode("utf-8"), HTML)


def chathub_create(state: State, cookie: str) -> Reply:
    """GET /turing/conversation/create: a conversation plus signature headers, or a fault."""
    state.count_create()
    fault = _take(state, CHATHUB_CREATE)
    common = _common_fault(fault)
    if common is not None:
        return common
    if fault == "create-unauthorized" or not _has_cookie(state, cookie):
        return json_reply(
            {"result": {"value": "UnauthorizedRequest", "message": LOGIN_FIRST}}
        )
    if fault == "create-forbidden":
        return json_reply({"result": {"value": "Forbidden", "message": NOT_ALLOWED}})
    legacy = fault == "create-legacy"
    conversation = state.registry.issue_chathub(legacy=legacy)
    body: dict[str, Any] = {
        "conversationId": conversation.id,
        "clientId": conversation.client_id,
    }
    if legacy:  # before Oct 2023 the signature was in the body and nowhere else
        body["conversationSignature"] = conversation.signature
        return json_reply({**body, "result": {"value": "Success", "message": None}})
    headers = (
        ("X-Sydney-Conversationsignature", conversation.signature),
        ("X-Sydney-Encryptedconversationsignature", conversation.encrypted),
    )
    return json_reply(
        {**body, "result": {"value": "Success", "message": None}}, headers=headers
    )


def copilot_create(state: State, cookie: str, *, start: bool) -> Reply:
    """POST /c/api/conversations (`{"id"}`) or /c/api/start (`{"currentConversationId"}`)."""
    state.count_create()
    fault = _take(state, COPILOT_START if start else COPILOT_CREATE)
    refused = _common_fault(fault) or _copilot_fault(fault)
    if refused is not None:
        return refused
    if fault == "create-401" or not _has_cookie(state, cookie):
        return json_reply({"message": "Invalid session"}, status=401)
    conversation = state.registry.issue_copilot()
    if not start:
        return json_reply({"id": conversation.id})
    # The same cookie is the same anonymous user; without one, a new user and its cookie.
    user, set_cookie = state.anon.start(cookie, anon_cookie, rotate=fault == "anon-rotate")
    body = _start_body(conversation.id, state, user, blocked=fault == "start-blocked")
    return json_reply(body, headers=(("Set-Cookie", set_cookie),) if set_cookie else ())


def anon_cookie() -> str:
    """A new anonymous session cookie, as /c/api/start sets it (tests replace this)."""
    token = secrets.token_urlsafe(48)
    return f"{ANON_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=None"


def _start_body(conversation_id: str, state: State, user: str, *, blocked: bool) -> dict[str, Any]:
    """Keys in the captured order, plus `isBlocked` (the app clients read it; go)."""
    return {
        "currentConversationId": conversation_id,
        "isNewUser": False,
        "allowBeta": False,
        "remainingTurns": state.options.max_turns,
        "features": list(START_FEATURES),
        "banExpiresAt": None,
        "userId": user,
        "inDataUseWaitingPeriod": None,
        "isBlocked": blocked,
    }


def _copilot_fault(fault: str | None) -> Reply | None:
    """Refusals seen in front of the Copilot REST API (Cloudflare, rate limits, moves)."""
    if fault == "create-403":
        headers = (("Server", "cloudflare"), ("cf-mitigated", "challenge"))
        return Reply(403, _CLOUDFLARE_PAGE.encode("utf-8"), HTML, headers)
    if fault == "create-429":
        return json_reply(
            {"message": "Too many requests"},
            status=429,
            headers=(("Retry-After", RETRY_AFTER),),
        )
    if fault == "create-redirect":
        return Reply(302, b"", HTML, (("Location", REDIRECT_TO),))
    return None


def copilot_user() -> Reply:
    """GET /c/api/user: enough for a client that checks it is signed in."""
    return json_reply(
        {"firstName": "Sandbox", "isBlocked": False, "remainingUsage": {"chat": 100}}
    )


def _take(state: State, accepted: frozenset[str]) -> str | None:
    """Consume the next create fault; create-slow is served here, then the create goes on."""
    fault = state.faults.take(accepted)
    if fault is None:
        return None
    name, value = fault
    if name == "create-slow":
        state.stopping.wait(float(value or 0))
        return None
    return name


def _common_fault(fault: str | None) -> Reply | None:
    if fault == "create-500":
        return page(500, "500 - Internal server error.")
    if fault == "create-404":  # g4f: "Do less requests and reuse conversations"
        return page(404, "404 - Not Found")
    if fault == "create-empty":  # the web UI's "network settings are preventing access"
        return Reply(200, b"", JSON)
    if fault == "create-nonjson":
        return page(
            200, "Sorry, looks like your network settings are preventing access."
        )
    return None


def _has_cookie(state: State, cookie: str) -> bool:
    required = state.options.require_cookie
    return required is None or required in cookie
