"""Small test helpers: an SSE reader, expected answers, a loopback websocket server."""
from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time

import pytest


def read_sse(text: str) -> list[object]:
    """Decode an SSE body into its data payloads: dicts, or the string "[DONE]".

    Comment lines (keep-alives) are dropped; any other line shape fails the test.
    """
    events: list[object] = []
    for block in text.split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        other = [line for line in block.split("\n") if line and not line.startswith(("data: ", ":"))]
        assert not other, f"unexpected SSE lines: {other!r}"
        if data:
            payload = "\n".join(data)
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def content_of(events: list[object]) -> str:
    """The joined `delta.content` (chat) or `text` (legacy) of stream events."""
    parts = []
    for event in events:
        if isinstance(event, dict):
            for choice in event.get("choices", []):
                parts.append(choice.get("delta", {}).get("content") or choice.get("text") or "")
    return "".join(parts)


def expected_content(prompt: str) -> str:
    """What the gateway answers for a sandbox turn: citations as markdown footnotes."""
    from bingo.sandbox import answer_for, source_for

    source = source_for(prompt)
    return answer_for(prompt).replace("[^1^]", "[^1]") + f"\n\n[^1]: [{source.title}]({source.url})"


@contextlib.contextmanager
def websocket_server(handler):
    """Serve `handler(connection)` with websockets on a free loopback port; yields the port."""
    from websockets.sync.server import serve

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(5)


# The API surface must behave the same whichever upstream serves the model.
BOTH_UPSTREAMS = pytest.mark.parametrize("model", ["Creative", "copilot"], ids=["chathub", "copilot"])


def read_turn(turn, tick: float = 0.5) -> list:
    """Every event of an upstream turn (None for each quiet `tick`), closing it whatever happens."""
    try:
        return list(turn.events(tick))
    finally:
        turn.close()


def turn_request(model: str, text: str, earlier=(), watch=None):
    """A TurnRequest as the relay builds it: seed names on the ChatHub, copilot* on Copilot.

    `earlier` is a sequence of (role, content) pairs that come before the question.
    """
    from bingo.models import catalogue
    from bingo.upstream.events import TurnRequest
    from bingo.wire import Message

    messages = (*(Message(role, content) for role, content in earlier), Message("user", text))
    return TurnRequest(catalogue("chathub").resolve(model), messages, watch)


def deltas(events) -> str:
    """The answer text a list of turn events carries."""
    from bingo.upstream.events import Delta

    return "".join(e.text for e in events if isinstance(e, Delta))


def finish(events):
    """The closing Finish event, asserting that the turn ended with one."""
    from bingo.upstream.events import Finish

    assert isinstance(events[-1], Finish), events[-1]
    return events[-1]


def read_to_close(sock: socket.socket, timeout: float = 10, data: bytes = b"") -> bytes:
    """Everything the gateway sends until it closes (after `data`, already read); closes the socket."""
    deadline = time.monotonic() + timeout
    with sock:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            assert time.monotonic() < deadline, f"still open; got {data[-300:]!r}"


def b64(text: str) -> str:
    """Text as the sandbox's `reply=` / `replies=` directives take it: base64url, unpadded."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
