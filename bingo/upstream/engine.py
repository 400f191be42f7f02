"""The one websocket turn loop both protocols run on.

create (REST) -> open the websocket -> send the adapter's greeting -> read until the
adapter's opening condition is met (ChatHub: the handshake ack; Copilot: the first
`connected`), which is when it sends the question -> feed every frame to the adapter,
which answers with a Step: events to hand on, frames to send back, done or not.

The engine owns what must hold whatever the upstream does: the connect and total
deadlines (wall clock, checked on every frame and enforced on blocked reads by the
watchdog), the client watch, the answer size cap, and text hygiene (a surrogate pair
split across frames is re-joined; a lone surrogate becomes U+FFFD). Adapters are pure.
"""
from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import websocket

from ..config import Settings
from ..errors import UpstreamTimeout
from .events import ClientWatch, Delta, Event, Finish, Reasoning, until_finish
from .frames import FrameReader
from .transport import close_websocket, guard_turn, open_websocket, send_text


@dataclass
class Step:
    """What one upstream message asks of the engine."""

    events: list[Event] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # frames to send back, encoded
    done: bool = False


@dataclass(frozen=True)
class Opening:
    """Where the websocket is, as the REST leg found out."""

    url: str = field(repr=False)  # may carry the access token
    headers: dict[str, str] = field(repr=False)  # carry the cookies


class Adapter(Protocol):
    """One protocol's side of a turn: pure, no sockets."""

    upstream: str  # "chathub" or "copilot": the failure table's key
    what: str  # the socket's name in error messages

    @property
    def opened(self) -> bool:
        """The question has gone out."""

    def create(self) -> Opening:
        """The REST leg: create the conversation; raises a BingoError."""

    def greeting(self) -> list[str]:
        """Frames to send as soon as the websocket is open."""

    def feed(self, message: str) -> Step:
        """The Step for one text message; raises a BingoError on failure."""


def open_turn(settings: Settings, adapter: Adapter, watch: ClientWatch | None) -> WebsocketTurn:
    """Run the turn up to the question sent; raises a BingoError, leaving nothing open."""
    opening = adapter.create()
    ws = open_websocket(settings, adapter.upstream, opening.url, opening.headers, adapter.what)
    try:
        turn = WebsocketTurn(ws, adapter, settings, watch)
    except BaseException:
        close_websocket(ws)
        raise
    try:
        turn.open(time.monotonic() + settings.connect_timeout, settings.connect_timeout)
    except BaseException:
        turn.close()
        raise
    return turn


class WebsocketTurn:
    """One question on an open websocket; `next()` hands on its answer."""

    def __init__(self, ws: websocket.WebSocket, adapter: Adapter, settings: Settings, watch: ClientWatch | None) -> None:
        total_at = time.monotonic() + settings.total_timeout
        self._ws = ws
        self._adapter = adapter
        self._guard = guard_turn(ws, total_at)
        self._reader = FrameReader(ws, settings.idle_timeout, total_at, watch, adapter.what)
        self._pending: deque[Event] = deque()
        self._answer = _Text()
        self._reasoning = _Text()
        self._room = settings.max_answer_chars
        self._done = False

    def open(self, deadline: float, seconds: float) -> None:
        """Greet, then read until the adapter has sent the question."""
        for frame in self._adapter.greeting():
            send_text(self._ws, frame, self._adapter.what)
        while not self._adapter.opened:
            message = self._reader.next(deadline)
            if message is None:
                raise UpstreamTimeout(f"{self._adapter.what} did not get ready within {seconds:g} s (BINGO_CONNECT_TIMEOUT).")
            if message:
                self._feed(message)

    def next(self, wake_at: float) -> Event | None:
        """The next event, or None once `wake_at` (monotonic) has passed without one."""
        while not self._pending:
            message = self._reader.next(wake_at)
            if message is None:
                return None
            if message:
                self._feed(message)
        return self._pending.popleft()

    def ready(self) -> bool:
        """True when `next` can go on without waiting on the network.

        Events already made, or a whole frame already read (several frames often
        arrive in one read): the relay then writes them to the client together.
        """
        return bool(self._pending) or (not self._done and self._reader.holds_message())

    def events(self, tick: float = math.inf) -> Iterator[Event | None]:
        """Every event up to the Finish, with None after each `tick` seconds of quiet."""
        return until_finish(self, tick)

    def close(self) -> None:
        self._guard.cancel()
        close_websocket(self._ws)

    def _feed(self, message: str) -> None:
        if self._done:
            return
        step = self._adapter.feed(message)
        for reply in step.replies:
            send_text(self._ws, reply, self._adapter.what)
        for event in step.events:
            self._hand_on(event)
            if self._done:
                return

    def _hand_on(self, event: Event) -> None:
        if isinstance(event, Delta):
            text = self._answer.feed(event.text)
            if len(text) > self._room:  # BINGO_MAX_ANSWER_CHARS: cut, and end the turn here
                self._pending.extend((Delta(text[: self._room]), Finish("length")))
                self._done = True
                return
            if not text:
                return
            self._room -= len(text)
            if text is not event.text:
                event = Delta(text)
        elif isinstance(event, Reasoning):
            event = Reasoning(self._reasoning.feed(event.text))
        elif isinstance(event, Finish):
            tail = self._answer.flush()
            if tail:
                self._pending.append(Delta(tail))
            self._done = True
        self._pending.append(event)


_SURROGATE = re.compile("[\ud800-\udfff]")


class _Text:
    """Re-joins surrogate pairs split across frames; a lone surrogate becomes U+FFFD.

    JSON may escape one half of an emoji per frame; the halves are not text on
    their own and cannot be encoded as UTF-8 for the client.
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        if self._held:
            text, self._held = self._held + text, ""
        if text.isascii() or not _SURROGATE.search(text):
            return text
        if "\ud800" <= text[-1] <= "\udbff":  # a high half: its low half may come next
            text, self._held = text[:-1], text[-1]
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "\ufffd" if held else ""
