"""The bot and user messages inside ChatHub updates and finals, shaped after captures.

Shapes follow the captures in tests/captures (emacs-aichat 2023-11 final, beehive updates,
bilichat answer cards). Pure apart from fresh ids and timestamps.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .answer import CITATION, Source

_FEEDBACK = {"tag": None, "updatedOn": None, "type": "None"}


@dataclass(frozen=True, slots=True)
class TurnContext:
    """What every record of one turn needs to know about the invocation."""

    conversation_id: str
    client_id: str
    invocation_id: Any  # echoed verbatim; clients send a string
    request_id: str
    message: Mapping[str, Any]  # the client's arguments[0].message
    turn: int  # user messages so far in the conversation, this one included
    max_turns: int
    started: datetime


def stamp(moment: datetime | None = None) -> str:
    """Bing's timestamps: seven fractional digits and an explicit +00:00."""
    moment = moment or datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def new_id() -> str:
    return str(uuid.uuid4())


def bot_message(
    ctx: TurnContext, message_id: str, text: str, **fields: Any
) -> dict[str, Any]:
    now = stamp()
    return {
        "text": text,
        "author": "bot",
        "createdAt": now,
        "timestamp": now,
        "messageId": message_id,
        "requestId": ctx.request_id,
        "offense": "None",
        "feedback": dict(_FEEDBACK),
        "contentOrigin": "DeepLeo",
        **fields,
    }


def progress(
    ctx: TurnContext, message_type: str, text: str, **fields: Any
) -> dict[str, Any]:
    """A progress message: own messageId, a messageType, a RichTextBlock card."""
    run = {"type": "TextRun", "isSubtle": True, "italic": True, "text": text}
    card = {
        "type": "AdaptiveCard",
        "version": "1.0",
        "body": [{"type": "RichTextBlock", "inlines": [run]}],
    }
    return bot_message(
        ctx, new_id(), text, messageType=message_type, adaptiveCards=[card], **fields
    )


def search_messages(
    ctx: TurnContext, query: str, source: Source
) -> list[dict[str, Any]]:
    """InternalSearchQuery, InternalSearchResult and InternalLoaderMessage, in that order."""
    hit = {
        "title": source.title,
        "snippets": ["A page the sandbox cites."],
        "url": source.url,
    }
    results = json.dumps({"web_search_results": [hit]}, ensure_ascii=False)
    loader = "Generating answers for you..."
    invoked = (
        f"search_web('{query}') was invoked and returned:\n```json\n{results}\n```"
    )
    return [
        progress(
            ctx,
            "InternalSearchQuery",
            f"Searching the web for: `{query}`",
            hiddenText=query,
            toolResultPublishPreference="Never",
        ),
        progress(
            ctx,
            "InternalSearchResult",
            results,
            invocation=f'search_web(query="{query}")',
            hiddenText=invoked,
        ),
        progress(ctx, "InternalLoaderMessage", loader, hiddenText=loader),
    ]


def answer(
    ctx: TurnContext,
    message_id: str,
    text: str,
    source: Source,
    *,
    suggestions: Sequence[str] = (),
    **fields: Any,
) -> dict[str, Any]:
    """The answer message: plain markdown `text`, and a card whose first TextBlock
    holds link references plus the markers rewritten as `[^1^][1]`."""
    cited = CITATION in text
    block = text
    body: list[dict[str, Any]] = []
    if cited:
        block = f'[1]: {source.url} "{source.title}"\n\n' + text.replace(
            CITATION, CITATION + "[1]"
        )
    body.append({"type": "TextBlock", "text": block, "wrap": True})
    if cited:
        body.append(
            {
                "type": "TextBlock",
                "size": "small",
                "wrap": True,
                "text": f"Learn more: [1. example.com]({source.url})",
            }
        )
    attributions = [_attribution(ctx, source)] if cited else []
    message = bot_message(
        ctx,
        message_id,
        text,
        adaptiveCards=[{"type": "AdaptiveCard", "version": "1.0", "body": body}],
        sourceAttributions=attributions,
        **fields,
    )
    if suggestions:
        message["suggestedResponses"] = [_suggestion(s) for s in suggestions]
    return message


def _attribution(ctx: TurnContext, source: Source) -> dict[str, Any]:
    return {
        "providerDisplayName": source.title,
        "seeMoreUrl": source.url,
        "urlSignature": "c2FuZGJveA+/sandbox=",
        "searchQuery": ctx.message.get("text", ""),
        "provider": "search_web",
    }


def _suggestion(text: str) -> dict[str, Any]:
    now = stamp()
    return {
        "text": text,
        "author": "user",
        "createdAt": now,
        "timestamp": now,
        "messageId": new_id(),
        "messageType": "Suggestion",
        "offense": "Unknown",
        "feedback": dict(_FEEDBACK),
        "contentOrigin": "SuggestionChipsFalconService",
    }


def user_echo(ctx: TurnContext) -> dict[str, Any]:
    """The user's message as the final echoes it (contentOrigin "cib")."""
    sent = ctx.message
    return {
        "text": sent.get("text", ""),
        "author": "user",
        "from": {"id": ctx.client_id, "name": None, "partnerId": None},
        "createdAt": stamp(ctx.started),
        "timestamp": sent.get("timestamp") or stamp(ctx.started),
        "locale": sent.get("locale", "en-US"),
        "market": sent.get("market", "en-US"),
        "region": sent.get("region", "US"),
        "messageId": sent.get("messageId") or ctx.request_id,
        "requestId": ctx.request_id,
        "offense": "None",
        "feedback": dict(_FEEDBACK),
        "contentOrigin": "cib",
        "inputMethod": sent.get("inputMethod", "Keyboard"),
        "nlu": {"scoredClassification": {"classification": "DEEP_LEO", "score": None}},
    }
