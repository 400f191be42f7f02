"""Stopping and capping the deployed gateway: SIGTERM, message count, stalled clients, bad bodies.

Each test runs the Procfile's gunicorn on loopback against the session's sandbox;
every wait is bounded, and SIGTERM goes to the master as a PaaS sends it.
"""
from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bingo import shutdown
from tests.helpers import read_sse, read_to_close
from tests.test_e2e import API_KEY, Gateway
from tests.test_reliability import read_until

LONG = "[sandbox:updates=100] [sandbox:delay=0.2]"  # 20 s of answer: cannot finish in the grace
SHORT = "[sandbox:updates=4] [sandbox:delay=0.1]"  # 0.4 s: finishes well inside it
ENDLESS = "[sandbox:chars=200000] [sandbox:updates=1000] [sandbox:delay=0.01]"  # 10 s, 200 kB
BIG = "[sandbox:chars=200000] [sandbox:updates=1000]"  # 200 kB at once: 0.7 MB of stream
PIPELINED = 10  # 7 MB of answers: more than the kernel buffers for a client that reads nothing
GRACE = 3  # --graceful-timeout: unfinished requests are cut 1.5 s after SIGTERM


def body(prompt: str, *, stream: bool = True, messages: int = 1) -> bytes:
    history = [{"role": "user", "content": prompt}] * messages
    return json.dumps({"model": "Creative", "stream": stream, "messages": history}).encode()


REQUEST_HEAD = (
    f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
    "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)


def send_raw(gw: Gateway, payload: bytes, *, headers: str = "", rcvbuf: int = 0) -> socket.socket:
    """POST a chat completion on a raw socket; `headers` replaces Content-Length."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", gw.port))
    head = headers or f"Content-Length: {len(payload)}\r\n"
    sock.sendall(
        (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
         f"Content-Type: application/json\r\nConnection: close\r\n{head}\r\n").encode() + payload
    )
    return sock


def wait_until(ready, failure: str, timeout: float = 3) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    if headers.get("transfer-encoding") == "chunked":
        rest = dechunk(rest)
    return int(lines[0].split()[1]), headers, rest


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2:]
    return out


def events_of(raw: bytes) -> list[object]:
    status, headers, payload = split_response(raw)
    assert status == 200 and headers["content-type"].startswith("text/event-stream"), raw[:300]
    return read_sse(payload.decode("utf-8"))


def assert_error_body(payload: bytes, code: str | None) -> dict:
    error = json.loads(payload)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code
    return error


# -- the cut-off, in process ----------------------------------------------------------------


def stopping_in(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setattr(shutdown, "_cut_at", time.monotonic() + seconds)


def chat_json(prompt: str, stream: bool) -> dict:
    return {"model": "Creative", "stream": stream, "messages": [{"role": "user", "content": prompt}]}


def test_stream_past_the_cut_off_ends_with_one_server_shutting_down_event(client, sandbox, monkeypatch):
    response = client.post("/v1/chat/completions", json=chat_json(LONG, True))
    stopping_in(monkeypatch, 0.3)
    events = read_sse(response.get_data(as_text=True))
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "[DONE]" not in events and events[-1]["error"]["code"] == "server_shutting_down"
    assert [e for e in events if "error" in e] == [events[-1]]
    assert sandbox.wait_idle(1.0)


def test_one_shot_past_the_cut_off_is_a_503_with_retry_after(client, sandbox, monkeypatch):
    stopping_in(monkeypatch, 0.3)
    response = client.post("/v1/chat/completions", json=chat_json(LONG, False))
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json()["error"]["code"] == "server_shutting_down"
    assert sandbox.wait_idle(1.0)


def test_request_after_sigterm_is_a_503_and_opens_nothing(client, sandbox, monkeypatch):
    stopping_in(monkeypatch, 30)
    connections = sandbox.stats()["connections"]
    response = client.post("/v1/chat/completions", json=chat_json("late", True))
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json()["error"]["code"] == "server_shutting_down"
    assert sandbox.stats()["connections"] == connections


def test_begin_cuts_a_few_seconds_before_the_grace_runs_out(monkeypatch):
    monkeypatch.setattr(shutdown, "_cut_at", float("inf"))
    assert not shutdown.stopping()
    now = time.monotonic()
    shutdown.begin(30)
    assert shutdown.stopping() and now + 26.9 < shutdown.cut_at() <= time.monotonic() + 27
    shutdown.begin(2)  # a second SIGTERM never moves the cut-off later
    assert shutdown.cut_at() <= time.monotonic() + 1


# -- SIGTERM ------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
def test_sigterm_cuts_long_streams_in_band_finishes_short_ones_and_refuses_new_requests(sandbox, tmp_path):
    gw = Gateway(sandbox, tmp_path / "gunicorn.log", extra_args=f"--graceful-timeout {GRACE}", WEB_CONCURRENCY="1")
    try:
        assert sandbox.wait_idle(2.0)
        before = sandbox.stats()
        longs = [send_raw(gw, body(f"long {i} {LONG}")) for i in range(3)]
        started = [read_until(sock, lambda data: b'"content":"' in data) for sock in longs]
        one_shot: dict[str, object] = {}
        waiter = threading.Thread(target=lambda: one_shot.update(raw=read_to_close(send_raw(gw, body(LONG, stream=False)), 15)))
        waiter.start()
        short = send_raw(gw, body(f"short {SHORT}"))
        wait_until(lambda: sandbox.stats()["open"] == 5, "the upstream turns never opened")

        gw.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        assert_new_request_is_refused_or_answered(gw)

        # Every client reads at once, as real ones do: gunicorn closes one connection
        # at a time and waits (up to 2 s) for each client to close its end.
        with ThreadPoolExecutor(4) as pool:
            short_raw = pool.submit(read_to_close, short)
            long_raws = [pool.submit(read_to_close, sock, 10, head) for sock, head in zip(longs, started)]
            ended = [f.result() for f in long_raws]
            cut = time.monotonic() - signalled
        assert events_of(short_raw.result())[-1] == "[DONE]"
        for raw in ended:
            events = events_of(raw)
            assert events[-1] != "[DONE]" and all(e != "[DONE]" for e in events)
            assert events[-1]["error"]["code"] == "server_shutting_down"
            assert "retry" in events[-1]["error"]["message"]
        assert cut < GRACE, f"streams ended {cut:.2f} s after SIGTERM"
        waiter.join(10)
        status, headers, payload = split_response(one_shot["raw"])  # type: ignore[arg-type]
        assert (status, headers.get("retry-after")) == (503, "1")
        assert_error_body(payload, "server_shutting_down")

        assert sandbox.wait_idle(2.0)
        after = sandbox.stats()
        assert after["closed_cleanly"] - before["closed_cleanly"] >= 5  # 3 long, 1 one-shot, 1 short
        assert gw.process.wait(timeout=GRACE + 3) == 0
    finally:
        if gw.process.poll() is None:
            gw.stop()
        else:
            gw._log.close()
    assert gw.log().count("ServerShuttingDown 503 server_shutting_down") >= 4  # a line each


def assert_new_request_is_refused_or_answered(gw: Gateway) -> None:
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=1)
        connection.request("POST", "/v1/chat/completions", body("late"), {"Authorization": f"Bearer {API_KEY}"})
        response = connection.getresponse()
        assert response.status == 503 and response.getheader("Retry-After") == "1"
        response.read()
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    assert time.monotonic() - started < 1


# -- caps -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(sandbox_server, tmp_path_factory) -> Iterator[Gateway]:
    gw = Gateway(
        sandbox_server, tmp_path_factory.mktemp("capped") / "gunicorn.log",
        WEB_CONCURRENCY="1", BINGO_MAX_MESSAGES="3", BINGO_WRITE_TIMEOUT="1",
    )
    yield gw
    gw.stop()


@pytest.mark.e2e
def test_more_messages_than_bingo_max_messages_is_a_400(capped, sandbox):
    ok = split_response(read_to_close(send_raw(capped, body("three", stream=False, messages=3))))
    assert ok[0] == 200
    status, headers, payload = split_response(read_to_close(send_raw(capped, body("four", stream=False, messages=4))))
    assert (status, headers.get("x-should-retry")) == (400, "false")
    error = assert_error_body(payload, "array_above_max_length")
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")


@pytest.mark.e2e
def test_client_that_stops_reading_is_cut_after_bingo_write_timeout(capped, sandbox):
    # The kernel buffers a few MB per socket, more than one answer: the client sends
    # its requests pipelined on one connection and reads nothing at all.
    assert sandbox.wait_idle(2.0)
    requests = [body(f"big {i} {BIG}") for i in range(PIPELINED)] + [body(f"endless {ENDLESS}")]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", capped.port))
    try:
        sock.sendall(b"".join(REQUEST_HEAD.format(length=len(p)).encode() + p for p in requests))
        wait_until(lambda: "outcome=client gone" in capped.log(), "the stalled write was never cut", timeout=12)
        assert sandbox.wait_idle(1.0), "the upstream is still open after the cut"
        # The write blocked in one of the fast answers (or the endless one), 1 s before the cut.
        assert capped.log().count("outcome=ok") < PIPELINED
    finally:
        sock.close()
    health = http.client.HTTPConnection("127.0.0.1", capped.port, timeout=5)
    health.request("GET", "/healthz")
    assert health.getresponse().status == 200
    health.close()


@pytest.mark.e2e
def test_malformed_chunked_body_is_a_400(capped, sandbox):
    tracebacks = capped.log().count("Traceback")
    payload = b"zz\r\n" + body("chunked") + b"\r\n0\r\n\r\n"
    raw = read_to_close(send_raw(capped, payload, headers="Transfer-Encoding: chunked\r\n"))
    status, headers, answer = split_response(raw)
    assert (status, headers["content-type"]) == (400, "application/json")
    assert assert_error_body(answer, None)["type"] == "invalid_request_error"
    assert capped.log().count("Traceback") == tracebacks
