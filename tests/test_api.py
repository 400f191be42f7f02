"""The OpenAI-compatible API through the whole stack: Flask app -> client -> local upstream."""
from __future__ import annotations

import json

import pytest

from bingo import create_app
from tests.conftest import with_settings
from tests.helpers import BOTH_UPSTREAMS, content_of, expected_content, read_sse

HELLO = {"role": "user", "content": "Hello"}



def chat(client, path="/v1/chat/completions", **body):
    body.setdefault("messages", [HELLO])
    body.setdefault("model", "Creative")
    return client.post(path, data=json.dumps(body), content_type="application/json")


def stream_events(client, **body):
    response = chat(client, stream=True, **body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response, read_sse(response.get_data(as_text=True))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/chat/completions",
        "/openai/chat/completions",
        "/api/v1/chat/completions",
        "//chat/completions",
        "/v1//chat/completions",
        "/chat/completions/chat/completions",
        "/v1/chat/completions?api-version=2024-02-01",
    ],
)
def test_every_completions_path_answers_directly(client, path):
    response = chat(client, path)
    assert response.status_code == 200
    assert response.get_json()["choices"][0]["message"]["content"] == expected_content("Hello")


def test_azure_deployment_path_names_the_model(client, sandbox):
    response = client.post(
        "/openai/deployments/Precise/chat/completions?api-version=2024-02-01",
        data=json.dumps({"messages": [HELLO]}), content_type="application/json",
    )
    assert response.status_code == 200
    assert response.get_json()["model"] == "Precise"
    assert sandbox.received[-1][2]["arguments"][0]["tone"] == "Precise"


@BOTH_UPSTREAMS
def test_non_stream_body_is_a_full_chat_completion(client, model):
    response = chat(client, model=model.upper())
    body = response.get_json()
    assert response.mimetype == "application/json"
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == model.upper()
    assert body["choices"] == [{
        "index": 0, "message": {"role": "assistant", "content": expected_content("Hello")},
        "logprobs": None, "finish_reason": "stop",
    }]
    usage = body["usage"]
    assert all(isinstance(usage[k], int) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


@BOTH_UPSTREAMS
def test_stream_chunks_follow_the_contract(client, model):
    response, events = stream_events(client, model=model)
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], chunks[0]["created"], model, "chat.completion.chunk")
    }
    assert chunks[0]["id"].startswith("chatcmpl-")
    finished = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert finished == ["stop"]
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert all("usage" not in c and "error" not in c for c in chunks)


@pytest.mark.parametrize("prompt", ["Hello", "Unicode please [sandbox:unicode]", "Long [sandbox:chars=4000]", "[sandbox:split] split"])
@BOTH_UPSTREAMS
def test_stream_joins_to_the_non_stream_answer_byte_for_byte(client, prompt, model):
    messages = [{"role": "user", "content": prompt}]
    one_shot = chat(client, model=model, messages=messages).get_json()["choices"][0]["message"]["content"]
    _, events = stream_events(client, model=model, messages=messages)
    assert content_of(events) == one_shot == expected_content(prompt)


@BOTH_UPSTREAMS
def test_unicode_line_separators_survive_the_stream(client, model):
    response = chat(client, model=model, stream=True, messages=[{"role": "user", "content": "[sandbox:unicode]"}])
    raw = response.get_data()
    assert "\u2028".encode() not in raw, "U+2028 travels escaped inside the JSON"
    assert "\u2028" in content_of(read_sse(raw.decode()))


@BOTH_UPSTREAMS
def test_include_usage_adds_a_usage_chunk_before_done(client, model):
    _, events = stream_events(client, model=model, stream_options={"include_usage": True})
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert sum(1 for e in events[:-2] if e["choices"][0]["finish_reason"]) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
@BOTH_UPSTREAMS
def test_stop_cuts_the_answer_and_closes_upstream(client, sandbox, stream, model):
    prompt = "Stop please [sandbox:chars=2000]"
    full = expected_content(prompt)
    stop = full[300:310]
    response = chat(client, model=model, stream=stream, stop=[stop, "never-there"], messages=[{"role": "user", "content": prompt}])
    if stream:
        text = content_of(read_sse(response.get_data(as_text=True)))
    else:
        text = response.get_json()["choices"][0]["message"]["content"]
    assert text == full[: full.index(stop)]
    assert sandbox.wait_idle(2.0)


def test_legacy_completions_return_text_completion(client):
    response = client.post("/v1/completions", data=json.dumps({"model": "Creative", "prompt": "Hello"}))
    body = response.get_json()
    assert response.status_code == 200
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"] == expected_content("Hello")
    assert body["choices"][0]["finish_reason"] == "stop"


def test_legacy_completions_cut_at_max_tokens(client):
    response = client.post("/v1/completions", data=json.dumps({"model": "Creative", "prompt": "Hello", "max_tokens": 5}))
    choice = response.get_json()["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == (expected_content("Hello")[:20], "length")


def test_legacy_completions_stream(client):
    response = client.post("/v1/completions", data=json.dumps({"prompt": "Hello", "stream": True}))
    events = read_sse(response.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    assert {e["object"] for e in events[:-1]} == {"text_completion"}
    assert content_of(events) == expected_content("Hello")


def test_form_encoded_body_is_read_as_json(client):
    """curl -d without -H sends application/x-www-form-urlencoded."""
    response = client.post("/v1/chat/completions", data=json.dumps({"messages": [HELLO]}),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "model, fault, status, headers",
    [
        ("Creative", "throttled", 429, {"Retry-After": "60", "x-should-retry": "false"}),
        ("Creative", "captcha", 503, {"x-should-retry": "false"}),
        ("Creative", "create-unauthorized", 502, {"x-should-retry": "false"}),
        ("Creative", "create-500", 502, {}),
        ("Creative", "ws-200", 502, {"x-should-retry": "false"}),
        ("copilot", "cloudflare", 503, {"x-should-retry": "false"}),
        ("copilot", "error-unavailable", 502, {"x-should-retry": "false"}),
        ("copilot", "create-401", 502, {"x-should-retry": "false"}),
        ("copilot", "create-500", 502, {}),
        ("copilot", "ws-200", 502, {"x-should-retry": "false"}),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_failures_before_the_first_byte_get_real_statuses(client, sandbox, model, fault, status, headers, stream):
    sandbox.queue_fault(fault)
    response = chat(client, model=model, stream=stream)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    for name, value in headers.items():
        assert response.headers[name] == value
    assert "test-cookie-value" not in response.get_data(as_text=True)


def test_captcha_message_tells_the_operator_what_to_do(client, sandbox):
    sandbox.queue_fault("captcha")
    error = chat(client).get_json()["error"]
    assert error["code"] == "captcha_required" and error["type"] == "upstream_error"
    assert error["message"].startswith("Bing asks for a CAPTCHA: open bing.com/chat in a browser with this account, solve it, and refresh BING_COOKIE.")


@BOTH_UPSTREAMS
def test_silence_before_any_text_is_a_504_even_when_streaming(app, settings, sandbox, model):
    client = create_app(with_settings(settings, idle_timeout=0.3, keepalive_seconds=1.0)).test_client()
    response = chat(client, model=model, stream=True, messages=[{"role": "user", "content": "[sandbox:silent]"}])
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "upstream_timeout"
    assert sandbox.wait_idle(2.0)


@BOTH_UPSTREAMS
def test_failure_after_streaming_started_is_one_in_band_error(client, sandbox, model):
    response = chat(client, model=model, stream=True, messages=[{"role": "user", "content": "[sandbox:drop] [sandbox:updates=10]"}])
    assert response.status_code == 200
    events = read_sse(response.get_data(as_text=True))
    assert "[DONE]" not in events
    assert set(events[-1]) == {"error"}
    assert events[-1]["error"]["code"] == "upstream_unavailable"
    assert all("error" not in e for e in events[:-1])
    assert sandbox.wait_idle(2.0)


@BOTH_UPSTREAMS
def test_slow_upstream_gets_keepalive_comments(client, model):
    response = chat(client, model=model, stream=True, messages=[{"role": "user", "content": "[sandbox:slow-first=1.6]"}])
    raw = response.get_data(as_text=True)
    assert raw.count(": keep-alive\n\n") >= 2
    assert content_of(read_sse(raw)).startswith("Echo: ")


def test_retraction_finishes_with_content_filter(client):
    body = chat(client, messages=[{"role": "user", "content": "[sandbox:apology]"}]).get_json()
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert "My mistake" not in body["choices"][0]["message"]["content"]


@BOTH_UPSTREAMS
def test_client_going_away_closes_the_upstream(client, sandbox, model):
    response = client.post("/v1/chat/completions", buffered=False, data=json.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "[sandbox:updates=50] [sandbox:delay=0.05]"}]}))
    chunks = iter(response.response)
    next(chunks), next(chunks)
    assert sandbox.stats()["open"] >= 1
    response.close()
    assert sandbox.wait_idle(1.0)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": []}, "messages"),
        ({"model": "Creative"}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [HELLO], "n": 2}, "n"),
        ({"messages": [HELLO], "stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": [HELLO], "stop": 7}, "stop"),
    ],
)
def test_bad_requests_name_the_param(client, sandbox, body, param):
    creates = sandbox.stats()["creates"]
    response = client.post("/v1/chat/completions", data=json.dumps(body))
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == param
    assert response.get_json()["error"]["type"] == "invalid_request_error"
    assert sandbox.stats()["creates"] == creates, "invalid requests never reach Bing"


def test_models_are_listed_and_found(client):
    listed = client.get("/v1/models").get_json()
    assert listed["object"] == "list"
    ids = [m["id"] for m in listed["data"]]
    assert ids[:4] == ["Creative", "Balanced", "Precise", "gpt-4"]
    assert all(set(m) == {"id", "object", "created", "owned_by"} and m["object"] == "model" for m in listed["data"])
    assert client.get("/models").get_json() == listed
    assert client.get("/v1/models/gpt-4").get_json()["id"] == "gpt-4"
    missing = client.get("/v1/models/gpt-5")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    "method, path, status, code",
    [("GET", "/v1/chat/completions", 405, "method_not_allowed"), ("POST", "/v1/embeddings", 404, "not_found"),
     ("GET", "/nothing-here", 404, "not_found"), ("POST", "/", 405, "method_not_allowed")],
)
def test_routing_errors_are_openai_shaped(client, method, path, status, code):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.get_json() == {"error": {"message": response.get_json()["error"]["message"],
                                             "type": "invalid_request_error", "param": None, "code": code}}


def test_oversized_body_is_a_413(settings):
    client = create_app(with_settings(settings, max_body_bytes=1000)).test_client()
    response = client.post("/v1/chat/completions", data=json.dumps({"messages": [{"role": "user", "content": "x" * 2000}]}))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_too_large"


def test_healthz_is_open(settings):
    client = create_app(with_settings(settings, api_keys=frozenset({"k1"}))).test_client()
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Bearer sk-secret-2"}, 200),
        ({"Authorization": "bearer sk-secret-1"}, 200),
        ({"api-key": "sk-secret-1"}, 200),
    ],
    ids=["missing", "wrong", "second-key", "lowercase-scheme", "azure-header"],
)
def test_api_keys_guard_every_api_route(settings, sandbox, headers, status):
    client = create_app(with_settings(settings, api_keys=frozenset({"sk-secret-1", "sk-secret-2"}))).test_client()
    creates = sandbox.stats()["creates"]
    response = client.post("/v1/chat/completions", data=json.dumps({"messages": [HELLO]}), headers=headers)
    assert response.status_code == status
    assert client.get("/v1/models", headers=headers).status_code == status
    if status == 401:
        assert response.get_json()["error"]["code"] == "invalid_api_key"
        assert response.headers["x-should-retry"] == "false"
        assert "sk-secret" not in response.get_data(as_text=True)
        assert sandbox.stats()["creates"] == creates, "a wrong key never reaches Bing"


def test_cors_preflight_needs_no_key(settings):
    client = create_app(with_settings(settings, api_keys=frozenset({"k"}), cors_origin="https://ui.example")).test_client()
    response = client.options("/v1/chat/completions", headers={
        "Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, DELETE, OPTIONS"  # DELETE: stored responses
    assert client.get("/v1/models").headers["Access-Control-Allow-Origin"] == "https://ui.example"


@pytest.mark.parametrize("name", ["\u0000", "a\u2028b", "x" * 256], ids=["nul", "line-separator", "longest"])
def test_any_model_name_streams_and_is_echoed(client, sandbox, name):
    _, events = stream_events(client, model=name)
    assert {e["model"] for e in events[:-1]} == {name}
    assert content_of(events) == expected_content("Hello")
    assert sandbox.wait_idle(2.0)


def test_azure_deployment_name_is_validated_like_a_model(client, sandbox):
    creates = sandbox.stats()["creates"]
    response = client.post(f"/openai/deployments/{'d' * 300}/chat/completions", json={"messages": [HELLO]})
    assert response.status_code == 400 and response.get_json()["error"]["param"] == "model"
    assert sandbox.stats()["creates"] == creates


def test_stream_closed_before_its_first_chunk_still_closes_the_upstream(app, sandbox):
    """A WSGI server may close a response it never iterated; the turn must close anyway."""
    from werkzeug.test import EnvironBuilder

    body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "[sandbox:updates=50] [sandbox:delay=0.05]"}]})
    environ = EnvironBuilder(path="/v1/chat/completions", method="POST", data=body).get_environ()
    body_iterable = app(environ, lambda status, headers, exc_info=None: None)
    assert sandbox.stats()["open"] >= 1
    clean = sandbox.stats()["closed_cleanly"]
    body_iterable.close()  # no chunk was ever read: the generator never started
    assert sandbox.wait_idle(1.0)
    assert sandbox.stats()["closed_cleanly"] == clean + 1, "closed with a close frame, not by the garbage collector"


# -- request ids and the one log line of a failure ---------------------------------------------


def test_every_response_carries_a_request_id_a_browser_may_read(client):
    ok = client.get("/healthz")
    missing = client.get("/nope")
    ids = [ok.headers["x-request-id"], missing.headers["x-request-id"]]
    assert all(i.startswith("req_") and len(i) == 28 for i in ids) and ids[0] != ids[1]
    assert ok.headers["Access-Control-Expose-Headers"] == "x-request-id, x-should-retry, Retry-After"


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_an_upstream_failure_before_the_first_byte_is_logged_once_with_id_and_cause(client, sandbox, caplog, stream):
    sandbox.queue_fault("create-500")
    with caplog.at_level("DEBUG", logger="bingo"):
        response = client.post("/v1/chat/completions", json={
            "model": "copilot", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502
    failures = [r.getMessage() for r in caplog.records if " failed" in r.getMessage()]
    assert failures == [
        f"request {response.headers['x-request-id']} failed: UpstreamUnavailable 502 upstream_unavailable: "
        "Copilot's conversation create answered HTTP 500."
    ]


def test_a_failure_after_the_first_byte_is_logged_once_as_in_stream(client, sandbox, caplog):
    with caplog.at_level("DEBUG", logger="bingo"):
        response = client.post("/v1/chat/completions", json={
            "model": "copilot", "stream": True, "messages": [{"role": "user", "content": "[sandbox:drop]"}]})
        body = response.get_data(as_text=True)
    assert read_sse(body)[-1]["error"]["code"] == "upstream_unavailable"
    failures = [r.getMessage() for r in caplog.records if " failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].startswith(f"request {response.headers['x-request-id']} failed (in stream): UpstreamUnavailable 502")
    assert "; cause: " in failures[0]


def test_log_redaction_hides_cookies_tokens_and_keys():
    from bingo.errors import redact

    assert redact("GET wss://h/c/api/chat?api-version=2&accessToken=eyJ.abc-def&x=1") == (
        "GET wss://h/c/api/chat?api-version=2&accessToken=***&x=1"
    )
    assert redact("Cookie: _U=secret; MUID=x") == "Cookie: ***"
    assert redact("{'set-cookie': '__Host-copilot-anon=abc'}") == "{'set-cookie': '***'}"
    assert redact("Authorization: Bearer sk-live.123") == "Authorization: Bearer ***"
    assert redact("?api-key=k1&key=k2") == "?api-key=***&key=***"


def test_a_person_opening_the_gateway_gets_a_page_and_probes_get_health(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert client.get("/health").get_json() == client.get("/healthz").get_json() == {"status": "ok"}
