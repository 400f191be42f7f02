"""Per-turn behaviour: `[sandbox:NAME=VALUE]` directives, fault names, and the Plan.

This module owns the vocabulary (which names exist, which stage takes them, how
their values parse). It is pure: no sockets, no clocks, no shared state.

A name works as a prompt directive (`[sandbox:NAME]`, `[sandbox:NAME=VALUE]`) when
it belongs to a turn, and as a queued fault (`Sandbox.queue_fault("NAME=VALUE")`,
`POST /sandbox/faults {"faults": [...]}`) for every stage: the next stage that
can take it consumes it, one per stage, oldest first.

Stage create, either protocol: create-500, create-404 (HTML pages),
create-empty (200, no body), create-nonjson (200 HTML), create-slow=S.
ChatHub only: create-unauthorized, create-forbidden, create-legacy.
Copilot only (`/c/api/conversations` and `/c/api/start`): create-401
(`{"message":"Invalid session"}`), create-403 (Cloudflare "Just a moment..."
HTML, `cf-mitigated: challenge`), create-429 (`Retry-After: 7`),
create-redirect (302 to http://127.0.0.2:1/elsewhere). `/c/api/start` only:
start-blocked (the usual 200 with `"isBlocked": true`), anon-rotate (the
same anonymous user, under a new `__Host-copilot-anon` value: `anon.py`).

Stage attachments, Copilot (`/c/api/attachments`): attachment-401
(`{"message":"Unauthorized"}`), attachment-413 (`{"message":"Payload too large"}`),
attachment-nourl (200 with `{}`).

Stage upgrade, either protocol: ws-401, ws-403, ws-200 (an HTML page), ws-500.
Stage handshake, ChatHub: no-handshake-ack.
Stage connect, Copilot (queued only; taken when the socket opens):
connected-twice (a second `connected` right after the first),
connected-delay=S (`connected` after S seconds; frames before it get
invalid-event), no-connected (no `connected`, and silence, ever).

Stage turn, ChatHub: chars=N, updates=N, delay=S, slow-first=S, no-search,
unicode, split, final-only, trailing-space, render-card-last; throttled,
captcha, unauthorized, forbidden, invalid-session, invalid-request, apology,
disengaged, turn-limit, drop, type7, garbage, silent, silent=after-text.

Stage turn, Copilot (events get the string `id` counter, `connected` is "0";
`challenge` events and `invalid-event` errors carry none, as captured):
- chars=N, updates=N, delay=S, slow-first=S, unicode: shape the answer.
- citations=N (default 1): N `{"event":"citation","messageId","url","title",
  "publisher","snippet"}` at distinct cuts; the last repeats the first URL.
- think=S: S seconds of `{"event":"chainOfThought","messageId","text"}` before
  `startMessage` (any mode; `mode:"reasoning"` alone sends three at once).
- image: between two text parts, `partCompleted`, `{"event":"generatingImage",
  "messageId","prompt"}`, `{"event":"imageGenerated","messageId","partId","url":
  "https://copilot.microsoft.com/th/id/BCO.<uuid>.png","thumbnailUrl":url+
  "/?w=270&qlt=90","nextAvailableAt":null}`; image-only: those two and `done`.
- mode-selected=MODE: `received`, `startMessage`, `{"event":"modeSelected",
  "mode":MODE,"messageId"}`, `done`; then only a `send` with `"mode":MODE` is
  answered (another mode gets invalid-event).
- challenge: `{"event":"challenge","method":null,"parameter":null,"id":"0.000N"}`
  after the second appendText; the turn goes on. An echoing challengeResponse is
  accepted; a re-sent `send` is invalid-event and kills the turn (WCA #8).
- hashcash[=BITS] (default 8), copilot, cloudflare: the challenge comes instead
  of the turn and holds it; after a correct challengeResponse the client
  re-sends `send` once. cloudflare is never satisfied; a wrong token is
  invalid-event. See `challenge.py` for the exact checks.
- error=CODE: `{"event":"error","errorCode":CODE}`; error-unavailable: the same
  with chat-service-unavailable and a message; invalid-event: that error;
  over-research-quota: with `"errorDetail":{"nextAvailableAt":<now+90 s>}`.
- chat-message-error[=CODE]: `{"event":"chatMessageError","errorCode":CODE or
  "message-error","message"}` halfway through the text, and no `done`.
- ping-flood: websocket pings and `{"event":"ping"}` every 50 ms, no answer.
- drop, silent, silent=after-text: as on ChatHub.
Stage turn, either protocol: reply=B64 puts the text B64 decodes to (base64url,
padding optional, UTF-8) in place of the whole answer, streamed in the usual
number of updates / appendText deltas and citing nothing. replies=B64,B64,...
scripts a turn and its follow-ups: a turn answers the first reply whose
predecessors' texts do not all appear in its prompt, so a corrective turn,
whose conversation carries the first answer, gets the second (Copilot, whose
prompt is the whole conversation; a ChatHub prompt is the last message only).
A `send` with more than 10,240 characters of text gets `{"event":"error",
"errorCode":"text-too-long"}` whatever it asks for.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger(__name__)

DIRECTIVE = re.compile(r"\[sandbox:([a-z0-9-]+)(?:=([^\]]*))?\]", re.IGNORECASE)
DEFAULT_CHARS = 600
DEFAULT_UPDATES = 10

# Stage "create": consumed by the next conversation create (either protocol).
CHATHUB_CREATE = frozenset(
    {
        "create-500",
        "create-404",
        "create-empty",
        "create-nonjson",
        "create-unauthorized",
        "create-forbidden",
        "create-slow",
        "create-legacy",
    }
)
COPILOT_CREATE = frozenset(
    {
        "create-500",
        "create-404",
        "create-401",
        "create-403",
        "create-429",
        "create-redirect",
        "create-empty",
        "create-nonjson",
        "create-slow",
    }
)
# Only `POST /c/api/start` takes this one; `/c/api/conversations` leaves it queued.
COPILOT_START = COPILOT_CREATE | {"start-blocked", "anon-rotate"}
# Stage "connect": consumed by the next Copilot socket, before its `connected`.
COPILOT_CONNECT = frozenset({"connected-twice", "connected-delay", "no-connected"})
# Stage "upgrade": consumed by the next websocket upgrade (either protocol).
UPGRADE = frozenset({"ws-401", "ws-403", "ws-200", "ws-500"})
ATTACHMENTS = frozenset({"attachment-401", "attachment-413", "attachment-nourl"})
# Stage "handshake": consumed by the next SignalR handshake.
HANDSHAKE = frozenset({"no-handshake-ack"})

# Stage "turn": modifiers shape a turn, an outcome decides how it ends.
MODIFIERS = frozenset(
    {
        "chars",
        "updates",
        "delay",
        "slow-first",
        "no-search",
        "unicode",
        "split",
        "final-only",
        "trailing-space",
        "render-card-last",
    }
)
CHATHUB_OUTCOMES = frozenset(
    {
        "throttled",
        "captcha",
        "unauthorized",
        "forbidden",
        "invalid-session",
        "invalid-request",
        "apology",
        "disengaged",
        "turn-limit",
        "drop",
        "type7",
        "garbage",
        "silent",
    }
)
# Copilot-only modifiers (the Plan fields after `render_card_last`).
COPILOT_MODIFIERS = frozenset(
    {"citations", "think", "image", "image-only", "mode-selected"}
)
COPILOT_OUTCOMES = frozenset(
    {
        "challenge",
        "hashcash",
        "copilot",
        "cloudflare",
        "error-unavailable",
        "error",
        "over-research-quota",
        "chat-message-error",
        "invalid-event",
        "ping-flood",
        "silent",
        "drop",
    }
)
# Either protocol: the answer's text, scripted by the test (base64url values).
SCRIPTED = frozenset({"reply", "replies"})
CHATHUB_TURN = MODIFIERS | CHATHUB_OUTCOMES | SCRIPTED
COPILOT_TURN = (
    frozenset({"chars", "updates", "delay", "slow-first", "unicode"})
    | COPILOT_MODIFIERS
    | COPILOT_OUTCOMES
    | SCRIPTED
)
KNOWN = (
    CHATHUB_CREATE
    | COPILOT_START
    | COPILOT_CONNECT
    | UPGRADE
    | ATTACHMENTS
    | HANDSHAKE
    | CHATHUB_TURN
    | COPILOT_TURN
)

# name -> (type, lowest, highest); bounded so a typo cannot wedge a test run.
_NUMBERS: dict[str, tuple[type, float, float]] = {
    "chars": (int, 1, 200_000),
    "updates": (int, 1, 1_000),
    "delay": (float, 0.0, 60.0),
    "slow-first": (float, 0.0, 600.0),
    "create-slow": (float, 0.0, 600.0),
    "connected-delay": (float, 0.0, 600.0),
    "citations": (int, 0, 50),
    "think": (float, 0.0, 600.0),
    "hashcash": (int, 1, 24),  # zero bits; 24 already takes a client seconds
}
_OPTIONAL = frozenset({"hashcash"})  # numbers that may also come without a value
_WORDS = {"silent": frozenset({"after-text"})}
# Free-form codes and modes: required for error/mode-selected, optional otherwise.
_CODE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}", re.IGNORECASE)
_CODES = {"error": True, "mode-selected": True, "chat-message-error": False}

Directive = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Plan:
    """How one turn behaves; built from the prompt's directives and a queued fault."""

    chars: int = DEFAULT_CHARS  # answer length, see answer_for
    updates: int = DEFAULT_UPDATES  # cumulative updates / appendText deltas
    delay: float = 0.0  # seconds before each answer update
    slow_first: float = 0.0  # seconds before the first frame of the turn
    search: bool = True  # send the search/loader progress messages
    unicode: bool = False  # answer carries emoji, CJK, U+2028/2029, tabs
    split: bool = False  # every record is cut across 2-3 websocket messages
    final_only: bool = False  # no answer updates; the text is only in the final
    trailing_space: bool = False  # streamed text ends with "  \n", the final's does not
    render_card_last: bool = (
        False  # a RenderCardRequest follows the answer in the final
    )
    citations: int = 1  # Copilot: citation events (one URL repeats when >= 2)
    think: float = 0.0  # Copilot: seconds of chainOfThought before the answer
    image: str | None = None  # Copilot: "inline" (between text parts) or "only"
    mode_selected: str | None = None  # Copilot: modeSelected, then wait for a re-send
    replies: tuple[str, ...] = ()  # reply=/replies=: scripted answer texts, see scripted_reply
    outcome: str | None = None  # a fault that changes how the turn ends
    outcome_value: str | None = None  # e.g. "after-text" for silent


def parse_spec(spec: str) -> Directive:
    """Parse a queued fault such as "create-slow=2"; raises ValueError if unknown or bad."""
    name, sep, value = spec.strip().partition("=")
    name = name.strip().lower()
    directive = (name, value.strip() if sep else None)
    if name not in KNOWN:
        raise ValueError(f"unknown sandbox fault {spec!r}")
    check_value(directive)
    return directive


def check_value(directive: Directive) -> None:
    """Raise ValueError when a directive's value is missing, malformed or out of bounds."""
    name, value = directive
    if name in _OPTIONAL and value is None:
        return
    if name in SCRIPTED:
        decode_replies(value or "")
        if name == "reply" and "," in (value or ""):
            raise ValueError("reply takes one text; replies takes several")
        return
    if name in _CODES:
        if value is None and not _CODES[name]:
            return
        if value is None or not _CODE.fullmatch(value):
            raise ValueError(f"{name} needs a code like {name}=too-many-messages")
    elif name in _NUMBERS:
        kind, low, high = _NUMBERS[name]
        number = kind(value or "")
        if not low <= number <= high:
            raise ValueError(f"{name}={value} is outside {low}..{high}")
    elif value is not None and value not in _WORDS.get(name, ()):
        raise ValueError(f"{name} takes no value {value!r}")


def parse_directives(prompt: str) -> list[Directive]:
    """Every well-formed `[sandbox:...]` token in the prompt, in order; bad ones are logged."""
    found: list[Directive] = []
    for match in DIRECTIVE.finditer(prompt):
        directive = (match.group(1).lower(), match.group(2))
        try:
            check_value(directive)
        except ValueError as exc:
            log.warning("ignoring sandbox directive %s: %s", match.group(0), exc)
            continue
        found.append(directive)
    return found


def plan_from(
    directives: Iterable[Directive],
    queued: Directive | None = None,
    allowed: frozenset[str] = CHATHUB_TURN,
) -> Plan:
    """Fold directives into a Plan: the queued fault wins, then the prompt's first outcome."""
    plan = Plan()
    items = [d for d in directives if d[0] in allowed] + ([queued] if queued else [])
    for name, value in items:
        if name in MODIFIERS or name in COPILOT_MODIFIERS or name in SCRIPTED:
            plan = _modify(plan, name, value)
        elif plan.outcome is None or (name, value) == queued:
            plan = replace(plan, outcome=name, outcome_value=value)
    return plan


def decode_replies(value: str) -> tuple[str, ...]:
    """The texts of a reply=/replies= value; raises ValueError when one does not decode."""
    try:
        return tuple(
            base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True).decode("utf-8")
            for part in value.split(",")
        )
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"not base64url of UTF-8 text: {exc}") from None


def scripted_reply(replies: tuple[str, ...], prompt: str) -> str:
    """The reply for this turn: the first whose predecessors all appear in the prompt."""
    index = 0
    while index < len(replies) - 1 and replies[index].strip() in prompt:
        index += 1
    return replies[index]


def _modify(plan: Plan, name: str, value: str | None) -> Plan:
    if name in SCRIPTED:
        return replace(plan, replies=decode_replies(value or ""))
    if name == "no-search":
        return replace(plan, search=False)
    if name in ("image", "image-only"):
        return replace(plan, image="only" if name == "image-only" else "inline")
    if name == "mode-selected":
        return replace(plan, mode_selected=value)
    new: Any = _NUMBERS[name][0](value or "") if name in _NUMBERS else True
    return replace(plan, **{name.replace("-", "_"): new})
