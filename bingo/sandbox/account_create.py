"""The Copilot creates as the sandbox serves them per account, and the control endpoint
for account rules (`accounts.py` holds the rules; `rest.py` routes here)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from . import create
from .accounts import AccountRules, credentials
from .create import Reply, json_reply
from .state import State


def copilot_create(state: State, headers: Iterable[tuple[str, str]], *, start: bool) -> Reply:
    """A Copilot create as create.py serves it, unless the caller's account has a rule."""
    headers = list(headers)
    who, token = credentials(headers)
    refused = state.accounts.refusal(who, token)
    if refused is not None:
        state.count_create()
        return Reply(refused.status, refused.body, refused.content_type, refused.headers)
    cookie = next((value for name, value in headers if name.lower() == "cookie"), "")
    reply = create.copilot_create(state, cookie, start=start)
    conversation_id = _conversation_id(reply)
    if conversation_id:
        state.accounts.created(conversation_id, who)
    return reply


def queue_rules(state: State, body: bytes) -> Reply:
    """POST /sandbox/accounts {"rules": {marker: rule}}: all checked before any is set."""
    try:
        rules = json.loads(body or b"{}").get("rules", {})
    except (ValueError, AttributeError) as exc:
        return json_reply({"error": str(exc)}, status=400)
    if not isinstance(rules, dict):
        return json_reply({"error": "rules must be an object of marker: rule"}, status=400)
    try:
        probe = AccountRules()
        for marker, rule in rules.items():
            probe.set(str(marker), str(rule))
    except ValueError as exc:
        return json_reply({"error": str(exc)}, status=400)
    for marker, rule in rules.items():
        state.accounts.set(str(marker), str(rule))
    return json_reply({"rules": len(rules)})


def _conversation_id(reply: Reply) -> str:
    if reply.status != 200:
        return ""
    try:
        body: Any = json.loads(reply.body)
    except ValueError:
        return ""
    found = body.get("currentConversationId") or body.get("id") if isinstance(body, dict) else None
    return found if isinstance(found, str) else ""
