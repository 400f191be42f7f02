"""The upstream layer: open a turn on the upstream that serves the model.

    engine.py      the one websocket turn loop (deadlines, client watch, caps)
    pooled.py      a Copilot turn on an account of the pool: queueing, failover, the lease
    transport.py   requests and websocket-client; tls.py (one TLS context and one
                   REST pool per process), sockets.py (the websocket's own buffered,
                   resumable connection), frames.py (bounded reads), watchdog.py
                   (wall-clock bounds on blocked reads)
    failures.py    the one table from upstream statuses and codes to errors
    chathub/       the ChatHub protocol adapter (legacy; mirrors)
    copilot/       the Copilot protocol adapter (the default)
"""
from __future__ import annotations

from ..accounts.pool import AccountPool
from ..config import Settings
from .chathub import ChatHubAdapter
from .copilot import CopilotAdapter
from .engine import open_turn as _run
from .events import Turn, TurnRequest
from .pooled import PooledTurn

__all__ = ["Turn", "TurnRequest", "open_turn"]


def open_turn(settings: Settings, request: TurnRequest, pool: AccountPool | None = None) -> Turn:
    """Open a turn on the upstream that serves the model; raises a BingoError.

    Copilot turns go through the account `pool` (the gateway always passes one): an
    account with room, pacing, failover. Without a pool (tests of one adapter) the
    turn speaks as the settings' single identity. The ChatHub keeps its one
    BING_COOKIE identity and no pacing: it is a legacy path for mirrors.

    The adapter is built first, so a request the upstream would refuse (a Copilot
    message over its length limit) fails before any upstream call or slot.
    """
    if request.model.upstream != "copilot":
        return _run(settings, ChatHubAdapter(settings, request), request.watch)
    adapter = CopilotAdapter(settings, request)
    if pool is None:
        return _run(settings, adapter, request.watch)
    return PooledTurn(settings, pool, request, adapter)
