"""The Responses API: bodies, event sequences, the store, and the official SDK over gunicorn."""
from __future__ import annotations

import json

import openai
import pytest

from bingo import create_app
from bingo.store import MemoryStore
from bingo.wire import estimate_tokens
from tests.conftest import with_settings
from tests.helpers import BOTH_UPSTREAMS, expected_content
from tests.test_e2e import Gateway
from tests.test_reliability import Contract

TEXT_EVENTS = ["response.output_item.added", "response.content_part.added"]
CLOSING_EVENTS = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
REASONING = ("Reading the question.", "Looking for a source to cite.", "Writing the answer.")  # the sandbox's Think Deeper


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
    store = MemoryStore(2)
    for key in "abc":
        store.put(key, {"response": {}, "history": []})
    assert (store.get("a"), len(store)) == (None, 2)
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
], ids=["none", "empty", "image", "role", "no-user", "tool-choice", "max-tokens", "format", "stream"])
def test_responses_bad_requests_name_the_param(client, body, param):
    response = client.post("/v1/responses", json={"model": "copilot", "input": "x", **body})
    assert response.status_code == 400 and response.get_json()["error"]["param"] == param


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
def test_sdk_responses_previous_response_id(sdk, sandbox):
    first = sdk.responses.create(model="copilot", input="Hello")
    second = sdk.responses.create(model="copilot", input="And then?", previous_response_id=first.id)
    transcript = f"User: Hello\nAssistant: {first.output_text}\nUser: And then?"
    assert sandbox.received[-1][0]["content"][0]["text"] == transcript
    assert second.output_text == expected_content(transcript) and second.previous_response_id == first.id
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.responses.create(model="copilot", input="x", previous_response_id="resp_gone")
    assert caught.value.code == "previous_response_not_found"
