"""The Copilot client: create a conversation, open /c/api/chat, ask, read the answer.

Today's copilot.microsoft.com (protocol notes 6.2): REST for the conversation id, then
one websocket carrying one plain JSON event per text message (no SignalR framing).
Synchronous on the calling thread, one fresh conversation per request. Event
interpretation is the pure CopilotTracker; the network is `transport.py`'s.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import websocket

from .config import Settings
from .errors import (
    BingoError,
    UpstreamBlocked,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from .copilot_events import CHAT, CopilotTracker, parse_frame
from .events import Event, TurnRequest
from .prompt import Prompt
from .sse import dumps
from .transport import (
    USER_AGENT,
    Deadlines,
    FrameReader,
    close_websocket,
    closed_on_failure,
    http_json,
    open_websocket,
    send_json,
)

log = logging.getLogger(__name__)

CREATE = "Copilot's conversation create"
ORIGIN = "https://copilot.microsoft.com"
# What a 2025 web client announces; the server rejects a `send` that comes before
# `setOptions` and `reportLocalConsents` with `invalid-event` (Windows-Copilot-API).
SET_OPTIONS = {
    "event": "setOptions",
    "supportedFeatures": ["partial-generated-images"],
    "supportedCards": ["weather", "local", "image", "sports", "video", "ads", "finance"],
    "ads": {"supportedTypes": ["multimedia", "product", "tourActivity", "propertyPromotion", "text"]},
}
CONSENTS = {"event": "reportLocalConsents", "grantedConsents": []}
# What the web app posts to /c/api/start (g4f HEAD, protocol notes 6.2).
START_BODY = {
    "timeZone": "UTC", "startNewConversation": True, "teenSupportEnabled": True,
    "correctPersonalizationSetting": True, "performUserMerge": True, "deferredDataUseCapable": True,
}


def create_conversation(settings: Settings) -> str:
    """POST /c/api/conversations (or /c/api/start where that is gone); the new id."""
    base = settings.copilot_url.rstrip("/")
    headers = rest_headers(settings)
    response, body = http_json(settings, "POST", f"{base}/c/api/conversations", headers, CREATE)
    key = "id"
    if response.status_code in (404, 405):  # g4f moved to /c/api/start in 2025-10
        response, body = http_json(settings, "POST", f"{base}/c/api/start", headers, CREATE, START_BODY)
        key = "currentConversationId"
    if not response.ok:
        raise _create_failure(response.status_code)
    if not isinstance(body, dict):
        raise UpstreamBlocked(
            f"{CREATE} returned an empty or non-JSON body: Copilot does not serve chat to this IP "
            "address or region, or wants a browser check. Use a proxy in a supported region "
            "(HTTPS_PROXY), or open copilot.microsoft.com in a browser and refresh COPILOT_COOKIE."
        )
    conversation_id = body.get(key)
    if not isinstance(conversation_id, str) or not conversation_id:
        raise UpstreamProtocolError(f"{CREATE} answered without a conversation id ({key}).")
    return conversation_id


def _create_failure(status: int) -> BingoError:
    if status in (401, 403):  # g4f: "Status 401: Invalid session"
        return UpstreamRejected(
            f"{CREATE} answered HTTP {status}: the session was not accepted. Refresh COPILOT_COOKIE "
            "(and COPILOT_ACCESS_TOKEN, if set) from a signed-in browser session."
        )
    if status == 429:
        return UpstreamThrottled(f"{CREATE} answered HTTP 429: this account or IP address is rate limited. Wait and retry later.")
    if status >= 500:
        return UpstreamUnavailable(f"{CREATE} answered HTTP {status}.")
    return UpstreamError(f"{CREATE} answered HTTP {status}: check BINGO_COPILOT_URL.")


def rest_headers(settings: Settings) -> dict[str, str]:
    """Browser-like headers for the REST calls; the token only when one is set."""
    headers = _upgrade_headers(settings)
    headers.update({"Accept": "application/json", "Referer": f"{ORIGIN}/", "x-search-uilang": settings.locale})
    if settings.copilot_access_token:
        headers["Authorization"] = f"Bearer {settings.copilot_access_token}"
    return headers


def _upgrade_headers(settings: Settings) -> dict[str, str]:
    """What a browser sends on the upgrade too: cookies and Copilot's own Origin."""
    headers = {"User-Agent": USER_AGENT, "Origin": ORIGIN}
    if settings.copilot_cookie:
        headers["Cookie"] = settings.copilot_cookie
    return headers


def chat_url(settings: Settings, session_id: str) -> str:
    """The websocket URL: the base's host and port, ws(s), /c/api/chat, the query."""
    base = urlsplit(settings.copilot_url)
    query = {"api-version": "2", "clientSessionId": session_id}
    if settings.copilot_access_token:  # signed in: the MSAL token travels in the query
        query["accessToken"] = settings.copilot_access_token
    scheme = "wss" if base.scheme == "https" else "ws"
    path = base.path.rstrip("/") + "/c/api/chat"
    return urlunsplit((scheme, base.netloc, path, urlencode(query, quote_via=quote), ""))


def render_prompt(prompt: Prompt) -> str:
    """The text of the first `send`: earlier turns in Bing markup, then the question."""
    if not prompt.context:
        return prompt.text
    return f"{prompt.context}\n[user](#message)\n{prompt.text}"


def build_send(conversation_id: str, request: TurnRequest) -> dict[str, object]:
    return {
        "event": "send",
        "conversationId": conversation_id,
        "content": [{"type": "text", "text": render_prompt(request.prompt)}],
        "mode": request.model.mode,
        "context": {},
    }


def open_copilot_turn(settings: Settings, request: TurnRequest) -> CopilotTurn:
    """Create a conversation, open the chat socket and send the question."""
    conversation_id = create_conversation(settings)
    url = chat_url(settings, str(uuid.uuid4()))
    ws = open_websocket(settings, url, _upgrade_headers(settings), CHAT)
    with closed_on_failure(ws):
        turn = CopilotTurn(ws, settings, request, build_send(conversation_id, request))
        turn.start()
    return turn


class CopilotTurn:
    """One question on an open chat socket; `events()` reads its answer."""

    def __init__(self, ws: websocket.WebSocket, settings: Settings, request: TurnRequest, send: dict) -> None:
        self._ws = ws
        self._settings = settings
        self._send = send
        self._reader = FrameReader(ws, Deadlines.start(settings), request.watch, CHAT)
        self._tracker = CopilotTracker(send)

    def start(self) -> None:
        for payload in (SET_OPTIONS, CONSENTS, self._send):
            send_json(self._ws, dumps(payload), CHAT)

    def events(self) -> Iterator[Event]:
        """Yield the answer's events, None on keep-alive ticks, then one Finish.

        The turn ends at `done`; the real server keeps the socket open after it.
        """
        while True:
            message = self._reader.next(self._settings.keepalive_seconds)
            if message is None:
                yield None
                continue
            if not message:
                continue  # a websocket control frame
            step = self._tracker.on_event(parse_frame(message))
            for reply in step.replies:
                send_json(self._ws, dumps(reply), CHAT)
            if step.events:
                self._reader.touch()
                yield from step.events
            if step.done:
                return

    def close(self) -> None:
        close_websocket(self._ws)


