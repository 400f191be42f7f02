"""What a ChatHub and a Copilot websocket session have in common.

A session owns one accepted websocket: a reader loop in the connection's thread,
one worker thread that plays turns (so pings and closes are noticed mid-turn),
and the ways a turn may end the connection (close, abort, drop, silence).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from .state import State
from .steps import Action, Send, Step

log = logging.getLogger(__name__)

MAX_QUEUED_TURNS = 16
WORKER_JOIN_SECONDS = 2.0


class Session:
    """Base class; subclasses implement `serve()`, the reader loop."""

    def __init__(self, conn: ServerConnection, state: State) -> None:
        self.conn = conn
        self.state = state
        # Set when the connection is over, for any reason.
        self.closed = threading.Event()
        self.closed_by_server = False  # a fault or stop() closed it, not the client
        self.silent = False  # a fault asked for total silence
        # Held across the pieces of a split record, so a ping cannot land inside it.
        self.send_lock = threading.RLock()
        self.recording = state.open_session(self)
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(
            MAX_QUEUED_TURNS
        )
        self._worker = threading.Thread(
            target=self._work, daemon=True, name="sandbox-turn"
        )
        self._worker.start()

    def serve(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        """Serve until the connection closes, then account for who closed it."""
        try:
            self.serve()
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("sandbox session crashed")
            self.closed_by_server = True
        finally:
            self.closed.set()
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                pass  # the worker sees `closed` after its current job
            self._worker.join(WORKER_JOIN_SECONDS)
            self.conn.close_socket()
            # 1000 only when the client sent a close frame, not when its socket just died.
            clean = not self.closed_by_server and self.conn.close_code == 1000
            self.state.close_session(self, by_client=not self.closed_by_server, clean=clean)

    def record(self, item: dict[str, Any]) -> None:
        self.state.record(self.recording, item)

    def receive(self, timeout: float) -> str | None:
        """The next text message, or None when `timeout` passes first."""
        try:
            message = self.conn.recv(timeout)
        except TimeoutError:
            return None
        return (
            message.decode("utf-8", "replace")
            if isinstance(message, bytes)
            else message
        )

    def send(self, *messages: str) -> None:
        """Send messages back to back; raises ConnectionClosed once the socket is gone."""
        with self.send_lock:
            for message in messages:
                self.conn.send(message)

    def pause(self, seconds: float) -> bool:
        """Sleep unless the session ends first; True means carry on."""
        if seconds > 0:
            return not self.closed.wait(seconds)
        return not self.closed.is_set()

    def play(
        self,
        steps: list[Step],
        send: Callable[[Send], bool | None],
        pause: Callable[[float], bool] | None = None,
    ) -> None:
        """Perform a script: pause, send, and end the way its last step says.

        `send` returning False, or `pause` returning False, stops the script there.
        """
        pause = pause or self.pause
        for step in steps:
            if not pause(step.pause) or self.silent:
                return
            if isinstance(step, Send):
                if send(step) is False:
                    return
            elif step.action is Action.DROP:
                return self.drop()
            elif step.action is Action.CLOSE:
                return self.close(1000)
            else:
                self.silent = True
                return

    def submit(self, job: Callable[[], None]) -> None:
        """Queue a turn for the worker; turns of one connection run one at a time."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            log.warning(
                "sandbox session dropped a turn: %d already queued", MAX_QUEUED_TURNS
            )

    def _work(self) -> None:
        while not self.closed.is_set():
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except ConnectionClosed:
                return
            except Exception:
                log.exception("sandbox turn crashed")

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket with a close frame (bounded by close_timeout)."""
        self.closed_by_server = True
        self.conn.close(code, reason)

    def drop(self) -> None:
        """Cut the TCP connection without a close frame, as a dying proxy would."""
        self.closed_by_server = True
        try:
            self.conn.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close_socket()

    def abort(self) -> None:
        """Called by Sandbox.stop(): end waits and say goodbye with 1001."""
        self.closed_by_server = True
        self.closed.set()
        self.conn.close(1001, "sandbox stopping")
