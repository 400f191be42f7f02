"""The Responses API wire format: parse a request into messages, build the bodies.

Pure functions over plain values, like `wire.py` for the completions APIs: no
Flask, no sockets. A request becomes the same `Message` tuple chat builds, so the
upstream answers it exactly as it answers a chat request; every 400 names its param.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest
from .models import DEFAULT_NAME, Catalogue, Model
from .wire import MAX_MODEL_CHARS, Message, estimate_tokens, optional_bool

_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "text": "text", "summary_text": "text", "refusal": "refusal"}
_FORMATS = ("text", "json_object", "json_schema")
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
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    metadata: dict[str, str] = field(default_factory=dict)
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    echo: dict[str, Any] = field(default_factory=dict)  # accepted, not acted on, echoed back


def parse_request(body: dict, catalogue: Catalogue) -> ResponsesRequest:
    """Validate a Responses API body; raises InvalidRequest naming the param."""
    model_name = _model_name(body.get("model"))
    tools = _list(body, "tools")
    tool_choice = body.get("tool_choice", "auto")
    if tool_choice == "required" or isinstance(tool_choice, dict):
        # NEXT STEP (issue #10): function tools are emulated by bingo/tools.py; until it is
        # wired in here, a request that demands a call is refused rather than answered in text.
        raise InvalidRequest("This gateway cannot force a tool call yet; use tool_choice 'auto' or 'none'.", param="tool_choice")
    return ResponsesRequest(
        model_name=model_name,
        model=catalogue.resolve(model_name),
        input=_input(body.get("input")),
        instructions=_optional_str(body, "instructions"),
        stream=optional_bool(body, "stream"),
        store=optional_bool(body, "store", default=True),
        previous_response_id=_optional_str(body, "previous_response_id") or None,
        max_output_tokens=_max_output_tokens(body.get("max_output_tokens")),
        text_format=_text_format(body.get("text")),
        metadata=_metadata(body.get("metadata")),
        tools=tools,
        tool_choice=tool_choice,
        echo={
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "user": body.get("user"),
        },
    )


def messages_for(request: ResponsesRequest, history: tuple[Message, ...]) -> tuple[Message, ...]:
    """What goes upstream: instructions as the system message, the history, this turn."""
    system = [request.instructions] if request.instructions else []
    if request.text_format["type"] != "text":
        system.append(_format_instruction(request.text_format))
    messages = (*(Message("system", s) for s in system), *history, *request.input)
    if not any(m.role == "user" for m in messages):
        raise InvalidRequest("'input' must contain at least one user message.", param="input")
    return messages


def _format_instruction(text_format: dict[str, Any]) -> str:
    said = "Reply with one valid JSON object and nothing else: no prose, no markdown, no code fences."
    if text_format["type"] == "json_schema" and "schema" in text_format:
        said += " The object must match this JSON schema: " + json.dumps(text_format["schema"], ensure_ascii=False)
    return said


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
    messages = (_item(item, f"input[{i}]") for i, item in enumerate(value))
    return tuple(m for m in messages if m is not None)


def _item(item: object, param: str) -> Message | None:
    if not isinstance(item, dict):
        raise InvalidRequest(f"'{param}' must be an input item object.", param=param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise InvalidRequest(f"'{param}.role' must be one of {', '.join(_ROLES)}.", param=f"{param}.role")
        return Message(role, _content(item.get("content"), f"{param}.content"))
    if kind == "reasoning":
        return None  # an earlier answer's reasoning: not part of the conversation
    # NEXT STEP (issue #10): bingo/tools.py owns how tool calls and results are shown
    # to the upstream; until it is wired in, they travel as plain transcript lines.
    if kind == "function_call":
        return Message("assistant", f"(called the function {_str(item, 'name', param)} with {_str(item, 'arguments', param)})")
    if kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
        return Message("user", f"(result of the function call {_str(item, 'call_id', param)}: {text})")
    raise InvalidRequest(f"'{param}' has type '{kind}'; this gateway accepts message, function_call and function_call_output items.", param=param)


def _content(value: object, param: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be a string or an array of text parts.", param=param)
    texts = []
    for i, part in enumerate(value):
        key = _TEXT_PARTS.get(str(part.get("type"))) if isinstance(part, dict) else None
        if key is None or not isinstance(part.get(key), str):
            raise InvalidRequest(f"'{param}[{i}]' must be an input_text or output_text part; this gateway reads text only.", param=f"{param}[{i}]")
        texts.append(part[key])
    return "\n".join(texts)


def _str(item: dict, key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}.{key}' must be a string.", param=f"{param}.{key}")
    return value


def _optional_str(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.", param=name)
    return value


def _list(body: dict, name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("type"), str) for v in value):
        raise InvalidRequest(f"'{name}' must be an array of objects with a 'type'.", param=name)
    return value


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
    if fmt["type"] == "json_schema" and not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest("'text.format.schema' must be a JSON schema object.", param="text.format.schema")
    return fmt


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
        "parallel_tool_calls": request.echo["parallel_tool_calls"],
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
