"""The Copilot client: create a conversation, open /c/api/chat, ask, read the answer.

Today's copilot.microsoft.com (protocol notes 6.2): REST for the conversation id, then
one websocket carrying one plain JSON event per text message (no SignalR framing).
Synchronous on the calling thread, one fresh conversation per request. Event
interpretation is the pure CopilotTracker; the network is `transport.py`'s.
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import websocket

from . import hashcash
from .config import Settings
from .errors import (
    BingoError,
    CaptchaRequired,
    UpstreamBlocked,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from .events import Delta, Event, Finish, Progress, Source, TurnRequest
from .prompt import Prompt
from .sse import dumps
from .transport import USER_AGENT, Deadlines, FrameReader, close_websocket, http_json, open_websocket, send_json

log = logging.getLogger(__name__)

CREATE = "Copilot's conversation create"
CHAT = "Copilot's chat socket"
ORIGIN = "https://copilot.microsoft.com"
MAX_CHALLENGES = 3  # a server that challenges every re-sent `send` would loop forever
REWRITE = "Copilot rewrote its answer mid-stream"
BROWSER_FIX = "open copilot.microsoft.com in a browser on this network, chat once, then refresh COPILOT_COOKIE from it."
CLOUDFLARE = f"Copilot asks for a Cloudflare browser check, which a server cannot pass: {BROWSER_FIX}"
# What a 2025 web client announces; the server rejects a `send` that comes before
# `setOptions` and `reportLocalConsents` with `invalid-event` (Windows-Copilot-API).
SET_OPTIONS = {
    "event": "setOptions",
    "supportedFeatures": ["partial-generated-images"],
    "supportedCards": ["weather", "local", "image", "sports", "video", "ads", "finance"],
    "ads": {"supportedTypes": ["multimedia", "product", "tourActivity", "propertyPromotion", "text"]},
}
CONSENTS = {"event": "reportLocalConsents", "grantedConsents": []}


def create_conversation(settings: Settings) -> str:
    """POST /c/api/conversations (or /c/api/start where that is gone); the new id."""
    base = settings.copilot_url.rstrip("/")
    headers = rest_headers(settings)
    response, body = http_json(settings, "POST", f"{base}/c/api/conversations", headers, CREATE)
    key = "id"
    if response.status_code in (404, 405):  # g4f moved to /c/api/start in 2025-10
        response, body = http_json(settings, "POST", f"{base}/c/api/start", headers, CREATE)
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
    turn = CopilotTurn(ws, settings, request, build_send(conversation_id, request))
    try:
        turn.start()
    except BaseException:
        turn.close()
        raise
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
            yield from step.events
            if step.done:
                return

    def close(self) -> None:
        close_websocket(self._ws)


def parse_frame(message: str) -> dict:
    """One Copilot event; raises UpstreamProtocolError when it is not a JSON object."""
    try:
        frame = json.loads(message)
    except ValueError as exc:
        raise UpstreamProtocolError(f"{CHAT} sent a message that is not JSON.") from exc
    if not isinstance(frame, dict):
        raise UpstreamProtocolError(f"{CHAT} sent a JSON message that is not an event object.")
    return frame


@dataclass
class Step:
    """What one server event asks of the client: events to hand on, frames to send back."""

    events: list[Event] = field(default_factory=list)
    replies: list[dict] = field(default_factory=list)
    done: bool = False


class CopilotTracker:
    """Turns one turn's server events into Delta/Progress/Finish; pure, no sockets."""

    def __init__(self, send: dict) -> None:
        self.sent = ""  # answer text already handed on
        self._send = send  # re-sent after each answered challenge
        self._answer_id: str | None = None
        self._part_id: str | None = None
        self._part_text = ""
        self._parts: set[str] = set()
        self._sources: dict[str, Source] = {}  # by url, in citation order
        self._suggestions: tuple[str, ...] = ()
        self._filtered = ""  # why the answer ends as content_filter, if it does
        self._challenges = 0

    def on_event(self, frame: dict) -> Step:
        """The Step for one server event; raises a BingoError for `error` and unsolvable challenges."""
        kind, text = frame.get("event"), frame.get("text")
        if kind in ("appendText", "replaceText") and isinstance(text, str) and not self._foreign(frame):
            return Step(self._on_text(frame, text, replace=kind == "replaceText"))
        if kind == "chainOfThought" and isinstance(text, str) and text:
            return Step([Progress("chainOfThought", text)])  # reasoning, never answer text
        if kind == "citation" and isinstance(frame.get("url"), str):
            self._sources.setdefault(frame["url"], Source(str(frame.get("title") or frame["url"]), frame["url"]))
        elif kind == "suggestedFollowups":
            self._suggestions = tuple(_suggestions(frame.get("suggestions")))
        elif kind == "startMessage" and isinstance(frame.get("messageId"), str):
            self._answer_id = frame["messageId"]  # `received` carries the user message's id
        elif kind == "done":
            return Step([self._finish()], done=True)
        elif kind == "error":
            raise error_for(frame)
        elif kind == "challenge":
            return Step(replies=[self._challenge_response(frame), self._send])
        elif kind == "ping":
            return Step(replies=[{"event": "pong"}])
        else:  # connected, received, partCompleted, titleUpdate, pong, images, ...
            log.debug("%s: nothing to relay in a %r event", CHAT, kind)
        return Step()

    def _foreign(self, frame: dict) -> bool:
        """Text of another message than the answer started by `startMessage`."""
        message_id = frame.get("messageId")
        return self._answer_id is not None and message_id is not None and message_id != self._answer_id

    def _on_text(self, frame: dict, text: str, *, replace: bool) -> list[Event]:
        part_id = str(frame.get("partId", self._part_id or ""))
        if part_id != self._part_id:
            if replace and part_id in self._parts:
                return self._filter(REWRITE)  # an earlier part: streamed, cannot be unsent
            self._part_id, self._part_text = part_id, ""
            self._parts.add(part_id)
        if not replace:
            return self._emit(text)
        # replaceText restates the part; only an extension of what was sent can be relayed.
        return self._emit(text[len(self._part_text):]) if text.startswith(self._part_text) else self._filter(REWRITE)

    def _emit(self, new: str) -> list[Event]:
        if self._filtered or not new:
            return []
        self._part_text += new
        self.sent += new
        return [Delta(new)]

    def _filter(self, why: str) -> list[Event]:
        """End the answer as content_filter; the first reason given is kept."""
        if self._filtered:
            return []
        self._filtered = why
        return [Progress("retraction", why)]

    def _finish(self) -> Finish:
        if not self.sent:
            raise UpstreamError("Copilot finished the turn without an answer. Try again or rephrase the question.")
        reason = "content_filter" if self._filtered else "stop"
        return Finish(reason, tuple(self._sources.values()), self._suggestions, self._filtered)

    def _challenge_response(self, frame: dict) -> dict[str, object]:
        """The answer to a `challenge`; the `send` it held back is re-sent after it."""
        self._challenges += 1
        if self._challenges > MAX_CHALLENGES:
            raise UpstreamProtocolError(f"{CHAT} challenged the question {self._challenges} times; giving up.")
        method = frame.get("method")
        log.info("%s posed a %s challenge", CHAT, str(method)[:40] if method else "null")
        if method is None:  # g4f #3182, Windows-Copilot-API #8/#13: an empty token acks it
            token = ""
        elif method == "hashcash":
            token = _solve_hashcash(frame.get("parameter"))
        elif method == "cloudflare":
            raise CaptchaRequired(CLOUDFLARE)
        else:
            raise CaptchaRequired(f"Copilot asks for a {str(method)[:40]!r} challenge this gateway cannot answer: {BROWSER_FIX}")
        # The id is opaque ("0.0001", "1"): echoed exactly as received, never re-typed.
        return {"event": "challengeResponse", "token": token, "method": method, "id": frame.get("id")}


def _solve_hashcash(parameter: object) -> str:
    try:
        bits = hashcash.difficulty(parameter)
    except ValueError as exc:
        raise UpstreamProtocolError(f"{CHAT} sent a hashcash challenge this gateway cannot read: {exc}.") from exc
    nonce = hashcash.solve(str(parameter), bits)
    if nonce is None:
        raise UpstreamError(f"{CHAT} sent a {bits}-bit hashcash challenge that was not solved in time. Try again.")
    return nonce


def _suggestions(raw: object) -> list[str]:
    items = raw if isinstance(raw, list) else []
    return [s if isinstance(s, str) else s["text"] for s in items
            if isinstance(s, str) or (isinstance(s, dict) and isinstance(s.get("text"), str))]


def error_for(frame: dict) -> BingoError:
    """The gateway error for an `error` event, keeping Copilot's words."""
    code = str(frame.get("errorCode") or "unknown")
    message = frame.get("message")
    said = f" (Copilot said: {message})" if isinstance(message, str) and message else ""
    if code == "chat-service-unavailable":
        return UpstreamBlocked(
            "Copilot does not serve chat to this server's IP address or region (chat-service-unavailable). "
            f"Use a proxy in a region where copilot.microsoft.com works (HTTPS_PROXY).{said}"
        )
    if code == "invalid-event":  # Windows-Copilot-API #8: after a challenge, or a `send` too early
        return UpstreamProtocolError(f"Copilot rejected an event the gateway sent (invalid-event); its protocol may have changed.{said}")
    return UpstreamError(f"Copilot ended the turn with error {code!r}.{said}")
