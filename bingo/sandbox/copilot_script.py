"""The script of one Copilot turn: the events of protocol note section 3.7, in captured order.

Pure, like `script.py` for ChatHub: events go out without their `id` counter,
which the session adds as it sends them. Where the text, citations and image
go is `answer.copilot_answer`, so tests can predict every frame.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from .answer import (
    Source,
    copilot_answer,
    image_prompt_for,
    suggestions_for,
    title_for,
)
from .directives import Plan
from .registry import nanoid
from .steps import Action, Do, Send, Step

UNAVAILABLE = "Copilot is not available in your region."
MESSAGE_ERROR = "Something went wrong. Please try again."
THOUGHTS = (
    "Reading the question.",
    "Looking for a source to cite.",
    "Writing the answer.",
)
THOUGHT_SECONDS = 0.5  # with think=S, about one chainOfThought per this many seconds
MAX_THOUGHTS = 60
QUOTA_SECONDS = 90  # over-research-quota: nextAvailableAt is this far ahead
IMAGE_HOST = "https://copilot.microsoft.com/th/id/"
# The session gives it the next "0.000N" id and remembers it for the response.
EMPTY_CHALLENGE: dict[str, Any] = {
    "event": "challenge",
    "method": None,
    "parameter": None,
}
_CUT_SHORT = frozenset({"drop", "chat-message-error"})


def error_event(
    code: str, message: str | None = None, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An `error` event; the captured ones had `errorCode` and nothing else."""
    event: dict[str, Any] = {"event": "error", "errorCode": code}
    if message is not None:
        event["message"] = message
    if detail is not None:
        event["errorDetail"] = detail
    return event


def copilot_steps(
    plan: Plan, conversation_id: str, prompt: str, mode: str
) -> list[Step]:
    """Every event of one answered `send`, or the fault that replaces them."""
    early = _early_end(plan)
    if early is not None:
        return early
    answer_id = nanoid()
    steps: list[Step] = [
        Send((_started("received", conversation_id, nanoid()),), plan.slow_first)
    ]
    steps += _thinking(plan, mode, answer_id)
    steps.append(Send((_started("startMessage", conversation_id, answer_id),)))
    if plan.mode_selected is not None:
        # foxroute: the abandoned message ends empty; the answer needs a re-send.
        selected = {"event": "modeSelected", "mode": plan.mode_selected}
        done = {"event": "done", "messageId": answer_id}
        return steps + [Send(({**selected, "messageId": answer_id},)), Send((done,))]
    steps += _answer(plan, prompt, answer_id)
    if isinstance(steps[-1], Do) or plan.outcome == "chat-message-error":
        return steps
    closing = _closing(conversation_id, prompt, answer_id)
    return steps + [Send((event,)) for event in closing]


def _early_end(plan: Plan) -> list[Step] | None:
    """Outcomes that replace the whole turn with one event (or with silence)."""
    if plan.outcome == "silent" and plan.outcome_value is None:
        return [Do(Action.SILENCE, plan.slow_first)]
    event = None
    if plan.outcome == "error-unavailable":
        event = error_event("chat-service-unavailable", UNAVAILABLE)
    elif plan.outcome in ("invalid-event", "error"):
        event = error_event(plan.outcome_value or plan.outcome)
    elif plan.outcome == "over-research-quota":
        # foxroute: deep research is a monthly quota; the detail says when it is back.
        detail = {"nextAvailableAt": _iso(timedelta(seconds=QUOTA_SECONDS))}
        event = error_event("over-research-quota", detail=detail)
    return None if event is None else [Send((event,), plan.slow_first)]


def _thinking(plan: Plan, mode: str, answer_id: str) -> list[Step]:
    """Think Deeper's chainOfThought, spread over `think` seconds; never answer text."""
    if mode != "reasoning" and plan.think <= 0:
        return []
    count = len(THOUGHTS)
    if plan.think > 0:
        count = max(count, min(MAX_THOUGHTS, math.ceil(plan.think / THOUGHT_SECONDS)))
    return [
        Send(
            ({"event": "chainOfThought", "messageId": answer_id, "text": t},),
            plan.think / count,
        )
        for t in (THOUGHTS[i % len(THOUGHTS)] for i in range(count))
    ]


def _answer(plan: Plan, prompt: str, answer_id: str) -> list[Step]:
    """appendText deltas, citations and the image; ends early if the plan says so."""
    layout = copilot_answer(prompt, plan)
    steps: list[Step] = []
    if plan.image == "only":
        return _image(prompt, answer_id, plan.delay)
    part_id, sent = nanoid(), 0
    stop_at = max(1, len(layout.cuts) // 2)
    for index, cut in enumerate(layout.cuts):
        if index == stop_at and plan.outcome in _CUT_SHORT:
            return steps + _cut_short(plan)
        delta = {"event": "appendText", "messageId": answer_id, "partId": part_id}
        steps.append(Send(({**delta, "text": layout.text[sent:cut]},), plan.delay))
        sent = cut
        steps += [
            Send((_citation(source, answer_id),))
            for offset, source in layout.citations
            if offset == cut
        ]
        if plan.outcome == "silent":  # silent=after-text
            return [*steps, Do(Action.SILENCE)]
        if plan.outcome == "challenge" and index == min(1, len(layout.cuts) - 1):
            steps.append(Send((dict(EMPTY_CHALLENGE),)))  # mid-turn, nothing waits
        if cut == layout.image_at:
            steps.append(Send((_part_completed(answer_id, part_id),)))
            steps += _image(prompt, answer_id, plan.delay)
            part_id = nanoid()
    if plan.outcome in _CUT_SHORT:  # a one-delta answer: cut after its only delta
        return steps + _cut_short(plan)
    return [*steps, Send((_part_completed(answer_id, part_id),))]


def _cut_short(plan: Plan) -> list[Step]:
    """The end of a turn that dies mid-answer: a dropped socket or chatMessageError."""
    if plan.outcome == "drop":
        return [Do(Action.DROP, plan.delay)]
    error = {
        "event": "chatMessageError",
        "errorCode": plan.outcome_value or "message-error",
        "message": MESSAGE_ERROR,
    }
    return [Send((error,), plan.delay)]


def _image(prompt: str, answer_id: str, pause: float) -> list[Step]:
    """generatingImage, then imageGenerated shaped like the 6Kmfi6HP fixture."""
    url = f"{IMAGE_HOST}BCO.{uuid.uuid4()}.png"
    generating = {
        "event": "generatingImage",
        "messageId": answer_id,
        "prompt": image_prompt_for(prompt),
    }
    generated = {
        "event": "imageGenerated",
        "messageId": answer_id,
        "partId": nanoid(),
        "url": url,
        "thumbnailUrl": url + "/?w=270&qlt=90",
        "nextAvailableAt": None,
    }
    return [Send((generating,), pause), Send((generated,), pause)]


def _citation(source: Source, answer_id: str) -> dict[str, Any]:
    return {
        "event": "citation",
        "messageId": answer_id,
        "url": source.url,
        "title": source.title,
        "publisher": urlsplit(source.url).hostname or "",
        "snippet": f"What {source.title} says about this question.",
    }


def _part_completed(answer_id: str, part_id: str) -> dict[str, Any]:
    return {"event": "partCompleted", "messageId": answer_id, "partId": part_id}


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


def _iso(ahead: timedelta = timedelta(0)) -> str:
    """UTC time in the service's ISO-8601 form, `ahead` of now."""
    moment = datetime.now(timezone.utc) + ahead
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _started(kind: str, conversation_id: str, message_id: str) -> dict[str, Any]:
    return {
        "event": kind,
        "conversationId": conversation_id,
        "messageId": message_id,
        "createdAt": _iso(),
    }
