"""Sockets for both upstreams: HTTP over requests, websockets over websocket-client.

The only module that touches the network libraries. It translates every transport
failure into the gateway's error model, once, with the cause chained, and it owns the
deadline-aware receive loop (keep-alive ticks, idle and total timeouts, client gone).
"""
from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import requests
import websocket

from .config import Settings
from .errors import (
    BingoError,
    ClientDisconnected,
    UpstreamBlocked,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .events import ClientWatch

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)


def proxy_for(settings: Settings, url: str) -> str:
    """The proxy URL for a target, or "" when none applies (NO_PROXY honoured)."""
    host = urlsplit(url).hostname or ""
    if not settings.proxy or proxy_bypass_environment(host, {"no": settings.no_proxy}):
        return ""
    return settings.proxy


def http_json(
    settings: Settings, method: str, url: str, headers: Mapping[str, str], what: str, body: dict | None = None,
) -> tuple[requests.Response, object]:
    """Make one HTTP call and decode its JSON body; returns (response, body or None).

    A body that is empty or not JSON comes back as None for the caller to judge;
    transport failures raise UpstreamUnavailable or UpstreamTimeout.
    """
    proxy = proxy_for(settings, url)
    with requests.Session() as session:
        session.trust_env = False  # proxies come from Settings, read in one place
        try:
            response = session.request(
                method, url, headers=dict(headers), json=body,
                proxies={"http": proxy, "https": proxy} if proxy else None,
                timeout=(settings.connect_timeout, settings.connect_timeout),
            )
        except requests.Timeout as exc:
            raise UpstreamTimeout(f"{what} timed out after {settings.connect_timeout:g} s.") from exc
        except requests.RequestException as exc:
            raise UpstreamUnavailable(f"{what} failed: cannot reach {_host(url)} ({type(exc).__name__}).") from exc
    try:
        decoded = response.json() if response.content.strip() else None
    except ValueError:
        decoded = None
    return response, decoded


def open_websocket(settings: Settings, url: str, headers: Mapping[str, str], what: str) -> websocket.WebSocket:
    """Open a websocket with the connect timeout; refusals become typed errors."""
    proxy = urlsplit(proxy_for(settings, url))
    extra = {k: v for k, v in headers.items() if k.lower() != "origin"}
    try:
        return websocket.create_connection(
            url,
            timeout=settings.connect_timeout,
            # websocket-client sends its own Origin unless given one; two are a 400.
            origin=headers.get("Origin"),
            header=[f"{k}: {v}" for k, v in extra.items()],
            # The JSON decoder validates the text anyway; websocket-client's own UTF-8
            # check is pure Python and costs more than the rest of the relay.
            skip_utf8_validation=True,
            http_proxy_host=proxy.hostname,
            http_proxy_port=proxy.port,
            http_proxy_auth=(proxy.username, proxy.password) if proxy.username else None,
            proxy_type=proxy.scheme or "http",
            # Without a host, websocket-client would read http_proxy from the
            # environment itself; Settings already decided, so "*" turns that off.
            http_no_proxy=None if proxy.hostname else ["*"],
        )
    except websocket.WebSocketBadStatusException as exc:
        raise _refused(exc.status_code, what) from exc
    except (socket.timeout, websocket.WebSocketTimeoutException) as exc:
        raise UpstreamTimeout(f"{what} timed out after {settings.connect_timeout:g} s.") from exc
    except (OSError, websocket.WebSocketException) as exc:
        raise UpstreamUnavailable(f"{what} failed: cannot reach {_host(url)} ({type(exc).__name__}).") from exc


def _refused(status: int, what: str) -> BingoError:
    if status in (401, 403):
        return UpstreamRejected(
            f"{what} was refused with HTTP {status}: the cookie or the signature was not accepted. "
            "Refresh the cookie (BING_COOKIE or COPILOT_COOKIE) from a signed-in browser session."
        )
    if status == 200:
        return UpstreamBlocked(
            f"{what} answered a web page instead of a websocket: the service does not serve chat "
            "to this IP address or region. Use a proxy in a supported region (HTTPS_PROXY)."
        )
    return UpstreamUnavailable(f"{what} was refused with HTTP {status}.")


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the upstream"


def close_websocket(ws: websocket.WebSocket | None) -> None:
    """Send a close frame and drop the socket at once, without waiting for a reply."""
    if ws is None or not ws.connected:
        return
    try:
        ws.send_close(websocket.STATUS_NORMAL)
    except (OSError, websocket.WebSocketException):
        pass
    ws.shutdown()


@contextmanager
def closed_on_failure(ws: websocket.WebSocket) -> Iterator[None]:
    """Close the socket if opening the turn on it fails in any way, then re-raise."""
    try:
        yield
    except BaseException:
        close_websocket(ws)
        raise


def send_json(ws: websocket.WebSocket, payload: str, what: str) -> None:
    try:
        ws.send(payload)
    except (OSError, websocket.WebSocketException) as exc:
        raise UpstreamUnavailable(f"{what} closed while the request was being sent.") from exc


@dataclass
class Deadlines:
    """When a turn must end: no frame for `idle` seconds, or `total` in all."""

    idle: float
    total_at: float

    @classmethod
    def start(cls, settings: Settings) -> Deadlines:
        return cls(settings.idle_timeout, time.monotonic() + settings.total_timeout)


class FrameReader:
    """Reads text messages from a websocket with keep-alive ticks and deadlines."""

    def __init__(self, ws: websocket.WebSocket, deadlines: Deadlines, watch: ClientWatch | None, what: str) -> None:
        self._ws = ws
        self._deadlines = deadlines
        self._watch = watch
        self._what = what
        self._idle_at = time.monotonic() + deadlines.idle
        self._quiet_since = time.monotonic()
        self._poll = select.poll()
        assert ws.sock is not None, "FrameReader needs a connected websocket"
        self._poll.register(ws.sock.fileno(), select.POLLIN)
        if watch is not None:
            self._poll.register(watch.fileno(), select.POLLIN)

    def touch(self) -> None:
        """Note that the turn just handed something on; keep-alives count from here."""
        self._quiet_since = time.monotonic()

    def next(self, tick: float) -> str | None:
        """The next text message, or None once `tick` seconds have passed since the
        last touch() (or the last None) without the turn handing anything on.

        Upstream pings reset the idle deadline but not the tick: the HTTP client needs
        its keep-alive even while the upstream chatters. Raises UpstreamTimeout (idle
        or total deadline), UpstreamUnavailable (socket closed or dropped) and
        ClientDisconnected (the HTTP client went away).
        """
        tick_at = self._quiet_since + tick
        while True:
            wake_at = min(tick_at, self._idle_at, self._deadlines.total_at)
            if self._buffered() or self._wait(wake_at - time.monotonic()):
                return self._receive()
            now = time.monotonic()
            if now >= self._deadlines.total_at:
                raise UpstreamTimeout(f"{self._what} did not finish within BINGO_TOTAL_TIMEOUT.")
            if now >= self._idle_at:
                raise UpstreamTimeout(f"{self._what} sent nothing for {self._deadlines.idle:g} s (BINGO_IDLE_TIMEOUT).")
            if now >= tick_at:
                self._quiet_since = now
                return None

    def _buffered(self) -> bool:
        sock = self._ws.sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def _wait(self, seconds: float) -> bool:
        """Block until the upstream is readable (True) or the time is up (False)."""
        for fd, _ in self._poll.poll(max(0.0, seconds) * 1000):
            if self._watch is not None and fd == self._watch.fileno():
                if self._watch.gone():
                    raise ClientDisconnected("The client closed the connection.")
                self._poll.unregister(fd)  # pipelined bytes, not a close: stop watching
                self._watch = None
            else:
                return True
        return False

    def _receive(self) -> str | None:
        self._ws.settimeout(max(0.01, self._idle_at - time.monotonic()))
        try:
            opcode, data = self._ws.recv_data(control_frame=True)
        except (socket.timeout, websocket.WebSocketTimeoutException) as exc:
            raise UpstreamTimeout(f"{self._what} stalled in the middle of a frame.") from exc
        except (OSError, websocket.WebSocketException) as exc:
            raise UpstreamUnavailable(f"{self._what} dropped the connection mid-answer.") from exc
        self._idle_at = time.monotonic() + self._deadlines.idle
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise UpstreamUnavailable(f"{self._what} closed the websocket before the answer was complete.")
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        return ""  # a control frame (ping, pong): alive, but nothing to hand on
