"""The Copilot protocol adapter: today's consumer chat at copilot.microsoft.com.

REST for the conversation, then one websocket (`/c/api/chat`) carrying one JSON event
per text message. Two presentations of the same API:

- **app** (the default): what the Android app sends, the path that works from plain
  HTTP stacks in 2026 (gpt4free's default since 2026-08, and the Go and Rust
  proxies): `CopilotNative/…` User-Agent, anonymous `POST /c/api/start`, whose
  `__Host-copilot-anon` cookie rides on the websocket upgrade; no setOptions. An
  identity that has such a session sends it back on the start, and stays the same
  anonymous user (a Set-Cookie on the start replaces it).
- **web** (an account with a cookie): a browser's session, replayed as that
  browser: `POST /c/api/conversations`, then setOptions and consents before `send`.

Whose credentials a turn carries is its `Identity` (one account's, chosen by the
account pool; the settings' single identity when a turn is opened without one).

Pure protocol: the engine owns the sockets; events are read by `tracker.py`.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from ...config import APP_USER_AGENT, BROWSER_USER_AGENT, Settings
from ...errors import UpstreamBlocked, UpstreamProtocolError
from ...prompt import transcript
from ..engine import Opening, Step
from ..events import TurnRequest
from ..transport import Reply, http_json
from . import attachments
from .tracker import CHAT, CopilotTracker, parse_frame

CREATE = "Copilot's conversation create"
ORIGIN = "https://copilot.microsoft.com"
ANON_COOKIE = "__Host-copilot-anon"
# What the web app announced in 2025; CG-2026-09 shows empty lists work too.
SET_OPTIONS = {
    "event": "setOptions",
    "supportedFeatures": ["partial-generated-images"],
    "supportedCards": ["weather", "local", "image", "sports", "video", "ads", "finance"],
    "ads": {"supportedTypes": ["multimedia", "product", "tourActivity", "propertyPromotion", "text"]},
}
CONSENTS = {"event": "reportLocalConsents", "grantedConsents": []}
# What the app posts to /c/api/start (no performUserMerge, as app clients send it).
START_BODY = {
    "timeZone": "UTC", "startNewConversation": True, "teenSupportEnabled": True,
    "correctPersonalizationSetting": True, "deferredDataUseCapable": True,
}


@dataclass(frozen=True)
class Identity:
    """Who a turn speaks to Copilot as: one account's credentials, never in a repr.

    A browser cookie means the web presentation (as that browser); no cookie, the
    Android app's, with the anonymous session `anon_cookie` (an account's kept
    `__Host-copilot-anon` value), or a fresh one from /c/api/start when it is "".
    An access token (signed in) rides on either.
    """

    cookie: str = field(default="", repr=False)
    user_agent: str = ""  # "" = the presentation's default
    access_token: str = field(default="", repr=False)
    anon_cookie: str = field(default="", repr=False)

    @property
    def presentation(self) -> str:
        return "web" if self.cookie else "app"

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        """The single identity of COPILOT_COOKIE, COPILOT_USER_AGENT, COPILOT_ACCESS_TOKEN."""
        return cls(settings.copilot_cookie, settings.copilot_user_agent, settings.copilot_access_token)


def user_agent(identity: Identity) -> str:
    if identity.user_agent:
        return identity.user_agent
    return BROWSER_USER_AGENT if identity.presentation == "web" else APP_USER_AGENT


def rest_headers(settings: Settings, identity: Identity) -> dict[str, str]:
    """Headers for /c/api/*: the presentation's, plus the token when one is set."""
    headers = {"User-Agent": user_agent(identity), "Accept": "application/json", "X-Search-UILang": settings.locale}
    if identity.presentation == "web":
        headers.update({"Origin": ORIGIN, "Referer": f"{ORIGIN}/", "Cookie": identity.cookie})
    if identity.access_token:
        headers["Authorization"] = f"Bearer {identity.access_token}"
    return headers


def upgrade_headers(identity: Identity, anon_cookie: str) -> dict[str, str]:
    """The upgrade's headers: User-Agent, Copilot's Origin, and the session's cookies."""
    headers = {"User-Agent": user_agent(identity), "Origin": ORIGIN}
    cookies = [c for c in (identity.cookie, f"{ANON_COOKIE}={anon_cookie}" if anon_cookie else "") if c]
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    return headers


def chat_url(settings: Settings, identity: Identity, session_id: str) -> str:
    """The websocket URL: the base's host and port, ws(s), /c/api/chat, the query."""
    base = urlsplit(settings.copilot_url)
    query = {"api-version": "2", "clientSessionId": session_id}
    if identity.access_token:  # signed in: the MSAL token travels in the query
        query["accessToken"] = identity.access_token
    scheme = "wss" if base.scheme == "https" else "ws"
    path = base.path.rstrip("/") + "/c/api/chat"
    return urlunsplit((scheme, base.netloc, path, urlencode(query, quote_via=quote), ""))


def start_conversation(settings: Settings, identity: Identity) -> tuple[str, str]:
    """(conversation id, anonymous cookie or "") from the presentation's REST call.

    The app presentation sends the identity's anonymous session back; the cookie
    returned is the one the start set (new or rotated), else the one sent.
    """
    base = settings.copilot_url.rstrip("/")
    headers = rest_headers(settings, identity)
    if identity.presentation == "web":
        reply = http_json(settings, "copilot", "POST", f"{base}/c/api/conversations", headers, CREATE, accept=(404, 405))
        if reply.status not in (404, 405):  # gone on some deployments: /c/api/start then
            return _conversation_id(reply, "id"), ""
    if identity.presentation == "app" and identity.anon_cookie:
        headers["Cookie"] = f"{ANON_COOKIE}={identity.anon_cookie}"
    reply = http_json(settings, "copilot", "POST", f"{base}/c/api/start", headers, CREATE, START_BODY)
    if isinstance(reply.body, dict) and reply.body.get("isBlocked") is True:
        raise UpstreamBlocked(
            f"{CREATE} says this anonymous session is blocked (isBlocked): Copilot does not serve "
            "anonymous chat to this IP address or region. Use a proxy in a supported region "
            "(HTTPS_PROXY), or a signed-in account (COPILOT_ACCESS_TOKEN)."
        )
    anon_cookie = reply.cookies.get(ANON_COOKIE) or (identity.anon_cookie if identity.presentation == "app" else "")
    return _conversation_id(reply, "currentConversationId"), anon_cookie


def _conversation_id(reply: Reply, key: str) -> str:
    if not isinstance(reply.body, dict):
        raise UpstreamBlocked(
            f"{CREATE} returned an empty or non-JSON body: Copilot does not serve chat to this IP "
            "address or region, or wants a browser check. Use a proxy in a supported region (HTTPS_PROXY)."
        )
    conversation_id = reply.body.get(key)
    if not isinstance(conversation_id, str) or not conversation_id:
        raise UpstreamProtocolError(f"{CREATE} answered without a conversation id ({key}).")
    return conversation_id


def build_send(
    conversation_id: str, text: str, mode: str, presentation: str, images: tuple[dict[str, str], ...] = (),
) -> dict[str, object]:
    send: dict[str, object] = {
        "event": "send",
        "conversationId": conversation_id,
        "content": [*images, {"type": "text", "text": text}],  # images first (attachments.py)
        "mode": mode,
    }
    if presentation == "web":
        send["context"] = {}  # the browser sends it; app clients leave it out
    return send


class CopilotAdapter:
    """One Copilot turn as the engine drives it."""

    upstream = "copilot"
    what = CHAT

    def __init__(self, settings: Settings, request: TurnRequest, identity: Identity | None = None) -> None:
        self._settings = settings
        self._identity = identity or Identity.from_settings(settings)
        self._mode = request.model.mode
        # Checked before any upstream call: a question over the limit is a 400 now.
        self._text = transcript(request.messages, settings.copilot_max_chars)
        self._images = request.images
        self._tracker: CopilotTracker | None = None
        self._anon_cookie = ""

    def speaking_as(self, identity: Identity) -> CopilotAdapter:
        """A fresh adapter for the same question, with another account's credentials."""
        fresh = copy.copy(self)
        fresh._identity, fresh._tracker, fresh._anon_cookie = identity, None, ""
        return fresh

    @property
    def anon_cookie(self) -> str:
        """The anonymous session this turn's start gave or kept ("" before it, or none)."""
        return self._anon_cookie

    @property
    def opened(self) -> bool:
        return self._tracker is not None and self._tracker.opened

    def create(self) -> Opening:
        attachments.require_sign_in(self._images, self._identity.access_token)  # before any upstream call
        conversation_id, anon_cookie = start_conversation(self._settings, self._identity)
        self._anon_cookie = anon_cookie
        upgrade = upgrade_headers(self._identity, anon_cookie)
        images = attachments.upload(
            self._settings, self._images, rest_headers(self._settings, self._identity), upgrade.get("Cookie", ""),
        ) if self._images else ()
        presentation = self._identity.presentation
        send = build_send(conversation_id, self._text, self._mode, presentation, images)
        opening = (SET_OPTIONS, CONSENTS) if presentation == "web" else ()
        self._tracker = CopilotTracker(send, opening)
        url = chat_url(self._settings, self._identity, str(uuid.uuid4()))
        return Opening(url, upgrade)

    def greeting(self) -> list[str]:
        return []  # the server speaks first

    def feed(self, message: str) -> Step:
        assert self._tracker is not None, "create() runs before any frame"
        return self._tracker.on_event(parse_frame(message))
