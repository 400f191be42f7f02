"""bingo's own websocket reading and upgrade, against a raw loopback hub that writes bytes.

The hub is a plain socket: it reads the upgrade and the client's frames, and sends
exactly the bytes a test gives it (fragments, control frames between them, masks,
reserved bits, lengths no server should send), so every rule of RFC 6455 that the
frame reader enforces is driven over a real connection.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from bingo import create_app, errors
from bingo.upstream import open_turn
from bingo.upstream.chathub import signalr
from tests.conftest import with_settings
from tests.helpers import content_of, deltas, read_sse, read_turn, turn_request

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CONTINUATION, CLOSE, PING, PONG = 1, 0, 8, 9, 10


def frame(payload: bytes, opcode: int = TEXT, fin: bool = True, mask: bytes = b"", rsv: int = 0) -> bytes:
    """One websocket frame as a server (or a misbehaving one) writes it."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def record(value: dict) -> bytes:
    return json.dumps(value).encode() + signalr.RS.encode()


def update(text: str) -> bytes:
    return record({"type": 1, "target": "update", "arguments": [{"messages": [
        {"author": "bot", "text": text, "messageId": "a"}]}]})


def final(text: str) -> bytes:
    return record({"type": 2, "invocationId": "0", "item": {
        "messages": [{"author": "bot", "text": text, "messageId": "a"}], "result": {"value": "Success"}}})


class RawHub:
    """A ChatHub that speaks raw bytes: `script(hub)` runs once the chat call arrived."""

    def __init__(
        self, script: Callable[[RawHub], None], reply: Callable[[str], bytes] | None = None, early_ack: bool = False,
    ) -> None:
        self.script = script
        self.reply = reply or accept
        self.early_ack = early_ack  # the SignalR ack rides in the 101's packet
        self.request = b""  # the upgrade request as sent
        self.received: list[tuple[int, bytes]] = []  # (opcode, payload) of the client's frames
        self.failure: BaseException | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}/sydney/ChatHub"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.conn, _ = self._listener.accept()
            self.conn.settimeout(10)
            while b"\r\n\r\n" not in self.request:
                self.request += self.conn.recv(4096)
            key = next(line.split(b": ", 1)[1] for line in self.request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            ack = frame(b"{}" + signalr.RS.encode())
            self.conn.sendall(self.reply(key.decode()) + (ack if self.early_ack else b""))
            self.read_frame()  # the SignalR handshake
            if not self.early_ack:
                self.send(ack)
            while not any(b'"type":4' in payload for _, payload in self.received):
                self.read_frame()  # the ping, then the chat call
            self.script(self)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.failure = exc

    def read_frame(self) -> tuple[int, bytes]:
        head = self._exactly(2)
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._exactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._exactly(8))[0]
        mask = self._exactly(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self._exactly(size)))
        self.received.append((head[0] & 0x0F, payload))
        return self.received[-1]

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the client closed")
            data += chunk
        return data

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def wait_closed(self) -> None:
        """Read until the client closes: its close frame, then EOF."""
        try:
            while True:
                self.read_frame()
        except (ConnectionError, OSError):
            pass

    def close(self) -> None:
        self._thread.join(10)
        self._listener.close()
        if getattr(self, "conn", None) is not None:
            self.conn.close()


def accept(key: str) -> bytes:
    digest = base64.b64encode(hashlib.sha1(f"{key}{GUID}".encode()).digest()).decode()
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {digest}\r\n\r\n").encode()


@pytest.fixture()
def hub_for(settings):
    hubs: list[RawHub] = []

    def make(script, reply=None, early_ack=False) -> tuple[RawHub, object]:
        hub = RawHub(script, reply, early_ack)
        hubs.append(hub)
        return hub, with_settings(settings, chathub_url=hub.url, connect_timeout=5.0, idle_timeout=5.0)

    yield make
    for hub in hubs:
        hub.close()


def answer(hub_settings) -> str:
    return deltas(read_turn(open_turn(hub_settings, turn_request("Creative", "hi"))))


# -- frames ---------------------------------------------------------------------------------------


def test_a_message_in_three_fragments_with_a_ping_between_is_one_message_and_the_ping_is_answered(hub_for):
    def script(hub: RawHub) -> None:
        body = update("Hello world")
        hub.send(frame(body[:5], fin=False) + frame(b"are you there", PING)
                 + frame(body[5:20], CONTINUATION, fin=False) + frame(body[20:], CONTINUATION))
        hub.send(frame(final("Hello world")))
        hub.wait_closed()

    hub, hub_settings = hub_for(script)
    assert answer(hub_settings) == "Hello world"
    hub.close()
    assert (PONG, b"are you there") in hub.received
    assert hub.received[-1][0] == CLOSE


def test_frames_nobody_reads_do_not_turn_the_close_into_a_reset(hub_for):
    """Frames still arriving after the final (here 60 KB of pings) are read and dropped
    before the socket closes: the hub gets the close frame and then a clean end of stream,
    not a connection reset (what Linux sends when a socket closes with unread bytes)."""
    ended: list[object] = []

    def script(hub: RawHub) -> None:
        hub.send(frame(final("done")) + frame(b"p", PING) * 20_000)
        try:
            while True:
                hub.read_frame()
        except ConnectionError as exc:  # "the client closed" (EOF) or a reset
            ended.append(type(exc))

    hub, hub_settings = hub_for(script)
    assert answer(hub_settings) == "done"
    hub.close()
    assert hub.received[-1][0] == CLOSE
    assert ended == [ConnectionError]


def test_closing_does_not_wait_for_an_upstream_that_answers_nothing(hub_for):
    """The close reads only what already arrived: an upstream that neither answers the
    close frame nor ends the connection does not hold the turn's close for its timeout."""
    def script(hub: RawHub) -> None:
        hub.send(frame(final("done")))
        while hub.read_frame()[0] != CLOSE:
            pass
        time.sleep(3)  # silent, connection open

    hub, hub_settings = hub_for(script)
    started = time.monotonic()
    assert answer(hub_settings) == "done"
    assert time.monotonic() - started < 2.0
    hub.close()


def test_a_masked_server_frame_is_unmasked(hub_for):
    def script(hub: RawHub) -> None:
        hub.send(frame(update("masked") + final("masked"), mask=os.urandom(4)))
        hub.wait_closed()

    _, hub_settings = hub_for(script)
    assert answer(hub_settings) == "masked"


def test_a_frame_of_64_bit_length_is_read(hub_for):
    text = "x" * 70_000

    def script(hub: RawHub) -> None:
        hub.send(frame(update(text)) + frame(final(text)))
        hub.wait_closed()

    _, hub_settings = hub_for(script)
    assert answer(hub_settings) == text


@pytest.mark.parametrize(
    "data, message",
    [
        (frame(b"{}", rsv=4), "a frame with reserved bits set (no extension was negotiated)"),
        (bytes([0x81, 127]) + struct.pack("!Q", 1 << 40), "a frame of 1099511627776 bytes (over 16777216)"),
        (frame(b"x" * 126, PING), "a control frame that is fragmented or over 125 bytes"),
        (frame(b"", PING, fin=False), "a control frame that is fragmented or over 125 bytes"),
        (frame(b"{}", CONTINUATION), "a websocket continuation frame out of order"),
        (frame(b"{", fin=False) + frame(b"}", TEXT), "a websocket continuation frame out of order"),
        (frame(b"", 3), "a websocket frame of unknown opcode 3"),
    ],
    ids=["reserved-bits", "absurd-length", "long-ping", "fragmented-ping", "stray-continuation",
         "text-inside-a-message", "unknown-opcode"],
)
def test_what_no_server_may_send_is_a_bad_upstream_frame(hub_for, data, message):
    def script(hub: RawHub) -> None:
        hub.send(frame(update("Hello")) + data)
        hub.wait_closed()

    _, hub_settings = hub_for(script)
    with pytest.raises(errors.UpstreamProtocolError) as raised:
        answer(hub_settings)
    assert raised.value.code == "bad_upstream_frame"
    assert raised.value.message == f"Bing's ChatHub sent {message}."


def test_the_connection_closing_in_the_middle_of_a_frame_is_unavailable(hub_for):
    def script(hub: RawHub) -> None:
        hub.send(frame(update("Hello"))[:-10])
        hub.conn.shutdown(socket.SHUT_WR)
        hub.wait_closed()

    _, hub_settings = hub_for(script)
    with pytest.raises(errors.UpstreamUnavailable, match="dropped the connection mid-answer"):
        answer(hub_settings)


# -- the upgrade ----------------------------------------------------------------------------------


def test_the_upgrade_request_is_the_one_websocket_client_sent(hub_for, settings):
    def script(hub: RawHub) -> None:
        hub.send(frame(final("ok")))
        hub.wait_closed()

    hub, hub_settings = hub_for(script)
    answer(with_settings(hub_settings, bing_cookie="_U=abc"))
    lines = hub.request.decode().split("\r\n")
    port = hub.url.split(":")[2].split("/")[0]
    key = lines[4].split(": ", 1)[1]
    assert len(base64.b64decode(key)) == 16
    assert lines[0].startswith("GET /sydney/ChatHub?sec_access_token=") and lines[0].endswith(" HTTP/1.1")
    assert lines[1:4] == ["Upgrade: websocket", f"Host: 127.0.0.1:{port}", "Origin: https://www.bing.com"]
    assert lines[5:7] == ["Sec-WebSocket-Version: 13", "Connection: Upgrade"]
    assert [line.split(":")[0] for line in lines[7:]] == [
        "User-Agent", "Accept-Language", "Referer", "x-ms-useragent", "Cookie", "", ""]
    assert "Cookie: _U=abc" in lines


def test_frames_in_the_same_packet_as_the_101_are_read(hub_for):
    def script(hub: RawHub) -> None:
        hub.send(frame(final("early ack")))
        hub.wait_closed()

    _, hub_settings = hub_for(script, early_ack=True)
    assert answer(hub_settings) == "early ack"


@pytest.mark.parametrize(
    "reply",
    [
        lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: bm90IHRoZSBrZXk=\r\n\r\n",
        lambda key: accept(key).replace(b"Upgrade: websocket\r\n", b""),
        lambda key: b"SSH-2.0-OpenSSH\r\n\r\n",
    ],
    ids=["wrong-accept", "no-upgrade-header", "not-http"],
)
def test_a_reply_that_does_not_accept_the_upgrade_is_unavailable(hub_for, reply):
    _, hub_settings = hub_for(lambda hub: None, reply)
    with pytest.raises(errors.UpstreamUnavailable) as raised:
        answer(hub_settings)
    assert raised.value.message.startswith("Bing's ChatHub failed: cannot reach 127.0.0.1 (")


def test_a_refused_upgrade_keeps_its_status_and_retry_after(hub_for):
    _, hub_settings = hub_for(lambda hub: None, lambda key: b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(errors.UpstreamThrottled) as raised:
        answer(hub_settings)
    assert (raised.value.status, raised.value.retry_after) == (429, 7)


# -- frames that are ready together are written together ------------------------------------------


def stream_chunks(hub_settings) -> list[str]:
    """What the relay hands gunicorn, one item per write."""
    response = create_app(hub_settings).test_client().post(
        "/v1/chat/completions",
        json={"model": "Creative", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        buffered=False,
    )
    try:
        return [chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response]
    finally:
        response.close()


def test_updates_that_arrive_in_one_read_go_out_in_one_write(hub_for):
    def script(hub: RawHub) -> None:
        hub.send(frame(update("One")))
        threading.Event().wait(0.3)  # the first update is written on its own
        hub.send(frame(update("One two")) + frame(update("One two three")) + frame(update("One two three four")))
        threading.Event().wait(0.3)
        hub.send(frame(final("One two three four")))
        hub.wait_closed()

    _, hub_settings = hub_for(script)
    chunks = stream_chunks(hub_settings)
    texts = [content_of(read_sse(chunk)) for chunk in chunks]
    assert "".join(texts) == "One two three four"
    assert " two three four" in texts, texts


def test_a_failure_behind_ready_updates_comes_after_their_text(hub_for):
    def script(hub: RawHub) -> None:
        hub.send(frame(update("One")))
        threading.Event().wait(0.3)
        hub.send(frame(update("One two")) + frame(update("One two three")) + frame(record({"type": 7, "error": "going away"})))
        hub.wait_closed()

    _, hub_settings = hub_for(script)
    events = read_sse("".join(stream_chunks(hub_settings)))
    assert content_of(events) == "One two three"
    assert events[-1]["error"]["message"] == "Bing's ChatHub closed the connection: going away."
    assert "[DONE]" not in events
