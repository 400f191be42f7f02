"""Per-turn behaviour: `[sandbox:NAME=VALUE]` directives, fault names, and the Plan.

This module owns the vocabulary (which names exist, which stage takes them, how
their values parse). It is pure: no sockets, no clocks, no shared state.
"""

from __future__ import annotations

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
        "create-empty",
        "create-nonjson",
        "create-slow",
    }
)
# Stage "upgrade": consumed by the next websocket upgrade (either protocol).
UPGRADE = frozenset({"ws-403", "ws-200", "ws-500"})
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
COPILOT_OUTCOMES = frozenset(
    {
        "challenge",
        "hashcash",
        "cloudflare",
        "error-unavailable",
        "invalid-event",
        "silent",
        "drop",
    }
)
CHATHUB_TURN = MODIFIERS | CHATHUB_OUTCOMES
COPILOT_TURN = (
    frozenset({"chars", "updates", "delay", "slow-first", "unicode"}) | COPILOT_OUTCOMES
)
KNOWN = (
    CHATHUB_CREATE | COPILOT_CREATE | UPGRADE | HANDSHAKE | CHATHUB_TURN | COPILOT_TURN
)

# name -> (type, lowest, highest); bounded so a typo cannot wedge a test run.
_NUMBERS: dict[str, tuple[type, float, float]] = {
    "chars": (int, 1, 200_000),
    "updates": (int, 1, 1_000),
    "delay": (float, 0.0, 60.0),
    "slow-first": (float, 0.0, 600.0),
    "create-slow": (float, 0.0, 600.0),
}
_WORDS = {"silent": frozenset({"after-text"})}

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
    if name in _NUMBERS:
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
        if name in MODIFIERS:
            plan = _modify(plan, name, value)
        elif plan.outcome is None or (name, value) == queued:
            plan = replace(plan, outcome=name, outcome_value=value)
    return plan


def _modify(plan: Plan, name: str, value: str | None) -> Plan:
    if name == "no-search":
        return replace(plan, search=False)
    new: Any = _NUMBERS[name][0](value or "") if name in _NUMBERS else True
    return replace(plan, **{name.replace("-", "_"): new})
