"""The pure solvers behind Copilot's `hashcash` and `copilot` (arithmetic) challenges."""
from __future__ import annotations

import hashlib
import time

import pytest

from bingo.upstream.copilot import challenges

SEED = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def zero_bits(data: str) -> int:
    """An independent count: the digest's binary string, up to its first 1."""
    bits = bin(int.from_bytes(hashlib.sha256(data.encode()).digest(), "big"))[2:].zfill(256)
    return len(bits) - len(bits.lstrip("0"))


@pytest.mark.parametrize("bits", [1, 4, 8, 12, 16])
def test_hashcash_finds_the_smallest_nonce_over_the_seed_alone(bits):
    nonce = challenges.solve_hashcash(f"{SEED}:{bits}")
    assert nonce.isdigit() and nonce == str(int(nonce))
    assert zero_bits(SEED + nonce) >= bits, "sha256(seed + nonce): the ':<bits>' suffix is not hashed"
    assert all(zero_bits(SEED + str(n)) < bits for n in range(int(nonce)))


def test_hashcash_answer_differs_from_the_whole_parameter_digest():
    """At 12 bits the two layouts agree by chance about once in 4,096 seeds; not this one."""
    nonce = challenges.solve_hashcash(f"{SEED}:12")
    assert challenges.check_hashcash(SEED, 12, nonce)
    assert not challenges.check_hashcash(f"{SEED}:12", 12, nonce)


def test_hashcash_zero_bits_is_answered_at_once():
    assert challenges.solve_hashcash("anything:0") == "0"


@pytest.mark.parametrize(
    "parameter, expected",
    [(f"{SEED}:12", (SEED, 12)), ("a:b:7", ("a:b", 7)), ("seed:0", ("seed", 0)), ("seed:32", ("seed", 32))],
    ids=["hex", "colons-in-seed", "zero", "maximum"],
)
def test_hashcash_parameter_splits_at_the_last_colon(parameter, expected):
    assert challenges.parse_hashcash(parameter) == expected


@pytest.mark.parametrize(
    "parameter",
    [None, 12, "", "no-colon", ":8", "seed:", "seed:-1", "seed:x", "seed:٣"],
    ids=["null", "number", "empty", "no-colon", "no-seed", "no-bits", "negative", "word", "arabic-digit"],
)
def test_hashcash_rejects_malformed_parameters(parameter):
    with pytest.raises(challenges.Unsolvable) as raised:
        challenges.parse_hashcash(parameter)
    assert not isinstance(raised.value, challenges.TooHard)


@pytest.mark.parametrize("parameter", ["seed:33", "seed:999999999"])
def test_hashcash_refuses_difficulties_past_the_maximum(parameter):
    with pytest.raises(challenges.TooHard):
        challenges.parse_hashcash(parameter)


def test_hashcash_gives_up_after_its_cpu_bound():
    started = time.thread_time()
    with pytest.raises(challenges.TooHard, match="CPU"):
        challenges.solve_hashcash(f"{SEED}:32", cpu_seconds=0.2)
    assert time.thread_time() - started < 1.0


def test_leading_zero_bits_counts_bits_not_hex_digits():
    assert challenges.leading_zero_bits(bytes(32)) == 256
    assert challenges.leading_zero_bits(b"\x80" + bytes(31)) == 0
    assert challenges.leading_zero_bits(b"\x00\x01" + bytes(30)) == 15


@pytest.mark.parametrize(
    "parameter, token",
    # round(((a**3 / 100) + a * 25) % 22), worked by hand:
    # 1 -> 25.01 % 22 = 3.01 -> 3;  10 -> 260 % 22 = 18;  37.5 -> 1464.84375 % 22 = 12.84 -> 13
    [("1", "3"), ("10", "18"), ("37.5", "13"), ("0", "0")],
)
def test_arithmetic_challenge_token(parameter, token):
    assert challenges.solve_arithmetic(parameter) == token


@pytest.mark.parametrize("parameter", [None, "", "x", "nan", "inf", "1e300"])
def test_arithmetic_challenge_rejects_what_is_not_a_sane_number(parameter):
    with pytest.raises(challenges.Unsolvable):
        challenges.solve_arithmetic(parameter)
