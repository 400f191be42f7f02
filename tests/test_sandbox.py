"""The sandbox upstream over real loopback sockets, driven as the gateway's clients would."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from urllib.parse import quote

import pytest
import requests
import websocket

from bingo.sandbox import Sandbox, answer_for, source_for

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


def test_sandbox_refuses_non_loopback_hosts():
    with pytest.raises(ValueError):
        Sandbox(host="0.0.0.0")


# Copilot


def copilot_conversation(sb: Sandbox) -> str:
    response = requests.post(sb.copilot_url + "/c/api/conversations", timeout=5)
    assert response.status_code == 200
    return response.json()["id"]


def open_copilot(sb: Sandbox, ready: bool = True) -> websocket.WebSocket:
    ws_base = "ws" + sb.copilot_url[len("http") :]
    session = "5c1e1a4e-0000-4000-8000-000000000001"
    url = f"{ws_base}/c/api/chat?api-version=2&clientSessionId={session}"
    ws = websocket.create_connection(url, timeout=5)
    assert json.loads(ws.recv())["event"] == "connected"
    if ready:
        ws.send(
            json.dumps(
                {"event": "setOptions", "supportedCards": ["weather"], "ads": None}
            )
        )
        ws.send(json.dumps({"event": "reportLocalConsents", "grantedConsents": []}))
    return ws


def send_event(conversation_id: str, prompt: str, mode: str = "chat") -> str:
    return json.dumps(
        {
            "event": "send",
            "conversationId": conversation_id,
            "mode": mode,
            "content": [{"type": "text", "text": prompt}],
            "context": {},
        }
    )


def read_until(ws: websocket.WebSocket, event: str, limit: int = 200) -> list[dict]:
    events: list[dict] = []
    for _ in range(limit):
        events.append(json.loads(ws.recv()))
        if events[-1]["event"] == event:
            return events
    raise AssertionError(f"no {event} within the limit")


def test_copilot_create_and_start_issue_ids(sandbox):
    conversation_id = copilot_conversation(sandbox)
    started = requests.post(
        sandbox.copilot_url + "/c/api/start", json={"timeZone": "UTC"}, timeout=5
    )
    assert len(conversation_id) == 21
    assert len(started.json()["currentConversationId"]) == 21
    assert (
        requests.get(sandbox.copilot_url + "/c/api/user", timeout=5).status_code == 200
    )


def test_copilot_create_fault_answers_401(sandbox):
    sandbox.queue_fault("create-401")
    response = requests.post(sandbox.copilot_url + "/c/api/conversations", timeout=5)
    assert response.status_code == 401


def test_copilot_upgrade_refused_without_client_session_id(sandbox):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(
            "ws" + sandbox.base_url[4:] + "/c/api/chat?api-version=2", timeout=5
        )
    assert info.value.status_code == 403


def test_copilot_turn_deltas_concatenate_to_the_answer(sandbox):
    prompt = "Name a palindrome"
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, prompt))
    events = read_until(ws, "done")
    kinds = [e["event"] for e in events]
    answer_id = next(e["messageId"] for e in events if e["event"] == "startMessage")
    deltas = [e for e in events if e["event"] == "appendText"]
    assert kinds[:2] == ["received", "startMessage"]
    assert events[0]["messageId"] != answer_id
    assert "".join(e["text"] for e in deltas) == answer_for(prompt)
    assert all(e["messageId"] == answer_id for e in deltas)
    assert (
        next(e for e in events if e["event"] == "citation")["url"]
        == source_for(prompt).url
    )
    assert kinds[-2:] == ["partCompleted", "done"]
    assert all(isinstance(e["id"], str) for e in events)
    after = [json.loads(ws.recv())["event"] for _ in range(2)]
    assert after == ["titleUpdate", "suggestedFollowups"]
    ws.send(json.dumps({"event": "ping"}))
    assert json.loads(ws.recv())["event"] == "pong"  # the socket stays open after done
    ws.close()


def test_copilot_reasoning_mode_thinks_before_answering(sandbox):
    prompt = "think [sandbox:chars=80]"
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), prompt, mode="reasoning"))
    events = read_until(ws, "done")
    ws.close()
    kinds = [e["event"] for e in events]
    assert "chainOfThought" in kinds and kinds.index("chainOfThought") < kinds.index(
        "startMessage"
    )
    assert "".join(
        e["text"] for e in events if e["event"] == "appendText"
    ) == answer_for(prompt)


def test_copilot_send_before_set_options_is_an_invalid_event(sandbox):
    ws = open_copilot(sandbox, ready=False)
    ws.send(send_event(copilot_conversation(sandbox), "too early"))
    assert json.loads(ws.recv()) == {"event": "error", "errorCode": "invalid-event"}
    ws.close()


def test_copilot_challenge_must_be_echoed_before_the_answer(sandbox):
    prompt = "challenge me [sandbox:challenge]"
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, prompt))
    challenge = json.loads(ws.recv())
    assert challenge == {
        "event": "challenge",
        "method": None,
        "parameter": None,
        "id": "0.0001",
    }
    ws.send(
        json.dumps(
            {
                "event": "challengeResponse",
                "token": "",
                "method": None,
                "id": challenge["id"],
            }
        )
    )
    ws.send(send_event(conversation_id, prompt))
    events = read_until(ws, "done")
    ws.close()
    assert "".join(
        e["text"] for e in events if e["event"] == "appendText"
    ) == answer_for(prompt)


def test_copilot_wrong_challenge_id_is_refused(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:challenge]"))
    challenge = json.loads(ws.recv())
    ws.send(
        json.dumps(
            {"event": "challengeResponse", "token": "", "method": None, "id": "0.1"}
        )
    )
    assert json.loads(ws.recv()) == {"event": "error", "errorCode": "invalid-event"}
    assert challenge["id"] == "0.0001"
    ws.close()


def test_copilot_hashcash_accepts_a_solved_nonce(sandbox):
    import hashlib

    sandbox.queue_fault("hashcash")
    conversation_id = copilot_conversation(sandbox)
    ws = open_copilot(sandbox)
    ws.send(send_event(conversation_id, "prove work"))
    challenge = json.loads(ws.recv())
    parameter = challenge["parameter"]
    bits = int(parameter.rsplit(":", 1)[1])
    nonce = next(
        str(n)
        for n in range(1_000_000)
        if int.from_bytes(hashlib.sha256(f"{parameter}{n}".encode()).digest(), "big")
        >> (256 - bits)
        == 0
    )
    ws.send(
        json.dumps(
            {
                "event": "challengeResponse",
                "token": nonce,
                "method": "hashcash",
                "id": challenge["id"],
            }
        )
    )
    ws.send(send_event(conversation_id, "prove work"))
    assert read_until(ws, "done")[-1]["event"] == "done"
    ws.close()


def test_copilot_service_unavailable_error(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:error-unavailable]"))
    event = json.loads(ws.recv())
    ws.close()
    assert (
        event["event"] == "error" and event["errorCode"] == "chat-service-unavailable"
    )


def test_stop_closes_open_sockets_and_joins():
    sb = Sandbox().start()
    ws = open_copilot(sb)
    sb.stop()
    for _ in range(5):  # a `connected` event may still be ahead of the close frame
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1001
    assert sb.stats()["open"] == 0


def test_copilot_cloudflare_challenge_is_never_satisfied(sandbox):
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), "[sandbox:cloudflare]"))
    challenge = json.loads(ws.recv())
    response = {
        "event": "challengeResponse",
        "token": "turnstile",
        "id": challenge["id"],
    }
    ws.send(json.dumps({**response, "method": "cloudflare"}))
    assert challenge["method"] == "cloudflare"
    assert json.loads(ws.recv()) == {"event": "error", "errorCode": "invalid-event"}
    ws.close()


def test_copilot_drop_cuts_the_answer_short(sandbox):
    prompt = "[sandbox:drop]"
    ws = open_copilot(sandbox)
    ws.send(send_event(copilot_conversation(sandbox), prompt))
    texts = []
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        for _ in range(100):
            event = json.loads(ws.recv())
            texts += [event["text"]] if event["event"] == "appendText" else []
    assert answer_for(prompt).startswith("".join(texts))
    assert "".join(texts) != answer_for(prompt)


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
