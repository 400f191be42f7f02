"""The pure hashcash solver behind Copilot's `hashcash` challenge."""
from __future__ import annotations

import hashlib
import time

import pytest

from bingo import hashcash

PARAMETER = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08:12"


def zero_bits(data: str) -> int:
    """An independent count: the digest's binary string, up to its first 1."""
    bits = bin(int.from_bytes(hashlib.sha256(data.encode()).digest(), "big"))[2:].zfill(256)
    return len(bits) - len(bits.lstrip("0"))


@pytest.mark.parametrize("bits", [1, 4, 8, 12, 16])
def test_hashcash_solve_finds_the_smallest_decimal_nonce(bits):
    parameter = f"{'ab' * 32}:{bits}"
    nonce = hashcash.solve(parameter, bits)
    assert nonce is not None and nonce.isdigit() and nonce == str(int(nonce))
    assert zero_bits(parameter + nonce) >= bits, "the whole parameter, colon and bits included, is hashed"
    assert all(zero_bits(parameter + str(n)) < bits for n in range(int(nonce)))


def test_hashcash_check_agrees_with_solve():
    nonce = hashcash.solve(PARAMETER, 12)
    assert hashcash.check(PARAMETER, 12, nonce)
    assert not hashcash.check(PARAMETER, 12, nonce + "x"), "a different token fails (with these bytes)"


def test_hashcash_zero_bits_is_answered_at_once():
    assert hashcash.solve("anything:0", 0) == "0"


@pytest.mark.parametrize(
    "parameter, bits",
    [(PARAMETER, 12), ("a:b:7", 7), ("seed:0", 0), ("seed:32", 32)],
    ids=["hex", "colons-in-seed", "zero", "maximum"],
)
def test_hashcash_difficulty_reads_the_bits_after_the_last_colon(parameter, bits):
    assert hashcash.difficulty(parameter) == bits


@pytest.mark.parametrize(
    "parameter",
    [None, 12, "", "no-colon", ":8", "seed:", "seed:-1", "seed:x", "seed:٣", "seed:33", "seed:999999999"],
    ids=["null", "number", "empty", "no-colon", "no-seed", "no-bits", "negative", "word", "arabic-digit", "too-hard", "huge"],
)
def test_hashcash_difficulty_rejects_malformed_parameters(parameter):
    with pytest.raises(ValueError):
        hashcash.difficulty(parameter)


def test_hashcash_solve_gives_up_after_its_iteration_bound():
    assert hashcash.solve(PARAMETER, 32, max_iterations=1000) is None


def test_hashcash_solve_gives_up_after_its_time_bound():
    started = time.monotonic()
    assert hashcash.solve(PARAMETER, 32, max_iterations=10**9, max_seconds=0.2) is None
    assert time.monotonic() - started < 2.0


def test_hashcash_leading_zero_bits_counts_bits_not_hex_digits():
    assert hashcash.leading_zero_bits(bytes(32)) == 256
    assert hashcash.leading_zero_bits(b"\x80" + bytes(31)) == 0
    assert hashcash.leading_zero_bits(b"\x00\x01" + bytes(30)) == 15
