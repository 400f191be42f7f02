"""The engine holds every bound whatever the upstream does (hostile upstreams on loopback).

Each test runs the real client against a real loopback server that misbehaves in one
way: pings without end, a 101 trickled a byte at a time, a record without its
separator, an emoji split across frames, a redirect to another origin.
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from bingo import create_app, errors
from bingo.sandbox import answer_for, copilot_answer_for
from bingo.upstream import open_turn
from bingo.upstream.chathub import signalr
from bingo.upstream.events import Delta, Finish
from bingo.watch import SocketWatch as _SocketWatch
from tests.conftest import with_settings
from tests.helpers import content_of, deltas, read_sse, read_turn, turn_request, websocket_server


class SocketWatch(_SocketWatch):
    """The gateway's own client watch over one end of a socketpair: closing the other
    end is the client leaving."""

    def __init__(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        super().__init__(self.ours, http11=True)


# -- ping floods: the total deadline and the client watch hold on every frame --------------


def test_ping_flood_cannot_outlive_the_total_timeout(settings, sandbox):
    bounded = with_settings(settings, total_timeout=1.0, idle_timeout=5.0)
    started = time.monotonic()
    with pytest.raises(errors.UpstreamTimeout, match="BINGO_TOTAL_TIMEOUT"):
        read_turn(open_turn(bounded, turn_request("copilot", "flood [sandbox:ping-flood]")))
    assert time.monotonic() - started < 2.0
    assert sandbox.wait_idle(2.0), "the flooding socket is closed"


def test_client_leaving_during_a_ping_flood_ends_the_turn_at_once(settings, sandbox):
    watch = SocketWatch()
    turn = open_turn(with_settings(settings, idle_timeout=30.0, total_timeout=30.0),
                     turn_request("copilot", "flood [sandbox:ping-flood]", watch=watch))
    threading.Timer(0.3, watch.theirs.close).start()
    started = time.monotonic()
    with pytest.raises(errors.ClientDisconnected):
        read_turn(turn)
    assert time.monotonic() - started < 1.0
    assert sandbox.wait_idle(2.0)


def test_ping_flood_still_gets_keepalives_to_the_client(settings, sandbox):
    """Upstream frames the client never sees do not reset the client's keep-alive clock."""
    app = create_app(with_settings(settings, keepalive_seconds=0.3, total_timeout=1.6, idle_timeout=5.0))
    body = app.test_client().post("/v1/chat/completions", json={
        "model": "copilot", "stream": True, "messages": [{"role": "user", "content": "[sandbox:ping-flood]"}],
    }).get_data(as_text=True)
    assert body.count(": keep-alive\n\n") >= 4  # ~1.6 s of silence at a 0.3 s cadence
    assert read_sse(body)[-1]["error"]["code"] == "upstream_timeout"


# -- the connect deadline is a wall-clock bound ------------------------------------------------


def trickling_server(reply: bytes, every: float):
    """A TCP server that reads a request head, then sends `reply` one byte per `every` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in reply:
                if done.wait(every):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    return listener, done


def test_a_trickled_101_cannot_hold_the_thread_past_the_connect_timeout(settings, sandbox):
    reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + b"X-Pad: y\r\n" * 50
    assert_cut_at_one_second(reply, lambda port: with_settings(
        settings, chathub_url=f"ws://127.0.0.1:{port}/sydney/ChatHub", connect_timeout=1.0,
    ), "Creative", "BINGO_CONNECT_TIMEOUT")


def assert_cut_at_one_second(reply: bytes, settings_for, model: str, match: str) -> None:
    """A server trickling `reply` a byte every 0.2 s; the turn must fail at the 1 s bound."""
    listener, done = trickling_server(reply, 0.2)
    try:
        slow = settings_for(listener.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(errors.UpstreamTimeout, match=match):
            open_turn(slow, turn_request(model, "trickle"))
        assert time.monotonic() - started < 2.0, "a per-read timeout would wait out every byte"
    finally:
        done.set()
        listener.close()


def test_a_trickled_rest_reply_cannot_hold_the_thread_past_the_connect_timeout(settings, sandbox):
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: y\r\n" * 50
    assert_cut_at_one_second(reply, lambda port: with_settings(
        settings, copilot_url=f"http://127.0.0.1:{port}", connect_timeout=1.0,
    ), "copilot", "timed out after 1 s")
    # The pool is not poisoned: the next create, to the sandbox, works.
    assert deltas(read_turn(open_turn(settings, turn_request("copilot", "after")))) == copilot_answer_for("after").text


def test_no_connected_within_the_connect_timeout_is_a_504(settings, sandbox):
    sandbox.queue_fault("no-connected")
    client = create_app(with_settings(settings, connect_timeout=0.5)).test_client()
    response = client.post("/v1/chat/completions", json={"model": "copilot", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "upstream_timeout"
    assert "BINGO_CONNECT_TIMEOUT" in response.get_json()["error"]["message"]


# -- records and answers have caps ---------------------------------------------------------------


def test_a_record_without_its_separator_is_refused_once_over_the_cap(monkeypatch):
    monkeypatch.setattr(signalr, "MAX_RECORD_CHARS", 1000)
    buffer = signalr.RecordBuffer()
    for _ in range(9):
        assert buffer.feed("x" * 100) == []
    with pytest.raises(errors.UpstreamProtocolError, match="without its separator"):
        buffer.feed("x" * 200)


def test_a_record_split_over_many_messages_is_joined_once():
    buffer = signalr.RecordBuffer()
    record = signalr.encode_record({"type": 6, "pad": "y" * 5000})
    pieces = [record[i:i + 7] for i in range(0, len(record), 7)]
    found = [r for piece in pieces for r in buffer.feed(piece)]
    assert found == [{"type": 6, "pad": "y" * 5000}] and not buffer.pending


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_an_answer_over_max_answer_chars_ends_with_finish_reason_length(settings, sandbox, stream):
    prompt = "long [sandbox:chars=4000]"
    app = create_app(with_settings(settings, max_answer_chars=30))
    response = app.test_client().post("/v1/chat/completions", json={
        "model": "Creative", "stream": stream, "messages": [{"role": "user", "content": prompt}],
    })
    if stream:
        events = read_sse(response.get_data(as_text=True))
        text, finish = content_of(events), [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"]][-1]
    else:
        choice = response.get_json()["choices"][0]
        text, finish = choice["message"]["content"], choice["finish_reason"]
    assert (text, finish) == (answer_for(prompt)[:30], "length")
    assert sandbox.wait_idle(2.0), "the upstream turn is closed at once"


# -- text hygiene: surrogate halves across frames ------------------------------------------------


def hub(*records: dict):
    """A ChatHub-speaking websocket handler: ack the handshake, read the call, send `records`.

    json.dumps escapes lone surrogate halves (\\ud83d), as a real server's encoder would.
    """

    def handle(conn) -> None:
        conn.recv(timeout=5)  # the handshake
        conn.send("{}" + signalr.RS)
        conn.recv(timeout=5)  # the ping
        conn.recv(timeout=5)  # the chat invocation
        for record in records:
            conn.send(json.dumps(record) + signalr.RS)
        try:
            conn.recv(timeout=5)  # until the client closes
        except Exception:
            pass

    return handle


def bing_answer(*texts: str) -> list[dict]:
    """Cumulative updates of `texts` joined, then the final with the whole text."""
    updates = [{"type": 1, "target": "update", "arguments": [{"messages": [
        {"author": "bot", "text": "".join(texts[: i + 1]), "messageId": "a"}]}]} for i in range(len(texts))]
    final = {"type": 2, "invocationId": "0", "item": {
        "messages": [{"author": "bot", "text": "".join(texts), "messageId": "a"}], "result": {"value": "Success"}}}
    return [*updates, final]


@pytest.mark.parametrize(
    "texts, expected",
    [
        (["smile \ud83d", "\ude00 done"], "smile \U0001F600 done"),
        (["lone \ud83d", " end"], "lone \ufffd end"),
        (["\ude00 low first"], "\ufffd low first"),
        (["tail \ud83d"], "tail \ufffd"),
    ],
    ids=["split-pair", "lone-high", "lone-low", "high-at-the-end"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
def test_surrogate_halves_across_frames_become_text(settings, sandbox, texts, expected, stream):
    with websocket_server(hub(*bing_answer(*texts))) as port:
        app = create_app(with_settings(settings, chathub_url=f"ws://127.0.0.1:{port}/sydney/ChatHub"))
        response = app.test_client().post("/v1/chat/completions", json={
            "model": "Creative", "stream": stream, "messages": [{"role": "user", "content": "emoji"}],
        })
        assert response.status_code == 200
        if stream:
            events = read_sse(response.get_data(as_text=True))
            assert events[-1] == "[DONE]"
            assert content_of(events) == expected
        else:
            assert response.get_json()["choices"][0]["message"]["content"] == expected


@pytest.mark.parametrize(
    "texts, expected",
    [
        (["smile \ud83d", "\ude00 done"], "smile \U0001F600 done"),
        (["a\ud83d", "\ud83d", "\ude00b"], "a\ufffd\U0001F600b"),
        (["\ud83d"], "\ufffd"),
    ],
    ids=["pair", "two-highs", "only-a-half"],
)
def test_engine_text_joins_surrogate_halves(texts, expected):
    from bingo.upstream.engine import _Text

    joiner = _Text()
    out = "".join(joiner.feed(t) for t in texts) + joiner.flush()
    assert out == expected


# -- redirects are never followed -----------------------------------------------------------------


def redirecting_server(location: str):
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_websocket_redirect_is_not_followed_and_says_where_it_pointed(settings, sandbox):
    target = socket.create_server(("127.0.0.1", 0))
    target.settimeout(0.5)
    elsewhere = f"ws://127.0.0.1:{target.getsockname()[1]}/steal?token=abc"
    listener = redirecting_server(elsewhere)
    try:
        hub_url = f"ws://127.0.0.1:{listener.getsockname()[1]}/sydney/ChatHub"
        with pytest.raises(errors.UpstreamError) as raised:
            open_turn(with_settings(settings, chathub_url=hub_url), turn_request("Creative", "hi"))
        assert raised.value.status == 502
        assert f"redirected to ws://127.0.0.1:{target.getsockname()[1]}/steal;" in raised.value.message
        assert "token" not in raised.value.message
        with pytest.raises(socket.timeout):
            target.accept()  # nobody went there, cookie or not
    finally:
        listener.close()
        target.close()


def test_a_rest_redirect_is_not_followed(settings, sandbox):
    sandbox.queue_fault("create-redirect")
    client = create_app(settings).test_client()
    response = client.post("/v1/chat/completions", json={"model": "copilot", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502
    assert response.get_json()["error"]["message"].startswith(
        "Copilot's conversation create redirected to http://127.0.0.2:1/elsewhere; redirects are not followed."
    )


def test_turn_events_are_exact_and_end_with_one_finish(settings, sandbox):
    events = read_turn(open_turn(settings, turn_request("Creative", "plain")))
    assert isinstance(events[-1], Finish) and [type(e) for e in events].count(Finish) == 1
    assert deltas(events) and all(not isinstance(e, Delta) or e.text for e in events)


# -- the watchdog ---------------------------------------------------------------------------------


def test_watchdog_cuts_a_blocked_read_at_its_deadline_and_not_a_cancelled_one():
    from bingo.upstream.watchdog import Watchdog

    dog = Watchdog()
    cut_a, keep_a = socket.socketpair()
    cut_b, keep_b = socket.socketpair()
    try:
        dog.arm(time.monotonic() + 60, lambda: cut_b)  # a later deadline first, then an earlier one
        guard = dog.arm(time.monotonic() + 0.2, lambda: cut_a)
        dog.arm(time.monotonic() + 0.1, lambda: cut_b).cancel()
        cut_a.settimeout(5)
        started = time.monotonic()
        assert cut_a.recv(1) == b""  # shut down under the blocked read
        assert 0.15 < time.monotonic() - started < 2 and guard.fired
        keep_b.sendall(b"x")
        time.sleep(0.2)
        assert cut_b.recv(1) == b"x", "the cancelled guard did not fire"
    finally:
        for sock in (cut_a, keep_a, cut_b, keep_b):
            sock.close()


def test_a_guard_cancelled_while_it_fires_returns_only_once_its_socket_is_cut():
    """cancel() waits for a cut in progress: once it returns, the socket was cut (and
    `fired` says so) or never will be, so a reply that ended just then cannot have its
    connection cut after it went back to a pool."""
    from bingo.upstream.watchdog import Watchdog

    dog = Watchdog()
    cut, peer = socket.socketpair()
    choosing = threading.Event()

    def source() -> socket.socket:
        choosing.set()
        time.sleep(0.2)  # the watchdog is in the middle of its cut
        return cut

    try:
        guard = dog.arm(time.monotonic(), source)
        assert choosing.wait(5)
        guard.cancel()
        assert guard.fired
        cut.setblocking(False)
        assert cut.recv(1) == b"", "the cut had not happened when cancel() returned"
    finally:
        cut.close()
        peer.close()


def test_watchdog_sheds_cancelled_guards():
    from bingo.upstream.watchdog import Watchdog

    dog = Watchdog()
    for _ in range(1024):
        dog.arm(time.monotonic() + 600, lambda: None).cancel()
    assert len(dog._heap) < 300
