"""HTTPS_PROXY / ALL_PROXY and NO_PROXY apply to both upstream legs (HTTP and websocket)."""
from __future__ import annotations

import base64
import socket
import threading
from urllib.parse import urlsplit

import pytest

from bingo.config import Settings
from bingo.upstream import open_turn, tls
from bingo.sandbox import answer_for
from tests.conftest import with_settings
from tests.helpers import deltas, read_turn, turn_request


class LoopbackProxy:
    """A tiny HTTP proxy (CONNECT tunnels and absolute-URI requests) to 127.0.0.1 only."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.credentials: list[str] = []  # each request's Proxy-Authorization ("" if none)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        for _ in range(100):  # bounded: a test makes a handful of connections
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                return client.close()
            head += chunk
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode().split(" ")
        self.seen.append(f"{method} {target}")
        fields = [field.split(b":", 1) for field in rest.partition(b"\r\n\r\n")[0].split(b"\r\n") if b":" in field]
        self.credentials.append(next((v.strip().decode() for k, v in fields if k.lower() == b"proxy-authorization"), ""))
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = self._connect(host, int(port))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            leftover = rest.partition(b"\r\n\r\n")[2]
        else:
            parts = urlsplit(target)
            upstream = self._connect(parts.hostname, parts.port or 80)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            leftover = f"{method} {path} {version}\r\n".encode() + rest
        if leftover:
            upstream.sendall(leftover)
        self._pipe(client, upstream)

    @staticmethod
    def _connect(host: str, port: int) -> socket.socket:
        assert host == "127.0.0.1", "the test proxy only forwards to loopback"
        return socket.create_connection((host, port), timeout=10)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        other = threading.Thread(target=copy, args=(b, a), daemon=True)
        other.start()
        copy(a, b)
        other.join(timeout=10)
        a.close()
        b.close()

    def close(self) -> None:
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture()
def proxy():
    server = LoopbackProxy()
    yield server
    tls.close_idle()  # kept-alive REST connections through the proxy would hold its threads
    server.close()


def ask(settings: Settings, text: str) -> str:
    return deltas(read_turn(open_turn(settings, turn_request("Creative", text))))


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "ALL_PROXY", "https_proxy"])
def test_both_legs_go_through_the_proxy(settings, sandbox, proxy, variable):
    proxied = with_settings(settings, proxy=Settings.from_env({variable: proxy.url}).proxy)
    assert ask(proxied, "via proxy") == answer_for("via proxy")
    port = urlsplit(sandbox.base_url).port
    assert proxy.seen[0] == f"GET {sandbox.create_url}"
    assert proxy.seen[1] == f"CONNECT 127.0.0.1:{port}"


def test_no_proxy_bypasses_it(settings, sandbox, proxy):
    bypassed = with_settings(settings, proxy=proxy.url, no_proxy="localhost,127.0.0.1")
    assert ask(bypassed, "direct") == answer_for("direct")
    assert proxy.seen == []


def test_proxy_credentials_from_its_url_go_to_the_proxy_on_both_legs(settings, sandbox, proxy):
    with_credentials = proxy.url.replace("http://", "http://us%40er:p%3Ass@")
    proxied = with_settings(settings, proxy=Settings.from_env({"HTTPS_PROXY": with_credentials}).proxy)
    assert ask(proxied, "with credentials") == answer_for("with credentials")
    expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert proxy.credentials[:2] == [expected, expected]
