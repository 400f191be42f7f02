"""Sockets for both upstreams: HTTP over requests, websockets over websocket-client.

The only modules that touch the network libraries are this one, `tls.py`,
`sockets.py` and `frames.py`. Every transport failure is translated here, once, with the cause
chained; what an HTTP status means is the failure table's call (`failures.py`).
Redirects are never followed: the cookie or token must not travel to another origin.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import requests
import websocket
import websocket._handshake
from websocket._cookiejar import SimpleCookieJar

from ..config import Settings
from ..errors import UpstreamTimeout, UpstreamUnavailable
from . import failures, sockets, tls
from .watchdog import WATCHDOG, Guard

_REDIRECTS = (301, 302, 303, 307, 308)


class _NoCookies(SimpleCookieJar):
    """websocket-client keeps Set-Cookie from every upgrade in one process-wide jar
    and sends it on later upgrades to the same host: one user's upstream session
    would ride on another's request. bingo sends exactly the cookies it means to."""

    def add(self, set_cookie: str | None) -> None:
        pass

    def set(self, set_cookie: str | None) -> None:
        pass

    def get(self, host: str) -> str:
        return ""


websocket._handshake.CookieJar = _NoCookies()


def proxy_for(settings: Settings, url: str) -> str:
    """The proxy URL for a target, or "" when none applies (NO_PROXY honoured)."""
    host = urlsplit(url).hostname or ""
    if not settings.proxy or proxy_bypass_environment(host, {"no": settings.no_proxy}):
        return ""
    return settings.proxy


@dataclass(frozen=True)
class Reply:
    """An HTTP reply: status, headers (case-insensitive), decoded JSON (or None)."""

    status: int
    headers: Mapping[str, str]
    body: object
    cookies: Mapping[str, str]


def http_json(
    settings: Settings, upstream: str, method: str, url: str, headers: Mapping[str, str], what: str,
    body: dict | None = None, *, accept: tuple[int, ...] = (), form: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Reply:
    """Make one HTTP call on the process's pooled session and decode its JSON body.

    `body` is sent as JSON, `form` as application/x-www-form-urlencoded (OAuth),
    `data` as raw bytes (an attachment upload) with the Content-Type in `headers`.

    A 2xx (or a status in `accept`) comes back as a Reply whose body is None when
    it is empty or not JSON, for the caller to judge; any other status raises the
    failure table's error, and transport failures raise UpstreamUnavailable/Timeout.
    """
    proxy = proxy_for(settings, url)
    reader = threading.get_ident()
    # requests' timeout bounds each read; the watchdog bounds the reply as a whole.
    guard = WATCHDOG.arm(time.monotonic() + settings.connect_timeout, lambda: tls.reading_socket(reader))
    try:
        response = tls.session(settings.ca_bundle).request(
            method, url, headers=dict(headers), json=body, data=form if form is not None else data,
            allow_redirects=False,
            proxies={"http": proxy, "https": proxy} if proxy else None,
            timeout=(settings.connect_timeout, settings.connect_timeout),
        )
    except requests.RequestException as exc:
        if guard.fired or isinstance(exc, requests.Timeout):
            raise UpstreamTimeout(f"{what} timed out after {settings.connect_timeout:g} s.") from exc
        raise UpstreamUnavailable(f"{what} failed: cannot reach {_host(url)} ({type(exc).__name__}).") from exc
    finally:
        guard.cancel()
        tls.done_reading()
    if response.status_code in _REDIRECTS:
        raise failures.for_redirect(what, _shown(response.headers.get("Location", "")))
    if not response.ok and response.status_code not in accept:
        raise failures.for_status(upstream, response.status_code, what, response.headers.get("Retry-After"))
    try:
        decoded = response.json() if response.content.strip() else None
    except ValueError:
        decoded = None
    cookies = {name: value or "" for name, value in response.cookies.get_dict().items()}
    return Reply(response.status_code, response.headers, decoded, cookies)


def open_websocket(
    settings: Settings, upstream: str, url: str, headers: Mapping[str, str], what: str,
) -> websocket.WebSocket:
    """Open a websocket within BINGO_CONNECT_TIMEOUT, as a wall-clock bound.

    The connection is opened by `sockets.connect` (buffered, one TLS context, session
    resumption); websocket-client does the upgrade on it. The socket timeout bounds
    each read; the watchdog bounds the whole phase, so a 101 trickled a byte at a
    time cannot hold the thread. Refusals, redirects and timeouts become typed errors.
    """
    # The JSON decoder validates the text anyway; websocket-client's own UTF-8
    # check is pure Python and costs more than the rest of the relay.
    # One thread reads and writes each socket (the watchdog only shuts it down), so
    # websocket-client's per-frame locks buy nothing.
    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
    holder: list[socket.socket | None] = [None]
    guard = WATCHDOG.arm(time.monotonic() + settings.connect_timeout, lambda: holder[0])
    try:
        sock = sockets.connect(settings, url, proxy_for(settings, url), holder)
        ws.connect(
            url, socket=sock, timeout=settings.connect_timeout, redirect_limit=0,
            # websocket-client sends its own Origin unless given one; two are a 400.
            origin=headers.get("Origin"),
            header=[f"{k}: {v}" for k, v in headers.items() if k.lower() != "origin"],
        )
    except websocket.WebSocketBadStatusException as exc:
        _close_quietly(holder[0])
        raise failures.for_status(upstream, exc.status_code, what, _header(exc, "retry-after")) from exc
    except (OSError, websocket.WebSocketException) as exc:
        _close_quietly(holder[0])
        redirect = getattr(ws, "handshake_response", None)
        if redirect is not None and redirect.status in _REDIRECTS:  # redirect_limit=0 stops there
            raise failures.for_redirect(what, _shown(redirect.headers.get("location", ""))) from exc
        if guard.fired or isinstance(exc, (socket.timeout, websocket.WebSocketTimeoutException)):
            raise UpstreamTimeout(f"{what} did not open within {settings.connect_timeout:g} s (BINGO_CONNECT_TIMEOUT).") from exc
        raise UpstreamUnavailable(f"{what} failed: cannot reach {_host(url)} ({type(exc).__name__}).") from exc
    finally:
        guard.cancel()
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
    ws.shutdown()


def send_text(ws: websocket.WebSocket, payload: str, what: str) -> None:
    try:
        ws.send(payload)
    except (OSError, websocket.WebSocketException) as exc:
        raise UpstreamUnavailable(f"{what} closed while the request was being sent.") from exc


def _header(exc: websocket.WebSocketBadStatusException, name: str) -> str | None:
    headers = getattr(exc, "resp_headers", None) or {}
    return headers.get(name)


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the upstream"


def _shown(url: str) -> str:
    """A URL fit for an error message: no user info, query or fragment."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
