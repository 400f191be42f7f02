"""What a turn yields, whichever upstream serves it.

A Turn is one question and its answer, already sent upstream; iterating its events
yields the answer as it arrives. Both clients (ChatHub, Copilot) produce these same
types, so the relay never knows which one it is talking to. Pure values only.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from .models import Model
from .prompt import Prompt


@dataclass(frozen=True, slots=True)
class Delta:
    """New answer text, to be appended to what was sent before."""

    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    """Upstream activity that is not answer text (a web search, a loader line)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The turn is over. `reason` is "stop" or "content_filter" (retracted, disengaged)."""

    reason: str = "stop"
    sources: tuple[Source, ...] = ()
    suggestions: tuple[str, ...] = ()
    note: str = ""  # why a content_filter ending happened, for the log


Event = Delta | Progress | Finish | None  # None: a keep-alive tick while upstream is silent


class Turn(Protocol):
    def events(self) -> Iterator[Event]:
        """Yield events until a Finish; raise a BingoError on failure."""

    def close(self) -> None:
        """Release the websocket; safe to call more than once, from any path."""


class ClientWatch(Protocol):
    """The HTTP client's socket, watched while the upstream is waited on."""

    def fileno(self) -> int: ...

    def gone(self) -> bool:
        """True once the client has closed its end (checked when readable)."""


@dataclass(frozen=True)
class TurnRequest:
    """What an upstream needs to open a turn."""

    model: Model
    prompt: Prompt
    watch: ClientWatch | None = None


