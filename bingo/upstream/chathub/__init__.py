"""The Bing ChatHub protocol adapter (the retired Sydney hub; mirrors still speak it).

Create a conversation over REST, open the hub, handshake, send the `chat` invocation,
read cumulative updates until the type-2 final. Pure protocol: the engine owns the
sockets and the clocks. Record interpretation lives in `answer.py`, framing in
`signalr.py`, the invocation in `invocation.py`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import quote

from ...config import BROWSER_USER_AGENT, Settings
from ...errors import UpstreamBlocked, UpstreamError, UpstreamProtocolError, UpstreamUnavailable
from ...prompt import Prompt, fold_messages
from ..engine import Opening, Step
from ..events import TurnRequest
from ..failures import for_result
from ..transport import http_json
from . import signalr
from .answer import AnswerTracker
from .invocation import build_invocation

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
    """GET the create URL; raises the failure table's error with Bing's message."""
    headers = browser_headers(settings)
    headers["Accept"] = "application/json"
    reply = http_json(settings, "chathub", "GET", settings.create_url, headers, CREATE)
    if not isinstance(reply.body, dict):
        raise UpstreamBlocked(
            f"{CREATE} returned an empty or non-JSON body: Bing says 'your network settings are preventing "
            "access to this feature' this way. Use a proxy in a supported region (HTTPS_PROXY), or refresh BING_COOKIE."
        )
    result = reply.body.get("result")
    result = result if isinstance(result, dict) else {}
    if result.get("value", "Success") != "Success":
        raise for_result(str(result.get("value")), str(result.get("message") or ""))
    return _conversation(reply.body, reply.headers)


def _conversation(body: dict, headers: object) -> Conversation:
    get = headers.get  # type: ignore[attr-defined]  # requests' case-insensitive dict
    encrypted = get("X-Sydney-Encryptedconversationsignature") or ""
    signature = get("X-Sydney-Conversationsignature") or body.get("conversationSignature") or ""
    conversation_id, client_id = body.get("conversationId"), body.get("clientId")
    if not isinstance(conversation_id, str) or not conversation_id or not (encrypted or signature):
        raise UpstreamProtocolError(f"{CREATE} answered without a conversation id or signature.")
    return Conversation(conversation_id, str(client_id or ""), str(signature), str(encrypted))


def browser_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "User-Agent": BROWSER_USER_AGENT,
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


class ChatHubAdapter:
    """One ChatHub turn as the engine drives it."""

    upstream = "chathub"
    what = HUB

    def __init__(self, settings: Settings, request: TurnRequest) -> None:
        self._settings = settings
        self._request = request
        self._prompt: Prompt = fold_messages(request.messages, settings.history_chars)
        self._records = signalr.RecordBuffer()
        self._tracker = AnswerTracker()
        self._conversation: Conversation | None = None
        self._pinged_at = time.monotonic()
        self._opened = False

    @property
    def opened(self) -> bool:
        return self._opened

    def create(self) -> Opening:
        self._conversation = create_conversation(self._settings)
        return Opening(hub_url(self._settings, self._conversation), browser_headers(self._settings))

    def greeting(self) -> list[str]:
        return [signalr.HANDSHAKE]

    def feed(self, message: str) -> Step:
        step = Step()
        for record in self._records.feed(message):
            if not self._opened:
                step.replies += self._on_handshake(record)
            elif self._on_record(record, step):
                step.done = True
                break
        return step

    def _on_handshake(self, record: dict) -> list[str]:
        """The first record must be the empty ack; then the question goes out."""
        if record != {}:
            raise UpstreamProtocolError(f"{HUB} answered the handshake with something other than an ack.")
        assert self._conversation is not None, "create() runs before the handshake"
        self._opened = True
        invocation = build_invocation(self._conversation, self._request.model, self._prompt, self._settings)
        return [signalr.PING, signalr.encode_record(invocation)]

    def _on_record(self, record: dict, step: Step) -> bool:
        """Add one record's events and replies to `step`; True when it ends the turn."""
        kind = record.get("type")
        if kind == signalr.INVOCATION and record.get("target") == "update":
            arguments = record.get("arguments")
            first = arguments[0] if isinstance(arguments, list) and arguments else None
            step.events += self._tracker.on_update(first if isinstance(first, dict) else {})
            return False
        if kind == signalr.STREAM_ITEM:
            item = record.get("item")
            step.events += self._tracker.on_final(item if isinstance(item, dict) else {})
            return True
        if kind == signalr.PING_TYPE:
            step.replies += self._answer_ping()
        elif kind == signalr.COMPLETION:
            raise UpstreamError(f"{HUB} completed the call without a result{_said(record)}.")
        elif kind == signalr.CLOSE:
            raise UpstreamUnavailable(f"{HUB} closed the connection{_said(record)}.")
        return False

    def _answer_ping(self) -> list[str]:
        # Clients echo the hub's pings (EdgeGPT, bingo); a hub that also echoes ours
        # would ping-pong forever, so answer at most once per PING_INTERVAL.
        if time.monotonic() - self._pinged_at < PING_INTERVAL:
            return []
        self._pinged_at = time.monotonic()
        return [signalr.PING]


def _said(record: dict) -> str:
    error = str(record.get("error") or "").rstrip(".")
    return f": {error}" if error else ""
