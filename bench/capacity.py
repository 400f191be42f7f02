"""Figures 2, 3 and 4: CPU per answer (sequential, and 20 at once), N concurrent
streams, memory per stream.

The gateway's CPU and RSS come from /proc of its one gunicorn worker; each baseline
reader's CPU from time.process_time() inside its own process. All sides read the
same traffic from the same sandbox, in rotating waves, so drift lands on all.
"""

from __future__ import annotations

from itertools import pairwise

from .harness import Harness
from .load import peak_overlap
from .procstat import PeakSampler
from .stats import difference, ratio, summary
from .traffic import prompt_for

MAX_ERRORS_KEPT = 5
GAP_LIMIT_MS = 50.0  # the bound on the p99 added inter-chunk delay
BASELINES = ("direct", "minimal")


def _failures(name: str, records: list[dict]) -> list[str]:
    return [
        f"{name} {r['prompt'][:28]!r}: {r['error'] or 'inexact answer'}"
        for r in records
        if not r["intact"]
    ]


def _gaps_ms(times_lists: list[list[float]], after: float = 0.0) -> list[float]:
    """Gaps between consecutive chunks of each stream that begin after `after`."""
    return [
        (b - a) * 1000
        for times in times_lists
        for a, b in pairwise(times)
        if a >= after
    ]


def _gap_summaries(times_lists: list[list[float]]) -> dict:
    """All gaps, and the steady-state ones: after every stream had its first token.

    While N streams are still opening, connection set-up competes with the streams
    already flowing, on every side; the steady-state figure is what streaming N
    answers costs once they are open.
    """
    firsts = [times[0] for times in times_lists if times]
    all_open = max(firsts) if len(firsts) == len(times_lists) and firsts else 1e18
    return {
        "all": summary(_gaps_ms(times_lists)),
        "steady": summary(_gaps_ms(times_lists, all_open)),
    }


def _versus(values: dict[str, float | None], combine: object) -> dict:
    """Gateway against each baseline (ratio or difference), and direct over minimal."""
    pairs = [("gateway", b) for b in BASELINES] + [("direct", "minimal")]
    return {f"{a}/{b}": combine(values[a], values[b]) for a, b in pairs}  # type: ignore[operator]


def cpu_per_answer(
    h: Harness, answers: int, concurrency: int, per_wave: int | None = None
) -> dict:
    """CPU milliseconds per answer on each side, in waves that rotate the order.

    A wave is `per_wave` answers (default: `concurrency`), `concurrency` at a time:
    concurrency 1 is the issue's sequential figure.
    """
    spread = h.options.spread
    names, per_wave = list(h.sides), min(per_wave or concurrency, answers)
    waves = max(1, answers // per_wave)
    cpu = {name: 0.0 for name in names}
    wave_ratios, failures = [], []
    for wave in range(waves):
        spent = {}
        for name in names[wave % 3 :] + names[: wave % 3]:
            prompts = [
                prompt_for(f"cpu{concurrency}-{h.scheme}-{name}-{wave}-{i}", h.options)
                for i in range(per_wave)
            ]
            result = h.sides[name].waves(prompts, concurrency, spread)
            spent[name] = result.cpu_seconds
            failures += _failures(name, result.records)
            h.settle()
        wave_ratios.append(ratio(spent["gateway"], spent["minimal"]))
        for name in names:
            cpu[name] += spent[name]
    per_answer = {name: cpu[name] / (waves * per_wave) * 1000 for name in names}
    return {
        "answers": waves * per_wave,
        "concurrency": concurrency,
        "ms_per_answer": per_answer,
        "ratio": _versus(per_answer, ratio),
        "wave_ratios_vs_minimal": wave_ratios,
        "errors": failures[:MAX_ERRORS_KEPT],
        "error_count": len(failures),
    }


def _side_at(records: list[dict], cpu_seconds: float, n: int) -> dict:
    firsts = [(r["times"][0] - r["started"]) * 1000 for r in records if r["times"]]
    return {
        "intact": sum(r["intact"] for r in records),
        "peak_open": peak_overlap([(r["started"], r["ended"]) for r in records]),
        "gap_ms": _gap_summaries([r["times"] for r in records]),
        "first_token_ms": summary(firsts),
        "cpu_ms_per_answer": cpu_seconds / n * 1000,
    }


def streams_at(h: Harness, n: int, idle_rss_kb: int) -> dict:
    """N concurrent streams on each side; correctness, gaps, first token, CPU, RSS."""
    sides, failures, load = {}, [], {}
    for name in reversed(list(h.sides)):  # the readers first, the gateway last
        prompts = [
            prompt_for(f"n{n}-{h.scheme}-{name}-{i}", h.options) for i in range(n)
        ]
        with (
            h.upstream_load() as upstream,
            PeakSampler(h.gateway.worker_pid, h.options.stream_timeout + 10) as worker,
            PeakSampler(h.gateway.master_pid, h.options.stream_timeout + 10) as master,
        ):
            result = h.sides[name].waves(prompts, n, h.options.spread)
        h.settle()
        sides[name] = _side_at(result.records, result.cpu_seconds, n)
        failures += _failures(name, result.records)
        load[name] = upstream.utilisation
        if name == "gateway":
            memory = {"worker_peak_rss_kb": worker.peak_rss_kb}
            memory |= {"master_peak_rss_kb": master.peak_rss_kb}
            memory |= {"threads": worker.peak_threads}
    steady = {k: s["gap_ms"]["steady"]["p99"] for k, s in sides.items()}
    every = {k: s["gap_ms"]["all"]["p99"] for k, s in sides.items()}
    first_p50 = {k: s["first_token_ms"]["p50"] for k, s in sides.items()}
    added_steady = _versus(steady, difference)
    return {
        "n": n,
        "sides": sides,
        "errors": len(failures),
        "error_samples": failures[:MAX_ERRORS_KEPT],
        "added_gap_p99_ms": {"steady": added_steady, "all": _versus(every, difference)},
        "first_token_p50_ratio": _versus(first_p50, ratio),
        "cpu_ratio": _versus(
            {k: s["cpu_ms_per_answer"] for k, s in sides.items()}, ratio
        ),
        "sandbox_cores_busy": load,
        **memory,
        "kb_per_stream": (memory["worker_peak_rss_kb"] - idle_rss_kb) / n,
        "ok": not failures
        and sides["gateway"]["intact"] == n
        and all(
            added_steady[f"gateway/{b}"] is not None
            and added_steady[f"gateway/{b}"] <= GAP_LIMIT_MS
            for b in BASELINES
        ),
    }


def ramp(h: Harness, idle_rss_kb: int) -> dict:
    """Every step of the ramp against one idle RSS (the one the report shows)."""
    steps = [streams_at(h, n, idle_rss_kb) for n in h.options.ramp]
    failed = next((s["n"] for s in steps if not s["ok"]), None)
    return {
        "idle_rss_kb": idle_rss_kb,
        "spread_s": h.options.spread,
        "steps": steps,
        "first_failing_n": failed,
    }
