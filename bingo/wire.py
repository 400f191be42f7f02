"""The OpenAI wire format: parse and validate requests, build responses and chunks.

Pure functions over plain values: no Flask, no sockets. Every 400 names the
offending `param`, as OpenAI does, so client libraries can show it.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from . import images, tools
from .errors import InvalidRequest
from .images import ImageRef
from .models import DEFAULT_NAME, Catalogue, Model
from .tools import NONE, ResponseFormat, Tool, ToolCall, ToolChoice

MAX_STOP_SEQUENCES = 4
MAX_MODEL_CHARS = 256  # the name is echoed in every chunk: keep it a name


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant's earlier calls
    tool_call_id: str | None = None  # a `tool` message: the call it answers
    images: tuple[ImageRef, ...] = ()  # a user message's image parts (only the last one's are sent)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated request, whichever of the two completions APIs it came through."""

    kind: str  # "chat" (chat.completion) or "text" (legacy text_completion)
    model_name: str  # as the client sent it; echoed back
    model: Model
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()
    chunk_message: bool = True  # stream chunks also carry `message` (the seed's 0.28 snippet reads it)
    max_tokens: int | None = None  # cut the answer at this many (estimated) tokens
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = NONE  # "none" whenever no tools are declared
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None  # None: plain text


def parse_body(raw: bytes) -> dict:
    """Decode a request body as a JSON object, whatever its Content-Type said."""
    try:
        body = json.loads(raw)
        # JSON may escape lone surrogates ("\ud800") that no UTF-8 response or
        # upstream frame can carry; refuse them here, before any upstream call.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. Send a JSON object, "
            "for example {\"model\": \"Creative\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def parse_request(
    body: dict, catalogue: Catalogue, *, legacy: bool, deployment: str | None = None, chunk_message: bool = True,
    max_messages: int = 2_048,
) -> ChatRequest:
    """Validate an OpenAI request body; raises InvalidRequest naming the param."""
    model_name = _model_name({"model": deployment} if deployment else body)
    # A legacy path means text completions unless the body is clearly a chat one.
    messages: tuple[Message, ...]
    if ("prompt" in body or legacy) and ("messages" not in body or (legacy and "prompt" in body)):
        kind, messages = "text", (Message("user", _prompt(body.get("prompt"))),)
    else:
        kind, messages = "chat", _messages(body.get("messages"), max_messages)
    stream = optional_bool(body, "stream")
    _check_n(body.get("n"))
    declared = tools.parse_tools(body.get("tools")) if kind == "chat" else ()
    return ChatRequest(
        kind=kind,
        model_name=model_name,
        model=catalogue.resolve(model_name),
        messages=messages,
        stream=stream,
        include_usage=_include_usage(body.get("stream_options"), stream),
        stop=_stop(body.get("stop")),
        chunk_message=chunk_message,
        max_tokens=_max_tokens(body),
        tools=declared,
        tool_choice=tools.parse_tool_choice(body.get("tool_choice"), declared) if kind == "chat" else NONE,
        parallel_tool_calls=tools.parse_parallel(body.get("parallel_tool_calls")) if kind == "chat" else True,
        response_format=tools.parse_response_format(body.get("response_format")) if kind == "chat" else None,
    )


def _model_name(body: dict) -> str:
    name = body.get("model")
    if name is None:
        return DEFAULT_NAME
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_MODEL_CHARS:
        raise InvalidRequest(
            f"'model' must be a non-empty string of at most {MAX_MODEL_CHARS} characters, such as \"Creative\".",
            param="model",
        )
    return name


def _messages(value: object, limit: int) -> tuple[Message, ...]:
    if value is None:
        raise InvalidRequest("'messages' is required.", param="messages")
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'messages' must be a non-empty array of messages.", param="messages", code="empty_array" if value == [] else None)
    if len(value) > limit:
        raise InvalidRequest(
            f"Invalid 'messages': array too long. Expected at most {limit} messages (BINGO_MAX_MESSAGES), got {len(value)}.",
            param="messages", code="array_above_max_length",
        )
    messages = tuple(_message(item, index) for index, item in enumerate(value))
    if not any(m.role == "user" for m in messages):
        raise InvalidRequest("'messages' must contain at least one message with role 'user'.", param="messages")
    called: set[str] = set()
    for index, message in enumerate(messages):
        called.update(call.id for call in message.tool_calls)
        if message.tool_call_id is not None and message.tool_call_id not in called:
            raise InvalidRequest(
                f"'messages[{index}]' answers the tool call '{message.tool_call_id}', which no earlier assistant message made.",
                param=f"messages[{index}].tool_call_id",
            )
    return messages


def _message(item: object, index: int) -> Message:
    param = f"messages[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"'{param}' must be an object with 'role' and 'content'.", param=param)
    role = item.get("role")
    if not isinstance(role, str) or not role:
        raise InvalidRequest(f"'{param}.role' must be a string such as 'user'.", param=f"{param}.role")
    content, pictures = _content(item.get("content"), role, f"{param}.content")
    if role == "assistant" and item.get("tool_calls") is not None:
        calls = tools.parse_tool_calls(item["tool_calls"], f"{param}.tool_calls")
        return Message(role, content, tool_calls=calls)
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"'{param}.tool_call_id' must name the call this result answers.", param=f"{param}.tool_call_id")
        return Message(role, content, tool_call_id=call_id)
    return Message(role, content, images=pictures)


def _content(value: object, role: str, param: str) -> tuple[str, tuple[ImageRef, ...]]:
    """A message's text (its text parts joined by newlines) and its image parts."""
    if isinstance(value, str):
        return value, ()
    if value is None and role == "assistant":
        return "", ()
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be a string or an array of text and image_url parts.", param=param)
    texts: list[str] = []
    pictures: list[ImageRef] = []
    for i, part in enumerate(value):
        if isinstance(part, dict) and part.get("type") == "image_url":
            pictures.append(_image_part(part, role, f"{param}[{i}]"))
        else:
            texts.append(_text_part(part, f"{param}[{i}]"))
    return "\n".join(texts), tuple(pictures)


def _image_part(part: dict, role: str, param: str) -> ImageRef:
    if role != "user":
        raise InvalidRequest(f"'{param}' is an image in a '{role}' message; only user messages may carry images.", param=param)
    return images.parse_chat_part(part, param)


def _text_part(part: object, param: str) -> str:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise InvalidRequest(f"'{param}' must be an object with a 'type'.", param=param)
    if part["type"] != "text":
        raise InvalidRequest(f"'{param}' has type '{part['type']}'; this gateway accepts text and image_url parts.", param=param)
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"'{param}.text' must be a string.", param=f"{param}.text")
    return text


def _prompt(value: object) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise InvalidRequest("'prompt' must be a string (or an array of one string).", param="prompt")
    return value


def optional_bool(body: dict, name: str, default: bool = False) -> bool:
    """A boolean field; absent or null gives `default`, anything else but a bool a 400."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false.", param=name)
    return value


def _check_n(value: object) -> None:
    if value is not None and (isinstance(value, bool) or value != 1):
        raise InvalidRequest("'n' must be 1: Bing gives one answer per request.", param="n")


def _max_tokens(body: dict) -> int | None:
    """max_completion_tokens, or the older max_tokens; the smaller when both come."""
    limits = []
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequest(f"'{name}' must be a positive integer.", param=name)
        limits.append(value)
    return min(limits) if limits else None


def _include_usage(value: object, stream: bool) -> bool:
    if value is None:
        return False
    if not stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options")
    if not isinstance(value, dict) or not isinstance(value.get("include_usage", False), bool):
        raise InvalidRequest("'stream_options' must be an object like {\"include_usage\": true}.", param="stream_options")
    return bool(value.get("include_usage", False))


def _stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) for s in value):
        raise InvalidRequest("'stop' must be a string or an array of up to 4 strings.", param="stop")
    return tuple(s for s in value if s)


# -- responses ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseIds:
    """What every chunk of one response shares."""

    id: str
    created: int


def new_ids(chat: ChatRequest) -> ResponseIds:
    prefix = "chatcmpl" if chat.kind == "chat" else "cmpl"
    return ResponseIds(f"{prefix}-{secrets.token_hex(12)}", int(time.time()))


def estimate_tokens(text: str) -> int:
    """A documented estimate: one token per four UTF-8 bytes, rounded up.

    Bing reports no token counts; this keeps `usage` integral and monotonic, and
    counts CJK text (three bytes a character) closer to real tokenizers than len/4.
    """
    return (len(text.encode("utf-8")) + 3) // 4


def build_usage(chat: ChatRequest, answer: str) -> dict[str, int]:
    prompt = estimate_tokens("\n".join(m.content for m in chat.messages))
    completion = estimate_tokens(answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def build_completion(
    chat: ChatRequest, ids: ResponseIds, answer: str | None, finish_reason: str, reasoning: str = "",
    tool_calls: tuple[ToolCall, ...] = (), generated: str | None = None,
) -> dict[str, object]:
    """The one-shot body: `chat.completion` or legacy `text_completion`.

    Reasoning (Think Deeper) goes in `message.reasoning_content`, the field
    DeepSeek-style clients read, and only when there is some. `generated` is the
    text the model wrote, which usage counts (the answer itself by default).
    """
    if chat.kind == "chat":
        message: dict[str, object] = {"role": "assistant", "content": answer}
        if reasoning:
            message["reasoning_content"] = reasoning
        if tool_calls:
            message["tool_calls"] = [call.to_wire() for call in tool_calls]
        choice: dict[str, object] = {"index": 0, "message": message}
    else:
        choice = {"index": 0, "text": answer}
    choice.update(logprobs=None, finish_reason=finish_reason)
    usage = build_usage(chat, (answer or "") if generated is None else generated)
    return {**_head(chat, ids, stream=False), "choices": [choice], "usage": usage}


def build_chunk(chat: ChatRequest, ids: ResponseIds, text: str | None, finish_reason: str | None = None) -> dict[str, object]:
    """One stream chunk; text=None with a finish_reason is the closing chunk."""
    if chat.kind != "chat":
        choice: dict[str, object] = {"index": 0, "text": text or ""}
        choice.update(logprobs=None, finish_reason=finish_reason)
        return {**_head(chat, ids, stream=True), "choices": [choice]}
    return _chat_chunk(chat, ids, {} if text is None else {"content": text}, finish_reason)


def build_reasoning_chunk(chat: ChatRequest, ids: ResponseIds, text: str) -> dict[str, object]:
    """A chunk of reasoning: `delta.reasoning_content`, never `content` (chat only)."""
    return _chat_chunk(chat, ids, {"reasoning_content": text})


def build_role_chunk(chat: ChatRequest, ids: ResponseIds) -> dict[str, object] | None:
    """The opening chunk announcing the assistant role (chat only).

    With tools its content is null, as OpenAI's: an answer that only calls tools
    then accumulates to `content: null`, like the one-shot body.
    """
    if chat.kind != "chat":
        return None
    return _chat_chunk(chat, ids, {"role": "assistant", "content": None if calls_tools(chat) else ""})


def build_tool_call_chunk(chat: ChatRequest, ids: ResponseIds, index: int, call: ToolCall) -> dict[str, object]:
    """One whole tool call as `delta.tool_calls[0]`, numbered by `index` in the answer."""
    return _chat_chunk(chat, ids, {"tool_calls": [{"index": index, **call.to_wire()}]})


def calls_tools(chat: ChatRequest) -> bool:
    """The answer is parsed for tool calls: tools are declared and tool_choice is not none."""
    return bool(chat.tools) and chat.tool_choice.mode != "none"


def _chat_chunk(chat: ChatRequest, ids: ResponseIds, delta: dict, finish_reason: str | None = None) -> dict[str, object]:
    """A chat chunk; with chunk_message, `message` repeats the delta's text.

    The original Bingo sent `message` in every chunk and the seed's openai 0.28
    streaming snippet reads `chunk.choices[0].message.content`, on every chunk: so
    every chunk carries it, "" where the chunk has no answer text. The OpenAI SDKs
    and the clients built on them read `delta` only (BINGO_CHUNK_MESSAGE=0 drops it).
    """
    choice: dict[str, object] = {"index": 0, "delta": delta}
    if chat.chunk_message:
        choice["message"] = {"role": "assistant", "content": delta.get("content") or ""}
    choice.update(logprobs=None, finish_reason=finish_reason)
    return {**_head(chat, ids, stream=True), "choices": [choice]}


def build_usage_chunk(chat: ChatRequest, ids: ResponseIds, answer: str) -> dict[str, object]:
    return {**_head(chat, ids, stream=True), "choices": [], "usage": build_usage(chat, answer)}


def _head(chat: ChatRequest, ids: ResponseIds, *, stream: bool) -> dict[str, object]:
    if chat.kind == "chat":
        obj = "chat.completion.chunk" if stream else "chat.completion"
    else:
        obj = "text_completion"
    head: dict[str, object] = {"id": ids.id, "object": obj, "created": ids.created, "model": chat.model_name, "system_fingerprint": None}
    if stream and chat.include_usage:
        head["usage"] = None  # OpenAI: null on every chunk but the usage chunk
    return head
