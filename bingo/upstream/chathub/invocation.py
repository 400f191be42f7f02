"""The ChatHub `chat` invocation (SignalR type 4): the full argument set Bing expects.

Pure code. The set of fields and values is what EdgeGPT, sydney.py and bingo sent in the header-signature era.
"""
from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ...config import Settings
from ...prompt import Prompt
from ...models import Model

if TYPE_CHECKING:
    from . import Conversation

ALLOWED_MESSAGE_TYPES = (
    "ActionRequest", "Chat", "Context", "InternalSearchQuery", "InternalSearchResult",
    "Disengaged", "InternalLoaderMessage", "Progress", "RenderCardRequest", "AdsQuery",
    "SemanticSerp", "GenerateContentQuery", "SearchQuery",
)


def build_invocation(conversation: Conversation, model: Model, prompt: Prompt, settings: Settings) -> dict:
    """The type-4 record asking Bing one question in a fresh conversation."""
    request_id = str(uuid.uuid4())
    argument: dict[str, object] = {
        "source": "cib",
        "optionsSets": model.options_sets,
        "allowedMessageTypes": list(ALLOWED_MESSAGE_TYPES),
        "sliceIds": [],
        "verbosity": "verbose",
        "scenario": "SERP",
        "plugins": [],
        "traceId": secrets.token_hex(16),
        "conversationHistoryOptionsSets": ["autosave", "savemem", "uprofupd", "uprofgen"],
        "gptId": "copilot",
        "isStartOfSession": True,
        "requestId": request_id,
        "message": _message(prompt.text, request_id, settings.locale),
        "tone": model.tone,
        "spokenTextMode": "None",
        "participant": {"id": conversation.client_id},
        "conversationId": conversation.id,
    }
    if conversation.signature:
        argument["conversationSignature"] = conversation.signature
    if prompt.context:
        argument["previousMessages"] = [_context(prompt.context)]
    return {"arguments": [argument], "invocationId": "0", "target": "chat", "type": 4}


def _message(text: str, request_id: str, locale: str) -> dict[str, object]:
    return {
        "locale": locale,
        "market": locale,
        "region": locale.split("-")[1],
        "timestamp": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "author": "user",
        "inputMethod": "Keyboard",
        "text": text,
        "messageType": "Chat",
        "messageId": request_id,
        "requestId": request_id,
    }


def _context(description: str) -> dict[str, object]:
    """Earlier messages as a WebPage context, the shape node-chatgpt-api and bingo send."""
    return {
        "author": "user",
        "description": description,
        "contextType": "WebPage",
        "messageType": "Context",
        "messageId": "discover-web--page-ping-mriduna-----",
    }
