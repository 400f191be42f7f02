"""Drive one request: open the upstream turn, then collect it or stream it.

One path reads the upstream, two renderers write it. Failures before the first byte
raise (the view turns them into real HTTP statuses); failures after it become one
in-band error event, logged here once. Every path closes the turn. No Flask here.

The keep-alive clock is the time since the last byte written to the client, not
since the last upstream frame: a turn that only reasons or searches still sends a
comment every BINGO_KEEPALIVE_SECONDS, and the first byte of a stream leaves within
one interval of the request's arrival (Heroku wants one within 30 s).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator

from . import sse, wire
from .config import Settings
from .errors import BingoError, ClientDisconnected, log_failure
from .shaping import AnswerShaper
from .upstream import open_turn
from .upstream.events import Citation, ClientWatch, Delta, Event, Finish, Reasoning, Turn, TurnRequest
from .wire import ChatRequest

log = logging.getLogger(__name__)


class KeepAliveClock:
    """When the client must next get a byte: one interval after the last one written."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.due_at = time.monotonic() + seconds

    def wrote(self) -> None:
        self.due_at = time.monotonic() + self.seconds


class Answer:
    """The answer as the client sees it: shaped text, reasoning, and how it ended."""

    def __init__(self, chat: ChatRequest) -> None:
        self._shaper = AnswerShaper(chat.stop)
        self._pieces: list[str] = []  # joined once at the end: no quadratic `+=`
        self._reasoning: list[str] = []
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    def add(self, event: Event) -> tuple[str, str]:
        """Shape one event: (answer text, reasoning text) to send now, either maybe ""."""
        if isinstance(event, Reasoning):
            self._reasoning.append(event.text)
            return "", event.text
        if isinstance(event, Finish):
            piece = self._shaper.finish(event.sources)
            self.finish_reason = "stop" if self._shaper.stopped else event.reason
        elif isinstance(event, Delta):
            piece = self._shaper.feed(event.text)
        elif isinstance(event, Citation):
            piece = self._shaper.cite(event.source)
        else:
            return "", ""  # progress: not answer text
        if self._shaper.stopped:
            self.finish_reason = "stop"
        self._pieces.append(piece)
        return piece, ""


class Exchange:
    """One completions request from the opened turn to the last byte."""

    def __init__(self, chat: ChatRequest, settings: Settings, request_id: str) -> None:
        self.chat = chat
        self.request_id = request_id
        self.clock = KeepAliveClock(settings.keepalive_seconds)
        self._settings = settings
        self._started = time.monotonic()
        self._turn: Turn | None = None
        self._answer = Answer(chat)
        self._ids = wire.new_ids(chat)
        # Every content chunk of a stream differs only in its text: render it once.
        self._content = sse.ContentEvents(
            lambda piece: wire.build_chunk(chat, self._ids, piece), copies=2 if chat.chunk_message and chat.kind == "chat" else 1,
        )

    def open(self, watch: ClientWatch | None) -> None:
        """Open the upstream turn; raises a BingoError before any byte."""
        self._turn = open_turn(self._settings, TurnRequest(self.chat.model, self.chat.messages, watch))

    def close(self) -> None:
        if self._turn is not None:
            self._turn.close()

    def collect(self) -> dict[str, object]:
        """Read the whole turn into one completion body, closing the turn."""
        try:
            while not self._answer.finish_reason:
                event = self._next(math.inf)  # no keep-alives to write: only the turn's bounds
                if event is not None:
                    self._answer.add(event)
        finally:
            self.close()
        self._log("ok")
        answer = self._answer
        return wire.build_completion(self.chat, self._ids, answer.text, answer.finish_reason or "stop", answer.reasoning)

    def stream(self) -> Iterator[str]:
        """Wait up to the first keep-alive for something to show, then the SSE body.

        Errors raised while waiting propagate to the view (a real status), closing
        the turn; the returned generator handles everything after the first byte.
        """
        head = ""
        try:
            while not head and not self._answer.finish_reason:
                event = self._next(self.clock.due_at)
                head = self._render(event) if event is not None else sse.KEEPALIVE
        except BaseException:
            self.close()
            raise
        return self._body(head)

    def _body(self, head: str) -> Iterator[str]:
        outcome = "client gone"  # unless the stream gets to its end or to an error
        try:
            role = wire.build_role_chunk(self.chat, self._ids)
            # The role chunk and what arrived while the view waited leave in one write.
            yield self._wrote((sse.event(role) if role else "") + head)
            while not self._answer.finish_reason:
                text = self._render_ready()
                if text:
                    yield self._wrote(text)
            yield self._wrote(self._closing())
            outcome = "ok"
        except ClientDisconnected:
            pass
        except BingoError as exc:
            outcome = "failed in stream"
            log_failure(exc, self.request_id, streamed=True)
            yield sse.event(exc.to_body())
        except Exception:
            outcome = "crashed in stream"
            log.exception("request %s: stream failed", self.request_id)
            yield sse.event(BingoError("The gateway hit an internal error; see its log.").to_body())
        finally:
            self.close()
            if outcome != "failed in stream":
                self._log(outcome)

    def _render_ready(self) -> str:
        """Render the next event and every one already waiting: one write, not several."""
        event = self._next(self.clock.due_at)
        if event is None:
            return sse.KEEPALIVE
        parts = [self._render(event)]
        while not self._answer.finish_reason and self._ready():
            parts.append(self._render(self._next(self.clock.due_at)))  # ready: never None
        return "".join(parts)

    def _render(self, event: Event | None) -> str:
        """The SSE text for one event: content or reasoning chunks, or ""."""
        if event is None:
            return ""
        text, reasoning = self._answer.add(event)
        out = ""
        if reasoning and self.chat.kind == "chat":
            out = sse.event(wire.build_reasoning_chunk(self.chat, self._ids, reasoning))
        if text:
            out += self._content(text)
        return out

    def _closing(self) -> str:
        closing = sse.event(wire.build_chunk(self.chat, self._ids, None, self._answer.finish_reason))
        if self.chat.include_usage:
            closing += sse.event(wire.build_usage_chunk(self.chat, self._ids, self._answer.text))
        return closing + sse.DONE

    def _next(self, wake_at: float) -> Event | None:
        assert self._turn is not None, "open() runs first"
        return self._turn.next(wake_at)

    def _ready(self) -> bool:
        ready = getattr(self._turn, "ready", None)
        return bool(ready and ready())

    def _wrote(self, text: str) -> str:
        self.clock.wrote()
        return text

    def _log(self, outcome: str) -> None:
        answer = self._answer
        log.info(
            "request %s turn model=%r upstream=%s stream=%s outcome=%s finish=%s chars=%d seconds=%.2f",
            self.request_id, self.chat.model_name, self.chat.model.upstream, self.chat.stream, outcome,
            answer.finish_reason, len(answer.text), time.monotonic() - self._started,
        )

