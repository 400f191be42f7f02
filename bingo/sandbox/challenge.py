"""Copilot's anti-bot challenges as the sandbox poses and checks them.

Pure: a Challenge is made from a fault name, and a client's `challengeResponse`
is judged against it. No sockets here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HASHCASH_BITS = 8
METHODS = {"challenge": None, "hashcash": "hashcash", "cloudflare": "cloudflare"}


@dataclass(frozen=True, slots=True)
class Challenge:
    """One posed challenge; `id` must come back verbatim in the response."""

    id: str
    method: str | None
    parameter: str | None

    def event(self) -> dict[str, Any]:
        """The `challenge` event; its `id` is the challenge's own, not the event counter."""
        return {
            "event": "challenge",
            "method": self.method,
            "parameter": self.parameter,
            "id": self.id,
        }


def make_challenge(fault: str, number: int) -> Challenge:
    """The challenge for a fault name; ids look like the captured "0.0001", "0.0002"."""
    method = METHODS[fault]
    parameter = None
    if method == "hashcash":
        parameter = f"{secrets.token_hex(32)}:{HASHCASH_BITS}"
    return Challenge(id=f"0.{number:04d}", method=method, parameter=parameter)


def accepts(challenge: Challenge, response: Mapping[str, Any]) -> bool:
    """Whether a `challengeResponse` answers this challenge.

    The id and method must be echoed exactly. An empty (method null) challenge
    takes any string token, "" as clients send. Cloudflare needs a browser's
    Turnstile token and is never satisfied here.
    """
    if response.get("id") != challenge.id or response.get("method") != challenge.method:
        return False
    token = response.get("token")
    if not isinstance(token, str) or challenge.method == "cloudflare":
        return False
    if challenge.method == "hashcash":
        return hashcash_ok(challenge.parameter or "", token)
    return True


def hashcash_ok(parameter: str, token: str) -> bool:
    """True when `token` is a decimal nonce and sha256(parameter + token) has enough zero bits.

    The digest input is the UTF-8 bytes of the *whole* parameter string,
    "<64 hex>:<bits>" including the colon and the bit count, immediately
    followed by the token's decimal digits, e.g. sha256(b"ab12...ef:8" + b"137").
    The required number of leading zero bits is the integer after the last colon.
    """
    if not token.isdigit() or not token.isascii():
        return False
    bits = int(parameter.rpartition(":")[2] or 0)
    digest = hashlib.sha256((parameter + token).encode("utf-8")).digest()
    return 256 - int.from_bytes(digest, "big").bit_length() >= bits
