"""The upstream layer: open a turn on the upstream that serves the model.

    engine.py      the one websocket turn loop (deadlines, client watch, caps)
    transport.py   requests and websocket-client; tls.py (one TLS context and one
                   REST pool per process), sockets.py (the websocket's own buffered,
                   resumable connection), frames.py (bounded reads), watchdog.py
                   (wall-clock bounds on blocked reads)
    failures.py    the one table from upstream statuses and codes to errors
    chathub/       the ChatHub protocol adapter (legacy; mirrors)
    copilot/       the Copilot protocol adapter (the default)
"""
from __future__ import annotations

from ..config import Settings
from .chathub import ChatHubAdapter
from .copilot import CopilotAdapter
from .engine import Adapter, WebsocketTurn, open_turn as _run
from .events import Turn, TurnRequest

__all__ = ["Turn", "TurnRequest", "open_turn"]


def open_turn(settings: Settings, request: TurnRequest) -> WebsocketTurn:
    """Open a turn on the upstream that serves the model; raises a BingoError.

    The adapter is built first, so a request the upstream would refuse (a Copilot
    message over its length limit) fails before any upstream call.
    """
    adapter: Adapter
    if request.model.upstream == "copilot":
        adapter = CopilotAdapter(settings, request)
    else:
        adapter = ChatHubAdapter(settings, request)
    return _run(settings, adapter, request.watch)
