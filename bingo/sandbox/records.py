"""Builders for the ChatHub records the sandbox sends, shaped after real captures.

Shapes follow /work/shared/captures (emacs-aichat 2023-11 final, beehive updates,
EdgeGPT/ReEdgeGPT error finals). Pure apart from fresh ids and timestamps.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .answer import CITATION, Source

SERVICE_VERSION = "20231117.80"
HANDSHAKE_ACK: dict[str, Any] = {}
PING = {"type": 6}
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


def throttling(ctx: TurnContext) -> dict[str, int]:
    return {
        "maxNumUserMessagesInConversation": ctx.max_turns,
        "numUserMessagesInConversation": min(ctx.turn, ctx.max_turns),
        "maxNumLongDocSummaryUserMessagesInConversation": 50,
        "numLongDocSummaryUserMessagesInConversation": 0,
    }


def throttling_update(ctx: TurnContext) -> dict[str, Any]:
    """The first record of a turn: counters only, no `messages` (beehive capture)."""
    arguments = {"requestId": ctx.request_id, "throttling": throttling(ctx)}
    return {"type": 1, "target": "update", "arguments": [arguments]}


def update(ctx: TurnContext, message: Mapping[str, Any]) -> dict[str, Any]:
    """A type-1 update carrying exactly one message, as the hub always did."""
    arguments = {"messages": [message], "requestId": ctx.request_id}
    return {"type": 1, "target": "update", "arguments": [arguments]}


def bot_message(ctx: TurnContext, message_id: str, text: str, **fields: Any) -> dict[str, Any]:
    now = stamp()
    return {
        "text": text, "author": "bot", "createdAt": now, "timestamp": now,
        "messageId": message_id, "requestId": ctx.request_id, "offense": "None",
        "feedback": dict(_FEEDBACK), "contentOrigin": "DeepLeo", **fields,
    }


def progress(ctx: TurnContext, message_type: str, text: str, **fields: Any) -> dict[str, Any]:
    """A progress message: own messageId, a messageType, a RichTextBlock card."""
    run = {"type": "TextRun", "isSubtle": True, "italic": True, "text": text}
    card = {"type": "AdaptiveCard", "version": "1.0",
            "body": [{"type": "RichTextBlock", "inlines": [run]}]}
    return bot_message(ctx, new_id(), text, messageType=message_type,
                       adaptiveCards=[card], **fields)


def search_messages(ctx: TurnContext, query: str, source: Source) -> list[dict[str, Any]]:
    """InternalSearchQuery, InternalSearchResult and InternalLoaderMessage, in that order."""
    hit = {"title": source.title, "snippets": ["A page the sandbox cites."], "url": source.url}
    results = json.dumps({"web_search_results": [hit]}, ensure_ascii=False)
    loader = "Generating answers for you..."
    return [
        progress(ctx, "InternalSearchQuery", f"Searching the web for: `{query}`",
                 hiddenText=query, toolResultPublishPreference="Never"),
        progress(ctx, "InternalSearchResult", results, invocation=f'search_web(query="{query}")',
                 hiddenText=f"search_web('{query}') was invoked and returned:\n```json\n{results}\n```"),
        progress(ctx, "InternalLoaderMessage", loader, hiddenText=loader),
    ]


def answer(ctx: TurnContext, message_id: str, text: str, source: Source,
           *, suggestions: Sequence[str] = (), **fields: Any) -> dict[str, Any]:
    """The answer message: plain markdown `text`, and a card whose first TextBlock
    holds link references plus the markers rewritten as `[^1^][1]`."""
    cited = CITATION in text
    block = text
    body: list[dict[str, Any]] = []
    if cited:
        block = f'[1]: {source.url} "{source.title}"\n\n' + text.replace(CITATION, CITATION + "[1]")
    body.append({"type": "TextBlock", "text": block, "wrap": True})
    if cited:
        body.append({"type": "TextBlock", "size": "small", "wrap": True,
                     "text": f"Learn more: [1. example.com]({source.url})"})
    attributions = [_attribution(ctx, source)] if cited else []
    message = bot_message(ctx, message_id, text,
                          adaptiveCards=[{"type": "AdaptiveCard", "version": "1.0", "body": body}],
                          sourceAttributions=attributions, **fields)
    if suggestions:
        message["suggestedResponses"] = [_suggestion(s) for s in suggestions]
    return message


def _attribution(ctx: TurnContext, source: Source) -> dict[str, Any]:
    return {"providerDisplayName": source.title, "seeMoreUrl": source.url,
            "urlSignature": "c2FuZGJveA+/sandbox=", "searchQuery": ctx.message.get("text", ""),
            "provider": "search_web"}


def _suggestion(text: str) -> dict[str, Any]:
    now = stamp()
    return {"text": text, "author": "user", "createdAt": now, "timestamp": now,
            "messageId": new_id(), "messageType": "Suggestion", "offense": "Unknown",
            "feedback": dict(_FEEDBACK), "contentOrigin": "SuggestionChipsFalconService"}


def user_echo(ctx: TurnContext) -> dict[str, Any]:
    """The user's message as the final echoes it (contentOrigin "cib")."""
    sent = ctx.message
    return {
        "text": sent.get("text", ""), "author": "user",
        "from": {"id": ctx.client_id, "name": None, "partnerId": None},
        "createdAt": stamp(ctx.started), "timestamp": sent.get("timestamp") or stamp(ctx.started),
        "locale": sent.get("locale", "en-US"), "market": sent.get("market", "en-US"),
        "region": sent.get("region", "US"), "messageId": sent.get("messageId") or ctx.request_id,
        "requestId": ctx.request_id, "offense": "None", "feedback": dict(_FEEDBACK),
        "contentOrigin": "cib", "inputMethod": sent.get("inputMethod", "Keyboard"),
        "nlu": {"scoredClassification": {"classification": "DEEP_LEO", "score": None}},
    }


def final(ctx: TurnContext, messages: Sequence[Mapping[str, Any]], text: str) -> dict[str, Any]:
    """The Success type-2 item: user echo, every bot message, counters, plain answer."""
    item = _item(ctx, firstNewMessageIndex=1)
    item["messages"] = [user_echo(ctx), *messages]
    item["conversationExpiryTime"] = _expiry(ctx)
    item["shouldInitiateConversation"] = True
    item["throttling"] = throttling(ctx)
    item["result"] = {"value": "Success", "message": text, "serviceVersion": SERVICE_VERSION}
    return {"type": 2, "invocationId": ctx.invocation_id, "item": item}


def error_final(ctx: TurnContext, value: str, message: str, error: str | None) -> dict[str, Any]:
    """An error type-2 item: no messages; `result.error` only where captures had it."""
    item = _item(ctx, firstNewMessageIndex=None)
    item["result"] = {"value": value, "message": message, "serviceVersion": SERVICE_VERSION}
    if error is not None:
        item["result"]["error"] = error
    return {"type": 2, "invocationId": ctx.invocation_id, "item": item}


def _item(ctx: TurnContext, **fields: Any) -> dict[str, Any]:
    return {**fields, "defaultChatName": None, "conversationId": ctx.conversation_id,
            "requestId": ctx.request_id, "telemetry": {"startTime": _zulu(ctx.started)}}


def _expiry(ctx: TurnContext) -> str:
    return _zulu(ctx.started + timedelta(hours=6))


def _zulu(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def completion(invocation_id: Any, error: str | None = None) -> dict[str, Any]:
    """Type 3, the end of an invocation's stream."""
    record: dict[str, Any] = {"type": 3, "invocationId": invocation_id}
    if error is not None:
        record["error"] = error
    return record


def hub_close(error: str) -> dict[str, Any]:
    """Type 7, the hub closing the connection (node-chatgpt-api's comment)."""
    return {"type": 7, "error": error, "allowReconnect": True}
