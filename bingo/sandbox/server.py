"""Sandbox: a loopback server speaking Bing ChatHub and Copilot on one port.

Plain connections are routed by peeking at the request head: websocket upgrades go
straight to websockets (`upgrade.py`), everything else to the HTTP handler
(`rest.py`, with keep-alive from `front.py`). With TLS nothing can be peeked, so
every connection starts in the HTTP handler, which hands upgrades over (`front.py`).
This module owns the listener, the threads and the public API; not the protocols.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, cast

from .front import front_handler_for, is_plain_upgrade, peek_head, server_context
from .state import Options, State
from .upgrade import CHATHUB_PATH, serve_websocket

log = logging.getLogger(__name__)

ACCEPT_SLICE = 0.2  # seconds; how often the accept loop checks for stop()
# A client that has not finished its TLS handshake by then is dropped.
TLS_HANDSHAKE_SECONDS = 10.0
STOP_SECONDS = 5.0  # stop() gives threads this long, in all, to finish


class Sandbox:
    """A faithful local upstream for the gateway's ChatHub and Copilot clients.

    `tls` (a server-side SSLContext) or `certfile`/`keyfile` (PEM) make the same
    port speak https:// and wss:// instead of http:// and ws://.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 10.0,
        *,
        require_cookie: str | None = None,
        max_turns: int = 30,
        tls: ssl.SSLContext | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        _check_loopback(host)
        self.host, self.port = host, port
        self._tls = tls or (server_context(certfile, keyfile) if certfile else None)
        self._state = State(Options(ping_interval, max_turns, require_cookie))
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._handler = front_handler_for(
            self._state,
            functools.partial(serve_websocket, state=self._state),
            self._spawn,
        )

    # Lifecycle

    def start(self) -> Sandbox:
        """Listen and accept in a daemon thread; returns self once listening."""
        if self._listener is not None:
            raise RuntimeError("sandbox already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server(
            (self.host, self.port), family=family, backlog=128
        )
        self._listener.settimeout(ACCEPT_SLICE)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop, "sandbox-accept")
        log.info("sandbox listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then join all threads (bounded)."""
        self._state.stopping.set()
        if self._listener is not None:
            _shutdown(self._listener)  # wakes accept() at once on Linux
            self._listener.close()
        aborts = [
            threading.Thread(target=s.abort, daemon=True)
            for s in self._state.sessions()
        ]
        for thread in aborts:
            thread.start()
        deadline = time.monotonic() + STOP_SECONDS
        for thread in aborts:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:  # wakes HTTP handlers still reading a request
            _shutdown(sock)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Sandbox:
        return self if self._listener is not None else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Addresses

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def create_url(self) -> str:
        return self.base_url + "/turing/conversation/create"

    @property
    def chathub_url(self) -> str:
        return "ws" + self.base_url[len("http") :] + CHATHUB_PATH

    @property
    def copilot_url(self) -> str:
        return self.base_url

    # Faults and observations

    def queue_fault(self, spec: str) -> None:
        """Queue one fault for the next stage that can take it; ValueError if unknown."""
        self._state.faults.put(spec)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def account_rule(self, marker: str, rule: str) -> None:
        """Refuse or throttle the account whose credentials contain `marker` (accounts.py)."""
        self._state.accounts.set(marker, rule)

    def check_tokens(self, check: Callable[[str], bool] | None) -> None:
        """Every Bearer token and accessToken must pass `check`, else 401 (accounts.py)."""
        self._state.accounts.check_tokens(check)

    def clear_account_rules(self) -> None:
        """Forget every account rule and the token check."""
        self._state.accounts.clear()

    def served(self, markers: Iterable[str]) -> list[str]:
        """Per Copilot conversation created, in order: the first marker its create carried, or ""."""
        return self._state.accounts.served(markers)

    def anon_users(self) -> dict[str, list[str]]:
        """The anonymous user of each /c/api/start and each Copilot upgrade, in order:
        {"starts": [...], "upgrades": [...]}, "anon-N" by cookie ("" for none; `anon.py`)."""
        return self._state.anon.users()

    @property
    def received(self) -> list[list[dict[str, Any]]]:
        """Per websocket connection, every record/event the client sent, decoded."""
        return self._state.received()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Per plain HTTP request (not /sandbox/*): method, path, query, headers."""
        return self._state.requests()

    @property
    def upgrades(self) -> list[dict[str, Any]]:
        """Per websocket upgrade request, accepted or refused: path, query, headers."""
        return self._state.upgrades()

    def stats(self) -> dict[str, int]:
        return self._state.stats()

    def live_sockets(self) -> int:
        """Websockets open whose client has not closed its end: the kernel's view.

        A session notices a client's close on its own thread, moments later (more
        under load), and `stats()["open"]` counts it until then; a client that
        closes a socket and then opens another (a gateway giving an account's slot
        to its next turn) would look like two at once there. Here a socket counts
        until its client's FIN arrives, which on loopback the kernel delivers
        during the client's close() itself."""
        return sum(1 for session in self._state.sessions() if not _peer_closed(session.conn.socket))

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """True once no websocket is open; False if `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while self._state.stats()["open"]:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    # Connections

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._state.stopping.is_set():
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            sock.settimeout(None)
            # Bing answers with small frames back to back; without this, Nagle holds
            # the second one until the client's delayed ACK (40 ms on Linux).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(functools.partial(self._serve, sock, address), "sandbox-conn")

    def _serve(self, sock: socket.socket, address: Any) -> None:
        with self._lock:
            self._sockets.add(sock)
        try:
            if self._tls is not None:
                sock = self._wrap(sock)
            else:
                head = peek_head(sock, self._state.stopping)
                if head is None:
                    return
                if is_plain_upgrade(head):
                    serve_websocket(sock, self._state)
                    return
            # The stdlib handler wants its server only to store it; ours is unused.
            self._handler(sock, address, cast(Any, self))
        except OSError as exc:  # resets, TLS failures: the client's business
            log.debug("sandbox connection ended: %s", exc)
        except Exception:
            log.exception("sandbox connection failed")
        finally:
            with self._lock:
                self._sockets.discard(sock)
            _shutdown(sock)
            sock.close()

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        """The server side of the TLS handshake, bounded in time."""
        assert self._tls is not None
        sock.settimeout(TLS_HANDSHAKE_SECONDS)
        wrapped = self._tls.wrap_socket(sock, server_side=True)
        wrapped.settimeout(None)
        with self._lock:  # stop() must shut down the socket that now owns the fd
            self._sockets.discard(sock)
            self._sockets.add(wrapped)
        return wrapped

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                target()
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _check_loopback(host: str) -> None:
    """The sandbox must never listen beyond this machine."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"sandbox host must be a loopback address, not {host!r}")


def _peer_closed(sock: socket.socket) -> bool:
    """True once the peer shut its end (a FIN arrived) or the socket is closed here;
    polls without reading, so the session's own reads are untouched."""
    fileno = sock.fileno()
    if fileno < 0:
        return True
    poll = select.poll()
    poll.register(fileno, select.POLLRDHUP)
    return any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLNVAL) for _, events in poll.poll(0))
