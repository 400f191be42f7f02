"""Tool calls, JSON output and max_tokens: the pure pieces, then through the app.

The sandbox's `[sandbox:reply=...]` / `[sandbox:replies=...]` directives script the
model's exact answer (base64url), so every body and chunk here is exact.
"""
from __future__ import annotations

import json
import re

import pytest

from bingo import tool_output, tools, wire
from bingo.tool_output import Block, CallParser
from bingo.tools import AUTO, BadOutput, ResponseFormat, Tool, ToolCall, ToolChoice
from tests.helpers import b64, read_sse

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
DECLARED = tools.parse_tools([WEATHER, TIME])
CALL_PARIS = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
CALL_ID = re.compile(r"^call_[0-9a-f]{24}$")
SCHEMA = {"type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}


def scripted(*replies: str, question: str = "Weather in Paris?") -> list[dict]:
    directive = f"[sandbox:reply={b64(replies[0])}]" if len(replies) == 1 else f"[sandbox:replies={','.join(map(b64, replies))}]"
    return [{"role": "user", "content": f"{question} {directive}"}]


def post(client, **body):
    body.setdefault("model", "copilot")
    return client.post("/v1/chat/completions", data=json.dumps(body), content_type="application/json")


def sent_text(sandbox, session: int = -1) -> str:
    """The text of the Copilot `send` the gateway made in a websocket session."""
    (send,) = [f for f in sandbox.received[session] if f.get("event") == "send"]
    return send["content"][0]["text"]


def chunk_deltas(events: list) -> list[dict]:
    return [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]


def joined(events: list) -> dict:
    """A stream's message as the one-shot body would have it: content and tool_calls."""
    content, calls = None, []
    for delta in chunk_deltas(events):
        if delta.get("content"):
            content = (content or "") + delta["content"]
        for call in delta.get("tool_calls", []):
            assert call["index"] == len(calls)
            calls.append({k: v for k, v in call.items() if k != "index"})
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return message


# -- parser -------------------------------------------------------------------------


def feed_all(pieces: list[str]) -> list:
    parser = CallParser()
    out = [item for piece in pieces for item in parser.feed(piece)] + parser.finish()
    merged: list = []
    for item in out:  # prose may come in several pieces: join neighbours
        if isinstance(item, str) and merged and isinstance(merged[-1], str):
            merged[-1] += item
        else:
            merged.append(item)
    return merged


ANSWER = f"Let me see. {CALL_PARIS} and <tool_cal> {CALL_PARIS}"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 11, len(ANSWER)], ids=lambda n: f"pieces-of-{n}")
def test_call_parser_splits_prose_and_blocks_however_the_text_is_cut(size):
    pieces = [ANSWER[i:i + size] for i in range(0, len(ANSWER), size)]
    body = CALL_PARIS[len("<tool_call>"):-len("</tool_call>")]
    assert feed_all(pieces) == ["Let me see. ", Block(body), " and <tool_cal> ", Block(body)]


def test_call_parser_holds_back_only_a_possible_opening_tag():
    parser = CallParser()
    assert parser.feed("Hello <tool") == ["Hello "]
    assert parser.feed("s are fun") == ["<tools are fun"]
    assert parser.feed(" <tool_call>{\"na") == [" "]
    assert parser.feed("me\": 1}") == []
    assert parser.finish() == ['<tool_call>{"name": 1}'], "an unclosed block is prose"


def test_check_call_returns_a_tool_call_with_json_arguments():
    call = tool_output.check_call('{"name": "get_weather", "arguments": {"city": "Paris"}}', DECLARED)
    assert CALL_ID.match(call.id)
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize(
    ("body", "only", "problem"),
    [
        ("{not json", None, "not valid JSON"),
        ('["get_weather"]', None, 'must hold {"name"'),
        ('{"name": "nope", "arguments": {}}', None, "'nope', which is not a declared function (get_weather, get_time)"),
        ('{"name": "get_time", "arguments": {}}', "get_weather", "tool_choice requires 'get_weather'"),
        ('{"name": "get_weather", "arguments": [1]}', None, "not a JSON object"),
        ('{"name": "get_weather", "arguments": {}}', None, "'city' is a required property"),
        ('{"name": "get_weather", "arguments": {"city": 3}}', None, "3 is not of type 'string' (at $.city)"),
    ],
    ids=["not-json", "not-object", "undeclared", "not-the-named", "args-not-object", "missing-arg", "wrong-type"],
)
def test_check_call_says_what_is_wrong(body, only, problem):
    with pytest.raises(BadOutput, match=re.escape(problem)):
        tool_output.check_call(body, DECLARED, only)


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ('{"t": 1}', {"t": 1}),
        ('Sure! ```json\n{"t": 2}\n``` Enjoy.', {"t": 2}),
        ('Here it is: {"t": 3} — done {"t": 4}', {"t": 3}),
        ('{broken {"t": 5}', {"t": 5}),
    ],
    ids=["bare", "fenced", "prose-around", "skips-a-false-start"],
)
def test_check_json_extracts_the_value(answer, value):
    assert json.loads(tool_output.check_json(answer, ResponseFormat("json_schema", "w", SCHEMA))) == value


@pytest.mark.parametrize(
    ("answer", "fmt", "problem"),
    [
        ("no json here", ResponseFormat("json_object"), "holds no JSON object"),
        ("[1, 2]", ResponseFormat("json_object"), "holds no JSON object"),
        ('{"t": "hot"}', ResponseFormat("json_schema", "w", SCHEMA), "'hot' is not of type 'number' (at $.t)"),
    ],
    ids=["none", "array-is-not-an-object", "schema-mismatch"],
)
def test_check_json_says_what_is_wrong(answer, fmt, problem):
    with pytest.raises(BadOutput, match=re.escape(problem)):
        tool_output.check_json(answer, fmt)


def test_instructions_list_the_tools_and_the_block_form():
    text = tools.instructions(DECLARED, ToolChoice("function", "get_weather"), parallel=False)
    assert "- get_weather: The weather now in a city.\n  Arguments (JSON Schema): " in text
    assert '<tool_call>{"name": "<function name>", "arguments": {<the arguments as a JSON object>}}</tool_call>' in text
    assert "you must call the function get_weather" in text and "Call at most one function." in text


def test_instructions_say_nothing_for_tool_choice_none():
    assert tools.instructions(DECLARED, tools.NONE) == ""


# -- request validation -------------------------------------------------------------


def parse(**fields):
    from bingo.models import catalogue

    body = {"model": "copilot", "messages": [{"role": "user", "content": "hi"}], **fields}
    return wire.parse_request(body, catalogue("copilot"), legacy=False)


def test_parse_request_keeps_tools_choice_format_and_limit():
    chat = parse(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
                 parallel_tool_calls=False, response_format=JSON_SCHEMA, max_completion_tokens=50, max_tokens=80)
    assert chat.tools == (Tool("get_weather", "The weather now in a city.", WEATHER["function"]["parameters"]),)
    assert (chat.tool_choice, chat.parallel_tool_calls, chat.max_tokens) == (ToolChoice("function", "get_weather"), False, 50)
    assert chat.response_format == ResponseFormat("json_schema", "weather", SCHEMA, True)


def test_parse_request_defaults_tool_choice_by_tools():
    assert parse().tool_choice == tools.NONE
    assert parse(tools=[WEATHER]).tool_choice == AUTO


def test_parse_request_reads_tool_calls_and_results():
    chat = parse(messages=[
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
    ])
    assert chat.messages[1] == wire.Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),))
    assert chat.messages[2] == wire.Message("tool", "21 C", tool_call_id="call_1")


BAD_FIELDS = [
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": ["f"]}, "tools[0]"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": 3}}]}, "tools[0].function.description"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 12}}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]}, "tools[0].function.strict"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1]"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "nope"}}}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": 1}}}, "response_format"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"max_completion_tokens": "10"}, "max_completion_tokens"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": "x"}]}, "messages[1].tool_calls"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
     "messages[1].tool_calls[0].id"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]},
     "messages[1].tool_calls[0].function.name"),
    ({"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]}, "messages[1].tool_call_id"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "c9", "content": "r"}]},
     "messages[1].tool_call_id"),
    ({"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]},
                   {"role": "tool", "tool_call_id": "c", "content": None}]}, "messages[2].content"),
]


@pytest.mark.parametrize(("fields", "param"), BAD_FIELDS, ids=[f"{p}-{i}" for i, (_, p) in enumerate(BAD_FIELDS)])
def test_malformed_fields_are_400_naming_the_param(client, fields, param):
    response = post(client, **{"messages": [{"role": "user", "content": "hi"}], **fields})
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


# -- through the app ---------------------------------------------------------------


# A chat with two tool calls and their results (the Responses tests send the same as items).
TOOL_ROUND_TRIP = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and the time?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21 C, sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": "10:00"},
]


def test_prompt_carries_tools_calls_and_results(client, sandbox):
    assert post(client, messages=TOOL_ROUND_TRIP, tools=[WEATHER, TIME]).status_code == 200
    assert sent_text(sandbox) == (
        "Be brief.\n\n"
        + tools.instructions(DECLARED)
        + "\n\nUser: Weather in Paris and the time?\n"
        "Assistant: Checking.\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n'
        "User: Result of get_weather (call call_1):\n21 C, sunny\n"
        "User: Result of get_time (call call_2):\n10:00"
    )


def test_tool_choice_none_mentions_no_tools_and_parses_nothing(client, sandbox):
    reply = f"Not calling: {CALL_PARIS}"
    body = post(client, messages=scripted(reply), tools=[WEATHER], tool_choice="none").get_json()
    assert "You can call these functions" not in sent_text(sandbox)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": reply}
    assert body["choices"][0]["finish_reason"] == "stop"


def call_paris(call_id: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def test_one_shot_tool_calls_body(client):
    reply = f"Let me check.\n{CALL_PARIS}\n{CALL_PARIS.replace('Paris', 'Lyon')}\n"
    body = post(client, messages=scripted(reply), tools=[WEATHER]).get_json()
    (choice,) = body["choices"]
    calls = choice["message"]["tool_calls"]
    assert all(CALL_ID.match(c["id"]) for c in calls) and calls[0]["id"] != calls[1]["id"]
    lyon = {**call_paris(calls[1]["id"]), "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}}
    assert choice == {
        "index": 0, "logprobs": None, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [call_paris(calls[0]["id"]), lyon]},
    }
    assert body["usage"]["completion_tokens"] == wire.estimate_tokens(reply)


def test_stream_tool_calls_chunks_are_exact(client):
    reply = f"Let me check.\n{CALL_PARIS}\n"
    response = post(client, messages=scripted(reply), tools=[WEATHER], stream=True)
    events = read_sse(response.get_data(as_text=True))
    deltas = chunk_deltas(events)
    call = deltas[-2]["tool_calls"][0]
    assert CALL_ID.match(call["id"])
    content = [d["content"] for d in deltas[1:-2]]
    assert "".join(content) == "Let me check." and all(content)
    assert deltas[0] == {"role": "assistant", "content": None}
    assert deltas[-2:] == [{"tool_calls": [{"index": 0, **call_paris(call["id"])}]}, {}]
    assert [e["choices"][0]["finish_reason"] for e in events[:-1]].count("tool_calls") == 1
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls" and events[-1] == "[DONE]"


@pytest.mark.parametrize(
    ("reply", "fields"),
    [
        (f"Let me check.\n{CALL_PARIS}\nDone soon.", {}),
        (f"{CALL_PARIS}{CALL_PARIS.replace('Paris', 'Rome')}", {}),
        (f"{CALL_PARIS}{CALL_PARIS.replace('Paris', 'Rome')}", {"parallel_tool_calls": False}),
        (f"Broken: <tool_call>{{nope</tool_call> then {CALL_PARIS}", {"tool_choice": "required"}),
        ("Just prose, <tool_call>unclosed", {}),
        ("Fine answer, no call.", {}),
    ],
    ids=["prose-around", "two-calls", "one-call-only", "required-after-a-bad-block", "unclosed", "prose-only"],
)
def test_joined_stream_equals_the_one_shot_message(client, reply, fields):
    one_shot = post(client, messages=scripted(reply), tools=[WEATHER], **fields).get_json()["choices"][0]
    events = read_sse(post(client, messages=scripted(reply), tools=[WEATHER], stream=True, **fields).get_data(as_text=True))
    streamed = joined(events)
    for got in (one_shot["message"], streamed):  # ids are fresh per response
        for call in got.get("tool_calls", []):
            call["id"] = "call_x"
    assert streamed == one_shot["message"]
    assert events[-2]["choices"][0]["finish_reason"] == one_shot["finish_reason"]


def test_parallel_false_keeps_later_blocks_as_prose(client):
    reply = f"{CALL_PARIS}{CALL_PARIS}"
    message = post(client, messages=scripted(reply), tools=[WEATHER], parallel_tool_calls=False).get_json()["choices"][0]["message"]
    assert (len(message["tool_calls"]), message["content"]) == (1, CALL_PARIS)


def test_invalid_block_in_auto_mode_stays_prose(client):
    reply = '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>'
    choice = post(client, messages=scripted(reply), tools=[WEATHER]).get_json()["choices"][0]
    assert choice == {"index": 0, "logprobs": None, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_required_call_gets_one_corrective_turn(client, sandbox, stream):
    messages = scripted("It is sunny, I think.", CALL_PARIS)
    response = post(client, messages=messages, tools=[WEATHER], tool_choice="required", stream=stream)
    if stream:
        events = read_sse(response.get_data(as_text=True))
        assert "It is sunny" not in json.dumps(events), "the wrong answer never reaches the client"
        message = joined(events)
    else:
        message = response.get_json()["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"]["name"] == "get_weather"
    corrective = sent_text(sandbox)
    assert corrective.endswith(
        "\nAssistant: It is sunny, I think.\n"
        "User: " + tools.correction(BadOutput("it holds no <tool_call> block", "tool_call"))
    )


@pytest.mark.parametrize(
    ("replies", "choice", "problem"),
    [
        (("No call.", "Still no call."), "required", "it holds no <tool_call> block"),
        (("x", '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'),
         {"type": "function", "function": {"name": "get_weather"}}, "tool_choice requires 'get_weather'"),
        (("x", '<tool_call>{"name": "get_weather", "arguments": {"city": 1}}</tool_call>'), "required",
         "1 is not of type 'string' (at $.city)"),
    ],
    ids=["no-block", "other-function", "bad-arguments"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_forced_call_that_never_comes_is_502(client, replies, choice, problem, stream):
    response = post(client, messages=scripted(*replies), tools=[WEATHER, TIME], tool_choice=choice, stream=stream)
    assert response.status_code == 502  # the failure is known before the first byte
    error = response.get_json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("upstream_error", "invalid_model_output", None)
    assert error["message"].startswith("The model did not make the tool call that tool_choice requires")
    assert problem in error["message"]


def test_forced_call_failing_after_the_first_byte_is_an_in_band_error(client):
    messages = [{"role": "user", "content": f"q [sandbox:replies={b64('no')},{b64('still no')}] [sandbox:delay=0.3]"}]
    response = post(client, messages=messages, tools=[WEATHER], tool_choice="required", stream=True)
    assert response.status_code == 200
    events = read_sse(response.get_data(as_text=True))
    assert events[-1]["error"]["code"] == "invalid_model_output"
    assert all("tool_calls" not in e["choices"][0]["delta"] for e in events[:-1])


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_json_schema_output_is_the_validated_value_alone(client, sandbox, stream):
    messages = scripted('Here you go:\n```json\n{"t": 21.5}\n```\nEnjoy!', question="Temperature?")
    response = post(client, messages=messages, response_format=JSON_SCHEMA, stream=stream)
    if stream:
        events = read_sse(response.get_data(as_text=True))
        assert [d for d in chunk_deltas(events) if d.get("content")] == [{"content": '{"t": 21.5}'}]
        assert events[-2]["choices"][0]["finish_reason"] == "stop"
    else:
        assert response.get_json()["choices"][0]["message"] == {"role": "assistant", "content": '{"t": 21.5}'}
    assert "Schema: " + json.dumps(SCHEMA) in sent_text(sandbox)


def test_json_object_invalid_twice_is_502(client):
    response = post(client, messages=scripted("no json", "still none"), response_format={"type": "json_object"})
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "invalid_model_output" and "holds no JSON object" in error["message"]


def test_json_schema_mismatch_gets_a_corrective_turn(client, sandbox):
    response = post(client, messages=scripted('{"t": "hot"}', '{"t": 30}'), response_format=JSON_SCHEMA)
    assert response.get_json()["choices"][0]["message"]["content"] == '{"t": 30}'
    assert sent_text(sandbox).endswith(
        "User: Your answer was not usable: the JSON does not match the schema weather: 'hot' is not of type 'number' "
        "(at $.t). Answer again with the JSON value only."
    )


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_the_answer(client, sandbox, stream, field):
    reply = "héllo wörld " * 20
    response = post(client, messages=scripted(reply), stream=stream, **{field: 7})
    if stream:
        events = read_sse(response.get_data(as_text=True))
        content = "".join(d.get("content") or "" for d in chunk_deltas(events))
        finish = events[-2]["choices"][0]["finish_reason"]
    else:
        choice = response.get_json()["choices"][0]
        content, finish = choice["message"]["content"], choice["finish_reason"]
    assert (content, finish) == (reply.encode()[:28].decode("utf-8", "ignore"), "length")
    assert wire.estimate_tokens(content) == 7
    assert sandbox.wait_idle(2.0), "the upstream turn is closed at once"


def test_max_tokens_larger_than_the_answer_changes_nothing(client):
    choice = post(client, messages=scripted("short"), max_tokens=100).get_json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("short", "stop")


def test_tools_on_the_chathub_too(client):
    body = post(client, model="Creative", messages=scripted(f"Sure. {CALL_PARIS}"), tools=[WEATHER]).get_json()
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"]["content"] == "Sure."


def test_openai_python_accumulates_the_tool_call_stream(client):
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    reply = f"Let me check.\n{CALL_PARIS}\n{CALL_PARIS.replace('Paris', 'Oslo')}"
    events = read_sse(post(client, messages=scripted(reply), tools=[WEATHER], stream=True).get_data(as_text=True))
    state = ChatCompletionStreamState()
    for event in events[:-1]:
        state.handle_chunk(ChatCompletionChunk.model_validate(event))
    message = state.get_final_completion().choices[0].message
    assert message.content == "Let me check."
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Oslo"}')]
