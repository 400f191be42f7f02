"""Conversations and signatures this sandbox issued, and their turn counts.

The real services only honour ids and tokens they minted, so the sandbox keeps
them too; a client that invents, mangles or mixes them up gets refused.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from dataclasses import dataclass

_NANOID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# Three bytes that base64-encode to "+/+/": every encrypted signature then needs
# URL-encoding, which is the mistake this sandbox exists to catch.
_PLUS_SLASH = b"\xfb\xff\xbf"


@dataclass(slots=True)
class Conversation:
    """One issued conversation; `turns` counts the user messages it has received."""

    id: str
    protocol: str = (
        "chathub"  # or "copilot": an id only works on the side that issued it
    )
    client_id: str = ""
    signature: str = ""  # X-Sydney-Conversationsignature (or the legacy body field)
    encrypted: str = ""  # X-Sydney-Encryptedconversationsignature, the ws token
    legacy: bool = False  # pre-Oct-2023: signature in the body, no ws token
    turns: int = 0


def nanoid(size: int = 21) -> str:
    """A Copilot-style id: 21 URL-safe characters."""
    return "".join(secrets.choice(_NANOID_ALPHABET) for _ in range(size))


def new_encrypted_signature() -> str:
    """Long base64 that always contains '+', '/' and '=' (190 bytes pad with '==')."""
    raw = bytearray(os.urandom(190))
    at = 3 * secrets.randbelow(60)
    raw[at : at + 3] = _PLUS_SLASH
    return base64.b64encode(bytes(raw)).decode("ascii")


class Registry:
    """Thread-safe store of issued conversations, keyed by id and by ws token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Conversation] = {}
        self._by_token: dict[str, Conversation] = {}

    def issue_chathub(self, *, legacy: bool = False) -> Conversation:
        """Mint a ChatHub conversation with its client id and signatures."""
        conversation = Conversation(
            id="51D|BingProd|" + secrets.token_hex(32).upper(),
            client_id=str(10**14 + secrets.randbelow(9 * 10**14)),
            signature=base64.b64encode(os.urandom(48)).decode("ascii"),
            encrypted="" if legacy else new_encrypted_signature(),
            legacy=legacy,
        )
        with self._lock:
            self._by_id[conversation.id] = conversation
            if conversation.encrypted:
                self._by_token[conversation.encrypted] = conversation
        return conversation

    def issue_copilot(self) -> Conversation:
        """Mint a Copilot conversation (a bare nanoid)."""
        conversation = Conversation(id=nanoid(), protocol="copilot")
        with self._lock:
            self._by_id[conversation.id] = conversation
        return conversation

    def get(self, conversation_id: object, protocol: str) -> Conversation | None:
        """The conversation with this id, if this sandbox issued it for `protocol`."""
        with self._lock:
            found = (
                self._by_id.get(conversation_id)
                if isinstance(conversation_id, str)
                else None
            )
        return found if found is not None and found.protocol == protocol else None

    def by_token(self, token: str) -> Conversation | None:
        """The conversation whose encrypted signature is `token` (already URL-decoded)."""
        with self._lock:
            return self._by_token.get(token)

    def any_legacy(self) -> bool:
        """Whether a legacy create happened, after which tokenless upgrades are allowed."""
        with self._lock:
            return any(c.legacy for c in self._by_id.values())

    def count_turn(self, conversation: Conversation) -> int:
        """Record one more user message and return the new count."""
        with self._lock:
            conversation.turns += 1
            return conversation.turns
