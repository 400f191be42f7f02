"""The Copilot client: the adapter and tracker under the one engine, over loopback.

Three layers, each asserted exactly:
- the whole client against the sandbox (REST start, websocket, events), checking
  the frames bingo sent (`sandbox.received`), the REST requests and the upgrade;
- the gateway app in front of it (`create_app(settings).test_client()`), for the
  statuses, error codes, headers and the bytes a client gets;
- the captures in tests/captures/*.copilot.jsonl, replayed over a real loopback
  websocket by a small replay server, and CopilotTracker fed plain dicts.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from functools import partial
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from bingo import create_app, errors
from bingo.config import APP_USER_AGENT, BROWSER_USER_AGENT, Settings
from bingo.sandbox import Source, copilot_answer_for, copilot_token, hashcash_ok, image_prompt_for, source_for
from bingo.sandbox import copilot as sandbox_copilot
from bingo.sandbox import create as sandbox_create
from bingo.sandbox.copilot_script import THOUGHTS
from bingo.upstream import engine, open_turn
from bingo.upstream.copilot import CONSENTS, SET_OPTIONS, START_BODY, CopilotAdapter, challenges
from bingo.upstream.copilot.tracker import CopilotTracker, encode
from bingo.upstream.engine import Step
from bingo.upstream.events import Citation, Delta, Finish, Progress, Reasoning
from tests.conftest import with_settings
from tests.helpers import (
    content_of,
    deltas,
    expected_content,
    finish,
    read_sse,
    read_turn,
    turn_request,
    websocket_server,
)

CAPTURES = Path(__file__).resolve().parent / "captures"
CAPTURE_FILES = sorted(CAPTURES.glob("*.copilot.jsonl"))
ANON = "__Host-copilot-anon"


def ask(settings: Settings, text: str, model: str = "copilot", earlier=()) -> list:
    """Every event of one Copilot turn, REST leg included; the socket is closed after."""
    return read_turn(open_turn(settings, turn_request(model, text, earlier)))


def sent(sandbox) -> list[dict]:
    """The frames the client sent on the last socket, once it is closed (none in flight)."""
    assert sandbox.wait_idle(2.0), "the client closed its socket"
    return sandbox.received[-1]


def send_frame(frame: dict, text: str, mode: str = "smart") -> dict:
    """The `send` the app presentation makes, with the conversation id it used."""
    assert isinstance(frame.get("conversationId"), str) and len(frame["conversationId"]) == 21
    return {"event": "send", "conversationId": frame["conversationId"],
            "content": [{"type": "text", "text": text}], "mode": mode}


def completion(client, prompt: str = "Hello", model: str = "copilot", stream: bool = False, messages=None):
    body = {"model": model, "stream": stream,
            "messages": messages or [{"role": "user", "content": prompt}]}
    return client.post("/v1/chat/completions", json=body)


@pytest.fixture()
def posed(monkeypatch):
    """Every challenge the sandbox poses, in order (the client's answer is checked against it)."""
    challenges_posed = []
    make = sandbox_copilot.make_challenge

    def recording(*args, **kwargs):
        challenge = make(*args, **kwargs)
        challenges_posed.append(challenge)
        return challenge

    monkeypatch.setattr(sandbox_copilot, "make_challenge", recording)
    return challenges_posed


def copilot_expected(prompt: str, image_url: str | None = None, cuts: int | None = None) -> str:
    """The gateway's answer to a sandbox Copilot turn, rebuilt from the sandbox's layout.

    Citations become `[^n]` where each arrives (a repeated URL keeps its number),
    the image `![<prompt>](<url>)` where it arrives, set apart by blank lines, and
    the cited sources' definitions close the answer. With `cuts`, only the text of
    the first `cuts` appendTexts (and what came with them), without definitions.
    """
    layout = copilot_answer_for(prompt)
    out, plain, done = "", "", 0
    numbers: dict[str, int] = {}
    cited: list[Source] = []
    after_image = False
    for cut in layout.cuts[:cuts]:
        piece = layout.text[done:cut]
        if after_image and piece and not piece.startswith("\n"):
            piece = "\n\n" + piece
        after_image = after_image and not piece
        out, plain, done = out + piece, plain + piece, cut
        for offset, source in layout.citations:
            if offset == cut:
                if source.url not in numbers:
                    cited.append(source)
                    numbers[source.url] = len(cited)
                out += f"[^{numbers[source.url]}]"
        if cut == layout.image_at and image_url:
            before = "\n\n" if plain and not plain.endswith("\n") else ""
            image = f"{before}![{image_prompt_for(prompt)}]({image_url})"
            out, plain, after_image = out + image, plain + image, True
    if cited and cuts is None:
        out += "\n\n" + "\n".join(f"[^{n}]: [{s.title}]({s.url})" for n, s in enumerate(cited, 1))
    return out


# The app presentation (the default): /c/api/start, the anon cookie, the Android UA.


def test_start_is_the_app_presentation(settings, sandbox):
    before = len(sandbox.requests)
    ask(settings, "Hello")
    (start,) = sandbox.requests[before:]
    assert (start["method"], start["path"], start["query"]) == ("POST", "/c/api/start", {})
    assert start["body"] == START_BODY
    headers = start["headers"]
    assert headers["User-Agent"] == APP_USER_AGENT
    assert APP_USER_AGENT.startswith("CopilotNative/30.0.") and "(Android 14;" in APP_USER_AGENT
    assert headers["X-Search-UILang"] == "en-US"
    assert headers["Content-Type"] == "application/json"
    assert not {"Cookie", "Authorization", "Origin", "Referer"} & set(headers)


def test_anon_cookie_from_start_rides_on_the_upgrade(settings, sandbox, monkeypatch):
    monkeypatch.setattr(sandbox_create, "anon_cookie", lambda: f"{ANON}=anon-1234; Path=/; Secure; HttpOnly; SameSite=None")
    ask(settings, "Hello")
    upgrade = sandbox.upgrades[-1]
    assert upgrade["path"] == "/c/api/chat"
    assert upgrade["headers"]["Cookie"] == f"{ANON}=anon-1234"
    assert upgrade["headers"]["User-Agent"] == APP_USER_AGENT
    assert upgrade["headers"]["Origin"] == "https://copilot.microsoft.com"
    assert set(upgrade["query"]) == {"api-version", "clientSessionId"} and upgrade["query"]["api-version"] == "2"
    assert uuid.UUID(upgrade["query"]["clientSessionId"]).version == 4


def test_anon_cookie_is_not_kept_between_turns(settings, sandbox, monkeypatch):
    cookies = iter(["first", "second"])
    monkeypatch.setattr(sandbox_create, "anon_cookie", lambda: f"{ANON}={next(cookies)}; Path=/; Secure")
    ask(settings, "one")
    ask(settings, "two")
    assert [u["headers"]["Cookie"] for u in sandbox.upgrades[-2:]] == [f"{ANON}=first", f"{ANON}=second"]
    assert "Cookie" not in sandbox.requests[-1]["headers"], "the anon cookie is not replayed on start"


def test_app_presentation_sends_only_the_send_after_connected(settings, sandbox):
    events = ask(settings, "Hello")
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], "Hello")], "no setOptions, no consents, no context"
    assert deltas(events) == copilot_answer_for("Hello").text
    assert finish(events) == Finish("stop", (), (), ""), "suggestedFollowups come after done"


def test_copilot_user_agent_overrides_the_app_one(settings, sandbox):
    agent = "CopilotNative/31.0.1-prod (Android 15; Test; Phone)"
    ask(with_settings(settings, copilot_user_agent=agent), "Hello")
    assert sandbox.requests[-1]["headers"]["User-Agent"] == agent
    assert sandbox.upgrades[-1]["headers"]["User-Agent"] == agent


def test_is_blocked_is_a_region_block_before_any_socket(settings, sandbox):
    sandbox.queue_fault("start-blocked")
    upgrades = len(sandbox.upgrades)
    with pytest.raises(errors.UpstreamBlocked) as raised:
        ask(settings, "Hello")
    assert (raised.value.status, raised.value.code) == (502, "upstream_region_blocked")
    assert "isBlocked" in raised.value.message and "HTTPS_PROXY" in raised.value.message
    assert len(sandbox.upgrades) == upgrades, "no websocket was opened"


# The web presentation (COPILOT_COOKIE): a browser's session, replayed as that browser.


def test_web_presentation_frames_after_connected(settings, sandbox):
    cookie = "_C_Auth=browser-session; cf_clearance=abc"
    before = len(sandbox.requests)
    events = ask(with_settings(settings, copilot_cookie=cookie), "Hello")
    (create,) = sandbox.requests[before:]
    assert (create["method"], create["path"]) == ("POST", "/c/api/conversations")
    assert create["headers"]["Cookie"] == cookie
    assert create["headers"]["User-Agent"] == BROWSER_USER_AGENT
    assert create["headers"]["Origin"] == "https://copilot.microsoft.com"
    assert create["headers"]["Referer"] == "https://copilot.microsoft.com/"
    frames = sent(sandbox)
    assert frames == [SET_OPTIONS, CONSENTS, {**send_frame(frames[2], "Hello"), "context": {}}]
    upgrade = sandbox.upgrades[-1]
    assert upgrade["headers"]["Cookie"] == cookie
    assert upgrade["headers"]["User-Agent"] == BROWSER_USER_AGENT
    assert deltas(events) == copilot_answer_for("Hello").text


def test_web_presentation_uses_copilot_user_agent(settings, sandbox):
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:147.0) Gecko/20100101 Firefox/147.0"
    ask(with_settings(settings, copilot_cookie="_C_Auth=x", copilot_user_agent=agent), "Hello")
    assert sandbox.requests[-1]["headers"]["User-Agent"] == agent
    assert sandbox.upgrades[-1]["headers"]["User-Agent"] == agent


@pytest.mark.parametrize("cookie", ["", "_C_Auth=x"], ids=["app", "web"])
def test_access_token_on_the_websocket_url_and_as_bearer(settings, sandbox, cookie):
    token = "eyJ0+x/y=z"
    before = len(sandbox.requests)
    ask(with_settings(settings, copilot_cookie=cookie, copilot_access_token=token), "Hello")
    assert sandbox.upgrades[-1]["query"]["accessToken"] == token, "URL-encoded: '+' survives"
    assert [r["headers"]["Authorization"] for r in sandbox.requests[before:]] == [f"Bearer {token}"]
    assert "Authorization" not in sandbox.upgrades[-1]["headers"]


# The handshake: the server speaks first.


def test_nothing_is_sent_before_connected(settings, sandbox):
    # The sandbox answers any frame before `connected` with invalid-event, which
    # would fail the turn: a clean answer proves the client waited.
    sandbox.queue_fault("connected-delay=0.4")
    started = time.monotonic()
    events = ask(settings, "Hello")
    assert time.monotonic() - started >= 0.4
    assert deltas(events) == copilot_answer_for("Hello").text
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], "Hello")]


def test_a_second_connected_changes_nothing(settings, sandbox):
    sandbox.queue_fault("connected-twice")
    events = ask(settings, "Hello")
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], "Hello")], "exactly one send"
    assert deltas(events) == copilot_answer_for("Hello").text


def test_no_connected_within_the_connect_timeout(settings, sandbox):
    sandbox.queue_fault("no-connected")
    started = time.monotonic()
    with pytest.raises(errors.UpstreamTimeout) as raised:
        ask(with_settings(settings, connect_timeout=0.5), "Hello")
    assert 0.4 <= time.monotonic() - started < 2.0
    assert raised.value.status == 504 and "BINGO_CONNECT_TIMEOUT" in raised.value.message
    assert sent(sandbox) == [], "nothing was sent"


def test_no_connected_is_504_through_the_app(settings, sandbox):
    sandbox.queue_fault("no-connected")
    response = completion(create_app(with_settings(settings, connect_timeout=0.5)).test_client(), stream=True)
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "upstream_timeout"


# Challenges.


def test_empty_challenge_is_answered_once_and_send_is_never_repeated(settings, sandbox, posed):
    prompt = "Prove it [sandbox:challenge]"
    events = ask(settings, prompt)
    assert deltas(events) == copilot_answer_for(prompt).text
    frames = sent(sandbox)
    assert frames == [
        send_frame(frames[0], prompt),
        {"event": "challengeResponse", "token": "", "method": None, "id": "0.0001"},
    ]
    assert list(frames[1]) == ["event", "token", "method", "id"]
    assert [c.method for c in posed] == [None]


def test_hashcash_is_solved_over_the_seed_alone_then_send_resent_once(settings, sandbox, posed):
    prompt = "Work for it [sandbox:hashcash=12]"
    events = ask(settings, prompt)
    assert deltas(events) == copilot_answer_for(prompt).text
    (challenge,) = posed
    frames = sent(sandbox)
    question = send_frame(frames[0], prompt)
    response = {"event": "challengeResponse", "token": frames[1]["token"], "method": "hashcash", "id": challenge.id}
    assert frames == [question, response, question], "exactly two sends"
    seed, bits = challenge.parameter.rsplit(":", 1)
    digest = hashlib.sha256((seed + response["token"]).encode()).digest()
    assert bits == "12" and int.from_bytes(digest, "big") >> (256 - 12) == 0
    assert hashcash_ok(challenge.parameter, response["token"])


def test_copilot_arithmetic_is_answered_then_send_resent_once(settings, sandbox, posed):
    prompt = "Count for it [sandbox:copilot]"
    events = ask(settings, prompt)
    assert deltas(events) == copilot_answer_for(prompt).text
    (challenge,) = posed
    frames = sent(sandbox)
    question = send_frame(frames[0], prompt)
    token = copilot_token(challenge.parameter)
    assert frames == [question, {"event": "challengeResponse", "token": token, "method": "copilot", "id": challenge.id}, question]


def test_cloudflare_challenge_is_captcha_required(settings, sandbox):
    with pytest.raises(errors.CaptchaRequired) as raised:
        ask(settings, "[sandbox:cloudflare]")
    assert raised.value.status == 503 and raised.value.code == "captcha_required"
    assert "Cloudflare" in raised.value.message and "COPILOT_USER_AGENT" in raised.value.message
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], "[sandbox:cloudflare]")], "no answer, no re-send"


def test_cloudflare_challenge_is_503_through_the_app(client, sandbox):
    response = completion(client, "[sandbox:cloudflare]", stream=True)
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "captcha_required" and "Cloudflare" in error["message"]
    assert response.headers["x-should-retry"] == "false"


def test_hashcash_over_the_cpu_bound_is_503(settings, sandbox, monkeypatch):
    monkeypatch.setattr(challenges, "solve_hashcash", partial(challenges.solve_hashcash, cpu_seconds=0.05))
    started = time.monotonic()
    with pytest.raises(errors.CaptchaRequired) as raised:
        ask(settings, "[sandbox:hashcash=24]")
    assert time.monotonic() - started < 2.0
    assert raised.value.status == 503 and "CPU" in raised.value.message


# Events: modeSelected, images, citations, reasoning.


def test_mode_selected_resends_in_that_mode_and_streams_its_answer(client, sandbox):
    prompt = "Hard one [sandbox:mode-selected=reasoning]"
    response = completion(client, prompt, stream=True)
    assert response.status_code == 200
    events = read_sse(response.get_data(as_text=True))
    assert content_of(events) == expected_content(prompt)
    assert events[-2]["choices"][0]["finish_reason"] == "stop" and events[-1] == "[DONE]"
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], prompt, "smart"), send_frame(frames[0], prompt, "reasoning")]


def test_image_is_a_markdown_image_where_it_arrived(settings, sandbox):
    prompt = "Draw a cat [sandbox:image]"
    body = completion(create_app(settings).test_client(), prompt).get_json()
    answer = body["choices"][0]["message"]["content"]
    urls = re.findall(r"\]\((https://copilot\.microsoft\.com/th/id/BCO\.[0-9a-f-]{36}\.png)\)", answer)
    assert len(urls) == 1
    assert answer == copilot_expected(prompt, urls[0])
    assert f"![{image_prompt_for(prompt)}]({urls[0]})" in answer


def test_image_only_turn_is_a_success(client, sandbox):
    prompt = "Just draw [sandbox:image-only]"
    response = completion(client, prompt)
    assert response.status_code == 200, response.get_data(as_text=True)
    choice = response.get_json()["choices"][0]
    url = re.fullmatch(r"!\[[^\]]*\]\((\S+)\)", choice["message"]["content"]).group(1)
    assert choice["message"]["content"] == f"![{image_prompt_for(prompt)}]({url})"
    assert choice["finish_reason"] == "stop"


def test_citations_are_inline_footnotes_and_stream_equals_one_shot(client, sandbox):
    prompt = "Sources please [sandbox:citations=3]"
    one_shot = completion(client, prompt).get_json()["choices"][0]["message"]["content"]
    streamed = content_of(read_sse(completion(client, prompt, stream=True).get_data(as_text=True)))
    assert streamed == one_shot
    assert one_shot == copilot_expected(prompt)
    first = source_for(prompt)
    assert one_shot.count("[^1]") == 3 and one_shot.count("[^2]") == 2, "the repeated URL kept its number"
    assert one_shot.endswith(f"\n\n[^1]: [{first.title}]({first.url})\n[^2]: [{first.title} 2]({first.url}/2)")
    assert "[^3]" not in one_shot


def test_single_citation_matches_the_shared_expectation(client, sandbox):
    body = completion(client, "Hello").get_json()
    assert body["choices"][0]["message"]["content"] == expected_content("Hello") == copilot_expected("Hello")


def test_chain_of_thought_is_reasoning_content_in_stream(client, sandbox):
    response = completion(client, "Think", model="copilot-think-deeper", stream=True)
    events = read_sse(response.get_data(as_text=True))
    reasoning = [e["choices"][0]["delta"]["reasoning_content"] for e in events
                 if isinstance(e, dict) and "reasoning_content" in e["choices"][0]["delta"]]
    assert "".join(reasoning) == "".join(THOUGHTS)
    assert content_of(events) == expected_content("Think")
    assert not any(t in content_of(events) for t in THOUGHTS)


def test_chain_of_thought_is_message_reasoning_content_one_shot(client, sandbox):
    message = completion(client, "Think", model="copilot-think-deeper").get_json()["choices"][0]["message"]
    assert message["reasoning_content"] == "".join(THOUGHTS)
    assert message["content"] == expected_content("Think")


@pytest.mark.xfail(strict=True, reason=(
    "sandbox/copilot.py refuses the client's {'event':'pong'} (not in _ACCEPTED) with invalid-event, "
    "while the tracker answers every server ping event with a pong: the turn dies at the first ping"))
def test_ping_flood_is_answered_and_bounded_by_the_total_timeout(settings, sandbox):
    started = time.monotonic()
    with pytest.raises(errors.UpstreamTimeout) as raised:
        ask(with_settings(settings, total_timeout=1.0), "[sandbox:ping-flood]")
    assert time.monotonic() - started < 2.5
    assert "BINGO_TOTAL_TIMEOUT" in raised.value.message
    frames = sent(sandbox)
    assert frames[0] == send_frame(frames[0], "[sandbox:ping-flood]")
    assert len(frames) > 5 and frames[1:] == [{"event": "pong"}] * (len(frames) - 1)


# Errors through the app: one table, one status and code per cause.


@pytest.mark.parametrize(
    "prompt, fault, status, code, param",
    [
        ("[sandbox:error=text-too-long]", None, 400, "context_length_exceeded", "messages"),
        ("[sandbox:error-unavailable]", None, 502, "upstream_region_blocked", None),
        ("[sandbox:error=too-many-messages]", None, 429, "rate_limit_exceeded", None),
        ("[sandbox:error=user-throttled]", None, 429, "rate_limit_exceeded", None),
        ("[sandbox:error=rate-limit-exceeded]", None, 429, "rate_limit_exceeded", None),
        ("[sandbox:error=unauthorized]", None, 502, "upstream_auth_failed", None),
        ("[sandbox:error=brand-new-code]", None, 502, "upstream_error", None),
        ("[sandbox:invalid-event]", None, 502, "bad_upstream_frame", None),
        ("Hello", "create-403", 503, "captcha_required", None),
        ("Hello", "create-401", 502, "upstream_auth_failed", None),
        ("Hello", "create-429", 429, "rate_limit_exceeded", None),
        ("Hello", "create-500", 502, "upstream_unavailable", None),
        ("Hello", "ws-403", 503, "captcha_required", None),
        ("Hello", "start-blocked", 502, "upstream_region_blocked", None),
    ],
    ids=["text-too-long", "chat-service-unavailable", "too-many-messages", "throttl", "rate-limit",
         "unauthorized", "other-code", "invalid-event", "http-403", "http-401", "http-429", "http-500",
         "upgrade-403", "is-blocked"],
)
def test_error_table_through_the_app(client, sandbox, prompt, fault, status, code, param):
    if fault:
        sandbox.queue_fault(fault)
    response = completion(client, prompt)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert set(error) == {"message", "type", "param", "code"}
    if status == 429:
        assert error["type"] == "rate_limit_error"
        assert response.headers["Retry-After"] == ("7" if fault == "create-429" else "60")


def test_error_messages_say_what_happened(client, sandbox):
    other = completion(client, "[sandbox:error=brand-new-code]").get_json()["error"]["message"]
    assert "'brand-new-code'" in other, "Copilot's code is in the message"
    sandbox.queue_fault("create-403")
    cloudflare = completion(client).get_json()["error"]["message"]
    assert "HTTP 403" in cloudflare and "Cloudflare" in cloudflare and "COPILOT_COOKIE" in cloudflare
    sandbox.queue_fault("create-401")
    refused = completion(client).get_json()["error"]["message"]
    assert "HTTP 401" in refused and "COPILOT_ACCESS_TOKEN" in refused
    region = completion(client, "[sandbox:error-unavailable]").get_json()["error"]["message"]
    assert "chat-service-unavailable" in region and "HTTPS_PROXY" in region


def test_a_message_copilot_finds_too_long_is_400(settings, sandbox):
    # Over the sandbox's 10,240 with the gateway's own limit raised: Copilot's text-too-long.
    client = create_app(with_settings(settings, copilot_max_chars=20_000)).test_client()
    response = completion(client, "x" * 10_241)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["param"], error["type"]) == ("context_length_exceeded", "messages", "invalid_request_error")
    assert "text-too-long" in error["message"]


def test_over_research_quota_retries_after_next_available_at(client, sandbox):
    response = completion(client, "[sandbox:over-research-quota]")
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "rate_limit_exceeded"
    assert 88 <= int(response.headers["Retry-After"]) <= 91, "nextAvailableAt is 90 s ahead"


def test_redirect_on_start_is_502_and_not_followed(client, sandbox):
    sandbox.queue_fault("create-redirect")
    requests, upgrades = len(sandbox.requests), len(sandbox.upgrades)
    response = completion(client)
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "upstream_error"
    assert "redirected to http://127.0.0.2:1/elsewhere" in error["message"] and "not followed" in error["message"]
    assert len(sandbox.requests) == requests + 1 and len(sandbox.upgrades) == upgrades


@pytest.mark.parametrize("code, status, error_code", [
    ("too-many-messages", 429, "rate_limit_exceeded"),
    ("chat-service-unavailable", 502, "upstream_region_blocked"),
    ("brand-new-code", 502, "upstream_error"),
], ids=["throttled", "region", "other"])
def test_chat_message_error_is_the_same_as_error(client, sandbox, code, status, error_code):
    as_error = completion(client, f"[sandbox:error={code}]")
    as_chat_message_error = completion(client, f"[sandbox:chat-message-error={code}]")
    assert as_error.status_code == as_chat_message_error.status_code == status
    assert as_error.get_json()["error"]["code"] == as_chat_message_error.get_json()["error"]["code"] == error_code
    assert as_error.headers.get("Retry-After") == as_chat_message_error.headers.get("Retry-After")


def test_chat_message_error_mid_stream_is_an_in_band_error(client, sandbox):
    prompt = "[sandbox:chat-message-error]"
    response = completion(client, prompt, stream=True)
    assert response.status_code == 200
    events = read_sse(response.get_data(as_text=True))
    assert events[-1]["error"]["code"] == "upstream_error"
    assert "'message-error'" in events[-1]["error"]["message"]
    assert "[DONE]" not in events
    # The sandbox sends chatMessageError after half of the appendTexts.
    half = max(1, len(copilot_answer_for(prompt).cuts) // 2)
    assert content_of(events) == copilot_expected(prompt, cuts=half)
    assert sandbox.wait_idle(2.0)


# History: one `send`, a plain transcript within BINGO_COPILOT_MAX_CHARS.

HISTORY = (("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"))


def test_history_is_one_send_with_a_plain_transcript(settings, sandbox):
    events = ask(settings, "And now?", earlier=HISTORY)
    text = "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: And now?"
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], text)]
    assert deltas(events) == copilot_answer_for(text).text


def test_history_drops_the_oldest_turns_first(settings, sandbox):
    ask(with_settings(settings, copilot_max_chars=50), "And now?", earlier=HISTORY)
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], "Be brief.\n\nAssistant: Hello!\nUser: And now?")]


def test_long_history_fits_the_default_limit(settings, sandbox):
    turns = [("user" if i % 2 == 0 else "assistant", f"{i:03d} " + "w" * 496) for i in range(40)]
    ask(settings, "Last?", earlier=(("system", "Rules."), *turns))
    (frame,) = sent(sandbox)
    text = frame["content"][0]["text"]
    lines = [f"{'User' if r == 'user' else 'Assistant'}: {c}" for r, c in turns]
    kept = [line for line in lines if line in text]
    assert kept == lines[-len(kept):], "the newest turns are kept, the oldest dropped"
    assert text == "Rules.\n\n" + "\n".join(kept + ["User: Last?"])
    assert len(text) <= 10_000 < len(text) + len(lines[-len(kept) - 1]) + 1


def test_history_through_the_app(client, sandbox):
    messages = [{"role": r, "content": c} for r, c in HISTORY] + [{"role": "user", "content": "And now?"}]
    body = completion(client, messages=messages).get_json()
    text = "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: And now?"
    assert body["choices"][0]["message"]["content"] == expected_content(text)
    assert sent(sandbox)[0]["content"] == [{"type": "text", "text": text}]


def test_last_user_message_over_the_limit_is_400_before_any_upstream_call(client, sandbox):
    requests, upgrades = len(sandbox.requests), len(sandbox.upgrades)
    response = completion(client, "y" * 10_001)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "BINGO_COPILOT_MAX_CHARS" in error["message"]
    assert (len(sandbox.requests), len(sandbox.upgrades)) == (requests, upgrades), "no upstream request"


def test_last_user_message_at_the_limit_goes_out(settings, sandbox):
    events = ask(settings, "z" * 10_000)
    assert sent(sandbox)[0]["content"] == [{"type": "text", "text": "z" * 10_000}]
    assert finish(events).reason == "stop"


# Routing: the seed's names on Copilot by default, the copilot* names always.


@pytest.mark.parametrize("model, mode", [
    ("Creative", "smart"), ("Balanced", "chat"), ("Precise", "reasoning"), ("gpt-4", "smart"),
    ("gpt-4o", "smart"), ("copilot", "smart"), ("copilot-quick", "chat"),
    ("copilot-think-deeper", "reasoning"), ("copilot-study", "study"),
])
def test_default_routing_sends_the_model_to_copilot_in_its_mode(settings, sandbox, model, mode):
    client = create_app(with_settings(settings, upstream="copilot")).test_client()
    upgrades = len(sandbox.upgrades)
    body = completion(client, "Route me", model=model).get_json()
    assert body["model"] == model, "the response echoes the name the client sent"
    assert body["choices"][0]["message"]["content"] == expected_content("Route me")
    assert [u["path"] for u in sandbox.upgrades[upgrades:]] == ["/c/api/chat"]
    frames = sent(sandbox)
    assert frames == [send_frame(frames[0], "Route me", mode)]


def test_models_under_copilot_are_the_seed_names_and_the_copilot_names(settings):
    client = create_app(with_settings(settings, upstream="copilot")).test_client()
    body = client.get("/v1/models").get_json()
    assert [m["id"] for m in body["data"]] == [
        "Creative", "Balanced", "Precise", "gpt-4",
        "copilot", "copilot-quick", "copilot-smart", "copilot-think-deeper", "copilot-study",
    ]
    assert {m["owned_by"] for m in body["data"]} == {"microsoft-copilot"}
