"""The seam: pick the upstream client that serves a model and open a turn on it."""
from __future__ import annotations

from .chathub import open_chathub_turn
from .config import Settings
from .copilot import open_copilot_turn
from .events import Turn, TurnRequest


def open_turn(settings: Settings, request: TurnRequest) -> Turn:
    """Open a turn on the upstream that serves the model; raises a BingoError."""
    if request.model.upstream == "copilot":
        return open_copilot_turn(settings, request)
    return open_chathub_turn(settings, request)
