"""What a turn yields, whichever upstream serves it.

A Turn is one question and its answer, already sent upstream; `next()` hands on the
answer as it arrives. Both protocol adapters (ChatHub, Copilot) produce these same
types through the one engine, so the relay never knows which one it is talking to.
Pure values only.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from ..images import Image
from ..models import Model
from ..wire import Message


@dataclass(frozen=True, slots=True)
class Delta:
    """New answer text, to be appended to what was sent before."""

    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """New reasoning text (Copilot's chainOfThought): shown apart, never in the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    """Upstream activity that is not answer text (a web search, a retraction note)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Citation:
    """A source cited at this point of the answer (Copilot's `citation` event)."""

    source: Source


@dataclass(frozen=True, slots=True)
class Finish:
    """The turn is over: `reason` is "stop", "length" or "content_filter"."""

    reason: str = "stop"
    sources: tuple[Source, ...] = ()  # ChatHub: numbered as its [^n^] markers count
    suggestions: tuple[str, ...] = ()
    note: str = ""  # why a content_filter ending happened, for the log


Event = Delta | Reasoning | Progress | Citation | Finish


class Turn(Protocol):
    def next(self, wake_at: float) -> Event | None:
        """The next event, or None once the monotonic clock reaches `wake_at`.

        Raises a BingoError on failure; never called again after a Finish.
        """

    def close(self) -> None:
        """Release the websocket; safe to call more than once, from any path."""


def until_finish(turn: Turn, tick: float = math.inf) -> Iterator[Event | None]:
    """Every event of `turn` up to its Finish, with None after each `tick` seconds of quiet
    (for callers that keep a clock of their own, like the benchmarks and the tests)."""
    while True:
        event = turn.next(time.monotonic() + tick)
        yield event
        if isinstance(event, Finish):
            return


class ClientWatch(Protocol):
    """The HTTP client's socket, watched while the upstream is waited on."""

    def fileno(self) -> int: ...

    def gone(self) -> bool:
        """True once the client has gone: a reset, not a half-close (checked when readable or hung up).

        After False on a readable socket, poll it for hang-ups only: a half-closed one stays readable.
        """


@dataclass(frozen=True)
class TurnRequest:
    """What an upstream needs to open a turn."""

    model: Model
    messages: tuple[Message, ...]  # validated; at least one from the user
    watch: ClientWatch | None = None
    images: tuple[Image, ...] = ()  # checked images to send before the question (Copilot only)
