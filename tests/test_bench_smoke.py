"""Smoke run of the benchmark: `python -m bench --quick` end to end, tiny N.

The benchmark's numbers are not asserted (they belong to the machine); only that
one quick run produces every figure, side by side with its baseline, without a
single error or an inexact answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    "ttft_added_p50_ms",
    "ttft_added_p99_ms",
    "cpu_ratio",
    "gap_added_p99_ms",
    "gap_added_p99_all_ms",
    "idle_rss_mb",
    "rss_at_n_mb",
    "kb_per_stream",
    "first_byte_s",
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


def test_bench_quick_reports_every_figure(result: dict) -> None:
    figures = result["figures"]
    missing = [
        name for name in FIGURES if not isinstance(figures.get(name), (int, float))
    ]
    assert not missing


def test_bench_quick_has_no_errors(result: dict) -> None:
    assert result["figures"]["errors"] == 0
    assert result["gateway"]["log_tracebacks"] == 0


def test_bench_quick_answers_are_intact_on_both_sides(result: dict) -> None:
    for step in result["concurrency"]["steps"]:
        assert (step["gateway_intact"], step["direct_intact"], step["errors"]) == (
            step["n"],
            step["n"],
            0,
        )


def test_bench_quick_streams_were_concurrent(result: dict) -> None:
    for step in result["concurrency"]["steps"]:
        assert step["peak_open"] == {"gateway": step["n"], "direct": step["n"]}


def test_bench_quick_baseline_skips_utf8_validation_like_the_gateway(
    result: dict,
) -> None:
    assert result["warmup"]["utf8_validation_skipped"] is True
    assert "skip_utf8_validation=True" in result["baseline"]


def test_bench_quick_slow_upstream_still_gets_a_stream(result: dict) -> None:
    assert result["slow_first"]["status"] == 200
    assert result["slow_first"]["errors"] == []
