"""Copilot's anti-bot challenges as the sandbox poses and checks them.

Pure: a Challenge is made from a fault name, and a client's `challengeResponse`
is judged against it. No sockets here. The rules follow protocol note
copilot-2026 section 3.8: the empty challenge is a mid-turn acknowledgement,
hashcash and the arithmetic `copilot` challenge hold the `send` until solved,
and cloudflare needs a browser, so it is never satisfied.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HASHCASH_BITS = 8
# fault name -> the `method` the challenge event carries
METHODS = {
    "challenge": None,
    "hashcash": "hashcash",
    "copilot": "copilot",
    "cloudflare": "cloudflare",
}
# These hold the send: the client must solve them, then re-send `send` once.
HOLDING = frozenset({"hashcash", "copilot", "cloudflare"})


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


def make_challenge(fault: str, number: int, bits: int = HASHCASH_BITS) -> Challenge:
    """The challenge for a fault name; ids look like the captured "0.0001", "0.0002"."""
    method = METHODS[fault]
    parameter = None
    if method == "hashcash":
        parameter = f"{secrets.token_hex(32)}:{bits}"
    elif method == "copilot":
        # A decimal like "37.5": WCA and CG-2026-09 parse it with float().
        parameter = f"{random.randint(1, 999)}.{random.randint(0, 9)}"
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
    if challenge.method == "copilot":
        return token == copilot_token(challenge.parameter or "")
    return True


def hashcash_ok(parameter: str, token: str) -> bool:
    """True when `token` is a decimal nonce and sha256(seed + token) has enough zero bits.

    `parameter` is "<64 hex seed>:<bits>". The digest input is the seed alone,
    WITHOUT ":<bits>", followed by the token's decimal digits, e.g.
    sha256(b"ab12...ef" + b"137"), as copilot.microsoft.com's own worker does
    (three public clients agree: WCA challenges.py, go hashcash.go, CG-2026-09).
    """
    if not token.isdigit() or not token.isascii():
        return False
    seed, _, bits_text = parameter.rpartition(":")
    bits = int(bits_text or 0)
    digest = hashlib.sha256((seed + token).encode("utf-8")).digest()
    return 256 - int.from_bytes(digest, "big").bit_length() >= bits


def solve_hashcash(parameter: str, limit: int = 1 << 26) -> str:
    """The smallest nonce `hashcash_ok` accepts (for tests and demos); bounded by `limit`."""
    for nonce in range(limit):
        if hashcash_ok(parameter, str(nonce)):
            return str(nonce)
    raise ValueError(f"no nonce below {limit} for {parameter!r}")


def copilot_token(parameter: str) -> str:
    """The answer to the arithmetic `copilot` challenge (WCA, CG-2026-09, CTG).

    token = str(round((a**3 / 100 + a * 25) % 22)) with a = float(parameter).
    """
    a = float(parameter)
    return str(round((a**3 / 100 + a * 25) % 22))
