"""Turn a run's result into the five figures, judged against the issue's targets,
as a printed table and a JSON file.
"""
from __future__ import annotations

import json
from pathlib import Path

MB = 1024


def figures(result: dict) -> dict[str, object]:
    """The headline numbers, flat, each against the baseline of the same run."""
    target_n = result["options"]["target_n"]
    steps = {s["n"]: s for s in result["concurrency"]["steps"]}
    at_n = steps[target_n]
    memory, first, slow = result["memory"], result["first_token"], result["slow_first"]
    return {
        "ttft_added_p50_ms": first["added_p50_ms"],
        "ttft_added_p99_ms": first["added_p99_ms"],
        "cpu_ratio": result["cpu"]["ratio"],
        "n": target_n,
        "n_intact": at_n["gateway_intact"],
        "n_errors": at_n["errors"],
        "gap_added_p99_ms": at_n["added_gap_p99_ms"],
        "first_failing_n": result["concurrency"]["first_failing_n"],
        "idle_rss_mb": memory["worker_idle_rss_kb"] / MB,
        "rss_at_n_mb": at_n["rss_kb"] / MB,
        "kb_per_stream": at_n["kb_per_stream"],
        "first_byte_s": slow["first_byte_s"],
        "errors": _all_errors(result),
    }


def _all_errors(result: dict) -> int:
    count = len(result["first_token"]["errors"]) + len(result["slow_first"]["errors"]) + result["cpu"]["error_count"]
    count += sum(s["errors"] for s in result["concurrency"]["steps"])
    return count + len(result["warmup"]["gateway_errors"]) + len(result["warmup"]["direct_errors"])


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def rows(result: dict, fig: dict) -> list[tuple[str, str, str, str]]:
    """(figure, measured against the baseline, target, verdict) lines for the table."""
    first, cpu, slow = result["first_token"], result["cpu"], result["slow_first"]
    at_n = next(s for s in result["concurrency"]["steps"] if s["n"] == fig["n"])
    n, fail = fig["n"], fig["first_failing_n"]
    return [
        ("1 added TTFT median", f"{_f(fig['ttft_added_p50_ms'])} ms  (gw {_f(first['gateway_ms']['p50'])} vs direct {_f(first['direct_ms']['p50'])})", "<= 1 ms", _verdict(_le(fig["ttft_added_p50_ms"], 1.0))),
        ("1 added TTFT p99", f"{_f(fig['ttft_added_p99_ms'])} ms  (gw {_f(first['gateway_ms']['p99'])} vs direct {_f(first['direct_ms']['p99'])})", "(reported)", "-"),
        ("2 CPU per answer", f"{_f(fig['cpu_ratio'], 2)}x  (gw {_f(cpu['gateway_cpu_ms_per_answer'])} ms vs direct {_f(cpu['direct_cpu_ms_per_answer'])} ms)", "<= 1.5x", _verdict(_le(fig["cpu_ratio"], 1.5))),
        (f"3 intact at N={n}", f"{fig['n_intact']}/{n}, {fig['n_errors']} errors", f"{n}/{n}, 0", _verdict(fig["n_intact"] == n and fig["n_errors"] == 0)),
        (f"3 added gap p99 N={n}", f"{_f(fig['gap_added_p99_ms'])} ms  (gw {_f(at_n['gap_ms']['gateway']['p99'])} vs direct {_f(at_n['gap_ms']['direct']['p99'])})", "<= 50 ms", _verdict(_le(fig["gap_added_p99_ms"], 50.0))),
        ("3 first failing N", "none" if fail is None else str(fail), f"> {n}", _verdict(fail is None or fail > n)),
        ("4 RSS idle (worker)", f"{_f(fig['idle_rss_mb'])} MB  (+ master {_f(result['memory']['master_rss_kb'] / MB)} MB)", "<= 60 MB", _verdict(_le(fig["idle_rss_mb"], 60.0))),
        (f"4 RSS per stream N={n}", f"{_f(fig['kb_per_stream'])} KB  ({_f(fig['rss_at_n_mb'])} MB at N)", "<= 256 KB", _verdict(_le(fig["kb_per_stream"], 256.0))),
        ("5 first byte, slow upstream", f"{_f(fig['first_byte_s'], 2)} s  (upstream silent {slow['upstream_silent_s']:g} s)", "< 30 s", _verdict(None if fig["first_byte_s"] is None else fig["first_byte_s"] < 30.0)),
    ]


def ramp_rows(result: dict) -> list[str]:
    lines = ["  N    intact  errors  gap p99 gw/direct ms  added  TTFT p99 gw/direct ms  CPU ms/answer gw/direct  RSS MB  KB/stream"]
    for s in result["concurrency"]["steps"]:
        gap, ttft, cpu = s["gap_ms"], s["first_token_ms"], s["cpu_ms_per_answer"]
        lines.append(
            f"  {s['n']:<4} {s['gateway_intact']:>4}/{s['n']:<4} {s['errors']:>3}   "
            f"{_f(gap['gateway']['p99']):>7} / {_f(gap['direct']['p99']):<7}   {_f(s['added_gap_p99_ms']):>6}  "
            f"{_f(ttft['gateway']['p99']):>8} / {_f(ttft['direct']['p99']):<8}    "
            f"{_f(cpu['gateway']):>6} / {_f(cpu['direct']):<6}       {_f(s['rss_kb'] / MB):>6}  {_f(s['kb_per_stream']):>7}"
        )
    return lines


def render(result: dict) -> str:
    """The table printed at the end of a run."""
    fig = figures(result)
    table = rows(result, fig)
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    lines = [f"bingo gateway vs direct ChatHub client — {result['machine']['nproc']} CPUs, Python {result['machine']['python']}"]
    lines.append(f"baseline: {result['baseline']}")
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in table]
    lines += ["", "concurrency ramp:"] + ramp_rows(result)
    lines.append(f"\nall errors: {fig['errors']}   run took {result['seconds']:.0f} s")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "figures": figures(result)}, indent=2) + "\n")


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
