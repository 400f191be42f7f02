"""Figures 2, 3 and 4: CPU per answer, N concurrent streams, memory per stream.

The gateway's CPU and RSS come from /proc of its one gunicorn worker; the baseline's
CPU from time.process_time() inside its own process. Both sides read the same
traffic from the same sandbox, in alternating waves, so drift lands on both.
"""

from __future__ import annotations

from itertools import pairwise

from .harness import Harness
from .load import peak_overlap
from .procstat import PeakSampler
from .response import StreamResult
from .stats import difference, ratio, summary
from .traffic import gateway_answer, prompt_for

MAX_ERRORS_KEPT = 5
GAP_LIMIT_MS = 50.0  # the bound on the p99 added inter-chunk delay


def _intact(stream: StreamResult) -> bool:
    return (
        stream.error is None
        and stream.finish_reason == "stop"
        and stream.content == gateway_answer(stream.prompt)
    )


def _gaps_ms(times_lists: list[list[float]], after: float = 0.0) -> list[float]:
    """Gaps between consecutive chunks of each stream, those that begin after `after`."""
    return [
        (b - a) * 1000
        for times in times_lists
        for a, b in pairwise(times)
        if a >= after
    ]


def _gap_summaries(times_lists: list[list[float]]) -> dict:
    """All gaps, and the steady-state ones: after every stream had its first token.

    While N streams are still opening, connection set-up (conversation create,
    websocket handshake) competes with the streams already flowing, on both sides;
    the steady-state figure is what streaming N answers costs once they are open.
    """
    firsts = [times[0] for times in times_lists if times]
    all_open = (
        max(firsts) if len(firsts) == len(times_lists) and firsts else float("inf")
    )
    return {
        "all": summary(_gaps_ms(times_lists)),
        "steady": summary(_gaps_ms(times_lists, all_open)),
    }


def _failures(streams: list[StreamResult], direct: list[dict]) -> list[str]:
    found = [
        f"gateway {s.prompt[:28]!r}: {s.error or 'inexact answer'}"
        for s in streams
        if not _intact(s)
    ]
    found += [
        f"direct {r['prompt'][:28]!r}: {r['error'] or 'inexact answer'}"
        for r in direct
        if not r["intact"]
    ]
    return found


def cpu_per_answer(h: Harness) -> dict:
    """CPU seconds per answer, gateway worker over the direct client's process.

    Waves alternate between the sides; each wave's ratio is kept too, to show
    how much a single wave would have wandered.
    """
    size, spread = h.options.cpu_concurrency, h.options.spread
    waves = max(1, h.options.cpu_answers // size)
    gateway_cpu, direct_cpu, wave_ratios = [], [], []
    stat_before = h.worker_stat_cpu()
    streams: list[StreamResult] = []
    direct: list[dict] = []
    for wave in range(waves):
        before = h.worker_cpu()
        streams += h.gateway_streams(
            [prompt_for(f"cpu-gateway-{wave}-{i}", h.options) for i in range(size)],
            spread=spread,
        )
        gateway_cpu.append(h.worker_cpu() - before)
        h.settle()
        job = h.direct_waves(
            [prompt_for(f"cpu-direct-{wave}-{i}", h.options) for i in range(size)],
            size,
            spread,
        )
        direct_cpu.append(job["cpu_seconds"])
        direct += job["results"]
        wave_ratios.append(ratio(gateway_cpu[-1], direct_cpu[-1]))
        h.settle()
    count = waves * size
    failures = _failures(streams, direct)
    return {
        "answers": count,
        "concurrency": size,
        "gateway_cpu_ms_per_answer": sum(gateway_cpu) / count * 1000,
        "direct_cpu_ms_per_answer": sum(direct_cpu) / count * 1000,
        "ratio": ratio(sum(gateway_cpu), sum(direct_cpu)),
        "wave_ratios": wave_ratios,
        # The same gateway CPU from /proc/<pid>/stat ticks (includes the idle gaps
        # between waves, so it is a little higher): a cross-check of the clock.
        "gateway_stat_cpu_ms_per_answer": (h.worker_stat_cpu() - stat_before)
        / count
        * 1000,
        "errors": failures[:MAX_ERRORS_KEPT],
        "error_count": len(failures),
    }


def streams_at(h: Harness, n: int, idle_rss_kb: int) -> dict:
    """N concurrent streams on each side; correctness, gaps, CPU and RSS at N."""
    spread = h.options.spread
    with h.upstream_load() as direct_load:
        job = h.direct_waves(
            [prompt_for(f"n{n}-direct-{i}", h.options) for i in range(n)], n, spread
        )
    h.settle()
    before = h.worker_cpu()
    with (
        h.upstream_load() as gateway_load,
        PeakSampler(h.gateway.worker_pid, h.options.stream_timeout + 10) as sampler,
    ):
        streams = h.gateway_streams(
            [prompt_for(f"n{n}-gateway-{i}", h.options) for i in range(n)],
            spread=spread,
        )
    gateway_cpu = h.worker_cpu() - before
    h.settle()
    direct = job["results"]
    gaps = {
        "gateway": _gap_summaries([s.content_times for s in streams]),
        "direct": _gap_summaries([r["delta_times"] for r in direct]),
    }
    added = {
        part: difference(gaps["gateway"][part]["p99"], gaps["direct"][part]["p99"])
        for part in ("all", "steady")
    }
    failures = _failures(streams, direct)
    intact = sum(map(_intact, streams))
    cpu = {"gateway": gateway_cpu / n * 1000, "direct": job["cpu_seconds"] / n * 1000}
    return {
        "n": n,
        "peak_open": {
            "gateway": peak_overlap([(s.started, s.ended) for s in streams]),
            "direct": peak_overlap([(r["started"], r["ended"]) for r in direct]),
        },
        "gateway_intact": intact,
        "direct_intact": sum(r["intact"] for r in direct),
        "errors": len(failures),
        "error_samples": failures[:MAX_ERRORS_KEPT],
        "gap_ms": gaps,
        "added_gap_p99_ms": added,  # gateway p99 minus direct p99, all gaps and steady state
        "first_token_ms": {
            "gateway": summary(
                [
                    (s.first_content_at - s.started) * 1000
                    for s in streams
                    if s.first_content_at
                ]
            ),
            "direct": summary(
                [
                    (r["delta_times"][0] - r["started"]) * 1000
                    for r in direct
                    if r["delta_times"]
                ]
            ),
        },
        "cpu_ms_per_answer": cpu,
        "cpu_ratio": ratio(cpu["gateway"], cpu["direct"]),
        "sandbox_cores_busy": {
            "gateway": gateway_load.utilisation,
            "direct": direct_load.utilisation,
        },
        "rss_kb": sampler.peak_rss_kb,
        "threads": sampler.peak_threads,
        "kb_per_stream": (sampler.peak_rss_kb - idle_rss_kb) / n,
        "ok": not failures
        and intact == n
        and added["steady"] is not None
        and added["steady"] <= GAP_LIMIT_MS,
    }


def ramp(h: Harness) -> dict:
    """Every step of the ramp, the RSS it started from, and the first N that failed."""
    idle = h.worker_status()["rss_kb"]
    steps = [streams_at(h, n, idle) for n in h.options.ramp]
    failed = next((s["n"] for s in steps if not s["ok"]), None)
    return {
        "idle_rss_kb": idle,
        "spread_s": h.options.spread,
        "steps": steps,
        "first_failing_n": failed,
    }
