"""The sandbox's store of uploaded images, shared by its HTTP and websocket sides.

Kept apart from `attachments.py` (the endpoint), which the shared State cannot import.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

URL_PREFIX = "/c/api/attachments/"
KEPT = 256  # uploads kept, the oldest dropped: a long-running demo sandbox stays small


@dataclass(frozen=True, slots=True)
class Attachment:
    url: str
    content_type: str
    data: bytes = field(repr=False)


class Attachments:
    """Uploaded images by URL (the last KEPT), and the tokens that have started a conversation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: set[str] = set()  # sha256 of each token that started a conversation
        self._stored: OrderedDict[str, Attachment] = OrderedDict()

    def start(self, token: str) -> None:
        with self._lock:
            self._sessions.add(digest(token.encode()))

    def started(self, token: str) -> bool:
        with self._lock:
            return digest(token.encode()) in self._sessions

    def store(self, content_type: str, data: bytes) -> Attachment:
        attachment = Attachment(URL_PREFIX + secrets.token_hex(12), content_type, data)
        with self._lock:
            self._stored[attachment.url] = attachment
            while len(self._stored) > KEPT:
                self._stored.popitem(last=False)
        return attachment

    def get(self, url: object) -> Attachment | None:
        with self._lock:
            return self._stored.get(url) if isinstance(url, str) else None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
