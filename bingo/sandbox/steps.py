"""Steps of a scripted turn, shared by both protocols: send these, or end like that.

A script is a plain list of steps, built without I/O; `Session.play` performs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .framing import Record


class Action(str, Enum):
    DROP = "drop"  # cut the TCP connection: no close frame
    CLOSE = "close"  # close the websocket normally
    SILENCE = "silence"  # send nothing more, not even pings, until the client leaves


@dataclass(frozen=True, slots=True)
class Send:
    """One websocket message worth of records (ChatHub) or one event (Copilot)."""

    records: tuple[Record, ...]
    pause: float = 0.0  # seconds to wait before sending


@dataclass(frozen=True, slots=True)
class Do:
    """End the turn's output in a particular way, after `pause` seconds."""

    action: Action
    pause: float = 0.0


Step = Send | Do
