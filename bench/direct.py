"""Baseline "direct": bingo's own upstream client on the sandbox, no HTTP between.

`bingo.upstream.open_turn` creates the conversation and opens the websocket the way
the gateway does (same settings, read from the same environment, so the same TLS
trust), and the turn yields Delta ... Finish. It runs in its own process
(`python -m bench.direct`, see jobs.py), so its CPU is counted apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from functools import partial

import websocket

from bingo.config import Settings
from bingo.upstream import open_turn

from . import jobs
from .traffic import MODEL, direct_answer

try:  # the upstream package (bingo/upstream/): a turn is asked for its next event
    from bingo.models import catalogue
    from bingo.upstream.events import Delta, Finish, TurnRequest
    from bingo.wire import Message

    def _request(settings: Settings, prompt: str) -> TurnRequest:
        model = catalogue(settings.upstream).resolve(MODEL)
        return TurnRequest(model, (Message("user", prompt),))

except ImportError:  # before it: bingo.events, and a turn yields its events
    from bingo.events import Delta, Finish, TurnRequest  # type: ignore[no-redef]
    from bingo.models import resolve_model  # type: ignore[attr-defined]
    from bingo.prompt import Prompt  # type: ignore[attr-defined]

    def _request(settings: Settings, prompt: str) -> TurnRequest:
        return TurnRequest(resolve_model(MODEL), Prompt(prompt, ""))  # type: ignore


def describe(env: dict[str, str]) -> str:
    """The baseline's options, exactly, for the table and RESULTS.md."""
    settings = make_settings(env)
    return (
        "bingo.upstream.open_turn(Settings.from_env(<the gateway's environment>), "
        f"TurnRequest(<model {MODEL!r}>, <prompt>)), read to its Finish, one thread per "
        f"stream; connect_timeout={settings.connect_timeout:g}, "
        f"keepalive_seconds={settings.keepalive_seconds:g}; websocket-client "
        f"{websocket.__version__}, skip_utf8_validation=True, no proxy, no wsaccel"
    )


def make_settings(env: dict[str, str]) -> Settings:
    """The gateway's settings for this environment, as the gateway reads them."""
    return Settings.from_env(env)


def _events(settings: Settings, prompt: str) -> Iterator[object]:
    """The turn's events; the one place that knows bingo's upstream API."""
    turn = open_turn(settings, _request(settings, prompt))
    try:
        yield _utf8_skipped(turn)
        if hasattr(turn, "events"):
            yield from turn.events()
            return
        while True:
            yield turn.next(time.monotonic() + settings.keepalive_seconds)
    finally:
        turn.close()


def _utf8_skipped(turn: object) -> bool | None:
    """websocket-client's setting on the socket this turn reads (None if hidden)."""
    frames = getattr(getattr(turn, "_ws", None), "frame_buffer", None)
    return getattr(frames, "skip_utf8_validation", None)


def make_reader(settings: Settings) -> jobs.Reader:
    """A reader over bingo's client; failures are counted, never raised."""

    def read(prompt: str, first_only: bool) -> jobs.TurnResult:
        result = jobs.TurnResult(prompt, started=time.monotonic())
        try:
            events = _events(settings, prompt)
            result.utf8_skipped = next(events)  # type: ignore[assignment]
            for event in events:
                if isinstance(event, Delta) and event.text:
                    result.delta_times.append(time.monotonic())
                    result.text += event.text
                    if first_only:
                        break
                elif isinstance(event, Finish):
                    result.finished = event.reason == "stop"
                    break
            events.close()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001  # counted, not fatal
            result.error = f"{type(exc).__name__}: {exc}"
        result.ended = time.monotonic()
        return result

    return read


if __name__ == "__main__":
    protocol = os.environ.get("BINGO_UPSTREAM", "chathub")
    jobs.serve(lambda job: make_reader(make_settings(dict(os.environ))), partial(direct_answer, protocol=protocol))
