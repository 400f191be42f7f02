"""Read Copilot's answer out of its chat-socket events: pure, no sockets.

Each server event becomes a Step: events to hand on (Delta, Progress, Finish) and
frames to send back (challenge responses, pongs). Event names and quirks follow the
protocol notes 6.2 and the captures in shared/captures/*.copilot.jsonl.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from . import hashcash
from .errors import (
    BingoError,
    CaptchaRequired,
    UpstreamBlocked,
    UpstreamError,
    UpstreamProtocolError,
)
from .events import Delta, Event, Finish, Progress, Source

log = logging.getLogger(__name__)

CHAT = "Copilot's chat socket"
MAX_CHALLENGES = 3  # a server that challenges every re-sent `send` would loop forever
REWRITE = "Copilot rewrote its answer mid-stream"
BROWSER_FIX = "open copilot.microsoft.com in a browser on this network, chat once, then refresh COPILOT_COOKIE from it."
CLOUDFLARE = f"Copilot asks for a Cloudflare browser check, which a server cannot pass: {BROWSER_FIX}"


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
