"""A faithful local upstream: Bing's ChatHub and Copilot wire protocols on loopback.

Nobody can reach Bing from the test machines, so the gateway's real upstream
clients are pointed at this server instead. It is a test and demo tool; the
gateway never imports it. Start it with `Sandbox().start()` or
`python -m bingo.sandbox`.

Behaviour per turn comes from `[sandbox:NAME]` / `[sandbox:NAME=VALUE]` tokens
in the prompt, or from `Sandbox.queue_fault("NAME[=VALUE]")` (also
`POST /sandbox/faults`), which the next stage able to take it consumes. The
full list, with the event shapes, is the docstring of `directives.py`.

Per account (Copilot): `Sandbox.account_rule(marker, rule)` throttles or refuses
the account whose cookie or token contains `marker`, `check_tokens(check)` refuses
access tokens with 401, and `served(markers)` says which account each conversation
was created for (`accounts.py`). Anonymous users are kept by their
`__Host-copilot-anon` cookie, and `anon_users()` says which one each start and each
upgrade was (`anon.py`).

The answer text is `answer_for(prompt)` on both protocols; on the Copilot side
`copilot_answer_for(prompt)` also says where each appendText ends and after
which one each citation (and the image) arrives.
"""

from __future__ import annotations

from .answer import (
    CITATION,
    CopilotAnswer,
    Source,
    answer_for,
    copilot_answer_for,
    image_prompt_for,
    source_for,
)
from .challenge import copilot_token, hashcash_ok, solve_hashcash
from .server import Sandbox

__all__ = [
    "CITATION",
    "CopilotAnswer",
    "Sandbox",
    "Source",
    "answer_for",
    "copilot_answer_for",
    "copilot_token",
    "hashcash_ok",
    "image_prompt_for",
    "solve_hashcash",
    "source_for",
]
