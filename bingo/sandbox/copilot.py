"""The Copilot side: one `/c/api/chat` websocket session (plain JSON events, no RS).

Enforces the order a browser keeps (setOptions and reportLocalConsents before
send), poses challenges and holds the `send` until they are answered, then
hands the turn to the worker, which plays `copilot_script.py`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from websockets.sync.server import ServerConnection

from .challenge import METHODS, Challenge, accepts, make_challenge
from .copilot_script import copilot_steps, error_event
from .directives import COPILOT_TURN, Plan, parse_directives, plan_from
from .session import Session
from .state import State
from .steps import Send

log = logging.getLogger(__name__)

READ_SLICE = 1.0
_UNCOUNTED = frozenset({"error", "challenge"})  # captured without the `id` counter


class CopilotSession(Session):
    """One Copilot chat socket; several turns may follow one another on it."""

    def __init__(self, conn: ServerConnection, state: State) -> None:
        self.counter = 0
        self.ready = {"setOptions": False, "reportLocalConsents": False}
        self.challenge: Challenge | None = None  # posed and not yet answered
        self.held: Plan | None = None  # the plan of a send waiting for its challenge
        self.challenges = 0
        super().__init__(conn, state)

    def serve(self) -> None:
        self.emit({"event": "connected", "requestId": str(uuid.uuid4())})
        while not self.closed.is_set():
            message = self.receive(READ_SLICE)
            if message is not None:
                self._on_message(message)

    def emit(self, event: dict[str, Any]) -> None:
        """Send one event, numbering it like the service does ("0", "1", ...)."""
        with self.send_lock:
            if event["event"] not in _UNCOUNTED:
                event = {**event, "id": str(self.counter)}
                self.counter += 1
            self.send(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    def _on_message(self, message: str) -> None:
        try:
            event = json.loads(message)
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            self.record({"unparsed": message})
            return self._refuse()
        self.record(event)
        kind = event.get("event")
        if self.silent:
            return
        if kind == "ping":
            self.emit({"event": "pong"})
        elif kind in self.ready:
            self.ready[kind] = True
        elif kind == "challengeResponse":
            self._on_challenge_response(event)
        elif kind == "send":
            self._on_send(event)
        else:
            self._refuse()

    def _refuse(self) -> None:
        self.emit(error_event("invalid-event"))

    def _on_challenge_response(self, event: dict[str, Any]) -> None:
        if self.challenge is None or not accepts(self.challenge, event):
            return self._refuse()
        self.challenge = None  # passed: the client now re-sends its held `send`

    def _on_send(self, event: dict[str, Any]) -> None:
        if not all(self.ready.values()):
            # Windows-Copilot-API: a send before setOptions gets invalid-event.
            return self._refuse()
        if self.challenge is not None:
            return  # issue #13: a send while a challenge is open gets silence
        conversation_id, prompt = event.get("conversationId"), _prompt(event)
        if (
            self.state.registry.get(conversation_id, "copilot") is None
            or prompt is None
        ):
            return self._refuse()
        plan, self.held = self.held, None
        if plan is None:
            queued = self.state.faults.take(COPILOT_TURN)
            plan = plan_from(parse_directives(prompt), queued, allowed=COPILOT_TURN)
        if plan.outcome in METHODS:
            return self._pose(plan)
        mode = str(event.get("mode") or "chat")
        steps = copilot_steps(plan, str(conversation_id), prompt, mode)
        self.submit(lambda: self.play(steps, self._send_step))

    def _pose(self, plan: Plan) -> None:
        """Ask for a challenge and keep the plan (without it) for the re-sent send."""
        self.challenges += 1
        self.challenge = make_challenge(str(plan.outcome), self.challenges)
        self.held = replace(plan, outcome=None, outcome_value=None)
        self.emit(self.challenge.event())

    def _send_step(self, step: Send) -> None:
        for event in step.records:
            if isinstance(
                event, Mapping
            ):  # Copilot scripts hold events, never raw text
                self.emit(dict(event))


def _prompt(event: dict[str, Any]) -> str | None:
    """The text part of `content`, or None when the send carries no text."""
    content = event.get("content")
    if not isinstance(content, list):
        return None
    texts = [
        p.get("text")
        for p in content
        if isinstance(p, dict) and p.get("type") == "text"
    ]
    return texts[0] if texts and isinstance(texts[0], str) else None
