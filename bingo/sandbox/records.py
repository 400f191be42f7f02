"""The SignalR records the ChatHub side sends: updates, finals, completions, close.

Shapes follow the captures in tests/captures (beehive throttling update, emacs-aichat final,
EdgeGPT/ReEdgeGPT/beehive error finals). Messages inside them come from messages.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .messages import TurnContext, user_echo

SERVICE_VERSION = "20231117.80"
HANDSHAKE_ACK: dict[str, Any] = {}
PING = {"type": 6}


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


def final(
    ctx: TurnContext, messages: Sequence[Mapping[str, Any]], text: str
) -> dict[str, Any]:
    """The Success type-2 item: user echo, every bot message, counters, plain answer."""
    item = _item(ctx, firstNewMessageIndex=1)
    item["messages"] = [user_echo(ctx), *messages]
    item["conversationExpiryTime"] = _expiry(ctx)
    item["shouldInitiateConversation"] = True
    item["throttling"] = throttling(ctx)
    item["result"] = {
        "value": "Success",
        "message": text,
        "serviceVersion": SERVICE_VERSION,
    }
    return {"type": 2, "invocationId": ctx.invocation_id, "item": item}


def error_final(
    ctx: TurnContext, value: str, message: str, error: str | None
) -> dict[str, Any]:
    """An error type-2 item: no messages; `result.error` only where captures had it."""
    item = _item(ctx, firstNewMessageIndex=None)
    item["result"] = {
        "value": value,
        "message": message,
        "serviceVersion": SERVICE_VERSION,
    }
    if error is not None:
        item["result"]["error"] = error
    return {"type": 2, "invocationId": ctx.invocation_id, "item": item}


def _item(ctx: TurnContext, **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "defaultChatName": None,
        "conversationId": ctx.conversation_id,
        "requestId": ctx.request_id,
        "telemetry": {"startTime": _zulu(ctx.started)},
    }


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
