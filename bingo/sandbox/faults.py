"""The queue of faults a test has asked for, shared by every thread of one sandbox.

A queued fault waits for the next stage that can take it (a create, an upgrade, a
handshake or a turn); each stage takes at most one, first in first out.
"""

from __future__ import annotations

import threading

from .directives import Directive, parse_spec


class FaultQueue:
    """Thread-safe FIFO of (name, value) faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Directive] = []

    def put(self, spec: str) -> None:
        """Queue one fault such as "create-500" or "delay=0.5"; raises ValueError if unknown."""
        directive = parse_spec(spec)
        with self._lock:
            self._items.append(directive)

    def take(self, accepted: frozenset[str]) -> Directive | None:
        """Remove and return the oldest fault this stage understands, if any."""
        with self._lock:
            for index, (name, _) in enumerate(self._items):
                if name in accepted:
                    return self._items.pop(index)
        return None

    def clear(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._items.clear()

    def pending(self) -> list[str]:
        """The queued faults as specs, oldest first (for /sandbox/stats)."""
        with self._lock:
            return [
                name if value is None else f"{name}={value}"
                for name, value in self._items
            ]
