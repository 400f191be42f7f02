"""Copilot's `hashcash` challenge: find a decimal nonce whose hash has enough zero bits.

Pure code, no sockets. The challenge's `parameter` is "<sha256 hex>:<bits>"; the
answer is the decimal string `n` for which sha256(parameter + n), the *whole*
parameter with its ":<bits>", starts with `bits` zero bits (protocol notes 6.2,
"sha256(parameter+token)"). The search is bounded in iterations and in time, because
a worker thread must never spin on a difficulty chosen by the upstream.
"""
from __future__ import annotations

import hashlib
import time

MAX_BITS = 32  # beyond this the expected search alone is minutes of CPU
MAX_ITERATIONS = 4_000_000  # ~22 bits of expected work, a few seconds of CPU
MAX_SECONDS = 5.0
_CLOCK_EVERY = 4096  # iterations between clock reads: time.monotonic is not free


def difficulty(parameter: object) -> int:
    """The bits a "<seed>:<bits>" parameter asks for; raises ValueError when malformed."""
    if not isinstance(parameter, str):
        raise ValueError("the hashcash parameter is not a string")
    seed, sep, bits = parameter.rpartition(":")
    if not sep or not seed or not (bits.isascii() and bits.isdigit()):
        raise ValueError("the hashcash parameter is not '<seed>:<bits>'")
    if int(bits) > MAX_BITS:
        raise ValueError(f"the hashcash difficulty {int(bits)} exceeds {MAX_BITS} bits")
    return int(bits)


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits the digest starts with (256 for an all-zero digest)."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def check(parameter: str, bits: int, nonce: str) -> bool:
    """True when sha256(parameter + nonce) starts with at least `bits` zero bits."""
    return leading_zero_bits(hashlib.sha256((parameter + nonce).encode("utf-8")).digest()) >= bits


def solve(parameter: str, bits: int, *, max_iterations: int = MAX_ITERATIONS,
          max_seconds: float = MAX_SECONDS) -> str | None:
    """The smallest decimal nonce that meets `bits`, or None once a bound is hit."""
    if bits <= 0:
        return "0"
    prefix = hashlib.sha256(parameter.encode("utf-8"))  # the prefix is hashed once, then copied
    shift = 256 - bits
    give_up_at = time.monotonic() + max_seconds
    for n in range(max_iterations):
        candidate = prefix.copy()
        candidate.update(str(n).encode("ascii"))
        if int.from_bytes(candidate.digest(), "big") >> shift == 0:
            return str(n)
        if n % _CLOCK_EVERY == _CLOCK_EVERY - 1 and time.monotonic() >= give_up_at:
            return None
    return None
