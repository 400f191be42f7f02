"""Smoke run of the benchmark: `python -m bench --quick` end to end, tiny N.

The benchmark's numbers are not asserted (they belong to the machine); only that
one quick run produces every figure, plain and over TLS, for the gateway beside
both baselines, without a single error or an inexact answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = ("ws", "wss")
SIDES = ("gateway", "direct", "minimal")
FIGURES = (
    "ttft_added_p50_ms",
    "ttft_added_p50_vs_direct_ms",
    "ttft_added_p99_ms",
    "cpu_ratio",
    "cpu_ratio_vs_direct",
    "cpu_direct_over_minimal",
    "cpu_concurrent_ratio",
    "cpu_concurrent_ratio_vs_direct",
    "first_token_p50_ratio",
    "gap_added_p99_ms",
    "idle_rss_mb",
    "master_rss_mb",
    "rss_at_n_mb",
    "master_at_n_mb",
    "kb_per_stream",
    "pinned_ttft_added_p50_ms",
    "pinned_cpu_ratio",
)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(path.read_text())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_bench_quick_reports_every_figure_plain_and_over_tls(
    result: dict, scheme: str
) -> None:
    figures = result["figures"][scheme]
    missing = [
        name for name in FIGURES if not isinstance(figures.get(name), (int, float))
    ]
    assert not missing


def test_bench_quick_has_no_errors(result: dict) -> None:
    assert result["figures"]["errors"] == 0
    for scheme in SCHEMES:
        assert result["schemes"][scheme]["log_tracebacks"] == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_bench_quick_answers_are_intact_on_every_side(
    result: dict, scheme: str
) -> None:
    for step in result["schemes"][scheme]["concurrency"]["steps"]:
        intact = [step["sides"][side]["intact"] for side in SIDES]
        assert (intact, step["errors"]) == ([step["n"]] * 3, 0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_bench_quick_streams_were_concurrent(result: dict, scheme: str) -> None:
    for step in result["schemes"][scheme]["concurrency"]["steps"]:
        assert [step["sides"][side]["peak_open"] for side in SIDES] == [step["n"]] * 3


def test_bench_quick_kb_per_stream_uses_the_reported_idle(result: dict) -> None:
    for scheme in SCHEMES:
        measured = result["schemes"][scheme]
        idle = measured["memory_idle"]["worker_rss_kb"]
        assert measured["concurrency"]["idle_rss_kb"] == idle
        step = measured["concurrency"]["steps"][-1]
        assert step["kb_per_stream"] == (step["worker_peak_rss_kb"] - idle) / step["n"]


def test_bench_quick_direct_skips_utf8_validation_like_the_gateway(
    result: dict,
) -> None:
    for scheme in SCHEMES:
        assert result["schemes"][scheme]["warmup"]["direct_utf8_validation_skipped"]
    assert "skip_utf8_validation=True" in result["baselines"]["direct"]


def test_bench_quick_slow_upstream_still_gets_a_stream(result: dict) -> None:
    slow = result["schemes"]["wss"]["slow_first"]
    assert (slow["status"], slow["errors"]) == (200, [])
    assert slow["first_byte_s"] < slow["upstream_silent_s"]


def test_bench_quick_on_copilot_reads_every_answer_exactly_on_every_side(tmp_path: Path) -> None:
    """`--protocol copilot`: the gateway on BINGO_UPSTREAM=copilot (its account pacing
    lifted), the readers speaking Copilot; every answer intact, over TLS."""
    path = tmp_path / "copilot.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--protocol", "copilot", "--scheme", "wss", "--json", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(path.read_text())
    assert (result["traffic"]["protocol"], result["figures"]["errors"]) == ("copilot", 0)
    for step in result["schemes"]["wss"]["concurrency"]["steps"]:
        assert [step["sides"][side]["intact"] for side in SIDES] == [step["n"]] * 3
    assert "traffic (copilot)" in done.stdout


# -- `python -m bench --pool --quick`: the shared state's figures ---------------------


@pytest.fixture(scope="module")
def pool_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from tests.redis_server import BINARY, MISSING

    if BINARY is None:
        pytest.skip(MISSING)
    path = tmp_path_factory.mktemp("bench-pool") / "pool.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--pool", "--quick", "--json", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(path.read_text())


@pytest.mark.slow
def test_bench_pool_counts_one_round_trip_per_store_operation(pool_result: dict) -> None:
    store = pool_result["store"]
    assert (store["memory"]["calls_per_request"], store["redis"]["calls_per_request"]) == (3.0, 3.0)
    assert store["redis_commands_per_request"] == ["GET", "EVALSHA", "ZREM"]
    assert store["redis_commands_with_key_limit"] == ["EVALSHA", "GET", "EVALSHA", "ZREM"]


@pytest.mark.slow
def test_bench_pool_measures_every_gateway_end_to_end(pool_result: dict) -> None:
    configs = pool_result["e2e"]["configs"]
    assert all(c["serial_ms"]["n"] == pool_result["e2e"]["rounds"] and c["requests_per_s"] > 0
               for c in configs.values())
    # With the key limit on, a ChatHub request costs Redis exactly one EVALSHA.
    assert configs["chathub + key limit, Redis, 2 processes"]["redis_commands_sample"] == {"EVALSHA": 50}
