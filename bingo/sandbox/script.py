"""The script of one ChatHub turn: which records go out, batched how, and what then.

Pure: a Plan and the invocation go in, a list of steps comes out; the session
plays them over the socket. Keeping this apart from I/O keeps every fault readable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from . import messages as msg
from . import records as rec
from .answer import (
    Source,
    answer_for,
    prefixes,
    search_query_for,
    source_for,
    suggestions_for,
)
from .directives import Plan
from .framing import Record
from .messages import TurnContext
from .steps import Action, Do, Send, Step

APOLOGY = (
    "My mistake, I can't give a response to that right now. "
    "Let's try a different topic."
)
DISENGAGED = "It might be time to move onto a new topic. Let's start over."
TURN_LIMIT = (
    'Sorry, this conversation has reached its limit. Use the "broom" button '
    "to sweep this away and chat more."
)
GARBAGE = "<html><body>502 Bad Gateway</body></html>"
# outcome -> (result.value, result.message, whether result.error repeats the message)
_ERRORS = {
    "throttled": ("Throttled", "Request is throttled.", True),
    "captcha": ("CaptchaChallenge", "User needs to solve CAPTCHA to continue.", True),
    "unauthorized": (
        "UnauthorizedRequest",
        "Sorry, you need to login first to access this service.",
        True,
    ),
    "forbidden": (
        "Forbidden",
        "Sorry, you are not allowed to access this service.",
        True,
    ),
}
_CUT_SHORT = frozenset({"apology", "disengaged", "drop", "type7"})


def error_final(ctx: TurnContext, outcome: str, pause: float = 0.0) -> list[Step]:
    """An error type 2 with no messages, then type 3, in one message (beehive capture)."""
    if outcome == "invalid-session":
        message = (
            f"Conversation '{ctx.conversation_id}' doesn't exist or has expired. "
            "Conversations expire after 06:00:00."
        )
        final = rec.error_final(ctx, "InvalidSession", message, None)
    elif outcome == "invalid-request":
        count = 2 * ctx.turn
        message = f"Conversation '{ctx.conversation_id}' with {count} messages already exists."
        final = rec.error_final(ctx, "InvalidRequest", message, "InvalidRequest")
    else:
        value, message, same = _ERRORS[outcome]
        final = rec.error_final(ctx, value, message, message if same else None)
    return [Send((final, rec.completion(ctx.invocation_id)), pause)]


def turn_steps(plan: Plan, ctx: TurnContext, prompt: str) -> list[Step]:
    """Every step of one turn, from the throttling update to type 3 (or the fault)."""
    outcome = plan.outcome
    if outcome in _ERRORS or outcome in ("invalid-session", "invalid-request"):
        return error_final(ctx, outcome, plan.slow_first)
    if outcome == "silent" and plan.outcome_value is None:
        return [Do(Action.SILENCE, plan.slow_first)]
    steps: list[Step] = [Send((rec.throttling_update(ctx),), plan.slow_first)]
    source, shown = source_for(prompt), []
    if outcome == "turn-limit":
        limit = msg.answer(
            ctx, msg.new_id(), TURN_LIMIT, source, contentOrigin="TurnLimiter"
        )
        return steps + [
            Send((rec.update(ctx, limit),)),
            _final(ctx, [limit], TURN_LIMIT),
        ]
    if plan.search:
        shown = msg.search_messages(ctx, search_query_for(prompt), source)
        steps += [Send((rec.update(ctx, message),)) for message in shown]
    return steps + list(_answer_steps(plan, ctx, prompt, source, shown))


def _answer_steps(
    plan: Plan,
    ctx: TurnContext,
    prompt: str,
    source: Source,
    shown: list[dict[str, Any]],
) -> Iterator[Step]:
    text = answer_for(prompt, plan.chars, unicode=plan.unicode)
    message_id = msg.new_id()
    texts = [] if plan.final_only else prefixes(text, plan.updates)
    if texts and plan.trailing_space:
        # Bing streamed a trailing "  \n" that its final text did not have.
        texts[-1] += "  \n"
    if plan.outcome in _CUT_SHORT:
        texts = texts[: max(1, len(texts) // 2)]
    updates: list[Record] = [
        rec.update(ctx, msg.answer(ctx, message_id, t, source, offense="Unknown"))
        for t in texts
    ]
    if plan.outcome == "garbage":
        # The stream carries on afterwards, for clients that skip bad records.
        updates.insert(max(1, len(updates) // 2), GARBAGE)
    if plan.outcome == "silent":  # silent=after-text
        yield from _batched(updates[:1], plan.delay)
        yield Do(Action.SILENCE)
        return
    yield from _batched(updates, plan.delay)
    streamed = _Answer(message_id, text, texts[-1] if texts else "")
    yield from _ending(plan, ctx, prompt, source, shown, streamed)


@dataclass(frozen=True, slots=True)
class _Answer:
    """The answer of a turn: one message id, the full text, what was streamed of it."""

    message_id: str
    text: str
    partial: str


def _ending(
    plan: Plan,
    ctx: TurnContext,
    prompt: str,
    source: Source,
    shown: list[dict[str, Any]],
    answer: _Answer,
) -> Iterator[Step]:
    outcome, message_id, text = plan.outcome, answer.message_id, answer.text
    if outcome == "drop":
        yield Do(Action.DROP, plan.delay)
    elif outcome == "type7":
        yield Send((rec.hub_close("Connection closed with an error."),), plan.delay)
        yield Do(Action.CLOSE)
    elif outcome == "apology":
        sorry = msg.answer(ctx, message_id, APOLOGY, source, contentOrigin="Apology")
        yield Send((rec.update(ctx, sorry),), plan.delay)
        yield _final(ctx, [*shown, sorry], APOLOGY)
    elif outcome == "disengaged":
        cut = msg.answer(ctx, message_id, answer.partial, source)
        bye = msg.progress(ctx, "Disengaged", DISENGAGED)
        yield Send((rec.update(ctx, bye),), plan.delay)
        yield _final(ctx, [*shown, cut, bye], DISENGAGED)
    else:
        done = msg.answer(
            ctx, message_id, text, source, suggestions=suggestions_for(prompt)
        )
        extra = [msg.progress(ctx, "RenderCardRequest", search_query_for(prompt))]
        yield _final(
            ctx, [*shown, done, *(extra if plan.render_card_last else [])], text
        )


def _final(ctx: TurnContext, messages: Sequence[dict[str, Any]], text: str) -> Send:
    """Type 2 and type 3 travel in the same websocket message, as captured."""
    return Send((rec.final(ctx, messages, text), rec.completion(ctx.invocation_id)))


def _batched(updates: Sequence[Record], delay: float) -> Iterator[Send]:
    """Every third websocket message carries two updates, as the hub batched them."""
    index = 0
    while index < len(updates):
        size = 2 if index % 4 == 2 else 1
        yield Send(tuple(updates[index : index + size]), delay)
        index += size
