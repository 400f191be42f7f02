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
        return [
            Send(
                (error_event("chat-service-unavailable", UNAVAILABLE),), plan.slow_first
            )
        ]
    if plan.outcome == "invalid-event":
        return [Send((error_event("invalid-event"),), plan.slow_first)]
    if plan.outcome == "silent" and plan.outcome_value is None:
        return [Do(Action.SILENCE, plan.slow_first)]
    answer_id = nanoid()
    steps: list[Step] = [
        Send((_started("received", conversation_id, nanoid()),), plan.slow_first)
    ]
    if (
        mode == "reasoning"
    ):  # Think Deeper: reasoning first, never part of the answer text
        steps += [
            Send(({"event": "chainOfThought", "messageId": answer_id, "text": t},))
            for t in THOUGHTS
        ]
    steps.append(Send((_started("startMessage", conversation_id, answer_id),)))
    ending = _answer(plan, steps, prompt, answer_id)
    if ending is not None:
        return steps + [ending]
    return steps + [
        Send((event,)) for event in _closing(conversation_id, prompt, answer_id)
    ]


def _answer(plan: Plan, steps: list[Step], prompt: str, answer_id: str) -> Do | None:
    """Append the appendText deltas (and the citation) to `steps`; a Do if the turn dies."""
    texts = prefixes(answer_for(prompt, plan.chars, unicode=plan.unicode), plan.updates)
    part_id, sent, cited = nanoid(), "", False
    for index, text in enumerate(texts):
        if plan.outcome == "drop" and index == max(1, len(texts) // 2):
            return Do(Action.DROP, plan.delay)
        delta = {
            "event": "appendText",
            "messageId": answer_id,
            "partId": part_id,
            "text": text[len(sent) :],
        }
        steps.append(Send((delta,), plan.delay))
        sent = text
        if not cited and CITATION in sent:
            cited = True
            source = source_for(prompt)
            steps.append(
                Send(
                    (
                        {
                            "event": "citation",
                            "messageId": answer_id,
                            "url": source.url,
                            "title": source.title,
                            "iconUrl": "https://example.com/favicon.ico",
                        },
                    )
                )
            )
        if plan.outcome == "silent":  # silent=after-text
            return Do(Action.SILENCE)
    steps.append(
        Send(({"event": "partCompleted", "messageId": answer_id, "partId": part_id},))
    )
    return None


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
