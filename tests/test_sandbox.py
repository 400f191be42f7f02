"""The sandbox upstream over real loopback sockets, driven as the gateway's clients would."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import websocket

from bingo.sandbox import (
    CITATION,
    Sandbox,
    answer_for,
    copilot_answer_for,
    copilot_token,
    hashcash_ok,
    image_prompt_for,
    source_for,
)
from tests.helpers import b64

RS = "\x1e"
HANDSHAKE = json.dumps({"protocol": "json", "version": 1}) + RS


@pytest.fixture
def sandbox():
    with Sandbox(ping_interval=10.0) as sb:
        yield sb


def create(sb: Sandbox) -> requests.Response:
    return requests.get(sb.create_url, params={"bundleVersion": "1.1816.0"}, timeout=5)


def open_chathub(
    sb: Sandbox, conversation: requests.Response | None = None
) -> websocket.WebSocket:
    conversation = conversation or create(sb)
    token = quote(
        conversation.headers["X-Sydney-Encryptedconversationsignature"], safe=""
    )
    return websocket.create_connection(
        f"{sb.chathub_url}?sec_access_token={token}", timeout=5
    )


def invocation(
    conversation_id: str, prompt: str, invocation_id: str = "0", **extra
) -> str:
    argument = {
        "source": "cib",
        "optionsSets": ["deepleo", "galileo"],
        "isStartOfSession": True,
        "conversationId": conversation_id,
        "participant": {"id": "1"},
        "message": {
            "author": "user",
            "text": prompt,
            "messageType": "Chat",
            "requestId": "9a1c-req",
            "messageId": "9a1c-req",
        },
        **extra,
    }
    record = {
        "arguments": [argument],
        "invocationId": invocation_id,
        "target": "chat",
        "type": 4,
    }
    return json.dumps(record) + RS


def read_turn(ws: websocket.WebSocket, limit: int = 200) -> list[str]:
    """Websocket messages up to and including the one that carries type 3."""
    messages: list[str] = []
    for _ in range(limit):
        messages.append(ws.recv())
        text = "".join(messages)
        complete = text[: text.rfind(RS) + 1]
        if any(
            json.loads(part).get("type") == 3 for part in complete.split(RS) if part
        ):
            return messages
    raise AssertionError("no type 3 within the limit")


def records(messages: list[str]) -> list[dict]:
    return [json.loads(part) for part in "".join(messages).split(RS) if part]


def chat_turn(sb: Sandbox, prompt: str, **extra) -> tuple[list[str], list[dict]]:
    conversation = create(sb)
    ws = open_chathub(sb, conversation)
    try:
        ws.send(HANDSHAKE)
        assert ws.recv() == "{}" + RS
        ws.send(invocation(conversation.json()["conversationId"], prompt, **extra))
        messages = read_turn(ws)
    finally:
        ws.close()
    return messages, records(messages)


def answer_texts(recs: list[dict]) -> list[str]:
    return [
        message["text"]
        for r in recs
        if r["type"] == 1
        for message in r["arguments"][0].get("messages", [])
        if "messageType" not in message
    ]


# answer_for


def test_answer_for_echoes_cites_and_pads_exactly():
    text = answer_for("What is 2+2?", 300)
    assert text.startswith("Echo: What is 2+2?")
    assert "[^1^]" in text
    assert len(text) == 300
    assert text == answer_for("What is 2+2?", 300)


def test_answer_for_reads_directives_from_the_prompt():
    prompt = "hi [sandbox:chars=200] [sandbox:unicode]"
    text = answer_for(prompt)
    assert len(text) == 200
    assert all(piece in text for piece in ("😀", "你好", "\u2028", "\u2029", "\t"))


# conversation create


@pytest.mark.parametrize(
    "path",
    ["/turing/conversation/create", "/edgesvc/turing/conversation/create"],
    ids=["bing", "edgesvc"],
)
def test_create_returns_conversation_and_signature_headers(sandbox, path):
    response = requests.get(
        sandbox.base_url + path, params={"bundleVersion": "1.1816.0"}, timeout=5
    )
    body = response.json()
    assert response.status_code == 200
    assert body["result"] == {"value": "Success", "message": None}
    assert body["conversationId"].startswith("51D|BingProd|")
    assert len(body["conversationId"].split("|")[2]) == 64
    assert len(body["clientId"]) == 15 and body["clientId"].isdigit()
    assert response.headers["X-Sydney-Conversationsignature"]
    encrypted = response.headers["X-Sydney-Encryptedconversationsignature"]
    assert all(char in encrypted for char in "+/=")
    assert sandbox.requests[-1]["query"] == {"bundleVersion": "1.1816.0"}


def test_create_500_queued_through_the_control_endpoint(sandbox):
    queued = requests.post(
        sandbox.base_url + "/sandbox/faults", json={"faults": ["create-500"]}, timeout=5
    )
    assert queued.status_code == 200
    assert create(sandbox).status_code == 500
    assert create(sandbox).status_code == 200
    stats = requests.get(sandbox.base_url + "/sandbox/stats", timeout=5).json()
    assert stats["creates"] == 2


def test_control_endpoint_rejects_unknown_faults(sandbox):
    response = requests.post(
        sandbox.base_url + "/sandbox/faults", json={"faults": ["nope"]}, timeout=5
    )
    assert response.status_code == 400
    with pytest.raises(ValueError):
        sandbox.queue_fault("create-slow=forever")


def test_create_requires_cookie_when_configured():
    with Sandbox(require_cookie="_U=secret") as sb:
        refused = requests.get(sb.create_url, timeout=5).json()
        accepted = requests.get(
            sb.create_url, headers={"Cookie": "a=b; _U=secret"}, timeout=5
        ).json()
    assert refused["result"]["value"] == "UnauthorizedRequest"
    assert accepted["result"]["value"] == "Success"


def test_create_legacy_puts_the_signature_in_the_body(sandbox):
    sandbox.queue_fault("create-legacy")
    response = create(sandbox)
    assert "conversationSignature" in response.json()
    assert "X-Sydney-Encryptedconversationsignature" not in response.headers


# ChatHub upgrade and handshake


def test_chathub_upgrade_refused_without_token(sandbox):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(sandbox.chathub_url, timeout=5)
    assert info.value.status_code == 403


def test_chathub_upgrade_refused_when_token_is_not_url_encoded(sandbox):
    raw = create(sandbox).headers["X-Sydney-Encryptedconversationsignature"]
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(
            f"{sandbox.chathub_url}?sec_access_token={raw}", timeout=5
        )
    assert info.value.status_code == 403


def test_chathub_upgrade_fault_answers_200_instead_of_101(sandbox):
    sandbox.queue_fault("ws-200")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        open_chathub(sandbox)
    assert info.value.status_code == 200


def test_chathub_handshake_split_across_messages_is_acknowledged(sandbox):
    ws = open_chathub(sandbox)
    ws.send(HANDSHAKE[:10])
    ws.send(HANDSHAKE[10:])
    assert ws.recv() == "{}" + RS
    ws.close()
    assert sandbox.received[-1] == [{"protocol": "json", "version": 1}]


def test_chathub_echoes_client_ping(sandbox):
    ws = open_chathub(sandbox)
    ws.send(HANDSHAKE + json.dumps({"type": 6}) + RS)
    assert ws.recv() == "{}" + RS
    assert ws.recv() == '{"type":6}' + RS
    ws.close()


def test_chathub_sends_its_own_pings():
    with Sandbox(ping_interval=0.1) as sb:
        ws = open_chathub(sb)
        ws.send(HANDSHAKE)
        assert ws.recv() == "{}" + RS
        assert ws.recv() == '{"type":6}' + RS
        ws.close()


# ChatHub turns


def test_chathub_turn_streams_cumulative_text_then_final(sandbox):
    prompt = "Why is the sky blue?"
    messages, recs = chat_turn(sandbox, prompt)
    texts = answer_texts(recs)
    final = next(r for r in recs if r["type"] == 2)
    answer = final["item"]["messages"][-1]
    assert recs[0]["arguments"][0]["throttling"]["numUserMessagesInConversation"] == 1
    assert len(texts) == 10 and texts[-1] == answer_for(prompt)
    assert all(
        later.startswith(earlier) for earlier, later in itertools.pairwise(texts)
    )
    assert final["invocationId"] == "0"
    assert final["item"]["result"]["value"] == "Success"
    assert final["item"]["result"]["message"] == answer_for(prompt)
    assert final["item"]["firstNewMessageIndex"] == 1
    assert final["item"]["messages"][0]["author"] == "user"
    assert answer["sourceAttributions"][0]["seeMoreUrl"] == source_for(prompt).url
    assert len(answer["suggestedResponses"]) == 3
    assert records(messages[-1:]) == [final, {"type": 3, "invocationId": "0"}]


def test_chathub_turn_sends_search_progress_unless_nosearchall(sandbox):
    _, recs = chat_turn(sandbox, "weather")
    kinds = [
        m.get("messageType")
        for r in recs
        if r["type"] == 1
        for m in r["arguments"][0].get("messages", [])
    ]
    assert kinds[:3] == [
        "InternalSearchQuery",
        "InternalSearchResult",
        "InternalLoaderMessage",
    ]
    _, recs = chat_turn(sandbox, "weather", optionsSets=["nosearchall"])
    assert all(
        "messageType" not in m
        for r in recs
        if r["type"] == 1
        for m in r["arguments"][0].get("messages", [])
    )


def test_chathub_tolerates_handshake_ping_and_invocation_in_one_message(sandbox):
    conversation = create(sandbox)
    ws = open_chathub(sandbox, conversation)
    ping = json.dumps({"type": 6}) + RS
    ws.send(HANDSHAKE + ping + invocation(conversation.json()["conversationId"], "now"))
    recs = records(read_turn(ws))
    ws.close()
    assert recs[:2] == [{}, {"type": 6}]
    assert final_of(recs)["result"]["message"] == answer_for("now")


def test_chathub_records_the_invocation_as_sent(sandbox):
    chat_turn(sandbox, "record me")
    sent = sandbox.received[-1]
    assert sent[0] == {"protocol": "json", "version": 1}
    assert sent[1]["arguments"][0]["message"]["text"] == "record me"


def test_chathub_throttled_directive_ends_with_an_error_final(sandbox):
    messages, recs = chat_turn(sandbox, "hi [sandbox:throttled]")
    assert len(messages) == 1
    assert recs[0]["item"]["result"] == {
        "value": "Throttled",
        "message": "Request is throttled.",
        "error": "Request is throttled.",
        "serviceVersion": recs[0]["item"]["result"]["serviceVersion"],
    }
    assert "messages" not in recs[0]["item"]
    assert recs[1] == {"type": 3, "invocationId": "0"}


def test_chathub_queued_fault_applies_to_the_next_turn_only(sandbox):
    sandbox.queue_fault("captcha")
    _, first = chat_turn(sandbox, "hi")
    _, second = chat_turn(sandbox, "hi")
    assert first[0]["item"]["result"]["value"] == "CaptchaChallenge"
    assert second[-2]["item"]["result"]["value"] == "Success"


def test_chathub_split_directive_cuts_every_record(sandbox):
    prompt = "split me [sandbox:split] [sandbox:updates=3] [sandbox:no-search]"
    messages, recs = chat_turn(sandbox, prompt)
    assert not any(
        m.endswith(RS) and m.count(RS) == 1 and m.startswith("{") for m in messages
    )
    assert len(messages) >= 2 * len(recs)
    assert recs[-2]["item"]["result"]["message"] == answer_for(prompt)


def final_of(recs: list[dict]) -> dict:
    return next(r for r in recs if r.get("type") == 2)["item"]


def test_chathub_unicode_survives_split_records(sandbox):
    prompt = "emoji [sandbox:unicode] [sandbox:split] [sandbox:updates=4]"
    _, recs = chat_turn(sandbox, prompt)
    assert answer_texts(recs)[-1] == answer_for(prompt)
    assert "\u2028" in final_of(recs)["result"]["message"]


def test_chathub_apology_replaces_the_answer_in_place(sandbox):
    _, recs = chat_turn(sandbox, "risky [sandbox:apology]")
    updates = [
        r["arguments"][0]["messages"][0]
        for r in recs
        if r["type"] == 1
        and "messages" in r["arguments"][0]
        and "messageType" not in r["arguments"][0]["messages"][0]
    ]
    assert updates[-1]["contentOrigin"] == "Apology"
    assert updates[-1]["messageId"] == updates[0]["messageId"]
    assert len(updates[-2]["text"]) < len(answer_for("risky [sandbox:apology]"))
    assert final_of(recs)["result"]["message"] == updates[-1]["text"]
    assert final_of(recs)["messages"][-1]["contentOrigin"] == "Apology"


def test_chathub_disengaged_ends_with_a_disengaged_message(sandbox):
    _, recs = chat_turn(sandbox, "enough [sandbox:disengaged]")
    last = final_of(recs)["messages"][-1]
    assert last["messageType"] == "Disengaged"
    assert final_of(recs)["result"]["value"] == "Success"


def test_chathub_turn_limit_after_max_turns():
    with Sandbox(max_turns=1) as sb:
        conversation = create(sb)
        ws = open_chathub(sb, conversation)
        ws.send(HANDSHAKE)
        ws.recv()
        conversation_id = conversation.json()["conversationId"]
        ws.send(invocation(conversation_id, "one"))
        first = records(read_turn(ws))
        ws.send(invocation(conversation_id, "two", invocation_id="1"))
        second = records(read_turn(ws))
        ws.close()
    assert final_of(first)["messages"][-1]["contentOrigin"] == "DeepLeo"
    assert final_of(second)["messages"][-1]["contentOrigin"] == "TurnLimiter"
    assert final_of(second)["throttling"]["numUserMessagesInConversation"] == 1


@pytest.mark.parametrize(
    "directive", ["final-only", "trailing-space", "render-card-last"]
)
def test_chathub_final_text_is_the_answer_whatever_the_stream(sandbox, directive):
    prompt = f"shape [sandbox:{directive}]"
    _, recs = chat_turn(sandbox, prompt)
    final = final_of(recs)
    answer = next(
        m for m in final["messages"] if m["author"] == "bot" and "messageType" not in m
    )
    assert final["result"]["message"] == answer["text"] == answer_for(prompt)
    streamed = answer_texts(recs)
    if directive == "final-only":
        assert streamed == []
    if directive == "trailing-space":
        assert streamed[-1] == answer_for(prompt) + "  \n"
    if directive == "render-card-last":
        assert final["messages"][-1]["messageType"] == "RenderCardRequest"


def test_chathub_type7_closes_the_hub(sandbox):
    conversation = create(sandbox)
    ws = open_chathub(sandbox, conversation)
    ws.send(HANDSHAKE)
    ws.recv()
    ws.send(invocation(conversation.json()["conversationId"], "[sandbox:type7]"))
    recs = []
    for _ in range(100):
        message = ws.recv()
        if not message:
            break
        recs += records([message])
    ws.shutdown()  # after a server close, websocket-client's close() leaves the socket open
    assert recs[-1] == {
        "type": 7,
        "error": "Connection closed with an error.",
        "allowReconnect": True,
    }


def test_chathub_silent_sends_nothing_not_even_pings():
    with Sandbox(ping_interval=0.05) as sb:
        conversation = create(sb)
        ws = open_chathub(sb, conversation)
        ws.send(HANDSHAKE)
        ws.recv()
        ws.send(invocation(conversation.json()["conversationId"], "[sandbox:silent]"))
        ws.settimeout(0.3)
        received = []
        with pytest.raises(websocket.WebSocketTimeoutException):
            for _ in range(100):
                received.append(ws.recv())
        ws.close()
    assert all(message == '{"type":6}' + RS for message in received[:2])
    assert len(received) <= 2  # pings sent before the invocation arrived, at most


def test_chathub_no_handshake_ack_fault(sandbox):
    sandbox.queue_fault("no-handshake-ack")
    ws = open_chathub(sandbox)
    ws.send(HANDSHAKE)
    ws.settimeout(0.2)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()
    ws.close()


def test_chathub_legacy_socket_needs_the_signature_in_the_call(sandbox):
    sandbox.queue_fault("create-legacy")
    body = create(sandbox).json()
    ws = websocket.create_connection(sandbox.chathub_url, timeout=5)
    ws.send(HANDSHAKE)
    ws.recv()
    ws.send(
        invocation(
            body["conversationId"],
            "old",
            conversationSignature=body["conversationSignature"],
        )
    )
    good = records(read_turn(ws))
    ws.send(
        invocation(
            body["conversationId"], "old", invocation_id="1", conversationSignature="x"
        )
    )
    bad = records(read_turn(ws))
    ws.close()
    assert final_of(good)["result"]["value"] == "Success"
    assert final_of(bad)["result"]["value"] == "UnauthorizedRequest"


def test_chathub_unknown_conversation_gets_invalid_session(sandbox):
    ws = open_chathub(sandbox)
    ws.send(HANDSHAKE)
    ws.recv()
    ws.send(invocation("51D|BingProd|" + "0" * 64, "hi", invocation_id="7"))
    recs = records(read_turn(ws))
    ws.close()
    assert recs[0]["item"]["result"]["value"] == "InvalidSession"
    assert recs[1] == {"type": 3, "invocationId": "7"}


def test_chathub_drop_closes_without_a_close_frame(sandbox):
    conversation = create(sandbox)
    ws = open_chathub(sandbox, conversation)
    ws.send(HANDSHAKE)
    ws.recv()
    ws.send(invocation(conversation.json()["conversationId"], "bye [sandbox:drop]"))
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        for _ in range(100):
            ws.recv()
    assert sandbox.wait_idle()
    assert sandbox.stats()["closed_by_client"] == 0


def test_stats_and_wait_idle_follow_open_sockets(sandbox):
    ws = open_chathub(sandbox)
    assert sandbox.stats()["open"] == 1
    assert not sandbox.wait_idle(timeout=0.05)
    ws.close()
    assert sandbox.wait_idle()
    assert sandbox.stats() == {
        "connections": 1,
        "open": 0,
        "closed_by_client": 1,
        "closed_cleanly": 1,
        "creates": 1,
    }


def test_live_sockets_drop_as_the_client_closes_before_the_session_notices(sandbox):
    """The kernel's count: a socket whose client shut it no longer counts, with no
    wait, however late the session's thread reads the close (stats()["open"] may lag)."""
    first, second = open_chathub(sandbox), open_chathub(sandbox)
    assert sandbox.live_sockets() == 2
    first.send_close()
    first.shutdown()
    assert sandbox.live_sockets() == 1
    second.close()
    assert sandbox.live_sockets() == 0
    assert sandbox.wait_idle()


def test_sandbox_refuses_non_loopback_hosts():
    with pytest.raises(ValueError):
        Sandbox(host="0.0.0.0")


# Copilot: helpers


HEX32 = re.compile(r"[0-9a-f]{32}")
NANOID = re.compile(r"[A-Za-z0-9_-]{21}")
IMAGE_URL = re.compile(r"https://copilot\.microsoft\.com/th/id/BCO\.[0-9a-f-]{36}\.png")


def copilot_conversation(sb: Sandbox) -> str:
    response = requests.post(sb.copilot_url + "/c/api/conversations", timeout=5)
    assert response.status_code == 200
    return response.json()["id"]


def start(sb: Sandbox, **extra) -> requests.Response:
    body = {
        "timeZone": "UTC",
        "startNewConversation": True,
        "teenSupportEnabled": True,
        "correctPersonalizationSetting": True,
        "deferredDataUseCapable": True,
    }
    return requests.post(sb.copilot_url + "/c/api/start", json=body, timeout=5, **extra)


def open_copilot(sb: Sandbox, greeted: bool = True) -> websocket.WebSocket:
    """A Copilot socket; with `greeted`, its `connected` event is read and checked."""
    ws_base = "ws" + sb.copilot_url[len("http") :]
    session = "5c1e1a4e-0000-4000-8000-000000000001"
    url = f"{ws_base}/c/api/chat?api-version=2&clientSessionId={session}"
    ws = websocket.create_connection(url, timeout=5)
    if greeted:
        assert_connected(recv(ws), "0")
    return ws


def assert_connected(event: dict, number: str) -> None:
    assert event == {
        "event": "connected",
        "requestId": event["requestId"],
        "id": number,
    }
    assert HEX32.fullmatch(event["requestId"])


def recv(ws: websocket.WebSocket) -> dict:
    return json.loads(ws.recv())


def send_event(conversation_id: str, prompt: str, mode: str = "chat") -> str:
    return json.dumps(
        {
            "event": "send",
            "conversationId": conversation_id,
            "mode": mode,
            "content": [{"type": "text", "text": prompt}],
        }
    )


def response_to(challenge: dict, token: str) -> str:
    return json.dumps(
        {
            "event": "challengeResponse",
            "token": token,
            "method": challenge["method"],
            "id": challenge["id"],
        }
    )


def read_until(ws: websocket.WebSocket, event: str, limit: int = 200) -> list[dict]:
    events: list[dict] = []
    for _ in range(limit):
        events.append(recv(ws))
        if events[-1]["event"] == event:
            return events
    raise AssertionError(f"no {event} within the limit")


def quiet(ws: websocket.WebSocket, seconds: float = 0.3) -> list[dict]:
    """Every event that arrives within `seconds`; [] when the socket stays quiet."""
    ws.settimeout(seconds)
    events: list[dict] = []
    try:
        for _ in range(200):
            events.append(recv(ws))
    except websocket.WebSocketTimeoutException:
        pass
    ws.settimeout(5)
    return events


def texts(events: list[dict]) -> str:
    return "".join(e["text"] for e in events if e["event"] == "appendText")


def turn(sb: Sandbox, prompt: str, mode: str = "chat") -> list[dict]:
    """One answered send on a fresh socket, up to `done`."""
    ws = open_copilot(sb)
    try:
        ws.send(send_event(copilot_conversation(sb), prompt, mode))
        return read_until(ws, "done")
    finally:
        ws.close()


INVALID_EVENT = {"event": "error", "errorCode": "invalid-event"}
CAPTURES = Path(__file__).resolve().parent / "captures"


def captured(name: str) -> list[dict]:
    """The events of tests/captures/<name>.copilot.jsonl."""
    lines = (CAPTURES / f"{name}.copilot.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in lines.splitlines() if line.strip()]


# Copilot: conversation create and /c/api/start


def test_copilot_conversations_issues_a_nanoid(sandbox):
    assert NANOID.fullmatch(copilot_conversation(sandbox))
    assert requests.get(sandbox.copilot_url + "/c/api/user", timeout=5).ok


def test_copilot_start_answers_like_the_capture_and_sets_the_anon_cookie(sandbox):
    response = start(sandbox)
    body = response.json()
    assert response.status_code == 200
    assert NANOID.fullmatch(body["currentConversationId"])
    assert body["isBlocked"] is False and body["isNewUser"] is False
    assert body["remainingTurns"] == 30 and body["userId"]
    assert "send-connected" in body["features"]
    cookie = response.headers["Set-Cookie"]
    assert re.fullmatch(
        r"__Host-copilot-anon=[A-Za-z0-9_-]{64}; Path=/; Secure; HttpOnly; SameSite=None",
        cookie,
    )
    assert sandbox.requests[-1]["body"]["startNewConversation"] is True
    ws = open_copilot(sandbox)  # the id works on the socket
    ws.send(send_event(body["currentConversationId"], "hi"))
    assert read_until(ws, "done")[0]["event"] == "received"
    ws.close()


def test_copilot_start_has_the_captured_keys_in_order_plus_is_blocked(sandbox):
    capture = json.loads(
        (CAPTURES / "model-dock-2025-10-start.copilot-start.json").read_text()
    )
    assert list(start(sandbox).json()) == [*capture, "isBlocked"]


def test_copilot_start_blocked_is_taken_by_start_only(sandbox):
    sandbox.queue_fault("start-blocked")
    copilot_conversation(sandbox)  # leaves it queued
    assert start(sandbox).json()["isBlocked"] is True
    assert start(sandbox).json()["isBlocked"] is False


@pytest.mark.parametrize("path", ["/c/api/conversations", "/c/api/start"])
@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("create-500", 500),
        ("create-404", 404),
        ("create-401", 401),
        ("create-403", 403),
        ("create-429", 429),
        ("create-redirect", 302),
        ("create-empty", 200),
        ("create-nonjson", 200),
    ],
)
def test_copilot_create_faults_apply_to_both_endpoints(sandbox, path, fault, status):
    sandbox.queue_fault(fault)
    response = requests.post(
        sandbox.copilot_url + path, json={}, timeout=5, allow_redirects=False
    )
    assert response.status_code == status
    if fault == "create-403":
        assert "Just a moment..." in response.text
        assert response.headers["cf-mitigated"] == "challenge"
    if fault == "create-429":
        assert response.headers["Retry-After"] == "7"
    if fault == "create-redirect":
        assert response.headers["Location"] == "http://127.0.0.2:1/elsewhere"
    if fault == "create-empty":
        assert response.content == b""
    assert "Set-Cookie" not in response.headers


def test_copilot_upgrade_refused_without_client_session_id(sandbox):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(
            "ws" + sandbox.base_url[4:] + "/c/api/chat?api-version=2", timeout=5
        )
    assert info.value.status_code == 403


# Copilot: connected first


def test_copilot_connected_is_the_first_frame_and_id_zero(sandbox):
    ws = open_copilot(sandbox)  # asserts the exact frame
    ws.send(send_event(copilot_conversation(sandbox), "hi"))
    assert recv(ws)["id"] == "1"  # as in model-dock-2025-10-connected-received
    ws.close()


def test_copilot_connected_and_received_have_the_captured_keys(sandbox):
    connected, received = captured("model-dock-2025-10-connected-received")
    ws = open_copilot(sandbox, greeted=False)
    mine = recv(ws)
    ws.send(send_event(copilot_conversation(sandbox), "hi"))
    first = recv(ws)
    ws.close()
    assert list(mine) == list(connected) and mine["id"] == connected["id"]
    assert set(first) == set(received) and first["id"] == received["id"]


def test_copilot_connected_twice_fault(sandbox):
    sandbox.queue_fault("connected-twice")
    ws = open_copilot(sandbox)
    assert_connected(recv(ws), "1")
    ws.send(send_event(copilot_conversation(sandbox), "once"))
    events = read_until(ws, "done")
    ws.close()
    assert events[0]["event"] == "received" and events[0]["id"] == "2"


def test_copilot_frames_before_a_delayed_connected_are_invalid_events(sandbox):
    sandbox.queue_fault("connected-delay=0.3")
    ws = open_copilot(sandbox, greeted=False)
    ws.send(json.dumps({"event": "setOptions", "supportedCards": []}))
    assert recv(ws) == INVALID_EVENT
    assert_connected(recv(ws), "0")
    ws.send(json.dumps({"event": "ping"}))
    assert recv(ws) == {"event": "pong", "id": "1"}
    ws.close()


def test_copilot_no_connected_stays_silent(sandbox):
    sandbox.queue_fault("no-connected")
    ws = open_copilot(sandbox, greeted=False)
    ws.send(send_event(copilot_conversation(sandbox), "anyone?"))
    assert quiet(ws) == []
    ws.close()
    assert sandbox.received[-1][0]["event"] == "send"


# Copilot: turns


def test_copilot_answers_without_set_options_and_keeps_the_socket(sandbox):
    prompt = "Name a palindrome"
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, prompt))
    events = read_until(ws, "done")
    kinds = [e["event"] for e in events]
    answer_id = events[1]["messageId"]
    assert kinds[:2] == ["received", "startMessage"]
    assert events[0]["messageId"] != answer_id
    assert texts(events) == copilot_answer_for(prompt).text
    assert kinds[-2:] == ["partCompleted", "done"]
    assert events[-1] == {
        "event": "done",
        "messageId": answer_id,
        "id": events[-1]["id"],
    }
    assert [e["id"] for e in events] == [str(n) for n in range(1, len(events) + 1)]
    after = [recv(ws)["event"] for _ in range(2)]
    assert after == ["titleUpdate", "suggestedFollowups"]
    ws.send(send_event(conversation_id, "again"))  # the turn is over: welcome
    assert texts(read_until(ws, "done")) == copilot_answer_for("again").text
    ws.close()


def test_copilot_set_options_and_consents_are_accepted(sandbox):
    ws = open_copilot(sandbox)
    ws.send(json.dumps({"event": "setOptions", "supportedCards": ["weather"]}))
    ws.send(json.dumps({"event": "reportLocalConsents", "grantedConsents": []}))
    ws.send(json.dumps({"event": "ping"}))
    assert recv(ws) == {"event": "pong", "id": "1"}
    ws.close()


def test_copilot_stream_matches_copilot_answer_for(sandbox):
    prompt = "cite twice [sandbox:citations=3] [sandbox:updates=4]"
    layout = copilot_answer_for(prompt)
    events = turn(sandbox, prompt)
    sent, cuts, cited = "", [], []
    for event in events:
        if event["event"] == "appendText":
            sent += event["text"]
            cuts.append(len(sent))
        if event["event"] == "citation":
            cited.append((len(sent), event["url"]))
    assert layout.text == sent == answer_for(prompt).replace(CITATION, "", 1)
    assert tuple(cuts) == layout.cuts
    assert cited == [(offset, source.url) for offset, source in layout.citations]
    assert len(cited) == 3 and len({url for _, url in cited}) == 2
    assert len({offset for offset, _ in cited}) == 3
    first = next(e for e in events if e["event"] == "citation")
    source = source_for(prompt)
    assert first == {
        "event": "citation",
        "messageId": events[1]["messageId"],
        "url": source.url,
        "title": source.title,
        "publisher": "example.com",
        "snippet": first["snippet"],
        "id": first["id"],
    }


def test_copilot_plain_answer_has_one_citation_where_the_marker_was(sandbox):
    prompt = "plain"
    events = turn(sandbox, prompt)
    kinds = [e["event"] for e in events]
    layout = copilot_answer_for(prompt)
    at = kinds.index("citation")
    assert kinds.count("citation") == 1
    assert "[^1^]" not in texts(events), "Copilot text carries no Bing-style marker"
    assert texts(events[:at]) == answer_for(prompt).split(CITATION)[0]
    assert len(texts(events[:at])) == layout.citations[0][0]


def test_copilot_second_send_on_a_live_turn_kills_it(sandbox):
    prompt = "slow [sandbox:delay=0.05]"
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, prompt))
    read_until(ws, "startMessage")
    ws.send(send_event(conversation_id, prompt))
    events = read_until(ws, "error")
    assert events[-1] == INVALID_EVENT
    assert quiet(ws) == []  # the killed turn says nothing more, not even done
    ws.send(send_event(conversation_id, "next"))
    assert texts(read_until(ws, "done")) == copilot_answer_for("next").text
    ws.close()


def test_copilot_reasoning_mode_thinks_before_answering(sandbox):
    prompt = "think [sandbox:chars=80]"
    events = turn(sandbox, prompt, mode="reasoning")
    kinds = [e["event"] for e in events]
    assert kinds[:5] == ["received"] + ["chainOfThought"] * 3 + ["startMessage"]
    assert texts(events) == copilot_answer_for(prompt).text


def test_copilot_think_directive_spreads_the_thinking(sandbox):
    ws = open_copilot(sandbox)
    ws.send(
        send_event(copilot_conversation(sandbox), "[sandbox:think=0.6]", "reasoning")
    )
    stamps = []
    for _ in range(100):
        event = recv(ws)
        stamps.append((event["event"], time.monotonic()))
        if event["event"] == "startMessage":
            break
    ws.close()
    thoughts = [t for kind, t in stamps if kind == "chainOfThought"]
    assert [kind for kind, _ in stamps[1:-1]] == ["chainOfThought"] * len(thoughts)
    assert len(thoughts) >= 3
    assert stamps[-1][1] - stamps[0][1] >= 0.5
    assert thoughts[1] - thoughts[0] >= 0.1


def test_copilot_text_too_long(sandbox):
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, "x" * 10_241))
    assert [recv(ws)] == captured("gpt4free-issue3107-2025-08-text-too-long")
    ws.send(send_event(conversation_id, "x" * 10_240))
    assert read_until(ws, "done")[0]["event"] == "received"
    ws.close()


def test_copilot_mode_selected_waits_for_a_send_in_that_mode(sandbox):
    prompt = "upgrade me [sandbox:mode-selected=smart]"
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, prompt))
    abandoned = read_until(ws, "done")
    answer_id = abandoned[1]["messageId"]
    assert [e["event"] for e in abandoned] == [
        "received",
        "startMessage",
        "modeSelected",
        "done",
    ]
    assert abandoned[2] == {
        "event": "modeSelected",
        "mode": "smart",
        "messageId": answer_id,
        "id": "3",
    }
    assert abandoned[3] == {"event": "done", "messageId": answer_id, "id": "4"}
    assert quiet(ws) == []
    ws.send(send_event(conversation_id, prompt, mode="chat"))
    assert recv(ws) == INVALID_EVENT
    ws.send(send_event(conversation_id, prompt, mode="smart"))
    answered = read_until(ws, "done")
    ws.close()
    assert answered[1]["messageId"] != answer_id
    assert texts(answered) == copilot_answer_for(prompt).text


def test_copilot_image_sits_between_two_text_parts(sandbox):
    prompt = "draw a cat [sandbox:image]"
    events = turn(sandbox, prompt)
    kinds = [e["event"] for e in events]
    at = kinds.index("generatingImage")
    generated = events[at + 1]
    answer_id = events[1]["messageId"]
    assert kinds[at - 1] == "partCompleted" and kinds[at + 2] == "appendText"
    assert len(texts(events[:at])) == copilot_answer_for(prompt).image_at
    assert events[at] == {
        "event": "generatingImage",
        "messageId": answer_id,
        "prompt": image_prompt_for(prompt),
        "id": events[at]["id"],
    }
    assert generated == {
        "event": "imageGenerated",
        "messageId": answer_id,
        "partId": generated["partId"],
        "url": generated["url"],
        "thumbnailUrl": generated["url"] + "/?w=270&qlt=90",
        "nextAvailableAt": None,
        "id": generated["id"],
    }
    assert IMAGE_URL.fullmatch(generated["url"])
    assert set(generated) == set(captured("6kmfi6hp-2026-xx-image-generated")[0])
    assert events[at - 2]["partId"] != events[at + 2]["partId"]
    assert texts(events) == copilot_answer_for(prompt).text


def test_copilot_image_only_turn_has_no_text(sandbox):
    events = turn(sandbox, "draw [sandbox:image-only]")
    assert [e["event"] for e in events] == [
        "received",
        "startMessage",
        "generatingImage",
        "imageGenerated",
        "done",
    ]


@pytest.mark.parametrize(
    ("directive", "code"),
    [
        ("chat-message-error", "message-error"),
        ("chat-message-error=blocked", "blocked"),
    ],
)
def test_copilot_chat_message_error_ends_the_turn_without_done(
    sandbox, directive, code
):
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, f"[sandbox:{directive}]"))
    events = read_until(ws, "chatMessageError")
    assert texts(events)  # some text came first
    assert events[-1] == {
        "event": "chatMessageError",
        "errorCode": code,
        "message": events[-1]["message"],
        "id": events[-1]["id"],
    }
    assert quiet(ws) == []
    ws.send(send_event(conversation_id, "after"))  # not live any more
    assert texts(read_until(ws, "done")) == copilot_answer_for("after").text
    ws.close()


@pytest.mark.parametrize(
    "code", ["too-many-messages", "throttled", "rate-limit-exceeded", "unauthorized"]
)
def test_copilot_error_directive_sends_that_code(sandbox, code):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), f"hi [sandbox:error={code}]"))
    assert recv(ws) == {"event": "error", "errorCode": code, "id": "1"}
    assert quiet(ws) == []
    ws.close()


def test_copilot_error_directive_invalid_event_is_unnumbered(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:error=invalid-event]"))
    assert recv(ws) == INVALID_EVENT
    ws.close()


def test_copilot_service_unavailable_error(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:error-unavailable]"))
    event = recv(ws)
    ws.close()
    assert event == {
        "event": "error",
        "errorCode": "chat-service-unavailable",
        "message": "Copilot is not available in your region.",
        "id": "1",
    }


def test_copilot_over_research_quota_says_when(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:over-research-quota]"))
    event = recv(ws)
    ws.close()
    when = event["errorDetail"]["nextAvailableAt"]
    assert event == {
        "event": "error",
        "errorCode": "over-research-quota",
        "errorDetail": {"nextAvailableAt": when},
        "id": "1",
    }
    ahead = datetime.fromisoformat(when) - datetime.now(UTC)
    assert 85 <= ahead.total_seconds() <= 91


def test_copilot_ping_flood_never_answers():
    with Sandbox() as sb:
        sb.queue_fault("ping-flood")
        ws = open_copilot(sb)
        ws.send(send_event(copilot_conversation(sb), "hello?"))
        ws.settimeout(2)
        pings, events, deadline = 0, [], time.monotonic() + 0.5
        while time.monotonic() < deadline:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PING:
                pings += 1
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                events.append(json.loads(data))
        ws.close()
    assert pings >= 4
    assert events and all(e == {"event": "ping", "id": e["id"]} for e in events)


def test_copilot_drop_cuts_the_answer_short(sandbox):
    prompt = "[sandbox:drop]"
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), prompt))
    parts = []
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        for _ in range(100):
            event = recv(ws)
            parts += [event["text"]] if event["event"] == "appendText" else []
    assert copilot_answer_for(prompt).text.startswith("".join(parts))
    assert "".join(parts) != answer_for(prompt)


def test_copilot_unknown_conversation_is_an_invalid_event(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event("A" * 21, "who?"))
    assert recv(ws) == INVALID_EVENT
    ws.close()


# Copilot: challenges


def test_copilot_empty_challenge_comes_mid_turn_and_nothing_waits(sandbox):
    prompt = "challenge me [sandbox:challenge]"
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), prompt))
    events = read_until(ws, "challenge")
    assert events[-1] == {
        "event": "challenge",
        "method": None,
        "parameter": None,
        "id": "0.0001",
    }
    assert [e["event"] for e in events].count("appendText") == 2
    ws.send(response_to(events[-1], ""))  # acknowledged, never re-sent
    rest = read_until(ws, "done")
    ws.close()
    assert texts(events + rest) == copilot_answer_for(prompt).text
    assert INVALID_EVENT not in rest
    # The answer does not wait for the response, so the server may record it a
    # moment after `done` went out: wait for it, boundedly.
    deadline = time.monotonic() + 2.0
    while sandbox.received[-1][-1].get("event") != "challengeResponse" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sandbox.received[-1][-1] == {
        "event": "challengeResponse",
        "token": "",
        "method": None,
        "id": "0.0001",
    }


def test_copilot_resent_send_after_empty_challenge_is_wca8(sandbox):
    prompt = "[sandbox:challenge] [sandbox:delay=0.02]"
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, prompt))
    challenge = read_until(ws, "challenge")[-1]
    ws.send(response_to(challenge, ""))
    ws.send(send_event(conversation_id, prompt))
    events = read_until(ws, "error")
    assert events[-1] == INVALID_EVENT
    assert quiet(ws) == []
    ws.close()


def test_copilot_wrong_challenge_id_is_refused(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:challenge]"))
    challenge = read_until(ws, "challenge")[-1]
    ws.send(response_to({**challenge, "id": "0.1"}, ""))
    events = read_until(ws, "error")  # after or among the rest of the turn
    ws.close()
    assert events[-1] == INVALID_EVENT


def seed_only_nonce(parameter: str) -> str:
    """Solve hashcash the way the 2026 clients do: sha256(seed + nonce), no ':bits'."""
    seed, bits = parameter.rsplit(":", 1)
    return next(
        str(n)
        for n in range(1 << 22)
        if int.from_bytes(hashlib.sha256(f"{seed}{n}".encode()).digest(), "big")
        >> (256 - int(bits))
        == 0
    )


def test_copilot_hashcash_holds_the_send_until_solved(sandbox):
    sandbox.queue_fault("hashcash")
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, "prove work"))
    challenge = recv(ws)
    assert challenge == {
        "event": "challenge",
        "method": "hashcash",
        "parameter": challenge["parameter"],
        "id": "0.0001",
    }
    assert re.fullmatch(r"[0-9a-f]{64}:8", challenge["parameter"])
    assert quiet(ws, 0.2) == []  # held
    ws.send(response_to(challenge, seed_only_nonce(challenge["parameter"])))
    ws.send(send_event(conversation_id, "prove work"))
    events = read_until(ws, "done")
    ws.close()
    assert texts(events) == copilot_answer_for("prove work").text


def test_copilot_hashcash_bits_from_the_directive_and_wrong_tokens(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:hashcash=12]"))
    challenge = recv(ws)
    assert challenge["parameter"].endswith(":12")
    assert hashcash_ok(challenge["parameter"], seed_only_nonce(challenge["parameter"]))
    ws.send(response_to(challenge, "not-a-number"))
    assert recv(ws) == INVALID_EVENT
    ws.close()


def test_copilot_arithmetic_challenge(sandbox):
    prompt = "[sandbox:copilot]"
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, prompt))
    challenge = recv(ws)
    assert challenge["method"] == "copilot" and challenge["id"] == "0.0001"
    a = float(challenge["parameter"])
    token = str(round((a**3 / 100 + a * 25) % 22))
    assert copilot_token(challenge["parameter"]) == token
    ws.send(response_to(challenge, str(int(token) + 1)))
    assert recv(ws) == INVALID_EVENT
    ws.send(response_to(challenge, token))
    ws.send(send_event(conversation_id, prompt))
    assert texts(read_until(ws, "done")) == copilot_answer_for(prompt).text
    ws.close()


def test_copilot_cloudflare_challenge_is_never_satisfied(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:cloudflare]"))
    challenge = recv(ws)
    ws.send(response_to(challenge, "turnstile"))
    assert challenge["method"] == "cloudflare"
    assert recv(ws) == INVALID_EVENT
    ws.close()


def test_stop_closes_open_sockets_and_joins():
    sb = Sandbox().start()
    ws = open_copilot(sb)
    sb.stop()
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1001
    assert sb.stats()["open"] == 0


def test_cli_prints_the_gateway_environment():
    command = [sys.executable, "-m", "bingo.sandbox", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            lines = [process.stdout.readline().strip() for _ in range(3)]
        finally:
            process.terminate()
            process.wait(timeout=5)
    names = [line.split("=", 1)[0] for line in lines]
    assert names == ["BINGO_CREATE_URL", "BINGO_CHATHUB_URL", "BINGO_COPILOT_URL"]
    assert lines[1].startswith("BINGO_CHATHUB_URL=ws://127.0.0.1:")


# scripted answers: [sandbox:reply=...] and [sandbox:replies=...]


SCRIPTED = 'Prose, then <tool_call>{"name": "f", "arguments": {}}</tool_call> ✓'


def test_reply_directive_replaces_the_whole_answer():
    assert answer_for(f"q [sandbox:reply={b64(SCRIPTED)}]") == SCRIPTED
    layout = copilot_answer_for(f"q [sandbox:reply={b64(SCRIPTED)}] [sandbox:updates=4]")
    assert (layout.text, layout.citations, layout.cuts[-1], len(layout.cuts)) == (SCRIPTED, (), len(SCRIPTED), 4)


def test_replies_directive_answers_the_corrective_turn_with_the_next_one():
    directive = f"[sandbox:replies={b64('first')},{b64('second')},{b64('third')}]"
    assert answer_for(f"User: q {directive}") == "first"
    assert answer_for(f"User: q {directive}\nAssistant: first\nUser: try again") == "second"
    assert answer_for(f"User: q {directive}\nAssistant: first\nAssistant: second") == "third"


@pytest.mark.parametrize("directive", ["reply=!!!", "reply=" + b64("a") + "," + b64("b"), "replies=" + b64("a") + ",%"])
def test_bad_reply_directives_are_ignored(directive):
    assert answer_for(f"q [sandbox:{directive}]").startswith("Echo: q")


def test_copilot_streams_a_scripted_reply_in_the_usual_deltas(sandbox):
    events = turn(sandbox, f"q [sandbox:reply={b64(SCRIPTED)}]")
    appended = [e["text"] for e in events if e["event"] == "appendText"]
    assert "".join(appended) == SCRIPTED and len(appended) == 10
    assert not [e for e in events if e["event"] == "citation"]


def test_chathub_streams_a_scripted_reply_in_the_usual_updates(sandbox):
    _, recs = chat_turn(sandbox, f"q [sandbox:reply={b64(SCRIPTED)}]")
    texts = answer_texts(recs)
    assert len(texts) == 10 and texts[-1] == SCRIPTED
