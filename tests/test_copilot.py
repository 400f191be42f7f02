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
from types import SimpleNamespace

import pytest
from websockets.exceptions import ConnectionClosed

from bingo import create_app, errors
from bingo.config import APP_USER_AGENT, BROWSER_USER_AGENT, Settings
from bingo.sandbox import challenge as sandbox_challenge
from bingo.sandbox import copilot as sandbox_copilot
from bingo.sandbox import (
    copilot_answer_for,
    copilot_token,
    hashcash_ok,
    image_prompt_for,
    source_for,
)
from bingo.sandbox import create as sandbox_create
from bingo.sandbox.copilot_script import THOUGHTS
from bingo.upstream import engine, open_turn
from bingo.upstream.copilot import (
    CONSENTS,
    SET_OPTIONS,
    START_BODY,
    CopilotAdapter,
    challenges,
)
from bingo.upstream.copilot.tracker import CopilotTracker, encode
from bingo.upstream.engine import Step
from bingo.upstream.events import Citation, Delta, Finish, Progress, Reasoning, Source
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
    cited: list = []  # the sandbox's sources
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


def test_a_turn_outside_the_account_pool_keeps_no_anon_cookie(settings, sandbox, monkeypatch):
    """The pool keeps an anonymous account's session (tests/test_anon.py); a bare turn has no account."""
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
    # A fixed seed with no 24-bit nonce below 2,000,000, and a 0.05 s CPU bound
    # (the real one is 2 s): the solver must give up, not find it by luck.
    monkeypatch.setattr(sandbox_challenge, "secrets", SimpleNamespace(token_hex=lambda n: "ab" * n))
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


def test_ping_flood_gets_no_answer_and_meets_the_total_timeout(settings, sandbox):
    started = time.monotonic()
    with pytest.raises(errors.UpstreamTimeout) as raised:
        ask(with_settings(settings, total_timeout=1.0), "[sandbox:ping-flood]")
    assert time.monotonic() - started < 2.5
    assert "BINGO_TOTAL_TIMEOUT" in raised.value.message
    frames = sent(sandbox)
    # A `pong` Copilot does not expect could be invalid-event; websocket pings are
    # answered by websocket-client at the frame level.
    assert frames == [send_frame(frames[0], "[sandbox:ping-flood]")]


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
        # No time from Copilot: the account rests BINGO_COOLDOWN_SECONDS (1500), and so does the client.
        assert response.headers["Retry-After"] == ("7" if fault == "create-429" else "1500")


def test_error_messages_say_what_happened(settings, sandbox):
    def message(prompt: str = "Hello", fault: str | None = None) -> str:
        # A fresh gateway for each: a Cloudflare 403 or a 401 rests its only account.
        if fault:
            sandbox.queue_fault(fault)
        return completion(create_app(settings).test_client(), prompt).get_json()["error"]["message"]

    other = message("[sandbox:error=brand-new-code]")
    assert "'brand-new-code'" in other, "Copilot's code is in the message"
    cloudflare = message(fault="create-403")
    assert "HTTP 403" in cloudflare and "Cloudflare" in cloudflare and "COPILOT_COOKIE" in cloudflare
    refused = message(fault="create-401")
    assert "HTTP 401" in refused and "COPILOT_ACCESS_TOKEN" in refused
    region = message("[sandbox:error-unavailable]")
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


# Captures, replayed over a real loopback websocket.

CONNECTED = {"event": "connected", "requestId": "0" * 32, "id": "0"}
TAIL = "savevsgames-2025-11-palindrome-tail"


def load_capture(stem: str) -> list[dict]:
    path = CAPTURES / f"{stem}.copilot.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Replay:
    """A Copilot socket that plays frames: `connected` first (the capture's own if it
    has one), then waits for the client's `send`, then the rest (waiting for the
    answer to each challenge), then keeps the socket open and records whatever the
    client sends until it closes."""

    def __init__(self) -> None:
        self.frames: list[dict | str] = []  # a str goes out verbatim
        self.received: list[dict] = []
        self.early: list[str] = []  # what the client sent before `connected`
        self.quiet = 0.0  # seconds to listen before saying `connected`
        self.closed = threading.Event()

    def handle(self, conn) -> None:
        frames = list(self.frames)
        if not (frames and isinstance(frames[0], dict) and frames[0].get("event") == "connected"):
            frames.insert(0, CONNECTED)
        try:
            try:
                if self.quiet:
                    self.early.append(conn.recv(timeout=self.quiet))
            except TimeoutError:
                pass
            conn.send(json.dumps(frames[0]))
            self.received.append(json.loads(conn.recv(timeout=3)))
            for frame in frames[1:]:
                conn.send(frame if isinstance(frame, str) else json.dumps(frame))
                if isinstance(frame, dict) and frame.get("event") == "challenge":
                    # Its answer (and a re-sent `send` after a real one) is read
                    # before going on: a client that closes with unread frames
                    # resets the connection, and the reset can lose what it sent.
                    for _ in range(1 if frame.get("method") is None else 2):
                        self.received.append(json.loads(conn.recv(timeout=3)))
            while True:
                self.received.append(json.loads(conn.recv(timeout=5)))
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            self.closed.set()


class ReplayAdapter(CopilotAdapter):
    """The real adapter, REST start included (on the sandbox), with its socket sent to the replay."""

    def __init__(self, settings: Settings, url: str) -> None:
        super().__init__(settings, turn_request("copilot", "Hi"))
        self._url = url

    def create(self) -> engine.Opening:
        return engine.Opening(self._url, super().create().headers)


@pytest.fixture()
def replay(sandbox):
    script = Replay()
    with websocket_server(script.handle) as port:
        script.url = f"ws://127.0.0.1:{port}/c/api/chat"
        yield script


def replay_turn(replay: Replay, settings: Settings, frames: list) -> list:
    replay.frames = frames
    try:
        return read_turn(engine.open_turn(settings, ReplayAdapter(settings, replay.url), None))
    finally:
        assert replay.closed.wait(3), "the client closed the socket"


def response(challenge_id: str) -> dict:
    return {"event": "challengeResponse", "token": "", "method": None, "id": challenge_id}


IMAGE_URL = "https://copilot.microsoft.com/th/id/BCO.42a11350-302d-46b2-909f-43b45f2b15d5.png"
# stem -> (frames after the capture, the answer or (error class, code, words), what the client sends after `send`)
REPLAYS = {
    "ms-copilot-gateway-2025-05-test-message": ([], "Received! TestFeel free.\n", []),
    TAIL: ([], ". Want to try checking another one?", []),
    "gpt4free-issue3182-2025-09-challenge": (load_capture(TAIL), ". Want to try checking another one?", [response("1")]),
    "model-dock-2025-10-connected-received": (load_capture(TAIL), ". Want to try checking another one?", []),
    "6kmfi6hp-2026-xx-image-generated": (
        [{"event": "done", "messageId": "AyrcyqSg3Rc8HqpzbL1u3"}], f"![image]({IMAGE_URL})", []),
    "windows-copilot-api-issue8-2026-06-challenge-invalid-event": (
        [], (errors.UpstreamProtocolError, "bad_upstream_frame", "invalid-event"), [response("0.0001")]),
    "windows-copilot-api-issue13-2026-06-challenge-silent": (
        [], (errors.UpstreamTimeout, "upstream_timeout", "BINGO_IDLE_TIMEOUT"), [response("0.0002")]),
    "gpt4free-issue3107-2025-08-text-too-long": (
        [], (errors.InvalidRequest, "context_length_exceeded", "text-too-long"), []),
}


def test_every_copilot_capture_is_replayed():
    assert {p.name.removesuffix(".copilot.jsonl") for p in CAPTURE_FILES} == set(REPLAYS)


@pytest.mark.parametrize("stem", sorted(REPLAYS))
def test_capture_replay_outcome(replay, settings, stem):
    more, outcome, replies = REPLAYS[stem]
    frames = load_capture(stem) + more
    settings = with_settings(settings, idle_timeout=0.5)
    if isinstance(outcome, str):
        events = replay_turn(replay, settings, frames)
        assert deltas(events) == outcome
        assert finish(events) == Finish("stop", (), (), ""), "follow-ups after done are not waited for"
    else:
        kind, code, words = outcome
        with pytest.raises(errors.BingoError) as raised:
            replay_turn(replay, settings, frames)
        assert type(raised.value) is kind and raised.value.code == code
        assert words in raised.value.message
    question = replay.received[0]
    assert replay.received == [send_frame(question, "Hi"), *replies], "one send, never re-sent"


def test_replay_captured_challenge_id_is_echoed_as_the_same_string(replay, settings):
    replay_turn(replay, settings, load_capture("windows-copilot-api-issue13-2026-06-challenge-silent")
                + load_capture(TAIL))
    assert replay.received[1]["id"] == "0.0002" and isinstance(replay.received[1]["id"], str)


def test_replay_nothing_goes_out_before_connected(replay, settings):
    replay.quiet = 0.3  # the server listens this long before it says `connected`
    events = replay_turn(replay, settings, [CONNECTED, {"event": "appendText", "text": "ok"}, {"event": "done"}])
    assert deltas(events) == "ok"
    assert replay.early == [], "nothing before connected"
    assert replay.received == [send_frame(replay.received[0], "Hi")]


def test_replay_second_connected_sends_nothing(replay, settings):
    frames = [CONNECTED, {**CONNECTED, "id": "1"}, {"event": "appendText", "text": "ok"}, {"event": "done"}]
    assert deltas(replay_turn(replay, settings, frames)) == "ok"
    assert replay.received == [send_frame(replay.received[0], "Hi")]


@pytest.mark.parametrize("message", ["not json", "[1, 2]", '"event"'], ids=["text", "array", "string"])
def test_replay_a_message_that_is_not_an_event_is_a_protocol_error(replay, settings, message):
    with pytest.raises(errors.UpstreamProtocolError):
        replay_turn(replay, settings, [message])


def test_replay_hashcash_resends_the_send_once(replay, settings):
    parameter = "ab" * 32 + ":8"
    frames = [{"event": "challenge", "method": "hashcash", "parameter": parameter, "id": "0.0001"},
              {"event": "appendText", "text": "ok"}, {"event": "done"}]
    assert deltas(replay_turn(replay, settings, frames)) == "ok"
    question, answer, again = replay.received
    assert answer == {"event": "challengeResponse", "token": challenges.solve_hashcash(parameter),
                      "method": "hashcash", "id": "0.0001"}
    assert question == again == send_frame(question, "Hi")


# CopilotTracker, pure: feed frames, assert Steps.

SEND = {"event": "send", "conversationId": "c" * 21, "content": [{"type": "text", "text": "Hi"}], "mode": "smart"}


def opened(send: dict = SEND, opening: tuple = ()) -> CopilotTracker:
    tracker = CopilotTracker(dict(send), opening)
    assert tracker.on_event({"event": "connected", "requestId": "r", "id": "0"}) == Step(
        replies=[encode(f) for f in (*opening, send)])
    return tracker


def text(t: str, part: str = "p1", message: str = "m1", kind: str = "appendText") -> dict:
    return {"event": kind, "messageId": message, "partId": part, "text": t}


DONE = {"event": "done", "messageId": "m1"}


def steps(tracker: CopilotTracker, frames: list[dict]) -> list[Step]:
    return [tracker.on_event(frame) for frame in frames]


def test_tracker_sends_nothing_before_connected():
    tracker = CopilotTracker(dict(SEND))
    assert steps(tracker, [{"event": "received"}, text("early"), {"event": "ping"}]) == [Step(), Step(), Step()]
    assert not tracker.opened
    assert tracker.on_event({"event": "connected"}) == Step(replies=[encode(SEND)])
    assert tracker.opened


def test_tracker_second_connected_changes_nothing():
    tracker = opened()
    assert tracker.on_event({"event": "connected", "id": "1"}) == Step()
    assert steps(tracker, [text("A"), DONE]) == [Step([Delta("A")]), Step([Finish("stop")], done=True)]


def test_tracker_web_opening_goes_before_send():
    opened(opening=(SET_OPTIONS, CONSENTS))


def test_tracker_reads_a_whole_answer():
    tracker = opened()
    got = steps(tracker, [
        {"event": "received", "messageId": "user"}, {"event": "startMessage", "messageId": "m1"},
        text("Hello"), text("ignored", message="other"), text(", world"),
        {"event": "partCompleted", "messageId": "m1", "partId": "p1"},
        {"event": "suggestedFollowups", "suggestions": ["One?", {"text": "Two?"}, 3]}, DONE,
    ])
    assert got == [Step(), Step(), Step([Delta("Hello")]), Step(), Step([Delta(", world")]), Step(), Step(),
                   Step([Finish("stop", (), ("One?", "Two?"))], done=True)]


def test_tracker_done_of_another_message_does_not_end_the_turn():
    tracker = opened()
    got = steps(tracker, [{"event": "startMessage", "messageId": "m1"}, text("A"), {"event": "done", "messageId": "x"}, DONE])
    assert got[2] == Step() and got[3] == Step([Finish("stop")], done=True)


@pytest.mark.parametrize("frames, answer", [
    ([text("Hel"), text("Hello, world", kind="replaceText")], ["Hel", "lo, world"]),
    ([text("Hello"), text("Hello", kind="replaceText")], ["Hello"]),
    ([text("Hello", kind="replaceText")], ["Hello"]),
    ([text("One. "), text("Two", part="p2"), text("Two!", part="p2", kind="replaceText")], ["One. ", "Two", "!"]),
], ids=["extends", "same", "first", "current-part"])
def test_tracker_replace_text_extending_the_part_is_relayed(frames, answer):
    tracker = opened()
    got = [e for step in steps(tracker, frames) for e in step.events]
    assert got == [Delta(a) for a in answer]


@pytest.mark.parametrize("frames", [
    [text("Hello"), text("Sorry, I can't help.", kind="replaceText")],
    [text("One."), text("Two", part="p2"), text("Uno.", part="p1", kind="replaceText")],
], ids=["rewrite", "earlier-part"])
def test_tracker_rewritten_answer_ends_as_content_filter(frames):
    tracker = opened()
    got = steps(tracker, [*frames, text(" more"), DONE])
    assert got[len(frames) - 1] == Step([Progress("retraction", "Copilot rewrote its answer mid-stream")])
    assert got[-2] == Step()
    assert got[-1] == Step([Finish("content_filter", (), (), "Copilot rewrote its answer mid-stream")], done=True)


def test_tracker_empty_challenge_is_answered_and_send_never_repeated():
    tracker = opened()
    challenge = {"event": "challenge", "method": None, "parameter": None, "id": "0.0001"}
    ack = encode({"event": "challengeResponse", "token": "", "method": None, "id": "0.0001"})
    assert ack == '{"event":"challengeResponse","token":"","method":null,"id":"0.0001"}'
    assert steps(tracker, [challenge, text("A"), {**challenge, "id": "0.0002"}, DONE]) == [
        Step(replies=[ack]), Step([Delta("A")]), Step(replies=[ack.replace("0.0001", "0.0002")]),
        Step([Finish("stop")], done=True),
    ]


def test_tracker_hashcash_is_answered_then_send_resent_once():
    parameter = "9f" * 32 + ":12"
    tracker = opened()
    (step,) = steps(tracker, [{"event": "challenge", "method": "hashcash", "parameter": parameter, "id": "7"}])
    token = json.loads(step.replies[0])["token"]
    assert step == Step(replies=[encode({"event": "challengeResponse", "token": token, "method": "hashcash", "id": "7"}),
                                 encode(SEND)])
    digest = hashlib.sha256(("9f" * 32 + token).encode()).digest()
    assert token.isdigit() and int.from_bytes(digest, "big") >> (256 - 12) == 0, "seed only, no ':12'"
    with pytest.raises(errors.CaptchaRequired):
        tracker.on_event({"event": "challenge", "method": "hashcash", "parameter": parameter, "id": "8"})


@pytest.mark.parametrize("parameter", ["37.5", "1", "998.9"])
def test_tracker_copilot_arithmetic_is_answered_then_send_resent(parameter):
    tracker = opened()
    step = tracker.on_event({"event": "challenge", "method": "copilot", "parameter": parameter, "id": "0.0001"})
    a = float(parameter)
    token = str(round((a**3 / 100 + a * 25) % 22))
    assert step == Step(replies=[encode({"event": "challengeResponse", "token": token, "method": "copilot", "id": "0.0001"}),
                                 encode(SEND)])


@pytest.mark.parametrize("method, parameter, kind", [
    ("cloudflare", "x", errors.CaptchaRequired),
    ("turnstile", "x", errors.CaptchaRequired),
    ("hashcash", None, errors.UpstreamProtocolError),
    ("hashcash", "no-bits", errors.UpstreamProtocolError),
    ("hashcash", "ab:99", errors.CaptchaRequired),
    ("copilot", "not a number", errors.UpstreamProtocolError),
], ids=["cloudflare", "unknown", "null", "malformed", "too-hard", "nan"])
def test_tracker_challenges_it_cannot_answer(method, parameter, kind):
    with pytest.raises(errors.BingoError) as raised:
        opened().on_event({"event": "challenge", "method": method, "parameter": parameter, "id": "1"})
    assert type(raised.value) is kind
    if method == "cloudflare":
        assert raised.value.status == 503 and "Cloudflare" in raised.value.message
        assert "COPILOT_COOKIE" in raised.value.message and "COPILOT_USER_AGENT" in raised.value.message


def test_tracker_mode_selected_resends_in_that_mode_once():
    tracker = opened()
    got = steps(tracker, [
        {"event": "startMessage", "messageId": "m1"}, {"event": "modeSelected", "mode": "reasoning", "messageId": "m1"},
        {"event": "done", "messageId": "m1"},
        {"event": "startMessage", "messageId": "m2"}, {"event": "modeSelected", "mode": "chat", "messageId": "m2"},
        text("Answer", message="m2"), {"event": "done", "messageId": "m2"},
    ])
    assert got == [Step(), Step(), Step(replies=[encode({**SEND, "mode": "reasoning"})]),
                   Step(), Step(), Step([Delta("Answer")]), Step([Finish("stop")], done=True)]


def test_tracker_mode_selected_twice_with_no_answer_is_an_error_not_a_loop():
    tracker = opened()
    got = steps(tracker, [{"event": "modeSelected", "mode": "reasoning"}, DONE])
    assert got == [Step(), Step(replies=[encode({**SEND, "mode": "reasoning"})])]
    assert tracker.on_event({"event": "modeSelected", "mode": "chat"}) == Step()
    with pytest.raises(errors.UpstreamError, match="without an answer"):
        tracker.on_event(DONE)


def test_tracker_mode_selected_after_text_is_ignored():
    tracker = opened()
    got = steps(tracker, [text("A"), {"event": "modeSelected", "mode": "reasoning"}, DONE])
    assert got == [Step([Delta("A")]), Step(), Step([Finish("stop")], done=True)]


def test_tracker_image_is_markdown_where_it_arrives():
    tracker = opened()
    got = steps(tracker, [
        text("Here:"), {"event": "generatingImage", "messageId": "m1", "prompt": "a [red] cat"},
        {"event": "imageGenerated", "messageId": "m1", "url": "https://x.example/a(1).png"},
        text("Done.", part="p2"), DONE,
    ])
    assert got == [
        Step([Delta("Here:")]), Step([Progress("generatingImage", "a [red] cat")]),
        Step([Delta("\n\n![a \\[red\\] cat](https://x.example/a(1%29.png)")]),
        Step([Delta("\n\nDone.")]), Step([Finish("stop")], done=True),
    ]


def test_tracker_image_only_turn_is_a_success():
    tracker = opened()
    got = steps(tracker, [{"event": "imageGenerated", "url": "https://x.example/i.png"}, DONE])
    assert got == [Step([Delta("![image](https://x.example/i.png)")]), Step([Finish("stop")], done=True)]


def test_tracker_citations_arrive_where_they_stand():
    tracker = opened()
    got = steps(tracker, [
        text("A"), {"event": "citation", "url": "https://a.example/", "title": "A", "publisher": "a"},
        {"event": "citation", "url": "https://b.example/", "title": ""}, {"event": "citation", "title": "no url"},
    ])
    assert got == [Step([Delta("A")]), Step([Citation(Source("A", "https://a.example/"))]),
                   Step([Citation(Source("https://b.example/", "https://b.example/"))]), Step()]


def test_tracker_chain_of_thought_is_reasoning_not_answer():
    tracker = opened()
    got = steps(tracker, [{"event": "chainOfThought", "text": "Hmm."}, {"event": "chainOfThought", "text": ""},
                          text("Answer"), DONE])
    assert got == [Step([Reasoning("Hmm.")]), Step(), Step([Delta("Answer")]), Step([Finish("stop")], done=True)]


@pytest.mark.parametrize("frames", [[DONE], [{"event": "chainOfThought", "text": "hmm"}, DONE],
                                    [{"event": "startMessage", "messageId": "m1"}, text("x", message="o"), DONE]],
                         ids=["nothing", "only-thoughts", "only-another-message"])
def test_tracker_done_without_an_answer_is_an_upstream_error(frames):
    with pytest.raises(errors.UpstreamError) as raised:
        steps(opened(), frames)
    assert type(raised.value) is errors.UpstreamError and "without an answer" in raised.value.message


@pytest.mark.parametrize("kind", ["received", "partCompleted", "titleUpdate", "ping", "pong", "toolExecuting", "somethingNew", None])
def test_tracker_passes_over_bookkeeping_events(kind):
    assert opened().on_event({"event": kind} if kind else {"no": "event"}) == Step()


QUOTA_AT = "2099-01-01T00:00:00Z"


@pytest.mark.parametrize("frame, kind, code", [
    ({"errorCode": "text-too-long", "id": "1"}, errors.InvalidRequest, "context_length_exceeded"),
    ({"errorCode": "chat-service-unavailable", "message": "Not here."}, errors.UpstreamBlocked, "upstream_region_blocked"),
    ({"errorCode": "too-many-messages"}, errors.UpstreamThrottled, "rate_limit_exceeded"),
    ({"errorCode": "user-throttled"}, errors.UpstreamThrottled, "rate_limit_exceeded"),
    ({"errorCode": "Rate-Limit-Exceeded"}, errors.UpstreamThrottled, "rate_limit_exceeded"),
    ({"errorCode": "unauthorized"}, errors.UpstreamRejected, "upstream_auth_failed"),
    ({"errorCode": "invalid-event"}, errors.UpstreamProtocolError, "bad_upstream_frame"),
    ({"errorCode": "brand-new-code"}, errors.UpstreamError, "upstream_error"),
    ({}, errors.UpstreamError, "upstream_error"),
], ids=["too-long", "region", "too-many", "throttl", "rate-limit", "unauthorized", "invalid-event", "other", "none"])
@pytest.mark.parametrize("event", ["error", "chatMessageError"])
def test_tracker_error_events_map_through_the_table(frame, kind, code, event):
    with pytest.raises(errors.BingoError) as raised:
        opened().on_event({"event": event, **frame})
    assert type(raised.value) is kind and raised.value.code == code
    if kind is errors.InvalidRequest:
        assert (raised.value.status, raised.value.param) == (400, "messages")
    if kind is errors.UpstreamThrottled:
        assert raised.value.status == 429 and raised.value.retry_after == 60
    if frame.get("message"):
        assert "(Copilot said: Not here.)" in raised.value.message
    if code == "upstream_error":
        assert repr(frame.get("errorCode", "unknown")) in raised.value.message


def test_tracker_error_before_connected_still_raises():
    with pytest.raises(errors.UpstreamProtocolError):
        CopilotTracker(dict(SEND)).on_event({"event": "error", "errorCode": "invalid-event"})


def test_tracker_over_research_quota_retry_after_comes_from_next_available_at():
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 90))
    with pytest.raises(errors.UpstreamThrottled) as raised:
        opened().on_event({"event": "error", "errorCode": "over-research-quota", "errorDetail": {"nextAvailableAt": soon}})
    assert 88 <= raised.value.retry_after <= 91 and soon in raised.value.message
