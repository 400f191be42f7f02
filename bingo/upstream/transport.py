"""Sockets for both upstreams: HTTP over urllib3's pools, websockets sent by websocket-client.

The only modules that touch the network libraries are this one, `tls.py`,
`sockets.py`, `upgrade.py` and `frames.py`. Every transport failure is translated here, once, with the cause
chained; what an HTTP status means is the failure table's call (`failures.py`).
Redirects are never followed: the cookie or token must not travel to another origin.
"""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import urllib3
import websocket

from ..config import Settings
from ..errors import UpstreamTimeout, UpstreamUnavailable
from . import failures, sockets, tls
from .upgrade import UpgradeRefused, upgrade
from .watchdog import WATCHDOG, Guard

REDIRECTS = (301, 302, 303, 307, 308)


def proxy_for(settings: Settings, url: str) -> str:
    """The proxy URL for a target, or "" when none applies (NO_PROXY honoured)."""
    host = urlsplit(url).hostname or ""
    if not settings.proxy or proxy_bypass_environment(host, {"no": settings.no_proxy}):
        return ""
    return settings.proxy


@dataclass(frozen=True)
class Reply:
    """An HTTP reply: status, headers (case-insensitive), decoded JSON (or None).

    Only the status shows in a repr: a token refresh's body holds tokens, and the
    headers and cookies a session's Set-Cookie.
    """

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: object = field(repr=False)
    cookies: Mapping[str, str] = field(repr=False)


# requests' default headers, in its order, which the caller's replace in place: the
# upstream sees the request it saw before. The empty User-Agent is left out when a
# caller sets none (the sign-in calls), and urllib3 sends its own.
DEFAULT_HEADERS = (("User-Agent", ""), ("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"), ("Connection", "keep-alive"))


def http_json(
    settings: Settings, upstream: str, method: str, url: str, headers: Mapping[str, str], what: str,
    body: dict | None = None, *, accept: tuple[int, ...] = (), form: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Reply:
    """Make one HTTP call on the process's pool and decode its JSON body.

    `body` is sent as JSON, `form` as application/x-www-form-urlencoded (OAuth),
    `data` as raw bytes (an attachment upload) with the Content-Type in `headers`.

    A 2xx or 3xx (or a status in `accept`) comes back as a Reply whose body is None
    when it is empty or not JSON, for the caller to judge; a redirect or any other
    status raises the failure table's error, and transport failures raise
    UpstreamUnavailable/Timeout.
    """
    proxy = proxy_for(settings, url)
    payload, content_type = _payload(body, form, data)
    reader = threading.get_ident()
    # The timeout bounds each read; the watchdog bounds the reply as a whole.
    guard = WATCHDOG.arm(time.monotonic() + settings.connect_timeout, lambda: tls.reading_socket(reader))
    try:
        response = tls.pool(settings.ca_bundle, proxy).urlopen(
            method, url, body=payload, headers=_request_headers(headers, payload, content_type), redirect=False,
            retries=False, timeout=urllib3.Timeout(connect=settings.connect_timeout, read=settings.connect_timeout),
        )  # the body is read before the connection goes back to the pool (tls.done_reading)
        content = response.data
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if guard.fired or _timed_out(exc):
            raise UpstreamTimeout(f"{what} timed out after {settings.connect_timeout:g} s.") from exc
        raise UpstreamUnavailable(f"{what} failed: cannot reach {_host(url)} ({_kind(exc)}).") from exc
    finally:
        guard.cancel()
        tls.done_reading()
    status = response.status
    if status in REDIRECTS:
        raise failures.for_redirect(what, _shown(response.headers.get("Location", "")))
    if status >= 400 and status not in accept:
        raise failures.for_status(upstream, status, what, response.headers.get("Retry-After"))
    try:
        decoded = json.loads(content) if content.strip() else None
    except ValueError:
        decoded = None
    return Reply(status, response.headers, decoded, _cookies(response.headers.getlist("Set-Cookie")))


def _kind(exc: BaseException) -> str:
    """The failure's name as requests gave it, which error messages have always shown."""
    if isinstance(exc, urllib3.exceptions.ProxyError):
        return "ProxyError"
    if isinstance(exc, (urllib3.exceptions.SSLError, ssl.SSLError)):
        return "SSLError"
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return "ContentDecodingError"
    return "ConnectionError"


def _timed_out(exc: BaseException) -> bool:
    # urllib3's NewConnectionError is a ConnectTimeoutError too (kept for compatibility):
    # a refused connection is not a timeout.
    timeouts = (urllib3.exceptions.TimeoutError, TimeoutError)
    return isinstance(exc, timeouts) and not isinstance(exc, urllib3.exceptions.NewConnectionError)


def _payload(body: dict | None, form: Mapping[str, str] | None, data: bytes | None) -> tuple[bytes | None, str | None]:
    """The bytes to send and their Content-Type (None: the caller's), as requests made them."""
    if form is not None:
        return urlencode(list(form.items()), doseq=True).encode(), "application/x-www-form-urlencoded"
    if data is not None:
        return data, None
    if body is not None:
        return json.dumps(body, allow_nan=False).encode(), "application/json"
    return None, None


def _request_headers(headers: Mapping[str, str], payload: bytes | None, content_type: str | None) -> dict[str, str]:
    """requests' defaults, overridden by the caller's names whatever their case, then the body's."""
    merged = {name.lower(): (name, value) for name, value in DEFAULT_HEADERS}
    for name, value in headers.items():
        merged[name.lower()] = (name, value)
    if payload is not None:
        merged["content-length"] = ("Content-Length", str(len(payload)))
        if content_type:
            merged.setdefault("content-type", ("Content-Type", content_type))
    return {name: value for name, value in merged.values() if value}


def _cookies(set_cookies: list[str]) -> dict[str, str]:
    """Name and value of every Set-Cookie (attributes aside); a later one wins."""
    found = {}
    for header in set_cookies:
        name, sep, value = header.split(";", 1)[0].partition("=")
        if sep and name.strip():
            found[name.strip()] = value.strip()
    return found


def open_websocket(
    settings: Settings, upstream: str, url: str, headers: Mapping[str, str], what: str,
) -> websocket.WebSocket:
    """Open a websocket within BINGO_CONNECT_TIMEOUT, as a wall-clock bound.

    The connection is opened by `sockets.connect` (buffered, one TLS context, session
    resumption) and upgraded by `upgrade.upgrade`. The socket timeout bounds
    each read; the watchdog bounds the whole phase, so a 101 trickled a byte at a
    time cannot hold the thread. Refusals, redirects and timeouts become typed errors.
    """
    holder: list[socket.socket | None] = [None]
    guard = WATCHDOG.arm(time.monotonic() + settings.connect_timeout, lambda: holder[0])
    try:
        sock = sockets.connect(settings, url, proxy_for(settings, url), holder)
        upgrade(sock, url, headers)
    except UpgradeRefused as exc:
        _close_quietly(holder[0])
        if exc.status in REDIRECTS:
            raise failures.for_redirect(what, _shown(exc.headers.get("location", ""))) from exc
        raise failures.for_status(upstream, exc.status, what, exc.headers.get("retry-after")) from exc
    except (OSError, ValueError) as exc:  # ValueError: sockets.WireError, upgrade.BadUpgrade
        _close_quietly(holder[0])
        if guard.fired or isinstance(exc, socket.timeout):
            raise UpstreamTimeout(f"{what} did not open within {settings.connect_timeout:g} s (BINGO_CONNECT_TIMEOUT).") from exc
        raise UpstreamUnavailable(f"{what} failed: cannot reach {_host(url)} ({type(exc).__name__}).") from exc
    finally:
        guard.cancel()
    if guard.fired:  # cut as the upgrade ended: the socket is dead already
        _close_quietly(holder[0])
        raise UpstreamTimeout(f"{what} did not open within {settings.connect_timeout:g} s (BINGO_CONNECT_TIMEOUT).")
    return _attach(sock, settings.connect_timeout)


def _attach(sock: sockets.BufferedSocket, timeout: float) -> websocket.WebSocket:
    """A websocket-client WebSocket that writes to the upgraded connection.

    bingo reads frames itself (FrameReader); websocket-client formats and masks what
    is sent. One thread reads and writes each socket (the watchdog only shuts it
    down), so its per-frame locks buy nothing.
    """
    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
    ws.sock_opt.timeout = timeout
    ws.sock, ws.connected = sock, True  # type: ignore[assignment]
    return ws


def _close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()


def guard_turn(ws: websocket.WebSocket, at: float) -> Guard:
    """Cut the socket at `at` (the total deadline), whatever a read is waiting for."""
    return WATCHDOG.arm(at, lambda: raw_socket(ws))


def raw_socket(ws: websocket.WebSocket) -> socket.socket | None:
    sock = ws.sock
    return sock.raw if isinstance(sock, sockets.BufferedSocket) else sock


def close_websocket(ws: websocket.WebSocket | None) -> None:
    """Send a close frame and drop the socket at once, without waiting for a reply."""
    if ws is None or not ws.connected:
        return
    if isinstance(ws.sock, sockets.BufferedSocket):
        ws.sock.remember_session()
    try:
        ws.send_close(websocket.STATUS_NORMAL)
    except (OSError, websocket.WebSocketException):
        pass
    _discard_unread(raw_socket(ws))
    ws.shutdown()


def _discard_unread(sock: socket.socket | None) -> None:
    """Read, without waiting, what already arrived and nobody will read.

    Closing a socket with unread bytes makes Linux reset the connection instead of
    ending it, and the upstream may then lose the close frame just sent. The raw
    socket's recv (TLS records too: the session ends here) and a bound on the reads.
    Non-blocking first: with a timeout set, CPython polls before a recv, flags or not.
    """
    if sock is None:
        return
    try:
        sock.setblocking(False)
        for _ in range(16):
            if not socket.socket.recv(sock, 65536):
                return
    except OSError:  # nothing waiting (BlockingIOError), or already closed or reset
        return


def send_text(ws: websocket.WebSocket, payload: str, what: str) -> None:
    try:
        ws.send(payload)
    except (OSError, websocket.WebSocketException) as exc:
        raise UpstreamUnavailable(f"{what} closed while the request was being sent.") from exc


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the upstream"


def _shown(url: str) -> str:
    """A URL fit for an error message: no user info, query or fragment."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
