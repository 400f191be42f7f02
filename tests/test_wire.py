"""The OpenAI wire format: body parsing, request validation, builders, SSE framing."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bingo import sse
from bingo.errors import InvalidRequest
from bingo.models import catalogue

CHATHUB = catalogue("chathub")  # the seed's names as ChatHub styles
DEFAULT_MODEL = CHATHUB.resolve("Creative")
from bingo.wire import (
    ChatRequest,
    Message,
    ResponseIds,
    build_chunk,
    build_completion,
    build_reasoning_chunk,
    build_role_chunk,
    build_usage_chunk,
    estimate_tokens,
    new_ids,
    parse_body,
    parse_request,
)

USER_HI = [{"role": "user", "content": "hi"}]
DROP = object()


def body(**fields: object) -> dict:
    """A valid chat body with some fields replaced (DROP removes one)."""
    base: dict = {"model": "Creative", "messages": USER_HI}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


def rejected(request_body: dict, *, legacy: bool = False) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse_request(request_body, CHATHUB, legacy=legacy)
    return info.value


def invalid_body(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse_body(raw)
    return info.value


# -- parse_body --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"model":"Creative","messages":[]}', {"model": "Creative", "messages": []}),
        ('{"prompt":"caf\u00e9 \u2603"}'.encode(), {"prompt": "caf\u00e9 \u2603"}),
        (b'\xef\xbb\xbf{"a":1}', {"a": 1}),
        (b' \n {"a":1} \n', {"a": 1}),
    ],
    ids=["chat-body", "utf8-text", "utf8-bom", "surrounding-whitespace"],
)
def test_parse_body_decodes_json_object(raw, expected):
    assert parse_body(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"model=Creative&messages=hi",
        b'{"model": "Creative",}',
        b'{"content": "\xff\xfe"}',
        b'{"content": "caf\xe9"}',
        b"[" * 100_000,
        b'{"a":' * 100_000,
    ],
    ids=[
        "empty",
        "truncated",
        "form-encoded",
        "trailing-comma",
        "invalid-utf8-bytes",
        "latin1-bytes",
        "deep-array-nesting",
        "deep-object-nesting",
    ],
)
def test_parse_body_rejects_unparsable_json(raw):
    error = invalid_body(raw)

    assert (error.status, error.type, error.param, error.code) == (
        400,
        "invalid_request_error",
        None,
        None,
    )
    assert error.message.startswith("We could not parse the JSON body of your request.")


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'[{"role":"user","content":"hi"}]', b'"hi"', b"42", b"null", b"true"],
    ids=["empty-array", "array-of-messages", "string", "number", "null", "bool"],
)
def test_parse_body_rejects_non_object(raw):
    error = invalid_body(raw)

    assert (error.status, error.param, error.code) == (400, None, None)
    assert error.message == "The request body must be a JSON object."


# -- parse_request: accepted bodies ------------------------------------------------


def test_parse_request_minimal_chat_body():
    assert parse_request(body(), CHATHUB, legacy=False) == ChatRequest(
        kind="chat",
        model_name="Creative",
        model=CHATHUB.find("Creative"),
        messages=(Message("user", "hi"),),
        stream=False,
        include_usage=False,
        stop=(),
    )


def test_parse_request_keeps_every_message_in_order():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "How are you?"},
    ]
    chat = parse_request(body(messages=messages), CHATHUB, legacy=False)

    assert chat.messages == (
        Message("system", "Be brief."),
        Message("developer", "Answer in French."),
        Message("user", "Hi"),
        Message("assistant", "Bonjour"),
        Message("user", "How are you?"),
    )


def test_parse_request_assistant_null_content_becomes_empty():
    messages = [
        {"role": "user", "content": "Call the tool"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "Never mind"},
    ]
    chat = parse_request(body(messages=messages), CHATHUB, legacy=False)
    assert chat.messages[1] == Message("assistant", "")


def test_parse_request_text_parts_joined_with_newline():
    content = [
        {"type": "text", "text": "First line"},
        {"type": "text", "text": "Second line"},
    ]
    chat = parse_request(
        body(messages=[{"role": "user", "content": content}]), CHATHUB, legacy=False
    )
    assert chat.messages == (Message("user", "First line\nSecond line"),)


def test_parse_request_empty_parts_list_is_empty_text():
    messages = [{"role": "system", "content": []}, {"role": "user", "content": "hi"}]
    assert parse_request(body(messages=messages), CHATHUB, legacy=False).messages[0] == Message(
        "system", ""
    )


IGNORED_FIELDS = {
    "temperature": 0.2,
    "top_p": 0.9,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "logit_bias": {"50256": -100},
    "logprobs": False,
    "top_logprobs": None,
    "seed": 42,
    "user": "user-1234",
    "functions": [{"name": "f"}],
    "function_call": "auto",
    "safety_identifier": "abc",
    "some_future_field": {"nested": [1, 2, 3]},
}


@pytest.mark.parametrize(
    ("name", "value"), IGNORED_FIELDS.items(), ids=list(IGNORED_FIELDS)
)
def test_parse_request_ignores_harmless_field(name, value):
    assert parse_request(body(**{name: value}), CHATHUB, legacy=False) == parse_request(
        body(), CHATHUB, legacy=False
    )


@pytest.mark.parametrize(
    ("sent", "served"),
    [
        ("Creative", "Creative"),
        ("creative", "Creative"),
        ("BALANCED", "Balanced"),
        ("precise", "Precise"),
        ("GPT-4", "gpt-4"),
        ("copilot", "copilot"),
        ("gpt-3.5-turbo", "Creative"),
        ("my-own-model", "Creative"),
    ],
    ids=[
        "exact",
        "lower",
        "upper",
        "precise-lower",
        "gpt-4-upper",
        "copilot",
        "unknown-openai-name",
        "unknown-name",
    ],
)
def test_parse_request_resolves_model_and_echoes_name(sent, served):
    chat = parse_request(body(model=sent), CHATHUB, legacy=False)

    assert chat.model_name == sent
    assert chat.model == CHATHUB.find(served)


@pytest.mark.parametrize("model", [DROP, None], ids=["missing", "null"])
def test_parse_request_missing_model_uses_default(model):
    chat = parse_request(body(model=model), CHATHUB, legacy=False)
    assert (chat.model_name, chat.model) == ("Creative", CHATHUB.find("Creative"))


@pytest.mark.parametrize(
    ("deployment", "served"),
    [("gpt-4", "gpt-4"), ("Precise", "Precise"), ("prod-gpt4o", "Creative")],
    ids=["known", "known-style", "unknown"],
)
def test_parse_request_azure_deployment_is_the_model(deployment, served):
    chat = parse_request(
        body(model="ignored-by-azure"), CHATHUB, legacy=False, deployment=deployment
    )

    assert chat.model_name == deployment
    assert chat.model == CHATHUB.find(served)


def test_parse_request_azure_deployment_needs_no_model_field():
    chat = parse_request(body(model=DROP), CHATHUB, legacy=False, deployment="Balanced")
    assert chat.model_name == "Balanced"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, (False, False)),
        ({"stream": False}, (False, False)),
        ({"stream": None}, (False, False)),
        ({"stream": True}, (True, False)),
        ({"stream": True, "stream_options": {"include_usage": True}}, (True, True)),
        ({"stream": True, "stream_options": {"include_usage": False}}, (True, False)),
        ({"stream": True, "stream_options": {}}, (True, False)),
        ({"stream": True, "stream_options": None}, (True, False)),
        ({"stream": False, "stream_options": None}, (False, False)),
        (
            {
                "stream": True,
                "stream_options": {"include_usage": True, "include_obfuscation": False},
            },
            (True, True),
        ),
    ],
    ids=[
        "absent",
        "false",
        "null",
        "true",
        "include-usage",
        "include-usage-false",
        "empty-options",
        "null-options",
        "null-options-no-stream",
        "extra-option-key",
    ],
)
def test_parse_request_stream_and_include_usage(fields, expected):
    chat = parse_request(body(**fields), CHATHUB, legacy=False)
    assert (chat.stream, chat.include_usage) == expected


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("END", ("END",)),
        (["\n\n", "Human:"], ("\n\n", "Human:")),
        (["a", "b", "c", "d"], ("a", "b", "c", "d")),
        ([], ()),
        (None, ()),
        ("", ()),
        (["", "END"], ("END",)),
    ],
    ids=[
        "string",
        "list",
        "four",
        "empty-list",
        "null",
        "empty-string",
        "empty-item-dropped",
    ],
)
def test_parse_request_stop(stop, expected):
    assert parse_request(body(stop=stop), CHATHUB, legacy=False).stop == expected


@pytest.mark.parametrize("n", [1, 1.0, None], ids=["int", "float-one", "null"])
def test_parse_request_n_one_accepted(n):
    assert parse_request(body(n=n), CHATHUB, legacy=False) == parse_request(body(), CHATHUB, legacy=False)


# -- parse_request: rejected bodies ------------------------------------------------

STREAM_OPTIONS_MESSAGE = (
    "The 'stream_options' parameter is only allowed when 'stream' is enabled."
)
AUDIO_PART = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


@pytest.mark.parametrize(
    ("request_body", "param", "code"),
    [
        ({"model": "Creative"}, "messages", None),
        (body(messages="hi"), "messages", None),
        (body(messages={"role": "user", "content": "hi"}), "messages", None),
        (body(messages=[]), "messages", "empty_array"),
        (body(messages=["hi"]), "messages[0]", None),
        (body(messages=[*USER_HI, None]), "messages[1]", None),
        (body(messages=[{"content": "hi"}]), "messages[0].role", None),
        (body(messages=[{"role": 1, "content": "hi"}]), "messages[0].role", None),
        (body(messages=[{"role": "", "content": "hi"}]), "messages[0].role", None),
        (body(messages=[{"role": "user", "content": 1}]), "messages[0].content", None),
        (
            body(messages=[{"role": "user", "content": {"text": "hi"}}]),
            "messages[0].content",
            None,
        ),
        (
            body(messages=[{"role": "user", "content": None}]),
            "messages[0].content",
            None,
        ),
        (body(messages=[{"role": "user"}]), "messages[0].content", None),
        (
            body(messages=[{"role": "system", "content": None}, *USER_HI]),
            "messages[0].content",
            None,
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "Look:"}, AUDIO_PART],
                    }
                ]
            ),
            "messages[0].content[1]",
            None,
        ),
        (
            body(messages=[*USER_HI, {"role": "user", "content": [AUDIO_PART]}]),
            "messages[1].content[0]",
            None,
        ),
        (
            body(messages=[{"role": "user", "content": ["hi"]}]),
            "messages[0].content[0]",
            None,
        ),
        (
            body(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
            "messages[0].content[0]",
            None,
        ),
        (body(messages=[{"role": "system", "content": "Be brief."}]), "messages", None),
        (body(messages=[{"role": "assistant", "content": "Hello"}]), "messages", None),
    ],
    ids=[
        "messages-missing",
        "messages-string",
        "messages-object",
        "messages-empty",
        "item-string",
        "item-null",
        "role-missing",
        "role-int",
        "role-empty",
        "content-int",
        "content-object",
        "content-null-user",
        "content-missing",
        "content-null-system",
        "image-part",
        "image-part-second-message",
        "part-string",
        "part-without-type",
        "no-user-only-system",
        "no-user-only-assistant",
    ],
)
def test_parse_request_rejects_bad_messages(request_body, param, code):
    error = rejected(request_body)
    assert (error.status, error.type, error.param, error.code) == (
        400,
        "invalid_request_error",
        param,
        code,
    )


def test_parse_request_text_part_without_text_names_the_text_param():
    error = rejected(body(messages=[{"role": "user", "content": [{"type": "text"}]}]))
    assert error.param == "messages[0].content[0].text"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"n": 0}, "n"),
        ({"n": -1}, "n"),
        ({"n": True}, "n"),
        ({"n": "1"}, "n"),
        ({"stream": "true"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"stream": True, "stream_options": "include_usage"}, "stream_options"),
        (
            {"stream": True, "stream_options": {"include_usage": "yes"}},
            "stream_options",
        ),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 1}, "stop"),
        ({"stop": ["END", 2]}, "stop"),
        ({"stop": {"seq": "END"}}, "stop"),
        ({"model": ""}, "model"),
        ({"model": "   "}, "model"),
        ({"model": 4}, "model"),
        ({"model": ["gpt-4"]}, "model"),
    ],
    ids=[
        "n-2",
        "n-0",
        "n-negative",
        "n-true",
        "n-string",
        "stream-string",
        "stream-int",
        "stream-options-string",
        "include-usage-string",
        "stop-five",
        "stop-int",
        "stop-non-string-item",
        "stop-object",
        "model-empty",
        "model-blank",
        "model-int",
        "model-list",
    ],
)
def test_parse_request_rejects_bad_field(fields, param):
    error = rejected(body(**fields))
    assert (error.status, error.type, error.param) == (
        400,
        "invalid_request_error",
        param,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"stream_options": {"include_usage": True}},
        {"stream": False, "stream_options": {"include_usage": True}},
        {"stream": False, "stream_options": {}},
    ],
    ids=["stream-absent", "stream-false", "empty-options"],
)
def test_parse_request_stream_options_without_stream_matches_openai(fields):
    # OpenAI's own wording (quoted in BerriAI/litellm#5803, lobehub/lobehub#6735).
    error = rejected(body(**fields))

    assert error.to_body() == {
        "error": {
            "message": STREAM_OPTIONS_MESSAGE,
            "type": "invalid_request_error",
            "param": "stream_options",
            "code": None,
        }
    }


# -- parse_request: legacy text completions ----------------------------------------


@pytest.mark.parametrize(
    ("request_body", "legacy", "kind", "messages"),
    [
        (
            {"model": "Creative", "prompt": "Say hi"},
            True,
            "text",
            (Message("user", "Say hi"),),
        ),
        (
            {"model": "Creative", "prompt": ["Say hi"]},
            True,
            "text",
            (Message("user", "Say hi"),),
        ),
        (
            {"model": "Creative", "prompt": "Say hi"},
            False,
            "text",
            (Message("user", "Say hi"),),
        ),
        ({"model": "Creative", "prompt": ""}, True, "text", (Message("user", ""),)),
        (
            {"model": "Creative", "messages": USER_HI},
            True,
            "chat",
            (Message("user", "hi"),),
        ),
        (
            {"model": "Creative", "messages": USER_HI, "prompt": "Say hi"},
            True,
            "text",
            (Message("user", "Say hi"),),
        ),
        (
            {"model": "Creative", "messages": USER_HI, "prompt": "Say hi"},
            False,
            "chat",
            (Message("user", "hi"),),
        ),
    ],
    ids=[
        "legacy-path-prompt",
        "legacy-path-prompt-list-of-one",
        "chat-path-prompt-only",
        "legacy-path-empty-prompt",
        "legacy-path-chat-body",
        "legacy-path-both-prompt-wins",
        "chat-path-both-messages-win",
    ],
)
def test_parse_request_detects_text_or_chat(request_body, legacy, kind, messages):
    chat = parse_request(request_body, CHATHUB, legacy=legacy)
    assert (chat.kind, chat.messages) == (kind, messages)


def test_parse_request_legacy_keeps_stream_stop_and_model():
    chat = parse_request(
        {
            "model": "precise",
            "prompt": "Count",
            "stream": True,
            "stop": "5",
            "max_tokens": 16,
            "echo": False,
        }, CHATHUB,
        legacy=True,
    )
    assert chat == ChatRequest(
        kind="text",
        model_name="precise",
        model=CHATHUB.find("Precise"),
        messages=(Message("user", "Count"),),
        stream=True,
        include_usage=False,
        stop=("5",),
        max_tokens=16,
    )


@pytest.mark.parametrize(
    "request_body",
    [
        {"model": "Creative", "prompt": [1212, 318, 257]},
        {"model": "Creative", "prompt": [[1212, 318]]},
        {"model": "Creative", "prompt": ["one", "two"]},
        {"model": "Creative", "prompt": []},
        {"model": "Creative", "prompt": 5},
        {"model": "Creative", "prompt": None},
        {"model": "Creative"},
    ],
    ids=[
        "token-array",
        "array-of-token-arrays",
        "two-prompts",
        "empty-list",
        "number",
        "null",
        "missing",
    ],
)
def test_parse_request_rejects_bad_prompt_on_legacy_path(request_body):
    error = rejected(request_body, legacy=True)
    assert (error.status, error.param) == (400, "prompt")


# -- builders ----------------------------------------------------------------------

IDS_CHAT = ResponseIds("chatcmpl-0123456789abcdef01234567", 1_700_000_000)
IDS_TEXT = ResponseIds("cmpl-0123456789abcdef01234567", 1_700_000_001)


def make_chat(
    kind: str = "chat", *, include_usage: bool = False, stream: bool = False, chunk_message: bool = False
) -> ChatRequest:
    # Prompt text "Be brief\nHello there" is 20 UTF-8 bytes: (20 + 3) // 4 = 5 tokens.
    return ChatRequest(
        kind=kind,
        model_name="gpt-4",
        model=CHATHUB.find("gpt-4"),
        messages=(Message("system", "Be brief"), Message("user", "Hello there")),
        stream=stream,
        include_usage=include_usage,
        chunk_message=chunk_message,
    )


ANSWER = "General Kenobi!"  # 15 bytes: (15 + 3) // 4 = 4 tokens
USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_build_completion_chat_exact():
    assert build_completion(make_chat(), IDS_CHAT, ANSWER, "stop") == {
        "id": "chatcmpl-0123456789abcdef01234567",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "General Kenobi!"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }


def test_build_completion_text_exact():
    assert build_completion(make_chat("text"), IDS_TEXT, ANSWER, "content_filter") == {
        "id": "cmpl-0123456789abcdef01234567",
        "object": "text_completion",
        "created": 1_700_000_001,
        "model": "gpt-4",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "text": "General Kenobi!",
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        ],
        "usage": USAGE,
    }


CHUNK_HEAD_CHAT = {
    "id": "chatcmpl-0123456789abcdef01234567",
    "object": "chat.completion.chunk",
    "created": 1_700_000_000,
    "model": "gpt-4",
    "system_fingerprint": None,
}
CHUNK_HEAD_TEXT = {
    "id": "cmpl-0123456789abcdef01234567",
    "object": "text_completion",
    "created": 1_700_000_001,
    "model": "gpt-4",
    "system_fingerprint": None,
}


def test_build_role_chunk_chat_exact():
    assert build_role_chunk(make_chat(), IDS_CHAT) == {
        **CHUNK_HEAD_CHAT,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }


@pytest.mark.parametrize(
    ("build", "delta", "content"),
    [
        (lambda chat: build_role_chunk(chat, IDS_CHAT), {"role": "assistant", "content": ""}, ""),
        (lambda chat: build_chunk(chat, IDS_CHAT, "Gen"), {"content": "Gen"}, "Gen"),
        (lambda chat: build_reasoning_chunk(chat, IDS_CHAT, "Hmm"), {"reasoning_content": "Hmm"}, ""),
        (lambda chat: build_chunk(chat, IDS_CHAT, None, "stop"), {}, ""),
    ],
    ids=["role", "content", "reasoning", "closing"],
)
def test_every_chat_chunk_repeats_its_text_in_message_for_the_seed_snippet(build, delta, content):
    """The seed's openai 0.28 snippet prints chunk.choices[0].message.content on every chunk."""
    choice = build(make_chat(chunk_message=True))["choices"][0]
    assert list(choice) == ["index", "delta", "message", "logprobs", "finish_reason"]
    assert choice["delta"] == delta and choice["message"] == {"role": "assistant", "content": content}


def test_build_role_chunk_text_is_none():
    assert build_role_chunk(make_chat("text"), IDS_TEXT) is None


@pytest.mark.parametrize(
    ("text", "finish_reason", "choice"),
    [
        (
            "Gen",
            None,
            {
                "index": 0,
                "delta": {"content": "Gen"},
                "logprobs": None,
                "finish_reason": None,
            },
        ),
        (
            "",
            None,
            {
                "index": 0,
                "delta": {"content": ""},
                "logprobs": None,
                "finish_reason": None,
            },
        ),
        (
            None,
            "stop",
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"},
        ),
        (
            None,
            "content_filter",
            {
                "index": 0,
                "delta": {},
                "logprobs": None,
                "finish_reason": "content_filter",
            },
        ),
    ],
    ids=["content", "empty-content", "closing-stop", "closing-content-filter"],
)
def test_build_chunk_chat_exact(text, finish_reason, choice):
    assert build_chunk(make_chat(), IDS_CHAT, text, finish_reason) == {
        **CHUNK_HEAD_CHAT,
        "choices": [choice],
    }


@pytest.mark.parametrize(
    ("text", "finish_reason", "choice"),
    [
        (
            "Gen",
            None,
            {"index": 0, "text": "Gen", "logprobs": None, "finish_reason": None},
        ),
        (
            None,
            "stop",
            {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"},
        ),
    ],
    ids=["content", "closing"],
)
def test_build_chunk_text_exact(text, finish_reason, choice):
    assert build_chunk(make_chat("text"), IDS_TEXT, text, finish_reason) == {
        **CHUNK_HEAD_TEXT,
        "choices": [choice],
    }


@pytest.mark.parametrize(
    ("kind", "ids", "head"),
    [("chat", IDS_CHAT, CHUNK_HEAD_CHAT), ("text", IDS_TEXT, CHUNK_HEAD_TEXT)],
    ids=["chat", "text"],
)
def test_build_usage_chunk_exact(kind, ids, head):
    chat = make_chat(kind, stream=True, include_usage=True)
    assert build_usage_chunk(chat, ids, ANSWER) == {
        **head,
        "choices": [],
        "usage": USAGE,
    }


def test_build_chunk_carries_null_usage_when_include_usage():
    chat = make_chat(stream=True, include_usage=True)

    assert build_role_chunk(chat, IDS_CHAT)["usage"] is None
    assert build_chunk(chat, IDS_CHAT, "Gen")["usage"] is None
    assert build_chunk(chat, IDS_CHAT, None, "stop")["usage"] is None


@pytest.mark.parametrize(
    ("messages", "answer", "usage"),
    [
        ((Message("user", "hi"),), "", (1, 0, 1)),
        ((Message("user", "abcd"),), "abcde", (1, 2, 3)),
        ((Message("system", "abc"), Message("user", "abc")), "x" * 40, (2, 10, 12)),
        ((Message("user", "你好世界"),), "😀😀", (3, 2, 5)),
    ],
    ids=["empty-answer", "ascii", "messages-joined-with-newline", "cjk-and-emoji"],
)
def test_build_completion_usage_arithmetic(messages, answer, usage):
    chat = ChatRequest(
        kind="chat", model_name="x", model=DEFAULT_MODEL, messages=messages
    )
    got = build_completion(chat, IDS_CHAT, answer, "stop")["usage"]

    assert (
        got["prompt_tokens"],
        got["completion_tokens"],
        got["total_tokens"],
    ) == usage
    assert got["total_tokens"] == got["prompt_tokens"] + got["completion_tokens"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("Hello, world!", 4),
        ("é", 1),
        ("你", 1),
        ("你好", 2),
        ("你好世界", 3),
        ("😀", 1),
        ("😀😀😀", 3),
    ],
    ids=[
        "empty",
        "one-ascii",
        "four-ascii",
        "five-ascii",
        "sentence",
        "latin1",
        "cjk-1",
        "cjk-2",
        "cjk-4",
        "emoji-1",
        "emoji-3",
    ],
)
def test_estimate_tokens_is_utf8_bytes_over_four_rounded_up(text, tokens):
    assert estimate_tokens(text) == tokens


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [("chat", r"chatcmpl-[0-9a-f]{24}"), ("text", r"cmpl-[0-9a-f]{24}")],
    ids=["chat", "text"],
)
def test_new_ids_prefix_and_created(kind, pattern):
    before = int(time.time())
    ids = new_ids(make_chat(kind))
    after = int(time.time())

    assert re.fullmatch(pattern, ids.id)
    assert before <= ids.created <= after


def test_new_ids_are_unique():
    assert new_ids(make_chat()).id != new_ids(make_chat()).id


# -- SSE framing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\u2028b", '"a\\u2028b"'),
        ("a\u2029b", '"a\\u2029b"'),
        ("a\x85b", '"a\\u0085b"'),
        ("a\nb\rc", '"a\\nb\\rc"'),
        ("\x1c\x1d\x1e", '"\\u001c\\u001d\\u001e"'),
        (
            "caf\u00e9 \u2713 \u4f60\u597d \U0001f600",
            '"caf\u00e9 \u2713 \u4f60\u597d \U0001f600"',
        ),
        ({"a": [1, None, True], "b": "c"}, '{"a":[1,null,true],"b":"c"}'),
    ],
    ids=[
        "u2028",
        "u2029",
        "nel",
        "newline-cr",
        "file-group-record-separators",
        "unicode-kept-raw",
        "compact",
    ],
)
def test_sse_dumps(value, expected):
    assert sse.dumps(value) == expected


def test_sse_event_exact_framing():
    assert sse.event({"choices": [{"delta": {"content": "a\nb\u2028"}}]}) == (
        'data: {"choices":[{"delta":{"content":"a\\nb\\u2028"}}]}\n\n'
    )


def test_sse_constants():
    assert sse.DONE == "data: [DONE]\n\n"
    assert sse.KEEPALIVE == ": keep-alive\n\n"
    assert sse.HEADERS == {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@given(st.text())
def test_sse_event_is_one_data_line_and_round_trips(text):
    framed = sse.event({"content": text})
    lines = framed.splitlines(keepends=True)

    assert lines == [framed[:-1], "\n"]
    assert lines[0].startswith("data: ")
    assert json.loads(lines[0][len("data: ") :]) == {"content": text}


@pytest.mark.parametrize(
    "kind, include_usage, chunk_message", [("chat", False, False), ("chat", True, False), ("text", False, False),
                                           ("chat", False, True), ("chat", True, True)])
@given(text=st.text())
def test_content_events_template_renders_exactly_like_event_of_build_chunk(kind, include_usage, chunk_message, text):
    chat = ChatRequest(kind, "\x00Creative\u2028", DEFAULT_MODEL, (Message("user", "hi"),), True, include_usage,
                       chunk_message=chunk_message)
    ids = ResponseIds("chatcmpl-x", 1)
    render = sse.ContentEvents(lambda piece: build_chunk(chat, ids, piece), copies=2 if chunk_message and kind == "chat" else 1)
    assert render(text) == sse.event(build_chunk(chat, ids, text))
