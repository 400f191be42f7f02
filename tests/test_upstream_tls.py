"""One TLS setup per process: the CA bundle is loaded once, REST connections are reused.

Counted, not timed: every client-side CA load and every client TLS handshake goes
through `ssl.SSLContext`, so the test counts calls on that class while the real
client answers over https:// and wss:// from the sandbox (trustme's throw-away CA).
"""
from __future__ import annotations

import json
import socket
import ssl
import threading
from collections import Counter
from urllib.parse import urlsplit

import pytest
import trustme

from bingo.config import Settings
from bingo.sandbox import Sandbox, copilot_answer_for
from bingo.upstream import open_turn, sockets, tls
from tests.conftest import with_settings
from tests.helpers import deltas, read_turn, turn_request
from tests.test_proxy import LoopbackProxy

ANSWERS = 5


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_pem(ca, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tls_sandbox(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with Sandbox(host="127.0.0.1", port=0, tls=context) as server:
        yield server


@pytest.fixture()
def tls_settings(tls_sandbox, ca_pem) -> Settings:
    tls_sandbox.clear_faults()
    return Settings(
        upstream="chathub", create_url=tls_sandbox.create_url, chathub_url=tls_sandbox.chathub_url,
        copilot_url=tls_sandbox.copilot_url, ca_bundle=ca_pem,
        connect_timeout=5.0, idle_timeout=5.0, total_timeout=20.0, keepalive_seconds=0.5,
    )


@pytest.fixture()
def counted(monkeypatch):
    """Counts CA loads and client TLS handshakes on every SSLContext, from a fresh process state."""
    monkeypatch.setattr(tls, "_contexts", {})
    monkeypatch.setattr(tls, "_managers", {})
    calls: Counter[str] = Counter()
    for name in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
        original = getattr(ssl.SSLContext, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            calls["ca loads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ssl.SSLContext, name, counting)
    wrap = ssl.SSLContext.wrap_socket

    def counting_wrap(self, sock, *args, server_side=False, **kwargs):
        if not server_side:
            calls[f"handshakes to {urlsplit('//' + str(kwargs.get('server_hostname'))).hostname}"] += 1
            calls["handshakes"] += 1
        return wrap(self, sock, *args, server_side=server_side, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "wrap_socket", counting_wrap)
    return calls


@pytest.mark.parametrize("model", ["Creative", "copilot"], ids=["chathub", "copilot"])
def test_answers_over_tls_load_the_ca_once_and_reuse_the_rest_connection(tls_settings, counted, model):
    for n in range(ANSWERS):
        events = read_turn(open_turn(tls_settings, turn_request(model, f"tls {n}")))
        assert deltas(events)
    assert counted["ca loads"] == 1, counted
    # One TLS connection for every conversation create on this thread, plus one websocket per answer.
    assert counted["handshakes"] == 1 + ANSWERS, counted


def test_threads_share_the_pool_at_most_one_rest_connection_each(tls_settings, counted):
    errors: list[BaseException] = []

    def answers() -> None:
        try:
            for n in range(3):
                read_turn(open_turn(tls_settings, turn_request("copilot", f"thread {n}")))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=answers) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert counted["ca loads"] == 1, counted
    assert counted["handshakes"] - 9 <= 3, counted  # 9 websockets; REST: at most one per thread


def test_the_answer_over_tls_is_exact(tls_settings):
    events = read_turn(open_turn(tls_settings, turn_request("copilot", "exact over tls")))
    assert deltas(events) == copilot_answer_for("exact over tls").text


def test_a_ca_that_does_not_sign_the_upstream_is_refused(tls_settings, tmp_path, monkeypatch):
    monkeypatch.setattr(tls, "_contexts", {})
    monkeypatch.setattr(tls, "_managers", {})
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(Exception) as raised:
        open_turn(with_settings(tls_settings, ca_bundle=str(other)), turn_request("copilot", "untrusted"))
    assert raised.value.status == 502 and raised.value.code == "upstream_unavailable"


def test_both_tls_legs_go_through_the_proxy_and_no_proxy_bypasses_it(tls_settings, tls_sandbox):
    proxy = LoopbackProxy()
    try:
        proxied = with_settings(tls_settings, proxy=proxy.url)
        assert deltas(read_turn(open_turn(proxied, turn_request("copilot", "via proxy"))))
        port = tls_sandbox.port
        assert proxy.seen[:2] == [f"CONNECT 127.0.0.1:{port}", f"CONNECT 127.0.0.1:{port}"]
        seen = len(proxy.seen)
        bypassed = with_settings(proxied, no_proxy="127.0.0.1")
        assert deltas(read_turn(open_turn(bypassed, turn_request("copilot", "direct"))))
        assert len(proxy.seen) == seen
    finally:
        proxy.close()


def test_the_next_websocket_to_the_same_upstream_resumes_its_tls_session(tls_settings, counted):
    reused = []
    for n in range(3):
        turn = open_turn(tls_settings, turn_request("copilot", f"resume {n}"))
        reused.append(turn._ws.sock.raw.session_reused)
        read_turn(turn)
    assert reused == [False, True, True]


def test_a_websocket_that_resumed_the_kept_session_does_not_copy_it_again(tls_settings, counted, monkeypatch):
    reads = []
    session = ssl.SSLSocket.session

    def counting(sock):
        reads.append(sock)
        return session.fget(sock)

    monkeypatch.setattr(ssl.SSLSocket, "session", property(counting, session.fset))
    for n in range(4):
        read_turn(open_turn(tls_settings, turn_request("copilot", f"kept {n}")))
    # The first websocket's session is read once, at its close; the three that resumed it leave it kept.
    assert len(reads) == 1
    assert counted["handshakes"] == 1 + 4


@pytest.mark.parametrize("model", ["Creative", "copilot"], ids=["chathub", "copilot"])
def test_the_rest_call_sends_the_headers_requests_sent_in_its_order(settings, sandbox, model):
    read_turn(open_turn(with_settings(settings, bing_cookie="_U=abc"), turn_request(model, "headers")))
    call = sandbox.requests[-1]
    names = [name for name in call["headers"] if name != "Host"]
    if model == "Creative":
        assert names == ["User-Agent", "Accept-Encoding", "Accept", "Connection", "Accept-Language", "Origin",
                         "Referer", "x-ms-useragent", "Cookie"]
    else:
        assert names == ["User-Agent", "Accept-Encoding", "Accept", "Connection", "X-Search-UILang",
                         "Content-Length", "Content-Type"]
        body = json.dumps(call["body"]).encode()
        assert call["headers"]["Content-Length"] == str(len(body))
    assert call["headers"]["Accept-Encoding"] == "gzip, deflate"
    assert call["headers"]["Connection"] == "keep-alive"


def test_a_read_takes_a_whole_tls_record_so_nothing_waits_inside_the_tls_layer(ca):
    """The frame reader polls the socket whenever its own buffer holds no whole frame, so
    no decrypted byte may be left in the TLS layer after a read: each read asks for TLS's
    largest record. Frames that share a record, a record of exactly 2**14 bytes and a frame
    spread over three records all come out whole, with SSL_pending 0 after every read."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    left, right = socket.socketpair()
    served: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(right, server_side=True) as tls_server:
                tls_server.sendall(frame(b"a") + frame(b"bb") + frame(b"ccc"))  # one record
                tls_server.sendall(frame(b"d" * (sockets.READ_SIZE - 4)))  # 2 + 2 + payload: one full record
                tls_server.sendall(frame(b"e" * 40_000))  # three records
                tls_server.recv(1)  # until the client is done
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            served.append(exc)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    client = client_context.wrap_socket(left, server_hostname="localhost")
    client.settimeout(5)
    try:
        buffered = sockets.BufferedSocket(client)
        payloads = []
        for _ in range(5):
            payloads.append(buffered.read_frame()[2])
            assert client.pending() == 0
        assert payloads == [b"a", b"bb", b"ccc", b"d" * (sockets.READ_SIZE - 4), b"e" * 40_000]
        assert not buffered.pending() and not buffered.holds_frame()
    finally:
        client.close()
        server.join(5)
    assert not served


def frame(payload: bytes) -> bytes:
    """An unmasked final text frame, as a server writes it."""
    size = len(payload)
    head = bytes([0x81, size]) if size < 126 else bytes([0x81, 126]) + size.to_bytes(2, "big")
    return head + payload
