"""The sandbox over TLS: https:// and wss:// on one port, trusted through a test CA.

The CA and the localhost/127.0.0.1 certificate are throw-away ones from trustme;
the clients are the ones the gateway uses (requests, websocket-client) and the
stdlib, each trusting only that CA.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
import websocket

from bingo.sandbox import Sandbox

COPILOT_CHAT = "/c/api/chat?api-version=2&clientSessionId=tls-test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_pem(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tls_sandbox(ca: trustme.CA) -> Iterator[Sandbox]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with Sandbox(tls=context) as sb:
        yield sb


def client_context(ca_pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_pem)


def test_tls_urls_are_https_and_wss(tls_sandbox: Sandbox) -> None:
    port = tls_sandbox.port
    assert tls_sandbox.base_url == f"https://127.0.0.1:{port}"
    assert tls_sandbox.copilot_url == f"https://127.0.0.1:{port}"
    assert tls_sandbox.create_url.startswith(f"https://127.0.0.1:{port}/")
    assert tls_sandbox.chathub_url == f"wss://127.0.0.1:{port}/sydney/ChatHub"


def test_tls_requests_with_the_ca_bundle_creates_a_conversation(
    tls_sandbox: Sandbox, ca_pem: str
) -> None:
    response = requests.get(tls_sandbox.create_url, verify=ca_pem, timeout=5)
    assert response.status_code == 200
    assert response.json()["result"]["value"] == "Success"


def test_tls_refuses_a_client_that_does_not_trust_the_ca(tls_sandbox: Sandbox) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_sandbox.create_url, verify=True, timeout=5)


def test_tls_websocket_client_with_an_ssl_context_gets_connected(
    tls_sandbox: Sandbox, ca_pem: str
) -> None:
    url = "wss://127.0.0.1:%d%s" % (tls_sandbox.port, COPILOT_CHAT)
    ws = websocket.create_connection(
        url, sslopt={"context": client_context(ca_pem)}, timeout=5
    )
    try:
        assert json.loads(ws.recv())["event"] == "connected"
    finally:
        ws.close()


def test_tls_http_keeps_the_connection_alive_between_requests(
    tls_sandbox: Sandbox, ca_pem: str
) -> None:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", tls_sandbox.port, context=client_context(ca_pem), timeout=5
    )
    try:
        replies, sockets = [], []
        for _ in range(2):
            connection.request("POST", "/c/api/start", body=b"{}")
            response = connection.getresponse()
            response.read()
            replies.append((response.status, response.getheader("Connection")))
            sockets.append(connection.sock)
        assert replies == [(200, "keep-alive")] * 2
        assert sockets[0] is sockets[1], "the second request reused the connection"
    finally:
        connection.close()


def raw_upgrade(sock: socket.socket, port: int, connection: str) -> bytes:
    """A websocket upgrade written by hand, with the `Connection` header given."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {COPILOT_CHAT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: {connection}\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {reply!r}"
        reply += chunk
    return reply


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_upgrade_with_connection_keep_alive_is_accepted(
    tls: bool, tls_sandbox: Sandbox, ca_pem: str
) -> None:
    # aiohttp lets a caller's `Connection: keep-alive` replace its `Upgrade` token.
    with Sandbox() as plain:
        port = tls_sandbox.port if tls else plain.port
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls:
            sock = client_context(ca_pem).wrap_socket(sock, server_hostname="127.0.0.1")
        with sock:
            reply = raw_upgrade(sock, port, "keep-alive")
    assert reply.startswith(b"HTTP/1.1 101 ")


def test_upgrade_on_a_kept_alive_https_connection_is_accepted(
    tls_sandbox: Sandbox, ca_pem: str
) -> None:
    sock = socket.create_connection(("127.0.0.1", tls_sandbox.port), timeout=5)
    with client_context(ca_pem).wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(
            b"POST /c/api/start HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        )
        first = b""
        while b"\r\n\r\n" not in first:
            first += tls.recv(4096)
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += tls.recv(4096)
        assert b"Connection: keep-alive" in head
        assert raw_upgrade(tls, tls_sandbox.port, "Upgrade").startswith(
            b"HTTP/1.1 101 "
        )


def test_cli_serves_tls_from_a_cert_and_key(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    command = [sys.executable, "-m", "bingo.sandbox", "--port", "0"]
    command += ["--tls-cert", str(tmp_path / "cert.pem")]
    command += ["--tls-key", str(tmp_path / "key.pem")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            lines = [process.stdout.readline().strip() for _ in range(3)]
        finally:
            process.terminate()
            process.wait(timeout=5)
    assert lines[0].startswith("BINGO_CREATE_URL=https://127.0.0.1:")
    assert lines[1].startswith("BINGO_CHATHUB_URL=wss://127.0.0.1:")
