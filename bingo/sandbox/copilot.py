"""The Copilot side: one `/c/api/chat` websocket session (plain JSON events, no RS).

Speaks Copilot as public clients found it in 2026 (protocol note copilot-2026,
sections 3.5-3.9): the server says `connected` first and refuses anything sent
before it; a second `send` on a live turn is `invalid-event` and kills that
turn; the empty challenge is posed mid-turn and nothing waits for it, while
hashcash and `copilot` challenges hold the `send` until solved and re-sent;
`modeSelected` waits for a re-send in the chosen mode. setOptions and
reportLocalConsents are accepted but not required (the Android app sends
neither); `stop` silently ends the live turn. Turns play on the worker
thread; the reader keeps answering.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from websockets.sync.server import ServerConnection

from .attachments import seen
from .challenge import HASHCASH_BITS, HOLDING, Challenge, accepts, make_challenge
from .copilot_script import copilot_steps, error_event
from .directives import COPILOT_CONNECT, COPILOT_TURN, Plan, parse_directives, plan_from
from .session import Session
from .state import State
from .steps import Send, Step

log = logging.getLogger(__name__)

READ_SLICE = 1.0
WAIT_SLICE = 0.05  # how often a paused turn checks whether it was killed
MAX_TEXT_CHARS = 10_240  # miau README; gpt4free #3107 shows the error for more
FLOOD_EVERY = 0.05  # ping-flood: seconds between pings
FLOOD_MAX = 12_000  # ping-flood stops by itself after this many (10 minutes)
_ACCEPTED = frozenset({"setOptions", "reportLocalConsents"})
_TURN_ENDS = frozenset({"done", "chatMessageError", "error"})


class CopilotSession(Session):
    """One Copilot chat socket; several turns may follow one another on it."""

    def __init__(self, conn: ServerConnection, state: State) -> None:
        self.counter = 0
        self.connected = False  # no client frame is welcome before `connected`
        self.challenge: Challenge | None = None  # the last one posed, not yet answered
        self.held: Plan | None = None  # the plan of a send waiting for its challenge
        self.awaiting: tuple[str, Plan] | None = None  # modeSelected: (mode, plan)
        self.live: threading.Event | None = None  # set = kill the live turn
        self.challenges = 0
        super().__init__(conn, state)

    def serve(self) -> None:
        self._greet(self.state.faults.take(COPILOT_CONNECT))
        while not self.closed.is_set():
            message = self.receive(READ_SLICE)
            if message is not None:
                self._on_message(message)

    def _greet(self, fault: tuple[str, str | None] | None) -> None:
        """Say `connected` (id "0"), unless a connect fault changes that."""
        name, value = fault or (None, None)
        if name == "no-connected":
            self.silent = True  # the client's deadline is what is under test
            return
        deadline = time.monotonic() + float(value or 0)
        while name == "connected-delay" and not self.closed.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = self.receive(min(READ_SLICE, remaining))
            if message is not None:
                self._on_message(message)  # refused: not connected yet
        for _ in range(2 if name == "connected-twice" else 1):
            self.emit({"event": "connected", "requestId": secrets.token_hex(16)})
        self.connected = True

    def emit(self, event: dict[str, Any]) -> None:
        """Send one event, numbering it like the service does ("0", "1", ...).

        Not numbered, as captured: challenges (they carry their own id) and
        `invalid-event` errors (WCA #8). Other errors are (gpt4free #3107: id "1").
        """
        with self.send_lock:
            if (
                event["event"] != "challenge"
                and event.get("errorCode") != "invalid-event"
            ):
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
        if not self.connected:
            self._refuse()
        elif kind == "ping":
            self.emit({"event": "pong"})
        elif kind == "challengeResponse":
            self._on_challenge_response(event)
        elif kind == "send":
            self._on_send(event)
        elif kind == "stop":
            self._kill_live()  # opentabs sends it to abort; nothing comes back
        elif kind not in _ACCEPTED:
            self._refuse()

    def _refuse(self) -> None:
        self.emit(error_event("invalid-event"))

    def _kill_live(self) -> bool:
        """Stop the live turn, if any; True when there was one."""
        with self.send_lock:
            live, self.live = self.live, None
            if live is None:
                return False
            live.set()
            self.awaiting = None  # a killed turn selects no mode
            return True

    def _on_challenge_response(self, event: dict[str, Any]) -> None:
        with self.send_lock:
            if self.challenge is None or not accepts(self.challenge, event):
                return self._refuse()
            self.challenge = None  # passed: a held `send` may now be re-sent

    def _on_send(self, event: dict[str, Any]) -> None:
        with self.send_lock:
            if self._kill_live():
                # CG-2026-09: a second send on a live turn kills the reply.
                return self._refuse()
            if self.challenge is not None and self.challenge.method is not None:
                return  # WCA #13: a send while a challenge is open gets silence
        conversation_id, prompt = event.get("conversationId"), _prompt(event)
        if (
            self.state.registry.get(conversation_id, "copilot") is None
            or prompt is None
        ):
            return self._refuse()
        if len(prompt) > MAX_TEXT_CHARS:
            return self.emit(error_event("text-too-long"))
        if self.state.accounts.throttles(conversation_id):  # accounts.py: throttle-event
            return self.emit(error_event("too-many-messages"))
        mode = str(event.get("mode") or "chat")
        plan = self._plan_for(prompt, mode)
        if plan is None:
            return self._refuse()
        if plan.outcome in HOLDING:
            return self._pose(plan)
        if plan.mode_selected is not None:
            self.awaiting = (plan.mode_selected, replace(plan, mode_selected=None))
        # Image parts (uploaded to /c/api/attachments) are described ahead of the text.
        seen_prompt = seen(self.state.attachments, event.get("content"), prompt)
        steps = copilot_steps(plan, str(conversation_id), seen_prompt, mode)
        self._start(plan, steps)

    def _plan_for(self, prompt: str, mode: str) -> Plan | None:
        """The re-sent send's kept plan, or a new one; None if the mode is wrong."""
        if self.awaiting is not None:
            selected, plan = self.awaiting
            if mode != selected:
                return None  # foxroute: only a send in the selected mode is answered
            self.awaiting = None
            return plan
        if self.held is not None:
            plan, self.held = self.held, None
            return plan
        queued = self.state.faults.take(COPILOT_TURN)
        return plan_from(parse_directives(prompt), queued, allowed=COPILOT_TURN)

    def _pose(self, plan: Plan) -> None:
        """Ask for a challenge and keep the plan (without it) for the re-sent send."""
        bits = int(plan.outcome_value) if plan.outcome_value else None
        self.held = replace(plan, outcome=None, outcome_value=None)
        self._post_challenge(str(plan.outcome), bits)

    def _post_challenge(self, fault: str, bits: int | None = None) -> None:
        with self.send_lock:
            self.challenges += 1
            self.challenge = make_challenge(
                fault, self.challenges, bits or HASHCASH_BITS
            )
            self.emit(self.challenge.event())

    def _start(self, plan: Plan, steps: list[Step]) -> None:
        """Make the turn live (from now on a second send kills it) and queue it."""
        live = threading.Event()
        with self.send_lock:
            self.live = live
        if plan.outcome == "ping-flood":
            self.submit(lambda: self._flood(live))
        else:
            self.submit(lambda: self._play(steps, live))

    def _play(self, steps: list[Step], live: threading.Event) -> None:
        """Perform a turn's script until it ends, the socket closes or the turn is killed."""

        def send(step: Send) -> bool:
            # Copilot scripts hold events, never raw text.
            events = [dict(e) for e in step.records if isinstance(e, Mapping)]
            return all(self._emit_turn(event, live) for event in events)

        self.play(steps, send, lambda seconds: self._wait(seconds, live))

    def _emit_turn(self, event: dict[str, Any], live: threading.Event) -> bool:
        """Send one turn event unless the turn was killed; False means stop playing."""
        with self.send_lock:
            if live.is_set():
                return False
            if event["event"] == "challenge":
                self._post_challenge("challenge")  # mid-turn: the turn goes on
                return True
            self.emit(event)
            if event["event"] in _TURN_ENDS and self.live is live:
                self.live = None  # over: a new send is welcome again
            return True

    def _wait(self, seconds: float, live: threading.Event) -> bool:
        """Pause a turn; False once it is killed or the socket closes."""
        deadline = time.monotonic() + seconds
        while not live.is_set() and not self.closed.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            live.wait(min(WAIT_SLICE, remaining))
        return False

    def _flood(self, live: threading.Event) -> None:
        """ping-flood: ping frames and ping events every 50 ms, and never an answer."""
        for _ in range(FLOOD_MAX):
            if not self._wait(FLOOD_EVERY, live):
                return
            with self.send_lock:
                if live.is_set():
                    return
                self.conn.ping()
                self.emit({"event": "ping"})


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
