"""What every thread of one sandbox shares: options, registry, faults, recordings, counters.

One State per Sandbox, never module-global, so several sandboxes can run in one
test process without seeing each other's conversations or faults.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from websockets.sync.server import ServerConnection

from .accounts import AccountRules
from .anon import AnonUsers
from .faults import FaultQueue
from .registry import Registry
from .uploads import Attachments


@dataclass(frozen=True, slots=True)
class Options:
    """Constructor options that shape behaviour (not the listening address)."""

    ping_interval: float = 10.0  # seconds between server pings on an idle socket
    max_turns: int = 30  # user messages per ChatHub conversation before TurnLimiter
    require_cookie: str | None = None  # creates must carry this in their Cookie header


class Closable(Protocol):
    """An open websocket session, as far as stopping and counting the sandbox is concerned."""

    conn: ServerConnection

    def abort(self) -> None: ...


class State:
    """Shared, lock-protected state; handler threads only touch it through methods."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.registry = Registry()
        self.faults = FaultQueue()
        self.attachments = Attachments()  # Copilot's /c/api/attachments
        self.accounts = AccountRules()  # per-account rules and who each turn was for
        self.anon = AnonUsers()  # anonymous users by their __Host-copilot-anon cookie
        # websockets' ServerConnection reads `socket_closed` to refuse handshakes
        # that race with shutdown; for us that is "the sandbox is stopping".
        self.socket_closed = threading.Event()
        self._lock = threading.Lock()
        self._received: list[list[dict[str, Any]]] = []
        self._requests: list[dict[str, Any]] = []
        self._upgrades: list[dict[str, Any]] = []
        self._sessions: set[Closable] = set()
        self._counts = {"connections": 0, "closed_by_client": 0, "closed_cleanly": 0, "creates": 0}

    @property
    def stopping(self) -> threading.Event:
        """Set once stop() begins; every wait in the sandbox also waits on it."""
        return self.socket_closed

    def record_request(self, entry: dict[str, Any]) -> None:
        """Keep one plain HTTP request for `Sandbox.requests`."""
        with self._lock:
            self._requests.append(entry)

    def record_upgrade(self, entry: dict[str, Any]) -> None:
        """Keep one websocket upgrade request (accepted or not) for `Sandbox.upgrades`."""
        with self._lock:
            self._upgrades.append(entry)

    def count_create(self) -> None:
        with self._lock:
            self._counts["creates"] += 1

    def open_session(self, session: Closable) -> list[dict[str, Any]]:
        """Register an accepted websocket; returns the list its received records go into."""
        recording: list[dict[str, Any]] = []
        with self._lock:
            self._received.append(recording)
            self._sessions.add(session)
            self._counts["connections"] += 1
        return recording

    def close_session(self, session: Closable, *, by_client: bool, clean: bool = False) -> None:
        with self._lock:
            self._sessions.discard(session)
            self._counts["closed_by_client"] += int(by_client)
            self._counts["closed_cleanly"] += int(clean)

    def record(self, recording: list[dict[str, Any]], item: dict[str, Any]) -> None:
        """Append one decoded client record under the lock, so readers see whole lists."""
        with self._lock:
            recording.append(item)

    def sessions(self) -> list[Closable]:
        with self._lock:
            return list(self._sessions)

    def received(self) -> list[list[dict[str, Any]]]:
        with self._lock:
            return [list(recording) for recording in self._received]

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def upgrades(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._upgrades)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "open": len(self._sessions)}
