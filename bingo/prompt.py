"""Fold an OpenAI `messages` list into what Bing accepts: one prompt plus a context.

Bing keeps no history for a fresh conversation, so earlier turns travel as text in
Bing's own prompt markup (`[system](#additional_instructions)`, `[user](#message)`,
`[assistant](#message)`), the convention node-chatgpt-api, g4f and bingo share.
Pure code, shared by both upstreams.
"""
from __future__ import annotations

from dataclasses import dataclass

from .wire import Message

_SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str  # the last user message: what Bing answers
    context: str  # earlier messages in Bing markup; "" when there are none


def fold_messages(messages: tuple[Message, ...], budget: int) -> Prompt:
    """Split off the last user message and render the rest within `budget` chars.

    System messages come first and are always kept; of the conversation, the newest
    blocks are kept and the oldest dropped once the budget is spent.
    """
    last_user = max(i for i, m in enumerate(messages) if m.role == "user")
    earlier = [m for i, m in enumerate(messages) if i != last_user]
    system = [_block(m) for m in earlier if m.role in _SYSTEM_ROLES]
    turns = [_block(m) for m in earlier if m.role not in _SYSTEM_ROLES]
    remaining = budget - sum(len(b) + 1 for b in system)
    kept: list[str] = []
    for block in reversed(turns):
        if len(block) + 1 > remaining:  # +1: the newline that joins blocks
            break
        kept.append(block)
        remaining -= len(block) + 1
    return Prompt(messages[last_user].content, "\n".join(system + kept[::-1]))


def _block(message: Message) -> str:
    if message.role in _SYSTEM_ROLES:
        return f"[system](#additional_instructions)\n{message.content.strip()}\n"
    return f"[{message.role}](#message)\n{message.content.strip()}\n"
