"""Read one Copilot turn out of its chat-socket events: pure, no sockets.

Each server event becomes a Step: events to hand on and frames to send back. The
2026 rules public clients agree on (see the README's protocol section):
- the server speaks first; nothing is sent before the first `connected`, and a
  second `connected` changes nothing;
- an empty challenge (`method: null`) is acknowledged with an empty token and the
  turn goes on: re-sending `send` on a live turn is what gets `invalid-event`;
- a `hashcash` or `copilot` challenge holds the `send` back: answer it, then re-send
  the `send` once;
- `modeSelected` abandons the message (it ends with an empty `done`): re-send the
  `send` with that mode once, and its answer is the turn's.
"""
from __future__ import annotations

import json
import logging

from ...errors import CaptchaRequired, UpstreamError, UpstreamProtocolError
from ..engine import Step
from ..events import Citation, Delta, Event, Finish, Progress, Reasoning, Source
from ..failures import BROWSER_FIX, for_code
from . import challenges

log = logging.getLogger(__name__)

CHAT = "Copilot's chat socket"
REWRITE = "Copilot rewrote its answer mid-stream"
CLOUDFLARE = f"Copilot asks for a Cloudflare browser check, which a server cannot pass: {BROWSER_FIX['copilot']}"


def parse_frame(message: str) -> dict:
    """One Copilot event; raises UpstreamProtocolError when it is not a JSON object."""
    try:
        frame = json.loads(message)
    except ValueError as exc:
        raise UpstreamProtocolError(f"{CHAT} sent a message that is not JSON.") from exc
    if not isinstance(frame, dict):
        raise UpstreamProtocolError(f"{CHAT} sent a JSON message that is not an event object.")
    return frame


def encode(frame: dict) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


class CopilotTracker:
    """Turns one turn's server events into Steps; `opening` goes out before `send`."""

    def __init__(self, send: dict, opening: tuple[dict, ...] = ()) -> None:
        self.opened = False  # the first `connected` came and the question went out
        self.sent = ""  # answer text already handed on
        self._send = send
        self._opening = opening
        self._answer_id: str | None = None
        self._part_id: str | None = None
        self._part_text = ""
        self._parts: set[str] = set()
        self._suggestions: tuple[str, ...] = ()
        self._filtered = ""  # why the answer ends as content_filter, if it does
        self._resent = False  # the `send` was re-sent after a challenge
        self._new_mode: str | None = None  # modeSelected: re-send with this mode
        self._image_prompt = ""
        self._after_image = False

    def on_event(self, frame: dict) -> Step:
        """The Step for one server event; raises a BingoError for errors and hopeless challenges."""
        kind = frame.get("event")
        if kind == "connected":
            return self._on_connected()
        if kind in ("error", "chatMessageError"):
            raise for_code(frame)
        if not self.opened:
            log.debug("%s: %r before connected, ignored", CHAT, kind)
            return Step()
        handler = _HANDLERS.get(str(kind))
        # received, partCompleted, titleUpdate, toolExecuting, ping, pong, ...: a `ping`
        # event gets no answer; a frame Copilot does not expect could be `invalid-event`,
        # and websocket-level pings are answered by websocket-client itself.
        if handler is None:
            log.debug("%s: nothing to relay in a %r event", CHAT, kind)
            return Step()
        return handler(self, frame)

    def _on_connected(self) -> Step:
        if self.opened:
            return Step()  # the second `connected`: replaying the burst would be a second send
        self.opened = True
        return Step(replies=[encode(frame) for frame in (*self._opening, self._send)])

    def _on_text(self, frame: dict) -> Step:
        text = frame.get("text")
        if not isinstance(text, str) or self._foreign(frame):
            return Step()
        part_id = str(frame.get("partId", self._part_id or ""))
        replace = frame.get("event") == "replaceText"
        if part_id != self._part_id:
            if replace and part_id in self._parts:
                return Step(self._filter(REWRITE))  # an earlier part: streamed, cannot be unsent
            self._part_id, self._part_text = part_id, ""
            self._parts.add(part_id)
        if replace:  # restates the part; only an extension of what was sent can be relayed
            if not text.startswith(self._part_text):
                return Step(self._filter(REWRITE))
            text = text[len(self._part_text):]
        self._part_text += text
        if self._after_image and text and not text.startswith("\n"):
            text = "\n\n" + text
        self._after_image = self._after_image and not text
        return Step(self._emit(text))

    def _on_reasoning(self, frame: dict) -> Step:
        text = frame.get("text")
        return Step([Reasoning(text)]) if isinstance(text, str) and text else Step()

    def _on_citation(self, frame: dict) -> Step:
        url = frame.get("url")
        if not isinstance(url, str) or not url or self._filtered:
            return Step()
        return Step([Citation(Source(str(frame.get("title") or url), url))])

    def _on_generating_image(self, frame: dict) -> Step:
        self._image_prompt = str(frame.get("prompt") or "")
        return Step([Progress("generatingImage", self._image_prompt)])

    def _on_image(self, frame: dict) -> Step:
        url = frame.get("url")
        if not isinstance(url, str) or not url:
            return Step()
        alt = _escape(self._image_prompt or "image")
        before = "\n\n" if self.sent and not self.sent.endswith("\n") else ""
        self._after_image = True
        return Step(self._emit(f"{before}![{alt}]({url.replace(')', '%29')})"))

    def _on_mode_selected(self, frame: dict) -> Step:
        mode = frame.get("mode")
        if isinstance(mode, str) and mode and self._new_mode is None and not self.sent:
            self._new_mode = mode
        return Step()

    def _on_start(self, frame: dict) -> Step:
        if isinstance(frame.get("messageId"), str):
            self._answer_id = frame["messageId"]  # `received` carries the user message's id
        return Step()

    def _on_suggestions(self, frame: dict) -> Step:
        self._suggestions = tuple(_suggestions(frame.get("suggestions")))
        return Step()

    def _on_done(self, frame: dict) -> Step:
        if self._foreign(frame):
            return Step()  # the end of another message than the answer
        if self._new_mode and not self.sent:
            # The abandoned message's empty done: ask again in the mode Copilot chose.
            self._send = {**self._send, "mode": self._new_mode}
            self._new_mode, self._answer_id = "", None  # "" : switched once already
            return Step(replies=[encode(self._send)])
        return Step([self._finish()], done=True)

    def _on_challenge(self, frame: dict) -> Step:
        method = frame.get("method")
        log.info("%s posed a %s challenge", CHAT, str(method)[:40] if method else "null")
        if method is None:
            # An acknowledgement Copilot asks for mid-turn: answer, and never re-send.
            return Step(replies=[encode(self._challenge_response(frame, ""))])
        if self._resent:
            raise CaptchaRequired(f"{CHAT} challenged the question again after it was answered: {BROWSER_FIX['copilot']}")
        token = _solve(method, frame.get("parameter"))
        self._resent = True
        return Step(replies=[encode(self._challenge_response(frame, token)), encode(self._send)])

    @staticmethod
    def _challenge_response(frame: dict, token: str) -> dict[str, object]:
        # The id is opaque ("0.0001", "1"): echoed exactly as received, never re-typed.
        return {"event": "challengeResponse", "token": token, "method": frame.get("method"), "id": frame.get("id")}

    def _foreign(self, frame: dict) -> bool:
        """An event of another message than the answer started by `startMessage`."""
        message_id = frame.get("messageId")
        return self._answer_id is not None and message_id is not None and message_id != self._answer_id

    def _emit(self, new: str) -> list[Event]:
        if self._filtered or not new:
            return []
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
        return Finish(reason, (), self._suggestions, self._filtered)


_HANDLERS = {
    "appendText": CopilotTracker._on_text,
    "replaceText": CopilotTracker._on_text,
    "chainOfThought": CopilotTracker._on_reasoning,
    "citation": CopilotTracker._on_citation,
    "generatingImage": CopilotTracker._on_generating_image,
    "imageGenerated": CopilotTracker._on_image,
    "modeSelected": CopilotTracker._on_mode_selected,
    "startMessage": CopilotTracker._on_start,
    "startResponse": CopilotTracker._on_start,
    "suggestedFollowups": CopilotTracker._on_suggestions,
    "done": CopilotTracker._on_done,
    "challenge": CopilotTracker._on_challenge,
}


def _solve(method: object, parameter: object) -> str:
    """The token for a challenge a server can answer; raises for the others."""
    try:
        if method == "hashcash":
            return challenges.solve_hashcash(parameter)
        if method == "copilot":
            return challenges.solve_arithmetic(parameter)
    except challenges.TooHard as exc:
        raise CaptchaRequired(f"{CHAT} posed a {method} challenge this gateway will not spend the CPU on ({exc}). Try again later.") from exc
    except challenges.Unsolvable as exc:
        raise UpstreamProtocolError(f"{CHAT} sent a {method} challenge this gateway cannot read: {exc}.") from exc
    if method == "cloudflare":
        raise CaptchaRequired(CLOUDFLARE)
    raise CaptchaRequired(f"Copilot asks for a {str(method)[:40]!r} challenge this gateway cannot answer: {BROWSER_FIX['copilot']}")


def _suggestions(raw: object) -> list[str]:
    items = raw if isinstance(raw, list) else []
    return [s if isinstance(s, str) else s["text"] for s in items
            if isinstance(s, str) or (isinstance(s, dict) and isinstance(s.get("text"), str))]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")

