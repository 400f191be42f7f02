"""The script of one Copilot turn: the events of section 6.2, in captured order.

Pure, like `script.py` for ChatHub: events go out without their `id` counter,
which the session adds as it sends them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .answer import (
    CITATION,
    answer_for,
    prefixes,
    source_for,
    suggestions_for,
    title_for,
)
from .directives import Plan
from .registry import nanoid
from .steps import Action, Do, Send, Step

UNAVAILABLE = "Copilot is not available in your region."
THOUGHTS = (
    "Reading the question.",
    "Looking for a source to cite.",
    "Writing the answer.",
)


def error_event(code: str, message: str | None = None) -> dict[str, Any]:
    """An `error` event; the captured one had `errorCode` and nothing else."""
    event: dict[str, Any] = {"event": "error", "errorCode": code}
    if message is not None:
        event["message"] = message
    return event


def copilot_steps(
    plan: Plan, conversation_id: str, prompt: str, mode: str
) -> list[Step]:
    """Every event of one answered `send`, or the fault that replaces them."""
    if plan.outcome == "error-unavailable":
        unavailable = error_event("chat-service-unavailable", UNAVAILABLE)
        return [Send((unavailable,), plan.slow_first)]
    if plan.outcome == "invalid-event":
        return [Send((error_event("invalid-event"),), plan.slow_first)]
    if plan.outcome == "silent" and plan.outcome_value is None:
        return [Do(Action.SILENCE, plan.slow_first)]
    answer_id = nanoid()
    steps: list[Step] = [
        Send((_started("received", conversation_id, nanoid()),), plan.slow_first)
    ]
    if mode == "reasoning":
        # Think Deeper reasons first; chainOfThought is never part of the answer.
        steps += [
            Send(({"event": "chainOfThought", "messageId": answer_id, "text": t},))
            for t in THOUGHTS
        ]
    steps.append(Send((_started("startMessage", conversation_id, answer_id),)))
    steps += _answer(plan, prompt, answer_id)
    if isinstance(steps[-1], Do):
        return steps
    closing = _closing(conversation_id, prompt, answer_id)
    return steps + [Send((event,)) for event in closing]


def _answer(plan: Plan, prompt: str, answer_id: str) -> list[Step]:
    """The appendText deltas and the citation; ends with a Do if the turn dies."""
    texts = prefixes(answer_for(prompt, plan.chars, unicode=plan.unicode), plan.updates)
    steps: list[Step] = []
    part_id, sent = nanoid(), ""
    for index, text in enumerate(texts):
        if plan.outcome == "drop" and index == max(1, len(texts) // 2):
            return [*steps, Do(Action.DROP, plan.delay)]
        delta = {"event": "appendText", "messageId": answer_id, "partId": part_id}
        steps.append(Send(({**delta, "text": text[len(sent) :]},), plan.delay))
        if CITATION in text and CITATION not in sent:
            steps.append(Send((_citation(prompt, answer_id),)))
        sent = text
        if plan.outcome == "silent":  # silent=after-text
            return [*steps, Do(Action.SILENCE)]
    done = {"event": "partCompleted", "messageId": answer_id, "partId": part_id}
    return [*steps, Send((done,))]


def _citation(prompt: str, answer_id: str) -> dict[str, Any]:
    source = source_for(prompt)
    return {
        "event": "citation",
        "messageId": answer_id,
        "url": source.url,
        "title": source.title,
        "iconUrl": "https://example.com/favicon.ico",
    }


def _closing(conversation_id: str, prompt: str, answer_id: str) -> list[dict[str, Any]]:
    """`done`, then the title and follow-ups, which Copilot sends *after* done."""
    return [
        {"event": "done", "messageId": answer_id},
        {
            "event": "titleUpdate",
            "conversationId": conversation_id,
            "title": title_for(prompt),
        },
        {
            "event": "suggestedFollowups",
            "messageId": answer_id,
            "suggestions": suggestions_for(prompt),
        },
    ]


def _started(kind: str, conversation_id: str, message_id: str) -> dict[str, Any]:
    created = (
        datetime.now(timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    return {
        "event": kind,
        "conversationId": conversation_id,
        "messageId": message_id,
        "createdAt": created,
    }
