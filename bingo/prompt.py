"""Fold an OpenAI `messages` list into the one question an upstream accepts.

Neither upstream keeps history for a fresh conversation, so earlier turns travel as
text: for the ChatHub in Bing's own prompt markup (`[system](#additional_instructions)`,
`[user](#message)`, `[assistant](#message)`), the convention node-chatgpt-api and g4f
share; for Copilot as a plain transcript. Pure code.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import images, tools
from .errors import InvalidRequest
from .tools import AUTO, ResponseFormat, Tool, ToolChoice
from .wire import Message

_SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str  # the last user message: what Bing answers
    context: str  # earlier messages in Bing markup; "" when there are none


def with_tools(
    messages: tuple[Message, ...],
    declared: tuple[Tool, ...] = (),
    choice: ToolChoice = AUTO,
    parallel: bool = True,
    response_format: ResponseFormat | None = None,
) -> tuple[Message, ...]:
    """The conversation in plain messages, ready for `transcript` or `fold_messages`.

    Earlier calls become `<tool_call>` blocks in the assistant's text, their results
    user messages (so the newest result is what the upstream answers), and what the
    model must know about tools and JSON output one more system message. With
    tool_choice "none" the tools are not mentioned; earlier calls still are.
    """
    names = {call.id: call.name for message in messages for call in message.tool_calls}
    plain = []
    for message in messages:
        if message.tool_calls:
            text = "\n".join([message.content.strip(), *map(tools.render_call, message.tool_calls)]).strip()
            plain.append(Message("assistant", text))
        elif message.tool_call_id is not None:
            plain.append(Message("user", tools.render_result(message.tool_call_id, names.get(message.tool_call_id), message.content)))
        else:
            plain.append(message)
    said = tools.instructions(declared, choice, parallel, response_format)
    return (*plain, Message("system", said)) if said else tuple(plain)


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
    return f"[{message.role}](#message)\n{_text(message)}\n"


def transcript(messages: tuple[Message, ...], limit: int) -> str:
    """The whole conversation as one plain-text message of at most `limit` chars.

    Copilot keeps no history for a fresh conversation either, and refuses a message
    over about 10,000 characters (`text-too-long`); public clients flatten history
    into `User:` / `Assistant:` lines rather than Sydney's markup. System messages
    come first and are kept; of the turns, the oldest are dropped first. A lone
    question goes as it is. Raises InvalidRequest when the question alone is too long.
    """
    last_user = max(i for i, m in enumerate(messages) if m.role == "user")
    question = messages[last_user].content.strip()
    earlier = [m for i, m in enumerate(messages) if i != last_user]
    system = [m.content.strip() for m in earlier if m.role in _SYSTEM_ROLES and m.content.strip()]
    turns = [_line(m) for m in earlier if m.role not in _SYSTEM_ROLES and _text(m)]
    if not system and not turns:
        _check_length(len(question), limit, "The last user message is")
        return question
    head = "\n\n".join(system)
    tail = f"User: {question}"
    remaining = limit - len(head) - len(tail) - (2 if head else 0)  # the blank line after the head
    _check_length(limit - remaining, limit, "The system messages and the last user message are")
    kept: list[str] = []
    for line in reversed(turns):
        if len(line) + 1 > remaining:
            break
        kept.append(line)
        remaining -= len(line) + 1
    body = "\n".join([*kept[::-1], tail])
    return f"{head}\n\n{body}" if head else body


def _check_length(chars: int, limit: int, what: str) -> None:
    if chars > limit:
        raise InvalidRequest(
            f"{what} {chars} characters long; Copilot accepts at most {limit} in one message "
            "(BINGO_COPILOT_MAX_CHARS). Shorten the conversation.",
            param="messages", code="context_length_exceeded",
        )


def _line(message: Message) -> str:
    speaker = "Assistant" if message.role == "assistant" else "User"
    return f"{speaker}: {_text(message)}"


def _text(message: Message) -> str:
    """An earlier message's text, with an "[image]" line for each image it carried.

    Only the question's images go upstream (images.sent); earlier ones are history.
    """
    return "\n".join(filter(None, [message.content.strip(), images.markers(len(message.images))]))
