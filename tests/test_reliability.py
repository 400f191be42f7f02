"""Reliability and security of the gateway as deployed: the Procfile's gunicorn on loopback.

Upstream faults over real sockets, client disconnects and what they leave behind, 200
concurrent streams in one process, API keys, secrets in logs, bodies and headers, and
the OpenAPI document checked against every response these tests saw. Every gunicorn
here runs the Procfile command with BING_COOKIE and BINGO_API_KEYS set to
recognisable values; every target is 127.0.0.1 and every loop is bounded.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import platform
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest
import requests
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from bingo import create_app, routes
from bingo.config import Settings
from bingo.sandbox import Sandbox
from tests.conftest import with_settings
from tests.helpers import content_of, expected_content, read_sse
from tests.test_e2e import Gateway

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "bingo" / "openapi.json"

# Recognisable secrets: no piece of them may ever leave the gateway.
API_KEYS = ("sk-rlby-FIRST-key-q7Wm2Zp9Lt4V", "sk-rlby-SECOND-key-n8Xc3Rb6Hd1K")
ADMIN_KEY = "adm-rlby-ADMIN-key-c5Tg8Jw1Qs"
KEY = API_KEYS[0]
COOKIE_VALUES = {"_U": "RLBYcookieU-Jx4Qw8Tz2Vb6Nm0", "MUID": "RLBYcookieMUID-Kp3Ls7Dg9Fh1", "SRCHUSR": "RLBYsrch-Yt5Ue2Io8Pa4"}
COOKIE = "; ".join(f"{name}={value}" for name, value in COOKIE_VALUES.items())
# Copilot signs in with the same Microsoft account (_U), plus a cookie of its own.
COPILOT_COOKIE_VALUES = {"_U": COOKIE_VALUES["_U"], "MSCC": "RLBYcopilotMSCC-Wq5Er7Ty9Zx"}
COPILOT_COOKIE = "; ".join(f"{name}={value}" for name, value in COPILOT_COOKIE_VALUES.items())
SECRET_WINDOW = 10  # any 10 consecutive characters of a secret count as a leak

# Tight timeouts make every timeout fault fast; the sandbox pings every 0.5 s, so only
# a silent upstream ever reaches the idle timeout.
TIGHT = {"BINGO_CONNECT_TIMEOUT": "0.7", "BINGO_IDLE_TIMEOUT": "1", "BINGO_TOTAL_TIMEOUT": "2", "BINGO_KEEPALIVE_SECONDS": "0.3"}
# Calm timeouts: when a disconnect test sees the upstream socket close, only the
# client's leaving can have closed it.
CALM = {"BINGO_CONNECT_TIMEOUT": "10", "BINGO_IDLE_TIMEOUT": "20", "BINGO_TOTAL_TIMEOUT": "60", "BINGO_KEEPALIVE_SECONDS": "0.5"}
CALM_KEEPALIVE = 0.5  # a stream's 200 goes out this long after the request, unless text comes first

pytestmark = pytest.mark.e2e


# -- what the gateway said: every response, kept for the contract and secrets checks ----


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def media_type(self) -> str:
        return next((v for k, v in self.headers if k.lower() == "content-type"), "").split(";")[0].strip()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> dict:
        assert self.media_type == "application/json", (self.status, self.body[:300])
        return json.loads(self.body)

    def events(self) -> list[object]:
        assert self.media_type == "text/event-stream", (self.status, self.body[:300])
        return read_sse(self.body.decode("utf-8"))


EXCHANGES: list[Exchange] = []  # complete responses, checked against the OpenAPI document
RAW_RESPONSES: list[bytes] = []  # partial responses of abandoned requests (secrets check only)
GATEWAYS: list[Gateway] = []  # every gunicorn this module started, for their logs
_RECORD_LOCK = threading.Lock()


def call(gw: Gateway, method: str, path: str, body: object = None, *, key: str | None = KEY,
         headers: dict[str, str] | None = None, timeout: float = 30) -> Exchange:
    """One HTTP request to a gateway; the response is read whole and recorded."""
    sent = dict(headers or {})
    if key is not None:
        sent.setdefault("Authorization", f"Bearer {key}")
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
    try:
        connection.request(method, path, payload, sent)
        response = connection.getresponse()
        exchange = Exchange(method, path, response.status, response.getheaders(), response.read())
    finally:
        connection.close()
    with _RECORD_LOCK:
        EXCHANGES.append(exchange)
    return exchange


def chat(gw: Gateway, prompt: str, *, stream: bool = False, model: str = "Creative", **extra: object) -> Exchange:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": prompt}], **extra}
    return call(gw, "POST", "/v1/chat/completions", body)


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:12]}"


def answer_of(exchange: Exchange) -> str:
    """The answer text of a successful response, one-shot or streamed."""
    assert exchange.status == 200, (exchange.status, exchange.body[:300])
    if exchange.media_type == "text/event-stream":
        events = exchange.events()
        assert events[-1] == "[DONE]" and not any(isinstance(e, dict) and "error" in e for e in events)
        return content_of(events)
    choice = exchange.json()["choices"][0]
    return choice["message"]["content"] if "message" in choice else choice["text"]


# -- gunicorn and its one worker ------------------------------------------------------------


def start_gateway(upstream: object, log_path: Path, timeouts: dict[str, str]) -> Gateway:
    accounts = log_path.with_name("accounts.jsonl")
    write_copilot_account(accounts)
    gw = Gateway(
        upstream, log_path,
        # The seed's names on the ChatHub, so its faults are tried too; "copilot" names Copilot.
        BINGO_UPSTREAM="chathub",
        BING_COOKIE=COOKIE, COPILOT_ACCOUNTS_FILE=str(accounts), BINGO_API_KEYS=",".join(API_KEYS),
        BINGO_ADMIN_KEY=ADMIN_KEY, BINGO_LOG_LEVEL="DEBUG", WEB_CONCURRENCY="1", PYTHONUNBUFFERED="1", **timeouts,
    )
    gw.accounts = accounts  # type: ignore[attr-defined]
    GATEWAYS.append(gw)
    try:
        wait_healthy(gw)
        gw.worker = worker_pid(gw)  # type: ignore[attr-defined]
    except BaseException:
        gw.stop()
        raise
    return gw


def wait_healthy(gw: Gateway, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if call(gw, "GET", "/healthz", key=None, timeout=5).status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("gunicorn never answered /healthz")
        time.sleep(0.1)


def _ppid(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and ")"


def worker_pid(gw: Gateway) -> int:
    """The gunicorn worker: the one child of the master process."""
    children = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _ppid(pid) == gw.process.pid]
    assert len(children) == 1, f"expected one gunicorn worker, found {children}"
    return children[0]


def write_copilot_account(path: Path, renewal: int = 0) -> None:
    """Copilot's account, with COPILOT_COOKIE's cookie, in an accounts file: a fault that
    makes it need attention (Cloudflare) is then answered as an operator would, with a
    new entry, instead of a restart."""
    cookie = COPILOT_COOKIE + (f"; cf_clearance=renewed-{renewal}" if renewal else "")
    path.write_text(json.dumps({"name": "reliability", "cookie": cookie}) + "\n", encoding="utf-8")


RENEWALS: list[int] = []


def renew_copilot_account(gw: Gateway) -> None:
    """A new entry for the account; the gateway reads the file again at most once a second."""
    RENEWALS.append(len(RENEWALS) + 1)
    write_copilot_account(gw.accounts, RENEWALS[-1])  # type: ignore[attr-defined]
    time.sleep(1.1)


def assert_worker_healthy(gw: Gateway, *, stream: bool = False) -> None:
    """Same worker process, /healthz answers, and a fresh request gets its exact answer."""
    assert gw.process.poll() is None, "the gunicorn master died"
    assert worker_pid(gw) == gw.worker, "the gunicorn worker was replaced"  # type: ignore[attr-defined]
    health = call(gw, "GET", "/healthz", key=None, timeout=10)
    assert (health.status, health.json()) == (200, {"status": "ok"})
    prompt = unique("after the fault")
    assert answer_of(chat(gw, prompt, stream=stream)) == expected_content(prompt)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Sandbox]:
    """This module's own local upstream; it refuses creates that lack the cookie."""
    with Sandbox(host="127.0.0.1", port=0, ping_interval=0.5, require_cookie=f"_U={COOKIE_VALUES['_U']}") as server:
        yield server


@pytest.fixture()
def sandbox(upstream: Sandbox) -> Iterator[Sandbox]:
    upstream.clear_faults()
    yield upstream
    upstream.clear_faults()


@pytest.fixture(scope="module")
def tight(upstream: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(upstream, tmp_path_factory.mktemp("tight") / "gunicorn.log", TIGHT)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def calm(upstream: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(upstream, tmp_path_factory.mktemp("calm") / "gunicorn.log", CALM)
    yield gw
    gw.stop()


# -- upstream faults ------------------------------------------------------------------------

IN_BAND = 200  # the fault comes after the first byte: a 200 and one in-band error event


@dataclass(frozen=True)
class Fault:
    id: str
    model: str
    queue: str | None  # a stage fault for sandbox.queue_fault, or None
    prompt: str  # carries the turn directives
    status: int  # one-shot: the README's status
    stream_status: int  # streamed: the same status before the first byte, or IN_BAND
    code: str

    def __str__(self) -> str:
        return self.id


LONG_ANSWER = "[sandbox:updates=30] [sandbox:delay=0.1]"  # 3 s of answer against a 2 s total timeout

FAULTS = [
    Fault("create-500", "Creative", "create-500", "hi", 502, 502, "upstream_unavailable"),
    Fault("create-404", "Creative", "create-404", "hi", 502, 502, "upstream_auth_failed"),
    Fault("create-slow", "Creative", "create-slow=2", "hi", 504, 504, "upstream_timeout"),
    Fault("create-nonjson", "Creative", "create-nonjson", "hi", 502, 502, "upstream_region_blocked"),
    Fault("create-empty", "Creative", "create-empty", "hi", 502, 502, "upstream_region_blocked"),
    Fault("ws-403", "Creative", "ws-403", "hi", 502, 502, "upstream_auth_failed"),
    Fault("ws-200", "Creative", "ws-200", "hi", 502, 502, "upstream_region_blocked"),
    Fault("ws-500", "Creative", "ws-500", "hi", 502, 502, "upstream_unavailable"),
    Fault("no-handshake-ack", "Creative", "no-handshake-ack", "hi", 504, 504, "upstream_timeout"),
    Fault("throttled", "Creative", None, "[sandbox:throttled]", 429, 429, "rate_limit_exceeded"),
    Fault("captcha", "Creative", None, "[sandbox:captcha]", 503, 503, "captcha_required"),
    Fault("garbage-frame", "Creative", None, "[sandbox:garbage]", 502, IN_BAND, "bad_upstream_frame"),
    Fault("garbage-split-frames", "Creative", None, "[sandbox:split] [sandbox:garbage]", 502, IN_BAND, "bad_upstream_frame"),
    Fault("drop-mid-answer", "Creative", None, "[sandbox:drop]", 502, IN_BAND, "upstream_unavailable"),
    Fault("drop-split-frames", "Creative", None, "[sandbox:split] [sandbox:drop]", 502, IN_BAND, "upstream_unavailable"),
    Fault("type7-close", "Creative", None, "[sandbox:type7]", 502, IN_BAND, "upstream_unavailable"),
    Fault("silent", "Creative", None, "[sandbox:silent]", 504, IN_BAND, "upstream_timeout"),
    Fault("silent-after-text", "Creative", None, "[sandbox:silent=after-text]", 504, IN_BAND, "upstream_timeout"),
    Fault("past-total-timeout", "Creative", None, LONG_ANSWER, 504, IN_BAND, "upstream_timeout"),
    Fault("copilot-create-500", "copilot", "create-500", "hi", 502, 502, "upstream_unavailable"),
    Fault("copilot-create-slow", "copilot", "create-slow=2", "hi", 504, 504, "upstream_timeout"),
    Fault("copilot-create-nonjson", "copilot", "create-nonjson", "hi", 502, 502, "upstream_region_blocked"),
    Fault("copilot-create-empty", "copilot", "create-empty", "hi", 502, 502, "upstream_region_blocked"),
    Fault("copilot-ws-403", "copilot", "ws-403", "hi", 503, 503, "captcha_required"),
    Fault("copilot-ws-200", "copilot", "ws-200", "hi", 502, 502, "upstream_region_blocked"),
    Fault("copilot-drop", "copilot", None, "[sandbox:drop]", 502, IN_BAND, "upstream_unavailable"),
    Fault("copilot-silent", "copilot", None, "[sandbox:silent]", 504, IN_BAND, "upstream_timeout"),
    Fault("copilot-past-total-timeout", "copilot", None, LONG_ANSWER, 504, IN_BAND, "upstream_timeout"),
]
FAULTS_TRIED: list[tuple[str, bool]] = []
NOT_RETRYABLE = {"upstream_auth_failed", "upstream_region_blocked", "captcha_required", "rate_limit_exceeded", "bad_upstream_frame"}


def queued_faults(sandbox: Sandbox) -> list[str]:
    """The faults still waiting in the sandbox (its /sandbox/faults endpoint lists them)."""
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    try:
        connection.request("POST", "/sandbox/faults", json.dumps({"faults": []}), {"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())["queued"]
    finally:
        connection.close()


def assert_fails_as_documented(exchange: Exchange, status: int, code: str, answer: str = "") -> None:
    """The documented status before the first byte, or exactly one in-band error after it
    (and the text streamed before it is the beginning of the `answer`, nothing else)."""
    if status != IN_BAND:
        assert exchange.status == status, (exchange.status, exchange.body[:300])
        error = exchange.json()["error"]
        # The README's hint headers: retrying cannot help these, and the SDKs would.
        assert exchange.header("x-should-retry") == ("false" if code in NOT_RETRYABLE else None)
    else:
        assert exchange.status == 200, (exchange.status, exchange.body[:300])
        events = exchange.events()
        errors = [e for e in events if isinstance(e, dict) and "error" in e]
        assert len(errors) == 1, events[-3:]
        assert events[-1] is errors[0], "the in-band error must end the stream (no [DONE] after it)"
        assert "[DONE]" not in events
        assert answer.startswith(content_of(events[:-1])), content_of(events[:-1])[-200:]
        error = errors[0]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    if status == 429:
        assert exchange.header("Retry-After")


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_upstream_fault_fails_as_documented_and_the_worker_recovers(tight, sandbox, fault, stream):
    if fault.queue:
        sandbox.queue_fault(fault.queue)
    started, prompt = time.monotonic(), unique(fault.prompt)
    exchange = chat(tight, prompt, stream=stream, model=fault.model)
    FAULTS_TRIED.append((fault.id, stream))
    assert queued_faults(sandbox) == [], "the queued fault must hit this request, not a later one"
    assert time.monotonic() - started < 10, "the gateway's own timeouts must bound every fault"
    status = fault.stream_status if stream else fault.status
    assert_fails_as_documented(exchange, status, fault.code, expected_content(prompt))
    if fault.model == "copilot" and fault.code == "captcha_required":
        renew_copilot_account(tight)  # it needs attention until its entry changes (the account pool)
    assert sandbox.wait_idle(2.0), "a websocket stayed open after the fault"
    assert_worker_healthy(tight, stream=stream)


# -- frames the sandbox cannot send: cut inside a websocket frame or inside a record ---------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RS = "\x1e"


class TruncatingHub:
    """A minimal ChatHub on loopback that breaks framing on request.

    The prompt picks the behaviour: "text-first" sends one answer update before the
    fault; "cut-frame" sends a websocket frame header announcing 300 bytes, then only 38;
    "cut-record" sends a SignalR record without its record separator; then "close"
    drops the TCP connection and "stall" keeps it open and silent. Any other prompt
    gets a normal answer: "Echo: <prompt>".
    """

    HOLD_SECONDS = 10.0  # a stalled connection is dropped after this, whatever happens

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.create_url = f"http://127.0.0.1:{self.port}/turing/conversation/create"
        self.chathub_url = f"ws://127.0.0.1:{self.port}/sydney/ChatHub"
        self.copilot_url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def stop(self) -> None:
        self._stop.set()
        self._accept.join(2)
        self._listener.close()
        for thread in self._threads:
            thread.join(2)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(self.HOLD_SECONDS)
        try:
            head = self._read_head(sock)
            self.requests.append(head)
            path = head.split(" ", 2)[1]
            if path.startswith("/turing/conversation/create"):
                self._create(sock)
            elif path.startswith("/sydney/ChatHub"):
                self._hub(sock, head)
        except (OSError, ValueError):
            pass
        finally:
            sock.close()

    @staticmethod
    def _read_head(sock: socket.socket) -> str:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("no request")
            data += chunk
        return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")

    @staticmethod
    def _create(sock: socket.socket) -> None:
        body = json.dumps({"conversationId": "truncating-1", "clientId": "1", "result": {"value": "Success", "message": None}}).encode()
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"X-Sydney-Encryptedconversationsignature: token\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )

    def _hub(self, sock: socket.socket, head: str) -> None:
        key = re.search(r"(?im)^sec-websocket-key:\s*(\S+)", head).group(1)  # type: ignore[union-attr]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        sock.sendall(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        self._read_frame(sock)  # the SignalR handshake
        sock.sendall(_frame("{}" + RS))
        prompt = self._read_prompt(sock)
        update = {"type": 1, "target": "update", "arguments": [{"messages": [
            {"author": "bot", "text": f"Echo: {prompt}", "messageId": "m1"}]}]}
        if "text-first" in prompt or not any(word in prompt for word in ("cut-frame", "cut-record")):
            sock.sendall(_frame(json.dumps(update) + RS))
        if "cut-frame" in prompt:
            sock.sendall(bytes([0x81, 126]) + struct.pack("!H", 300) + b'{"type":1,"target":"update","arguments"')
        elif "cut-record" in prompt:
            sock.sendall(_frame('{"type":1,"target":"update","argu'))
        else:
            final = {"type": 2, "invocationId": "0", "item": {"messages": update["arguments"][0]["messages"],
                                                              "result": {"value": "Success"}}}
            sock.sendall(_frame(json.dumps(final) + RS + json.dumps({"type": 3, "invocationId": "0"}) + RS))
            self._drain(sock)
            return
        if "stall" in prompt:
            self._drain(sock)  # silent until the gateway gives up and closes
        else:
            sock.shutdown(socket.SHUT_RDWR)

    def _read_prompt(self, sock: socket.socket) -> str:
        while True:
            for piece in self._read_frame(sock).split(RS):
                record = json.loads(piece) if piece.strip() else {}
                if record.get("type") == 4:
                    return record["arguments"][0]["message"]["text"]

    @staticmethod
    def _read_frame(sock: socket.socket) -> str:
        first, second = _recv_exact(sock, 2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", _recv_exact(sock, 2))[0]
        elif length == 127:
            length = struct.unpack("!Q", _recv_exact(sock, 8))[0]
        mask = _recv_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(_recv_exact(sock, length)))
        if first & 0x0F == 8:
            raise ValueError("closed")
        return data.decode("utf-8")

    def _drain(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + self.HOLD_SECONDS
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                if not sock.recv(4096):
                    return
            except TimeoutError:
                return


def _frame(text: str) -> bytes:
    """One unmasked text frame, as a server sends it."""
    data = text.encode("utf-8")
    if len(data) < 126:
        return bytes([0x81, len(data)]) + data
    return bytes([0x81, 126]) + struct.pack("!H", len(data)) + data


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


@pytest.fixture(scope="module")
def truncating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    hub = TruncatingHub()
    try:
        gw = start_gateway(hub, tmp_path_factory.mktemp("truncating") / "gunicorn.log", TIGHT)
        yield gw
        gw.stop()
    finally:
        hub.stop()


TRUNCATIONS = [
    # prompt, one-shot status, streamed status, code
    pytest.param("cut-frame close", 502, 502, "upstream_unavailable", id="frame-cut-then-dropped-before-text"),
    pytest.param("text-first cut-frame close", 502, IN_BAND, "upstream_unavailable", id="frame-cut-then-dropped-mid-answer"),
    pytest.param("text-first cut-frame stall", 504, IN_BAND, "upstream_timeout", id="frame-cut-then-stalled-mid-answer"),
    pytest.param("cut-record close", 502, 502, "upstream_unavailable", id="record-cut-then-dropped"),
    pytest.param("text-first cut-record close", 502, IN_BAND, "upstream_unavailable", id="record-cut-then-dropped-mid-answer"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
@pytest.mark.parametrize("prompt, status, stream_status, code", TRUNCATIONS)
def test_truncated_frames_fail_as_documented_and_the_worker_recovers(truncating, prompt, status, stream_status, code, stream):
    started = time.monotonic()
    exchange = chat(truncating, prompt, stream=stream)
    FAULTS_TRIED.append((prompt, stream))
    assert time.monotonic() - started < 10
    assert_fails_as_documented(exchange, stream_status if stream else status, code, f"Echo: {prompt}")
    assert worker_pid(truncating) == truncating.worker  # type: ignore[attr-defined]
    assert call(truncating, "GET", "/healthz", key=None).status == 200
    assert answer_of(chat(truncating, "plain", stream=stream)) == "Echo: plain"


# -- client faults: leaving at every point of a request -------------------------------------

SLOW_FIRST = "[sandbox:slow-first=4]"  # Bing thinks; the gateway commits the 200 after one keep-alive
SLOW_ANSWER = "[sandbox:updates=40] [sandbox:delay=0.05]"  # 2 s of answer
SLOW_ANSWER_SECONDS = 2.0


def open_raw(gw: Gateway, body: dict, *, cut_body: bool = False) -> socket.socket:
    """Send a request on a raw socket; `cut_body` leaves the body half sent."""
    payload = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock.sendall(head + (payload[: len(payload) // 2] if cut_body else payload))
    return sock


def read_until(sock: socket.socket, done: Callable[[bytes], bool], timeout: float = 10) -> bytes:
    data, deadline = b"", time.monotonic() + timeout
    while not done(data):
        assert time.monotonic() < deadline, f"timed out waiting; got {data[-300:]!r}"
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"the gateway closed first; got {data[-300:]!r}"
        data += chunk
    return data


def leave(sock: socket.socket, received: bytes, *, reset: bool) -> None:
    """Close like a client that gives up: a FIN, or a RST (SO_LINGER 0) like a killed process."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    with _RECORD_LOCK:
        RAW_RESPONSES.append(received)


def received_so_far(sock: socket.socket) -> bytes:
    """What the gateway has sent, without consuming it or waiting (b"" when nothing yet)."""
    timeout = sock.gettimeout()
    sock.settimeout(0)  # with a timeout, CPython would wait for data before the recv
    try:
        return sock.recv(65536, socket.MSG_PEEK)
    except BlockingIOError:
        return b""
    finally:
        sock.settimeout(timeout)


def stream_body(prompt: str) -> dict:
    return {"model": "Creative", "stream": True, "messages": [{"role": "user", "content": prompt}]}


Ready = Callable[[], bool] | None  # when given, the client leaves only once this holds


def wait_for(ready: Ready, sock: socket.socket, asked_at: float, quiet: float, timeout: float = 1.0) -> bool:
    """Wait (bounded) until `ready()`; True when the gateway has not answered yet.

    The gateway may answer `quiet` seconds after the request (`asked_at` is taken
    before it was sent): an answer sooner fails the test. On a loaded machine the
    client may itself wake up later than that; then the answer is no fault of the
    gateway, and False says this client did not leave before it.
    """
    deadline = time.monotonic() + timeout
    while ready is not None and not ready():
        assert time.monotonic() < deadline, "the upstream websocket never opened"
        time.sleep(0.01)
    waited = time.monotonic() - asked_at
    answered = received_so_far(sock) != b""
    assert not answered or waited >= quiet, f"the gateway answered within {waited:.2f} s, before the client left"
    return not answered


# Each returns whether the client left at its point (False: it woke too late for it).
def leave_mid_request(gw: Gateway, reset: bool, ready: Ready = None) -> bool:
    sock = open_raw(gw, stream_body(unique("half a body")), cut_body=True)
    time.sleep(0.05)
    leave(sock, b"", reset=reset)
    return True


def leave_before_headers(gw: Gateway, reset: bool, ready: Ready = None) -> bool:
    asked_at = time.monotonic()
    sock = open_raw(gw, stream_body(unique(SLOW_FIRST)))
    time.sleep(0.15)  # the turn is being opened; the 200 waits for one keep-alive
    in_time = wait_for(ready, sock, asked_at, CALM_KEEPALIVE)
    leave(sock, received_so_far(sock), reset=reset)
    return in_time


def leave_after_role_chunk(gw: Gateway, reset: bool, ready: Ready = None) -> bool:
    sock = open_raw(gw, stream_body(unique(SLOW_FIRST)))
    received = read_until(sock, lambda data: b'"role":"assistant"' in data)
    leave(sock, received, reset=reset)
    return True


def leave_mid_answer(gw: Gateway, reset: bool, ready: Ready = None) -> bool:
    sock = open_raw(gw, stream_body(unique(SLOW_ANSWER)))
    received = read_until(sock, lambda data: data.count(b'"content":"') >= 3)  # role chunk + two pieces
    leave(sock, received, reset=reset)
    return True


def leave_one_shot_while_collecting(gw: Gateway, reset: bool, ready: Ready = None) -> bool:
    asked_at = time.monotonic()
    sock = open_raw(gw, {**stream_body(unique(SLOW_ANSWER)), "stream": False})
    time.sleep(0.3)  # the answer takes 2 s to collect
    in_time = wait_for(ready, sock, asked_at, SLOW_ANSWER_SECONDS)
    leave(sock, received_so_far(sock), reset=reset)
    return in_time


DISCONNECT_POINTS = {
    "mid-request": leave_mid_request,
    "before-headers": leave_before_headers,
    "after-role-chunk": leave_after_role_chunk,
    "mid-answer": leave_mid_answer,
    "one-shot-collecting": leave_one_shot_while_collecting,
}
DISCONNECTS: list[str] = []


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("point", ["before-headers", "after-role-chunk", "mid-answer", "one-shot-collecting"])
def test_client_leaving_closes_the_upstream_websocket_within_a_second(calm, sandbox, point, reset):
    for _ in range(3):  # a client that woke too late for its point tries again (wait_for)
        assert sandbox.wait_idle(2.0)
        in_time = DISCONNECT_POINTS[point](calm, reset, lambda: sandbox.stats()["open"] > 0)
        DISCONNECTS.append(point)
        closed_at = time.monotonic()
        assert sandbox.wait_idle(1.0), f"upstream websocket still open {time.monotonic() - closed_at:.2f} s after the client left"
        if in_time:
            break
    assert in_time, f"the client never left {point}: three times the machine woke it too late"
    assert_worker_healthy(calm)


def test_client_leaving_during_conversation_create_leaves_nothing_open(calm, sandbox):
    sandbox.queue_fault("create-slow=1")
    sock = open_raw(calm, stream_body(unique("leave during create")))
    time.sleep(0.2)
    leave(sock, b"", reset=False)
    DISCONNECTS.append("during-create")
    time.sleep(1.0)  # the create answers; the gateway must notice the client is gone
    assert sandbox.wait_idle(1.0)
    assert_worker_healthy(calm)


# A parked pool thread waits on a futex; a thread still serving (or stuck on) a request
# waits in poll/recv. Syscall numbers per architecture, from the kernel's tables.
FUTEX = {"x86_64": "202", "aarch64": "98"}.get(platform.machine())


@dataclass
class Usage:
    threads: int  # all threads of the worker process
    busy: int  # threads not parked on a futex: the main loop, plus any request in progress
    fds: int
    sockets: int

    @classmethod
    def of(cls, pid: int) -> Usage:
        tasks = os.listdir(f"/proc/{pid}/task")
        busy = 0
        for tid in tasks:
            try:
                busy += Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()[0] != FUTEX
            except OSError:
                pass  # the thread ended between listdir and read
        fds = os.listdir(f"/proc/{pid}/fd")
        sockets = 0
        for fd in fds:
            try:
                sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                pass  # closed between listdir and readlink
        return cls(len(tasks), busy if FUTEX else 0, len(fds), sockets)


LEAK_REPORT: dict[str, object] = {}
LATE_CLIENTS = [0]  # disconnects that missed their point because the machine was busy
BATCH = 25  # concurrent disconnects per round
ROUNDS = 8  # BATCH * ROUNDS = 200
# gthread's pool starts a thread whenever a request arrives while none is parked, and
# keeps it: the warm-up rounds grow it to about BATCH. A later round may still find a
# few threads of the round before finishing their 499, so the pool may add a few more.
# A leak (a thread stuck per abandoned request) adds one per disconnect: up to 200.
# The exact check is `busy`: once the clients are gone, no thread may still be in I/O.
THREAD_SLACK = 8
# Sockets and fds must come back to the baseline, but gunicorn closes a client
# connection only when its poller next sees the EOF: allow one still being retired.
# The REST leg keeps idle keep-alive connections to the upstream in one bounded
# process pool (bingo.upstream.tls.POOL_SIZE); a round a little more concurrent than
# the warm-up may leave a few more of them: idle, reused, and never more than a BATCH.
FD_SLACK = 1
POOL_SLACK = BATCH


def disconnect_round(gw: Gateway, sandbox: Sandbox, round_no: int) -> None:
    points = list(DISCONNECT_POINTS.items())
    jobs = [(points[(round_no * BATCH + i) % len(points)], (round_no + i) % 2 == 1) for i in range(BATCH)]  # FIN or RST
    with ThreadPoolExecutor(BATCH) as pool:
        futures = [pool.submit(fn, gw, reset) for (_, fn), reset in jobs]
        in_time = [future.result(timeout=30) for future in futures]
    if round_no > 0:
        DISCONNECTS.extend(name for (name, _), _ in jobs)
        # A client woken too late left after the 200 instead: still a disconnect to clean up.
        LATE_CLIENTS[0] += in_time.count(False)
    assert sandbox.wait_idle(1.0), f"round {round_no}: upstream websockets outlived their clients by over 1 s"


def settled_usage(pid: int, baseline: Usage | None = None, timeout: float = 5.0) -> Usage:
    """Usage once it stops moving (or, with a baseline, once it is back within slack)."""
    deadline, last = time.monotonic() + timeout, Usage.of(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = Usage.of(pid)
        if (baseline is not None and now.busy <= baseline.busy and now.fds <= baseline.fds + FD_SLACK + POOL_SLACK
                and now.sockets <= baseline.sockets + FD_SLACK + POOL_SLACK):
            return now
        if baseline is None and now == last:
            return now
        last = now
    return last


def test_200_disconnects_leak_no_thread_fd_or_socket(calm, sandbox):
    pid = calm.worker
    for warm_up in (-2, -1):  # the pool grows to this concurrency once
        disconnect_round(calm, sandbox, warm_up)
    assert_worker_healthy(calm)
    before = settled_usage(pid)
    creates = sandbox.stats()["creates"]
    started = time.monotonic()
    for round_no in range(1, ROUNDS + 1):
        disconnect_round(calm, sandbox, round_no)
    seconds = time.monotonic() - started
    assert_worker_healthy(calm)
    after = settled_usage(pid, baseline=before)
    stats = sandbox.stats()
    LEAK_REPORT.update(before=before, after=after, disconnects=BATCH * ROUNDS, seconds=round(seconds, 1),
                       creates=stats["creates"] - creates, late=LATE_CLIENTS[0])
    assert worker_pid(calm) == pid
    assert stats["open"] == 0
    assert after.busy <= before.busy, f"threads still serving abandoned requests: {before} -> {after}"
    assert after.threads <= before.threads + THREAD_SLACK, (before, after)
    assert after.fds <= before.fds + FD_SLACK + POOL_SLACK, (before, after)
    assert after.sockets <= before.sockets + FD_SLACK + POOL_SLACK, (before, after)
    # The pool is what may grow: a second set of rounds must leave it where it was.
    for round_no in range(ROUNDS + 1, ROUNDS + 3):
        disconnect_round(calm, sandbox, round_no)
    again = settled_usage(pid, baseline=after)
    assert again.fds <= max(after.fds, before.fds + POOL_SLACK) + FD_SLACK, (before, after, again)


# -- load: 200 streams at once in one gunicorn process ----------------------------------------

STREAMS = 200
LOAD_REPORT: dict[str, object] = {}


def test_200_concurrent_streams_each_get_their_own_exact_answer(calm, sandbox):
    """Every stream is held open at the same time; each answer echoes its own prompt."""
    token = uuid.uuid4().hex[:8]
    # Short answers, but a 3 s think first, so that all the streams are open at once.
    prompts = [f"stream {i:03d} {token} [sandbox:chars=160] [sandbox:updates=4] [sandbox:slow-first=3]" for i in range(STREAMS)]
    barrier = threading.Barrier(STREAMS + 1)
    peak, stop = {"open": 0, "at": 0.0}, threading.Event()

    def client(prompt: str) -> Exchange:
        barrier.wait(30)
        return chat(calm, prompt, stream=True, timeout=60)

    def monitor() -> None:
        while not stop.wait(0.02):
            now = sandbox.stats()["open"]
            if now > peak["open"]:
                peak.update(open=now, at=time.monotonic())

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(STREAMS) as pool:
        futures = [pool.submit(client, prompt) for prompt in prompts]
        barrier.wait(30)
        started = time.monotonic()
        while peak["open"] < STREAMS and time.monotonic() < started + 30 and not all(f.done() for f in futures):
            time.sleep(0.05)
        # While all of them are held, the process still answers a health check.
        health = call(calm, "GET", "/healthz", key=None, timeout=10)
        results = [future.result(timeout=max(1.0, started + 90 - time.monotonic())) for future in futures]
    stop.set()
    watcher.join(2)
    LOAD_REPORT.update(streams=STREAMS, peak_open=peak["open"], seconds_to_peak=round(peak["at"] - started, 1),
                       seconds=round(time.monotonic() - started, 1))

    assert health.status == 200
    ids = set()
    for i, exchange in enumerate(results):
        assert answer_of(exchange) == expected_content(prompts[i]), f"stream {i} got another answer"
        chunks = [e for e in exchange.events() if isinstance(e, dict)]
        assert {c["id"] for c in chunks} == {chunks[0]["id"]} and {c["model"] for c in chunks} == {"Creative"}
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["stop"]
        ids.add(chunks[0]["id"])
    assert len(ids) == STREAMS
    assert peak["open"] == STREAMS, f"only {peak['open']} streams were open at the same time"
    assert worker_pid(calm) == calm.worker  # type: ignore[attr-defined]
    assert "WORKER TIMEOUT" not in calm.log()


# -- bad input over real sockets: body size -------------------------------------------------

MAX_BODY = 4 * 1024 * 1024  # BINGO_MAX_BODY_BYTES' default, which these gateways keep


def post_with_requests(gw: Gateway, data: object) -> Exchange:
    """POST as the SDKs do (requests/urllib3 read an early 413 even while still sending)."""
    response = requests.post(f"{gw.base}/v1/chat/completions", data=data, timeout=30,
                             headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    exchange = Exchange("POST", "/v1/chat/completions", response.status_code, list(response.headers.items()), response.content)
    with _RECORD_LOCK:
        EXCHANGES.append(exchange)
    return exchange


def chunks_of(data: bytes, size: int = 65536) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked, no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def padded_body(prompt: str, size: int) -> bytes:
    """A valid chat body of exactly `size` bytes (an ignored field carries the padding)."""
    head = json.dumps({"messages": [{"role": "user", "content": prompt}], "user": ""}).encode()
    return head[:-2] + b"x" * (size - len(head)) + head[-2:]


def test_body_at_the_limit_is_read_and_one_byte_more_is_a_413(tight, sandbox):
    creates = sandbox.stats()["creates"]
    at_limit = b" " * (MAX_BODY - 2) + b"[]"  # read whole: valid JSON, but not an object, so a 400
    assert call(tight, "POST", "/v1/chat/completions", at_limit).status == 400
    over = post_with_requests(tight, at_limit + b" ")
    assert over.status == 413 and over.json()["error"]["code"] == "request_too_large"
    assert sandbox.stats()["creates"] == creates
    assert_worker_healthy(tight)


def test_chunked_body_under_the_limit_is_served(tight, sandbox):
    prompt = unique("chunked")
    exchange = post_with_requests(tight, chunks_of(padded_body(prompt, 300_000), 4096))
    assert answer_of(exchange) == expected_content(prompt)


def test_chunked_body_over_the_limit_is_a_413(tight, sandbox):
    creates = sandbox.stats()["creates"]
    exchange = post_with_requests(tight, chunks_of(padded_body(unique("too big"), MAX_BODY + 65536)))
    assert_worker_healthy(tight)
    assert sandbox.stats()["creates"] == creates + 1  # only the health check's own request
    assert (exchange.status, exchange.json()["error"]["code"]) == (413, "request_too_large")


# -- auth ----------------------------------------------------------------------------------

WRONG_CREDENTIALS = {
    "no header": {},
    "unknown key": {"Authorization": "Bearer sk-not-a-key"},
    "empty bearer": {"Authorization": "Bearer "},
    "key plus a character": {"Authorization": f"Bearer {KEY}x"},
    "key minus a character": {"Authorization": f"Bearer {KEY[:-1]}"},
    "key in another case": {"Authorization": f"Bearer {KEY.upper()}"},
    "both keys joined": {"Authorization": f"Bearer {','.join(API_KEYS)}"},
    "basic scheme": {"Authorization": "Basic " + base64.b64encode(f"user:{KEY}".encode()).decode()},
    "wrong api-key header": {"api-key": "sk-not-a-key"},
    "non-ascii key": {"Authorization": "Bearer ключ".encode().decode("latin-1")},
}


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "stream"])
@pytest.mark.parametrize("credentials", list(WRONG_CREDENTIALS.values()), ids=list(WRONG_CREDENTIALS))
def test_wrong_key_never_reaches_the_upstream(tight, sandbox, credentials, stream):
    before = sandbox.stats()
    upgrades = len(sandbox.upgrades)
    body = {"model": "Creative", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    exchange = call(tight, "POST", "/v1/chat/completions", body, key=None, headers=credentials)
    assert exchange.status == 401
    assert exchange.json()["error"]["code"] == "invalid_api_key"
    assert exchange.header("x-should-retry") == "false"
    assert call(tight, "GET", "/v1/models", key=None, headers=credentials).status == 401
    after = sandbox.stats()
    assert (after["creates"], after["connections"], len(sandbox.upgrades)) == (before["creates"], before["connections"], upgrades)


@pytest.mark.parametrize("credentials", [
    {"Authorization": f"Bearer {API_KEYS[0]}"},
    {"Authorization": f"bearer {API_KEYS[1]}"},
    {"api-key": API_KEYS[1]},
], ids=["first key", "second key, lowercase scheme", "azure api-key header"])
def test_every_configured_key_is_accepted(tight, sandbox, credentials):
    creates = sandbox.stats()["creates"]
    prompt = unique("keyed")
    exchange = call(tight, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}]},
                    key=None, headers=credentials)
    assert answer_of(exchange) == expected_content(prompt)
    assert sandbox.stats()["creates"] == creates + 1


@pytest.mark.parametrize("offered", ["first", "third", "wrong", "absent"])
def test_keys_are_compared_with_compare_digest_against_every_key(settings, monkeypatch, offered):
    """Constant time: hmac.compare_digest over all keys, whichever one matches (or none)."""
    keys = ("key-one-1111", "key-two-2222", "key-three-3333")
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(routes.hmac, "compare_digest", spy)
    client = create_app(with_settings(settings, api_keys=frozenset(keys))).test_client()
    header = {"first": keys[0], "third": keys[2], "wrong": "key-nope-0000"}.get(offered)
    response = client.get("/v1/models", headers={"Authorization": f"Bearer {header}"} if header else {})
    assert response.status_code == (401 if offered in ("wrong", "absent") else 200)
    assert sorted(b for _, b in calls) == sorted(k.encode() for k in keys), "every key, each exactly once"
    assert {a for a, _ in calls} == {(header or "").encode()}


# -- bugs this suite found, fixed in bingo/ -------------------------------------------------


def test_lone_surrogate_in_model_is_an_openai_400_over_gunicorn(tight, sandbox):
    creates = sandbox.stats()["creates"]
    raw = b'{"model": "Creative\\ud800", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    exchange = call(tight, "POST", "/v1/chat/completions", raw)
    spent = sandbox.stats()["creates"] - creates
    assert_worker_healthy(tight)
    assert exchange.status == 400 and exchange.json()["error"]["type"] == "invalid_request_error"
    assert spent == 0, "a Bing conversation was opened for a request that was always going to fail"


# -- the OpenAPI document --------------------------------------------------------------------

DOC_URI = "urn:bingo:openapi"
CONTRACT_REPORT: dict[str, int] = {}


class Contract:
    """Validates responses against bingo/openapi.json: the operation for the method and
    path, the response for the status, the schema for the media type; SSE events one by
    one (Speakeasy's convention: the event schema has a `data` property, and
    `x-speakeasy-sse-sentinel` names the `[DONE]` that ends a stream)."""

    def __init__(self, document: dict) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self._registry: Registry = Registry().with_resource(DOC_URI, resource)
        self._templates = [(re.compile("^" + re.sub(r"\\{[^/]+?\\}", "(.+)", re.escape(p)) + "$"), p)
                           for p in sorted(document["paths"], key=lambda p: p.count("{"))]
        self.seen: set[tuple[str, int, str]] = set()  # (operationId, status, media type)
        self.bodies = 0

    @classmethod
    def load(cls) -> Contract:
        return cls(json.loads(OPENAPI.read_text()))

    def pointer(self, ref: str) -> dict:
        """The node a local `#/...` reference points at."""
        node: object = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[unquote(part).replace("~1", "/").replace("~0", "~")]  # type: ignore[index]
        return node  # type: ignore[return-value]

    def resolve(self, node: dict, at: str = "") -> tuple[dict, str]:
        """Follow OpenAPI-level `$ref`s; returns the node and its own JSON pointer."""
        while "$ref" in node:
            at = node["$ref"]
            node = self.pointer(at)
        return node, at

    def validate(self, instance: object, pointer: str) -> None:
        """Validate against the schema at `pointer`, its `#/components/...` refs resolved in the document."""
        schema = {"$ref": f"{DOC_URI}{pointer}"}
        jsonschema.Draft202012Validator(schema, registry=self._registry).validate(instance)

    def operation(self, method: str, path: str) -> tuple[dict, str] | None:
        path = re.sub(r"/{2,}", "/", urlsplit(path).path).rstrip("/") or "/"
        template = next((p for rx, p in self._templates if rx.match(path)), None)
        if template is None and method == "POST" and path.endswith("/completions"):
            template = "/v1/chat/completions" if path.endswith("/chat/completions") else "/v1/completions"
        if template is None or method.lower() not in self.document["paths"][template]:
            return None
        return self.document["paths"][template][method.lower()], f"#/paths/{_escape(template)}/{method.lower()}"

    def check(self, method: str, path: str, status: int, media_type: str, body: bytes) -> None:
        """Raise AssertionError or a ValidationError when the response breaks the contract."""
        found = self.operation(method, path)
        if found is None:  # unknown path or method: the one error shape
            response, at = self.resolve({"$ref": "#/components/responses/Error"})
        else:
            operation, at = found
            responses = operation["responses"]
            key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
            assert key is not None, f"{method} {path}: status {status} is not documented"
            response, at = self.resolve(responses[key], f"{at}/responses/{key}")
            self.seen.add((operation["operationId"], status, media_type))
        assert media_type in response.get("content", {}), f"{method} {path} {status}: {media_type!r} is not documented"
        media, at = response["content"][media_type], f"{at}/content/{_escape(media_type)}/schema"
        if media_type == "text/event-stream":
            events = read_sse(body.decode("utf-8"))
            sentinel = media.get("x-speakeasy-sse-sentinel")
            for index, event in enumerate(events):
                if event == sentinel:
                    assert index == len(events) - 1, "events after the sentinel"
                    continue
                self.validate({"data": event}, at)
                self.bodies += 1
        else:
            self.validate(json.loads(body), at)
            self.bodies += 1


def _escape(token: str) -> str:
    """A JSON-pointer token."""
    return token.replace("~", "~0").replace("/", "~1")


def test_openapi_document_is_well_formed_and_served(tight):
    document = json.loads(OPENAPI.read_text())
    assert document["openapi"].startswith("3.1.")
    contract = Contract(document)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)

    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        assert ref.startswith("#/") and contract.pointer(ref), ref
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for path, item in document["paths"].items():
        for op in item.values():
            params = [contract.resolve(p)[0] for p in op.get("parameters", [])]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == set(re.findall(r"{([^}]+)}", path)), path
    # Every route the app serves is in the document (the catch-all by its /v1 forms).
    app = create_app(Settings())
    documented = {re.sub(r"{([^}]+)}", r"<\1>", p) for p in document["paths"]}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:path:)?([^>]+)>", r"<\1>", rule.rule).replace("<model_id>", "<model>")
        assert path in documented or path in ("/<prefix>/completions", "/static/<filename>"), path
    served = call(tight, "GET", "/openapi.json", key=None)
    assert served.status == 200 and served.json() == document


CONTRACT_SAMPLES = [
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "contract"}]}),
    ("POST", "/v1/chat/completions", {"stream": True, "stream_options": {"include_usage": True},
                                      "messages": [{"role": "user", "content": "contract"}]}),
    ("POST", "/v1/chat/completions", {"stream": True, "stop": "sandbox", "messages": [{"role": "user", "content": "contract"}]}),
    ("POST", "/v1/completions", {"model": "Precise", "prompt": "contract"}),
    ("POST", "/completions", {"model": "Precise", "prompt": "contract", "stream": True, "stream_options": {"include_usage": True}}),
    ("POST", "/openai/deployments/Balanced/chat/completions?api-version=2024-02-01", {"messages": [{"role": "user", "content": "c"}]}),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "[sandbox:apology]"}]}),
    ("POST", "/v1/chat/completions", {"messages": []}),
    ("POST", "/v1/chat/completions", {"n": 2, "messages": [{"role": "user", "content": "c"}]}),
    ("POST", "/v1/chat/completions", b"{not json"),
    ("GET", "/v1/chat/completions", None),
    ("GET", "/v1/models", None),
    ("GET", "/models/gpt-4", None),
    ("GET", "/v1/models/no-such-model", None),
    ("GET", "/v1/nowhere", None),
    ("GET", "/healthz", None),
    ("GET", "/openapi.json", None),
]


def test_every_response_matches_the_openapi_document(tight, sandbox):
    """Every response this module recorded (faults, disconnect survivors, load, auth), plus
    one of each kind, validated body by body and SSE event by event."""
    for method, path, body in CONTRACT_SAMPLES:
        call(tight, method, path, body)
    contract = Contract.load()
    failures = []
    for exchange in EXCHANGES:
        try:
            contract.check(exchange.method, exchange.path, exchange.status, exchange.media_type, exchange.body)
        except (AssertionError, jsonschema.ValidationError) as exc:
            failures.append(f"{exchange.method} {exchange.path} {exchange.status}: {str(exc)[:400]}")
    assert not failures, "\n".join(failures[:10])
    for expected in [("createChatCompletion", 200, "application/json"), ("createChatCompletion", 200, "text/event-stream"),
                     ("createCompletion", 200, "application/json"), ("createCompletionNoVersion", 200, "text/event-stream"),
                     ("createAzureChatCompletion", 200, "application/json"), ("createChatCompletion", 400, "application/json"),
                     ("listModels", 200, "application/json"), ("retrieveModel", 404, "application/json"),
                     ("retrieveModelNoVersion", 200, "application/json"), ("health", 200, "application/json")]:
        assert expected in contract.seen, expected
    CONTRACT_REPORT.update(responses=len(EXCHANGES), bodies=contract.bodies)



# -- secrets: last, over everything the module saw --------------------------------------------


SECRETS_REPORT: dict[str, int] = {}


def secret_pieces() -> list[str]:
    values = [*API_KEYS, ADMIN_KEY, *COOKIE_VALUES.values(), *COPILOT_COOKIE_VALUES.values()]
    pairs = [*COOKIE_VALUES.items(), *COPILOT_COOKIE_VALUES.items()]
    pieces = {COOKIE, COPILOT_COOKIE, ADMIN_KEY, *API_KEYS, *(f"{k}={v}" for k, v in pairs)}
    for value in values:
        pieces.update(value[i:i + SECRET_WINDOW] for i in range(len(value) - SECRET_WINDOW + 1))
    return sorted(pieces)


def test_secrets_never_appear_in_logs_bodies_or_headers(tight, sandbox):
    """Runs after every scenario above; also runs a few itself so it never checks nothing."""
    sandbox.queue_fault("create-500")
    chat(tight, "secrets: fault")
    chat(tight, "[sandbox:drop]", stream=True)
    call(tight, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, key="sk-wrong")
    chat(tight, "secrets: copilot", model="copilot")
    accounts = call(tight, "GET", "/v1/accounts", key=ADMIN_KEY)
    assert [(a["name"], a["kind"], a["last_minute"] > 0) for a in accounts.json()["data"]] == [
        ("reliability", "cookie", True)]
    assert call(tight, "GET", "/v1/accounts", key=API_KEYS[0]).status == 401  # an API key is not the admin key
    leave_mid_answer(tight, reset=True)
    assert sandbox.wait_idle(2.0)
    # The secrets were live: the upstream got the cookies, and the keys opened the API.
    assert any(COOKIE_VALUES["_U"] in (r["headers"].get("Cookie") or "") for r in sandbox.requests)
    assert any(COPILOT_COOKIE_VALUES["MSCC"] in (r["headers"].get("Cookie") or "") for r in sandbox.requests)
    pieces = secret_pieces()
    leaks = []
    for exchange in EXCHANGES:
        text = "\n".join(f"{k}: {v}" for k, v in exchange.headers) + "\n" + exchange.body.decode("utf-8", "replace")
        leaks += [(f"{exchange.method} {exchange.path} {exchange.status}", p) for p in pieces if p in text]
    for raw in RAW_RESPONSES:
        leaks += [("abandoned response", p) for p in pieces if p in raw.decode("utf-8", "replace")]
    time.sleep(0.2)  # the last access-log lines
    for gw in GATEWAYS:
        log = gw.log()
        assert "turn model=" in log and '"POST /v1/chat/completions HTTP/1.1"' in log  # the log is the real one
        leaks += [(f"gunicorn log {gw.log_path.name}", p) for p in pieces if p in log]
    assert not leaks, leaks[:10]
    SECRETS_REPORT.update(responses=len(EXCHANGES), abandoned=len(RAW_RESPONSES), logs=len(GATEWAYS),
                          log_lines=sum(len(gw.log().splitlines()) for gw in GATEWAYS), pieces=len(pieces))



def test_report_figures(capsys):
    """Print the figures for the README's reliability section (visible with -s or -rA)."""
    figures = {
        "faults tried (fault x mode)": len(FAULTS_TRIED),
        "client disconnects": len(DISCONNECTS),
        "leak check": LEAK_REPORT,
        "load": LOAD_REPORT,
        "contract": CONTRACT_REPORT,
        "secrets": SECRETS_REPORT,
    }
    with capsys.disabled():
        print("\nreliability figures:", json.dumps(figures, default=str, indent=1))
