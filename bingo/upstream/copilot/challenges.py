"""Copilot's anti-bot challenges that a server can answer: hashcash and arithmetic.

Pure code, no sockets. Both are bounded, because a request thread must never spin on
a difficulty the upstream chose: at most SOLVER_CPU_SECONDS of this thread's CPU.

- `hashcash`: the parameter is "<seed>:<bits>"; the answer is the decimal nonce `n`
  for which sha256(seed + n) -- the seed without ":<bits>" -- starts with `bits` zero
  bits. Three public 2026 clients hash it this way (Windows-Copilot-API, a Go proxy,
  a Python gateway); one write-up hashes the whole parameter but marks it unverified.
- `copilot`: the parameter is a number `a`; the answer is round((a**3/100 + 25*a) % 22),
  as three public clients compute it.
"""
from __future__ import annotations

import hashlib
import math
import time

MAX_BITS = 32  # beyond this the expected search alone is minutes of CPU
SOLVER_CPU_SECONDS = 2.0
_CLOCK_EVERY = 4096  # iterations between clock reads: the clock is not free


class Unsolvable(ValueError):
    """The challenge cannot be read."""


class TooHard(Unsolvable):
    """The challenge asks for more work than SOLVER_CPU_SECONDS buys."""


def parse_hashcash(parameter: object) -> tuple[str, int]:
    """(seed, bits) from "<seed>:<bits>"; raises Unsolvable when malformed or too hard."""
    if not isinstance(parameter, str):
        raise Unsolvable("the hashcash parameter is not a string")
    seed, sep, bits = parameter.rpartition(":")
    if not sep or not seed or not (bits.isascii() and bits.isdigit()):
        raise Unsolvable("the hashcash parameter is not '<seed>:<bits>'")
    if int(bits) > MAX_BITS:
        raise TooHard(f"the hashcash difficulty {int(bits)} exceeds {MAX_BITS} bits")
    return seed, int(bits)


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits the digest starts with (256 for an all-zero digest)."""
    return len(digest) * 8 - int.from_bytes(digest, "big").bit_length()


def check_hashcash(seed: str, bits: int, nonce: str) -> bool:
    """True when sha256(seed + nonce) starts with at least `bits` zero bits."""
    return leading_zero_bits(hashlib.sha256((seed + nonce).encode("utf-8")).digest()) >= bits


def solve_hashcash(parameter: object, *, cpu_seconds: float = SOLVER_CPU_SECONDS) -> str:
    """The smallest decimal nonce for the parameter; raises Unsolvable past the CPU bound."""
    seed, bits = parse_hashcash(parameter)
    if bits == 0:
        return "0"
    prefix = hashlib.sha256(seed.encode("utf-8"))  # the seed is hashed once, then copied
    shift = 256 - bits
    give_up_at = time.thread_time() + cpu_seconds
    n = 0
    while True:
        candidate = prefix.copy()
        candidate.update(str(n).encode("ascii"))
        if int.from_bytes(candidate.digest(), "big") >> shift == 0:
            return str(n)
        n += 1
        if n % _CLOCK_EVERY == 0 and time.thread_time() >= give_up_at:
            raise TooHard(f"a {bits}-bit hashcash was not solved within {cpu_seconds:g} s of CPU")


def solve_arithmetic(parameter: object) -> str:
    """The answer to a `copilot` challenge; raises Unsolvable when it is not a number."""
    try:
        a = float(str(parameter))
    except ValueError:
        raise Unsolvable("the copilot challenge parameter is not a number") from None
    if not math.isfinite(a) or abs(a) > 1e12:
        raise Unsolvable("the copilot challenge parameter is out of range")
    return str(round((a**3 / 100 + a * 25) % 22))
