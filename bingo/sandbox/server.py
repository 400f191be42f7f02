"""Sandbox: a loopback server speaking Bing ChatHub and Copilot on one port.

The accept loop peeks at each request line: websocket paths go to websockets
(`upgrade.py`), everything else to the stdlib HTTP handler (`rest.py`). This module
owns the listener, the threads and the public API; not the protocols.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from .rest import handler_for
from .state import Options, State
from .upgrade import CHATHUB_PATH, WEBSOCKET_PATHS, serve_websocket

log = logging.getLogger(__name__)

ACCEPT_SLICE = 0.2  # seconds; how often the accept loop checks for stop()
PEEK_SECONDS = 10.0  # a client that sends no request line by then is dropped
PEEK_BYTES = 8192
PEEK_NAP = 0.005
STOP_SECONDS = 5.0  # stop() gives threads this long, in all, to finish


class Sandbox:
    """A faithful local upstream for the gateway's ChatHub and Copilot clients."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 10.0,
        *,
        require_cookie: str | None = None,
        max_turns: int = 30,
    ) -> None:
        _check_loopback(host)
        self.host, self.port = host, port
        self._state = State(Options(ping_interval, max_turns, require_cookie))
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()

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
        return f"http://{host}:{self.port}"

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
            line = _peek_request_line(sock, self._state.stopping)
            if line is None:
                return
            if _is_websocket(line):
                serve_websocket(sock, self._state)
            else:
                # The stdlib handler wants its server only to store it; ours is unused.
                handler_for(self._state)(sock, address, cast(Any, self))
        except Exception:
            log.exception("sandbox connection failed")
        finally:
            with self._lock:
                self._sockets.discard(sock)
            _shutdown(sock)
            sock.close()

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


def _peek_request_line(sock: socket.socket, stopping: threading.Event) -> str | None:
    """The request line, read with MSG_PEEK so the socket stays untouched for websockets."""
    sock.settimeout(PEEK_SECONDS)
    deadline = time.monotonic() + PEEK_SECONDS
    try:
        while time.monotonic() < deadline and not stopping.is_set():
            data = sock.recv(PEEK_BYTES, socket.MSG_PEEK)
            if not data:
                return None
            if b"\n" in data or len(data) >= PEEK_BYTES:
                return data.split(b"\n", 1)[0].decode("latin-1")
            stopping.wait(PEEK_NAP)  # MSG_PEEK returns at once while data is pending
    except OSError:
        return None
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass
    return None


def _is_websocket(request_line: str) -> bool:
    parts = request_line.split()
    return (
        len(parts) >= 2
        and parts[0] == "GET"
        and urlsplit(parts[1]).path in WEBSOCKET_PATHS
    )


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
