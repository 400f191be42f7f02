"""Drive one request: open the upstream turn, then collect it or stream it.

One path reads the upstream, two renderers write it. Failures before the first byte
raise (the view turns them into real HTTP statuses); failures after it become one
in-band error event. Every path closes the turn. No Flask here.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from . import sse, wire
from .config import Settings
from .errors import BingoError, ClientDisconnected, UpstreamError
from .events import ClientWatch, Delta, Event, Finish, Turn, TurnRequest
from .prompt import fold_messages
from .shaping import AnswerShaper
from .upstream import open_turn
from .wire import ChatRequest

log = logging.getLogger(__name__)


class Answer:
    """The answer as the client sees it: shaped deltas and their running total."""

    def __init__(self, chat: ChatRequest) -> None:
        self._shaper = AnswerShaper(chat.stop)
        self._pieces: list[str] = []  # joined once at the end: no quadratic `+=`
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def add(self, event: Delta | Finish) -> str:
        """Shape one event; returns the text to send (maybe ""), sets finish_reason."""
        if isinstance(event, Finish):
            piece = self._shaper.finish(event.sources)
            self.finish_reason = "stop" if self._shaper.stopped else event.reason
        else:
            piece = self._shaper.feed(event.text)
            if self._shaper.stopped:
                self.finish_reason = "stop"
        self._pieces.append(piece)
        return piece


def begin(chat: ChatRequest, settings: Settings, watch: ClientWatch | None) -> Turn:
    """Open the upstream turn for a request; raises a BingoError before any byte."""
    prompt = fold_messages(chat.messages, settings.history_chars)
    return open_turn(settings, TurnRequest(chat.model, prompt, watch))


def collect(chat: ChatRequest, turn: Turn) -> dict[str, object]:
    """Read the whole turn into one completion body, closing the turn."""
    started, answer = time.monotonic(), Answer(chat)
    try:
        for event in _answer_events(turn.events()):
            answer.add(event)
            if answer.finish_reason:
                break
    finally:
        turn.close()
    _log(chat, answer, started, "ok")
    return wire.build_completion(chat, wire.new_ids(chat), answer.text, answer.finish_reason or "stop")


def open_stream(chat: ChatRequest, turn: Turn, settings: Settings) -> Iterator[str]:
    """Wait briefly for the first text so early failures keep a real status.

    Waits at most one keep-alive interval (well inside Heroku's 30 s first-byte
    window); errors raised meanwhile propagate to the view, closing the turn.
    """
    started, events = time.monotonic(), turn.events()
    head: list[Event] = []
    try:
        for event in events:
            head.append(event)
            if event is None or isinstance(event, Finish) or (isinstance(event, Delta) and event.text):
                break
    except BaseException:
        turn.close()
        raise
    return _stream(chat, turn, head, events, started)


def _stream(chat: ChatRequest, turn: Turn, head: list[Event], rest: Iterator[Event], started: float) -> Iterator[str]:
    answer, ids = Answer(chat), wire.new_ids(chat)
    outcome = "client gone"  # unless the stream gets to its end or to an error
    try:
        render = _renderer(chat, ids, answer)
        role = wire.build_role_chunk(chat, ids)
        # The role chunk and what arrived while the view waited leave in one write:
        # one syscall and one client wake-up fewer on the first-token path.
        yield (sse.event(role) if role else "") + "".join(map(render, head))
        for event in rest if not answer.finish_reason else ():
            text = render(event)
            if text:
                yield text
            if answer.finish_reason:
                break
        if not answer.finish_reason:
            raise UpstreamError("The upstream ended the turn without finishing the answer.")
        yield sse.event(wire.build_chunk(chat, ids, None, answer.finish_reason))
        if chat.include_usage:
            yield sse.event(wire.build_usage_chunk(chat, ids, answer.text))
        yield sse.DONE
        outcome = "ok"
    except ClientDisconnected:
        pass
    except BingoError as exc:
        outcome = f"{type(exc).__name__} in stream"
        yield sse.event(exc.to_body())
    except Exception:
        outcome = "crash in stream"
        log.exception("stream failed")
        yield sse.event(BingoError("The gateway hit an internal error; see its log.").to_body())
    finally:
        turn.close()
        _log(chat, answer, started, outcome)


def _renderer(chat: ChatRequest, ids: wire.ResponseIds, answer: Answer) -> Callable[[Event], str]:
    """The SSE text for one event: a content chunk, a keep-alive comment, or ""."""
    content_event = sse.ContentEvents(lambda text: wire.build_chunk(chat, ids, text))

    def render(event: Event) -> str:
        if event is None:
            return sse.KEEPALIVE
        if isinstance(event, (Delta, Finish)):
            piece = answer.add(event)
            return content_event(piece) if piece else ""
        return ""  # progress: not answer text

    return render


def _answer_events(events: Iterator[Event]) -> Iterator[Delta | Finish]:
    """The events that carry answer text or its end; keep-alives and progress dropped."""
    for event in events:
        if isinstance(event, (Delta, Finish)):
            yield event
    raise UpstreamError("The upstream ended the turn without finishing the answer.")


def _log(chat: ChatRequest, answer: Answer, started: float, outcome: str) -> None:
    log.info(
        "turn model=%r upstream=%s stream=%s outcome=%s finish=%s chars=%d seconds=%.2f",
        chat.model_name, chat.model.upstream, chat.stream, outcome, answer.finish_reason,
        len(answer.text), time.monotonic() - started,
    )
