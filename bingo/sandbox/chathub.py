"""The Sydney ChatHub side: one SignalR JSON-hub websocket session.

Reads RS-terminated records (buffering records cut across messages), answers the
handshake, echoes and sends pings, and hands each `chat` invocation to the worker,
which plays the turn script from `script.py`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from websockets.sync.server import ServerConnection

from . import records as rec
from .directives import CHATHUB_TURN, HANDSHAKE, Plan, parse_directives, plan_from
from .framing import RecordBuffer, encode_message, encode_record, split_message
from .messages import TurnContext, new_id
from .registry import Conversation
from .script import error_final, turn_steps
from .session import Session
from .state import State
from .steps import Send

log = logging.getLogger(__name__)

READ_SLICE = 1.0  # seconds; the reader wakes at least this often to check for pings


class ChatHubSession(Session):
    """One `/sydney/ChatHub` connection; `bound` is the token's conversation (None: legacy)."""

    def __init__(
        self, conn: ServerConnection, state: State, bound: Conversation | None
    ) -> None:
        self.bound = bound
        self.buffer = RecordBuffer()
        self.handshaken = False
        self.next_ping: float | None = None  # monotonic time of the next server ping
        super().__init__(conn, state)

    def serve(self) -> None:
        """Read until the client or a fault closes the socket."""
        while not self.closed.is_set():
            message = self.receive(self._until_ping())
            if message is None:
                self._maybe_ping()
                continue
            try:
                raws = self.buffer.feed(message)
            except ValueError:
                return self._hub_error("Connection closed with an error.")
            for raw in raws:
                self._on_record(raw)

    def _until_ping(self) -> float:
        if self.next_ping is None or self.silent:
            return READ_SLICE
        return min(READ_SLICE, max(0.0, self.next_ping - time.monotonic()))

    def _maybe_ping(self) -> None:
        """Bing pinged every few seconds on an idle or busy socket; clients echo it."""
        if (
            self.next_ping is not None
            and not self.silent
            and time.monotonic() >= self.next_ping
        ):
            self.send(encode_record(rec.PING))
            self.next_ping = time.monotonic() + self.state.options.ping_interval

    def _on_record(self, raw: str) -> None:
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            self.record({"unparsed": raw})
            return self._hub_error("Connection closed with an error.")
        self.record(record)
        if not self.handshaken:
            return self._on_handshake(record)
        kind = record.get("type")
        if kind == 6 and not self.silent:
            self.send(encode_record(rec.PING))
        elif kind == 4:
            self.submit(lambda: self._play_invocation(record))
        elif kind == 7:
            self.conn.close()

    def _on_handshake(self, record: dict[str, Any]) -> None:
        if record.get("protocol") != "json" or record.get("version") != 1:
            self.send(encode_record({"error": "Handshake was canceled."}))
            return self.close(1000)
        self.handshaken = True
        if self.state.faults.take(HANDSHAKE):  # no-handshake-ack: never answer anything
            self.silent = True
            return
        self.send(encode_record(rec.HANDSHAKE_ACK))
        self.next_ping = time.monotonic() + self.state.options.ping_interval

    def _hub_error(self, error: str) -> None:
        """What a SignalR hub does with a record it cannot parse: type 7, then close."""
        if not self.silent:
            self.send(encode_record(rec.hub_close(error)))
        self.close(1000)

    def _play_invocation(self, record: dict[str, Any]) -> None:
        """Worker thread: answer one type-4 record, or refuse it like the hub did."""
        if self.silent:
            return
        invocation_id = record.get("invocationId")
        if record.get("target") != "chat":
            error = f"Unknown hub method '{record.get('target')}'"
            return self.send(encode_record(rec.completion(invocation_id, error)))
        argument = _first_argument(record)
        message = argument.get("message")
        if not isinstance(message, dict):
            message = {}
        prompt = str(message.get("text", ""))
        ctx, plan, refusal = self._prepare(argument, message, invocation_id, prompt)
        steps = error_final(ctx, refusal) if refusal else turn_steps(plan, ctx, prompt)
        rng = random.Random(prompt)  # split points are reproducible per prompt
        self.play(steps, lambda step: self._send_step(step, plan.split, rng))

    def _prepare(
        self,
        argument: dict[str, Any],
        message: dict[str, Any],
        invocation_id: Any,
        prompt: str,
    ) -> tuple[TurnContext, Plan, str | None]:
        """The turn's context and plan, and the outcome that refuses it outright, if any."""
        registry, options = self.state.registry, self.state.options
        conversation = registry.get(argument.get("conversationId"), "chathub")
        turn = registry.count_turn(conversation) if conversation else 0
        plan = plan_from(parse_directives(prompt))
        ctx = TurnContext(
            conversation_id=str(argument.get("conversationId", "")),
            client_id=conversation.client_id if conversation else "",
            invocation_id=invocation_id,
            request_id=str(
                message.get("requestId") or argument.get("requestId") or new_id()
            ),
            message=message,
            turn=turn,
            max_turns=options.max_turns,
            started=datetime.now(timezone.utc),
        )
        if conversation is None:
            return ctx, plan, "invalid-session"
        if not self._authorised(conversation, argument):
            return ctx, plan, "unauthorized"
        # Only a turn that is let in consumes a queued fault.
        plan = plan_from(parse_directives(prompt), self.state.faults.take(CHATHUB_TURN))
        if "nosearchall" in (argument.get("optionsSets") or []):
            plan = replace(plan, search=False)
        if turn > options.max_turns:
            plan = replace(plan, outcome="turn-limit", outcome_value=None)
        return ctx, plan, None

    def _authorised(self, conversation: Conversation, argument: dict[str, Any]) -> bool:
        """A token opens only its own conversation; a legacy socket needs the body signature."""
        if self.bound is not None:
            return self.bound is conversation
        return (
            conversation.legacy
            and argument.get("conversationSignature") == conversation.signature
        )

    def _send_step(self, step: Send, split: bool, rng: random.Random) -> None:
        if split:
            self.send(*split_message(step.records, rng))
        else:
            self.send(encode_message(step.records))


def _first_argument(record: dict[str, Any]) -> dict[str, Any]:
    """`arguments[0]` of an invocation, or {} when the client sent something else."""
    arguments = record.get("arguments")
    first = arguments[0] if isinstance(arguments, list) and arguments else None
    return first if isinstance(first, dict) else {}
