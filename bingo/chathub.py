"""The Bing ChatHub client: create a conversation, open the hub, ask, read the answer.

Synchronous on the calling thread (a gunicorn gthread worker), one fresh conversation
per request. Wire details follow the protocol notes (shared/protocol/bing-chathub.md);
record interpretation lives in `answer.py`, framing in `signalr.py`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import websocket

from . import signalr
from .answer import AnswerTracker, result_error
from .config import Settings
from .errors import (
    UpstreamBlocked,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .events import Event, TurnRequest
from .invocation import build_invocation
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

PING_INTERVAL = 5.0  # seconds; SignalR servers drop clients silent for 30 s
CREATE = "Bing's conversation create"
HUB = "Bing's ChatHub"


@dataclass(frozen=True)
class Conversation:
    id: str
    client_id: str
    signature: str = field(repr=False)  # X-Sydney-Conversationsignature (or the body's)
    encrypted_signature: str = field(repr=False)  # X-Sydney-Encryptedconversationsignature


def create_conversation(settings: Settings) -> Conversation:
    """GET the create URL; raises UpstreamRejected/Unavailable with Bing's message."""
    headers = _browser_headers(settings)
    headers["Accept"] = "application/json"
    response, body = http_json(settings, "GET", settings.create_url, headers, CREATE)
    if not response.ok:
        raise UpstreamUnavailable(f"{CREATE} answered HTTP {response.status_code}.") if response.status_code >= 500 else UpstreamRejected(
            f"{CREATE} answered HTTP {response.status_code}: check BING_COOKIE and that this server's IP may use Bing Chat."
        )
    if not isinstance(body, dict):
        raise UpstreamBlocked(
            f"{CREATE} returned an empty or non-JSON body: Bing says 'your network settings are preventing "
            "access to this feature' this way. Use a proxy in a supported region (HTTPS_PROXY), or refresh BING_COOKIE."
        )
    result = body.get("result")
    result = result if isinstance(result, dict) else {}
    if result.get("value", "Success") != "Success":
        raise result_error(str(result.get("value")), str(result.get("message") or ""))
    return _conversation(body, response.headers)


def _conversation(body: dict, headers: object) -> Conversation:
    get = headers.get  # type: ignore[attr-defined]  # requests' case-insensitive dict
    encrypted = get("X-Sydney-Encryptedconversationsignature") or ""
    signature = get("X-Sydney-Conversationsignature") or body.get("conversationSignature") or ""
    conversation_id, client_id = body.get("conversationId"), body.get("clientId")
    if not isinstance(conversation_id, str) or not conversation_id or not (encrypted or signature):
        raise UpstreamProtocolError(f"{CREATE} answered without a conversation id or signature.")
    return Conversation(conversation_id, str(client_id or ""), str(signature), str(encrypted))


def _browser_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "User-Agent": USER_AGENT,
        "Accept-Language": f"{settings.locale},{settings.locale.split('-')[0]};q=0.9",
        "Origin": "https://www.bing.com",
        "Referer": "https://www.bing.com/search?q=Bing+AI&showconv=1",
        "x-ms-useragent": "azsdk-js-api-client-factory/1.0.0-beta.1 core-rest-pipeline/1.12.3 OS/Windows",
    }
    if settings.bing_cookie:
        headers["Cookie"] = settings.bing_cookie
    return headers


def hub_url(settings: Settings, conversation: Conversation) -> str:
    """The websocket URL; the encrypted signature is the access token since Oct 2023."""
    if not conversation.encrypted_signature:
        return settings.chathub_url  # the pre-2023 shape: the signature goes in the call
    separator = "&" if "?" in settings.chathub_url else "?"
    return f"{settings.chathub_url}{separator}sec_access_token={quote(conversation.encrypted_signature, safe='')}"


def open_chathub_turn(settings: Settings, request: TurnRequest) -> ChatHubTurn:
    """Create a conversation, open the hub, handshake and send the question."""
    conversation = create_conversation(settings)
    ws = open_websocket(settings, hub_url(settings, conversation), _browser_headers(settings), HUB)
    with closed_on_failure(ws):
        turn = ChatHubTurn(ws, settings, request)
        turn.start(build_invocation(conversation, request, settings))
    return turn


class ChatHubTurn:
    """One question on an open hub socket; `events()` reads its answer."""

    def __init__(self, ws: websocket.WebSocket, settings: Settings, request: TurnRequest) -> None:
        self._ws = ws
        self._settings = settings
        self._reader = FrameReader(ws, Deadlines.start(settings), request.watch, HUB)
        self._records = signalr.RecordBuffer()
        self._early: list[dict] = []  # records that arrived together with the handshake ack
        self._tracker = AnswerTracker()
        self._pinged_at = time.monotonic()

    def start(self, invocation: dict) -> None:
        """Handshake, then send the chat invocation; raises if the hub never acks."""
        send_json(self._ws, signalr.HANDSHAKE, HUB)
        ack = self._read_handshake_ack()
        self._early = ack
        send_json(self._ws, signalr.PING, HUB)
        send_json(self._ws, signalr.encode_record(invocation), HUB)

    def _read_handshake_ack(self) -> list[dict]:
        while True:
            message = self._reader.next(self._settings.connect_timeout)
            if message is None:
                raise UpstreamTimeout(f"{HUB} did not acknowledge the handshake within {self._settings.connect_timeout:g} s.")
            records = self._records.feed(message)
            if records:
                if records[0] != {}:
                    raise UpstreamProtocolError(f"{HUB} answered the handshake with something other than an ack.")
                return records[1:]

    def events(self) -> Iterator[Event]:
        """Yield the answer's events, None on keep-alive ticks, then one Finish."""
        pending = self._early
        while True:
            for record in pending:
                events, finished = self._on_record(record)
                if events:
                    self._reader.touch()
                    yield from events
                if finished:
                    return
            message = self._reader.next(self._settings.keepalive_seconds)
            if message is None:
                yield None
                pending = []
            else:
                pending = self._records.feed(message)

    def _on_record(self, record: dict) -> tuple[list[Event], bool]:
        kind = record.get("type")
        if kind == signalr.INVOCATION and record.get("target") == "update":
            arguments = record.get("arguments")
            first = arguments[0] if isinstance(arguments, list) and arguments else None
            return self._tracker.on_update(first if isinstance(first, dict) else {}), False
        if kind == signalr.STREAM_ITEM:
            item = record.get("item")
            return self._tracker.on_final(item if isinstance(item, dict) else {}), True
        if kind == signalr.PING_TYPE:
            self._answer_ping()
        elif kind == signalr.COMPLETION:
            raise UpstreamError(f"{HUB} completed the call without a result{_said(record)}.")
        elif kind == signalr.CLOSE:
            raise UpstreamUnavailable(f"{HUB} closed the connection{_said(record)}.")
        return [], False

    def _answer_ping(self) -> None:
        # Clients echo the hub's pings (EdgeGPT, bingo); a hub that also echoes ours
        # would ping-pong forever, so answer at most once per PING_INTERVAL.
        if time.monotonic() - self._pinged_at >= PING_INTERVAL:
            self._pinged_at = time.monotonic()
            send_json(self._ws, signalr.PING, HUB)

    def close(self) -> None:
        close_websocket(self._ws)


def _said(record: dict) -> str:
    error = str(record.get("error") or "").rstrip(".")
    return f": {error}" if error else ""
