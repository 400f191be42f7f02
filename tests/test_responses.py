"""The Responses API: bodies, event sequences, the store, function tools and JSON output,
and the official SDK over gunicorn."""
from __future__ import annotations

import json

import openai
import pydantic
import pytest

from bingo import create_app, tools
from bingo.state.memory import MemoryStore
from bingo.store import make_store
from bingo.tools import BadOutput
from bingo.wire import estimate_tokens
from tests.conftest import with_settings
from tests.helpers import BOTH_UPSTREAMS, expected_content
from tests.test_e2e import Gateway
from tests.test_reliability import Contract
from tests.test_tools import (
    CALL_ID,
    CALL_PARIS,
    SCHEMA,
    TOOL_ROUND_TRIP,
    WEATHER,
    b64,
    sent_text,
)
from tests.test_tools import post as chat_post

TEXT_EVENTS = ["response.output_item.added", "response.content_part.added"]
CLOSING_EVENTS = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
REASONING = ("Reading the question.", "Looking for a source to cite.", "Writing the answer.")  # the sandbox's Think Deeper
WEATHER_TOOL = {"type": "function", **WEATHER["function"]}  # the Responses shape: flat
TIME_TOOL = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
JSON_FORMAT = {"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True}


def create(client, path="/v1/responses", **body):
    body.setdefault("input", "Hello")
    body.setdefault("model", "copilot")
    return client.post(path, data=json.dumps(body), content_type="application/json")


def read_events(text: str) -> list[dict]:
    """The data of each event; every event's `event:` line names its data's type."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), lines
        data = json.loads(lines[1][6:])
        assert data["type"] == lines[0][7:]
        events.append(data)
    return events


def stream(client, **body) -> list[dict]:
    response = create(client, stream=True, **body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream" and response.headers["Cache-Control"] == "no-cache"
    return read_events(response.get_data(as_text=True))


def deltas(events, kind="response.output_text.delta") -> str:
    return "".join(e["delta"] for e in events if e["type"] == kind)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


def check_body(contract, path, body, status=200, method="POST"):
    contract.check(method, path, status, "application/json", json.dumps(body).encode())


def check_stream(contract, events):
    for event in events:
        contract.validate({"data": event}, "#/components/schemas/ResponseStreamEvent")


# -- one-shot ------------------------------------------------------------------------


@BOTH_UPSTREAMS
def test_responses_one_shot_body_is_a_full_response(client, contract, model):
    response = create(client, model=model, metadata={"k": "v"})
    body = response.get_json()
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert body["id"].startswith("resp_") and isinstance(body["created_at"], int)
    message_id = body["output"][0]["id"]
    assert message_id.startswith("msg_")
    text = expected_content("Hello")
    assert body == {
        "id": body["id"], "object": "response", "created_at": body["created_at"], "status": "completed",
        "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": model,
        "output": [{"id": message_id, "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}],
        "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": True, "temperature": None, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": None, "truncation": "disabled",
        "usage": {"input_tokens": estimate_tokens("Hello"), "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": estimate_tokens(text), "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": estimate_tokens("Hello") + estimate_tokens(text)},
        "user": None, "metadata": {"k": "v"},
    }
    check_body(contract, "/v1/responses", body)


@BOTH_UPSTREAMS
def test_responses_text_equals_chat_text(client, model):
    chat = client.post("/v1/chat/completions", json={"model": model, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Cite [sandbox:citations=3]"}]})
    reply = create(client, model=model, instructions="Be brief.", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Cite [sandbox:citations=3]"}]}]).get_json()
    assert reply["output"][0]["content"][0]["text"] == chat.get_json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("path", ["/v1/responses", "/responses", "/openai/v1/responses", "/v1//responses"])
def test_responses_every_path_ending_in_responses_answers(client, path):
    response = create(client, path)
    assert response.status_code == 200
    assert response.get_json()["output"][0]["content"][0]["text"] == expected_content("Hello")


def test_responses_think_deeper_reasoning_is_a_reasoning_item(client, contract):
    body = create(client, model="copilot-think-deeper").get_json()
    reasoning, message = body["output"]
    assert reasoning == {"id": reasoning["id"], "type": "reasoning", "status": "completed",
                         "summary": [{"type": "summary_text", "text": "".join(REASONING)}]}
    assert reasoning["id"].startswith("rs_") and message["type"] == "message"
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == estimate_tokens("".join(REASONING))
    check_body(contract, "/v1/responses", body)


def test_responses_max_output_tokens_cuts_and_is_incomplete(client):
    body = create(client, max_output_tokens=20).get_json()
    text = body["output"][0]["content"][0]["text"]
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    assert expected_content("Hello").startswith(text) and len(text.encode()) == 80
    events = stream(client, max_output_tokens=20)
    assert events[-1]["type"] == "response.incomplete" and deltas(events) == text


# -- streaming -----------------------------------------------------------------------


@BOTH_UPSTREAMS
def test_responses_stream_event_sequence_is_exact(client, contract, model):
    events = stream(client, model=model)
    names = [e["type"] for e in events]
    count = names.count("response.output_text.delta")
    assert count > 1
    assert names == ["response.created", "response.in_progress", *TEXT_EVENTS,
                     *["response.output_text.delta"] * count, *CLOSING_EVENTS, "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    created, final = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert events[1]["response"] == created and final["id"] == created["id"]
    text = expected_content("Hello")
    assert deltas(events) == text == events[-4]["text"] == final["output"][0]["content"][0]["text"]
    item = final["output"][0]
    assert events[2] == {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
                         "item": {**item, "status": "in_progress", "content": []}}
    assert events[3] == {"type": "response.content_part.added", "sequence_number": 3, "item_id": item["id"],
                         "output_index": 0, "content_index": 0,
                         "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}
    assert all(e["item_id"] == item["id"] and e["output_index"] == 0 for e in events[3:-2])
    assert events[-2]["item"] == item and events[-3]["part"] == item["content"][0]
    one_shot = create(client, model=model).get_json()
    assert {**final, "id": 0, "created_at": 0, "output": 0} == {**one_shot, "id": 0, "created_at": 0, "output": 0}
    assert client.get(f"/v1/responses/{final['id']}").get_json() == final
    check_stream(contract, events)


def test_responses_stream_reasoning_events_come_first(client, contract):
    events = stream(client, model="copilot-think-deeper")
    names = [e["type"] for e in events]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.reasoning_summary_part.added"]
    assert names[4:7] == ["response.reasoning_summary_text.delta"] * 3
    assert names[7:10] == ["response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
                           "response.output_item.done"]
    assert names[10:12] == TEXT_EVENTS and events[10]["output_index"] == 1
    assert deltas(events, "response.reasoning_summary_text.delta") == "".join(REASONING) == events[7]["text"]
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert deltas(events) == final["output"][1]["content"][0]["text"] == expected_content("Hello")
    check_stream(contract, events)


@BOTH_UPSTREAMS
def test_responses_failure_after_first_byte_is_error_then_failed(client, sandbox, contract, model):
    events = stream(client, model=model, input="[sandbox:drop] [sandbox:updates=10]")
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "upstream_unavailable" and events[-2]["message"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "upstream_unavailable"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert client.get(f"/v1/responses/{failed['id']}").status_code == 404
    check_stream(contract, events)
    assert sandbox.wait_idle(2.0)


def test_responses_failure_before_first_byte_is_a_real_status(client, sandbox):
    sandbox.queue_fault("create-500")
    response = create(client, stream=True)
    assert response.status_code == 502 and response.get_json()["error"]["type"] == "upstream_error"


# -- previous_response_id and the store ----------------------------------------------


def test_responses_previous_response_id_sends_the_history_upstream(client, sandbox, contract):
    first = create(client, input="Hello").get_json()
    second = create(client, input="And then?", instructions="Be brief.", previous_response_id=first["id"])
    assert second.status_code == 200
    transcript = f"Be brief.\n\nUser: Hello\nAssistant: {expected_content('Hello')}\nUser: And then?"
    assert sandbox.received[-1][0]["content"][0]["text"] == transcript
    body = second.get_json()
    assert body["previous_response_id"] == first["id"] and body["instructions"] == "Be brief."
    assert body["output"][0]["content"][0]["text"] == expected_content(transcript)
    # A third turn carries both earlier ones (instructions are not carried over).
    create(client, input="Last", previous_response_id=body["id"])
    assert sandbox.received[-1][0]["content"][0]["text"] == (
        f"User: Hello\nAssistant: {expected_content('Hello')}\nUser: And then?\n"
        f"Assistant: {expected_content(transcript)}\nUser: Last")
    check_body(contract, "/v1/responses", body)


def test_responses_unknown_previous_response_is_404(client, sandbox, contract):
    creates = sandbox.stats()["creates"]
    response = create(client, previous_response_id="resp_nope")
    assert response.status_code == 404 and response.headers["x-should-retry"] == "false"
    assert response.get_json() == {"error": {
        "message": "Previous response with id 'resp_nope' not found.", "type": "invalid_request_error",
        "param": "previous_response_id", "code": "previous_response_not_found"}}
    assert sandbox.stats()["creates"] == creates
    check_body(contract, "/v1/responses", response.get_json(), 404)


def test_responses_store_false_is_not_stored(client):
    body = create(client, store=False).get_json()
    assert body["store"] is False
    assert client.get(f"/v1/responses/{body['id']}").status_code == 404
    assert create(client, previous_response_id=body["id"]).status_code == 404


def test_responses_get_and_delete(client, contract):
    body = create(client).get_json()
    for path in (f"/v1/responses/{body['id']}", f"/responses/{body['id']}"):
        got = client.get(path)
        assert got.status_code == 200 and got.get_json() == body
        check_body(contract, path, got.get_json(), method="GET")
    deleted = client.delete(f"/v1/responses/{body['id']}")
    assert deleted.status_code == 200
    assert deleted.get_json() == {"id": body["id"], "object": "response.deleted", "deleted": True}
    check_body(contract, f"/v1/responses/{body['id']}", deleted.get_json(), method="DELETE")
    missing = client.get(f"/v1/responses/{body['id']}")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.delete(f"/responses/{body['id']}").status_code == 404
    check_body(contract, f"/v1/responses/{body['id']}", missing.get_json(), 404, method="GET")


def test_responses_store_evicts_the_oldest_past_the_bound(settings):
    client = create_app(with_settings(settings, responses_kept=2)).test_client()
    ids = [create(client, input=f"n{i}").get_json()["id"] for i in range(3)]
    assert [client.get(f"/v1/responses/{i}").status_code for i in ids] == [404, 200, 200]


def test_memory_store_bound_and_delete():
    store = make_store(MemoryStore(responses_kept=2))
    for key in "abc":
        store.put(key, {"response": {}, "history": []})
    assert [store.get(key) is None for key in "abc"] == [True, False, False]
    assert store.delete("b") and not store.delete("b") and store.get("c") == {"response": {}, "history": []}


def test_responses_keys_apply(settings):
    client = create_app(with_settings(settings, api_keys=frozenset({"sk-k"}))).test_client()
    assert create(client).status_code == 401
    assert client.get("/v1/responses/resp_x").status_code == 401
    ok = client.post("/v1/responses", json={"input": "Hello"}, headers={"Authorization": "Bearer sk-k"})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": None}, "input"),
    ({"input": []}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input[0].content[0]"),
    ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ({"input": [{"role": "assistant", "content": "hi"}]}, "input"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format"),
    ({"stream": "yes"}, "stream"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": ["f"]}, "tools[0]"),
    ({"tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "description": 3}]}, "tools[0].description"),
    ({"tools": [{"type": "function", "name": "f", "parameters": {"type": 12}}]}, "tools[0].parameters"),
    ({"tools": [{"type": "function", "name": "f", "strict": "yes"}]}, "tools[0].strict"),
    ({"tools": [TIME_TOOL, TIME_TOOL]}, "tools[1]"),
    ({"tools": [TIME_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [TIME_TOOL], "tool_choice": {"type": "function", "name": "get_weather"}}, "tool_choice"),
    ({"tools": [TIME_TOOL], "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"tools": [TIME_TOOL], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"text": {"format": {"type": "json_schema", "schema": SCHEMA}}}, "text.format.name"),
    ({"text": {"format": {"type": "json_schema", "name": "w"}}}, "text.format.schema"),
    ({"text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "nope"}}}}, "text.format.schema"),
    ({"text": {"format": {**JSON_FORMAT, "strict": 1}}}, "text.format.strict"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[1].call_id"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "function_call", "call_id": "c", "name": "f"}]},
     "input[1].arguments"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "function_call", "call_id": "c", "arguments": "{}"}]},
     "input[1].name"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "function_call_output", "output": "r"}]},
     "input[1].call_id"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[2].output"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "function_call_output", "call_id": "c9", "output": "r"}]},
     "input"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "computer_call"}]}, "input[1]"),
], ids=["none", "empty", "image", "role", "no-user", "tool-choice", "max-tokens", "format", "stream",
        "tools-not-array", "tool-not-object", "hosted-tool", "tool-name", "tool-description", "tool-parameters",
        "tool-strict", "tool-twice", "choice-word", "choice-undeclared", "choice-hosted", "parallel",
        "schema-no-name", "schema-missing", "schema-invalid", "schema-strict", "call-no-call-id", "call-no-arguments",
        "call-no-name", "output-no-call-id", "output-not-text", "output-of-no-call", "unknown-item"])
def test_responses_bad_requests_name_the_param(client, body, param):
    response = client.post("/v1/responses", json={"model": "copilot", "input": "x", **body})
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


# -- function tools and JSON output ------------------------------------------------------


def scripted(*replies: str, question: str = "Weather in Paris?") -> str:
    """An input whose upstream answer is `replies[0]` (and then the corrective turn's)."""
    directive = f"[sandbox:reply={b64(replies[0])}]" if len(replies) == 1 else f"[sandbox:replies={','.join(map(b64, replies))}]"
    return f"{question} {directive}"


def function_call(call_id: str, city: str = "Paris", status: str = "completed") -> dict:
    item = {"type": "function_call", "call_id": call_id, "name": "get_weather", "status": status,
            "arguments": json.dumps({"city": city}) if status == "completed" else ""}
    return item


def message(text: str, status: str = "completed") -> dict:
    return {"type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def without_ids(output: list[dict]) -> list[dict]:
    """Output items with their fresh ids checked and dropped (call ids kept: they are compared by the caller)."""
    prefixes = {"message": "msg_", "function_call": "fc_", "reasoning": "rs_"}
    assert all(item["id"].startswith(prefixes[item["type"]]) for item in output)
    assert len({item["id"] for item in output}) == len(output)
    return [{k: v for k, v in item.items() if k != "id"} for item in output]


def call_ids(output: list[dict]) -> list[str]:
    ids = [item["call_id"] for item in output if item["type"] == "function_call"]
    assert all(CALL_ID.match(i) for i in ids)
    return ids


def test_responses_tool_call_one_shot_body(client, sandbox, contract):
    reply = f"Let me check.\n{CALL_PARIS}\n{CALL_PARIS.replace('Paris', 'Lyon')}\n"
    question = scripted(reply)
    body = create(client, input=question, tools=[WEATHER_TOOL], parallel_tool_calls=True).get_json()
    paris, lyon = call_ids(body["output"])
    assert without_ids(body["output"]) == [message("Let me check."), function_call(paris), function_call(lyon, "Lyon")]
    assert body["status"] == "completed" and body["incomplete_details"] is None
    assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == ([WEATHER_TOOL], "auto", True)
    assert body["usage"]["output_tokens"] == estimate_tokens(reply)
    assert sent_text(sandbox) == f"{tools.instructions(tools.parse_tools([WEATHER]))}\n\nUser: {question}"
    check_body(contract, "/v1/responses", body)


def test_responses_tool_call_stream_events_are_exact(client, contract):
    events = stream(client, input=scripted(f"Let me check.\n{CALL_PARIS}\n"), tools=[WEATHER_TOOL])
    names = [e["type"] for e in events]
    count = names.count("response.output_text.delta")
    assert names == ["response.created", "response.in_progress", *TEXT_EVENTS, *["response.output_text.delta"] * count,
                     *CLOSING_EVENTS, "response.output_item.added", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    prose, call = final["output"]
    assert deltas(events) == "Let me check." == prose["content"][0]["text"]
    n = len(events) - 5
    assert events[n:-1] == [
        {"type": "response.output_item.added", "sequence_number": n, "output_index": 1,
         "item": {**call, "status": "in_progress", "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "sequence_number": n + 1, "item_id": call["id"],
         "output_index": 1, "delta": '{"city": "Paris"}'},
        {"type": "response.function_call_arguments.done", "sequence_number": n + 2, "item_id": call["id"],
         "output_index": 1, "arguments": '{"city": "Paris"}'},
        {"type": "response.output_item.done", "sequence_number": n + 3, "output_index": 1, "item": call},
    ]
    assert without_ids([call]) == [function_call(call["call_id"])]
    assert final["status"] == "completed"
    check_stream(contract, events)


@pytest.mark.parametrize(("reply", "items"), [
    (f"{CALL_PARIS} Done soon.", ["function_call", "message"]),
    (f"First.\n{CALL_PARIS}\n Then. {CALL_PARIS}", ["message", "function_call", "message", "function_call"]),
    ("No call needed.", ["message"]),
], ids=["prose-after", "interleaved", "prose-only"])
def test_responses_prose_around_calls_is_message_items_in_order(client, contract, reply, items):
    body = create(client, input=scripted(reply), tools=[WEATHER_TOOL]).get_json()
    assert [item["type"] for item in body["output"]] == items
    texts = [item["content"][0]["text"] for item in body["output"] if item["type"] == "message"]
    assert texts == [t.strip() for t in texts] and all(texts), "each message item is trimmed"
    events = stream(client, input=scripted(reply), tools=[WEATHER_TOOL])
    streamed = events[-1]["response"]["output"]
    assert [item["type"] for item in streamed] == items
    assert [e["item"] for e in events if e["type"] == "response.output_item.done"] == streamed
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == list(range(len(items)))
    check_stream(contract, events)
    fresh = {"id": 0, "call_id": 0}  # ids are fresh per response
    assert [{**item, **fresh} for item in streamed] == [{**item, **fresh} for item in body["output"]]


CONVERSATION = [
    {"role": "user", "content": "Weather in Paris and the time?"},
    {"role": "assistant", "content": "Checking."},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
    {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "21 C, sunny"},
    {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "10:00"}]},
]


def test_responses_function_call_items_go_upstream_as_chat_sends_them(client, sandbox):
    time = {"type": "function", "function": {k: v for k, v in TIME_TOOL.items() if k != "type"}}
    chat = chat_post(client, tools=[WEATHER, time], messages=TOOL_ROUND_TRIP)
    assert chat.status_code == 200
    chat_text = sent_text(sandbox)
    response = create(client, instructions="Be brief.", input=CONVERSATION, tools=[WEATHER_TOOL, TIME_TOOL])
    assert response.status_code == 200
    assert sent_text(sandbox) == chat_text
    assert chat_text.endswith(
        "\n\nUser: Weather in Paris and the time?\n"
        "Assistant: Checking.\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n'
        "User: Result of get_weather (call call_1):\n21 C, sunny\n"
        "User: Result of get_time (call call_2):\n10:00")


def test_responses_previous_response_id_carries_the_calls(client, sandbox):
    question = scripted(CALL_PARIS, "It is 21 C in Paris.")
    first = create(client, input=question, tools=[WEATHER_TOOL]).get_json()
    (call_id,) = call_ids(first["output"])
    second = create(client, previous_response_id=first["id"], tools=[WEATHER_TOOL], input=[
        {"type": "function_call_output", "call_id": call_id, "output": "21 C"}]).get_json()
    assert sent_text(sandbox) == (
        f"{tools.instructions(tools.parse_tools([WEATHER]))}\n\nUser: {question}\n"
        f"Assistant: {CALL_PARIS}\nUser: Result of get_weather (call {call_id}):\n21 C")
    assert without_ids(second["output"]) == [message("It is 21 C in Paris.")]


@pytest.mark.parametrize("stream_mode", [False, True], ids=["one-shot", "stream"])
def test_responses_required_call_gets_one_corrective_turn(client, sandbox, stream_mode):
    question = scripted("It is sunny, I think.", CALL_PARIS)
    if stream_mode:
        events = stream(client, input=question, tools=[WEATHER_TOOL], tool_choice="required")
        assert "It is sunny" not in json.dumps(events), "the wrong answer never reaches the client"
        output = events[-1]["response"]["output"]
    else:
        output = create(client, input=question, tools=[WEATHER_TOOL], tool_choice="required").get_json()["output"]
    assert without_ids(output) == [function_call(call_ids(output)[0])]
    assert sent_text(sandbox).endswith(
        "\nAssistant: It is sunny, I think.\n"
        "User: " + tools.correction(BadOutput("it holds no <tool_call> block", "tool_call")))


@pytest.mark.parametrize("stream_mode", [False, True], ids=["one-shot", "stream"])
def test_responses_forced_call_that_never_comes_is_502(client, contract, stream_mode):
    response = create(client, input=scripted("x", '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'),
                      tools=[WEATHER_TOOL, TIME_TOOL], tool_choice={"type": "function", "name": "get_weather"},
                      stream=stream_mode)
    assert response.status_code == 502  # known before the first byte, in stream mode too
    error = response.get_json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("upstream_error", "invalid_model_output", None)
    assert error["message"].startswith("The model did not make the tool call that tool_choice requires")
    assert "tool_choice requires 'get_weather'" in error["message"]
    check_body(contract, "/v1/responses", response.get_json(), 502)


def test_responses_forced_call_failing_after_the_first_byte_is_error_then_failed(client, contract):
    question = f"q [sandbox:replies={b64('no')},{b64('still no')}] [sandbox:delay=0.3]"
    events = stream(client, input=question, tools=[WEATHER_TOOL], tool_choice="required")
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error", "response.failed"]
    assert events[2]["code"] == "invalid_model_output"
    assert events[3]["response"]["error"]["code"] == "invalid_model_output"
    check_stream(contract, events)


@pytest.mark.parametrize("stream_mode", [False, True], ids=["one-shot", "stream"])
def test_responses_json_schema_output_is_the_validated_value_alone(client, sandbox, contract, stream_mode):
    question = scripted('Here you go:\n```json\n{"t": 21.5}\n```\nEnjoy!', question="Temperature?")
    if stream_mode:
        events = stream(client, input=question, text={"format": JSON_FORMAT})
        assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ['{"t": 21.5}']
        body = events[-1]["response"]
        check_stream(contract, events)
    else:
        body = create(client, input=question, text={"format": JSON_FORMAT}).get_json()
        check_body(contract, "/v1/responses", body)
    assert without_ids(body["output"]) == [message('{"t": 21.5}')]
    assert body["text"] == {"format": JSON_FORMAT}
    assert sent_text(sandbox) == (
        f"{tools.instructions((), tools.NONE, True, tools.parse_response_format({'type': 'json_schema', 'json_schema': JSON_FORMAT}))}"
        f"\n\nUser: {question}")


def test_responses_json_schema_mismatch_gets_a_corrective_turn(client, sandbox):
    body = create(client, input=scripted('{"t": "hot"}', '{"t": 30}'), text={"format": JSON_FORMAT}).get_json()
    assert body["output"][0]["content"][0]["text"] == '{"t": 30}'
    assert sent_text(sandbox).endswith(
        "User: Your answer was not usable: the JSON does not match the schema weather: 'hot' is not of type 'number' "
        "(at $.t). Answer again with the JSON value only.")


def test_responses_json_object_invalid_twice_is_502(client):
    response = create(client, input=scripted("no json", "still none"), text={"format": {"type": "json_object"}})
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "invalid_model_output" and "holds no JSON object" in error["message"]


# -- the official SDK against the Procfile command -------------------------------------


@pytest.fixture(scope="module")
def sdk(sandbox_server, tmp_path_factory):
    gateway = Gateway(sandbox_server, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log", bare=True)
    yield openai.OpenAI(base_url=f"{gateway.base}/v1", api_key="unused", max_retries=0, timeout=30)
    gateway.stop()


@pytest.mark.e2e
def test_sdk_responses_create_one_shot(sdk, sandbox):
    reply = sdk.responses.create(model="copilot", input="Hello", instructions="Be brief.")
    assert reply.object == "response" and reply.status == "completed" and reply.model == "copilot"
    assert reply.output_text == expected_content("Be brief.\n\nUser: Hello")
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens > 0
    assert sdk.responses.retrieve(reply.id).output_text == reply.output_text
    sdk.responses.delete(reply.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(reply.id)


@pytest.mark.e2e
def test_sdk_responses_stream_helper(sdk, sandbox):
    with sdk.responses.stream(model="copilot", input="Hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text == expected_content("Hello")
    assert [e.snapshot for e in events if e.type == "response.output_text.delta"][-1] == text
    assert events[0].type == "response.created" and events[-1].type == "response.completed"


@pytest.mark.e2e
def test_sdk_responses_create_stream_and_reasoning(sdk, sandbox):
    events = list(sdk.responses.create(model="copilot-think-deeper", input="Hello", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed" and done.response.output_text == expected_content("Hello")
    assert done.response.output[0].type == "reasoning" and done.response.output[0].summary[0].text == "".join(REASONING)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == done.response.output_text


@pytest.mark.e2e
def test_sdk_responses_function_call_and_its_output(sdk, sandbox):
    question = scripted(CALL_PARIS, "It is 21 C in Paris.")
    first = sdk.responses.create(model="copilot", input=question, tools=[WEATHER_TOOL])
    (call,) = first.output
    assert (call.type, call.name, json.loads(call.arguments), call.status) == (
        "function_call", "get_weather", {"city": "Paris"}, "completed")
    assert CALL_ID.match(call.call_id) and call.id.startswith("fc_") and first.output_text == ""
    # Stateless: the whole conversation again, the call item as the SDK returned it.
    follow_up = [{"role": "user", "content": question}, call,
                 {"type": "function_call_output", "call_id": call.call_id, "output": "21 C"}]
    second = sdk.responses.create(model="copilot", input=follow_up, tools=[WEATHER_TOOL])
    assert second.output_text == "It is 21 C in Paris."
    assert sent_text(sandbox).endswith(f"User: Result of get_weather (call {call.call_id}):\n21 C")
    # Stored: previous_response_id and the output alone.
    third = sdk.responses.create(model="copilot", previous_response_id=first.id, tools=[WEATHER_TOOL], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "21 C"}])
    assert third.output_text == "It is 21 C in Paris."


@pytest.mark.e2e
def test_sdk_responses_stream_helper_with_a_tool_call(sdk, sandbox):
    with sdk.responses.stream(model="copilot", input=scripted(f"Checking.\n{CALL_PARIS}"), tools=[WEATHER_TOOL]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    arguments = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in arguments] == ['{"city": "Paris"}']
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text == "Checking." and final.output[1].arguments == '{"city": "Paris"}'
    assert final.output[1].id == arguments[0].item_id


@pytest.mark.e2e
def test_sdk_responses_parse_with_a_pydantic_model(sdk, sandbox):
    class Temperature(pydantic.BaseModel):
        t: float

    reply = sdk.responses.parse(model="copilot", input=scripted('{"t": 21.5}', question="Temperature?"),
                                text_format=Temperature)
    assert reply.output_parsed == Temperature(t=21.5)
    assert "Schema: " in sent_text(sandbox)


@pytest.mark.e2e
def test_sdk_responses_previous_response_id(sdk, sandbox):
    first = sdk.responses.create(model="copilot", input="Hello")
    second = sdk.responses.create(model="copilot", input="And then?", previous_response_id=first.id)
    transcript = f"User: Hello\nAssistant: {first.output_text}\nUser: And then?"
    assert sandbox.received[-1][0]["content"][0]["text"] == transcript
    assert second.output_text == expected_content(transcript) and second.previous_response_id == first.id
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.responses.create(model="copilot", input="x", previous_response_id="resp_gone")
    assert caught.value.code == "previous_response_not_found"
