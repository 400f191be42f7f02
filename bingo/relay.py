"""Drive one request: open the upstream turn, then collect it or stream it.

One path reads the upstream, two renderers write it. Failures before the first byte
raise (the view turns them into real HTTP statuses); failures after it become one
in-band error event, logged here once. Every path closes the turn. No Flask here.

The keep-alive clock is the time since the last byte written to the client, not
since the last upstream frame: a turn that only reasons or searches still sends a
comment every BINGO_KEEPALIVE_SECONDS, and the first byte of a stream leaves within
one interval of the request's arrival (Heroku wants one within 30 s). A turn still
queued for a Copilot account reads as a quiet upstream, so the same clock covers it.

Every turn's close() gives its account slot back; the paths that end a turn (last
byte, in-band error, client gone, shutdown, a corrective turn) all go through close().
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

from . import image_fetch, images, prompt, shutdown, sse, tools, wire
from .accounts.pool import AccountPool
from .answer import Answer
from .config import Settings
from .errors import (
    BingoError,
    ClientDisconnected,
    InvalidModelOutput,
    ServerShuttingDown,
    log_failure,
)
from .models import Model
from .tools import ToolChoice
from .upstream import open_turn
from .upstream.events import ClientWatch, Event, Reasoning, Turn, TurnRequest
from .upstream.pooled import PooledTurn, candidates
from .wire import ChatRequest, Message

log = logging.getLogger(__name__)


class KeepAliveClock:
    """When the client must next get a byte: one interval after the last one written."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.due_at = time.monotonic() + seconds

    def wrote(self) -> None:
        self.due_at = time.monotonic() + self.seconds


class TurnRelay:
    """The life of one request on one upstream turn, whatever API renders it.

    Subclasses say when the answer is settled and how events render (`_render`),
    what a stream writes first and last, how a failure after the first byte reads,
    and what a one-shot request returns. The turn's opening, the first-byte wait,
    the keep-alive clock, write coalescing, logging and cleanup live here once.
    """

    def __init__(self, settings: Settings, request_id: str, model: Model, messages: tuple[Message, ...]) -> None:
        self.request_id = request_id
        self.clock = KeepAliveClock(settings.keepalive_seconds)
        self._settings = settings
        self._model = model
        self._messages = messages
        self._started = time.monotonic()
        self._turn: Turn | None = None
        self._images: tuple[images.Image, ...] | None = None  # read once: a corrective turn sends them again
        self._watch: ClientWatch | None = None
        self._pool: AccountPool | None = None
        self._quiet = False  # one-shot: events are taken, not rendered
        self._corrected = False  # the one corrective turn has been opened
        self._failure: Exception | None = None  # met while taking waiting events; raised next

    def open(self, watch: ClientWatch | None, pool: AccountPool | None = None) -> None:
        """Open the upstream turn on an account of `pool`; raises a BingoError before any byte.

        When no account has room, the turn opens later, while it is read.
        """
        self._watch, self._pool = watch, pool
        if shutdown.stopping():
            raise ServerShuttingDown("The gateway is restarting; retry the request.")
        if self._images is None:
            sent = images.sent(self._messages)
            if sent and pool is not None and self._model.upstream == "copilot":
                candidates(pool, sent)  # image input without a signed-in account: fetch nothing
            self._images = images.load(self._messages, self._model.upstream, image_fetch.fetcher(self._settings))
        self._turn = open_turn(self._settings, TurnRequest(self._model, self._messages, watch, self._images), pool)

    @property
    def account(self) -> str:
        """The Copilot account the turn opened on, for the log ("-": none, or the ChatHub)."""
        return (self._turn.account if isinstance(self._turn, PooledTurn) else "") or "-"

    def close(self) -> None:
        """Close the turn (and give its account slot back); safe on every path, any number of times."""
        if self._turn is not None:
            self._turn.close()

    def collect(self) -> dict[str, Any]:
        """Read the whole turn into one body, closing the turn."""
        self._quiet = True
        try:
            while not self._settled():
                event = self._next(math.inf)  # no keep-alives to write: only the turn's bounds
                if event is not None:
                    self._render(event)
        finally:
            self.close()
        self._log("ok")
        return self._result()

    def stream(self) -> Iterator[str]:
        """Wait up to the first keep-alive for something to show, then the SSE body.

        Errors raised while waiting propagate to the view (a real status), closing
        the turn; the returned generator handles everything after the first byte.
        """
        preamble, head = self._preamble(), ""  # the preamble first: it may be numbered
        try:
            while not head and not self._settled():
                event = self._next(self.clock.due_at)
                head = self._render(event) if event is not None else sse.KEEPALIVE
        except BaseException:
            self.close()
            raise
        return self._body(preamble + head)

    def _body(self, head: str) -> Iterator[str]:
        outcome = "client gone"  # unless the stream gets to its end or to an error
        try:
            # What a stream says first and what arrived while the view waited: one write.
            yield self._wrote(head)
            while not self._settled():
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
            yield self._failed(exc)
        except Exception:
            outcome = "crashed in stream"
            log.exception("request %s: stream failed", self.request_id)
            yield self._failed(BingoError("The gateway hit an internal error; see its log."))
        finally:
            self.close()
            if outcome != "failed in stream":
                self._log(outcome)

    def _render_ready(self) -> str:
        """Render the next event and every one already waiting: one write, not several.

        Waiting frames are read too, so one of them may fail: the events rendered
        before it are written first, and the failure is raised on the next call.
        """
        if self._failure is not None:
            raise self._failure
        event = self._next(self.clock.due_at)
        if event is None:
            return sse.KEEPALIVE
        parts = [self._render(event)]
        while not self._settled() and self._ready():
            try:
                waiting = self._next(0.0)  # a wake time already past: only what needs no wait
            except Exception as exc:  # noqa: BLE001 - raised on the next call
                self._failure = exc
                break
            if waiting is not None:
                parts.append(self._render(waiting))
        return "".join(parts)

    def _next(self, wake_at: float) -> Event | None:
        assert self._turn is not None, "open() runs first"
        # SIGTERM may come while a turn waits: wake no later than the cut-off too.
        cut_at = shutdown.cut_at()
        event = self._turn.next(min(wake_at, cut_at))
        if cut_at < math.inf and time.monotonic() >= cut_at:  # no clock read per event otherwise
            raise ServerShuttingDown()
        return event

    def _ready(self) -> bool:
        ready = getattr(self._turn, "ready", None)
        return bool(ready and ready())

    def _wrote(self, text: str) -> str:
        self.clock.wrote()
        return text

    def _settle(self, answer: Answer, choice: ToolChoice) -> bool:
        """Whether `answer` is complete and right; opens the corrective turn when it is wrong.

        The corrective turn is the conversation again, with that answer and what was
        wrong with it. Raises InvalidModelOutput when the corrective answer is wrong too.
        """
        if not answer.finish_reason:
            return False
        if answer.problem is None:
            return True
        if self._corrected:
            raise InvalidModelOutput(tools.failure(answer.problem))
        log.info("request %s: %s; corrective turn", self.request_id, answer.problem)
        self._corrected = True
        self.close()
        correction = tools.correction(answer.problem, choice)
        self._messages += (Message("assistant", answer.text), Message("user", correction))
        self.open(self._watch, self._pool)
        answer.restart()
        return False

    # -- what a subclass says ---------------------------------------------------------

    def _settled(self) -> bool:
        raise NotImplementedError

    def _render(self, event: Event) -> str:
        """Take one event; the SSE text it makes ("" when quiet or nothing to show)."""
        raise NotImplementedError

    def _preamble(self) -> str:
        return ""

    def _closing(self) -> str:
        return ""

    def _failed(self, exc: BingoError) -> str:
        return sse.event(exc.to_body())

    def _result(self) -> dict[str, Any]:
        raise NotImplementedError

    def _log(self, outcome: str) -> None:
        raise NotImplementedError


class Exchange(TurnRelay):
    """One completions request from the opened turn to the last byte.

    When the answer is not what tools or response_format asked for, one corrective
    turn follows: the conversation again, with that answer and what was wrong with it.
    """

    def __init__(self, chat: ChatRequest, settings: Settings, request_id: str) -> None:
        messages = prompt.with_tools(
            chat.messages, chat.tools, chat.tool_choice, chat.parallel_tool_calls, chat.response_format,
        )
        super().__init__(settings, request_id, chat.model, messages)
        self.chat = chat
        self._calls_sent = 0
        self._answer = Answer(chat)
        self._ids = wire.new_ids(chat)
        # Every content chunk of a stream differs only in its text: render it once.
        self._content = sse.ContentEvents(
            lambda piece: wire.build_chunk(chat, self._ids, piece), copies=2 if chat.chunk_message and chat.kind == "chat" else 1,
        )

    def _result(self) -> dict[str, Any]:
        answer = self._answer
        return wire.build_completion(
            self.chat, self._ids, answer.content, answer.finish_reason or "stop", answer.reasoning, answer.calls, answer.text,
        )

    def _settled(self) -> bool:
        return self._settle(self._answer, self.chat.tool_choice)

    def _preamble(self) -> str:
        role = wire.build_role_chunk(self.chat, self._ids)
        return sse.event(role) if role else ""

    def _render(self, event: Event) -> str:
        """The SSE text for one event: content, reasoning or tool call chunks, or ""."""
        pieces = self._answer.add(event)
        if self._quiet:
            return ""
        out = ""
        for piece in pieces:
            if isinstance(piece, str):
                out += self._content(piece)
            elif isinstance(piece, Reasoning):
                if self.chat.kind == "chat":
                    out += sse.event(wire.build_reasoning_chunk(self.chat, self._ids, piece.text))
            else:
                out += sse.event(wire.build_tool_call_chunk(self.chat, self._ids, self._calls_sent, piece))
                self._calls_sent += 1
        return out

    def _closing(self) -> str:
        closing = sse.event(wire.build_chunk(self.chat, self._ids, None, self._answer.finish_reason))
        if self.chat.include_usage:
            closing += sse.event(wire.build_usage_chunk(self.chat, self._ids, self._answer.text))
        return closing + sse.DONE

    def _log(self, outcome: str) -> None:
        answer = self._answer
        log.info(
            "request %s turn model=%r upstream=%s account=%s stream=%s outcome=%s finish=%s chars=%d seconds=%.2f",
            self.request_id, self.chat.model_name, self.chat.model.upstream, self.account, self.chat.stream, outcome,
            answer.finish_reason, len(answer.text), time.monotonic() - self._started,
        )
