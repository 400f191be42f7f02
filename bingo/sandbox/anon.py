"""Copilot's anonymous users as the sandbox keeps them: one per `__Host-copilot-anon` cookie.

The service knows an anonymous client by the cookie its `/c/api/start` set (protocol
note 3.2, 3.3): a start that sends it back is the same user again, and so is a
websocket upgrade that carries it. Here a start without a cookie the sandbox issued
makes a new user ("anon-1", "anon-2", ...) and sets its cookie; a start with one is
that user again and sets nothing, unless the `anon-rotate` fault makes it set a new
value for the same user (the old value is forgotten, as a rotated session is).

Which user each start and each Copilot upgrade was ("" for none) is recorded in
order, so tests can tell one session per account from one per turn:
`Sandbox.anon_users()`. Pure bookkeeping under a lock; `create.py` and `upgrade.py` ask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie

ANON_COOKIE = "__Host-copilot-anon"


class AnonUsers:
    """Thread-safe: cookie value -> user, and the user of each start and upgrade."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_cookie: dict[str, str] = {}
        self._count = 0
        self._starts: list[str] = []
        self._upgrades: list[str] = []

    def start(self, cookie_header: str, issue: Callable[[], str], *, rotate: bool = False) -> tuple[str, str | None]:
        """(the user, the Set-Cookie header to send or None) for one `/c/api/start`.

        `issue()` makes a new Set-Cookie header (create.anon_cookie)."""
        with self._lock:
            user = self._by_cookie.get(cookie_value(cookie_header), "")
            set_cookie = None
            if not user or rotate:
                set_cookie = issue()
                if user:  # rotated: the old value no longer names anyone
                    self._by_cookie.pop(cookie_value(cookie_header))
                else:
                    self._count += 1
                    user = f"anon-{self._count}"
                self._by_cookie[cookie_value(set_cookie)] = user
            self._starts.append(user)
            return user, set_cookie

    def upgrade(self, cookie_header: str) -> None:
        """Record whose session a Copilot upgrade carries ("" for none the sandbox knows)."""
        with self._lock:
            self._upgrades.append(self._by_cookie.get(cookie_value(cookie_header), ""))

    def users(self) -> dict[str, list[str]]:
        """{"starts": [user per start], "upgrades": [user per Copilot upgrade]}, in order."""
        with self._lock:
            return {"starts": list(self._starts), "upgrades": list(self._upgrades)}


def cookie_value(header: str) -> str:
    """The `__Host-copilot-anon` value in a Cookie or Set-Cookie header ("" if none)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return ""
    morsel = jar.get(ANON_COOKIE)
    return morsel.value if morsel is not None else ""
