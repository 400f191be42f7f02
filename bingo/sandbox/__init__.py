"""A faithful local upstream: Bing's ChatHub and Copilot wire protocols on loopback.

Nobody can reach Bing from the test machines, so the gateway's real upstream
clients are pointed at this server instead. It is a test and demo tool; the
gateway never imports it. Start it with `Sandbox().start()` or
`python -m bingo.sandbox`.

Behaviour per turn comes from `[sandbox:NAME]` / `[sandbox:NAME=VALUE]` tokens
in the prompt, or from `Sandbox.queue_fault("NAME[=VALUE]")` (also
`POST /sandbox/faults`), which the next stage able to take it consumes:

- create (either protocol): create-500, create-404, create-empty, create-nonjson,
  create-slow=S; ChatHub only: create-unauthorized, create-forbidden,
  create-legacy; Copilot only: create-401.
- upgrade (either protocol): ws-403, ws-200, ws-500.
- handshake (ChatHub): no-handshake-ack.
- turn, ChatHub: chars=N, updates=N, delay=S, slow-first=S, no-search, unicode,
  split, final-only, trailing-space, render-card-last; throttled, captcha,
  unauthorized, forbidden, invalid-session, invalid-request, apology,
  disengaged, turn-limit, drop, type7, garbage, silent, silent=after-text.
- turn, Copilot: chars, updates, delay, slow-first, unicode; challenge,
  hashcash, cloudflare, error-unavailable, invalid-event, drop, silent,
  silent=after-text.

The answer is `answer_for(prompt)` on both protocols.
"""

from __future__ import annotations

from .answer import Source, answer_for, source_for
from .server import Sandbox

__all__ = ["Sandbox", "Source", "answer_for", "source_for"]
