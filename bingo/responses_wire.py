"""The Responses API wire format: parse a request into messages, build the bodies.

Pure functions over plain values, like `wire.py` for the completions APIs: no
Flask, no sockets. A request becomes the same `Message` tuple chat builds (earlier
function calls and their outputs included), and its function tools and `text.format`
the same ToolChoice/ResponseFormat values, so the upstream answers it exactly as it
answers a chat request; every 400 names its param.
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from . import images, prompt, tools
from .errors import InvalidRequest
from .images import ImageRef
from .models import DEFAULT_NAME, Catalogue, Model
from .tools import NONE, ResponseFormat, Tool, ToolCall, ToolChoice
from .wire import MAX_MODEL_CHARS, Message, estimate_tokens, optional_bool

_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "text": "text", "summary_text": "text", "refusal": "refusal"}
_FORMATS = ("text", "json_object", "json_schema")
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # a json_schema format's name, as OpenAI allows it
MAX_METADATA_KEYS = 16


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A validated `POST /v1/responses` body."""

    model_name: str  # as the client sent it; echoed back
    model: Model
    input: tuple[Message, ...]  # this turn's items as messages (history comes from the store)
    instructions: str | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    max_output_tokens: int | None = None
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})  # as sent: echoed
    response_format: ResponseFormat | None = None  # text.format as chat's response_format; None: text
    metadata: dict[str, str] = field(default_factory=dict)
    tools: list[Any] = field(default_factory=list)  # as sent: echoed
    declared: tuple[Tool, ...] = ()  # the function tools, parsed
    tool_choice: Any = "auto"  # as sent: echoed
    choice: ToolChoice = NONE  # "none" whenever no tools are declared
    parallel_tool_calls: bool = True
    echo: dict[str, Any] = field(default_factory=dict)  # accepted, not acted on, echoed back


def parse_request(body: dict, catalogue: Catalogue) -> ResponsesRequest:
    """Validate a Responses API body; raises InvalidRequest naming the param."""
    model_name = _model_name(body.get("model"))
    declared = _tools(body.get("tools"))
    text_format = _text_format(body.get("text"))
    return ResponsesRequest(
        model_name=model_name,
        model=catalogue.resolve(model_name),
        input=_input(body.get("input")),
        instructions=_optional_str(body, "instructions"),
        stream=optional_bool(body, "stream"),
        store=optional_bool(body, "store", default=True),
        previous_response_id=_optional_str(body, "previous_response_id") or None,
        max_output_tokens=_max_output_tokens(body.get("max_output_tokens")),
        text_format=text_format,
        response_format=_response_format(text_format),
        metadata=_metadata(body.get("metadata")),
        tools=body.get("tools") or [],
        declared=declared,
        tool_choice=body.get("tool_choice") or "auto",
        choice=tools.parse_tool_choice(body.get("tool_choice"), declared),
        parallel_tool_calls=tools.parse_parallel(body.get("parallel_tool_calls")),
        echo={"temperature": body.get("temperature"), "top_p": body.get("top_p"), "user": body.get("user")},
    )


def messages_for(request: ResponsesRequest, history: tuple[Message, ...]) -> tuple[Message, ...]:
    """What goes upstream: instructions as the system message, the history, this turn.

    Earlier function calls and their outputs, the declared tools and the JSON format
    are written in as chat writes them (`prompt.with_tools`). Raises InvalidRequest
    when an output answers a call that no earlier item made.
    """
    system = (Message("system", request.instructions),) if request.instructions else ()
    conversation = (*history, *request.input)
    called: set[str] = set()
    for message in conversation:
        called.update(call.id for call in message.tool_calls)
        if message.tool_call_id is not None and message.tool_call_id not in called:
            raise InvalidRequest(
                f"No function call found for the function_call_output with call_id '{message.tool_call_id}'.",
                param="input",
            )
    messages = prompt.with_tools(
        (*system, *conversation), request.declared, request.choice, request.parallel_tool_calls, request.response_format,
    )
    if not any(m.role == "user" for m in messages):
        raise InvalidRequest("'input' must contain at least one user message.", param="input")
    return messages


def history_rows(messages: tuple[Message, ...]) -> list[list[Any]]:
    """A conversation as JSON-able rows for the store: [role, content], plus calls and call id when there are."""
    rows: list[list[Any]] = []
    for m in messages:
        extra = [[[c.id, c.name, c.arguments] for c in m.tool_calls], m.tool_call_id] if m.tool_calls or m.tool_call_id else []
        # Images are not stored: a later turn's transcript shows an "[image]" marker.
        content = "\n".join(filter(None, [m.content, images.markers(len(m.images))]))
        rows.append([m.role, content, *extra])
    return rows


def history_messages(rows: list[list[Any]]) -> tuple[Message, ...]:
    """The conversation `history_rows` stored."""
    return tuple(
        Message(row[0], row[1], tuple(ToolCall(*c) for c in row[2]), row[3]) if len(row) > 2 else Message(row[0], row[1])
        for row in rows
    )


def _model_name(name: object) -> str:
    if name is None:
        return DEFAULT_NAME
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"'model' must be a non-empty string of at most {MAX_MODEL_CHARS} characters.", param="model")
    return name


def _input(value: object) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message("user", value),)
    if value is None:
        raise InvalidRequest("'input' is required: a string or an array of input items.", param="input")
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'input' must be a string or a non-empty array of input items.", param="input")
    messages: list[Message] = []
    for i, item in enumerate(value):
        message = _item(item, f"input[{i}]")
        if message is None:
            continue
        last = messages[-1] if messages else None
        if message.tool_calls and last is not None and last.role == "assistant" and last.tool_call_id is None:
            # Calls after the assistant's prose (or after other calls) are one turn, as chat has it.
            messages[-1] = Message("assistant", last.content, (*last.tool_calls, *message.tool_calls))
        else:
            messages.append(message)
    return tuple(messages)


def _item(item: object, param: str) -> Message | None:
    if not isinstance(item, dict):
        raise InvalidRequest(f"'{param}' must be an input item object.", param=param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise InvalidRequest(f"'{param}.role' must be one of {', '.join(_ROLES)}.", param=f"{param}.role")
        text, pictures = _content(item.get("content"), f"{param}.content", role)
        return Message(role, text, images=pictures)
    if kind == "reasoning":
        return None  # an earlier answer's reasoning: not part of the conversation
    if kind == "function_call":
        call = ToolCall(_str(item, "call_id", param), _str(item, "name", param), _str(item, "arguments", param))
        return Message("assistant", "", tool_calls=(call,))
    if kind == "function_call_output":
        return Message("tool", _content(item.get("output"), f"{param}.output")[0], tool_call_id=_str(item, "call_id", param))
    raise InvalidRequest(f"'{param}' has type '{kind}'; this gateway accepts message, function_call and function_call_output items.", param=param)


def _content(value: object, param: str, role: str = "tool") -> tuple[str, tuple[ImageRef, ...]]:
    """The text of a content array (its text parts joined by newlines) and its input_image parts."""
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be a string or an array of text parts.", param=param)
    texts, pictures = [], []
    for i, part in enumerate(value):
        if isinstance(part, dict) and part.get("type") == "input_image" and role == "user":
            pictures.append(images.parse_responses_part(part, f"{param}[{i}]"))
            continue
        key = _TEXT_PARTS.get(str(part.get("type"))) if isinstance(part, dict) else None
        if key is None or not isinstance(part.get(key), str):
            raise InvalidRequest(
                f"'{param}[{i}]' must be an input_text or output_text part (or, in a user message, an "
                "input_image part).",
                param=f"{param}[{i}]",
            )
        texts.append(part[key])
    return "\n".join(texts), tuple(pictures)


def _str(item: dict, key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{param}.{key}' must be a non-empty string.", param=f"{param}.{key}")
    return value


def _optional_str(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.", param=name)
    return value


def _tools(value: object) -> tuple[Tool, ...]:
    """Function tools in the Responses shape: {"type": "function", "name", "description", "parameters", "strict"}."""
    return tools.parse_tools(value, "tools", flat=True)


def _max_output_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("'max_output_tokens' must be a positive integer.", param="max_output_tokens")
    return value


def _text_format(value: object) -> dict[str, Any]:
    if value is None:
        return {"type": "text"}
    fmt = value.get("format", {"type": "text"}) if isinstance(value, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") not in _FORMATS:
        raise InvalidRequest("'text.format.type' must be text, json_object or json_schema.", param="text.format")
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("name"), str) or not _NAME.fullmatch(fmt["name"]):
            raise InvalidRequest("'text.format.name' must be 1 to 64 letters, digits, '_' or '-'.", param="text.format.name")
        tools.check_schema(fmt.get("schema"), "text.format.schema")
        if fmt.get("strict") is not None and not isinstance(fmt["strict"], bool):
            raise InvalidRequest("'text.format.strict' must be true or false.", param="text.format.strict")
    return fmt


def _response_format(fmt: dict[str, Any]) -> ResponseFormat | None:
    """text.format as chat's response_format: the Answer checks the JSON as it does for chat."""
    if fmt["type"] == "json_object":
        return ResponseFormat("json_object")
    if fmt["type"] == "json_schema":
        return ResponseFormat("json_schema", fmt["name"], fmt["schema"], bool(fmt.get("strict")))
    return None


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if (not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS
            or not all(isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in value.items())):
        raise InvalidRequest("'metadata' must map at most 16 keys (64 characters) to strings (512 characters).", param="metadata")
    return value


# -- bodies ------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def build_response(
    request: ResponsesRequest, response_id: str, created_at: int, *, status: str, output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None, error: dict[str, Any] | None = None, incomplete: str | None = None,
) -> dict[str, Any]:
    """A `response` object in any state: in_progress, completed, incomplete or failed."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model_name,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": request.store,
        "temperature": request.echo["temperature"],
        "text": {"format": request.text_format},
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_p": request.echo["top_p"],
        "truncation": "disabled",
        "usage": usage,
        "user": request.echo["user"],
        "metadata": request.metadata,
    }


def build_message(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    """An assistant message item; text=None while it has no content part yet."""
    content = [] if text is None else [build_text_part(text)]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def build_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def build_function_call(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    """A function_call item; while in progress its arguments are still "" (they follow as deltas)."""
    arguments = call.arguments if status == "completed" else ""
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call.id, "name": call.name}


def build_reasoning(item_id: str, summary: str | None, status: str) -> dict[str, Any]:
    """Think Deeper's chain of thought as a reasoning item with one summary text."""
    parts = [] if summary is None else [{"type": "summary_text", "text": summary}]
    return {"id": item_id, "type": "reasoning", "summary": parts, "status": status}


def build_usage(messages: tuple[Message, ...], text: str, reasoning: str) -> dict[str, Any]:
    """Estimated counts (wire.estimate_tokens): the upstream reports none."""
    prompt = estimate_tokens("\n".join(m.content for m in messages))
    thought = estimate_tokens(reasoning) if reasoning else 0
    output = estimate_tokens(text) + thought
    return {
        "input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": thought},
        "total_tokens": prompt + output,
    }


def now() -> int:
    return int(time.time())
