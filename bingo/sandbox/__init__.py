"""A faithful local upstream: Bing's ChatHub and Copilot wire protocols on loopback.

Nobody can reach Bing from the test machines, so the gateway's real upstream
clients are pointed at this server instead. It is a test and demo tool; the
gateway never imports it. Start it with `Sandbox().start()` or `python -m bingo.sandbox`.
"""

from __future__ import annotations

from .answer import Source, answer_for, source_for
from .server import Sandbox

__all__ = ["Sandbox", "Source", "answer_for", "source_for"]
