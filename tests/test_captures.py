"""Real ChatHub traffic, replayed over a loopback websocket into the real client.

The frames in tests/captures/*.chathub.jsonl were captured from Bing by public
projects (tests/captures/README.md says where). Each is replayed three ways: one
record per websocket message, all records in one message, and every record split
across messages at awkward byte offsets (the original bingo lost answer tails there).
The expected answer is read from the capture's own final, independently of bingo.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from bingo import create_app, errors
from bingo.upstream import open_turn
from bingo.upstream.events import Delta, Finish
from tests.conftest import with_settings
from tests.helpers import read_turn, turn_request, websocket_server

CAPTURES = Path(__file__).resolve().parent / "captures"
RS = "\x1e"


def load(name: str) -> list[dict]:
    lines = (CAPTURES / f"{name}.chathub.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def capture_answer(records: list[dict]) -> str:
    """The answer a capture's final holds: its last bot message that is not progress."""
    final = next(r for r in records if r.get("type") == 2)
    answers = [m for m in final["item"]["messages"] if m.get("author") == "bot" and not m.get("messageType")]
    return answers[-1]["text"]


def success_final(text: str) -> dict:
    """A minimal final for captures that hold only updates."""
    message = {"author": "bot", "text": text, "messageId": "final-answer", "contentOrigin": "DeepLeo"}
    return {"type": 2, "invocationId": "0", "item": {"messages": [message], "result": {"value": "Success"}}}


class Replay:
    """A loopback ChatHub: acks the handshake, waits for the call, plays the records."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.framing = "one-per-message"
        self.closed = threading.Event()

    def handle(self, conn) -> None:
        try:
            buffer = ""
            while '"type":4' not in buffer:  # handshake, ping, then the chat call
                buffer += conn.recv(timeout=5)
                if '{"protocol":"json","version":1}' + RS in buffer and "acked" not in self.__dict__:
                    self.acked = True
                    conn.send("{}" + RS)
            for message in self.messages():
                conn.send(message)
            for _ in range(20):  # until the client closes; bounded by recv's timeout
                conn.recv(timeout=5)
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            self.closed.set()

    def messages(self) -> list[str]:
        wire = [json.dumps(r, ensure_ascii=False) + RS for r in self.records + [{"type": 3, "invocationId": "0"}]]
        if self.framing == "one-message":
            return ["".join(wire)]
        if self.framing == "split":
            joined = "".join(wire)
            cuts = list(range(0, len(joined), 7)) + [len(joined)]  # cuts inside records and inside RS runs
            return [joined[a:b] for a, b in zip(cuts, cuts[1:])]
        return wire


@pytest.fixture()
def replay():
    script = Replay()
    with websocket_server(script.handle) as port:
        script.url = f"ws://127.0.0.1:{port}/sydney/ChatHub"
        yield script


@pytest.fixture()
def replay_settings(settings, replay):
    """Conversation create from the sandbox, the hub from the replay server."""
    return with_settings(settings, chathub_url=replay.url)


def ask(settings) -> list:
    return read_turn(open_turn(settings, turn_request("Creative", "replayed")))


FRAMINGS = pytest.mark.parametrize("framing", ["one-per-message", "one-message", "split"])
SUCCESS = [
    "emacs-aichat-2023-11-linked-list",
    "emacs-aichat-2023-03-image-prompt",
    "reedgegpt-2024-02-generate-image",
    "bilichat-2023-04-column-summary",
]


@FRAMINGS
@pytest.mark.parametrize("name", SUCCESS)
def test_capture_answer_is_exactly_the_finals(replay, replay_settings, name, framing):
    replay.records, replay.framing = load(name), framing
    events = ask(replay_settings)
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text == capture_answer(replay.records)
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"
    assert replay.closed.wait(2)


def test_bilichat_answer_is_not_result_message(replay, replay_settings):
    """result.message there is the search query, not the answer."""
    replay.records = load("bilichat-2023-04-column-summary")
    events = ask(replay_settings)
    final = replay.records[-1]["item"]
    assert final["result"]["message"] == "bilibili专栏"
    assert "".join(e.text for e in events if isinstance(e, Delta)).startswith("## 概述")
    assert [s.url for s in events[-1].sources][:1] == ["https://www.bilibili.com/read/cv11396367"]
    assert len(events[-1].suggestions) == 3


def test_linked_list_sources_become_footnotes_through_the_gateway(replay, replay_settings):
    replay.records = load("emacs-aichat-2023-11-linked-list")
    client = create_app(replay_settings).test_client()
    body = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "replayed"}]}).get_json()
    content = body["choices"][0]["message"]["content"]
    answer = capture_answer(replay.records)
    assert content.startswith(answer.replace("[^1^]", "[^1]").replace("[^2^]", "[^2]").replace("[^3^]", "[^3]"))
    assert content.endswith(
        # The answer cites [^2^] and [^3^] only: source 1 gets no definition.
        "\n\n[^2]: [Java LinkedList | 菜鸟教程](https://www.runoob.com/java/java-linkedlist.html)"
        "\n[^3]: [C++程序 寻找链表长度|极客笔记](https://bing.com/search?q=%e5%a6%82%e4%bd%95%e5%88%a4%e6%96%ad%e9%93%be%e8%a1%a8%e7%9a%84%e9%95%bf%e5%ba%a6)"
    )


@FRAMINGS
def test_first_token_update_streams_before_the_final(replay, replay_settings, framing):
    update = load("beehive-2023-05-first-token-update")
    replay.records, replay.framing = update + [success_final("你好")], framing
    events = ask(replay_settings)
    assert [e.text for e in events if isinstance(e, Delta)] == ["你", "好"]


def test_update_without_messages_is_harmless(replay, replay_settings):
    replay.records = load("beehive-2023-05-throttling-update") + [success_final("Fine.")]
    events = ask(replay_settings)
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "Fine."


@FRAMINGS
@pytest.mark.parametrize(
    "name, error, said",
    [
        ("edgegpt-issue145-2023-03-throttled", errors.UpstreamThrottled, "Request is throttled."),
        ("reedgegpt-issue158-2024-06-captcha", errors.CaptchaRequired, "User needs to solve CAPTCHA to continue."),
        ("beehive-2023-05-invalid-request", errors.UpstreamProtocolError, "with 8 messages already exists."),
        ("beehive-2023-05-invalid-session", errors.UpstreamError, "Conversations expire after 06:00:00."),
        ("node-chatgpt-api-issue90-2023-02-invalid-session", errors.UpstreamError, "doesn't exist or has expired."),
    ],
)
def test_error_finals_map_to_typed_errors_with_bings_words(replay, replay_settings, name, error, said, framing):
    replay.records, replay.framing = load(name), framing
    with pytest.raises(error) as raised:
        ask(replay_settings)
    assert type(raised.value) is error
    assert said in raised.value.message
    assert replay.closed.wait(2)


def test_every_chathub_capture_is_replayed():
    names = {p.name.removesuffix(".chathub.jsonl") for p in CAPTURES.glob("*.chathub.jsonl")}
    covered = set(SUCCESS) | {
        "beehive-2023-05-first-token-update", "beehive-2023-05-throttling-update",
        "edgegpt-issue145-2023-03-throttled", "reedgegpt-issue158-2024-06-captcha",
        "beehive-2023-05-invalid-request", "beehive-2023-05-invalid-session",
        "node-chatgpt-api-issue90-2023-02-invalid-session",
    }
    assert names == covered


@pytest.mark.parametrize(
    "record",
    [
        {"type": 1, "target": "update", "arguments": {"messages": "not a list"}},
        {"type": 1, "target": "update", "arguments": []},
        {"type": 1, "target": "update", "arguments": ["text"]},
        {"type": 1, "target": "update", "arguments": [{"messages": [5, "x", None]}]},
    ],
    ids=["arguments-object", "arguments-empty", "argument-string", "messages-junk"],
)
def test_malformed_updates_are_skipped(replay, replay_settings, record):
    replay.records = [record, success_final("Still fine.")]
    events = ask(replay_settings)
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "Still fine."


@pytest.mark.parametrize("item", [[], "x", {"result": "Throttled"}, {"result": {"value": 7}}], ids=["list", "string", "result-string", "value-number"])
def test_malformed_finals_fail_as_upstream_errors(replay, replay_settings, item):
    replay.records = [{"type": 2, "invocationId": "0", "item": item}]
    with pytest.raises(errors.UpstreamError):
        ask(replay_settings)
