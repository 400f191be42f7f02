"""The real Copilot client against the local upstream, and captured Copilot frames.

The sandbox tests go through the whole client over loopback (REST create, websocket,
events). The captures in shared/captures/*.copilot.jsonl are replayed over a real
loopback websocket too, by a small replay server below: the sandbox plays its own
script and cannot play a capture's frames verbatim.
"""
from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.exceptions import ConnectionClosed

from bingo import create_app, errors
from bingo.config import Settings
from bingo.copilot import (
    CONSENTS,
    SET_OPTIONS,
    CopilotTurn,
    build_send,
    chat_url,
    open_copilot_turn,
    render_prompt,
)
from bingo.copilot_events import CopilotTracker
from bingo.events import Delta, Finish, Progress, Source, TurnRequest
from bingo.models import resolve_model
from bingo.prompt import Prompt
from bingo.transport import open_websocket
from bingo.sandbox import answer_for, source_for
from bingo.upstream import open_turn
from tests.conftest import with_settings
from tests.helpers import content_of, deltas, finish, read_sse, read_turn, websocket_server

CAPTURES = Path(__file__).resolve().parent / "captures"
CAPTURE_FILES = sorted(CAPTURES.glob("*.copilot.jsonl"))
SEND = build_send("conv-id", TurnRequest(resolve_model("copilot"), Prompt("Hi", "")))


def load_capture(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def capture(stem: str) -> list[dict]:
    return load_capture(CAPTURES / f"{stem}.copilot.jsonl")


def ask(settings: Settings, text: str, model: str = "copilot", context: str = "") -> list:
    return read_turn(open_copilot_turn(settings, TurnRequest(resolve_model(model), Prompt(text, context))))


# A replay server: the captured frames, over a real loopback websocket.


class Replay:
    """Plays `frames` after the client's opening events; waits for the re-sent
    `send` after each challenge; then keeps the socket open, as Copilot does."""

    def __init__(self) -> None:
        self.frames: list[dict | str] = []  # a str goes out verbatim
        self.received: list[dict] = []
        self.closed_by_client = threading.Event()

    def handle(self, conn) -> None:
        try:
            self._expect(conn, 3)  # setOptions, reportLocalConsents, send
            for frame in self.frames:
                conn.send(frame if isinstance(frame, str) else json.dumps(frame))
                if isinstance(frame, dict) and frame.get("event") == "challenge" and frame is not self.frames[-1]:
                    self._expect(conn, 2)  # challengeResponse, the re-sent send
            self._expect(conn, 100)  # read until the client closes (bounded by recv's timeout)
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            self.closed_by_client.set()

    def _expect(self, conn, count: int) -> None:
        for _ in range(count):
            self.received.append(json.loads(conn.recv(timeout=5)))


@pytest.fixture()
def replay():
    script = Replay()
    with websocket_server(script.handle) as port:
        script.url = f"ws://127.0.0.1:{port}/c/api/chat"
        yield script


def replay_turn(replay: Replay, settings: Settings, frames: list[dict]) -> CopilotTurn:
    """A CopilotTurn on a socket to the replay server, opened and started as the client does."""
    replay.frames = frames
    ws = open_websocket(settings, replay.url, {}, "replay")
    turn = CopilotTurn(ws, settings, TurnRequest(resolve_model("copilot"), Prompt("Hi", "")), dict(SEND))
    turn.start()
    return turn


def until_done(frames: list[dict]) -> list[dict]:
    """The frames the client reads: everything up to and including `done`."""
    ends = [i for i, f in enumerate(frames) if f.get("event") == "done"]
    return frames[: ends[0] + 1] if ends else frames


def test_every_copilot_capture_has_a_replay_test():
    covered = {"ms-copilot-gateway-2025-05-test-message", "savevsgames-2025-11-palindrome-tail",
               "gpt4free-issue3182-2025-09-challenge", "windows-copilot-api-issue13-2026-06-challenge-silent",
               "windows-copilot-api-issue8-2026-06-challenge-invalid-event"}
    assert CAPTURE_FILES, f"no captures under {CAPTURES}"
    assert {p.name.removesuffix(".copilot.jsonl") for p in CAPTURE_FILES} == covered


def test_replay_ms_copilot_gateway_answer(replay, settings):
    frames = capture("ms-copilot-gateway-2025-05-test-message")
    events = read_turn(replay_turn(replay, settings, frames))
    # ids 4-6 were elided by the capture's author, so this is the text as stored.
    assert deltas(events) == "Received! TestFeel free.\n"
    # suggestedFollowups arrives after `done`, and the turn ends at `done`.
    assert finish(events) == Finish("stop", (), (), "")
    assert replay.closed_by_client.wait(3), "the client closes the socket Copilot keeps open"
    assert replay.received == [SET_OPTIONS, CONSENTS, SEND]


def test_replay_savevsgames_tail_without_ids(replay, settings):
    events = read_turn(replay_turn(replay, settings, capture("savevsgames-2025-11-palindrome-tail")))
    assert deltas(events) == ". Want to try checking another one?"
    assert finish(events).reason == "stop"
    assert replay.closed_by_client.wait(3)


@pytest.mark.parametrize(
    "stem, challenge_id",
    [("gpt4free-issue3182-2025-09-challenge", "1"),
     ("windows-copilot-api-issue13-2026-06-challenge-silent", "0.0002")],
    ids=["gpt4free-3182", "windows-copilot-api-13"],
)
def test_replay_empty_challenge_is_acked_with_its_id_verbatim(replay, settings, stem, challenge_id):
    answer = capture("savevsgames-2025-11-palindrome-tail")
    events = read_turn(replay_turn(replay, settings, capture(stem) + answer))
    assert deltas(events) == ". Want to try checking another one?"
    response = {"event": "challengeResponse", "token": "", "method": None, "id": challenge_id}
    assert replay.received == [SET_OPTIONS, CONSENTS, SEND, response, SEND]
    assert isinstance(replay.received[3]["id"], str), "an opaque string, never a number"


def test_replay_challenge_then_invalid_event_is_a_protocol_error(replay, settings):
    frames = capture("windows-copilot-api-issue8-2026-06-challenge-invalid-event")
    turn = replay_turn(replay, settings, frames)
    with pytest.raises(errors.UpstreamProtocolError) as info:
        read_turn(turn)
    assert "invalid-event" in info.value.message
    assert replay.received[3] == {"event": "challengeResponse", "token": "", "method": None, "id": "0.0001"}


def test_replay_challenge_then_silence_times_out(replay, settings):
    frames = capture("windows-copilot-api-issue13-2026-06-challenge-silent")
    turn = replay_turn(replay, with_settings(settings, idle_timeout=0.5), frames)
    with pytest.raises(errors.UpstreamTimeout) as info:
        read_turn(turn)
    assert "BINGO_IDLE_TIMEOUT" in info.value.message
    assert replay.received[3:] == [{"event": "challengeResponse", "token": "", "method": None, "id": "0.0002"}, SEND]


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name.split(".")[0])
def test_tracker_reads_every_capture_without_breaking(path):
    tracker = CopilotTracker(SEND)
    for frame in until_done(load_capture(path)):
        try:
            tracker.on_event(frame)
        except errors.UpstreamProtocolError:
            assert frame == {"event": "error", "errorCode": "invalid-event"}


def test_replay_server_ping_is_answered_with_pong(replay, settings):
    frames = [{"event": "ping"}, {"event": "appendText", "text": "Hi"}, {"event": "done"}]
    events = read_turn(replay_turn(replay, settings, frames))
    assert deltas(events) == "Hi"
    assert replay.closed_by_client.wait(3)
    assert replay.received == [SET_OPTIONS, CONSENTS, SEND, {"event": "pong"}]


@pytest.mark.parametrize("message", ["not json", "[1, 2]", '"event"'], ids=["text", "array", "string"])
def test_replay_a_message_that_is_not_an_event_is_a_protocol_error(replay, settings, message):
    turn = replay_turn(replay, settings, [message])
    with pytest.raises(errors.UpstreamProtocolError):
        read_turn(turn)
    assert replay.closed_by_client.wait(3)


# The sandbox: the whole client, REST leg included, over loopback.


def test_turn_streams_the_exact_answer_with_its_citation(settings, sandbox):
    events = ask(settings, "Hello there")
    assert deltas(events) == answer_for("Hello there")
    source = source_for("Hello there")
    assert finish(events) == Finish("stop", (Source(source.title, source.url),), (), "")
    assert sum(isinstance(e, Delta) for e in events) > 3, "appendText events are deltas"
    assert sandbox.wait_idle(2.0)


def test_turn_sends_options_consents_then_the_question(settings, sandbox):
    ask(settings, "What is a linked list?")
    sent = sandbox.received[-1]
    assert sent[:2] == [SET_OPTIONS, CONSENTS]
    question = sent[2]
    assert question == {
        "event": "send", "conversationId": question["conversationId"],
        "content": [{"type": "text", "text": "What is a linked list?"}], "mode": "chat", "context": {},
    }
    assert len(question["conversationId"]) == 21, "the id the create answered"
    assert len(sent) == 3, "no challenge: nothing else is sent"


@pytest.mark.parametrize(
    "model, mode", [("copilot", "chat"), ("copilot-think-deeper", "reasoning"), ("copilot-smart", "smart"),
                    ("Copilot-Smart", "smart")],
    ids=["copilot", "think-deeper", "smart", "case-insensitive"],
)
def test_model_picks_the_mode(settings, sandbox, model, mode):
    events = ask(settings, "Which mode?", model=model)
    assert sandbox.received[-1][2]["mode"] == mode
    assert deltas(events) == answer_for("Which mode?")


def test_think_deeper_reasoning_is_progress_not_answer(settings, sandbox):
    events = ask(settings, "Think about it", model="copilot-think-deeper")
    thoughts = [e for e in events if isinstance(e, Progress) and e.kind == "chainOfThought"]
    assert thoughts and all(e.text not in deltas(events) for e in thoughts)
    assert deltas(events) == answer_for("Think about it")


def test_history_is_rendered_into_the_first_send(settings, sandbox):
    context = "[system](#additional_instructions)\nBe brief.\n\n[user](#message)\nHi\n\n[assistant](#message)\nHello!\n"
    events = ask(settings, "And now?", context=context)
    rendered = context + "\n[user](#message)\nAnd now?"
    assert sandbox.received[-1][2]["content"] == [{"type": "text", "text": rendered}]
    assert deltas(events) == answer_for(rendered)


def test_upgrade_url_and_headers_without_a_token(settings, sandbox):
    ask(with_settings(settings, copilot_cookie="_C_Auth=cookie-value"), "hi")
    upgrade = sandbox.upgrades[-1]
    assert upgrade["path"] == "/c/api/chat"
    assert set(upgrade["query"]) == {"api-version", "clientSessionId"} and upgrade["query"]["api-version"] == "2"
    assert uuid.UUID(upgrade["query"]["clientSessionId"]).version == 4
    assert upgrade["headers"]["Cookie"] == "_C_Auth=cookie-value"
    create = sandbox.requests[-1]
    assert (create["method"], create["path"]) == ("POST", "/c/api/conversations")
    assert upgrade["headers"]["Origin"] == create["headers"]["Origin"] == "https://copilot.microsoft.com"
    assert create["headers"]["Cookie"] == "_C_Auth=cookie-value"
    assert "Authorization" not in create["headers"]


def test_access_token_goes_in_the_query_and_as_bearer(settings, sandbox):
    token = "eyJ0+x/y=z"
    ask(with_settings(settings, copilot_access_token=token), "hi")
    assert sandbox.upgrades[-1]["query"]["accessToken"] == token, "URL-encoded: + survives"
    assert sandbox.requests[-1]["headers"]["Authorization"] == f"Bearer {token}"


def test_no_cookie_configured_sends_no_cookie(settings, sandbox):
    ask(settings, "hi")
    assert "Cookie" not in sandbox.requests[-1]["headers"]
    assert "Cookie" not in sandbox.upgrades[-1]["headers"]


def test_create_falls_back_to_start_when_conversations_is_gone(settings, sandbox):
    sandbox.queue_fault("create-404")
    events = ask(settings, "fallback")
    assert deltas(events) == answer_for("fallback")
    assert [r["path"] for r in sandbox.requests[-2:]] == ["/c/api/conversations", "/c/api/start"]
    assert sandbox.received[-1][2]["conversationId"], "currentConversationId was used"


@pytest.mark.parametrize(
    "faults, error, status",
    [
        (["create-401"], errors.UpstreamRejected, 502),
        (["create-500"], errors.UpstreamUnavailable, 502),
        (["create-404", "create-404"], errors.UpstreamError, 502),
        (["create-empty"], errors.UpstreamBlocked, 502),
        (["create-nonjson"], errors.UpstreamBlocked, 502),
        (["ws-403"], errors.UpstreamRejected, 502),
        (["ws-500"], errors.UpstreamUnavailable, 502),
        (["ws-200"], errors.UpstreamBlocked, 502),
    ],
    ids=["401", "500", "both-404", "empty", "nonjson", "ws-403", "ws-500", "ws-200"],
)
def test_opening_failures_raise_typed_errors(settings, sandbox, faults, error, status):
    for fault in faults:
        sandbox.queue_fault(fault)
    with pytest.raises(error) as raised:
        ask(with_settings(settings, copilot_cookie="_U=secret-cookie"), "fault test")
    assert type(raised.value) is error and raised.value.status == status
    assert "secret-cookie" not in raised.value.message
    assert sandbox.wait_idle(2.0)


def test_both_create_paths_missing_names_the_setting(settings, sandbox):
    sandbox.queue_fault("create-404")
    sandbox.queue_fault("create-404")
    with pytest.raises(errors.UpstreamError, match="BINGO_COPILOT_URL"):
        ask(settings, "hi")


@pytest.mark.parametrize(
    "fault, error, status, says",
    [
        ("error-unavailable", errors.UpstreamBlocked, 502, "Copilot is not available in your region."),
        ("invalid-event", errors.UpstreamProtocolError, 502, "invalid-event"),
        ("cloudflare", errors.CaptchaRequired, 503, "COPILOT_COOKIE"),
        ("silent", errors.UpstreamTimeout, 504, "BINGO_IDLE_TIMEOUT"),
        ("silent=after-text", errors.UpstreamTimeout, 504, "BINGO_IDLE_TIMEOUT"),
        ("drop", errors.UpstreamUnavailable, 502, "dropped"),
    ],
    ids=["region", "invalid-event", "cloudflare", "silent", "silent-after-text", "drop"],
)
def test_turn_faults_raise_typed_errors_and_close_the_socket(settings, sandbox, fault, error, status, says):
    sandbox.queue_fault(fault)
    with pytest.raises(error) as raised:
        ask(with_settings(settings, idle_timeout=0.5), "fault test")
    assert type(raised.value) is error and raised.value.status == status
    assert says in raised.value.message
    assert sandbox.wait_idle(2.0)


@pytest.mark.parametrize("fault", ["error-unavailable", "invalid-event", "cloudflare", "silent", "drop"])
def test_prompt_directives_work_like_queued_faults(settings, sandbox, fault):
    with pytest.raises(errors.UpstreamError):
        ask(with_settings(settings, idle_timeout=0.5), f"fault [sandbox:{fault}]")
    assert sandbox.wait_idle(2.0)


def test_region_block_message_tells_the_operator_what_to_do(settings, sandbox):
    sandbox.queue_fault("error-unavailable")
    with pytest.raises(errors.UpstreamBlocked) as raised:
        ask(settings, "hi")
    assert raised.value.code == "upstream_region_blocked"
    assert "chat-service-unavailable" in raised.value.message and "HTTPS_PROXY" in raised.value.message


def test_cloudflare_tells_the_operator_to_use_a_browser(settings, sandbox):
    sandbox.queue_fault("cloudflare")
    with pytest.raises(errors.CaptchaRequired) as raised:
        ask(settings, "hi")
    assert "open copilot.microsoft.com in a browser" in raised.value.message
    assert raised.value.headers() == {"x-should-retry": "false"}


def test_empty_challenge_is_echoed_then_the_send_repeated(settings, sandbox):
    events = ask(settings, "Prove it [sandbox:challenge]")
    assert deltas(events) == answer_for("Prove it [sandbox:challenge]")
    sent = sandbox.received[-1]
    response = sent[3]
    assert response == {"event": "challengeResponse", "token": "", "method": None, "id": response["id"]}
    assert isinstance(response["id"], str) and response["id"].startswith("0.")
    assert sent[4] == sent[2], "the held send, re-sent unchanged"
    assert len(sent) == 5


def test_hashcash_challenge_is_solved(settings, sandbox):
    sandbox.queue_fault("hashcash")
    events = ask(settings, "Work for it")
    assert deltas(events) == answer_for("Work for it"), "the sandbox checked the nonce before answering"
    response = sandbox.received[-1][3]
    assert (response["event"], response["method"]) == ("challengeResponse", "hashcash")
    assert response["token"].isdigit()
    assert sandbox.received[-1][4] == sandbox.received[-1][2]


def test_socket_stays_open_after_done_until_the_client_closes_it(settings, sandbox):
    turn = open_copilot_turn(settings, TurnRequest(resolve_model("copilot"), Prompt("done?", "")))
    try:
        events = list(turn.events())
        assert deltas(events) == answer_for("done?")
        assert not sandbox.wait_idle(0.3), "Copilot keeps the socket open after done"
    finally:
        turn.close()
    assert sandbox.wait_idle(2.0)


def test_slow_first_frame_yields_keepalive_ticks(settings, sandbox):
    prompt = "slow [sandbox:slow-first=1]"
    events = ask(with_settings(settings, keepalive_seconds=0.2, idle_timeout=5.0), prompt)
    assert events.count(None) >= 2
    assert deltas(events) == answer_for(prompt)


def test_unicode_answer_arrives_intact(settings, sandbox):
    prompt = "Unicode please [sandbox:unicode]"
    assert deltas(ask(settings, prompt)) == answer_for(prompt)


def test_the_seam_sends_copilot_models_to_copilot(settings, sandbox):
    turn = open_turn(settings, TurnRequest(resolve_model("copilot-smart"), Prompt("seam", "")))
    assert isinstance(turn, CopilotTurn)
    assert deltas(read_turn(turn)) == answer_for("seam")
    assert sandbox.upgrades[-1]["path"] == "/c/api/chat"


def test_unreachable_upstream_is_unavailable(settings):
    with pytest.raises(errors.UpstreamUnavailable):
        ask(with_settings(settings, copilot_url="http://127.0.0.1:9"), "hi")



# Through the API: the relay turns Copilot's citations into footnotes as for ChatHub.


def completion(client, stream: bool = False, prompt: str = "Hello", model: str = "copilot"):
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    return client.post("/v1/chat/completions", data=json.dumps(body), content_type="application/json")


def footnoted(prompt: str) -> str:
    source = source_for(prompt)
    return answer_for(prompt).replace("[^1^]", "[^1]") + f"\n\n[^1]: [{source.title}]({source.url})"


def test_api_non_stream_answer_has_the_citation_as_footnote(client, sandbox):
    response = completion(client)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["model"] == "copilot"
    assert body["choices"][0]["message"]["content"] == footnoted("Hello")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert sandbox.wait_idle(2.0)


def test_api_stream_answer_has_the_citation_as_footnote(client, sandbox):
    response = completion(client, stream=True, model="copilot-think-deeper")
    assert response.status_code == 200
    events = read_sse(response.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    assert content_of(events) == footnoted("Hello")
    assert sandbox.wait_idle(2.0)


@pytest.mark.parametrize(
    "prompt, status, code",
    [("[sandbox:error-unavailable]", 502, "upstream_region_blocked"),
     ("[sandbox:cloudflare]", 503, "captcha_required"),
     ("[sandbox:invalid-event]", 502, "bad_upstream_frame")],
    ids=["region", "cloudflare", "invalid-event"],
)
def test_api_errors_before_the_first_byte_are_real_statuses(client, sandbox, prompt, status, code):
    response = completion(client, stream=True, prompt=prompt)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code



def test_api_silence_is_504_before_the_first_byte_and_in_band_after(settings, sandbox):
    client = create_app(with_settings(settings, idle_timeout=0.5)).test_client()
    before = completion(client, stream=True, prompt="[sandbox:silent]")
    assert before.status_code == 504 and before.get_json()["error"]["code"] == "upstream_timeout"
    after = completion(client, stream=True, prompt="[sandbox:silent=after-text]")
    assert after.status_code == 200
    events = read_sse(after.get_data(as_text=True))
    assert content_of(events), "the text before the silence was streamed"
    assert events[-1]["error"]["code"] == "upstream_timeout"
    assert sandbox.wait_idle(2.0)


# The pure event handling, one behaviour at a time.


def feed(frames: list[dict], send: dict = SEND) -> tuple[list, list[dict]]:
    """Every event and reply the tracker makes for `frames`, stopping at `done`."""
    tracker, events, replies = CopilotTracker(send), [], []
    for frame in frames:
        step = tracker.on_event(frame)
        events += step.events
        replies += step.replies
        if step.done:
            break
    return events, replies


def text(t: str, part: str = "p1", message: str = "m1", kind: str = "appendText") -> dict:
    return {"event": kind, "messageId": message, "partId": part, "text": t}


DONE = {"event": "done", "messageId": "m1"}


def test_tracker_appends_text_and_ignores_other_messages_after_start():
    events, _ = feed([
        {"event": "received", "messageId": "user"}, {"event": "startMessage", "messageId": "m1"},
        text("Hello"), text("ignored", message="other"), text(", world"), DONE,
    ])
    assert [e for e in events if isinstance(e, Delta)] == [Delta("Hello"), Delta(", world")]
    assert finish(events) == Finish("stop", (), (), "")


@pytest.mark.parametrize(
    "frames, answer",
    [
        ([text("Hel"), text("Hello, world", kind="replaceText")], "Hello, world"),
        ([text("Hello"), text("Hello", kind="replaceText")], "Hello"),
        ([text("Hello", kind="replaceText")], "Hello"),
        ([text("One. "), text("Two", part="p2"), text("Two!", part="p2", kind="replaceText")], "One. Two!"),
    ],
    ids=["extends", "same", "first", "current-part"],
)
def test_tracker_relays_replace_text_that_extends_the_part(frames, answer):
    events, _ = feed(frames + [DONE])
    assert deltas(events) == answer
    assert finish(events).reason == "stop"


@pytest.mark.parametrize(
    "frames",
    [
        [text("Hello"), text("Sorry, I can't help.", kind="replaceText")],
        [text("One."), text("Two", part="p2"), text("Uno.", part="p1", kind="replaceText")],
    ],
    ids=["rewrite", "earlier-part"],
)
def test_tracker_ends_a_rewritten_answer_as_content_filter(frames):
    events, _ = feed(frames + [text(" more"), DONE])
    assert Progress("retraction", "Copilot rewrote its answer mid-stream") in events
    assert " more" not in deltas(events), "nothing is relayed after a rewrite"
    end = finish(events)
    assert (end.reason, end.note) == ("content_filter", "Copilot rewrote its answer mid-stream")


def test_tracker_collects_citations_in_order_once_each():
    events, _ = feed([
        text("A [^1^] B [^2^]"),
        {"event": "citation", "url": "https://a.example/", "title": "A", "iconUrl": "x"},
        {"event": "citation", "url": "https://b.example/", "title": ""},
        {"event": "citation", "url": "https://a.example/", "title": "A again"},
        {"event": "citation", "title": "no url"}, DONE,
    ])
    assert finish(events).sources == (Source("A", "https://a.example/"), Source("https://b.example/", "https://b.example/"))


def test_tracker_keeps_chain_of_thought_out_of_the_answer():
    events, _ = feed([{"event": "chainOfThought", "text": "Thinking..."}, text("Answer"), DONE])
    assert Progress("chainOfThought", "Thinking...") in events
    assert deltas(events) == "Answer"


def test_tracker_passes_suggestions_that_come_before_done():
    events, _ = feed([text("A"), {"event": "suggestedFollowups", "suggestions": ["One?", {"text": "Two?"}, 3]}, DONE])
    assert finish(events).suggestions == ("One?", "Two?")


@pytest.mark.parametrize(
    "frames",
    [[DONE], [{"event": "chainOfThought", "text": "hmm"}, DONE],
     [{"event": "startMessage", "messageId": "m1"}, text("x", message="other"), DONE]],
    ids=["nothing", "only-thoughts", "only-another-message"],
)
def test_tracker_refuses_a_done_without_answer_text(frames):
    with pytest.raises(errors.UpstreamError) as info:
        feed(frames)
    assert type(info.value) is errors.UpstreamError and info.value.status == 502
    assert "without an answer" in info.value.message


@pytest.mark.parametrize(
    "frame",
    [{"event": e} for e in ("connected", "received", "startMessage", "partCompleted", "titleUpdate", "pong",
                            "generatingImage", "somethingNew")] + [{"no": "event"}],
    ids=lambda f: f.get("event", "no-event"),
)
def test_tracker_passes_over_bookkeeping_events(frame):
    events, replies = feed([text("A"), frame, DONE])
    assert deltas(events) == "A" and replies == []


def test_tracker_answers_ping_with_pong():
    _, replies = feed([{"event": "ping"}, text("A"), DONE])
    assert replies == [{"event": "pong"}]


@pytest.mark.parametrize(
    "frame, kind, code",
    [
        ({"event": "error", "errorCode": "chat-service-unavailable", "message": "Not in your region."},
         errors.UpstreamBlocked, "upstream_region_blocked"),
        ({"event": "error", "errorCode": "invalid-event"}, errors.UpstreamProtocolError, "bad_upstream_frame"),
        ({"event": "error", "errorCode": "rate-whatever", "message": "Slow down"}, errors.UpstreamError, "upstream_error"),
        ({"event": "error"}, errors.UpstreamError, "upstream_error"),
    ],
    ids=["unavailable", "invalid-event", "other", "no-code"],
)
def test_tracker_maps_error_events(frame, kind, code):
    with pytest.raises(errors.BingoError) as info:
        feed([frame])
    assert type(info.value) is kind and info.value.code == code and info.value.status == 502
    if frame.get("message"):
        assert f"(Copilot said: {frame['message']})" in info.value.message


def test_tracker_region_block_tells_the_operator_what_to_do():
    with pytest.raises(errors.UpstreamBlocked) as info:
        feed([{"event": "error", "errorCode": "chat-service-unavailable"}])
    assert "chat-service-unavailable" in info.value.message and "HTTPS_PROXY" in info.value.message


def test_tracker_answers_an_empty_challenge_then_resends_the_held_send():
    _, replies = feed([{"event": "challenge", "method": None, "parameter": None, "id": "0.0001"}])
    assert replies == [{"event": "challengeResponse", "token": "", "method": None, "id": "0.0001"}, SEND]
    assert list(replies[0]) == ["event", "token", "method", "id"]


def test_tracker_solves_a_hashcash_challenge():
    from bingo import hashcash

    parameter = "ab" * 32 + ":10"
    _, replies = feed([{"event": "challenge", "method": "hashcash", "parameter": parameter, "id": "7"}])
    response, resent = replies
    assert (response["event"], response["method"], response["id"], resent) == ("challengeResponse", "hashcash", "7", SEND)
    assert response["token"].isdigit() and hashcash.check(parameter, 10, response["token"])


@pytest.mark.parametrize("parameter", [None, "no-bits", "ab:99"], ids=["null", "malformed", "too-hard"])
def test_tracker_refuses_an_unreadable_hashcash(parameter):
    with pytest.raises(errors.UpstreamProtocolError):
        feed([{"event": "challenge", "method": "hashcash", "parameter": parameter, "id": "1"}])


@pytest.mark.parametrize("method", ["cloudflare", "copilot"])
def test_tracker_browser_challenges_need_the_operator(method):
    with pytest.raises(errors.CaptchaRequired) as info:
        feed([{"event": "challenge", "method": method, "parameter": "x", "id": "1"}])
    assert info.value.status == 503
    assert "copilot.microsoft.com" in info.value.message and "COPILOT_COOKIE" in info.value.message


def test_tracker_gives_up_on_endless_challenges():
    challenge = {"event": "challenge", "method": None, "parameter": None, "id": "1"}
    with pytest.raises(errors.UpstreamProtocolError):
        feed([challenge] * 4)


# URLs and the first send, pure.


def test_chat_url_is_derived_from_the_https_base():
    url = chat_url(Settings(), "5f0c7d3e-1111-4222-8333-444455556666")
    assert url == "wss://copilot.microsoft.com/c/api/chat?api-version=2&clientSessionId=5f0c7d3e-1111-4222-8333-444455556666"


def test_chat_url_keeps_host_and_port_of_an_http_base():
    url = chat_url(Settings(copilot_url="http://127.0.0.1:8765/"), "s")
    assert url == "ws://127.0.0.1:8765/c/api/chat?api-version=2&clientSessionId=s"


def test_chat_url_carries_the_access_token_url_encoded():
    token = "eyJ0+x/y=z&q ü"
    url = chat_url(Settings(copilot_access_token=token), "s")
    assert "accessToken=eyJ0%2Bx%2Fy%3Dz%26q%20%C3%BC" in url
    assert parse_qs(urlsplit(url).query)["accessToken"] == [token]


def test_render_prompt_puts_history_before_the_question():
    assert render_prompt(Prompt("Hi", "")) == "Hi"
    context = "[system](#additional_instructions)\nBe brief.\n\n[user](#message)\nEarlier\n"
    assert render_prompt(Prompt("Now?", context)) == context + "\n[user](#message)\nNow?"


def test_settings_repr_keeps_copilot_secrets_out():
    settings = Settings(copilot_cookie="_U=secret-cookie", copilot_access_token="secret-token")
    assert "secret" not in repr(settings)
