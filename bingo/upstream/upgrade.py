"""The websocket upgrade (RFC 6455 section 4) on a connection sockets.py opened.

The request is the one websocket-client sends, header for header; the reply is read
as one block from the connection's buffer. websocket-client reads it a byte at a
time, five Python calls a byte, which was a fifth of opening a turn. Pure HTTP/1.1
over a socket; what a refusal means is transport.py's call.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from .sockets import BufferedSocket

MAX_HEAD = 64 * 1024
_ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class UpgradeRefused(Exception):
    """The server answered with another status than 101 (a redirect, a refusal, a page)."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(f"the upgrade was answered with HTTP {status}")
        self.status = status
        self.headers = headers  # names lower-cased


class BadUpgrade(ValueError):
    """A reply that is not HTTP, or a 101 that does not accept this upgrade."""


def upgrade(sock: BufferedSocket, url: str, headers: Mapping[str, str]) -> None:
    """Upgrade the connection to a websocket for ws(s):// `url`, sending `headers` too.

    Without an Origin in `headers`, the URL's own origin is sent (as websocket-client
    does). Raises UpgradeRefused, BadUpgrade, or the socket's own errors.
    """
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(_request(url, headers, key).encode())
    status, reply = _parse(sock.read_head(MAX_HEAD))
    if status != 101:
        raise UpgradeRefused(status, reply)
    if not (_has_token(reply, "upgrade", "websocket") and _has_token(reply, "connection", "upgrade")):
        raise BadUpgrade("a 101 without Upgrade: websocket and Connection: upgrade")
    expected = base64.b64encode(hashlib.sha1(f"{key}{_ACCEPT_GUID}".encode()).digest()).decode()
    if not hmac.compare_digest(expected.lower(), reply.get("sec-websocket-accept", "").lower()):
        raise BadUpgrade("a 101 whose Sec-WebSocket-Accept does not match the key sent")


def _request(url: str, headers: Mapping[str, str], key: str) -> str:
    target = urlsplit(url)
    host = target.hostname or ""
    packed = f"[{host}]" if ":" in host else host
    port = target.port or (443 if target.scheme == "wss" else 80)
    hostport = packed if port in (80, 443) else f"{packed}:{port}"
    resource = (target.path or "/") + (f"?{target.query}" if target.query else "")
    origin = headers.get("Origin") or f"{'https' if target.scheme == 'wss' else 'http'}://{hostport}"
    lines = [
        f"GET {resource} HTTP/1.1", "Upgrade: websocket", f"Host: {hostport}", f"Origin: {origin}",
        f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", "Connection: Upgrade",
        *(f"{name}: {value}" for name, value in headers.items() if name.lower() != "origin"),
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def _parse(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the headers, names lower-cased. Set-Cookie is dropped: nothing reads
    cookies off an upgrade reply, and a refused upgrade's headers ride on its exception."""
    try:
        status_line, *lines = head.decode("utf-8").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
    except (UnicodeDecodeError, IndexError, ValueError):
        raise BadUpgrade("a reply that is not HTTP") from None
    found: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadUpgrade("a reply header without a colon")
        name, value = name.strip().lower(), value.strip()
        if name != "set-cookie":
            found[name] = value
    return status, found


def _has_token(headers: Mapping[str, str], name: str, token: str) -> bool:
    return token in (part.strip().lower() for part in headers.get(name, "").split(","))
