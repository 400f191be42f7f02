"""Turn a run's result into the figures, judged against the issue's targets, as a
printed table (plain ws:// beside TLS wss://) and a JSON file.

Targets are judged on the TLS scheme against the minimal reader (the floor); the
plain scheme is shown beside it for the "no regression" comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

MB = 1024
TARGETS = {  # figure: (limit, how it is read)
    "ttft_added_p50_ms": 1.0,
    "cpu_ratio": 1.5,
    "first_token_p50_ratio": 2.0,
    "kb_per_stream": 256.0,
}


def _step(scheme: dict, n: int) -> dict:
    return next(s for s in scheme["concurrency"]["steps"] if s["n"] == n)


def scheme_figures(scheme: dict, n: int) -> dict:
    """One scheme's headline numbers, flat; ratios and differences vs minimal/direct."""
    at_n, first, cpu = _step(scheme, n), scheme["first_token"], scheme["cpu"]
    together = scheme["cpu_concurrent"]["ratio"]
    idle, pinned = scheme["memory_idle"], scheme["pinned"]
    return {
        "ttft_added_p50_ms": first["added_p50_ms"]["minimal"],
        "ttft_added_p50_vs_direct_ms": first["added_p50_ms"]["direct"],
        "ttft_added_p99_ms": first["added_p99_ms"]["minimal"],
        "cpu_ratio": cpu["ratio"]["gateway/minimal"],
        "cpu_ratio_vs_direct": cpu["ratio"]["gateway/direct"],
        "cpu_direct_over_minimal": cpu["ratio"]["direct/minimal"],
        "cpu_concurrent_ratio": together["gateway/minimal"],
        "cpu_concurrent_ratio_vs_direct": together["gateway/direct"],
        "cpu_concurrent_direct_over_minimal": together["direct/minimal"],
        "cpu_concurrency": scheme["cpu_concurrent"]["concurrency"],
        "n": n,
        "n_intact": at_n["sides"]["gateway"]["intact"],
        "n_errors": at_n["errors"],
        "first_token_p50_ratio": at_n["first_token_p50_ratio"]["gateway/minimal"],
        "first_token_p50_ratio_vs_direct": at_n["first_token_p50_ratio"][
            "gateway/direct"
        ],
        "gap_added_p99_ms": at_n["added_gap_p99_ms"]["steady"]["gateway/minimal"],
        "gap_added_p99_vs_direct_ms": at_n["added_gap_p99_ms"]["steady"][
            "gateway/direct"
        ],
        "idle_rss_mb": idle["worker_rss_kb"] / MB,
        "master_rss_mb": idle["master_rss_kb"] / MB,
        "pss_mb": idle["master_plus_worker_pss_kb"] / MB,
        "rss_at_n_mb": at_n["worker_peak_rss_kb"] / MB,
        "master_at_n_mb": at_n["master_peak_rss_kb"] / MB,
        "kb_per_stream": at_n["kb_per_stream"],
        "pinned_ttft_added_p50_ms": pinned
        and pinned["first_token"]["added_p50_ms"]["minimal"],
        "pinned_cpu_ratio": pinned and pinned["cpu"]["ratio"]["gateway/minimal"],
        "pinned_cpu_ratio_vs_direct": pinned
        and pinned["cpu"]["ratio"]["gateway/direct"],
        "errors": _errors(scheme),
    }


def _errors(scheme: dict) -> int:
    count = len(scheme["first_token"]["errors"]) + scheme["cpu"]["error_count"]
    count += scheme["cpu_concurrent"]["error_count"]
    count += sum(s["errors"] for s in scheme["concurrency"]["steps"])
    count += sum(len(e) for e in scheme["warmup"]["errors"].values())
    if scheme["pinned"]:
        count += len(scheme["pinned"]["first_token"]["errors"])
        count += scheme["pinned"]["cpu"]["error_count"]
    if scheme["slow_first"]:
        count += len(scheme["slow_first"]["errors"])
    return count


def figures(result: dict) -> dict:
    """Per scheme, plus the slow-upstream first byte (measured once)."""
    n = result["options"]["target_n"]
    found: dict = {k: scheme_figures(v, n) for k, v in result["schemes"].items()}
    slow = [v["slow_first"] for v in result["schemes"].values() if v["slow_first"]]
    found["first_byte_s"] = slow[0]["first_byte_s"] if slow else None
    found["errors"] = sum(v["errors"] for k, v in found.items() if isinstance(v, dict))
    return found


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(name: str, value: float | None) -> str:
    if name not in TARGETS:
        return ""
    if value is None:
        return "n/a"
    return "met" if value <= TARGETS[name] else "MISSED"


ROWS = (  # (label, figure, digits, unit, target text)
    ("1 added TTFT p50 vs minimal", "ttft_added_p50_ms", 2, " ms", "<= 1 ms"),
    ("1 added TTFT p50 vs direct", "ttft_added_p50_vs_direct_ms", 2, " ms", ""),
    ("1 added TTFT p99 vs minimal", "ttft_added_p99_ms", 2, " ms", ""),
    ("2 CPU/answer gateway/minimal", "cpu_ratio", 2, "x", "<= 1.5x"),
    ("2 CPU/answer gateway/direct", "cpu_ratio_vs_direct", 2, "x", ""),
    ("2 CPU/answer direct/minimal", "cpu_direct_over_minimal", 2, "x", ""),
    ("2 CPU, {c} at once, gw/minimal", "cpu_concurrent_ratio", 2, "x", ""),
    ("2 CPU, {c} at once, gw/direct", "cpu_concurrent_ratio_vs_direct", 2, "x", ""),
    ("2 CPU, {c} at once, dir/minimal", "cpu_concurrent_direct_over_minimal", 2, "x", ""),
    ("3 intact at N", "n_intact", 0, "", "N/N, 0 errors"),
    ("3 first token p50 gw/minimal", "first_token_p50_ratio", 2, "x", "<= 2x"),
    ("3 first token p50 gw/direct", "first_token_p50_ratio_vs_direct", 2, "x", ""),
    ("3 added gap p99 vs minimal", "gap_added_p99_ms", 1, " ms", "<= 50 ms"),
    ("3 added gap p99 vs direct", "gap_added_p99_vs_direct_ms", 1, " ms", ""),
    ("4 RSS idle worker", "idle_rss_mb", 1, " MB", "<= 60 MB"),
    ("4 RSS idle master", "master_rss_mb", 1, " MB", ""),
    ("4 PSS idle master+worker", "pss_mb", 1, " MB", ""),
    ("4 RSS at N worker", "rss_at_n_mb", 1, " MB", ""),
    ("4 RSS at N master", "master_at_n_mb", 1, " MB", ""),
    ("4 KB per stream at N", "kb_per_stream", 1, " KB", "<= 256 KB"),
    ("pinned: added TTFT p50 vs minimal", "pinned_ttft_added_p50_ms", 2, " ms", ""),
    ("pinned: CPU, {c} at once, gw/minimal", "pinned_cpu_ratio", 2, "x", ""),
    ("pinned: CPU, {c} at once, gw/direct", "pinned_cpu_ratio_vs_direct", 2, "x", ""),
)


def rows(fig: dict, schemes: list[str]) -> list[list[str]]:
    table = [["figure", *(f"{s}://" for s in schemes), "target", "TLS verdict"]]
    at_once = fig[schemes[0]]["cpu_concurrency"]
    for label, name, digits, unit, target in ROWS:
        label = label.format(c=at_once)
        cells = [f"{_f(fig[s][name], digits)}{unit}" for s in schemes]
        tls = fig.get("wss", {}).get(name)
        verdict = _verdict(name, tls) if "wss" in fig else ""
        if name == "n_intact" and "wss" in fig:
            w = fig["wss"]
            verdict = (
                "met" if w["n_intact"] == w["n"] and not w["n_errors"] else "MISSED"
            )
        if name == "gap_added_p99_ms":
            verdict = "" if tls is None else ("met" if tls <= 50.0 else "MISSED")
        table.append([label, *cells, target, verdict])
    return table


def ramp_rows(scheme_name: str, scheme: dict) -> list[str]:
    lines = [
        f"{scheme_name}:// ramp "
        f"(streams start over {scheme['concurrency']['spread_s']:g} s)"
        "  [gateway / direct / minimal]",
        "  N     intact            first token p50 ms      first token p99 ms      "
        "gap p99 steady ms      CPU ms/answer       worker MB  KB/stream",
    ]
    for s in scheme["concurrency"]["steps"]:
        sides = [s["sides"][k] for k in ("gateway", "direct", "minimal")]

        def three(get: object, digits: int = 0) -> str:
            return " / ".join(_f(get(x), digits) for x in sides).ljust(22)  # type: ignore[operator]

        lines.append(
            f"  {s['n']:<5} {three(lambda x: x['intact'])}"
            f"{three(lambda x: x['first_token_ms']['p50'])}  "
            f"{three(lambda x: x['first_token_ms']['p99'])}  "
            f"{three(lambda x: x['gap_ms']['steady']['p99'])} "
            f"{three(lambda x: x['cpu_ms_per_answer'], 1)}"
            f"{_f(s['worker_peak_rss_kb'] / MB):>7}  {_f(s['kb_per_stream']):>8}"
        )
    return lines


def render(result: dict) -> str:
    """The table printed at the end of a run."""
    fig, schemes = figures(result), list(result["schemes"])
    machine = result["machine"]
    table = rows(fig, schemes)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [
        f"bingo gateway vs bingo's own client (direct) vs a minimal reader: "
        f"{machine['nproc']} CPUs, {machine['memory']}, Python {machine['python']}",
        f"traffic ({result['traffic'].get('protocol', 'chathub')}): "
        f"{result['traffic']['chars']} chars in "
        f"{result['traffic']['updates']} "
        f"cumulative updates, {result['traffic']['delay_s']:g} s apart",
        f"direct: {result['baselines']['direct']}",
        f"minimal: {result['baselines']['minimal']}",
        f"headline unpinned; N = {fig[schemes[0]]['n']}",
        "",
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.append(
        f"5 first byte, slow upstream: {_f(fig['first_byte_s'], 2)} s (< 30 s)"
    )
    for name in schemes:
        lines += ["", *ramp_rows(name, result["schemes"][name])]
    lines.append(
        f"\nerrors in all phases: {fig['errors']}   run took {result['seconds']:.0f} s"
    )
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "figures": figures(result)}, indent=2) + "\n")
