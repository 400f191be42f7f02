"""Turn a run's result into the five figures, judged against the issue's targets,
as a printed table and a JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path

MB = 1024


def _step(result: dict, n: int) -> dict:
    return next(s for s in result["concurrency"]["steps"] if s["n"] == n)


def figures(result: dict) -> dict[str, object]:
    """The headline numbers, flat, each against the baseline of the same run."""
    target_n = result["options"]["target_n"]
    at_n = _step(result, target_n)
    memory, first, slow = result["memory"], result["first_token"], result["slow_first"]
    return {
        "ttft_added_p50_ms": first["added_p50_ms"],
        "ttft_added_p99_ms": first["added_p99_ms"],
        "cpu_ratio": result["cpu"]["ratio"],
        "n": target_n,
        "n_intact": at_n["gateway_intact"],
        "n_errors": at_n["errors"],
        "gap_added_p99_ms": at_n["added_gap_p99_ms"]["steady"],
        "gap_added_p99_all_ms": at_n["added_gap_p99_ms"]["all"],
        "first_failing_n": result["concurrency"]["first_failing_n"],
        "idle_rss_mb": memory["worker_idle_rss_kb"] / MB,
        "rss_at_n_mb": at_n["rss_kb"] / MB,
        "kb_per_stream": at_n["kb_per_stream"],
        "first_byte_s": slow["first_byte_s"],
        "errors": _all_errors(result),
    }


def _all_errors(result: dict) -> int:
    count = (
        len(result["first_token"]["errors"])
        + len(result["slow_first"]["errors"])
        + result["cpu"]["error_count"]
    )
    count += sum(s["errors"] for s in result["concurrency"]["steps"])
    return (
        count
        + len(result["warmup"]["gateway_errors"])
        + len(result["warmup"]["direct_errors"])
    )


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _vs(gateway: float | None, direct: float | None, unit: str = "") -> str:
    return f"(gateway {_f(gateway)}{unit} vs direct {_f(direct)}{unit})"


def rows(result: dict, fig: dict) -> list[tuple[str, str, str, str]]:
    """(figure, measured against the baseline, target, verdict) for the table."""
    first, cpu, slow, memory = (
        result["first_token"],
        result["cpu"],
        result["slow_first"],
        result["memory"],
    )
    at_n, n, fail = _step(result, fig["n"]), fig["n"], fig["first_failing_n"]
    gaps = at_n["gap_ms"]
    return [
        (
            "1 added TTFT, median (c=1)",
            f"{_f(fig['ttft_added_p50_ms'], 2)} ms {_vs(first['gateway_ms']['p50'], first['direct_ms']['p50'])}",
            "<= 1 ms",
            _verdict(_le(fig["ttft_added_p50_ms"], 1.0)),
        ),
        (
            "1 added TTFT, p99 (c=1)",
            f"{_f(fig['ttft_added_p99_ms'], 2)} ms {_vs(first['gateway_ms']['p99'], first['direct_ms']['p99'])}",
            "reported",
            "-",
        ),
        (
            "2 CPU per answer",
            f"{_f(fig['cpu_ratio'], 2)}x {_vs(cpu['gateway_cpu_ms_per_answer'], cpu['direct_cpu_ms_per_answer'], ' ms')}, {cpu['answers']} answers, {cpu['concurrency']} at a time",
            "<= 1.5x",
            _verdict(_le(fig["cpu_ratio"], 1.5)),
        ),
        (
            f"3 intact answers, N={n}",
            f"{fig['n_intact']}/{n}, {fig['n_errors']} errors (peak open {at_n['peak_open']['gateway']})",
            f"{n}/{n}, 0",
            _verdict(fig["n_intact"] == n and fig["n_errors"] == 0),
        ),
        (
            f"3 added gap p99, N={n} steady",
            f"{_f(fig['gap_added_p99_ms'])} ms {_vs(gaps['gateway']['steady']['p99'], gaps['direct']['steady']['p99'], ' ms')}",
            "<= 50 ms",
            _verdict(_le(fig["gap_added_p99_ms"], 50.0)),
        ),
        (
            f"3 added gap p99, N={n} all",
            f"{_f(fig['gap_added_p99_all_ms'])} ms {_vs(gaps['gateway']['all']['p99'], gaps['direct']['all']['p99'], ' ms')}",
            "reported",
            "-",
        ),
        (
            "3 first failing N",
            "none" if fail is None else str(fail),
            f"> {n}",
            _verdict(fail is None or fail > n),
        ),
        (
            "4 RSS idle, worker",
            f"{_f(fig['idle_rss_mb'])} MB (master {_f(memory['master_rss_kb'] / MB)} MB; both, PSS {_f(memory['master_plus_worker_pss_kb'] / MB)} MB)",
            "<= 60 MB",
            _verdict(_le(fig["idle_rss_mb"], 60.0)),
        ),
        (
            f"4 RSS per stream, N={n}",
            f"{_f(fig['kb_per_stream'])} KB ({_f(fig['rss_at_n_mb'])} MB at N)",
            "<= 256 KB",
            _verdict(_le(fig["kb_per_stream"], 256.0)),
        ),
        (
            "5 first byte, slow upstream",
            f"{_f(fig['first_byte_s'], 2)} s (upstream silent {slow['upstream_silent_s']:g} s, keep-alive {slow['keepalive_s']:g} s)",
            "< 30 s",
            _verdict(
                None if fig["first_byte_s"] is None else fig["first_byte_s"] < 30.0
            ),
        ),
    ]


RAMP_HEAD = (
    "  N     open  intact gw/direct  err  gap p99 steady gw/direct  added steady/all  "
    "TTFT p99 gw/direct     CPU ms/answer gw/direct  RSS MB  KB/stream  ok"
)


def ramp_rows(result: dict) -> list[str]:
    lines = [RAMP_HEAD]
    for s in result["concurrency"]["steps"]:
        gap, ttft, cpu, added = (
            s["gap_ms"],
            s["first_token_ms"],
            s["cpu_ms_per_answer"],
            s["added_gap_p99_ms"],
        )
        lines.append(
            f"  {s['n']:<5} {s['peak_open']['gateway']:>4}  {s['gateway_intact']:>5} / {s['direct_intact']:<5}  {s['errors']:>4}  "
            f"{_f(gap['gateway']['steady']['p99']):>9} / {_f(gap['direct']['steady']['p99']):<9}      "
            f"{_f(added['steady']):>5} / {_f(added['all']):<6}  {_f(ttft['gateway']['p99'], 0):>7} / {_f(ttft['direct']['p99'], 0):<7} ms  "
            f"{_f(cpu['gateway']):>6} / {_f(cpu['direct']):<5} ({_f(s['cpu_ratio'], 2)}x)  "
            f"{_f(s['rss_kb'] / MB):>7}  {_f(s['kb_per_stream']):>8}  {'yes' if s['ok'] else 'NO'}"
        )
    return lines


def render(result: dict) -> str:
    """The table printed at the end of a run."""
    fig = figures(result)
    table = rows(result, fig)
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    machine = result["machine"]
    lines = [
        f"bingo gateway vs direct ChatHub client: {machine['nproc']} CPUs, {machine['memory']}, Python {machine['python']}",
        (
            f"traffic: {result['traffic']['chars']} chars in {result['traffic']['updates']} cumulative updates, "
            f"{result['traffic']['delay_s']:g} s apart, search progress and adaptive cards first"
        ),
        f"baseline: {result['baseline']}",
        f"placement: {result['placement']}",
        "",
    ]
    lines += [
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}"
        for a, b, c, d in table
    ]
    lines += [
        "",
        f"concurrency ramp (streams start over {result['concurrency']['spread_s']:g} s):",
    ] + ramp_rows(result)
    threads = result["gateway"]["threads"]
    for s in result["concurrency"]["steps"]:
        if s["n"] > threads:
            ttft = s["first_token_ms"]
            lines.append(
                f"  N={s['n']} is more than the worker's {threads} threads: {s['n'] - threads} streams wait for a "
                f"free thread (TTFT p99 {_f(ttft['gateway']['p99'], 0)} ms vs {_f(ttft['direct']['p99'], 0)} ms direct)"
            )
    lines.append(
        f"\nerrors in all phases: {fig['errors']}   run took {result['seconds']:.0f} s"
    )
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "figures": figures(result)}, indent=2) + "\n")


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
